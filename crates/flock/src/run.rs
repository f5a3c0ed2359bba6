//! One agent run: calling the engine (panics contained), checking its outputs against
//! the agent's declaration, publishing them, or publishing a `WorkflowError`.

use std::{panic::AssertUnwindSafe, sync::Arc};

use flock_batch::Batch;
use flock_core::{Artifact, BlackboardView, Payload, Visibility, WorkflowError, panic_message};
use flock_engines::{BatchInputs, BatchMetrics, EngineContext, EngineError, Inputs, Outputs};
use futures::FutureExt;
use tracing::{Instrument, field::Empty};
use uuid::Uuid;

use crate::{
    agent::Agent,
    orchestrator::{BatchKey, Shared},
};

/// One item of delivery: an artifact, or the complete group of a join. A batch of a
/// plain subscription holds only `One` (no allocation per artifact); a batch of a
/// join subscription holds only `Group`s, each counting as one item.
pub(crate) enum Unit {
    /// One artifact.
    One(Arc<Artifact>),
    /// A join's complete group: slot order, then arrival order.
    Group(Box<[Arc<Artifact>]>),
}

impl Unit {
    /// The unit's artifacts.
    pub(crate) fn artifacts(&self) -> &[Arc<Artifact>] {
        match self {
            Self::One(artifact) => std::slice::from_ref(artifact),
            Self::Group(group) => group,
        }
    }

    /// The unit's artifacts, for a direct (unbatched) run.
    pub(crate) fn into_vec(self) -> Vec<Arc<Artifact>> {
        match self {
            Self::One(artifact) => vec![artifact],
            Self::Group(group) => group.into_vec(),
        }
    }
}

/// What a run processes.
pub(crate) enum Work {
    /// One artifact, or one complete group, delivered directly.
    Single(Vec<Arc<Artifact>>),
    /// A flushed batch.
    Batch(Batch<BatchKey, Unit>),
}

impl Work {
    /// Every input artifact, flattened, in delivery order.
    fn artifacts(&self) -> Box<dyn Iterator<Item = &Arc<Artifact>> + '_> {
        match self {
            Self::Single(artifacts) => Box::new(artifacts.iter()),
            Self::Batch(batch) => Box::new(batch.items.iter().flat_map(Unit::artifacts)),
        }
    }
}

/// The engine's view of a flushed batch: its groups kept as groups.
fn batch_inputs(items: Vec<Unit>) -> BatchInputs {
    // A batch is homogeneous: a join subscription batches only groups.
    if matches!(items.first(), Some(Unit::Group(_))) {
        BatchInputs::from_groups(items.into_iter().map(Unit::into_vec).collect())
    } else {
        BatchInputs::new(
            items
                .into_iter()
                .map(|u| match u {
                    Unit::One(artifact) => artifact,
                    Unit::Group(_) => unreachable!("a batch of artifacts holds no group"),
                })
                .collect(),
        )
    }
}

/// The span a run executes in: `batch.flush` for a batch (with the flush's figures),
/// `agent.run` otherwise.
pub(crate) fn span_for(agent: &Agent, work: &Work) -> tracing::Span {
    match work {
        Work::Single(inputs) => tracing::info_span!(
            "agent.run",
            agent = %agent.name,
            inputs = int(inputs.len()),
            otel.status_code = Empty,
            error = Empty,
        ),
        Work::Batch(batch) => {
            let span = tracing::info_span!(
                "batch.flush",
                agent = %agent.name,
                subscription_index = i64::from(batch.key.subscription),
                batch_size = int(batch.items.len()),
                artifacts = int(batch.items.iter().map(|u| u.artifacts().len()).sum()),
                flush_reason = batch.reason.as_str(),
                configured_size = Empty,
                configured_timeout_ms = Empty,
                efficiency = batch.efficiency(),
                wait_ms = duration_ms(batch.wait()),
                otel.status_code = Empty,
                error = Empty,
            );
            if let Some(size) = batch.spec.max_size() {
                span.record("configured_size", int(size.get()));
            }
            if let Some(timeout) = batch.spec.max_wait() {
                span.record("configured_timeout_ms", duration_ms(timeout));
            }
            span
        }
    }
}

/// Span attributes are recorded as `i64`: tracing-opentelemetry exports `u64`
/// values as strings, and the trace file must hold numbers.
/// A count as a span attribute: `i64`, which exporters keep a number.
pub(crate) fn int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Milliseconds as a span attribute.
pub(crate) fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The correlation id all inputs share, if they share one.
fn common_correlation<'a>(mut artifacts: impl Iterator<Item = &'a Arc<Artifact>>) -> Option<Uuid> {
    let first = artifacts.next()?.correlation_id?;
    artifacts
        .all(|a| a.correlation_id == Some(first))
        .then_some(first)
}

