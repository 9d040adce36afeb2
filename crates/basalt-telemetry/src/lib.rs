//! Logs and metrics shared by every crate: the tracing subscriber set-up and a Prometheus
//! registry with the HTTP and storage series.
//!
//! It must never know about any other Basalt crate.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

/// The process's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    readers_total: Gauge,
    readers_idle: Gauge,
    writer_queue_depth: Gauge,
    writer_queue_capacity: Gauge,
    render_lock: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("basalt");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ])
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        let readers_total = Gauge::default();
        registry.register(
            "db_readers",
            "Reader connections in the pool",
            readers_total.clone(),
        );
        let readers_idle = Gauge::default();
        registry.register(
            "db_readers_idle",
            "Idle reader connections",
            readers_idle.clone(),
        );
        let writer_queue_depth = Gauge::default();
        registry.register(
            "db_writer_queue_depth",
            "Writes waiting for the writer",
            writer_queue_depth.clone(),
        );
        let writer_queue_capacity = Gauge::default();
        registry.register(
            "db_writer_queue_capacity",
            "Capacity of the writer queue",
            writer_queue_capacity.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            readers_total,
            readers_idle,
            writer_queue_depth,
            writer_queue_capacity,
            render_lock: Mutex::new(()),
        }
    }

    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_string(),
                route: route.to_string(),
                status: status.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .observe(seconds);
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
        let _guard = self.render_lock.lock();
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
