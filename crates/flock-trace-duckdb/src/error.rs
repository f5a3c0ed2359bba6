//! [`TraceError`]: what can go wrong setting up the trace pipeline, or writing or
//! clearing a trace file.

use std::{io, path::PathBuf};

/// An error from configuring the trace pipeline or from working on a trace file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The directory that should hold the trace file could not be created.
    #[error("cannot create trace directory `{}`", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },

    /// The trace file does not exist (operations that only make sense on an
    /// existing file, like [`clear_traces`](crate::clear_traces), never create one).
    #[error("trace file `{}` does not exist", path.display())]
    MissingFile {
        /// The path that was given.
        path: PathBuf,
    },

    /// Another process held the trace file open for longer than the lock timeout.
    #[cfg(feature = "duckdb")]
    #[cfg_attr(docsrs, doc(cfg(feature = "duckdb")))]
    #[error("trace file `{}` is locked by another process; gave up after {waited:?}", path.display())]
    Locked {
        /// The trace file.
        path: PathBuf,
        /// How long opening was retried.
        waited: std::time::Duration,
        /// DuckDB's last error.
        #[source]
        source: duckdb::Error,
    },

    /// DuckDB failed on the trace file.
    #[cfg(feature = "duckdb")]
    #[cfg_attr(docsrs, doc(cfg(feature = "duckdb")))]
    #[error("duckdb failed on trace file `{}`", path.display())]
    Database {
        /// The trace file.
        path: PathBuf,
        /// DuckDB's error.
        #[source]
        source: duckdb::Error,
    },

    /// The thread that writes the trace file could not be started.
    #[error("cannot start the thread writing trace file `{}`", path.display())]
    Thread {
        /// The trace file.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },

    /// An environment variable has a value that cannot be used.
    #[error("invalid {var}: {reason}, got `{value}`")]
    InvalidEnv {
        /// The variable, e.g. `FLOCK_TRACE_TTL_DAYS`.
        var: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        reason: &'static str,
    },

    /// A configuration value is out of range.
    #[error("invalid trace configuration: {0}")]
    InvalidConfig(String),

    /// [`TraceConfig::install`](crate::TraceConfig::install) found a global
    /// `tracing` subscriber already set.
    #[error("cannot install the trace subscriber: a global tracing subscriber is already set")]
    SubscriberAlreadySet(#[source] tracing::subscriber::SetGlobalDefaultError),

    /// [`TraceConfig::start`](crate::TraceConfig::start) found a `tracing`
    /// subscriber that does not send spans to the pipeline, so it could neither
    /// rely on it nor install its own.
    #[error(
        "spans would not reach {target}: the tracing subscriber in use does not include \
         this pipeline's layer; add `TraceGuard::layer()` to it"
    )]
    NotInSubscriber {
        /// What the pipeline writes to, e.g. the trace file.
        target: String,
    },

    /// The OpenTelemetry pipeline reported an error (flush or shutdown).
    #[error("opentelemetry pipeline failed")]
    Pipeline(#[source] opentelemetry_sdk::error::OTelSdkError),

    /// The OTLP exporter could not be built.
    #[cfg(feature = "otlp")]
    #[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
    #[error("cannot build the otlp exporter for endpoint `{endpoint}`")]
    Otlp {
        /// The configured endpoint (`from the environment` when none was set).
        endpoint: String,
        /// Why it failed.
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// The error and its sources on one line: `a: b: c`.
#[cfg(feature = "duckdb")]
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
