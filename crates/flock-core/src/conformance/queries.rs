//! Checks of `query`: every field of `ArtifactFilter`, the limit counted after
//! filtering, and visibility judged for an identity at an instant.

use std::{sync::Arc, time::Duration};

use uuid::Uuid;

use super::{
    StoreFactory,
    fixtures::{Note, Other, at, ids, note, other, shared},
};
use crate::{
    AgentIdentity, Artifact, ArtifactFilter, ArtifactId, BlackboardStore, FlockType, TypeRegistry,
    Visibility,
};

async fn check<S: BlackboardStore>(
    store: &S,
    filter: ArtifactFilter,
    expected: &[&Arc<Artifact>],
    what: &str,
) {
    let got = store.query(&filter).await.expect("query");
    let expected: Vec<ArtifactId> = expected.iter().map(|a| a.id).collect();
    assert_eq!(ids(&got), expected, "query {what}: {filter:?}");
}

/// Each filter field alone and together: types, producers, correlation id, tags
/// (any of them), the created range `[after, before)`.
pub async fn query_filters<F: StoreFactory>(factory: &F) {
    let store = factory.open(TypeRegistry::new()).await;
    let conversation = Uuid::now_v7();
    let mut a = note(1, "alice", 10);
    a.set_tags(["red", "blue"].map(str::to_owned).into());
    a.set_correlation_id(Some(conversation));
    let mut b = other(2.0, "bob", 20);
    b.set_tags(["blue"].map(str::to_owned).into());
    let mut c = note(3, "bob", 30);
    c.set_correlation_id(Some(conversation));
    let mut d = other(4.0, "carol", 40);
    d.set_tags(["green"].map(str::to_owned).into());
    d.set_correlation_id(Some(Uuid::now_v7()));
    let [a, b, c, d] = [a, b, c, d].map(shared);
    store
        .publish_all(&[a.clone(), b.clone(), c.clone(), d.clone()])
        .await
        .expect("publish_all");

    check(&store, ArtifactFilter::new(), &[&a, &b, &c, &d], "all").await;
    let by_type = ArtifactFilter::new().type_name(Note::TYPE_NAME);
    check(&store, by_type, &[&a, &c], "type").await;
    let two_types = ArtifactFilter::new()
        .type_name(Note::TYPE_NAME)
        .type_name(Other::TYPE_NAME);
    check(&store, two_types, &[&a, &b, &c, &d], "two types").await;
    let unknown_type = ArtifactFilter::new().type_name("conformance.Nothing");
    check(&store, unknown_type, &[], "unknown type").await;
    let producer = ArtifactFilter::new().produced_by("bob");
    check(&store, producer, &[&b, &c], "producer").await;
    let producers = ArtifactFilter::new()
        .produced_by("alice")
        .produced_by("carol");
    check(&store, producers, &[&a, &d], "two producers").await;
    let correlated = ArtifactFilter::new().correlation_id(conversation);
    check(&store, correlated, &[&a, &c], "correlation id").await;
    let blue = ArtifactFilter::new().tag("blue");
    check(&store, blue, &[&a, &b], "tag").await;
    let any_tag = ArtifactFilter::new().tag("red").tag("green");
    check(&store, any_tag, &[&a, &d], "any of two tags").await;
    let no_such_tag = ArtifactFilter::new().tag("purple");
    check(&store, no_such_tag, &[], "unknown tag").await;
    let range = ArtifactFilter::new().created_between(Some(at(20)), Some(at(40)));
    check(&store, range, &[&b, &c], "created in [20s, 40s)").await;
    let after = ArtifactFilter::new().created_between(Some(at(30)), None);
    check(&store, after, &[&c, &d], "created from 30s").await;
    let before = ArtifactFilter::new().created_between(None, Some(at(11)));
    check(&store, before, &[&a], "created before 11s").await;
    let together = ArtifactFilter::new()
        .type_name(Note::TYPE_NAME)
        .produced_by("bob")
        .correlation_id(conversation)
        .created_between(Some(at(0)), Some(at(100)));
    check(&store, together, &[&c], "fields together").await;
    let nothing = ArtifactFilter::new().type_name(Other::TYPE_NAME).tag("red");
    check(&store, nothing, &[], "no artifact matches every field").await;
}

