//! The user's guide query, verbatim, returns the batch flushes with their size and reason.

use flock_trace_duckdb::TraceConfig;

use crate::{TempDir, read, traced};

const GUIDE_QUERY: &str = "SELECT name, attributes->'$.batch_size' as size, attributes->'$.flush_reason' as reason, duration_ms FROM spans WHERE name LIKE '%batch%' ORDER BY start_time DESC LIMIT 20";

#[test]
fn guide_query_returns_flushes_with_size_and_reason() {
    let dir = TempDir::new("guide");
    let path = dir.file("traces.duckdb");
    let guard = TraceConfig::new(&path).build().unwrap();
    let flushes = [(25_i64, "size"), (7, "timeout"), (3, "shutdown")];
    traced(&guard, || {
        let _run = tracing::info_span!("agent.run", agent = "payments").entered();
        for (size, reason) in flushes {
            let _flush = tracing::info_span!(
                "batch.flush",
                batch_size = size,
                flush_reason = reason,
                efficiency = size as f64 / 25.0,
            )
            .entered();
            // Spans later in time must sort first in the query.
            std::thread::sleep(std::time::Duration::from_millis(2));
            let _publish = tracing::info_span!("publish", outputs = 1_i64).entered();
        }
    });
    let report = guard.shutdown();
    assert!(report.is_complete(), "{report}");
    assert_eq!(report.exported, 7);

    let conn = read(&path);
    let mut stmt = conn.prepare(GUIDE_QUERY).unwrap();
    let rows: Vec<(String, String, String, f64)> = stmt
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // `->` returns JSON: the size is the number 25, the reason the string "size".
    let expected: Vec<(String, String, String)> = flushes
        .iter()
        .rev()
        .map(|(size, reason)| {
            (
                "batch.flush".into(),
                size.to_string(),
                format!("\"{reason}\""),
            )
        })
        .collect();
    let got: Vec<(String, String, String)> = rows
        .iter()
        .map(|(name, size, reason, _)| (name.clone(), size.clone(), reason.clone()))
        .collect();
    assert_eq!(got, expected);
    for (_, _, _, duration_ms) in &rows {
        assert!(*duration_ms >= 2.0, "duration_ms {duration_ms}");
    }

    // The size compares as a number, not as text.
    let (total, typ): (i64, String) = conn
        .query_row(
            "SELECT sum((attributes->'$.batch_size')::BIGINT), any_value(json_type(attributes->'$.batch_size')) FROM spans WHERE name = 'batch.flush'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!((total, typ.as_str()), (35, "UBIGINT"));
}
