//! Development DuckDB: the prebuilt `libduckdb.so` instead of a C++ build.
//!
//! The `duckdb` crate with its `bundled` feature compiles DuckDB from C++ source,
//! which takes about 25 minutes and 9 GB on a developer machine. Without `bundled`,
//! `libduckdb-sys` links a `libduckdb.so` found through `DUCKDB_LIB_DIR` instead (it
//! ships pregenerated bindings, so no header is needed). The npm package
//! `@duckdb/node-bindings-linux-x64` contains exactly that library for the DuckDB
//! release our `duckdb` crate version matches, with JSON and ICU built in, so xtask
//! fetches it once with `npm pack` into a cache directory under the cargo target
//! directory and points the build (`DUCKDB_LIB_DIR`) and the test binaries
//! (`LD_LIBRARY_PATH`) at it.

use std::{
    env, fs,
    io::ErrorKind,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

/// The DuckDB release the `duckdb` crate (`~1.10506`) matches, as npm versions it.
const NPM_VERSION: &str = "1.5.6-r.1";
/// The npm package holding `libduckdb.so` for x86_64 Linux.
const NPM_PACKAGE: &str = "@duckdb/node-bindings-linux-x64";
/// The shared library inside the package (under `package/` in the tarball).
const LIB_NAME: &str = "libduckdb.so";
/// Points at a directory holding a `libduckdb.so` to use instead of the cache.
const OVERRIDE_VAR: &str = "FLOCK_DUCKDB_LIB_DIR";

/// Environment variables that make `libduckdb-sys` link the prebuilt library.
///
/// Fetches the library on first use (one progress line on stderr); afterwards
/// this is a single `stat`.
pub(crate) fn prebuilt_env() -> Result<Vec<(&'static str, String)>> {
    let dir = lib_dir()?;
    let dir = dir.to_str().with_context(|| {
        format!(
            "duckdb library directory `{}` is not valid UTF-8",
            dir.display()
        )
    })?;
    let ld_library_path = match env::var("LD_LIBRARY_PATH") {
        Ok(existing) if !existing.is_empty() => format!("{dir}:{existing}"),
        _ => dir.to_owned(),
    };
    Ok(vec![
        ("DUCKDB_LIB_DIR", dir.to_owned()),
        ("LD_LIBRARY_PATH", ld_library_path),
    ])
}

/// The absolute directory holding `libduckdb.so`, fetched into the cache if needed.
fn lib_dir() -> Result<PathBuf> {
    if let Some(dir) = env::var_os(OVERRIDE_VAR).filter(|v| !v.is_empty()) {
        let dir = absolute(Path::new(&dir))?;
        if !dir.join(LIB_NAME).is_file() {
            bail!(
                "{OVERRIDE_VAR} is `{}`, but that directory has no {LIB_NAME}",
                dir.display()
            );
        }
        return Ok(dir);
    }
    let dir = cache_dir()?;
    if !dir.join(LIB_NAME).is_file() {
        fetch(&dir)?;
    }
    Ok(dir)
}

/// `<cargo target dir>/flock-duckdb/<version>`, absolute so it holds in any working directory.
fn cache_dir() -> Result<PathBuf> {
    Ok(crate::target_dir()?.join("flock-duckdb").join(NPM_VERSION))
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot resolve path `{}`", path.display()))
}

/// Downloads the npm package and extracts `libduckdb.so` into `dir`.
///
/// Works in a private temporary directory next to `dir` and renames the library
/// into place last, so a concurrent or interrupted run never leaves a partial file
/// where the next run would take it for a complete one.
fn fetch(dir: &Path) -> Result<()> {
    if !(cfg!(target_os = "linux") && cfg!(target_arch = "x86_64")) {
        bail!(
            "the prebuilt development DuckDB exists for x86_64 Linux only, this is {}-{}; \
             build with the `bundled` feature instead (drop `--no-default-features`), \
             or set {OVERRIDE_VAR} to a directory holding a {LIB_NAME} of DuckDB 1.5.6",
            env::consts::ARCH,
            env::consts::OS
        );
    }
    let spec = format!("{NPM_PACKAGE}@{NPM_VERSION}");
    eprintln!(
        "xtask: fetching DuckDB {NPM_VERSION} ({spec}, ~24 MB) into {}",
        dir.display()
    );
    fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let tmp = dir.join(format!(".fetch-{}", std::process::id()));
    // A leftover from an interrupted run with the same pid is stale; start clean.
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).with_context(|| format!("cannot create `{}`", tmp.display()))?;
    let result = fetch_into(&spec, &tmp, dir);
    let _ = fs::remove_dir_all(&tmp);
    result
}

fn fetch_into(spec: &str, tmp: &Path, dir: &Path) -> Result<()> {
    let output = match Command::new("npm")
        .args(["pack", "--silent", spec])
        .current_dir(tmp)
        .output()
    {
        Ok(output) => output,
        Err(err) if err.kind() == ErrorKind::NotFound => bail!(
            "`npm` not found: the development DuckDB comes from the npm package `{spec}`; \
             install Node.js and npm, or build with the `bundled` feature instead \
             (drop `--no-default-features`; compiles DuckDB from source, ~25 minutes)"
        ),
        Err(err) => return Err(err).context("failed to start `npm`"),
    };
    if !output.status.success() {
        bail!(
            "`npm pack {spec}` failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    let tarball = fs::read_dir(tmp)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "tgz"))
        .with_context(|| format!("`npm pack {spec}` wrote no .tgz into `{}`", tmp.display()))?;

    let member = format!("package/{LIB_NAME}");
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(tmp)
        .arg(&member)
        .status()
        .context("failed to start `tar`")?;
    if !status.success() {
        bail!(
            "`tar` could not extract `{member}` from `{}` ({status})",
            tarball.display()
        );
    }
    let extracted = tmp.join(&member);
    let target = dir.join(LIB_NAME);
    fs::rename(&extracted, &target).with_context(|| {
        format!(
            "cannot move `{}` to `{}`",
            extracted.display(),
            target.display()
        )
    })?;
    Ok(())
}
