//! Checks of durability: agents recorded, consumption committed with a run's
//! outputs, what each agent has not consumed, failed runs, and all of it surviving a
//! reopen. Except for `commit_run`'s outputs, they apply to durable stores only.

use std::sync::Arc;

use uuid::Uuid;

use super::{
    StoreFactory,
    fixtures::{Note, assert_same, at, ids, note, rich_note, shared},
};
use crate::{
    Artifact, ArtifactFilter, ArtifactId, BlackboardStore, FailureCommit, FailureKind,
    FailureRecord, FlockType, FlushReason, Payload, RunCommit, StoreError, TypeRegistry,
    WorkflowError,
};

async fn unconsumed<S: BlackboardStore>(store: &S, agent: &str) -> Vec<ArtifactId> {
    ids(&store.unconsumed(agent).await.expect("unconsumed"))
}

async fn commit<S: BlackboardStore>(
    store: &S,
    agent: &str,
    inputs: &[&Arc<Artifact>],
    outputs: &[Arc<Artifact>],
) -> Result<(), StoreError> {
    let inputs: Vec<ArtifactId> = inputs.iter().map(|a| a.id).collect();
    store
        .commit_run(RunCommit {
            agent,
            run_id: Uuid::now_v7(),
            inputs: &inputs,
            outputs,
            fence: None,
            retries: None,
        })
        .await
}

/// Keeping `failure` with its `WorkflowError` `error`, outside a cluster.
fn kept<'a>(failure: &'a FailureRecord, error: &'a Arc<Artifact>) -> FailureCommit<'a> {
    FailureCommit {
        failure,
        error,
        fence: None,
        retries: None,
    }
}

/// A failed run of `agent` over `inputs`, and its `WorkflowError` artifact.
fn failure(agent: &str, inputs: &[&Arc<Artifact>], seconds: i64) -> (FailureRecord, Arc<Artifact>) {
    let input_ids: Vec<ArtifactId> = inputs.iter().map(|a| a.id).collect();
    let error = shared(Artifact::new_at(
        Payload::new(WorkflowError {
            agent: agent.to_owned(),
            error: "engine failed: boom".to_owned(),
            attempts: 3,
            input_ids: input_ids.clone(),
            flush_reason: Some(FlushReason::Timeout),
        }),
        agent,
        at(seconds),
    ));
    let record = FailureRecord {
        id: Uuid::now_v7(),
        agent: agent.to_owned(),
        run_id: Uuid::now_v7(),
        kind: FailureKind::Failed,
        error: "engine failed: boom".to_owned(),
        attempts: 3,
        inputs: input_ids,
        groups: vec![1; inputs.len()],
        subscription: Some(0),
        flush_reason: Some(FlushReason::Timeout),
        failed_at: at(seconds),
        workflow_error: error.id,
    };
    (record, error)
}

async fn reopen<F: StoreFactory>(factory: &F, store: F::Store, types: TypeRegistry) -> F::Store {
    factory
        .reopen(store, types)
        .await
        .expect("a durable store must reopen (StoreFactory::reopen returned None)")
}

/// Recording an agent notes how far the store goes: only later artifacts are its to
/// recover. Recording it again changes nothing; an unknown agent has nothing.
pub async fn register_agent_is_idempotent<F: StoreFactory>(factory: &F) {
    let store = factory.open(TypeRegistry::new()).await;
    if !store.is_durable() {
        return;
    }
    store.register_agent("early").expect("register");
    let x = shared(note(1, "external", 0));
    store.publish(x.clone()).await.expect("publish");
    store.register_agent("early").expect("register again");
    store.register_agent("late").expect("register");
    assert_eq!(
        unconsumed(&store, "early").await,
        vec![x.id],
        "recording an agent again must not move where it starts"
    );
    assert_eq!(
        unconsumed(&store, "late").await,
        Vec::<ArtifactId>::new(),
        "an agent recorded later does not see earlier artifacts"
    );
    let y = shared(note(2, "external", 1));
    store.publish(y.clone()).await.expect("publish");
    assert_eq!(unconsumed(&store, "late").await, vec![y.id], "late: y");
    assert_eq!(
        unconsumed(&store, "nobody").await,
        Vec::<ArtifactId>::new(),
        "an agent never recorded has nothing to recover"
    );
}

