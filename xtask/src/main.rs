//! `cargo xtask <task>`: the one entry point for development tasks of flock-rs.
//!
//! Every task that builds the workspace links DuckDB from the prebuilt library of
//! the npm package `@duckdb/node-bindings-linux-x64` (see `duckdb.rs`) instead of
//! compiling DuckDB from C++ source, and builds with `--no-default-features` so the
//! `duckdb` feature (what users of the facade get: DuckDB compiled from source)
//! stays off in development; `DEV_FEATURES` turns on the prebuilt-library variant
//! and OTLP instead. `cargo xtask no-duckdb` checks the build without DuckDB.

mod duckdb;

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

const USAGE: &str = "\
usage: cargo xtask <task> [args]

tasks:
  test [ARGS..]            run every test of the workspace (unit, integration, doc)
  ci                       fmt check, clippy -D warnings, tests, every example: what CI runs
  example NAME [ARGS..]    run one example, e.g. `cargo xtask example payment_batching`
  examples [NAME..]        run every example (or these) with its fast flags; fails if one fails
  bench [ARGS..]           run every benchmark target of the workspace; ARGS go to cargo bench,
                           e.g. `cargo xtask bench --bench throughput -- --quick`
  clippy                   clippy on every target with -D warnings
  no-duckdb                the facade built without DuckDB (`--no-default-features --features
                           llm,otlp`): clippy, then tests run with no libduckdb in reach
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
        "no-duckdb" => no_duckdb(),
        "example" => example(&rest),
        "examples" => examples(&rest),
        "bench" => bench(&rest),
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
/// and the LLM engine with its local server, so that tests and clippy cover them
/// whether one package or the whole workspace is built.
const DEV_FEATURES: [(&str, &str); 6] = [
    ("flock", "duckdb-prebuilt"),
    ("flock", "otlp"),
    ("flock", "llm-mock"),
    ("flock-engines", "llm-mock"),
    ("flock-trace-duckdb", "duckdb"),
    ("flock-trace-duckdb", "otlp"),
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

fn test(extra: &[String]) -> Result<()> {
    let args = dev_args("test", extra);
    cargo(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn clippy() -> Result<()> {
    let extra = ["--all-targets", "--", "-D", "warnings"].map(String::from);
    let args = dev_args("clippy", &extra);
    cargo(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .context("clippy found problems; fix them or run `cargo xtask clippy` to see them again")
}

/// The facade as an application gets it with `default-features = false`: no DuckDB
/// compiled, linked or loaded. Builds without the development DuckDB environment and
/// runs tests (spans to OTLP, publishing) without `LD_LIBRARY_PATH`, so a binary
/// that needed `libduckdb` would not even start.
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
        "flock",
        "--no-default-features",
        "--features",
        "llm,otlp",
    ];
    let mut clippy_args = vec!["clippy"];
    clippy_args.extend(build);
    clippy_args.extend(["--all-targets", "--", "-D", "warnings"]);
    plain(&clippy_args).context("the facade without DuckDB has clippy warnings")?;
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
    examples(&[])
}

fn example(rest: &[String]) -> Result<()> {
    let Some((name, extra)) = rest.split_first() else {
        bail!("which example? e.g. `cargo xtask example payment_batching`");
    };
    cargo(&example_args(name, extra))
}

/// `cargo run` arguments for one example: what `cargo xtask example` and
/// `cargo xtask examples` both run.
fn example_args<'a>(name: &'a str, extra: &'a [String]) -> Vec<&'a str> {
    let mut args = vec![
        "run",
        "--quiet",
        "--no-default-features",
        "--package",
        "flock-examples",
        "--example",
        name,
    ];
    if !extra.is_empty() {
        args.push("--");
        args.extend(extra.iter().map(String::as_str));
    }
    args
}

/// How long one example may run before `cargo xtask examples` stops it (they take
/// seconds; this catches a hang).
const EXAMPLE_TIME_LIMIT: Duration = Duration::from_secs(300);
/// Variables that would send the LLM examples to a real (paid) endpoint.
const OFFLINE_UNSET: [&str; 2] = ["OPENAI_API_KEY", "OPENAI_BASE_URL"];

/// One example to run, with the flags that make it finish in seconds.
#[derive(Debug)]
struct ExampleRun {
    name: String,
    args: Vec<String>,
}

/// Runs every example declared in `examples/Cargo.toml` (or those named), each the
/// way `cargo xtask example` runs it, with the flags of
/// `[package.metadata.xtask.example-args]`; offline (without `OPENAI_*`), so the LLM
/// examples use their local server. Prints a summary and fails if one failed.
fn examples(only: &[String]) -> Result<()> {
    let manifest =
        fs::read_to_string("examples/Cargo.toml").context("cannot read examples/Cargo.toml")?;
    let mut runs = parse_examples(&manifest)?;
    if let Some(unknown) = only.iter().find(|n| !runs.iter().any(|r| &r.name == *n)) {
        let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
        bail!(
            "no example `{unknown}` in examples/Cargo.toml; the examples are: {}",
            names.join(", ")
        );
    }
    if !only.is_empty() {
        runs.retain(|r| only.contains(&r.name));
    }
    // One build first, so a compile error stops everything and durations are runs.
    cargo(&[
        "build",
        "--quiet",
        "--no-default-features",
        "--package",
        "flock-examples",
        "--examples",
    ])
    .context("the examples do not build")?;

    let mut results = Vec::new();
    for run in &runs {
        let shown = if run.args.is_empty() {
            run.name.clone()
        } else {
            format!("{} {}", run.name, run.args.join(" "))
        };
        println!("\n=== example {shown}");
        let mut cmd = cargo_command(&example_args(&run.name, &run.args))?;
        for var in OFFLINE_UNSET {
            cmd.env_remove(var);
        }
        let started = Instant::now();
        let outcome = run_with_limit(&mut cmd, EXAMPLE_TIME_LIMIT);
        let elapsed = started.elapsed();
        let verdict = match &outcome {
            Ok(()) => "ok".to_owned(),
            Err(err) => format!("FAILED: {err:#}"),
        };
        println!("=== {shown}: {verdict} ({:.1} s)", elapsed.as_secs_f64());
        results.push((shown, elapsed, outcome));
    }

    println!("\nexamples:");
    let width = results.iter().map(|(s, _, _)| s.len()).max().unwrap_or(0);
    for (shown, elapsed, outcome) in &results {
        let status = if outcome.is_ok() { "ok" } else { "FAILED" };
        println!(
            "  {shown:<width$}  {status:<6} {:>6.1} s",
            elapsed.as_secs_f64()
        );
    }
    let total: Duration = results.iter().map(|(_, d, _)| *d).sum();
    let failed: Vec<&str> = results
        .iter()
        .filter(|(_, _, o)| o.is_err())
        .map(|(s, _, _)| s.as_str())
        .collect();
    println!(
        "  {} of {} passed in {:.1} s",
        results.len() - failed.len(),
        results.len(),
        total.as_secs_f64()
    );
    if !failed.is_empty() {
        bail!(
            "{} example(s) failed: {}; rerun one with `cargo xtask example NAME ARGS`",
            failed.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// Runs `cmd` (output goes to the terminal) and fails when it fails or outlives
/// `limit`, killing it. `cargo run` replaces itself with the program on Unix, so the
/// child is the example itself.
fn run_with_limit(cmd: &mut Command, limit: Duration) -> Result<()> {
    let mut child = cmd.spawn().context("failed to start cargo")?;
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            if status.success() {
                return Ok(());
            }
            bail!("exited with {status}");
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "still running after {} s, stopped",
                limit.as_secs_f64().round()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The `[[example]]` names of a manifest, in order, with the flags its
/// `[package.metadata.xtask.example-args]` table gives them (`name = ["--flag"]`).
/// A small line parser: xtask stays on std and anyhow.
fn parse_examples(manifest: &str) -> Result<Vec<ExampleRun>> {
    let mut runs = Vec::new();
    let mut args: Vec<(String, Vec<String>)> = Vec::new();
    let mut section = "";
    for (n, raw) in manifest.lines().enumerate() {
        let line = raw.split(" #").next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            section = line;
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match section {
            "[[example]]" if key == "name" => runs.push(ExampleRun {
                name: unquote(value)
                    .with_context(|| format!("examples/Cargo.toml:{}: `{raw}`", n + 1))?,
                args: Vec::new(),
            }),
            "[package.metadata.xtask.example-args]" => {
                let list = value
                    .strip_prefix('[')
                    .and_then(|v| v.strip_suffix(']'))
                    .with_context(|| {
                        format!(
                            "examples/Cargo.toml:{}: example args must be a one-line list of strings, got `{raw}`",
                            n + 1
                        )
                    })?;
                let flags = list
                    .split(',')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(unquote)
                    .collect::<Result<Vec<_>>>()
                    .with_context(|| format!("examples/Cargo.toml:{}: `{raw}`", n + 1))?;
                args.push((key.to_owned(), flags));
            }
            _ => {}
        }
    }
    for (name, flags) in args {
        let run = runs.iter_mut().find(|r| r.name == name).with_context(|| {
            format!("examples/Cargo.toml gives args to `{name}`, which is no [[example]]")
        })?;
        run.args = flags;
    }
    if runs.is_empty() {
        bail!("examples/Cargo.toml declares no [[example]]");
    }
    Ok(runs)
}

fn unquote(value: &str) -> Result<String> {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .map(str::to_owned)
        .with_context(|| format!("expected a quoted string, got `{value}`"))
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
    cargo(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn traces(rest: &[String]) -> Result<()> {
    let mut args = vec![
        "run",
        "--quiet",
        "--no-default-features",
        "--package",
        "flock-trace-duckdb",
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
             flock/duckdb-prebuilt,flock/otlp,flock/llm-mock,flock-engines/llm-mock,\
             flock-trace-duckdb/duckdb,flock-trace-duckdb/otlp"
        );
        assert_eq!(
            args(&["-p", "flock", "--test", "it", "--", "-p", "x"]),
            "test --no-default-features --features \
             flock/duckdb-prebuilt,flock/otlp,flock/llm-mock -p flock --test it -- -p x"
        );
        assert_eq!(
            args(&["--package=flock-batch"]),
            "test --no-default-features --package=flock-batch"
        );
    }

    #[test]
    fn examples_come_from_the_manifest_with_their_flags() {
        let manifest = r#"
[package]
name = "flock-examples"

[package.metadata.xtask.example-args]
slow = ["--fast", "--seed", "3"] # the default run takes minutes

[dependencies]
name = "not an example"

[[example]]
name = "slow"
path = "slow.rs"

[[example]]
name = "quick"
path = "quick.rs"
"#;
        let runs = parse_examples(manifest).unwrap();
        let runs: Vec<(&str, Vec<&str>)> = runs
            .iter()
            .map(|r| (r.name.as_str(), r.args.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            runs,
            vec![("slow", vec!["--fast", "--seed", "3"]), ("quick", vec![])]
        );
    }

    #[test]
    fn args_for_an_unknown_example_are_an_error() {
        let manifest = "[package.metadata.xtask.example-args]\ngone = [\"--fast\"]\n\n[[example]]\nname = \"here\"\n";
        let err = parse_examples(manifest).unwrap_err();
        assert_eq!(
            err.to_string(),
            "examples/Cargo.toml gives args to `gone`, which is no [[example]]"
        );
    }

    #[test]
    fn a_failing_or_hanging_example_is_a_failure() {
        let err = run_with_limit(&mut Command::new("false"), EXAMPLE_TIME_LIMIT).unwrap_err();
        assert!(err.to_string().starts_with("exited with"), "{err}");
        let mut hang = Command::new("sleep");
        hang.arg("600");
        let err = run_with_limit(&mut hang, Duration::from_millis(50)).unwrap_err();
        assert_eq!(err.to_string(), "still running after 0 s, stopped");
    }

    #[test]
    fn the_workspace_examples_parse() {
        let manifest = fs::read_to_string(project_root().join("examples/Cargo.toml")).unwrap();
        let runs = parse_examples(&manifest).unwrap();
        assert!(
            runs.iter()
                .any(|r| r.name == "payment_batching" && r.args == ["--fast"])
        );
    }
}
