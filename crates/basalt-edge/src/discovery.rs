//! Upstream discovery by DNS: pool targets given as `dns = "name:port"` (A/AAAA) or
//! `srv = "_svc._tcp.name"` (SRV), re-resolved when the records' TTL runs out (within a
//! floor and a ceiling), the pool's target set swapped without disturbing in-flight
//! requests. A failed resolution keeps the last good answer.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

pub use crate::config::DnsConfig;
use crate::config::TargetConfig;
use crate::pool::{Pool, Target};

/// One DNS-given entry of a pool's `targets`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Every address of `name`, on `port`, each with `weight`.
    Host {
        name: String,
        port: u16,
        weight: u32,
    },
    /// The SRV records of `name`.
    Srv { name: String },
}

impl Source {
    /// `None` for a plain `address` target; an error when the entry is ambiguous or bad.
    pub fn from_config(t: &TargetConfig) -> Result<Option<Source>, String> {
        let given = usize::from(!t.address.is_empty())
            + usize::from(t.dns.is_some())
            + usize::from(t.srv.is_some());
        if given != 1 {
            return Err("each target needs exactly one of address, dns or srv".into());
        }
        if let Some(dns) = &t.dns {
            let (name, port) = dns
                .rsplit_once(':')
                .and_then(|(n, p)| Some((n, p.parse::<u16>().ok()?)))
                .filter(|(n, p)| !n.is_empty() && *p != 0)
                .ok_or_else(|| format!("dns target {dns:?} is not name:port"))?;
            if t.weight == 0 || t.weight > 1000 {
                return Err(format!("dns target {dns:?}: weight must be 1..=1000"));
            }
            return Ok(Some(Source::Host {
                name: name.to_string(),
                port,
                weight: t.weight,
            }));
        }
        if let Some(srv) = &t.srv {
            if srv.is_empty() || srv.contains(char::is_whitespace) {
                return Err(format!("srv target {srv:?} is not a name"));
            }
            return Ok(Some(Source::Srv { name: srv.clone() }));
        }
        Ok(None)
    }

    fn label(&self) -> &str {
        match self {
            Source::Host { name, .. } | Source::Srv { name } => name,
        }
    }
}

type Resolved = Vec<(String, u32)>;

/// A pool's DNS sources, its static targets and the last good answer of each source.
pub struct Discovery {
    sources: Vec<Source>,
    statics: Resolved,
    resolver: Option<SocketAddr>,
    min_ttl: Duration,
    max_ttl: Duration,
    timeout: Duration,
    last_good: Mutex<Vec<Option<Resolved>>>,
}

