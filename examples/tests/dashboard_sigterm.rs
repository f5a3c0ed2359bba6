//! The `dashboard` example as an operator runs it: a child process serving a flock,
//! stopped by SIGTERM. Three transactions published over HTTP wait in a partial
//! batch; SIGTERM must stop the server and flush them with reason `shutdown`
//! before the process exits, successfully.

#![allow(
    clippy::disallowed_methods,
    reason = "the watchdog takes its limit from the real clock"
)]

mod support;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use support::example_binary;

/// One HTTP/1.1 request on a fresh connection; the status and the body.
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// Kills the child if the test fails before it exits.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sigterm_stops_the_server_and_flushes_partial_batches_with_reason_shutdown() {
    let child = Command::new(example_binary("dashboard"))
        .args(["--port", "0", "--rate", "0", "--timeout-ms", "3600000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut child = Reap(child);
    let (lines, received) = mpsc::channel();
    let stdout = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let next_line = || {
        received
            .recv_timeout(Duration::from_secs(60))
            .expect("the example printed nothing within 60 s")
    };
    // Ready: bound, with its signal handlers installed.
    let ready = next_line();
    let url = ready
        .strip_prefix("dashboard: http://")
        .unwrap_or_else(|| panic!("unexpected first line: {ready}"));
    let addr = url.split('/').next().unwrap().to_owned();

    for id in 1..=3 {
        let body = format!(
            r#"{{"type": "Transaction", "payload": {{"transaction_id": "t{id}", "customer_id": "c", "amount": 10.0}}}}"#
        );
        let (status, answer) = http(&addr, "POST", "/api/v1/artifacts", &body);
        assert_eq!(status, 200, "{answer}");
    }
    let (_, batches) = http(&addr, "GET", "/api/v1/batches", "");
    assert!(batches.contains(r#""items":3"#), "{batches}");

    let term = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let mut printed = Vec::new();
    while let Ok(line) = received.recv_timeout(Duration::from_secs(60)) {
        printed.push(line);
    }
    let status = child.0.wait().unwrap();
    let printed = printed.join("\n");
    assert!(status.success(), "exit {status}; printed:\n{printed}");
    assert!(
        printed.contains(
            "shutdown: 1 partial batch(es) with 3 transaction(s) flushed with reason `shutdown`"
        ),
        "{printed}"
    );
    assert!(
        printed.contains("1 payment batches, 3 of 3 transactions processed"),
        "{printed}"
    );
}
