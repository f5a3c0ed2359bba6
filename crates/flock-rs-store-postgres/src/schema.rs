//! The database schema: its tables, and creating or migrating it when a store
//! connects (idempotent, serialized between processes by an advisory lock).

use tokio_postgres::Client;

use crate::{ConnectError, sql::Keys};

/// The schema version this crate writes and reads.
pub(crate) const VERSION: i32 = 2;

/// Whether `name` may name a schema: lowercase ASCII, digits and `_`, starting
/// with a letter or `_`, at most 48 bytes (the `NOTIFY` channel adds 10 to it, and
/// PostgreSQL's identifiers stop at 63).
pub(crate) fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        && name.len() <= 48
        && !name.starts_with("pg_")
}

/// Migration `n` (from version `n - 1` to `n`) of `schema`.
fn migration(schema: &str, n: i32) -> Option<String> {
    let s = format!("\"{schema}\"");
    match n {
        1 => Some(format!(
            "
            -- Store order: writers take numbers under the schema's shared advisory lock.
            CREATE SEQUENCE {s}.artifact_seq;
            CREATE TABLE {s}.artifacts (
                seq bigint PRIMARY KEY DEFAULT nextval('{s}.artifact_seq'),
                id uuid NOT NULL UNIQUE,
                type_name text NOT NULL,
                payload jsonb NOT NULL,
                produced_by text NOT NULL,
                correlation_id uuid,
                partition_key text,
                tags jsonb NOT NULL,
                visibility jsonb NOT NULL,
                -- Microseconds (PostgreSQL's precision) and the nanoseconds below them.
                created_at timestamptz NOT NULL,
                created_sub integer NOT NULL,
                version bigint NOT NULL
            );
            ALTER SEQUENCE {s}.artifact_seq OWNED BY {s}.artifacts.seq;
            CREATE INDEX artifacts_type ON {s}.artifacts (type_name, seq);
            CREATE INDEX artifacts_correlation ON {s}.artifacts (correlation_id)
                WHERE correlation_id IS NOT NULL;
            -- An agent recovers only artifacts after `since`, the last sequence number
            -- when it was first recorded.
            CREATE TABLE {s}.agents (
                name text PRIMARY KEY,
                since bigint NOT NULL,
                recorded_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE TABLE {s}.consumed (
                agent text NOT NULL,
                artifact uuid NOT NULL,
                PRIMARY KEY (agent, artifact)
            );
            CREATE TABLE {s}.failures (
                n bigserial PRIMARY KEY,
                id uuid NOT NULL UNIQUE,
                agent text NOT NULL,
                record jsonb NOT NULL
            );
            CREATE TABLE {s}.members (
                process text PRIMARY KEY,
                expires_at timestamptz NOT NULL
            );
            -- One row per unit of work; `epoch` grows each time a process takes it.
            CREATE TABLE {s}.leases (
                unit text PRIMARY KEY,
                agent text NOT NULL,
                subscription bigint NOT NULL,
                partition bigint,
                owner text,
                epoch bigint NOT NULL DEFAULT 0,
                expires_at timestamptz NOT NULL DEFAULT '-infinity'
            );
            CREATE INDEX leases_owner ON {s}.leases (owner) WHERE owner IS NOT NULL;
            "
        )),
        2 => Some(format!(
            "
            -- When the owner took the unit (its epoch began), by the server's clock:
            -- what a takeover took is read from the database, not from a process.
            ALTER TABLE {s}.leases ADD COLUMN taken_at timestamptz;
            "
        )),
        _ => None,
    }
}

/// Creates `schema` or brings it to [`VERSION`], in one transaction under the
/// schema's migration lock, so processes connecting at once do not race.
pub(crate) async fn migrate(
    client: &mut Client,
    schema: &str,
    keys: Keys,
) -> Result<(), ConnectError> {
    let failed = |source| ConnectError::Migrate {
        schema: schema.to_owned(),
        source,
    };
    let s = format!("\"{schema}\"");
    let tx = client.transaction().await.map_err(failed)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&keys.migrate])
        .await
        .map_err(failed)?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {s};
         CREATE TABLE IF NOT EXISTS {s}.schema_version (version integer NOT NULL);"
    ))
    .await
    .map_err(failed)?;
    let found: i32 = tx
        .query_opt(&format!("SELECT version FROM {s}.schema_version"), &[])
        .await
        .map_err(failed)?
        .map(|row| row.try_get(0))
        .transpose()
        .map_err(failed)?
        .unwrap_or(0);
    if found > VERSION {
        return Err(ConnectError::NewerSchema {
            schema: schema.to_owned(),
            found,
            known: VERSION,
        });
    }
    if found == VERSION {
        return tx.commit().await.map_err(failed);
    }
    for n in found + 1..=VERSION {
        if let Some(step) = migration(schema, n) {
            tx.batch_execute(&step).await.map_err(failed)?;
        }
    }
    tx.execute(&format!("DELETE FROM {s}.schema_version"), &[])
        .await
        .map_err(failed)?;
    tx.execute(
        &format!("INSERT INTO {s}.schema_version (version) VALUES ($1)"),
        &[&VERSION],
    )
    .await
    .map_err(failed)?;
    tx.commit().await.map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["flock", "_x", "t_0123456789abcdef", &"a".repeat(48)] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "",
            "Flock",
            "9x",
            "a-b",
            "a\"b",
            "pg_temp",
            "sch ema",
            &"a".repeat(49),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn every_version_has_a_migration() {
        for n in 1..=VERSION {
            assert!(migration("flock", n).is_some(), "migration {n}");
        }
        assert!(migration("flock", VERSION + 1).is_none());
    }
}
