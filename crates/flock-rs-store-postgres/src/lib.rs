//! A PostgreSQL blackboard for flock-rs: [`PostgresStore`] keeps artifacts, what
//! each agent consumed and the failed runs durably in one database, and lets several
//! processes share it as a cluster ([`ClusterStore`]: heartbeats, leases with
//! fencing epochs, the feed in store order, wake-ups through `LISTEN`/`NOTIFY`).
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use flock_core::{Artifact, BlackboardStore, ClusterStore, Payload, WorkflowError};
//! use flock_store_postgres::PostgresStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PostgresStore::connect("postgres://postgres@127.0.0.1:5432/postgres").await?;
//! let error = WorkflowError {
//!     agent: "a".into(),
//!     error: "boom".into(),
//!     attempts: 1,
//!     input_ids: vec![],
//!     flush_reason: None,
//! };
//! store.publish(Arc::new(Artifact::new(Payload::new(error), "external"))).await?;
//! assert_eq!(store.feed(0, 10).await?.len(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! # How it keeps its promises
//!
//! - **Durable on return**: every write is one transaction, committed before the
//!   call returns; `publish_all`, `commit_run` and `commit_failure` store all of it
//!   or, on any error (a known id, a fenced lease, a lost connection), none of it.
//! - **Store order**: a sequence numbers the artifacts. Writers hold a shared
//!   advisory lock of the schema while they take numbers and commit; a reader that
//!   needs a settled order (`feed`, `head`, registering an agent) takes it
//!   exclusively for a moment, after which every number handed out so far is
//!   committed or abandoned. So the feed never passes over a number that a slower
//!   transaction commits later, and writers still commit concurrently.
//! - **Leases**: one row per unit with its owner, epoch and expiry; `balance` locks
//!   its own rows and the free ones (`FOR UPDATE SKIP LOCKED`) in one transaction,
//!   so two processes never hold one unit. A commit with a fence locks the unit's
//!   row (`FOR SHARE`) and checks the epoch in the same transaction.
//! - **Wake-ups**: every write that stores artifacts calls `pg_notify` in its
//!   transaction; `wait_for_more` listens on a connection of its own, checks the
//!   table after it listens, and returns at its timeout anyway.
//!
//! The schema (by default `flock`; one per cluster, or per test) is created or
//! migrated when a store connects. Design: `docs/adr/0013-postgres-store.md`.

// docs.rs (`--cfg docsrs`) marks every feature-gated item with its feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod blocking;
mod cluster;
mod connect;
mod error;
mod inner;
mod listen;
mod read;
mod rows;
mod schema;
mod sql;
mod store;
mod write;

pub use connect::PostgresBuilder;
pub use error::{ConnectError, PostgresError};
pub use store::PostgresStore;

#[doc(no_inline)]
pub use flock_core::{BlackboardStore, ClusterStore};
