//! The decision core: every state change of the runtime, decided synchronously under
//! one lock, with `now` passed in.
//!
//! An artifact is, at every moment, in exactly one place per agent that takes it:
//! being dispatched (accepted, not yet collected), in a batch, in a join group, held
//! for its `After` visibility, in a run's inputs (counted live from the moment the
//! run is created until it finishes), or done. The core moves it between those
//! places in single steps: taking a due batch out of the batcher and counting its
//! run live is one call, so "idle" (nothing dispatching, nothing live) can never be
//! observed in between. Each call returns a [`Ready`]: what the async driver must
//! now carry out (start runs, record refused ones, trace discards, route released
//! artifacts, re-arm the timer, wake waiters). The core never awaits, spawns, reads
//! a clock or calls user code.

mod cluster;
mod collect;
mod inspect;
mod ready;
mod report;
mod route;
mod runs;
mod schedule;
mod waiting;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use flock_batch::{Batcher, Deferrals, DiscardReason, Discarded, Joiner};
use flock_core::{Artifact, FlushReason, PublishError};
use flock_subscription::JoinKey;

pub(crate) use cluster::Fence;
pub(crate) use ready::{Discard, Drained, Held, JoinDone, Ready, Released, Scope};
pub(crate) use route::{Routed, Routing, Take, Way};
pub(crate) use schedule::{Cause, Run, RunInput, Ticket};
use schedule::{Scheduled, Scheduler};
use waiting::Waiting;

use crate::{
    admission::Admission,
    agent::{Agent, RegistrationError},
    clock::Now,
    work::{BatchKey, Unit},
};

/// Where a publish comes from, for [`Core::reserve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Outside any agent: refused once shutdown began, held to admission bounds.
    External,
    /// An agent's output: always accepted while runs drain.
    Output,
    /// A deferred artifact whose visibility began (already counted dispatching).
    Released,
}

/// The lifecycle of a flock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Accepting publishes.
    Open,
    /// Shutdown began: external publishes are refused, runs drain.
    Closing,
    /// Shutdown drained everything; nothing can start any more.
    Drained,
}

/// Why a reservation was refused.
#[derive(Debug)]
pub(crate) enum Refused {
    /// Shutdown began.
    Closed,
    /// An admission bound is reached.
    Full(PublishError),
}

/// The runtime's state.
pub(crate) struct Core {
    /// Shared so that a step can hold them while it changes the core.
    agents: Arc<Vec<Arc<Agent>>>,
    batcher: Batcher<BatchKey, Unit>,
    joiner: Joiner<BatchKey, JoinKey, Arc<Artifact>>,
    deferred: Deferrals<Held>,
    waiting: Waiting,
    scheduler: Scheduler,
    /// Artifacts accepted (or released) and not yet collected.
    dispatching: usize,
    phase: Phase,
    /// Callers waiting for quiet, and publishers waiting for room.
    idle_watchers: usize,
    room_watchers: usize,
    /// Whether someone listens to live events.
    events: bool,
    /// In a cluster: the epoch of the lease of a batch key's unit, if this process
    /// owns it (see `cluster.rs`).
    fence: Option<Fence>,
}

impl Core {
    pub(crate) fn new(admission: Admission) -> Self {
        Self {
            agents: Arc::default(),
            batcher: Batcher::new(),
            joiner: Joiner::new(),
            deferred: Deferrals::new(),
            waiting: Waiting::new(admission),
            scheduler: Scheduler::default(),
            dispatching: 0,
            phase: Phase::Open,
            idle_watchers: 0,
            room_watchers: 0,
            events: false,
            fence: None,
        }
    }

    /// Reports live events from now on (see [`Ready::events`]).
    pub(crate) fn enable_events(&mut self) {
        self.events = true;
    }

    /// Reports the discarded join groups (trace, events).
    fn discarded(
        &self,
        discarded: Vec<Discarded<BatchKey, JoinKey, Arc<Artifact>>>,
        ready: &mut Ready,
    ) {
        for discarded in discarded {
            let agent = self.agents[discarded.pool.agent as usize].clone();
            if self.events {
                ready
                    .events
                    .push(report::join_discarded(&agent, &discarded));
            }
            ready.discarded.push((agent, discarded));
        }
    }

