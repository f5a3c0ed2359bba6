//! Several processes on one PostgreSQL blackboard: a cluster of workers that share
//! the agents' units of work through leases, and take over the units of a worker
//! that stops or dies.
//!
//! Two agents run in every worker. `invoicer` batches orders per customer
//! (`keyed_by`, 25 orders or 500 ms): its keys are spread over 16 partitions, each
//! a unit of work. `shipper` joins each order with its payment and ships 50 pairs
//! at a time: a join is one unit (a group's members must meet in one process). The
//! demo starts three workers (this program with `--role worker`), publishes orders
//! and payments, stops one worker half-way and shows its partitions moving to the
//! others, then checks that every order was invoiced once and shipped once.
//!
//! PostgreSQL: `--url`, else `FLOCK_POSTGRES_URL`. `cargo xtask example cluster`
//! starts a throw-away server (Debian's `postgresql` package) and sets it.
//!
//! Roles (`--role`): `demo` (the default, above); `worker` (one process of the
//! cluster until SIGTERM or SIGINT: it prints the units it owns whenever they
//! change); `publish` (publishes `--orders` orders and their payments, then exits).
//! The failover test (`examples/tests/cluster_failover.rs`) runs workers and a
//! publisher as separate processes and kills a worker with SIGKILL.

#[path = "cluster/demo.rs"]
mod demo;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use flock::{
    Cluster,
    core::{Artifact, BlackboardStore, Payload, TypeRegistry},
    postgres::PostgresStore,
    prelude::*,
};
use flock_examples::{Args, Opt};
use serde::{Deserialize, Serialize};

/// An order; `customer` keys the invoice batches.
#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
#[flock(name = "cluster.Order")]
pub(crate) struct Order {
    /// The order's number (0, 1, 2, …, in publishing order).
    pub(crate) id: u64,
    /// The customer, `id % customers`.
    pub(crate) customer: u32,
}

/// The payment of an order.
#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
#[flock(name = "cluster.Payment")]
pub(crate) struct Payment {
    /// The order paid.
    pub(crate) order: u64,
}

/// One invoice per batch of a customer's orders.
#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
#[flock(name = "cluster.Invoice")]
pub(crate) struct Invoice {
    /// The customer.
    pub(crate) customer: u32,
    /// Its orders, in arrival order.
    pub(crate) orders: Vec<u64>,
    /// The worker that ran the batch.
    pub(crate) worker: String,
}

/// One shipment per batch of paid orders.
#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
#[flock(name = "cluster.Shipment")]
pub(crate) struct Shipment {
    /// The orders shipped, in the order their pairs completed.
    pub(crate) orders: Vec<u64>,
    /// The worker that ran the batch.
    pub(crate) worker: String,
}

/// The command line every role shares.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) url: String,
    pub(crate) schema: String,
    pub(crate) lease: Duration,
    pub(crate) partitions: u32,
    pub(crate) orders: u64,
    pub(crate) customers: u32,
    pub(crate) rate: u64,
    pub(crate) invoice_batch: usize,
    pub(crate) ship_batch: usize,
    pub(crate) work: Duration,
}

