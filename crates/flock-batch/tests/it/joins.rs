//! The join state machine with explicit instants: pairing, surplus, windows, drain.

use std::time::{Duration, Instant};

use flock_batch::{DiscardReason, JoinShape, Joiner};
use flock_subscription::JoinWindow;

use crate::ms;

fn shape(counts: &[usize], window: Option<JoinWindow>) -> JoinShape {
    JoinShape::new(counts.iter().copied(), window).unwrap()
}

fn secs(s: u64) -> Option<JoinWindow> {
    Some(JoinWindow::Time(Duration::from_secs(s)))
}

fn count(n: usize) -> Option<JoinWindow> {
    Some(JoinWindow::Count(n.try_into().unwrap()))
}

type J = Joiner<&'static str, &'static str, &'static str>;

#[test]
fn same_key_pairs_and_different_keys_never_cross() {
    let s = shape(&[1, 1], secs(300));
    let mut j = J::new();
    let t0 = Instant::now();
    assert!(
        j.push("p", &s, "patient-456", 0, "a456", t0)
            .completed
            .is_none()
    );
    assert!(
        j.push("p", &s, "patient-789", 1, "b789", t0)
            .completed
            .is_none()
    );
    let group = j.push("p", &s, "patient-123", 0, "a123", t0).completed;
    assert!(group.is_none());
    let group = j
        .push("p", &s, "patient-123", 1, "b123", t0)
        .completed
        .unwrap();
    assert_eq!(
        (group.key, group.items),
        ("patient-123", vec!["a123", "b123"])
    );
    assert_eq!(j.groups(), 2);
    assert_eq!(j.waiting(), 2);
}

#[test]
fn items_come_in_slot_order_whatever_the_arrival_order() {
    let s = shape(&[1, 1, 1], None);
    let mut j = J::new();
    let t0 = Instant::now();
    let _ = j.push("p", &s, "k", 2, "c", t0);
    let _ = j.push("p", &s, "k", 0, "a", ms(t0, 1));
    let group = j.push("p", &s, "k", 1, "b", ms(t0, 2)).completed.unwrap();
    assert_eq!(group.items, vec!["a", "b", "c"]);
    assert_eq!(group.first_arrival, t0);
    assert_eq!(group.wait(), Duration::from_millis(2));
}

#[test]
fn surplus_duplicates_wait_for_the_next_group_first_come_first_paired() {
    let s = shape(&[1, 1], None);
    let mut j = J::new();
    let t0 = Instant::now();
    let _ = j.push("p", &s, "k", 0, "a1", t0);
    let _ = j.push("p", &s, "k", 0, "a2", t0);
    let _ = j.push("p", &s, "k", 0, "a3", t0);
    assert_eq!(j.groups(), 1);
    assert_eq!(j.waiting(), 3);
    let first = j.push("p", &s, "k", 1, "b1", t0).completed.unwrap();
    assert_eq!(first.items, vec!["a1", "b1"]);
    let second = j.push("p", &s, "k", 1, "b2", t0).completed.unwrap();
    assert_eq!(second.items, vec!["a2", "b2"]);
    assert_eq!(j.waiting(), 1, "a3 waits for b3");
}

#[test]
fn count_gate_waits_for_every_count_and_does_not_accumulate() {
    let s = shape(&[3], None);
    let mut j = J::new();
    let t0 = Instant::now();
    assert!(j.push("p", &s, "k", 0, "a1", t0).completed.is_none());
    assert!(j.push("p", &s, "k", 0, "a2", t0).completed.is_none());
    let group = j.push("p", &s, "k", 0, "a3", t0).completed.unwrap();
    assert_eq!(group.items, vec!["a1", "a2", "a3"]);
    assert!(j.is_empty());
    assert!(j.push("p", &s, "k", 0, "a4", t0).completed.is_none());
}

#[test]
fn time_window_discards_at_its_deadline_and_a_fresh_pair_correlates() {
    let s = shape(&[1, 1], secs(1));
    let mut j = J::new();
    let t0 = Instant::now();
    let pushed = j.push("p", &s, "incomplete-1", 0, "a", t0);
    assert_eq!(pushed.earlier_deadline, Some(ms(t0, 1000)));
    assert_eq!(j.next_deadline(), Some(ms(t0, 1000)));
    assert!(j.poll_expired(ms(t0, 999)).is_empty());
    let discarded = j.poll_expired(ms(t0, 1000));
    assert_eq!(discarded.len(), 1);
    let d = &discarded[0];
    assert_eq!(
        (d.pool, d.key, d.reason),
        ("p", "incomplete-1", DiscardReason::Window)
    );
    assert_eq!(
        (d.items.clone(), d.present.clone(), d.missing.clone()),
        (vec!["a"], vec![1, 0], vec![0, 1])
    );
    assert_eq!(d.wait(), Duration::from_secs(1));
    assert!(j.is_empty());
    assert_eq!(j.next_deadline(), None);

    let _ = j.push("p", &s, "incomplete-1", 0, "a2", ms(t0, 1200));
    let group = j
        .push("p", &s, "incomplete-1", 1, "b2", ms(t0, 1300))
        .completed
        .unwrap();
    assert_eq!(group.items, vec!["a2", "b2"]);
    assert_eq!(j.next_deadline(), None, "completion disarms the deadline");
}

