//! How a flock sets up tracing: it joins the pipeline the application's subscriber
//! feeds, refuses (with a message) one its subscriber would not feed, and several
//! flocks of one process trace into one file; with `otlp`, the standard
//! `OTEL_EXPORTER_OTLP_*` variables send spans to a collector.
//!
//! Tests that need the process's global subscriber run this binary again as a
//! child process (`child_*` tests, which do nothing when run normally).

use std::process::{Command, Stdio};
#[cfg(feature = "duckdb-prebuilt")]
use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use flock::prelude::*;
#[cfg(feature = "duckdb-prebuilt")]
use flock::{TraceConfig, TraceError};
#[cfg(feature = "duckdb-prebuilt")]
use tracing_subscriber::layer::SubscriberExt;

use crate::{Item, publish_ids, recorder};

#[cfg(feature = "duckdb-prebuilt")]
fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("flock-it-setup-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[cfg(feature = "duckdb-prebuilt")]
/// The application's own layer: counts `batch.flush` spans.
struct CountFlushes(Arc<AtomicUsize>);

#[cfg(feature = "duckdb-prebuilt")]
impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountFlushes {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attrs.metadata().name() == "batch.flush" {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn one_batch(flock: &Flock, agent: &str) {
    let (_runs, engine) = recorder();
    flock
        .agent(agent)
        .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(2)))
        .with_engine(engine)
        .register()
        .unwrap();
    publish_ids(flock, [1, 2]).await;
}

#[cfg(feature = "duckdb-prebuilt")]
#[tokio::test]
async fn flocks_join_the_pipeline_the_applications_subscriber_feeds() {
    let dir = temp_dir("compose");
    let path = dir.join("traces.duckdb");
    let app = TraceConfig::new(&path).service_name("app").build().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let subscriber = tracing_subscriber::registry()
        .with(app.layer())
        .with(CountFlushes(seen.clone()));
    let _default = tracing::subscriber::set_default(subscriber);

    let first = Flock::builder()
        .trace(TraceConfig::new(&path))
        .try_build()
        .unwrap();
    let second = Flock::builder()
        .trace(TraceConfig::new(&path))
        .try_build()
        .unwrap();
    let canonical = std::fs::canonicalize(&path).unwrap();
    assert_eq!(first.trace_file(), Some(canonical.as_path()));
    assert_eq!(second.trace_file(), Some(canonical.as_path()));
    one_batch(&first, "first").await;
    one_batch(&second, "second").await;
    for flock in [&first, &second] {
        let traces = flock.shutdown().await.traces.expect("the flock traces");
        assert!(traces.is_complete(), "{traces}");
    }
    // The application's own layer saw the same spans.
    assert_eq!(seen.load(Ordering::Relaxed), 2);

    let report = app.shutdown();
    assert!(report.is_complete(), "{report}");
    let conn = flock::trace::open_read_only(&path, std::time::Duration::from_secs(5)).unwrap();
    let agents: Vec<String> = conn
        .prepare(
            "SELECT attributes->>'$.agent' FROM spans WHERE name = 'batch.flush' \
             AND (resource->>'$.\"service.name\"') = 'app' ORDER BY 1",
        )
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(agents, ["first", "second"]);
    drop(conn);
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(feature = "duckdb-prebuilt")]
#[test]
fn a_flock_whose_subscriber_would_not_reach_its_file_says_so() {
    let dir = temp_dir("elsewhere");
    let path = dir.join("traces.duckdb");
    let subscriber = tracing_subscriber::registry().with(CountFlushes(Arc::default()));
    tracing::subscriber::with_default(subscriber, || {
        let err = Flock::builder()
            .trace(TraceConfig::new(&path))
            .try_build()
            .unwrap_err();
        assert!(matches!(err, TraceError::NotInSubscriber { .. }), "{err:?}");
        let canonical = std::fs::canonicalize(&path).unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "spans would not reach trace file `{}`: the tracing subscriber in use does not \
                 include this pipeline's layer; add `TraceGuard::layer()` to it",
                canonical.display()
            )
        );
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(feature = "duckdb-prebuilt")]
const CHILD_TWO_FLOCKS: &str = "FLOCK_IT_TWO_FLOCKS";

#[cfg(feature = "duckdb-prebuilt")]
/// Two flocks of one process, both traced by `FLOCK_TRACE_FILE`: the first installs
/// the subscriber, the second joins it, and both trace into the one file (before,
/// the second failed with `SubscriberAlreadySet` or ran untraced).
#[test]
fn two_flocks_traced_by_the_environment_share_one_file() {
    let dir = temp_dir("two-flocks");
    let path = dir.join("traces.duckdb");
    let stdout = run_child(
        "trace_setup::child_runs_two_flocks_traced_by_the_environment",
        &[
            (CHILD_TWO_FLOCKS, "1"),
            ("FLOCK_TRACE_FILE", path.to_str().unwrap()),
        ],
    );
    for name in ["first", "second"] {
        assert!(
            stdout.contains(&format!("{name}: traced, ")),
            "{name} is missing: {stdout}"
        );
    }
    let out = crate::traces::stock_duckdb(
        "import duckdb, sys\n\
         conn = duckdb.connect(sys.argv[1], read_only=True)\n\
         print(conn.execute(\"SELECT string_agg(attributes->>'$.agent', ',' ORDER BY 1) \
         FROM spans WHERE name = 'batch.flush'\").fetchone()[0])",
        &[path.to_str().unwrap()],
    );
    assert_eq!(out.trim(), "first,second");
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(feature = "duckdb-prebuilt")]
#[test]
fn child_runs_two_flocks_traced_by_the_environment() {
    if std::env::var_os(CHILD_TWO_FLOCKS).is_none() {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        // Both alive at once, built the way a program builds them.
        let flocks = [("first", Flock::new()), ("second", Flock::new())];
        for (name, flock) in &flocks {
            assert!(flock.trace_file().is_some(), "{name} runs untraced");
            one_batch(flock, name).await;
        }
        for (name, flock) in &flocks {
            let traces = flock.shutdown().await.traces.expect("traced");
            assert!(traces.is_complete(), "{name}: {traces}");
            println!("{name}: traced, {traces}");
        }
    });
}

