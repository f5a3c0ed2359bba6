//! [`TraceConfig`] and [`TraceGuard`]: setting up the tracing → OpenTelemetry →
//! DuckDB pipeline, and shutting it down without losing spans.

use std::{
    env, fmt, fs,
    num::NonZeroUsize,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use opentelemetry::{Context, trace::TracerProvider as _};
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    trace::{
        BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider, Span, SpanData,
        SpanProcessor,
    },
};
use tracing::Subscriber;
use tracing_subscriber::{
    EnvFilter, Layer as _, Registry, layer::SubscriberExt as _, registry::LookupSpan,
};

use crate::{
    DuckDbSpanExporter, ExportStats, TraceError,
    exporter::error_chain,
    schema::unix_nanos,
    store::{self, DEFAULT_LOCK_TIMEOUT},
};

/// The trace file used when `FLOCK_TRACE_FILE=true`.
pub const DEFAULT_TRACE_FILE: &str = ".flock/traces.duckdb";

/// Turns tracing on: `true` (or `1`, `yes`, `on`) for [`DEFAULT_TRACE_FILE`], a path
/// for another file; `false`, `0`, `no`, `off` or empty (or unset) for off.
pub const ENV_TRACE_FILE: &str = "FLOCK_TRACE_FILE";

/// Deletes spans older than this many days when tracing starts.
pub const ENV_TRACE_TTL_DAYS: &str = "FLOCK_TRACE_TTL_DAYS";

const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// Configuration of the trace pipeline: where spans go and how they get there.
///
/// Build with [`new`](Self::new) or [`from_env`](Self::from_env), adjust with the
/// by-value setters, then either [`install`](Self::install) it as the global
/// `tracing` subscriber or [`build`](Self::build) it and compose
/// [`TraceGuard::layer`] into a subscriber of your own.
///
/// # Example
///
/// ```
/// use flock_trace_duckdb::TraceConfig;
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let dir = std::env::temp_dir().join(format!("flock-doc-config-{}", std::process::id()));
/// let guard = TraceConfig::new(dir.join("traces.duckdb"))
///     .service_name("payments")
///     .ttl_days(Some(7))
///     .build()?;
/// let subscriber = tracing_subscriber::registry().with(guard.layer());
/// tracing::subscriber::with_default(subscriber, || {
///     let _span = tracing::info_span!("batch.flush", batch_size = 25_i64).entered();
/// });
/// let report = guard.shutdown();
/// assert_eq!((report.exported, report.unexported), (1, 0));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), flock_trace_duckdb::TraceError>(())
/// ```
#[derive(Debug, Clone)]
pub struct TraceConfig {
    path: PathBuf,
    service_name: String,
    ttl_days: Option<u32>,
    queue_size: NonZeroUsize,
    export_batch_size: NonZeroUsize,
    export_interval: Duration,
    lock_timeout: Duration,
    shutdown_timeout: Duration,
    fmt_from_rust_log: bool,
    #[cfg(feature = "otlp")]
    otlp_endpoint: Option<String>,
}

// === impl TraceConfig ===

