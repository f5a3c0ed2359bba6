//! Starting runs: each in a task of its own, its ticket given back to the core
//! exactly once, whatever happens in it.

use std::{panic::AssertUnwindSafe, sync::Arc};

use flock_core::{Visibility, panic_message};
use futures::FutureExt;
use tracing::Instrument;

use super::Runtime;
use crate::{
    agent::Agent,
    decision::{Run, Ticket},
    events::FlockEvent,
    failed::FailureKind,
    run::{self, Origin, Outcome},
    spans,
};

impl Runtime {
    /// Spawns a run that holds a slot; its ticket comes back to the core when it
    /// finishes, whatever happens in it.
    pub(super) fn spawn_run(self: &Arc<Self>, run: Run) {
        let Run {
            ticket,
            agent,
            subscription,
            fence,
            retries,
            input,
            cause,
            joined,
        } = run;
        let origin = Origin {
            subscription,
            fence,
            retries,
        };
        let id = ticket.id;
        let runtime = self.clone();
        let life = self.lifecycle(agent.index);
        let ticket = TicketGuard::new(self.clone(), ticket);
        tokio::spawn(async move {
            let (outcome, visibility) = {
                // Moved into this block, which the run's spans do not outlive.
                let cause = cause;
                // Built here, not under the core's lock: proportional to the batch, and
                // the run is already counted live.
                let work = input.into_work();
                let recovered = runtime.was_replayed(&work);
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
                        spans::run(&join, &agent, &work, recovered)
                    }
                    None => spans::run(&cause, &agent, &work, recovered),
                };
                let visibility = runtime.events_on().then(|| {
                    let visibility =
                        Visibility::derived_from(work.artifacts().iter().map(|a| a.visibility()));
                    runtime.send(FlockEvent::RunStarted {
                        run: id,
                        agent: agent.name.to_string(),
                        inputs: work.artifacts().len(),
                        flush_reason: work.flush_reason(),
                        visibility: visibility.clone(),
                    });
                    visibility
                });
                // Boxed: the engine's future can be large, and the task holding it
                // inline would be copied whole on every spawn.
                let executed = AssertUnwindSafe(
                    Box::pin(run::execute(&runtime, &agent, origin, &life, &work))
                        .instrument(span.clone()),
                )
                .catch_unwind()
                .await;
                let outcome = match executed {
                    Ok(outcome) => outcome,
                    Err(panic) => {
                        // User code outside every contained call (a component's name in
                        // an error message, say): the run fails, its slot is released
                        // below.
                        let message = format!("run panicked: {}", panic_message(panic.as_ref()));
                        run::fail(
                            &runtime,
                            &agent,
                            origin,
                            work,
                            FailureKind::Failed,
                            message,
                            0,
                        )
                        .instrument(span)
                        .await
                    }
                };
                (outcome, visibility)
            };
            // The run's span (`batch.flush` or `agent.run`) and its cause ended
            // with the block above, before the run stops counting as in flight: a
            // shutdown waiting for the runs finds them ended and writes them (a
            // span ending after the pipeline stopped would be lost; issue 17).
            runtime.ended(id, &agent, outcome, visibility);
            ticket.finish();
        });
    }

    /// Whether recovery collected any of `work`'s inputs again (forgetting them:
    /// each is reported with its first run).
    fn was_replayed(&self, work: &crate::work::Work) -> bool {
        let mut replayed = self.replayed.lock();
        if replayed.is_empty() {
            return false;
        }
        let before = replayed.len();
        for artifact in work.artifacts() {
            replayed.remove(&artifact.id);
        }
        replayed.len() < before
    }

    /// Records a run the circuit breaker refused.
    pub(super) fn spawn_refusal(self: &Arc<Self>, run: Run) {
        let runtime = self.clone();
        let id = run.ticket.id;
        let ticket = TicketGuard::new(self.clone(), run.ticket);
        let Run {
            agent,
            subscription,
            fence,
            retries,
            input,
            cause,
            ..
        } = run;
        let origin = Origin {
            subscription,
            fence,
            retries,
        };
        tokio::spawn(async move {
            let work = input.into_work();
            let recovered = runtime.was_replayed(&work);
            let span = spans::run(&cause, &agent, &work, recovered);
            drop(cause);
            let visibility = runtime
                .events_on()
                .then(|| Visibility::derived_from(work.artifacts().iter().map(|a| a.visibility())));
            // The run's span ends with this future, before the ticket goes back.
            let outcome = run::refuse(&runtime, &agent, origin, work)
                .instrument(span)
                .await;
            runtime.ended(id, &agent, outcome, visibility);
            ticket.finish();
        });
    }
}

impl Runtime {
    /// A run ended: its event (when events are on, with the visibility computed
    /// at its start), and whoever waits for it.
    fn ended(&self, run: u64, agent: &Agent, outcome: Outcome, visibility: Option<Visibility>) {
        if let Some(waiter) = self.waiters.lock().remove(&run) {
            let _ = waiter.send(outcome.clone());
        }
        if let Some(visibility) = visibility {
            self.send(ended(run, agent, outcome, visibility));
        }
    }
}

/// The event that says how a run ended.
fn ended(run: u64, agent: &Agent, outcome: Outcome, visibility: Visibility) -> FlockEvent {
    let agent = agent.name.to_string();
    match outcome {
        Outcome::Done { outputs } => FlockEvent::RunFinished {
            run,
            agent,
            outputs,
            visibility,
        },
        Outcome::Failed { failed_run, error } => FlockEvent::RunFailed {
            run,
            agent,
            error,
            failed_run,
            visibility,
        },
        Outcome::Moved => FlockEvent::RunMoved {
            run,
            agent,
            visibility,
        },
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
            // Whoever waits for the run learns that it will not end.
            self.runtime.waiters.lock().remove(&ticket.id);
            let ready = self.runtime.core.lock().abandon(ticket);
            self.runtime.act(ready);
        }
    }
}
