//! flock-rs-server: operate a [`flock`] from outside the process.
//!
//! - A JSON API with Python Flock's paths and meanings (`/api/v1/artifacts`,
//!   `/api/v1/artifacts/{id}`, `/api/v1/artifacts/summary`, `/api/v1/agents`,
//!   `/api/v1/agents/{name}/run`, `/api/v1/correlations/{id}/status`, `/health`),
//!   plus what batch users need: `/api/v1/batches`, `/api/v1/joins`,
//!   `/api/v1/flushes`, `POST /api/v1/flush`, `/api/v1/failed-runs` and
//!   `POST /api/v1/failed-runs/{id}/retry`.
//! - Live events as Server-Sent Events at `/api/v1/events`.
//! - A dashboard at `/`, embedded in the binary: agents, batches filling with
//!   their countdowns, a live flush chart, pending joins, failed runs with retry,
//!   artifact search.
//! - Prometheus metrics at `/metrics`.
//! - Bearer tokens mapped to an [`AgentIdentity`](flock::AgentIdentity): every
//!   read goes through that identity's visibility; binds 127.0.0.1 by default.
//! - Graceful shutdown: Ctrl-C or SIGTERM stops accepting requests and flushes
//!   the flock's partial batches.
//!
//! ```no_run
//! use flock::prelude::*;
//! use flock_server::{ServeExt, ServerConfig};
//!
//! # #[tokio::main]
//! # async fn main() -> anyhow::Result<()> {
//! let flock = Flock::new();
//! // ... register agents, start publishing ...
//! let report = flock.serve(ServerConfig::new()).await?; // http://127.0.0.1:8344/
//! println!("{} partial batches flushed at shutdown", report.batches_flushed);
//! # Ok(())
//! # }
//! ```
//!
//! The facade does not re-export this crate (it would be a dependency cycle: the
//! server is built on the facade); see `docs/adr/0008-operating-server.md`.

mod auth;
mod config;
mod dashboard;
mod error;
mod history;
mod metrics;
mod routes;
mod server;
mod state;
mod view;

pub use config::{Access, DEFAULT_PORT, InvalidToken, ServerConfig};

/// The guide's chapter on operating a flock, `crates/flock-rs-server/guide/operating.md`: its Rust
/// blocks run as doctests of this crate.
#[cfg(doctest)]
#[doc = include_str!("../guide/operating.md")]
mod guide {}
pub use error::{ApiError, ServeError};
pub use server::{Listening, ServeExt, Server, serve};
