//! The guide's "BatchSpec + Visibility": events of three tenants are batched
//! together, but each per-tenant report is published visible only to its tenant
//! (the visibility is computed from each output, like Python Flock's
//! `TenantVisibility(tenant_id_extractor=lambda r: r.tenant_id)`).
//! One reader agent per tenant shows that each sees its own reports and no other.
//!
//! Run: `cargo run --example tenant_batching`

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use flock::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct Event {
    tenant_id: String,
    kind: String,
    amount: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct BatchReport {
    tenant_id: String,
    events: usize,
    total: f64,
    flush_reason: String,
}

const TENANTS: [&str; 3] = ["acme", "globex", "initech"];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    flock_examples::Args::from_env(
        "The guide's \"BatchSpec + Visibility\": one batch across three tenants, each report visible to its tenant only.",
        &[],
    );
    let flock = Flock::new();
    flock
        .agent("tenant_batch")
        .description(
            "Batches events of every tenant; reports per tenant, visible to that tenant only",
        )
        .consumes::<Event>(
            Subscribe::new().batch(BatchSpec::size(50).timeout(Duration::from_millis(200))),
        )
        // One report per tenant present in the batch: any number per run.
        .publishes_many_with(|r: &BatchReport| Visibility::tenant(r.tenant_id.clone()))
        .with_engine(batch_fn(report_per_tenant))
        .register()?;

    let seen: Arc<seen::Seen> = Arc::default();
    for tenant in TENANTS {
        let seen = seen.clone();
        flock
            .agent(format!("{tenant}_dashboard"))
            .tenant(tenant)
            .consumes::<BatchReport>(Subscribe::new())
            .with_engine(map_fn(move |ctx: &EngineContext, r: Arc<BatchReport>| {
                seen.record(&ctx.agent, &r);
                Ok::<_, String>(Outputs::none())
            }))
            .register()?;
    }

    // 120 events, tenants interleaved: batches of 50 mix tenants; the last 20 flush by timeout.
    for i in 0..120 {
        let tenant = TENANTS[(i * 7 + i / 5) % 3];
        flock
            .publish(Event {
                tenant_id: tenant.into(),
                kind: ["signup", "purchase", "refund"][i % 3].into(),
                amount: (i % 17) as f64 * 3.5,
            })
            .await?;
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    flock.run_until_idle().await;
    flock.shutdown().await;

    println!("what each tenant's dashboard agent received:");
    for (agent, reports) in seen.snapshot() {
        let tenants: Vec<&str> = reports.iter().map(|(t, _, _)| t.as_str()).collect();
        println!(
            "  {agent:<18} {} report(s), tenants seen: {tenants:?}",
            reports.len()
        );
        for (tenant, events, reason) in &reports {
            println!("      {tenant}: {events} events ({reason} flush)");
        }
        anyhow::ensure!(
            reports
                .iter()
                .all(|(t, _, _)| agent.starts_with(t.as_str())),
            "{agent} saw another tenant's report"
        );
    }
    println!("what the store returns to a user query per tenant identity:");
    for tenant in TENANTS {
        let identity = AgentIdentity::new("analyst").with_tenant(tenant);
        let visible = flock
            .query_as(&identity, ArtifactFilter::new().type_name("BatchReport"))
            .await?;
        println!("  tenant {tenant:<8} sees {} report(s)", visible.len());
    }
    let all = flock
        .query(&ArtifactFilter::new().type_name("BatchReport"))
        .await?;
    println!("  (an unscoped admin query sees all {} reports)", all.len());
    Ok(())
}

fn report_per_tenant(ctx: &EngineContext, events: Vec<Arc<Event>>) -> Result<Outputs, String> {
    let reason = ctx
        .flush_reason()
        .map(|r| r.to_string())
        .unwrap_or_default();
    let mut per_tenant: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
    for event in &events {
        let entry = per_tenant.entry(&event.tenant_id).or_default();
        entry.0 += 1;
        entry.1 += event.amount;
    }
    Ok(per_tenant
        .into_iter()
        .map(|(tenant, (events, total))| BatchReport {
            tenant_id: tenant.to_owned(),
            events,
            total,
            flush_reason: reason.clone(),
        })
        .collect())
}

mod seen {
    //! A tiny shared record of what each dashboard received.
    use std::{collections::BTreeMap, sync::Mutex};

    use super::BatchReport;

    type Received = Vec<(String, usize, String)>;

    #[derive(Default)]
    pub(super) struct Seen(Mutex<BTreeMap<String, Received>>);

    impl Seen {
        pub(super) fn record(&self, agent: &str, r: &BatchReport) {
            let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
            seen.entry(agent.to_owned()).or_default().push((
                r.tenant_id.clone(),
                r.events,
                r.flush_reason.clone(),
            ));
        }

        pub(super) fn snapshot(&self) -> BTreeMap<String, Received> {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
        }
    }
}
