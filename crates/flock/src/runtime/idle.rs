//! Waiting for quiet, flushing, and shutting down: the calls that wait for the
//! flock rather than drive one publish.

use std::sync::{Arc, atomic::Ordering};

use flock_core::FlushReason;

use super::Runtime;
use crate::{
    agent::Agent,
    decision::{Core, Drained},
    run, spans,
    work::Work,
};

impl Runtime {
    /// Carries out everything due now; returns how many batches flushed.
    pub(crate) fn tick(self: &Arc<Self>) -> usize {
        let ready = self.core.lock().tick(self.now());
        let flushed = ready.flushed.0;
        self.act(ready);
        flushed
    }

    /// Flushes every batch with `reason`; returns (batches, artifacts).
    pub(crate) fn flush_all(self: &Arc<Self>, reason: FlushReason) -> (usize, usize) {
        let ready = self.core.lock().flush_all(reason, self.now());
        let flushed = ready.flushed;
        self.act(ready);
        flushed
    }

    /// Waits until nothing is due, dispatching or live.
    pub(crate) async fn wait_idle(self: &Arc<Self>) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (ready, quiet) = {
                let mut core = self.core.lock();
                let ready = core.tick(self.now());
                let quiet = core.is_quiet();
                if !quiet {
                    core.watch_idle();
                }
                (ready, quiet)
            };
            self.act(ready);
            if quiet {
                return;
            }
            let _watching = Unwatch(self, Core::unwatch_idle);
            notified.await;
        }
    }

    /// Shuts down: refuses external publishes, then flushes (reason `shutdown`) and
    /// waits until no batch, dispatch or run is left. Returns the batches and
    /// artifacts it flushed and what the drain left.
    pub(crate) async fn shutdown(self: &Arc<Self>) -> ((usize, usize), Drained) {
        let ready = self.core.lock().begin_shutdown();
        self.act(ready);
        let mut flushed = (0, 0);
        loop {
            self.wait_idle().await;
            let (ready, drained) = {
                let mut core = self.core.lock();
                let now = self.now();
                let ready = core.flush_all(FlushReason::Shutdown, now);
                // A durable store keeps incomplete join groups for the next start
                // (or the units' next owners in a cluster): not discarded.
                let keep = self.membership.is_some() || self.durable;
                let drained = if ready.flushed.0 == 0 {
                    core.try_drain(now, keep)
                } else {
                    None
                };
                (ready, drained)
            };
            flushed.0 += ready.flushed.0;
            flushed.1 += ready.flushed.1;
            self.act(ready);
            if let Some(drained) = drained {
                // The timer ends: nothing can start any more.
                self.timer.notify_one();
                if drained.left.0 > 0 {
                    tracing::info!(
                        groups = drained.left.0,
                        artifacts = drained.left.1,
                        "incomplete join groups left in the store; the next start (or the units' next owners) collects them again"
                    );
                }
                for (agent, discarded) in &drained.discarded {
                    spans::join_discard(agent, discarded);
                }
                for event in &drained.events {
                    self.send(event.clone());
                }
                return (flushed, drained);
            }
        }
    }

    /// Calls `on_terminate` on the components of every initialized agent, once.
    pub(crate) async fn terminate_agents(&self) {
        let agents: Vec<Arc<Agent>> = self.routing.read().agents().to_vec();
        for agent in agents {
            let life = self.lifecycle(agent.index);
            if life.initialized.initialized() && !life.terminated.swap(true, Ordering::AcqRel) {
                for component in &agent.components {
                    let hook = component.on_terminate(&agent.name);
                    run::observe(component.as_ref(), "on_terminate", hook).await;
                }
            }
        }
    }

    /// Runs a failed run again; `false` once shutdown began.
    pub(crate) fn run_again(self: &Arc<Self>, agent: u32, work: Work, retries: uuid::Uuid) -> bool {
        let ready = self.core.lock().schedule_again(agent, work, Some(retries));
        match ready {
            Some((ready, _)) => {
                self.act(ready);
                true
            }
            None => false,
        }
    }

    /// Runs `work` for `agent` and tells how the run ended; `None` once shutdown
    /// began.
    pub(crate) fn invoke(
        self: &Arc<Self>,
        agent: u32,
        work: Work,
    ) -> Option<tokio::sync::oneshot::Receiver<run::Outcome>> {
        let (ready, id) = self.core.lock().schedule_again(agent, work, None)?;
        let (done, ended) = tokio::sync::oneshot::channel();
        // Before the run can start (`act`), so its end cannot be missed.
        self.waiters.lock().insert(id, done);
        self.act(ready);
        Some(ended)
    }
}

/// Stops watching (for quiet, or for room) when dropped, also when the waiting
/// future is cancelled.
pub(super) struct Unwatch<'a>(pub(super) &'a Runtime, pub(super) fn(&mut Core));

impl Drop for Unwatch<'_> {
    fn drop(&mut self) {
        (self.1)(&mut self.0.core.lock());
    }
}
