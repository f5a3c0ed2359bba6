//! `cargo xtask <task>`: the one entry point for development tasks of flock-rs.
//!
//! Every task that builds the workspace links DuckDB from the prebuilt library of
//! the npm package `@duckdb/node-bindings-linux-x64` (see `duckdb.rs`) instead of
//! compiling DuckDB from C++ source, and builds with `--no-default-features` so the
//! `duckdb` feature (what users of the facade get: DuckDB compiled from source)
//! stays off in development; `DEV_FEATURES` turns on the prebuilt-library variant
//! and OTLP instead. `cargo xtask no-duckdb` checks the build without DuckDB.

mod duckdb;
mod examples;
mod fresh_app;
mod postgres;
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
  test [ARGS..]            run every test of the workspace (unit, integration, doc); starts a
                           throw-away PostgreSQL for the tests that need one unless FLOCK_TEST_POSTGRES_URL is set
  ci                       fmt check, clippy, tests, no-duckdb, examples, fresh-app, package, docs, msrv:
                           what CI runs
  example NAME [ARGS..]    run one example, e.g. `cargo xtask example payment_batching`
  examples [NAME..]        run every example (or these) with its fast flags; fails if one fails
  bench [ARGS..]           run every benchmark target of the workspace; ARGS go to cargo bench,
                           e.g. `cargo xtask bench --bench throughput -- --quick`
  clippy                   clippy on every target with -D warnings
  no-duckdb                the facade built without DuckDB (`--no-default-features --features
                           llm,otlp`): clippy, then tests run with no libduckdb in reach
  traces [PATH]            print the batch flushes in a trace file (default .flock/traces.duckdb)
  package                  `cargo package` every published crate (verified without the C++ DuckDB build)
  docs                     document every published crate as docs.rs does (--cfg docsrs, -D warnings)
  msrv                     check the declared minimum Rust version (rust-version)
  fresh-app                build and run the README's quick start as a new project outside the workspace
  screenshot               run the dashboard's browser test and save docs/images/dashboard.png
  postgres start|stop|url|status
                           a throw-away PostgreSQL (Debian's package) for tests and benchmarks;
                           `start` prints its URL, e.g. `export FLOCK_TEST_POSTGRES_URL=$(cargo xtask postgres start)`
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
        "no-duckdb" => no_duckdb(),
        "example" => examples::example(&rest),
        "examples" => examples::examples(&rest),
        "bench" => bench(&rest),
        "traces" => traces(&rest),
        "package" => release::package(),
        "docs" => release::docs(),
        "msrv" => release::msrv(),
        "fresh-app" => fresh_app::fresh_app(),
        "screenshot" => screenshot(),
        "postgres" => postgres::postgres(&rest),
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

/// Features development builds turn on in place of the defaults, per package: the
/// DuckDB trace file linking the prebuilt library (never `bundled`, ADR 0002), OTLP,
/// the LLM engine with its local server, and the PostgreSQL store, so that tests and
/// clippy cover them
/// whether one package or the whole workspace is built.
const DEV_FEATURES: [(&str, &str); 7] = [
    ("flock-rs", "duckdb-prebuilt"),
    ("flock-rs", "otlp"),
    ("flock-rs", "llm-mock"),
    ("flock-rs", "postgres"),
    ("flock-rs-engines", "llm-mock"),
    ("flock-rs-trace-duckdb", "duckdb"),
    ("flock-rs-trace-duckdb", "otlp"),
];

/// `cargo <command>` over the workspace, or over the packages `extra` selects
/// (`-p NAME`), without default features but with [`DEV_FEATURES`], then `extra`.
fn dev_args<'a>(command: &'a str, extra: &'a [String]) -> Vec<String> {
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let before_dashes = extra.iter().take_while(|a| **a != "--");
    let mut selected = Vec::new();
    let mut args = before_dashes.clone().peekable();
    while let Some(arg) = args.next() {
        if *arg == "-p" || *arg == "--package" {
            selected.extend(args.next().copied());
        } else if let Some(name) = arg.strip_prefix("--package=") {
            selected.push(name);
        }
    }
    let features: Vec<String> = DEV_FEATURES
        .iter()
        .filter(|(package, _)| selected.is_empty() || selected.contains(package))
        .map(|(package, feature)| format!("{package}/{feature}"))
        .collect();
    let mut out = vec![command.to_owned()];
    if selected.is_empty() {
        out.push("--workspace".to_owned());
    }
    out.push("--no-default-features".to_owned());
    if !features.is_empty() {
        out.extend(["--features".to_owned(), features.join(",")]);
    }
    out.extend(extra.iter().map(|a| (*a).to_owned()));
    out
}

