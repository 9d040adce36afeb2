//! Accepting connections: PROXY protocol, TLS (ALPN h2 / http/1.1), the framing guard for
//! HTTP/1, and hyper-util's auto builder (HTTP/1.1, HTTP/2, h2c with prior knowledge).

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::Shared;
use crate::snapshot::ListenerRuntime;
use crate::wire::guard::{ConnState, GuardedIo};

/// A bound listener; its settings are swapped on reload, the socket is kept.
pub struct Running {
    pub local: SocketAddr,
    pub runtime: Arc<ArcSwap<ListenerRuntime>>,
    stop: watch::Sender<bool>,
}

impl Running {
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// Binds the listener's sockets: one per worker (sharing the port through SO_REUSEPORT),
/// or one when the shared runtime serves.
pub fn bind(
    rt: &Arc<ListenerRuntime>,
    workers: usize,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    crate::workers::bind(rt.address, workers)
}

/// A watcher of the edge's graceful shutdown, made per accepted connection.
pub type WatcherSource = Arc<dyn Fn() -> Watcher + Send + Sync>;

/// Starts accepting on `sockets`: one socket runs its accept loop on the current runtime;
/// several run one accept loop each on the worker runtime of the same index.
pub fn start(
    sockets: Vec<std::net::TcpListener>,
    rt: Arc<ListenerRuntime>,
    shared: Arc<Shared>,
    watcher: WatcherSource,
    workers: &[tokio::runtime::Handle],
) -> std::io::Result<Running> {
    let Some(first) = sockets.first() else {
        return Err(std::io::Error::other("a listener needs a socket"));
    };
    let local = first.local_addr()?;
    let runtime = Arc::new(ArcSwap::new(rt));
    let (stop, _) = watch::channel(false);
    #[cfg(feature = "http3")]
    if runtime.load().http3 {
        crate::http3::start(local, runtime.clone(), shared.clone(), stop.subscribe())?;
    }
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        // The framing guard owns head timeouts; hyper's would also cut upgraded streams.
        .header_read_timeout(None)
        .max_buf_size(1 << 20);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(std::time::Duration::from_secs(30)));
    let builder = Arc::new(builder);
    let on_workers = sockets.len() > 1 && sockets.len() <= workers.len();
    for (i, socket) in sockets.into_iter().enumerate() {
        let accept = Accept {
            settings: runtime.clone(),
            shared: shared.clone(),
            builder: builder.clone(),
            watcher: watcher.clone(),
            stopped: stop.subscribe(),
        };
        if on_workers {
            workers[i].spawn(accept.run(socket));
        } else {
            // Registered here, on the runtime that serves it.
            let listener = TcpListener::from_std(socket)?;
            tokio::spawn(accept.serve(listener));
        }
    }
    Ok(Running {
        local,
        runtime,
        stop,
    })
}

/// One accept loop: what it needs to serve the connections it takes.
struct Accept {
    settings: Arc<ArcSwap<ListenerRuntime>>,
    shared: Arc<Shared>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    watcher: WatcherSource,
    stopped: watch::Receiver<bool>,
}

impl Accept {
    /// Registers `socket` with the runtime this runs on (a worker's), then serves it.
    async fn run(self, socket: std::net::TcpListener) {
        match TcpListener::from_std(socket) {
            Ok(listener) => self.serve(listener).await,
            Err(e) => tracing::error!(error = %e, "edge worker could not register its listener"),
        }
    }

    async fn serve(mut self, listener: TcpListener) {
        let accepted = self
            .shared
            .metrics
            .worker_connections(crate::workers::current());
        while let Some((stream, peer)) =
            crate::accept::next_connection(&listener, &mut self.stopped).await
        {
            accepted.inc();
            let rt = self.settings.load_full();
            let shared = self.shared.clone();
            let builder = self.builder.clone();
            let watcher = (self.watcher)();
            tokio::spawn(async move {
                connection(stream, peer, rt, shared, builder, watcher).await;
            });
        }
    }
}

async fn connection(
    mut stream: TcpStream,
    mut peer: SocketAddr,
    rt: Arc<ListenerRuntime>,
    shared: Arc<Shared>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    watcher: Watcher,
) {
    let _ = stream.set_nodelay(true);
    if rt.proxy_protocol {
        match tokio::time::timeout(
            rt.limits.header_timeout,
            crate::proxy_protocol::read_header(&mut stream),
        )
        .await
        {
            Ok(Ok(Some(real))) => peer = real,
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, %peer, "proxy protocol header refused");
                shared.metrics.rejected("proxy_protocol");
                return;
            }
            Err(_) => return,
        }
    }
    match &rt.tls {
        Some(acceptor) => {
            let Ok(Ok(tls)) =
                tokio::time::timeout(rt.limits.header_timeout, acceptor.accept(stream)).await
            else {
                return;
            };
            // A TLS-ALPN-01 validation is the handshake alone (RFC 8737 section 3).
            if tls.get_ref().1.alpn_protocol() == Some(crate::acme::ACME_TLS_ALPN) {
                return;
            }
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            if h2 {
                let conn = ConnState::new();
                conn.http2.store(true, std::sync::atomic::Ordering::Release);
                serve(tls, peer, rt, shared, builder, watcher, conn).await;
            } else {
                crate::h1::serve(tls, peer, rt, shared, builder, watcher).await;
            }
        }
        None => crate::h1::serve(stream, peer, rt, shared, builder, watcher).await,
    }
}

/// Serves the rest of an HTTP/1 connection the fast path handed over through the framing
/// guard and hyper, starting with the bytes it left.
pub(crate) async fn hand_off<I>(
    io: I,
    left: crate::h1::Leftover,
    peer: SocketAddr,
    rt: Arc<ListenerRuntime>,
    shared: Arc<Shared>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = ConnState::new();
    let metrics = shared.metrics.clone();
    let mut io = GuardedIo::new(
        io,
        conn.clone(),
        rt.limits,
        Arc::new(move |reason| metrics.rejected(reason)),
    );
    if left.after_requests {
        io = io.after_http1();
    }
    let io = io.with_read(&left.bytes);
    serve(io, peer, rt, shared, builder, watcher, conn).await;
}

async fn serve<I>(
    io: I,
    peer: SocketAddr,
    rt: Arc<ListenerRuntime>,
    shared: Arc<Shared>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    watcher: Watcher,
    conn: Arc<ConnState>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = rt.limits;
    let timeouts = conn.clone();
    let svc = service_fn(move |req| -> crate::service::HandleFuture {
        // Boxed as a `dyn Future + Send`: rustc cannot prove the unboxed future Send for
        // every lifetime hyper asks about (the boxed error types inside the API service).
        Box::pin(crate::service::handle(
            shared.clone(),
            conn.clone(),
            rt.clone(),
            peer,
            req,
        ))
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::select! {
        // Biased: the connection first, without drawing a random number on every wake.
        biased;
        ended = watcher.watch(connection) => {
            if let Err(e) = ended {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        }
        _ = crate::h2_timeouts::expired(&timeouts, limits) => {
            // Nothing is in flight: dropping the connection cuts no response.
            tracing::debug!(%peer, "http/2 connection closed after its header or idle timeout");
        }
    }
}
