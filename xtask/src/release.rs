//! Checks for publishing: `cargo xtask package` (what crates.io receives),
//! `cargo xtask docs` (what docs.rs builds) and `cargo xtask msrv` (the declared
//! minimum Rust version).
//!
//! None of them compiles DuckDB from C++: the published crates are verified and
//! documented without their default features (the facade's `duckdb`, the trace
//! crate's `bundled`), so nothing of DuckDB is built or linked (ADR 0012).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{cargo, cargo_command, target_dir};

// === the workspace as cargo sees it ===

/// The members of the workspace: those published (no `publish = false`), and the
/// names of the others.
struct Members {
    published: Vec<Published>,
    unpublished: Vec<String>,
}

/// A member of the workspace that is published.
struct Published {
    name: String,
    dir: PathBuf,
    /// `[package.metadata.docs.rs]`, as docs.rs reads it.
    docs_rs: Value,
}

/// `cargo metadata` of the workspace, for the host platform only (so no package of
/// another platform must be downloaded).
fn metadata() -> Result<Value> {
    let host = host_triple()?;
    let output = cargo_command(&[
        "metadata",
        "--format-version",
        "1",
        "--filter-platform",
        &host,
    ])?
    .output()
    .context("failed to start cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).context("cargo metadata printed no JSON")
}

fn host_triple() -> Result<String> {
    let output = Command::new("rustc").arg("-vV").output()?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .context("`rustc -vV` names no host")
}

fn published(metadata: &Value) -> Result<Vec<Published>> {
    Ok(members(metadata)?.published)
}

fn members(metadata: &Value) -> Result<Members> {
    let members = metadata["workspace_members"]
        .as_array()
        .context("metadata without workspace_members")?;
    let mut published = Vec::new();
    let mut unpublished = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        if !members.contains(&package["id"]) {
            continue;
        }
        // `publish` is null when unrestricted, `[]` for `publish = false`.
        if package["publish"].as_array().is_some_and(Vec::is_empty) {
            unpublished.push(package["name"].as_str().context("no name")?.to_owned());
            continue;
        }
        let manifest = package["manifest_path"]
            .as_str()
            .context("no manifest_path")?;
        published.push(Published {
            name: package["name"].as_str().context("no name")?.to_owned(),
            dir: Path::new(manifest)
                .parent()
                .context("manifest without a directory")?
                .to_path_buf(),
            docs_rs: package["metadata"]["docs"]["rs"].clone(),
        });
    }
    if published.is_empty() {
        bail!("no published crate in the workspace");
    }
    Ok(Members {
        published,
        unpublished,
    })
}

// === cargo xtask package ===

/// Files every published crate must ship, and the facade's guide, which its docs
/// include.
const REQUIRED_FILES: [&str; 3] = ["Cargo.toml", "LICENSE-MIT", "LICENSE-APACHE"];
const FACADE: &str = "flock-rs";
const FACADE_FILES: [&str; 3] = ["README.md", "guide/batch-processing.md", "guide/traces.md"];

/// `cargo package` for every published crate.
///
/// `cargo package --workspace` packages the crates together (unpublished
/// workspace dependencies resolve against the crates being packaged) and verifies
/// each by building it from its `.crate` file alone, in the shared target directory.
/// Verification builds with `--no-default-features`: the default features would
/// compile DuckDB from C++ (25+ minutes); without them nothing of DuckDB is built,
/// so verification proves what matters (the package holds everything it needs) at
/// a fraction of the cost. `publish = false` members
/// (examples, xtask) are excluded (`--workspace` alone would package them too).
/// Before that, cheap checks: every
/// `include_str!`/`include_bytes!` stays inside its package (docs.rs and cargo
/// see only the package), and the listed files are in it.
pub(crate) fn package() -> Result<()> {
    let Members {
        published,
        unpublished,
    } = members(&metadata()?)?;
    for krate in &published {
        check_includes_stay_inside(&krate.dir)
            .with_context(|| format!("crate {} reads files outside its package", krate.name))?;
        check_listed_files(krate)?;
    }
    forget_verified_copies()?;
    let mut args = vec![
        "package",
        "--workspace",
        "--no-default-features",
        "--allow-dirty",
    ];
    for name in &unpublished {
        args.extend(["--exclude", name.as_str()]);
    }
    cargo(&args).context("`cargo package` failed for a published crate")?;
    let names: Vec<&str> = published.iter().map(|k| k.name.as_str()).collect();
    println!("packaged and verified: {}", names.join(", "));
    Ok(())
}

