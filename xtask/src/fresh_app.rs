//! `cargo xtask fresh-app`: the README's quick start, as a user would write it from
//! the README alone: a new cargo project outside the workspace whose `Cargo.toml`
//! takes the README's `[dependencies]` and whose `src/main.rs` is the README's
//! program, built, run, and its output compared with the output the README shows.
//!
//! The project is new every run (in a temporary directory); its target directory,
//! `<target dir>/fresh-app`, is kept, so after the first run only the program
//! itself compiles. Dependencies resolve afresh from crates.io, as a user's would.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context, Result, bail, ensure};

/// How the application depends on the facade besides its path: the README's
/// choice, which its quick start shows and this checks: without DuckDB (ADR 0012),
/// the fastest first build.
const FACADE_FEATURES: &str = r#"default-features = false, features = ["llm"]"#;
/// Whether that build links DuckDB, from `DUCKDB_LIB_DIR` (the README's prebuilt
/// `libduckdb.so` way; here the development library of `duckdb.rs`). Without it
/// the build and the program run with no DuckDB in reach, as a user's would.
const NEEDS_DUCKDB: bool = false;
/// The README's dependency on the facade: a clone of the repository next to the
/// application.
const CLONE_PREFIX: &str = "../flock-rs/";
const PACKAGE: &str = "first-batch-agent";

/// What the README's "Quick start" section holds.
#[derive(Debug, PartialEq, Eq)]
struct QuickStart {
    /// The `[dependencies]` block, as written.
    dependencies: String,
    /// `src/main.rs`.
    main: String,
    /// What the program prints.
    output: String,
}