impl TraceConfig {
    /// Traces into the DuckDB file at `path` (its directory is created as needed),
    /// with service name `flock`, no TTL, a queue of 65 536 spans exported in
    /// batches of up to 8 192 at least every second, a 30 second lock timeout and a
    /// 60 second bound on the flush at shutdown.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        TraceConfig {
            path: path.into(),
            service_name: "flock".to_owned(),
            ttl_days: None,
            queue_size: NonZeroUsize::new(65_536).expect("non-zero"),
            export_batch_size: NonZeroUsize::new(8_192).expect("non-zero"),
            export_interval: Duration::from_secs(1),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            shutdown_timeout: Duration::from_secs(60),
            fmt_from_rust_log: true,
            #[cfg(feature = "otlp")]
            otlp_endpoint: None,
        }
    }

    /// The configuration the environment asks for, `None` if tracing is off.
    ///
    /// [`ENV_TRACE_FILE`] (`FLOCK_TRACE_FILE`) turns tracing on: `true`, `1`,
    /// `yes` or `on` for [`DEFAULT_TRACE_FILE`], any other non-empty value other
    /// than `false`, `0`, `no`, `off` is taken as the path of the file.
    /// [`ENV_TRACE_TTL_DAYS`] (`FLOCK_TRACE_TTL_DAYS`) sets [`ttl_days`](Self::ttl_days).
    ///
    /// # Errors
    ///
    /// [`TraceError::InvalidEnv`] if `FLOCK_TRACE_TTL_DAYS` is not a whole number
    /// of days.
    pub fn from_env() -> Result<Option<Self>, TraceError> {
        Self::from_vars(|var| env::var(var).ok())
    }

    /// [`from_env`](Self::from_env) over any source of variables (tests pass a map).
    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, TraceError> {
        let Some(file) = var(ENV_TRACE_FILE) else {
            return Ok(None);
        };
        let path = match file.trim().to_ascii_lowercase().as_str() {
            "" | "false" | "0" | "no" | "off" => return Ok(None),
            "true" | "1" | "yes" | "on" => PathBuf::from(DEFAULT_TRACE_FILE),
            _ => PathBuf::from(file.trim()),
        };
        let ttl_days = match var(ENV_TRACE_TTL_DAYS) {
            None => None,
            Some(value) if value.trim().is_empty() => None,
            Some(value) => {
                Some(
                    value
                        .trim()
                        .parse::<u32>()
                        .map_err(|_| TraceError::InvalidEnv {
                            var: ENV_TRACE_TTL_DAYS,
                            value,
                            reason: "expected a whole number of days",
                        })?,
                )
            }
        };
        Ok(Some(Self::new(path).ttl_days(ttl_days)))
    }

    /// The `service.name` resource attribute (default `flock`), stored in the
    /// `resource` column of every span.
    #[must_use]
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = name.into();
        self
    }

    /// Deletes spans that started more than `days` days ago when the pipeline
    /// starts (`Some(0)` deletes every earlier span); `None` keeps everything.
    #[must_use]
    pub fn ttl_days(mut self, days: Option<u32>) -> Self {
        self.ttl_days = days;
        self
    }

    /// How many finished spans may wait for export (default 65 536). Spans that
    /// find the queue full are dropped and counted in [`ExportReport::unexported`].
    #[must_use]
    pub fn queue_size(mut self, size: NonZeroUsize) -> Self {
        self.queue_size = size;
        self
    }

    /// The most spans written per export (default 8 192); at most the queue size.
    ///
    /// Each export opens and closes the file, and DuckDB rewrites the table's
    /// indexes when it closes it, so an export costs time that grows with the
    /// file; large batches keep the number of exports, not spans, small.
    #[must_use]
    pub fn export_batch_size(mut self, size: NonZeroUsize) -> Self {
        self.export_batch_size = size;
        self
    }

    /// The longest a finished span waits before it is exported (default 1 second).
    #[must_use]
    pub fn export_interval(mut self, interval: Duration) -> Self {
        self.export_interval = interval;
        self
    }

    /// How long one export retries while another process holds the file (default
    /// 30 seconds); after that the batch counts as failed.
    #[must_use]
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The longest [`TraceGuard::shutdown`] (or dropping the guard) waits for
    /// pending spans to be written (default 60 seconds).
    #[must_use]
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Whether [`install`](Self::install) also logs to stderr when `RUST_LOG` is
    /// set, filtered by it (default `true`).
    #[must_use]
    pub fn fmt_from_rust_log(mut self, enabled: bool) -> Self {
        self.fmt_from_rust_log = enabled;
        self
    }

    /// Also sends every span to the OTLP/HTTP collector at `endpoint` (e.g.
    /// `http://localhost:4318/v1/traces` for Jaeger or Tempo), through a batch
    /// processor of its own. [`ExportReport`] counts the file's spans only.
    #[cfg(feature = "otlp")]
    #[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
    #[must_use]
    pub fn otlp_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.otlp_endpoint = Some(endpoint.into());
        self
    }

    /// The trace file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configured TTL in days.
    pub fn ttl(&self) -> Option<u32> {
        self.ttl_days
    }

    /// Starts the pipeline without touching the global subscriber: creates the
    /// file's directory, the file and its schema, applies the TTL, and starts the
    /// export thread. Compose [`TraceGuard::layer`] into your subscriber.
    ///
    /// If another process holds the file right now, schema and TTL are left to
    /// the first export instead of waiting here.
    ///
    /// # Errors
    ///
    /// [`TraceError::InvalidConfig`] if the export batch size exceeds the queue
    /// size or the export interval is zero, [`TraceError::CreateDir`] if the
    /// directory cannot be created, and [`TraceError::Database`] if the file is
    /// not a usable DuckDB file.
    pub fn build(self) -> Result<TraceGuard, TraceError> {
        if self.export_batch_size > self.queue_size {
            return Err(TraceError::InvalidConfig(format!(
                "export batch size must be at most the queue size {}, got {}",
                self.queue_size, self.export_batch_size
            )));
        }
        if self.export_interval.is_zero() {
            // The batch processor would spin on a zero timer.
            return Err(TraceError::InvalidConfig(
                "export interval must be greater than zero, got 0ns".to_owned(),
            ));
        }
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|source| TraceError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let exporter = DuckDbSpanExporter::new(&self.path).lock_timeout(self.lock_timeout);
        let ttl_cutoff = self.ttl_days.map(|days| {
            unix_nanos(SystemTime::now()).saturating_sub(i64::from(days) * NANOS_PER_DAY)
        });
        // Startup does not wait for a reader: a short try, then defer to the first export.
        match store::open(&self.path, Duration::from_millis(500), &AtomicU64::new(0)) {
            Ok(conn) => {
                if let Some(cutoff) = ttl_cutoff {
                    store::delete_before(&conn, &self.path, cutoff)?;
                }
            }
            Err(TraceError::Locked { .. }) => {
                if let Some(cutoff) = ttl_cutoff {
                    exporter.defer_ttl(cutoff);
                }
            }
            Err(err) => return Err(err),
        }

        let ended = Arc::new(AtomicU64::new(0));
        let batch_config = BatchConfigBuilder::default()
            .with_max_queue_size(self.queue_size.get())
            .with_max_export_batch_size(self.export_batch_size.get())
            .with_scheduled_delay(self.export_interval)
            .build();
        let processor = CountingProcessor {
            inner: BatchSpanProcessor::new(exporter.clone(), batch_config),
            ended: Arc::clone(&ended),
        };
        let resource = Resource::builder()
            .with_service_name(self.service_name.clone())
            .build();
        let builder = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_span_processor(processor);
        #[cfg(feature = "otlp")]
        let builder = match &self.otlp_endpoint {
            Some(endpoint) => builder.with_batch_exporter(crate::otlp::exporter(endpoint)?),
            None => builder,
        };
        let provider = builder.build();
        let tracer = provider.tracer("flock");
        Ok(TraceGuard {
            provider: Some(provider),
            tracer,
            exporter,
            ended,
            path: self.path,
            shutdown_timeout: self.shutdown_timeout,
            fmt_from_rust_log: self.fmt_from_rust_log,
        })
    }

    /// [`build`](Self::build)s the pipeline and installs it as the global
    /// `tracing` subscriber: a registry with the OpenTelemetry layer (every span
    /// goes to the file) and, when `RUST_LOG` is set, a stderr fmt layer filtered
    /// by it. Keep the guard until the program ends.
    ///
    /// # Errors
    ///
    /// What [`build`](Self::build) returns, and
    /// [`TraceError::SubscriberAlreadySet`] if a global subscriber exists.
    pub fn install(self) -> Result<TraceGuard, TraceError> {
        let guard = self.build()?;
        let fmt = guard
            .fmt_from_rust_log
            .then(|| EnvFilter::try_from_default_env().ok())
            .flatten()
            .map(|filter| {
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(filter)
            });
        let subscriber = Registry::default().with(guard.layer()).with(fmt);
        tracing::subscriber::set_global_default(subscriber)
            .map_err(TraceError::SubscriberAlreadySet)?;
        Ok(guard)
    }
}

