//! Visibility is enforced on consumption (before predicates and batches) and on every
//! read path that carries an identity.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use flock::{PublishOptions, prelude::*};
use parking_lot::Mutex;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::time::advance;

use crate::{Item, Run, recorder};

async fn publish_as(flock: &Flock, id: i64, visibility: Visibility) {
    flock
        .publish_with(Item { id }, PublishOptions::new().visibility(visibility))
        .await
        .unwrap();
}

/// An agent recording every `Item` it receives, each in a batch of one.
fn one_at_a_time(flock: &Flock, name: &str) -> crate::Runs {
    let (runs, engine) = recorder();
    flock
        .agent(name)
        .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(1)))
        .with_engine(engine)
        .register()
        .unwrap();
    runs
}

#[tokio::test(start_paused = true)]
async fn private_artifacts_reach_only_listed_agents() {
    let flock = Flock::new();
    let alice = one_at_a_time(&flock, "alice");
    let bob = one_at_a_time(&flock, "bob");
    publish_as(&flock, 1, Visibility::private(["alice"])).await;
    publish_as(&flock, 2, Visibility::Public).await;
    flock.run_until_idle().await;
    let ids = |runs: &crate::Runs| {
        runs.lock()
            .iter()
            .flat_map(|r| r.ids.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&alice), vec![1, 2]);
    assert_eq!(ids(&bob), vec![2]);
}

