//! Every flush, run and publish is a span in the DuckDB trace file, parented so a
//! trace follows artifacts through flushes to the outputs.

use std::{collections::HashSet, sync::Arc, time::Duration};

use flock::{
    TraceConfig,
    prelude::*,
    trace::duckdb::{self, Connection},
};
use tracing_subscriber::layer::SubscriberExt;

use crate::{Item, publish_ids};
pub(crate) use flock_test_support::stock_duckdb::run as stock_duckdb;

fn temp_trace_file(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("flock-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("traces.duckdb")
}

const GUIDE_QUERY: &str = "SELECT name, attributes->'$.batch_size' as size, attributes->'$.flush_reason' as reason, duration_ms FROM spans WHERE name LIKE '%batch%' ORDER BY start_time DESC LIMIT 20";

#[tokio::test]
async fn flushes_runs_and_publishes_land_in_duckdb_with_parent_links() {
    let path = temp_trace_file("spans");
    let guard = TraceConfig::new(&path).service_name("it").build().unwrap();
    let _subscriber =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(guard.layer()));

    let flock = Flock::builder().no_trace().build();
    flock
        .agent("simple_batch")
        .consumes::<BatchItem>(
            Subscribe::new().batch(BatchSpec::size(3).timeout(Duration::from_millis(50))),
        )
        .publishes::<BatchSummary>()
        .with_engine(SimpleBatchEngine)
        .register()
        .unwrap();
    flock
        .agent("echo")
        .consumes::<BatchSummary>(Subscribe::new())
        .publishes::<Item>()
        .with_engine(map_fn(|_: &EngineContext, s: Arc<BatchSummary>| {
            Ok::<_, String>(Item {
                id: s.batch_size as i64,
            })
        }))
        .register()
        .unwrap();
    flock
        .agent("failing")
        .consumes::<Item>(Subscribe::new())
        .with_engine(map_fn(|_: &EngineContext, _: Arc<Item>| {
            Err::<Outputs, _>("downstream is down")
        }))
        .register()
        .unwrap();

    for value in 1..=3 {
        flock.publish(BatchItem { value }).await.unwrap(); // size flush of 3
    }
    flock.publish(BatchItem { value: 4 }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await; // timeout flush of 1
    flock.run_until_idle().await;
    flock.publish(BatchItem { value: 5 }).await.unwrap();
    flock.publish(BatchItem { value: 6 }).await.unwrap();
    flock.shutdown().await; // shutdown flush of 2
    let report = guard.shutdown();
    assert!(report.is_complete(), "{report}");

    let conn = Connection::open(&path).unwrap();
    let mut stmt = conn.prepare(GUIDE_QUERY).unwrap();
    // `->` returns JSON: the size is the JSON number 3 (not the string "3"), the
    // reason the JSON string "size".
    let rows: Vec<(String, i64, String, f64)> = stmt
        .query_map([], |row| {
            let size: String = row.get(1)?;
            let reason: String = row.get(2)?;
            let size = size.parse().expect("batch_size is a JSON number");
            let reason = reason
                .strip_prefix('"')
                .and_then(|r| r.strip_suffix('"'))
                .expect("flush_reason is a JSON string")
                .to_owned();
            Ok((row.get(0)?, size, reason, row.get(3)?))
        })
        .unwrap()
        .collect::<Result<_, duckdb::Error>>()
        .unwrap();
    let flushes: Vec<(&str, i64, &str)> = rows
        .iter()
        .map(|(name, size, reason, _)| (name.as_str(), *size, reason.as_str()))
        .collect();
    // Newest first, as the guide's query orders them.
    assert_eq!(
        flushes,
        vec![
            ("batch.flush", 2, "shutdown"),
            ("batch.flush", 1, "timeout"),
            ("batch.flush", 3, "size"),
        ]
    );
    assert!(rows.iter().all(|(_, _, _, ms)| *ms >= 0.0));

    // Numbers are numbers, and the flush carries all its figures.
    let (configured, timeout_ms, efficiency, agent): (i64, i64, f64, String) = conn
        .query_row(
            "SELECT (attributes->>'$.configured_size')::BIGINT, \
             (attributes->>'$.configured_timeout_ms')::BIGINT, \
             (attributes->>'$.efficiency')::DOUBLE, attributes->>'$.agent' FROM spans \
             WHERE name = 'batch.flush' AND (attributes->>'$.flush_reason') = 'timeout'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (configured, timeout_ms, agent.as_str()),
        (3, 50, "simple_batch")
    );
    assert!((efficiency - 1.0 / 3.0).abs() < 1e-9);

    // Every parent id resolves to a span in the file.
    let mut stmt = conn
        .prepare("SELECT span_id, parent_id FROM spans")
        .unwrap();
    let links: Vec<(String, Option<String>)> = stmt
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let ids: HashSet<&str> = links.iter().map(|(id, _)| id.as_str()).collect();
    for (id, parent) in &links {
        if let Some(parent) = parent {
            assert!(
                ids.contains(parent.as_str()),
                "span {id} has a dangling parent {parent}"
            );
        }
    }

    // One trace follows the size flush to the summary, the echo run, its output,
    // and the failing run, which is an ERROR span.
    let chain: Vec<(String, String)> = conn
        .prepare(
            "WITH RECURSIVE chain AS ( \
               SELECT span_id, name, status_code FROM spans \
               WHERE name = 'batch.flush' AND (attributes->>'$.flush_reason') = 'size' \
               UNION ALL \
               SELECT s.span_id, s.name, s.status_code FROM spans s JOIN chain c ON s.parent_id = c.span_id) \
             SELECT name, status_code FROM chain ORDER BY name, status_code",
        )
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let names: Vec<&str> = chain.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "batch.flush",
        "engine.evaluate",
        "artifact.publish",
        "agent.run",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from the flush's trace: {names:?}"
        );
    }
    assert!(
        chain
            .iter()
            .any(|(name, status)| name == "agent.run" && status == "ERROR"),
        "the failing run is not an ERROR span: {chain:?}"
    );
    drop(conn);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// The program of the issue: four flushes (size, size, timeout, shutdown) on a
