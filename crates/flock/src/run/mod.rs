//! One agent run: its attempts under the agent's retry policy, publishing the
//! outputs through the [`Host`], or, when every attempt failed, keeping the inputs
//! as a failed run and publishing a `WorkflowError`.
//!
//! A run knows the runtime only through [`Host`]: it reads the clock, views the
//! blackboard, publishes outputs and records failures there, and never touches the
//! runtime's state.

mod attempt;
mod outputs;

use std::{
    future::Future,
    sync::{Arc, atomic::AtomicBool},
};

use flock_core::{
    AgentIdentity, Artifact, ArtifactId, BlackboardView, Payload, PublishError, StoreError,
    WorkflowError,
};
use flock_engines::{EngineContext, EngineError, RunFailure};
use tokio::sync::OnceCell;
use uuid::Uuid;

pub(crate) use attempt::observe;

pub(crate) use crate::work::Origin;
use crate::{
    agent::Agent,
    clock::Now,
    failed::{FailedRun, FailureKind},
    spans,
    work::Work,
};

/// What a run needs from the runtime.
pub(crate) trait Host: Send + Sync {
    /// Now, on the runtime's clock.
    fn now(&self) -> Now;
    /// The blackboard as `identity` sees it.
    fn view(&self, identity: Arc<AgentIdentity>) -> BlackboardView;
    /// Stores a successful run's outputs together with the consumption of its
    /// inputs (one fact, where the store is durable), then dispatches the outputs.
    ///
    /// # Errors
    /// The store's error: nothing was stored or dispatched.
    fn commit_run(
        &self,
        agent: &Agent,
        origin: Origin,
        run_id: Uuid,
        work: &Work,
        outputs: Vec<Arc<Artifact>>,
    ) -> impl Future<Output = Result<(), PublishError>> + Send;
    /// Keeps a failed run (durably, with its inputs consumed, where the store is
    /// durable), then publishes its `WorkflowError`.
    fn commit_failure(
        &self,
        run: FailedRun,
        error: Arc<Artifact>,
    ) -> impl Future<Output = ()> + Send;
}

/// The id of `agent`'s run over `inputs`: a UUID (version 8) holding the 128-bit
/// XXH3 hash of the agent's name and the input ids, so every attempt, a retry of the
/// failed run, and a re-run after a crash (in any process of the same or a later
/// build: XXH3's output is fixed by its specification) see the same id. Also the id
/// recorded for a discarded join group. Not a cryptographic hash: ids name runs,
/// they do not authenticate them.
pub(crate) fn run_id_of(agent: &str, inputs: impl IntoIterator<Item = ArtifactId>) -> Uuid {
    // One contiguous input: XXH3 hashes it in a single pass (streaming 16 bytes at a
    // time costs several times more).
    let inputs = inputs.into_iter();
    let mut bytes = Vec::with_capacity(agent.len() + 1 + 16 * inputs.size_hint().0);
    bytes.extend_from_slice(agent.as_bytes());
    bytes.push(0xff);
    for id in inputs {
        bytes.extend_from_slice(id.0.as_bytes());
    }
    Uuid::new_v8(xxhash_rust::xxh3::xxh3_128(&bytes).to_le_bytes())
}

/// The id of `agent`'s run over `work`'s inputs ([`run_id_of`]).
pub(crate) fn run_id(agent: &str, work: &Work) -> Uuid {
    run_id_of(agent, work.artifacts().iter().map(|a| a.id))
}

/// An agent's component lifecycle: runtime state, kept beside the declaration.
#[derive(Debug, Default)]
pub(crate) struct Lifecycle {
    /// Set once every component's `initialize` succeeded.
    pub(crate) initialized: OnceCell<()>,
    /// Set once `on_terminate` ran.
    pub(crate) terminated: AtomicBool,
}

/// The correlation id all inputs share, if they share one.
pub(crate) fn common_correlation(artifacts: &[Arc<Artifact>]) -> Option<Uuid> {
    let first = artifacts.first()?.correlation_id()?;
    artifacts
        .iter()
        .all(|a| a.correlation_id() == Some(first))
        .then_some(first)
}

/// How a run ended.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// Its outputs are on the blackboard.
    Done {
        /// How many.
        outputs: usize,
    },
    /// In a cluster: the run's unit moved to another process before it committed;
    /// the new owner runs the inputs again.
    Moved,
    /// It is kept as a failed run, and a `WorkflowError` was published.
    Failed {
        /// The failed run's id.
        failed_run: Uuid,
        /// The last error.
        error: String,
    },
}