#[test]
fn an_arrival_at_the_deadline_finds_the_group_gone_even_before_the_timer() {
    let s = shape(&[1, 1], secs(30));
    let mut j = J::new();
    let t0 = Instant::now();
    let _ = j.push("p", &s, "k", 0, "a", t0);
    let late = j.push("p", &s, "k", 1, "b", ms(t0, 30_000));
    assert!(late.completed.is_none());
    assert_eq!(late.discarded.len(), 1);
    assert_eq!(late.discarded[0].items, vec!["a"]);
    // b opened a new group; its deadline is later than the one the timer sleeps on.
    assert_eq!(late.earlier_deadline, None);
    assert_eq!(j.next_deadline(), Some(ms(t0, 60_000)));
    assert_eq!(j.waiting(), 1);
}

#[test]
fn surplus_keeps_its_own_clock_after_the_group_ahead_is_discarded() {
    let s = shape(&[1, 1], secs(30));
    let mut j = J::new();
    let t0 = Instant::now();
    let _ = j.push("p", &s, "k", 0, "a1", t0);
    let _ = j.push("p", &s, "k", 0, "a2", ms(t0, 20_000));
    let discarded = j.poll_expired(ms(t0, 30_000));
    assert_eq!(discarded.len(), 1);
    assert_eq!(discarded[0].items, vec!["a1"]);
    assert_eq!(
        j.next_deadline(),
        Some(ms(t0, 50_000)),
        "a2's window opened at 20 s"
    );
    let group = j
        .push("p", &s, "k", 1, "b", ms(t0, 35_000))
        .completed
        .unwrap();
    assert_eq!(group.items, vec!["a2", "b"]);
    assert!(j.poll_expired(ms(t0, 100_000)).is_empty());
}

#[test]
fn stale_surplus_is_discarded_group_by_group_in_one_poll() {
    let s = shape(&[1, 1], secs(10));
    let mut j = J::new();
    let t0 = Instant::now();
    for (i, item) in ["a1", "a2", "a3"].into_iter().enumerate() {
        let _ = j.push("p", &s, "k", 0, item, ms(t0, i as u64));
    }
    let discarded = j.poll_expired(ms(t0, 60_000));
    let items: Vec<Vec<&str>> = discarded.into_iter().map(|d| d.items).collect();
    assert_eq!(items, vec![vec!["a1"], vec!["a2"], vec!["a3"]]);
    assert!(j.is_empty());
}

#[test]
fn count_window_admits_the_nth_artifact_after_the_first_but_not_the_next() {
    // within(10): B as the 10th artifact after A completes the pair.
    let s = shape(&[1, 1], count(10));
    let mut j = J::new();
    let t0 = Instant::now();
    let _ = j.push("p", &s, "batch-1", 0, "a1", t0);
    for noise in ["n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9"] {
        let _ = j.push("p", &s, noise, 0, noise, t0);
    }
    let pushed = j.push("p", &s, "batch-1", 1, "b1", t0);
    assert_eq!(pushed.completed.unwrap().items, vec!["a1", "b1"]);

    // After 10 others, B is the 11th: the group was discarded as B arrived.
    let mut j = J::new();
    let _ = j.push("p", &s, "batch-2", 0, "a2", t0);
    for noise in ["n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9", "n10"] {
        let pushed = j.push("p", &s, noise, 0, noise, t0);
        assert!(pushed.discarded.is_empty());
    }
    let pushed = j.push("p", &s, "batch-2", 1, "b2", t0);
    assert!(pushed.completed.is_none());
    assert_eq!(pushed.discarded.len(), 1);
    assert_eq!(
        (pushed.discarded[0].key, pushed.discarded[0].items.clone()),
        ("batch-2", vec!["a2"])
    );
}

#[test]
fn count_window_groups_cannot_leak() {
    let n = 5;
    let s = shape(&[1, 1], count(n));
    let mut j: Joiner<u8, u32, u32> = Joiner::new();
    let t0 = Instant::now();
    let mut discarded = 0;
    for i in 0..1000 {
        let pushed = j.push(0, &s, i, 0, i, t0);
        discarded += pushed.discarded.len();
        assert!(j.waiting() <= n + 1, "{} waiting after {i}", j.waiting());
    }
    assert_eq!(discarded, 1000 - (n + 1));
    assert_eq!(j.next_deadline(), None, "count windows arm no timer");
}

