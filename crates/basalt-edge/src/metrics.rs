//! The edge's Prometheus series: requests and latency per route, requests, latency, health,
//! retries and ejections per upstream target, rate-limited and rejected requests; and in
//! their own files the series of the cache (`cache`), DNS discovery (`discovery`) and L4
//! streams (`stream`).
//!
//! A leaf like `config`: it imports no feature module, so every feature can record here
//! without an import circle.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

mod cache;
mod discovery;
mod stream;

pub(crate) use cache::CacheMetrics;
pub use discovery::DiscoveryMetrics;
pub(crate) use stream::ConnectionMeters;
pub use stream::StreamMetrics;

pub struct EdgeMetrics {
    /// Tells this instance's series apart in the per-thread handle memo.
    id: u64,
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    upstream_requests: IntCounterVec,
    upstream_latency: HistogramVec,
    target_healthy: IntGaugeVec,
    retries: IntCounterVec,
    ejections: IntCounterVec,
    rejected: IntCounterVec,
    acme_expiry: IntGaugeVec,
    acme_issuance: IntCounterVec,
    acme_orders: IntCounterVec,
    connections: IntCounterVec,
    /// The L4 streams' series (`[[edge.streams]]`).
    pub streams: StreamMetrics,
    /// DNS discovery of pool targets.
    pub discovery: DiscoveryMetrics,
    /// The HTTP cache's series (registered on the same registry).
    pub(crate) cache: CacheMetrics,
}

impl Default for EdgeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Names and label sets are constants, so construction cannot fail.
fn fixed<T>(r: prometheus::Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("invalid metric definition: {e}"),
    }
}

