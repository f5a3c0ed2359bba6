//! Property: whatever the interleaving of arrivals, clock advances and drains, every
//! item leaves the joiner exactly once, in a complete group or a traced discard;
//! complete groups are exact, same-key, within their window; per key and slot items
//! leave first come, first out; count windows bound what waits; no group outlives a
//! time window once polled.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use flock_batch::{DiscardReason, JoinShape, Joiner};
use flock_subscription::JoinWindow;
use proptest::prelude::*;

const TIME_MS: u64 = 100;
const COUNT: usize = 4;

fn shapes() -> [JoinShape; 3] {
    [
        JoinShape::new(
            [1, 1],
            Some(JoinWindow::Time(Duration::from_millis(TIME_MS))),
        )
        .unwrap(),
        JoinShape::new([2, 1], Some(JoinWindow::Count(COUNT.try_into().unwrap()))).unwrap(),
        JoinShape::new([1, 1, 1], None).unwrap(),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Push { pool: u8, key: u8, slot: u8 },
    Advance { ms: u64 },
    Drain,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..3, 0u8..3, 0u8..3).prop_map(|(pool, key, slot)| Op::Push { pool, key, slot }),
        3 => (0u64..80).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Drain),
    ]
}

struct Meta {
    pool: u8,
    key: u8,
    slot: usize,
    arrival: Instant,
    ordinal: u64,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn every_item_leaves_once_in_order_and_within_its_window(ops in prop::collection::vec(op(), 0..200)) {
        let shapes = shapes();
        let t0 = Instant::now();
        let mut now = t0;
        let mut j: Joiner<u8, u8, u32> = Joiner::new();
        let mut meta: Vec<Meta> = Vec::new();
        let mut accepted = [0u64; 3];
        // Emission order of every item, and what it left in.
        let mut left: Vec<u32> = Vec::new();
        let mut live = [0usize; 3];
        let mut completed = Vec::new();
        let mut discarded = Vec::new();

        for op in ops {
            match op {
                Op::Push { pool, key, slot } => {
                    let shape = &shapes[pool as usize];
                    let slot = slot as usize % shape.counts().len();
                    let id = u32::try_from(meta.len()).unwrap();
                    accepted[pool as usize] += 1;
                    meta.push(Meta { pool, key, slot, arrival: now, ordinal: accepted[pool as usize] });
                    live[pool as usize] += 1;
                    let pushed = j.push(pool, shape, key, slot, id, now);
                    for d in &pushed.discarded {
                        left.extend(&d.items);
                        live[d.pool as usize] -= d.items.len();
                    }
                    discarded.extend(pushed.discarded);
                    if let Some(group) = pushed.completed {
                        left.extend(&group.items);
                        live[group.pool as usize] -= group.items.len();
                        completed.push(group);
                    }
                    prop_assert!(live[1] <= COUNT + 1, "count window leaks: {} waiting", live[1]);
                }
                Op::Advance { ms } => {
                    now += Duration::from_millis(ms);
                    for d in j.poll_expired(now) {
                        left.extend(&d.items);
                        live[d.pool as usize] -= d.items.len();
                        discarded.push(d);
                    }
                    for p in j.pending(now).iter().filter(|p| p.pool == 0) {
                        prop_assert!(p.time_left.is_some_and(|t| t > Duration::ZERO), "overdue group after poll");
                    }
                }
                Op::Drain => {
                    for d in j.drain(DiscardReason::Shutdown, now) {
                        left.extend(&d.items);
                        live[d.pool as usize] -= d.items.len();
                        discarded.push(d);
                    }
                }
            }
            prop_assert_eq!(j.waiting(), live.iter().sum::<usize>());
        }
        for d in j.drain(DiscardReason::Shutdown, now) {
            left.extend(&d.items);
            discarded.push(d);
        }
        prop_assert!(j.is_empty());
        prop_assert_eq!(j.groups(), 0);
        prop_assert_eq!(j.next_deadline(), None);

        // Exactly once.
        let mut sorted = left.clone();
        sorted.sort_unstable();
        prop_assert_eq!(sorted, (0..u32::try_from(meta.len()).unwrap()).collect::<Vec<_>>());

        // First come, first out per (pool, key, slot).
        let mut last: HashMap<(u8, u8, usize), u32> = HashMap::new();
        for id in &left {
            let m = &meta[*id as usize];
            if let Some(prev) = last.insert((m.pool, m.key, m.slot), *id) {
                prop_assert!(prev < *id, "item {id} left before {prev}");
            }
        }

        for group in &completed {
            let shape = &shapes[group.pool as usize];
            let mut per_slot = vec![0; shape.counts().len()];
            for id in &group.items {
                let m = &meta[*id as usize];
                prop_assert_eq!((m.pool, m.key), (group.pool, group.key));
                per_slot[m.slot] += 1;
            }
            let counts: Vec<usize> = shape.counts().iter().map(|n| n.get()).collect();
            prop_assert_eq!(&per_slot, &counts, "a complete group is exact");
            let slots: Vec<usize> = group.items.iter().map(|id| meta[*id as usize].slot).collect();
            prop_assert!(slots.windows(2).all(|w| w[0] <= w[1]), "slot order");
            let arrivals = group.items.iter().map(|id| meta[*id as usize].arrival);
            let ordinals = group.items.iter().map(|id| meta[*id as usize].ordinal);
            let span = arrivals.clone().max().unwrap() - arrivals.min().unwrap();
            let count_span = ordinals.clone().max().unwrap() - ordinals.min().unwrap();
            match shape.window() {
                Some(JoinWindow::Time(d)) => prop_assert!(span < d, "completed past its window"),
                Some(JoinWindow::Count(n)) => prop_assert!(count_span <= n.get() as u64),
                None => {}
            }
        }

        for d in &discarded {
            prop_assert!(d.missing.iter().any(|m| *m > 0), "a discarded group is incomplete");
            prop_assert_eq!(d.present.iter().sum::<usize>(), d.items.len());
            if d.reason == DiscardReason::Window {
                if let Some(JoinWindow::Time(w)) = shapes[d.pool as usize].window() {
                    prop_assert!(d.wait() >= w, "discarded before its window ended");
                }
                prop_assert!(shapes[d.pool as usize].window().is_some());
            }
        }
    }
}
