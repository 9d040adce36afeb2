//! The `[edge]` configuration as written in TOML: listeners, routes, pools, limits, the
//! admin listener, and in its own files the tables of cache zones (`cache`), compression
//! (`compress`), DNS discovery (`dns`) and L4 streams (`stream`). Unknown keys are rejected;
//! `Snapshot::build` validates it into what runs.
//!
//! A leaf: these are plain serde types, and this module imports no feature module of the
//! edge (only `error`), so every feature can import its settings from here without an
//! import circle. A feature's behaviour on its settings stays in the feature.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::error::EdgeError;

mod cache;
mod compress;
mod dns;
mod stream;

pub use cache::{CacheZoneConfig, RouteCacheConfig, parse_size};
pub use compress::CompressConfig;
pub use dns::DnsConfig;
pub use stream::{StreamConfig, StreamProtocol};

/// The whole `[edge]` section.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeConfig {
    /// Public listeners (`[[edge.listeners]]`).
    pub listeners: Vec<ListenerConfig>,
    /// Routes, tried in order; the first match wins (`[[edge.routes]]`).
    pub routes: Vec<RouteConfig>,
    /// Upstream pools by name (`[edge.pools.NAME]`).
    pub pools: BTreeMap<String, PoolConfig>,
    /// Request limits and client timeouts (`[edge.limits]`).
    pub limits: LimitsConfig,
    /// The admin listener serving `POST /reload` and `GET /metrics` (`[edge.admin]`).
    pub admin: Option<AdminConfig>,
    /// Who may connect and which proxies' forwarding headers are believed (`[edge.clients]`).
    pub clients: ClientsConfig,
    /// Rate limits, each checked on the routes it names (`[[edge.rate_limits]]`).
    pub rate_limits: Vec<RateLimitConfig>,
    /// L4 TCP/UDP listeners forwarding to a pool (`[[edge.streams]]`).
    pub streams: Vec<StreamConfig>,
    /// HTTP cache zones that routes store upstream responses in (`[[edge.cache_zones]]`).
    pub cache_zones: Vec<CacheZoneConfig>,
    /// Threads serving the HTTP listeners' connections, each with its own runtime, its own
    /// SO_REUSEPORT socket per listener and its own idle upstream connections: 0 (default)
    /// is one per available core, 1 serves them on the shared runtime. Read at start; a
    /// reload keeps the running count.
    pub workers: usize,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientsConfig {
    /// Addresses or CIDR ranges of proxies in front of the edge; only their
    /// `X-Forwarded-For` / `Forwarded` hops are believed when finding the client address.
    pub trusted_proxies: Vec<String>,
    /// When non-empty, only clients in these ranges are served (others get a 403).
    pub allow: Vec<String>,
    /// Clients in these ranges get a 403.
    pub deny: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Name used in logs and to keep its state across reloads.
    pub name: String,
    /// Requests allowed at once; refilled at `burst` per `period_ms`.
    pub burst: u32,
    pub period_ms: u64,
    /// `client_ip` (IPv6 by /64), `route`, `header:NAME` or `user` (the `id` or `sub`
    /// claim of a bearer JWT, unverified at the edge; the client IP without a token).
    /// Default `client_ip`.
    #[serde(default)]
    pub key: Option<String>,
    /// Route names this limit applies to; every route when empty.
    #[serde(default)]
    pub routes: Vec<String>,
    /// Most keys remembered at once (the store is bounded). Default 100000.
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
}

fn default_max_keys() -> usize {
    100_000
}

