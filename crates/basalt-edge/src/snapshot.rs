//! The runtime snapshot: a validated configuration with routes compiled, pools built and
//! listener settings resolved. Immutable; a reload builds a new one and swaps it in.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use tokio_rustls::TlsAcceptor;

use crate::config::EdgeConfig;
use crate::error::EdgeError;
use crate::metrics::EdgeMetrics;
use crate::pool::Pool;
use crate::protect::Protection;
use crate::route::Route;
use crate::wire::guard::GuardLimits;

/// One listener's settings; the accept loop reads them per connection, so a reload can
/// change certificates without rebinding.
pub struct ListenerRuntime {
    pub listen: String,
    pub address: SocketAddr,
    pub tls: Option<TlsAcceptor>,
    pub redirect_https_port: Option<u16>,
    pub hsts: Option<HeaderValue>,
    pub proxy_protocol: bool,
    pub limits: GuardLimits,
    /// Serve HTTP/3 beside this TLS listener, and the `Alt-Svc` value advertising it.
    // Read only by the `http3` feature's listener; without it validation refuses `true`.
    #[cfg_attr(not(feature = "http3"), allow(dead_code))]
    pub http3: bool,
    pub alt_svc: Option<HeaderValue>,
}

pub struct Snapshot {
    pub routes: Vec<Route>,
    pub pools: BTreeMap<String, Arc<Pool>>,
    pub listeners: Vec<Arc<ListenerRuntime>>,
    pub max_body_bytes: u64,
    pub protection: Protection,
    /// Routing, the client address, a rate limit or a pool's hashing reads request
    /// headers: the HTTP/1.1 fast path then builds a header map for them.
    pub reads_headers: bool,
    /// ACME issuers of the TLS listeners; kept across reloads while their section is unchanged.
    pub acme: Vec<Arc<crate::acme::AcmeIssuer>>,
    /// L4 stream listeners (`[[edge.streams]]`).
    pub streams: Vec<Arc<crate::l4::StreamRuntime>>,
    /// Cache zones by name; a reload keeps a zone (and what it holds) whose settings are unchanged.
    pub cache_zones: BTreeMap<String, Arc<crate::cache::CacheZone>>,
}

