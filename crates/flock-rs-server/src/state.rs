//! What every handler shares: the flock, the configuration, the flush history and
//! the metrics, and the signal that the server is closing.

use std::sync::Arc;

use flock::Flock;
use tokio::sync::watch;

use crate::{ServerConfig, history::FlushHistory, metrics::Metrics};

/// The router's state; cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) flock: Flock,
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) history: Arc<FlushHistory>,
    pub(crate) metrics: Arc<Metrics>,
    /// Becomes `true` when the server begins shutting down: live event streams end,
    /// so the graceful shutdown does not wait for them.
    pub(crate) closing: watch::Receiver<bool>,
}
