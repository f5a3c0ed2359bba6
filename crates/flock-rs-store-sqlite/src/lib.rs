//! A durable SQLite blackboard store for flock-rs: [`SqliteStore`].
//!
//! Every accepted artifact is in one SQLite file (`.flock/blackboard.db` by
//! default) before `publish` returns, with its metadata (type, producer,
//! correlation id, partition key, tags, visibility, creation time, version); so is
//! which agent consumed which artifact (recorded in the transaction that stores the
//! outputs of the run that consumed it) and every failed run. A flock built on the
//! store recovers on start what its agents had not consumed.
//!
//! How (see `docs/adr/0009-durable-sqlite-store.md` in the repository):
//!
//! - one writer thread owns the only writing connection and commits every write that
//!   is waiting as one transaction (group commit), answering each publisher after
//!   the commit;
//! - WAL mode: reads run on their own connections and never wait for the writer;
//! - [`Durability::Full`] (the default) flushes every commit to the disk;
//!   [`Durability::Normal`] survives a crash of the process, not of the machine;
//! - SQLite is compiled into the crate (`rusqlite` with `bundled`): no system
//!   library needed.
//!
//! Applications get it from the facade, `flock-rs` with feature `sqlite`, as
//! `flock::sqlite`. The store passes flock-core's conformance suite
//! (`flock_core::conformance`), as every backend must.

// docs.rs (`--cfg docsrs`) marks every feature-gated item with its feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod options;
mod read;
mod row;
mod schema;
mod statements;
mod store;
mod sync;
mod time;
mod writer;

pub use error::SqliteError;
pub use options::{Durability, SqliteOptions};
pub use store::{DEFAULT_PATH, SqliteStore};
