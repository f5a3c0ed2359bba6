//! Errors of the LLM engine: its configuration, and its calls.

use std::time::Duration;

/// Why an [`LlmEngine`](super::LlmEngine) could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LlmConfigError {
    /// Neither `.model(..)` nor `FLOCK_MODEL` named a model.
    #[error("no model configured; call .model(..) on the builder or set FLOCK_MODEL")]
    MissingModel,
    /// The base URL does not parse, or is not `http`/`https`.
    #[error("invalid base url '{url}': {reason}")]
    InvalidBaseUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A zero request timeout.
    #[error("request timeout must be positive, got {0:?}")]
    ZeroTimeout(Duration),
    /// A retry backoff that is zero, or whose maximum is below its start.
    #[error(
        "retry backoff must start above zero and not exceed its maximum, got {initial:?} up to {max:?}"
    )]
    InvalidBackoff {
        /// The first delay.
        initial: Duration,
        /// The largest delay.
        max: Duration,
    },
    /// A temperature outside `0.0..=2.0`.
    #[error("temperature must be between 0 and 2, got {0}")]
    InvalidTemperature(f32),
    /// `max_tokens(0)`.
    #[error("max tokens must be at least 1, got 0")]
    ZeroMaxTokens,
    /// The HTTP client could not be set up.
    #[error("could not set up the http client: {0}")]
    Client(String),
}

/// Why a chat-completion call failed. The engine reports it as the run's error, so it
/// ends up in the agent's `WorkflowError`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    /// The endpoint answered with an error status (after any retries).
    #[error(
        "chat completion failed with status {status} after {attempts} attempt(s){}",
        excerpt_suffix(.body)
    )]
    Status {
        /// The last status.
        status: u16,
        /// The beginning of the last response body.
        body: String,
        /// Requests made.
        attempts: u32,
    },
    /// The request timed out (after any retries).
    #[error("chat completion request to {url} timed out after {timeout:?} ({attempts} attempt(s))")]
    Timeout {
        /// The endpoint.
        url: String,
        /// The configured request timeout.
        timeout: Duration,
        /// Requests made.
        attempts: u32,
    },
    /// The request could not be sent or its answer not received (after any retries).
    #[error("chat completion request to {url} failed after {attempts} attempt(s): {reason}")]
    Transport {
        /// The endpoint.
        url: String,
        /// What the HTTP client reported.
        reason: String,
        /// Requests made.
        attempts: u32,
    },
    /// The answer is not a chat completion.
    #[error("the endpoint's answer is not a chat completion: {reason}")]
    MalformedResponse {
        /// What is wrong with it.
        reason: String,
    },
    /// The model refused to answer.
    #[error("the model refused: {0}")]
    Refused(String),
    /// The reply was cut off at the token limit.
    #[error(
        "the model's reply was cut off at the token limit (finish_reason 'length'); raise max_tokens or send smaller batches"
    )]
    Truncated,
    /// The reply is not JSON.
    #[error("the model's reply is not valid JSON: {reason}; the reply starts with '{excerpt}'")]
    InvalidJson {
        /// What the JSON parser reported.
        reason: String,
        /// The beginning of the reply.
        excerpt: String,
    },
    /// The reply is JSON, but does not fit the output type.
    #[error("the model's reply does not fit '{type_name}'{}: {reason}", field_suffix(.field))]
    DoesNotFit {
        /// The output type.
        type_name: &'static str,
        /// Where it does not fit (`reviews[3].sentiment`), unless at the top level.
        field: Option<String>,
        /// What serde reported (for a missing field, it names the field).
        reason: String,
    },
    /// In one-result-per-input mode, the reply has another number of results.
    #[error(
        "the model's reply has {got} result(s) for {expected} input(s); expected exactly one per input, in order"
    )]
    CountMismatch {
        /// Inputs sent.
        expected: usize,
        /// Results received.
        got: usize,
    },
    /// The inputs could not be turned into JSON.
    #[error("input of type '{type_name}' does not serialize to JSON: {reason}")]
    Input {
        /// The input's type.
        type_name: &'static str,
        /// What serde reported.
        reason: String,
    },
}

fn excerpt_suffix(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

fn field_suffix(field: &Option<String>) -> String {
    field
        .as_ref()
        .map(|f| format!(" at field '{f}'"))
        .unwrap_or_default()
}

/// The first `max` characters of `text`, marked when cut.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    let mut chars = text.char_indices();
    match chars.nth(max) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}