/// `commit_run` records its agent's consumption with its outputs; `unconsumed` is
/// per agent, in arrival order, and recording a consumption again is harmless.
pub async fn consumption_and_unconsumed<F: StoreFactory>(factory: &F) {
    let store = factory.open(TypeRegistry::new()).await;
    if !store.is_durable() {
        return;
    }
    store.register_agent("a").expect("register");
    store.register_agent("b").expect("register");
    let inputs: Vec<_> = (0..4).map(|i| shared(note(i, "external", i))).collect();
    store.publish_all(&inputs).await.expect("publish_all");
    let [x0, x1, x2, x3] = [&inputs[0], &inputs[1], &inputs[2], &inputs[3]];

    let out = shared(note(10, "a", 10));
    commit(&store, "a", &[x0, x2], std::slice::from_ref(&out))
        .await
        .expect("commit_run");
    assert!(
        store.get(out.id).await.expect("get").is_some(),
        "output stored"
    );
    assert_eq!(
        unconsumed(&store, "a").await,
        vec![x1.id, x3.id, out.id],
        "a consumed x0 and x2; its own output is new to it"
    );
    assert_eq!(
        unconsumed(&store, "b").await,
        vec![x0.id, x1.id, x2.id, x3.id, out.id],
        "consumption is per agent"
    );

    commit(&store, "a", &[x0, x1], &[])
        .await
        .expect("a run without outputs, re-recording x0");
    assert_eq!(
        unconsumed(&store, "a").await,
        vec![x3.id, out.id],
        "x0 again is harmless; x1 now consumed"
    );
    commit(&store, "b", &[x3, &out], &[])
        .await
        .expect("commit_run");
    assert_eq!(
        unconsumed(&store, "b").await,
        vec![x0.id, x1.id, x2.id],
        "b consumed x3 and a's output"
    );
}

/// A `commit_run` whose outputs include a known or repeated id stores nothing and
/// records nothing; a good one stores its outputs in order.
pub async fn commit_run_is_atomic<F: StoreFactory>(factory: &F) {
    let store = factory.open(TypeRegistry::new()).await;
    let durable = store.is_durable();
    store.register_agent("a").expect("register");
    let input = shared(note(0, "external", 0));
    store.publish(input.clone()).await.expect("publish");
    let (o1, o2) = (shared(note(1, "a", 1)), shared(note(2, "a", 2)));

    match commit(&store, "a", &[&input], &[o1.clone(), input.clone()]).await {
        Err(StoreError::Duplicate(id)) => assert_eq!(id, input.id, "the error names the id"),
        other => {
            panic!("commit_run with a known output id must fail with Duplicate, got {other:?}")
        }
    }
    match commit(
        &store,
        "a",
        &[&input],
        &[o1.clone(), o2.clone(), o1.clone()],
    )
    .await
    {
        Err(StoreError::Duplicate(id)) => assert_eq!(id, o1.id, "the error names the id"),
        other => {
            panic!("commit_run repeating an output id must fail with Duplicate, got {other:?}")
        }
    }
    assert!(
        store.get(o1.id).await.expect("get").is_none(),
        "o1 not stored"
    );
    assert!(
        store.get(o2.id).await.expect("get").is_none(),
        "o2 not stored"
    );
    assert_eq!(store.count().await.expect("count"), 1, "only the input");
    if durable {
        assert_eq!(
            unconsumed(&store, "a").await,
            vec![input.id],
            "a refused commit records no consumption"
        );
    }

    commit(&store, "a", &[&input], &[o1.clone(), o2.clone()])
        .await
        .expect("commit_run");
    let all = store.query(&ArtifactFilter::new()).await.expect("query");
    assert_eq!(ids(&all), vec![input.id, o1.id, o2.id], "outputs in order");
    if durable {
        assert_eq!(
            unconsumed(&store, "a").await,
            vec![o1.id, o2.id],
            "input consumed"
        );
    }
}

