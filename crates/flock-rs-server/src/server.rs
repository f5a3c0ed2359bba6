//! Serving: a [`Server`] over a flock, bound to an address ([`Listening`]), run
//! until Ctrl-C, SIGTERM or a future of the caller's, then shut down gracefully:
//! stop accepting, end live streams, finish requests, flush the flock.

use std::{future::Future, net::SocketAddr, sync::Arc};

use axum::Router;
use flock::{Flock, ShutdownReport};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use crate::{
    ServeError, ServerConfig,
    history::FlushHistory,
    metrics::Metrics,
    routes::{self, record},
    state::AppState,
};

/// The operations server of one flock: its router, its flush history and its
/// metrics, recording from the moment it is created.
///
/// ```no_run
/// use flock::Flock;
/// use flock_server::{Server, ServerConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let flock = Flock::new();
/// // ... register agents ...
/// let listening = Server::new(flock, ServerConfig::new().port(0)).bind().await?;
/// println!("dashboard: {}", listening.url());
/// let report = listening.run().await?; // until Ctrl-C or SIGTERM
/// println!("flushed {} partial batches", report.batches_flushed);
/// # Ok(())
/// # }
/// ```
pub struct Server {
    state: AppState,
    closing: watch::Sender<bool>,
    recorder: JoinHandle<()>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.state.config)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server for `flock`. Starts recording flushes and metrics from the flock's
    /// live events at once (so it must be called within a tokio runtime).
    pub fn new(flock: Flock, config: ServerConfig) -> Self {
        let history = Arc::new(FlushHistory::new(config.flush_history));
        let metrics = Arc::new(Metrics::new(&flock));
        let (closing, closed) = watch::channel(false);
        let recorder = tokio::spawn(record(
            flock.events(),
            history.clone(),
            metrics.clone(),
            closed.clone(),
        ));
        Self {
            state: AppState {
                flock,
                config: Arc::new(config),
                history,
                metrics,
                closing: closed,
            },
            closing,
            recorder,
        }
    }

    /// The router, to serve yourself or to nest into a larger application.
    pub fn router(&self) -> Router {
        routes::router(self.state.clone())
    }

    /// Binds the configured address.
    ///
    /// # Errors
    /// [`ServeError::Bind`] when the address cannot be bound, [`ServeError::Io`]
    /// when the signal handlers cannot be installed;
    /// [`ServeError::Unauthenticated`] for an address other than loopback without
    /// tokens (unless allowed).
    pub async fn bind(self) -> Result<Listening, ServeError> {
        let config = &self.state.config;
        let addr = config.addr;
        if !addr.ip().is_loopback() && !config.requires_tokens() && !config.allow_open_public_bind {
            return Err(ServeError::Unauthenticated(addr));
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let local = listener.local_addr()?;
        Ok(Listening {
            server: self,
            listener,
            addr: local,
            signals: Signals::install()?,
        })
    }
}

/// A bound server, ready to run.
#[derive(Debug)]
pub struct Listening {
    server: Server,
    listener: TcpListener,
    addr: SocketAddr,
    signals: Signals,
}

impl Listening {
    /// The address bound (with the port chosen, for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<address>/`: the dashboard.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Serves until Ctrl-C or SIGTERM, then shuts down gracefully (see
    /// [`Listening::run_until`]).
    ///
    /// # Errors
    /// [`ServeError::Io`] when serving fails.
    pub async fn run(self) -> Result<ShutdownReport, ServeError> {
        let Listening {
            server,
            listener,
            signals,
            ..
        } = self;
        finish(server, listener, signals.received()).await
    }

    /// Serves until `signal` completes, then stops accepting connections, ends
    /// the live event streams, lets requests in progress finish, and shuts the
    /// flock down ([`Flock::shutdown`]: partial batches flush with reason
    /// `shutdown`). Returns the flock's shutdown report.
    ///
    /// # Errors
    /// [`ServeError::Io`] when serving fails (the flock is shut down all the same).
    pub async fn run_until(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Result<ShutdownReport, ServeError> {
        let Listening {
            server,
            listener,
            signals,
            ..
        } = self;
        // Ctrl-C and SIGTERM are `signal`'s to handle now; the handlers installed
        // at bind time stay, so neither terminates the process at once.
        let _signals = signals;
        finish(server, listener, signal).await
    }
}

async fn finish(
    server: Server,
    listener: TcpListener,
    signal: impl Future<Output = ()> + Send + 'static,
) -> Result<ShutdownReport, ServeError> {
    let Server {
        state,
        closing,
        recorder,
    } = server;
    let router = routes::router(state.clone());
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            signal.await;
            tracing::info!("shutting down: no new requests; flushing the flock");
            let _ = closing.send(true);
        })
        .await;
    let report = state.flock.shutdown().await;
    recorder.abort();
    served?;
    Ok(report)
}

/// Serves `flock` as `config` says until Ctrl-C or SIGTERM, then shuts it down
/// gracefully; returns its shutdown report.
///
/// # Errors
/// As [`Server::bind`] and [`Listening::run`].
pub async fn serve(flock: Flock, config: ServerConfig) -> Result<ShutdownReport, ServeError> {
    let listening = Server::new(flock, config).bind().await?;
    tracing::info!(url = %listening.url(), "flock server listening");
    listening.run().await
}

/// `flock.serve(config)`: [`serve`] as a method of [`Flock`].
pub trait ServeExt {
    /// Serves this flock until Ctrl-C or SIGTERM, then shuts it down; see [`serve`].
    fn serve(
        &self,
        config: ServerConfig,
    ) -> impl Future<Output = Result<ShutdownReport, ServeError>> + Send;
}

impl ServeExt for Flock {
    fn serve(
        &self,
        config: ServerConfig,
    ) -> impl Future<Output = Result<ShutdownReport, ServeError>> + Send {
        serve(self.clone(), config)
    }
}

/// Ctrl-C and (on Unix) SIGTERM, listened for from the moment this exists: a
/// signal that arrives after [`Server::bind`] returned is never the default
/// "terminate at once".
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signals")
    }
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Completes at the first Ctrl-C or SIGTERM.
    async fn received(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
