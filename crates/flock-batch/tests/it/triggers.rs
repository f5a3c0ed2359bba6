//! Size, timeout, reset, flush-all and inspection.

use std::time::{Duration, Instant};

use flock_batch::{Batcher, FlushReason};

use crate::{ms, spec};

#[test]
fn flushes_at_size_in_arrival_order_and_starts_fresh() {
    let mut b = Batcher::new();
    let s = spec(Some(3), None);
    let t0 = Instant::now();
    let mut flushed = Vec::new();
    for i in 1..=7 {
        if let Some(batch) = b.push("a", s, i, t0).flushed {
            assert_eq!(batch.reason, FlushReason::Size);
            flushed.push(batch.items);
        }
    }
    assert_eq!(flushed, vec![vec![1, 2, 3], vec![4, 5, 6]]);
    assert_eq!(b.waiting(), 1);
    assert_eq!(b.batches(), 1);
}

#[test]
fn timeout_counts_from_first_item_and_resets_after_flush() {
    let mut b = Batcher::new();
    let s = spec(Some(10), Some(30_000));
    let t0 = Instant::now();
    // The guide's timeline: 5 at 0 s, 3 at 10 s, 2 at 20 s → size flush.
    for i in 0..5 {
        let _ = b.push("a", s, i, t0);
    }
    for i in 5..8 {
        let _ = b.push("a", s, i, ms(t0, 10_000));
    }
    let _ = b.push("a", s, 8, ms(t0, 20_000));
    let full = b.push("a", s, 9, ms(t0, 20_000)).flushed.unwrap();
    assert_eq!(full.items.len(), 10);
    assert_eq!(full.reason, FlushReason::Size);
    assert_eq!(b.next_deadline(), None, "a size flush cancels its deadline");
    // 3 at 25 s: deadline is 55 s, not 30 s.
    for i in 0..3 {
        let _ = b.push("a", s, 100 + i, ms(t0, 25_000));
    }
    assert!(b.poll_expired(ms(t0, 30_000)).is_empty());
    assert!(b.poll_expired(ms(t0, 54_999)).is_empty());
    let due = b.poll_expired(ms(t0, 55_000));
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].items, vec![100, 101, 102]);
    assert_eq!(due[0].reason, FlushReason::Timeout);
    assert_eq!(due[0].wait(), Duration::from_secs(30));
    assert!((due[0].efficiency() - 0.3).abs() < 1e-12);
    assert!(b.is_empty());
}

#[test]
fn earlier_deadline_is_reported_only_when_it_moves_the_timer() {
    let mut b = Batcher::new();
    let t0 = Instant::now();
    let slow = spec(None, Some(10_000));
    let fast = spec(None, Some(1_000));
    assert_eq!(
        b.push("slow", slow, 1, t0).earlier_deadline,
        Some(ms(t0, 10_000))
    );
    assert_eq!(b.push("slow", slow, 2, t0).earlier_deadline, None);
    assert_eq!(
        b.push("fast", fast, 1, t0).earlier_deadline,
        Some(ms(t0, 1_000))
    );
    assert_eq!(b.push("late", slow, 1, ms(t0, 5)).earlier_deadline, None);
    let order: Vec<&str> = b
        .poll_expired(ms(t0, 20_000))
        .into_iter()
        .map(|batch| batch.key)
        .collect();
    assert_eq!(order, vec!["fast", "slow", "late"]);
}

#[test]
fn flush_all_takes_every_partial_batch_oldest_first() {
    let mut b = Batcher::new();
    let t0 = Instant::now();
    let _ = b.push("b", spec(Some(5), None), 1, t0);
    let _ = b.push("a", spec(Some(5), Some(100)), 2, ms(t0, 1));
    let _ = b.push("b", spec(Some(5), None), 3, ms(t0, 2));
    let batches = b.flush_all(FlushReason::Shutdown, ms(t0, 3));
    let got: Vec<(&str, Vec<i32>, FlushReason)> = batches
        .into_iter()
        .map(|batch| (batch.key, batch.items, batch.reason))
        .collect();
    assert_eq!(
        got,
        vec![
            ("b", vec![1, 3], FlushReason::Shutdown),
            ("a", vec![2], FlushReason::Shutdown)
        ]
    );
    assert!(b.is_empty());
    assert_eq!(b.next_deadline(), None);
    assert!(b.poll_expired(ms(t0, 1_000)).is_empty());
}

#[test]
fn pending_reports_items_spec_and_time_left() {
    let mut b = Batcher::new();
    let t0 = Instant::now();
    let s = spec(Some(25), Some(30_000));
    let _ = b.push(("payments", 0), s, (), t0);
    let _ = b.push(("payments", 0), s, (), ms(t0, 10));
    let pending = b.pending(ms(t0, 10_000));
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].key, ("payments", 0));
    assert_eq!(pending[0].items, 2);
    assert_eq!(pending[0].spec, s);
    assert_eq!(pending[0].time_left, Some(Duration::from_secs(20)));
    assert_eq!(b.pending(ms(t0, 40_000))[0].time_left, Some(Duration::ZERO));
}

#[test]
fn removed_batches_come_back_unflushed_with_their_deadlines_gone() {
    let mut b = Batcher::new();
    let s = spec(Some(10), Some(1_000));
    let t0 = Instant::now();
    for (key, item) in [("a", 1), ("b", 2), ("a", 3), ("c", 4)] {
        let _ = b.push(key, s, item, t0);
    }
    let mut removed = b.remove(|key| *key != "b");
    removed.sort_unstable();
    assert_eq!(removed, vec![("a", vec![1, 3]), ("c", vec![4])]);
    assert_eq!((b.batches(), b.waiting()), (1, 1));
    let due = b.poll_expired(ms(t0, 1_000));
    assert_eq!(due.len(), 1, "only b's deadline is left");
    assert_eq!(due[0].items, vec![2]);
    assert!(b.is_empty());
    assert!(b.remove(|_| true).is_empty());
}