impl EdgeMetrics {
    pub fn new() -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            fixed(IntCounterVec::new(Opts::new(name, help), labels))
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            fixed(HistogramVec::new(
                HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
                labels,
            ))
        };
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let m = Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            requests: counter(
                "requests_total",
                "Requests by route and status",
                &["route", "status"],
            ),
            latency: histogram(
                "request_duration_seconds",
                "Time to response headers by route",
                &["route"],
            ),
            upstream_requests: counter(
                "upstream_requests_total",
                "Upstream attempts by pool, target and status (0 when no response)",
                &["pool", "target", "status"],
            ),
            upstream_latency: histogram(
                "upstream_duration_seconds",
                "Upstream time to response headers by pool and target",
                &["pool", "target"],
            ),
            target_healthy: fixed(IntGaugeVec::new(
                Opts::new("target_healthy", "1 when active health checks pass"),
                &["pool", "target"],
            )),
            retries: counter(
                "retries_total",
                "Retried upstream attempts by pool",
                &["pool"],
            ),
            ejections: counter(
                "ejections_total",
                "Passive ejections by pool and target",
                &["pool", "target"],
            ),
            rejected: counter(
                "rejected_total",
                "Requests refused before routing, by reason",
                &["reason"],
            ),
            acme_expiry: fixed(IntGaugeVec::new(
                Opts::new(
                    "acme_certificate_expiry_timestamp_seconds",
                    "notAfter of the ACME certificate served for a name, seconds since the epoch",
                ),
                &["name"],
            )),
            acme_issuance: counter(
                "acme_issuance_total",
                "ACME issuances and renewals by certificate and result (success, failure)",
                &["name", "result"],
            ),
            acme_orders: counter(
                "acme_orders_total",
                "ACME orders this node placed at the CA, by certificate",
                &["name"],
            ),
            connections: counter(
                "connections_total",
                "Accepted client connections by the worker thread serving them (0: the shared runtime)",
                &["worker"],
            ),
            registry: fixed(Registry::new_custom(Some("basalt_edge".into()), None)),
            streams: StreamMetrics::new(),
            discovery: DiscoveryMetrics::new(),
            cache: CacheMetrics::new(),
        };
        m.cache.register(&m.registry);
        for c in [
            Box::new(m.requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.latency.clone()),
            Box::new(m.upstream_requests.clone()),
            Box::new(m.upstream_latency.clone()),
            Box::new(m.target_healthy.clone()),
            Box::new(m.retries.clone()),
            Box::new(m.ejections.clone()),
            Box::new(m.rejected.clone()),
            Box::new(m.acme_expiry.clone()),
            Box::new(m.acme_issuance.clone()),
            Box::new(m.acme_orders.clone()),
            Box::new(m.connections.clone()),
        ] {
            let _ = m.registry.register(c);
        }
        m.streams.register(&m.registry);
        m.discovery.register(&m.registry);
        m
    }

    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        ROUTE_HANDLES.with(|memo| {
            let mut memo = memo.borrow_mut();
            let (count, latency) = memo.get(self.id, route, "", status, || {
                (
                    self.requests
                        .with_label_values(&[route, status_label(status)]),
                    self.latency.with_label_values(&[route]),
                )
            });
            count.inc();
            latency.observe(seconds);
        });
    }

    pub fn upstream(&self, pool: &str, target: &str, status: u16, seconds: f64) {
        UPSTREAM_HANDLES.with(|memo| {
            let mut memo = memo.borrow_mut();
            let (count, latency) = memo.get(self.id, pool, target, status, || {
                (
                    self.upstream_requests
                        .with_label_values(&[pool, target, status_label(status)]),
                    self.upstream_latency.with_label_values(&[pool, target]),
                )
            });
            count.inc();
            latency.observe(seconds);
        });
    }

    pub fn set_health(&self, pool: &str, target: &str, healthy: bool) {
        self.target_healthy
            .with_label_values(&[pool, target])
            .set(i64::from(healthy));
    }

    pub fn retry(&self, pool: &str) {
        self.retries.with_label_values(&[pool]).inc();
    }

    pub fn ejections(&self, pool: &str, target: &str) {
        self.ejections.with_label_values(&[pool, target]).inc();
    }

    /// `reason`: `framing`, `rate_limited`, `ip_denied`, `too_large`, `timeout`.
    pub fn rejected(&self, reason: &str) {
        self.rejected.with_label_values(&[reason]).inc();
    }

    /// `name`: a DNS name the certificate covers; `not_after` in seconds since the epoch.
    pub fn acme_expiry(&self, name: &str, not_after: i64) {
        self.acme_expiry.with_label_values(&[name]).set(not_after);
    }

    /// `name`: the certificate's first domain.
    pub fn acme_issued(&self, name: &str, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.acme_issuance.with_label_values(&[name, result]).inc();
    }

    pub fn acme_order(&self, name: &str) {
        self.acme_orders.with_label_values(&[name]).inc();
    }

    /// The counter of connections accepted on `worker`, taken once per accept loop.
    pub fn worker_connections(&self, worker: usize) -> prometheus::IntCounter {
        self.connections
            .with_label_values(&[worker.to_string().as_str()])
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

thread_local! {
    /// The series handles a worker thread counted into last, per route and status.
    static ROUTE_HANDLES: RefCell<HandleMemo> = const { RefCell::new(HandleMemo::new()) };
    /// The same per upstream pool, target and status.
    static UPSTREAM_HANDLES: RefCell<HandleMemo> = const { RefCell::new(HandleMemo::new()) };
}

/// Entries a thread's memo holds: more routes or targets than this in turn cost the
/// label look-ups again, never wrong counts.
const MEMO_ENTRIES: usize = 16;

/// A few series handles remembered per thread, because `with_label_values` hashes every
/// label with SipHash, takes the vector's lock and clones an `Arc` on each call: about
/// a thousand instructions per proxied request for the four series it counts into.
/// Comparing the labels of a remembered entry costs a few short string compares.
struct HandleMemo {
    entries: Vec<MemoEntry>,
    /// The entry replaced next when the memo is full.
    next: usize,
}

struct MemoEntry {
    /// `EdgeMetrics::id` of the series' owner: tests run several edges in one process.
    metrics: u64,
    first: String,
    second: String,
    status: u16,
    handles: (IntCounter, Histogram),
}

impl HandleMemo {
    const fn new() -> Self {
        Self {
            entries: Vec::new(),
            next: 0,
        }
    }

    fn get(
        &mut self,
        metrics: u64,
        first: &str,
        second: &str,
        status: u16,
        resolve: impl FnOnce() -> (IntCounter, Histogram),
    ) -> &(IntCounter, Histogram) {
        let found = self.entries.iter().position(|e| {
            e.metrics == metrics && e.status == status && e.first == first && e.second == second
        });
        let index = match found {
            Some(i) => i,
            None => {
                let entry = MemoEntry {
                    metrics,
                    first: first.to_owned(),
                    second: second.to_owned(),
                    status,
                    handles: resolve(),
                };
                if self.entries.len() < MEMO_ENTRIES {
                    self.entries.push(entry);
                    self.entries.len() - 1
                } else {
                    let i = self.next;
                    self.next = (i + 1) % MEMO_ENTRIES;
                    self.entries[i] = entry;
                    i
                }
            }
        };
        &self.entries[index].handles
    }
}

/// Static labels for common statuses, so counting a request does not format a number.
fn status_label(status: u16) -> &'static str {
    const LABELS: [&str; 600] = {
        let mut l = [""; 600];
        l[0] = "0";
        l[101] = "101";
        l[200] = "200";
        l[201] = "201";
        l[204] = "204";
        l[206] = "206";
        l[301] = "301";
        l[302] = "302";
        l[304] = "304";
        l[307] = "307";
        l[308] = "308";
        l[400] = "400";
        l[401] = "401";
        l[403] = "403";
        l[404] = "404";
        l[405] = "405";
        l[413] = "413";
        l[416] = "416";
        l[429] = "429";
        l[431] = "431";
        l[500] = "500";
        l[502] = "502";
        l[503] = "503";
        l[504] = "504";
        l
    };
    match LABELS.get(usize::from(status)) {
        Some(s) if !s.is_empty() => s,
        _ => match status / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(m: &EdgeMetrics, series: &str) -> u64 {
        let text = m.render();
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn remembered_handles_count_into_their_own_series() {
        let a = EdgeMetrics::new();
        let b = EdgeMetrics::new();
        // More routes than the memo holds, in turn, so entries are replaced and looked up
        // again; two instances with the same labels must not share a series.
        for round in 0..3 {
            for r in 0..(MEMO_ENTRIES + 4) {
                let route = format!("r{r}");
                a.request(&route, 200, 0.001);
                a.upstream("p", &route, 502, 0.001);
                if round == 0 {
                    b.request(&route, 200, 0.001);
                }
            }
        }
        a.request("r0", 404, 0.001);
        assert_eq!(
            count(&a, r#"basalt_edge_requests_total{route="r0",status="200"}"#),
            3
        );
        assert_eq!(
            count(&a, r#"basalt_edge_requests_total{route="r0",status="404"}"#),
            1
        );
        assert_eq!(
            count(&b, r#"basalt_edge_requests_total{route="r0",status="200"}"#),
            1
        );
        assert_eq!(
            count(
                &a,
                r#"basalt_edge_upstream_requests_total{pool="p",status="502",target="r19"}"#
            ),
            3
        );
    }
}
