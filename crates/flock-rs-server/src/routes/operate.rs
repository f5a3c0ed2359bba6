//! Operating the flock: agents (and running one directly), the batches collecting,
//! the join groups waiting, recent flushes, a manual flush, and the failed runs
//! with their retry. Everything tied to artifacts is shown only to viewers who may
//! see every artifact in it.

use std::collections::HashMap;

use axum::{
    Json,
    body::Bytes,
    extract::{Path, Query, State},
};
use flock::{InvokeError, PublishError};
use serde_json::{Value, json};

use super::{Params, artifacts::options, limit, now, uuid};
use crate::{
    ApiError,
    auth::Viewer,
    state::AppState,
    view::{self, AgentView, BatchView, FailedRunView, JoinView},
};

/// `GET /api/v1/agents`: every agent with its subscriptions and outputs.
pub(super) async fn agents(State(state): State<AppState>, _viewer: Viewer) -> Json<Value> {
    let agents: Vec<AgentView> = state.flock.agents().iter().map(AgentView::new).collect();
    Json(json!({ "agents": agents }))
}

/// `POST /api/v1/agents/{name}/run` with `{"inputs": [{"type": "...", "payload":
/// {...}}, ...]}` (and optional `visibility`, `tags`, `correlation_id`): runs the
/// agent once on the inputs ([`flock::Flock::invoke`]); answers the artifacts it
/// published.
pub(super) async fn run_agent(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON body: {e}")))?;
    let Some(inputs) = request.get("inputs").and_then(Value::as_array) else {
        return Err(ApiError::BadRequest(
            "expected {\"inputs\": [{\"type\": \"TypeName\", \"payload\": {...}}]}".to_owned(),
        ));
    };
    let options = options(&request, &viewer)?;
    let now = now(&state);
    if !viewer.sees(&options.visibility, now, now) {
        return Err(ApiError::Forbidden(
            "cannot run an agent on inputs your token could not see".to_owned(),
        ));
    }
    let payloads = inputs
        .iter()
        .map(|input| state.flock.types().decode_envelope(input.clone()))
        .collect::<Result<Vec<_>, PublishError>>()?;
    let outputs =
        state
            .flock
            .invoke(&name, payloads, options)
            .await
            .map_err(|error| match error {
                InvokeError::UnknownAgent { .. } => ApiError::NotFound(error.to_string()),
                InvokeError::Closed => ApiError::Publish(PublishError::Closed),
                InvokeError::Store(store) => ApiError::Store(store),
                InvokeError::RunFailed { .. } => ApiError::Unprocessable(error.to_string()),
                other => ApiError::BadRequest(other.to_string()),
            })?;
    let artifacts: Vec<Value> = outputs
        .iter()
        .filter(|a| viewer.sees_artifact(a, now))
        .map(|a| view::artifact(a))
        .collect();
    Ok(Json(json!({ "artifacts": artifacts })))
}

/// `GET /api/v1/batches`: every batch collecting that the viewer may see, oldest
/// first: agent, subscription, key, items, target size, age and time left.
pub(super) async fn batches(State(state): State<AppState>, viewer: Viewer) -> Json<Value> {
    let now = now(&state);
    let batches: Vec<BatchView> = state
        .flock
        .active_batches()
        .iter()
        .filter(|b| viewer.sees(&b.visibility, b.created_at, now))
        .map(|b| BatchView::new(b, now))
        .collect();
    Json(json!({ "batches": batches }))
}

/// `GET /api/v1/joins`: the incomplete join groups the viewer may see: key, types
/// present and missing, window left.
pub(super) async fn joins(State(state): State<AppState>, viewer: Viewer) -> Json<Value> {
    let now = now(&state);
    let joins: Vec<JoinView> = state
        .flock
        .pending_joins()
        .iter()
        .filter(|j| viewer.sees(&j.visibility, j.created_at, now))
        .map(|j| JoinView::new(j, now))
        .collect();
    Json(json!({ "joins": joins }))
}

/// `GET /api/v1/flushes?limit=&agent=`: recent flushes, newest first, with size,
/// reason, wait and efficiency (the `batch.flush` span's fields).
pub(super) async fn flushes(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let params = Params::new(raw);
    let limit = limit(&params, 100, 10_000)?;
    let flushes = state
        .history
        .recent(&viewer, params.text("agent"), limit, now(&state));
    Ok(Json(json!({ "flushes": flushes })))
}

/// `POST /api/v1/flush`: flushes every partial batch now (reason `manual`). An
/// operator action: it flushes every tenant's batches.
pub(super) async fn flush(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Json<Value>, ApiError> {
    viewer.require_operator("flushing every batch")?;
    let flushed = state.flock.flush_batches().await;
    Ok(Json(json!({ "flushed": flushed })))
}

/// `GET /api/v1/failed-runs`: the dead letters whose inputs the viewer may all
/// see, oldest first, with their inputs.
pub(super) async fn failed_runs(State(state): State<AppState>, viewer: Viewer) -> Json<Value> {
    let now = now(&state);
    let runs: Vec<FailedRunView> = state
        .flock
        .failed_runs()
        .iter()
        .filter(|r| r.inputs.iter().all(|a| viewer.sees_artifact(a, now)))
        .map(FailedRunView::new)
        .collect();
    Json(json!({ "failed_runs": runs }))
}

/// `POST /api/v1/failed-runs/{id}/retry`: runs a failed run again
/// ([`flock::Flock::retry_failed_run`]); 404 for an unknown id or one whose
/// inputs the viewer may not all see.
pub(super) async fn retry(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = uuid("failed run", &id)?;
    let now = now(&state);
    let visible = state
        .flock
        .failed_runs()
        .iter()
        .any(|r| r.id == id && r.inputs.iter().all(|a| viewer.sees_artifact(a, now)));
    if !visible {
        return Err(flock::RetryFailedRunError::NotFound(id).into());
    }
    state.flock.retry_failed_run(id).await?;
    Ok(Json(json!({ "status": "retrying", "id": id })))
}
