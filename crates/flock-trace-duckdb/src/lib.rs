//! Traces of flock-rs: the `tracing` → OpenTelemetry pipeline, into a DuckDB file
//! (feature `duckdb`) and/or an OTLP collector (feature `otlp`).
//!
//! `tracing` spans go through [`tracing_opentelemetry`] into an OpenTelemetry
//! [`SdkTracerProvider`](opentelemetry_sdk::trace::SdkTracerProvider). With a trace
//! file, the provider's processor queues finished spans in a bounded buffer, and a
//! writer thread appends them, in large transactions through DuckDB's appender, to
//! the `spans` table of a DuckDB file (by default
//! [`.flock/traces.duckdb`](DEFAULT_TRACE_FILE)). The table has Flock's schema, so
//! queries written for Flock work unchanged, for example the guide's:
//!
//! ```sql
//! SELECT name, attributes->'$.batch_size' as size, attributes->'$.flush_reason' as reason, duration_ms
//! FROM spans WHERE name LIKE '%batch%' ORDER BY start_time DESC LIMIT 20
//! ```
//!
//! | column | content |
//! | --- | --- |
//! | `trace_id`, `span_id`, `parent_id` | lowercase hex; `parent_id` is NULL for a root span |
//! | `name`, `service`, `operation` | the span name, split at its first `.` (`batch.flush` → `batch`, `flush`) |
//! | `kind` | `INTERNAL`, `SERVER`, `CLIENT`, `PRODUCER` or `CONSUMER` |
//! | `start_time`, `end_time`, `duration_ms` | nanoseconds since the Unix epoch; milliseconds |
//! | `status_code`, `status_description` | `UNSET`, `OK` or `ERROR`, and the error's description |
//! | `attributes`, `events`, `links`, `resource` | JSON; numbers and booleans keep their types; `resource` without the SDK's `telemetry.sdk.*` |
//! | `created_at` | when the row was written |
//!
//! # Guarantees
//!
//! - **The file is held only to write**: rows are converted and checked before the
//!   writer attaches the file; it holds it for the insert and commit (and now and
//!   then a checkpoint), then lets go, so other processes can read it while the
//!   program runs. A reader that opens it during a write gets
//!   `Could not set lock on file`: retry briefly ([`open_read_only`] does).
//! - **A reader delays, it does not lose**: while another process holds the file,
//!   spans wait in the buffer ([`TraceConfig::queue_size`], 65,536 by default).
//! - **A burst loses nothing**: when the buffer is full while the writer writes, the
//!   thread ending a span waits for room (backpressure).
//! - **Nothing is lost silently**: spans dropped because the buffer filled while the
//!   file was locked, or whose write failed, are logged as a `WARN` when it happens
//!   (at most every ten seconds), counted in [`TraceGuard::stats`], and reported with
//!   their cause by [`TraceGuard::shutdown`]; so are spans that end too late to be
//!   written. Design and measurements: `docs/adr/0007-*` in the repository.
//!
//! # Composing
//!
//! One process runs one pipeline per trace file: building a configuration for a
//! file a running pipeline writes joins it. [`TraceGuard::layer`] is a layer for the
//! application's own registry; [`TraceConfig::start`] installs a global subscriber
//! only when none is in force (what a flock does). See `docs/adr/0012-*`.
//!
//! # Building
//!
//! - `bundled` (default): the DuckDB file, DuckDB compiled from source (about 25
//!   minutes the first time).
//! - `duckdb`: the DuckDB file, linking a `libduckdb` found through
//!   `DUCKDB_LIB_DIR`; in this workspace `cargo xtask` sets that up.
//! - `otlp`: also (or only) send spans to an OTLP/HTTP collector, configured by
//!   [`TraceConfig::otlp_endpoint`] or the standard `OTEL_EXPORTER_OTLP_*` variables.
//! - Without `duckdb` and `bundled`, nothing of DuckDB is built or linked.
//!
//! # Example
//!
//! A program turns tracing on with `FLOCK_TRACE_FILE=true` (or a path), or with
//! [`TraceConfig::new`], and keeps the guard while it runs:
//!
//! ```no_run
//! # fn run() {}
//! let guard = match flock_trace_duckdb::TraceConfig::from_env()? {
//!     Some(config) => Some(config.service_name("payments").install()?),
//!     None => None,
//! };
//! run(); // instrumented with `tracing` spans
//! if let Some(guard) = guard {
//!     let report = guard.shutdown(); // writes every pending span
//!     println!("{report}");
//! }
//! # Ok::<(), flock_trace_duckdb::TraceError>(())
//! ```
//!
//! Tests and programs with their own subscriber use [`TraceConfig::build`] and
//! [`TraceGuard::layer`] instead, and read the file with the re-exported
//! [`duckdb`] crate:
//!
//! ```
//! use flock_trace_duckdb::{TraceConfig, duckdb};
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let dir = std::env::temp_dir().join(format!("flock-doc-lib-{}", std::process::id()));
//! let path = dir.join("traces.duckdb");
//! let guard = TraceConfig::new(&path).build()?;
//! tracing::subscriber::with_default(tracing_subscriber::registry().with(guard.layer()), || {
//!     let _flush = tracing::info_span!("batch.flush", batch_size = 25_i64, flush_reason = "size")
//!         .entered();
//! });
//! assert!(guard.shutdown().is_complete());
//!
//! let conn = duckdb::Connection::open(&path).unwrap();
//! let (size, reason): (i64, String) = conn
//!     .query_row(
//!         "SELECT attributes->'$.batch_size', attributes->>'$.flush_reason' FROM spans",
//!         [],
//!         |row| Ok((row.get(0)?, row.get(1)?)),
//!     )
//!     .unwrap();
//! assert_eq!((size, reason.as_str()), (25, "size"));
//! # drop(conn);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), flock_trace_duckdb::TraceError>(())
//! ```

