//! `SqliteError`: what goes wrong in the SQLite store, with the file it concerns.
//! The store's trait methods report it as `StoreError::Backend`.

use std::path::{Path, PathBuf};

use flock_core::{ArtifactId, StoreError};

/// A failure of the SQLite store. [`BlackboardStore`](flock_core::BlackboardStore)
/// methods return it inside [`StoreError::Backend`] (downcast to read it back);
/// opening a store returns it directly.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SqliteError {
    /// The database's directory could not be created.
    #[error("cannot create directory '{}' for the sqlite store: {reason}", .path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// What the operating system said.
        reason: String,
    },
    /// SQLite failed (opening the file, a statement, a commit: disk full, read-only
    /// file, locked by another process, not a database).
    #[error("sqlite store '{}': cannot {action}: {reason}", .path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What the store was doing, e.g. `commit a group of writes`.
        action: &'static str,
        /// What SQLite said.
        reason: String,
    },
    /// The file holds a schema this version of the store does not know.
    #[error(
        "sqlite store '{}' has schema version {found}, this version of flock-rs-store-sqlite reads version {supported}; open it with a newer flock-rs",
        .path.display()
    )]
    Schema {
        /// The database file.
        path: PathBuf,
        /// The version found in the file.
        found: i64,
        /// The version this crate writes and reads.
        supported: i64,
    },
    /// The store's writer thread has stopped: nothing more can be written.
    #[error(
        "sqlite store '{}' is closed: its writer thread has stopped",
        .path.display()
    )]
    Closed {
        /// The database file.
        path: PathBuf,
    },
    /// An artifact cannot be stored as it is.
    #[error("artifact {id} cannot be stored: {reason}")]
    Encode {
        /// The artifact.
        id: ArtifactId,
        /// Why not.
        reason: String,
    },
    /// A stored row no longer reads back as an artifact (or a failed run): its type
    /// changed since it was stored, or the file was edited.
    #[error("sqlite store '{}': stored {what} does not decode: {reason}", .path.display())]
    Decode {
        /// The database file.
        path: PathBuf,
        /// What did not decode, e.g. `artifact 0190… of type 'Order'`.
        what: String,
        /// Why.
        reason: String,
    },
    /// A failed run with this id is already kept.
    #[error("failed run {id} is already kept in sqlite store '{}'", .path.display())]
    FailureExists {
        /// The database file.
        path: PathBuf,
        /// The failed run's id.
        id: uuid::Uuid,
    },
}

impl SqliteError {
    /// A SQLite failure while doing `action` on the database at `path`.
    pub(crate) fn sqlite(path: &Path, action: &'static str, err: rusqlite::Error) -> Self {
        Self::Sqlite {
            path: path.to_owned(),
            action,
            reason: err.to_string(),
        }
    }

    /// `map_err` for SQLite failures while doing `action` on the database at `path`.
    pub(crate) fn doing<'a>(
        path: &'a Path,
        action: &'static str,
    ) -> impl FnOnce(rusqlite::Error) -> Self + 'a {
        move |err| Self::sqlite(path, action, err)
    }

    pub(crate) fn decode(path: &Path, what: String, reason: impl ToString) -> Self {
        Self::Decode {
            path: path.to_owned(),
            what,
            reason: reason.to_string(),
        }
    }
}

impl From<SqliteError> for StoreError {
    fn from(err: SqliteError) -> Self {
        StoreError::Backend(Box::new(err))
    }
}
