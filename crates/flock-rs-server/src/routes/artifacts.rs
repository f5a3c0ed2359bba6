//! Artifacts: listing and searching, one by id, a summary, publishing JSON, and a
//! correlation's status; every read through the viewer's visibility.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use axum::{
    Json,
    body::Bytes,
    extract::{Path, Query, State},
};
use flock::{Artifact, ArtifactFilter, ArtifactId, PublishError, PublishOptions, Visibility};
use serde_json::{Value, json};

use super::{Params, limit, now, uuid};
use crate::{ApiError, state::AppState, view, viewer::Viewer};

/// The artifacts the viewer may see, oldest first: every one when the viewer is
/// the operator, through the identity's visibility otherwise.
async fn visible(
    state: &AppState,
    viewer: &Viewer,
    filter: ArtifactFilter,
) -> Result<Vec<Arc<Artifact>>, ApiError> {
    Ok(match viewer.identity() {
        Some(identity) => state.flock.query_as(identity, filter).await?,
        None => state.flock.query(&filter).await?,
    })
}

fn filter(params: &Params) -> Result<ArtifactFilter, ApiError> {
    let mut filter = ArtifactFilter::new();
    if let Some(t) = params.text("type") {
        filter = filter.type_name(t);
    }
    if let Some(p) = params.text("produced_by") {
        filter = filter.produced_by(p);
    }
    if let Some(tag) = params.text("tag") {
        filter.tags.insert(tag.to_owned());
    }
    filter.correlation_id = params.parse("correlation_id", "a UUID")?;
    filter.created_after = params.parse("from", "an RFC 3339 timestamp")?;
    filter.created_before = params.parse("to", "an RFC 3339 timestamp")?;
    Ok(filter)
}

/// `GET /api/v1/artifacts?type=&produced_by=&correlation_id=&tag=&from=&to=&q=&limit=&offset=`:
/// newest first; `q` searches the payload's JSON text (case-insensitive).
pub(super) async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(raw): Query<std::collections::HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let params = Params::new(raw);
    let limit = limit(&params, 50, 1000)?;
    let offset: usize = params.parse("offset", "a whole number")?.unwrap_or(0);
    let query = params.text("q").map(str::to_lowercase);
    let mut items = visible(&state, &viewer, filter(&params)?).await?;
    items.reverse();
    let matching: Vec<Value> = items
        .iter()
        .map(|a| view::artifact(a))
        .filter(|json| {
            query.as_deref().is_none_or(|q| {
                json.get("payload")
                    .is_some_and(|p| p.to_string().to_lowercase().contains(q))
                    || json["type"]
                        .as_str()
                        .is_some_and(|t| t.to_lowercase().contains(q))
            })
        })
        .collect();
    let total = matching.len();
    let page: Vec<Value> = matching.into_iter().skip(offset).take(limit).collect();
    Ok(Json(json!({
        "items": page,
        "pagination": { "limit": limit, "offset": offset, "total": total },
    })))
}

/// `GET /api/v1/artifacts/{id}`: 404 when absent or not visible to the viewer (the
/// same answer, so ids of hidden artifacts cannot be probed).
pub(super) async fn one(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = ArtifactId(uuid("artifact", &id)?);
    match state.flock.get(id).await? {
        Some(artifact) if viewer.sees_artifact(&artifact, now(&state)) => {
            Ok(Json(view::artifact(&artifact)))
        }
        _ => Err(ApiError::NotFound(format!("no artifact {id}"))),
    }
}

/// `GET /api/v1/artifacts/summary`: counts by type, producer, visibility kind and
/// tag, and the time range, over what the viewer may see.
pub(super) async fn summary(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Json<Value>, ApiError> {
    let items = visible(&state, &viewer, ArtifactFilter::new()).await?;
    let mut by_type = BTreeMap::<&str, usize>::new();
    let mut by_producer = BTreeMap::<&str, usize>::new();
    let mut by_visibility = BTreeMap::<&str, usize>::new();
    let mut tags = BTreeMap::<&str, usize>::new();
    for a in &items {
        *by_type.entry(a.type_name()).or_default() += 1;
        *by_producer.entry(&a.produced_by).or_default() += 1;
        *by_visibility.entry(kind(a.visibility())).or_default() += 1;
        for tag in a.tags() {
            *tags.entry(tag).or_default() += 1;
        }
    }
    Ok(Json(json!({
        "summary": {
            "total": items.len(),
            "by_type": by_type,
            "by_producer": by_producer,
            "by_visibility": by_visibility,
            "tag_counts": tags,
            "earliest_created_at": items.first().map(|a| a.created_at),
            "latest_created_at": items.last().map(|a| a.created_at),
        }
    })))
}

fn kind(visibility: &Visibility) -> &'static str {
    match visibility {
        Visibility::Public => "public",
        Visibility::Private { .. } => "private",
        Visibility::Labelled { .. } => "labelled",
        Visibility::Tenant { .. } => "tenant",
        Visibility::After { .. } => "after",
        _ => "all_of",
    }
}