// === impl TraceGuard ===

/// The running trace pipeline. Flushes every pending span when shut down or
/// dropped (waiting at most the configured shutdown timeout) and reports spans
/// that did not make it into the file.
#[must_use = "dropping the guard shuts tracing down; keep it until the program ends"]
pub struct TraceGuard {
    /// `None` once shut down.
    provider: Option<SdkTracerProvider>,
    tracer: SdkTracer,
    exporter: DuckDbSpanExporter,
    ended: Arc<AtomicU64>,
    path: PathBuf,
    shutdown_timeout: Duration,
    fmt_from_rust_log: bool,
}

/// What happened to the spans of a pipeline, returned by [`TraceGuard::shutdown`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct ExportReport {
    /// Spans written to the file.
    pub exported: u64,
    /// Spans that are not in the file: failed exports, spans dropped because the
    /// queue was full, and spans still pending when the shutdown timeout passed.
    pub unexported: u64,
    /// Why spans are missing, if known (the last export error or the shutdown error).
    pub error: Option<String>,
}

impl ExportReport {
    /// Whether every finished span was written.
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
            write!(f, " (last error: {error})")?;
        }
        Ok(())
    }
}

impl TraceGuard {
    /// A `tracing` layer sending spans into this pipeline, to compose into any
    /// subscriber that keeps span data (a [`Registry`] does). Can be called more
    /// than once, e.g. for one subscriber per test.
    pub fn layer<S>(&self) -> crate::TraceLayer<S>
    where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        tracing_opentelemetry::layer().with_tracer(self.tracer.clone())
    }

    /// The OpenTelemetry tracer provider, for instrumentation that uses the
    /// OpenTelemetry API directly. `None` after shutdown.
    pub fn tracer_provider(&self) -> Option<&SdkTracerProvider> {
        self.provider.as_ref()
    }

    /// The trace file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Counters of the DuckDB exporter so far.
    pub fn stats(&self) -> ExportStats {
        self.exporter.stats()
    }

    /// Writes every span finished so far, waiting for the export (at most 5
    /// seconds, the OpenTelemetry SDK's bound).
    ///
    /// # Errors
    ///
    /// [`TraceError::Pipeline`] if the export failed or did not finish in time.
    pub fn force_flush(&self) -> Result<(), TraceError> {
        match &self.provider {
            Some(provider) => provider.force_flush().map_err(TraceError::Pipeline),
            None => Ok(()),
        }
    }

    /// Flushes every pending span, stops the export thread and reports what was
    /// written. Spans that could not be written are also reported on stderr.
    pub fn shutdown(mut self) -> ExportReport {
        self.shutdown_inner()
    }

    fn shutdown_inner(&mut self) -> ExportReport {
        let shutdown_error = self.provider.take().and_then(|provider| {
            provider
                .shutdown_with_timeout(self.shutdown_timeout)
                .err()
                .map(|err| error_chain(&err))
        });
        let stats = self.exporter.stats();
        // Every span that ended went to the processor; what the exporter did not
        // write was dropped (queue full), failed, or is still pending.
        let ended = self.ended.load(Ordering::Relaxed);
        let report = ExportReport {
            exported: stats.exported,
            unexported: ended.saturating_sub(stats.exported),
            error: shutdown_error.or(stats.last_error),
        };
        if !report.is_complete() {
            eprintln!(
                "flock-trace-duckdb: {} spans could not be written to `{}`: {report}",
                report.unexported,
                self.path.display()
            );
        }
        report
    }
}

