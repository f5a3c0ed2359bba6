//! The router: every path, its handler, and the helpers handlers share for
//! reading query parameters and bodies with the library's error messages.

mod artifacts;
mod events;
mod operate;

use std::{collections::HashMap, str::FromStr};

use axum::{
    Json, Router,
    extract::State,
    http::header,
    response::IntoResponse,
    routing::{get, post},
};
use serde_json::{Value, json};

use crate::{ApiError, auth::Viewer, dashboard, metrics, state::AppState};

pub(crate) use events::record;

/// Every route, over `state`.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(prometheus))
        .route(
            "/api/v1/artifacts",
            get(artifacts::list).post(artifacts::publish),
        )
        .route("/api/v1/artifacts/summary", get(artifacts::summary))
        .route("/api/v1/artifacts/{id}", get(artifacts::one))
        .route(
            "/api/v1/correlations/{id}/status",
            get(artifacts::correlation),
        )
        .route("/api/v1/agents", get(operate::agents))
        .route("/api/v1/agents/{name}/run", post(operate::run_agent))
        .route("/api/v1/batches", get(operate::batches))
        .route("/api/v1/joins", get(operate::joins))
        .route("/api/v1/flushes", get(operate::flushes))
        .route("/api/v1/flush", post(operate::flush))
        .route("/api/v1/failed-runs", get(operate::failed_runs))
        .route("/api/v1/failed-runs/{id}/retry", post(operate::retry))
        .route("/api/v1/events", get(events::stream))
        .merge(dashboard::routes())
        .fallback(not_found)
        .with_state(state)
}

async fn health(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "agents": state.flock.agents().len(),
    }))
}

async fn prometheus(
    State(state): State<AppState>,
    _viewer: Viewer,
) -> Result<impl IntoResponse, ApiError> {
    let text = state
        .metrics
        .render()
        .map_err(|_| ApiError::BadRequest("metrics could not be encoded".to_owned()))?;
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}

// === parameters ===

/// Query parameters, read by hand so every malformed one gets a message naming it.
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    pub(crate) fn new(raw: HashMap<String, String>) -> Self {
        Self(raw)
    }

    pub(crate) fn text(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A parsed parameter, or `None` when absent.
    pub(crate) fn parse<T: FromStr>(
        &self,
        name: &str,
        expected: &str,
    ) -> Result<Option<T>, ApiError>
    where
        T::Err: std::fmt::Display,
    {
        self.text(name)
            .map(|raw| {
                raw.parse().map_err(|e| {
                    ApiError::BadRequest(format!(
                        "invalid query parameter {name}='{raw}': expected {expected} ({e})"
                    ))
                })
            })
            .transpose()
    }
}

/// Parses a path id.
pub(crate) fn uuid(what: &str, raw: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|e| {
        ApiError::BadRequest(format!("invalid {what} id '{raw}': expected a UUID ({e})"))
    })
}

/// The `limit` parameter, 1 to `max`.
pub(crate) fn limit(params: &Params, default: usize, max: usize) -> Result<usize, ApiError> {
    match params.parse::<usize>("limit", "a whole number")? {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::BadRequest(format!(
            "invalid query parameter limit={n}: must be between 1 and {max}"
        ))),
    }
}

/// The viewer's "now" for visibility checks: the flock's clock.
pub(crate) fn now(state: &AppState) -> chrono::DateTime<chrono::Utc> {
    state.flock.now()
}
