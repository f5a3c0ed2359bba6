//! The async driver around the decision core: it alone spawns runs, re-arms the one
//! timer and wakes waiters, carrying out what the core decided ([`Ready`]). Every
//! publish, external or an agent's output, comes through [`Runtime::publish`].

mod cluster;
mod commit;
mod driver;
mod host;
mod idle;
mod locked;
mod precise;
mod recovery;
mod runs;
mod timer;

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use flock_core::{
    Artifact, ArtifactId, BlackboardStore, MemoryLog, PublishError, Retention, TypeRegistry,
};
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashSet;
use tokio::sync::{Notify, broadcast};
use tracing::Span;

use crate::{
    admission::{Admission, OnFull},
    agent::{Agent, Registrar, RegistrationError},
    clock::{Clock, Now},
    cluster::{Cluster, Membership},
    decision::{Cause, Core, Ready, Refused, Released, Routed, Routing, Source},
    events::FlockEvent,
    failed::FailedRun,
    options::RecoveryReport,
    run::{self, Lifecycle},
    spans,
};
use idle::Unwatch;
use locked::{CoreLock, Locked, LockedMemory, in_memory};

/// The runtime of one flock: the core under its lock, and what drives it.
pub(crate) struct Runtime {
    /// The core, and with the in-memory store the blackboard too.
    core: Arc<CoreLock>,
    /// The agents' subscriptions, read without the core's lock: routing that calls
    /// user code (predicates, key functions) runs here. The core's lock keeps a
    /// copy, for routing that calls none.
    routing: RwLock<Routing>,
    /// Whether some registered subscription calls user code when it routes: then
    /// publishes route here first, outside the core's lock.
    routes_user_code: AtomicBool,
    store: Arc<dyn BlackboardStore>,
    /// Whether the store is the in-memory default, kept under the core's lock:
    /// publishes take no await.
    memory: bool,
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
    /// Whether the store is durable (recovery runs before the first call).
    durable: bool,
    /// Set once a durable store was recovered from (with what it found).
    recovery: tokio::sync::OnceCell<RecoveryReport>,
    /// While recovery replays, the timer leaves the ticking to it.
    replaying: AtomicBool,
    /// Artifacts collected again by recovery whose run has not started: their
    /// flush is marked `recovered`.
    replayed: Mutex<FxHashSet<ArtifactId>>,
    /// In a cluster: the units this process owns, and the feed's position.
    membership: Option<Arc<Membership>>,
    cursor: AtomicU64,
    /// Woken when the feed's position moves.
    fed: Notify,
    /// External publishes refused at an admission bound (`OnFull::Reject`).
    rejected: AtomicU64,
    /// Callers waiting for a run to end (`Flock::invoke`), by run id.
    waiters: Mutex<rustc_hash::FxHashMap<u64, tokio::sync::oneshot::Sender<run::Outcome>>>,
}

/// What the publish path without await did.
enum Published {
    /// Done: stored and collected, or refused.
    Done(Result<(), PublishError>),
    /// To do with awaits: wait for room, or store asynchronously.
    Later(Later),
}

/// A publish left to [`Runtime::publish_later`].
struct Later {
    artifact: Arc<Artifact>,
    /// Where it goes, when already routed.
    routed: Option<Routed>,
    source: Source,
    now: Now,
}

/// Live events a subscriber may fall behind by before it loses the oldest.
const EVENTS_CAPACITY: usize = 16_384;

