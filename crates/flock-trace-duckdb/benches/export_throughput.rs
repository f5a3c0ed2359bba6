//! Export throughput: how fast finished spans reach the DuckDB file, beside DuckDB's
//! own appender writing the same rows, measured in the same run.
//!
//! `cargo xtask bench -p flock-rs-trace-duckdb --bench export_throughput`
//!
//! - `export/pipeline`: 100 000 spans shaped like the runtime's `batch.flush`,
//!   ended and waiting in the buffer; timed from the flush until all of them are in
//!   the file (conversion, appender, commit, checkpoint), on the writer's thread.
//! - `export/appender`: DuckDB's appender alone on the same rows, made beforehand
//!   from the same spans by the crate's own conversion (the writer's record
//!   batches), appended into the `spans` table of a fresh file in one transaction,
//!   committed and checkpointed. The ceiling for a writer that converts as it goes.
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
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flock_trace_duckdb::{
    TraceConfig,
    bench_support::{record_batches, resource_json},
    duckdb::{Connection, arrow::record_batch::RecordBatch},
};
use opentelemetry::{Context, trace::TracerProvider as _};
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    trace::{SdkTracerProvider, Span, SpanData, SpanProcessor},
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

/// Collects every span that ends, as the writer's processor receives them.
#[derive(Debug, Clone, Default)]
struct Collect(Arc<Mutex<Vec<SpanData>>>);

impl SpanProcessor for Collect {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        self.0.lock().expect("spans").push(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// The rows the writer writes for `n` spans of [`flush_spans`], made by the
/// crate's own conversion, in the writer's chunks: what the appender alone gets.
fn writer_rows(n: usize) -> Vec<RecordBatch> {
    let collect = Collect::default();
    let resource = Resource::builder().with_service_name("flock").build();
    let provider = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_span_processor(collect.clone())
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("flock"))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        flush_spans(n);
    });
    provider.shutdown().expect("provider");
    let spans = std::mem::take(&mut *collect.0.lock().expect("spans"));
    assert_eq!(spans.len(), n);
    record_batches(
        &spans,
        &resource_json(&resource),
        1_700_000_000_000_000,
        8_192,
    )
}

/// A fresh trace file with its table (made by a pipeline), opened for appending
/// with the writer's settings.
fn fresh_file(dir: &Dir) -> Connection {
    drop(TraceConfig::new(dir.file()).build().expect("trace file"));
    let conn = Connection::open(dir.file()).expect("open");
    conn.execute_batch("SET threads = 1").expect("settings");
    conn
}

/// DuckDB's appender alone: `rows` appended in one transaction, committed and
/// checkpointed.
fn appender_run(rows: &[RecordBatch]) -> Duration {
    let dir = Dir::new("appender");
    let conn = fresh_file(&dir);
    let batches = rows.to_vec();
    let started = Instant::now();
    conn.execute_batch("BEGIN TRANSACTION").expect("begin");
    {
        let mut appender = conn.appender("spans").expect("appender");
        for batch in batches {
            appender.append_record_batch(batch).expect("append");
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
    let made = writer_rows(SPANS);
    let mut group = c.benchmark_group("export");
    group.sample_size(10);
    group.throughput(Throughput::Elements(SPANS as u64));
    group.bench_function("pipeline", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| pipeline_run(SPANS)).sum());
    });
    group.bench_function("appender", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| appender_run(&made)).sum());
    });
    group.throughput(Throughput::Elements(BURST as u64));
    group.bench_function("burst", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| burst_run().0).sum());
    });
    group.finish();

    let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64();
    let pipeline = rate(SPANS, pipeline_run(SPANS));
    let appender = rate(SPANS, appender_run(&made));
    let (total, emitted) = burst_run();
    println!(
        "{SPANS} spans: pipeline {pipeline:.0} spans/s into the file; DuckDB's appender alone \
         {appender:.0} rows/s on the same rows; pipeline / appender {:.2}",
        pipeline / appender
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