const OPTS: &[Opt] = &[
    Opt::value(
        "--role",
        "ROLE",
        "demo (default), worker or publish; see the top of examples/cluster.rs",
    ),
    Opt::value(
        "--url",
        "URL",
        "PostgreSQL (default: $FLOCK_POSTGRES_URL), e.g. postgres://postgres@127.0.0.1:5432/postgres",
    ),
    Opt::value(
        "--schema",
        "NAME",
        "the PostgreSQL schema the cluster shares (default: cluster_demo_<pid> for the demo, which drops it at the end)",
    ),
    Opt::value(
        "--name",
        "NAME",
        "worker: this process's name in the cluster",
    ),
    Opt::value(
        "--lease-ms",
        "N",
        "a dead worker's units are taken over within N ms (default 3000)",
    ),
    Opt::value(
        "--partitions",
        "N",
        "partitions of the invoicer's keys (default 16)",
    ),
    Opt::value(
        "--orders",
        "N",
        "orders to publish, each with its payment (default 3000)",
    ),
    Opt::value("--customers", "N", "customers (default 100)"),
    Opt::value(
        "--rate",
        "N",
        "artifacts published per second (default 2000; 0: as fast as possible)",
    ),
    Opt::value(
        "--invoice-batch",
        "N",
        "orders per invoice at most (default 25)",
    ),
    Opt::value(
        "--ship-batch",
        "N",
        "pairs per shipment at most (default 50)",
    ),
    Opt::value(
        "--work-ms",
        "N",
        "simulated IO per invoice batch, e.g. a remote call (default 0)",
    ),
    Opt::value("--workers", "N", "demo: worker processes (default 3)"),
    Opt::value(
        "--stop",
        "HOW",
        "demo: how one worker is stopped half-way: term (SIGTERM, default), kill (SIGKILL) or none",
    ),
];

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::from_env(
        "Several processes on one PostgreSQL blackboard: partitions move when a worker stops.",
        OPTS,
    );
    let role: String = args.value("--role", "demo".to_owned());
    let url = args.value(
        "--url",
        std::env::var("FLOCK_POSTGRES_URL").unwrap_or_default(),
    );
    anyhow::ensure!(
        !url.is_empty(),
        "no PostgreSQL: pass --url or set FLOCK_POSTGRES_URL (`cargo xtask example cluster` starts a \
         throw-away server; `cargo xtask postgres start` starts one and prints its URL)"
    );
    let default_schema = format!("cluster_demo_{}", std::process::id());
    let config = Config {
        url,
        schema: args.value("--schema", default_schema),
        lease: args.millis("--lease-ms", Duration::from_secs(3)),
        partitions: args.value("--partitions", 16),
        orders: args.value("--orders", 3000),
        customers: args.value("--customers", 100),
        rate: args.value("--rate", 2000),
        invoice_batch: args.value("--invoice-batch", 25),
        ship_batch: args.value("--ship-batch", 50),
        work: args.millis("--work-ms", Duration::ZERO),
    };
    anyhow::ensure!(config.customers > 0, "--customers must be positive");
    match role.as_str() {
        "worker" => {
            let name: String = args.value("--name", format!("worker-{}", std::process::id()));
            worker(&config, &name).await
        }
        "publish" => publish(&config, None).await.map(|_| ()),
        "demo" => {
            let workers: usize = args.value("--workers", 3);
            let stop: String = args.value("--stop", "term".to_owned());
            // The demo drops the schema at the end only if it made up its name.
            let own_schema = config.schema.starts_with("cluster_demo_");
            demo::run(&config, workers, &stop, own_schema).await
        }
        other => anyhow::bail!("unknown --role {other}: demo, worker or publish"),
    }
}

/// A store on the cluster's schema, decoding this example's types.
pub(crate) async fn connect(config: &Config) -> Result<Arc<PostgresStore>> {
    let types = TypeRegistry::new();
    types.register::<Order>()?;
    types.register::<Payment>()?;
    types.register::<Invoice>()?;
    types.register::<Shipment>()?;
    let store = PostgresStore::builder(&config.url)
        .schema(config.schema.clone())
        .types(types)
        .connect()
        .await
        .with_context(|| format!("cannot use PostgreSQL at {}", config.url))?;
    Ok(Arc::new(store))
}

/// What a worker did, counted as its runs commit.
#[derive(Default)]
struct Done {
    invoices: AtomicUsize,
    shipments: AtomicUsize,
}

/// One process of the cluster: the two agents, until SIGTERM or SIGINT.
async fn worker(config: &Config, name: &str) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};

    // What the cluster driver logs (units moving, takeovers) goes to stderr, with
    // the worker's name: RUST_LOG=flock=info shows it (default: warnings).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let store = connect(config).await?;
    let cluster = Cluster::new(store)
        .process(name)
        .lease(config.lease)?
        .partitions(config.partitions)?;
    let flock = Flock::builder().cluster(cluster).build();
    let done = Arc::new(Done::default());
    register_agents(&flock, config, name, &done)?;
    // Joins the cluster: the driver starts taking units.
    flock.recover().await?;
    println!("{name}: ready");
    let mut owned = Vec::new();
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        let now = flock.owned_units();
        if now != owned {
            println!("{name}: owns {} unit(s): {}", now.len(), compact(&now));
            owned = now;
        }
    }
    println!("{name}: stopping");
    let report = flock.shutdown().await;
    println!(
        "{name}: stopped after {} invoice(s) and {} shipment(s); {} partial batch(es) flushed at shutdown",
        done.invoices.load(Ordering::Relaxed),
        done.shipments.load(Ordering::Relaxed),
        report.batches_flushed,
    );
    Ok(())
}

