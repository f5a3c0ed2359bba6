//! Export throughput: how fast finished spans reach the DuckDB file, beside DuckDB's
//! own appender writing the same rows, measured in the same run.
//!
//! `cargo xtask bench -p flock-rs-trace-duckdb --bench export_throughput`
//!
//! - `export/pipeline`: 100 000 spans shaped like the runtime's `batch.flush`,
//!   ended and waiting in the buffer; timed from the flush until all of them are in
//!   the file (conversion, appender, commit, checkpoint), on the writer's thread.
//! - `export/appender_arrow`, `export/appender_rows`: DuckDB's appender alone, the
//!   same number of rows of the same shape already made, appended into the `spans`
//!   table of a fresh file in one transaction, committed and checkpointed: through
//!   Arrow record batches (what the writer uses) and row by row. The ceiling.
//! - `export/burst`: 200 000 spans ended by `tracing` on this thread while the
//!   writer writes, with the default buffer (65 536 spans), so backpressure acts:
//!   end to end, the first span to the last one in the file.
//! - `span/*`: what one span costs the thread that ends it, with a buffer large
//!   enough that it never waits: the pipeline's layer (default, and with
//!   `detailed_spans`), against a bare registry.
//!
//! After criterion's report, one more run of each prints spans per second and the
//! ratio of the pipeline to the appender.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flock_trace_duckdb::{
    TraceConfig,
    duckdb::{
        Connection,
        arrow::{
            array::{
                ArrayRef, Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
            },
            datatypes::{Field, Schema},
            record_batch::RecordBatch,
        },
        params,
    },
};
use tracing_subscriber::layer::SubscriberExt as _;

const SPANS: usize = 100_000;
const BURST: usize = 200_000;

