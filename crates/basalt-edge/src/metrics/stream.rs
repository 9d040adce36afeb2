//! Prometheus series of the L4 streams: connections (UDP: sessions), bytes each way,
//! active connections, connect failures and refused clients, per stream and target.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

pub struct StreamMetrics {
    connections: IntCounterVec,
    bytes: IntCounterVec,
    active: IntGaugeVec,
    connect_failures: IntCounterVec,
    refused: IntCounterVec,
}

/// Names and label sets are constants, so construction cannot fail.
fn fixed<T>(r: prometheus::Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("invalid metric definition: {e}"),
    }
}

/// The counters one connection or session updates, looked up once when it starts.
pub struct ConnectionMeters {
    /// Client to upstream.
    pub bytes_in: IntCounter,
    /// Upstream to client.
    pub bytes_out: IntCounter,
    active: IntGauge,
}

impl Drop for ConnectionMeters {
    fn drop(&mut self) {
        self.active.dec();
    }
}

impl Default for StreamMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamMetrics {
    pub fn new() -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            fixed(IntCounterVec::new(Opts::new(name, help), labels))
        };
        Self {
            connections: counter(
                "stream_connections_total",
                "L4 connections (UDP: sessions) opened to a target, by stream and target",
                &["stream", "target"],
            ),
            bytes: counter(
                "stream_bytes_total",
                "L4 bytes relayed by stream, target and direction (in: client to upstream)",
                &["stream", "target", "direction"],
            ),
            active: fixed(IntGaugeVec::new(
                Opts::new(
                    "stream_active",
                    "Open L4 connections (UDP: sessions) by stream and target",
                ),
                &["stream", "target"],
            )),
            connect_failures: counter(
                "stream_connect_failures_total",
                "Failed L4 connects to a target (UDP: refused by the target)",
                &["stream", "target"],
            ),
            refused: counter(
                "stream_refused_total",
                "L4 clients refused by stream and reason (ip_denied, proxy_protocol, no_target, session_limit)",
                &["stream", "reason"],
            ),
        }
    }

    pub fn register(&self, registry: &Registry) {
        let m = self;
        for c in [
            Box::new(m.connections.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.bytes.clone()),
            Box::new(m.active.clone()),
            Box::new(m.connect_failures.clone()),
            Box::new(m.refused.clone()),
        ] {
            let _ = registry.register(c);
        }
    }

    /// Counts a connection opened to `target` and returns its meters.
    pub fn opened(&self, stream: &str, target: &str) -> ConnectionMeters {
        self.connections.with_label_values(&[stream, target]).inc();
        let active = self.active.with_label_values(&[stream, target]);
        active.inc();
        ConnectionMeters {
            bytes_in: self.bytes.with_label_values(&[stream, target, "in"]),
            bytes_out: self.bytes.with_label_values(&[stream, target, "out"]),
            active,
        }
    }

    pub fn connect_failed(&self, stream: &str, target: &str) {
        self.connect_failures
            .with_label_values(&[stream, target])
            .inc();
    }

    pub fn refused(&self, stream: &str, reason: &str) {
        self.refused.with_label_values(&[stream, reason]).inc();
    }
}