/// Every test of the workspace (or of the packages `extra` selects). The tests that
/// need PostgreSQL get the server `FLOCK_TEST_POSTGRES_URL` names, else a throw-away
/// cluster (`postgres.rs`), started here and stopped after the tests when none was
/// running.
fn test(extra: &[String]) -> Result<()> {
    let args = dev_args("test", extra);
    with_postgres(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Runs cargo as [`cargo`] does, with `FLOCK_TEST_POSTGRES_URL` set to the
/// PostgreSQL of [`postgres::for_run`] (which stops a cluster it started on return).
fn with_postgres(args: &[&str]) -> Result<()> {
    let postgres = postgres::for_run()?;
    let mut cmd = cargo_command(args)?;
    cmd.env(postgres::URL_VAR, postgres.url());
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = cmd.status().context("failed to start cargo")?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
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
    let extra = ["--all-targets", "--", "-D", "warnings"].map(String::from);
    let args = dev_args("clippy", &extra);
    cargo(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .context("clippy found problems; fix them or run `cargo xtask clippy` to see them again")
}

/// The facade as an application gets it with `default-features = false`: no DuckDB
/// compiled, linked or loaded. Builds without the development DuckDB environment
/// (clippy on the facade, and on the trace crate with no exporter and with OTLP
/// only) and runs tests (spans to OTLP, publishing) without `LD_LIBRARY_PATH`, so a
/// binary that needed `libduckdb` would not even start.
fn no_duckdb() -> Result<()> {
    let plain = |args: &[&str]| -> Result<()> {
        let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(args)
            .env_remove("DUCKDB_LIB_DIR")
            .env_remove("LD_LIBRARY_PATH");
        eprintln!("xtask: cargo {} (no DuckDB in reach)", args.join(" "));
        let status = cmd.status().context("failed to start cargo")?;
        if !status.success() {
            bail!("`cargo {}` failed ({status})", args.join(" "));
        }
        Ok(())
    };
    let build = [
        "-p",
        "flock-rs",
        "--no-default-features",
        "--features",
        "llm,otlp",
    ];
    let mut clippy_args = vec!["clippy"];
    clippy_args.extend(build);
    clippy_args.extend(["--all-targets", "--", "-D", "warnings"]);
    plain(&clippy_args).context("the facade without DuckDB has clippy warnings")?;
    // The trace crate alone, with no exporter at all (the README's quick start
    // builds it so) and with OTLP only.
    for features in ["", "otlp"] {
        let mut args = vec![
            "clippy",
            "-p",
            "flock-rs-trace-duckdb",
            "--no-default-features",
        ];
        if !features.is_empty() {
            args.extend(["--features", features]);
        }
        args.extend(["--lib", "--", "-D", "warnings"]);
        plain(&args).context("flock-rs-trace-duckdb without DuckDB has clippy warnings")?;
    }
    let mut test_args = vec!["test"];
    test_args.extend(build);
    test_args.extend(["--test", "it", "--", "trace_setup::otlp", "publishing"]);
    plain(&test_args).context("the facade without DuckDB does not build or run")
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
    no_duckdb()?;
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
    let mut args = dev_args("bench", extra);
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
        let at = args.iter().position(|a| a == "--").unwrap_or(args.len());
        args.splice(at..at, ["--bench".to_owned(), "*".to_owned()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // The PostgreSQL store's benchmark (`--bench postgres`) needs a server.
    if !picks_targets || extra.iter().any(|a| a.contains("postgres")) {
        with_postgres(&args)
    } else {
        cargo(&args)
    }
}

fn traces(rest: &[String]) -> Result<()> {
    let mut args = vec![
        "run",
        "--quiet",
        "--no-default-features",
        "--package",
        "flock-rs-trace-duckdb",
        "--features",
        "duckdb",
        "--bin",
        "flock-traces",
    ];
    if let Some(path) = rest.first() {
        args.extend(["--", path.as_str()]);
    }
    cargo(&args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_builds_select_the_dev_features_of_the_selected_packages() {
        let args = |extra: &[&str]| {
            dev_args(
                "test",
                &extra.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>(),
            )
            .join(" ")
        };
        assert_eq!(
            args(&[]),
            "test --workspace --no-default-features --features \
             flock-rs/duckdb-prebuilt,flock-rs/otlp,flock-rs/llm-mock,flock-rs/postgres,\
             flock-rs-engines/llm-mock,flock-rs-trace-duckdb/duckdb,flock-rs-trace-duckdb/otlp"
        );
        assert_eq!(
            args(&["-p", "flock-rs", "--test", "it", "--", "-p", "x"]),
            "test --no-default-features --features \
             flock-rs/duckdb-prebuilt,flock-rs/otlp,flock-rs/llm-mock,flock-rs/postgres \
             -p flock-rs --test it -- -p x"
        );
        assert_eq!(
            args(&["--package=flock-rs-batch"]),
            "test --no-default-features --package=flock-rs-batch"
        );
    }
}
