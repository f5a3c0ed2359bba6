//! The async driver around the decision core: it alone spawns runs, re-arms the one
//! timer and wakes waiters, carrying out what the core decided ([`Ready`]). Every
//! publish, external or an agent's output, comes through [`Runtime::publish`].

mod host;
mod idle;
mod runs;
mod timer;

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use flock_core::{Artifact, BlackboardStore, InMemoryStore, PublishError, TypeRegistry};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{Notify, broadcast};
use tracing::Span;

use crate::{
    admission::{Admission, OnFull},
    agent::{Agent, RegistrationError},
    clock::{Clock, Now},
    decision::{Core, Ready, Refused, Routed, Routing, Source},
    events::FlockEvent,
    failed::FailedRun,
    run::{self, Lifecycle},
    spans,
};
use idle::Unwatch;

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
    /// Live events, sent only once someone subscribed.
    events: broadcast::Sender<FlockEvent>,
    events_on: AtomicBool,
    /// External publishes refused at an admission bound (`OnFull::Reject`).
    rejected: AtomicU64,
    /// Callers waiting for a run to end (`Flock::invoke`), by run id.
    waiters: Mutex<rustc_hash::FxHashMap<u64, tokio::sync::oneshot::Sender<run::Outcome>>>,
}

/// Live events a subscriber may fall behind by before it loses the oldest.
const EVENTS_CAPACITY: usize = 16_384;

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
            events: broadcast::channel(EVENTS_CAPACITY).0,
            events_on: AtomicBool::new(false),
            rejected: AtomicU64::new(0),
            waiters: Mutex::default(),
        }
    }

    /// A receiver of live events from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<FlockEvent> {
        let receiver = self.events.subscribe();
        self.core.lock().enable_events();
        self.events_on.store(true, Ordering::Release);
        receiver
    }

    /// Whether someone listens to live events.
    pub(crate) fn events_on(&self) -> bool {
        self.events_on.load(Ordering::Acquire)
    }

    /// Sends a live event (dropped when nobody listens right now).
    pub(crate) fn send(&self, event: FlockEvent) {
        let _ = self.events.send(event);
    }

    /// Reports an artifact accepted onto the blackboard.
    fn published(&self, artifact: &Artifact) {
        if self.events_on() {
            self.send(FlockEvent::ArtifactPublished {
                id: artifact.id,
                type_name: artifact.type_name(),
                produced_by: artifact.produced_by.to_string(),
                correlation_id: artifact.correlation_id,
                created_at: artifact.created_at,
                visibility: artifact.visibility.clone(),
            });
        }
    }

    /// External publishes refused at an admission bound so far.
    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// The error for a refused publish, counting admission rejections.
    fn refusal(&self, refused: Refused) -> PublishError {
        match refused {
            Refused::Closed => PublishError::Closed,
            Refused::Full(full) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                full
            }
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
        let mut routed = self.routing.read().route(&artifact, now);
        if let Some(memory) = &self.memory {
            // The default store answers at once: admit, store and collect in one step.
            let fast = {
                let mut core = self.core.lock();
                match core.reserve(&routed, source) {
                    Ok(()) => Some(match memory.insert(artifact.clone()) {
                        Ok(()) => {
                            let routed = std::mem::take(&mut routed);
                            Ok(core.collect(artifact.clone(), routed, now, &Span::current()))
                        }
                        Err(error) => Err((error, core.cancel(&routed))),
                    }),
                    Err(Refused::Full(_)) if self.on_full == OnFull::Wait => None,
                    Err(refused) => return Err(self.refusal(refused)),
                }
            };
            if let Some(ready) = fast {
                return self.finish_publish(&artifact, ready).await;
            }
        }
        self.reserve(&routed, source).await?;
        let stored = match &self.memory {
            Some(memory) => memory.insert(artifact.clone()),
            None => self.store.publish(artifact.clone()).await,
        };
        let ready = match stored {
            Ok(()) => {
                Ok(self
                    .core
                    .lock()
                    .collect(artifact.clone(), routed, self.now(), &Span::current()))
            }
            Err(error) => Err((error, self.core.lock().cancel(&routed))),
        };
        self.finish_publish(&artifact, ready).await
    }

    async fn finish_publish(
        self: &Arc<Self>,
        artifact: &Artifact,
        ready: Result<Ready, (flock_core::StoreError, Ready)>,
    ) -> Result<(), PublishError> {
        match ready {
            Ok(ready) => {
                self.published(artifact);
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
                    Err(refused) => return Err(self.refusal(refused)),
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
            self.published(&artifact);
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
            events,
        } = ready;
        for event in events {
            self.send(event);
        }
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

    /// Starts the timer on first need, and wakes it to re-arm.
    fn rearm(self: &Arc<Self>) {
        if !self.timer_started.swap(true, Ordering::AcqRel) {
            tokio::spawn(timer::run(Arc::downgrade(self), self.timer.clone()));
        }
        self.timer.notify_one();
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