/// Runs the `child_*` test `name` of this binary with `env`; returns its stdout
/// once it exited successfully.
fn run_child(name: &str, env: &[(&str, &str)]) -> String {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env_remove("FLOCK_TRACE_FILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "child {name} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}

#[cfg(feature = "otlp")]
mod otlp {
    //! The standard variables send a flock's spans to an OTLP/HTTP collector: here a
    //! one-request fake collector on the loopback interface.

    use flock::prelude::*;

    use super::{one_batch, run_child};

    const CHILD_OTLP: &str = "FLOCK_IT_OTLP";

    #[test]
    fn otel_exporter_otlp_endpoint_sends_spans_to_a_collector_without_a_file() {
        let (endpoint, collector) = flock_test_support::otlp::collector();
        let stdout = run_child(
            "trace_setup::otlp::child_traces_by_otel_variables",
            &[
                (CHILD_OTLP, "1"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
                ("OTEL_SERVICE_NAME", "otlp-it"),
            ],
        );
        assert!(stdout.contains("no trace file"), "{stdout}");
        let request = collector.join().unwrap();
        // OTEL_EXPORTER_OTLP_ENDPOINT gets the signal's path appended.
        assert!(
            request.line.starts_with("POST /v1/traces "),
            "{}",
            request.line
        );
        assert!(
            request.body_has(b"batch.flush"),
            "no batch.flush span in the request"
        );
        assert!(
            request.body_has(b"otlp-it"),
            "no service name in the request"
        );
    }

    #[test]
    fn child_traces_by_otel_variables() {
        if std::env::var_os(CHILD_OTLP).is_none() {
            return;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let flock = Flock::builder().try_build().unwrap();
            assert!(flock.trace_file().is_none());
            one_batch(&flock, "exported").await;
            let report = flock.shutdown().await;
            assert!(report.traces.is_some(), "the flock did not trace");
            println!("no trace file; spans flushed to the collector");
        });
    }
}
