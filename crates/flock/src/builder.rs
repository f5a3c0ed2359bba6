//! Configuring a flock: its store, its traces, its admission bounds.

use std::{fmt, sync::Arc};

use flock_core::{BlackboardStore, Retention};
use flock_trace_duckdb::{TraceConfig, TraceError};
use parking_lot::Mutex;

use crate::{Flock, admission::Admission, cluster::Cluster, flock::Tracing, runtime::Runtime};

/// Configures a [`Flock`] before it starts.
#[derive(Default)]
#[must_use = "call .build() to get the Flock"]
pub struct FlockBuilder {
    store: Option<Arc<dyn BlackboardStore>>,
    trace: TraceChoice,
    admission: Admission,
    retention: Retention,
    cluster: Option<Cluster>,
}

#[derive(Debug, Default)]
enum TraceChoice {
    /// `FLOCK_TRACE_FILE` decides.
    #[default]
    FromEnv,
    On(TraceConfig),
    Off,
}

impl fmt::Debug for FlockBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlockBuilder")
            .field("custom_store", &self.store.is_some())
            .field("trace", &self.trace)
            .finish()
    }
}

impl FlockBuilder {
    /// Uses another blackboard store than the in-memory one.
    pub fn store(mut self, store: Arc<dyn BlackboardStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Traces every flush, run and publish into a DuckDB file (table `spans`,
    /// queryable with SQL), installing the global `tracing` subscriber.
    ///
    /// Without this call, tracing follows the environment: `FLOCK_TRACE_FILE=true`
    /// writes `.flock/traces.duckdb`, `FLOCK_TRACE_FILE=<path>` another file, and
    /// `FLOCK_TRACE_TTL_DAYS=N` deletes spans older than N days at start.
    ///
    /// ```no_run
    /// use flock::{Flock, TraceConfig};
    ///
    /// let flock = Flock::builder()
    ///     .trace(TraceConfig::new(".flock/traces.duckdb").service_name("payments"))
    ///     .try_build()?;
    /// # Ok::<(), flock::TraceError>(())
    /// ```
    pub fn trace(mut self, config: TraceConfig) -> Self {
        self.trace = TraceChoice::On(config);
        self
    }

    /// How long the default in-memory store keeps artifacts (default: for the life of
    /// the flock); see [`Retention`]. Artifacts still waiting in a batch, a join
    /// group, a deferral, a run or a failed run are never evicted. Ignored with
    /// [`FlockBuilder::store`].
    ///
    /// ```
    /// use flock::{Flock, Retention};
    ///
    /// // Keep only what is still waiting or running: memory stays bounded.
    /// let flock = Flock::builder().retention(Retention::new().drop_consumed()).build();
    /// ```
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Joins a cluster: several processes running the same agents on one shared
    /// store (PostgreSQL), each owning some units of work through leases; see
    /// [`Cluster`]. The cluster's store is the blackboard (it replaces
    /// [`FlockBuilder::store`]). Admission bounds do not apply in a cluster.
    pub fn cluster(mut self, cluster: Cluster) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// Bounds the items waiting in batches; see [`Admission`] (default: unbounded).
    pub fn admission(mut self, admission: Admission) -> Self {
        self.admission = admission;
        self
    }

    /// Never traces into DuckDB, whatever the environment says (install your own
    /// subscriber, e.g. with [`TraceGuard::layer`](crate::TraceGuard::layer), to compose it differently).
    pub fn no_trace(mut self) -> Self {
        self.trace = TraceChoice::Off;
        self
    }

    /// The configured flock. When tracing cannot start (an unwritable directory, a
    /// file that is not DuckDB, another global subscriber), the error is printed
    /// to stderr and the flock runs without traces; use
    /// [`FlockBuilder::try_build`] to treat that as an error instead.
    pub fn build(self) -> Flock {
        let (flock, error) = self.assemble();
        if let Some(error) = error {
            eprintln!("flock: tracing into DuckDB is off: {error}");
            tracing::error!(%error, "tracing into DuckDB is off");
        }
        flock
    }

    /// The configured flock, or the reason tracing could not start.
    ///
    /// # Errors
    /// [`TraceError`] when tracing was asked for (by [`FlockBuilder::trace`] or the
    /// environment) and could not be installed.
    pub fn try_build(self) -> Result<Flock, TraceError> {
        match self.assemble() {
            (_, Some(error)) => Err(error),
            (flock, None) => Ok(flock),
        }
    }

    fn assemble(self) -> (Flock, Option<TraceError>) {
        let config = match self.trace {
            TraceChoice::On(config) => Ok(Some(config)),
            TraceChoice::FromEnv => TraceConfig::from_env(),
            TraceChoice::Off => Ok(None),
        };
        let (guard, error) = match config.and_then(|c| c.map(TraceConfig::install).transpose()) {
            Ok(guard) => (guard, None),
            Err(error) => (None, Some(error)),
        };
        let flock = Flock {
            runtime: Arc::new(Runtime::new(
                self.store,
                self.retention,
                self.admission,
                self.cluster,
            )),
            tracing: Arc::new(Tracing {
                file: guard.as_ref().map(|g| g.path().to_owned()),
                guard: Mutex::new(guard),
            }),
        };
        (flock, error)
    }
}
