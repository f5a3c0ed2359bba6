//! The one place this crate reads the time: the instant a query judges visibility
//! at when its filter brings none (`ArtifactFilter::as_of`), as `InMemoryStore`
//! does.

use chrono::{DateTime, Utc};

/// Now, in UTC, from the system clock.
#[expect(
    clippy::disallowed_methods,
    reason = "the time module is where this crate reads the time"
)]
pub(crate) fn utc_now() -> DateTime<Utc> {
    Utc::now()
}
