//! L4 forwarding: `[[edge.streams]]` listeners that relay TCP connections or UDP datagrams
//! to an upstream pool, and their lifecycle across reloads (new sockets bound before
//! anything changes, kept ones get the new settings, removed ones stop accepting while
//! their open connections carry on).

mod proxy_header;
mod tcp;
mod udp;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use basalt_net::IpSet;
use tokio::sync::watch;

pub use crate::config::{StreamConfig, StreamProtocol};
pub use crate::metrics::StreamMetrics;

use crate::error::EdgeError;
use crate::metrics::EdgeMetrics;
use crate::pool::Pool;

/// How long a client may take to send its PROXY protocol header.
const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// One stream listener's validated settings; swapped on reload, read per connection or
/// per new UDP session.
pub struct StreamRuntime {
    pub name: String,
    pub listen: String,
    pub address: SocketAddr,
    pub protocol: StreamProtocol,
    pub pool: Arc<Pool>,
    pub proxy_protocol: bool,
    pub send_proxy_protocol: bool,
    allow: Option<IpSet>,
    deny: IpSet,
    pub idle_timeout: Duration,
    pub max_sessions: usize,
    pub metrics: Arc<EdgeMetrics>,
}

impl StreamRuntime {
    /// Validates every stream against the snapshot's pools.
    pub fn build_all(
        streams: &[StreamConfig],
        pool: impl Fn(&str) -> Option<Arc<Pool>>,
        metrics: &Arc<EdgeMetrics>,
    ) -> Result<Vec<Arc<StreamRuntime>>, EdgeError> {
        let mut built: Vec<Arc<StreamRuntime>> = Vec::with_capacity(streams.len());
        for sc in streams {
            let rt = Self::build(sc, &pool, metrics)?;
            if built.iter().any(|o| o.key() == rt.key()) {
                return Err(EdgeError::Config(format!(
                    "stream {} {:?} appears twice",
                    rt.protocol.as_str(),
                    rt.listen
                )));
            }
            if built.iter().any(|o| o.name == rt.name) {
                return Err(EdgeError::Config(format!(
                    "stream name {:?} appears twice",
                    rt.name
                )));
            }
            built.push(Arc::new(rt));
        }
        Ok(built)
    }

    fn build(
        sc: &StreamConfig,
        pool: &impl Fn(&str) -> Option<Arc<Pool>>,
        metrics: &Arc<EdgeMetrics>,
    ) -> Result<StreamRuntime, EdgeError> {
        let bad = |m: String| {
            EdgeError::Config(format!(
                "stream {} {:?}: {m}",
                sc.protocol.as_str(),
                sc.listen
            ))
        };
        let address: SocketAddr = sc.listen.parse().map_err(|_| {
            bad("listen is not an address like 127.0.0.1:7000 or [::1]:7000".into())
        })?;
        let pool = pool(&sc.pool).ok_or_else(|| bad(format!("unknown pool {:?}", sc.pool)))?;
        if pool.hashes_http() {
            return Err(bad(format!(
                "pool {:?} hashes a header or cookie; streams can only hash the client ip",
                sc.pool
            )));
        }
        if sc.protocol == StreamProtocol::Udp && (sc.proxy_protocol || sc.send_proxy_protocol) {
            return Err(bad("the PROXY protocol options are for tcp streams".into()));
        }
        let set =
            |what: &str, v: &[String]| IpSet::parse(v).map_err(|e| bad(format!("{what}: {e}")));
        let allow = if sc.allow.is_empty() {
            None
        } else {
            Some(set("allow", &sc.allow)?)
        };
        let deny = set("deny", &sc.deny)?;
        let idle_ms = sc.idle_timeout_ms.unwrap_or(match sc.protocol {
            StreamProtocol::Tcp => 600_000,
            StreamProtocol::Udp => 30_000,
        });
        if idle_ms == 0 {
            return Err(bad("idle_timeout_ms must be at least 1".into()));
        }
        if sc.max_sessions == 0 {
            return Err(bad("max_sessions must be at least 1".into()));
        }
        let name = sc
            .name
            .clone()
            .unwrap_or_else(|| format!("{}/{}", sc.protocol.as_str(), sc.listen));
        if name.is_empty() {
            return Err(bad("name must not be empty".into()));
        }
        Ok(StreamRuntime {
            name,
            listen: sc.listen.clone(),
            address,
            protocol: sc.protocol,
            pool,
            proxy_protocol: sc.proxy_protocol,
            send_proxy_protocol: sc.send_proxy_protocol,
            allow,
            deny,
            idle_timeout: Duration::from_millis(idle_ms),
            max_sessions: sc.max_sessions,
            metrics: metrics.clone(),
        })
    }

