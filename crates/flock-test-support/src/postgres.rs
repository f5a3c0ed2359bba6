//! The PostgreSQL the tests run against: the one `FLOCK_TEST_POSTGRES_URL` names.
//!
//! `cargo xtask test` (the README's test command, and CI's) always sets it,
//! starting a throw-away server when none runs. Without it:
//!
//! - in CI (`CI` set, as `.ci/run` and GitHub Actions run), a test that needs
//!   PostgreSQL **fails**, saying how to provide one: CI never passes over them;
//! - on a developer's machine (plain `cargo test`), it passes over its body and
//!   says so on stderr (`cargo test -- --nocapture` shows it), so the rest of the
//!   workspace's tests stay usable without a database.

/// The variable the tests read the server's URL from.
pub const URL_VAR: &str = "FLOCK_TEST_POSTGRES_URL";

/// How to get a server, for messages.
pub const HOW: &str = "run the tests with `cargo xtask test` (it starts a throw-away PostgreSQL), \
     or start one with `export FLOCK_TEST_POSTGRES_URL=$(cargo xtask postgres start)` \
     (stop it with `cargo xtask postgres stop`)";

/// The server's URL; `None` (after a note on stderr) when a developer runs the
/// tests without one. Panics in CI without one.
#[must_use]
pub fn url() -> Option<String> {
    if let Ok(url) = std::env::var(URL_VAR)
        && !url.is_empty()
    {
        return Some(url);
    }
    let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(
        !in_ci,
        "{URL_VAR} is not set: this test needs PostgreSQL, and CI never passes over it; {HOW}"
    );
    eprintln!("skipped: {URL_VAR} is not set and this test needs PostgreSQL; {HOW}");
    None
}
