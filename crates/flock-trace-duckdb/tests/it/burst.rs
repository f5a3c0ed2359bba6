//! A burst of spans larger than the buffer loses none: the buffer pushes back on
//! the threads that end spans while the writer keeps up, and every span reaches the
//! file, as stock DuckDB counts it.

use std::num::NonZeroUsize;

use flock_trace_duckdb::TraceConfig;

use crate::{TempDir, stock_count, traced};

#[test]
fn a_burst_sixteen_times_the_buffer_loses_no_span() {
    let dir = TempDir::new("burst-backpressure");
    let path = dir.file("traces.duckdb");
    let guard = TraceConfig::new(&path)
        .queue_size(NonZeroUsize::new(1_024).unwrap())
        .export_batch_size(NonZeroUsize::new(256).unwrap())
        .build()
        .unwrap();
    const THREADS: usize = 4;
    const PER_THREAD: usize = 4_096;
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let guard = &guard;
            scope.spawn(move || {
                traced(guard, || {
                    for i in 0..PER_THREAD {
                        let _span =
                            tracing::info_span!("burst.span", thread = t as i64, i = i as i64)
                                .entered();
                    }
                });
            });
        }
    });
    let report = guard.shutdown();
    let total = (THREADS * PER_THREAD) as u64;
    assert_eq!((report.exported, report.unexported), (total, 0), "{report}");
    assert_eq!(stock_count(&path, "name = 'burst.span'"), total);
}