/// The agents every worker runs.
fn register_agents(flock: &Flock, config: &Config, name: &str, done: &Arc<Done>) -> Result<()> {
    let (worker, counts, work) = (name.to_owned(), done.clone(), config.work);
    flock
        .agent("invoicer")
        .description("Invoices each customer's orders, 25 at a time")
        .consumes::<Order>(
            Subscribe::new()
                .keyed_by(|o: &Order| o.customer)
                .batch(BatchSpec::size(config.invoice_batch).timeout(Duration::from_millis(500))),
        )
        .publishes::<Invoice>()
        .with_engine(batch_fn_async(
            move |_: EngineContext, orders: Vec<Arc<Order>>| {
                let (worker, counts) = (worker.clone(), counts.clone());
                async move {
                    if !work.is_zero() {
                        tokio::time::sleep(work).await;
                    }
                    counts.invoices.fetch_add(1, Ordering::Relaxed);
                    Ok::<_, String>(Invoice {
                        customer: orders.first().map_or(0, |o| o.customer),
                        orders: orders.iter().map(|o| o.id).collect(),
                        worker,
                    })
                }
            },
        ))
        .register()?;
    let (worker, counts) = (name.to_owned(), done.clone());
    flock
        .agent("shipper")
        .description("Ships paid orders: each order joined with its payment, 50 pairs at a time")
        .consumes_all(
            AllOf::new()
                .of::<Order>()
                .of::<Payment>()
                .join(
                    JoinSpec::by(|o: &Order| o.id)
                        .by(|p: &Payment| p.order)
                        .within(Duration::from_secs(3600)),
                )
                .batch(BatchSpec::size(config.ship_batch).timeout(Duration::from_millis(500))),
        )
        .publishes::<Shipment>()
        .with_engine(group_batch_fn(
            move |_: &EngineContext, pairs: Vec<Inputs>| {
                let orders = pairs
                    .iter()
                    .map(|pair| pair.get::<Order>().map(|o| o.id))
                    .collect::<Option<Vec<u64>>>()
                    .ok_or("a pair without its order")?;
                counts.shipments.fetch_add(1, Ordering::Relaxed);
                Ok::<_, String>(Shipment {
                    orders,
                    worker: worker.clone(),
                })
            },
        ))
        .register()?;
    Ok(())
}

/// Units as `invoicer[0 3 5] shipper`: each agent once, with its partitions.
fn compact(units: &[String]) -> String {
    let mut agents: Vec<(String, Vec<u32>)> = Vec::new();
    for unit in units {
        let mut parts = unit.splitn(3, '/');
        let agent = parts.next().unwrap_or_default().to_owned();
        let partition = parts.nth(1).and_then(|p| p.parse().ok());
        match agents.iter_mut().find(|(a, _)| *a == agent) {
            Some((_, partitions)) => partitions.extend(partition),
            None => agents.push((agent, partition.into_iter().collect())),
        }
    }
    if agents.is_empty() {
        return "none".to_owned();
    }
    agents
        .into_iter()
        .map(|(agent, mut partitions)| {
            if partitions.is_empty() {
                agent
            } else {
                partitions.sort_unstable();
                let partitions: Vec<String> = partitions.iter().map(u32::to_string).collect();
                format!("{agent}[{}]", partitions.join(" "))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Publishes the orders and their payments in store transactions of up to 500
/// artifacts, paced at `--rate`; each order's payment follows a chunk later (so
/// joins wait for their second half). Counts the artifacts published so far in
/// `progress`. Returns the time it took.
pub(crate) async fn publish(config: &Config, progress: Option<Arc<AtomicU64>>) -> Result<Duration> {
    let store = connect(config).await?;
    let chunk = 250_u64;
    let start = Instant::now();
    let mut published = 0_u64;
    let mut first = 0;
    while first < config.orders + chunk {
        let mut artifacts = Vec::new();
        for id in first..(first + chunk).min(config.orders) {
            let customer = u32::try_from(id % u64::from(config.customers)).expect("fits");
            artifacts.push(artifact(Order { id, customer }));
        }
        for order in first.saturating_sub(chunk)..first.min(config.orders) {
            artifacts.push(artifact(Payment { order }));
        }
        first += chunk;
        if artifacts.is_empty() {
            continue;
        }
        store.publish_all(&artifacts).await?;
        published += artifacts.len() as u64;
        if let Some(progress) = &progress {
            progress.store(published, Ordering::Relaxed);
        }
        if config.rate > 0 {
            let due = start + Duration::from_secs_f64(published as f64 / config.rate as f64);
            tokio::time::sleep_until(due.into()).await;
        }
    }
    let elapsed = start.elapsed();
    println!(
        "publisher: {published} artifacts ({} orders and their payments) in {:.1} s",
        config.orders,
        elapsed.as_secs_f64()
    );
    Ok(elapsed)
}

fn artifact<T: FlockType>(value: T) -> Arc<Artifact> {
    Arc::new(Artifact::new(Payload::new(value), "publisher"))
}
