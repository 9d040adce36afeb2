//! A request answered before its body was read (an upload refused as too large while it
//! still arrives) leaves the connection usable: the server reads what the handler left
//! (up to 256 KiB, as Go's server and so PocketBase do) and the client's next request on
//! the same connection gets its answer. Past that bound the answer says
//! `Connection: close`, so no client sends another request into a closing socket.

use std::time::Duration;

use basalt_testkit::TestServer;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_basalt");

async fn docs_server() -> (TestServer, u16) {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (st, v) = s
        .call(
            "POST",
            "/api/collections",
            Some(&su),
            Some(json!({"name": "docs", "createRule": "", "fields": [
                {"name": "one", "type": "file", "maxSelect": 1, "maxSize": 100}]})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let port = s
        .url("")
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .expect("port");
    (s, port)
}

/// Sends an upload of a `size`-byte file, its last bytes `pause` after the rest (as a
/// client writing its body in pieces does), and returns the answer's head.
async fn upload(conn: &mut TcpStream, size: usize, pause: Duration) -> String {
    let part = format!(
        "--b0undary\r\nContent-Disposition: form-data; name=\"one\"; filename=\"big.txt\"\r\n\
         Content-Type: text/plain\r\n\r\n{}",
        "x".repeat(size)
    );
    let tail = "\r\n--b0undary--\r\n";
    let head = format!(
        "POST /api/collections/docs/records HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: multipart/form-data; boundary=b0undary\r\nContent-Length: {}\r\n\r\n",
        part.len() + tail.len()
    );
    conn.write_all(format!("{head}{part}").as_bytes())
        .await
        .expect("send");
    tokio::time::sleep(pause).await;
    conn.write_all(tail.as_bytes()).await.expect("send the end");
    read_answer(conn).await
}

/// Reads one answer (head and its Content-Length body); returns the head.
async fn read_answer(conn: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut byte))
            .await
            .expect("an answer within 10 s")
            .expect("read");
        assert_eq!(
            n,
            1,
            "the connection closed mid-answer: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("content-length");
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).await.expect("body");
    head
}

#[tokio::test]
async fn a_refused_upload_leaves_the_connection_usable() {
    let (_s, port) = docs_server().await;
    let mut conn = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    for round in 0..3 {
        let head = upload(&mut conn, 200, Duration::from_millis(50)).await;
        assert!(head.starts_with("http/1.1 400"), "round {round}: {head}");
        assert!(!head.contains("connection: close"), "round {round}: {head}");
    }
    conn.write_all(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("send");
    let head = read_answer(&mut conn).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
}

#[tokio::test]
async fn a_large_refused_upload_says_the_connection_closes() {
    let (_s, port) = docs_server().await;
    for round in 0..5 {
        let conn = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let (mut rd, mut wr) = conn.into_split();
        let body = format!(
            "--b0undary\r\nContent-Disposition: form-data; name=\"one\"; filename=\"big.txt\"\r\n\
             Content-Type: text/plain\r\n\r\n{}\r\n--b0undary--\r\n",
            "x".repeat(700 * 1024)
        );
        let head = format!(
            "POST /api/collections/docs/records HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Content-Type: multipart/form-data; boundary=b0undary\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        // The client goes on sending while the answer comes; the write may fail once the
        // server has closed, the answer must still arrive.
        let writer = tokio::spawn(async move {
            let _ = wr.write_all(format!("{head}{body}").as_bytes()).await;
        });
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut answer)).await;
        writer.await.expect("writer");
        let text = String::from_utf8_lossy(&answer).to_lowercase();
        // Refused early: too large for the file field (400) or for the body limit (413).
        assert!(
            text.starts_with("http/1.1 400") || text.starts_with("http/1.1 413"),
            "round {round}: {text}"
        );
        assert!(text.contains("connection: close"), "round {round}: {text}");
    }
}

/// A client that asks `Expect: 100-continue` for a body refused unread is not told to
/// send it: the refusal comes at once and says the connection closes.
#[tokio::test]
async fn a_refused_expect_continue_body_is_not_asked_for() {
    let (_s, port) = docs_server().await;
    let mut conn = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let head = format!(
        "POST /api/collections/docs/records HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: multipart/form-data; boundary=b0undary\r\nExpect: 100-continue\r\n\
         Content-Length: {}\r\n\r\n",
        8 << 20
    );
    conn.write_all(head.as_bytes()).await.expect("send");
    let answer = read_answer(&mut conn).await;
    assert!(answer.starts_with("http/1.1 413"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
}
