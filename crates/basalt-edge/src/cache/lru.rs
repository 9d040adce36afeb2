//! A least-recently-used index bounded by bytes, shared by the memory and disk tiers.

use std::collections::{BTreeMap, HashMap};

/// Items by key with their weight in bytes; `insert` returns what it evicted to stay within
/// `max` so the caller can count it and free what the item points at (a file on disk).
pub struct Lru<V> {
    max: u64,
    bytes: u64,
    tick: u64,
    items: HashMap<String, (V, u64, u64)>,
    /// Last use -> key; the first entry is the least recently used.
    order: BTreeMap<u64, String>,
}

impl<V: Clone> Lru<V> {
    pub fn new(max: u64) -> Self {
        Self {
            max,
            bytes: 0,
            tick: 0,
            items: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// The item, marked as just used.
    pub fn get(&mut self, key: &str) -> Option<V> {
        let t = self.next_tick();
        let (v, _, last) = self.items.get_mut(key)?;
        let old = std::mem::replace(last, t);
        let v = v.clone();
        if let Some(k) = self.order.remove(&old) {
            self.order.insert(t, k);
        }
        Some(v)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.items.contains_key(key)
    }

    /// Inserts (or replaces) `key`; returns the items evicted to make room, never the new one
    /// unless it alone is larger than the bound (then it is not kept and comes back).
    pub fn insert(&mut self, key: String, value: V, weight: u64) -> Vec<(String, V)> {
        let mut evicted = Vec::new();
        if let Some(old) = self.remove(&key) {
            // A replaced item is not an eviction; the caller already knows it.
            drop(old);
        }
        if weight > self.max {
            evicted.push((key, value));
            return evicted;
        }
        while self.bytes + weight > self.max {
            let Some((_, k)) = self.order.pop_first() else {
                break;
            };
            if let Some((v, w, _)) = self.items.remove(&k) {
                self.bytes -= w;
                evicted.push((k, v));
            }
        }
        let t = self.next_tick();
        self.order.insert(t, key.clone());
        self.items.insert(key, (value, weight, t));
        self.bytes += weight;
        evicted
    }

    pub fn remove(&mut self, key: &str) -> Option<V> {
        let (v, w, t) = self.items.remove(key)?;
        self.order.remove(&t);
        self.bytes -= w;
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_to_stay_within_bytes() {
        let mut l = Lru::new(100);
        assert!(l.insert("a".into(), 1, 40).is_empty());
        assert!(l.insert("b".into(), 2, 40).is_empty());
        assert_eq!(l.get("a"), Some(1));
        let gone = l.insert("c".into(), 3, 40);
        assert_eq!(gone, vec![("b".to_string(), 2)]);
        assert_eq!(l.bytes(), 80);
        assert_eq!(l.len(), 2);
        let too_big = l.insert("d".into(), 4, 101);
        assert_eq!(too_big, vec![("d".to_string(), 4)]);
        assert!(l.insert("a".into(), 5, 60).is_empty());
        assert_eq!(l.bytes(), 100);
        assert_eq!(l.remove("c"), Some(3));
        assert_eq!(l.bytes(), 60);
    }
}
