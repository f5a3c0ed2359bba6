//! [`DuckDbSpanExporter`]: an OpenTelemetry span exporter writing the `spans` table,
//! for OpenTelemetry pipelines built by hand.
//!
//! [`TraceConfig`](crate::TraceConfig) does not use it: its pipeline has its own
//! processor with a bounded buffer and a writer thread (see `writer.rs`). This
//! exporter writes each batch it is handed in one transaction, through the same
//! file code.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use opentelemetry_sdk::{
    Resource,
    error::{OTelSdkError, OTelSdkResult},
    trace::{SpanData, SpanExporter},
};

use crate::{
    ExportStats, TraceError,
    error::error_chain,
    json::resource_json,
    lock,
    schema::Rows,
    store::{self, TraceFile},
    writer::CHECKPOINT_WAL_BYTES,
};

/// Writes batches of finished spans into the `spans` table of a DuckDB file.
///
/// Each export attaches the file, appends the whole batch in one transaction
/// through DuckDB's appender and detaches again, so other processes can open the
/// file between exports. If another process holds the file, the export retries
/// with backoff for up to the lock timeout (30 seconds unless set with
/// [`lock_timeout`](Self::lock_timeout)) before it fails.
///
/// Most programs want [`TraceConfig`](crate::TraceConfig) instead, whose pipeline
/// never blocks on a locked file and loses no span to it. This exporter is for
/// OpenTelemetry pipelines built by hand, behind a
/// [`BatchSpanProcessor`](opentelemetry_sdk::trace::BatchSpanProcessor) or, as
/// below, a simple processor. Clones share their counters ([`stats`](Self::stats)).
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
    /// The writer's DuckDB instance, made at the first export.
    file: Mutex<Option<TraceFile>>,
    exported: AtomicU64,
    failed: AtomicU64,
    lock_retries: AtomicU64,
    last_error: Mutex<Option<String>>,
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
            ..ExportStats::default()
        }
    }

    /// Writes one batch in one transaction.
    fn write(&self, batch: &[SpanData]) -> Result<(), TraceError> {
        let mut slot = lock(&self.shared.file);
        let file = match &mut *slot {
            Some(file) => file,
            None => slot.insert(TraceFile::new(&self.path)?),
        };
        file.attach_waiting(self.lock_timeout, &self.shared.lock_retries)?;
        let written = (|| {
            file.begin()?;
            let created_at = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as i64);
            let mut rows = Rows::with_capacity(batch.len());
            for span in batch {
                rows.push(span, &self.resource, created_at);
            }
            file.append(rows.finish())?;
            file.commit()?;
            if file.wal_bytes() >= CHECKPOINT_WAL_BYTES {
                file.checkpoint()?;
            }
            Ok(())
        })();
        file.detach();
        written
    }

    fn export_sync(&self, batch: &[SpanData]) -> OTelSdkResult {
        if batch.is_empty() {
            return Ok(());
        }
        let count = batch.len() as u64;
        match self.write(batch) {
            Ok(()) => {
                self.shared.exported.fetch_add(count, Ordering::Relaxed);
                Ok(())
            }
            Err(err) => {
                self.shared.failed.fetch_add(count, Ordering::Relaxed);
                let message = error_chain(&err);
                tracing::warn!(
                    target: "flock_trace_duckdb",
                    spans = count,
                    "could not export spans: {message}"
                );
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
        // DuckDB's API is blocking; processors call exporters on their own thread
        // and block on the future anyway, so the work happens right here.
        std::future::ready(self.export_sync(&batch))
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        // Leave a checkpointed file behind.
        let mut slot = lock(&self.shared.file);
        if let Some(file) = slot.as_mut()
            && file
                .attach_waiting(self.lock_timeout, &self.shared.lock_retries)
                .is_ok()
        {
            let _ = file.checkpoint();
            file.detach();
        }
        *slot = None;
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = Arc::from(resource_json(resource));
    }
}
