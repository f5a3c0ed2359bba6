//! Crash recovery for real: the `durable_payments` example publishes and batches
//! under load in a child process on a SQLite file, is killed with SIGKILL at a
//! random point, and is started again on the same file to recover. The blackboard
//! must then show every accepted transaction (and every stored one) paid in exactly
//! one batch and, when large, alerted exactly once: nothing lost, nothing twice.
//! Fifty trials, each killed at another point.

mod support;

use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

use rand::{Rng, SeedableRng, rngs::StdRng};
use support::example_binary;

const TRIALS: u64 = 50;
const TRANSACTIONS: u64 = 400;

/// Runs the example with `args`, returning its standard output's lines.
fn run(args: &[&str]) -> (bool, Vec<String>) {
    let output = Command::new(example_binary("durable_payments"))
        .args(args)
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    }
    (output.status.success(), lines)
}

/// Publishes in a child killed after `kill_after` accepted transactions (or at
/// the end, if it gets there first); returns the ids it reported accepted.
fn publish_and_kill(db: &Path, kill_after: u64) -> BTreeSet<String> {
    let mut child = Command::new(example_binary("durable_payments"))
        .args([
            "--db",
            db.to_str().unwrap(),
            "--publish",
            &TRANSACTIONS.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut accepted = BTreeSet::new();
    while let Ok(line) = received.recv() {
        if let Some(id) = line.strip_prefix("accepted ") {
            accepted.insert(id.to_owned());
            if accepted.len() as u64 >= kill_after {
                // SIGKILL: no shutdown, no flush, whatever the process was doing.
                let _ = child.kill();
                break;
            }
        }
    }
    child.wait().unwrap();
    // What the pipe still held was accepted too.
    accepted.extend(
        received
            .try_iter()
            .filter_map(|l| l.strip_prefix("accepted ").map(str::to_owned)),
    );
    reader.join().unwrap();
    accepted
}

#[test]
fn killed_at_random_points_every_accepted_transaction_is_processed_exactly_once() {
    let mut rng = StdRng::seed_from_u64(0x5eed_d00d);
    let dir = std::env::temp_dir().join(format!("flock-kill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut recovered_some = 0;
    for trial in 0..TRIALS {
        let db = dir.join(format!("trial-{trial}.db"));
        let kill_after = rng.random_range(1..=TRANSACTIONS + 20);
        let accepted = publish_and_kill(&db, kill_after);
        let (ok, lines) = run(&["--db", db.to_str().unwrap(), "--recover"]);
        assert!(ok, "trial {trial}: recovery failed");
        if lines
            .iter()
            .any(|l| l.starts_with("recovered ") && !l.starts_with("recovered 0 "))
        {
            recovered_some += 1;
        }
        let (ok, verdict) = run(&["--db", db.to_str().unwrap(), "--check"]);
        assert!(ok, "trial {trial} (killed after {kill_after}): {verdict:?}");
        // Every accepted transaction is on the blackboard (and so was checked).
        let (_, stored) = run(&["--db", db.to_str().unwrap(), "--list"]);
        let stored: BTreeSet<String> = stored.into_iter().collect();
        let lost: Vec<_> = accepted.difference(&stored).collect();
        assert!(
            lost.is_empty(),
            "trial {trial}: accepted but not stored: {lost:?}"
        );
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    // The kills landed while work was pending, not only after the fact.
    assert!(
        recovered_some > TRIALS / 2,
        "only {recovered_some} trials had anything to recover"
    );
}

/// Keeps the test honest about time: not a speed assertion, a hang detector.
#[test]
fn the_demo_runs_end_to_end() {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(run(&[])).unwrap());
    let (ok, lines) = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the demo hangs");
    assert!(ok, "{lines:?}");
    // Killed after 150 of 300 were accepted: those (and any accepted in flight) are
    // all paid after recovery.
    let paid = lines
        .iter()
        .find_map(|l| l.strip_prefix("every transaction processed once: "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse::<u64>().ok());
    assert!(paid.is_some_and(|n| n >= 150), "{lines:?}");
}