    // === agents ===

    /// Registers a validated agent, giving it its index.
    pub(crate) fn register(&mut self, mut agent: Agent) -> Result<Arc<Agent>, RegistrationError> {
        if self.phase != Phase::Open {
            return Err(RegistrationError::Closed(agent.name.to_string()));
        }
        if self.agents.iter().any(|a| a.name == agent.name) {
            return Err(RegistrationError::DuplicateAgent(agent.name.to_string()));
        }
        if let Some(admission) = self.waiting.bounds() {
            waiting::check_registration(&admission, &self.agents, &agent)?;
        }
        agent.index = u32::try_from(self.agents.len()).expect("fewer than 2^32 agents");
        let agent = Arc::new(agent);
        self.scheduler.add_agent(&agent);
        Arc::make_mut(&mut self.agents).push(agent.clone());
        Ok(agent)
    }

    /// The registered agents, by index.
    pub(crate) fn agents(&self) -> &[Arc<Agent>] {
        &self.agents
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    // === publishing ===

    /// Admits an artifact routed as `routed` before it is stored: counts it
    /// dispatching and charges the subscriptions that take it. External publishes
    /// are refused once shutdown began (atomically with shutdown's drain, which waits
    /// for every dispatching artifact) and held to the admission bounds.
    pub(crate) fn reserve(&mut self, routed: &Routed, source: Source) -> Result<(), Refused> {
        if source == Source::External {
            if self.phase != Phase::Open {
                return Err(Refused::Closed);
            }
            if let Some(full) = self.waiting.full_for(&self.agents, routed.takes()) {
                return Err(Refused::Full(full));
            }
        }
        if source != Source::Released {
            self.dispatching += 1;
        }
        self.waiting.charge_takes(routed.takes());
        Ok(())
    }

    /// Undoes a reservation whose artifact was not stored.
    pub(crate) fn cancel(&mut self, routed: &Routed) -> Ready {
        let mut ready = Ready::default();
        self.dispatching -= 1;
        self.waiting.release_takes(routed.takes());
        ready.room = self.room_watchers > 0;
        self.settle(&mut ready);
        ready
    }

    /// Creates a run of `units` units, counted live from now.
    #[expect(
        clippy::too_many_arguments,
        reason = "one step's whole context, private"
    )]
    fn schedule(
        &mut self,
        agent: &Arc<Agent>,
        subscription: u32,
        input: RunInput,
        units: usize,
        cause: Cause<'_>,
        joined: Option<JoinDone>,
        ready: &mut Ready,
    ) {
        let charge = self.waiting.is_counting().then_some((subscription, units));
        let fence = self.fence_of(agent.index, subscription, &input);
        let run = Run {
            ticket: Ticket {
                id: 0,
                agent: agent.index,
                slot: false,
                charge,
            },
            agent: agent.clone(),
            subscription,
            fence,
            retries: None,
            input,
            cause: cause.span(),
            joined: None,
        };
        match self.scheduler.schedule(run) {
            Scheduled::Start(mut run) => {
                run.joined = joined;
                ready.start.push(run);
            }
            Scheduled::Refused(run) => {
                ready
                    .completed
                    .extend(joined.map(|done| (agent.clone(), done)));
                ready.refused.push(run);
            }
            Scheduled::Queued => ready
                .completed
                .extend(joined.map(|done| (agent.clone(), done))),
        }
    }

    // === time ===

    /// Everything due at `now`: deferred artifacts whose visibility began (not once
    /// shutdown began: those stay undelivered, reported), join groups whose window
    /// ended, batches whose timeout passed.
    pub(crate) fn tick(&mut self, now: Now) -> Ready {
        let mut ready = Ready::default();
        if self.phase == Phase::Open {
            ready.released = self
                .deferred
                .poll_due(now.mono)
                .into_iter()
                .map(|(at, held)| Released { at, held })
                .collect();
            self.dispatching += ready.released.len();
        }
        let expired = self.joiner.poll_expired(now.mono);
        self.discarded(expired, &mut ready);
        let due = self.batcher.poll_expired(now.mono);
        self.schedule_batches(due, now, &mut ready);
        self.settle(&mut ready);
        ready
    }

    /// Flushes every batch with `reason`.
    pub(crate) fn flush_all(&mut self, reason: FlushReason, now: Now) -> Ready {
        let mut ready = Ready::default();
        let batches = self.batcher.flush_all(reason, now.mono);
        self.schedule_batches(batches, now, &mut ready);
        self.settle(&mut ready);
        ready
    }

    fn schedule_batches(
        &mut self,
        batches: Vec<flock_batch::Batch<BatchKey, Unit>>,
        now: Now,
        ready: &mut Ready,
    ) {
        for batch in batches {
            ready.flushed.0 += 1;
            ready.flushed.1 += batch
                .items
                .iter()
                .map(|u| u.artifacts().len())
                .sum::<usize>();
            let agent = self.agents[batch.key.agent as usize].clone();
            if self.events {
                ready
                    .events
                    .push(report::batch_flushed(&agent, &batch, now));
            }
            let subscription = batch.key.subscription;
            let units = batch.items.len();
            self.schedule(
                &agent,
                subscription,
                RunInput::Batch(batch),
                units,
                Cause::None,
                None,
                ready,
            );
        }
    }

    /// The earliest instant something becomes due.
    pub(crate) fn next_deadline(&self) -> Option<std::time::Instant> {
        if self.phase == Phase::Drained {
            return None;
        }
        let deferred = (self.phase == Phase::Open)
            .then(|| self.deferred.next_deadline())
            .flatten();
        [
            self.batcher.next_deadline(),
            self.joiner.next_deadline(),
            deferred,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // === idle and shutdown ===

    /// Nothing dispatching and no run live.
    pub(crate) fn is_quiet(&self) -> bool {
        self.scheduler.live() == 0 && self.dispatching == 0
    }

    fn settle(&self, ready: &mut Ready) {
        ready.quiet = self.idle_watchers > 0 && self.is_quiet();
    }

    /// Someone waits for quiet until [`Core::unwatch_idle`].
    pub(crate) fn watch_idle(&mut self) {
        self.idle_watchers += 1;
    }

    pub(crate) fn unwatch_idle(&mut self) {
        self.idle_watchers -= 1;
    }

    /// A publisher waits for room until [`Core::unwatch_room`].
    pub(crate) fn watch_room(&mut self) {
        self.room_watchers += 1;
    }

    pub(crate) fn unwatch_room(&mut self) {
        self.room_watchers -= 1;
    }

    /// Refuses external publishes from now on; wakes publishers waiting for room.
    pub(crate) fn begin_shutdown(&mut self) -> Ready {
        if self.phase == Phase::Open {
            self.phase = Phase::Closing;
        }
        Ready {
            room: true,
            ..Ready::default()
        }
    }

    /// Ends shutdown if nothing is left to run: incomplete join groups are discarded
    /// (or, when `keep`, left: a durable store keeps their artifacts unconsumed for
    /// whoever collects them next) and artifacts whose visibility has not begun are
    /// counted. `None` while a batch waits or anything is dispatching or live.
    pub(crate) fn try_drain(&mut self, now: Now, keep: bool) -> Option<Drained> {
        if self.phase == Phase::Drained {
            return Some(Drained::default());
        }
        if !self.is_quiet() || !self.batcher.is_empty() {
            return None;
        }
        self.phase = Phase::Drained;
        let mut ready = Ready::default();
        let incomplete = self.joiner.drain(DiscardReason::Shutdown, now.mono);
        let mut left = (0, 0);
        if keep {
            left.0 = incomplete.len();
            left.1 = incomplete.iter().map(|d| d.items.len()).sum();
        } else {
            self.discarded(incomplete, &mut ready);
        }
        Some(Drained {
            discarded: ready.discarded,
            left,
            events: ready.events,
            deferred_undelivered: self.deferred.len(),
        })
    }
}
