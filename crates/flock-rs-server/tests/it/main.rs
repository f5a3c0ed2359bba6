//! Behaviour of the operations server, over real HTTP on 127.0.0.1: the API, its
//! errors, tokens and visibility, live events, metrics, shutdown by signal, and
//! the dashboard in a real browser.

#![allow(
    clippy::disallowed_methods,
    reason = "watchdogs and the browser test take their limits from the real clock"
)]

mod api;
mod auth;
mod bad_input;
mod browser;
mod events;
mod metrics;

use std::{future::Future, sync::Arc, time::Duration};

use flock::prelude::*;
use flock_server::{Server, ServerConfig};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::{sync::oneshot, task::JoinHandle};

/// A payment, batched by the test agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FlockType)]
pub(crate) struct Payment {
    pub(crate) id: i64,
    pub(crate) amount: f64,
}

/// What a batch of payments became.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FlockType)]
pub(crate) struct PaymentReport {
    pub(crate) count: usize,
    pub(crate) reason: String,
}

/// An agent batching payments `size` at a time (timeout an hour: tests flush by
/// size, by hand, or at shutdown), publishing one report per batch.
pub(crate) fn payments_agent(flock: &Flock, name: &str, size: usize, tenant: Option<&str>) {
    let mut agent = flock
        .agent(name)
        .description("batches payments")
        .consumes::<Payment>(
            Subscribe::new().batch(BatchSpec::size(size).timeout(Duration::from_secs(3600))),
        )
        .publishes::<PaymentReport>()
        .with_engine(batch_fn(|ctx: &EngineContext, items: Vec<Arc<Payment>>| {
            Ok::<_, String>(PaymentReport {
                count: items.len(),
                reason: ctx
                    .flush_reason()
                    .map(|r| r.to_string())
                    .unwrap_or_default(),
            })
        }));
    if let Some(tenant) = tenant {
        agent = agent.tenant(tenant);
    }
    agent.register().unwrap();
}

/// A flock served on a free port of 127.0.0.1, stopped by [`Served::stop`].
pub(crate) struct Served {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<flock::ShutdownReport, flock_server::ServeError>>,
}

impl Served {
    /// Serves `flock` with `config` (its port replaced by a free one).
    pub(crate) async fn start(flock: Flock, config: ServerConfig) -> Self {
        let listening = Server::new(flock.clone(), config.port(0))
            .bind()
            .await
            .unwrap();
        let base = format!("http://{}", listening.local_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(listening.run_until(async {
            let _ = stopped.await;
        }));
        Self {
            base,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task,
        }
    }

    /// Serves `flock` without tokens.
    pub(crate) async fn open(flock: Flock) -> Self {
        Self::start(flock, ServerConfig::new()).await
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET `path` with `token` (if any): status and JSON body.
    pub(crate) async fn get_as(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.http.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        answer(request).await
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        self.get_as(path, None).await
    }

    /// POST `body` (raw text) to `path` with `token` (if any).
    pub(crate) async fn post_as(
        &self,
        path: &str,
        body: impl Into<String>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.into());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        answer(request).await
    }

    pub(crate) async fn post(&self, path: &str, body: impl Into<String>) -> (u16, Value) {
        self.post_as(path, body, None).await
    }

    /// Stops serving (as a signal would) and returns the flock's shutdown report.
    pub(crate) async fn stop(mut self) -> flock::ShutdownReport {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap().unwrap()
    }
}

async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, json)
}

/// A publish body for a payment.
pub(crate) fn payment(id: i64) -> String {
    serde_json::json!({"type": "Payment", "payload": {"id": id, "amount": 10.0}}).to_string()
}

/// Waits until `check` returns `Some`, polling; panics after `limit` of real time
/// (a watchdog for what the server's recorder task does asynchronously, not a
/// speed assertion).
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let limit = Duration::from_secs(20);
    let start = std::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
