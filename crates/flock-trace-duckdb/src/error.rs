//! [`TraceError`]: what can go wrong setting up, writing or clearing a trace file.

use std::{io, path::PathBuf, time::Duration};

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
    #[error("trace file `{}` is locked by another process; gave up after {waited:?}", path.display())]
    Locked {
        /// The trace file.
        path: PathBuf,
        /// How long opening was retried.
        waited: Duration,
        /// DuckDB's last error.
        #[source]
        source: duckdb::Error,
    },

    /// DuckDB failed on the trace file.
    #[error("duckdb failed on trace file `{}`", path.display())]
    Database {
        /// The trace file.
        path: PathBuf,
        /// DuckDB's error.
        #[source]
        source: duckdb::Error,
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

    /// The OpenTelemetry pipeline reported an error (flush or shutdown).
    #[error("opentelemetry pipeline failed")]
    Pipeline(#[source] opentelemetry_sdk::error::OTelSdkError),

    /// The OTLP exporter could not be built.
    #[cfg(feature = "otlp")]
    #[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
    #[error("cannot build the otlp exporter for endpoint `{endpoint}`")]
    Otlp {
        /// The configured endpoint.
        endpoint: String,
        /// Why it failed.
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
}
