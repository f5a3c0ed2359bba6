//! The running pipeline ([`TraceGuard`]) and its reports ([`ExportReport`],
//! [`ExportStats`]). Guards of one pipeline share it; the last one to shut down
//! stops it. Starting one, and the table that gives every trace file one pipeline
//! per process, are in `start.rs`.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkError,
    trace::{SdkTracer, SdkTracerProvider},
};
use tracing::Subscriber;
use tracing_subscriber::{Layer as _, registry::LookupSpan};

#[cfg(feature = "duckdb")]
use crate::processor::DuckDbProcessor;
use crate::{
    TraceConfig, TraceError, TraceLayer, config::ENV_OTEL_SERVICE_NAME, layer::PipelineLayer,
};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One pipeline: a tracer provider with the DuckDB processor and/or OTLP.
pub(crate) struct Pipeline {
    pub(crate) id: u64,
    /// The canonical trace file, `None` without one (OTLP only).
    pub(crate) file: Option<PathBuf>,
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    #[cfg(feature = "duckdb")]
    duckdb: Option<DuckDbProcessor>,
    /// Spans that ended in this pipeline's layers.
    ended: Arc<AtomicU64>,
    guards: AtomicUsize,
    pub(crate) stopped: AtomicBool,
    shutdown_timeout: Duration,
    pub(crate) fmt_from_rust_log: bool,
    detailed_spans: bool,
}

// === impl Pipeline ===

impl Pipeline {
    /// Starts the processors `config` asks for; `file` is its canonical trace file.
    pub(crate) fn start(config: TraceConfig, file: Option<PathBuf>) -> Result<Self, TraceError> {
        let service_name = config
            .service_name
            .clone()
            .or_else(|| std::env::var(ENV_OTEL_SERVICE_NAME).ok())
            .filter(|name| !name.trim().is_empty())
            .unwrap_or_else(|| "flock".to_owned());
        let resource = Resource::builder().with_service_name(service_name).build();
        let builder = SdkTracerProvider::builder().with_resource(resource);
        #[cfg(feature = "duckdb")]
        let (builder, duckdb) = match &file {
            Some(path) => {
                let processor = crate::startup::start_processor(&config, path)?;
                (
                    builder.with_span_processor(processor.clone()),
                    Some(processor),
                )
            }
            None => (builder, None),
        };
        #[cfg(feature = "otlp")]
        let builder = match &config.otlp {
            Some(endpoint) => {
                builder.with_batch_exporter(crate::otlp::exporter(endpoint.as_deref())?)
            }
            None => builder,
        };
        let provider = builder.build();
        let tracer = provider.tracer("flock");
        Ok(Pipeline {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            file,
            provider,
            tracer,
            #[cfg(feature = "duckdb")]
            duckdb,
            ended: Arc::new(AtomicU64::new(0)),
            guards: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
            shutdown_timeout: config.shutdown_timeout,
            fmt_from_rust_log: config.fmt_from_rust_log,
            detailed_spans: config.detailed_spans,
        })
    }

    /// Writes every span that ended so far; whether all are settled in time.
    fn flush(&self) -> bool {
        #[cfg(feature = "duckdb")]
        if let Some(duckdb) = &self.duckdb {
            let settled = duckdb.flush(self.shutdown_timeout);
            // The other processors (OTLP); the file's is settled already.
            let _ = self.provider.force_flush();
            return settled;
        }
        self.provider.force_flush().is_ok()
    }

    /// Stops every processor: pending spans are written, later ones counted as late.
    fn stop(&self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        #[cfg(feature = "duckdb")]
        if let Some(duckdb) = &self.duckdb {
            duckdb.stop(self.shutdown_timeout);
        }
        let _ = self.provider.shutdown_with_timeout(self.shutdown_timeout);
    }

