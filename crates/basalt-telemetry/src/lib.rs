//! Logs and metrics shared by every crate: the tracing subscriber set-up and a Prometheus
//! registry with the HTTP and storage series.
//!
//! It must never know about any other Basalt crate.

mod http_series;
mod process;

use http_series::RequestSeries;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Installs the global subscriber: JSON lines when `json`, human text otherwise.
pub fn init_logging(json: bool, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// The process's metrics, rendered in the Prometheus text format (0.0.4).
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    request_series: RequestSeries,
    readers_total: IntGauge,
    readers_idle: IntGauge,
    writer_queue_depth: IntGauge,
    writer_queue_capacity: IntGauge,
    durability: DurabilityMetrics,
    realtime: RealtimeMetrics,
    /// Record reads that carried `If-None-Match`, by `result`: `not_modified` (answered
    /// 304) or `modified` (the tag no longer matched: a 200 with the body).
    revalidations: [IntCounter; 2],
}

/// The store's durability series: counters kept by the store, mirrored here on scrape.
struct DurabilityMetrics {
    writer_up: IntGauge,
    corruption: IntCounter,
    failed_groups: IntCounter,
    unknown_commits: IntCounter,
}

impl DurabilityMetrics {
    fn new(registry: &Registry) -> Self {
        let counter = |name: &str, help: &str| {
            IntCounter::new(name, help).unwrap_or_else(|_| unreachable_metric())
        };
        let writer_up = IntGauge::new(
            "store_writer_up",
            "1 while the database writer runs, 0 once it stopped (writes fail until a restart)",
        )
        .unwrap_or_else(|_| unreachable_metric());
        let corruption = counter(
            "store_corruption_total",
            "SQLite errors that reported the database file damaged",
        );
        let failed_groups = counter(
            "store_failed_groups_total",
            "Group commits rolled back whole because their transaction was in doubt",
        );
        let unknown_commits = counter(
            "store_commit_unknown_total",
            "COMMITs that returned an error: their writes may or may not be stored",
        );
        for c in [
            Box::new(writer_up.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(corruption.clone()),
            Box::new(failed_groups.clone()),
            Box::new(unknown_commits.clone()),
        ] {
            let _ = registry.register(c);
        }
        Self {
            writer_up,
            corruption,
            failed_groups,
            unknown_commits,
        }
    }
}

/// Brings a mirrored counter up to `total` (the store's counters only grow).
fn advance(counter: &IntCounter, total: u64) {
    counter.inc_by(total.saturating_sub(counter.get()));
}

/// The realtime series: clients by transport, subscriptions, deliveries, losses and the
/// commit-to-stream latency.
struct RealtimeMetrics {
    clients: IntGaugeVec,
    subscriptions: IntGauge,
    delivered: IntCounter,
    dropped: IntCounterVec,
    slow_consumers: IntCounter,
    fanout_latency: Histogram,
}

impl RealtimeMetrics {
    fn new(registry: &Registry) -> Self {
        let clients = IntGaugeVec::new(
            Opts::new(
                "realtime_clients",
                "Connected realtime clients by transport",
            ),
            &["transport"],
        )
        .unwrap_or_else(|_| unreachable_metric());
        let subscriptions = IntGauge::new(
            "realtime_subscriptions",
            "Subscriptions held by connected realtime clients",
        )
        .unwrap_or_else(|_| unreachable_metric());
        let delivered = IntCounter::new(
            "realtime_events_delivered_total",
            "Realtime events written to a client's stream",
        )
        .unwrap_or_else(|_| unreachable_metric());
        let dropped = IntCounterVec::new(
            Opts::new(
                "realtime_events_dropped_total",
                "Realtime events not delivered, by reason",
            ),
            &["reason"],
        )
        .unwrap_or_else(|_| unreachable_metric());
        let slow_consumers = IntCounter::new(
            "realtime_slow_consumer_disconnects_total",
            "Realtime clients disconnected because their queue was full",
        )
        .unwrap_or_else(|_| unreachable_metric());
        let fanout_latency = Histogram::with_opts(
            HistogramOpts::new(
                "realtime_fanout_latency_seconds",
                "From a change's commit to its event written to a client's stream",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
        )
        .unwrap_or_else(|_| unreachable_metric());
        for c in [
            Box::new(clients.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(subscriptions.clone()),
            Box::new(delivered.clone()),
            Box::new(dropped.clone()),
            Box::new(slow_consumers.clone()),
            Box::new(fanout_latency.clone()),
        ] {
            let _ = registry.register(c);
        }
        Self {
            clients,
            subscriptions,
            delivered,
            dropped,
            slow_consumers,
            fanout_latency,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("basalt".into()), None).unwrap_or_default();
        // Metric names and label sets below are static and valid, so construction cannot
        // fail; registration errors (duplicates) are impossible for the same reason.
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by method, route and status",
            ),
            &["method", "route", "status"],
        )
        .unwrap_or_else(|_| unreachable_metric());
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["route"],
        )
        .unwrap_or_else(|_| unreachable_metric());
        let gauge = |name: &str, help: &str| {
            IntGauge::new(name, help).unwrap_or_else(|_| unreachable_metric())
        };
        let readers_total = gauge("db_readers", "Reader connections in the pool");
        let readers_idle = gauge("db_readers_idle", "Idle reader connections");
        let writer_queue_depth = gauge("db_writer_queue_depth", "Writes waiting for the writer");
        let writer_queue_capacity =
            gauge("db_writer_queue_capacity", "Capacity of the writer queue");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(readers_total.clone()),
            Box::new(readers_idle.clone()),
            Box::new(writer_queue_depth.clone()),
            Box::new(writer_queue_capacity.clone()),
        ] {
            let _ = registry.register(c);
        }
        let revalidation_vec = IntCounterVec::new(
            Opts::new(
                "records_revalidations_total",
                "Record view and list requests with If-None-Match, by result (not_modified: a 304)",
            ),
            &["result"],
        )
        .unwrap_or_else(|_| unreachable_metric());
        let _ = registry.register(Box::new(revalidation_vec.clone()));
        let revalidations =
            ["not_modified", "modified"].map(|r| revalidation_vec.with_label_values(&[r]));
        let realtime = RealtimeMetrics::new(&registry);
        let durability = DurabilityMetrics::new(&registry);
        Self {
            realtime,
            durability,
            registry,
            requests,
            latency,
            request_series: RequestSeries::default(),
            readers_total,
            readers_idle,
            writer_queue_depth,
            writer_queue_capacity,
            revalidations,
        }
    }

    /// Counts a record read that carried `If-None-Match`: `matched` when it got a 304.
    pub fn record_revalidation(&self, matched: bool) {
        self.revalidations[usize::from(!matched)].inc();
    }

    /// Counts one answered request and its latency. `route` should be the router's own
    /// string for the route (its address keys the cached series handles).
    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.request_series.observe(
            &self.requests,
            &self.latency,
            (method, route, status),
            seconds,
        );
    }

    pub fn set_store_gauges(
        &self,
        readers_total: usize,
        readers_idle: usize,
        queue_depth: usize,
        queue_capacity: usize,
    ) {
        self.readers_total.set(readers_total as i64);
        self.readers_idle.set(readers_idle as i64);
        self.writer_queue_depth.set(queue_depth as i64);
        self.writer_queue_capacity.set(queue_capacity as i64);
    }

    /// The store's health: whether its writer runs, and its durability counters (totals
    /// since the store opened).
    pub fn set_store_health(
        &self,
        writer_up: bool,
        corruption: u64,
        failed_groups: u64,
        unknown_commits: u64,
    ) {
        let d = &self.durability;
        d.writer_up.set(i64::from(writer_up));
        advance(&d.corruption, corruption);
        advance(&d.failed_groups, failed_groups);
        advance(&d.unknown_commits, unknown_commits);
    }

    /// A realtime client connected (`delta` 1) or disconnected (-1).
    pub fn realtime_client_connected(&self, transport: &str, delta: i64) {
        self.realtime
            .clients
            .with_label_values(&[transport])
            .add(delta);
    }

    pub fn set_realtime_subscriptions(&self, n: i64) {
        self.realtime.subscriptions.set(n);
    }

    pub fn realtime_delivered(&self, n: u64) {
        self.realtime.delivered.inc_by(n);
    }

    /// Events not delivered: `slow_consumer`, `lagged`, `rule_error`, `render_error`.
    pub fn realtime_dropped(&self, reason: &str, n: u64) {
        self.realtime.dropped.with_label_values(&[reason]).inc_by(n);
    }

    pub fn realtime_slow_consumer(&self) {
        self.realtime.slow_consumers.inc();
    }

    pub fn observe_realtime_fanout(&self, seconds: f64) {
        self.realtime.fanout_latency.observe(seconds);
    }

    /// Many fan-out latencies at once: the shared counters are touched once per batch,
    /// not once per subscriber (a 10k fan-out on two threads made them bounce between
    /// the cores).
    pub fn observe_realtime_fanout_many(&self, seconds: &[f64]) {
        let local = self.realtime.fanout_latency.local();
        for s in seconds {
            local.observe(*s);
        }
        local.flush();
    }

    /// The Prometheus text exposition: Basalt's series, then the process's.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_err()
        {
            return String::new();
        }
        let mut out = String::from_utf8(buf).unwrap_or_default();
        process::render(&mut out);
        out
    }
}

/// Metric construction only fails for invalid names or labels, which are constants here.
fn unreachable_metric<T>() -> T {
    panic!("invalid metric definition")
}
