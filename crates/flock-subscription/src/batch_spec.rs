//! `BatchSpec`: flush when `size` items have arrived or `timeout` has passed since the
//! first, whichever comes first.

use std::{num::NonZeroUsize, time::Duration};

use crate::{IntoTimeout, InvalidDuration};

/// Why a batch spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidBatchSpec {
    /// `size = 0`.
    #[error("batch size must be at least 1, got 0")]
    ZeroSize,
    /// A zero timeout.
    #[error("batch timeout must be greater than zero, got 0s")]
    ZeroTimeout,
    /// A negative `chrono::TimeDelta` timeout.
    #[error("batch timeout must be positive: {0}")]
    NegativeTimeout(#[from] InvalidDuration),
    /// Neither a size nor a timeout.
    #[error("a batch spec needs a size, a timeout, or both; got neither")]
    Empty,
}

/// Size-or-timeout batching for a subscription.
///
/// The batch flushes the moment it holds `size` items, or when `timeout` has elapsed
/// since its first item (on a monotonic clock), whichever comes first. Each flush
/// starts a fresh batch whose clock starts at its own first item.
///
/// ```
/// use std::time::Duration;
/// use flock_subscription::BatchSpec;
///
/// let spec = BatchSpec::size(25).timeout(Duration::from_secs(30)).build()?;
/// assert_eq!(spec.max_size().map(|n| n.get()), Some(25));
/// assert_eq!(spec.max_wait(), Some(Duration::from_secs(30)));
///
/// // chrono's TimeDelta works as well (the guide's `timedelta`).
/// let hourly = BatchSpec::size(1000).timeout(chrono::TimeDelta::hours(1)).build()?;
/// assert_eq!(hourly.max_wait(), Some(Duration::from_secs(3600)));
///
/// assert_eq!(
///     BatchSpec::size(0).build().unwrap_err().to_string(),
///     "batch size must be at least 1, got 0"
/// );
/// # Ok::<(), flock_subscription::InvalidBatchSpec>(())
/// ```
///
/// From configuration (serde), with the duration as people write it; an invalid spec
/// is a deserialize error with the message above:
///
/// ```
/// use std::time::Duration;
/// use flock_subscription::BatchSpec;
///
/// let spec: BatchSpec = serde_json::from_str(r#"{"size": 25, "timeout": "30s"}"#).unwrap();
/// assert_eq!(spec, BatchSpec::size(25).timeout(Duration::from_secs(30)).build().unwrap());
/// let err = serde_json::from_str::<BatchSpec>(r#"{"size": 0}"#).unwrap_err();
/// assert!(err.to_string().starts_with("batch size must be at least 1, got 0"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchSpec {
    size: Option<NonZeroUsize>,
    timeout: Option<Duration>,
}

impl BatchSpec {
    /// A spec from an optional size and an optional timeout.
    ///
    /// # Errors
    /// [`InvalidBatchSpec`] when the size is 0, the timeout is zero, or both are absent.
    pub fn new(size: Option<usize>, timeout: Option<Duration>) -> Result<Self, InvalidBatchSpec> {
        let size = match size {
            Some(n) => Some(NonZeroUsize::new(n).ok_or(InvalidBatchSpec::ZeroSize)?),
            None => None,
        };
        if timeout.is_some_and(|t| t.is_zero()) {
            return Err(InvalidBatchSpec::ZeroTimeout);
        }
        if size.is_none() && timeout.is_none() {
            return Err(InvalidBatchSpec::Empty);
        }
        Ok(Self { size, timeout })
    }

    /// Starts a spec that flushes at `size` items.
    pub fn size(size: usize) -> BatchSpecBuilder {
        BatchSpecBuilder::default().size(size)
    }

    /// Starts a spec that flushes `timeout` after its first item.
    pub fn timeout(timeout: impl IntoTimeout) -> BatchSpecBuilder {
        BatchSpecBuilder::default().timeout(timeout)
    }

    /// The size trigger, if any.
    pub fn max_size(&self) -> Option<NonZeroUsize> {
        self.size
    }

