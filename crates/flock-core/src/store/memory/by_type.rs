//! The in-memory store's type index: per type, the sequences of its artifacts as
//! runs of consecutive sequences, so a stream of one type costs one run, not one
//! entry per artifact.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

/// Consecutive sequences `start..start + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    start: u64,
    len: u64,
}

/// Sequences per type, ascending; may name evicted artifacts (the caller skips
/// them, and [`TypeIndex::trim`] drops them from the front).
#[derive(Default)]
pub(super) struct TypeIndex {
    /// Each type's place in `runs`.
    types: FxHashMap<&'static str, usize>,
    runs: Vec<VecDeque<Run>>,
    /// The type of the last push and its place: a stream of one type skips the
    /// hash lookup (the same `&'static str`, compared by address).
    last: Option<(&'static str, usize)>,
}

impl TypeIndex {
    /// Records `seq` (above every sequence recorded) as an artifact of `type_name`.
    pub(super) fn push(&mut self, type_name: &'static str, seq: u64) {
        let place = match self.last {
            Some((last, place)) if std::ptr::eq(last, type_name) => place,
            _ => {
                let next = self.runs.len();
                let place = *self.types.entry(type_name).or_insert(next);
                if place == next {
                    self.runs.push(VecDeque::new());
                }
                self.last = Some((type_name, place));
                place
            }
        };
        let runs = &mut self.runs[place];
        match runs.back_mut() {
            Some(run) if run.start + run.len == seq => run.len += 1,
            _ => runs.push_back(Run { start: seq, len: 1 }),
        }
    }

    /// The sequences of some types, ascending.
    pub(super) fn seqs<'a>(&self, names: impl Iterator<Item = &'a str>) -> Vec<u64> {
        let mut seqs: Vec<u64> = Vec::new();
        let mut lists = 0;
        for name in names {
            if let Some(runs) = self.types.get(name).map(|&place| &self.runs[place]) {
                seqs.extend(runs.iter().flat_map(|run| run.start..run.start + run.len));
                lists += 1;
            }
        }
        if lists > 1 {
            seqs.sort_unstable();
        }
        seqs
    }

    /// Drops, from the front of every type's list, the sequences `gone` says are
    /// evicted; returns how many recorded sequences remain (stale ones included).
    pub(super) fn trim(&mut self, gone: impl Fn(u64) -> bool) -> usize {
        let mut remaining = 0;
        for runs in &mut self.runs {
            while let Some(run) = runs.front_mut() {
                while run.len > 0 && gone(run.start) {
                    run.start += 1;
                    run.len -= 1;
                }
                if run.len > 0 {
                    break;
                }
                runs.pop_front();
            }
            remaining += runs.iter().map(|run| run.len as usize).sum::<usize>();
        }
        remaining
    }

    /// Forgets everything (before a rebuild).
    pub(super) fn clear(&mut self) {
        self.types.clear();
        self.runs.clear();
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_one_type_and_interleaved_types() {
        let mut index = TypeIndex::default();
        for seq in 0..100 {
            index.push("A", seq);
        }
        for seq in 100..110 {
            index.push(if seq % 2 == 0 { "A" } else { "B" }, seq);
        }
        assert_eq!(
            index.runs[index.types["A"]].len(),
            5,
            "0..=100, then one run each"
        );
        let a = index.seqs(["A"].into_iter());
        assert_eq!(a.len(), 105);
        assert_eq!(a[100..], [100, 102, 104, 106, 108]);
        let both = index.seqs(["B", "A"].into_iter());
        assert_eq!(both, (0..110).collect::<Vec<_>>());
        assert_eq!(index.trim(|seq| seq < 101), 9);
        assert_eq!(index.seqs(["A"].into_iter()), [102, 104, 106, 108]);
    }
}
