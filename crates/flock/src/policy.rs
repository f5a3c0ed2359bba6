//! Per-agent failure policy: how often a failed run is tried again, and how long the
//! runtime waits in between.

use std::{num::NonZeroU32, time::Duration};

use flock_subscription::{IntoTimeout, InvalidDuration, human_duration};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// Why a [`RetryPolicy`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidRetryPolicy {
    /// `max_attempts` of 0: a run needs at least one attempt.
    #[error("max attempts must be at least 1, got 0")]
    ZeroAttempts,
    /// A negative `chrono::TimeDelta`.
    #[error(transparent)]
    Duration(#[from] InvalidDuration),
    /// An exponential backoff whose cap is below its first delay.
    #[error("max delay must be at least the initial delay {initial:?}, got {max:?}")]
    MaxBelowInitial {
        /// The first delay.
        initial: Duration,
        /// The cap given.
        max: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backoff {
    Fixed(Duration),
    Exponential { initial: Duration, max: Duration },
}

/// How the runtime treats a failed run of an agent: an engine error or panic, a
/// failing component hook, or outputs that break the agent's output contract.
///
/// A run is tried up to `max_attempts` times with the same inputs, waiting the
/// backoff between attempts (on tokio's clock, so paused-clock tests skip the wait).
/// The agent's concurrency permit is held while waiting, so with the default
/// `max_concurrency(1)` later batches still run in flush order. When the last attempt
/// fails, the runtime publishes a `WorkflowError` and keeps the inputs as a failed run
/// (see `Flock::failed_runs`).
///
/// The default, [`RetryPolicy::none`], makes one attempt.
///
/// From configuration (serde), validated as the constructors validate:
/// `{ max_attempts = 3, backoff = "exponential", delay = "100ms", max_delay = "5s" }`,
/// or `backoff = "fixed"` (the default) with `delay` the wait between attempts
/// (default `"0s"`). `max_delay` applies to exponential backoff only (default 5
/// minutes); `delay` is exponential backoff's first wait, and required.
///
/// ```
/// use std::time::Duration;
/// use flock::RetryPolicy;
///
/// // 3 attempts: wait 100 ms, then 200 ms.
/// let policy = RetryPolicy::exponential(3, Duration::from_millis(100))?
///     .max_delay(Duration::from_secs(5))?;
/// assert_eq!(policy.max_attempts(), 3);
/// assert_eq!(policy.delay_after(1), Duration::from_millis(100));
/// assert_eq!(policy.delay_after(2), Duration::from_millis(200));
/// assert!(RetryPolicy::fixed(0, Duration::from_secs(1)).is_err());
/// # Ok::<(), flock::InvalidRetryPolicy>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: NonZeroU32,
    backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::none()
    }
}

impl RetryPolicy {
    /// One attempt, no retry (the default).
    pub const fn none() -> Self {
        Self {
            max_attempts: NonZeroU32::MIN,
            backoff: Backoff::Fixed(Duration::ZERO),
        }
    }

    /// Up to `max_attempts` attempts, waiting `delay` between them.
    ///
    /// # Errors
    /// [`InvalidRetryPolicy`] for 0 attempts or a negative `TimeDelta`.
    pub fn fixed(max_attempts: u32, delay: impl IntoTimeout) -> Result<Self, InvalidRetryPolicy> {
        Ok(Self {
            max_attempts: NonZeroU32::new(max_attempts).ok_or(InvalidRetryPolicy::ZeroAttempts)?,
            backoff: Backoff::Fixed(delay.into_timeout()?),
        })
    }

    /// Up to `max_attempts` attempts, waiting `initial` after the first failure and
    /// doubling after each further one (capped at 5 minutes unless
    /// [`RetryPolicy::max_delay`] says otherwise).
    ///
    /// # Errors
    /// [`InvalidRetryPolicy`] for 0 attempts or a negative `TimeDelta`.
    pub fn exponential(
        max_attempts: u32,
        initial: impl IntoTimeout,
    ) -> Result<Self, InvalidRetryPolicy> {
        let initial = initial.into_timeout()?;
        Ok(Self {
            max_attempts: NonZeroU32::new(max_attempts).ok_or(InvalidRetryPolicy::ZeroAttempts)?,
            backoff: Backoff::Exponential {
                initial,
                max: Duration::from_secs(300).max(initial),
            },
        })
    }