/// multi-thread runtime. Its last run may still be finishing on a worker thread when
/// `shutdown` goes on to the traces; the run's `batch.flush` span must have ended by
/// then, so it reaches the file, as stock DuckDB reads it. Repeated, because the
/// loss was a race (about one round in four).
#[test]
fn the_shutdown_flush_span_of_a_four_flush_program_reaches_the_file() {
    const ROUNDS: usize = 20;
    let dir = temp_trace_file("four-flush").parent().unwrap().to_owned();
    let mut reports = Vec::new();
    for round in 0..ROUNDS {
        let path = dir.join(format!("round-{round:02}.duckdb"));
        let guard = TraceConfig::new(&path).service_name("it").build().unwrap();
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(guard.layer()));
        let worker_dispatch = dispatch.clone();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .on_thread_start(move || {
                // The worker keeps this subscriber until it exits.
                std::mem::forget(tracing::dispatcher::set_default(&worker_dispatch));
            })
            .build()
            .unwrap();
        let flushes = tracing::dispatcher::with_default(&dispatch, || {
            rt.block_on(async {
                let flock = Flock::builder().no_trace().build();
                let (runs, engine) = crate::recorder();
                flock
                    .agent("payments")
                    .consumes::<Item>(
                        Subscribe::new()
                            .batch(BatchSpec::size(5).timeout(Duration::from_millis(30))),
                    )
                    .with_engine(engine)
                    .register()
                    .unwrap();
                publish_ids(&flock, 0..10).await; // two size flushes
                publish_ids(&flock, 10..12).await;
                tokio::time::sleep(Duration::from_millis(60)).await; // a timeout flush
                publish_ids(&flock, 12..15).await;
                flock.shutdown().await; // a shutdown flush
                let reasons: Vec<_> = runs.lock().iter().map(|r| r.reason).collect();
                reasons
            })
        });
        assert_eq!(flushes.len(), 4, "round {round}: {flushes:?}");
        reports.push(guard.shutdown());
        drop(rt);
    }
    // One stock DuckDB process reads every round's file.
    let out = stock_duckdb(
        "import duckdb, glob, os, sys\n\
         for path in sorted(glob.glob(os.path.join(sys.argv[1], 'round-*.duckdb'))):\n    \
             conn = duckdb.connect(path, read_only=True)\n    \
             total = conn.execute('SELECT count(*) FROM spans').fetchone()[0]\n    \
             reasons = [r[0] for r in conn.execute(\n        \
                 \"SELECT attributes->>'$.flush_reason' FROM spans \"\n        \
                 \"WHERE name = 'batch.flush' ORDER BY start_time\").fetchall()]\n    \
             print(total, ','.join(reasons))\n    \
             conn.close()",
        &[dir.to_str().unwrap()],
    );
    let rounds: Vec<&str> = out.lines().collect();
    assert_eq!(rounds.len(), ROUNDS, "{out}");
    for (round, (line, report)) in rounds.iter().zip(&reports).enumerate() {
        let (total, reasons) = line.split_once(' ').unwrap();
        assert_eq!(
            reasons, "size,size,timeout,shutdown",
            "round {round}: the file lacks a flush span; report: {report}"
        );
        assert!(report.is_complete(), "round {round}: {report}");
        assert_eq!(
            report.exported.to_string(),
            total,
            "round {round}: {report}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
