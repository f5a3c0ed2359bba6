//! A run's outcome onto the blackboard, outside a cluster (`cluster.rs` has the
//! fenced twins): its outputs stored with its inputs' consumption, or a failed run
//! kept with its `WorkflowError`; then the outputs dispatched, each under its
//! `artifact.publish` span.

use std::sync::Arc;

use flock_core::{Artifact, ArtifactId, FailureCommit, PublishError, RunCommit};
use uuid::Uuid;

use super::Runtime;
use crate::{
    agent::Agent,
    clock::Now,
    decision::{Cause, Ready, Routed, Source},
    failed::FailedRun,
    run, spans,
    work::Work,
};

impl Runtime {
    /// Stores a run's outputs with the consumption of its inputs (one fact), then
    /// dispatches each output under its `artifact.publish` span.
    pub(crate) async fn commit_run(
        self: &Arc<Self>,
        agent: &Agent,
        origin: run::Origin,
        run_id: Uuid,
        work: &Work,
        outputs: Vec<Arc<Artifact>>,
    ) -> Result<(), PublishError> {
        if self.membership.is_some() {
            return self
                .commit_clustered(agent, origin, run_id, work, &outputs)
                .await;
        }
        if outputs.is_empty() && self.memory {
            // Nothing to store or route: the in-memory store records no consumption.
            return Ok(());
        }
        let (now, routed) = self.reserve_outputs(&outputs);
        let stored = if self.memory {
            self.core.insert_all(&outputs)
        } else {
            let inputs: Vec<ArtifactId> = work.artifacts().iter().map(|a| a.id).collect();
            let commit = RunCommit {
                agent: &agent.name,
                run_id,
                inputs: &inputs,
                outputs: &outputs,
                fence: None,
                retries: origin.retries,
            };
            self.store.commit_run(commit).await
        };
        if let Err(error) = stored {
            self.cancel_outputs(&routed);
            return Err(error.into());
        }
        self.dispatch_outputs(outputs, routed, now);
        Ok(())
    }

    /// Keeps a failed run (with the store, where it is durable), then publishes its
    /// `WorkflowError`. The failed run is kept first, so whoever reacts to the
    /// `WorkflowError` finds it; it stays in memory even if the store fails.
    pub(crate) async fn commit_failure(self: &Arc<Self>, run: FailedRun, error: Arc<Artifact>) {
        if self.membership.is_some() {
            return self.commit_failure_clustered(run, error).await;
        }
        let outputs = vec![error];
        let (now, routed) = self.reserve_outputs(&outputs);
        let stored = if self.memory {
            self.core.insert_all(&outputs)
        } else {
            let record = run.record();
            let commit = FailureCommit {
                failure: &record,
                error: &outputs[0],
                fence: None,
                retries: run.retries,
            };
            self.store.commit_failure(commit).await
        };
        let agent = run.agent.clone();
        self.failed.lock().push(run);
        match stored {
            Ok(()) => self.dispatch_outputs(outputs, routed, now),
            Err(error) => {
                self.cancel_outputs(&routed);
                tracing::error!(
                    %agent,
                    %error,
                    "could not store the WorkflowError; the failed run is kept in Flock::failed_runs()"
                );
            }
        }
    }

    /// Routes outputs and counts them dispatching (never refused).
    fn reserve_outputs(&self, outputs: &[Arc<Artifact>]) -> (Now, Vec<Routed>) {
        let now = self.now();
        let routed: Vec<Routed> = {
            let routing = self.routing.read();
            outputs.iter().map(|a| routing.route(a, now)).collect()
        };
        let mut core = self.core.lock();
        for routed in &routed {
            core.reserve(routed, Source::Output)
                .unwrap_or_else(|_| unreachable!("outputs are never refused"));
        }
        (now, routed)
    }

    /// Undoes [`Runtime::reserve_outputs`] for outputs that were not stored.
    fn cancel_outputs(self: &Arc<Self>, routed: &[Routed]) {
        let ready: Vec<Ready> = {
            let mut core = self.core.lock();
            routed.iter().map(|r| core.cancel(r)).collect()
        };
        ready.into_iter().for_each(|r| self.act(r));
    }

    /// Collects stored outputs, each under its `artifact.publish` span.
    fn dispatch_outputs(
        self: &Arc<Self>,
        outputs: Vec<Arc<Artifact>>,
        routed: Vec<Routed>,
        now: Now,
    ) {
        for (artifact, routed) in outputs.into_iter().zip(routed) {
            let span = spans::artifact_publish(&artifact);
            self.published(&artifact);
            let ready = self
                .core
                .lock()
                .collect(artifact, routed, now, Cause::Span(&span));
            span.in_scope(|| self.act(ready));
        }
    }
}