/// `commit_failure` keeps the failed run, stores its `WorkflowError` and records
/// its inputs consumed by its agent, all or nothing; `failures` lists the kept runs
/// oldest first; `forget_failure` removes one.
pub async fn failures_are_kept<F: StoreFactory>(factory: &F) {
    let store = factory.open(TypeRegistry::new()).await;
    if !store.is_durable() {
        return;
    }
    store.register_agent("a").expect("register");
    let inputs: Vec<_> = (0..4).map(|i| shared(note(i, "external", i))).collect();
    store.publish_all(&inputs).await.expect("publish_all");
    assert!(
        store.failures().await.expect("failures").is_empty(),
        "none yet"
    );

    let (f1, e1) = failure("a", &[&inputs[0], &inputs[1]], 10);
    store
        .commit_failure(kept(&f1, &e1))
        .await
        .expect("commit_failure");
    let (f2, e2) = failure("a", &[&inputs[2]], 11);
    store
        .commit_failure(kept(&f2, &e2))
        .await
        .expect("commit_failure");
    assert_eq!(
        store.failures().await.expect("failures"),
        vec![f1.clone(), f2.clone()],
        "failures, oldest first, every field kept"
    );
    let stored = store.get(e1.id).await.expect("get").expect("error stored");
    assert_same(&stored, &e1, "the WorkflowError artifact");
    assert_eq!(
        unconsumed(&store, "a").await,
        vec![inputs[3].id, e1.id, e2.id],
        "a failed run's inputs count as consumed"
    );

    // Its error artifact's id is known: nothing of this failure may be kept.
    let (mut f3, _) = failure("a", &[&inputs[3]], 12);
    f3.workflow_error = e1.id;
    match store.commit_failure(kept(&f3, &e1)).await {
        Err(StoreError::Duplicate(id)) => assert_eq!(id, e1.id, "the error names the id"),
        other => {
            panic!("commit_failure with a known error id must fail with Duplicate, got {other:?}")
        }
    }
    assert_eq!(
        store.failures().await.expect("failures"),
        vec![f1.clone(), f2.clone()],
        "a refused failure is not kept"
    );
    assert_eq!(
        unconsumed(&store, "a").await,
        vec![inputs[3].id, e1.id, e2.id],
        "a refused failure records no consumption"
    );

    store.forget_failure(f1.id).await.expect("forget");
    store
        .forget_failure(Uuid::now_v7())
        .await
        .expect("forgetting an unknown failure is no error");
    assert_eq!(
        store.failures().await.expect("failures"),
        vec![f2],
        "f1 forgotten"
    );
}

/// A retry of a failed run forgets it in its own commit: `commit_run` with
/// `retries` stores the outputs and forgets the failed run together, and
/// `commit_failure` with `retries` replaces it by the new failure; a refused commit
/// forgets nothing.
pub async fn retries_forget_their_failed_run<F: StoreFactory>(factory: &F) {
    let store = factory.open(TypeRegistry::new()).await;
    if !store.is_durable() {
        return;
    }
    store.register_agent("a").expect("register");
    let inputs: Vec<_> = (0..2).map(|i| shared(note(i, "external", i))).collect();
    store.publish_all(&inputs).await.expect("publish_all");
    let (f1, e1) = failure("a", &[&inputs[0]], 10);
    store
        .commit_failure(kept(&f1, &e1))
        .await
        .expect("commit_failure");

    // The retry fails again: the new failure replaces the old one.
    let (f2, e2) = failure("a", &[&inputs[0]], 11);
    store
        .commit_failure(FailureCommit {
            retries: Some(f1.id),
            ..kept(&f2, &e2)
        })
        .await
        .expect("commit_failure of a retry");
    assert_eq!(
        store.failures().await.expect("failures"),
        vec![f2.clone()],
        "the retried failure is replaced"
    );

    // A refused retry (its output id is known) forgets nothing.
    let refused = store
        .commit_run(RunCommit {
            agent: "a",
            run_id: Uuid::now_v7(),
            inputs: &[inputs[0].id],
            outputs: std::slice::from_ref(&e1),
            fence: None,
            retries: Some(f2.id),
        })
        .await;
    assert!(
        matches!(refused, Err(StoreError::Duplicate(_))),
        "a known output id is refused, got {refused:?}"
    );
    assert_eq!(
        store.failures().await.expect("failures"),
        vec![f2.clone()],
        "a refused commit forgets nothing"
    );

    // The retry succeeds: its outputs and the forgetting are one commit.
    let out = shared(note(100, "a", 20));
    store
        .commit_run(RunCommit {
            agent: "a",
            run_id: Uuid::now_v7(),
            inputs: &[inputs[0].id],
            outputs: std::slice::from_ref(&out),
            fence: None,
            retries: Some(f2.id),
        })
        .await
        .expect("commit_run of a retry");
    assert!(
        store.failures().await.expect("failures").is_empty(),
        "the failed run is forgotten with the retry's outputs"
    );
    assert!(store.get(out.id).await.expect("get").is_some());
}

