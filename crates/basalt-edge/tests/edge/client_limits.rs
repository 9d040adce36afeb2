//! Client limits the framing guard cannot see: HTTP/2 connections that never complete a
//! request, and chunked (length-less) request bodies over the body limit.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::upstreams::{self, edge, pool_config, upstream};
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Reads until the peer closes; true when it closed within `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// The HTTP/2 client preface, an empty SETTINGS frame, then the first 10 bytes of a
/// HEADERS frame announcing 100.
fn h2_preface_and_partial_headers() -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&[0, 0, 100, 0x1, 0x4, 0, 0, 0, 1]);
    out.extend_from_slice(&[0x82; 10]);
    out
}

/// Regression (issue #6): an h2c connection stalled inside its first HEADERS frame was held
/// open forever; it now closes after the header timeout and the upstream sees nothing.
#[tokio::test]
async fn h2_connection_stalled_in_headers_is_closed() {
    let a = upstream("a").await;
    let (_edge, addr) = edge(&format!(
        "{}\n[edge.limits]\nheader_timeout_ms = 300\nidle_timeout_ms = 600\n",
        pool_config(&[(a.addr, 1)], "")
    ))
    .await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(&h2_preface_and_partial_headers())
        .await
        .expect("write");
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
    // A preface alone (no request ever) closes too.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .expect("write");
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
    assert_eq!(a.hits(), 0);
}

/// An h2 request slower than the header and idle timeouts is answered (in flight is not
/// idle), and an h2 connection left idle afterwards is closed.
#[tokio::test]
async fn h2_slow_response_is_kept_and_idle_connection_closed() {
    let a = upstream("a").await;
    a.b.delay_ms.store(900, Ordering::SeqCst);
    let (_edge, addr) = edge(&format!(
        "{}\n[edge.limits]\nheader_timeout_ms = 300\nidle_timeout_ms = 400\n",
        pool_config(&[(a.addr, 1)], "")
    ))
    .await;
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    let ended = tokio::spawn(conn);
    let req = hyper::Request::builder()
        .uri(format!("http://127.0.0.1:{}/slow", addr.port()))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
        .await
        .expect("answered in time")
        .expect("h2 response");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-upstream"], "a");
    drop(resp);
    // Idle from now on: the edge ends the connection, which ends the client's driver.
    let end = tokio::time::timeout(Duration::from_secs(5), ended).await;
    assert!(end.is_ok(), "idle h2 connection was not closed");
}

/// A raw HTTP/1.1 upstream that answers 200 to a complete chunked request and records how
/// many bytes it received after the request head.
async fn counting_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let body_bytes = Arc::new(AtomicUsize::new(0));
    let counted = body_bytes.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
                    let n = match read {
                        Ok(Ok(n)) if n > 0 => n,
                        _ => break,
                    };
                    seen.extend_from_slice(&buf[..n]);
                    if seen.ends_with(b"0\r\n\r\n") {
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .await;
                        seen.clear();
                    }
                    let head = seen.windows(4).position(|w| w == b"\r\n\r\n");
                    if let Some(h) = head {
                        counted.fetch_max(seen.len() - h - 4, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    (addr, body_bytes)
}

/// Regression (issue #6): a chunked body over `max_body_bytes` was answered 502 (the cut-off
/// body failed the upstream request); it is a 413, the upstream never gets the excess and
/// the target is not blamed.
#[tokio::test]
async fn oversized_chunked_body_is_413_and_never_forwarded_whole() {
    let (up, body_bytes) = counting_upstream().await;
    let (_edge, addr) = edge(&format!(
        "{}\n[edge.limits]\nmax_body_bytes = 1000\n",
        pool_config(&[(up, 1)], "")
    ))
    .await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .expect("write head");
    let chunk = format!("64\r\n{}\r\n", "c".repeat(100));
    // 5000 bytes in 50 chunks; the edge may stop reading (and close) once it has answered.
    for _ in 0..50 {
        if s.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            if out.windows(4).any(|w| w == b"\r\n\r\n") && out.ends_with(b"}") {
                break;
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413"), "got: {text}");
    assert!(text.contains("\"status\":413"), "got: {text}");
    // Chunk framing adds 6 bytes per 100 data bytes: 1000 data bytes are at most 1060.
    let forwarded = body_bytes.load(Ordering::SeqCst);
    assert!(forwarded <= 1060, "upstream got {forwarded} body bytes");
    // The target was not ejected for the client's fault: a small chunked body still passes.
    let small = b"POST /ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
    let text = upstreams::raw(addr, small).await;
    assert!(text.starts_with("HTTP/1.1 200"), "got: {text}");
}
