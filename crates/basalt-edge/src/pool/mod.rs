//! Upstream pools: targets with their live state (in-flight requests, health, passive
//! ejection, latency), the balancing algorithms, the retry budget and the pooled client.

pub mod h1_client;
pub mod health;
pub mod ring;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::Body;
use crate::config::{AlgorithmConfig, HealthConfig, PoolConfig, UpstreamProtocol};
use crate::error::EdgeError;
use crate::metrics::EdgeMetrics;
use ring::Ring;

/// One upstream server and what the edge knows about it right now.
pub struct Target {
    pub address: String,
    pub authority: http::uri::Authority,
    pub weight: u32,
    in_flight: AtomicU32,
    /// Set by active health checks.
    healthy: AtomicBool,
    consecutive_failures: AtomicU32,
    /// Milliseconds since the pool's epoch until which passive ejection keeps it out.
    ejected_until_ms: AtomicU64,
    /// Peak EWMA of response-header latency in nanoseconds (f64 bits), and when it was updated.
    ewma_ns: AtomicU64,
    ewma_stamp_ns: AtomicU64,
}

impl Target {
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
    pub(crate) fn set_healthy(&self, up: bool) {
        self.healthy.store(up, Ordering::Relaxed);
    }

    /// A fresh target (healthy, nothing in flight); the error says what is wrong.
    pub fn new(address: &str, weight: u32) -> Result<Target, String> {
        let authority: http::uri::Authority = address
            .parse()
            .map_err(|_| format!("target {address:?} is not host:port"))?;
        if authority.port_u16().is_none() {
            return Err(format!("target {address:?} needs a port"));
        }
        if weight == 0 || weight > 1000 {
            return Err(format!("target {address:?}: weight must be 1..=1000"));
        }
        Ok(Target {
            address: address.to_string(),
            authority,
            weight,
            in_flight: AtomicU32::new(0),
            healthy: AtomicBool::new(true),
            consecutive_failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            ewma_ns: AtomicU64::new(0f64.to_bits()),
            ewma_stamp_ns: AtomicU64::new(0),
        })
    }
}

/// The balancer state for a target list (round-robin weights, the hash ring).
fn balancer_for(
    algorithm: AlgorithmConfig,
    hash_key: Option<&HashKey>,
    targets: &[Arc<Target>],
) -> Balancer {
    match (algorithm, hash_key) {
        (AlgorithmConfig::LeastConnections, _) => Balancer::LeastConnections,
        (AlgorithmConfig::PeakEwma, _) => Balancer::PeakEwma,
        (AlgorithmConfig::ConsistentHash, Some(key)) => Balancer::ConsistentHash(
            Ring::new(targets.iter().map(|t| (t.address.as_str(), t.weight))),
            key.clone(),
        ),
        _ => Balancer::RoundRobin(Mutex::new(vec![0; targets.len()])),
    }
}

/// How a consistent-hash pool derives its key.
#[derive(Clone)]
enum HashKey {
    ClientIp,
    Header(http::HeaderName),
    Cookie(String),
}

enum Balancer {
    /// nginx's smooth weighted round robin: current weights under a short lock.
    RoundRobin(Mutex<Vec<i64>>),
    LeastConnections,
    PeakEwma,
    ConsistentHash(Ring, HashKey),
}

/// What a pick may look at.
pub struct PickContext<'a> {
    pub client_ip: IpAddr,
    pub headers: &'a http::HeaderMap,
}

#[derive(Debug, PartialEq, Eq)]
pub enum PickError {
    /// Every target is unhealthy or ejected.
    NoneAvailable,
    /// Every available target is at its concurrency cap.
    AllFull,
}

