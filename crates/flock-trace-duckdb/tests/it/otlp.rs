//! With the `otlp` feature, spans also go to an OTLP/HTTP collector: here a
//! one-shot fake collector on the loopback interface.

use flock_trace_duckdb::TraceConfig;

use crate::{TempDir, count, spans, traced};

#[test]
fn spans_also_reach_an_otlp_collector() {
    let (address, collector) = flock_test_support::otlp::collector();
    let endpoint = format!("{address}/v1/traces");

    let dir = TempDir::new("otlp");
    let path = dir.file("traces.duckdb");
    let guard = TraceConfig::new(&path)
        .otlp_endpoint(endpoint)
        .build()
        .unwrap();
    traced(&guard, || spans(3));
    let report = guard.shutdown();
    assert_eq!((report.exported, report.unexported), (3, 0), "{report}");
    assert_eq!(count(&path), 3);

    let request = collector.join().unwrap();
    assert!(
        request.line.starts_with("POST /v1/traces "),
        "{}",
        request.line
    );
    assert_eq!(request.content_type, "application/x-protobuf");
    // The protobuf body carries the span names as plain bytes.
    assert!(request.body_has(b"work.step"));
}