#[test]
fn pools_correlate_independently() {
    let s = shape(&[1, 1], None);
    let mut j = J::new();
    let t0 = Instant::now();
    let _ = j.push("agent1", &s, "shared-1", 0, "a", t0);
    let _ = j.push("agent2", &s, "shared-1", 0, "a", t0);
    let one = j
        .push("agent1", &s, "shared-1", 1, "b", t0)
        .completed
        .unwrap();
    assert_eq!(one.pool, "agent1");
    assert_eq!(j.waiting(), 1, "agent2's half stays");
    let two = j
        .push("agent2", &s, "shared-1", 1, "b", t0)
        .completed
        .unwrap();
    assert_eq!(two.pool, "agent2");
}

#[test]
fn no_window_waits_until_drained() {
    let s = shape(&[2, 1], None);
    let mut j = J::new();
    let t0 = Instant::now();
    let _ = j.push("p", &s, "k1", 0, "a1", t0);
    let _ = j.push("q", &s, "k2", 1, "b", ms(t0, 1));
    let _ = j.push("p", &s, "k1", 1, "b1", ms(t0, 2));
    let _ = j.push("p", &s, "k1", 1, "b2", ms(t0, 3));
    assert!(j.poll_expired(ms(t0, 86_400_000)).is_empty());
    let drained = j.drain(DiscardReason::Shutdown, ms(t0, 10));
    let got: Vec<String> = drained
        .into_iter()
        .map(|d| {
            format!(
                "{} {} {:?} missing {:?} {}",
                d.pool, d.key, d.items, d.missing, d.reason
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            r#"p k1 ["a1", "b1"] missing [1, 0] shutdown"#,
            r#"p k1 ["b2"] missing [2, 0] shutdown"#,
            r#"q k2 ["b"] missing [2, 0] shutdown"#,
        ]
    );
    assert!(j.is_empty());
    assert_eq!(j.groups(), 0);
}

#[test]
fn pending_reports_what_each_group_has_and_lacks() {
    let t0 = Instant::now();
    let mut j = J::new();
    let timed = shape(&[1, 2], secs(30));
    let counted = shape(&[1, 1], count(4));
    let _ = j.push("timed", &timed, "dev-1", 1, "p1", t0);
    let _ = j.push("counted", &counted, "req-1", 0, "a", t0);
    let _ = j.push("counted", &counted, "req-2", 0, "a", t0);
    let pending = j.pending(ms(t0, 10_000));
    assert_eq!(pending.len(), 3);
    assert_eq!((pending[0].pool, pending[0].key), ("timed", "dev-1"));
    assert_eq!(
        (pending[0].present.clone(), pending[0].missing.clone()),
        (vec![0, 1], vec![1, 1])
    );
    assert_eq!(pending[0].time_left, Some(Duration::from_secs(20)));
    assert_eq!(pending[0].artifacts_left, None);
    assert_eq!(
        (pending[1].key, pending[1].artifacts_left),
        ("req-1", Some(3))
    );
    assert_eq!(
        (pending[2].key, pending[2].artifacts_left),
        ("req-2", Some(4))
    );
}

#[test]
fn invalid_shapes_are_rejected_with_messages() {
    assert_eq!(
        JoinShape::new([], None).unwrap_err().to_string(),
        "a join needs at least one slot, got none"
    );
    assert_eq!(
        JoinShape::new([1, 0], None).unwrap_err().to_string(),
        "slot 1 of a join needs a count of at least 1, got 0"
    );
}

#[test]
fn removed_pools_take_their_groups_and_windows_with_them() {
    let s = shape(&[1, 1], secs(10));
    let mut j = J::new();
    let t0 = Instant::now();
    let _ = j.push("p", &s, "k1", 0, "a1", t0);
    let _ = j.push("p", &s, "k2", 0, "a2", t0);
    let _ = j.push("q", &s, "k1", 0, "b1", ms(t0, 5_000));
    assert_eq!(j.remove_pools(|pool| *pool == "p"), 2);
    assert_eq!((j.groups(), j.waiting()), (1, 1));
    assert_eq!(
        j.next_deadline(),
        Some(ms(t0, 15_000)),
        "p's windows are gone"
    );
    // A removed pool starts afresh: its old members do not complete a new group.
    assert!(
        j.push("p", &s, "k1", 1, "c1", ms(t0, 6_000))
            .completed
            .is_none()
    );
    assert_eq!(j.remove_pools(|_| true), 2);
    assert!(j.is_empty());
    assert_eq!(j.next_deadline(), None);
}