    /// What happened to the spans of the file so far; `ended` is the number of
    /// spans the report answers for.
    fn report(&self, ended: u64, settled: bool) -> ExportReport {
        #[cfg(feature = "duckdb")]
        if let Some(duckdb) = &self.duckdb {
            let (counts, last_error) = duckdb.counts();
            let seen = counts.queued + counts.dropped() + counts.late;
            let ended = ended.max(seen);
            let mut error = counts.describe_losses(duckdb.capacity(), last_error.as_deref());
            if !settled {
                let waiting = duckdb.unsettled();
                let timeout = self.shutdown_timeout;
                let clause = format!("{waiting} still waiting to be written after {timeout:?}");
                error = Some(match error {
                    Some(causes) => format!("{causes}; {clause}"),
                    None => clause,
                });
            }
            return ExportReport {
                exported: counts.exported,
                unexported: ended.saturating_sub(counts.exported),
                dropped: counts.dropped(),
                failed: counts.failed,
                error,
            };
        }
        let _ = (ended, settled);
        ExportReport::default()
    }

    fn stats(&self) -> ExportStats {
        #[cfg(feature = "duckdb")]
        if let Some(duckdb) = &self.duckdb {
            let (counts, last_error) = duckdb.counts();
            return ExportStats {
                exported: counts.exported,
                failed: counts.failed,
                dropped: counts.dropped(),
                late: counts.late,
                waiting: duckdb.unsettled(),
                backpressure_waits: counts.waits,
                lock_retries: counts.lock_retries,
                writes: counts.sessions,
                file_held: counts.held,
                last_error,
            };
        }
        ExportStats::default()
    }
}

// === impl TraceGuard ===

/// A handle on a running trace pipeline.
///
/// [`shutdown`](Self::shutdown) (or dropping it) writes every pending span, waiting
/// at most the configured shutdown timeout, and reports spans that did not make it
/// into the file. Guards of one pipeline (clones, or guards built for the same
/// file) share it: the last one to shut down stops it; the others only flush.
#[must_use = "dropping the guard shuts tracing down; keep it until the program ends"]
pub struct TraceGuard {
    pub(crate) pipeline: Arc<Pipeline>,
    /// Shut down already (by `shutdown`, so `Drop` does nothing).
    done: bool,
}

/// What happened to the spans that ended in a pipeline, as far as its trace file
/// is concerned; returned by [`TraceGuard::shutdown`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct ExportReport {
    /// Spans written to the file.
    pub exported: u64,
    /// Spans that ended but are not in the file: dropped, failed, ended while the
    /// pipeline was shutting down, or still waiting when the shutdown timeout
    /// passed. Never silent: [`error`](Self::error) says why.
    pub unexported: u64,
    /// Of those, spans dropped because the buffer was full while another process
    /// held the file (or after the writer had stopped).
    pub dropped: u64,
    /// Of those, spans whose write failed, or that still waited for a locked file
    /// when the shutdown timeout passed.
    pub failed: u64,
    /// Why spans are missing, one clause per cause, with the last error.
    pub error: Option<String>,
}

/// Counters of a pipeline's trace file so far, from [`TraceGuard::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportStats {
    /// Spans written to the file.
    pub exported: u64,
    /// Spans whose write failed (the error is `last_error`), or that still waited
    /// for a locked file when the shutdown timeout passed.
    pub failed: u64,
    /// Spans dropped because the buffer was full while another process held the
    /// file (or after the writer had stopped).
    pub dropped: u64,
    /// Spans that ended after shutdown began.
    pub late: u64,
    /// Spans ended and not written yet: waiting in the buffer, or being written.
    pub waiting: u64,
    /// How often a thread ending a span waited for room in a full buffer.
    pub backpressure_waits: u64,
    /// How often the writer found the file held by another process and waited.
    pub lock_retries: u64,
    /// How often the writer held the file to write (attach to detach).
    pub writes: u64,
    /// How long it held the file in all: the time another process could not open it.
    pub file_held: Duration,
    /// The error of the last failed write, if any.
    pub last_error: Option<String>,
}

impl ExportReport {
    /// Whether every span that ended was written.
    pub fn is_complete(&self) -> bool {
        self.unexported == 0
    }
}