    /// What identifies a socket across reloads.
    fn key(&self) -> (StreamProtocol, String) {
        (self.protocol, self.listen.clone())
    }

    pub fn admits(&self, client: IpAddr) -> bool {
        !self.deny.contains(client) && self.allow.as_ref().is_none_or(|a| a.contains(client))
    }

    fn stream_metrics(&self) -> &StreamMetrics {
        &self.metrics.streams
    }
}

/// A bound stream socket waiting to be started.
enum Bound {
    Tcp(tokio::net::TcpListener),
    Udp(tokio::net::UdpSocket),
}

/// A running stream listener; its settings are swapped on reload, the socket is kept.
struct Running {
    local: SocketAddr,
    runtime: Arc<ArcSwap<StreamRuntime>>,
    stop: watch::Sender<bool>,
}

/// The running stream listeners by protocol and `listen` string.
#[derive(Default)]
pub struct Streams {
    running: Mutex<HashMap<(StreamProtocol, String), Running>>,
}

/// New sockets bound for a snapshot, applied by `commit` once the rest of the reload
/// succeeded (dropping it closes them and changes nothing).
pub struct Prepared<'a> {
    streams: &'a Streams,
    wanted: Vec<Arc<StreamRuntime>>,
    fresh: Vec<(Arc<StreamRuntime>, Bound)>,
}

impl Streams {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(StreamProtocol, String), Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Binds the sockets `wanted` needs that are not running yet.
    pub fn prepare(&self, wanted: &[Arc<StreamRuntime>]) -> Result<Prepared<'_>, EdgeError> {
        let running = self.lock();
        let mut fresh = Vec::new();
        for rt in wanted {
            if running.contains_key(&rt.key()) {
                continue;
            }
            let bound = bind(rt).map_err(|source| EdgeError::Bind {
                address: format!("{}/{}", rt.protocol.as_str(), rt.listen),
                source,
            })?;
            fresh.push((rt.clone(), bound));
        }
        Ok(Prepared {
            streams: self,
            wanted: wanted.to_vec(),
            fresh,
        })
    }

    /// Bound addresses of the running streams, by configured `listen` and protocol.
    pub fn local_addr(&self, protocol: StreamProtocol, listen: &str) -> Option<SocketAddr> {
        self.lock()
            .get(&(protocol, listen.to_string()))
            .map(|r| r.local)
    }

    /// Stops accepting on every stream; open TCP connections finish by themselves.
    pub fn stop_all(&self) {
        for r in self.lock().values() {
            let _ = r.stop.send(true);
        }
    }
}

impl Prepared<'_> {
    pub fn commit(self) {
        let mut running = self.streams.lock();
        for rt in &self.wanted {
            if let Some(r) = running.get(&rt.key()) {
                r.runtime.store(rt.clone());
            }
        }
        let keep: HashSet<(StreamProtocol, String)> = self.wanted.iter().map(|r| r.key()).collect();
        running.retain(|k, r| {
            let kept = keep.contains(k);
            if !kept {
                let _ = r.stop.send(true);
                tracing::info!(address = %r.local, protocol = k.0.as_str(), "edge stream stopped");
            }
            kept
        });
        for (rt, bound) in self.fresh {
            let runtime = Arc::new(ArcSwap::new(rt.clone()));
            let (stop, stopped) = watch::channel(false);
            let local = match bound {
                Bound::Tcp(l) => {
                    let local = l.local_addr();
                    tokio::spawn(tcp::accept_loop(l, runtime.clone(), stopped));
                    local
                }
                Bound::Udp(s) => {
                    let local = s.local_addr();
                    tokio::spawn(udp::relay(s, runtime.clone(), stopped));
                    local
                }
            };
            let local = local.unwrap_or(rt.address);
            tracing::info!(address = %local, protocol = rt.protocol.as_str(), pool = %rt.pool.name, "edge stream listening");
            running.insert(
                rt.key(),
                Running {
                    local,
                    runtime,
                    stop,
                },
            );
        }
    }
}

