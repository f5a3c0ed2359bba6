//! A hash map split into shards, so that growing it never rehashes every entry at
//! once.
//!
//! One map of 100,000 keyed batches doubles by rehashing all of them in one call:
//! tens of milliseconds under the decision core's lock, during which no deadline
//! fires. In 64 shards, a shard that grows moves a 64th of the entries, and the
//! shards grow at different moments.

use std::hash::{BuildHasher, Hash};

use rustc_hash::{FxBuildHasher, FxHashMap};

const SHARDS: usize = 64;

/// A map from `K` to `V` in [`SHARDS`] hash maps, a key's shard chosen by its hash.
pub(crate) struct Shards<K, V> {
    shards: Box<[FxHashMap<K, V>]>,
    len: usize,
}

impl<K, V> Default for Shards<K, V> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| FxHashMap::default()).collect(),
            len: 0,
        }
    }
}

impl<K: Eq + Hash, V> Shards<K, V> {
    /// The shard of `key`: bits of its hash that the shard's own table does not use
    /// for its buckets (the low ones) nor for its control bytes (the top seven).
    fn shard(&self, key: &K) -> usize {
        (FxBuildHasher.hash_one(key) >> 40) as usize % SHARDS
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.shards[self.shard(key)].get(key)
    }

    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let shard = self.shard(key);
        self.shards[shard].get_mut(key)
    }

    /// Inserts a value for a key that has none; returns it.
    pub(crate) fn insert_new(&mut self, key: K, value: V) -> &mut V {
        let shard = self.shard(&key);
        self.len += 1;
        self.shards[shard].entry(key).or_insert(value)
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let shard = self.shard(key);
        let removed = self.shards[shard].remove(key);
        self.len -= usize::from(removed.is_some());
        removed
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flatten()
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &K> {
        self.iter().map(|(key, _)| key)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_like_any_other() {
        let mut map: Shards<u64, u64> = Shards::default();
        for key in 0..10_000 {
            *map.insert_new(key, key) += 1;
        }
        assert_eq!(map.len(), 10_000);
        assert_eq!(map.get(&7), Some(&8));
        *map.get_mut(&7).unwrap() = 0;
        assert_eq!(map.remove(&7), Some(0));
        assert_eq!(map.remove(&7), None);
        assert_eq!(map.len(), 9_999);
        assert_eq!(map.iter().count(), 9_999);
        let used = map.shards.iter().filter(|shard| !shard.is_empty()).count();
        assert_eq!(used, SHARDS, "keys spread over every shard");
        for key in 0..10_000 {
            map.remove(&key);
        }
        assert!(map.is_empty());
    }
}
