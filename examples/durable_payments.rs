//! The guide's payment agent on a durable blackboard (SQLite): the process is killed
//! half-way with SIGKILL, restarted on the same file, and every transaction is
//! still processed exactly once.
//!
//! Run: `cargo xtask example durable_payments`. It starts itself as a child process
//! that publishes 300 transactions (batched 25 at a time or 200 ms after the first,
//! and checked for fraud one by one), kills the child half-way, starts it again on
//! the same `.flock/` file to recover, and then checks the blackboard: each
//! transaction in exactly one payment batch, each large one in exactly one fraud
//! alert, no output twice.
//!
//! The child's modes, used by the kill test too: `--publish N` (publish N
//! transactions, printing `accepted <id>` for each), `--recover` (recover, finish
//! the work, shut down), `--check` (verify the blackboard, exit 1 on a violation);
//! `--list` (print the stored transactions' ids); `--db PATH` picks the file
//! (default: a fresh one under `.flock/`).

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, bail, ensure};
use flock::{prelude::*, sqlite::SqliteStore};
use flock_examples::{Args, Opt};
use serde::{Deserialize, Serialize};

/// A payment.
#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
pub struct Transaction {
    /// `t<n>`.
    pub transaction_id: String,
    /// In dollars.
    pub amount: f64,
}

/// One bulk payment: the transactions it paid.
#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
pub struct PaymentBatchReport {
    /// The transactions, in arrival order.
    pub transaction_ids: Vec<String>,
    /// Why the batch flushed.
    pub flush_reason: String,
}

/// A large transaction flagged for review.
#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
pub struct FraudAlert {
    /// The transaction.
    pub transaction_id: String,
}

/// Transactions above this amount get a fraud alert.
const LARGE: f64 = 900.0;

/// The amount of transaction `n`: every seventh is large.
fn amount(n: u64) -> f64 {
    if n % 7 == 3 {
        950.0
    } else {
        10.0 + (n % 50) as f64
    }
}

/// The flock of every mode: the same agents on the store at `db`.
fn flock(db: &Path) -> anyhow::Result<Flock> {
    let store = SqliteStore::open(db).with_context(|| format!("opening {}", db.display()))?;
    let flock = Flock::builder().no_trace().store(Arc::new(store)).build();
    flock
        .agent("payment_processor")
        .consumes::<Transaction>(
            Subscribe::new().batch(BatchSpec::size(25).timeout(Duration::from_millis(200))),
        )
        .publishes::<PaymentBatchReport>()
        .with_engine(batch_fn(
            |ctx: &EngineContext, txns: Vec<Arc<Transaction>>| {
                Ok::<_, String>(PaymentBatchReport {
                    transaction_ids: txns.iter().map(|t| t.transaction_id.clone()).collect(),
                    flush_reason: ctx
                        .flush_reason()
                        .map(|r| r.to_string())
                        .unwrap_or_default(),
                })
            },
        ))
        .register()?;
    flock
        .agent("fraud_check")
        .consumes::<Transaction>(Subscribe::new().filter(|t: &Transaction| t.amount > LARGE))
        .publishes::<FraudAlert>()
        .with_engine(map_fn(|_: &EngineContext, txn: Arc<Transaction>| {
            Ok::<_, String>(FraudAlert {
                transaction_id: txn.transaction_id.clone(),
            })
        }))
        .register()?;
    Ok(flock)
}

/// Publishes `n` transactions, printing each accepted id, then finishes the work.
async fn publish(db: &Path, n: u64) -> anyhow::Result<()> {
    let flock = flock(db)?;
    let report = flock.recover().await?;
    ensure!(
        report.artifacts == 0,
        "--publish expects a fresh file; use --recover"
    );
    for i in 0..n {
        let transaction_id = format!("t{i}");
        flock
            .publish(Transaction {
                transaction_id: transaction_id.clone(),
                amount: amount(i),
            })
            .await?;
        println!("accepted {transaction_id}");
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    flock.shutdown().await;
    Ok(())
}

/// Recovers what the killed process left, finishes it, and shuts down.
async fn recover(db: &Path) -> anyhow::Result<()> {
    let flock = flock(db)?;
    let report = flock.recover().await?;
    println!(
        "recovered {} artifact(s) for {} delivery(ies)",
        report.artifacts, report.deliveries
    );
    flock.run_until_idle().await;
    flock.shutdown().await;
    Ok(())
}

/// What the blackboard says happened.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Transactions stored.
    pub transactions: usize,
    /// Times each transaction appears in a payment batch.
    pub paid: BTreeMap<String, usize>,
    /// Times each transaction appears in a fraud alert.
    pub alerted: BTreeMap<String, usize>,
    /// Large transactions.
    pub large: BTreeSet<String>,
}