pub(crate) async fn execute(shared: &Arc<Shared>, agent: &Arc<Agent>, work: Work) {
    // The semaphore is never closed, so acquiring only waits.
    let Ok(_permit) = agent.permits.acquire().await else {
        return;
    };
    let input_ids: Vec<_> = work.artifacts().map(|a| a.id).collect();
    let correlation_id = common_correlation(work.artifacts());
    let clock_source = shared.clone();
    let view = BlackboardView::new(
        shared.store.clone(),
        agent.identity.clone(),
        Arc::new(move || clock_source.clock.now()),
    );
    let mut ctx = EngineContext::new(agent.name.clone())
        .with_correlation_id(correlation_id)
        .with_blackboard(view);
    let flush_reason = match &work {
        Work::Batch(batch) => Some(batch.reason),
        Work::Single(_) => None,
    };
    let engine = agent.engine.clone();
    let result = match work {
        Work::Single(artifacts) => {
            let span = tracing::info_span!(
                "engine.evaluate",
                engine = engine.name(),
                otel.status_code = Empty
            );
            AssertUnwindSafe(engine.evaluate(&ctx, Inputs::new(artifacts)))
                .catch_unwind()
                .instrument(span)
                .await
        }
        Work::Batch(batch) => {
            ctx = ctx.with_batch(BatchMetrics {
                batch_size: batch.items.len(),
                flush_reason: batch.reason,
                configured_size: batch.spec.max_size().map(|n| n.get()),
                configured_timeout: batch.spec.max_wait(),
                efficiency: batch.efficiency(),
                wait: batch.wait(),
                subscription_index: batch.key.subscription as usize,
            });
            // Named without "batch": the guide's query selects flushes by
            // `name LIKE '%batch%'`, and only `batch.flush` must match it.
            let span = tracing::info_span!(
                "engine.evaluate",
                engine = engine.name(),
                batch = true,
                items = int(batch.items.len()),
                otel.status_code = Empty,
            );
            AssertUnwindSafe(engine.evaluate_batch(&ctx, batch_inputs(batch.items)))
                .catch_unwind()
                .instrument(span)
                .await
        }
    };
    let outcome = match result {
        Ok(Ok(outputs)) => check_outputs(agent, outputs),
        Ok(Err(error)) => Err(error),
        Err(panic) => Err(EngineError::new(format!(
            "engine panicked: {}",
            panic_message(panic.as_ref())
        ))),
    };
    match outcome {
        Ok(outputs) => {
            for (payload, visibility) in outputs {
                publish_output(shared, agent, payload, visibility, correlation_id).await;
            }
        }
        Err(error) => {
            let message = error.to_string();
            let span = tracing::Span::current();
            span.record("otel.status_code", "ERROR");
            span.record("error", message.as_str());
            tracing::error!(agent = %agent.name, error = %message, inputs = input_ids.len(), "agent run failed; publishing WorkflowError");
            let report = WorkflowError {
                agent: agent.name.to_string(),
                error: message,
                attempts: ctx.attempt,
                input_ids,
                flush_reason,
            };
            let visibility = Visibility::Public;
            publish_output(
                shared,
                agent,
                Payload::new(report),
                visibility,
                correlation_id,
            )
            .await;
        }
    }
}

/// Every output must be of a type the agent declared with `.publishes::<T>()`; each
/// gets the visibility its declaration gives it. A panicking visibility function
/// fails the run before anything is published.
fn check_outputs(
    agent: &Agent,
    outputs: Outputs,
) -> Result<Vec<(Payload, Visibility)>, EngineError> {
    let payloads = outputs.into_payloads();
    if let Some(undeclared) = payloads
        .iter()
        .find(|p| !agent.outputs.contains_key(p.type_name()))
    {
        let declared: Vec<&str> = agent.outputs.keys().copied().collect();
        return Err(EngineError::new(format!(
            "engine returned an output of type '{}', which agent '{}' does not declare; declared: [{}]; add .publishes::<{}>()",
            undeclared.type_name(),
            agent.name,
            declared.join(", "),
            undeclared.type_name(),
        )));
    }
    payloads
        .into_iter()
        .map(|payload| {
            let visibility = match &agent.outputs[payload.type_name()] {
                None => Visibility::Public,
                Some(rule) => std::panic::catch_unwind(AssertUnwindSafe(|| rule(&payload)))
                    .map_err(|panic| {
                        EngineError::new(format!(
                            "visibility function for '{}' panicked: {}",
                            payload.type_name(),
                            panic_message(panic.as_ref())
                        ))
                    })?
                    .unwrap_or_default(),
            };
            Ok((payload, visibility))
        })
        .collect()
}

async fn publish_output(
    shared: &Arc<Shared>,
    agent: &Agent,
    payload: Payload,
    visibility: Visibility,
    correlation_id: Option<Uuid>,
) {
    let mut artifact = Artifact::new(payload, agent.name.clone());
    artifact.created_at = shared.clock.now();
    artifact.correlation_id = correlation_id;
    artifact.visibility = visibility;
    let span = tracing::info_span!(
        "artifact.publish",
        artifact_type = artifact.type_name(),
        artifact_id = %artifact.id,
        produced_by = %agent.name,
    );
    if let Err(error) = shared
        .publish_artifact(Arc::new(artifact))
        .instrument(span)
        .await
    {
        tracing::error!(agent = %agent.name, %error, "could not publish an agent output");
    }
}