/// A reopened durable store has every artifact (fields, order, count), every
/// agent's starting point and consumption, and the failed runs; new artifacts come
/// after the old ones.
pub async fn everything_survives_reopen<F: StoreFactory>(factory: &F) {
    let types = TypeRegistry::new();
    let store = factory.open(types.clone()).await;
    if !store.is_durable() {
        return;
    }
    store.register_agent("a").expect("register");
    let artifacts: Vec<_> = (0..5).map(|i| shared(rich_note(i))).collect();
    store
        .publish_all(&artifacts[..3])
        .await
        .expect("publish_all");
    store.register_agent("b").expect("register");
    store.publish(artifacts[3].clone()).await.expect("publish");
    let out = shared(note(100, "a", 50));
    commit(&store, "a", &[&artifacts[0]], std::slice::from_ref(&out))
        .await
        .expect("commit_run");
    let (failed, error) = failure("b", &[&artifacts[3]], 60);
    store
        .commit_failure(kept(&failed, &error))
        .await
        .expect("commit_failure");
    let before_a = unconsumed(&store, "a").await;
    let before_b = unconsumed(&store, "b").await;

    let store = reopen(factory, store, TypeRegistry::new()).await;
    let all = store.query(&ArtifactFilter::new()).await.expect("query");
    let mut expected: Vec<_> = artifacts[..4].to_vec();
    expected.extend([out.clone(), error.clone()]);
    assert_eq!(
        ids(&all),
        ids(&expected),
        "every artifact, in arrival order"
    );
    for (stored, original) in all.iter().zip(&expected) {
        assert_same(stored, original, "after a reopen");
    }
    assert_eq!(
        store.count().await.expect("count"),
        6,
        "count after a reopen"
    );
    assert_eq!(
        store.failures().await.expect("failures"),
        vec![failed],
        "failed runs after a reopen"
    );
    store
        .register_agent("b")
        .expect("register again after a reopen");
    store.register_agent("c").expect("register");
    assert_eq!(unconsumed(&store, "a").await, before_a, "a after a reopen");
    assert_eq!(unconsumed(&store, "b").await, before_b, "b after a reopen");

    store.publish(artifacts[4].clone()).await.expect("publish");
    let all = store.query(&ArtifactFilter::new()).await.expect("query");
    assert_eq!(
        all.last().map(|a| a.id),
        Some(artifacts[4].id),
        "a new artifact comes after the old ones"
    );
    assert_eq!(
        unconsumed(&store, "c").await,
        vec![artifacts[4].id],
        "an agent first recorded after the reopen sees only what came after"
    );
}

/// After a reopen, a payload whose type the new process has not registered comes
/// back as its JSON; once registered (in the registry the store was opened with, or
/// through `types()`), typed, from `get`, `query` and `unconsumed` alike.
pub async fn typed_decoding_after_reopen<F: StoreFactory>(factory: &F) {
    let types = TypeRegistry::new();
    types.register::<Note>().expect("register");
    let store = factory.open(types).await;
    if !store.is_durable() {
        return;
    }
    store.register_agent("a").expect("register");
    let stored = shared(note(5, "external", 0));
    store.publish(stored.clone()).await.expect("publish");

    let fresh = TypeRegistry::new();
    let store = reopen(factory, store, fresh.clone()).await;
    let got = store.get(stored.id).await.expect("get").expect("stored");
    assert_eq!(got.type_name(), Note::TYPE_NAME, "raw: the type name");
    assert!(got.get::<Note>().is_none(), "unregistered: not typed");
    assert_same(&got, &stored, "unregistered: the same JSON and metadata");

    let shared_types = store
        .types()
        .expect("a store that decodes must return its registry from types()");
    fresh.register::<Note>().expect("register");
    assert!(
        shared_types.contains(Note::TYPE_NAME),
        "types() shares the registry the store was opened with"
    );
    let expected = stored.get::<Note>();
    let got = store.get(stored.id).await.expect("get").expect("stored");
    assert_eq!(got.get::<Note>(), expected, "registered later: typed");
    let listed = store.list_by_type(Note::TYPE_NAME).await.expect("list");
    assert_eq!(listed[0].get::<Note>(), expected, "query: typed");
    let waiting = store.unconsumed("a").await.expect("unconsumed");
    assert_eq!(waiting[0].get::<Note>(), expected, "unconsumed: typed");
}
