//! The core's side of runs: running a failed run again, and a run's ticket coming
//! back (finished, or abandoned with its task).

use tracing::Span;

use super::{Core, Phase, Ready, Run, RunInput, Scheduled, Ticket};
use crate::work::Work;

impl Core {
    /// Runs `work` for `agent` (a failed run again, or a direct invocation), not
    /// counted by admission; returns what to carry out and the run's id. `None`
    /// once shutdown began.
    pub(crate) fn schedule_again(
        &mut self,
        agent: u32,
        work: Work,
        retries: Option<uuid::Uuid>,
    ) -> Option<(Ready, u64)> {
        if self.phase != Phase::Open {
            return None;
        }
        let mut ready = Ready::default();
        let agent = self.agents[agent as usize].clone();
        let subscription = work.subscription().unwrap_or(0);
        let input = RunInput::Again(work);
        let fence = self.fence_of(agent.index, subscription, &input);
        let run = Run {
            ticket: Ticket {
                id: 0,
                agent: agent.index,
                slot: false,
                charge: None,
            },
            agent,
            subscription,
            fence,
            retries,
            input,
            cause: Span::none(),
            joined: None,
        };
        match self.scheduler.schedule(run) {
            Scheduled::Start(run) => ready.start.push(run),
            Scheduled::Refused(run) => ready.refused.push(run),
            Scheduled::Queued => {}
        }
        Some((ready, self.scheduler.last_id()))
    }

    /// A run finished: its charge is released and its slot goes to the next queued
    /// run of its agent.
    pub(crate) fn finish(&mut self, ticket: Ticket) -> Ready {
        let mut ready = Ready::default();
        self.release(&ticket, &mut ready);
        ready.start.extend(self.scheduler.finish(&ticket));
        self.settle(&mut ready);
        ready
    }

    /// A run's task was dropped unfinished (the tokio runtime is shutting down): its
    /// agent's queued runs are dropped with it.
    pub(crate) fn abandon(&mut self, ticket: Ticket) -> Ready {
        let mut ready = Ready::default();
        self.release(&ticket, &mut ready);
        for run in self.scheduler.abandon(&ticket) {
            self.release(&run.ticket, &mut ready);
        }
        self.settle(&mut ready);
        ready
    }

    pub(super) fn release(&mut self, ticket: &Ticket, ready: &mut Ready) {
        if let Some((subscription, units)) = ticket.charge {
            self.waiting.release(ticket.agent, subscription, units);
            ready.room |= self.room_watchers > 0;
        }
    }
}
