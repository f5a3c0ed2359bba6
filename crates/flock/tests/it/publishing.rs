//! Publishing typed values and JSON; reading the blackboard back.

use flock::{PublishError, PublishOptions, prelude::*};
use serde::{Deserialize, Serialize};

use crate::{Item, publish_ids};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FlockType)]
#[flock(name = "payments.Transaction")]
struct Transaction {
    transaction_id: String,
    amount: f64,
}

#[tokio::test]
async fn json_publish_by_type_name_reaches_typed_readers() {
    let flock = Flock::new();
    flock.register_type::<Transaction>().unwrap();
    flock
        .publish_json(serde_json::json!({
            "type": "payments.Transaction",
            "payload": {"transaction_id": "t1", "amount": 12.5}
        }))
        .await
        .unwrap();
    let txns = flock.get_by_type::<Transaction>().await.unwrap();
    assert_eq!(
        *txns[0],
        Transaction {
            transaction_id: "t1".into(),
            amount: 12.5
        }
    );
}

#[tokio::test]
async fn json_publish_errors_say_what_is_wrong() {
    let flock = Flock::new();
    flock.register_type::<Transaction>().unwrap();
    let check = |result: Result<_, PublishError>, expected: &str| {
        let message = result.unwrap_err().to_string();
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    };
    check(
        flock
            .publish_json(serde_json::json!({"type": "Nope", "payload": {}}))
            .await,
        "unknown artifact type 'Nope'; registered types: payments.Transaction",
    );
    check(
        flock
            .publish_json(serde_json::json!({"type": "payments.Transaction", "payload": {"transaction_id": "t"}}))
            .await,
        "payload does not fit artifact type 'payments.Transaction': missing field `amount`",
    );
    check(
        flock
            .publish_json(serde_json::json!({"type": "payments.Transaction", "payload": {"transaction_id": "t", "amount": "ten"}}))
            .await,
        "payload does not fit artifact type 'payments.Transaction' at field 'amount': invalid type: string \"ten\", expected f64",
    );
    check(
        flock.publish_json(serde_json::json!([1, 2])).await,
        "malformed artifact envelope: expected a JSON object, got an array",
    );
    check(
        flock.publish_json(serde_json::json!({"payload": {}})).await,
        "missing \"type\"",
    );
    check(
        flock
            .publish_json(serde_json::json!({"type": "payments.Transaction"}))
            .await,
        "missing \"payload\" for type 'payments.Transaction'",
    );
    check(flock.publish_json_str("{not json").await, "not valid JSON");
    assert!(
        flock
            .query(&ArtifactFilter::new())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn store_filters_by_type_producer_correlation_tags_and_time() {
    let flock = Flock::new();
    let correlation = uuid::Uuid::now_v7();
    publish_ids(&flock, [1]).await;
    let start = chrono::Utc::now();
    flock
        .publish_with(
            Item { id: 2 },
            PublishOptions::new()
                .correlation_id(correlation)
                .tags(["urgent"]),
        )
        .await
        .unwrap();
    flock
        .publish_with(
            BatchItem { value: 3 },
            PublishOptions::new().tags(["urgent"]),
        )
        .await
        .unwrap();
    let ids = |artifacts: Vec<std::sync::Arc<Artifact>>| -> Vec<String> {
        artifacts
            .iter()
            .map(|a| a.payload.to_json().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(flock
            .query(&ArtifactFilter::new().tag("urgent"))
            .await
            .unwrap()),
        vec![r#"{"id":2}"#, r#"{"value":3}"#]
    );
    assert_eq!(
        ids(flock
            .query(&ArtifactFilter::new().correlation_id(correlation))
            .await
            .unwrap()),
        vec![r#"{"id":2}"#]
    );
    assert_eq!(
        ids(flock
            .query(
                &ArtifactFilter::new()
                    .type_name("Item")
                    .created_between(Some(start), None)
            )
            .await
            .unwrap()),
        vec![r#"{"id":2}"#]
    );
    assert_eq!(
        flock
            .query(&ArtifactFilter::new().produced_by("external"))
            .await
            .unwrap()
            .len(),
        3
    );
    assert!(
        flock
            .query(&ArtifactFilter::new().produced_by("someone"))
            .await
            .unwrap()
            .is_empty()
    );
    let all_items = flock.get_by_type::<Item>().await.unwrap();
    assert_eq!(
        all_items.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![1, 2]
    );
}

#[tokio::test]
async fn publish_after_shutdown_is_refused() {
    let flock = Flock::new();
    flock.shutdown().await;
    let err = flock.publish(Item { id: 1 }).await.unwrap_err();
    assert!(matches!(err, PublishError::Closed), "{err}");
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FlockType)]
struct Order {
    customer: Customer,
    items: Vec<Line>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Customer {
    name: String,
    tier: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Line {
    sku: String,
    price: f64,
}

/// A payload of the wrong shape is refused with the path of the field that does not
/// fit, however deep it is.
#[tokio::test]
async fn payload_errors_name_the_path_of_the_field() {
    let flock = Flock::new();
    flock.register_type::<Order>().unwrap();
    let line = |price: serde_json::Value| serde_json::json!({"sku": "a", "price": price});
    let cases = [
        (
            serde_json::json!({"customer": {"name": "ada", "tier": 1}, "items": [line(1.0.into()), line(2.0.into()), line("lots".into())]}),
            "payload does not fit artifact type 'Order' at field 'items[2].price': invalid type: string \"lots\", expected f64",
        ),
        (
            serde_json::json!({"customer": {"name": "ada", "tier": 300}, "items": []}),
            "payload does not fit artifact type 'Order' at field 'customer.tier': invalid value: integer `300`, expected u8",
        ),
        (
            serde_json::json!({"customer": {"name": "ada", "tier": 1}, "items": [{"sku": "a"}]}),
            "payload does not fit artifact type 'Order' at field 'items[0]': missing field `price`",
        ),
        (
            serde_json::json!({"customer": {"name": "ada", "tier": 1}}),
            "payload does not fit artifact type 'Order': missing field `items`",
        ),
        (
            serde_json::json!("an order"),
            "payload does not fit artifact type 'Order': invalid type: string \"an order\", expected struct Order",
        ),
    ];
    for (payload, expected) in cases {
        let err = flock
            .publish_json(serde_json::json!({"type": "Order", "payload": payload}))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), expected);
        match err {
            PublishError::InvalidPayload { path, .. } => {
                let shown = expected
                    .split_once(" at field '")
                    .map(|(_, rest)| rest.split_once('\'').unwrap().0.to_owned());
                assert_eq!(path, shown, "{expected}");
            }
            other => panic!("expected InvalidPayload, got {other:?}"),
        }
    }
    assert!(flock.get_by_type::<Order>().await.unwrap().is_empty());
}
