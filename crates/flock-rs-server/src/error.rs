//! Errors: what went wrong serving a request ([`ApiError`], mapped once into a
//! JSON response with its status) or starting a server ([`ServeError`]).

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use flock::{PublishError, RetryFailedRunError, StoreError};

/// Why a request failed. Every variant but [`ApiError::Store`] is the client's
/// doing and answers 4xx with the library's own message; the body is
/// `{"error": "<message>"}`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The request is malformed (JSON, a query parameter, an id).
    #[error("{0}")]
    BadRequest(String),
    /// No valid bearer token while tokens are configured (401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The token's identity may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// Nothing by that name or id that the caller may see (404).
    #[error("{0}")]
    NotFound(String),
    /// Well-formed, but the work failed on it: an agent run on the given inputs
    /// failed (422).
    #[error("{0}")]
    Unprocessable(String),
    /// A publish the flock refused (unknown type, invalid payload: 400; admission
    /// bound: 429; shut down: 503).
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// A failed run could not be retried (unknown id: 404; its unit moved to
    /// another process of the cluster: 409; shut down: 503).
    #[error(transparent)]
    Retry(#[from] RetryFailedRunError),
    /// The blackboard store failed (500: not the client's doing).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    /// The response status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Publish(error) => match error {
                PublishError::Full { .. } => StatusCode::TOO_MANY_REQUESTS,
                PublishError::Closed => StatusCode::SERVICE_UNAVAILABLE,
                PublishError::Store(StoreError::Duplicate(_)) => StatusCode::CONFLICT,
                PublishError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            },
            Self::Retry(error) => match error {
                RetryFailedRunError::NotFound(_) => StatusCode::NOT_FOUND,
                RetryFailedRunError::Moved(_) => StatusCode::CONFLICT,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            },
            Self::Store(StoreError::Duplicate(_)) => StatusCode::CONFLICT,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// An address other than loopback without tokens.
    #[error(
        "refusing to serve {0} without bearer tokens: anyone who can reach it could read and drive the flock; configure tokens, bind 127.0.0.1, or call allow_unauthenticated_public_bind()"
    )]
    Unauthenticated(std::net::SocketAddr),
    /// Serving failed (the listener broke).
    #[error("serving failed: {0}")]
    Io(#[from] std::io::Error),
}
