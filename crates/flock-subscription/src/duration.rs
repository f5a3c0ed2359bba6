//! Durations from `std::time::Duration` or `chrono::TimeDelta` (the guide uses `timedelta`).

use std::time::Duration;

use chrono::TimeDelta;

/// A negative `chrono::TimeDelta` given where a duration is expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("duration must not be negative, got {0}")]
pub struct InvalidDuration(pub TimeDelta);

/// A value usable as a timeout: `std::time::Duration` or `chrono::TimeDelta`.
pub trait IntoTimeout {
    /// The value as a `Duration`.
    ///
    /// # Errors
    /// [`InvalidDuration`] for a negative `TimeDelta`.
    fn into_timeout(self) -> Result<Duration, InvalidDuration>;
}

impl IntoTimeout for Duration {
    fn into_timeout(self) -> Result<Duration, InvalidDuration> {
        Ok(self)
    }
}

impl IntoTimeout for TimeDelta {
    fn into_timeout(self) -> Result<Duration, InvalidDuration> {
        self.to_std().map_err(|_| InvalidDuration(self))
    }
}