#[tokio::test(start_paused = true)]
async fn labelled_items_never_enter_the_batch_of_an_agent_without_the_label() {
    let flock = Flock::new();
    let (cleared, engine) = recorder();
    flock
        .agent("cleared")
        .labels(["pii"])
        .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(3)))
        .with_engine(engine)
        .register()
        .unwrap();
    let (uncleared, engine) = recorder();
    flock
        .agent("uncleared")
        .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(3)))
        .with_engine(engine)
        .register()
        .unwrap();
    for id in 1..=6 {
        let visibility = if id % 2 == 0 {
            Visibility::labelled(["pii"])
        } else {
            Visibility::Public
        };
        publish_as(&flock, id, visibility).await;
    }
    flock.run_until_idle().await;
    assert_eq!(
        *cleared.lock(),
        vec![
            Run::batch(&[1, 2, 3], FlushReason::Size),
            Run::batch(&[4, 5, 6], FlushReason::Size)
        ]
    );
    assert_eq!(
        *uncleared.lock(),
        vec![Run::batch(&[1, 3, 5], FlushReason::Size)]
    );
}

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct Event {
    tenant_id: String,
    n: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct TenantReport {
    tenant_id: String,
    events: usize,
}

#[tokio::test(start_paused = true)]
async fn computed_tenant_visibility_isolates_tenants() {
    let flock = Flock::new();
    flock
        .agent("tenant_batch")
        .consumes::<Event>(Subscribe::new().batch(BatchSpec::size(2)))
        .publishes_many_with(|r: &TenantReport| Visibility::tenant(r.tenant_id.clone()))
        .with_engine(batch_fn(|_: &EngineContext, events: Vec<Arc<Event>>| {
            let mut per_tenant: BTreeMap<String, usize> = BTreeMap::new();
            for e in &events {
                *per_tenant.entry(e.tenant_id.clone()).or_default() += 1;
            }
            Ok::<_, String>(
                per_tenant
                    .into_iter()
                    .map(|(tenant_id, events)| TenantReport { tenant_id, events })
                    .collect::<Outputs>(),
            )
        }))
        .register()
        .unwrap();
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    for tenant in ["acme", "globex"] {
        let sink = seen.clone();
        flock
            .agent(format!("reader_{tenant}"))
            .tenant(tenant)
            .consumes::<TenantReport>(Subscribe::new())
            .with_engine(map_fn(move |ctx: &EngineContext, r: Arc<TenantReport>| {
                sink.lock()
                    .push((ctx.agent.to_string(), r.tenant_id.clone()));
                Ok::<_, String>(Outputs::none())
            }))
            .register()
            .unwrap();
    }
    for (n, tenant) in ["acme", "globex", "acme", "acme"].into_iter().enumerate() {
        flock
            .publish(Event {
                tenant_id: tenant.into(),
                n: n as i64,
            })
            .await
            .unwrap();
    }
    flock.run_until_idle().await;
    let mut seen = seen.lock().clone();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("reader_acme".into(), "acme".into()),
            ("reader_acme".into(), "acme".into()),
            ("reader_globex".into(), "globex".into()),
        ]
    );
    // The store returns to an identity only what it may see.
    let globex = AgentIdentity::new("auditor").with_tenant("globex");
    let visible = flock
        .query_as(&globex, ArtifactFilter::new().type_name("TenantReport"))
        .await
        .unwrap();
    assert_eq!(visible.len(), 1);
    assert_eq!(
        visible[0].get::<TenantReport>().unwrap().tenant_id,
        "globex"
    );
    let everyone = flock
        .query(&ArtifactFilter::new().type_name("TenantReport"))
        .await
        .unwrap();
    assert_eq!(everyone.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn engines_read_the_blackboard_through_their_identity() {
    let flock = Flock::new();
    publish_as(&flock, 1, Visibility::tenant("acme")).await;
    publish_as(&flock, 2, Visibility::tenant("globex")).await;
    publish_as(&flock, 3, Visibility::Public).await;
    let seen: Arc<Mutex<Vec<i64>>> = Arc::default();
    let sink = seen.clone();
    flock
        .agent("acme_reader")
        .tenant("acme")
        .consumes::<BatchItem>(Subscribe::new())
        .with_engine(map_fn_async(
            move |ctx: EngineContext, _: Arc<BatchItem>| {
                let sink = sink.clone();
                async move {
                    let board = ctx.blackboard.expect("runtime sets the blackboard view");
                    let items = board
                        .get_by_type::<Item>()
                        .await
                        .map_err(|e| e.to_string())?;
                    sink.lock().extend(items.iter().map(|i| i.id));
                    Ok::<_, String>(Outputs::none())
                }
            },
        ))
        .register()
        .unwrap();
    flock.publish(BatchItem { value: 0 }).await.unwrap();
    flock.run_until_idle().await;
    assert_eq!(*seen.lock(), vec![1, 3]);
}

#[tokio::test(start_paused = true)]
async fn after_visibility_delivers_when_the_ttl_ends_to_whom_then_allows() {
    let flock = Flock::new();
    let alice = one_at_a_time(&flock, "alice");
    let bob = one_at_a_time(&flock, "bob");
    let embargo = Visibility::after(
        Duration::from_secs(60),
        Some(Visibility::private(["alice"])),
    );
    publish_as(&flock, 7, embargo).await;
    flock.run_until_idle().await;
    assert!(alice.lock().is_empty(), "delivered before the ttl");
    let early = flock
        .query_as(&AgentIdentity::new("alice"), ArtifactFilter::new())
        .await
        .unwrap();
    assert!(early.is_empty(), "readable before the ttl");
    advance(Duration::from_secs(59)).await;
    flock.run_until_idle().await;
    assert!(alice.lock().is_empty());
    advance(Duration::from_secs(1)).await;
    flock.run_until_idle().await;
    assert_eq!(*alice.lock(), vec![Run::batch(&[7], FlushReason::Size)]);
    assert!(bob.lock().is_empty(), "`then` is private to alice");
    // Delivered once: later wake-ups do not deliver it again.
    advance(Duration::from_secs(600)).await;
    flock.run_until_idle().await;
    assert_eq!(alice.lock().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn after_visibility_is_delivered_by_the_timer_alone() {
    let flock = Flock::new();
    let runs = one_at_a_time(&flock, "waiter");
    publish_as(&flock, 1, Visibility::after(Duration::from_secs(5), None)).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    tokio::task::yield_now().await;
    assert_eq!(runs.lock().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_reports_artifacts_whose_visibility_had_not_begun() {
    let flock = Flock::new();
    let runs = one_at_a_time(&flock, "waiter");
    publish_as(
        &flock,
        1,
        Visibility::after(Duration::from_secs(3600), None),
    )
    .await;
    let report = flock.shutdown().await;
    assert_eq!(report.deferred_undelivered, 1);
    assert!(runs.lock().is_empty());
    assert_eq!(
        flock.query(&ArtifactFilter::new()).await.unwrap().len(),
        1,
        "still on the blackboard"
    );
}

// === property: no agent ever receives an artifact it may not see ===

fn identity_strategy() -> impl Strategy<Value = (Vec<&'static str>, Option<&'static str>)> {
    (
        prop::sample::subsequence(vec!["pii", "eu", "ops"], 0..=3),
        prop::option::of(prop::sample::select(vec!["acme", "globex"])),
    )
}

fn visibility_strategy() -> impl Strategy<Value = Visibility> {
    let leaf = prop_oneof![
        Just(Visibility::Public),
        prop::sample::subsequence(vec!["a0", "a1", "a2", "a3"], 0..=4)
            .prop_map(Visibility::private),
        prop::sample::subsequence(vec!["pii", "eu", "ops"], 0..=2).prop_map(Visibility::labelled),
        prop::option::of(prop::sample::select(vec!["acme", "globex"])).prop_map(|tenant_id| {
            Visibility::Tenant {
                tenant_id: tenant_id.map(String::from),
            }
        }),
    ];
    leaf.prop_recursive(2, 4, 1, |inner| {
        (0u64..3, prop::option::of(inner))
            .prop_map(|(secs, then)| Visibility::after(Duration::from_secs(secs * 10), then))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn no_agent_receives_what_it_may_not_see(
        agents in prop::collection::vec((identity_strategy(), 1usize..4, any::<bool>()), 1..=4),
        artifacts in prop::collection::vec(visibility_strategy(), 1..24),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async move {
            let flock = Flock::new();
            let mut records = Vec::new();
            for (i, ((labels, tenant), size, batched)) in agents.iter().enumerate() {
                let (runs, engine) = recorder();
                let mut sub = Subscribe::<Item>::new();
                if *batched {
                    sub = sub.batch(BatchSpec::size(*size).timeout(Duration::from_secs(15)));
                } else {
                    sub = sub.batch(BatchSpec::size(1));
                }
                let mut builder = flock.agent(format!("a{i}")).labels(labels.iter().copied());
                if let Some(tenant) = tenant {
                    builder = builder.tenant(*tenant);
                }
                builder.consumes(sub).with_engine(engine).register().unwrap();
                let identity = AgentIdentity::new(format!("a{i}"))
                    .with_labels(labels.iter().copied())
                    .with_tenant_opt(tenant.map(String::from));
                records.push((identity, runs));
            }
            for (id, visibility) in artifacts.iter().enumerate() {
                publish_as(&flock, id as i64, visibility.clone()).await;
                advance(Duration::from_secs(3)).await;
            }
            // Let every `After` begin, then flush what remains.
            advance(Duration::from_secs(120)).await;
            flock.run_until_idle().await;
            flock.shutdown().await;
            let created = chrono::Utc::now();
            for (identity, runs) in &records {
                let mut received: Vec<i64> = runs.lock().iter().flat_map(|r| r.ids.clone()).collect();
                received.sort_unstable();
                // Every visibility's rule ignores time once its `After` has begun, so
                // judging at a moment far past every ttl is exact.
                let far = created + chrono::TimeDelta::days(1);
                let expected: Vec<i64> = artifacts
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.allows(identity, created, far))
                    .map(|(id, _)| id as i64)
                    .collect();
                assert_eq!(received, expected, "agent {} ({:?})", identity.name, identity);
            }
        });
    }
}

/// Records the `WorkflowError`s an agent of `tenant` receives.
fn error_watcher(flock: &Flock, name: &str, tenant: &str) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    flock
        .agent(name)
        .tenant(tenant)
        .consumes::<WorkflowError>(Subscribe::new())
        .with_engine(map_fn(
            move |_: &EngineContext, error: Arc<WorkflowError>| {
                sink.lock().push(error.error.clone());
                Ok::<_, String>(Outputs::none())
            },
        ))
        .register()
        .unwrap();
    seen
}

/// Regression: a `WorkflowError` was always public and quoted the engine's message,
/// which may quote the input: agents of tenant B received "cannot score record ..."
/// from tenant A's batch. A `WorkflowError` is visible only to whoever could see
/// every input of the run.
#[tokio::test(start_paused = true)]
async fn a_workflow_error_is_visible_only_to_who_could_see_its_inputs() {
    let flock = Flock::builder().no_trace().build();
    flock
        .agent("scorer")
        .tenant("a")
        .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(2)))
        .with_engine(batch_fn(|_: &EngineContext, items: Vec<Arc<Item>>| {
            Err::<Outputs, _>(format!("cannot score record {:?}", items[0]))
        }))
        .register()
        .unwrap();
    let tenant_a = error_watcher(&flock, "watcher_a", "a");
    let tenant_b = error_watcher(&flock, "watcher_b", "b");
    publish_as(&flock, 4242, Visibility::tenant("a")).await;
    publish_as(&flock, 4243, Visibility::tenant("a")).await;
    flock.run_until_idle().await;
    assert_eq!(tenant_a.lock().len(), 1);
    assert!(tenant_a.lock()[0].contains("4242"));
    assert_eq!(*tenant_b.lock(), Vec::<String>::new());
    flock.shutdown().await;
}

/// An output declared without a visibility is visible only to whoever could see
/// every input of its run; an explicit visibility still wins.
#[tokio::test(start_paused = true)]
async fn outputs_without_a_visibility_inherit_their_inputs_restrictions() {
    let flock = Flock::builder().no_trace().build();
    flock
        .agent("summarizer")
        .tenant("a")
        .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(2)))
        .publishes::<BatchSummary>()
        .with_engine(batch_fn(|_: &EngineContext, items: Vec<Arc<Item>>| {
            Ok::<_, String>(BatchSummary {
                batch_size: items.len(),
                values: items.iter().map(|i| i.id).collect(),
            })
        }))
        .register()
        .unwrap();
    flock
        .agent("announcer")
        .tenant("a")
        .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(2)))
        .publishes_with::<BatchItem>(Visibility::Public)
        .with_engine(batch_fn(|_: &EngineContext, items: Vec<Arc<Item>>| {
            Ok::<_, String>(BatchItem {
                value: items.len() as i64,
            })
        }))
        .register()
        .unwrap();
    let readers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|tenant| {
            let seen = Arc::new(Mutex::new((0, 0)));
            let (summaries, items) = (seen.clone(), seen.clone());
            flock
                .agent(format!("summary_reader_{tenant}"))
                .tenant(tenant)
                .consumes::<BatchSummary>(Subscribe::new())
                .with_engine(map_fn(move |_: &EngineContext, _: Arc<BatchSummary>| {
                    summaries.lock().0 += 1;
                    Ok::<_, String>(Outputs::none())
                }))
                .register()
                .unwrap();
            flock
                .agent(format!("item_reader_{tenant}"))
                .tenant(tenant)
                .consumes::<BatchItem>(Subscribe::new())
                .with_engine(map_fn(move |_: &EngineContext, _: Arc<BatchItem>| {
                    items.lock().1 += 1;
                    Ok::<_, String>(Outputs::none())
                }))
                .register()
                .unwrap();
            seen
        })
        .collect();
    publish_as(&flock, 1, Visibility::tenant("a")).await;
    publish_as(&flock, 2, Visibility::tenant("a")).await;
    flock.run_until_idle().await;
    // Tenant A sees both outputs; tenant B only the explicitly public one.
    assert_eq!(*readers[0].lock(), (1, 1));
    assert_eq!(*readers[1].lock(), (0, 1));
    flock.shutdown().await;
}
