//! What the store's modules share: the pool, the connection settings, the
//! statements, the type registry and the listener's slot.

use deadpool_postgres::Pool;
use flock_core::TypeRegistry;

use crate::{
    listen::ListenerSlot,
    sql::{Keys, Sql},
};

/// What the store's modules share.
pub(crate) struct Inner {
    pub(crate) pool: Pool,
    /// The connection settings, for connections outside the pool (the listener,
    /// agent registration).
    pub(crate) config: tokio_postgres::Config,
    pub(crate) types: TypeRegistry,
    pub(crate) sql: Sql,
    pub(crate) keys: Keys,
    pub(crate) schema: String,
    /// The `LISTEN` connection, started by the first `wait_for_more`.
    pub(crate) listener: ListenerSlot,
}