impl fmt::Debug for TraceGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceGuard")
            .field("path", &self.path)
            .field("running", &self.provider.is_some())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Drop for TraceGuard {
    fn drop(&mut self) {
        if self.provider.is_some() {
            let _ = self.shutdown_inner();
        }
    }
}

// === impl CountingProcessor ===

/// Counts the spans handed to the batch processor, so spans it drops (queue
/// full, which it only logs) show up as the difference to the exporter's count.
#[derive(Debug)]
struct CountingProcessor {
    inner: BatchSpanProcessor,
    ended: Arc<AtomicU64>,
}

impl SpanProcessor for CountingProcessor {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        self.ended.fetch_add(1, Ordering::Relaxed);
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<Option<TraceConfig>, TraceError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TraceConfig::from_vars(|k| vars.get(k).cloned())
    }

    #[test]
    fn env_turns_tracing_on_and_off() {
        assert!(from(&[]).unwrap().is_none());
        for off in ["", "false", "0", "OFF", "no"] {
            assert!(from(&[(ENV_TRACE_FILE, off)]).unwrap().is_none(), "{off}");
        }
        for on in ["true", "TRUE", "1", "yes", "on"] {
            let config = from(&[(ENV_TRACE_FILE, on)]).unwrap().unwrap();
            assert_eq!(config.path(), Path::new(DEFAULT_TRACE_FILE));
            assert_eq!(config.ttl(), None);
        }
        let config = from(&[(ENV_TRACE_FILE, "/tmp/x.duckdb"), (ENV_TRACE_TTL_DAYS, "7")])
            .unwrap()
            .unwrap();
        assert_eq!(config.path(), Path::new("/tmp/x.duckdb"));
        assert_eq!(config.ttl(), Some(7));
    }

    #[test]
    fn env_rejects_a_bad_ttl() {
        let err = from(&[(ENV_TRACE_FILE, "true"), (ENV_TRACE_TTL_DAYS, "a week")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid FLOCK_TRACE_TTL_DAYS: expected a whole number of days, got `a week`"
        );
    }

    #[test]
    fn zero_export_interval_is_rejected() {
        let err = TraceConfig::new("unused.duckdb")
            .export_interval(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid trace configuration: export interval must be greater than zero, got 0ns"
        );
    }

    #[test]
    fn batch_larger_than_queue_is_rejected() {
        let err = TraceConfig::new("unused.duckdb")
            .queue_size(NonZeroUsize::new(10).unwrap())
            .build()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid trace configuration: export batch size must be at most the queue size 10, got 8192"
        );
    }
}
