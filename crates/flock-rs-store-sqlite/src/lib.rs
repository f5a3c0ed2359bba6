#![doc = include_str!("../README.md")]
// docs.rs (`--cfg docsrs`) marks every feature-gated item with its feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod job;
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