    /// Caps the delays of an exponential backoff (a fixed delay is its own cap).
    ///
    /// # Errors
    /// [`InvalidRetryPolicy::MaxBelowInitial`] when `max` is below the first delay; a
    /// negative `TimeDelta`.
    pub fn max_delay(self, max: impl IntoTimeout) -> Result<Self, InvalidRetryPolicy> {
        let max = max.into_timeout()?;
        match self.backoff {
            Backoff::Fixed(_) => Ok(self),
            Backoff::Exponential { initial, .. } if max < initial => {
                Err(InvalidRetryPolicy::MaxBelowInitial { initial, max })
            }
            Backoff::Exponential { initial, .. } => Ok(Self {
                backoff: Backoff::Exponential { initial, max },
                ..self
            }),
        }
    }

    /// The most attempts a run gets.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts.get()
    }

    /// The wait after failed attempt number `attempt` (1 for the first), before the
    /// next one.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        match self.backoff {
            Backoff::Fixed(delay) => delay,
            Backoff::Exponential { initial, max } => {
                let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
                initial.saturating_mul(factor).min(max)
            }
        }
    }
}

// === impl Serialize, Deserialize for RetryPolicy ===

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum BackoffKind {
    Fixed,
    Exponential,
}

/// A retry policy as written in configuration.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename = "RetryPolicy")]
struct RetryPolicyFields {
    max_attempts: u32,
    #[serde(default = "fixed")]
    backoff: BackoffKind,
    #[serde(default, with = "human_duration::option")]
    delay: Option<Duration>,
    #[serde(
        default,
        with = "human_duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    max_delay: Option<Duration>,
}

fn fixed() -> BackoffKind {
    BackoffKind::Fixed
}

impl RetryPolicyFields {
    fn into_policy(self) -> Result<RetryPolicy, String> {
        match (self.backoff, self.delay, self.max_delay) {
            (BackoffKind::Fixed, _, Some(max)) => Err(format!(
                "max_delay applies to exponential backoff only, got max_delay {max:?} with backoff \"fixed\""
            )),
            (BackoffKind::Fixed, delay, None) => {
                RetryPolicy::fixed(self.max_attempts, delay.unwrap_or_default())
                    .map_err(|e| e.to_string())
            }
            (BackoffKind::Exponential, None, _) => Err(
                "exponential backoff needs its first wait: add delay = \"100ms\" or similar"
                    .to_owned(),
            ),
            (BackoffKind::Exponential, Some(initial), max) => {
                let policy = RetryPolicy::exponential(self.max_attempts, initial);
                match max {
                    Some(max) => policy.and_then(|p| p.max_delay(max)),
                    None => policy,
                }
                .map_err(|e| e.to_string())
            }
        }
    }
}

/// `{ "max_attempts": 3, "backoff": "fixed", "delay": "1s" }`, or with
/// `"backoff": "exponential"` also `"max_delay"`.
impl Serialize for RetryPolicy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (backoff, delay, max_delay) = match self.backoff {
            Backoff::Fixed(delay) => (BackoffKind::Fixed, delay, None),
            Backoff::Exponential { initial, max } => (BackoffKind::Exponential, initial, Some(max)),
        };
        RetryPolicyFields {
            max_attempts: self.max_attempts(),
            backoff,
            delay: Some(delay),
            max_delay,
        }
        .serialize(serializer)
    }
}

/// Reads the fields [`Serialize`] writes, validated as the constructors validate.
impl<'de> Deserialize<'de> for RetryPolicy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        RetryPolicyFields::deserialize(deserializer)?
            .into_policy()
            .map_err(de::Error::custom)
    }
}
