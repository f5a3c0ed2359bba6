//! `PostgresBuilder`: the options of a store (schema, type registry, pool size),
//! and connecting: the pool, one connection to check the server, the schema
//! created or migrated.

use std::{num::NonZeroUsize, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use flock_core::TypeRegistry;
use tokio_postgres::NoTls;

use crate::{
    ConnectError, PostgresError, PostgresStore,
    inner::Inner,
    listen::ListenerSlot,
    schema,
    sql::{Keys, Sql},
};

/// The schema a store uses unless told otherwise.
pub(crate) const DEFAULT_SCHEMA: &str = "flock";

/// How long connecting waits for the server when the URL sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of a [`PostgresStore`], then [`PostgresBuilder::connect`].
///
/// ```no_run
/// # async fn f() -> Result<(), flock_store_postgres::ConnectError> {
/// use std::num::NonZeroUsize;
/// use flock_core::TypeRegistry;
/// use flock_store_postgres::PostgresStore;
///
/// let types = TypeRegistry::new();
/// let store = PostgresStore::builder("postgres://app@db.internal/app")
///     .schema("orders_flock")
///     .types(types.clone())
///     .max_connections(NonZeroUsize::new(16).unwrap())
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `connect`"]
pub struct PostgresBuilder {
    url: String,
    schema: String,
    types: TypeRegistry,
    max_connections: NonZeroUsize,
}

impl PostgresBuilder {
    pub(crate) fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            schema: DEFAULT_SCHEMA.to_owned(),
            types: TypeRegistry::new(),
            max_connections: NonZeroUsize::new(8).expect("8 is not zero"),
        }
    }

    /// The PostgreSQL schema of the store's tables (default `flock`): processes
    /// that share a blackboard use the same one; tests use one each. Lowercase ASCII
    /// letters, digits and `_`, at most 48 bytes; checked by `connect`.
    pub fn schema(mut self, name: impl Into<String>) -> Self {
        self.schema = name.into();
        self
    }

    /// The registry stored payloads are decoded with (default: a new one). A flock
    /// built on the store shares it through `BlackboardStore::types`.
    pub fn types(mut self, types: TypeRegistry) -> Self {
        self.types = types;
        self
    }

    /// The most connections the store's pool opens (default 8). `wait_for_more`
    /// uses one more, of its own, once called.
    pub fn max_connections(mut self, n: NonZeroUsize) -> Self {
        self.max_connections = n;
        self
    }

    /// Connects: builds the pool, checks that the server answers, and creates the
    /// schema or migrates it to this version (idempotent; processes connecting at
    /// once wait for each other).
    ///
    /// # Errors
    /// [`ConnectError`]: a bad URL or schema name, no server, or a schema made by a
    /// newer version of this crate.
    pub async fn connect(self) -> Result<PostgresStore, ConnectError> {
        if !schema::valid_name(&self.schema) {
            return Err(ConnectError::InvalidSchema(self.schema));
        }
        let mut config: tokio_postgres::Config =
            self.url.parse().map_err(ConnectError::InvalidUrl)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("flock-rs");
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(self.max_connections.get())
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(
                config
                    .get_connect_timeout()
                    .copied()
                    .unwrap_or(CONNECT_TIMEOUT),
            ))
            .build()
            .map_err(|err| ConnectError::Pool(err.to_string()))?;
        let keys = Keys::new(&self.schema);
        let mut client = pool
            .get()
            .await
            .map_err(|err| ConnectError::Connect(PostgresError::Pool(err)))?;
        schema::migrate(&mut client, &self.schema, keys).await?;
        drop(client);
        Ok(PostgresStore::from_inner(Inner {
            sql: Sql::new(&self.schema),
            keys,
            pool,
            config,
            types: self.types,
            schema: self.schema,
            listener: ListenerSlot::default(),
        }))
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`;
    /// no TLS) with the defaults of [`PostgresStore::builder`]: schema `flock`, a new
    /// type registry, at most 8 pooled connections.
    ///
    /// # Errors
    /// See [`PostgresBuilder::connect`].
    pub async fn connect(url: &str) -> Result<Self, ConnectError> {
        Self::builder(url).connect().await
    }

    /// Options for a store at `url`; [`PostgresBuilder::connect`] connects.
    pub fn builder(url: &str) -> PostgresBuilder {
        PostgresBuilder::new(url)
    }
}
