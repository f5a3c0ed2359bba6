//! The LLM engine: one chat-completion request per flushed batch to any
//! OpenAI-compatible endpoint, answered with structured output of the agent's type.
//!
//! [`LlmEngine<Out>`] sends every input of a run (a whole batch, or one artifact) as
//! JSON in one request, with the JSON schema of `Out` (derived with
//! [`schemars::JsonSchema`]) as `response_format: {type: "json_schema", ...}`, and parses
//! the reply into `Out`: one per run, or with [`LlmEngineBuilder::one_per_input`] one
//! per input. A reply that does not fit is an error naming the field.
//!
//! Configuration comes from the builder or, for what the builder leaves unset, the
//! environment: `OPENAI_BASE_URL` (default `https://api.openai.com/v1`),
//! `OPENAI_API_KEY` (optional: local servers need none) and `FLOCK_MODEL`.
//!
//! Requests time out ([`LlmEngineBuilder::timeout`], default 60 s) and are retried
//! ([`LlmEngineBuilder::max_retries`], default 2) on timeouts, connection errors, 408,
//! 409, 429 and 5xx, waiting what the server's `retry-after-ms` / `Retry-After` asks
//! (up to 60 s) or else an exponential backoff. Each call runs in an
//! `llm.chat_completion` span carrying `llm.model`, `llm.inputs`, `llm.attempts`,
//! `llm.prompt_tokens`, `llm.completion_tokens` and `llm.total_tokens`. The API key is
//! never logged, traced or printed (its `Debug` is redacted).
//!
//! ```no_run
//! use flock_engines::llm::LlmEngine;
//! use schemars::JsonSchema;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Serialize, Deserialize, JsonSchema, flock_core::FlockType)]
//! #[flock(crate = "flock_core")]
//! struct SentimentTrendReport {
//!     positive: u32,
//!     negative: u32,
//!     summary: String,
//! }
//!
//! # fn main() -> Result<(), flock_engines::llm::LlmConfigError> {
//! let engine = LlmEngine::<SentimentTrendReport>::builder()
//!     .model("gpt-4o-mini")
//!     .instructions("Summarize the sentiment of these customer reviews.")
//!     .build()?;
//! # Ok(())
//! # }
//! ```

mod builder;
mod error;
#[cfg(feature = "llm-mock")]
#[cfg_attr(docsrs, doc(cfg(feature = "llm-mock")))]
pub mod mock;
mod wire;

use std::{
    fmt,
    marker::PhantomData,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use chrono::Utc;
use flock_core::{Artifact, FlockType};
pub use schemars;
use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tracing::{Instrument, field::Empty};

pub use self::{
    builder::LlmEngineBuilder,
    error::{LlmConfigError, LlmError},
};
use self::{
    error::excerpt,
    wire::{ChatCompletion, ResponseFormat},
};
use crate::{BatchInputs, Engine, EngineContext, EngineError, Inputs, Outputs};

/// The endpoint used when neither the builder nor `OPENAI_BASE_URL` names one.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// Environment variable for the endpoint's base URL.
pub const ENV_BASE_URL: &str = "OPENAI_BASE_URL";
/// Environment variable for the API key.
pub const ENV_API_KEY: &str = "OPENAI_API_KEY";
/// Environment variable for the model.
pub const ENV_MODEL: &str = "FLOCK_MODEL";

/// Counters of an engine's calls, shared by its clones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LlmStats {
    /// HTTP requests sent (retries included).
    pub requests: u64,
    /// Runs answered with a reply that parsed.
    pub completions: u64,
    /// Prompt tokens the endpoint reported.
    pub prompt_tokens: u64,
    /// Completion tokens the endpoint reported.
    pub completion_tokens: u64,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    requests: AtomicU64,
    completions: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
}

/// An engine calling an OpenAI-compatible chat-completions endpoint with whole batches,
/// answering with values of `Out`. See the [module docs](self).
///
/// Cheap to clone; clones share the HTTP client and [`LlmEngine::stats`].
pub struct LlmEngine<Out> {
    pub(super) inner: Arc<Inner>,
    pub(super) _out: PhantomData<fn() -> Out>,
}

