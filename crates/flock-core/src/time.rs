//! The one place `flock-core` reads the time: defaults for callers that bring no
//! clock of their own (`Artifact::new`, a filter without `as_of`). The runtime
//! passes its own clock's readings everywhere else.

use chrono::{DateTime, Utc};

/// Now, in UTC, from the system clock.
#[expect(
    clippy::disallowed_methods,
    reason = "the time module is where flock-core reads the time"
)]
pub(crate) fn utc_now() -> DateTime<Utc> {
    Utc::now()
}
