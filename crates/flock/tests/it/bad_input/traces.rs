//! The bad-input entries about traces (built with DuckDB): a trace directory that
//! cannot be created, and a trace file another process holds.
//!
//! Both run a child process (this test binary again, selecting one `child_*` test
//! through an environment variable): one to see what `build()` prints on stderr,
//! one because DuckDB's file lock only conflicts across processes. Run normally,
//! the `child_*` tests have nothing to do.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use flock::{TraceConfig, TraceError, prelude::*};

use crate::{Item, recorder};

const CHILD_TRACE_PATH: &str = "FLOCK_IT_UNWRITABLE_TRACE_PATH";
const CHILD_TRACED_FLOCK: &str = "FLOCK_IT_TRACED_FLOCK_PATH";
const CHILD_READER: &str = "FLOCK_IT_TRACE_READER_PATH";

/// A directory for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("flock-bad-input-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the `child_*` test `name` of this binary with `env`; returns stdout and
/// stderr once it exits successfully.
fn run_child(name: &str, env: &[(&str, &Path)]) -> (String, String) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(
        output.status.success(),
        "child {name} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    (stdout, stderr)
}

/// A trace path whose directory cannot be created: its parent is a regular file
/// (unwritable even for root, which ignores permission bits).
fn unwritable_trace_path(dir: &TempDir) -> PathBuf {
    let blocker = dir.0.join("not-a-directory");
    std::fs::write(&blocker, "a file where the trace directory should go").unwrap();
    blocker.join("traces").join("traces.duckdb")
}

#[test]
fn unwritable_trace_directory_is_an_error_from_try_build_and_a_printed_warning_from_build() {
    let dir = TempDir::new("unwritable");
    let path = unwritable_trace_path(&dir);
    let err = Flock::builder()
        .trace(TraceConfig::new(&path))
        .try_build()
        .unwrap_err();
    assert!(matches!(err, TraceError::CreateDir { .. }), "{err:?}");
    let expected = format!(
        "cannot create trace directory `{}`",
        path.parent().unwrap().display()
    );
    assert_eq!(err.to_string(), expected);
    let cause = std::error::Error::source(&err).unwrap().to_string();
    assert!(cause.contains("Not a directory"), "{cause}");

    // `build()` prints the error and the program goes on without traces.
    let (stdout, stderr) = run_child(
        "bad_input::traces::child_runs_without_traces_when_the_directory_is_unwritable",
        &[(CHILD_TRACE_PATH, &path), ("FLOCK_TRACE_FILE", &path)],
    );
    let printed = format!("flock: tracing into DuckDB is off: {expected}");
    assert_eq!(
        stderr.matches(&printed).count(),
        2,
        "once for the builder, once for FLOCK_TRACE_FILE:\n{stderr}"
    );
    assert!(stdout.contains("continued: 2 batches, 5 items"), "{stdout}");
}

/// The child side of the test above: builds traced flocks (by the builder, then by
/// `FLOCK_TRACE_FILE`) and runs a batch agent on each.
#[test]
fn child_runs_without_traces_when_the_directory_is_unwritable() {
    let Some(path) = std::env::var_os(CHILD_TRACE_PATH) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let by_builder = Flock::builder().trace(TraceConfig::new(&path)).build();
        // The parent set FLOCK_TRACE_FILE to the same path for this process.
        assert_eq!(std::env::var_os("FLOCK_TRACE_FILE"), Some(path.clone()));
        let by_env = Flock::new();
        let mut batches = 0;
        let mut items = 0;
        for flock in [by_builder, by_env] {
            assert!(flock.trace_file().is_none());
            let (runs, engine) = recorder();
            flock
                .agent("payments")
                .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(3)))
                .with_engine(engine)
                .register()
                .unwrap();
            for id in 0..(if batches == 0 { 3 } else { 2 }) {
                flock.publish(Item { id }).await.unwrap();
            }
            flock.shutdown().await;
            batches += runs.lock().len();
            items += runs.lock().iter().map(|r| r.ids.len()).sum::<usize>();
        }
        println!("continued: {batches} batches, {items} items");
    });
}

#[test]
fn trace_file_held_by_a_reader_delays_exports_and_loses_no_span() {
    let dir = TempDir::new("reader");
    let path = dir.0.join("traces.duckdb");
    // The file exists before the reader opens it.
    let guard = TraceConfig::new(&path).build().unwrap();
    assert!(guard.shutdown().is_complete());

    let mut reader = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "bad_input::traces::child_holds_the_trace_file",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_READER, &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_line(&mut reader, "reader-ready");

    let (stdout, _) = run_child(
        "bad_input::traces::child_traces_a_flock",
        &[(CHILD_TRACED_FLOCK, &path)],
    );
    assert!(reader.wait().unwrap().success());
    let report = stdout
        .lines()
        .find_map(|l| l.split_once("traces: ").map(|(_, r)| r.to_owned()))
        .unwrap_or_else(|| panic!("no report in {stdout}"));
    assert!(report.ends_with("not exported"), "{report}");
    assert!(report.contains(", 0 not exported"), "{report}");

    let conn = flock::trace::duckdb::Connection::open(&path).unwrap();
    let flushes: i64 = conn
        .query_row(
            "SELECT count(*) FROM spans WHERE name = 'batch.flush'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(flushes, 4, "every flush span reached the file");
}

/// Reads the child's stdout until a line contains `marker`, then keeps draining it
/// in the background so the child can exit.
fn wait_for_line(child: &mut std::process::Child, marker: &str) {
    use std::io::BufRead as _;
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains(marker) {
            std::thread::spawn(move || lines.for_each(drop));
            return;
        }
    }
    panic!("child exited before printing {marker:?}");
}

/// The reader: holds the trace file open read-only for 1.5 s.
#[test]
fn child_holds_the_trace_file() {
    let Some(path) = std::env::var_os(CHILD_READER) else {
        return;
    };
    use flock::trace::duckdb::{AccessMode, Config, Connection};
    let config = Config::default().access_mode(AccessMode::ReadOnly).unwrap();
    let conn = Connection::open_with_flags(&path, config).unwrap();
    let _: i64 = conn
        .query_row("SELECT count(*) FROM spans", [], |row| row.get(0))
        .unwrap();
    println!("reader-ready");
    std::thread::sleep(Duration::from_millis(1500));
}

/// The traced program: a flock tracing into the held file, four batches, shutdown.
#[test]
fn child_traces_a_flock() {
    let Some(path) = std::env::var_os(CHILD_TRACED_FLOCK) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let flock = Flock::builder()
            .trace(TraceConfig::new(&path).lock_timeout(Duration::from_secs(60)))
            .try_build()
            .unwrap();
        let (runs, engine) = recorder();
        flock
            .agent("payments")
            .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(5)))
            .with_engine(engine)
            .register()
            .unwrap();
        crate::publish_ids(&flock, 0..20).await;
        let report = flock.shutdown().await;
        assert_eq!(runs.lock().len(), 4);
        println!("traces: {}", report.traces.expect("this flock traces"));
    });
}
