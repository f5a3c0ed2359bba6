//! The operations dashboard over a live flock: the guide's payment batching agent
//! (25 transactions OR a timeout, whichever first) under steady simulated traffic,
//! a fraud review that sometimes fails (failed runs, with a retry button), and the
//! server: JSON API, live events, Prometheus metrics, the dashboard in the browser.
//!
//! Run: `cargo xtask example dashboard` and open the URL it prints; Ctrl-C (or
//! SIGTERM) stops accepting requests, flushes the partial batches with reason
//! `shutdown`, and exits. Flags: `--port N` (default 8344; 0 for any free port),
//! `--timeout-ms N` (default 5000), `--rate N` transactions per second (default
//! 12; 0 for none: publish over HTTP instead), `--duration-ms N` to stop by itself after N ms (what `cargo xtask examples`
//! does), `--token T` to require `Authorization: Bearer T` (open the dashboard at
//! `/#token=T`).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use flock::prelude::*;
use flock_examples::{Args, Opt};
use flock_server::{Server, ServerConfig};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct Transaction {
    transaction_id: String,
    customer_id: String,
    amount: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct PaymentBatchReport {
    transaction_count: usize,
    total_amount: f64,
    flush_reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct FraudVerdict {
    reviewed: usize,
    flagged: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::from_env(
        "The operations dashboard over the payment batching agent under steady traffic.",
        &[
            Opt::value(
                "--port",
                "N",
                "the port to serve on (default 8344; 0 for any free port)",
            ),
            Opt::value(
                "--timeout-ms",
                "N",
                "the batch timeout in milliseconds (default 5000)",
            ),
            Opt::value(
                "--rate",
                "N",
                "transactions per second (default 12; 0 for none: publish over HTTP instead)",
            ),
            Opt::value("--duration-ms", "N", "stop by itself after N milliseconds"),
            Opt::value(
                "--token",
                "T",
                "require `Authorization: Bearer T` (dashboard at /#token=T)",
            ),
        ],
    );
    let port: u16 = args.value("--port", flock_server::DEFAULT_PORT);
    let timeout = args.millis("--timeout-ms", Duration::from_secs(5));
    let rate: f64 = args.value("--rate", 12.0);
    anyhow::ensure!(
        rate >= 0.0,
        "--rate must be 0 (no traffic) or more, got {rate}"
    );
    let duration: Option<u64> = match args.value("--duration-ms", 0u64) {
        0 => None,
        ms => Some(ms),
    };

    let flock = Flock::new();
    flock
        .agent("payment_processor")
        .description("Batches 25 transactions to pay the bulk fee")
        .consumes::<Transaction>(Subscribe::new().batch(BatchSpec::size(25).timeout(timeout)))
        .publishes::<PaymentBatchReport>()
        .with_engine(batch_fn(
            |ctx: &EngineContext, txns: Vec<Arc<Transaction>>| {
                Ok::<_, String>(PaymentBatchReport {
                    transaction_count: txns.len(),
                    total_amount: txns.iter().map(|t| t.amount).sum(),
                    flush_reason: ctx
                        .flush_reason()
                        .map(|r| r.to_string())
                        .unwrap_or_default(),
                })
            },
        ))
        .register()?;
    flock
        .agent("fraud_review")
        .description("Reviews large transactions in threes; the reviewer fails on big totals")
        .consumes::<Transaction>(
            Subscribe::new()
                .filter(|t: &Transaction| t.amount > 400.0)
                .batch(BatchSpec::size(3).timeout(timeout * 2)),
        )
        .publishes::<FraudVerdict>()
        .with_engine(batch_fn(
            |_: &EngineContext, txns: Vec<Arc<Transaction>>| {
                let total: f64 = txns.iter().map(|t| t.amount).sum();
                if total > 1_400.0 {
                    return Err(format!("fraud service timed out on ${total:.2}"));
                }
                Ok(FraudVerdict {
                    reviewed: txns.len(),
                    flagged: txns.iter().filter(|t| t.amount > 480.0).count(),
                })
            },
        ))
        .register()?;

    let mut config = ServerConfig::new().bind(SocketAddr::from(([127, 0, 0, 1], port)));
    if let Some(token) =
        Some(args.value::<String>("--token", String::new())).filter(|t| !t.is_empty())
    {
        config = config.operator_token(token)?;
    }
    let listening = Server::new(flock.clone(), config).bind().await?;
    println!(
        "dashboard: {} (BatchSpec size 25, timeout {} ms; {rate} transactions/s; Ctrl-C to stop)",
        listening.url(),
        timeout.as_millis()
    );

    let traffic = tokio::spawn(simulate(flock.clone(), rate, timeout));
    if rate == 0.0 {
        traffic.abort();
    }
    let report = match duration {
        Some(ms) => {
            listening
                .run_until(tokio::time::sleep(Duration::from_millis(ms)))
                .await?
        }
        None => listening.run().await?,
    };
    traffic.abort();
    println!(
        "shutdown: {} partial batch(es) with {} transaction(s) flushed with reason `shutdown`",
        report.batches_flushed, report.artifacts_flushed
    );
    let reports = flock.get_by_type::<PaymentBatchReport>().await?;
    let processed: usize = reports.iter().map(|r| r.transaction_count).sum();
    let published = flock.get_by_type::<Transaction>().await?.len();
    println!(
        "{} payment batches, {processed} of {published} transactions processed; {} failed fraud review(s)",
        reports.len(),
        flock.failed_runs().len()
    );
    anyhow::ensure!(processed == published, "lost transactions");
    Ok(())
}

/// Steady traffic in waves: `rate` transactions a second on average for a while
/// (batches flush by size), then a lull longer than the timeout (the partial
/// batch flushes by timeout).
async fn simulate(flock: Flock, rate: f64, timeout: Duration) {
    let mut rng = StdRng::seed_from_u64(15);
    let wave = (rate * timeout.as_secs_f64()).max(1.0) as u64;
    for n in 1.. {
        if n % wave == 0 {
            tokio::time::sleep(timeout.mul_f64(1.3)).await;
        }
        let txn = Transaction {
            transaction_id: format!("txn-{n:05}"),
            customer_id: format!("cust-{:03}", rng.random_range(0..200)),
            amount: f64::from(rng.random_range(500..50_000_u32)) / 100.0,
        };
        if flock.publish(txn).await.is_err() {
            return; // shut down
        }
        let gap = rng.random::<f64>() * 2.0 / rate;
        tokio::time::sleep(Duration::from_secs_f64(gap)).await;
    }
}
