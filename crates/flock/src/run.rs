//! One agent run: component hooks, the engine call (panics contained), the output
//! contract check, retries under the agent's policy, publishing the outputs, or, when
//! every attempt failed, publishing a `WorkflowError` and keeping the inputs as a
//! failed run.

use std::{future::Future, ops::Range, panic::AssertUnwindSafe, sync::Arc};

use chrono::Utc;
use flock_batch::Batch;
use flock_core::{
    Artifact, ArtifactId, BlackboardView, Payload, Visibility, WorkflowError, panic_message,
};
use flock_engines::{
    AgentComponent, BatchInputs, BatchMetrics, EngineContext, EngineError, Inputs, Outputs,
    RunFailure,
};
use futures::FutureExt;
use tracing::{Instrument, field::Empty};
use uuid::Uuid;

use crate::{
    agent::{Agent, OutputCount},
    failed::{FailedRun, FailureKind},
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

/// A flushed batch as a run holds it: the items' artifacts in one flat list (what
/// component hooks, failed runs and the correlation id read), and the item
/// boundaries when the items are join groups. Built once per flush; a plain batch
/// allocates nothing per artifact.
#[derive(Clone)]
pub(crate) struct Flushed {
    pub(crate) batch: Batch<BatchKey, Arc<Artifact>>,
    /// Item boundaries in `batch.items` for a batch of join groups.
    groups: Option<Vec<Range<usize>>>,
}

impl Flushed {
    pub(crate) fn new(batch: Batch<BatchKey, Unit>) -> Self {
        let Batch {
            key,
            items,
            reason,
            spec,
            first_arrival,
            created_at,
            flushed_at,
        } = batch;
        // A batch is homogeneous: a join subscription batches only groups.
        let (artifacts, groups) = if matches!(items.first(), Some(Unit::Group(_))) {
            let mut artifacts = Vec::with_capacity(items.iter().map(|u| u.artifacts().len()).sum());
            let mut ranges = Vec::with_capacity(items.len());
            for unit in items {
                let start = artifacts.len();
                artifacts.extend(unit.into_vec());
                ranges.push(start..artifacts.len());
            }
            (artifacts, Some(ranges))
        } else {
            let artifacts = items
                .into_iter()
                .map(|unit| match unit {
                    Unit::One(artifact) => artifact,
                    Unit::Group(_) => unreachable!("a batch of artifacts holds no group"),
                })
                .collect();
            (artifacts, None)
        };
        Self {
            batch: Batch {
                key,
                items: artifacts,
                reason,
                spec,
                first_arrival,
                created_at,
                flushed_at,
            },
            groups,
        }
    }

    /// Items: artifacts, or join groups.
    pub(crate) fn len(&self) -> usize {
        self.groups
            .as_ref()
            .map_or(self.batch.items.len(), Vec::len)
    }

    /// `items / size` (1.0 when the spec has no size).
    fn efficiency(&self) -> f64 {
        self.batch.spec.efficiency(self.len())
    }

    /// The engine's view: the items in order, join groups kept as groups.
    fn inputs(&self) -> BatchInputs {
        match &self.groups {
            None => BatchInputs::new(self.batch.items.clone()),
            Some(ranges) => BatchInputs::from_groups(
                ranges
                    .iter()
                    .map(|r| self.batch.items[r.clone()].to_vec())
                    .collect(),
            ),
        }
    }
}

/// What a run processes.
#[derive(Clone)]
pub(crate) enum Work {
    /// One artifact, or one complete group, delivered directly.
    Single(Vec<Arc<Artifact>>),
    /// A flushed batch.
    Batch(Flushed),
}

impl Work {
    /// Every input artifact, flattened, in delivery order.
    pub(crate) fn artifacts(&self) -> &[Arc<Artifact>] {
        match self {
            Self::Single(artifacts) => artifacts,
            Self::Batch(flushed) => &flushed.batch.items,
        }
    }

    /// Input items: one for a single run (an artifact or a join group), the batch's
    /// items (artifacts or join groups) otherwise.
    fn items(&self) -> usize {
        match self {
            Self::Single(_) => 1,
            Self::Batch(flushed) => flushed.len(),
        }
    }

    pub(crate) fn flush_reason(&self) -> Option<flock_core::FlushReason> {
        match self {
            Self::Batch(flushed) => Some(flushed.batch.reason),
            Self::Single(_) => None,
        }
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
        Work::Batch(flushed) => {
            let batch = &flushed.batch;
            let key = batch.key.partition.as_ref().map(ToString::to_string);
            let span = tracing::info_span!(
                "batch.flush",
                agent = %agent.name,
                subscription_index = i64::from(batch.key.subscription),
                batch_size = int(flushed.len()),
                artifacts = int(batch.items.len()),
                flush_reason = batch.reason.as_str(),
                configured_size = Empty,
                configured_timeout_ms = Empty,
                efficiency = flushed.efficiency(),
                wait_ms = duration_ms(batch.wait()),
                key = key.as_deref(),
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
pub(crate) fn int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Milliseconds as a span attribute.
pub(crate) fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The correlation id all inputs share, if they share one.
pub(crate) fn common_correlation(artifacts: &[Arc<Artifact>]) -> Option<Uuid> {
    let first = artifacts.first()?.correlation_id?;
    artifacts
        .iter()
        .all(|a| a.correlation_id == Some(first))
        .then_some(first)
}

/// Runs `work` on `agent`: up to the retry policy's attempts, then the outputs or a
/// `WorkflowError` and a failed run.
pub(crate) async fn execute(shared: &Arc<Shared>, agent: &Arc<Agent>, work: Work) {
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
    if let Work::Batch(flushed) = &work {
        let batch = &flushed.batch;
        ctx = ctx.with_batch(BatchMetrics {
            batch_size: flushed.len(),
            flush_reason: batch.reason,
            configured_size: batch.spec.max_size().map(|n| n.get()),
            configured_timeout: batch.spec.max_wait(),
            efficiency: flushed.efficiency(),
            wait: batch.wait(),
            subscription_index: batch.key.subscription as usize,
            key: batch.key.partition.as_ref().map(ToString::to_string),
        });
    }
    let max_attempts = agent.retry.max_attempts();
    let mut consumed = false;
    let mut attempt = 0;
    let error = loop {
        attempt += 1;
        ctx = ctx.with_attempt(attempt);
        match attempt_once(agent, &ctx, &work, &mut consumed).await {
            Ok(payloads) => {
                for (payload, visibility) in payloads {
                    let artifact =
                        output_artifact(shared, agent, payload, visibility, correlation_id);
                    if let Some(artifact) = publish(shared, agent, artifact).await {
                        for component in &agent.components {
                            let hook = component.after_publish(&ctx, &artifact);
                            observe(component.as_ref(), "after_publish", hook).await;
                        }
                    }
                }
                return;
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
                    retry_in_ms = duration_ms(delay),
                    error = %error,
                    "agent run failed; retrying"
                );
                tokio::time::sleep(delay).await;
            }
        }
    };
    fail(
        shared,
        agent,
        work,
        FailureKind::Failed,
        error.to_string(),
        attempt,
        correlation_id,
    )
    .await;
}

/// One attempt: hooks, engine, hooks, output check. Returns the payloads to publish.
async fn attempt_once(
    agent: &Agent,
    ctx: &EngineContext,
    work: &Work,
    consumed: &mut bool,
) -> Result<Vec<(Payload, Visibility)>, EngineError> {
    let components = &agent.components;
    if !components.is_empty() {
        agent
            .initialized
            .get_or_try_init(|| async {
                for c in components {
                    guarded(c.as_ref(), "initialize", c.initialize(&agent.name)).await?;
                }
                Ok::<_, EngineError>(())
            })
            .await?;
    }
    let artifacts = work.artifacts();
    if !*consumed {
        for c in components {
            guarded(
                c.as_ref(),
                "before_consume",
                c.before_consume(ctx, artifacts),
            )
            .await?;
        }
        *consumed = true;
    }
    for c in components {
        guarded(
            c.as_ref(),
            "before_evaluate",
            c.before_evaluate(ctx, artifacts),
        )
        .await?;
    }
    let mut outputs = evaluate(agent, ctx, work).await?;
    for c in components {
        guarded(
            c.as_ref(),
            "after_evaluate",
            c.after_evaluate(ctx, &mut outputs),
        )
        .await?;
    }
    check_outputs(agent, work.items(), outputs)
}

/// Calls the engine in its own span, a panic becoming an error.
async fn evaluate(agent: &Agent, ctx: &EngineContext, work: &Work) -> Result<Outputs, EngineError> {
    let engine = &agent.engine;
    let result = match work {
        Work::Single(artifacts) => {
            let span = tracing::info_span!(
                "engine.evaluate",
                engine = engine.name(),
                attempt = i64::from(ctx.attempt),
                otel.status_code = Empty,
            );
            AssertUnwindSafe(engine.evaluate(ctx, Inputs::new(artifacts.clone())))
                .catch_unwind()
                .instrument(span)
                .await
        }
        Work::Batch(flushed) => {
            // Named without "batch": the guide's query selects flushes by
            // `name LIKE '%batch%'`, and only `batch.flush` must match it.
            let span = tracing::info_span!(
                "engine.evaluate",
                engine = engine.name(),
                batch = true,
                items = int(flushed.len()),
                attempt = i64::from(ctx.attempt),
                otel.status_code = Empty,
            );
            AssertUnwindSafe(engine.evaluate_batch(ctx, flushed.inputs()))
                .catch_unwind()
                .instrument(span)
                .await
        }
    };
    match result {
        Ok(result) => result,
        Err(panic) => Err(EngineError::new(format!(
            "engine panicked: {}",
            panic_message(panic.as_ref())
        ))),
    }
}

/// Runs a component hook that may fail, naming the component in its error; a panic
/// is an error too.
async fn guarded(
    component: &dyn AgentComponent,
    hook: &str,
    future: impl Future<Output = Result<(), EngineError>>,
) -> Result<(), EngineError> {
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(EngineError::new(format!(
            "component '{}' failed in {hook}: {error}",
            component.name()
        ))),
        Err(panic) => Err(EngineError::new(format!(
            "component '{}' panicked in {hook}: {}",
            component.name(),
            panic_message(panic.as_ref())
        ))),
    }
}

/// Runs a component hook that cannot fail the run; a panic is logged.
pub(crate) async fn observe(
    component: &dyn AgentComponent,
    hook: &str,
    future: impl Future<Output = ()>,
) {
    if let Err(panic) = AssertUnwindSafe(future).catch_unwind().await {
        tracing::error!(
            component = component.name(),
            hook,
            panic = %panic_message(panic.as_ref()),
            "component panicked; the runtime continues"
        );
    }
}

/// The output contract: every output of a declared type, in the declared count.
///
/// Each output gets the visibility its declaration gives it; a panicking visibility
/// function fails the run before anything is published.
fn check_outputs(
    agent: &Agent,
    items: usize,
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
    for (&type_name, decl) in &agent.outputs {
        let count = decl.count;
        let got = payloads
            .iter()
            .filter(|p| p.type_name() == type_name)
            .count();
        let declared = count.declaration(type_name);
        let name = &agent.name;
        let message = match count {
            OutputCount::Any => continue,
            OutputCount::ExactlyOne if got == 1 => continue,
            OutputCount::PerInput if got == items => continue,
            OutputCount::ExactlyOne => format!(
                "agent '{name}' must publish exactly one '{type_name}' per run (declared with {declared}), but the engine returned {got}; \
                 return exactly one, or declare {} for any number",
                OutputCount::Any.declaration(type_name)
            ),
            OutputCount::PerInput => format!(
                "agent '{name}' must publish one '{type_name}' per input (declared with {declared}), {items} for this run, but the engine returned {got}"
            ),
        };
        return Err(EngineError::new(message));
    }
    payloads
        .into_iter()
        .map(|payload| {
            let visibility = match &agent.outputs[payload.type_name()].visibility {
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

fn output_artifact(
    shared: &Shared,
    agent: &Agent,
    payload: Payload,
    visibility: Visibility,
    correlation_id: Option<Uuid>,
) -> Arc<Artifact> {
    let mut artifact = Artifact::new(payload, agent.name.clone());
    artifact.created_at = shared.clock.now();
    artifact.correlation_id = correlation_id;
    artifact.visibility = visibility;
    Arc::new(artifact)
}

/// Publishes an agent's artifact; `None` (and an error log) when the store refused it.
async fn publish(
    shared: &Arc<Shared>,
    agent: &Agent,
    artifact: Arc<Artifact>,
) -> Option<Arc<Artifact>> {
    let span = tracing::info_span!(
        "artifact.publish",
        artifact_type = artifact.type_name(),
        artifact_id = %artifact.id,
        produced_by = %agent.name,
    );
    match shared
        .publish_artifact(artifact.clone())
        .instrument(span)
        .await
    {
        Ok(()) => Some(artifact),
        Err(error) => {
            tracing::error!(agent = %agent.name, %error, "could not publish an agent output");
            None
        }
    }
}

/// Gives up on `work`: keeps it as a failed run, then publishes the `WorkflowError`.
pub(crate) async fn fail(
    shared: &Arc<Shared>,
    agent: &Arc<Agent>,
    work: Work,
    kind: FailureKind,
    message: String,
    attempts: u32,
    correlation_id: Option<Uuid>,
) {
    let span = tracing::Span::current();
    span.record("otel.status_code", "ERROR");
    span.record("error", message.as_str());
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
    let artifact = output_artifact(
        shared,
        agent,
        Payload::new(report),
        Visibility::Public,
        correlation_id,
    );
    // Kept before the error is published, so whoever reacts to the WorkflowError
    // finds the failed run.
    shared.record_failure(FailedRun::new(
        agent.clone(),
        work,
        kind,
        message,
        attempts,
        artifact.id,
        Utc::now(),
    ));
    publish(shared, agent, artifact).await;
}
