//! Graceful shutdown of HTTP/1.1 keep-alive connections: an idle one is closed, one with
//! a request in flight gets its whole response (marked `Connection: close`) and then
//! closes, and the shutdown itself returns.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::upstreams::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads one response (head and `Content-Length` body) from a keep-alive connection.
async fn read_response(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .expect("a content-length");
            if got.len() >= end + 4 + length {
                return text;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("response in time")
            .expect("read");
        assert!(n > 0, "closed before a whole response: {text}");
        got.extend_from_slice(&chunk[..n]);
    }
}

/// Whether the server closes the connection (EOF) within a generous bound.
async fn closed(s: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await,
        Ok(Ok(0))
    )
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_finishes_requests_in_flight() {
    let a = upstream("a").await;
    let (edge, addr) = edge(&pool_config(&[(a.addr, 1)], "")).await;
    let request = b"GET /x HTTP/1.1\r\nHost: app\r\n\r\n";

    let mut idle = TcpStream::connect(addr).await.expect("connect");
    idle.write_all(request).await.expect("write");
    assert!(read_response(&mut idle).await.starts_with("HTTP/1.1 200"));

    let mut busy = TcpStream::connect(addr).await.expect("connect");
    busy.write_all(request).await.expect("write");
    assert!(read_response(&mut busy).await.starts_with("HTTP/1.1 200"));
    a.b.delay_ms.store(300, Ordering::SeqCst);
    busy.write_all(request).await.expect("write");
    // The slow request reaches the upstream before the shutdown starts.
    for _ in 0..200 {
        if a.hits() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(a.hits(), 3);

    let stopping = tokio::spawn({
        let edge = edge.clone();
        async move { edge.shutdown(Duration::from_secs(10)).await }
    });
    assert!(closed(&mut idle).await, "the idle connection is closed");
    let last = read_response(&mut busy).await;
    assert!(last.starts_with("HTTP/1.1 200"), "{last}");
    assert!(
        last.to_ascii_lowercase().contains("connection: close"),
        "{last}"
    );
    assert!(last.ends_with('a'), "{last}");
    assert!(closed(&mut busy).await, "closed after the last response");
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("shutdown returns")
        .expect("shutdown task");
}