/// `POST /api/v1/artifacts`: `{"type": "...", "payload": {...}}` as
/// `Flock::publish_json` takes it, plus optional `visibility`, `tags`,
/// `correlation_id` and `partition_key`. An identity publishes with its tenant's
/// visibility unless it gives one, and only what it could see itself.
pub(super) async fn publish(
    State(state): State<AppState>,
    viewer: Viewer,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let envelope: Value =
        serde_json::from_slice(&body).map_err(|e| PublishError::MalformedEnvelope {
            reason: format!("not valid JSON: {e}"),
        })?;
    let options = options(&envelope, &viewer)?;
    let now = now(&state);
    if !viewer.sees(&options.visibility, now, now) {
        return Err(ApiError::Forbidden(
            "cannot publish an artifact your token could not see; give a visibility that includes you".to_owned(),
        ));
    }
    let payload = state.flock.types().decode_envelope(envelope)?;
    let id = state.flock.publish_payload(payload, options).await?;
    Ok(Json(json!({ "status": "accepted", "id": id })))
}

/// The publish options an envelope carries.
pub(super) fn options(envelope: &Value, viewer: &Viewer) -> Result<PublishOptions, ApiError> {
    let field = |name: &str| envelope.get(name).filter(|v| !v.is_null());
    let mut options = PublishOptions::new();
    if let Some(visibility) = field("visibility") {
        options.visibility = serde_json::from_value(visibility.clone()).map_err(|e| {
            ApiError::BadRequest(format!(
                "invalid \"visibility\": {e}; e.g. {{\"kind\": \"tenant\", \"tenant_id\": \"acme\"}}"
            ))
        })?;
    } else if let Some(tenant) = viewer.identity().and_then(|i| i.tenant_id.clone()) {
        options.visibility = Visibility::tenant(tenant);
    }
    if let Some(tags) = field("tags") {
        let tags: BTreeSet<String> = serde_json::from_value(tags.clone()).map_err(|e| {
            ApiError::BadRequest(format!("invalid \"tags\": {e}; expected a list of strings"))
        })?;
        options.tags = tags;
    }
    if let Some(id) = field("correlation_id") {
        let id = id.as_str().ok_or_else(|| {
            ApiError::BadRequest("invalid \"correlation_id\": expected a UUID string".to_owned())
        })?;
        options.correlation_id = Some(uuid("correlation", id)?);
    }
    if let Some(key) = field("partition_key") {
        let key = key.as_str().ok_or_else(|| {
            ApiError::BadRequest("invalid \"partition_key\": expected a string".to_owned())
        })?;
        options.partition_key = Some(key.to_owned());
    }
    Ok(options)
}

/// `GET /api/v1/correlations/{id}/status`: Python Flock's shape (`state`:
/// `active`, `completed`, `failed` or `not_found`), over what the viewer may see.
/// Pending work is what still waits in a batch or join group, or runs.
pub(super) async fn correlation(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = uuid("correlation", &id)?;
    let filter = ArtifactFilter {
        correlation_id: Some(id),
        ..ArtifactFilter::new()
    };
    let items = visible(&state, &viewer, filter).await?;
    let errors = items
        .iter()
        .filter(|a| a.type_name() == "WorkflowError")
        .count();
    let pending = !items.is_empty()
        && (state.flock.waiting_with_correlation(id) > 0 || state.flock.runs_in_flight() > 0);
    let status = if items.is_empty() {
        "not_found"
    } else if pending {
        "active"
    } else if errors > 0 && errors == items.len() - count_inputs(&items) {
        "failed"
    } else {
        "completed"
    };
    Ok(Json(json!({
        "correlation_id": id,
        "state": status,
        "has_pending_work": pending,
        "artifact_count": items.len(),
        "error_count": errors,
        "started_at": items.first().map(|a| a.created_at),
        "last_activity_at": items.last().map(|a| a.created_at),
    })))
}

/// Artifacts published from outside (the workflow's inputs).
fn count_inputs(items: &[Arc<Artifact>]) -> usize {
    let external = Artifact::external_producer();
    items.iter().filter(|a| a.produced_by == external).count()
}
