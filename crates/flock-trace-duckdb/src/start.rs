//! The entry points that start a pipeline from a [`TraceConfig`]
//! ([`build`](TraceConfig::build), [`start`](TraceConfig::start),
//! [`install`](TraceConfig::install)), and the process-wide table that gives every
//! trace file one pipeline per process.
//!
//! DuckDB allows one writer per file, and its lock is per process: two pipelines
//! of one process writing the same file would not exclude each other. So building
//! a configuration for a file that a running pipeline writes joins that pipeline;
//! the pipeline stops when its last guard is shut down (or dropped).

#[cfg(feature = "duckdb")]
use std::fs;
use std::{
    path::PathBuf,
    sync::{Arc, Mutex, Weak, atomic::Ordering},
};

use tracing_subscriber::{EnvFilter, Layer as _, Registry, layer::SubscriberExt as _};

use crate::{
    TraceConfig, TraceError, layer, lock,
    pipeline::{Pipeline, TraceGuard},
};

/// Every pipeline of this process that may still run, to join by file.
static PIPELINES: Mutex<Vec<Weak<Pipeline>>> = Mutex::new(Vec::new());
/// Guards of the pipelines [`TraceConfig::start`] installed globally: the global
/// subscriber feeds them for the rest of the process.
static KEPT: Mutex<Vec<TraceGuard>> = Mutex::new(Vec::new());

// === impl TraceConfig ===

impl TraceConfig {
    /// Starts the pipeline (or joins the one already writing the same file)
    /// without touching any `tracing` subscriber: creates the file's directory,
    /// the file and its table, applies the TTL, and starts the writer thread.
    /// Compose [`TraceGuard::layer`] into your subscriber.
    ///
    /// If another process holds the file right now, the table and the TTL are
    /// left to the first write instead of waiting here.
    ///
    /// # Errors
    ///
    /// [`TraceError::InvalidConfig`] if the export batch size exceeds the queue
    /// size or the export interval is zero, [`TraceError::CreateDir`] if the
    /// directory cannot be created, and [`TraceError::Database`] if the file is
    /// not a usable DuckDB file.
    pub fn build(self) -> Result<TraceGuard, TraceError> {
        #[cfg(feature = "duckdb")]
        crate::startup::validate(&self)?;
        let file = canonical_file(&self)?;
        let mut pipelines = lock(&PIPELINES);
        pipelines.retain(|p| p.strong_count() > 0);
        let running = pipelines
            .iter()
            .filter_map(Weak::upgrade)
            .find(|p| p.file == file && !p.stopped.load(Ordering::Acquire));
        let pipeline = match running {
            Some(pipeline) => pipeline,
            None => {
                let pipeline = Arc::new(Pipeline::start(self, file)?);
                pipelines.push(Arc::downgrade(&pipeline));
                pipeline
            }
        };
        Ok(TraceGuard::new(pipeline))
    }

    /// [`build`](Self::build)s the pipeline and makes sure this thread's spans
    /// reach it: when the current `tracing` subscriber already feeds it (the
    /// application composed [`TraceGuard::layer`] into its own, or an earlier
    /// `start` installed it), nothing more; when no global subscriber is set,
    /// installs one as [`install`](Self::install) does, kept for the life of the
    /// process. This is what a flock does with `FLOCK_TRACE_FILE`.
    ///
    /// # Errors
    ///
    /// What [`build`](Self::build) returns, and [`TraceError::NotInSubscriber`]
    /// when another subscriber is set that does not feed this pipeline.
    pub fn start(self) -> Result<TraceGuard, TraceError> {
        let guard = self.build()?;
        if layer::current_pipeline() == Some(guard.pipeline.id) {
            return Ok(guard);
        }
        // Only where no subscriber at all is in force (no global one, none set for
        // this thread) may a pipeline install its own.
        let unset = tracing::dispatcher::get_default(|current| {
            current.is::<tracing::subscriber::NoSubscriber>()
        });
        if !unset {
            return Err(TraceError::NotInSubscriber {
                target: guard.target(),
            });
        }
        install_guard(&guard)?;
        lock(&KEPT).push(guard.clone());
        Ok(guard)
    }

    /// [`build`](Self::build)s the pipeline and installs it as the global
    /// `tracing` subscriber: a registry with the pipeline's layer and, unless
    /// turned off with [`fmt_from_rust_log`](Self::fmt_from_rust_log), a stderr
    /// fmt layer filtered by `RUST_LOG` (by default it shows the pipeline's own
    /// warnings). Keep the guard until the program ends.
    ///
    /// # Errors
    ///
    /// What [`build`](Self::build) returns, and
    /// [`TraceError::SubscriberAlreadySet`] if a global subscriber exists.
    pub fn install(self) -> Result<TraceGuard, TraceError> {
        let guard = self.build()?;
        install_guard(&guard)?;
        Ok(guard)
    }
}

/// Installs a global subscriber feeding `guard`'s pipeline (and stderr, unless
/// turned off).
fn install_guard(guard: &TraceGuard) -> Result<(), TraceError> {
    let fmt = guard.pipeline.fmt_from_rust_log.then(|| {
        // Without RUST_LOG, stderr shows the pipeline's own warnings (lost spans,
        // a file held by another process) and nothing else.
        let filter = EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("flock_trace_duckdb=warn"));
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter)
    });
    let subscriber = Registry::default().with(guard.layer()).with(fmt);
    tracing::subscriber::set_global_default(subscriber).map_err(TraceError::SubscriberAlreadySet)
}

/// The trace file's canonical path (its directory created), `None` without a file.
#[cfg(feature = "duckdb")]
fn canonical_file(config: &TraceConfig) -> Result<Option<PathBuf>, TraceError> {
    let Some(path) = &config.path else {
        return Ok(None);
    };
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => {
            fs::create_dir_all(dir).map_err(|source| TraceError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
            dir.to_owned()
        }
        None => PathBuf::from("."),
    };
    let dir = fs::canonicalize(&dir).map_err(|source| TraceError::CreateDir {
        path: dir.clone(),
        source,
    })?;
    let name = path.file_name().ok_or_else(|| {
        TraceError::InvalidConfig(format!(
            "trace file path must name a file, got `{}`",
            path.display()
        ))
    })?;
    Ok(Some(dir.join(name)))
}

/// Without the `duckdb` feature there is no trace file.
#[cfg(not(feature = "duckdb"))]
fn canonical_file(_config: &TraceConfig) -> Result<Option<PathBuf>, TraceError> {
    Ok(None)
}
