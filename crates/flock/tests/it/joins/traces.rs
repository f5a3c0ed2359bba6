//! Join spans in the DuckDB trace file.

use super::*;

#[tokio::test]
async fn join_spans_land_in_duckdb_with_their_attributes() {
    use flock::{TraceConfig, trace::duckdb::Connection};
    use tracing_subscriber::layer::SubscriberExt;

    let dir = std::env::temp_dir().join(format!("flock-it-joins-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("traces.duckdb");
    let guard = TraceConfig::new(&path)
        .service_name("joins")
        .build()
        .unwrap();
    let _subscriber =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(guard.layer()));

    let flock = Flock::builder().no_trace().build();
    let runs = gate_agent(&flock, "traced", a_b_join(2));
    publish_a(&flock, "k1", "a1").await;
    publish_b(&flock, "k1", "b1").await;
    publish_a(&flock, "k2", "a2").await;
    for noise in ["n1", "n2", "n3"] {
        publish_a(&flock, noise, noise).await; // n3 is the 3rd after k2's A: k2 expires
    }
    flock.run_until_idle().await;
    flock.shutdown().await;
    assert_eq!(groups(&runs), vec![strings(&["A:a1", "B:b1"])]);
    assert!(guard.shutdown().is_complete());

    let conn = Connection::open(&path).unwrap();
    let (present, missing, reason, artifacts, agent): (String, String, String, i64, String) = conn
        .query_row(
            "SELECT attributes->>'$.types_present', attributes->>'$.types_missing', \
             attributes->>'$.reason', (attributes->>'$.artifacts')::BIGINT, attributes->>'$.agent' \
             FROM spans WHERE name = 'join.discard' AND (attributes->>'$.key') = 'k2'",
            [],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(
        (
            present.as_str(),
            missing.as_str(),
            reason.as_str(),
            artifacts,
            agent.as_str()
        ),
        ("SignalA", "SignalB", "window", 1, "traced")
    );
    let at_shutdown: i64 = conn
        .query_row(
            "SELECT count(*) FROM spans WHERE name = 'join.discard' \
             AND (attributes->>'$.reason') = 'shutdown'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(
        at_shutdown >= 1,
        "the noise groups still open at shutdown are traced"
    );
    let child: String = conn
        .query_row(
            "SELECT c.name FROM spans c JOIN spans p ON c.parent_id = p.span_id \
             WHERE p.name = 'join.complete' AND (p.attributes->>'$.key') = 'k1'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(child, "agent.run", "a completion parents the run it causes");
    drop(conn);
    let _ = std::fs::remove_dir_all(dir);
}
