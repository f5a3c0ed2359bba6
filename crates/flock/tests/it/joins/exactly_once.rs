//! Property: nothing lost, nothing duplicated.

use std::{collections::HashMap, sync::Arc, time::Duration};

use flock::{ArtifactId, prelude::*};
use flock_test_support::Capture;
use parking_lot::Mutex;
use proptest::prelude::*;
use tokio::time::advance;

use crate::{SignalA, SignalB};

type Seen = Arc<Mutex<Vec<Vec<(ArtifactId, String)>>>>;

fn record(inputs: &Inputs) -> Vec<(ArtifactId, String)> {
    inputs
        .artifacts()
        .iter()
        .map(|a| {
            let key = a
                .get::<SignalA>()
                .map(|s| s.correlation_id.clone())
                .or_else(|| a.get::<SignalB>().map(|s| s.correlation_id.clone()))
                .unwrap_or_default();
            (a.id, key)
        })
        .collect()
}

fn gate() -> AllOf {
    AllOf::new().of::<SignalA>().of::<SignalB>()
}

fn key_spec() -> flock::subscription::JoinSpecBuilder<String> {
    JoinSpec::by(|a: &SignalA| a.correlation_id.clone()).by(|b: &SignalB| b.correlation_id.clone())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn every_artifact_reaches_one_group_or_one_traced_discard(
        arrivals in prop::collection::vec((any::<bool>(), 0u8..3, 0u64..90), 0..40),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async move {
            let (spans, _guard) = Capture::install();
            let flock = Flock::new();
            let timed: Seen = Arc::default();
            let sink = timed.clone();
            flock
                .agent("timed")
                .consumes_all(gate().join(key_spec().within(Duration::from_millis(100))))
                .with_engine(group_fn(move |_: &EngineContext, inputs: Inputs| {
                    sink.lock().push(record(&inputs));
                    Ok::<_, String>(Outputs::none())
                }))
                .register()
                .unwrap();
            let counted: Seen = Arc::default();
            let sink = counted.clone();
            flock
                .agent("counted_batched")
                .consumes_all(
                    gate()
                        .join(key_spec().within(4))
                        .batch(BatchSpec::size(2).timeout(Duration::from_millis(150))),
                )
                .with_engine(group_batch_fn(move |_: &EngineContext, groups: Vec<Inputs>| {
                    sink.lock().extend(groups.iter().map(record));
                    Ok::<_, String>(Outputs::none())
                }))
                .register()
                .unwrap();

            let mut published = Vec::new();
            for (is_a, key, gap) in &arrivals {
                let key = format!("k{key}");
                let id = if *is_a {
                    flock.publish(SignalA::new(&key, "")).await.unwrap()
                } else {
                    flock.publish(SignalB::new(&key, "")).await.unwrap()
                };
                published.push(id);
                advance(Duration::from_millis(*gap)).await;
            }
            flock.run_until_idle().await;
            flock.shutdown().await;
            published.sort_unstable();

            let discards = spans.spans("join.discard");
            for (agent, seen) in [("timed", &timed), ("counted_batched", &counted)] {
                let mut got: Vec<ArtifactId> = Vec::new();
                for group in seen.lock().iter() {
                    assert_eq!(group.len(), 2, "{agent}: a group is one A and one B");
                    assert_eq!(group[0].1, group[1].1, "{agent}: a group shares its key");
                    got.extend(group.iter().map(|(id, _)| *id));
                }
                for d in discards.iter().filter(|d| d.field("agent") == agent) {
                    got.extend(d.field("artifact_ids").split(',').map(|id| id.parse::<ArtifactId>().unwrap()));
                }
                got.sort_unstable();
                let mut counts: HashMap<ArtifactId, usize> = HashMap::new();
                for id in &got {
                    *counts.entry(*id).or_default() += 1;
                }
                assert!(counts.values().all(|n| *n == 1), "{agent}: an artifact left twice");
                assert_eq!(got, published, "{agent}: every artifact leaves exactly once");
            }
        });
    }
}
