//! `install` sets the global subscriber, once.

use flock_trace_duckdb::{TraceConfig, TraceError};

use crate::{TempDir, count};

/// The only test that touches the global subscriber; every other test uses its
/// own through `with_default`, which takes precedence on its thread.
#[test]
fn install_sets_the_global_subscriber_once() {
    let dir = TempDir::new("install");
    let path = dir.file("nested/dir/traces.duckdb");
    let guard = TraceConfig::new(&path).install().unwrap();
    // A thread without a subscriber of its own reports to the global one.
    std::thread::spawn(|| {
        let _span = tracing::info_span!("install.check", n = 1_i64).entered();
    })
    .join()
    .unwrap();

    let again = TraceConfig::new(dir.file("other.duckdb")).install();
    assert!(
        matches!(again, Err(TraceError::SubscriberAlreadySet(_))),
        "{again:?}"
    );

    let report = guard.shutdown();
    assert!(report.exported >= 1, "{report}");
    assert!(report.is_complete(), "{report}");
    let names: i64 = crate::read(&path)
        .query_row(
            "SELECT count(*) FROM spans WHERE name = 'install.check'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(names, 1);
    assert!(count(&path) >= 1);
}
