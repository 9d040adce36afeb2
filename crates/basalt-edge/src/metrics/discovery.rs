//! The series of DNS discovery (`discovery`), per pool.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

/// Prometheus series of DNS discovery, per pool.
pub struct DiscoveryMetrics {
    resolutions: IntCounterVec,
    targets: IntGaugeVec,
}

/// Names and label sets are constants, so construction cannot fail.
fn fixed<T>(r: prometheus::Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("invalid metric definition: {e}"),
    }
}

impl Default for DiscoveryMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl DiscoveryMetrics {
    pub fn new() -> Self {
        Self {
            resolutions: fixed(IntCounterVec::new(
                Opts::new(
                    "dns_resolutions_total",
                    "DNS resolutions of pool targets by pool and result (ok, error)",
                ),
                &["pool", "result"],
            )),
            targets: fixed(IntGaugeVec::new(
                Opts::new(
                    "dns_pool_targets",
                    "Targets of a pool with DNS targets after the last resolution",
                ),
                &["pool"],
            )),
        }
    }

    pub fn register(&self, registry: &Registry) {
        let _ = registry.register(Box::new(self.resolutions.clone()));
        let _ = registry.register(Box::new(self.targets.clone()));
    }

    pub(crate) fn resolved(&self, pool: &str, result: &str) {
        self.resolutions.with_label_values(&[pool, result]).inc();
    }

    pub(crate) fn targets(&self, pool: &str, n: usize) {
        self.targets
            .with_label_values(&[pool])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}
