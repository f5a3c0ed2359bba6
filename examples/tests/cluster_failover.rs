//! Issue 14's failover test: three worker processes and one publisher process (the
//! `cluster` example with `--role worker` and `--role publish`) on one PostgreSQL
//! schema. 100,000 artifacts (50,000 orders and their payments) go through keyed
//! batches (`invoicer`: orders by customer, 25 at most, over 16 partitions) and a
//! join (`shipper`: each order with its payment, 50 pairs at most). Half-way, the
//! worker that owns the join's unit is killed with SIGKILL.
//!
//! Checked in PostgreSQL: every order and payment consumed exactly once by each
//! agent that takes it (consumption rows, and each order in exactly one invoice and
//! one shipment: no output duplicated, none missing), no batch over its size, each
//! invoice in arrival order, no failed run; the killed worker's units owned by the
//! survivors within the lease time of the kill. Takes 40–45 s (a debug build on two
//! cores).
//!
//! Runs in `cargo xtask test`. Alone: `cargo xtask cargo test --no-default-features
//! -p flock-examples -- --nocapture killed` with `FLOCK_TEST_POSTGRES_URL` set (a
//! package-wide test run builds the example binary; `--test cluster_failover` alone
//! would not rebuild it).

#![allow(
    clippy::disallowed_methods,
    reason = "the test measures the takeover on the real clock"
)]

mod support;

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use support::{example_binary, postgres_url};
use tokio_postgres::{Client, NoTls};

const ORDERS: u64 = 50_000;
const CUSTOMERS: u32 = 100;
const PARTITIONS: u32 = 16;
const INVOICE_BATCH: usize = 25;
const SHIP_BATCH: usize = 50;
const LEASE: Duration = Duration::from_secs(3);
/// How often the test looks at the leases.
const POLL: Duration = Duration::from_millis(20);
/// What a takeover may take beyond the lease time: the survivors' balance
/// transaction, on a loaded two-core machine. The takeover is measured by the
/// database's clock (from just before the kill to the `taken_at` of the victim's
/// units), so the test's own polling adds nothing to it.
const SLACK: Duration = Duration::from_millis(500);

/// The example's processes, killed if the test fails before they exit.
struct Processes {
    children: Vec<(String, Child)>,
    lines: mpsc::Receiver<(String, String)>,
    send: mpsc::Sender<(String, String)>,
}

impl Processes {
    fn new() -> Self {
        let (send, lines) = mpsc::channel();
        Self {
            children: Vec::new(),
            lines,
            send,
        }
    }

    fn spawn(&mut self, name: &str, args: &[&str]) {
        let mut child = Command::new(example_binary("cluster"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, who) = (self.send.clone(), name.to_owned());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("{line}");
                if send.send((who.clone(), line)).is_err() {
                    return;
                }
            }
        });
        self.children.push((name.to_owned(), child));
    }

    fn child(&mut self, name: &str) -> &mut Child {
        &mut self
            .children
            .iter_mut()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no process {name}"))
            .1
    }

    /// Waits for a line of `name` that ends with `suffix`.
    fn wait_line(&self, name: &str, suffix: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((who, line)) if who == name && line.ends_with(suffix) => return,
                Ok(_) => {}
                Err(_) => panic!("{name} printed no line ending with {suffix:?} within {limit:?}"),
            }
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn admin(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|err| panic!("cannot reach PostgreSQL at {url}: {err}"));
    tokio::spawn(connection);
    client
}

async fn count(db: &Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).await.unwrap().get(0)
}

