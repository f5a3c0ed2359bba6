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

#[tokio::test]
async fn shutdown_flushes_pending_spans_of_the_flock_s_own_pipeline() {
    // Without a global subscriber, spans are not recorded, but the guard is still
    // flushed and reported by shutdown.
    let path = temp_trace_file("own");
    let flock = Flock::builder()
        .trace(TraceConfig::new(&path).service_name("own"))
        .build();
    let traced = flock.trace_file().map(ToOwned::to_owned);
    publish_ids(&flock, [1]).await;
    let report = flock.shutdown().await;
    match traced {
        // This test binary may already have a global subscriber (another test).
        Some(file) => {
            assert_eq!(file, path);
            assert!(report.traces.expect("flushed at shutdown").is_complete());
        }
        None => assert!(report.traces.is_none()),
    }
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// The program of the issue: four flushes (size, size, timeout, shutdown) on a
/// multi-thread runtime. Its last run may still be finishing on a worker thread when
/// `shutdown` goes on to the traces; the run's `batch.flush` span must have ended by
/// then, so it reaches the file. Repeated, because the loss was a race (about one
/// round in four).
#[test]
fn the_shutdown_flush_span_of_a_four_flush_program_reaches_the_file() {
    const ROUNDS: usize = 24;
    for round in 0..ROUNDS {
        let path = temp_trace_file(&format!("four-flush-{round}"));
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
        let report = guard.shutdown();
        drop(rt);
        let conn = Connection::open(&path).unwrap();
        let reasons: Vec<String> = conn
            .prepare(
                "SELECT attributes->>'$.flush_reason' FROM spans WHERE name = 'batch.flush' \
                 ORDER BY start_time",
            )
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let in_file: i64 = conn
            .query_row("SELECT count(*) FROM spans", [], |row| row.get(0))
            .unwrap();
        drop(conn);
        assert_eq!(
            reasons,
            ["size", "size", "timeout", "shutdown"],
            "round {round}: the file lacks a flush span; report: {report}"
        );
        assert_eq!(report.exported, in_file as u64, "round {round}: {report}");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
