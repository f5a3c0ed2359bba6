//! Stock DuckDB (the Python `duckdb` package, which `.ci/run` installs), for tests
//! that read a trace file the way a user would.

/// Runs the Python program `program` with `args`; returns its stdout. Fails with a
/// hint when `python3` or its `duckdb` package is missing.
///
/// # Panics
/// When `python3` cannot run, `duckdb` is not installed, or the program fails.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(program)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("cannot run python3 ({err}); stock DuckDB tests need it"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named 'duckdb'"),
        "stock DuckDB tests need the duckdb Python package: python3 -m pip install duckdb"
    );
    assert!(output.status.success(), "python3 failed: {stderr}");
    String::from_utf8(output.stdout).unwrap()
}
