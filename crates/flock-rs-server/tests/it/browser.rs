//! The dashboard in a real browser: headless Chromium driven over WebDriver
//! (chromedriver, started here on a free port) opens the dashboard of a running
//! flock, watches a batch fill and flush, and checks what the page shows.
//!
//! Needs Debian's `chromium` and `chromium-driver` packages (`.ci/run` installs
//! them); without them the test fails and says so. With `FLOCK_SCREENSHOT=<path>`
//! it also saves a screenshot there (`cargo xtask screenshot` writes the README's).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use fantoccini::{Client, ClientBuilder, Locator};
use flock::prelude::*;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use crate::{Payment, PaymentReport, Served, payments_agent};

const CHROMIUM: &[&str] = &["chromium", "chromium-browser", "google-chrome"];
const CHROMEDRIVER: &[&str] = &["chromedriver"];

/// The first of `names` on the `PATH` (Debian puts chromedriver in /usr/bin).
fn find(names: &[&str], package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the browser test needs headless Chromium: none of {names:?} is on the PATH; \
                 install Debian's `{package}` package (apt-get install chromium chromium-driver), \
                 as .ci/run does"
            )
        })
}

/// chromedriver on a free port, stopped (with its browser) on drop, with the
/// browser's fresh profile directory removed.
struct Driver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Driver {
    fn start() -> Self {
        let driver = find(CHROMEDRIVER, "chromium-driver");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = std::env::temp_dir().join(format!(
            "flock-dashboard-test-{}-{port}",
            std::process::id()
        ));
        Self {
            child,
            port,
            profile,
        }
    }

    /// A WebDriver session in headless Chromium, once chromedriver answers.
    async fn session(&self) -> Client {
        let chromium = find(CHROMIUM, "chromium");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1400,1100",
                    format!("--user-data-dir={}", self.profile.display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{}", self.port);
        crate::eventually("chromedriver accepting a session", || {
            let capabilities = capabilities.clone();
            let url = url.clone();
            async move {
                ClientBuilder::new(HttpConnector::new())
                    .capabilities(capabilities)
                    .connect(&url)
                    .await
                    .ok()
            }
        })
        .await
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The text of the first element matching `css`, once one exists and `accept`s
/// its text.
async fn text_of(client: &Client, css: &str, accept: impl Fn(&str) -> bool) -> String {
    crate::eventually(&format!("`{css}` on the page"), || async {
        let element = client.find(Locator::Css(css)).await.ok()?;
        let text = element.text().await.ok()?;
        accept(&text).then_some(text)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_batch_filling_then_its_flush() {
    let driver = Driver::start();
    let flock = Flock::builder().no_trace().build();
    payments_agent(&flock, "payments", 5, None);
    flock
        .agent("reviews")
        .description("fails every run, to show a failed run")
        .consumes::<PaymentReport>(Subscribe::new())
        .with_engine(map_fn(|_: &EngineContext, _: Arc<PaymentReport>| {
            Err::<Outputs, _>("review service down".to_owned())
        }))
        .register()
        .unwrap();
    let served = Served::open(flock.clone()).await;
    let client = driver.session().await;
    client.goto(&served.url("/")).await.unwrap();
    text_of(&client, "#live", |t| t == "live").await;
    let agents = text_of(&client, "#agents", |t| t.contains("payments")).await;
    assert!(
        agents.contains("Payment \u{b7} batch \u{b7} size 5"),
        "{agents}"
    );

    for id in 1..=3 {
        flock.publish(Payment { id, amount: 10.0 }).await.unwrap();
    }
    let batch = text_of(&client, ".batch[data-agent='payments']", |t| {
        t.contains("3 / 5")
    })
    .await;
    assert!(batch.contains("s left"), "the countdown shows: {batch}");

    for id in 4..=5 {
        flock.publish(Payment { id, amount: 10.0 }).await.unwrap();
    }
    let flush = text_of(&client, "#flushes tbody tr[data-reason='size']", |t| {
        !t.is_empty()
    })
    .await;
    assert!(
        flush.contains("payments") && flush.contains("100%"),
        "{flush}"
    );
    // The page redraws its tables as events arrive: an element found may be gone
    // (stale) by the time it is read, so each read is retried until it holds.
    let size = crate::eventually("the size flush row's data-size", || async {
        let row = client
            .find(Locator::Css("#flushes tbody tr[data-reason='size']"))
            .await
            .ok()?;
        row.attr("data-size").await.ok()
    })
    .await;
    assert_eq!(size.as_deref(), Some("5"));
    crate::eventually("the flush drawn in the chart", || async {
        client
            .find(Locator::Css("#chart circle.flush[data-reason='size']"))
            .await
            .ok()
    })
    .await;
    text_of(&client, "#batches", |t| {
        t.contains("No batch is collecting")
    })
    .await;
    let failed = text_of(&client, "#failed", |t| t.contains("review service down")).await;
    assert!(failed.contains("Retry"), "{failed}");

    // A partial batch flushed by hand from the page: a manual flush.
    flock
        .publish(Payment {
            id: 6,
            amount: 10.0,
        })
        .await
        .unwrap();
    text_of(&client, ".batch[data-agent='payments']", |t| {
        t.contains("1 / 5")
    })
    .await;
    crate::eventually("a click on the flush button", || async {
        let button = client.find(Locator::Id("flush-all")).await.ok()?;
        button.click().await.ok()
    })
    .await;
    text_of(&client, "#flushes tbody tr[data-reason='manual']", |t| {
        t.contains("20%")
    })
    .await;

    if let Some(path) = std::env::var_os("FLOCK_SCREENSHOT") {
        screenshot(&client, &flock, Path::new(&path)).await;
    }
    client.close().await.unwrap();
    served.stop().await;
}

/// A few seconds of varied traffic for a fuller picture (a second agent whose
/// batches flush by timeout, bursts, manual flushes), then the page as a PNG.
async fn screenshot(client: &Client, flock: &Flock, path: &Path) {
    flock
        .agent("invoices")
        .description("bulk-inserts payments 8 at a time, or 600 ms after the first")
        .consumes::<Payment>(
            Subscribe::new().batch(BatchSpec::size(8).timeout(Duration::from_millis(600))),
        )
        .with_engine(batch_fn(|_: &EngineContext, _: Vec<Arc<Payment>>| {
            Ok::<_, String>(Outputs::none())
        }))
        .register()
        .unwrap();
    let bursts = [5, 2, 5, 4, 5, 1, 3, 5, 5, 2, 4, 3];
    let mut id = 100;
    for (round, burst) in bursts.into_iter().enumerate() {
        for _ in 0..burst {
            id += 1;
            flock.publish(Payment { id, amount: 12.5 }).await.unwrap();
        }
        if round % 4 == 3 {
            flock.flush_batches().await;
        }
        tokio::time::sleep(Duration::from_millis(350)).await;
    }
    for _ in 0..3 {
        id += 1;
        flock.publish(Payment { id, amount: 8.0 }).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let png = client.screenshot().await.unwrap();
    std::fs::write(path, png).unwrap();
}