impl fmt::Display for ExportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} spans exported, {} not exported",
            self.exported, self.unexported
        )?;
        if let Some(error) = &self.error {
            write!(f, " ({error})")?;
        }
        Ok(())
    }
}

impl TraceGuard {
    pub(crate) fn new(pipeline: Arc<Pipeline>) -> Self {
        pipeline.guards.fetch_add(1, Ordering::AcqRel);
        TraceGuard {
            pipeline,
            done: false,
        }
    }

    /// A `tracing` layer sending spans into this pipeline, to compose into any
    /// subscriber that keeps span data (a [`Registry`](tracing_subscriber::Registry) does), next to the
    /// application's own layers. Can be called more than once, e.g. for one
    /// subscriber per thread or test.
    pub fn layer<S>(&self) -> TraceLayer<S>
    where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        let pipeline = &self.pipeline;
        let details = pipeline.detailed_spans;
        tracing_opentelemetry::layer()
            .with_tracer(pipeline.tracer.clone())
            .with_location(details)
            .with_threads(details)
            .with_tracked_inactivity(details)
            .and_then(PipelineLayer::new(pipeline.id, pipeline.ended.clone()))
    }

    /// The OpenTelemetry tracer provider, for instrumentation that uses the
    /// OpenTelemetry API directly. `None` once the pipeline stopped.
    pub fn tracer_provider(&self) -> Option<&SdkTracerProvider> {
        (!self.pipeline.stopped.load(Ordering::Acquire)).then_some(&self.pipeline.provider)
    }

    /// The trace file, if spans go to one.
    pub fn path(&self) -> Option<&Path> {
        self.pipeline.file.as_deref()
    }

    /// Counters of the trace file so far.
    pub fn stats(&self) -> ExportStats {
        self.pipeline.stats()
    }

    /// Writes every span that ended so far, waiting at most the shutdown timeout.
    ///
    /// # Errors
    ///
    /// [`TraceError::Pipeline`] if spans were still waiting when it passed.
    pub fn force_flush(&self) -> Result<(), TraceError> {
        if self.pipeline.flush() {
            Ok(())
        } else {
            Err(TraceError::Pipeline(OTelSdkError::Timeout(
                self.pipeline.shutdown_timeout,
            )))
        }
    }

    /// Writes every span that ended so far and reports what happened to all of
    /// them; the last guard of the pipeline also stops it (spans that end
    /// afterwards are not written). A report with spans missing is also logged as
    /// a warning.
    pub fn shutdown(mut self) -> ExportReport {
        self.shutdown_inner()
    }

    fn shutdown_inner(&mut self) -> ExportReport {
        self.done = true;
        let pipeline = &self.pipeline;
        let last = pipeline.guards.fetch_sub(1, Ordering::AcqRel) == 1;
        let report = if last {
            pipeline.stop();
            // Every span that ended by now is written or counted.
            pipeline.report(pipeline.ended.load(Ordering::Acquire), true)
        } else {
            let ended = pipeline.ended.load(Ordering::Acquire);
            let settled = pipeline.flush();
            pipeline.report(ended, settled)
        };
        if !report.is_complete() {
            tracing::warn!(
                target: "flock_trace_duckdb",
                target_file = %self.target(),
                exported = report.exported,
                unexported = report.unexported,
                "spans could not be written: {report}"
            );
        }
        report
    }

    /// What the pipeline writes to, for messages.
    pub(crate) fn target(&self) -> String {
        match &self.pipeline.file {
            Some(path) => format!("trace file `{}`", path.display()),
            None => "the OTLP collector".to_owned(),
        }
    }
}

impl Clone for TraceGuard {
    fn clone(&self) -> Self {
        TraceGuard::new(self.pipeline.clone())
    }
}

impl fmt::Debug for TraceGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceGuard")
            .field("file", &self.pipeline.file)
            .field("running", &!self.pipeline.stopped.load(Ordering::Acquire))
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Drop for TraceGuard {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.shutdown_inner();
        }
    }
}