pub(super) struct Inner {
    pub(super) client: reqwest::Client,
    pub(super) endpoint: String,
    pub(super) api_key: Option<SecretString>,
    pub(super) model: String,
    pub(super) name: String,
    pub(super) instructions: Option<String>,
    pub(super) format: ResponseFormat,
    pub(super) temperature: Option<f32>,
    pub(super) max_tokens: Option<u32>,
    pub(super) timeout: Duration,
    pub(super) max_retries: u32,
    pub(super) backoff: (Duration, Duration),
    pub(super) counters: Counters,
}

impl<Out> Clone for LlmEngine<Out> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            _out: PhantomData,
        }
    }
}

impl<Out> fmt::Debug for LlmEngine<Out> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("LlmEngine")
            .field("endpoint", &inner.endpoint)
            .field("model", &inner.model)
            .field("api_key", &inner.api_key.as_ref().map(|_| "[redacted]"))
            .field("strict", &inner.format.strict)
            .field("timeout", &inner.timeout)
            .field("max_retries", &inner.max_retries)
            .finish_non_exhaustive()
    }
}

impl<Out: FlockType + JsonSchema> LlmEngine<Out> {
    /// Starts configuring an engine.
    pub fn builder() -> LlmEngineBuilder<Out> {
        LlmEngineBuilder::new()
    }

    /// An engine configured from the environment alone.
    ///
    /// # Errors
    /// As [`LlmEngineBuilder::build`].
    pub fn from_env() -> Result<Self, LlmConfigError> {
        Self::builder().build()
    }
}

impl<Out> LlmEngine<Out> {
    /// The model requests name.
    pub fn model(&self) -> &str {
        &self.inner.model
    }

    /// The chat-completions URL requests go to.
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// The `response_format` every request carries (the output type's schema).
    pub fn response_format(&self) -> &Value {
        &self.inner.format.value
    }

    /// Requests, completions and tokens so far, over all clones of this engine.
    pub fn stats(&self) -> LlmStats {
        let c = &self.inner.counters;
        LlmStats {
            requests: c.requests.load(Ordering::Relaxed),
            completions: c.completions.load(Ordering::Relaxed),
            prompt_tokens: c.prompt_tokens.load(Ordering::Relaxed),
            completion_tokens: c.completion_tokens.load(Ordering::Relaxed),
        }
    }
}

/// Span attributes are recorded as `i64`: tracing-opentelemetry exports `u64` values
/// as strings, and trace files should hold numbers.
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) fn endpoint(base_url: &str) -> Result<String, LlmConfigError> {
    let invalid = |reason: String| LlmConfigError::InvalidBaseUrl {
        url: base_url.to_owned(),
        reason,
    };
    let url = reqwest::Url::parse(base_url.trim()).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "scheme must be http or https, got '{}'",
            url.scheme()
        )));
    }
    Ok(format!(
        "{}/chat/completions",
        url.as_str().trim_end_matches('/')
    ))
}

// === impl LlmEngine: calls ===

impl<Out: FlockType> LlmEngine<Out> {
    async fn run(
        &self,
        ctx: &EngineContext,
        items: &[&[Arc<Artifact>]],
    ) -> Result<Outputs, EngineError> {
        let inner = &self.inner;
        let span = tracing::info_span!(
            "llm.chat_completion",
            llm.model = %inner.model,
            llm.inputs = int(items.len() as u64),
            llm.attempts = Empty,
            llm.prompt_tokens = Empty,
            llm.completion_tokens = Empty,
            llm.total_tokens = Empty,
            http.status_code = Empty,
            otel.status_code = Empty,
            error = Empty,
        );
        let result = self.call(ctx, items).instrument(span.clone()).await;
        match result {
            Ok(values) => {
                inner.counters.completions.fetch_add(1, Ordering::Relaxed);
                Ok(values.into_iter().collect())
            }
            Err(error) => {
                span.record("otel.status_code", "ERROR");
                span.record("error", tracing::field::display(&error));
                Err(EngineError::new(error))
            }
        }
    }

