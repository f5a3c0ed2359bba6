//! What the examples' process tests share: finding an example's binary.

use std::path::PathBuf;

/// The binary of example `name`: `cargo test` builds the examples next to the test
/// binaries (`target/<profile>/examples/`).
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
