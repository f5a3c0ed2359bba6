//! The guide's Quick Start: payments batched 25 at a time OR 30 seconds after the
//! first, whichever comes first, to pay the bulk fee ($0.10) instead of the
//! individual fee ($0.30) per transaction.
//!
//! A realistic stream of 110 transactions arrives at random intervals in three
//! waves, so all three flush reasons appear: `size` during bursts, `timeout` during
//! lulls, and `shutdown` for the last partial batch.
//!
//! Run: `cargo run --example payment_batching` (the guide's 30 s timeout: about two
//! minutes), or `cargo run --example payment_batching -- --fast` (a 300 ms timeout
//! and a proportionally faster stream: about two seconds). `--timeout-ms N` sets
//! any timeout; `--seed N` another random stream. `--trace` (or
//! `FLOCK_TRACE_FILE=true`) records every flush, run and publish in
//! `.flock/traces.duckdb`; `cargo xtask traces` then prints the flushes.

use std::{sync::Arc, time::Duration};

use flock::{TraceConfig, prelude::*};
use flock_examples::{Args, Opt};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

const INDIVIDUAL_FEE: f64 = 0.30;
const BATCH_FEE: f64 = 0.10;

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct Transaction {
    transaction_id: String,
    customer_id: String,
    amount: f64,
    payment_method: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct PaymentBatchReport {
    batch_id: String,
    transaction_count: usize,
    total_amount: f64,
    batch_fee: f64,
    savings: f64,
    flush_reason: String,
    waited_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::from_env(
        "The guide's Quick Start: 110 transactions batched 25 at a time or 30 s after the first.",
        &[
            Opt::flag(
                "--fast",
                "a 300 ms timeout and a proportionally faster stream (about 2 s instead of 2 minutes)",
            ),
            Opt::value(
                "--timeout-ms",
                "MS",
                "the batch timeout in milliseconds (default 30000)",
            ),
            Opt::value("--seed", "N", "the random seed of the stream (default 7)"),
            Opt::flag(
                "--trace",
                "record spans in .flock/traces.duckdb (as FLOCK_TRACE_FILE=true)",
            ),
        ],
    );
    let default_timeout = if args.flag("--fast") {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(30)
    };
    let timeout = args.millis("--timeout-ms", default_timeout);
    let seed: u64 = args.value("--seed", 7);

    let flock = if args.flag("--trace") {
        Flock::builder()
            .trace(TraceConfig::new(".flock/traces.duckdb").service_name("payment_batching"))
            .try_build()?
    } else {
        Flock::new() // traces too when FLOCK_TRACE_FILE is set
    };
    flock
        .agent("payment_processor")
        .description(
            "Batches 25 transactions to save $5.00 per batch \
             (bulk discount from $0.30 to $0.10 per transaction)",
        )
        .consumes::<Transaction>(Subscribe::new().batch(BatchSpec::size(25).timeout(timeout)))
        .publishes::<PaymentBatchReport>()
        .with_engine(batch_fn(process_batch))
        .register()?;
    flock
        .agent("ledger")
        .description("Prints every payment batch report")
        .consumes::<PaymentBatchReport>(Subscribe::new())
        .with_engine(map_fn(|_: &EngineContext, r: Arc<PaymentBatchReport>| {
            println!(
                "{:>9} | {:>2} txns | ${:>9.2} | fee ${:>5.2} | saved ${:>5.2} | waited {:>6} ms",
                r.flush_reason,
                r.transaction_count,
                r.total_amount,
                r.batch_fee,
                r.savings,
                r.waited_ms
            );
            Ok::<_, String>(Outputs::none())
        }))
        .register()?;

    println!(
        "payment_processor: BatchSpec(size=25, timeout={} ms); 110 transactions in three waves",
        timeout.as_millis()
    );
    println!(
        "{:>9} | {:>7} | {:>10} | {:>9} | {:>11} | first txn → flush",
        "reason", "batch", "total", "fee", "savings"
    );
    let mut rng = StdRng::seed_from_u64(seed);
    // Within a wave, transactions arrive every 0–1% of the timeout; between waves
    // the stream pauses for 1.5 timeouts, so the partial batch flushes by timeout.
    let gap_max = (timeout / 100).max(Duration::from_micros(50));
    let waves = [60, 38, 12];
    let mut next_id = 0;
    for (i, wave) in waves.into_iter().enumerate() {
        for _ in 0..wave {
            next_id += 1;
            flock
                .publish(Transaction {
                    transaction_id: format!("txn-{next_id:04}"),
                    customer_id: format!("cust-{:03}", rng.random_range(0..200)),
                    amount: (rng.random_range(500..50_000) as f64) / 100.0,
                    payment_method: ["card", "sepa", "wallet"][rng.random_range(0..3)].into(),
                })
                .await?;
            tokio::time::sleep(gap_max.mul_f64(rng.random::<f64>())).await;
        }
        if i + 1 < waves.len() {
            tokio::time::sleep(timeout.mul_f64(1.5)).await;
        }
    }
    flock.run_until_idle().await;
    let pending: usize = flock.active_batches().iter().map(|b| b.items_waiting).sum();
    println!("stream over: {pending} transaction(s) still waiting for their batch; shutting down");
    let shutdown = flock.shutdown().await;
    if let Some(traces) = &shutdown.traces {
        println!(
            "traces: {traces} into {} (see them: cargo xtask traces)",
            flock
                .trace_file()
                .map_or_else(String::new, |p| p.display().to_string())
        );
    }

    let reports = flock.get_by_type::<PaymentBatchReport>().await?;
    let processed: usize = reports.iter().map(|r| r.transaction_count).sum();
    let fees: f64 = reports.iter().map(|r| r.batch_fee).sum();
    println!(
        "{} batches, {processed} of {next_id} transactions processed; fees ${fees:.2} batched vs ${:.2} individually: ${:.2} saved",
        reports.len(),
        processed as f64 * INDIVIDUAL_FEE,
        processed as f64 * (INDIVIDUAL_FEE - BATCH_FEE),
    );
    anyhow::ensure!(
        processed == next_id,
        "lost transactions: {processed} of {next_id} processed"
    );
    Ok(())
}

fn process_batch(
    ctx: &EngineContext,
    batch: Vec<Arc<Transaction>>,
) -> Result<PaymentBatchReport, String> {
    let metrics = ctx
        .batch
        .as_ref()
        .ok_or("payments are only processed in batches")?;
    let count = batch.len();
    Ok(PaymentBatchReport {
        batch_id: format!("batch-{}", batch[0].transaction_id),
        transaction_count: count,
        total_amount: batch.iter().map(|t| t.amount).sum(),
        batch_fee: count as f64 * BATCH_FEE,
        savings: count as f64 * (INDIVIDUAL_FEE - BATCH_FEE),
        flush_reason: metrics.flush_reason.to_string(),
        waited_ms: u64::try_from(metrics.wait.as_millis()).unwrap_or(u64::MAX),
    })
}
