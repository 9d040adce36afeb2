//! The cache's Prometheus series, per zone: lookups by result, evictions and bytes/entries
//! per tier, and background revalidations.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

pub struct CacheMetrics {
    lookups: IntCounterVec,
    evictions: IntCounterVec,
    bytes: IntGaugeVec,
    entries: IntGaugeVec,
    revalidations: IntCounterVec,
}

impl Default for CacheMetrics {
    fn default() -> Self {
        Self::new()
    }
}

fn fixed<T>(r: prometheus::Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("invalid metric definition: {e}"),
    }
}

impl CacheMetrics {
    pub fn new() -> Self {
        let counter = |n: &str, h: &str, l: &[&str]| fixed(IntCounterVec::new(Opts::new(n, h), l));
        let gauge = |n: &str, h: &str, l: &[&str]| fixed(IntGaugeVec::new(Opts::new(n, h), l));
        Self {
            lookups: counter(
                "cache_requests_total",
                "Requests through a cache zone by result (hit, miss, stale, revalidated, bypass)",
                &["zone", "result"],
            ),
            evictions: counter(
                "cache_evictions_total",
                "Entries evicted to stay within a tier's bound",
                &["zone", "tier"],
            ),
            bytes: gauge(
                "cache_bytes",
                "Bytes held per zone and tier",
                &["zone", "tier"],
            ),
            entries: gauge(
                "cache_entries",
                "Entries held per zone and tier",
                &["zone", "tier"],
            ),
            revalidations: counter(
                "cache_revalidations_total",
                "Revalidations with the upstream by outcome (not_modified, modified, error)",
                &["zone", "outcome"],
            ),
        }
    }

    pub fn register(&self, registry: &Registry) {
        for c in [
            Box::new(self.lookups.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(self.evictions.clone()),
            Box::new(self.bytes.clone()),
            Box::new(self.entries.clone()),
            Box::new(self.revalidations.clone()),
        ] {
            let _ = registry.register(c);
        }
    }

    pub fn lookup(&self, zone: &str, result: &str) {
        self.lookups.with_label_values(&[zone, result]).inc();
    }

    pub fn eviction(&self, zone: &str, tier: &str) {
        self.evictions.with_label_values(&[zone, tier]).inc();
    }

    pub fn revalidation(&self, zone: &str, outcome: &str) {
        self.revalidations.with_label_values(&[zone, outcome]).inc();
    }

    pub fn set_size(&self, zone: &str, tier: &str, bytes: u64, entries: usize) {
        self.bytes
            .with_label_values(&[zone, tier])
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.entries
            .with_label_values(&[zone, tier])
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
    }
}
