//! Checks of storing artifacts: publish and get, duplicates, `publish_all`'s
//! all-or-none, arrival order, and payloads typed or raw.

use super::{
    StoreFactory,
    fixtures::{Note, Other, assert_same, ids, note, other, rich_note, shared},
};
use crate::{
    ArtifactFilter, ArtifactId, BlackboardStore, FlockType, Payload, StoreError, TypeRegistry,
};

/// A published artifact comes back from `get` with every field intact; an unknown
/// id is `None`; `count` counts what was stored.
pub async fn publish_and_get<F: StoreFactory>(factory: &F) {
    let store = factory.open(TypeRegistry::new()).await;
    assert_eq!(
        store.count().await.expect("count"),
        0,
        "a fresh store is empty"
    );
    assert!(
        store.get(ArtifactId::new()).await.expect("get").is_none(),
        "get of an unknown id is None"
    );

    let plain = shared(note(1, "external", 0));
    let rich = shared(rich_note(2));
    store.publish(plain.clone()).await.expect("publish");
    store.publish(rich.clone()).await.expect("publish");

    let got = store.get(plain.id).await.expect("get").expect("stored");
    assert_same(&got, &plain, "publish_and_get (plain)");
    let got = store.get(rich.id).await.expect("get").expect("stored");
    assert_same(&got, &rich, "publish_and_get (every field set)");
    assert_eq!(store.count().await.expect("count"), 2, "count after two");
}

/// Publishing a known id fails with `Duplicate` naming it, and stores nothing.
pub async fn duplicate_publish_is_refused<F: StoreFactory>(factory: &F) {
    let store = factory.open(TypeRegistry::new()).await;
    let first = shared(note(1, "external", 0));
    store.publish(first.clone()).await.expect("publish");

    let mut again = note(99, "someone-else", 5);
    again.id = first.id;
    match store.publish(shared(again)).await {
        Err(StoreError::Duplicate(id)) => assert_eq!(id, first.id, "the error names the id"),
        other => panic!("publishing a known id must fail with Duplicate, got {other:?}"),
    }
    assert_eq!(
        store.count().await.expect("count"),
        1,
        "nothing more stored"
    );
    let kept = store.get(first.id).await.expect("get").expect("stored");
    assert_same(&kept, &first, "the first artifact stays as it was");
}

/// `publish_all` stores all of its artifacts or none: a known id, or an id repeated
/// within the call, refuses them all.
pub async fn publish_all_is_atomic<F: StoreFactory>(factory: &F) {
    let store = factory.open(TypeRegistry::new()).await;
    let known = shared(note(0, "external", 0));
    store.publish(known.clone()).await.expect("publish");

    let (a, b) = (shared(note(1, "x", 1)), shared(note(2, "x", 2)));
    match store
        .publish_all(&[a.clone(), b.clone(), known.clone()])
        .await
    {
        Err(StoreError::Duplicate(id)) => assert_eq!(id, known.id, "the error names the id"),
        other => panic!("publish_all with a known id must fail with Duplicate, got {other:?}"),
    }
    for artifact in [&a, &b] {
        assert!(
            store.get(artifact.id).await.expect("get").is_none(),
            "publish_all refused: none of its artifacts may be stored"
        );
    }

    let c = shared(note(3, "x", 3));
    match store.publish_all(&[c.clone(), a.clone(), c.clone()]).await {
        Err(StoreError::Duplicate(id)) => assert_eq!(id, c.id, "the error names the id"),
        other => panic!("publish_all repeating an id must fail with Duplicate, got {other:?}"),
    }
    assert!(
        store.get(c.id).await.expect("get").is_none(),
        "c not stored"
    );
    assert!(
        store.get(a.id).await.expect("get").is_none(),
        "a not stored"
    );
    assert_eq!(
        store.count().await.expect("count"),
        1,
        "only the first publish"
    );

    store
        .publish_all(&[])
        .await
        .expect("publish_all of nothing");
    store
        .publish_all(&[a.clone(), b.clone()])
        .await
        .expect("publish_all");
    let all = store.query(&ArtifactFilter::new()).await.expect("query");
    assert_eq!(ids(&all), vec![known.id, a.id, b.id], "stored, in order");
}

