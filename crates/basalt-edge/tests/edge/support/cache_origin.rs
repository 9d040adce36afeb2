//! A scripted origin for the cache and compression tests: a real hyper server on 127.0.0.1
//! answering each path with the status, headers and body a test chose, counting requests
//! per path, answering 304 to a matching `If-None-Match`, 206 to a `Range`, and failing on
//! demand. `{version}` in a body is replaced by a counter the test bumps; `{lang}` by the
//! request's `Accept-Language`.
#![allow(dead_code)]

pub use super::edge_config;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use basalt_edge::Edge;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

#[derive(Clone, Default)]
pub struct Script {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

pub fn script(headers: &[(&str, &str)], body: &str) -> Script {
    Script {
        status: 200,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.to_string(),
    }
}

#[derive(Default)]
pub struct State {
    scripts: Mutex<HashMap<String, Script>>,
    hits: Mutex<HashMap<String, usize>>,
    pub total: AtomicUsize,
    pub not_modified: AtomicUsize,
    pub version: AtomicU64,
    pub delay_ms: AtomicU64,
    /// Non-zero: every answer has this status (and an empty body).
    pub fail_status: AtomicU64,
    pub seen_if_none_match: Mutex<Vec<String>>,
    /// `/stream` sends 100 KB, waits for this, then sends 100 KB more (no Content-Length).
    pub stream_gate: tokio::sync::Notify,
}

pub struct Origin {
    pub addr: SocketAddr,
    pub state: Arc<State>,
}

impl Origin {
    pub fn set(&self, path: &str, s: Script) {
        self.state
            .scripts
            .lock()
            .expect("lock")
            .insert(path.to_string(), s);
    }

    pub fn hits(&self, path: &str) -> usize {
        *self
            .state
            .hits
            .lock()
            .expect("lock")
            .get(path)
            .unwrap_or(&0)
    }
}

pub async fn origin() -> Origin {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let state = Arc::new(State::default());
    let st = state.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let st = st.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| answer(st.clone(), req));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Origin { addr, state }
}

type OriginBody = BoxBody<Bytes, std::convert::Infallible>;

async fn answer(
    st: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<OriginBody>, hyper::http::Error> {
    if req.uri().path() == "/stream" {
        st.total.fetch_add(1, Ordering::SeqCst);
        *st.hits
            .lock()
            .expect("lock")
            .entry("/stream".into())
            .or_default() += 1;
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let gate = st.clone();
        tokio::spawn(async move {
            let _ = tx.send(Bytes::from(vec![b'a'; 100_000])).await;
            let _ =
                tokio::time::timeout(Duration::from_secs(10), gate.stream_gate.notified()).await;
            let _ = tx.send(Bytes::from(vec![b'b'; 100_000])).await;
        });
        let frames = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| {
                (
                    Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(b)),
                    rx,
                )
            })
        });
        return Response::builder()
            .header("cache-control", "max-age=60")
            .body(StreamBody::new(frames).boxed());
    }
    answer_scripted(st, req).await.map(|r| r.map(|b| b.boxed()))
}

async fn answer_scripted(
    st: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::http::Error> {
    let path = req.uri().path().to_string();
    st.total.fetch_add(1, Ordering::SeqCst);
    *st.hits
        .lock()
        .expect("lock")
        .entry(path.clone())
        .or_default() += 1;
    let delay = st.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let fail = st.fail_status.load(Ordering::SeqCst);
    if fail != 0 {
        return Response::builder()
            .status(fail as u16)
            .body(Full::new(Bytes::new()));
    }
    let script = st.scripts.lock().expect("lock").get(&path).cloned();
    let Some(s) = script else {
        return Response::builder()
            .status(404)
            .body(Full::new(Bytes::from("no script")));
    };
    let inm = req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(v) = &inm {
        st.seen_if_none_match.lock().expect("lock").push(v.clone());
    }
    let etag = s
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("etag"))
        .map(|(_, v)| v.clone());
    let mut b = Response::builder();
    for (k, v) in &s.headers {
        b = b.header(k, v);
    }
    if let (Some(inm), Some(etag)) = (&inm, &etag)
        && inm.split(',').any(|t| t.trim() == etag)
    {
        st.not_modified.fetch_add(1, Ordering::SeqCst);
        return b.status(304).body(Full::new(Bytes::new()));
    }
    let lang = req
        .headers()
        .get("accept-language")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = s
        .body
        .replace("{version}", &st.version.load(Ordering::SeqCst).to_string())
        .replace("{lang}", &lang);
    if req.headers().contains_key("range") && body.len() > 10 {
        return b
            .status(206)
            .header("content-range", format!("bytes 0-9/{}", body.len()))
            .body(Full::new(Bytes::from(body[..10].to_string())));
    }
    b.status(s.status).body(Full::new(Bytes::from(body)))
}

/// One listener, an admin listener, a cache zone `z` with `zone_extra`, and one route to the
/// origin with `route_extra` (e.g. `cache = { zone = "z" }`).
pub fn config(origin: SocketAddr, zone_extra: &str, route_extra: &str) -> String {
    format!(
        "[edge]\n[[edge.listeners]]\nlisten = \"127.0.0.1:0\"\n[edge.admin]\nlisten = \"127.0.0.1:0\"\n\
         [[edge.cache_zones]]\nname = \"z\"\n{zone_extra}\n\
         [[edge.routes]]\nname = \"all\"\npath_prefix = \"/\"\npool = \"p\"\n{route_extra}\n\
         [edge.pools.p]\ntargets = [{{ address = \"{origin}\" }}]\nretries = 0\n"
    )
}

pub async fn edge(toml: &str) -> (Edge, SocketAddr) {
    let cfg = edge_config::parse(toml).expect("config");
    let edge = Edge::start(cfg, None, None).await.expect("edge starts");
    let addr = edge.local_addrs()[0];
    (edge, addr)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(64)
        .build()
        .expect("client")
}

pub struct Got {
    pub status: u16,
    pub x_cache: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: Bytes,
}

pub async fn get(c: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> Got {
    let mut r = c.get(url);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let resp = r.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let x_cache = headers
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = resp.bytes().await.expect("body");
    Got {
        status,
        x_cache,
        headers,
        body,
    }
}

/// A metric's value from the admin listener's `/metrics` (0 when absent).
pub async fn metric(edge: &Edge, series: &str) -> f64 {
    let admin = edge.admin_addr().expect("admin");
    let text = client()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}
