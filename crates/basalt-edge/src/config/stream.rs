//! The `[[edge.streams]]` configuration: L4 listeners forwarding TCP connections or UDP
//! datagrams to an upstream pool.

use serde::Deserialize;

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum StreamProtocol {
    #[default]
    Tcp,
    Udp,
}

impl StreamProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamProtocol::Tcp => "tcp",
            StreamProtocol::Udp => "udp",
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Name used in metrics and logs. Default `protocol/listen` (e.g. `tcp/127.0.0.1:7000`).
    #[serde(default)]
    pub name: Option<String>,
    /// Socket address to listen on, e.g. `127.0.0.1:7000` or `[::1]:5353`.
    pub listen: String,
    /// `tcp` or `udp`. Default `tcp`.
    #[serde(default)]
    pub protocol: StreamProtocol,
    /// Upstream pool (`[edge.pools.NAME]`) the connections or datagrams go to. Its targets,
    /// algorithm (consistent hashing uses the client IP), health checks, passive ejection,
    /// per-target cap (concurrent connections or sessions) and connect timeout apply; its
    /// `retries` are the extra targets tried when a TCP connect fails.
    pub pool: String,
    /// TCP: expect a PROXY protocol v1 or v2 header on every accepted connection.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// TCP: send a PROXY protocol v2 header with the client's address to the upstream.
    #[serde(default)]
    pub send_proxy_protocol: bool,
    /// When non-empty, only clients in these CIDR ranges are served.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Clients in these CIDR ranges are refused (TCP: closed on accept; UDP: dropped).
    #[serde(default)]
    pub deny: Vec<String>,
    /// Milliseconds without a byte in either direction after which a TCP connection is
    /// closed or a UDP session forgotten. Default 600000 (TCP) / 30000 (UDP).
    #[serde(default)]
    pub idle_timeout_ms: Option<u64>,
    /// UDP: most client sessions at once; datagrams from new clients beyond it are
    /// dropped. Default 10000.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
}

fn default_max_sessions() -> usize {
    10_000
}