/// A file holding only an `[edge]` table (what `basalt proxy --config` reads).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeFile {
    pub edge: EdgeConfig,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Socket address, e.g. `127.0.0.1:8080` or `[::1]:8443`.
    pub listen: String,
    /// Certificates by SNI name; TLS is on when this is non-empty.
    #[serde(default)]
    pub tls: Vec<CertificateConfig>,
    /// Answer every request with a 308 to `https://host[:port]` (plain listeners only).
    #[serde(default)]
    pub redirect_https_port: Option<u16>,
    /// `Strict-Transport-Security` max-age in seconds added to responses on TLS listeners.
    #[serde(default)]
    pub hsts_max_age: Option<u64>,
    /// Expect a PROXY protocol v1 or v2 header on every accepted connection.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// Certificates issued and renewed over ACME (RFC 8555); TLS is on when this is set.
    #[serde(default)]
    pub acme: Option<AcmeConfig>,
    /// Also serve HTTP/3 over QUIC on the same UDP port, advertised with `Alt-Svc` (TLS
    /// listeners with an explicit port; needs a build with the cargo feature `http3`).
    #[serde(default)]
    pub http3: bool,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AcmeConfig {
    /// ACME directory URL (https), e.g. `https://acme-v02.api.letsencrypt.org/directory`.
    pub directory: String,
    /// Account contacts, e.g. `mailto:ops@example.com`.
    #[serde(default)]
    pub contact: Vec<String>,
    /// DNS names the certificate covers; the first names its files in the store.
    pub domains: Vec<String>,
    /// Directory for the account key, certificates, keys and leases; several nodes may share
    /// it, and then only the lease holder talks to the CA.
    pub store: PathBuf,
    /// Renew when less than this is left (`30d`, `12h`, `90s`). Default `30d`.
    #[serde(default = "default_renew_before")]
    pub renew_before: String,
    /// `http-01`, answered on this edge's plain-HTTP listeners, or `tls-alpn-01`, answered on
    /// this TLS listener (RFC 8737). Default `http-01`.
    #[serde(default)]
    pub challenge: AcmeChallenge,
    /// PEM root trusted for the directory's HTTPS (a test CA such as Pebble); the system's
    /// roots when unset.
    #[serde(default)]
    pub ca_root: Option<PathBuf>,
    /// How often expiry is checked and the store re-read for a certificate another node
    /// issued. Default `60s`.
    #[serde(default = "default_acme_poll")]
    pub poll_interval: String,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum AcmeChallenge {
    #[default]
    #[serde(rename = "http-01")]
    Http01,
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
}

fn default_renew_before() -> String {
    "30d".into()
}
fn default_acme_poll() -> String {
    "60s".into()
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// SNI names this certificate answers for; `*` (or an empty list) makes it the default.
    #[serde(default)]
    pub server_names: Vec<String>,
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Name used in metrics and logs. Default `route<N>` (its position).
    #[serde(default)]
    pub name: Option<String>,
    /// Host to match (`example.com` or `*.example.com`); any host when unset.
    #[serde(default)]
    pub host: Option<String>,
    /// Path prefix to match, on segment boundaries (`/api` matches `/api` and `/api/x`).
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Regular expression the path must match.
    #[serde(default)]
    pub path_regex: Option<String>,
    /// Methods to match; any when empty.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Headers that must be present with exactly these values.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Action: forward to this upstream pool.
    #[serde(default)]
    pub pool: Option<String>,
    /// Action: hand the request to the Basalt API (only inside `basalt serve`).
    #[serde(default)]
    pub api: bool,
    /// Action: serve files from a directory.
    #[serde(default, rename = "static")]
    pub static_files: Option<StaticConfig>,
    /// Action: answer with a redirect.
    #[serde(default)]
    pub redirect: Option<RedirectConfig>,
    /// Remove the matched `path_prefix` before forwarding or serving files.
    #[serde(default)]
    pub strip_prefix: bool,
    /// Cache upstream responses of this (pool) route in a zone: `cache = { zone = "main" }`.
    #[serde(default)]
    pub cache: Option<RouteCacheConfig>,
    /// Compress responses negotiated by `Accept-Encoding`: `compress = { min_size = 1024 }`.
    #[serde(default)]
    pub compress: Option<CompressConfig>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// Directory served.
    pub root: PathBuf,
    /// Serve `index.html` for paths that match no file (single-page apps).
    #[serde(default)]
    pub spa: bool,
    /// `Cache-Control` value for served files.
    #[serde(default)]
    pub cache_control: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectConfig {
    /// Target URL; the request path and query are appended when `keep_path` is set.
    pub to: String,
    /// 301, 302, 303, 307 or 308. Default 308.
    #[serde(default = "default_redirect_status")]
    pub status: u16,
    #[serde(default)]
    pub keep_path: bool,
}

fn default_redirect_status() -> u16 {
    308
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    pub targets: Vec<TargetConfig>,
    /// `round_robin` (smooth weighted), `least_connections`, `peak_ewma` (power of two
    /// choices) or `consistent_hash`. Default `round_robin`.
    #[serde(default)]
    pub algorithm: AlgorithmConfig,
    /// For `consistent_hash`: `client_ip`, `header:NAME` or `cookie:NAME`. Default `client_ip`.
    #[serde(default)]
    pub hash_key: Option<String>,
    /// `http1` or `h2c` (HTTP/2 with prior knowledge) to the targets. Default `http1`.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// Milliseconds to establish a connection. Default 2000.
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
    /// Milliseconds to wait for response headers. Default 30000.
    #[serde(default = "default_read_ms")]
    pub read_timeout_ms: u64,
    /// Milliseconds a pooled idle connection is kept; keep it below the upstreams'
    /// keep-alive so the edge never reuses a connection the upstream is closing. Default 4000.
    #[serde(default = "default_idle_ms")]
    pub idle_timeout_ms: u64,
    /// Extra attempts for idempotent requests without a body. Default 1.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Retries allowed as a percentage of requests (plus 10 to start with). Default 20.
    #[serde(default = "default_retry_budget")]
    pub retry_budget_percent: u32,
    /// Concurrent requests one target may hold; 0 for no cap. A request finding every
    /// target full gets a 503.
    #[serde(default)]
    pub max_requests_per_target: u32,
    /// Active health checks.
    #[serde(default)]
    pub health: Option<HealthConfig>,
    /// Passive ejection after consecutive failures.
    #[serde(default)]
    pub passive: Option<PassiveConfig>,
    /// How `dns` / `srv` targets are resolved (`[edge.pools.NAME.dns]`).
    #[serde(default)]
    pub dns: Option<DnsConfig>,
}

fn default_connect_ms() -> u64 {
    2000
}
fn default_read_ms() -> u64 {
    30_000
}
fn default_idle_ms() -> u64 {
    4000
}
fn default_retries() -> u32 {
    1
}
fn default_retry_budget() -> u32 {
    20
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AlgorithmConfig {
    #[default]
    RoundRobin,
    LeastConnections,
    PeakEwma,
    ConsistentHash,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    #[default]
    Http1,
    H2c,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// `host:port` of the upstream (or give `dns` or `srv` instead).
    #[serde(default)]
    pub address: String,
    /// `name:port`: every A/AAAA address of `name`, re-resolved on the records' TTL.
    #[serde(default)]
    pub dns: Option<String>,
    /// `_service._proto.name`: the SRV records' targets and ports (lowest priority group,
    /// weights from the records), re-resolved on the TTL.
    #[serde(default)]
    pub srv: Option<String>,
    /// Relative share of requests. Default 1.
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// HTTP path to GET; a TCP connect check when unset.
    #[serde(default)]
    pub path: Option<String>,
    /// Status the HTTP check expects. Default 200.
    #[serde(default = "default_expect")]
    pub expect_status: u16,
    /// Milliseconds between checks. Default 2000.
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
    /// Milliseconds one check may take. Default 1000.
    #[serde(default = "default_check_timeout")]
    pub timeout_ms: u64,
    /// Consecutive successes that bring a target back. Default 2.
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Consecutive failures that take a target out. Default 2.
    #[serde(default = "default_rise")]
    pub fall: u32,
}

fn default_expect() -> u16 {
    200
}
fn default_interval() -> u64 {
    2000
}
fn default_check_timeout() -> u64 {
    1000
}
fn default_rise() -> u32 {
    2
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassiveConfig {
    /// Consecutive failed requests (connect errors, timeouts, 502/503/504) that eject a target.
    #[serde(default = "default_failures")]
    pub failures: u32,
    /// Milliseconds an ejected target stays out. Default 10000.
    #[serde(default = "default_cooldown")]
    pub cooldown_ms: u64,
}

fn default_failures() -> u32 {
    5
}
fn default_cooldown() -> u64 {
    10_000
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request head (request line and headers) in bytes; larger gets a 431.
    pub max_header_bytes: usize,
    /// Most header fields in a request; more gets a 431.
    pub max_headers: usize,
    /// Largest request body in bytes; larger gets a 413. 0 for no limit.
    pub max_body_bytes: u64,
    /// Milliseconds a client has to send a complete request head once it started one.
    pub header_timeout_ms: u64,
    /// Milliseconds an idle keep-alive connection is kept open.
    pub idle_timeout_ms: u64,
    /// Milliseconds a request body may stall before the connection is closed.
    pub body_timeout_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_body_bytes: 32 << 20,
            header_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            body_timeout_ms: 30_000,
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin listener. Default `127.0.0.1:9901`. An address that is not a
    /// loopback one needs `token`.
    #[serde(default = "default_admin")]
    pub listen: String,
    /// Bearer token every admin request must carry (`Authorization: Bearer TOKEN`; at
    /// least 16 characters); without it any local process may reload, purge and read
    /// metrics. A secret: never logged. Read at start, like `listen`.
    pub token: Option<String>,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl AdminConfig {
    /// Refuses a token too short to resist guessing, and a listener reachable from other
    /// hosts without one. Only a literal loopback address counts as loopback.
    pub fn validate(&self) -> Result<(), EdgeError> {
        let bad = |m: String| EdgeError::Config(m);
        let loopback = self
            .listen
            .parse::<std::net::SocketAddr>()
            .map_err(|_| {
                bad(format!(
                    "edge.admin.listen: {:?} is not an address like 127.0.0.1:9901",
                    self.listen
                ))
            })?
            .ip()
            .is_loopback();
        match &self.token {
            Some(t) if t.chars().count() < 16 => Err(bad(
                "edge.admin.token: must be at least 16 characters".into(),
            )),
            Some(t) if t.chars().any(|c| c.is_whitespace() || c.is_control()) => Err(bad(
                "edge.admin.token: must not contain whitespace or control characters".into(),
            )),
            None if !loopback => Err(bad(format!(
                "edge.admin.token: required when edge.admin.listen ({}) is not a loopback address",
                self.listen
            ))),
            _ => Ok(()),
        }
    }
}

fn default_admin() -> String {
    "127.0.0.1:9901".into()
}

impl EdgeConfig {
    /// Parses a file whose only table is `[edge]`.
    pub fn from_toml(text: &str) -> Result<Self, EdgeError> {
        toml::from_str::<EdgeFile>(text)
            .map(|f| f.edge)
            .map_err(|e| EdgeError::Config(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(EdgeConfig::from_toml("[edge]\nlisteners = []\nbogus = 1").is_err());
        assert!(EdgeConfig::from_toml("[edge.pools.a]\ntargets = []\nalgo = \"x\"").is_err());
        let c = EdgeConfig::from_toml(
            "[edge]\n[[edge.listeners]]\nlisten = \"127.0.0.1:1\"\n[edge.pools.a]\ntargets = [{ address = \"127.0.0.1:2\", weight = 3 }]\nalgorithm = \"peak_ewma\"",
        )
        .expect("valid");
        assert_eq!(c.pools["a"].targets[0].weight, 3);
        assert_eq!(c.pools["a"].algorithm, AlgorithmConfig::PeakEwma);
    }
}
