//! A keyed GCRA (generic cell rate algorithm) limiter. Each key's whole state is one
//! "theoretical arrival time"; a key whose time has passed holds no state at all and is
//! dropped. The store is sharded and bounded: when a shard is full, expired keys go
//! first, then the keys closest to expiring, so an attacker rotating through addresses
//! (IPv6 gives anyone billions) costs a bounded amount of memory.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::NetError;
use crate::ip_set::normalize;

const SHARDS: usize = 16;

/// `burst` requests at once, refilled at `burst` per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub burst: u32,
    pub period: Duration,
}

impl Quota {
    pub fn new(burst: u32, period: Duration) -> Result<Quota, NetError> {
        if burst == 0 {
            return Err(NetError::InvalidQuota("burst must be at least 1".into()));
        }
        if period.is_zero() {
            return Err(NetError::InvalidQuota("period must be positive".into()));
        }
        Ok(Quota { burst, period })
    }

    fn interval_nanos(&self) -> u64 {
        (self.period.as_nanos() / u128::from(self.burst)).clamp(1, u128::from(u64::MAX)) as u64
    }
}

/// The key a client address is limited under: IPv4 as is, IPv6 by its /64 (one
/// subscriber's allocation), so rotating through one's own /64 gains nothing.
pub fn rate_key(ip: IpAddr) -> IpAddr {
    match normalize(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

pub struct RateLimiter<K> {
    interval: u64,
    /// How far ahead of now a key's arrival time may run: the burst.
    tolerance: u64,
    shard_capacity: usize,
    shards: Vec<Mutex<HashMap<K, u64>>>,
    hasher: RandomState,
    epoch: Instant,
}

impl<K> std::fmt::Debug for RateLimiter<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("interval_ns", &self.interval)
            .field("tolerance_ns", &self.tolerance)
            .field("max_keys", &(self.shard_capacity * SHARDS))
            .finish()
    }
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// A limiter remembering at most about `max_keys` keys (at least one per shard).
    pub fn new(quota: Quota, max_keys: usize) -> Self {
        let interval = quota.interval_nanos();
        Self {
            interval,
            tolerance: interval.saturating_mul(u64::from(quota.burst)),
            shard_capacity: max_keys.div_ceil(SHARDS).max(1),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            epoch: Instant::now(),
        }
    }

    /// `Ok` when `key` may proceed now, else how long until it may.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    pub fn check_at(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let now = now.saturating_duration_since(self.epoch).as_nanos() as u64;
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        let Ok(mut map) = shard.lock() else {
            // A panic while holding the lock cannot corrupt a map of integers; refusing
            // every request forever would be worse than limiting none.
            return Ok(());
        };
        let tat = map.get(key).copied().unwrap_or(now).max(now);
        let next = tat.saturating_add(self.interval);
        if next - now > self.tolerance {
            return Err(Duration::from_nanos(next - now - self.tolerance));
        }
        if !map.contains_key(key) && map.len() >= self.shard_capacity {
            self.evict(&mut map, now);
        }
        map.insert(key.clone(), next);
        Ok(())
    }

    /// Frees room in a full shard: every expired key, and when none had expired, the
    /// eighth of the keys nearest to expiring (they carry the least state).
    fn evict(&self, map: &mut HashMap<K, u64>, now: u64) {
        map.retain(|_, tat| *tat > now);
        if map.len() < self.shard_capacity {
            return;
        }
        let mut tats: Vec<u64> = map.values().copied().collect();
        let cut = (tats.len() / 8).max(1);
        let (_, threshold, _) = tats.select_nth_unstable(cut - 1);
        let threshold = *threshold;
        let mut removed = 0;
        map.retain(|_, tat| {
            if *tat <= threshold && removed < cut {
                removed += 1;
                false
            } else {
                true
            }
        });
    }

    /// Keys currently remembered (expired ones may still be counted until evicted).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |m| m.len()))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every expired key; call it now and then to return memory after a burst.
    pub fn purge(&self) {
        let now = self.epoch.elapsed().as_nanos() as u64;
        for s in &self.shards {
            if let Ok(mut m) = s.lock() {
                m.retain(|_, tat| *tat > now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(burst: u32, period_ms: u64, max_keys: usize) -> RateLimiter<u32> {
        RateLimiter::new(
            Quota::new(burst, Duration::from_millis(period_ms)).unwrap(),
            max_keys,
        )
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let l = limiter(3, 300, 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check_at(&1, t0).is_ok());
        }
        let wait = l.check_at(&1, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        // Other keys are independent.
        assert!(l.check_at(&2, t0).is_ok());
        // One interval later exactly one more request passes.
        let t1 = t0 + Duration::from_millis(100);
        assert!(l.check_at(&1, t1).is_ok());
        assert!(l.check_at(&1, t1).is_err());
        // After a full period the whole burst is back.
        let t2 = t1 + Duration::from_millis(300);
        for _ in 0..3 {
            assert!(l.check_at(&1, t2).is_ok());
        }
        assert!(l.check_at(&1, t2).is_err());
    }

    #[test]
    fn refused_requests_do_not_consume_the_quota() {
        let l = limiter(1, 100, 10);
        let t0 = Instant::now();
        assert!(l.check_at(&7, t0).is_ok());
        for _ in 0..50 {
            assert!(l.check_at(&7, t0).is_err());
        }
        assert!(l.check_at(&7, t0 + Duration::from_millis(100)).is_ok());
    }

    #[test]
    fn rotating_keys_cannot_grow_the_store() {
        let l = limiter(5, 60_000, 1_000);
        let t0 = Instant::now();
        for k in 0..100_000u32 {
            assert!(l.check_at(&k, t0).is_ok());
        }
        assert!(l.len() <= 1_000 + SHARDS, "{} keys kept", l.len());
    }

    #[test]
    fn a_flood_of_other_keys_does_not_reset_a_limited_key_below_capacity() {
        let l = limiter(1, 60_000, 20_000);
        let t0 = Instant::now();
        assert!(l.check_at(&1, t0).is_ok());
        for k in 2..5_000u32 {
            assert!(l.check_at(&k, t0).is_ok());
        }
        assert!(l.check_at(&1, t0).is_err(), "key 1 keeps its state");
    }

    #[test]
    fn expired_keys_free_their_memory() {
        let l = limiter(2, 10, 1_000);
        let t0 = Instant::now();
        for k in 0..500u32 {
            assert!(l.check_at(&k, t0).is_ok());
        }
        assert_eq!(l.len(), 500);
        // Once their time has passed, the keys are dropped on the next insert into a full
        // shard or by purge, and start over with a whole burst.
        std::thread::sleep(Duration::from_millis(20));
        l.purge();
        assert!(l.is_empty());
        assert!(l.check_at(&3, Instant::now()).is_ok());
    }

    #[test]
    fn ipv6_clients_are_limited_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(rate_key(a), rate_key(b));
        assert_ne!(rate_key(a), rate_key(c));
        let v4: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(rate_key(v4), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn bad_quotas_are_refused() {
        assert!(Quota::new(0, Duration::from_secs(1)).is_err());
        assert!(Quota::new(1, Duration::ZERO).is_err());
    }
}