impl Runtime {
    /// A runtime on `store` (the in-memory store under `retention` when `None`).
    pub(crate) fn new(
        store: Option<Arc<dyn BlackboardStore>>,
        retention: Retention,
        admission: Admission,
        cluster: Option<Cluster>,
    ) -> Self {
        // In a cluster, the cluster's store is the blackboard.
        let store = match &cluster {
            Some(cluster) => Some(cluster.store.clone() as Arc<dyn BlackboardStore>),
            None => store,
        };
        // A durable store decodes what it reads back with the flock's types: share
        // its registry.
        let registry = store
            .as_ref()
            .and_then(|store| store.types())
            .unwrap_or_default();
        let durable = store.as_ref().is_some_and(|store| store.is_durable());
        let membership = cluster.map(|c| Arc::new(Membership::new(c)));
        // Admission bounds do not apply in a cluster (no process sees all that waits).
        let mut core = Core::new(match membership {
            Some(_) => {
                if admission.is_bounded() {
                    tracing::warn!(
                        "admission bounds are set but do not apply in a cluster (no process sees all that waits); publishes are not bounded"
                    );
                }
                Admission::default()
            }
            None => admission,
        });
        if let Some(membership) = &membership {
            let membership = membership.clone();
            core.set_fence(Arc::new(move |key| membership.fence(key)));
        }
        let memory = store.is_none();
        let core = Arc::new(CoreLock::new(
            core,
            memory.then(|| MemoryLog::new(retention)),
        ));
        let store = store.unwrap_or_else(|| Arc::new(LockedMemory::new(&core)));
        Self {
            core,
            routing: RwLock::new(Routing::default()),
            routes_user_code: AtomicBool::new(false),
            store,
            memory,
            registry,
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
            durable,
            recovery: tokio::sync::OnceCell::new(),
            replaying: AtomicBool::new(false),
            replayed: Mutex::new(FxHashSet::default()),
            membership,
            cursor: AtomicU64::new(0),
            fed: Notify::new(),
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
            self.send(Self::published_event(artifact));
        }
    }

    fn published_event(artifact: &Artifact) -> FlockEvent {
        FlockEvent::ArtifactPublished {
            id: artifact.id,
            type_name: artifact.type_name(),
            produced_by: artifact.produced_by.to_string(),
            correlation_id: artifact.correlation_id(),
            created_at: artifact.created_at,
            visibility: artifact.visibility().clone(),
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
    pub(crate) fn core(&self) -> parking_lot::MappedRwLockWriteGuard<'_, Core> {
        self.core.lock()
    }

    pub(crate) fn failed(&self) -> parking_lot::MutexGuard<'_, Vec<FailedRun>> {
        self.failed.lock()
    }

    // === agents ===

    fn lifecycle(&self, agent: u32) -> Arc<Lifecycle> {
        self.lifecycles.read()[agent as usize].clone()
    }

    // === publishing ===

    /// Stores `artifact` and hands it to the subscriptions that take it. An external
    /// publish is refused once shutdown began and held to the admission bounds; once
    /// it is admitted, shutdown waits for it to be collected, so an `Ok` publish is
    /// always delivered.
    ///
    /// With the in-memory store and room to spare, this takes no await but the
    /// cooperative yield; the rest (recovery, a durable or cluster store, waiting
    /// for room) is a separate, boxed future, so that the common path's future
    /// stays small.
    pub(crate) async fn publish(
        self: &Arc<Self>,
        artifact: Arc<Artifact>,
        source: Source,
        now: Now,
    ) -> Result<(), PublishError> {
        match self.publish_now(artifact, source, now) {
            Published::Done(result) => {
                if result.is_ok() {
                    // A publishing loop that never waits would otherwise starve the
                    // runs it starts on the same thread (a current-thread runtime):
                    // every so often (tokio's cooperative budget), yield to them.
                    tokio::task::consume_budget().await;
                }
                result
            }
            Published::Later(later) => Box::pin(self.publish_later(later)).await,
        }
    }

    /// The publish path with awaits: recovery first, then the cluster's or the
    /// durable store, or room under `OnFull::Wait`.
    async fn publish_later(self: &Arc<Self>, later: Later) -> Result<(), PublishError> {
        let Later {
            artifact,
            routed,
            source,
            now,
        } = later;
        if self.needs_recovery() {
            self.ensure_recovered().await?;
        }
        if self.membership.is_some() {
            // In a cluster the feed delivers it, in whichever process owns its units.
            self.store.publish(artifact.clone()).await?;
            self.published(&artifact);
            return Ok(());
        }
        let routed = routed.unwrap_or_else(|| self.routing.read().route(&artifact, now));
        self.reserve(&routed, source).await?;
        let stored = if self.memory {
            self.core.insert(artifact.clone())
        } else {
            self.store.publish(artifact.clone()).await
        };
        let result = match stored {
            Ok(()) => {
                let now = self.now();
                let ready = self
                    .core
                    .lock()
                    .collect(artifact.clone(), routed, now, Cause::Current);
                self.published(&artifact);
                self.act(ready);
                Ok(())
            }
            Err(error) => {
                let ready = self.core.lock().cancel(&routed);
                self.act(ready);
                Err(error.into())
            }
        };
        tokio::task::consume_budget().await;
        result
    }

