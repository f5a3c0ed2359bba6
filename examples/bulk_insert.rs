//! The guide's "Database Bulk Insert": log entries batched 500 at a time (or 10
//! seconds after the first) and written with **one bulk insert per batch** into a
//! real embedded DuckDB database, through DuckDB's appender. For comparison, the
//! first 1,000 entries are then written by an agent without a batch, with one
//! `INSERT` per row, into another table of the same database, and the example prints
//! both rates and the measured speedup.
//!
//! What is simulated: the log stream (5,250 generated entries, published as fast as
//! possible, so 10 batches flush by size and the last 250 by timeout), and time: the
//! guide's 10-second timeout runs 100× faster (100 ms). The database is real: a
//! DuckDB file in a temporary directory (removed at the end; `--db PATH` keeps one).
//!
//! Run: `cargo run --example bulk_insert` (about 2 s); `-- --rows N` for another
//! stream length, `-- --per-row N` to compare on N rows (default 1,000; every row
//! costs a committed transaction, about 1 ms),
//! `-- --speed 1` for the guide's real 10-second timeout, `-- --db logs.duckdb` to
//! keep the database and query it afterwards.

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use flock::{prelude::*, trace::duckdb};
use flock_examples::{Args, Opt};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

const BATCH_SIZE: usize = 500;
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct LogEntry {
    timestamp: String,
    level: String,
    message: String,
    source: String,
}

/// Published by the bulk writer for each batch it wrote.
#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct WriteConfirmation {
    rows: usize,
    table: String,
    flush_reason: String,
    write_ms: f64,
}

/// A DuckDB connection shared by an agent's runs, and what was spent in it.
#[derive(Clone)]
struct Database {
    conn: Arc<Mutex<duckdb::Connection>>,
    statements: Arc<AtomicUsize>,
    rows: Arc<AtomicUsize>,
    busy_nanos: Arc<AtomicU64>,
}

impl Database {
    fn new(conn: duckdb::Connection) -> Self {
        Self {
            conn: Arc::new(Mutex::new(conn)),
            statements: Arc::default(),
            rows: Arc::default(),
            busy_nanos: Arc::default(),
        }
    }