    /// The timeout trigger, if any.
    pub fn max_wait(&self) -> Option<Duration> {
        self.timeout
    }

    /// `batch_size / size` for a flushed batch of `batch_size` items (1.0 without a size trigger).
    pub fn efficiency(&self, batch_size: usize) -> f64 {
        match self.size {
            #[expect(
                clippy::cast_precision_loss,
                reason = "batch sizes are far below 2^52; a ratio needs no exactness past that"
            )]
            Some(size) => batch_size as f64 / size.get() as f64,
            None => 1.0,
        }
    }
}

/// Builds a [`BatchSpec`]; validation happens in [`BatchSpecBuilder::build`], or at
/// agent registration when the builder is passed to a subscription.
#[derive(Debug, Clone, Copy, Default)]
#[must_use = "a batch spec builder does nothing until it is built or passed to a subscription"]
pub struct BatchSpecBuilder {
    size: Option<usize>,
    timeout: Option<Result<Duration, InvalidDuration>>,
}

impl BatchSpecBuilder {
    /// Flush at `size` items.
    pub fn size(mut self, size: usize) -> Self {
        self.size = Some(size);
        self
    }

    /// Flush `timeout` after the first item.
    pub fn timeout(mut self, timeout: impl IntoTimeout) -> Self {
        self.timeout = Some(timeout.into_timeout());
        self
    }

    /// The validated spec.
    ///
    /// # Errors
    /// See [`BatchSpec::new`]; also a negative `TimeDelta` timeout.
    pub fn build(self) -> Result<BatchSpec, InvalidBatchSpec> {
        let timeout = self.timeout.transpose()?;
        BatchSpec::new(self.size, timeout)
    }
}

/// Anything a subscription accepts as a batch spec: a [`BatchSpec`] or its builder.
pub trait IntoBatchSpec {
    /// The validated spec.
    ///
    /// # Errors
    /// [`InvalidBatchSpec`] when the spec is invalid.
    fn into_batch_spec(self) -> Result<BatchSpec, InvalidBatchSpec>;
}

impl IntoBatchSpec for BatchSpec {
    fn into_batch_spec(self) -> Result<BatchSpec, InvalidBatchSpec> {
        Ok(self)
    }
}

impl IntoBatchSpec for BatchSpecBuilder {
    fn into_batch_spec(self) -> Result<BatchSpec, InvalidBatchSpec> {
        self.build()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    #[test]
    fn invalid_specs_are_rejected_with_messages() {
        let cases: [(Result<BatchSpec, InvalidBatchSpec>, &str); 4] = [
            (
                BatchSpec::size(0).build(),
                "batch size must be at least 1, got 0",
            ),
            (
                BatchSpec::timeout(Duration::ZERO).build(),
                "batch timeout must be greater than zero, got 0s",
            ),
            (
                BatchSpec::new(None, None),
                "a batch spec needs a size, a timeout, or both; got neither",
            ),
            (
                BatchSpec::size(5).timeout(TimeDelta::seconds(-5)).build(),
                "batch timeout must be positive: duration must not be negative, got -PT5S",
            ),
        ];
        for (result, message) in cases {
            assert_eq!(result.unwrap_err().to_string(), message);
        }
    }

    #[test]
    fn valid_specs_keep_their_triggers() {
        let size_only = BatchSpec::size(3).build().unwrap();
        assert_eq!(size_only.max_size(), NonZeroUsize::new(3));
        assert_eq!(size_only.max_wait(), None);
        let timeout_only = BatchSpec::timeout(TimeDelta::milliseconds(250))
            .build()
            .unwrap();
        assert_eq!(timeout_only.max_size(), None);
        assert_eq!(timeout_only.max_wait(), Some(Duration::from_millis(250)));
        assert!((size_only.efficiency(2) - 2.0 / 3.0).abs() < 1e-12);
        assert!((timeout_only.efficiency(7) - 1.0).abs() < 1e-12);
    }
}
