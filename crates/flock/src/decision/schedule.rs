//! Runs: counted from the moment they are created until they finish, started in
//! the order they were scheduled within each agent's `max_concurrency` slots, and
//! held to each agent's circuit breaker.

use std::{collections::VecDeque, num::NonZeroUsize, sync::Arc};

use flock_batch::Batch;
use tracing::Span;

use crate::{
    agent::Agent,
    work::{BatchKey, Unit, Work},
};

/// Identifies a live run to the core: what it holds, to give back when it finishes.
#[derive(Debug)]
#[must_use = "a ticket must come back to the core, or the run counts as live forever"]
pub(crate) struct Ticket {
    /// Identifies the run within the flock (in creation order).
    pub(crate) id: u64,
    pub(crate) agent: u32,
    /// Whether the run holds one of its agent's slots (a refused run does not).
    pub(crate) slot: bool,
    /// Admission charge to release: (subscription, units).
    pub(crate) charge: Option<(u32, usize)>,
}

/// What a run will process, as the core hands it over: the driver builds the run's
/// input from it outside the lock.
pub(crate) enum RunInput {
    /// A flushed batch.
    Batch(Batch<BatchKey, Unit>),
    /// One unit, delivered directly.
    Single(Unit),
    /// The work of a failed run, again.
    Again(Work),
}

impl RunInput {
    /// The work a run executes.
    pub(crate) fn into_work(self) -> Work {
        match self {
            Self::Batch(batch) => Work::Batch(crate::work::Flushed::new(batch)),
            Self::Single(unit) => Work::Single(unit.into_vec()),
            Self::Again(work) => work,
        }
    }
}

/// The span a run follows from, read only when a run is created: most publishes
/// create none, and reading the current span costs on every one.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cause<'a> {
    /// The caller's current span (a publish).
    Current,
    /// This span (an output's `artifact.publish`).
    Span(&'a Span),
    /// None (recovery, a cluster's feed, tests).
    None,
}

impl Cause<'_> {
    /// The span itself.
    pub(crate) fn span(self) -> Span {
        match self {
            Self::Current => Span::current(),
            Self::Span(span) => span.clone(),
            Self::None => Span::none(),
        }
    }
}

/// A run, counted live: to start, or (when refused) to record as failed.
pub(crate) struct Run {
    pub(crate) ticket: Ticket,
    pub(crate) agent: Arc<Agent>,
    /// The subscription that took the inputs.
    pub(crate) subscription: u32,
    /// In a cluster: the epoch of its unit's lease when the run was created, which
    /// its commit is fenced with (`None`: the unit is not this process's).
    pub(crate) fence: Option<u64>,
    /// The failed run it retries, forgotten in its commit.
    pub(crate) retries: Option<uuid::Uuid>,
    pub(crate) input: RunInput,
    /// The span in scope where the run was created (an output's `artifact.publish`),
    /// its span's parent.
    pub(crate) cause: Span,
    /// The join group whose completion created it: (subscription, key, group size,
    /// wait), for the `join.complete` span.
    pub(crate) joined: Option<crate::decision::JoinDone>,
}

/// One agent's slots, backlog and breaker.
struct Slots {
    free: usize,
    /// Runs waiting for a slot, in scheduling order.
    backlog: VecDeque<Run>,
    /// Runs scheduled since the flock was last idle (the circuit breaker's count).
    since_idle: usize,
    max_iterations: Option<NonZeroUsize>,
}

/// What scheduling a run did with it.
pub(crate) enum Scheduled {
    /// It holds a slot: start it.
    Start(Run),
    /// The circuit breaker refused it: record it as failed.
    Refused(Run),
    /// It waits for a slot.
    Queued,
}

/// Every agent's slots, and the count of live runs.
#[derive(Default)]
pub(crate) struct Scheduler {
    agents: Vec<Slots>,
    /// Runs created and not finished: started, queued, or refused and not yet
    /// recorded.
    live: usize,
    /// The next run's id.
    next_id: u64,
}

impl Scheduler {
    pub(crate) fn add_agent(&mut self, agent: &Agent) {
        self.agents.push(Slots {
            free: agent.max_concurrency.get(),
            backlog: VecDeque::new(),
            since_idle: 0,
            max_iterations: agent.max_iterations,
        });
    }

    /// The id of the run scheduled last.
    pub(crate) fn last_id(&self) -> u64 {
        self.next_id
    }

    /// Runs created and not finished.
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// Counts `run` live and gives it a slot, queues it behind earlier runs of its
    /// agent, or (circuit breaker) refuses it.
    pub(crate) fn schedule(&mut self, mut run: Run) -> Scheduled {
        self.live += 1;
        self.next_id += 1;
        run.ticket.id = self.next_id;
        let slots = &mut self.agents[run.ticket.agent as usize];
        slots.since_idle += 1;
        if slots
            .max_iterations
            .is_some_and(|max| slots.since_idle > max.get())
        {
            run.ticket.slot = false;
            return Scheduled::Refused(run);
        }
        if slots.backlog.is_empty() && slots.free > 0 {
            slots.free -= 1;
            run.ticket.slot = true;
            Scheduled::Start(run)
        } else {
            run.ticket.slot = true;
            slots.backlog.push_back(run);
            Scheduled::Queued
        }
    }

    /// A run finished: its slot goes to the agent's next queued run (returned, to
    /// start) or becomes free. When no run is left, the breakers count from zero.
    pub(crate) fn finish(&mut self, ticket: &Ticket) -> Option<Run> {
        self.live -= 1;
        let slots = &mut self.agents[ticket.agent as usize];
        let next = if ticket.slot {
            let next = slots.backlog.pop_front();
            if next.is_none() {
                slots.free += 1;
            }
            next
        } else {
            None
        };
        self.reset_if_idle();
        next
    }

    /// A run was dropped unfinished (its task cancelled: the tokio runtime is
    /// shutting down). Its agent's queued runs can no longer start either: they are
    /// returned, uncounted, so their charges can be released.
    pub(crate) fn abandon(&mut self, ticket: &Ticket) -> Vec<Run> {
        self.live -= 1;
        let slots = &mut self.agents[ticket.agent as usize];
        let dropped: Vec<Run> = if ticket.slot {
            slots.free += 1;
            slots.backlog.drain(..).collect()
        } else {
            Vec::new()
        };
        self.live -= dropped.len();
        self.reset_if_idle();
        dropped
    }

    /// Drops the queued runs `drop` names (in a cluster, runs of units that moved to
    /// another process): returned, uncounted, so their charges can be released.
    pub(crate) fn drop_queued(&mut self, mut drop: impl FnMut(&Run) -> bool) -> Vec<Run> {
        let mut dropped = Vec::new();
        for slots in &mut self.agents {
            let (gone, kept): (Vec<Run>, Vec<Run>) = slots.backlog.drain(..).partition(&mut drop);
            slots.backlog = kept.into();
            dropped.extend(gone);
        }
        self.live -= dropped.len();
        self.reset_if_idle();
        dropped
    }

    fn reset_if_idle(&mut self) {
        if self.live == 0 {
            for slots in &mut self.agents {
                slots.since_idle = 0;
            }
        }
    }
}