    async fn call(
        &self,
        ctx: &EngineContext,
        items: &[&[Arc<Artifact>]],
    ) -> Result<Vec<Out>, LlmError> {
        let inner = &self.inner;
        let user = wire::inputs_json(items)?;
        let system = wire::system_prompt(
            &ctx.agent,
            inner.instructions.as_deref(),
            Out::TYPE_NAME,
            inner.format.shape,
            items.len(),
        );
        let mut body = json!({
            "model": inner.model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user.to_string()},
            ],
            "response_format": inner.format.value,
        });
        if let Some(t) = inner.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(n) = inner.max_tokens {
            body["max_tokens"] = json!(n);
        }
        let completion = self.send(&body).await?;
        if let Some(usage) = completion.usage {
            let span = tracing::Span::current();
            span.record("llm.prompt_tokens", int(usage.prompt_tokens));
            span.record("llm.completion_tokens", int(usage.completion_tokens));
            span.record(
                "llm.total_tokens",
                int(usage
                    .total_tokens
                    .unwrap_or(usage.prompt_tokens + usage.completion_tokens)),
            );
            let c = &inner.counters;
            c.prompt_tokens
                .fetch_add(usage.prompt_tokens, Ordering::Relaxed);
            c.completion_tokens
                .fetch_add(usage.completion_tokens, Ordering::Relaxed);
        }
        let text = wire::reply_text(&completion)?;
        wire::parse_reply::<Out>(text, inner.format.shape, items.len())
    }

    /// Posts the request, retrying what is worth retrying.
    async fn send(&self, body: &Value) -> Result<ChatCompletion, LlmError> {
        let inner = &self.inner;
        let span = tracing::Span::current();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            span.record("llm.attempts", i64::from(attempt));
            inner.counters.requests.fetch_add(1, Ordering::Relaxed);
            let mut request = inner.client.post(&inner.endpoint).json(body);
            if let Some(key) = &inner.api_key {
                request = request.bearer_auth(key.expose_secret());
            }
            let can_retry = attempt <= inner.max_retries;
            let (failure, retry_after) = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    span.record("http.status_code", i64::from(status.as_u16()));
                    let retry_after = wire::retry_after(response.headers(), Utc::now());
                    match response.bytes().await {
                        Ok(bytes) if status.is_success() => {
                            return serde_json::from_slice::<ChatCompletion>(&bytes).map_err(|e| {
                                LlmError::MalformedResponse {
                                    reason: format!(
                                        "{e}; it starts with '{}'",
                                        excerpt(&String::from_utf8_lossy(&bytes), 120)
                                    ),
                                }
                            });
                        }
                        Ok(bytes) => {
                            let error = LlmError::Status {
                                status: status.as_u16(),
                                body: excerpt(String::from_utf8_lossy(&bytes).trim(), 300),
                                attempts: attempt,
                            };
                            if !wire::retryable(status) {
                                return Err(error);
                            }
                            (error, retry_after)
                        }
                        Err(e) => (self.transport_error(&e, attempt), None),
                    }
                }
                Err(e) => {
                    let error = self.transport_error(&e, attempt);
                    if !(e.is_timeout() || e.is_connect() || e.is_request()) {
                        return Err(error);
                    }
                    (error, None)
                }
            };
            if !can_retry {
                return Err(failure);
            }
            let delay = wire::retry_delay(attempt, retry_after, inner.backoff.0, inner.backoff.1);
            tracing::warn!(
                attempt,
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                retry_after_ms = retry_after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                error = %failure,
                "chat completion failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    fn transport_error(&self, error: &reqwest::Error, attempts: u32) -> LlmError {
        let url = self.inner.endpoint.clone();
        if error.is_timeout() {
            LlmError::Timeout {
                url,
                timeout: self.inner.timeout,
                attempts,
            }
        } else {
            // The error's chain says why (connection refused, reset, …); the URL is
            // ours and carries no secret.
            let mut reason = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(s) = source {
                reason = format!("{reason}: {s}");
                source = s.source();
            }
            LlmError::Transport {
                url,
                reason,
                attempts,
            }
        }
    }
}

#[async_trait]
impl<Out: FlockType + JsonSchema> Engine for LlmEngine<Out> {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn supports_batch(&self) -> bool {
        true
    }

    async fn evaluate(&self, ctx: &EngineContext, inputs: Inputs) -> Result<Outputs, EngineError> {
        self.run(ctx, &[inputs.artifacts()]).await
    }

    async fn evaluate_batch(
        &self,
        ctx: &EngineContext,
        batch: BatchInputs,
    ) -> Result<Outputs, EngineError> {
        let items: Vec<&[Arc<Artifact>]> = batch.items().collect();
        self.run(ctx, &items).await
    }
}
