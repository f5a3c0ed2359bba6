//! `SqliteStore`: opening the file, and the `BlackboardStore` methods, writes
//! through the writer thread, reads on read connections.

use std::{path::Path, sync::Arc};

use async_trait::async_trait;
use flock_core::{
    Artifact, ArtifactFilter, ArtifactId, BlackboardStore, FailureCommit, FailureRecord, RunCommit,
    StoreError, TypeRegistry,
};

use crate::{
    Durability, SqliteError, SqliteOptions,
    read::Readers,
    row::Row,
    schema,
    writer::{Write, Writer},
};

/// Where [`SqliteStore::open_default`] keeps the blackboard, relative to the
/// working directory (beside the trace file, `.flock/traces.duckdb`).
pub const DEFAULT_PATH: &str = ".flock/blackboard.db";

/// A durable blackboard in one SQLite file: every accepted artifact, which agent
/// consumed what, and the failed runs.
///
/// A publish returns once its artifact is committed: one writer thread commits all
/// the writes waiting at a time in one transaction (group commit), so many
/// concurrent publishers share each commit's flush to the disk. Reads run on their
/// own connections and never wait for the writer (WAL mode). Payloads are stored as
/// JSON with their metadata and decoded with the store's [`TypeRegistry`]: typed
/// when the type is registered (also later: the registry is shared), raw JSON
/// ([`Payload::raw_json`](flock_core::Payload::raw_json)) otherwise.
///
/// Dropping the store commits what was sent, stops the writer thread and closes the
/// file.
///
/// ```
/// use std::sync::Arc;
/// use flock_core::{Artifact, BlackboardStore, FlockType, Payload};
/// use flock_store_sqlite::SqliteStore;
/// # #[derive(serde::Serialize, serde::Deserialize, FlockType)]
/// # #[flock(crate = "flock_core")]
/// # struct Order { id: u32 }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("blackboard.db");
/// let store = SqliteStore::open(&path)?; // SqliteStore::open_default(): .flock/blackboard.db
/// store.types().unwrap().register::<Order>()?;
///
/// let order = Arc::new(Artifact::new(Payload::new(Order { id: 7 }), "external"));
/// store.publish(order.clone()).await?; // durable now
/// drop(store);
///
/// let store = SqliteStore::open(&path)?; // as a restarted process
/// let stored = store.get(order.id).await?.unwrap();
/// assert_eq!(stored.payload.to_json()?, serde_json::json!({"id": 7})); // its type not registered yet
/// store.types().unwrap().register::<Order>()?;
/// assert_eq!(store.get(order.id).await?.unwrap().get::<Order>().map(|o| o.id), Some(7));
/// # Ok(())
/// # }
/// ```
pub struct SqliteStore {
    readers: Arc<Readers>,
    durability: Durability,
    // Dropped last: the writer thread finishes and closes its connection.
    writer: Writer,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.readers.path)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) the store at `path` with the default options.
    ///
    /// # Errors
    /// As [`SqliteOptions::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SqliteError> {
        SqliteOptions::new().open(path)
    }

    /// Opens (or creates) the store at [`DEFAULT_PATH`], `.flock/blackboard.db`.
    ///
    /// # Errors
    /// As [`SqliteOptions::open`].
    pub fn open_default() -> Result<Self, SqliteError> {
        Self::open(DEFAULT_PATH)
    }

    /// Options: durability level and a type registry to share.
    pub fn options() -> SqliteOptions {
        SqliteOptions::new()
    }

    pub(crate) fn open_with(path: &Path, options: SqliteOptions) -> Result<Self, SqliteError> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| SqliteError::CreateDir {
                path: dir.to_owned(),
                reason: e.to_string(),
            })?;
        }
        let conn = schema::open_writer(path, options.busy_timeout)?;
        let path: Arc<Path> = Arc::from(path);
        let writer = Writer::start(conn, path.clone(), options.durability)?;
        let types = options.types.unwrap_or_default();
        Ok(Self {
            readers: Arc::new(Readers::new(path, types, options.busy_timeout)),
            durability: options.durability,
            writer,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.readers.path
    }

    /// The durability level it was opened with.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Runs a read off the async runtime's threads (on its blocking pool), or right
    /// here when no Tokio runtime is running.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Readers) -> Result<T, SqliteError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.readers.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime
                .spawn_blocking(move || read(&readers))
                .await
                .map_err(|e| {
                    StoreError::from(SqliteError::Sqlite {
                        path: self.path().to_path_buf(),
                        action: "read",
                        reason: format!("the reading task failed: {e}"),
                    })
                })?
                .map_err(StoreError::from),
            Err(_) => read(&readers).map_err(StoreError::from),
        }
    }
}

