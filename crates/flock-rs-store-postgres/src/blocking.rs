//! The one blocking call of the store, `register_agent` (synchronous in the trait):
//! run on a thread of its own, with a runtime and a connection of its own.
//!
//! Using the pool from the caller's thread could deadlock: a pooled connection is
//! driven by a task of the runtime that opened it, and a current-thread runtime
//! blocked in this call never runs that task. A fresh connection driven by the
//! helper thread depends on nothing the caller holds.

use flock_core::StoreError;
use tokio_postgres::NoTls;

use crate::{PostgresError, error::db, inner::Inner};

/// Records `agent` with the settled last sequence number, unless it is known.
pub(crate) fn register_agent(inner: &Inner, agent: &str) -> Result<(), StoreError> {
    let failed = |reason: String| -> StoreError {
        PostgresError::Register {
            agent: agent.to_owned(),
            reason,
        }
        .into()
    };
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("flock-postgres-register".to_owned())
            .spawn_scoped(scope, || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|err| failed(format!("cannot start a runtime: {err}")))?;
                runtime.block_on(record(inner, agent))
            })
            .map_err(|err| failed(format!("cannot start a thread: {err}")))?;
        helper
            .join()
            .map_err(|panic| failed(flock_core::panic_message(&*panic)))?
    })
}

async fn record(inner: &Inner, agent: &str) -> Result<(), StoreError> {
    let (mut client, connection) = inner.config.connect(NoTls).await.map_err(db)?;
    let driver = tokio::spawn(connection);
    let result = async {
        if client
            .query_opt(&inner.sql.agent_known, &[&agent])
            .await
            .map_err(db)?
            .is_some()
        {
            return Ok(());
        }
        // Exclusively: every number handed out so far is then committed or
        // abandoned, so the agent's artifacts are exactly those numbered after.
        let tx = client.transaction().await.map_err(db)?;
        tx.execute(&inner.sql.lock_exclusive, &[&inner.keys.order])
            .await
            .map_err(db)?;
        tx.execute(&inner.sql.register_agent, &[&agent])
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }
    .await;
    drop(client);
    // The connection ends once its client is gone; its own error adds nothing.
    let _ = driver.await;
    result
}
