//! `cargo xtask <task>`: the one entry point for development tasks of flock-rs.
//!
//! Every task that builds the workspace links DuckDB from the prebuilt library of
//! the npm package `@duckdb/node-bindings-linux-x64` (see `duckdb.rs`) instead of
//! compiling DuckDB from C++ source, and builds with `--no-default-features` so the
//! `bundled` feature (what users of the facade get) stays off in development.

mod duckdb;

use std::{
    env,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context, Result, bail};

const USAGE: &str = "\
usage: cargo xtask <task> [args]

tasks:
  test [ARGS..]            run every test of the workspace (unit, integration, doc)
  ci                       fmt check, clippy -D warnings, tests: what CI runs
  example NAME [ARGS..]    run one example, e.g. `cargo xtask example payment_batching`
  clippy                   clippy on every target with -D warnings
  traces [PATH]            print the batch flushes in a trace file (default .flock/traces.duckdb)
  cargo ARGS..             any cargo command with the development DuckDB set up
";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut args = env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let root = project_root();
    env::set_current_dir(&root)?;
    match task.as_str() {
        "test" => test(&rest),
        "ci" => ci(),
        "clippy" => clippy(),
        "example" => example(&rest),
        "traces" => traces(&rest),
        "cargo" => cargo(&rest.iter().map(String::as_str).collect::<Vec<_>>()),
        "" | "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown task `{other}`\n\n{USAGE}"),
    }
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Runs cargo with the development environment: the prebuilt DuckDB and no default features.
fn cargo(args: &[&str]) -> Result<()> {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(args);
    for (key, value) in duckdb::prebuilt_env()? {
        cmd.env(key, value);
    }
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = cmd.status().context("failed to start cargo")?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

fn test(extra: &[String]) -> Result<()> {
    let mut args = vec!["test", "--workspace", "--no-default-features"];
    args.extend(extra.iter().map(String::as_str));
    cargo(&args)
}

fn clippy() -> Result<()> {
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--no-default-features",
        "--",
        "-D",
        "warnings",
    ])
    .context("clippy found problems; fix them or run `cargo xtask clippy` to see them again")
}

fn ci() -> Result<()> {
    let status = Command::new("cargo")
        .args(["fmt", "--all", "--check"])
        .status()
        .context("failed to start cargo fmt")?;
    if !status.success() {
        bail!("formatting differs; run `cargo fmt --all` and commit the result");
    }
    clippy()?;
    test(&[])
}

fn example(rest: &[String]) -> Result<()> {
    let Some((name, extra)) = rest.split_first() else {
        bail!("which example? e.g. `cargo xtask example payment_batching`");
    };
    let mut args = vec![
        "run",
        "--quiet",
        "--no-default-features",
        "--package",
        "flock-examples",
        "--example",
        name.as_str(),
    ];
    if !extra.is_empty() {
        args.push("--");
        args.extend(extra.iter().map(String::as_str));
    }
    cargo(&args)
}

fn traces(rest: &[String]) -> Result<()> {
    let mut args = vec![
        "run",
        "--quiet",
        "--no-default-features",
        "--package",
        "flock-trace-duckdb",
        "--bin",
        "flock-traces",
    ];
    if let Some(path) = rest.first() {
        args.extend(["--", path.as_str()]);
    }
    cargo(&args)
}
