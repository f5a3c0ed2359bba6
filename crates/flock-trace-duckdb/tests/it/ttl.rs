//! A TTL deletes spans older than that many days when the pipeline starts.

use std::time::{SystemTime, UNIX_EPOCH};

use flock_trace_duckdb::{TraceConfig, duckdb::params};

use crate::{TempDir, count, read, spans, traced};

const DAY_NS: i64 = 86_400 * 1_000_000_000;

#[test]
fn ttl_deletes_old_spans_at_start() {
    let dir = TempDir::new("ttl");
    let path = dir.file("traces.duckdb");
    let guard = TraceConfig::new(&path).build().unwrap();
    traced(&guard, || spans(5));
    assert!(guard.shutdown().is_complete());

    // Backdate two of the five spans: 10 and 3 days old.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    {
        let conn = read(&path);
        let mut ids = conn
            .prepare("SELECT span_id FROM spans ORDER BY start_time LIMIT 2")
            .unwrap();
        let ids: Vec<String> = ids
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for (id, age_days) in ids.iter().zip([10, 3]) {
            conn.execute(
                "UPDATE spans SET start_time = ?, end_time = ? WHERE span_id = ?",
                params![now - age_days * DAY_NS, now - age_days * DAY_NS, id],
            )
            .unwrap();
        }
    }

    // A week keeps the 3-day-old span and the three fresh ones.
    let guard = TraceConfig::new(&path).ttl_days(Some(7)).build().unwrap();
    assert_eq!(count(&path), 4);
    drop(guard);
    // Without a TTL nothing is deleted.
    let guard = TraceConfig::new(&path).ttl_days(None).build().unwrap();
    assert_eq!(count(&path), 4);
    drop(guard);
    // Zero days deletes every span from before the start.
    let guard = TraceConfig::new(&path).ttl_days(Some(0)).build().unwrap();
    assert_eq!(count(&path), 0);
    traced(&guard, || spans(1));
    assert!(guard.shutdown().is_complete());
    assert_eq!(count(&path), 1);
}