// docs.rs (`--cfg docsrs`) marks every feature-gated item with its feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "duckdb")]
mod buffer;
mod config;
mod error;
#[cfg(feature = "duckdb")]
mod exporter;
#[cfg(feature = "duckdb")]
mod json;
mod layer;
#[cfg(feature = "otlp")]
mod otlp;
mod pipeline;
#[cfg(feature = "duckdb")]
mod processor;
#[cfg(feature = "duckdb")]
mod schema;
mod start;
#[cfg(feature = "duckdb")]
mod startup;
#[cfg(feature = "duckdb")]
mod store;
#[cfg(feature = "duckdb")]
mod writer;

/// The `duckdb` crate this exporter writes with, to read trace files with the
/// same DuckDB version.
#[cfg(feature = "duckdb")]
#[cfg_attr(docsrs, doc(cfg(feature = "duckdb")))]
pub use duckdb;

pub use crate::{
    config::{
        DEFAULT_TRACE_FILE, ENV_OTEL_SERVICE_NAME, ENV_TRACE_FILE, ENV_TRACE_TTL_DAYS, TraceConfig,
    },
    error::TraceError,
    layer::{PipelineLayer, TraceLayer},
    pipeline::{ExportReport, ExportStats, TraceGuard},
};
#[cfg(feature = "duckdb")]
#[cfg_attr(docsrs, doc(cfg(feature = "duckdb")))]
pub use crate::{
    exporter::DuckDbSpanExporter,
    store::{clear_traces, open_read_only},
};

/// Not part of the API (it may change in any release): the crate's own row
/// conversion, for its benchmarks, so that they compare DuckDB's appender with the
/// writer on rows made by the writer's code rather than by a copy of it.
#[doc(hidden)]
#[cfg(feature = "duckdb")]
pub mod bench_support {
    pub use crate::{json::resource_json, schema::record_batches};
}

/// Locks a mutex, ignoring poisoning: the data behind the crate's mutexes (counters,
/// messages, handles) stay valid whatever a panicking holder did.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