/// A claimed slot on a target; the in-flight count drops with it.
pub struct Lease {
    pub target: Arc<Target>,
    pub index: usize,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.target.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The targets a pool balances over right now, with the balancer's state for them.
pub struct TargetSet {
    pub targets: Vec<Arc<Target>>,
    balancer: Balancer,
}

pub struct Pool {
    pub name: String,
    /// Swapped whole when DNS discovery finds a different set; a `Lease` keeps its target
    /// alive either way, so in-flight requests are not disturbed.
    set: ArcSwap<TargetSet>,
    algorithm: AlgorithmConfig,
    hash_key: Option<HashKey>,
    /// Targets given by DNS names (`dns = ...` / `srv = ...`), re-resolved by `discovery`.
    pub discovery: Option<Arc<crate::discovery::Discovery>>,
    /// The pooled HTTP client: one per edge worker (index 0 for other threads), so an
    /// upstream connection is only ever used on the thread whose runtime drives it.
    clients: Box<[Client<HttpConnector, Body>]>,
    /// The HTTP/1.1 clients used instead of `clients` unless the pool speaks h2c, one per
    /// worker like `clients`.
    h1: Option<Box<[Arc<h1_client::H1Client>]>>,
    pub read_timeout: Duration,
    /// How long establishing a connection may take (the L4 streams connect themselves).
    pub connect_timeout: Duration,
    pub retries: u32,
    budget: RetryBudget,
    max_per_target: u32,
    passive: Option<(u32, Duration)>,
    pub health: Option<HealthConfig>,
    epoch: Instant,
    pub(crate) metrics: Arc<EdgeMetrics>,
}

impl Pool {
    /// `workers`: the edge's worker threads (each gets its own idle connections); 1 when
    /// the shared runtime serves.
    pub fn build(
        name: &str,
        cfg: &PoolConfig,
        metrics: Arc<EdgeMetrics>,
        workers: usize,
    ) -> Result<Self, EdgeError> {
        let bad = |msg: String| EdgeError::Config(format!("pool {name}: {msg}"));
        if cfg.targets.is_empty() {
            return Err(bad("needs at least one target".into()));
        }
        let mut targets = Vec::with_capacity(cfg.targets.len());
        let mut sources = Vec::new();
        for t in &cfg.targets {
            match crate::discovery::Source::from_config(t).map_err(&bad)? {
                Some(source) => sources.push(source),
                None => targets.push(Arc::new(Target::new(&t.address, t.weight).map_err(&bad)?)),
            }
        }
        let hash_key = match cfg.hash_key.as_deref() {
            _ if cfg.algorithm != AlgorithmConfig::ConsistentHash => None,
            None | Some("client_ip") => Some(HashKey::ClientIp),
            Some(k) if k.starts_with("header:") => Some(HashKey::Header(
                http::HeaderName::from_bytes(&k.as_bytes()["header:".len()..])
                    .map_err(|_| bad(format!("hash_key {k:?}: bad header name")))?,
            )),
            Some(k) if k.starts_with("cookie:") && k.len() > "cookie:".len() => {
                Some(HashKey::Cookie(k["cookie:".len()..].to_string()))
            }
            Some(k) => {
                return Err(bad(format!(
                    "hash_key {k:?}: use client_ip, header:NAME or cookie:NAME"
                )));
            }
        };
        let discovery =
            crate::discovery::Discovery::build(sources, targets.clone(), cfg.dns.as_ref())
                .map_err(&bad)?
                .map(Arc::new);
        if cfg.hash_key.is_some() && cfg.algorithm != AlgorithmConfig::ConsistentHash {
            return Err(bad(
                "hash_key only applies to algorithm = \"consistent_hash\"".into(),
            ));
        }
        if cfg.connect_timeout_ms == 0 || cfg.read_timeout_ms == 0 {
            return Err(bad("timeouts must be at least 1 ms".into()));
        }
        if let Some(h) = &cfg.health {
            if h.interval_ms < 10 || h.timeout_ms == 0 || h.rise == 0 || h.fall == 0 {
                return Err(bad(
                    "health: interval_ms >= 10, timeout_ms >= 1, rise >= 1 and fall >= 1".into(),
                ));
            }
            if h.path.as_deref().is_some_and(|p| !p.starts_with('/')) {
                return Err(bad("health.path must start with /".into()));
            }
        }
        let passive = match &cfg.passive {
            Some(p) if p.failures == 0 => return Err(bad("passive.failures must be >= 1".into())),
            Some(p) => Some((p.failures, Duration::from_millis(p.cooldown_ms))),
            None => None,
        };
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_millis(cfg.connect_timeout_ms)));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(Duration::from_millis(cfg.idle_timeout_ms))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new());
        if cfg.protocol == UpstreamProtocol::H2c {
            builder.http2_only(true);
        }
        let clients_needed = if workers > 1 { workers + 1 } else { 1 };
        let clients = (0..clients_needed)
            .map(|_| builder.build(connector.clone()))
            .collect();
        let balancer = balancer_for(cfg.algorithm, hash_key.as_ref(), &targets);
        Ok(Self {
            name: name.to_string(),
            set: ArcSwap::from_pointee(TargetSet { targets, balancer }),
            algorithm: cfg.algorithm,
            hash_key,
            discovery,
            clients,
            h1: (cfg.protocol != UpstreamProtocol::H2c).then(|| {
                (0..clients_needed)
                    .map(|_| {
                        h1_client::H1Client::new(
                            Duration::from_millis(cfg.connect_timeout_ms),
                            Duration::from_millis(cfg.idle_timeout_ms),
                        )
                    })
                    .collect()
            }),
            read_timeout: Duration::from_millis(cfg.read_timeout_ms),
            connect_timeout: Duration::from_millis(cfg.connect_timeout_ms),
            retries: cfg.retries,
            budget: RetryBudget::new(cfg.retry_budget_percent),
            max_per_target: cfg.max_requests_per_target,
            passive,
            health: cfg.health.clone(),
            epoch: Instant::now(),
            metrics,
        })
    }

    /// The client for this thread: its worker's own (the per-target caps and in-flight
    /// counts stay on the shared `Target`s, so they hold across workers).
    pub fn client(&self) -> &Client<HttpConnector, Body> {
        &self.clients[crate::workers::current() % self.clients.len()]
    }

    /// This thread's HTTP/1.1 client, unless the pool speaks h2c.
    pub fn h1(&self) -> Option<&Arc<h1_client::H1Client>> {
        let h1 = self.h1.as_ref()?;
        h1.get(crate::workers::current() % h1.len())
    }

    /// Carries health verdicts over from the pool this one replaces, so a reload does not
    /// send traffic to a target that is known to be down.
    /// A pool with DNS targets also starts from the old pool's resolved set when its
    /// sources are unchanged, so a reload does not empty it until the next resolution.
    pub fn inherit_health(&self, old: &Pool) {
        if let (Some(new), Some(prev)) = (&self.discovery, &old.discovery)
            && new.same_sources(prev)
        {
            new.inherit(prev);
            self.replace_targets(new.current_targets());
        }
        let targets = self.targets();
        let old_targets = old.targets();
        for t in &targets {
            if let Some(o) = old_targets.iter().find(|o| o.address == t.address) {
                t.set_healthy(o.is_healthy());
            }
        }
    }

    /// Whether consistent hashing reads a header or cookie (which L4 streams do not have).
    pub fn hashes_http(&self) -> bool {
        matches!(self.hash_key, Some(HashKey::Header(_) | HashKey::Cookie(_)))
    }

    /// The targets right now.
    pub fn targets(&self) -> Vec<Arc<Target>> {
        self.set.load().targets.clone()
    }

    /// Swaps in a new target set. Targets whose address stays keep their state (health,
    /// ejection, in-flight count, latency); `wanted` is `(address, weight)`.
    pub fn replace_targets(&self, wanted: Vec<(String, u32)>) {
        let current = self.set.load_full();
        let mut targets = Vec::with_capacity(wanted.len());
        for (address, weight) in wanted {
            if targets.iter().any(|t: &Arc<Target>| t.address == address) {
                continue;
            }
            match current
                .targets
                .iter()
                .find(|t| t.address == address && t.weight == weight)
            {
                Some(t) => targets.push(t.clone()),
                None => match Target::new(&address, weight) {
                    Ok(t) => {
                        // A target seen before with another weight keeps its health verdict.
                        if let Some(old) = current.targets.iter().find(|t| t.address == address) {
                            t.set_healthy(old.is_healthy());
                        }
                        targets.push(Arc::new(t));
                    }
                    Err(e) => {
                        tracing::warn!(pool = %self.name, error = %e, "discovered target skipped")
                    }
                },
            }
        }
        let same = targets.len() == current.targets.len()
            && targets
                .iter()
                .zip(&current.targets)
                .all(|(a, b)| Arc::ptr_eq(a, b));
        if same {
            return;
        }
        for t in &targets {
            self.metrics
                .set_health(&self.name, &t.address, t.is_healthy());
        }
        tracing::info!(pool = %self.name, targets = ?targets.iter().map(|t| &t.address).collect::<Vec<_>>(), "pool targets changed");
        let balancer = balancer_for(self.algorithm, self.hash_key.as_ref(), &targets);
        self.set.store(Arc::new(TargetSet { targets, balancer }));
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn available(&self, t: &Target, now_ms: u64) -> bool {
        t.is_healthy() && t.ejected_until_ms.load(Ordering::Relaxed) <= now_ms
    }

    fn has_room(&self, t: &Target) -> bool {
        self.max_per_target == 0 || t.in_flight() < self.max_per_target
    }

    /// Picks a target and claims a slot on it. `exclude` is a target already tried.
    pub fn pick(&self, ctx: &PickContext<'_>, exclude: Option<usize>) -> Result<Lease, PickError> {
        let set = self.set.load();
        let set = &**set;
        let now = self.now_ms();
        let mut any_available = false;
        let usable = |i: usize, any: &mut bool| {
            let t = &set.targets[i];
            if Some(i) == exclude || !self.available(t, now) {
                return false;
            }
            *any = true;
            self.has_room(t)
        };
        // A claim can lose a race against another request for the last slot; try again.
        for _ in 0..4 {
            let choice = match &set.balancer {
                Balancer::RoundRobin(current) => {
                    let mut current = current.lock().unwrap_or_else(|p| p.into_inner());
                    let mut total = 0i64;
                    let mut best: Option<usize> = None;
                    for i in 0..set.targets.len() {
                        if !usable(i, &mut any_available) {
                            continue;
                        }
                        let w = i64::from(set.targets[i].weight);
                        current[i] += w;
                        total += w;
                        if best.is_none_or(|b| current[i] > current[b]) {
                            best = Some(i);
                        }
                    }
                    if let Some(b) = best {
                        current[b] -= total;
                    }
                    best
                }
                Balancer::LeastConnections => {
                    let mut best: Option<(usize, u64)> = None;
                    let start = rand::random_range(0..set.targets.len());
                    for k in 0..set.targets.len() {
                        let i = (start + k) % set.targets.len();
                        if !usable(i, &mut any_available) {
                            continue;
                        }
                        let t = &set.targets[i];
                        // Compare in_flight/weight without division.
                        let score = u64::from(t.in_flight()) * 1000 / u64::from(t.weight);
                        if best.is_none_or(|(_, s)| score < s) {
                            best = Some((i, score));
                        }
                    }
                    best.map(|(i, _)| i)
                }
                Balancer::PeakEwma => {
                    // Two distinct usable targets, uniformly, by reservoir sampling.
                    let mut candidates = [usize::MAX; 2];
                    let mut found = 0usize;
                    for i in 0..set.targets.len() {
                        if !usable(i, &mut any_available) {
                            continue;
                        }
                        found += 1;
                        if found <= 2 {
                            candidates[found - 1] = i;
                        } else {
                            let r = rand::random_range(0..found);
                            if r < 2 {
                                candidates[r] = i;
                            }
                        }
                    }
                    match found {
                        0 => None,
                        1 => Some(candidates[0]),
                        _ => {
                            let (a, b) = (candidates[0], candidates[1]);
                            if Self::ewma_cost(&set.targets[a]) <= Self::ewma_cost(&set.targets[b])
                            {
                                Some(a)
                            } else {
                                Some(b)
                            }
                        }
                    }
                }
                Balancer::ConsistentHash(ring, key) => {
                    let h = self.hash_key(key, ctx);
                    ring.lookup(h, |i| usable(i, &mut any_available))
                }
            };
            let Some(i) = choice else {
                return Err(if any_available {
                    PickError::AllFull
                } else {
                    PickError::NoneAvailable
                });
            };
            let t = &set.targets[i];
            let claimed = t.in_flight.fetch_add(1, Ordering::AcqRel);
            if self.max_per_target == 0 || claimed < self.max_per_target {
                return Ok(Lease {
                    target: t.clone(),
                    index: i,
                });
            }
            t.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
        Err(PickError::AllFull)
    }

    fn hash_key(&self, key: &HashKey, ctx: &PickContext<'_>) -> u64 {
        match key {
            HashKey::ClientIp => match ctx.client_ip {
                IpAddr::V4(v4) => ring::hash_bytes(&v4.octets()),
                IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) => ring::hash_bytes(&v4.octets()),
                    None => ring::hash_bytes(&v6.octets()),
                },
            },
            HashKey::Header(name) => ring::hash_bytes(
                ctx.headers
                    .get(name)
                    .map(|v| v.as_bytes())
                    .unwrap_or_default(),
            ),
            HashKey::Cookie(name) => {
                let value = ctx
                    .headers
                    .get_all(http::header::COOKIE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(';'))
                    .filter_map(|kv| kv.trim().split_once('='))
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v)
                    .unwrap_or_default();
                ring::hash_bytes(value.as_bytes())
            }
        }
    }

    /// Peak EWMA cost: decayed latency times the load the request would join.
    fn ewma_cost(t: &Target) -> f64 {
        let ewma = f64::from_bits(t.ewma_ns.load(Ordering::Relaxed));
        // A target never measured costs like a fast one, so new targets get tried.
        let base = if ewma == 0.0 { 1_000_000.0 } else { ewma };
        base * f64::from(t.in_flight() + 1) / f64::from(t.weight)
    }

    /// Records how a request to a target went: latency for peak EWMA, and success or
    /// failure for passive ejection.
    pub fn observe(&self, lease: &Lease, latency: Duration, ok: bool) {
        let t = &lease.target;
        if self.algorithm == AlgorithmConfig::PeakEwma && ok {
            const TAU_NS: f64 = 10e9;
            let now = self.epoch.elapsed().as_nanos() as u64;
            let prev_stamp = t.ewma_stamp_ns.swap(now, Ordering::Relaxed);
            let prev = f64::from_bits(t.ewma_ns.load(Ordering::Relaxed));
            let rtt = latency.as_nanos() as f64;
            let next = if rtt > prev {
                rtt
            } else {
                let w = (-((now.saturating_sub(prev_stamp)) as f64) / TAU_NS).exp();
                prev * w + rtt * (1.0 - w)
            };
            t.ewma_ns.store(next.to_bits(), Ordering::Relaxed);
        }
        if ok {
            t.consecutive_failures.store(0, Ordering::Relaxed);
            return;
        }
        if let Some((threshold, cooldown)) = self.passive {
            let failures = t.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
            if failures >= threshold {
                t.consecutive_failures.store(0, Ordering::Relaxed);
                let until = self.now_ms() + cooldown.as_millis() as u64;
                t.ejected_until_ms.store(until, Ordering::Relaxed);
                self.metrics.ejections(&self.name, &t.address);
                tracing::warn!(pool = %self.name, target = %t.address, failures, "target ejected");
            }
        }
    }

    /// How many targets the pool balances over right now (healthy or not).
    pub fn target_count(&self) -> usize {
        self.set.load().targets.len()
    }

    /// How many attempts a request gets (a retry always goes to another target, so a pool
    /// of one makes none), after depositing the request's share of the retry budget.
    pub fn attempts(&self, retriable: bool) -> u32 {
        self.budget.deposit();
        if retriable && self.retries > 0 && self.target_count() > 1 {
            1 + self.retries
        } else {
            1
        }
    }

    /// Takes one retry from the budget and counts it; false when the budget is spent.
    pub fn take_retry(&self) -> bool {
        if !self.budget.withdraw() {
            return false;
        }
        self.metrics.retry(&self.name);
        true
    }
}

