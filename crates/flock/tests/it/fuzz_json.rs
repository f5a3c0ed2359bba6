//! Fuzzing with proptest: the JSON publish path (`Flock::publish_json_str`,
//! `Flock::publish_json`, `TypeRegistry::decode_envelope`) and `Visibility`
//! deserialization, on arbitrary bytes, arbitrary text, arbitrary JSON values and
//! mutations of valid envelopes. Nothing panics; a refused publish is a
//! `PublishError` saying what was wrong with the input, and stores nothing; an
//! accepted one is exactly what serde accepts for the named type.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use flock::{AgentIdentity, PublishError, PublishOptions, prelude::*};
use proptest::{prelude::*, test_runner::TestCaseError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

// === the registered types: structs, options, vectors, a tagged enum, strictness ===

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FlockType)]
#[flock(name = "fuzz.Transaction")]
struct Transaction {
    transaction_id: String,
    amount: f64,
    currency: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FlockType)]
#[flock(name = "fuzz.Reading")]
struct Reading {
    device: u16,
    values: Vec<i32>,
    at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FlockType)]
#[flock(name = "fuzz.Command")]
#[serde(tag = "op", rename_all = "snake_case")]
enum Command {
    Start { id: u64 },
    Stop,
    Scale { factor: f32 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FlockType)]
#[flock(name = "fuzz.Strict")]
#[serde(deny_unknown_fields)]
struct Strict {
    flag: bool,
    inner: Inner,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Inner {
    bytes: Vec<Option<u8>>,
}

const TYPES: [&str; 4] = [
    "fuzz.Transaction",
    "fuzz.Reading",
    "fuzz.Command",
    "fuzz.Strict",
];

fn flock() -> Flock {
    let flock = Flock::builder().no_trace().build();
    flock.register_type::<Transaction>().unwrap();
    flock.register_type::<Reading>().unwrap();
    flock.register_type::<Command>().unwrap();
    flock.register_type::<Strict>().unwrap();
    flock
}

/// Whether serde accepts `payload` for the type registered as `type_name`: the
/// oracle for what the publish path must accept.
fn serde_accepts(type_name: &str, payload: &Value) -> bool {
    let payload = payload.clone();
    match type_name {
        "fuzz.Transaction" => serde_json::from_value::<Transaction>(payload).is_ok(),
        "fuzz.Reading" => serde_json::from_value::<Reading>(payload).is_ok(),
        "fuzz.Command" => serde_json::from_value::<Command>(payload).is_ok(),
        "fuzz.Strict" => serde_json::from_value::<Strict>(payload).is_ok(),
        _ => false,
    }
}

/// What the publish path may answer for input that is not a valid envelope: a
/// refusal about the input, with a message.
fn check_refusal(error: &PublishError) -> Result<(), TestCaseError> {
    prop_assert!(
        matches!(
            error,
            PublishError::MalformedEnvelope { .. }
                | PublishError::UnknownType { .. }
                | PublishError::InvalidPayload { .. }
        ),
        "unexpected error kind: {error:?}"
    );
    prop_assert!(!error.to_string().is_empty());
    Ok(())
}

/// Publishes `text` on a fresh flock; checks that a refusal is about the input and
/// stores nothing, and that an accepted envelope is stored under its type.
fn check_text(text: &str) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let flock = flock();
        let result = flock.publish_json_str(text).await;
        let stored = flock.query(&ArtifactFilter::new()).await.unwrap();
        match result {
            Ok(id) => {
                prop_assert_eq!(stored.len(), 1);
                prop_assert_eq!(stored[0].id, id);
                prop_assert!(TYPES.contains(&stored[0].type_name()));
            }
            Err(error) => {
                check_refusal(&error)?;
                prop_assert!(stored.is_empty(), "a refused publish stored something");
            }
        }
        Ok(())
    })
}