impl Snapshot {
    pub fn build(
        cfg: &EdgeConfig,
        api_available: bool,
        previous: Option<&Snapshot>,
        metrics: &Arc<EdgeMetrics>,
    ) -> Result<Self, EdgeError> {
        let bad = |m: String| EdgeError::Config(m);
        if let Some(admin) = &cfg.admin {
            admin.validate()?;
        }
        let l = &cfg.limits;
        if !(1024..=1 << 20).contains(&l.max_header_bytes) {
            return Err(bad("limits.max_header_bytes must be 1024..=1048576".into()));
        }
        if !(1..=10_000).contains(&l.max_headers) {
            return Err(bad("limits.max_headers must be 1..=10000".into()));
        }
        if l.header_timeout_ms == 0 || l.idle_timeout_ms == 0 || l.body_timeout_ms == 0 {
            return Err(bad("limits: timeouts must be at least 1 ms".into()));
        }
        let limits = GuardLimits {
            max_header_bytes: l.max_header_bytes,
            max_headers: l.max_headers,
            header_timeout: Duration::from_millis(l.header_timeout_ms),
            idle_timeout: Duration::from_millis(l.idle_timeout_ms),
            body_timeout: Duration::from_millis(l.body_timeout_ms),
        };
        if cfg.listeners.is_empty() && cfg.streams.is_empty() {
            return Err(bad(
                "at least one [[edge.listeners]] or [[edge.streams]] is needed".into(),
            ));
        }
        let mut listeners = Vec::new();
        let mut acme: Vec<Arc<crate::acme::AcmeIssuer>> = Vec::new();
        for lc in &cfg.listeners {
            let address: SocketAddr = lc.listen.parse().map_err(|_| {
                bad(format!(
                    "listener {:?} is not an address like 127.0.0.1:8080 or [::1]:8443",
                    lc.listen
                ))
            })?;
            if listeners
                .iter()
                .any(|o: &Arc<ListenerRuntime>| o.listen == lc.listen)
            {
                return Err(bad(format!("listener {:?} appears twice", lc.listen)));
            }
            let issuer = match &lc.acme {
                Some(ac) => {
                    let mut known = acme.clone();
                    known.extend(previous.iter().flat_map(|p| p.acme.iter().cloned()));
                    let i = crate::acme::AcmeIssuer::build(&lc.listen, ac, &known, metrics)?;
                    if !acme.iter().any(|k| Arc::ptr_eq(k, &i)) {
                        acme.push(i.clone());
                    }
                    Some(i)
                }
                None => None,
            };
            let tls = if lc.tls.is_empty() && issuer.is_none() {
                None
            } else {
                Some(TlsAcceptor::from(crate::tls::server_config_with_acme(
                    &lc.tls,
                    issuer.as_deref(),
                )?))
            };
            if tls.is_some() && lc.redirect_https_port.is_some() {
                return Err(bad(format!(
                    "listener {:?}: redirect_https_port is for plain listeners",
                    lc.listen
                )));
            }
            if tls.is_none() && lc.hsts_max_age.is_some() {
                return Err(bad(format!(
                    "listener {:?}: hsts_max_age needs tls",
                    lc.listen
                )));
            }
            if lc.http3 && (tls.is_none() || address.port() == 0) {
                return Err(bad(format!(
                    "listener {:?}: http3 needs tls and an explicit port",
                    lc.listen
                )));
            }
            if lc.http3 && !cfg!(feature = "http3") {
                return Err(bad(format!(
                    "listener {:?}: http3 needs a build with the cargo feature http3",
                    lc.listen
                )));
            }
            let alt_svc = lc.http3.then(|| {
                HeaderValue::from_str(&format!("h3=\":{}\"; ma=86400", address.port()))
                    .unwrap_or(HeaderValue::from_static("clear"))
            });
            let hsts = lc
                .hsts_max_age
                .and_then(|s| HeaderValue::from_str(&format!("max-age={s}")).ok());
            listeners.push(Arc::new(ListenerRuntime {
                listen: lc.listen.clone(),
                address,
                tls,
                redirect_https_port: lc.redirect_https_port,
                hsts,
                proxy_protocol: lc.proxy_protocol,
                limits,
                http3: lc.http3,
                alt_svc,
            }));
        }
        let mut pools = BTreeMap::new();
        for (name, pc) in &cfg.pools {
            let pool = Pool::build(
                name,
                pc,
                metrics.clone(),
                crate::workers::resolve(cfg.workers),
            )?;
            if let Some(old) = previous.and_then(|p| p.pools.get(name)) {
                pool.inherit_health(old);
            }
            pools.insert(name.clone(), Arc::new(pool));
        }
        let cache_zones =
            crate::cache::build_zones(&cfg.cache_zones, previous.map(|p| &p.cache_zones), metrics)?;
        let mut routes = cfg
            .routes
            .iter()
            .enumerate()
            .map(|(i, rc)| Route::compile(i, rc, |n| pools.get(n).cloned(), api_available))
            .collect::<Result<Vec<_>, _>>()?;
        for (route, rc) in routes.iter_mut().zip(&cfg.routes) {
            crate::cache::attach(route, rc, &cache_zones)?;
            route.compress = crate::compress::Compression::build(&route.name, rc)?;
        }
        let mut names = std::collections::HashSet::new();
        for r in &routes {
            if !names.insert(&*r.name) {
                return Err(bad(format!("route name {:?} appears twice", r.name)));
            }
        }
        let route_names: Vec<&str> = routes.iter().map(|r| &*r.name).collect();
        let protection = Protection::build(
            &cfg.clients,
            &cfg.rate_limits,
            &route_names,
            previous.map(|p| &p.protection),
        )?;
        let streams =
            crate::l4::StreamRuntime::build_all(&cfg.streams, |n| pools.get(n).cloned(), metrics)?;
        let reads_headers = protection.reads_headers()
            || routes.iter().any(Route::reads_headers)
            || pools.values().any(|p| p.hashes_http());
        Ok(Self {
            reads_headers,
            streams,
            routes,
            pools,
            listeners,
            max_body_bytes: l.max_body_bytes,
            protection,
            acme,
            cache_zones,
        })
    }
}
