//! Basalt's edge: a reverse proxy, load balancer and TLS front that runs alone
//! (`basalt proxy`) or in front of the API inside `basalt serve`.
//!
//! It owns listeners (HTTP/1.1, HTTP/2, TLS with SNI, PROXY protocol) and the worker
//! threads that serve them (thread-per-core, SO_REUSEPORT), request-framing
//! checks, routing to upstream pools / the in-process API / static files / redirects,
//! load balancing, health checks, retries, the runtime snapshot and its atomic reload, and
//! its own metrics. It must never know the store, the schema or the API's routes: the API
//! arrives as an opaque tower service.

mod accept;
mod acme;
pub mod admin;
pub mod body;
mod cache;
mod client_body;
mod compress;
pub mod config;
pub mod discovery;
mod error;
mod h1;
mod h2_timeouts;
#[cfg(feature = "http3")]
#[path = "h3.rs"]
mod http3;
pub mod l4;
mod listener;
pub mod metrics;
mod pool;
mod protect;
mod proxy;
pub mod proxy_protocol;
mod route;
mod service;
mod snapshot;
mod static_files;
mod tls;
pub mod wire;
mod workers;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper_util::server::graceful::GracefulShutdown;

pub use body::{Body, BoxError};
pub use config::EdgeConfig;
pub use error::EdgeError;
pub use metrics::EdgeMetrics;
use snapshot::Snapshot;

/// The Basalt API as the edge sees it: any service from requests to responses.
pub type ApiService =
    tower::util::BoxCloneSyncService<http::Request<Body>, http::Response<Body>, Infallible>;

/// Re-reads the configuration for a reload (the binary decides where it comes from).
pub type ConfigSource = Arc<dyn Fn() -> Result<EdgeConfig, EdgeError> + Send + Sync>;

/// What every connection shares: the current snapshot, the API and the metrics.
pub(crate) struct Shared {
    snapshot: ArcSwap<Snapshot>,
    api: Option<ApiService>,
    metrics: Arc<EdgeMetrics>,
    /// Set when the edge starts shutting down: connections the HTTP/1.1 fast path serves
    /// close once nothing is in flight (hyper's are told through the graceful watcher).
    draining: tokio::sync::watch::Sender<bool>,
}

struct Inner {
    shared: Arc<Shared>,
    /// Running listeners by their configured `listen` string.
    listeners: Mutex<HashMap<String, listener::Running>>,
    source: Option<ConfigSource>,
    graceful: Mutex<Option<GracefulShutdown>>,
    reloading: tokio::sync::Mutex<()>,
    admin: Mutex<Option<SocketAddr>>,
    /// Running L4 stream listeners.
    streams: l4::Streams,
    /// Threads serving the HTTP listeners' connections; `None` when the caller's runtime
    /// serves them (`workers = 1`).
    workers: Option<workers::Workers>,
}

/// A running edge. Cheap to clone.
#[derive(Clone)]
pub struct Edge {
    inner: Arc<Inner>,
}