/// `decode_envelope` on `value`, checked against serde as the oracle.
fn check_value(flock: &Flock, value: &Value) -> Result<(), TestCaseError> {
    let expected = match value {
        Value::Object(object) => match (object.get("type"), object.get("payload")) {
            (Some(Value::String(name)), Some(payload)) => serde_accepts(name, payload),
            _ => false,
        },
        _ => false,
    };
    let result = flock.types().decode_envelope(value.clone());
    match &result {
        Ok(payload) => prop_assert!(TYPES.contains(&payload.type_name())),
        Err(error) => check_refusal(error)?,
    }
    prop_assert_eq!(result.is_ok(), expected, "{}", value);
    Ok(())
}

// === strategies ===

/// Any JSON value, with object keys that sometimes hit the envelope's and the
/// types' field names.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        4 => prop::sample::select(vec![
            "type", "payload", "transaction_id", "amount", "currency", "device", "values",
            "at", "op", "id", "factor", "flag", "inner", "bytes", "kind",
        ])
        .prop_map(str::to_owned),
        1 => ".{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(vec![
            "fuzz.Transaction",
            "fuzz.Reading",
            "fuzz.Command",
            "fuzz.Strict",
            "start",
            "stop",
            "scale",
            "2026-11-28T08:00:00Z",
            "EUR",
            "",
        ])
        .prop_map(|s| json!(s)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Payloads near the registered types: right fields with wrong or right values.
fn near_payload() -> impl Strategy<Value = Value> {
    prop_oneof![
        (".{0,6}", any::<f64>(), prop::option::of(".{0,3}")).prop_map(|(id, amount, currency)| {
            json!({"transaction_id": id, "amount": amount, "currency": currency})
        }),
        (
            prop_oneof![0i64..=65_535, any::<i64>()],
            prop::collection::vec(prop_oneof![-9i64..9, any::<i64>()], 0..4),
            prop_oneof![Just("2026-11-28T08:00:00Z".to_owned()), ".{0,25}"],
        )
            .prop_map(|(device, values, at)| json!({"device": device, "values": values, "at": at})),
        (
            prop::sample::select(vec!["start", "stop", "scale", "jump"]),
            any::<i64>(),
            any::<f32>()
        )
            .prop_map(|(op, id, factor)| json!({"op": op, "id": id, "factor": factor})),
        (
            any::<bool>(),
            prop::collection::vec(prop::option::of(any::<i16>()), 0..4),
            any::<bool>()
        )
            .prop_map(|(flag, bytes, extra)| {
                let mut strict = json!({"flag": flag, "inner": {"bytes": bytes}});
                if extra {
                    strict["surprise"] = json!(1);
                }
                strict
            }),
        json_value(),
    ]
}

/// An envelope for a registered (or unknown) type with a payload near it.
fn envelope() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            4 => prop::sample::select(TYPES.to_vec()).prop_map(str::to_owned),
            1 => ".{0,12}",
        ],
        near_payload(),
    )
        .prop_map(|(type_name, payload)| json!({"type": type_name, "payload": payload}))
}

