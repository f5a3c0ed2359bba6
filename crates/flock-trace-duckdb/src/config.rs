//! [`TraceConfig`]: where spans go (a DuckDB file, an OTLP collector, or both) and
//! how they get there, from code or from the environment.

use std::{env, time::Duration};
#[cfg(feature = "duckdb")]
use std::{
    num::NonZeroUsize,
    path::{Path, PathBuf},
};

use crate::TraceError;

/// The trace file used when `FLOCK_TRACE_FILE=true`.
pub const DEFAULT_TRACE_FILE: &str = ".flock/traces.duckdb";

/// Turns tracing into a DuckDB file on: `true` (or `1`, `yes`, `on`) for
/// [`DEFAULT_TRACE_FILE`], a path for another file; `false`, `0`, `no`, `off` or
/// empty (or unset) for off.
pub const ENV_TRACE_FILE: &str = "FLOCK_TRACE_FILE";

/// Deletes spans older than this many days when tracing starts.
pub const ENV_TRACE_TTL_DAYS: &str = "FLOCK_TRACE_TTL_DAYS";

/// The standard OpenTelemetry variable naming the service (`service.name`).
pub const ENV_OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";

/// Configuration of the trace pipeline: where spans go and how they get there.
///
/// Build with [`new`](Self::new) (a DuckDB file), [`otlp`](Self::otlp) (a
/// collector only) or [`from_env`](Self::from_env), adjust with the by-value
/// setters, then:
///
/// - [`build`](Self::build) it and compose [`TraceGuard::layer`](crate::TraceGuard::layer) into a subscriber
///   of your own (the application's `tracing` setup stays its own), or
/// - [`start`](Self::start) it: uses the current subscriber if it already feeds the
///   pipeline, installs a global one if there is none, or
/// - [`install`](Self::install) it as the global subscriber.
///
/// One process runs one pipeline per trace file: building a configuration for a
/// file that a running pipeline already writes joins that pipeline (its first
/// configuration stays in force), so several flocks in one process trace into the
/// same file.
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
    #[cfg(feature = "duckdb")]
    pub(crate) path: Option<PathBuf>,
    #[cfg(feature = "duckdb")]
    pub(crate) ttl_days: Option<u32>,
    #[cfg(feature = "duckdb")]
    pub(crate) queue_size: NonZeroUsize,
    #[cfg(feature = "duckdb")]
    pub(crate) export_batch_size: NonZeroUsize,
    #[cfg(feature = "duckdb")]
    pub(crate) export_interval: Duration,
    #[cfg(feature = "duckdb")]
    pub(crate) lock_timeout: Duration,
    /// `None`: `OTEL_SERVICE_NAME`, else `flock`.
    pub(crate) service_name: Option<String>,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) fmt_from_rust_log: bool,
    pub(crate) detailed_spans: bool,
    /// `Some(None)`: OTLP with the endpoint from `OTEL_EXPORTER_OTLP_*`.
    #[cfg(feature = "otlp")]
    pub(crate) otlp: Option<Option<String>>,
}

// === impl TraceConfig ===

impl TraceConfig {
    /// Nothing configured yet: no file, no collector.
    fn empty() -> Self {
        TraceConfig {
            #[cfg(feature = "duckdb")]
            path: None,
            #[cfg(feature = "duckdb")]
            ttl_days: None,
            #[cfg(feature = "duckdb")]
            queue_size: NonZeroUsize::new(65_536).expect("non-zero"),
            #[cfg(feature = "duckdb")]
            export_batch_size: NonZeroUsize::new(32_768).expect("non-zero"),
            #[cfg(feature = "duckdb")]
            export_interval: Duration::from_secs(30),
            #[cfg(feature = "duckdb")]
            lock_timeout: crate::store::DEFAULT_LOCK_TIMEOUT,
            service_name: None,
            shutdown_timeout: Duration::from_secs(60),
            fmt_from_rust_log: true,
            detailed_spans: false,
            #[cfg(feature = "otlp")]
            otlp: None,
        }
    }

