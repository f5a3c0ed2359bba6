//! Tokens and visibility: without a valid token the API answers 401 once tokens
//! are configured; a tenant's token never sees another tenant's artifacts,
//! batches, joins, flushes, failed runs or events; operator actions need an
//! operator token; loopback unless tokens are configured.

use std::{sync::Arc, time::Duration};

use flock::prelude::*;
use flock_server::{InvalidToken, ServeError, Server, ServerConfig};
use serde_json::{Value, json};

use crate::{Payment, Served, eventually, payments_agent};

const ACME: &str = "token-acme";
const GLOBEX: &str = "token-globex";
const OPS: &str = "token-ops";

fn config() -> ServerConfig {
    ServerConfig::new()
        .token(ACME, AgentIdentity::new("acme-ui").with_tenant("acme"))
        .unwrap()
        .token(
            GLOBEX,
            AgentIdentity::new("globex-ui").with_tenant("globex"),
        )
        .unwrap()
        .operator_token(OPS)
        .unwrap()
}

/// Per tenant: a batching agent, a join agent and an agent that always fails.
fn tenant_agents(flock: &Flock, tenant: &str) {
    payments_agent(flock, &format!("{tenant}_payments"), 2, Some(tenant));
    flock
        .agent(format!("{tenant}_pairs"))
        .tenant(tenant)
        .consumes_all(
            AllOf::new().of::<Payment>().of::<Refund>().join(
                JoinSpec::by(|p: &Payment| p.id)
                    .by(|r: &Refund| r.payment_id)
                    .within(Duration::from_secs(3600)),
            ),
        )
        .with_engine(group_fn(|_: &EngineContext, _: Inputs| {
            Ok::<_, String>(Outputs::none())
        }))
        .register()
        .unwrap();
    flock
        .agent(format!("{tenant}_failing"))
        .tenant(tenant)
        .consumes::<Refund>(Subscribe::new())
        .with_engine(map_fn(|_: &EngineContext, _: Arc<Refund>| {
            Err::<Outputs, _>("refunds are down".to_owned())
        }))
        .register()
        .unwrap();
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, FlockType)]
struct Refund {
    payment_id: i64,
}

fn publish(tenant: &str, value: Value) -> String {
    let mut body = value;
    body["visibility"] = json!({"kind": "tenant", "tenant_id": tenant});
    body.to_string()
}

/// The distinct values of `key` in the list `field`.
fn agents_of(list: &Value, field: &str, key: &str) -> Vec<String> {
    let mut agents: Vec<String> = list[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b[key].as_str().unwrap().to_owned())
        .collect();
    agents.sort();
    agents.dedup();
    agents
}

#[tokio::test]
async fn without_a_valid_token_every_route_but_health_and_the_page_answers_401() {
    let flock = Flock::builder().no_trace().build();
    let served = Served::start(flock, config()).await;
    for path in [
        "/api/v1/artifacts",
        "/api/v1/artifacts/summary",
        "/api/v1/agents",
        "/api/v1/batches",
        "/api/v1/joins",
        "/api/v1/flushes",
        "/api/v1/failed-runs",
        "/api/v1/events",
        "/metrics",
    ] {
        for token in [None, Some("wrong")] {
            let (status, body) = served.get_as(path, token).await;
            assert_eq!(status, 401, "{path} with {token:?}: {body}");
        }
    }
    let (status, body) = served.post("/api/v1/artifacts", crate::payment(1)).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "missing bearer token");
    let response = served
        .http
        .get(served.url("/api/v1/batches"))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(served.get("/health").await.0, 200);
    assert_eq!(
        served.get("/").await.0,
        200,
        "the page itself holds no data"
    );
    assert_eq!(served.get_as("/metrics", Some(ACME)).await.0, 200);
    served.stop().await;
}

