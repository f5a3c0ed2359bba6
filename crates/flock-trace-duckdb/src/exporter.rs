//! [`DuckDbSpanExporter`]: an OpenTelemetry span exporter writing the `spans` table.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use opentelemetry_sdk::{
    Resource,
    error::{OTelSdkError, OTelSdkResult},
    trace::{SpanData, SpanExporter},
};

use crate::{
    TraceError,
    schema::{SpanRow, resource_json},
    store,
};

/// Writes batches of finished spans into the `spans` table of a DuckDB file.
///
/// Each export opens the file, appends the whole batch in one statement and
/// closes the file again, so other processes can open it between exports. If
/// another process holds the file, the export retries with exponential backoff
/// for up to the lock timeout (30 seconds unless set with
/// [`lock_timeout`](Self::lock_timeout)) before it fails.
///
/// Use it behind a [`BatchSpanProcessor`](opentelemetry_sdk::trace::BatchSpanProcessor),
/// which calls it on its own thread; [`TraceConfig`](crate::TraceConfig) sets
/// that up. Clones share their counters ([`stats`](Self::stats)), so keep a clone
/// to watch an exporter you moved into a processor.
///
/// # Example
///
/// ```
/// use opentelemetry::trace::{Tracer, TracerProvider};
/// use opentelemetry_sdk::trace::SdkTracerProvider;
/// use flock_trace_duckdb::DuckDbSpanExporter;
///
/// let path = std::env::temp_dir().join(format!("flock-doc-exporter-{}.duckdb", std::process::id()));
/// let exporter = DuckDbSpanExporter::new(&path);
/// let provider = SdkTracerProvider::builder()
///     .with_simple_exporter(exporter.clone())
///     .build();
/// provider.tracer("doc").in_span("batch.flush", |_cx| {});
/// provider.shutdown().unwrap();
/// assert_eq!(exporter.stats().exported, 1);
/// # std::fs::remove_file(&path).unwrap();
/// ```
#[derive(Clone)]
pub struct DuckDbSpanExporter {
    path: PathBuf,
    lock_timeout: Duration,
    resource: Arc<str>,
    shared: Arc<Shared>,
}

/// State shared by the clones of one exporter.
#[derive(Default)]
struct Shared {
    exported: AtomicU64,
    failed: AtomicU64,
    lock_retries: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Spans older than this (ns since the epoch) are deleted at the next export;
    /// set when TTL could not run at startup because the file was locked.
    pending_ttl_cutoff: Mutex<Option<i64>>,
}

/// Counters of a [`DuckDbSpanExporter`] (and its clones) since it was created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportStats {
    /// Spans written to the file.
    pub exported: u64,
    /// Spans of exports that failed (the file stayed locked past the timeout, or
    /// DuckDB failed); they are not in the file.
    pub failed: u64,
    /// How often an export found the file locked by another process and waited.
    pub lock_retries: u64,
    /// The error of the last failed export, if any.
    pub last_error: Option<String>,
}

// === impl DuckDbSpanExporter ===

impl DuckDbSpanExporter {
    /// An exporter writing to the DuckDB file at `path` (created with its
    /// `spans` table at the first export; its directory must exist).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DuckDbSpanExporter {
            path: path.into(),
            lock_timeout: store::DEFAULT_LOCK_TIMEOUT,
            resource: Arc::from("{}"),
            shared: Arc::default(),
        }
    }

    /// How long one export keeps retrying while another process holds the file
    /// (default 30 seconds).
    #[must_use]
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The trace file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What this exporter and its clones have done so far.
    pub fn stats(&self) -> ExportStats {
        let shared = &self.shared;
        ExportStats {
            exported: shared.exported.load(Ordering::Relaxed),
            failed: shared.failed.load(Ordering::Relaxed),
            lock_retries: shared.lock_retries.load(Ordering::Relaxed),
            last_error: lock(&shared.last_error).clone(),
        }
    }

    /// Deletes spans older than `cutoff_ns` at the next export.
    pub(crate) fn defer_ttl(&self, cutoff_ns: i64) {
        *lock(&self.shared.pending_ttl_cutoff) = Some(cutoff_ns);
    }

    /// Writes one batch; the counters are updated by the caller.
    fn write(&self, rows: &[SpanRow]) -> Result<(), TraceError> {
        let conn = store::open(&self.path, self.lock_timeout, &self.shared.lock_retries)?;
        let pending_ttl = *lock(&self.shared.pending_ttl_cutoff);
        if let Some(cutoff) = pending_ttl {
            store::delete_before(&conn, &self.path, cutoff)?;
            *lock(&self.shared.pending_ttl_cutoff) = None;
        }
        store::insert(&conn, &self.path, rows, &self.resource)
        // Dropping `conn` closes the file (DuckDB checkpoints on close), releasing the lock.
    }

    fn export_sync(&self, batch: &[SpanData]) -> OTelSdkResult {
        if batch.is_empty() {
            return Ok(());
        }
        // Convert before opening the file, to hold the lock no longer than the insert.
        let rows: Vec<SpanRow> = batch.iter().map(SpanRow::from_span).collect();
        let count = rows.len() as u64;
        match self.write(&rows) {
            Ok(()) => {
                self.shared.exported.fetch_add(count, Ordering::Relaxed);
                Ok(())
            }
            Err(err) => {
                self.shared.failed.fetch_add(count, Ordering::Relaxed);
                let message = error_chain(&err);
                // The processor thread has nobody to return this to but the SDK's
                // internal log; say it where a person sees it.
                eprintln!("flock-trace-duckdb: could not export {count} spans: {message}");
                *lock(&self.shared.last_error) = Some(message.clone());
                Err(OTelSdkError::InternalFailure(message))
            }
        }
    }
}

impl fmt::Debug for DuckDbSpanExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DuckDbSpanExporter")
            .field("path", &self.path)
            .field("lock_timeout", &self.lock_timeout)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl SpanExporter for DuckDbSpanExporter {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        // DuckDB's API is blocking; the batch processor calls us on its own thread
        // and blocks on the future anyway, so the work happens right here.
        std::future::ready(self.export_sync(&batch))
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = Arc::from(resource_json(resource));
    }
}

/// The error and its sources on one line: `a: b: c`.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Locks a mutex, ignoring poisoning: the data are counters and messages, valid
/// whatever a panicking holder did.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