/// A fresh directory per run, removed when dropped.
struct Dir(std::path::PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "flock-export-bench-{}-{name}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("bench directory");
        Dir(dir)
    }

    fn file(&self) -> std::path::PathBuf {
        self.0.join("traces.duckdb")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Ends `n` spans shaped like the runtime's `batch.flush` on this thread.
fn flush_spans(n: usize) {
    for i in 0..n {
        let _span = tracing::info_span!(
            "batch.flush",
            agent = "payments",
            subscription_index = 0_i64,
            batch_size = (i % 25) as i64 + 1,
            artifacts = (i % 25) as i64 + 1,
            flush_reason = "size",
            configured_size = 25_i64,
            configured_timeout_ms = 30_000_i64,
            efficiency = 1.0,
            wait_ms = 12_i64,
        )
        .entered();
    }
}

/// The pipeline's time to write `n` spans already waiting in its buffer.
fn pipeline_run(n: usize) -> Duration {
    let dir = Dir::new("pipeline");
    let guard = TraceConfig::new(dir.file())
        .queue_size((n + 1).try_into().expect("non-zero"))
        .export_batch_size((n + 1).try_into().expect("non-zero"))
        .export_interval(Duration::from_secs(3600))
        .build()
        .expect("trace pipeline");
    let subscriber = tracing_subscriber::registry().with(guard.layer());
    tracing::subscriber::with_default(subscriber, || flush_spans(n));
    let started = Instant::now();
    guard.force_flush().expect("flush");
    let elapsed = started.elapsed();
    let report = guard.shutdown();
    assert_eq!(
        (report.exported, report.unexported),
        (n as u64, 0),
        "{report}"
    );
    elapsed
}

/// Rows of the shape the writer writes for [`flush_spans`], as the appender gets them.
struct Row {
    trace_id: String,
    span_id: String,
    start: i64,
    attributes: String,
}

fn rows(n: usize) -> Vec<Row> {
    (0..n)
        .map(|i| Row {
            trace_id: format!("{:032x}", (i as u128 + 1) * 0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C834),
            span_id: format!("{:016x}", (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            start: 1_700_000_000_000_000_000 + i as i64 * 1_000,
            attributes: format!(
                r#"{{"agent":"payments","subscription_index":0,"batch_size":{size},"artifacts":{size},"flush_reason":"size","configured_size":25,"configured_timeout_ms":30000,"efficiency":1.0,"wait_ms":12}}"#,
                size = i % 25 + 1
            ),
        })
        .collect()
}

const RESOURCE: &str = r#"{"service.name":"flock"}"#;

fn record_batch(rows: &[Row]) -> RecordBatch {
    let n = rows.len();
    let strings = || StringBuilder::with_capacity(n, n * 16);
    let mut b: Vec<StringBuilder> = (0..13).map(|_| strings()).collect();
    let (mut start, mut end) = (Int64Builder::new(), Int64Builder::new());
    let mut duration = Float64Builder::new();
    let mut created = TimestampMicrosecondBuilder::new();
    for row in rows {
        b[0].append_value(&row.trace_id);
        b[1].append_value(&row.span_id);
        b[2].append_null();
        b[3].append_value("batch.flush");
        b[4].append_value("batch");
        b[5].append_value("flush");
        b[6].append_value("INTERNAL");
        start.append_value(row.start);
        end.append_value(row.start + 500_000);
        duration.append_value(0.5);
        b[7].append_value("UNSET");
        b[8].append_null();
        b[9].append_value(&row.attributes);
        b[10].append_value("[]");
        b[11].append_value("[]");
        b[12].append_value(RESOURCE);
        created.append_value(1_700_000_000_000_000);
    }
    let mut columns: Vec<ArrayRef> = Vec::new();
    for builder in &mut b[..7] {
        columns.push(Arc::new(builder.finish()));
    }
    columns.push(Arc::new(start.finish()));
    columns.push(Arc::new(end.finish()));
    columns.push(Arc::new(duration.finish()));
    for builder in &mut b[7..] {
        columns.push(Arc::new(builder.finish()));
    }
    columns.push(Arc::new(created.finish()));
    let names = [
        "trace_id",
        "span_id",
        "parent_id",
        "name",
        "service",
        "operation",
        "kind",
        "start_time",
        "end_time",
        "duration_ms",
        "status_code",
        "status_description",
        "attributes",
        "events",
        "links",
        "resource",
        "created_at",
    ];
    let fields: Vec<Field> = names
        .iter()
        .zip(&columns)
        .map(|(name, column)| Field::new(*name, column.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("record batch")
}

/// A fresh trace file with its table (made by a pipeline), opened for appending
/// with the writer's settings.
fn fresh_file(dir: &Dir) -> Connection {
    drop(TraceConfig::new(dir.file()).build().expect("trace file"));
    let conn = Connection::open(dir.file()).expect("open");
    conn.execute_batch("SET threads = 1").expect("settings");
    conn
}

/// DuckDB's appender alone: `rows` in one transaction, Arrow or row by row.
fn appender_run(rows: &[Row], arrow: bool) -> Duration {
    let dir = Dir::new("appender");
    let conn = fresh_file(&dir);
    let batches: Vec<RecordBatch> = if arrow {
        rows.chunks(8_192).map(record_batch).collect()
    } else {
        Vec::new()
    };
    let started = Instant::now();
    conn.execute_batch("BEGIN TRANSACTION").expect("begin");
    {
        let mut appender = conn.appender("spans").expect("appender");
        if arrow {
            for batch in batches {
                appender.append_record_batch(batch).expect("append");
            }
        } else {
            let created = flock_trace_duckdb::duckdb::types::Value::Timestamp(
                flock_trace_duckdb::duckdb::types::TimeUnit::Microsecond,
                1_700_000_000_000_000,
            );
            for row in rows {
                appender
                    .append_row(params![
                        row.trace_id,
                        row.span_id,
                        None::<String>,
                        "batch.flush",
                        "batch",
                        "flush",
                        "INTERNAL",
                        row.start,
                        row.start + 500_000,
                        0.5,
                        "UNSET",
                        None::<String>,
                        row.attributes,
                        "[]",
                        "[]",
                        RESOURCE,
                        created,
                    ])
                    .expect("append");
            }
        }
        appender.flush().expect("flush");
    }
    conn.execute_batch("COMMIT; CHECKPOINT;").expect("commit");
    started.elapsed()
}

/// `BURST` spans ended on this thread while the writer writes: (end to end, the
/// instrumented thread's share).
fn burst_run() -> (Duration, Duration) {
    let dir = Dir::new("burst");
    let guard = TraceConfig::new(dir.file())
        .build()
        .expect("trace pipeline");
    let subscriber = tracing_subscriber::registry().with(guard.layer());
    let started = Instant::now();
    tracing::subscriber::with_default(subscriber, || flush_spans(BURST));
    let emitted = started.elapsed();
    let report = guard.shutdown();
    let total = started.elapsed();
    assert_eq!(
        (report.exported, report.unexported),
        (BURST as u64, 0),
        "{report}"
    );
    (total, emitted)
}

fn export(c: &mut Criterion) {
    let made = rows(SPANS);
    let mut group = c.benchmark_group("export");
    group.sample_size(10);
    group.throughput(Throughput::Elements(SPANS as u64));
    group.bench_function("pipeline", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| pipeline_run(SPANS)).sum());
    });
    group.bench_function("appender_arrow", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| appender_run(&made, true)).sum());
    });
    group.bench_function("appender_rows", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| appender_run(&made, false)).sum());
    });
    group.throughput(Throughput::Elements(BURST as u64));
    group.bench_function("burst", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| burst_run().0).sum());
    });
    group.finish();

    let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64();
    let pipeline = rate(SPANS, pipeline_run(SPANS));
    let arrow = rate(SPANS, appender_run(&made, true));
    let by_row = rate(SPANS, appender_run(&made, false));
    let (total, emitted) = burst_run();
    println!(
        "{SPANS} spans: pipeline {pipeline:.0} spans/s into the file; DuckDB's appender alone \
         {arrow:.0} rows/s (Arrow), {by_row:.0} rows/s (row by row); pipeline / appender (Arrow) \
         {:.2}",
        pipeline / arrow
    );
    println!(
        "burst of {BURST} spans ended on one thread, default buffer: {:.0} spans/s end to end, \
         {:.2} µs per span on the instrumented thread",
        rate(BURST, total),
        emitted.as_secs_f64() * 1e6 / BURST as f64
    );
}