/// `limit` keeps the oldest matches, counted after filtering.
pub async fn query_limit<F: StoreFactory>(factory: &F) {
    let store = factory.open(TypeRegistry::new()).await;
    let artifacts: Vec<_> = (0..10)
        .map(|i| {
            shared(if i % 3 == 0 {
                note(i, "p", i)
            } else {
                other(i as f64, "p", i)
            })
        })
        .collect();
    store.publish_all(&artifacts).await.expect("publish_all");
    let notes = [&artifacts[0], &artifacts[3], &artifacts[6], &artifacts[9]];

    let first_two = ArtifactFilter::new().type_name(Note::TYPE_NAME).limit(2);
    check(&store, first_two, &notes[..2], "limit 2 of one type").await;
    let more = ArtifactFilter::new().type_name(Note::TYPE_NAME).limit(100);
    check(&store, more, &notes, "a limit above the matches").await;
    let zero = ArtifactFilter::new().limit(0);
    check(&store, zero, &[], "limit 0").await;
    let three = ArtifactFilter::new().limit(3);
    let expected: Vec<_> = artifacts[..3].iter().collect();
    check(&store, three, &expected, "limit 3 of all").await;
}

/// `visible_to` returns only what the identity may see at `as_of`; the limit counts
/// visible artifacts.
pub async fn visibility_filter<F: StoreFactory>(factory: &F) {
    let store = factory.open(TypeRegistry::new()).await;
    let with = |n: i64, visibility: Visibility| {
        let mut artifact = note(n, "p", 0);
        artifact.set_visibility(visibility);
        shared(artifact)
    };
    let public = with(0, Visibility::Public);
    let private = with(1, Visibility::private(["auditor"]));
    let labelled = with(2, Visibility::labelled(["pii"]));
    let acme = with(3, Visibility::tenant("acme"));
    let later = with(
        4,
        Visibility::after(Duration::from_secs(60), Some(Visibility::tenant("acme"))),
    );
    let public_too = with(5, Visibility::Public);
    let all = [&public, &private, &labelled, &acme, &later, &public_too];
    store
        .publish_all(&all.map(Arc::clone))
        .await
        .expect("publish_all");

    let anyone = AgentIdentity::new("anyone");
    let auditor = AgentIdentity::new("auditor");
    let acme_pii = AgentIdentity::new("worker")
        .with_tenant("acme")
        .with_labels(["pii"]);
    let seen = |identity: &AgentIdentity, seconds: i64| {
        ArtifactFilter::new()
            .visible_to(identity.clone())
            .as_of(at(seconds))
    };
    check(&store, seen(&anyone, 10), &[&public, &public_too], "anyone").await;
    check(
        &store,
        seen(&auditor, 10),
        &[&public, &private, &public_too],
        "the named agent",
    )
    .await;
    check(
        &store,
        seen(&acme_pii, 10),
        &[&public, &labelled, &acme, &public_too],
        "tenant and label, before the After artifact is visible",
    )
    .await;
    check(
        &store,
        seen(&acme_pii, 61),
        &[&public, &labelled, &acme, &later, &public_too],
        "tenant and label, once the After artifact is visible",
    )
    .await;
    check(
        &store,
        seen(&anyone, 61),
        &[&public, &public_too],
        "After then tenant: still not for another tenant",
    )
    .await;
    check(
        &store,
        seen(&acme_pii, 10).limit(3),
        &[&public, &labelled, &acme],
        "the limit counts visible artifacts",
    )
    .await;
    check(
        &store,
        seen(&anyone, 10).limit(1).tag("none"),
        &[],
        "visibility and another filter",
    )
    .await;
    check(
        &store,
        ArtifactFilter::new(),
        &all,
        "no identity: everything",
    )
    .await;
}
