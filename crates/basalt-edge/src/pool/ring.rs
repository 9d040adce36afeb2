//! The consistent-hash ring: each target owns virtual nodes in proportion to its weight, so
//! removing one of N targets moves only the keys it owned (about 1/N of them).

/// Virtual nodes per unit of weight: enough for an even spread with a few targets.
const VNODES_PER_WEIGHT: u32 = 160;

pub struct Ring {
    /// (point on the ring, target index), sorted by point.
    points: Vec<(u64, usize)>,
}

impl Ring {
    /// `targets`: (address, weight) in pool order; indexes refer to that order.
    pub fn new<'a>(targets: impl IntoIterator<Item = (&'a str, u32)>) -> Self {
        let mut points = Vec::new();
        for (index, (address, weight)) in targets.into_iter().enumerate() {
            for v in 0..weight.max(1) * VNODES_PER_WEIGHT {
                let mut h = Fnv::new();
                h.write(address.as_bytes());
                h.write(b"#");
                h.write(&v.to_le_bytes());
                points.push((h.finish(), index));
            }
        }
        points.sort_unstable();
        Self { points }
    }

    /// The first target clockwise from `key` that `usable` accepts.
    pub fn lookup(&self, key: u64, mut usable: impl FnMut(usize) -> bool) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let start = self.points.partition_point(|(p, _)| *p < key);
        let n = self.points.len();
        let mut last_rejected = usize::MAX;
        for i in 0..n {
            let (_, target) = self.points[(start + i) % n];
            // Runs of the same target are common; skip re-asking about it.
            if target == last_rejected {
                continue;
            }
            if usable(target) {
                return Some(target);
            }
            last_rejected = target;
        }
        None
    }
}

/// FNV-1a with a final avalanche (splitmix64) so nearby inputs land far apart on the ring.
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv {
    pub fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    pub fn finish(&self) -> u64 {
        let mut z = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = Fnv::new();
    h.write(bytes);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(ring: &Ring, keys: u64, alive: &[bool], names: &[usize]) -> Vec<usize> {
        (0..keys)
            .map(|k| {
                let t = ring
                    .lookup(hash_bytes(&k.to_le_bytes()), |t| alive[t])
                    .expect("a live target");
                names[t]
            })
            .collect()
    }

    #[test]
    fn removing_one_of_n_targets_moves_about_one_nth_of_the_keys() {
        let n = 5;
        let addrs: Vec<String> = (0..n).map(|i| format!("10.0.0.{i}:80")).collect();
        let keys = 20_000;
        let full = Ring::new(addrs.iter().map(|a| (a.as_str(), 1)));
        let ids: Vec<usize> = (0..n).collect();
        let before = owners(&full, keys, &[true; 5], &ids);
        // Target 2 leaves: rebuild the ring without it.
        let rest: Vec<usize> = (0..n).filter(|i| *i != 2).collect();
        let smaller = Ring::new(rest.iter().map(|i| (addrs[*i].as_str(), 1)));
        let after = owners(&smaller, keys, &[true; 4], &rest);
        let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        let share = moved as f64 / keys as f64;
        // Exactly the keys target 2 owned move; with 160 vnodes each that is close to 1/5.
        assert!((0.14..0.26).contains(&share), "moved {share}");
        assert!(
            before.iter().zip(&after).all(|(a, b)| a == b || *a == 2),
            "only keys of the removed target move"
        );
        // Each target's share is near 1/N.
        for t in 0..n {
            let s = before.iter().filter(|o| **o == t).count() as f64 / keys as f64;
            assert!((0.12..0.28).contains(&s), "target {t} owns {s}");
        }
    }

    #[test]
    fn lookup_skips_unusable_targets() {
        let ring = Ring::new([("a:1", 1), ("b:1", 1)]);
        for k in 0..100u64 {
            assert_eq!(
                ring.lookup(hash_bytes(&k.to_le_bytes()), |t| t == 1),
                Some(1)
            );
        }
        assert_eq!(ring.lookup(7, |_| false), None);
    }
}
