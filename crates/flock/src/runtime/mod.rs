//! The async driver around the decision core: it alone spawns runs, re-arms the one
//! timer and wakes waiters, carrying out what the core decided ([`Ready`]). Every
//! publish, external or an agent's output, comes through [`Runtime::publish`].

mod host;
mod timer;

use std::{
    panic::AssertUnwindSafe,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use flock_core::{
    Artifact, BlackboardStore, FlushReason, InMemoryStore, PublishError, TypeRegistry,
    panic_message,
};
use futures::FutureExt;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;
use tracing::{Instrument, Span};

use crate::{
    admission::{Admission, OnFull},
    agent::{Agent, RegistrationError},
    clock::{Clock, Now},
    decision::{Core, Drained, Ready, Refused, Routed, Routing, Run, Source, Ticket},
    failed::{FailedRun, FailureKind},
    run::{self, Lifecycle},
    spans,
    work::Work,
};

/// The runtime of one flock: the core under its lock, and what drives it.
pub(crate) struct Runtime {
    core: Mutex<Core>,
    /// The agents' subscriptions, read without the core's lock (routing runs user
    /// predicates and key functions).
    routing: RwLock<Routing>,
    store: Arc<dyn BlackboardStore>,
    /// The store again, when it is the in-memory default: publishes take no await.
    memory: Option<Arc<InMemoryStore>>,
    registry: TypeRegistry,
    clock: Clock,
    on_full: OnFull,
    /// Woken when the flock becomes quiet, for `run_until_idle` and `shutdown`.
    idle: Notify,
    /// Woken when admission counts go down, for publishers waiting for room.
    room: Notify,
    timer: Arc<Notify>,
    timer_started: AtomicBool,
    lifecycles: RwLock<Vec<Arc<Lifecycle>>>,
    /// Dead letters: runs given up, oldest first.
    failed: Mutex<Vec<FailedRun>>,
}

impl Runtime {
    pub(crate) fn new(store: Option<Arc<dyn BlackboardStore>>, admission: Admission) -> Self {
        let (store, memory) = match store {
            Some(store) => (store, None),
            None => {
                let memory = Arc::new(InMemoryStore::new());
                (memory.clone() as Arc<dyn BlackboardStore>, Some(memory))
            }
        };
        Self {
            core: Mutex::new(Core::new(admission)),
            routing: RwLock::new(Routing::default()),
            store,
            memory,
            registry: TypeRegistry::new(),
            clock: Clock::new(),
            on_full: admission.on_full,
            idle: Notify::new(),
            room: Notify::new(),
            timer: Arc::new(Notify::new()),
            timer_started: AtomicBool::new(false),
            lifecycles: RwLock::new(Vec::new()),
            failed: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn registry(&self) -> &TypeRegistry {
        &self.registry
    }

    pub(crate) fn store(&self) -> &Arc<dyn BlackboardStore> {
        &self.store
    }

    pub(crate) fn now(&self) -> Now {
        self.clock.now()
    }

    pub(crate) fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The core, for inspection.
    pub(crate) fn core(&self) -> parking_lot::MutexGuard<'_, Core> {
        self.core.lock()
    }

    pub(crate) fn failed(&self) -> parking_lot::MutexGuard<'_, Vec<FailedRun>> {
        self.failed.lock()
    }

    // === agents ===

    pub(crate) fn register(&self, agent: Agent) -> Result<(), RegistrationError> {
        let mut core = self.core.lock();
        let agent = core.register(agent)?;
        self.lifecycles.write().push(Arc::default());
        // Under the core's lock: a take routed to the new agent only exists once the
        // core knows it.
        self.routing.write().add(agent);
        Ok(())
    }

    fn lifecycle(&self, agent: u32) -> Arc<Lifecycle> {
        self.lifecycles.read()[agent as usize].clone()
    }

    // === publishing ===

    /// Stores `artifact` and hands it to the subscriptions that take it. An external
    /// publish is refused once shutdown began and held to the admission bounds; once
    /// it is admitted, shutdown waits for it to be collected, so an `Ok` publish is
    /// always delivered.
    pub(crate) async fn publish(
        self: &Arc<Self>,
        artifact: Arc<Artifact>,
        source: Source,
        now: Now,
    ) -> Result<(), PublishError> {
        let routed = self.routing.read().route(&artifact, now);
        if let Some(memory) = &self.memory {
            // The default store answers at once: admit, store and collect in one step.
            let fast = {
                let mut core = self.core.lock();
                match core.reserve(&routed, source) {
                    Ok(()) => Some(match memory.insert(artifact.clone()) {
                        Ok(()) => Ok(core.collect(
                            artifact.clone(),
                            routed.clone(),
                            now,
                            &Span::current(),
                        )),
                        Err(error) => Err((error, core.cancel(&routed))),
                    }),
                    Err(Refused::Full(_)) if self.on_full == OnFull::Wait => None,
                    Err(refused) => return Err(refusal(refused)),
                }
            };
            if let Some(ready) = fast {
                return self.finish_publish(ready).await;
            }
        }
        self.reserve(&routed, source).await?;
        let stored = match &self.memory {
            Some(memory) => memory.insert(artifact.clone()),
            None => self.store.publish(artifact.clone()).await,
        };
        let ready = match stored {
            Ok(()) => Ok(self
                .core
                .lock()
                .collect(artifact, routed, self.now(), &Span::current())),
            Err(error) => Err((error, self.core.lock().cancel(&routed))),
        };
        self.finish_publish(ready).await
    }

    async fn finish_publish(
        self: &Arc<Self>,
        ready: Result<Ready, (flock_core::StoreError, Ready)>,
    ) -> Result<(), PublishError> {
        match ready {
            Ok(ready) => {
                self.act(ready);
                // A publishing loop that never waits would otherwise starve the runs
                // it starts on the same thread (a current-thread runtime): every so
                // often (tokio's cooperative budget), yield to them.
                tokio::task::consume_budget().await;
                Ok(())
            }
            Err((error, ready)) => {
                self.act(ready);
                Err(error.into())
            }
        }
    }

    /// Reserves room for a publish, waiting for it under `OnFull::Wait`.
    async fn reserve(&self, routed: &Routed, source: Source) -> Result<(), PublishError> {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut core = self.core.lock();
                match core.reserve(routed, source) {
                    Ok(()) => return Ok(()),
                    Err(Refused::Full(_)) if self.on_full == OnFull::Wait => core.watch_room(),
                    Err(refused) => return Err(refusal(refused)),
                }
            }
            let _watching = Unwatch(self, Core::unwatch_room);
            room.await;
        }
    }

    /// Stores a run's outputs, all or none, then dispatches each under its
    /// `artifact.publish` span.
    pub(crate) async fn publish_outputs(
        self: &Arc<Self>,
        outputs: Vec<Arc<Artifact>>,
    ) -> Result<(), PublishError> {
        let now = self.now();
        let routed: Vec<Routed> = {
            let routing = self.routing.read();
            outputs.iter().map(|a| routing.route(a, now)).collect()
        };
        {
            let mut core = self.core.lock();
            for routed in &routed {
                core.reserve(routed, Source::Output)
                    .unwrap_or_else(|_| unreachable!("outputs are never refused"));
            }
        }
        let stored = match &self.memory {
            Some(memory) => memory.insert_all(&outputs),
            None => self.store.publish_all(&outputs).await,
        };
        if let Err(error) = stored {
            let mut ready = Vec::with_capacity(routed.len());
            {
                let mut core = self.core.lock();
                for routed in &routed {
                    ready.push(core.cancel(routed));
                }
            }
            ready.into_iter().for_each(|r| self.act(r));
            return Err(error.into());
        }
        for (artifact, routed) in outputs.into_iter().zip(routed) {
            let span = spans::artifact_publish(&artifact);
            let ready = self.core.lock().collect(artifact, routed, now, &span);
            span.in_scope(|| self.act(ready));
        }
        Ok(())
    }

    /// Routes and collects an artifact whose visibility began (already stored and
    /// counted dispatching).
    fn dispatch_released(self: &Arc<Self>, artifact: Arc<Artifact>) {
        let now = self.now();
        let routed = self.routing.read().route(&artifact, now);
        let ready = {
            let mut core = self.core.lock();
            core.reserve(&routed, Source::Released)
                .unwrap_or_else(|_| unreachable!("released artifacts are never refused"));
            core.collect(artifact, routed, now, &Span::current())
        };
        self.act(ready);
    }

    // === acting on decisions ===

    /// Carries out what the core decided.
    pub(crate) fn act(self: &Arc<Self>, ready: Ready) {
        let Ready {
            start,
            refused,
            completed,
            discarded,
            released,
            flushed: _,
            rearm,
            quiet,
            room,
        } = ready;
        for (agent, discarded) in &discarded {
            spans::join_discard(agent, discarded);
        }
        for (agent, done) in &completed {
            let _span = spans::join_complete(
                &Span::current(),
                agent,
                done.subscription,
                &done.key,
                done.size,
                done.wait,
            );
        }
        for run in start {
            self.spawn_run(run);
        }
        for run in refused {
            self.spawn_refusal(run);
        }
        if rearm {
            self.rearm();
        }
        if quiet {
            self.idle.notify_waiters();
        }
        if room {
            self.room.notify_waiters();
        }
        for artifact in released {
            self.dispatch_released(artifact);
        }
    }

    /// Spawns a run that holds a slot; its ticket comes back to the core when it
    /// finishes, whatever happens in it.
    fn spawn_run(self: &Arc<Self>, run: Run) {
        let Run {
            ticket,
            agent,
            input,
            cause,
            joined,
        } = run;
        let runtime = self.clone();
        let life = self.lifecycle(agent.index);
        let ticket = TicketGuard::new(self.clone(), ticket);
        tokio::spawn(async move {
            // Built here, not under the core's lock: proportional to the batch, and
            // the run is already counted live.
            let work = input.into_work();
            let span = match &joined {
                Some(done) => {
                    let join = spans::join_complete(
                        &cause,
                        &agent,
                        done.subscription,
                        &done.key,
                        done.size,
                        done.wait,
                    );
                    spans::run(&join, &agent, &work)
                }
                None => spans::run(&cause, &agent, &work),
            };
            let executed = AssertUnwindSafe(
                run::execute(&runtime, &agent, &life, &work).instrument(span.clone()),
            )
            .catch_unwind()
            .await;
            if let Err(panic) = executed {
                // User code outside every contained call (a component's name in an
                // error message, say): the run fails, its slot is released below.
                let message = format!("run panicked: {}", panic_message(panic.as_ref()));
                run::fail(&runtime, &agent, work, FailureKind::Failed, message, 0)
                    .instrument(span)
                    .await;
            }
            ticket.finish();
        });
    }

    /// Records a run the circuit breaker refused.
    fn spawn_refusal(self: &Arc<Self>, run: Run) {
        let runtime = self.clone();
        let ticket = TicketGuard::new(self.clone(), run.ticket);
        tokio::spawn(async move {
            let work = run.input.into_work();
            let span = spans::run(&run.cause, &run.agent, &work);
            run::refuse(&runtime, &run.agent, work)
                .instrument(span)
                .await;
            ticket.finish();
        });
    }

    /// Starts the timer on first need, and wakes it to re-arm.
    fn rearm(self: &Arc<Self>) {
        if !self.timer_started.swap(true, Ordering::AcqRel) {
            tokio::spawn(timer::run(Arc::downgrade(self), self.timer.clone()));
        }
        self.timer.notify_one();
    }

    // === time, idle, shutdown ===

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
                let drained = if ready.flushed.0 == 0 {
                    core.try_drain(now)
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
                for (agent, discarded) in &drained.discarded {
                    spans::join_discard(agent, discarded);
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
    pub(crate) fn run_again(self: &Arc<Self>, agent: u32, work: Work) -> bool {
        let ready = self.core.lock().schedule_again(agent, work);
        match ready {
            Some(ready) => {
                self.act(ready);
                true
            }
            None => false,
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let (batched, joining) = self.core.get_mut().held();
        if batched > 0 {
            tracing::error!(
                artifacts = batched,
                "flock dropped with artifacts waiting in batches; call Flock::shutdown() to flush them"
            );
        }
        if joining > 0 {
            tracing::warn!(
                artifacts = joining,
                "flock dropped with incomplete join groups; call Flock::shutdown() to discard them traced"
            );
        }
        // Let the timer see that the flock is gone.
        self.timer.notify_one();
    }
}

fn refusal(refused: Refused) -> PublishError {
    match refused {
        Refused::Closed => PublishError::Closed,
        Refused::Full(full) => full,
    }
}

/// Stops watching (for quiet, or for room) when dropped, also when the waiting
/// future is cancelled.
struct Unwatch<'a>(&'a Runtime, fn(&mut Core));

impl Drop for Unwatch<'_> {
    fn drop(&mut self) {
        (self.1)(&mut self.0.core.lock());
    }
}

/// A run's ticket, given back to the core exactly once: by [`TicketGuard::finish`]
/// when the run ends, or on drop when its task was cancelled.
struct TicketGuard {
    runtime: Arc<Runtime>,
    ticket: Option<Ticket>,
}

impl TicketGuard {
    fn new(runtime: Arc<Runtime>, ticket: Ticket) -> Self {
        Self {
            runtime,
            ticket: Some(ticket),
        }
    }

    fn finish(mut self) {
        let ticket = self.ticket.take().expect("a ticket is given back once");
        let ready = self.runtime.core.lock().finish(ticket);
        self.runtime.act(ready);
    }
}

impl Drop for TicketGuard {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            let ready = self.runtime.core.lock().abandon(ticket);
            self.runtime.act(ready);
        }
    }
}