pub(crate) fn fresh_app() -> Result<()> {
    let root = crate::project_root();
    let readme = fs::read_to_string(root.join("README.md")).context("cannot read README.md")?;
    let quick = QuickStart::from_readme(&readme)?;
    let dependencies = localize(&quick.dependencies, &root)?;

    let dir = env::temp_dir().join(format!("flock-fresh-app-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let result = build_and_run(&dir, &dependencies, &quick);
    let _ = fs::remove_dir_all(&dir);
    result
}

fn build_and_run(dir: &Path, dependencies: &str, quick: &QuickStart) -> Result<()> {
    let target = crate::target_dir()?.join("fresh-app");
    let mut new = Command::new("cargo");
    new.args(["new", "--quiet", "--vcs", "none", "--name", PACKAGE])
        .arg(dir);
    run(&mut new, "cargo new")?;
    let manifest = dir.join("Cargo.toml");
    let mut toml = fs::read_to_string(&manifest)?;
    let Some((head, _)) = toml.split_once("[dependencies]") else {
        bail!("`cargo new` wrote a Cargo.toml without [dependencies]:\n{toml}");
    };
    toml = format!("{head}{dependencies}");
    fs::write(&manifest, &toml)?;
    fs::write(dir.join("src/main.rs"), &quick.main)?;
    println!("fresh app in {}:\n{toml}", dir.display());

    let env = if NEEDS_DUCKDB {
        crate::duckdb::prebuilt_env()?
    } else {
        Vec::new()
    };
    // A build without DuckDB must not find one by accident.
    let hidden: &[&str] = if NEEDS_DUCKDB {
        &[]
    } else {
        &["DUCKDB_LIB_DIR", "DUCKDB_DOWNLOAD_LIB", "LD_LIBRARY_PATH"]
    };
    let first = !target.exists();
    let mut build = Command::new("cargo");
    build
        .args(["build", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target)
        .envs(env.iter().map(|(k, v)| (*k, v)));
    for var in hidden {
        build.env_remove(var);
    }
    let started = Instant::now();
    run(&mut build, "cargo build of the fresh app")?;
    println!(
        "fresh app: cargo build took {:.0} s ({})",
        started.elapsed().as_secs_f64(),
        if first {
            "a first build: every dependency compiled"
        } else {
            "target directory reused"
        }
    );

    let binary = target.join("debug").join(PACKAGE);
    let mut program = Command::new(&binary);
    program.envs(env.iter().map(|(k, v)| (*k, v)));
    for var in hidden {
        program.env_remove(var);
    }
    let output = program
        .output()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "the fresh app failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    ensure!(
        stdout.trim_end() == quick.output.trim_end(),
        "the fresh app printed\n{stdout}\nbut the README says it prints\n{}",
        quick.output
    );
    println!("fresh app: printed what the README says:\n{stdout}");
    Ok(())
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("failed to start {what}"))?;
    ensure!(status.success(), "{what} failed ({status})");
    Ok(())
}

/// The README's dependencies with the facade's path made absolute (the README's
/// path assumes a clone next to the application), after checking that the README
/// asks for [`FACADE_FEATURES`].
fn localize(dependencies: &str, root: &Path) -> Result<String> {
    let mut found = false;
    let mut lines = Vec::new();
    for line in dependencies.lines() {
        if !line.trim_start().starts_with("flock-rs ") {
            lines.push(line.to_owned());
            continue;
        }
        found = true;
        ensure!(
            line.contains(FACADE_FEATURES),
            "the README's quick start depends on the facade with `{line}`, but \
             `cargo xtask fresh-app` builds it with `{FACADE_FEATURES}`; make them agree \
             (FACADE_FEATURES in xtask/src/fresh_app.rs)"
        );
        let path = line
            .split("path = \"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .with_context(|| format!("no path in `{line}`"))?;
        let inside = path.strip_prefix(CLONE_PREFIX).with_context(|| {
            format!("the README's path `{path}` does not start with `{CLONE_PREFIX}`")
        })?;
        let local: PathBuf = root.join(inside);
        ensure!(
            local.join("Cargo.toml").is_file(),
            "the README's path `{path}` names no crate of this repository ({} has no Cargo.toml)",
            local.display()
        );
        let local = local
            .to_str()
            .context("the repository's path is not UTF-8")?;
        lines.push(line.replacen(path, local, 1));
    }
    ensure!(
        found,
        "the README's quick start has no `flock-rs = ...` dependency"
    );
    Ok(lines.join("\n") + "\n")
}

impl QuickStart {
    /// The first `toml`, `rust` and `text` blocks of the README's "## Quick start"
    /// section.
    fn from_readme(readme: &str) -> Result<Self> {
        let start = readme
            .find("\n## Quick start\n")
            .context("README.md has no `## Quick start` section")?;
        let section = &readme[start + 1..];
        let section = match section[3..].find("\n## ") {
            Some(end) => &section[..end + 3],
            None => section,
        };
        let block = |lang: &str| -> Result<String> {
            let fence = format!("\n```{lang}\n");
            let begin = section
                .find(&fence)
                .with_context(|| format!("the quick start has no ```{lang} block"))?
                + fence.len();
            let len = section[begin..]
                .find("\n```")
                .with_context(|| format!("the quick start's ```{lang} block is not closed"))?;
            Ok(section[begin..begin + len + 1].to_owned())
        };
        let dependencies = block("toml")?;
        ensure!(
            dependencies.starts_with("[dependencies]\n"),
            "the quick start's ```toml block should be the [dependencies] of Cargo.toml"
        );
        Ok(Self {
            dependencies,
            main: block("rust")?,
            output: block("text")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const README: &str = "# x\n\n## Install\n\n```toml\n[dependencies]\nother = 1\n```\n\n\
        ## Quick start\n\nIn Cargo.toml:\n\n```toml\n[dependencies]\n\
        flock-rs = { path = \"../flock-rs/crates/flock\", default-features = false, features = [\"llm\"] }\n\
        serde = \"1\"\n```\n\nand main.rs:\n\n```rust\nfn main() {\n    println!(\"hi\");\n}\n```\n\n\
        ```text\nhi\n```\n\n## Development\n\n```text\nnot this\n```\n";

    #[test]
    fn the_quick_start_blocks_are_found() {
        let quick = QuickStart::from_readme(README).unwrap();
        assert!(quick.dependencies.contains("flock-rs = { path"));
        assert!(!quick.dependencies.contains("other"));
        assert_eq!(quick.main, "fn main() {\n    println!(\"hi\");\n}\n");
        assert_eq!(quick.output, "hi\n");
    }

    #[test]
    fn the_facade_path_is_made_local_and_the_features_checked() {
        let quick = QuickStart::from_readme(README).unwrap();
        let root = crate::project_root();
        let local = localize(&quick.dependencies, &root).unwrap();
        let expected = format!("path = \"{}\"", root.join("crates/flock").display());
        assert!(local.contains(&expected), "{local}");
        assert!(local.contains("serde = \"1\""));
        let other = quick
            .dependencies
            .replace(FACADE_FEATURES, "features = [\"otlp\"]");
        let err = localize(&other, &root).unwrap_err().to_string();
        assert!(err.contains("make them agree"), "{err}");
    }

    #[test]
    fn the_readme_has_a_quick_start_this_task_can_build() {
        let root = crate::project_root();
        let readme = fs::read_to_string(root.join("README.md")).unwrap();
        let quick = QuickStart::from_readme(&readme).unwrap();
        localize(&quick.dependencies, &root).unwrap();
        assert!(quick.main.contains("async fn main()"));
        assert!(!quick.output.trim().is_empty());
    }
}