/// Runs `work` on `agent`: up to the retry policy's attempts, then the outputs or a
/// `WorkflowError` and a failed run.
pub(crate) async fn execute<H: Host>(
    host: &H,
    agent: &Arc<Agent>,
    origin: Origin,
    life: &Lifecycle,
    work: &Work,
) -> Outcome {
    let correlation_id = common_correlation(work.artifacts());
    let run_id = run_id(&agent.name, work);
    let mut ctx = EngineContext::new(agent.name.clone())
        .with_run_id(run_id)
        .with_correlation_id(correlation_id)
        .with_blackboard(host.view(agent.identity.clone()));
    if let Work::Batch(flushed) = work {
        ctx = ctx.with_batch(flushed.metrics());
    }
    let max_attempts = agent.retry.max_attempts();
    let mut consumed = false;
    let mut attempt = 0;
    let error = loop {
        attempt += 1;
        ctx = ctx.with_attempt(attempt);
        let result = match attempt::once(agent, life, &ctx, work, &mut consumed).await {
            Ok(payloads) => {
                let outputs = outputs::artifacts(host.now(), agent, payloads, correlation_id, work);
                match host
                    .commit_run(agent, origin, run_id, work, outputs.clone())
                    .await
                {
                    Ok(()) => Ok(outputs),
                    Err(PublishError::Store(StoreError::Fenced { unit, .. })) => {
                        // In a cluster: the unit moved to another process, which runs
                        // these inputs again. Not a failure of this run.
                        tracing::info!(
                            agent = %agent.name,
                            %unit,
                            "the unit moved to another process before this run committed; it runs the inputs there"
                        );
                        return Outcome::Moved;
                    }
                    Err(error) => Err(EngineError::new(format!(
                        "the run's outputs could not be stored: {error}"
                    ))),
                }
            }
            Err(error) => Err(error),
        };
        match result {
            Ok(outputs) => {
                for artifact in &outputs {
                    for component in &agent.components {
                        let hook = component.after_publish(&ctx, artifact);
                        observe(component.as_ref(), "after_publish", hook).await;
                    }
                }
                return Outcome::Done {
                    outputs: outputs.len(),
                };
            }
            Err(error) => {
                let will_retry = attempt < max_attempts;
                let failure = RunFailure::new(&error, attempt, will_retry);
                for component in &agent.components {
                    let hook = component.on_error(&ctx, &failure);
                    observe(component.as_ref(), "on_error", hook).await;
                }
                if !will_retry {
                    break error;
                }
                let delay = agent.retry.delay_after(attempt);
                tracing::warn!(
                    agent = %agent.name,
                    attempt,
                    max_attempts,
                    retry_in_ms = spans::duration_ms(delay),
                    error = %error,
                    "agent run failed; retrying"
                );
                tokio::time::sleep(delay).await;
            }
        }
    };
    fail(
        host,
        agent,
        origin,
        work.clone(),
        FailureKind::Failed,
        error.to_string(),
        attempt,
    )
    .await
}

/// Gives up on `work`: keeps it as a failed run, then publishes the `WorkflowError`,
/// visible only to whoever could see every input (the message may quote them).
pub(crate) async fn fail<H: Host>(
    host: &H,
    agent: &Arc<Agent>,
    origin: Origin,
    work: Work,
    kind: FailureKind,
    message: String,
    attempts: u32,
) -> Outcome {
    spans::run_failed(&tracing::Span::current(), &message);
    let input_ids: Vec<ArtifactId> = work.artifacts().iter().map(|a| a.id).collect();
    tracing::error!(
        agent = %agent.name,
        error = %message,
        attempts,
        inputs = input_ids.len(),
        "agent run failed; publishing WorkflowError, inputs kept in Flock::failed_runs()"
    );
    let report = WorkflowError {
        agent: agent.name.to_string(),
        error: message.clone(),
        attempts,
        input_ids,
        flush_reason: work.flush_reason(),
    };
    let now = host.now();
    let artifact = outputs::derived(
        now,
        agent,
        Payload::new(report),
        outputs::inputs_visibility(&work),
        common_correlation(work.artifacts()),
    );
    let id = artifact.id;
    let run_id = run_id(&agent.name, &work);
    let failed = FailedRun::new(
        agent.clone(),
        origin,
        run_id,
        work,
        kind,
        message.clone(),
        attempts,
        id,
        now.wall,
    );
    let failed_run = failed.id;
    host.commit_failure(failed, artifact).await;
    Outcome::Failed {
        failed_run,
        error: message,
    }
}

/// Refuses `work` (the agent's circuit breaker is open): a failed run of kind
/// `CircuitOpen`, never executed.
pub(crate) async fn refuse<H: Host>(
    host: &H,
    agent: &Arc<Agent>,
    origin: Origin,
    work: Work,
) -> Outcome {
    let max = agent.max_iterations.map_or(0, |n| n.get());
    let message = format!(
        "circuit breaker open: agent '{}' reached max_iterations {max} runs since the flock \
         was last idle; this run was refused and its inputs are kept in Flock::failed_runs()",
        agent.name
    );
    fail(
        host,
        agent,
        origin,
        work,
        FailureKind::CircuitOpen,
        message,
        0,
    )
    .await
}
