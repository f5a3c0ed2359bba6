//! Membership, leases and fencing between "processes": stores with pools of their
//! own on one schema, racing on a multi-thread runtime.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use flock_core::{
    Artifact, ArtifactId, BlackboardStore, ClusterStore, FailureCommit, FailureKind, FailureRecord,
    Lease, RunCommit, StoreError, TypeRegistry, WorkUnit,
};
use flock_store_postgres::PostgresStore;
use uuid::Uuid;

use crate::support::{fresh_schema, item, skip, store_in, units};

const LONG: Duration = Duration::from_secs(60);

fn held(leases: &[Lease]) -> BTreeSet<String> {
    leases.iter().map(|l| l.unit.to_string()).collect()
}

#[tokio::test]
async fn heartbeats_list_the_live_processes_sorted() {
    if skip() {
        return;
    }
    let schema = fresh_schema();
    let one = store_in(&schema, TypeRegistry::new()).await;
    let two = store_in(&schema, TypeRegistry::new()).await;
    assert_eq!(one.heartbeat("p-b", LONG).await.unwrap(), ["p-b"]);
    assert_eq!(two.heartbeat("p-a", LONG).await.unwrap(), ["p-a", "p-b"]);
    two.heartbeat("p-gone", Duration::from_millis(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        one.heartbeat("p-b", LONG).await.unwrap(),
        ["p-a", "p-b"],
        "an expired member is not listed"
    );
    two.release("p-a").await.unwrap();
    assert_eq!(
        one.heartbeat("p-b", LONG).await.unwrap(),
        ["p-b"],
        "release ends the membership"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_balancing_never_share_a_unit() {
    if skip() {
        return;
    }
    let schema = fresh_schema();
    let one = Arc::new(store_in(&schema, TypeRegistry::new()).await);
    let two = Arc::new(store_in(&schema, TypeRegistry::new()).await);
    let units = Arc::new(units("agent", 10));
    // Every (unit, epoch) ever handed out, with the process it went to.
    let mut owners: BTreeMap<(String, u64), &str> = BTreeMap::new();
    for round in 0..40 {
        // Greedy, then fair shares, then lopsided: units move between the two.
        let (want_one, want_two) = match round % 4 {
            0 => (10, 10),
            1 => (5, 5),
            2 => (7, 3),
            _ => (2, 8),
        };
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let spawn = |store: Arc<_>, name: &'static str, want: usize| {
            let (units, barrier) = (units.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let store: &PostgresStore = &store;
                store.balance(name, &units, want, LONG).await
            })
        };
        let a = spawn(one.clone(), "one", want_one);
        let b = spawn(two.clone(), "two", want_two);
        let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
        assert!(a.len() <= want_one && b.len() <= want_two, "round {round}");
        assert!(
            held(&a).is_disjoint(&held(&b)),
            "round {round}: one holds {:?}, two holds {:?}",
            held(&a),
            held(&b)
        );
        for (leases, name) in [(&a, "one"), (&b, "two")] {
            for lease in leases {
                let owner = owners
                    .entry((lease.unit.to_string(), lease.epoch))
                    .or_insert(name);
                assert_eq!(
                    *owner, name,
                    "round {round}: epoch {} of {} went to two processes",
                    lease.epoch, lease.unit
                );
            }
        }
    }
    // Settled on fair shares (each balancing in turn), every unit is held, by one
    // process each.
    one.balance("one", &units, 5, LONG).await.unwrap();
    two.balance("two", &units, 5, LONG).await.unwrap();
    let a = one.balance("one", &units, 5, LONG).await.unwrap();
    let b = two.balance("two", &units, 5, LONG).await.unwrap();
    assert_eq!((a.len(), b.len()), (5, 5));
    assert_eq!(held(&a).union(&held(&b)).count(), 10);
}

#[tokio::test]
async fn a_silent_process_loses_its_units_after_the_ttl() {
    if skip() {
        return;
    }
    let schema = fresh_schema();
    let one = store_in(&schema, TypeRegistry::new()).await;
    let two = store_in(&schema, TypeRegistry::new()).await;
    let units = units("agent", 10);
    let ttl = Duration::from_millis(300);
    one.heartbeat("one", ttl).await.unwrap();
    let first = one.balance("one", &units, 10, ttl).await.unwrap();
    assert_eq!(first.len(), 10, "a lone process takes every unit it wants");
    assert!(first.iter().all(|l| l.epoch == 1), "first owner: epoch 1");
    assert_eq!(
        two.balance("two", &units, 10, ttl).await.unwrap(),
        [],
        "live leases are not taken"
    );

    // `one` goes silent; `two` keeps balancing until it holds everything.
    let mut rounds = 0;
    let taken = loop {
        let members = two.heartbeat("two", ttl).await.unwrap();
        let leases = two.balance("two", &units, 10, ttl).await.unwrap();
        if leases.len() == 10 {
            break (members, leases);
        }
        rounds += 1;
        assert!(rounds < 1_000, "two never got the units");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (members, leases) = taken;
    assert!(
        !members.contains(&"one".to_owned()) || rounds == 0,
        "one's membership lapses with its leases: {members:?}"
    );
    assert!(
        leases.iter().all(|l| l.epoch == 2),
        "a takeover bumps the epoch: {leases:?}"
    );
    // The old owner comes back: it holds nothing, and gets nothing while `two` renews.
    assert_eq!(one.balance("one", &units, 10, ttl).await.unwrap(), []);
}

#[tokio::test]
async fn balance_gives_up_what_is_beyond_want_and_release_frees_all() {
    if skip() {
        return;
    }
    let schema = fresh_schema();
    let one = store_in(&schema, TypeRegistry::new()).await;
    let two = store_in(&schema, TypeRegistry::new()).await;
    let units = units("agent", 6);
    assert_eq!(one.balance("one", &units, 6, LONG).await.unwrap().len(), 6);
    let kept = one.balance("one", &units, 2, LONG).await.unwrap();
    assert_eq!(kept.len(), 2, "four given up");
    assert!(
        kept.iter().all(|l| l.epoch == 1),
        "kept leases keep their epoch"
    );
    let taken = two.balance("two", &units, 6, LONG).await.unwrap();
    let all: BTreeSet<String> = units.iter().map(ToString::to_string).collect();
    assert_eq!(
        held(&taken),
        &all - &held(&kept),
        "two takes what one gave up"
    );
    assert!(
        taken.iter().all(|l| l.epoch == 2),
        "given-up units change owner"
    );
    two.release("two").await.unwrap();
    let all = one.balance("one", &units, 6, LONG).await.unwrap();
    assert_eq!(all.len(), 6, "released units are free at once");
}

/// A run of `agent` over `input` with one output, fenced by `(unit, epoch)`.
async fn commit(
    store: &PostgresStore,
    unit: &WorkUnit,
    epoch: u64,
    input: ArtifactId,
    output: &Arc<Artifact>,
) -> Result<(), StoreError> {
    store
        .commit_run(RunCommit {
            agent: "agent",
            run_id: Uuid::now_v7(),
            inputs: &[input],
            outputs: std::slice::from_ref(output),
            fence: Some((unit, epoch)),
            retries: None,
        })
        .await
}

/// Two stores of one schema: `one` leased the unit of `agent` (with one input
/// waiting) and stalled past the lease; `two` took it over.
struct Takeover {
    one: PostgresStore,
    two: PostgresStore,
    unit: WorkUnit,
    input: Arc<Artifact>,
    old: Lease,
    new: Lease,
}

async fn taken_over() -> Takeover {
    let schema = fresh_schema();
    let one = store_in(&schema, TypeRegistry::new()).await;
    let two = store_in(&schema, TypeRegistry::new()).await;
    let units = units("agent", 1);
    one.register_agent("agent").unwrap();
    let input = item(1);
    one.publish(input.clone()).await.unwrap();
    let ttl = Duration::from_millis(200);
    let old = one.balance("one", &units, 1, ttl).await.unwrap()[0].clone();
    let new = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(lease) = two.balance("two", &units, 1, LONG).await.unwrap().pop() {
            break lease;
        }
    };
    assert_eq!(new.epoch, old.epoch + 1);
    let unit = units.into_iter().next().unwrap();
    Takeover {
        one,
        two,
        unit,
        input,
        old,
        new,
    }
}

#[tokio::test]
async fn fencing_refuses_a_late_commit_from_the_old_owner() {
    if skip() {
        return;
    }
    let Takeover {
        one,
        two,
        unit,
        input,
        old,
        new,
    } = taken_over().await;
    let unit = &unit;

    let late = item(2);
    match commit(&one, unit, old.epoch, input.id, &late).await {
        Err(StoreError::Fenced { unit: named, epoch }) => {
            assert_eq!((named, epoch), (unit.to_string(), old.epoch));
        }
        other => panic!("a commit with the old epoch must be fenced, got {other:?}"),
    }
    assert!(
        one.get(late.id).await.unwrap().is_none(),
        "nothing of it stored"
    );
    assert_eq!(
        two.unconsumed("agent").await.unwrap().len(),
        1,
        "its input is still the new owner's to run"
    );

    let fresh = item(3);
    commit(&two, unit, new.epoch, input.id, &fresh)
        .await
        .expect("the new owner commits");
    assert!(two.get(fresh.id).await.unwrap().is_some());
    assert_eq!(
        two.unconsumed("agent").await.unwrap().len(),
        1,
        "only its output waits"
    );

    // A lapsed lease fences too, even before anyone takes the unit over; so does
    // a unit nobody ever leased.
    two.release("two").await.unwrap();
    assert!(matches!(
        commit(&two, unit, new.epoch, input.id, &item(4)).await,
        Err(StoreError::Fenced { .. })
    ));
    let nobody = WorkUnit {
        agent: "other".to_owned(),
        subscription: 0,
        partition: None,
    };
    let outputs = vec![item(5)];
    let refused = two
        .commit_run(RunCommit {
            agent: "other",
            run_id: Uuid::now_v7(),
            inputs: &[],
            outputs: &outputs,
            fence: Some((&nobody, 1)),
            retries: None,
        })
        .await;
    assert!(
        matches!(refused, Err(StoreError::Fenced { .. })),
        "{refused:?}"
    );
}

/// A failed run of `agent` over `input`, its `WorkflowError` being `error`.
fn failed_run(input: ArtifactId, error: &Arc<Artifact>) -> FailureRecord {
    FailureRecord {
        id: Uuid::now_v7(),
        agent: "agent".to_owned(),
        run_id: Uuid::now_v7(),
        kind: FailureKind::Failed,
        error: "engine failed: boom".to_owned(),
        attempts: 1,
        inputs: vec![input],
        groups: vec![],
        subscription: None,
        flush_reason: None,
        failed_at: error.created_at,
        workflow_error: error.id,
    }
}

#[tokio::test]
async fn fencing_refuses_a_late_failed_run_from_the_old_owner() {
    if skip() {
        return;
    }
    let Takeover {
        one,
        two,
        unit,
        input,
        old,
        new,
    } = taken_over().await;
    let unit = &unit;

    // The old owner's run failed for good; keeping it comes too late.
    let error = item(2);
    let late = failed_run(input.id, &error);
    let refused = one
        .commit_failure(FailureCommit {
            failure: &late,
            error: &error,
            fence: Some((unit, old.epoch)),
            retries: None,
        })
        .await;
    assert!(
        matches!(refused, Err(StoreError::Fenced { .. })),
        "a failed run under the old epoch must be fenced, got {refused:?}"
    );
    assert!(
        two.failures().await.unwrap().is_empty(),
        "no failed run kept"
    );
    assert!(
        two.get(error.id).await.unwrap().is_none(),
        "no WorkflowError"
    );
    assert_eq!(
        two.unconsumed("agent").await.unwrap().len(),
        1,
        "its input is still the new owner's to run"
    );

    // The new owner's failed run is kept, and consumes the input.
    let error = item(3);
    let kept = failed_run(input.id, &error);
    two.commit_failure(FailureCommit {
        failure: &kept,
        error: &error,
        fence: Some((unit, new.epoch)),
        retries: None,
    })
    .await
    .expect("the new owner keeps its failed run");
    assert_eq!(two.failures().await.unwrap(), [kept]);
    assert_eq!(
        two.unconsumed("agent").await.unwrap().len(),
        1,
        "only the WorkflowError waits"
    );
}