    /// Runs a blocking database call off the async runtime, timing it.
    async fn with<R: Send + 'static>(
        &self,
        write: impl FnOnce(&mut duckdb::Connection) -> duckdb::Result<R> + Send + 'static,
    ) -> anyhow::Result<R> {
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = db.conn.lock().unwrap_or_else(|e| e.into_inner());
            let started = Instant::now();
            let result = write(&mut conn);
            let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            db.busy_nanos.fetch_add(nanos, Ordering::Relaxed);
            result.map_err(anyhow::Error::from)
        })
        .await?
    }

    fn busy(&self) -> Duration {
        Duration::from_nanos(self.busy_nanos.load(Ordering::Relaxed))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::from_env(
        "The guide's \"Database Bulk Insert\": log rows 500 per DuckDB appender insert, against one INSERT per row.",
        &[
            Opt::value("--rows", "N", "log entries in the stream (default 5250)"),
            Opt::value(
                "--per-row",
                "N",
                "rows written one INSERT at a time, for the comparison (default 1000)",
            ),
            Opt::value(
                "--speed",
                "N",
                "simulated time runs N times faster than real time (default 100; 1 for the guide's real 10 s timeout)",
            ),
            Opt::value(
                "--db",
                "PATH",
                "keep the database at PATH (default: a temporary file, removed)",
            ),
        ],
    );
    let rows: usize = args.value("--rows", 5_250);
    let per_row_rows = args.value("--per-row", 1_000).min(rows);
    let speed: f64 = args.value("--speed", 100.0);
    anyhow::ensure!(speed > 0.0, "--speed must be positive, got {speed}");
    let timeout = TIMEOUT.div_f64(speed);
    let keep: Option<PathBuf> = Some(args.value("--db", String::new()))
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    let dir = std::env::temp_dir().join(format!("flock-bulk-insert-{}", std::process::id()));
    let path = match &keep {
        Some(path) => path.clone(),
        None => {
            std::fs::create_dir_all(&dir)?;
            dir.join("logs.duckdb")
        }
    };
    let conn = duckdb::Connection::open(&path)
        .with_context(|| format!("cannot open DuckDB database '{}'", path.display()))?;
    conn.execute_batch(
        "CREATE OR REPLACE TABLE logs_bulk (ts TIMESTAMP, level VARCHAR, message VARCHAR, source VARCHAR);
         CREATE OR REPLACE TABLE logs_per_row (ts TIMESTAMP, level VARCHAR, message VARCHAR, source VARCHAR);",
    )?;
    let entries = log_stream(rows);
    println!(
        "bulk_insert: {rows} log entries into DuckDB '{}'",
        path.display()
    );
    println!(
        "log_writer: BatchSpec(size={BATCH_SIZE}, timeout=10 s); time runs {speed}x faster (timeout {} ms)\n",
        timeout.as_millis()
    );

    // --- one bulk insert per batch ---
    let bulk = Database::new(conn.try_clone()?);
    let flock = Flock::new();
    let db = bulk.clone();
    flock
        .agent("log_writer")
        .description("Writes log entries to DuckDB 500 rows per bulk insert")
        .consumes::<LogEntry>(Subscribe::new().batch(BatchSpec::size(BATCH_SIZE).timeout(timeout)))
        .publishes::<WriteConfirmation>()
        .with_engine(batch_fn_async(
            move |ctx: EngineContext, batch: Vec<Arc<LogEntry>>| {
                let db = db.clone();
                async move {
                    let count = batch.len();
                    let started = Instant::now();
                    db.with(move |conn| {
                        // The appender: DuckDB's bulk path, one round-trip for the batch.
                        let mut appender = conn.appender("logs_bulk")?;
                        for e in &batch {
                            appender.append_row(duckdb::params![
                                e.timestamp,
                                e.level,
                                e.message,
                                e.source
                            ])?;
                        }
                        appender.flush()
                    })
                    .await?;
                    db.statements.fetch_add(1, Ordering::Relaxed);
                    db.rows.fetch_add(count, Ordering::Relaxed);
                    Ok::<_, anyhow::Error>(WriteConfirmation {
                        rows: count,
                        table: "logs_bulk".into(),
                        flush_reason: ctx.batch_metrics()?.flush_reason.to_string(),
                        write_ms: started.elapsed().as_secs_f64() * 1000.0,
                    })
                }
            },
        ))
        .register()?;
    flock
        .agent("confirmations")
        .consumes::<WriteConfirmation>(Subscribe::new())
        .with_engine(map_fn(|_: &EngineContext, c: Arc<WriteConfirmation>| {
            println!(
                "  bulk insert: {:>3} rows into {} ({:<7} flush) in {:>6.2} ms",
                c.rows, c.table, c.flush_reason, c.write_ms
            );
            Ok::<_, String>(Outputs::none())
        }))
        .register()?;

    let started = Instant::now();
    for entry in &entries {
        flock.publish(entry.clone()).await?;
    }
    flock.run_until_idle().await; // the full batches are written
    // The last 250 entries wait in a partial batch: inspect it, and wait for its timeout.
    for batch in flock.active_batches() {
        let left = batch.time_left.unwrap_or_default();
        println!(
            "  {} entries wait in {}'s batch; its timeout flushes them in {} ms ...",
            batch.items_waiting,
            batch.agent,
            left.as_millis()
        );
        tokio::time::sleep(left).await;
    }
    flock.run_until_idle().await;
    let bulk_elapsed = started.elapsed();
    flock.shutdown().await;

    // --- one INSERT per row, the first entries ---
    println!(
        "\nnow the first {per_row_rows} entries again, with one INSERT per row (no batch) ..."
    );
    let per_row = Database::new(conn.try_clone()?);
    let flock = Flock::new();
    let db = per_row.clone();
    flock
        .agent("row_writer")
        .description("Writes each log entry with its own INSERT")
        .consumes::<LogEntry>(Subscribe::new())
        .with_engine(map_fn_async(move |_: EngineContext, e: Arc<LogEntry>| {
            let db = db.clone();
            async move {
                db.with(move |conn| {
                    conn.execute(
                        "INSERT INTO logs_per_row VALUES (?, ?, ?, ?)",
                        duckdb::params![e.timestamp, e.level, e.message, e.source],
                    )
                })
                .await?;
                db.statements.fetch_add(1, Ordering::Relaxed);
                let written = db.rows.fetch_add(1, Ordering::Relaxed) + 1;
                if written.is_multiple_of(250) {
                    println!("  {written} rows written ...");
                }
                Ok::<_, anyhow::Error>(Outputs::none())
            }
        }))
        .register()?;
    let started = Instant::now();
    for entry in &entries[..per_row_rows] {
        flock.publish(entry.clone()).await?;
    }
    flock.run_until_idle().await;
    let per_row_elapsed = started.elapsed();
    flock.shutdown().await;

    // --- what is in the database ---
    let count = |table: &str| -> anyhow::Result<usize> {
        let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
        Ok(usize::try_from(n)?)
    };
    let (in_bulk, in_per_row) = (count("logs_bulk")?, count("logs_per_row")?);
    println!("\nrows written:");
    report("bulk (appender)", &bulk, in_bulk, bulk_elapsed);
    report("one INSERT per row", &per_row, in_per_row, per_row_elapsed);
    let per_row_cost = |db: &Database, rows: usize, elapsed: Duration| {
        let rows = rows.max(1) as f64;
        (db.busy().as_secs_f64() / rows, elapsed.as_secs_f64() / rows)
    };
    let (bulk_db, bulk_e2e) = per_row_cost(&bulk, in_bulk, bulk_elapsed);
    let (row_db, row_e2e) = per_row_cost(&per_row, in_per_row, per_row_elapsed);
    println!(
        "measured speedup of one bulk insert per batch: {:.0}x in DuckDB, {:.0}x end to end \
         (per row written; the bulk end to end includes the {} ms timeout wait)",
        row_db / bulk_db.max(1e-12),
        row_e2e / bulk_e2e.max(1e-12),
        timeout.as_millis()
    );
    let mut stmt = conn
        .prepare("SELECT level, count(*) FROM logs_bulk GROUP BY level ORDER BY count(*) DESC")?;
    let levels = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    println!(
        "SELECT level, count(*) FROM logs_bulk GROUP BY level → {}",
        levels
            .iter()
            .map(|(l, n)| format!("{l} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    drop(stmt);
    drop(conn);
    if keep.is_none() {
        std::fs::remove_dir_all(&dir)?;
    }
    anyhow::ensure!(
        in_bulk == rows && in_per_row == per_row_rows,
        "expected {rows} bulk rows and {per_row_rows} single rows, got {in_bulk} and {in_per_row}"
    );
    Ok(())
}

fn report(what: &str, db: &Database, rows: usize, elapsed: Duration) {
    let busy = db.busy();
    println!(
        "  {what:<19} {rows:>6} rows in {:>5} statement(s): {:>8.1} ms in DuckDB ({:>9.0} rows/s), {:>8.1} ms end to end",
        db.statements.load(Ordering::Relaxed),
        busy.as_secs_f64() * 1000.0,
        rows as f64 / busy.as_secs_f64().max(1e-9),
        elapsed.as_secs_f64() * 1000.0,
    );
}

/// A deterministic stream of application logs, one every 20 ms of log time.
fn log_stream(n: usize) -> Vec<LogEntry> {
    const SOURCES: [&str; 5] = ["api-gateway", "auth", "billing", "search", "worker"];
    const MESSAGES: [(&str, &str); 6] = [
        ("INFO", "request completed"),
        ("INFO", "cache refreshed"),
        ("DEBUG", "connection pool stats"),
        ("WARN", "slow query"),
        ("WARN", "retrying upstream call"),
        ("ERROR", "upstream timed out"),
    ];
    let mut rng = StdRng::seed_from_u64(3);
    (0..n)
        .map(|i| {
            let (level, message) = MESSAGES[rng.random_range(0..MESSAGES.len())];
            let millis = i * 20;
            LogEntry {
                timestamp: format!(
                    "2025-06-01 12:{:02}:{:02}.{:03}",
                    millis / 60_000 % 60,
                    millis / 1000 % 60,
                    millis % 1000
                ),
                level: level.into(),
                message: format!("{message} (request {})", 10_000 + i),
                source: SOURCES[rng.random_range(0..SOURCES.len())].into(),
            }
        })
        .collect()
}