    /// Traces into the DuckDB file at `path` (its directory is created as needed),
    /// with service name `flock` (or `OTEL_SERVICE_NAME`), no TTL, a buffer of
    /// 65 536 spans written at least every 30 seconds (sooner when 32 768 wait), a
    /// warning when another process holds the file for 30 seconds, and a 60 second
    /// bound on the flush at shutdown.
    #[cfg(feature = "duckdb")]
    #[cfg_attr(docsrs, doc(cfg(feature = "duckdb")))]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        TraceConfig {
            path: Some(path.into()),
            ..Self::empty()
        }
    }

    /// Sends spans to an OTLP/HTTP collector only, no file. The endpoint, headers
    /// and timeout come from the standard variables (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS`, ...; by default
    /// `http://localhost:4318/v1/traces`) unless set with
    /// [`otlp_endpoint`](Self::otlp_endpoint).
    #[cfg(feature = "otlp")]
    #[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
    pub fn otlp() -> Self {
        TraceConfig {
            otlp: Some(None),
            ..Self::empty()
        }
    }

    /// The configuration the environment asks for, `None` if tracing is off.
    ///
    /// - [`ENV_TRACE_FILE`] (`FLOCK_TRACE_FILE`): `true`, `1`, `yes` or `on` for
    ///   [`DEFAULT_TRACE_FILE`], any other non-empty value other than `false`, `0`,
    ///   `no`, `off` is the path of the file (needs the `duckdb` feature);
    ///   [`ENV_TRACE_TTL_DAYS`] (`FLOCK_TRACE_TTL_DAYS`) sets [`ttl_days`](Self::ttl_days).
    /// - With the `otlp` feature, the standard OpenTelemetry variables: spans also go
    ///   to a collector when `OTEL_TRACES_EXPORTER` lists `otlp`, or when it is unset
    ///   and `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is
    ///   set; `OTEL_SDK_DISABLED=true` turns all tracing off. Endpoint, headers,
    ///   timeout and compression are read by the OTLP exporter itself.
    /// - `OTEL_SERVICE_NAME` names the service.
    ///
    /// # Errors
    ///
    /// [`TraceError::InvalidEnv`] if `FLOCK_TRACE_TTL_DAYS` is not a whole number
    /// of days, if `FLOCK_TRACE_FILE` asks for a file in a build without the
    /// `duckdb` feature, or if `OTEL_EXPORTER_OTLP_PROTOCOL` names a protocol other
    /// than `http/protobuf`.
    pub fn from_env() -> Result<Option<Self>, TraceError> {
        Self::from_vars(|var| env::var(var).ok())
    }

    /// [`from_env`](Self::from_env) over any source of variables (tests pass a map).
    pub(crate) fn from_vars(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, TraceError> {
        let mut config = Self::empty();
        // Only the exporters a build has turn tracing on.
        #[cfg_attr(not(any(feature = "duckdb", feature = "otlp")), allow(unused_mut))]
        let mut on = false;
        if let Some(value) = var(ENV_TRACE_FILE) {
            let trimmed = value.trim();
            let file = match trimmed.to_ascii_lowercase().as_str() {
                "" | "false" | "0" | "no" | "off" => None,
                "true" | "1" | "yes" | "on" => Some(DEFAULT_TRACE_FILE.to_owned()),
                _ => Some(trimmed.to_owned()),
            };
            if let Some(file) = file {
                #[cfg(feature = "duckdb")]
                {
                    config.path = Some(PathBuf::from(file));
                    config.ttl_days = ttl_from(&var)?;
                    on = true;
                }
                #[cfg(not(feature = "duckdb"))]
                {
                    let _ = file;
                    return Err(TraceError::InvalidEnv {
                        var: ENV_TRACE_FILE,
                        value,
                        reason: "this build of flock has no DuckDB exporter (cargo feature `duckdb`)",
                    });
                }
            }
        }
        #[cfg(feature = "otlp")]
        if crate::otlp::enabled_by(&var)? {
            config.otlp = Some(None);
            on = true;
        }
        let disabled =
            var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if disabled || !on {
            return Ok(None);
        }
        config.service_name = var(ENV_OTEL_SERVICE_NAME).filter(|name| !name.trim().is_empty());
        Ok(Some(config))
    }

    /// The `service.name` resource attribute (default: `OTEL_SERVICE_NAME`, else
    /// `flock`), stored in the `resource` column of every span.
    #[must_use]
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Deletes spans that started more than `days` days ago when the pipeline
    /// starts (`Some(0)` deletes every earlier span); `None` keeps everything.
    #[cfg(feature = "duckdb")]
    #[cfg_attr(docsrs, doc(cfg(feature = "duckdb")))]
    #[must_use]
    pub fn ttl_days(mut self, days: Option<u32>) -> Self {
        self.ttl_days = days;
        self
    }

    /// How many finished spans may wait to be written (default 65 536, about
    /// 1 KB each). A burst larger than that waits for room while the writer works
    /// (backpressure); spans that find it full while another process holds the file
    /// are dropped, counted and reported (see the crate docs).
    #[cfg(feature = "duckdb")]
    #[cfg_attr(docsrs, doc(cfg(feature = "duckdb")))]
    #[must_use]
    pub fn queue_size(mut self, size: NonZeroUsize) -> Self {
        self.queue_size = size;
        self
    }

    /// How many waiting spans start a write before the export interval ends
    /// (default 32 768); at most the queue size.
    #[cfg(feature = "duckdb")]
    #[cfg_attr(docsrs, doc(cfg(feature = "duckdb")))]
    #[must_use]
    pub fn export_batch_size(mut self, size: NonZeroUsize) -> Self {
        self.export_batch_size = size;
        self
    }

    /// The longest a finished span waits before it is written (default 30
    /// seconds; OpenTelemetry's batch processor uses 5). Each write locks readers
    /// out for milliseconds to tens of milliseconds, plus a fixed cost per write
    /// (attaching, the commit, now and then a checkpoint): fewer, larger writes
    /// leave the file free to readers more of the time, at the price of spans
    /// showing up later to a reader while the program runs (ADR 0007).
    /// `Flock::shutdown` and [`TraceGuard::force_flush`](crate::TraceGuard::force_flush)
    /// write at once.
    #[cfg(feature = "duckdb")]
    #[cfg_attr(docsrs, doc(cfg(feature = "duckdb")))]
    #[must_use]
    pub fn export_interval(mut self, interval: Duration) -> Self {
        self.export_interval = interval;
        self
    }

    /// How long the writer waits for another process to release the file before
    /// it logs a warning (default 30 seconds). It keeps waiting after that; spans
    /// wait in the buffer meanwhile.
    #[cfg(feature = "duckdb")]
    #[cfg_attr(docsrs, doc(cfg(feature = "duckdb")))]
    #[must_use]
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The longest [`TraceGuard::shutdown`](crate::TraceGuard::shutdown) (or dropping the guard) waits for
    /// pending spans to be written (default 60 seconds).
    #[must_use]
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Whether spans also carry tracing-opentelemetry's details: the source
    /// location (`code.*`), the thread (`thread.id`, `thread.name`) and the time
    /// spent inside and outside the span (`busy_ns`, `idle_ns`). Off by default:
    /// they cost time on the application's threads at every span (a clock reading
    /// at each enter and exit) and about 180 bytes per row of the trace file.
    #[must_use]
    pub fn detailed_spans(mut self, enabled: bool) -> Self {
        self.detailed_spans = enabled;
        self
    }

    /// Whether [`install`](Self::install) and [`start`](Self::start) also log to
    /// stderr: events filtered by `RUST_LOG`, or the pipeline's own warnings when
    /// it is unset (default `true`).
    #[must_use]
    pub fn fmt_from_rust_log(mut self, enabled: bool) -> Self {
        self.fmt_from_rust_log = enabled;
        self
    }

    /// Also sends every span to the OTLP/HTTP collector at `endpoint` (e.g.
    /// `http://localhost:4318/v1/traces` for Jaeger or Tempo), through a batch
    /// processor of its own. [`ExportReport`](crate::ExportReport) counts the
    /// file's spans only.
    #[cfg(feature = "otlp")]
    #[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
    #[must_use]
    pub fn otlp_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.otlp = Some(Some(endpoint.into()));
        self
    }

    /// The trace file, if spans go to one.
    #[cfg(feature = "duckdb")]
    #[cfg_attr(docsrs, doc(cfg(feature = "duckdb")))]
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The configured TTL in days.
    #[cfg(feature = "duckdb")]
    #[cfg_attr(docsrs, doc(cfg(feature = "duckdb")))]
    pub fn ttl(&self) -> Option<u32> {
        self.ttl_days
    }
}