impl Discovery {
    /// `None` when the pool has no DNS-given targets.
    pub fn build(
        sources: Vec<Source>,
        statics: Vec<Arc<Target>>,
        cfg: Option<&DnsConfig>,
    ) -> Result<Option<Discovery>, String> {
        if sources.is_empty() {
            if cfg.is_some() {
                return Err("dns settings need a target with dns or srv".into());
            }
            return Ok(None);
        }
        let defaults = DnsConfig::default();
        let cfg = cfg.unwrap_or(&defaults);
        let resolver = match cfg.resolver.as_deref() {
            None => None,
            Some(r) => Some(
                r.parse::<SocketAddr>()
                    .or_else(|_| r.parse::<std::net::IpAddr>().map(|ip| (ip, 53).into()))
                    .map_err(|_| format!("dns.resolver {r:?} is not ip:port"))?,
            ),
        };
        if cfg.min_ttl_ms < 10 || cfg.max_ttl_ms < cfg.min_ttl_ms || cfg.timeout_ms == 0 {
            return Err("dns: min_ttl_ms >= 10, max_ttl_ms >= min_ttl_ms, timeout_ms >= 1".into());
        }
        let n = sources.len();
        Ok(Some(Discovery {
            sources,
            statics: statics
                .iter()
                .map(|t| (t.address.clone(), t.weight))
                .collect(),
            resolver,
            min_ttl: Duration::from_millis(cfg.min_ttl_ms),
            max_ttl: Duration::from_millis(cfg.max_ttl_ms),
            timeout: Duration::from_millis(cfg.timeout_ms),
            last_good: Mutex::new(vec![None; n]),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<Resolved>>> {
        self.last_good.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn same_sources(&self, other: &Discovery) -> bool {
        self.sources == other.sources && self.resolver == other.resolver
    }

    /// Starts from another (replaced) pool's answers.
    pub fn inherit(&self, other: &Discovery) {
        let theirs = other.lock().clone();
        *self.lock() = theirs;
    }

    /// The static targets followed by every source's last good answer.
    pub fn current_targets(&self) -> Resolved {
        let mut all = self.statics.clone();
        for r in self.lock().iter().flatten() {
            all.extend(r.iter().cloned());
        }
        all
    }

    fn resolver(&self) -> Result<TokioResolver, String> {
        let mut builder = match self.resolver {
            Some(addr) => {
                // UDP, and TCP for truncated answers, both on the configured port.
                let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                    .map(|mut c| {
                        c.port = addr.port();
                        c
                    })
                    .to_vec();
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![NameServerConfig::new(
                        addr.ip(),
                        true,
                        connections,
                    )]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => TokioResolver::builder_tokio().map_err(|e| e.to_string())?,
        };
        let mut opts = ResolverOpts::default();
        opts.timeout = self.timeout;
        opts.attempts = 1;
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        // The TTL drives re-resolution here; a cache would answer the ceiling's early
        // re-resolution with the old records.
        opts.cache_size = 0;
        *builder.options_mut() = opts;
        builder.build().map_err(|e| e.to_string())
    }
}

/// Resolves one source: its addresses and when the answer expires.
async fn resolve(resolver: &TokioResolver, source: &Source) -> Result<(Resolved, Instant), String> {
    match source {
        Source::Host { name, port, weight } => {
            let lookup = resolver
                .lookup_ip(name.as_str())
                .await
                .map_err(|e| e.to_string())?;
            let found: Resolved = lookup
                .iter()
                .map(|ip| (SocketAddr::new(ip, *port).to_string(), *weight))
                .collect();
            if found.is_empty() {
                return Err(format!("{name}: no addresses"));
            }
            Ok((found, lookup.valid_until()))
        }
        Source::Srv { name } => {
            let lookup = resolver
                .srv_lookup(name.as_str())
                .await
                .map_err(|e| e.to_string())?;
            let mut expires = lookup.valid_until();
            let records: Vec<_> = lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::SRV(srv) => Some(srv),
                    _ => None,
                })
                .collect();
            // RFC 2782: the lowest priority group is used while it has targets.
            let Some(best) = records.iter().map(|r| r.priority).min() else {
                return Err(format!("{name}: no srv records"));
            };
            let mut found = Resolved::new();
            for r in records.iter().filter(|r| r.priority == best) {
                let host = r.target.to_utf8();
                let ips = resolver
                    .lookup_ip(host.as_str())
                    .await
                    .map_err(|e| e.to_string())?;
                expires = expires.min(ips.valid_until());
                // SRV weights are 0..=65535; pool weights 1..=1000.
                let weight = u32::from(r.weight).clamp(1, 1000);
                for ip in ips.iter() {
                    found.push((SocketAddr::new(ip, r.port).to_string(), weight));
                }
            }
            if found.is_empty() {
                return Err(format!("{name}: srv targets have no addresses"));
            }
            Ok((found, expires))
        }
    }
}

/// Starts re-resolving `pool`'s DNS targets; the task ends when the pool is dropped.
pub fn spawn(pool: &Arc<Pool>) {
    let Some(discovery) = pool.discovery.clone() else {
        return;
    };
    let weak: Weak<Pool> = Arc::downgrade(pool);
    let name = pool.name.clone();
    tokio::spawn(async move {
        let resolver = match discovery.resolver() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(pool = %name, error = %e, "dns resolver unavailable; the pool keeps its static targets");
                return;
            }
        };
        loop {
            let mut next = Instant::now() + discovery.max_ttl;
            let mut failed = false;
            for (i, source) in discovery.sources.iter().enumerate() {
                let outcome = resolve(&resolver, source).await;
                let Some(pool) = weak.upgrade() else {
                    return;
                };
                match outcome {
                    Ok((found, expires)) => {
                        pool.metrics.discovery.resolved(&name, "ok");
                        next = next.min(expires);
                        discovery.lock()[i] = Some(found);
                    }
                    Err(e) => {
                        failed = true;
                        pool.metrics.discovery.resolved(&name, "error");
                        tracing::warn!(pool = %name, source = source.label(), error = %e, "dns resolution failed; keeping the last good targets");
                    }
                }
            }
            {
                let Some(pool) = weak.upgrade() else {
                    return;
                };
                pool.replace_targets(discovery.current_targets());
                pool.metrics.discovery.targets(&name, pool.targets().len());
            }
            let now = Instant::now();
            let wait = if failed {
                discovery.min_ttl
            } else {
                next.saturating_duration_since(now)
                    .clamp(discovery.min_ttl, discovery.max_ttl)
            };
            tokio::time::sleep(wait).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(address: &str, dns: Option<&str>, srv: Option<&str>) -> TargetConfig {
        TargetConfig {
            address: address.into(),
            weight: 1,
            dns: dns.map(Into::into),
            srv: srv.map(Into::into),
        }
    }

    #[test]
    fn a_target_is_exactly_one_of_address_dns_or_srv() {
        assert_eq!(
            Source::from_config(&target("127.0.0.1:1", None, None)),
            Ok(None)
        );
        assert_eq!(
            Source::from_config(&target("", Some("svc.test:8080"), None)),
            Ok(Some(Source::Host {
                name: "svc.test".into(),
                port: 8080,
                weight: 1
            }))
        );
        assert!(Source::from_config(&target("", None, None)).is_err());
        assert!(Source::from_config(&target("127.0.0.1:1", Some("a:1"), None)).is_err());
        assert!(Source::from_config(&target("", Some("svc.test"), None)).is_err());
        assert!(Source::from_config(&target("", Some("svc.test:0"), None)).is_err());
        assert!(Source::from_config(&target("", None, Some("bad name"))).is_err());
    }

    #[test]
    fn bad_dns_settings_are_refused() {
        let src = vec![Source::Srv {
            name: "_x._tcp.test".into(),
        }];
        let cfg = |resolver: &str, min: u64, max: u64| DnsConfig {
            resolver: Some(resolver.into()),
            min_ttl_ms: min,
            max_ttl_ms: max,
            timeout_ms: 100,
        };
        assert!(
            Discovery::build(src.clone(), vec![], Some(&cfg("127.0.0.1:53", 100, 1000))).is_ok()
        );
        assert!(Discovery::build(src.clone(), vec![], Some(&cfg("127.0.0.1", 100, 1000))).is_ok());
        assert!(
            Discovery::build(src.clone(), vec![], Some(&cfg("localhost:53", 100, 1000))).is_err()
        );
        assert!(
            Discovery::build(src.clone(), vec![], Some(&cfg("127.0.0.1:53", 1000, 100))).is_err()
        );
        assert!(Discovery::build(vec![], vec![], Some(&cfg("127.0.0.1:53", 100, 1000))).is_err());
    }
}
