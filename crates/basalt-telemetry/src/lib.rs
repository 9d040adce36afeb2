//! Logs and metrics shared by every crate: the tracing subscriber set-up and a Prometheus
//! registry with the HTTP and storage series.
//!
//! It must never know about any other Basalt crate.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
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
    readers_total: IntGauge,
    readers_idle: IntGauge,
    writer_queue_depth: IntGauge,
    writer_queue_capacity: IntGauge,
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
        Self {
            registry,
            requests,
            latency,
            readers_total,
            readers_idle,
            writer_queue_depth,
            writer_queue_capacity,
        }
    }

    pub fn observe_request(&self, method: &str, route: &str, status: &str, seconds: f64) {
        self.requests
            .with_label_values(&[method, route, status])
            .inc();
        self.latency.with_label_values(&[route]).observe(seconds);
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

    /// The Prometheus text exposition.
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

/// Metric construction only fails for invalid names or labels, which are constants here.
fn unreachable_metric<T>() -> T {
    panic!("invalid metric definition")
}
