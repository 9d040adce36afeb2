//! TCP streams: accept, PROXY header and allow/deny checks, a connect to a pool target
//! (another target tried only when the connect fails, before any byte was sent), then a
//! bidirectional copy that passes half-closes through and ends after the idle timeout.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::{PROXY_HEADER_TIMEOUT, StreamRuntime};
use crate::pool::{Lease, PickContext};

pub async fn accept_loop(
    listener: TcpListener,
    runtime: Arc<ArcSwap<StreamRuntime>>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let Some((stream, peer)) = crate::accept::next_connection(&listener, &mut stopped).await
        else {
            return;
        };
        let rt = runtime.load_full();
        tokio::spawn(connection(stream, peer, rt));
    }
}

async fn connection(mut client: TcpStream, peer: SocketAddr, rt: Arc<StreamRuntime>) {
    let metrics = rt.stream_metrics();
    let _ = client.set_nodelay(true);
    let mut source = peer;
    if rt.proxy_protocol {
        match tokio::time::timeout(
            PROXY_HEADER_TIMEOUT,
            crate::proxy_protocol::read_header(&mut client),
        )
        .await
        {
            Ok(Ok(Some(real))) => source = real,
            Ok(Ok(None)) => {}
            Ok(Err(_)) | Err(_) => {
                metrics.refused(&rt.name, "proxy_protocol");
                return;
            }
        }
    }
    if !rt.admits(source.ip()) {
        metrics.refused(&rt.name, "ip_denied");
        return;
    }
    let Some((mut upstream, lease)) = connect(&rt, source.ip()).await else {
        metrics.refused(&rt.name, "no_target");
        tracing::debug!(stream = %rt.name, client = %source, "no target could be reached");
        return;
    };
    let meters = metrics.opened(&rt.name, &lease.target.address);
    if rt.send_proxy_protocol {
        let local = client.local_addr().unwrap_or(rt.address);
        if upstream
            .write_all(&super::proxy_header::v2(source, local))
            .await
            .is_err()
        {
            return;
        }
    }
    let outcome = relay(
        client,
        upstream,
        rt.idle_timeout,
        meters.bytes_in.clone(),
        meters.bytes_out.clone(),
    )
    .await;
    tracing::debug!(stream = %rt.name, client = %source, target = %lease.target.address, ?outcome, "stream connection closed");
    drop(meters);
    drop(lease);
}

/// Picks and connects, moving to another target only while nothing was sent.
async fn connect(rt: &StreamRuntime, client_ip: IpAddr) -> Option<(TcpStream, Lease)> {
    let pool = &rt.pool;
    let headers = http::HeaderMap::new();
    let ctx = PickContext {
        client_ip,
        headers: &headers,
    };
    let mut tried = None;
    // Nothing is sent before a connect succeeds: every stream may be retried.
    for attempt in 0..pool.attempts(true) {
        if attempt > 0 && !pool.take_retry() {
            return None;
        }
        let lease = pool.pick(&ctx, tried).ok()?;
        let started = Instant::now();
        let connected = tokio::time::timeout(
            pool.connect_timeout,
            TcpStream::connect(lease.target.authority.as_str()),
        )
        .await;
        match connected {
            Ok(Ok(s)) => {
                pool.observe(&lease, started.elapsed(), true);
                let _ = s.set_nodelay(true);
                return Some((s, lease));
            }
            Ok(Err(_)) | Err(_) => {
                pool.observe(&lease, started.elapsed(), false);
                rt.stream_metrics()
                    .connect_failed(&rt.name, &lease.target.address);
                tried = Some(lease.index);
            }
        }
    }
    None
}

/// How a relayed connection ended, for the log line.
#[derive(Debug)]
#[allow(dead_code)] // the error kind is read through `Debug`
enum Outcome {
    Closed,
    Idle,
    Error(io::ErrorKind),
}

async fn relay(
    client: TcpStream,
    upstream: TcpStream,
    idle: Duration,
    bytes_in: IntCounter,
    bytes_out: IntCounter,
) -> Outcome {
    let epoch = Instant::now();
    let activity = Arc::new(AtomicU64::new(0));
    let mut client = Metered::new(client, bytes_in, activity.clone(), epoch);
    let mut upstream = Metered::new(upstream, bytes_out, activity.clone(), epoch);
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    tokio::pin!(copy);
    loop {
        let last = Duration::from_millis(activity.load(Ordering::Relaxed));
        let deadline = tokio::time::Instant::from_std(epoch + last + idle);
        tokio::select! {
            r = &mut copy => return match r {
                Ok(_) => Outcome::Closed,
                Err(e) => Outcome::Error(e.kind()),
            },
            _ = tokio::time::sleep_until(deadline) => {
                if activity.load(Ordering::Relaxed) == last.as_millis() as u64 {
                    return Outcome::Idle;
                }
            }
        }
    }
}

/// A stream that counts the bytes read from it and stamps the time of the last one.
struct Metered<S> {
    inner: S,
    counter: IntCounter,
    activity: Arc<AtomicU64>,
    epoch: Instant,
}

impl<S> Metered<S> {
    fn new(inner: S, counter: IntCounter, activity: Arc<AtomicU64>, epoch: Instant) -> Self {
        Self {
            inner,
            counter,
            activity,
            epoch,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            this.counter.inc_by(n as u64);
            this.activity
                .store(this.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