/// `cargo package` verifies each crate against the others through a temporary
/// local registry whose crates keep their version from one run to the next, and
/// cargo treats a registry crate as immutable: a reused target directory or
/// registry cache would verify against the copies of an earlier run. Forgets them:
/// the extracted copies under `$CARGO_HOME/registry/src/-*` and the fingerprints of
/// this workspace's crates in the target directory (only they rebuild).
fn forget_verified_copies() -> Result<()> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")));
    let mut stale = Vec::new();
    if let Some(sources) = cargo_home.map(|home| home.join("registry/src"))
        && let Ok(registries) = fs::read_dir(&sources)
    {
        for registry in registries.flatten() {
            // The temporary registries' directories start with '-'; crates.io's do not.
            if registry.file_name().to_string_lossy().starts_with('-') {
                stale.extend(ours(&registry.path()));
            }
        }
    }
    stale.extend(ours(&target_dir()?.join("debug/.fingerprint")));
    for path in stale {
        fs::remove_dir_all(&path)
            .with_context(|| format!("cannot remove the stale copy {}", path.display()))?;
    }
    Ok(())
}

/// The entries of `dir` named after this workspace's packages.
fn ours(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("flock-rs"))
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

fn check_listed_files(krate: &Published) -> Result<()> {
    let output = cargo_command(&["package", "--list", "--allow-dirty", "-p", &krate.name])?
        .output()
        .context("failed to start cargo package --list")?;
    if !output.status.success() {
        bail!(
            "`cargo package --list -p {}` failed:\n{}",
            krate.name,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let listed = String::from_utf8_lossy(&output.stdout);
    let extra: &[&str] = if krate.name == FACADE {
        &FACADE_FILES
    } else {
        &[]
    };
    let missing: Vec<&str> = REQUIRED_FILES
        .iter()
        .chain(extra)
        .filter(|f| !listed.lines().any(|l| l == **f))
        .copied()
        .collect();
    if !missing.is_empty() {
        bail!("the package of {} lacks {}", krate.name, missing.join(", "));
    }
    Ok(())
}

/// Every `include_str!("…")` / `include_bytes!("…")` under `dir/src` names a file
/// inside `dir`.
fn check_includes_stay_inside(dir: &Path) -> Result<()> {
    let root = dir.canonicalize()?;
    for file in rust_files(&dir.join("src"))? {
        let text = fs::read_to_string(&file)?;
        for included in included_paths(&text) {
            let resolved = file
                .parent()
                .context("file without a parent")?
                .join(included);
            let inside = resolved
                .canonicalize()
                .is_ok_and(|path| path.starts_with(&root));
            if !inside {
                bail!(
                    "{} includes `{included}`, which is not a file inside {}",
                    file.display(),
                    root.display()
                );
            }
        }
    }
    Ok(())
}

fn included_paths(text: &str) -> Vec<&str> {
    let mut paths = Vec::new();
    for macro_name in ["include_str!(\"", "include_bytes!(\""] {
        let mut rest = text;
        while let Some(start) = rest.find(macro_name) {
            rest = &rest[start + macro_name.len()..];
            if let Some(end) = rest.find('"') {
                paths.push(&rest[..end]);
                rest = &rest[end..];
            }
        }
    }
    paths
}

fn rust_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(rust_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    Ok(files)
}

// === cargo xtask docs ===

/// Documents every published crate as docs.rs would: with the features and
/// rustdoc arguments of its `[package.metadata.docs.rs]` (so `--cfg docsrs`, whose
/// `doc(cfg)` badges need `feature(doc_cfg)`), rustdoc warnings denied.
///
/// docs.rs uses a nightly toolchain; this uses the installed one with
/// `RUSTC_BOOTSTRAP=1`, which allows that one unstable attribute, so the check needs
/// no second toolchain and shares the build of the dependencies with the other tasks.
pub(crate) fn docs() -> Result<()> {
    let published = published(&metadata()?)?;
    for krate in &published {
        let docs_rs = &krate.docs_rs;
        let mut args: Vec<String> = ["doc", "--no-deps", "-p", &krate.name]
            .map(str::to_owned)
            .to_vec();
        if docs_rs["all-features"].as_bool() == Some(true) {
            args.push("--all-features".into());
        }
        if docs_rs["no-default-features"].as_bool() == Some(true) {
            args.push("--no-default-features".into());
        }
        let features: Vec<&str> = docs_rs["features"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !features.is_empty() {
            args.extend(["--features".to_owned(), features.join(",")]);
        }
        let mut rustdoc_args: Vec<&str> = docs_rs["rustdoc-args"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        // docs.rs passes `--cfg docsrs` whether or not the crate asks for it.
        if !rustdoc_args.contains(&"docsrs") {
            rustdoc_args.extend(["--cfg", "docsrs"]);
        }
        rustdoc_args.extend(["-D", "warnings"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = cargo_command(&args)?;
        cmd.env("RUSTDOCFLAGS", rustdoc_args.join(" "))
            .env("RUSTC_BOOTSTRAP", "1");
        eprintln!(
            "xtask: cargo {} (docs.rs settings of {})",
            args.join(" "),
            krate.name
        );
        let status = cmd.status().context("failed to start cargo doc")?;
        if !status.success() {
            bail!(
                "the docs of {} do not build as docs.rs builds them",
                krate.name
            );
        }
    }
    Ok(())
}

fn toolchain_installed(name: &str) -> bool {
    Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .is_ok_and(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.starts_with(name))
        })
}

// === cargo xtask msrv ===

/// Checks the minimum supported Rust version, `rust-version` of the workspace.
///
/// 1. Every package in the resolved dependency graph (`Cargo.lock`) declares a
///    `rust-version` no newer than ours, or none. Always runs.
/// 2. With that toolchain installed (`rustup toolchain install 1.88`), the whole
///    workspace, every target, compiles with it: the real check. Where it cannot be
///    installed (no network for rustup), this says so and skips it.
/// 3. Std APIs newer than ours are denied by clippy's `incompatible_msrv` lint,
///    which reads `rust-version`; it runs in `cargo xtask clippy` (and so in CI).
///
/// Without step 2, language features newer than the MSRV (new syntax, new lints in
/// `#[expect]`) are not caught; CI's workflow installs the toolchain for step 2.
pub(crate) fn msrv() -> Result<()> {
    let metadata = metadata()?;
    let msrv = workspace_rust_version(&crate::project_root().join("Cargo.toml"))?;
    let too_new = too_new_dependencies(&metadata, msrv)?;
    if !too_new.is_empty() {
        bail!(
            "these dependencies need a newer Rust than the workspace's rust-version {}: {}; \
             pin older versions with `cargo update -p NAME --precise VERSION`",
            show(msrv),
            too_new.join(", ")
        );
    }
    println!(
        "msrv {}: every dependency in Cargo.lock supports it",
        show(msrv)
    );
    let toolchain = show(msrv);
    if toolchain_installed(&toolchain) {
        let target = crate::target_dir()?.join("msrv");
        let mut cmd = Command::new("rustup");
        cmd.args([
            "run",
            &toolchain,
            "cargo",
            "check",
            "--workspace",
            "--all-targets",
        ])
        .args(["--no-default-features", "--locked"])
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTC")
        .env_remove("CARGO");
        for (key, value) in crate::duckdb::prebuilt_env()? {
            cmd.env(key, value);
        }
        eprintln!("xtask: rustup run {toolchain} cargo check --workspace --all-targets");
        let status = cmd.status().context("failed to start rustup")?;
        if !status.success() {
            bail!("the workspace does not build with Rust {toolchain}, its declared rust-version");
        }
        println!("msrv {toolchain}: the workspace builds with it");
    } else {
        println!(
            "msrv {toolchain}: toolchain not installed, so the compile check is skipped \
             (install it with `rustup toolchain install {toolchain}`); std APIs newer than \
             {toolchain} are still refused by clippy's incompatible_msrv lint in `cargo xtask clippy`"
        );
    }
    Ok(())
}

type Version = (u64, u64, u64);

fn show((major, minor, patch): Version) -> String {
    if patch == 0 {
        format!("{major}.{minor}")
    } else {
        format!("{major}.{minor}.{patch}")
    }
}

fn parse_version(text: &str) -> Option<Version> {
    let mut parts = text.trim().split('.').map(str::parse::<u64>);
    let major = parts.next()?.ok()?;
    let minor = parts.next().unwrap_or(Ok(0)).ok()?;
    let patch = parts.next().unwrap_or(Ok(0)).ok()?;
    Some((major, minor, patch))
}

/// `rust-version` of `[workspace.package]` in the root manifest.
fn workspace_rust_version(manifest: &Path) -> Result<Version> {
    let manifest = fs::read_to_string(manifest)?;
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[workspace.package]";
        } else if in_package && let Some(value) = line.strip_prefix("rust-version") {
            let value = value
                .trim()
                .trim_start_matches('=')
                .trim()
                .trim_matches('"');
            return parse_version(value)
                .with_context(|| format!("rust-version `{value}` is not a version"));
        }
    }
    bail!("Cargo.toml has no rust-version in [workspace.package]")
}

/// `name version (rust-version X)` of every package that needs a newer Rust.
fn too_new_dependencies(metadata: &Value, msrv: Version) -> Result<Vec<String>> {
    let mut too_new = Vec::new();
    for package in metadata["packages"]
        .as_array()
        .context("metadata without packages")?
    {
        let Some(declared) = package["rust_version"].as_str() else {
            continue;
        };
        let version = parse_version(declared)
            .with_context(|| format!("{} declares rust-version `{declared}`", package["name"]))?;
        if version > msrv {
            too_new.push(format!(
                "{} {} (rust-version {declared})",
                package["name"].as_str().unwrap_or("?"),
                package["version"].as_str().unwrap_or("?")
            ));
        }
    }
    Ok(too_new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_newer_than_the_msrv_are_named() {
        let metadata = serde_json::json!({"packages": [
            {"name": "old", "version": "1.0.0", "rust_version": "1.60"},
            {"name": "exact", "version": "2.0.0", "rust_version": "1.88.0"},
            {"name": "none", "version": "0.1.0", "rust_version": null},
            {"name": "new", "version": "3.1.0", "rust_version": "1.89"},
            {"name": "patch", "version": "0.2.0", "rust_version": "1.88.1"},
        ]});
        assert_eq!(
            too_new_dependencies(&metadata, (1, 88, 0)).unwrap(),
            vec![
                "new 3.1.0 (rust-version 1.89)",
                "patch 0.2.0 (rust-version 1.88.1)"
            ]
        );
        assert_eq!(show((1, 88, 0)), "1.88");
    }

    #[test]
    fn the_workspace_declares_its_msrv() {
        let manifest = crate::project_root().join("Cargo.toml");
        assert_eq!(workspace_rust_version(&manifest).unwrap(), (1, 88, 0));
    }

    #[test]
    fn includes_outside_the_package_are_found() {
        let text = r#"#[doc = include_str!("../guide/a.md")] const B: &[u8] = include_bytes!("../../../x.bin");"#;
        assert_eq!(
            included_paths(text),
            vec!["../guide/a.md", "../../../x.bin"]
        );
        let facade = crate::project_root().join("crates/flock");
        check_includes_stay_inside(&facade).unwrap();
        let dir = std::env::temp_dir().join(format!("xtask-includes-{}", std::process::id()));
        fs::create_dir_all(dir.join("src")).unwrap();
        fs::write(
            dir.join("src/lib.rs"),
            "#![doc = include_str!(\"../../README.md\")]",
        )
        .unwrap();
        let err = check_includes_stay_inside(&dir).unwrap_err().to_string();
        fs::remove_dir_all(&dir).unwrap();
        assert!(err.contains("includes `../../README.md`"), "{err}");
    }
}