/// Retries allowed as a share of requests, so retries cannot multiply load on a failing
/// pool: each request deposits `percent`/100 of a retry, each retry spends one.
struct RetryBudget {
    /// Thousandths of a retry.
    balance: AtomicI64,
    per_request: i64,
}

const RETRY_UNIT: i64 = 1000;
const RETRY_BUDGET_START: i64 = 10 * RETRY_UNIT;
const RETRY_BUDGET_CAP: i64 = 100 * RETRY_UNIT;

impl RetryBudget {
    fn new(percent: u32) -> Self {
        Self {
            balance: AtomicI64::new(RETRY_BUDGET_START),
            per_request: i64::from(percent.min(100)) * RETRY_UNIT / 100,
        }
    }
    fn deposit(&self) {
        let _ = self
            .balance
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |b| {
                (b < RETRY_BUDGET_CAP).then(|| (b + self.per_request).min(RETRY_BUDGET_CAP))
            });
    }
    fn withdraw(&self) -> bool {
        self.balance
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |b| {
                (b >= RETRY_UNIT).then_some(b - RETRY_UNIT)
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TargetConfig;

    fn pool(algorithm: AlgorithmConfig, weights: &[u32], cap: u32) -> Pool {
        let cfg = PoolConfig {
            targets: weights
                .iter()
                .enumerate()
                .map(|(i, w)| TargetConfig {
                    address: format!("127.0.0.1:{}", 10_000 + i),
                    weight: *w,
                    dns: None,
                    srv: None,
                })
                .collect(),
            algorithm,
            hash_key: None,
            protocol: UpstreamProtocol::Http1,
            connect_timeout_ms: 100,
            read_timeout_ms: 100,
            idle_timeout_ms: 100,
            retries: 1,
            retry_budget_percent: 20,
            max_requests_per_target: cap,
            health: None,
            dns: None,
            passive: Some(crate::config::PassiveConfig {
                failures: 2,
                cooldown_ms: 60_000,
            }),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt");
        let _guard = rt.enter();
        Pool::build("p", &cfg, Arc::new(EdgeMetrics::new()), 1).expect("pool")
    }

    fn ctx(headers: &http::HeaderMap) -> PickContext<'_> {
        PickContext {
            client_ip: IpAddr::from([127, 0, 0, 1]),
            headers,
        }
    }

    #[test]
    fn smooth_weighted_round_robin_interleaves_by_weight() {
        let p = pool(AlgorithmConfig::RoundRobin, &[5, 1, 1], 0);
        let h = http::HeaderMap::new();
        let picks: Vec<usize> = (0..7)
            .map(|_| p.pick(&ctx(&h), None).expect("pick").index)
            .collect();
        // nginx's documented sequence for weights 5,1,1: a a b a c a a.
        assert_eq!(picks, vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn the_cap_refuses_when_every_target_is_full_and_frees_on_drop() {
        let p = pool(AlgorithmConfig::LeastConnections, &[1, 1], 1);
        let h = http::HeaderMap::new();
        let a = p.pick(&ctx(&h), None).expect("first");
        let b = p.pick(&ctx(&h), None).expect("second");
        assert_ne!(a.index, b.index);
        assert_eq!(p.pick(&ctx(&h), None).err(), Some(PickError::AllFull));
        drop(a);
        assert!(p.pick(&ctx(&h), None).is_ok());
    }

    #[test]
    fn passive_ejection_takes_a_failing_target_out() {
        let p = pool(AlgorithmConfig::RoundRobin, &[1, 1], 0);
        let h = http::HeaderMap::new();
        for _ in 0..2 {
            let l = p.pick(&ctx(&h), Some(1)).expect("target 0");
            p.observe(&l, Duration::from_millis(1), false);
        }
        for _ in 0..10 {
            assert_eq!(p.pick(&ctx(&h), None).expect("pick").index, 1);
        }
        assert_eq!(
            p.pick(&ctx(&h), Some(1)).err(),
            Some(PickError::NoneAvailable)
        );
    }

    #[test]
    fn peak_ewma_prefers_the_faster_target() {
        let p = pool(AlgorithmConfig::PeakEwma, &[1, 1], 0);
        let h = http::HeaderMap::new();
        let slow = p.pick(&ctx(&h), Some(1)).expect("0");
        p.observe(&slow, Duration::from_millis(200), true);
        drop(slow);
        let fast = p.pick(&ctx(&h), Some(0)).expect("1");
        p.observe(&fast, Duration::from_millis(1), true);
        drop(fast);
        let to_fast = (0..100)
            .filter(|_| p.pick(&ctx(&h), None).expect("pick").index == 1)
            .count();
        assert_eq!(to_fast, 100);
    }

    #[test]
    fn consistent_hash_is_sticky_per_key() {
        let mut p = pool(AlgorithmConfig::ConsistentHash, &[1, 1, 1], 0);
        p.hash_key = Some(HashKey::Header(http::HeaderName::from_static("x-user")));
        let targets = p.targets();
        p.set = ArcSwap::from_pointee(TargetSet {
            balancer: balancer_for(p.algorithm, p.hash_key.as_ref(), &targets),
            targets,
        });
        let mut seen = std::collections::HashSet::new();
        for user in 0..50 {
            let mut h = http::HeaderMap::new();
            h.insert("x-user", user.to_string().parse().expect("value"));
            let first = p.pick(&ctx(&h), None).expect("pick").index;
            for _ in 0..5 {
                assert_eq!(p.pick(&ctx(&h), None).expect("pick").index, first);
            }
            seen.insert(first);
        }
        assert_eq!(seen.len(), 3, "keys spread over every target");
    }

    #[test]
    fn a_new_target_set_keeps_the_state_of_targets_that_remain() {
        let p = pool(AlgorithmConfig::RoundRobin, &[1, 1], 0);
        let h = http::HeaderMap::new();
        let before = p.targets();
        before[1].set_healthy(false);
        let held = p.pick(&ctx(&h), Some(1)).expect("target 0");
        p.replace_targets(vec![
            (before[1].address.clone(), 1),
            ("127.0.0.1:10009".into(), 1),
        ]);
        let after = p.targets();
        assert!(
            Arc::ptr_eq(&after[0], &before[1]),
            "same target, same state"
        );
        assert!(!after[0].is_healthy());
        assert_eq!(after[1].address, "127.0.0.1:10009");
        for _ in 0..5 {
            assert_eq!(
                p.pick(&ctx(&h), None).expect("pick").target.address,
                after[1].address
            );
        }
        // The request on the removed target finishes normally.
        assert_eq!(held.target.in_flight(), 1);
        drop(held);
        assert_eq!(before[0].in_flight(), 0);
    }

    #[test]
    fn the_retry_budget_runs_dry_and_refills_with_requests() {
        let b = RetryBudget::new(20);
        let mut granted = 0;
        while b.withdraw() {
            granted += 1;
        }
        assert_eq!(granted, 10);
        // 20 %: five requests earn one retry.
        for _ in 0..5 {
            b.deposit();
        }
        assert!(b.withdraw());
        assert!(!b.withdraw());
    }
}
