//! The guide's "Monitor batch efficiency": every batch engine gets its batch's figures
//! (`batch_size`, `flush_reason`, `efficiency`, the configured triggers, the wait) in
//! one line, `ctx.batch_metrics()?`, and can publish them as a `BatchMetrics`
//! artifact next to its real output. A `batch_monitor` agent consumes them, prints
//! each flush, and suggests how to tune the `BatchSpec`.
//!
//! The simulation: an `email_sender` agent sends notifications through a bulk email
//! API 50 at a time (timeout 30 s). For a minute, 600 notifications a minute arrive
//! (full batches, flushed by size); then traffic drops to 40 a minute for two minutes
//! (partial batches, flushed by the timeout). Time runs 100× faster by default
//! (about 2 seconds; the 30-second timeout takes 300 ms).
//!
//! Run: `cargo run --example batch_metrics`; `-- --speed N` for another time factor.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use flock::prelude::*;
use flock_examples::{Args, Opt};
use serde::{Deserialize, Serialize};

const SIZE: usize = 50;
/// Notifications per simulated minute, and for how many minutes.
const TRAFFIC: [(f64, f64); 2] = [(600.0, 1.0), (40.0, 2.0)];

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct Notification {
    user_id: u32,
    template: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct EmailBatchReceipt {
    sent: usize,
    api_calls: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::from_env(
        "The guide's \"Monitor batch efficiency\": every flush's BatchMetrics, printed by a monitor agent.",
        &[Opt::value(
            "--speed",
            "N",
            "simulated time runs N times faster than real time (default 100)",
        )],
    );
    let speed: f64 = args.value("--speed", 100.0);
    anyhow::ensure!(speed > 0.0, "--speed must be positive, got {speed}");
    let sim = |seconds: f64| Duration::from_secs_f64(seconds / speed);
    let start = Instant::now();
    let sim_now = move || start.elapsed().as_secs_f64() * speed;

    let flock = Flock::new();
    flock
        .agent("email_sender")
        .description("Sends notifications through the bulk email API, 50 per call")
        .consumes::<Notification>(Subscribe::new().batch(BatchSpec::size(SIZE).timeout(sim(30.0))))
        .publishes::<EmailBatchReceipt>()
        .publishes::<BatchMetrics>()
        .with_engine(batch_fn(
            |ctx: &EngineContext, batch: Vec<Arc<Notification>>| {
                // ... one call to the bulk email API with the whole batch ...
                let mut outputs = Outputs::one(EmailBatchReceipt {
                    sent: batch.len(),
                    api_calls: 1,
                });
                outputs.push(ctx.batch_metrics()?.clone()); // the BatchMetrics pattern: one line
                Ok::<_, EngineError>(outputs)
            },
        ))
        .register()?;

    let seen: Arc<Mutex<Vec<BatchMetrics>>> = Arc::default();
    let record = seen.clone();
    flock
        .agent("batch_monitor")
        .description("Tracks the efficiency of every batch to tune BatchSpecs")
        .consumes::<BatchMetrics>(Subscribe::new())
        .with_engine(map_fn(move |_: &EngineContext, m: Arc<BatchMetrics>| {
            // Its wait is real time here; in simulated seconds it reads as the guide's.
            let mut shown = (*m).clone();
            shown.wait = shown.wait.mul_f64(speed);
            println!("  [{}] email_sender: {shown}", mmss(sim_now()));
            record.lock().unwrap_or_else(|e| e.into_inner()).push(shown);
            Ok::<_, String>(Outputs::none())
        }))
        .register()?;

    println!(
        "batch_metrics: email_sender BatchSpec(size={SIZE}, timeout=30 s); 600 notifications/min for 1 min, then 40/min for 2 min"
    );
    println!("time runs {speed}x faster; batch_monitor prints each batch's BatchMetrics:\n");
    let mut at = 0.0;
    let mut user_id = 0;
    for (per_minute, minutes) in TRAFFIC {
        let gap = 60.0 / per_minute;
        for _ in 0..(per_minute * minutes) as usize {
            tokio::time::sleep_until((start + sim(at)).into()).await;
            user_id += 1;
            flock
                .publish(Notification {
                    user_id,
                    template: "order-shipped".into(),
                })
                .await?;
            at += gap;
        }
    }
    flock.run_until_idle().await;
    for batch in flock.active_batches() {
        tokio::time::sleep(batch.time_left.unwrap_or_default()).await;
    }
    flock.run_until_idle().await;
    flock.shutdown().await;

    let metrics = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut by_reason: BTreeMap<String, Vec<&BatchMetrics>> = BTreeMap::new();
    for m in &metrics {
        by_reason
            .entry(m.flush_reason.to_string())
            .or_default()
            .push(m);
    }
    println!("\nefficiency by flush reason:");
    for (reason, batches) in &by_reason {
        let n = batches.len() as f64;
        let items: usize = batches.iter().map(|m| m.batch_size).sum();
        println!(
            "  {reason:<8} {:>3} batches, {items:>4} notifications, mean efficiency {:>3.0}%, mean wait {:>4.1} s",
            batches.len(),
            100.0 * batches.iter().map(|m| m.efficiency).sum::<f64>() / n,
            batches.iter().map(|m| m.wait.as_secs_f64()).sum::<f64>() / n,
        );
    }
    let sent: usize = flock
        .get_by_type::<EmailBatchReceipt>()
        .await?
        .iter()
        .map(|r| r.sent)
        .sum();
    println!(
        "{sent} notifications sent in {} API calls (one per notification would be {user_id})",
        metrics.len()
    );
    if let Some(timeouts) = by_reason.get("timeout") {
        let items = timeouts.iter().map(|m| m.batch_size).sum::<usize>();
        let efficiency = timeouts.iter().map(|m| m.efficiency).sum::<f64>() / timeouts.len() as f64;
        println!(
            "tuning: in the quiet minutes batches flush by timeout at {:.0}% (about {} of {SIZE}) after 30 s; \
             a longer timeout buys efficiency with latency, a smaller size buys latency with API calls; \
             either way partial batches always flush, none is lost",
            efficiency * 100.0,
            items / timeouts.len()
        );
    }
    anyhow::ensure!(sent == user_id as usize, "{sent} of {user_id} sent");
    Ok(())
}

fn mmss(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    format!("{:02}:{:02}", s / 60, s % 60)
}
