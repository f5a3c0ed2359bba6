//! `cargo xtask example` and `cargo xtask examples`: the examples of
//! `examples/Cargo.toml`, each run with its fast flags, and each one's command line
//! checked (`--help` prints the usage and runs nothing; an unknown option fails with
//! exit code 2).

use std::{
    fs,
    process::{Command, Output},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::{cargo, cargo_command};

pub(crate) fn example(rest: &[String]) -> Result<()> {
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
pub(crate) fn examples(only: &[String]) -> Result<()> {
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
        let shown = format!("{} --help / an unknown option", run.name);
        let started = Instant::now();
        let outcome = check_command_line(&run.name);
        if let Err(err) = &outcome {
            println!("\n=== {shown}: FAILED: {err:#}");
        }
        results.push((shown, started.elapsed(), outcome));
    }
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

/// The option no example knows, to check that it is refused.
const UNKNOWN_OPTION: &str = "--no-such-option";
/// The exit code of a command-line mistake (`flock_examples::USAGE_ERROR`).
const USAGE_ERROR: i32 = 2;

/// Checks an example's command line: `--help` exits 0 having printed the usage and
/// nothing else (the demo did not run), and an unknown option exits with
/// [`USAGE_ERROR`], naming it on stderr, before the demo prints anything.
fn check_command_line(name: &str) -> Result<()> {
    let run = |arg: &str| -> Result<Output> {
        let extra = [arg.to_owned()];
        let mut cmd = cargo_command(&example_args(name, &extra))?;
        for var in OFFLINE_UNSET {
            cmd.env_remove(var);
        }
        cmd.output().context("failed to start cargo")
    };
    check_help(name, &run("--help")?)?;
    check_refusal(name, &run(UNKNOWN_OPTION)?)
}

fn check_help(name: &str, help: &Output) -> Result<()> {
    let stdout = String::from_utf8_lossy(&help.stdout);
    if !help.status.success() {
        bail!("`{name} --help` exited with {}", help.status);
    }
    let first = stdout.lines().next().unwrap_or("");
    let last = stdout.lines().last().unwrap_or("");
    if !first.starts_with(&format!("usage: {name} ")) || !last.contains("--help") {
        bail!(
            "`{name} --help` should print only its usage (from `usage: {name} ` to the \
             `--help` line), printed:\n{stdout}"
        );
    }
    Ok(())
}

fn check_refusal(name: &str, refused: &Output) -> Result<()> {
    let stdout = String::from_utf8_lossy(&refused.stdout);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    if refused.status.code() != Some(USAGE_ERROR) {
        bail!(
            "`{name} {UNKNOWN_OPTION}` should exit with {USAGE_ERROR}, exited with {}",
            refused.status
        );
    }
    if !stdout.is_empty() || !stderr.contains(&format!("invalid option '{UNKNOWN_OPTION}'")) {
        bail!(
            "`{name} {UNKNOWN_OPTION}` should name the option on stderr and run nothing; \
             stdout:\n{stdout}\nstderr:\n{stderr}"
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

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    fn output(code: i32, stdout: &str, stderr: &str) -> Output {
        Output {
            status: std::process::ExitStatus::from_raw(code << 8),
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    #[test]
    fn help_must_print_the_usage_and_nothing_else() {
        let usage = "usage: demo [OPTIONS]\n\nA demo.\n\noptions:\n  -h, --help  print this help and exit\n";
        check_help("demo", &output(0, usage, "")).unwrap();
        let ran_the_demo = format!("{usage}demo: 25 transactions flushed by size\n");
        assert!(check_help("demo", &output(0, &ran_the_demo, "")).is_err());
        assert!(check_help("demo", &output(0, "demo: 25 transactions\n", "")).is_err());
        assert!(check_help("demo", &output(1, usage, "")).is_err());
    }

    #[test]
    fn an_unknown_option_must_fail_with_2_before_the_demo_runs() {
        let refused = "demo: error: invalid option '--no-such-option'\n\nusage: demo\n";
        check_refusal("demo", &output(2, "", refused)).unwrap();
        assert!(check_refusal("demo", &output(0, "demo ran\n", "")).is_err());
        assert!(check_refusal("demo", &output(1, "", refused)).is_err());
        assert!(check_refusal("demo", &output(2, "demo ran\n", refused)).is_err());
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
        let manifest =
            fs::read_to_string(crate::project_root().join("examples/Cargo.toml")).unwrap();
        let runs = parse_examples(&manifest).unwrap();
        assert!(
            runs.iter()
                .any(|r| r.name == "payment_batching" && r.args == ["--fast"])
        );
    }
}
