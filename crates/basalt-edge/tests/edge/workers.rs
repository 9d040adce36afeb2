//! The thread-per-core worker model (`workers = 4`): connections spread over the workers'
//! SO_REUSEPORT sockets are all served, the per-target cap holds across workers, a reload
//! and a WebSocket across it work, and graceful shutdown drains every worker.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::upstreams::*;
use basalt_edge::Edge;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// `pool_config` with four workers.
fn with_workers(toml: &str) -> String {
    toml.replacen("[edge]\n", "[edge]\nworkers = 4\n", 1)
}

async fn start(toml: &str) -> (Edge, SocketAddr) {
    let cfg = edge_config::parse(&with_workers(toml)).expect("config");
    let edge = Edge::start(cfg, None, None).await.expect("edge starts");
    assert_eq!(edge.workers(), 4);
    let addr = edge.local_addrs()[0];
    (edge, addr)
}

/// One keep-alive request on an open connection; the response's status and body.
async fn request(s: &mut TcpStream) -> (u16, String) {
    s.write_all(b"GET /x HTTP/1.1\r\nHost: w\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("answer in time")
            .expect("read");
        assert!(n > 0, "connection closed early");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .expect("content-length");
            if body.len() >= len {
                let status = head[9..12].parse().expect("status");
                return (status, body[..len].to_string());
            }
        }
    }
}

/// Accepted connections per worker label, from the edge's metrics.
fn connections_by_worker(edge: &Edge) -> Vec<(String, f64)> {
    edge.metrics()
        .render()
        .lines()
        .filter_map(|l| l.strip_prefix("basalt_edge_connections_total{worker=\""))
        .filter_map(|rest| {
            let (worker, value) = rest.split_once("\"} ")?;
            Some((worker.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn connections_spread_over_the_workers_are_all_served() {
    let a = upstream("a").await;
    let (edge, addr) = start(&pool_config(&[(a.addr, 1)], "")).await;
    // 32 connections (distinct source ports, so the kernel's hash spreads them), each
    // keeping three requests on the same worker.
    let mut conns = Vec::new();
    for _ in 0..32 {
        conns.push(TcpStream::connect(addr).await.expect("connect"));
    }
    for s in &mut conns {
        for _ in 0..3 {
            assert_eq!(request(s).await, (200, "a".to_string()));
        }
    }
    assert_eq!(a.hits(), 96);
    let by_worker = connections_by_worker(&edge);
    let total: f64 = by_worker.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 32.0, "{by_worker:?}");
    assert!(
        by_worker.iter().all(|(w, _)| w != "0"),
        "served on the workers, not the shared runtime: {by_worker:?}"
    );
    let busy = by_worker.iter().filter(|(_, n)| *n > 0.0).count();
    assert!(busy >= 2, "connections spread over workers: {by_worker:?}");
}

#[tokio::test]
async fn the_per_target_cap_holds_across_workers() {
    let a = upstream("a").await;
    a.b.delay_ms.store(500, Ordering::SeqCst);
    let (_edge, addr) = start(&pool_config(&[(a.addr, 1)], "max_requests_per_target = 2")).await;
    // Eight requests at once, each on its own connection (so on several workers).
    let mut tasks = Vec::new();
    for _ in 0..8 {
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            request(&mut s).await.0
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    statuses.sort();
    assert_eq!(statuses, vec![200, 200, 503, 503, 503, 503, 503, 503]);
    assert_eq!(a.b.peak.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_reload_with_workers_keeps_open_connections_and_a_websocket() {
    let ws_up = websocket_upstream().await;
    let (a, b) = (upstream("a").await, upstream("b").await);
    let routes = |pool_target: SocketAddr| {
        format!(
            "[edge]\nworkers = 4\n[[edge.listeners]]\nlisten = \"127.0.0.1:0\"\n\
             [[edge.routes]]\nname = \"ws\"\npath_prefix = \"/socket\"\npool = \"ws\"\n\
             [[edge.routes]]\nname = \"all\"\npath_prefix = \"/\"\npool = \"p\"\n\
             [edge.pools.ws]\ntargets = [{{ address = \"{ws_up}\" }}]\n\
             [edge.pools.p]\ntargets = [{{ address = \"{pool_target}\" }}]\n"
        )
    };
    let edge = Edge::start(
        edge_config::parse(&routes(a.addr)).expect("config"),
        None,
        None,
    )
    .await
    .expect("start");
    let addr = edge.local_addrs()[0];
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut ws, resp) = tokio_tungstenite::client_async(format!("ws://{addr}/socket"), tcp)
        .await
        .expect("websocket through the edge");
    assert_eq!(resp.status(), 101);
    let mut kept = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        assert_eq!(request(&mut s).await, (200, "a".to_string()));
        kept.push(s);
    }
    edge.apply(edge_config::parse(&routes(b.addr)).expect("config"))
        .await
        .expect("reload");
    assert_eq!(edge.local_addrs()[0], addr, "the sockets are kept");
    // Connections opened before the reload go on, on their workers, with the new routes.
    for s in &mut kept {
        assert_eq!(request(s).await, (200, "b".to_string()));
    }
    for i in 0..3 {
        let text = format!("after {i}");
        ws.send(Message::text(text.clone())).await.expect("send");
        let echoed = tokio::time::timeout(Duration::from_secs(3), ws.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("ok");
        assert_eq!(echoed, Message::text(text));
    }
    ws.close(None).await.expect("close");
}

#[tokio::test]
async fn graceful_shutdown_drains_every_worker() {
    let a = upstream("a").await;
    a.b.delay_ms.store(400, Ordering::SeqCst);
    let (edge, addr) = start(&pool_config(&[(a.addr, 1)], "")).await;
    let started = Arc::new(tokio::sync::Barrier::new(9));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let started = started.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            s.write_all(b"GET /x HTTP/1.1\r\nHost: w\r\n\r\n")
                .await
                .expect("write");
            started.wait().await;
            let mut out = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
            String::from_utf8_lossy(&out).into_owned()
        }));
    }
    started.wait().await;
    // Let the eight requests reach the upstream before the edge is asked to stop.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while a.b.concurrent.load(Ordering::SeqCst) < 8 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(a.b.concurrent.load(Ordering::SeqCst), 8);
    edge.shutdown(Duration::from_secs(5)).await;
    for t in tasks {
        let answer = t.await.expect("task");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with('a'), "{answer}");
    }
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no worker accepts after shutdown"
    );
}

