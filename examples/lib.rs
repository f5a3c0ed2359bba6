//! Shared helpers of the flock-rs examples: tiny command-line flag parsing, so the
//! examples need no argument-parsing dependency.

use std::{str::FromStr, time::Duration};

use anyhow::{Context, Result, bail};

/// The example's command-line flags, `--name value` or `--flag`.
#[derive(Debug)]
pub struct Args {
    args: Vec<String>,
}

impl Args {
    /// The process's arguments.
    pub fn from_env() -> Self {
        Self {
            args: std::env::args().skip(1).collect(),
        }
    }

    /// Whether `--name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.args.iter().any(|a| a == name)
    }

    /// The value after `--name`, parsed, or `default`.
    ///
    /// # Errors
    /// When the flag has no value or the value does not parse.
    pub fn value<T>(&self, name: &str, default: T) -> Result<T>
    where
        T: FromStr,
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        match self.args.iter().position(|a| a == name) {
            None => Ok(default),
            Some(i) => {
                let Some(raw) = self.args.get(i + 1) else {
                    bail!("{name} needs a value");
                };
                raw.parse()
                    .with_context(|| format!("invalid value for {name}: '{raw}'"))
            }
        }
    }

    /// A duration given in milliseconds after `--name`, or `default`.
    ///
    /// # Errors
    /// As [`Args::value`].
    pub fn millis(&self, name: &str, default: Duration) -> Result<Duration> {
        let ms = self.value(name, u64::try_from(default.as_millis()).unwrap_or(u64::MAX))?;
        Ok(Duration::from_millis(ms))
    }
}

/// The LLM engine of an example: the OpenAI-compatible endpoint the environment
/// configures (`OPENAI_API_KEY` / `OPENAI_BASE_URL`; model `FLOCK_MODEL`, else
/// `gpt-4o-mini`), or, with none configured, a local OpenAI-compatible server on
/// 127.0.0.1 whose replies `answer` computes from each request (said on stdout).
/// Keep the returned server until the flock is done: dropping it stops it.
///
/// # Errors
/// When the engine's configuration is invalid or no loopback port can be bound.
pub async fn llm_engine<Out, F>(
    builder: flock::llm::LlmEngineBuilder<Out>,
    local_model: &str,
    answer: F,
) -> Result<(
    flock::llm::LlmEngine<Out>,
    Option<flock::llm::mock::MockChatServer>,
)>
where
    Out: flock::FlockType + flock::llm::JsonSchema,
    F: Fn(&flock::llm::mock::ChatRequest) -> flock::llm::mock::MockReply + Send + Sync + 'static,
{
    let configured = ["OPENAI_API_KEY", "OPENAI_BASE_URL"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|v| !v.trim().is_empty()));
    if configured {
        let builder = if std::env::var("FLOCK_MODEL").is_err() {
            builder.model("gpt-4o-mini")
        } else {
            builder
        };
        return Ok((builder.build()?, None));
    }
    let server = flock::llm::mock::MockChatServer::start(answer).await?;
    println!(
        "No OPENAI_API_KEY or OPENAI_BASE_URL configured: started a local OpenAI-compatible \
         server on {} that answers deterministically from each request.",
        server.base_url()
    );
    let engine = builder
        .ignore_env()
        .base_url(server.base_url())
        .model(local_model)
        .build()?;
    Ok((engine, Some(server)))
}
