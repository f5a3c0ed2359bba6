//! What the checks publish: two artifact types, artifacts with chosen metadata, and
//! comparisons that say which field differs.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Artifact, ArtifactId, Payload, Visibility};

/// The suite's main artifact type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, flock_macros::FlockType)]
#[flock(crate = "crate", name = "conformance.Note")]
pub(super) struct Note {
    pub(super) text: String,
    pub(super) n: i64,
}

/// A second type, for type filters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, flock_macros::FlockType)]
#[flock(crate = "crate", name = "conformance.Other")]
pub(super) struct Other {
    pub(super) value: f64,
}

/// A fixed instant the checks count from (so visibility and created ranges do not
/// depend on the wall clock).
pub(super) fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
        .expect("a valid instant")
        .with_timezone(&Utc)
}

/// `t0` plus `seconds`.
pub(super) fn at(seconds: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(seconds)
}

/// A public `Note` from `producer`, created at `at(seconds)`.
pub(super) fn note(n: i64, producer: &str, seconds: i64) -> Artifact {
    Artifact::new_at(
        Payload::new(Note {
            text: format!("note {n}"),
            n,
        }),
        producer,
        at(seconds),
    )
}

/// A public `Other` from `producer`, created at `at(seconds)`.
pub(super) fn other(value: f64, producer: &str, seconds: i64) -> Artifact {
    Artifact::new_at(Payload::new(Other { value }), producer, at(seconds))
}

/// A `Note` with every metadata field set to something other than its default.
pub(super) fn rich_note(n: i64) -> Artifact {
    let mut artifact = note(n, "writer", 7);
    artifact.set_correlation_id(Some(Uuid::now_v7()));
    artifact.set_partition_key(Some(format!("partition-{n}")));
    artifact.set_tags(["urgent", "billing"].map(str::to_owned).into());
    artifact.set_visibility(Visibility::AllOf {
        rules: vec![
            Visibility::tenant("acme"),
            Visibility::after(std::time::Duration::from_secs(30), None),
        ],
    });
    artifact.version = 3;
    // Nanoseconds must survive: a store that rounds them changes the artifact.
    artifact.created_at += TimeDelta::nanoseconds(123_456_789);
    artifact
}

pub(super) fn shared(artifact: Artifact) -> Arc<Artifact> {
    Arc::new(artifact)
}

/// Panics unless `stored` is `expected` in every field and in its payload's JSON.
#[track_caller]
pub(super) fn assert_same(stored: &Artifact, expected: &Artifact, context: &str) {
    assert_eq!(stored.id, expected.id, "{context}: id");
    assert_eq!(
        stored.type_name(),
        expected.type_name(),
        "{context}: type name"
    );
    assert_eq!(
        stored.payload.to_json().expect("stored payload serializes"),
        expected.payload.to_json().expect("payload serializes"),
        "{context}: payload of {}",
        expected.id
    );
    assert_eq!(
        stored.produced_by, expected.produced_by,
        "{context}: produced_by"
    );
    assert_eq!(
        stored.correlation_id(),
        expected.correlation_id(),
        "{context}: correlation_id"
    );
    assert_eq!(
        stored.partition_key(),
        expected.partition_key(),
        "{context}: partition_key"
    );
    assert_eq!(stored.tags(), expected.tags(), "{context}: tags");
    assert_eq!(
        stored.visibility(),
        expected.visibility(),
        "{context}: visibility"
    );
    assert_eq!(
        stored.created_at, expected.created_at,
        "{context}: created_at"
    );
    assert_eq!(stored.version, expected.version, "{context}: version");
}

/// The ids of `artifacts`, in order.
pub(super) fn ids(artifacts: &[Arc<Artifact>]) -> Vec<ArtifactId> {
    artifacts.iter().map(|a| a.id).collect()
}
