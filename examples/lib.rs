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
