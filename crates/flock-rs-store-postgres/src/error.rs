//! Errors: connecting (`ConnectError`), and what a store call found wrong in
//! PostgreSQL (`PostgresError`, inside `StoreError::Backend`).

use flock_core::StoreError;

/// Why [`PostgresStore::connect`](crate::PostgresStore::connect) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL does not parse as a PostgreSQL connection string.
    #[error("invalid postgresql url: {0}")]
    InvalidUrl(#[source] tokio_postgres::Error),
    /// The schema name is not one this store accepts.
    #[error(
        "invalid schema name '{0}': use 1 to 48 lowercase ascii letters, digits and underscores, starting with a letter or underscore"
    )]
    InvalidSchema(String),
    /// The connection pool could not be built.
    #[error("cannot build the postgresql connection pool: {0}")]
    Pool(String),
    /// No connection to the server.
    #[error(
        "cannot connect to postgresql: {0}; is the server running and the url right? (for the project's tests: `cargo xtask postgres start`)"
    )]
    Connect(#[source] PostgresError),
    /// Creating or migrating the schema failed.
    #[error("cannot create or migrate schema '{schema}': {source}")]
    Migrate {
        /// The schema.
        schema: String,
        /// What PostgreSQL reported.
        source: tokio_postgres::Error,
    },
    /// The schema was made by a newer version of this crate.
    #[error(
        "schema '{schema}' is at version {found}, newer than the {known} this flock-rs-store-postgres knows; upgrade it"
    )]
    NewerSchema {
        /// The schema.
        schema: String,
        /// Its version.
        found: i32,
        /// The newest version this crate knows.
        known: i32,
    },
}

/// What went wrong in PostgreSQL during a store call: the source of
/// [`StoreError::Backend`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// A statement failed (or the connection broke during it).
    #[error("postgresql statement failed: {0}")]
    Query(#[from] tokio_postgres::Error),
    /// No connection could be had from the pool.
    #[error("no postgresql connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// An artifact could not be turned into a row.
    #[error("artifact {id} cannot be stored: {reason}")]
    Encode {
        /// The artifact's id.
        id: String,
        /// Why.
        reason: String,
    },
    /// A stored row could not be turned back into what it holds.
    #[error("stored {what} does not decode: {reason}")]
    Decode {
        /// What: `artifact <id>`, `failed run`, ...
        what: String,
        /// Why.
        reason: String,
    },
    /// The thread that registers agents (a blocking call) failed.
    #[error("registering agent '{agent}' failed: {reason}")]
    Register {
        /// The agent.
        agent: String,
        /// Why.
        reason: String,
    },
}

impl From<PostgresError> for StoreError {
    fn from(err: PostgresError) -> Self {
        StoreError::Backend(Box::new(err))
    }
}

/// A failed statement as a store error.
pub(crate) fn db(err: tokio_postgres::Error) -> StoreError {
    PostgresError::Query(err).into()
}

/// A connection the pool could not give, as a store error.
pub(crate) fn pool(err: deadpool_postgres::PoolError) -> StoreError {
    PostgresError::Pool(err).into()
}

/// A row that does not decode, as a store error.
pub(crate) fn decode(what: impl Into<String>, reason: impl ToString) -> StoreError {
    PostgresError::Decode {
        what: what.into(),
        reason: reason.to_string(),
    }
    .into()
}
