//! The HTTP/1.1 upstream client's connections: kept alive and reused, replaced when the
//! upstream closed one while it sat idle, closed after the pool's idle timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::upstreams::{client, edge, pool_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct Counts {
    accepted: AtomicUsize,
    answered: AtomicUsize,
    /// Connections the edge closed (EOF seen by the upstream).
    closed_by_edge: AtomicUsize,
}

/// A raw HTTP/1.1 upstream answering `ok`; with `close_after_answer` it closes each
/// connection shortly after answering, without saying so (no `Connection: close`).
async fn raw_upstream(close_after_answer: bool) -> (SocketAddr, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            c.accepted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(s, c.clone(), close_after_answer));
        }
    });
    (addr, counts)
}

async fn serve(mut s: TcpStream, counts: Arc<Counts>, close_after_answer: bool) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                counts.closed_by_edge.fetch_add(1, Ordering::SeqCst);
                return;
            }
            Err(_) => return,
            Ok(Ok(n)) => n,
        };
        seen.extend_from_slice(&buf[..n]);
        let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if seen.len() < end + 4 + length {
            continue;
        }
        seen.drain(..end + 4 + length);
        counts.answered.fetch_add(1, Ordering::SeqCst);
        if s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await
            .is_err()
        {
            return;
        }
        if close_after_answer {
            tokio::time::sleep(Duration::from_millis(20)).await;
            return;
        }
    }
}

#[tokio::test]
async fn upstream_connections_are_reused() {
    let (up, counts) = raw_upstream(false).await;
    let (_edge, addr) = edge(&pool_config(&[(up, 1)], "")).await;
    let c = client();
    for i in 0..20 {
        let resp = c
            .get(format!("http://{addr}/r{i}"))
            .send()
            .await
            .expect("response");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.expect("body"), "ok");
    }
    assert_eq!(counts.answered.load(Ordering::SeqCst), 20);
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 1);
}

/// A connection the upstream closed while idle is never used for a request (not even a
/// non-retriable POST with a body): the edge opens a new one.
#[tokio::test]
async fn a_connection_closed_while_idle_is_replaced() {
    let (up, counts) = raw_upstream(true).await;
    let (_edge, addr) = edge(&pool_config(&[(up, 1)], "")).await;
    let c = client();
    for i in 0..8 {
        let resp = c
            .post(format!("http://{addr}/p{i}"))
            .body("payload")
            .send()
            .await
            .expect("response");
        assert_eq!(resp.status(), 200, "request {i}");
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    assert_eq!(counts.answered.load(Ordering::SeqCst), 8);
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 8);
}

#[tokio::test]
async fn idle_upstream_connections_are_closed_after_the_idle_timeout() {
    let (up, counts) = raw_upstream(false).await;
    let (_edge, addr) = edge(&pool_config(&[(up, 1)], "idle_timeout_ms = 200")).await;
    let resp = client()
        .get(format!("http://{addr}/"))
        .send()
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while counts.closed_by_edge.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "idle connection kept"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each worker keeps its own upstream connections (a connection's task runs on the thread
/// whose requests it serves): with requests one at a time over client connections spread
/// across four workers, every worker that served one opened exactly one upstream connection.
#[tokio::test]
async fn each_worker_reuses_its_own_upstream_connection() {
    let (up, counts) = raw_upstream(false).await;
    let toml = pool_config(&[(up, 1)], "").replacen("[edge]\n", "[edge]\nworkers = 4\n", 1);
    let (edge, addr) = edge(&toml).await;
    assert_eq!(edge.workers(), 4);
    let mut clients = Vec::new();
    for _ in 0..12 {
        clients.push(TcpStream::connect(addr).await.expect("connect"));
    }
    for round in 0..3 {
        for (i, s) in clients.iter_mut().enumerate() {
            s.write_all(format!("GET /r{round}-{i} HTTP/1.1\r\nhost: t\r\n\r\n").as_bytes())
                .await
                .expect("write");
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.ends_with(b"ok") {
                let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                    .await
                    .expect("answer in time")
                    .expect("read");
                assert!(n > 0, "edge closed the client connection");
                got.extend_from_slice(&buf[..n]);
            }
            assert!(
                got.starts_with(b"HTTP/1.1 200"),
                "{:?}",
                String::from_utf8_lossy(&got)
            );
        }
    }
    assert_eq!(counts.answered.load(Ordering::SeqCst), 36);
    let serving_workers = edge
        .metrics()
        .render()
        .lines()
        .filter(|l| l.starts_with("basalt_edge_connections_total{worker=\""))
        .filter(|l| !l.ends_with(" 0"))
        .count();
    assert!(serving_workers >= 1);
    assert_eq!(counts.accepted.load(Ordering::SeqCst), serving_workers);
}
