//! Where a flock meets the trace pipeline: starting (or joining) it when the flock
//! is built, and flushing it when the flock shuts down. The rest of the runtime
//! only emits `tracing` spans.
//!
//! A flock never replaces the application's `tracing` setup: when the current
//! subscriber already feeds the pipeline (the application added
//! [`TraceGuard::layer`] to its own registry, or an earlier flock installed it), the
//! flock uses it; only when no subscriber is set at all does it install one, kept
//! for the life of the process, so that every flock of the process traces into the
//! same pipeline (`flock_trace_duckdb::TraceConfig::start`, ADR 0012).

use flock_trace_duckdb::{ExportReport, TraceConfig, TraceError, TraceGuard};

/// Whether and where a flock traces.
#[derive(Debug, Default)]
pub(crate) enum TraceChoice {
    /// `FLOCK_TRACE_FILE` and the standard `OTEL_*` variables decide.
    #[default]
    FromEnv,
    /// [`FlockBuilder::trace`](crate::FlockBuilder::trace).
    On(TraceConfig),
    /// [`FlockBuilder::no_trace`](crate::FlockBuilder::no_trace).
    Off,
}

/// Starts (or joins) the pipeline `choice` asks for. Returns the flock's guard on
/// it, or why tracing is off although it was asked for.
pub(crate) fn start(choice: TraceChoice) -> (Option<TraceGuard>, Option<TraceError>) {
    let config = match choice {
        TraceChoice::On(config) => Ok(Some(config)),
        TraceChoice::FromEnv => TraceConfig::from_env(),
        TraceChoice::Off => Ok(None),
    };
    match config.and_then(|config| config.map(TraceConfig::start).transpose()) {
        Ok(guard) => (guard, None),
        Err(error) => (None, Some(error)),
    }
}

/// Writes every span that ended before the flock's shutdown and reports what
/// happened to the pipeline's spans. The pipeline keeps running when other guards
/// hold it (another flock, the application, the global subscriber).
pub(crate) async fn finish(guard: TraceGuard) -> Option<ExportReport> {
    // Writing may wait for the file (another process holding it): off the runtime.
    match tokio::task::spawn_blocking(move || guard.shutdown()).await {
        Ok(report) => Some(report),
        Err(error) => {
            tracing::error!(%error, "trace flush at shutdown failed");
            None
        }
    }
}
