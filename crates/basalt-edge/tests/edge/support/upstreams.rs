//! Real upstream servers for the edge's integration tests: hyper servers on 127.0.0.1 that
//! answer with their name, count hits, and fail, stall or go unhealthy on demand.
#![allow(dead_code)]

pub use super::edge_config;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use basalt_edge::Edge;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
pub struct Behaviour {
    pub hits: AtomicUsize,
    /// 0: answer 200; otherwise answer this status.
    pub status: AtomicU64,
    /// Drop the connection instead of answering.
    pub fail: AtomicBool,
    /// Milliseconds to wait before answering.
    pub delay_ms: AtomicU64,
    /// `/health` answers 503 when set.
    pub unhealthy: AtomicBool,
    /// Requests being handled right now, and the most seen at once.
    pub concurrent: AtomicUsize,
    pub peak: AtomicUsize,
}

pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    pub b: Arc<Behaviour>,
}

impl Upstream {
    pub fn hits(&self) -> usize {
        self.b.hits.load(Ordering::SeqCst)
    }
}

/// An HTTP/1.1 + HTTP/2 (h2c) upstream answering `name` and echoing what it was sent.
pub async fn upstream(name: &str) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let b = Arc::new(Behaviour::default());
    let (n, bb) = (name.to_string(), b.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (n, bb) = (n.clone(), bb.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req| handle(n.clone(), bb.clone(), req));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Upstream {
        name: name.to_string(),
        addr,
        b,
    }
}

async fn handle(
    name: String,
    b: Arc<Behaviour>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Box<dyn std::error::Error + Send + Sync>> {
    if req.uri().path() == "/health" {
        let status = if b.unhealthy.load(Ordering::SeqCst) {
            503
        } else {
            200
        };
        return Ok(Response::builder()
            .status(status)
            .body(Full::new(Bytes::from("health")))?);
    }
    b.hits.fetch_add(1, Ordering::SeqCst);
    let now = b.concurrent.fetch_add(1, Ordering::SeqCst) + 1;
    b.peak.fetch_max(now, Ordering::SeqCst);
    let result = respond(&name, &b, req).await;
    b.concurrent.fetch_sub(1, Ordering::SeqCst);
    result
}

async fn respond(
    name: &str,
    b: &Behaviour,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Box<dyn std::error::Error + Send + Sync>> {
    let delay = b.delay_ms.load(Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    if b.fail.load(Ordering::SeqCst) {
        return Err("failing on purpose".into());
    }
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let status = match b.status.load(Ordering::SeqCst) {
        0 => 200,
        s => s as u16,
    };
    let mut resp = Response::builder().status(status);
    for (k, v) in &parts.headers {
        resp = resp.header(format!("x-seen-{k}"), v);
    }
    Ok(resp
        .header("x-upstream", name)
        .header(
            "x-seen-path",
            parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or(""),
        )
        .header("x-seen-version", format!("{:?}", parts.version))
        .header("x-seen-body-len", body.len().to_string())
        .body(Full::new(Bytes::from(name.to_string())))?)
}

/// An address with nothing listening (connection refused).
pub async fn dead_address() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr")
}

/// A WebSocket echo upstream.
pub async fn websocket_upstream() -> SocketAddr {
    use futures_util::{SinkExt, StreamExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

pub async fn edge(toml: &str) -> (Edge, SocketAddr) {
    let cfg = edge_config::parse(toml).expect("config");
    let edge = Edge::start(cfg, None, None).await.expect("edge starts");
    let addr = edge.local_addrs()[0];
    (edge, addr)
}

/// One listener on a free port and one pool `p` over `targets`, plus extra pool settings.
pub fn pool_config(targets: &[(SocketAddr, u32)], pool_extra: &str) -> String {
    let targets = targets
        .iter()
        .map(|(a, w)| format!("{{ address = \"{a}\", weight = {w} }}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[edge]\n[[edge.listeners]]\nlisten = \"127.0.0.1:0\"\n[[edge.routes]]\nname = \"all\"\npath_prefix = \"/\"\npool = \"p\"\n[edge.pools.p]\ntargets = [{targets}]\n{pool_extra}\n"
    )
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(64)
        .build()
        .expect("client")
}

/// Sends raw bytes and returns everything the server sends back before closing (bounded).
pub async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

pub fn infallible<T>(v: T) -> Result<T, Infallible> {
    Ok(v)
}
