//! The JSON shapes of the API's answers, built from the facade's types.

use std::time::Duration;

use chrono::{DateTime, Utc};
use flock::{
    ActiveBatch, AgentInfo, Artifact, FailedRun, FailureKind, OutputCount, PendingJoin,
    subscription::Subscription,
};
use serde::Serialize;
use serde_json::Value;

/// Milliseconds, for JSON.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// An artifact as JSON (metadata and payload); a payload that cannot serialize is
/// reported in place rather than failing the whole answer.
pub(crate) fn artifact(artifact: &Artifact) -> Value {
    artifact.to_json().unwrap_or_else(|error| {
        serde_json::json!({
            "id": artifact.id,
            "type": artifact.type_name(),
            "payload": null,
            "payload_error": error.to_string(),
        })
    })
}

/// `GET /api/v1/batches`: one batch collecting.
#[derive(Debug, Serialize)]
pub(crate) struct BatchView {
    agent: String,
    subscription_index: usize,
    key: Option<String>,
    items: usize,
    target_size: Option<usize>,
    timeout_ms: Option<u64>,
    created_at: DateTime<Utc>,
    age_ms: u64,
    time_left_ms: Option<u64>,
}

impl BatchView {
    pub(crate) fn new(batch: &ActiveBatch, now: DateTime<Utc>) -> Self {
        Self {
            agent: batch.agent.clone(),
            subscription_index: batch.subscription_index,
            key: batch.key.clone(),
            items: batch.items_waiting,
            target_size: batch.spec.max_size().map(|n| n.get()),
            timeout_ms: batch.spec.max_wait().map(millis),
            created_at: batch.created_at,
            age_ms: age(batch.created_at, now),
            time_left_ms: batch.time_left.map(millis),
        }
    }
}

fn age(since: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    (now - since).to_std().map(millis).unwrap_or_default()
}

#[derive(Debug, Serialize)]
struct TypeCount {
    r#type: &'static str,
    count: usize,
}

fn type_counts(counts: &[(&'static str, usize)]) -> Vec<TypeCount> {
    counts
        .iter()
        .map(|(t, n)| TypeCount {
            r#type: t,
            count: *n,
        })
        .collect()
}

/// `GET /api/v1/joins`: one incomplete group.
#[derive(Debug, Serialize)]
pub(crate) struct JoinView {
    agent: String,
    subscription_index: usize,
    key: String,
    present: Vec<TypeCount>,
    missing: Vec<TypeCount>,
    waiting: usize,
    created_at: DateTime<Utc>,
    age_ms: u64,
    window_left_ms: Option<u64>,
    artifacts_left: Option<u64>,
}

impl JoinView {
    pub(crate) fn new(join: &PendingJoin, now: DateTime<Utc>) -> Self {
        Self {
            agent: join.agent.clone(),
            subscription_index: join.subscription_index,
            key: join.key.clone(),
            present: type_counts(&join.present),
            missing: type_counts(&join.missing),
            waiting: join.waiting,
            created_at: join.created_at,
            age_ms: age(join.created_at, now),
            window_left_ms: join.time_left.map(millis),
            artifacts_left: join.artifacts_left,
        }
    }
}

/// `GET /api/v1/failed-runs`: one dead letter, with its inputs.
#[derive(Debug, Serialize)]
pub(crate) struct FailedRunView {
    id: uuid::Uuid,
    agent: String,
    kind: &'static str,
    error: String,
    attempts: u32,
    flush_reason: Option<String>,
    failed_at: DateTime<Utc>,
    workflow_error: flock::ArtifactId,
    inputs: Vec<Value>,
}

impl FailedRunView {
    pub(crate) fn new(run: &FailedRun) -> Self {
        Self {
            id: run.id,
            agent: run.agent.clone(),
            kind: match run.kind {
                FailureKind::CircuitOpen => "circuit_open",
                _ => "failed",
            },
            error: run.error.clone(),
            attempts: run.attempts,
            flush_reason: run.flush_reason.map(|r| r.to_string()),
            failed_at: run.failed_at,
            workflow_error: run.workflow_error,
            inputs: run.inputs.iter().map(|a| artifact(a)).collect(),
        }
    }
}

/// `GET /api/v1/agents`: Python Flock's agent shape (`name`, `description`,
/// `subscriptions` with `types` and `mode`, `outputs`), plus what batch users need.
#[derive(Debug, Serialize)]
pub(crate) struct AgentView {
    name: String,
    description: String,
    subscriptions: Vec<SubscriptionView>,
    outputs: Vec<&'static str>,
    output_counts: Vec<OutputView>,
    tenant: Option<String>,
    labels: Vec<String>,
    max_concurrency: usize,
}

#[derive(Debug, Serialize)]
struct OutputView {
    r#type: &'static str,
    count: &'static str,
}

#[derive(Debug, Serialize)]
struct SubscriptionView {
    types: Vec<&'static str>,
    /// `direct` (each artifact runs the agent), `batch`, `join` or `join+batch`.
    mode: &'static str,
    batch: Option<BatchSpecView>,
    join_window: Option<String>,
    keyed: bool,
    tags: Vec<String>,
    from_agents: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
struct BatchSpecView {
    size: Option<usize>,
    timeout_ms: Option<u64>,
}

impl AgentView {
    pub(crate) fn new(agent: &AgentInfo) -> Self {
        Self {
            name: agent.name.clone(),
            description: agent.description.clone().unwrap_or_default(),
            subscriptions: agent.subscriptions.iter().map(subscription).collect(),
            outputs: agent.outputs.iter().map(|(t, _)| *t).collect(),
            output_counts: agent
                .outputs
                .iter()
                .map(|(t, count)| OutputView {
                    r#type: t,
                    count: match count {
                        OutputCount::ExactlyOne => "one",
                        OutputCount::PerInput => "per_input",
                        _ => "any",
                    },
                })
                .collect(),
            tenant: agent.identity.tenant_id.clone(),
            labels: agent.identity.labels.iter().cloned().collect(),
            max_concurrency: agent.max_concurrency.get(),
        }
    }
}

fn subscription(s: &Subscription) -> SubscriptionView {
    let gate = s.is_gate() || s.join().is_some();
    SubscriptionView {
        types: s.slots().iter().map(|slot| slot.type_name).collect(),
        mode: match (gate, s.batch().is_some()) {
            (false, false) => "direct",
            (false, true) => "batch",
            (true, false) => "join",
            (true, true) => "join+batch",
        },
        batch: s.batch().map(|spec| BatchSpecView {
            size: spec.max_size().map(|n| n.get()),
            timeout_ms: spec.max_wait().map(millis),
        }),
        join_window: s.join().map(|j| j.window().to_string()),
        keyed: s.is_keyed(),
        tags: s.tags().iter().cloned().collect(),
        from_agents: s.from_agents().map(|a| a.iter().cloned().collect()),
    }
}