#[tokio::test]
async fn one_worker_serves_on_the_shared_runtime() {
    let a = upstream("a").await;
    let toml = pool_config(&[(a.addr, 1)], "").replacen("[edge]\n", "[edge]\nworkers = 1\n", 1);
    let (edge, addr) = edge(&toml).await;
    assert_eq!(edge.workers(), 1);
    let mut s = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(request(&mut s).await, (200, "a".to_string()));
    assert_eq!(connections_by_worker(&edge), vec![("0".to_string(), 1.0)]);
}

/// The suites start many edges at once: the shared helpers give each two workers (not one
/// per core) unless the test sets `workers`, and two still serve through the worker path.
#[tokio::test]
async fn test_edges_get_two_workers_unless_they_choose() {
    let a = upstream("a").await;
    let (edge, addr) = edge(&pool_config(&[(a.addr, 1)], "")).await;
    assert_eq!(edge.workers(), edge_config::TEST_WORKERS);
    let mut s = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(request(&mut s).await, (200, "a".to_string()));
    let counted = connections_by_worker(&edge);
    assert!(
        counted.iter().all(|(w, _)| w == "1" || w == "2"),
        "served off the workers: {counted:?}"
    );
    let set = pool_config(&[(a.addr, 1)], "").replacen("[edge]\n", "[edge]\nworkers = 3\n", 1);
    assert_eq!(edge_config::parse(&set).expect("config").workers, 3);
}

#[tokio::test]
async fn a_listener_added_by_a_reload_is_served_by_the_workers() {
    let a = upstream("a").await;
    let one = with_workers(&pool_config(&[(a.addr, 1)], ""));
    let (edge, first) = start(&pool_config(&[(a.addr, 1)], "")).await;
    // IPv6 loopback when this machine has it (the sockets per worker are bound per family).
    let other = if std::net::TcpListener::bind("[::1]:0").is_ok() {
        "[::1]:0"
    } else {
        "127.0.0.2:0"
    };
    let second = one.replacen(
        "[[edge.listeners]]\nlisten = \"127.0.0.1:0\"\n",
        &format!(
            "[[edge.listeners]]\nlisten = \"127.0.0.1:0\"\n[[edge.listeners]]\nlisten = \"{other}\"\n"
        ),
        1,
    );
    edge.apply(edge_config::parse(&second).expect("config"))
        .await
        .expect("reload");
    let addrs = edge.local_addrs();
    assert_eq!(addrs.len(), 2);
    assert_eq!(addrs[0], first);
    for addr in &addrs {
        for _ in 0..8 {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            assert_eq!(request(&mut s).await, (200, "a".to_string()));
        }
    }
    let by_worker = connections_by_worker(&edge);
    assert_eq!(
        by_worker.iter().map(|(_, n)| n).sum::<f64>(),
        16.0,
        "{by_worker:?}"
    );
    assert!(by_worker.iter().all(|(w, _)| w != "0"), "{by_worker:?}");
}
