//! The demo: worker processes (this program with `--role worker`), orders and
//! payments published from here, one worker stopped half-way, its units moving to
//! the others, and the results checked on the blackboard.

use std::{
    collections::{BTreeMap, HashMap},
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use flock::core::BlackboardStore;

use super::{Config, Invoice, Shipment, connect, publish};

/// The worker processes, and what they print.
struct Workers {
    children: Vec<(String, Child)>,
    lines: mpsc::Receiver<(String, String)>,
    /// Units each worker said it owns, by worker.
    owned: BTreeMap<String, usize>,
    ready: usize,
}

impl Workers {
    fn start(config: &Config, n: usize, started: Instant) -> Result<Self> {
        let exe = std::env::current_exe()?;
        let (send, lines) = mpsc::channel();
        let mut children = Vec::new();
        for i in 1..=n {
            let name = format!("worker-{i}");
            let mut child = Command::new(&exe)
                .args(["--role", "worker", "--name", &name, "--url", &config.url])
                .args(["--schema", &config.schema])
                .args(["--lease-ms", &config.lease.as_millis().to_string()])
                .args(["--partitions", &config.partitions.to_string()])
                .args(["--invoice-batch", &config.invoice_batch.to_string()])
                .args(["--ship-batch", &config.ship_batch.to_string()])
                .args(["--work-ms", &config.work.as_millis().to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .context("cannot start a worker process")?;
            let stdout = child.stdout.take().expect("piped");
            let send = send.clone();
            let worker = name.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    println!("[{:>5.1} s] {line}", started.elapsed().as_secs_f64());
                    if send.send((worker.clone(), line)).is_err() {
                        return;
                    }
                }
            });
            children.push((name, child));
        }
        Ok(Self {
            children,
            lines,
            owned: BTreeMap::new(),
            ready: 0,
        })
    }

    /// Reads what the workers printed so far.
    fn pump(&mut self) {
        while let Ok((worker, line)) = self.lines.try_recv() {
            if line.ends_with(": ready") {
                self.ready += 1;
            } else if let Some(rest) = line.split_once(": owns ").map(|(_, r)| r) {
                let n = rest.split(' ').next().and_then(|n| n.parse().ok());
                self.owned.insert(worker, n.unwrap_or(0));
            } else if line.ends_with(": stopping") {
                self.owned.insert(worker, 0);
            }
        }
    }

    /// Waits until every worker is ready and `units` are spread over them.
    async fn balanced(&mut self, units: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.pump();
            let owned: usize = self.owned.values().sum();
            if self.ready == self.children.len()
                && owned == units
                && self.owned.values().filter(|&&n| n > 0).count() == self.children.len()
            {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "the workers did not share the {units} units within 60 s ({owned} owned)"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn signal(&mut self, worker: &str, how: &str) -> Result<()> {
        let (_, child) = self
            .children
            .iter_mut()
            .find(|(name, _)| name == worker)
            .context("no such worker")?;
        if how == "kill" {
            child.kill()?;
        } else {
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()?;
            ensure!(status.success(), "kill -TERM failed");
        }
        Ok(())
    }

    /// SIGTERM to every worker still running; waits for them to exit.
    fn stop_all(&mut self) -> Result<()> {
        for (name, child) in &mut self.children {
            if child.try_wait()?.is_none() {
                Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status()?;
            }
            let status = child.wait()?;
            ensure!(
                status.success() || status.code().is_none(),
                "{name} failed ({status})"
            );
        }
        Ok(())
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub(crate) async fn run(
    config: &Config,
    workers: usize,
    stop: &str,
    own_schema: bool,
) -> Result<()> {
    ensure!(
        ["term", "kill", "none"].contains(&stop),
        "--stop takes term, kill or none, not {stop}"
    );
    ensure!(workers > 0, "--workers must be positive");
    let started = Instant::now();
    let units = config.partitions as usize + 1;
    println!(
        "cluster: {workers} worker processes on PostgreSQL (schema {}), leases of {} ms; \
         {units} units: invoicer[0..{}] (orders keyed by customer) and shipper (one join)",
        config.schema,
        config.lease.as_millis(),
        config.partitions
    );
    let store = connect(config).await?;
    let db = sql(config).await?;
    let mut cluster = Workers::start(config, workers, started)?;
    cluster.balanced(units).await?;
    let total = config.orders * 2;
    println!(
        "[{:>5.1} s] the units are shared; publishing {} orders and their payments at {} artifacts/s",
        started.elapsed().as_secs_f64(),
        config.orders,
        config.rate
    );
    let progress = Arc::new(AtomicU64::new(0));
    let publisher = {
        let config = config.clone();
        let progress = progress.clone();
        tokio::spawn(async move { publish(&config, Some(progress)).await })
    };
    let mut stopped = None;
    let publish_start = Instant::now();
    let deadline = publish_start + Duration::from_secs(300);
    loop {
        cluster.pump();
        if stopped.is_none() && stop != "none" && progress.load(Ordering::Relaxed) >= total / 2 {
            let victim = cluster.children[0].0.clone();
            println!(
                "[{:>5.1} s] half published: stopping {victim} with SIG{}",
                started.elapsed().as_secs_f64(),
                if stop == "kill" { "KILL" } else { "TERM" }
            );
            cluster.signal(&victim, stop)?;
            stopped = Some(victim);
        }
        let (invoiced, shipped) = processed(&db, config).await?;
        if invoiced == config.orders && shipped == 2 * config.orders {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "not done after 300 s: {invoiced} of {} orders invoiced, {shipped} of {total} \
             orders and payments shipped",
            config.orders
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = publish_start.elapsed();
    publisher.await??;
    cluster.pump();
    println!(
        "[{:>5.1} s] all {total} artifacts processed in {:.1} s ({:.0} artifacts/s)",
        started.elapsed().as_secs_f64(),
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    check(config, &*store).await?;
    cluster.stop_all()?;
    cluster.pump();
    if own_schema {
        db.batch_execute(&format!("DROP SCHEMA \"{}\" CASCADE", config.schema))
            .await?;
    }
    Ok(())
}

/// A plain SQL connection to the cluster's database, for progress.
async fn sql(config: &Config) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(&config.url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// What the agents consumed so far: orders invoiced, and orders and payments
/// shipped (the consumption rows their runs committed, counted in SQL).
async fn processed(db: &tokio_postgres::Client, config: &Config) -> Result<(u64, u64)> {
    let rows = db
        .query(
            &format!(
                "SELECT agent, count(*) FROM \"{}\".consumed GROUP BY agent",
                config.schema
            ),
            &[],
        )
        .await?;
    let of = |agent: &str| -> u64 {
        rows.iter()
            .find(|row| row.get::<_, String>(0) == agent)
            .map_or(0, |row| u64::try_from(row.get::<_, i64>(1)).unwrap_or(0))
    };
    Ok((of("invoicer"), of("shipper")))
}

async fn values<T: flock::prelude::FlockType>(store: &dyn BlackboardStore) -> Result<Vec<Arc<T>>> {
    Ok(store
        .list_by_type(T::TYPE_NAME)
        .await?
        .iter()
        .filter_map(|a| a.payload.downcast_arc::<T>())
        .collect())
}

/// Every order invoiced once and shipped once; no batch over its size; who did what.
async fn check(config: &Config, store: &dyn BlackboardStore) -> Result<()> {
    let invoices = values::<Invoice>(store).await?;
    let shipments = values::<Shipment>(store).await?;
    let mut invoiced = vec![0_u32; usize::try_from(config.orders)?];
    let mut shipped = invoiced.clone();
    let mut by_worker: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for invoice in &invoices {
        ensure!(
            invoice.orders.len() <= config.invoice_batch,
            "an invoice of {} orders",
            invoice.orders.len()
        );
        ensure!(
            invoice.orders.windows(2).all(|w| w[0] < w[1]),
            "an invoice out of arrival order: {:?}",
            invoice.orders
        );
        for &order in &invoice.orders {
            invoiced[usize::try_from(order)?] += 1;
        }
        by_worker.entry(&invoice.worker).or_default().0 += 1;
    }
    for shipment in &shipments {
        ensure!(
            shipment.orders.len() <= config.ship_batch,
            "a shipment of {} orders",
            shipment.orders.len()
        );
        for &order in &shipment.orders {
            shipped[usize::try_from(order)?] += 1;
        }
        by_worker.entry(&shipment.worker).or_default().1 += 1;
    }
    let wrong: HashMap<&str, usize> = [
        (
            "invoiced twice",
            invoiced.iter().filter(|&&n| n > 1).count(),
        ),
        ("not invoiced", invoiced.iter().filter(|&&n| n == 0).count()),
        ("shipped twice", shipped.iter().filter(|&&n| n > 1).count()),
        ("not shipped", shipped.iter().filter(|&&n| n == 0).count()),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .collect();
    if !wrong.is_empty() {
        bail!("orders processed wrongly: {wrong:?}");
    }
    for (worker, (invoices, shipments)) in by_worker {
        println!("  {worker}: {invoices} invoice(s), {shipments} shipment(s)");
    }
    println!(
        "checked: each of the {} orders invoiced exactly once ({} invoices of at most {}, \
         in arrival order) and shipped exactly once ({} shipments of at most {})",
        config.orders,
        invoices.len(),
        config.invoice_batch,
        shipments.len(),
        config.ship_batch
    );
    Ok(())
}