impl Edge {
    /// Validates `cfg`, binds its listeners (and the admin listener) and starts serving.
    pub async fn start(
        cfg: EdgeConfig,
        api: Option<ApiService>,
        source: Option<ConfigSource>,
    ) -> Result<Edge, EdgeError> {
        let metrics = Arc::new(EdgeMetrics::new());
        let snapshot = Snapshot::build(&cfg, api.is_some(), None, &metrics)?;
        let workers = match workers::resolve(cfg.workers) {
            1 => None,
            n => Some(
                workers::Workers::start(n).map_err(|source| EdgeError::Bind {
                    address: "edge worker threads".into(),
                    source,
                })?,
            ),
        };
        let edge = Edge {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared {
                    snapshot: ArcSwap::from_pointee(snapshot),
                    api,
                    metrics,
                    draining: tokio::sync::watch::Sender::new(false),
                }),
                listeners: Mutex::new(HashMap::new()),
                source,
                graceful: Mutex::new(Some(GracefulShutdown::new())),
                reloading: tokio::sync::Mutex::new(()),
                admin: Mutex::new(None),
                streams: l4::Streams::default(),
                workers,
            }),
        };
        let snap = edge.inner.shared.snapshot.load_full();
        let streams = edge.inner.streams.prepare(&snap.streams)?;
        edge.sync_listeners(&snap)?;
        streams.commit();
        edge.start_health_checks(&snap);
        edge.start_acme(&snap);
        if let Some(a) = &cfg.admin {
            let addr = admin::start(edge.clone(), a).await?;
            *edge.lock_admin() = Some(addr);
        }
        Ok(edge)
    }

    fn lock_admin(&self) -> std::sync::MutexGuard<'_, Option<SocketAddr>> {
        self.inner.admin.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_listeners(&self) -> std::sync::MutexGuard<'_, HashMap<String, listener::Running>> {
        self.inner
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Re-reads the configuration from the source and applies it.
    pub async fn reload(&self) -> Result<(), EdgeError> {
        let Some(source) = &self.inner.source else {
            return Err(EdgeError::Config(
                "this edge has no configuration file to reload".into(),
            ));
        };
        let cfg = source()?;
        self.apply(cfg).await
    }

    /// Validates `cfg` and swaps it in; on any error the running configuration stays.
    /// Listeners whose address is unchanged keep their socket and connections; in-flight
    /// requests and upgraded streams finish on the snapshot they started with.
    pub async fn apply(&self, cfg: EdgeConfig) -> Result<(), EdgeError> {
        let _one_at_a_time = self.inner.reloading.lock().await;
        let shared = &self.inner.shared;
        let old = shared.snapshot.load_full();
        let next = Arc::new(Snapshot::build(
            &cfg,
            shared.api.is_some(),
            Some(&old),
            &shared.metrics,
        )?);
        let streams = self.inner.streams.prepare(&next.streams)?;
        self.sync_listeners(&next)?;
        streams.commit();
        shared.snapshot.store(next.clone());
        self.start_health_checks(&next);
        self.start_acme(&next);
        tracing::info!(
            routes = next.routes.len(),
            pools = next.pools.len(),
            listeners = next.listeners.len(),
            "edge configuration applied"
        );
        Ok(())
    }

    /// Binds new listeners first (so a bind failure leaves everything as it was), then
    /// updates kept ones and stops removed ones.
    fn sync_listeners(&self, snap: &Snapshot) -> Result<(), EdgeError> {
        let mut running = self.lock_listeners();
        let mut fresh = Vec::new();
        for rt in &snap.listeners {
            if running.contains_key(&rt.listen) {
                continue;
            }
            let l = listener::bind(rt, self.worker_handles().len().max(1)).map_err(|source| {
                EdgeError::Bind {
                    address: rt.listen.clone(),
                    source,
                }
            })?;
            fresh.push((rt.clone(), l));
        }
        for rt in &snap.listeners {
            if let Some(r) = running.get(&rt.listen) {
                r.runtime.store(rt.clone());
            }
        }
        let keep: std::collections::HashSet<&str> =
            snap.listeners.iter().map(|l| l.listen.as_str()).collect();
        running.retain(|k, r| {
            let kept = keep.contains(k.as_str());
            if !kept {
                r.stop();
            }
            kept
        });
        for (rt, l) in fresh {
            let inner = Arc::downgrade(&self.inner);
            let watcher: listener::WatcherSource = Arc::new(move || match inner.upgrade() {
                Some(i) => match &*i.graceful.lock().unwrap_or_else(|p| p.into_inner()) {
                    Some(g) => g.watcher(),
                    None => GracefulShutdown::new().watcher(),
                },
                None => GracefulShutdown::new().watcher(),
            });
            let r = listener::start(
                l,
                rt.clone(),
                self.inner.shared.clone(),
                watcher,
                self.worker_handles(),
            )
            .map_err(|source| EdgeError::Bind {
                address: rt.listen.clone(),
                source,
            })?;
            tracing::info!(address = %r.local, tls = rt.tls.is_some(), "edge listening");
            running.insert(rt.listen.clone(), r);
        }
        Ok(())
    }

    fn worker_handles(&self) -> &[tokio::runtime::Handle] {
        self.inner.workers.as_ref().map_or(&[], |w| w.handles())
    }

    /// How many threads serve the HTTP listeners' connections (1: the caller's runtime).
    pub fn workers(&self) -> usize {
        self.worker_handles().len().max(1)
    }

    fn start_health_checks(&self, snap: &Snapshot) {
        for pool in snap.pools.values() {
            for t in &pool.targets() {
                self.inner
                    .shared
                    .metrics
                    .set_health(&pool.name, &t.address, t.is_healthy());
            }
            pool::health::spawn(pool);
            discovery::spawn(pool);
        }
    }

    /// Starts the renewal task of each new ACME issuer (kept issuers already run one).
    fn start_acme(&self, snap: &Snapshot) {
        for issuer in &snap.acme {
            acme::spawn(issuer);
        }
    }

    /// Serial numbers (hex) of the ACME certificates being served, by first domain.
    pub fn acme_serials(&self) -> Vec<(String, Option<String>)> {
        let snap = self.inner.shared.snapshot.load();
        snap.acme
            .iter()
            .map(|i| (i.domains()[0].clone(), i.serving_serial()))
            .collect()
    }

    /// Bound addresses of the listeners, in configuration order.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        let snap = self.inner.shared.snapshot.load();
        let running = self.lock_listeners();
        snap.listeners
            .iter()
            .filter_map(|l| running.get(&l.listen).map(|r| r.local))
            .collect()
    }

    /// Bound address of the stream configured with this protocol and `listen` string.
    pub fn stream_addr(&self, protocol: l4::StreamProtocol, listen: &str) -> Option<SocketAddr> {
        self.inner.streams.local_addr(protocol, listen)
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        *self.lock_admin()
    }

    pub fn metrics(&self) -> Arc<EdgeMetrics> {
        self.inner.shared.metrics.clone()
    }

    /// Stops accepting, asks open connections to finish and waits up to `grace`.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.streams.stop_all();
        for r in self.lock_listeners().values() {
            r.stop();
        }
        for issuer in &self.inner.shared.snapshot.load().acme {
            issuer.stop();
        }
        self.inner.shared.draining.send_replace(true);
        let graceful = self
            .inner
            .graceful
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(g) = graceful
            && tokio::time::timeout(grace, g.shutdown()).await.is_err()
        {
            tracing::warn!("edge connections did not finish in time");
        }
    }
}