#[tokio::test]
async fn a_tenant_token_never_sees_another_tenants_artifacts_batches_joins_flushes_or_failed_runs()
{
    let flock = Flock::builder().no_trace().build();
    tenant_agents(&flock, "acme");
    tenant_agents(&flock, "globex");
    let served = Served::start(flock.clone(), config()).await;
    let mut ids = Vec::new();
    for tenant in ["acme", "globex"] {
        let token = if tenant == "acme" { ACME } else { GLOBEX };
        // Payments fill two batches (flushes), a fifth waits; each waits for a
        // refund in a join group; the refund fails its run (and waits for its
        // payment).
        for id in 1..=5 {
            let body = publish(
                tenant,
                json!({"type": "Payment", "payload": {"id": id, "amount": 1.0}}),
            );
            let (status, answer) = served.post_as("/api/v1/artifacts", body, Some(token)).await;
            assert_eq!(status, 200, "{answer}");
            ids.push((tenant, answer["id"].as_str().unwrap().to_owned()));
        }
        let refund = publish(
            tenant,
            json!({"type": "Refund", "payload": {"payment_id": 9}}),
        );
        served
            .post_as("/api/v1/artifacts", refund, Some(token))
            .await;
    }
    flock.run_until_idle().await;

    for (token, mine, theirs) in [(ACME, "acme", "globex"), (GLOBEX, "globex", "acme")] {
        let who = Some(token);
        let (_, list) = served.get_as("/api/v1/artifacts?limit=1000", who).await;
        let items = list["items"].as_array().unwrap();
        assert!(!items.is_empty());
        assert!(
            items.iter().all(|a| a["visibility"]["tenant_id"] == mine),
            "{mine} sees only its artifacts: {list}"
        );
        let (_, summary) = served.get_as("/api/v1/artifacts/summary", who).await;
        assert_eq!(summary["summary"]["total"], items.len());
        for (tenant, id) in &ids {
            let (status, _) = served.get_as(&format!("/api/v1/artifacts/{id}"), who).await;
            let expected = if *tenant == mine { 200 } else { 404 };
            assert_eq!(status, expected, "{mine} fetching an artifact of {tenant}");
        }
        let (_, batches) = served.get_as("/api/v1/batches", who).await;
        assert_eq!(
            agents_of(&batches, "batches", "agent"),
            [format!("{mine}_payments")]
        );
        let (_, joins) = served.get_as("/api/v1/joins", who).await;
        assert_eq!(
            agents_of(&joins, "joins", "agent"),
            [format!("{mine}_pairs")]
        );
        let flushes = eventually("the size flushes", || async {
            let (_, body) = served.get_as("/api/v1/flushes", who).await;
            (!body["flushes"].as_array()?.is_empty()).then_some(body)
        })
        .await;
        assert_eq!(
            agents_of(&flushes, "flushes", "agent"),
            [format!("{mine}_payments")]
        );
        let (_, failed) = served.get_as("/api/v1/failed-runs", who).await;
        assert_eq!(
            agents_of(&failed, "failed_runs", "agent"),
            [format!("{mine}_failing")]
        );
        assert!(!failed.to_string().contains(theirs));

        // Another tenant's failed run cannot be retried: it does not exist for us.
        let (_, all_failed) = served.get_as("/api/v1/failed-runs", Some(OPS)).await;
        let foreign = all_failed["failed_runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["agent"] == format!("{theirs}_failing"))
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, _) = served
            .post_as(&format!("/api/v1/failed-runs/{foreign}/retry"), "", who)
            .await;
        assert_eq!(status, 404);
    }
    // The operator sees both tenants.
    let (_, batches) = served.get_as("/api/v1/batches", Some(OPS)).await;
    assert_eq!(batches["batches"].as_array().unwrap().len(), 2);
    served.stop().await;
}

#[tokio::test]
async fn identities_publish_as_their_tenant_and_only_what_they_could_see() {
    let flock = Flock::builder().no_trace().build();
    tenant_agents(&flock, "acme");
    let served = Served::start(flock.clone(), config()).await;
    let (status, body) = served
        .post_as("/api/v1/artifacts", crate::payment(1), Some(ACME))
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_str().unwrap();
    let (_, stored) = served
        .get_as(&format!("/api/v1/artifacts/{id}"), Some(OPS))
        .await;
    assert_eq!(
        stored["visibility"],
        json!({"kind": "tenant", "tenant_id": "acme"})
    );
    let (status, body) = served
        .post_as(
            "/api/v1/artifacts",
            publish(
                "globex",
                json!({"type": "Payment", "payload": {"id": 2, "amount": 1.0}}),
            ),
            Some(ACME),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("could not see"));
    let (status, body) = served.post_as("/api/v1/flush", "", Some(ACME)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["error"],
        "flushing every batch is an operator action; use an operator token"
    );
    assert_eq!(served.post_as("/api/v1/flush", "", Some(OPS)).await.0, 200);
    served.stop().await;
}

#[tokio::test]
async fn a_tenant_event_stream_carries_only_its_tenants_events() {
    let flock = Flock::builder().no_trace().build();
    tenant_agents(&flock, "acme");
    tenant_agents(&flock, "globex");
    let served = Served::start(flock.clone(), config()).await;
    let mut acme = crate::events::Stream::open(&served, Some(ACME)).await;
    for tenant in ["globex", "acme"] {
        let body = publish(
            tenant,
            json!({"type": "Payment", "payload": {"id": 1, "amount": 1.0}}),
        );
        served.post_as("/api/v1/artifacts", body, Some(OPS)).await;
    }
    // The first event acme receives is its own publish: globex's came first and
    // was filtered out.
    let (kind, event) = acme.next().await;
    assert_eq!(kind, "artifact_published");
    assert_eq!(event["visibility"]["tenant_id"], "acme");
    let (kind, event) = acme.next().await;
    assert_eq!(kind, "batch_item_added");
    assert_eq!(event["agent"], "acme_payments");
    served.stop().await;
}

#[tokio::test]
async fn tokens_are_checked_and_public_addresses_need_them() {
    assert_eq!(
        ServerConfig::new()
            .token("", AgentIdentity::new("x"))
            .unwrap_err(),
        InvalidToken::Empty
    );
    let twice = ServerConfig::new()
        .operator_token("t")
        .unwrap()
        .token("t", AgentIdentity::new("ui"));
    assert_eq!(
        twice.unwrap_err().to_string(),
        "bearer token configured twice (for 'operator' and 'ui')"
    );
    assert!(
        !format!("{:?}", config()).contains(ACME),
        "tokens never printed"
    );
    let flock = Flock::builder().no_trace().build();
    let public = ServerConfig::new().bind("0.0.0.0:0".parse().unwrap());
    match Server::new(flock.clone(), public).bind().await {
        Err(ServeError::Unauthenticated(addr)) => assert_eq!(addr.port(), 0),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(ServerConfig::new().addr().to_string(), "127.0.0.1:8344");
    flock.shutdown().await;
}
