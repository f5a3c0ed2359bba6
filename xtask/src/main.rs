//! `cargo xtask <task>`: the one entry point for development tasks of flock-rs.
//!
//! Every task that builds the workspace links DuckDB from the prebuilt library of
//! the npm package `@duckdb/node-bindings-linux-x64` (see `duckdb.rs`) instead of
//! compiling DuckDB from C++ source, and builds with `--no-default-features` so the
//! `bundled` feature (what users of the facade get) stays off in development.

mod duckdb;
mod examples;
mod fresh_app;
mod release;

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
  ci                       fmt check, clippy, tests, examples, fresh-app, package, docs, msrv: what CI runs
  example NAME [ARGS..]    run one example, e.g. `cargo xtask example payment_batching`
  examples [NAME..]        run every example (or these) with its fast flags; fails if one fails
  bench [ARGS..]           run every benchmark target of the workspace; ARGS go to cargo bench,
                           e.g. `cargo xtask bench --bench throughput -- --quick`
  clippy                   clippy on every target with -D warnings
  traces [PATH]            print the batch flushes in a trace file (default .flock/traces.duckdb)
  package                  `cargo package` every published crate (verified without the C++ DuckDB build)
  docs                     document every published crate as docs.rs does (--cfg docsrs, -D warnings)
  msrv                     check the declared minimum Rust version (rust-version)
  fresh-app                build and run the README's quick start as a new project outside the workspace
  screenshot               run the dashboard's browser test and save docs/images/dashboard.png
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
        "example" => examples::example(&rest),
        "examples" => examples::examples(&rest),
        "bench" => bench(&rest),
        "traces" => traces(&rest),
        "package" => release::package(),
        "docs" => release::docs(),
        "msrv" => release::msrv(),
        "fresh-app" => fresh_app::fresh_app(),
        "screenshot" => screenshot(),
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

/// The cargo target directory (`CARGO_TARGET_DIR`, else `target/`), absolute.
fn target_dir() -> Result<PathBuf> {
    let target = match env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => project_root().join("target"),
    };
    std::path::absolute(&target)
        .with_context(|| format!("cannot resolve path `{}`", target.display()))
}

/// A cargo command with the development environment: the prebuilt DuckDB.
fn cargo_command(args: &[&str]) -> Result<Command> {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(args);
    for (key, value) in duckdb::prebuilt_env()? {
        cmd.env(key, value);
    }
    Ok(cmd)
}

/// Runs cargo with the development environment: the prebuilt DuckDB and no default features.
fn cargo(args: &[&str]) -> Result<()> {
    let mut cmd = cargo_command(args)?;
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

/// The README's dashboard screenshot, taken by the browser test (headless
/// Chromium: Debian's `chromium` and `chromium-driver`).
fn screenshot() -> Result<()> {
    let path = project_root().join("docs/images/dashboard.png");
    std::fs::create_dir_all(path.parent().expect("docs/images has a parent"))?;
    let mut cmd = cargo_command(&[
        "test",
        "--no-default-features",
        "--package",
        "flock-rs-server",
        "--test",
        "it",
        "--",
        "--exact",
        "browser::the_dashboard_shows_a_batch_filling_then_its_flush",
    ])?;
    cmd.env("FLOCK_SCREENSHOT", &path);
    let status = cmd.status().context("failed to start cargo")?;
    if !status.success() {
        bail!("the browser test failed ({status}); is chromium-driver installed?");
    }
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
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
    test(&[])?;
    examples::examples(&[])?;
    fresh_app::fresh_app()?;
    release::package()?;
    release::docs()?;
    release::msrv()
}

/// Every benchmark of the workspace, in release mode, with the development DuckDB.
/// Unless the arguments pick targets themselves, only the `[[bench]]` targets run
/// (plain `cargo bench` would also run every library's unit tests in release mode).
fn bench(extra: &[String]) -> Result<()> {
    let mut args = vec!["bench", "--workspace", "--no-default-features"];
    let picks_targets = extra.iter().take_while(|a| *a != "--").any(|a| {
        [
            "--bench",
            "--benches",
            "--lib",
            "--bin",
            "--bins",
            "--test",
            "--tests",
            "--all-targets",
        ]
        .iter()
        .any(|flag| a == flag || a.starts_with(&format!("{flag}=")))
    });
    if !picks_targets {
        args.extend(["--bench", "*"]);
    }
    args.extend(extra.iter().map(String::as_str));
    cargo(&args)
}

fn traces(rest: &[String]) -> Result<()> {
    let mut args = vec![
        "run",
        "--quiet",
        "--no-default-features",
        "--package",
        "flock-rs-trace-duckdb",
        "--bin",
        "flock-traces",
    ];
    if let Some(path) = rest.first() {
        args.extend(["--", path.as_str()]);
    }
    cargo(&args)
}