    /// The publish path that takes no await: with the in-memory store, admitting,
    /// storing and collecting happen under one lock, so the core counts the
    /// artifact as waiting from the moment it is stored.
    fn publish_now(
        self: &Arc<Self>,
        artifact: Arc<Artifact>,
        source: Source,
        now: Now,
    ) -> Published {
        let later = |artifact, routed| {
            Published::Later(Later {
                artifact,
                routed,
                source,
                now,
            })
        };
        if !self.memory || self.membership.is_some() {
            // Routed after recovery, if any.
            return later(artifact, None);
        }
        // The event is made before the core takes the artifact (and the caller's
        // reference with it).
        let event = self.events_on().then(|| Self::published_event(&artifact));
        let mut routed = Routed::default();
        let mut ready = Ready::default();
        let stored = {
            let mut locked = self.locked_and_routed(&artifact, now, &mut routed);
            let Locked { core, log, .. } = &mut *locked;
            match core.reserve(&routed, source) {
                Ok(()) => match in_memory(log).insert(artifact.clone()) {
                    Ok(()) => {
                        core.collect_into(artifact, routed, now, Cause::Current, &mut ready);
                        Ok(())
                    }
                    Err(error) => Err((error, core.cancel(&routed))),
                },
                Err(Refused::Full(_)) if self.on_full == OnFull::Wait => {
                    drop(locked);
                    return later(artifact, Some(routed));
                }
                Err(refused) => return Published::Done(Err(self.refusal(refused))),
            }
        };
        match stored {
            Ok(()) => {
                if let Some(event) = event {
                    self.send(event);
                }
                if let Some(ready) = ready.done_if_empty() {
                    self.act(ready);
                }
                Published::Done(Ok(()))
            }
            Err((error, ready)) => {
                self.act(ready);
                Published::Done(Err(error.into()))
            }
        }
    }

    /// The core's lock, with `artifact` routed into `routed`: under the lock when
    /// routing calls no user code (one lock for the whole publish), before taking it
    /// otherwise (ADR 0006: predicates and key functions never run under it).
    fn locked_and_routed(
        &self,
        artifact: &Artifact,
        now: Now,
        routed: &mut Routed,
    ) -> parking_lot::RwLockWriteGuard<'_, Locked> {
        if !self.routes_user_code.load(Ordering::Acquire) {
            let locked = self.core.lock_all();
            if !locked.routing.calls_user_code() {
                locked.routing.route_into(artifact, now, routed);
                return locked;
            }
            // An agent whose routing calls user code registered meanwhile.
        }
        self.routing.read().route_into(artifact, now, routed);
        self.core.lock_all()
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

    /// Routes and collects an artifact whose visibility began at `released.at`
    /// (already stored, and counted dispatching).
    fn dispatch_released(self: &Arc<Self>, released: Released) {
        let Released { at, held } = released;
        let now = Now {
            mono: at,
            wall: self.clock.wall_at(at),
        };
        let routed = self.route_released(&held, now);
        let ready = {
            let mut core = self.core.lock();
            core.reserve(&routed, Source::Released)
                .unwrap_or_else(|_| unreachable!("released artifacts are never refused"));
            core.collect_for(held, routed, now, Cause::Current)
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
        self.consume_discards(&discarded);
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
        for released in released {
            self.dispatch_released(released);
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

impl Registrar for Runtime {
    fn registry(&self) -> &TypeRegistry {
        &self.registry
    }

    fn register(&self, agent: Agent) -> Result<(), RegistrationError> {
        // A durable store notes from which artifact on the agent's are its to recover.
        self.store
            .register_agent(&agent.name)
            .map_err(|source| RegistrationError::Store {
                agent: agent.name.to_string(),
                source,
            })?;
        let mut locked = self.core.lock_all();
        let agent = locked.core.register(agent)?;
        self.lifecycles.write().push(Arc::default());
        // Under the core's lock: a take routed to the new agent only exists once the
        // core knows it. Both copies of the routing table, in step.
        locked.routing.add(agent.clone());
        if locked.routing.calls_user_code() {
            self.routes_user_code.store(true, Ordering::Release);
        }
        self.routing.write().add(agent);
        Ok(())
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let (batched, joining) = self.core.lock().held();
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
