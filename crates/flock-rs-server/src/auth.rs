//! Who a request is: its bearer token checked against the configured ones (in
//! constant time), giving the [`Viewer`] of the request.

use axum::{extract::FromRequestParts, http::request::Parts};
use subtle::ConstantTimeEq;

use crate::{ApiError, config::Access, state::AppState, viewer::Viewer};

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
