//! A pool's `[edge.pools.NAME.dns]` table: how its `dns` / `srv` targets are resolved.

use serde::Deserialize;

/// `[edge.pools.NAME.dns]`: how the pool's `dns` / `srv` targets are resolved.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// Name server as `ip:port` (or `ip`, port 53). Default: the system's resolver
    /// (`/etc/resolv.conf`).
    #[serde(default)]
    pub resolver: Option<String>,
    /// Shortest wait between resolutions, whatever the TTL says; also the retry delay
    /// after a failure. Default 1000.
    #[serde(default = "default_min_ttl")]
    pub min_ttl_ms: u64,
    /// Longest wait between resolutions, whatever the TTL says. Default 300000.
    #[serde(default = "default_max_ttl")]
    pub max_ttl_ms: u64,
    /// Milliseconds one query may take. Default 2000.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn default_min_ttl() -> u64 {
    1000
}
fn default_max_ttl() -> u64 {
    300_000
}
fn default_timeout() -> u64 {
    2000
}

impl Default for DnsConfig {
    /// What a pool with DNS-given targets and no `dns` table gets.
    fn default() -> Self {
        DnsConfig {
            resolver: None,
            min_ttl_ms: default_min_ttl(),
            max_ttl_ms: default_max_ttl(),
            timeout_ms: default_timeout(),
        }
    }
}