/// Queries and `list_by_type` return artifacts in the order they were stored, not
/// by id or by `created_at`.
pub async fn arrival_order<F: StoreFactory>(factory: &F) {
    let store = factory.open(TypeRegistry::new()).await;
    // Ids and creation times both run against arrival order.
    let mut artifacts: Vec<_> = (0..6)
        .map(|i| {
            if i % 2 == 0 {
                note(i, "p", 100 - i)
            } else {
                other(i as f64, "p", 100 - i)
            }
        })
        .collect();
    let mut fresh_ids: Vec<ArtifactId> = (0..6).map(|_| ArtifactId::new()).collect();
    fresh_ids.reverse();
    for (artifact, id) in artifacts.iter_mut().zip(fresh_ids) {
        artifact.id = id;
    }
    let artifacts: Vec<_> = artifacts.into_iter().map(shared).collect();
    store.publish(artifacts[0].clone()).await.expect("publish");
    store
        .publish_all(&artifacts[1..4])
        .await
        .expect("publish_all");
    for artifact in &artifacts[4..] {
        store.publish(artifact.clone()).await.expect("publish");
    }

    let all = store.query(&ArtifactFilter::new()).await.expect("query");
    assert_eq!(ids(&all), ids(&artifacts), "query: arrival order");
    let notes = store.list_by_type(Note::TYPE_NAME).await.expect("list");
    let expected: Vec<_> = [0, 2, 4].map(|i| artifacts[i].id).into();
    assert_eq!(ids(&notes), expected, "list_by_type: arrival order");
    let two_types = store
        .query(
            &ArtifactFilter::new()
                .type_name(Other::TYPE_NAME)
                .type_name(Note::TYPE_NAME),
        )
        .await
        .expect("query");
    assert_eq!(
        ids(&two_types),
        ids(&artifacts),
        "two types: arrival order across them"
    );
    assert!(
        store
            .list_by_type("conformance.Unknown")
            .await
            .expect("list")
            .is_empty(),
        "an unknown type lists nothing"
    );
}

/// Payloads come back typed when their type is registered in the store's registry
/// (also when registered after the store was opened: the registry is shared), and
/// a payload published as raw JSON comes back as the same JSON.
pub async fn typed_and_raw_payloads<F: StoreFactory>(factory: &F) {
    let types = TypeRegistry::new();
    let store = factory.open(types.clone()).await;
    // Registered after the store was opened, as a flock's agents register types.
    types.register::<Note>().expect("register");
    if let Some(store_types) = store.types() {
        assert!(
            store_types.contains(Note::TYPE_NAME),
            "types() must share the registry the store was opened with"
        );
    }

    let typed = shared(note(7, "external", 0));
    store.publish(typed.clone()).await.expect("publish");
    let got = store.get(typed.id).await.expect("get").expect("stored");
    assert_eq!(
        got.get::<Note>(),
        typed.get::<Note>(),
        "a registered type comes back typed"
    );
    let listed = store.list_by_type(Note::TYPE_NAME).await.expect("list");
    assert_eq!(
        listed.first().and_then(|a| a.get::<Note>()),
        typed.get::<Note>(),
        "queries decode typed too"
    );

    let json = serde_json::json!({"shape": "circle", "radius": 2.5, "tags": ["a", "b"]});
    let raw = shared(crate::Artifact::new_at(
        Payload::raw_json("conformance.Unregistered", json.clone()),
        "external",
        super::fixtures::t0(),
    ));
    store.publish(raw.clone()).await.expect("publish raw JSON");
    let got = store.get(raw.id).await.expect("get").expect("stored");
    assert_eq!(
        got.type_name(),
        "conformance.Unregistered",
        "raw: type name"
    );
    assert_eq!(
        got.payload.to_json().expect("json"),
        json,
        "raw: the same JSON"
    );
    assert!(!got.payload.is::<Note>(), "raw: no Rust type");
}
