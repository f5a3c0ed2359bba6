//! What the examples' process tests share: finding an example's binary, and the
//! PostgreSQL of the tests that need one.

use std::path::PathBuf;

/// The binary of example `name`: `cargo test` builds the examples next to the test
/// binaries (`target/<profile>/examples/`).
#[allow(
    dead_code,
    reason = "only the tests that run an example's process call it"
)]
pub(crate) fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let binary = profile_dir.join("examples").join(name);
    assert!(
        binary.exists(),
        "{} is missing: run the tests with `cargo xtask test` (cargo test builds the examples)",
        binary.display()
    );
    binary
}

/// The PostgreSQL of a test that needs one (`FLOCK_TEST_POSTGRES_URL`); `None` on a
/// developer's machine without one (the test passes over its body, saying so), a
/// failure in CI (see `flock_test_support::postgres`).
#[allow(dead_code, reason = "only the tests that need PostgreSQL call it")]
pub(crate) fn postgres_url() -> Option<String> {
    flock_test_support::postgres::url()
}