#[cfg(feature = "duckdb")]
fn ttl_from(var: &impl Fn(&str) -> Option<String>) -> Result<Option<u32>, TraceError> {
    match var(ENV_TRACE_TTL_DAYS) {
        None => Ok(None),
        Some(value) if value.trim().is_empty() => Ok(None),
        Some(value) => value
            .trim()
            .parse::<u32>()
            .map(Some)
            .map_err(|_| TraceError::InvalidEnv {
                var: ENV_TRACE_TTL_DAYS,
                value,
                reason: "expected a whole number of days",
            }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    pub(crate) fn from(vars: &[(&str, &str)]) -> Result<Option<TraceConfig>, TraceError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TraceConfig::from_vars(|k| vars.get(k).cloned())
    }

    #[cfg(feature = "duckdb")]
    #[test]
    fn env_turns_the_file_on_and_off() {
        assert!(from(&[]).unwrap().is_none());
        for off in ["", "false", "0", "OFF", "no"] {
            assert!(from(&[(ENV_TRACE_FILE, off)]).unwrap().is_none(), "{off}");
        }
        for on in ["true", "TRUE", "1", "yes", "on"] {
            let config = from(&[(ENV_TRACE_FILE, on)]).unwrap().unwrap();
            assert_eq!(config.path(), Some(Path::new(DEFAULT_TRACE_FILE)));
            assert_eq!(config.ttl(), None);
        }
        let config = from(&[
            (ENV_TRACE_FILE, "/tmp/x.duckdb"),
            (ENV_TRACE_TTL_DAYS, "7"),
            (ENV_OTEL_SERVICE_NAME, "payments"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(config.path(), Some(Path::new("/tmp/x.duckdb")));
        assert_eq!(config.ttl(), Some(7));
        assert_eq!(config.service_name.as_deref(), Some("payments"));
        let disabled = from(&[(ENV_TRACE_FILE, "true"), ("OTEL_SDK_DISABLED", "true")]);
        assert!(disabled.unwrap().is_none());
    }

    #[cfg(feature = "duckdb")]
    #[test]
    fn spans_are_written_every_thirty_seconds_by_default() {
        // Few, large writes: each one locks readers out for its insert and commit
        // (ADR 0007); 30 s at 200 spans/s is one write of 6,000 spans.
        let config = TraceConfig::new("unused.duckdb");
        assert_eq!(config.export_interval, Duration::from_secs(30));
        assert_eq!(config.export_batch_size.get(), 32_768);
    }

    #[cfg(feature = "duckdb")]
    #[test]
    fn env_rejects_a_bad_ttl() {
        let err = from(&[(ENV_TRACE_FILE, "true"), (ENV_TRACE_TTL_DAYS, "a week")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid FLOCK_TRACE_TTL_DAYS: expected a whole number of days, got `a week`"
        );
    }

    #[cfg(not(feature = "duckdb"))]
    #[test]
    fn env_asking_for_a_file_without_duckdb_is_an_error() {
        let err = from(&[(ENV_TRACE_FILE, "true")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid FLOCK_TRACE_FILE: this build of flock has no DuckDB exporter (cargo feature `duckdb`), got `true`"
        );
        assert!(from(&[(ENV_TRACE_FILE, "off")]).unwrap().is_none());
    }
}