/// Live leases by owner.
async fn owners(db: &Client, s: &str) -> HashMap<String, i64> {
    db.query(
        &format!(
            "SELECT owner, count(*) FROM {s}.leases WHERE owner IS NOT NULL \
             AND expires_at > clock_timestamp() GROUP BY owner"
        ),
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect()
}

/// The `orders` arrays of every output of `type_name`, with its size checked.
async fn outputs(db: &Client, s: &str, type_name: &str, max: usize) -> Vec<Vec<u64>> {
    let rows = db
        .query(
            &format!("SELECT payload FROM {s}.artifacts WHERE type_name = $1 ORDER BY seq"),
            &[&type_name],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|row| {
            let payload: serde_json::Value = row.get(0);
            let orders: Vec<u64> = serde_json::from_value(payload["orders"].clone()).unwrap();
            assert!(
                !orders.is_empty() && orders.len() <= max,
                "a {type_name} of {} orders (at most {max})",
                orders.len()
            );
            orders
        })
        .collect()
}

/// Each order in exactly one of `outputs`; names the first wrong ones.
fn exactly_once(outputs: &[Vec<u64>], what: &str) {
    let mut seen = vec![0_u32; usize::try_from(ORDERS).unwrap()];
    for &order in outputs.iter().flatten() {
        seen[usize::try_from(order).unwrap()] += 1;
    }
    let twice: Vec<usize> = (0..seen.len()).filter(|&i| seen[i] > 1).take(10).collect();
    let never: Vec<usize> = (0..seen.len()).filter(|&i| seen[i] == 0).take(10).collect();
    assert!(
        twice.is_empty() && never.is_empty(),
        "orders {what} more than once (first ones): {twice:?}; never: {never:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_half_way_loses_nothing_and_duplicates_nothing() {
    let Some(url) = postgres_url() else {
        return;
    };
    let started = Instant::now();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let schema = format!("failover_{}_{nanos}", std::process::id());
    let s = format!("\"{schema}\"");
    let db = admin(&url).await;
    let lease_ms = LEASE.as_millis().to_string();
    let (partitions, orders, customers) = (
        PARTITIONS.to_string(),
        ORDERS.to_string(),
        CUSTOMERS.to_string(),
    );
    let (invoice_batch, ship_batch) = (INVOICE_BATCH.to_string(), SHIP_BATCH.to_string());
    let common = [
        "--url",
        url.as_str(),
        "--schema",
        schema.as_str(),
        "--lease-ms",
        lease_ms.as_str(),
        "--partitions",
        partitions.as_str(),
        "--customers",
        customers.as_str(),
        "--invoice-batch",
        invoice_batch.as_str(),
        "--ship-batch",
        ship_batch.as_str(),
    ];
    let mut processes = Processes::new();
    let workers = ["w1", "w2", "w3"];
    for name in workers {
        let mut args = vec!["--role", "worker", "--name", name];
        args.extend(common);
        processes.spawn(name, &args);
        processes.wait_line(name, ": ready", Duration::from_secs(60));
    }

    // The 17 units spread over the three workers before anything is published.
    let units = i64::from(PARTITIONS) + 1;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let owned = owners(&db, &s).await;
        if owned.len() == 3 && owned.values().sum::<i64>() == units {
            break;
        }
        assert!(Instant::now() < deadline, "units not shared: {owned:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut args = vec!["--role", "publish", "--orders", &orders, "--rate", "4000"];
    args.extend(common);
    processes.spawn("publisher", &args);
    let published_at = Instant::now();

    // Half-way: half of the 100,000 artifacts published (the workers busy with
    // them); the owner of the join's unit dies.
    let n = i64::try_from(ORDERS).unwrap();
    let published = format!(
        "SELECT count(*) FROM {s}.artifacts WHERE type_name IN ('cluster.Order', 'cluster.Payment')"
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while count(&db, &published).await < n {
        assert!(Instant::now() < deadline, "not half-way after 120 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Each order is consumed by both agents, each payment by the join.
    let all = 3 * n;
    let consumed = format!("SELECT count(*) FROM {s}.consumed");
    let consumed_at_kill = count(&db, &consumed).await;
    let victim: String = db
        .query_one(
            &format!("SELECT owner FROM {s}.leases WHERE agent = 'shipper'"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let victim_units: Vec<String> = db
        .query(
            &format!("SELECT unit FROM {s}.leases WHERE owner = '{victim}'"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    // By the database's clock, just before the kill.
    let before_kill = count(
        &db,
        "SELECT (extract(epoch FROM clock_timestamp()) * 1e6)::int8",
    )
    .await;
    processes.child(&victim).kill().unwrap();
    let killed_at = Instant::now();
    processes.child(&victim).wait().unwrap();
    println!(
        "killed {victim} (owner of {} units, the join's among them) with SIGKILL at {:.1} s, \
         {consumed_at_kill} of {all} consumptions recorded",
        victim_units.len(),
        published_at.elapsed().as_secs_f64()
    );

    // The survivors own every unit, the victim none.
    loop {
        let owned = owners(&db, &s).await;
        if !owned.contains_key(&victim) && owned.values().sum::<i64>() == units {
            break;
        }
        assert!(
            killed_at.elapsed() < LEASE * 4,
            "units not taken over after {:?}: {owned:?}",
            LEASE * 4
        );
        tokio::time::sleep(POLL).await;
    }
    let taken_at = db
        .query_one(
            &format!(
                "SELECT (extract(epoch FROM max(taken_at)) * 1e6)::int8 FROM {s}.leases \
                 WHERE unit = ANY($1)"
            ),
            &[&victim_units],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    let takeover = Duration::from_micros(u64::try_from(taken_at - before_kill).unwrap_or_default());
    println!(
        "its units were taken over {:.2} s after the kill by the database's clock (lease {:.1} s)",
        takeover.as_secs_f64(),
        LEASE.as_secs_f64()
    );

    let status = processes.child("publisher").wait().unwrap();
    assert!(status.success(), "the publisher failed: {status}");
    let deadline = Instant::now() + Duration::from_secs(180);
    while count(&db, &consumed).await < all {
        assert!(
            Instant::now() < deadline,
            "not every artifact consumed within 180 s of the end of publishing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let done = published_at.elapsed();

    // Exactly once per matching agent: consumption rows (one per agent and
    // artifact) of the right types, and outputs that name each order once.
    let consumed_as = |agent: &str, type_name: &str| {
        format!(
            "SELECT count(*) FROM {s}.consumed c JOIN {s}.artifacts a ON a.id = c.artifact \
             WHERE c.agent = '{agent}' AND a.type_name = '{type_name}'"
        )
    };
    assert_eq!(
        count(&db, &consumed_as("invoicer", "cluster.Order")).await,
        n
    );
    assert_eq!(
        count(&db, &consumed_as("shipper", "cluster.Order")).await,
        n
    );
    assert_eq!(
        count(&db, &consumed_as("shipper", "cluster.Payment")).await,
        n
    );
    assert_eq!(count(&db, &consumed).await, all, "nothing else consumed");
    let invoices = outputs(&db, &s, "cluster.Invoice", INVOICE_BATCH).await;
    for invoice in &invoices {
        assert!(
            invoice.windows(2).all(|w| w[0] < w[1]),
            "an invoice out of arrival order: {invoice:?}"
        );
        let customer = invoice[0] % u64::from(CUSTOMERS);
        assert!(
            invoice.iter().all(|o| o % u64::from(CUSTOMERS) == customer),
            "an invoice of several customers: {invoice:?}"
        );
    }
    exactly_once(&invoices, "invoiced");
    let shipments = outputs(&db, &s, "cluster.Shipment", SHIP_BATCH).await;
    exactly_once(&shipments, "shipped");
    let failures = count(&db, &format!("SELECT count(*) FROM {s}.failures")).await;
    assert_eq!(failures, 0, "failed runs");

    println!(
        "{} artifacts consumed by 3 workers (one killed half-way) in {:.1} s: {} invoices, {} shipments",
        all,
        done.as_secs_f64(),
        invoices.len(),
        shipments.len()
    );
    assert!(
        takeover <= LEASE + SLACK,
        "the killed worker's units were taken over {takeover:?} after the kill: more than the lease \
         ({LEASE:?}, with {SLACK:?} of slack)"
    );

    // The survivors stop gracefully.
    for name in workers.iter().filter(|&&w| w != victim) {
        let id = processes.child(name).id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &id])
                .status()
                .unwrap()
                .success()
        );
        let status = processes.child(name).wait().unwrap();
        assert!(status.success(), "{name} failed to stop: {status}");
    }
    db.batch_execute(&format!("DROP SCHEMA {s} CASCADE"))
        .await
        .unwrap();
    println!("the test took {:.1} s", started.elapsed().as_secs_f64());
}
