//! Who a request is: its bearer token checked against the configured ones (in
//! constant time), and what it may see.

use axum::{extract::FromRequestParts, http::request::Parts};
use chrono::{DateTime, Utc};
use flock::{AgentIdentity, Artifact, Visibility};
use subtle::ConstantTimeEq;

use crate::{ApiError, config::Access, state::AppState};

/// The access of the request being served.
#[derive(Debug, Clone)]
pub(crate) struct Viewer(pub(crate) Access);

impl Viewer {
    /// Whether the viewer may see something whose visibility is `visibility`
    /// (created at `created_at`), now.
    pub(crate) fn sees(
        &self,
        visibility: &Visibility,
        created_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> bool {
        match &self.0 {
            Access::Operator => true,
            Access::Identity(identity) => visibility.allows(identity, created_at, now),
        }
    }

    /// Whether the viewer may see `artifact` now.
    pub(crate) fn sees_artifact(&self, artifact: &Artifact, now: DateTime<Utc>) -> bool {
        self.sees(&artifact.visibility, artifact.created_at, now)
    }

    /// The identity, unless the viewer is the operator.
    pub(crate) fn identity(&self) -> Option<&AgentIdentity> {
        match &self.0 {
            Access::Operator => None,
            Access::Identity(identity) => Some(identity),
        }
    }

    /// Refuses operator actions to identities.
    pub(crate) fn require_operator(&self, action: &'static str) -> Result<(), ApiError> {
        match self.0 {
            Access::Operator => Ok(()),
            Access::Identity(_) => Err(ApiError::Forbidden(format!(
                "{action} is an operator action; use an operator token"
            ))),
        }
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let tokens = &state.config.tokens;
        if tokens.is_empty() {
            return Ok(Viewer(Access::Operator));
        }
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or(ApiError::Unauthorized("missing bearer token"))?;
        let presented = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized(
                "malformed authorization header; expected 'Bearer <token>'",
            ))?;
        // Compare with every token, so the time taken says nothing about which
        // one (or how much of one) matched.
        let mut found = None;
        for (token, access) in tokens {
            if bool::from(token.as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(access);
            }
        }
        found
            .map(|access| Viewer(access.clone()))
            .ok_or(ApiError::Unauthorized("invalid bearer token"))
    }
}