fn rows(artifacts: &[Arc<Artifact>]) -> Result<Vec<Row>, StoreError> {
    artifacts
        .iter()
        .map(|artifact| Row::encode(artifact).map_err(StoreError::from))
        .collect()
}

/// The contract of each method is documented on [`BlackboardStore`]; every write
/// returns once committed (durable at the store's [`Durability`]).
///
/// The store is not a [`ClusterStore`](flock_core::ClusterStore): it serves one
/// flock at a time, and the fences of [`RunCommit::fence`] and `commit_failure`
/// (`None` outside a cluster) are not checked.
#[async_trait]
impl BlackboardStore for SqliteStore {
    async fn publish(&self, artifact: Arc<Artifact>) -> Result<(), StoreError> {
        let row = Row::encode(&artifact)?;
        self.writer.write(Write::Publish(row)).await
    }

    async fn publish_all(&self, artifacts: &[Arc<Artifact>]) -> Result<(), StoreError> {
        if artifacts.is_empty() {
            return Ok(());
        }
        self.writer.write(Write::PublishAll(rows(artifacts)?)).await
    }

    async fn get(&self, id: ArtifactId) -> Result<Option<Arc<Artifact>>, StoreError> {
        self.read(move |readers| readers.get(id)).await
    }

    async fn query(&self, filter: &ArtifactFilter) -> Result<Vec<Arc<Artifact>>, StoreError> {
        let filter = filter.clone();
        let now = filter.as_of.unwrap_or_else(crate::time::utc_now);
        self.read(move |readers| readers.query(&filter, now)).await
    }

    async fn count(&self) -> Result<usize, StoreError> {
        self.read(Readers::count).await
    }

    fn is_durable(&self) -> bool {
        true
    }

    fn types(&self) -> Option<TypeRegistry> {
        Some(self.readers.types.clone())
    }

    fn register_agent(&self, agent: &str) -> Result<(), StoreError> {
        self.writer
            .write_blocking(Write::RegisterAgent(agent.to_owned()))
    }

    async fn commit_run(&self, commit: RunCommit<'_>) -> Result<(), StoreError> {
        if commit.inputs.is_empty() && commit.outputs.is_empty() && commit.retries.is_none() {
            return Ok(());
        }
        let write = Write::CommitRun {
            agent: commit.agent.to_owned(),
            inputs: commit.inputs.to_vec(),
            outputs: rows(commit.outputs)?,
            retries: commit.retries,
        };
        self.writer.write(write).await
    }

    async fn commit_failure(&self, commit: FailureCommit<'_>) -> Result<(), StoreError> {
        let FailureCommit {
            failure,
            error,
            retries,
            ..
        } = commit;
        let record = serde_json::to_string(failure).map_err(|e| SqliteError::Encode {
            id: error.id,
            reason: format!("failed run {} does not serialize: {e}", failure.id),
        })?;
        let write = Write::CommitFailure {
            id: failure.id,
            record,
            agent: failure.agent.clone(),
            inputs: failure.inputs.clone(),
            error: Row::encode(error)?,
            retries,
        };
        self.writer.write(write).await
    }

    async fn forget_failure(&self, id: uuid::Uuid) -> Result<(), StoreError> {
        self.writer.write(Write::ForgetFailure(id)).await
    }

    async fn failures(&self) -> Result<Vec<FailureRecord>, StoreError> {
        self.read(Readers::failures).await
    }

    async fn unconsumed(&self, agent: &str) -> Result<Vec<Arc<Artifact>>, StoreError> {
        let agent = agent.to_owned();
        self.read(move |readers| readers.unconsumed(&agent)).await
    }
}
