//! `LlmEngineBuilder`: configuring an LLM engine (endpoint, key, model, prompt,
//! limits) from code or the environment, validated at `build`.

use std::{fmt, marker::PhantomData, sync::Arc, time::Duration};

use flock_core::FlockType;
use schemars::JsonSchema;
use secrecy::SecretString;

use super::{
    Counters, DEFAULT_BASE_URL, ENV_API_KEY, ENV_BASE_URL, ENV_MODEL, Inner, LlmConfigError,
    LlmEngine, endpoint, wire::ResponseFormat,
};

// === impl LlmEngineBuilder ===

/// Configures an [`LlmEngine`]; start with [`LlmEngine::builder`].
///
/// Unset endpoint, key and model come from `OPENAI_BASE_URL`, `OPENAI_API_KEY` and
/// `FLOCK_MODEL` when [`build`](LlmEngineBuilder::build) runs (empty values count as
/// unset).
#[must_use = "call .build() to get the engine"]
pub struct LlmEngineBuilder<Out> {
    base_url: Option<String>,
    api_key: Option<SecretString>,
    model: Option<String>,
    name: Option<String>,
    instructions: Option<String>,
    per_input: bool,
    temperature: Option<f32>,
    max_tokens: Option<u32>,
    timeout: Duration,
    max_retries: u32,
    backoff: (Duration, Duration),
    use_env: bool,
    _out: PhantomData<fn() -> Out>,
}

impl<Out> fmt::Debug for LlmEngineBuilder<Out> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmEngineBuilder")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("model", &self.model)
            .field("per_input", &self.per_input)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}

impl<Out: FlockType + JsonSchema> LlmEngineBuilder<Out> {
    pub(super) fn new() -> Self {
        Self {
            base_url: None,
            api_key: None,
            model: None,
            name: None,
            instructions: None,
            per_input: false,
            temperature: None,
            max_tokens: None,
            timeout: Duration::from_secs(60),
            max_retries: 2,
            backoff: (Duration::from_millis(500), Duration::from_secs(8)),
            use_env: true,
            _out: PhantomData,
        }
    }

    /// The endpoint's base URL, e.g. `http://127.0.0.1:8000/v1`; requests go to
    /// `{base_url}/chat/completions`.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// The API key, sent as a bearer token (and nowhere else).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(SecretString::from(key.into()));
        self
    }

    /// The model to ask.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// A name for errors and traces (default `llm:{model}`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// What the model should do with the inputs (the task part of the system prompt).
    pub fn instructions(mut self, instructions: impl Into<String>) -> Self {
        self.instructions = Some(instructions.into());
        self
    }

    /// Answer with one `Out` per input item (per artifact, or per join group), in
    /// input order, instead of one `Out` per run. Declare the agent's output with
    /// `.publishes_per_input::<Out>()`.
    pub fn one_per_input(mut self) -> Self {
        self.per_input = true;
        self
    }

    /// Sampling temperature, `0.0..=2.0` (default: the endpoint's).
    pub fn temperature(mut self, temperature: f32) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// The most tokens the reply may use (default: the endpoint's).
    pub fn max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// The timeout of one request, from sending to the end of the answer (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Retries after a timeout, a connection error, 408, 409, 429 or 5xx (default 2,
    /// so at most 3 requests per run). 0 disables retries.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The backoff between retries when the server gives no `Retry-After`: `initial`,
    /// doubling up to `max` (default 500 ms up to 8 s).
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = (initial, max);
        self
    }

    /// Ignore `OPENAI_BASE_URL`, `OPENAI_API_KEY` and `FLOCK_MODEL`: everything comes
    /// from the builder.
    pub fn ignore_env(mut self) -> Self {
        self.use_env = false;
        self
    }

    /// Validates the configuration and builds the engine.
    ///
    /// # Errors
    /// [`LlmConfigError`]: no model, a base URL that is not `http(s)`, a zero timeout,
    /// an invalid backoff, a temperature outside `0..=2`, `max_tokens(0)`, or an HTTP
    /// client that cannot be set up.
    pub fn build(self) -> Result<LlmEngine<Out>, LlmConfigError> {
        let env = |name: &str| {
            self.use_env
                .then(|| std::env::var(name).ok())
                .flatten()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let model = self
            .model
            .clone()
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty())
            .or_else(|| env(ENV_MODEL))
            .ok_or(LlmConfigError::MissingModel)?;
        let base_url = self
            .base_url
            .clone()
            .or_else(|| env(ENV_BASE_URL))
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        let endpoint = endpoint(&base_url)?;
        let api_key = self
            .api_key
            .or_else(|| env(ENV_API_KEY).map(SecretString::from));
        if self.timeout.is_zero() {
            return Err(LlmConfigError::ZeroTimeout(self.timeout));
        }
        let (initial, max) = self.backoff;
        if initial.is_zero() || max < initial {
            return Err(LlmConfigError::InvalidBackoff { initial, max });
        }
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(LlmConfigError::InvalidTemperature(t));
        }
        if self.max_tokens == Some(0) {
            return Err(LlmConfigError::ZeroMaxTokens);
        }
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .build()
            .map_err(|e| LlmConfigError::Client(e.to_string()))?;
        Ok(LlmEngine {
            inner: Arc::new(Inner {
                client,
                endpoint,
                api_key,
                name: self.name.unwrap_or_else(|| format!("llm:{model}")),
                model,
                instructions: self.instructions,
                format: ResponseFormat::new::<Out>(self.per_input),
                temperature: self.temperature,
                max_tokens: self.max_tokens,
                timeout: self.timeout,
                max_retries: self.max_retries,
                backoff: self.backoff,
                counters: Counters::default(),
            }),
            _out: PhantomData,
        })
    }
}
