//! Every span the runtime records, with its name and attributes: the one place
//! that says what lands in the trace file.
//!
//! Names: `batch.flush` (the only one containing "batch", so the guide's
//! `name LIKE '%batch%'` finds exactly the flushes), `agent.run`,
//! `engine.evaluate`, `artifact.publish`, `join.complete`, `join.discard`. Integer
//! attributes are `i64`: tracing-opentelemetry exports `u64` as text, and the trace
//! file must hold numbers.

use std::{sync::Arc, time::Duration};

use flock_batch::{Discarded, JoinShape};
use flock_core::Artifact;
use flock_subscription::{JoinKey, Subscription};
use tracing::{Span, field::Empty};

use crate::{
    agent::Agent,
    work::{BatchKey, Flushed, Work},
};

/// A count as a span attribute.
pub(crate) fn int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Milliseconds as a span attribute.
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The span a run executes in: `batch.flush` for a batch (with the flush's figures,
/// and `recovered = true` when recovery collected its items again), `agent.run`
/// otherwise; a child of `parent`.
pub(crate) fn run(parent: &Span, agent: &Agent, work: &Work, recovered: bool) -> Span {
    match work {
        Work::Single(inputs) => tracing::info_span!(
            parent: parent,
            "agent.run",
            agent = %agent.name,
            inputs = int(inputs.len()),
            otel.status_code = Empty,
            error = Empty,
        ),
        Work::Batch(flushed) => batch_flush(parent, agent, flushed, recovered),
    }
}

fn batch_flush(parent: &Span, agent: &Agent, flushed: &Flushed, recovered: bool) -> Span {
    let key = flushed.key.partition.as_ref().map(ToString::to_string);
    let span = tracing::info_span!(
        parent: parent,
        "batch.flush",
        agent = %agent.name,
        subscription_index = i64::from(flushed.key.subscription),
        batch_size = int(flushed.len()),
        artifacts = int(flushed.artifacts().len()),
        flush_reason = flushed.reason.as_str(),
        configured_size = Empty,
        configured_timeout_ms = Empty,
        efficiency = flushed.efficiency(),
        wait_ms = duration_ms(flushed.wait),
        key = key.as_deref(),
        recovered = Empty,
        otel.status_code = Empty,
        error = Empty,
    );
    if recovered {
        span.record("recovered", true);
    }
    if let Some(size) = flushed.spec.max_size() {
        span.record("configured_size", int(size.get()));
    }
    if let Some(timeout) = flushed.spec.max_wait() {
        span.record("configured_timeout_ms", duration_ms(timeout));
    }
    span
}

/// Marks the run's span failed, with the error.
pub(crate) fn run_failed(span: &Span, message: &str) {
    span.record("otel.status_code", "ERROR");
    span.record("error", message);
}

/// One engine call. Named without "batch" (see the module docs).
pub(crate) fn engine_evaluate(engine: &str, attempt: u32, batch_items: Option<usize>) -> Span {
    match batch_items {
        None => tracing::info_span!(
            "engine.evaluate",
            engine,
            attempt = i64::from(attempt),
            otel.status_code = Empty,
        ),
        Some(items) => tracing::info_span!(
            "engine.evaluate",
            engine,
            batch = true,
            items = int(items),
            attempt = i64::from(attempt),
            otel.status_code = Empty,
        ),
    }
}

/// An agent's output reaching the blackboard.
pub(crate) fn artifact_publish(artifact: &Artifact) -> Span {
    tracing::info_span!(
        "artifact.publish",
        artifact_type = artifact.type_name(),
        artifact_id = %artifact.id,
        produced_by = %artifact.produced_by,
    )
}

/// A join group completed.
pub(crate) fn join_complete(
    parent: &Span,
    agent: &Agent,
    subscription: u32,
    key: &JoinKey,
    size: usize,
    wait: Duration,
) -> Span {
    tracing::info_span!(
        parent: parent,
        "join.complete",
        agent = %agent.name,
        subscription_index = i64::from(subscription),
        key = %key,
        group_size = int(size),
        wait_ms = duration_ms(wait),
    )
}

/// Records a discarded join group: a `join.discard` span with the agent, key, types
/// present and missing and the artifacts, and a warning inside it. Never silent.
pub(crate) fn join_discard(agent: &Agent, discarded: &Discarded<BatchKey, JoinKey, Arc<Artifact>>) {
    let subscription = &agent.subscriptions[discarded.pool.subscription as usize];
    let present = describe(&per_type(subscription, &discarded.present));
    let missing = describe(&per_type(subscription, &discarded.missing));
    let window = agent.join_shapes[discarded.pool.subscription as usize]
        .as_ref()
        .and_then(JoinShape::window)
        .map_or_else(|| "none".to_owned(), |w| w.to_string());
    let ids = discarded
        .items
        .iter()
        .map(|a| a.id.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let span = tracing::info_span!(
        "join.discard",
        agent = %agent.name,
        subscription_index = i64::from(discarded.pool.subscription),
        key = %discarded.key,
        types_present = %present,
        types_missing = %missing,
        artifacts = int(discarded.items.len()),
        artifact_ids = %ids,
        reason = discarded.reason.as_str(),
        window = %window,
        waited_ms = duration_ms(discarded.wait()),
    );
    span.in_scope(|| {
        tracing::warn!(
            agent = %agent.name,
            key = %discarded.key,
            present = %present,
            missing = %missing,
            reason = discarded.reason.as_str(),
            "incomplete join group discarded"
        );
    });
}

/// `count` per slot as (type, count), leaving out zeros.
pub(crate) fn per_type(
    subscription: &Subscription,
    counts: &[usize],
) -> Vec<(&'static str, usize)> {
    subscription
        .slots()
        .iter()
        .zip(counts)
        .filter(|(_, n)| **n > 0)
        .map(|(slot, n)| (slot.type_name, *n))
        .collect()
}

/// `TypeA, TypeB x2` (or `-` for none), for traces.
fn describe(types: &[(&'static str, usize)]) -> String {
    if types.is_empty() {
        return "-".to_owned();
    }
    types
        .iter()
        .map(|(t, n)| {
            if *n == 1 {
                (*t).to_owned()
            } else {
                format!("{t} x{n}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
