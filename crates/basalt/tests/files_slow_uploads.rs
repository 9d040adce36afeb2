//! Uploads are bounded by idleness, not total time: a multipart record write that keeps
//! sending outlives the request timeout, and one that stops sending for that long is
//! answered 408 with nothing stored. Run with a 2 s request timeout; bodies are sent by
//! hand over a raw socket so the test controls their pace.

use std::time::Duration;

use basalt_testkit::TestServer;
use basalt_testkit::multipart::BOUNDARY;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_basalt");

/// Sends a multipart create with one file of `chunks` × `chunk` bytes, pausing `pause`
/// before each chunk; answers the status line's code.
async fn slow_upload(s: &TestServer, chunks: usize, chunk: usize, pause: Duration) -> u16 {
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"slow.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{BOUNDARY}--\r\n");
    let len = head.len() + chunks * chunk + tail.len();
    let addr = s
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let req = format!(
        "POST /api/collections/docs/records HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len}\r\n\r\n{head}"
    );
    sock.write_all(req.as_bytes()).await.expect("head");
    for _ in 0..chunks {
        tokio::time::sleep(pause).await;
        if sock.write_all(&vec![b'x'; chunk]).await.is_err() {
            break;
        }
    }
    let _ = sock.write_all(tail.as_bytes()).await;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(30), sock.read(&mut buf))
        .await
        .expect("an answer within 30 s")
        .unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn an_upload_that_keeps_sending_outlives_the_request_timeout() {
    let s = TestServer::start_with_env(BIN, &[("BASALT_REQUEST_TIMEOUT", "2")]).await;
    let su = s.superuser_token().await;
    let (st, c) = s
        .call(
            "POST",
            "/api/collections",
            Some(&su),
            Some(json!({"name": "docs", "createRule": "",
            "fields": [{"name": "f", "type": "file", "maxSize": 10_000_000}]})),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    // 5 s of sending in all, never 2 s without a byte.
    assert_eq!(
        slow_upload(&s, 10, 1000, Duration::from_millis(500)).await,
        200
    );
    assert_eq!(s.stored_files().len(), 1);
    // Silent for longer than the timeout: 408, nothing stored.
    assert_eq!(slow_upload(&s, 2, 1000, Duration::from_secs(4)).await, 408);
    assert_eq!(s.stored_files().len(), 1);
    // Other requests keep the whole-request timeout: a JSON body that stalls is cut too.
    let addr = s
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    sock.write_all(
        format!(
            "POST /api/collections/docs/records HTTP/1.1\r\nHost: {addr}\r\n\
        Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .await
    .expect("head");
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(30), sock.read(&mut buf))
        .await
        .expect("answer")
        .unwrap_or(0);
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}
