//! The cache's configuration as written in TOML: `[[edge.cache_zones]]` and a route's
//! `cache = { zone = "..." }`, and the byte sizes they are written in.

use std::path::PathBuf;

use serde::Deserialize;

/// One `[[edge.cache_zones]]` entry.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CacheZoneConfig {
    /// Name routes refer to with `cache = { zone = "..." }`.
    pub name: String,
    /// Bytes kept in memory, e.g. `"64MB"`. Default 64MB.
    #[serde(default = "default_memory_max")]
    pub memory_max: String,
    /// Directory of the disk tier; memory only when unset. Survives restarts.
    #[serde(default)]
    pub disk_path: Option<PathBuf>,
    /// Bytes kept on disk, e.g. `"1GB"`. Default 1GB.
    #[serde(default = "default_disk_max")]
    pub disk_max: String,
    /// Largest body stored; larger responses stream through uncached. Default 8MB.
    #[serde(default = "default_max_object")]
    pub max_object: String,
    /// Upstream response header listing the tags an entry can be purged by (comma or space
    /// separated). Default `Cache-Tag`.
    #[serde(default = "default_tag_header")]
    pub tag_header: String,
    /// Milliseconds a request waits for another one fetching the same cold key before it
    /// goes upstream itself. Default 5000.
    #[serde(default = "default_lock_timeout")]
    pub lock_timeout_ms: u64,
}

fn default_memory_max() -> String {
    "64MB".into()
}
fn default_disk_max() -> String {
    "1GB".into()
}
fn default_max_object() -> String {
    "8MB".into()
}
fn default_tag_header() -> String {
    "cache-tag".into()
}
fn default_lock_timeout() -> u64 {
    5000
}

/// A route's `cache = { zone = "..." }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteCacheConfig {
    pub zone: String,
}

/// Parses `"64MB"`, `"512KB"`, `"1GB"`, `"100B"` or a plain number of bytes (units are
/// powers of 1024, as nginx reads them).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_uppercase();
    let digits = t.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = t[digits.len()..]
        .trim_end_matches("IB")
        .trim_end_matches('B');
    let n: u64 = digits.trim().parse().ok()?;
    let mult: u64 = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}