/// Valid envelope text, then mutated: bytes replaced, inserted, removed, truncated.
fn mutated_text() -> impl Strategy<Value = String> {
    let valid = prop::sample::select(vec![
        json!({"type": "fuzz.Transaction", "payload": {"transaction_id": "t1", "amount": 12.5, "currency": "EUR"}}),
        json!({"type": "fuzz.Reading", "payload": {"device": 7, "values": [1, -2, 3], "at": "2026-11-28T08:00:00Z"}}),
        json!({"type": "fuzz.Command", "payload": {"op": "scale", "factor": 1.5}}),
        json!({"type": "fuzz.Strict", "payload": {"flag": true, "inner": {"bytes": [1, null, 255]}}}),
    ])
    .prop_map(|v| v.to_string());
    let edit = (any::<prop::sample::Index>(), 0u8..4, any::<u8>());
    (valid, prop::collection::vec(edit, 0..6)).prop_map(|(text, edits)| {
        let mut bytes = text.into_bytes();
        for (at, kind, byte) in edits {
            if bytes.is_empty() {
                break;
            }
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                2 => {
                    bytes.remove(i);
                }
                _ => bytes.truncate(i),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn visibility() -> impl Strategy<Value = Visibility> {
    let names = prop::collection::btree_set("[a-c]{1,2}", 0..3);
    let leaf = prop_oneof![
        Just(Visibility::Public),
        names
            .clone()
            .prop_map(|agents| Visibility::Private { agents }),
        names.prop_map(|required_labels| Visibility::Labelled { required_labels }),
        prop::option::of("[a-c]{1,2}").prop_map(|tenant_id| Visibility::Tenant { tenant_id }),
    ];
    leaf.prop_recursive(3, 6, 1, |inner| {
        (
            prop_oneof![0u64..5_000, Just(u64::MAX)],
            prop::option::of(inner),
        )
            .prop_map(|(ms, then)| Visibility::after(Duration::from_millis(ms), then))
    })
}

/// JSON near `Visibility`: a `kind` (known or not) with fields of any shape.
fn visibility_json() -> impl Strategy<Value = Value> {
    (
        prop::option::of(prop::sample::select(vec![
            "public", "private", "labelled", "tenant", "after", "Public", "nobody",
        ])),
        prop::collection::btree_map(
            prop::sample::select(vec![
                "agents",
                "required_labels",
                "tenant_id",
                "ttl",
                "then",
                "x",
            ]),
            prop_oneof![
                json_value(),
                visibility().prop_map(|v| serde_json::to_value(v).unwrap()),
                any::<u64>().prop_map(|n| json!(n)),
                prop::collection::vec("[a-c]{1,2}", 0..3).prop_map(|v| json!(v)),
            ],
            0..4,
        ),
    )
        .prop_map(|(kind, fields)| {
            let mut object: serde_json::Map<String, Value> =
                fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            if let Some(kind) = kind {
                object.insert("kind".to_owned(), json!(kind));
            }
            Value::Object(object)
        })
}

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![
        Just(DateTime::<Utc>::MIN_UTC),
        Just(DateTime::<Utc>::MAX_UTC),
        (-4_000_000_000i64..4_000_000_000).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
    ]
}

// === the properties ===

/// Cases of each fuzzing property (see `docs/reliability.md`).
pub(crate) const CASES: u32 = 2_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn arbitrary_text_never_panics_the_publish_path(text in ".{0,64}") {
        check_text(&text)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_publish_path(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
        check_text(&String::from_utf8_lossy(&bytes))?;
        // Bytes that parse as JSON take the value path too.
        if let Ok(value) = serde_json::from_slice::<Value>(&bytes) {
            check_value(&flock(), &value)?;
        }
    }

    #[test]
    fn mutated_envelopes_never_panic_the_publish_path(text in mutated_text()) {
        check_text(&text)?;
    }

    #[test]
    fn arbitrary_json_is_decoded_exactly_when_serde_accepts_it(value in json_value()) {
        check_value(&flock(), &value)?;
    }

    #[test]
    fn envelopes_are_decoded_exactly_when_serde_accepts_their_payload(value in envelope()) {
        let flock = flock();
        check_value(&flock, &value)?;
        // The text path agrees with the value path.
        check_text(&value.to_string())?;
    }

    #[test]
    fn arbitrary_visibility_json_never_panics(value in visibility_json(), text in ".{0,40}") {
        if let Ok(visibility) = serde_json::from_value::<Visibility>(value.clone()) {
            // What deserializes serializes back to itself.
            let again = serde_json::to_value(&visibility).unwrap();
            prop_assert_eq!(serde_json::from_value::<Visibility>(again).unwrap(), visibility);
        }
        let _ = serde_json::from_str::<Visibility>(&value.to_string());
        let _ = serde_json::from_str::<Visibility>(&text);
        let _ = serde_json::from_str::<AgentIdentity>(&text);
    }

    #[test]
    fn visibilities_round_trip_and_their_checks_never_panic(
        visibility in visibility(),
        created in instant(),
        now in instant(),
        name in "[a-c]{1,2}",
        labels in prop::collection::btree_set("[a-c]{1,2}", 0..3),
        tenant in prop::option::of("[a-c]{1,2}"),
    ) {
        let json = serde_json::to_string(&visibility).unwrap();
        prop_assert_eq!(&serde_json::from_str::<Visibility>(&json).unwrap(), &visibility);
        let identity = AgentIdentity::new(name).with_labels(labels).with_tenant_opt(tenant);
        let _ = visibility.allows(&identity, created, now);
        if let Some(from) = visibility.visible_from(created) {
            prop_assert!(from >= created);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any visibility, even one that begins after the calendar ends, is accepted
    /// by publish and handled by dispatch and shutdown without a panic.
    #[test]
    fn publishing_with_any_visibility_never_panics(
        visibilities in prop::collection::vec(visibility(), 1..6),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let flock = flock();
            let (runs, engine) = crate::recorder();
            flock
                .agent("a")
                .consumes::<crate::Item>(
                    Subscribe::new().batch(BatchSpec::size(2).timeout(Duration::from_millis(50))),
                )
                .with_engine(engine)
                .register()
                .unwrap();
            for (id, visibility) in visibilities.iter().enumerate() {
                flock
                    .publish_with(
                        crate::Item { id: id as i64 },
                        PublishOptions::new().visibility(visibility.clone()),
                    )
                    .await
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
            flock.run_until_idle().await;
            let report = flock.shutdown().await;
            let delivered: usize = runs.lock().iter().map(|r| r.ids.len()).sum();
            prop_assert!(delivered + report.deferred_undelivered <= visibilities.len());
            Ok(())
        })?;
    }
}

/// serde_json's recursion limit turns deeply nested text into an error, not a stack
/// overflow, on both the text and the envelope path.
#[tokio::test]
async fn deeply_nested_json_is_refused_not_a_stack_overflow() {
    let flock = flock();
    for depth in [200, 10_000, 100_000] {
        let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let err = flock.publish_json_str(&text).await.unwrap_err();
        assert!(
            err.to_string().contains("recursion limit exceeded"),
            "{depth}: {err}"
        );
        let payload = format!(
            r#"{{"type": "fuzz.Transaction", "payload": {}{}}}"#,
            "{\"a\":".repeat(depth),
            "1}".repeat(depth)
        );
        let err = flock.publish_json_str(&payload).await.unwrap_err();
        assert!(
            err.to_string().contains("recursion limit exceeded"),
            "{depth}: {err}"
        );
        let visibility = format!(
            "{}{}",
            r#"{"kind": "after", "ttl": 1, "then": "#.repeat(depth),
            "}".repeat(depth)
        );
        assert!(serde_json::from_str::<Visibility>(&visibility).is_err());
    }
    assert!(
        flock
            .query(&ArtifactFilter::new())
            .await
            .unwrap()
            .is_empty()
    );
}

/// The largest `After` ttl JSON can carry is a visibility that never begins within
/// chrono's calendar; it deserializes, and checks and dispatch cope.
#[tokio::test(start_paused = true)]
async fn after_with_the_largest_ttl_never_begins_and_harms_nothing() {
    let visibility: Visibility = serde_json::from_value(json!({
        "kind": "after", "ttl": u64::MAX, "then": {"kind": "tenant", "tenant_id": "acme"}
    }))
    .unwrap();
    let created = Utc::now();
    assert_eq!(
        visibility.visible_from(created),
        Some(DateTime::<Utc>::MAX_UTC)
    );
    let reader = AgentIdentity::new("reader").with_tenant("acme");
    assert!(!visibility.allows(&reader, created, created + TimeDelta::days(365 * 1000)));
    let flock = flock();
    let (runs, engine) = crate::recorder();
    flock
        .agent("reader")
        .tenant("acme")
        .consumes::<crate::Item>(Subscribe::new().batch(BatchSpec::size(1)))
        .with_engine(engine)
        .register()
        .unwrap();
    flock
        .publish_with(
            crate::Item { id: 1 },
            PublishOptions::new().visibility(visibility),
        )
        .await
        .unwrap();
    flock.run_until_idle().await;
    let report = flock.shutdown().await;
    assert!(runs.lock().is_empty());
    assert!(report.deferred_undelivered <= 1);
}