impl Verdict {
    /// What is wrong, if anything.
    pub fn violations(&self, stored: &BTreeSet<String>) -> Vec<String> {
        let mut wrong = Vec::new();
        for id in stored {
            match self.paid.get(id).copied().unwrap_or(0) {
                1 => {}
                n => wrong.push(format!("{id} paid {n} times")),
            }
            let alerts = self.alerted.get(id).copied().unwrap_or(0);
            let expected = usize::from(self.large.contains(id));
            if alerts != expected {
                wrong.push(format!("{id} alerted {alerts} times, expected {expected}"));
            }
        }
        wrong
    }
}

/// Reads the blackboard at `db`: the stored transactions and what was done with them.
async fn verdict(db: &Path) -> anyhow::Result<(BTreeSet<String>, Verdict)> {
    let flock = flock(db)?;
    let mut verdict = Verdict::default();
    let mut stored = BTreeSet::new();
    for txn in flock.get_by_type::<Transaction>().await? {
        stored.insert(txn.transaction_id.clone());
        if txn.amount > LARGE {
            verdict.large.insert(txn.transaction_id.clone());
        }
    }
    verdict.transactions = stored.len();
    for report in flock.get_by_type::<PaymentBatchReport>().await? {
        for id in &report.transaction_ids {
            *verdict.paid.entry(id.clone()).or_default() += 1;
        }
    }
    for alert in flock.get_by_type::<FraudAlert>().await? {
        *verdict
            .alerted
            .entry(alert.transaction_id.clone())
            .or_default() += 1;
    }
    Ok((stored, verdict))
}

async fn check(db: &Path) -> anyhow::Result<()> {
    let (stored, verdict) = verdict(db).await?;
    let wrong = verdict.violations(&stored);
    if !wrong.is_empty() {
        bail!("{} violation(s): {}", wrong.len(), wrong.join("; "));
    }
    println!(
        "every transaction processed once: {} paid, {} fraud alert(s), no output twice",
        verdict.transactions,
        verdict.large.len()
    );
    Ok(())
}

/// The demo: publish in a child, kill it half-way, recover in another, check.
async fn demo(db: &Path, n: u64) -> anyhow::Result<()> {
    let me = std::env::current_exe()?;
    let mut child = Command::new(&me)
        .args([
            "--db".as_ref(),
            db.as_os_str(),
            "--publish".as_ref(),
            n.to_string().as_ref(),
        ])
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().context("the child's output")?;
    let mut accepted = 0;
    for line in BufReader::new(stdout).lines() {
        if line?.starts_with("accepted ") {
            accepted += 1;
            if accepted == n / 2 {
                child.kill()?;
                break;
            }
        }
    }
    child.wait()?;
    println!("killed the process with SIGKILL after {accepted} accepted transactions");
    let status = Command::new(&me)
        .args(["--db".as_ref(), db.as_os_str(), "--recover".as_ref()])
        .status()?;
    ensure!(status.success(), "recovery failed: {status}");
    check(db).await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::from_env(
        "Payments on a durable blackboard: killed half-way, restarted, every transaction processed once.",
        &[
            Opt::value(
                "--db",
                "PATH",
                "the SQLite file (default: a fresh one under .flock/)",
            ),
            Opt::value("--publish", "N", "publish N transactions (child mode)"),
            Opt::flag(
                "--recover",
                "recover, finish the work and shut down (child mode)",
            ),
            Opt::flag("--check", "verify the blackboard; exit 1 on a violation"),
            Opt::flag("--list", "print the id of every stored transaction"),
        ],
    );
    let db: PathBuf = args.value::<String>("--db", String::new()).into();
    if args.flag("--recover") {
        return recover(&db).await;
    }
    if args.flag("--check") {
        return check(&db).await;
    }
    if args.flag("--list") {
        for txn in flock(&db)?.get_by_type::<Transaction>().await? {
            println!("{}", txn.transaction_id);
        }
        return Ok(());
    }
    let n: u64 = args.value("--publish", 0);
    if n > 0 {
        return publish(&db, n).await;
    }
    let db = if db.as_os_str().is_empty() {
        let db = PathBuf::from(format!(".flock/durable_payments-{}.db", std::process::id()));
        std::fs::create_dir_all(".flock")?;
        db
    } else {
        db
    };
    let result = demo(&db, 300).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    result
}
