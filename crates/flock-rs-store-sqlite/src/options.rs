//! `SqliteOptions` and `Durability`: how a store is opened.

use std::{path::Path, time::Duration};

use flock_core::TypeRegistry;

use crate::{SqliteError, SqliteStore};

/// How much an accepted write survives.
///
/// Either way a write returns only after its transaction committed, and readers
/// see it; the level says whether the commit was also flushed to the disk first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Durability {
    /// Every commit's write-ahead log is flushed to the disk (`fdatasync`) before
    /// the writes it holds return: an accepted artifact survives a crash of the
    /// process, of the operating system and a power loss. The default.
    ///
    /// The flush runs on a thread of its own while the next transaction is built,
    /// and one flush covers every commit before it. A reader may see a committed
    /// write for the length of one flush before it is durable (and before its
    /// publish returns); a power loss in that moment loses it, as it loses any
    /// publish that had not returned.
    #[default]
    Full,
    /// A commit is written to the operating system before the writes return and
    /// flushed to the disk at checkpoints: an accepted artifact survives a crash of
    /// the process, but the last commits may be lost if the operating system
    /// crashes or the power fails. For disks whose flushes are slow.
    Normal,
}

/// Options for opening a [`SqliteStore`]: `SqliteStore::options().durability(..)
/// .types(..).open(path)`.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub(crate) durability: Durability,
    pub(crate) types: Option<TypeRegistry>,
    pub(crate) busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            durability: Durability::default(),
            types: None,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

impl SqliteOptions {
    /// The defaults: [`Durability::Full`], a registry of the store's own, a busy
    /// timeout of 5 seconds.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a write or read waits for a lock that another process holds on the
    /// file before it fails with "database is locked" (default 5 seconds).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How much a committed write survives (default [`Durability::Full`]).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Decodes stored payloads with `types` (shared: types registered in it later
    /// decode too). Without it, the store has a registry of its own, which a flock
    /// built on the store adopts (`BlackboardStore::types`).
    pub fn types(mut self, types: TypeRegistry) -> Self {
        self.types = Some(types);
        self
    }

    /// Opens the store at `path`, creating the file and its parent directories when
    /// they do not exist.
    ///
    /// # Errors
    /// [`SqliteError`] when the directory or the file cannot be created or opened,
    /// the file is not a SQLite database, or it holds a newer schema.
    pub fn open(self, path: impl AsRef<Path>) -> Result<SqliteStore, SqliteError> {
        SqliteStore::open_with(path.as_ref(), self)
    }
}
