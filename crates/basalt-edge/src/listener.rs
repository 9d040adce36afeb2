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
use crate::framing::{ConnState, GuardedIo};
use crate::snapshot::ListenerRuntime;

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

pub fn bind(rt: &Arc<ListenerRuntime>) -> std::io::Result<TcpListener> {
    let socket = match rt.address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(rt.address)?;
    socket.listen(4096)
}

pub fn start(
    listener: TcpListener,
    rt: Arc<ListenerRuntime>,
    shared: Arc<Shared>,
    watcher: impl Fn() -> Watcher + Send + Sync + 'static,
) -> std::io::Result<Running> {
    let local = listener.local_addr()?;
    let runtime = Arc::new(ArcSwap::new(rt));
    let (stop, mut stopped) = watch::channel(false);
    #[cfg(feature = "http3")]
    if runtime.load().http3 {
        crate::http3::start(local, runtime.clone(), shared.clone(), stop.subscribe())?;
    }
    let settings = runtime.clone();
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
    tokio::spawn(async move {
        loop {
            let Some((stream, peer)) = next_connection(&listener, &mut stopped).await else {
                return;
            };
            let rt = settings.load_full();
            let shared = shared.clone();
            let builder = builder.clone();
            let watcher = watcher();
            tokio::spawn(async move {
                connection(stream, peer, rt, shared, builder, watcher).await;
            });
        }
    });
    Ok(Running {
        local,
        runtime,
        stop,
    })
}

/// The next accepted connection, or `None` once `stopped` changes. A failed accept (out of
/// file descriptors and similar) is logged and retried after a pause instead of spinning.
pub(crate) async fn next_connection(
    listener: &TcpListener,
    stopped: &mut watch::Receiver<bool>,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped.changed() => return None,
        };
        match accepted {
            Ok(a) => return Some(a),
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
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
                guarded(tls, peer, rt, shared, builder, watcher).await;
            }
        }
        None => guarded(stream, peer, rt, shared, builder, watcher).await,
    }
}

async fn guarded<I>(
    io: I,
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
    let io = GuardedIo::new(
        io,
        conn.clone(),
        rt.limits,
        Arc::new(move |reason| metrics.rejected(reason)),
    );
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
