//! The guide's "BatchSpec + Predicates": only orders over $1,000 are batched, 10 at a
//! time (or 5 minutes after the first). The predicate runs **before** the batch:
//! other orders never enter it, never count toward its size, and are never held.
//!
//! The simulation: 300 orders arrive about every 1.5 seconds, roughly one in six of
//! them over $1,000; full batches of 10 flush by size, and the last VIP orders flush
//! when their 5-minute timeout ends. An `order_log` agent without a predicate sees
//! every order, for comparison. Time runs 600× faster by default (about 2 seconds;
//! the 5-minute timeout takes 500 ms).
//!
//! Run: `cargo run --example vip_orders`; `-- --speed N` for another time factor,
//! `-- --seed N` for other orders.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use flock::prelude::*;
use flock_examples::{Args, Opt};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

const ORDERS: usize = 300;
const VIP_THRESHOLD: f64 = 1000.0;

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct Order {
    order_id: String,
    customer_id: String,
    amount: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
#[flock(name = "VIPBatchReport")]
struct VipBatchReport {
    orders: usize,
    total: f64,
    largest: f64,
    order_ids: Vec<String>,
    flush_reason: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::from_env(
        "The guide's \"BatchSpec + Predicates\": only orders over $1,000 are batched, 10 at a time.",
        &[
            Opt::value(
                "--speed",
                "N",
                "simulated time runs N times faster than real time (default 600)",
            ),
            Opt::value("--seed", "N", "the random seed (default 21)"),
        ],
    );
    let speed: f64 = args.value("--speed", 600.0);
    let seed: u64 = args.value("--seed", 21);
    anyhow::ensure!(speed > 0.0, "--speed must be positive, got {speed}");
    let sim = |seconds: f64| Duration::from_secs_f64(seconds / speed);
    let start = Instant::now();
    let sim_now = move || start.elapsed().as_secs_f64() * speed;

    let flock = Flock::new();
    flock
        .agent("vip_batch")
        .description("Hands orders over $1,000 to the VIP desk, 10 at a time")
        .consumes::<Order>(
            Subscribe::new()
                .filter(|o: &Order| o.amount > VIP_THRESHOLD) // filter first
                .batch(BatchSpec::size(10).timeout(sim(5.0 * 60.0))), // then batch
        )
        .publishes::<VipBatchReport>()
        .with_engine(batch_fn(|ctx: &EngineContext, orders: Vec<Arc<Order>>| {
            let metrics = ctx.batch_metrics()?;
            Ok::<_, EngineError>(VipBatchReport {
                orders: orders.len(),
                total: orders.iter().map(|o| o.amount).sum(),
                largest: orders.iter().map(|o| o.amount).fold(0.0, f64::max),
                order_ids: orders.iter().map(|o| o.order_id.clone()).collect(),
                flush_reason: metrics.flush_reason.to_string(),
            })
        }))
        .register()?;
    let logged = Arc::new(AtomicUsize::new(0));
    let counter = logged.clone();
    flock
        .agent("order_log")
        .description("Sees every order, one at a time (no predicate, no batch)")
        .consumes::<Order>(Subscribe::new())
        .with_engine(map_fn(move |_: &EngineContext, _o: Arc<Order>| {
            counter.fetch_add(1, Ordering::Relaxed);
            Ok::<_, String>(Outputs::none())
        }))
        .register()?;
    flock
        .agent("vip_desk")
        .consumes::<VipBatchReport>(Subscribe::new())
        .with_engine(map_fn(move |_: &EngineContext, r: Arc<VipBatchReport>| {
            println!(
                "  [{}] VIPBatchReport ({:<7} flush): {:>2} orders, ${:>9.2} total, largest ${:>8.2}  [{} … {}]",
                mmss(sim_now()),
                r.flush_reason,
                r.orders,
                r.total,
                r.largest,
                r.order_ids.first().map_or("", String::as_str),
                r.order_ids.last().map_or("", String::as_str),
            );
            Ok::<_, String>(Outputs::none())
        }))
        .register()?;

    println!(
        "vip_orders: {ORDERS} orders; vip_batch: filter amount > $1,000, then BatchSpec(size=10, timeout=5 min)"
    );
    println!(
        "time runs {speed}x faster (the timeout takes {} ms)\n",
        sim(300.0).as_millis()
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let mut at = 0.0;
    let mut vip = 0;
    for i in 1..=ORDERS {
        at += rng.random_range(0.5..2.5);
        tokio::time::sleep_until((start + sim(at)).into()).await;
        let amount = if rng.random::<f64>() < 0.16 {
            rng.random_range(1_000.01..9_000.0)
        } else {
            rng.random_range(15.0..950.0)
        };
        if amount > VIP_THRESHOLD {
            vip += 1;
        }
        flock
            .publish(Order {
                order_id: format!("ord-{i:04}"),
                customer_id: format!("cust-{:03}", rng.random_range(0..120)),
                amount: (amount * 100.0_f64).round() / 100.0,
            })
            .await?;
        if i == ORDERS / 2 {
            let waiting: usize = flock.active_batches().iter().map(|b| b.items_waiting).sum();
            println!(
                "  [{}] {i} orders published, {vip} of them VIP; the batch holds {waiting} (only VIP orders enter it)",
                mmss(sim_now())
            );
        }
    }
    flock.run_until_idle().await;
    for batch in flock.active_batches() {
        println!(
            "  [{}] stream over: {} VIP order(s) wait; the timeout flushes them in {:.0} s (simulated)",
            mmss(sim_now()),
            batch.items_waiting,
            batch.time_left.unwrap_or_default().as_secs_f64() * speed
        );
        tokio::time::sleep(batch.time_left.unwrap_or_default()).await;
    }
    flock.run_until_idle().await;
    flock.shutdown().await;

    let reports = flock.get_by_type::<VipBatchReport>().await?;
    let batched: usize = reports.iter().map(|r| r.orders).sum();
    let by_size = reports.iter().filter(|r| r.flush_reason == "size").count();
    println!(
        "\n{ORDERS} orders published; order_log saw {}; {vip} over $1,000 entered vip_batch and {} never did",
        logged.load(Ordering::Relaxed),
        ORDERS - vip
    );
    println!(
        "{} VIP batch reports ({by_size} by size, {} by timeout) covering {batched} orders",
        reports.len(),
        reports.len() - by_size
    );
    anyhow::ensure!(batched == vip, "{batched} batched, {vip} VIP orders");
    Ok(())
}

fn mmss(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    format!("{:02}:{:02}", s / 60, s % 60)
}