/// The time `SPANS` spans take on this thread: with the pipeline's layer
/// (`detailed` or not, the buffer never full), or with a bare registry.
fn span_run(layer: Option<bool>) -> Duration {
    let dir = Dir::new("span");
    match layer {
        None => {
            let started = Instant::now();
            tracing::subscriber::with_default(tracing_subscriber::registry(), || {
                flush_spans(SPANS);
            });
            started.elapsed()
        }
        Some(detailed) => {
            let guard = TraceConfig::new(dir.file())
                .detailed_spans(detailed)
                .queue_size((SPANS + 1).try_into().expect("non-zero"))
                .export_batch_size((SPANS + 1).try_into().expect("non-zero"))
                .export_interval(Duration::from_secs(3600))
                .build()
                .expect("trace pipeline");
            let subscriber = tracing_subscriber::registry().with(guard.layer());
            let started = Instant::now();
            tracing::subscriber::with_default(subscriber, || flush_spans(SPANS));
            let elapsed = started.elapsed();
            drop(guard);
            elapsed
        }
    }
}

fn span_cost(c: &mut Criterion) {
    let mut group = c.benchmark_group("span");
    group.sample_size(10);
    group.throughput(Throughput::Elements(SPANS as u64));
    for (name, layer) in [
        ("pipeline_layer", Some(false)),
        ("pipeline_layer_detailed", Some(true)),
        ("registry_only", None),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| span_run(layer)).sum());
        });
    }
    group.finish();
    let per_span = |d: Duration| d.as_secs_f64() * 1e6 / SPANS as f64;
    println!(
        "one span on the thread that ends it: {:.2} µs with the pipeline's layer, {:.2} µs with \
         detailed spans, {:.2} µs with a bare registry",
        per_span(span_run(Some(false))),
        per_span(span_run(Some(true))),
        per_span(span_run(None)),
    );
}

criterion_group!(benches, export, span_cost);
criterion_main!(benches);
