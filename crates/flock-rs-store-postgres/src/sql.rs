//! The statements of a store, written once per schema (table names carry it), and
//! the advisory-lock keys of that schema.

use crate::rows::COLUMNS;

/// Advisory-lock keys of one schema (PostgreSQL's advisory locks are per
/// database; the schema's name keeps two schemas of one database apart).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keys {
    /// Writers hold it shared while they take sequence numbers and commit; a
    /// reader that needs a settled order takes it exclusively (see `lib.rs`).
    pub(crate) order: i64,
    /// Connecting stores take it while they create or migrate the schema.
    pub(crate) migrate: i64,
}

impl Keys {
    pub(crate) fn new(schema: &str) -> Self {
        Self {
            order: fnv1a(&format!("flock-rs order {schema}")),
            migrate: fnv1a(&format!("flock-rs migrate {schema}")),
        }
    }
}

/// FNV-1a, 64 bits: stable across processes and versions (std's hasher is not).
fn fnv1a(text: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Every statement a store runs, with its schema's tables.
#[derive(Debug)]
pub(crate) struct Sql {
    /// The `NOTIFY` channel of the schema.
    pub(crate) channel: String,
    pub(crate) lock_shared: String,
    pub(crate) lock_exclusive: String,
    /// The last sequence number handed out (0 before the first).
    pub(crate) last_seq: String,
    pub(crate) notify: String,
    pub(crate) insert_artifacts: String,
    pub(crate) insert_consumed: String,
    pub(crate) insert_failure: String,
    pub(crate) delete_failure: String,
    pub(crate) failures: String,
    pub(crate) fence: String,
    pub(crate) get: String,
    pub(crate) count: String,
    /// `SELECT .. FROM artifacts`, for queries to add conditions to.
    pub(crate) select: String,
    pub(crate) agent_known: String,
    pub(crate) register_agent: String,
    pub(crate) unconsumed: String,
    pub(crate) unconsumed_through: String,
    pub(crate) feed: String,
    pub(crate) any_after: String,
    pub(crate) heartbeat: String,
    pub(crate) members: String,
    pub(crate) leave: String,
    pub(crate) ensure_units: String,
    pub(crate) lock_mine: String,
    pub(crate) lock_others: String,
    pub(crate) renew: String,
    pub(crate) take: String,
    pub(crate) give_up: String,
    pub(crate) release: String,
}

impl Sql {
    /// The statements of `schema`, a name `connect` validated (so it needs no
    /// escaping inside the quotes).
    pub(crate) fn new(schema: &str) -> Self {
        let s = format!("\"{schema}\"");
        let lease_columns = "unit, agent, subscription, partition, epoch, expires_at";
        Self {
            channel: format!("{schema}_artifacts"),
            lock_shared: "SELECT pg_advisory_xact_lock_shared($1)".to_owned(),
            lock_exclusive: "SELECT pg_advisory_xact_lock($1)".to_owned(),
            last_seq: format!(
                "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {s}.artifact_seq"
            ),
            notify: "SELECT pg_notify($1, '')".to_owned(),
            insert_artifacts: format!(
                "INSERT INTO {s}.artifacts (id, type_name, payload, produced_by, correlation_id, \
                 partition_key, tags, visibility, created_at, created_sub, version) \
                 SELECT id, type_name, payload, produced_by, correlation_id, partition_key, tags, \
                 visibility, created_at, created_sub, version \
                 FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::text[], $5::uuid[], \
                 $6::text[], $7::jsonb[], $8::jsonb[], $9::timestamptz[], $10::int4[], $11::int8[]) \
                 WITH ORDINALITY AS u(id, type_name, payload, produced_by, correlation_id, \
                 partition_key, tags, visibility, created_at, created_sub, version, n) \
                 ORDER BY n \
                 ON CONFLICT (id) DO NOTHING RETURNING id"
            ),
            insert_consumed: format!(
                "INSERT INTO {s}.consumed (agent, artifact) \
                 SELECT $1, a FROM unnest($2::uuid[]) AS a ORDER BY a ON CONFLICT DO NOTHING"
            ),
            insert_failure: format!(
                "INSERT INTO {s}.failures (id, agent, record) VALUES ($1, $2, $3)"
            ),
            delete_failure: format!("DELETE FROM {s}.failures WHERE id = $1"),
            failures: format!("SELECT record FROM {s}.failures ORDER BY n"),
            fence: format!(
                "SELECT epoch, expires_at > clock_timestamp() FROM {s}.leases \
                 WHERE unit = $1 FOR SHARE"
            ),
            get: format!("SELECT {COLUMNS} FROM {s}.artifacts WHERE id = $1"),
            count: format!("SELECT count(*) FROM {s}.artifacts"),
            select: format!("SELECT {COLUMNS} FROM {s}.artifacts"),
            agent_known: format!("SELECT 1 FROM {s}.agents WHERE name = $1"),
            register_agent: format!(
                "INSERT INTO {s}.agents (name, since) \
                 SELECT $1, CASE WHEN is_called THEN last_value ELSE 0 END FROM {s}.artifact_seq \
                 ON CONFLICT (name) DO NOTHING"
            ),
            unconsumed: format!(
                "SELECT {COLUMNS} FROM {s}.artifacts a JOIN {s}.agents g ON g.name = $1 \
                 WHERE a.seq > g.since AND NOT EXISTS \
                 (SELECT 1 FROM {s}.consumed c WHERE c.agent = $1 AND c.artifact = a.id) \
                 ORDER BY a.seq"
            ),
            unconsumed_through: format!(
                "SELECT {COLUMNS} FROM {s}.artifacts a JOIN {s}.agents g ON g.name = $1 \
                 WHERE a.seq > g.since AND a.seq <= $2 AND a.type_name = ANY($3::text[]) \
                 AND NOT EXISTS \
                 (SELECT 1 FROM {s}.consumed c WHERE c.agent = $1 AND c.artifact = a.id) \
                 ORDER BY a.seq"
            ),
            feed: format!(
                "SELECT {COLUMNS} FROM {s}.artifacts WHERE seq > $1 AND seq <= $2 \
                 ORDER BY seq LIMIT $3"
            ),
            any_after: format!("SELECT EXISTS (SELECT 1 FROM {s}.artifacts WHERE seq > $1)"),
            heartbeat: format!(
                "INSERT INTO {s}.members (process, expires_at) \
                 VALUES ($1, clock_timestamp() + $2::int8 * interval '1 microsecond') \
                 ON CONFLICT (process) DO UPDATE SET expires_at = EXCLUDED.expires_at"
            ),
            members: format!(
                "SELECT process FROM {s}.members WHERE expires_at > clock_timestamp() \
                 ORDER BY process COLLATE \"C\""
            ),
            leave: format!("DELETE FROM {s}.members WHERE process = $1"),
            ensure_units: format!(
                "INSERT INTO {s}.leases (unit, agent, subscription, partition) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[]) \
                 AS u(unit, agent, subscription, partition) ORDER BY unit COLLATE \"C\" \
                 ON CONFLICT (unit) DO NOTHING"
            ),
            lock_mine: format!(
                "SELECT unit, expires_at > clock_timestamp() FROM {s}.leases \
                 WHERE unit = ANY($1) AND owner = $2 ORDER BY unit COLLATE \"C\" FOR UPDATE"
            ),
            lock_others: format!(
                "SELECT unit, owner IS NULL OR expires_at <= clock_timestamp() FROM {s}.leases \
                 WHERE unit = ANY($1) AND owner IS DISTINCT FROM $2 \
                 ORDER BY unit COLLATE \"C\" FOR UPDATE SKIP LOCKED"
            ),
            renew: format!(
                "UPDATE {s}.leases SET expires_at = clock_timestamp() + $2::int8 * interval '1 microsecond' \
                 WHERE unit = ANY($1) RETURNING {lease_columns}"
            ),
            take: format!(
                "UPDATE {s}.leases SET owner = $3, epoch = epoch + 1, taken_at = clock_timestamp(), \
                 expires_at = clock_timestamp() + $2::int8 * interval '1 microsecond' \
                 WHERE unit = ANY($1) RETURNING {lease_columns}"
            ),
            give_up: format!(
                "UPDATE {s}.leases SET owner = NULL, expires_at = '-infinity' WHERE unit = ANY($1)"
            ),
            release: format!(
                "UPDATE {s}.leases SET owner = NULL, expires_at = '-infinity' WHERE owner = $1"
            ),
        }
    }
}
