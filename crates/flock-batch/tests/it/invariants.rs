//! Property: whatever the interleaving of pushes, clock advances and flushes, every
//! item reaches exactly one batch, in order, no batch exceeds its size, and each
//! flush reason is truthful.

use std::time::{Duration, Instant};

use flock_batch::{Batch, Batcher, FlushReason};
use proptest::prelude::*;

use crate::spec;

#[derive(Debug, Clone)]
enum Op {
    Push { key: u8 },
    Advance { ms: u64 },
    FlushAll,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..4).prop_map(|key| Op::Push { key }),
        3 => (0u64..400).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::FlushAll),
    ]
}

fn spec_for(key: u8) -> flock_subscription::BatchSpec {
    match key {
        0 => spec(Some(3), None),
        1 => spec(Some(5), Some(250)),
        2 => spec(None, Some(100)),
        _ => spec(Some(1), Some(50)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn nothing_lost_nothing_duplicated_order_kept(ops in prop::collection::vec(op(), 0..200)) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut b: Batcher<u8, u32> = Batcher::new();
        let mut next_item = 0u32;
        let mut flushed: Vec<Batch<u8, u32>> = Vec::new();
        for op in ops {
            match op {
                Op::Push { key } => {
                    let pushed = b.push(key, spec_for(key), next_item, now);
                    next_item += 1;
                    flushed.extend(pushed.flushed);
                }
                Op::Advance { ms } => {
                    now += Duration::from_millis(ms);
                    flushed.extend(b.poll_expired(now));
                }
                Op::FlushAll => flushed.extend(b.flush_all(FlushReason::Manual, now)),
            }
        }
        flushed.extend(b.flush_all(FlushReason::Shutdown, now));
        prop_assert!(b.is_empty());
        prop_assert_eq!(b.waiting(), 0);

        let mut seen: Vec<u32> = Vec::new();
        for batch in &flushed {
            let size = batch.spec.max_size().map(|n| n.get());
            prop_assert!(!batch.items.is_empty());
            prop_assert!(size.is_none_or(|size| batch.items.len() <= size));
            prop_assert!(batch.items.windows(2).all(|w| w[0] < w[1]), "order kept");
            match batch.reason {
                FlushReason::Size => prop_assert_eq!(Some(batch.items.len()), size),
                FlushReason::Timeout => {
                    let timeout = batch.spec.max_wait().unwrap();
                    prop_assert!(batch.wait() >= timeout, "timeout flushed early");
                }
                FlushReason::Manual | FlushReason::Shutdown => {
                    prop_assert!(size.is_none_or(|size| batch.items.len() < size));
                }
            }
            seen.extend(&batch.items);
        }
        seen.sort_unstable();
        prop_assert_eq!(seen, (0..next_item).collect::<Vec<_>>());
    }
}
