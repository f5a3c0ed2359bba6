//! The guide's reference batch engine: `SimpleBatchEngine` collects `BatchItem`s with
//! `BatchSpec::size(3)` and publishes one `BatchSummary` per batch.
//!
//! Run: `cargo run --example simple_batch`

use flock::prelude::*;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    flock_examples::Args::from_env(
        "The guide's reference batch engine: SimpleBatchEngine with BatchSpec::size(3).",
        &[],
    );
    let flock = Flock::new();
    flock
        .agent("simple_batch")
        .description("Summarizes every 3 items")
        .consumes::<BatchItem>(Subscribe::new().batch(BatchSpec::size(3)))
        .publishes::<BatchSummary>()
        .with_engine(SimpleBatchEngine)
        .register()?;

    for value in 1..=7 {
        flock.publish(BatchItem { value }).await?;
    }
    flock.run_until_idle().await;
    println!("after run_until_idle:");
    for summary in flock.get_by_type::<BatchSummary>().await? {
        println!(
            "  BatchSummary {{ batch_size: {}, values: {:?} }}",
            summary.batch_size, summary.values
        );
    }
    for batch in flock.active_batches() {
        println!(
            "  still waiting: {} item(s) for agent '{}' (size trigger {:?})",
            batch.items_waiting,
            batch.agent,
            batch.spec.max_size()
        );
    }

    let report = flock.shutdown().await;
    println!(
        "shutdown flushed {} partial batch(es) with {} item(s):",
        report.batches_flushed, report.artifacts_flushed
    );
    let summaries = flock.get_by_type::<BatchSummary>().await?;
    let last = summaries
        .last()
        .expect("shutdown published the partial batch");
    println!(
        "  BatchSummary {{ batch_size: {}, values: {:?} }}",
        last.batch_size, last.values
    );
    let total: usize = summaries.iter().map(|s| s.batch_size).sum();
    anyhow::ensure!(total == 7, "expected all 7 items summarized, got {total}");
    Ok(())
}