fn bind(rt: &StreamRuntime) -> std::io::Result<Bound> {
    match rt.protocol {
        StreamProtocol::Tcp => {
            let socket = match rt.address {
                SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
            };
            socket.set_reuseaddr(true)?;
            socket.bind(rt.address)?;
            Ok(Bound::Tcp(socket.listen(1024)?))
        }
        StreamProtocol::Udp => {
            let std = std::net::UdpSocket::bind(rt.address)?;
            std.set_nonblocking(true)?;
            Ok(Bound::Udp(tokio::net::UdpSocket::from_std(std)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EdgeConfig;

    fn build(toml: &str) -> Result<Vec<Arc<StreamRuntime>>, EdgeError> {
        let cfg = EdgeConfig::from_toml(toml)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt");
        let _guard = rt.enter();
        let metrics = Arc::new(EdgeMetrics::new());
        let pools: HashMap<String, Arc<Pool>> = cfg
            .pools
            .iter()
            .map(|(n, p)| Ok((n.clone(), Arc::new(Pool::build(n, p, metrics.clone(), 1)?))))
            .collect::<Result<_, EdgeError>>()?;
        StreamRuntime::build_all(&cfg.streams, |n| pools.get(n).cloned(), &metrics)
    }

    const POOL: &str = "[edge.pools.p]\ntargets = [{ address = \"127.0.0.1:9\" }]\n";

    #[test]
    fn invalid_streams_are_refused_with_a_reason() {
        let cases = [
            ("listen = \"nowhere\"\npool = \"p\"", "not an address"),
            ("listen = \"127.0.0.1:1\"\npool = \"q\"", "unknown pool"),
            (
                "listen = \"127.0.0.1:1\"\npool = \"p\"\nprotocol = \"udp\"\nproxy_protocol = true",
                "for tcp streams",
            ),
            (
                "listen = \"127.0.0.1:1\"\npool = \"p\"\ndeny = [\"10.0.0.0/99\"]",
                "deny",
            ),
            (
                "listen = \"127.0.0.1:1\"\npool = \"p\"\nidle_timeout_ms = 0",
                "idle_timeout_ms",
            ),
        ];
        for (stream, why) in cases {
            let err = build(&format!("[edge]\n[[edge.streams]]\n{stream}\n{POOL}"))
                .err()
                .unwrap_or_else(|| panic!("{stream:?} accepted"));
            assert!(err.to_string().contains(why), "{stream:?}: {err}");
        }
        let twice = "[[edge.streams]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\n";
        let err = build(&format!("[edge]\n{twice}{twice}{POOL}")).err();
        assert!(err.is_some_and(|e| e.to_string().contains("twice")));
        let hashed = format!(
            "[edge]\n[[edge.streams]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\n{POOL}algorithm = \"consistent_hash\"\nhash_key = \"header:x-user\"\n"
        );
        assert!(build(&hashed).is_err_and(|e| e.to_string().contains("client ip")));
    }

    #[test]
    fn allow_and_deny_apply_to_the_client_address() {
        let rt = build(&format!(
            "[edge]\n[[edge.streams]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\nallow = [\"10.0.0.0/8\", \"2001:db8::/32\"]\ndeny = [\"10.1.0.0/16\"]\n{POOL}"
        ))
        .expect("valid");
        let admits = |ip: &str| rt[0].admits(ip.parse().expect("ip"));
        assert!(admits("10.2.3.4"));
        assert!(admits("::ffff:10.2.3.4"), "IPv4-mapped IPv6 is normalised");
        assert!(admits("2001:db8::1"));
        assert!(!admits("10.1.2.3"));
        assert!(!admits("192.0.2.1"));
    }
}
