//! HTTP/2 client streams proxied to an HTTP/1.1 upstream over the edge's raw upstream
//! connections (`h1::client`): every response framing decoded whole, connections reused
//! only when a response ended exactly, interim heads skipped, bad upstream framing a 502,
//! the request head as the upstream sees it, and a stream that ends early closing its
//! upstream connection.
//!
//! The client speaks h2c with prior knowledge; the upstream is the scripted raw one.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::support::h1_upstream::{RawUpstream, Seen, Step, mebibyte, ok, raw_upstream};
use crate::support::upstreams::{edge, pool_config};

/// Every wait in these tests ends by itself.
const PATIENCE: Duration = Duration::from_secs(10);

async fn h2(addr: SocketAddr) -> SendRequest<Empty<Bytes>> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    sender
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    /// The body, or why it did not end cleanly.
    body: Result<Vec<u8>, String>,
    trailers: Option<HeaderMap>,
}

async fn request(s: &mut SendRequest<Empty<Bytes>>, method: Method, path: &str) -> Answer {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://app.test{path}"))
        .body(Empty::new())
        .expect("request");
    let exchange = async {
        let resp = s.send_request(req).await.expect("h2 response");
        let (parts, body) = resp.into_parts();
        let (body, trailers) = match body.collect().await {
            Ok(c) => {
                let trailers = c.trailers().cloned();
                (Ok(c.to_bytes().to_vec()), trailers)
            }
            Err(e) => (Err(e.to_string()), None),
        };
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
            trailers,
        }
    };
    tokio::time::timeout(PATIENCE, exchange)
        .await
        .expect("answered in time")
}

async fn get(s: &mut SendRequest<Empty<Bytes>>, path: &str) -> Answer {
    request(s, Method::GET, path).await
}

/// The response head to `req`, within `PATIENCE`.
async fn response(
    s: &mut SendRequest<Empty<Bytes>>,
    req: Request<Empty<Bytes>>,
) -> http::Response<hyper::body::Incoming> {
    tokio::time::timeout(PATIENCE, s.send_request(req))
        .await
        .expect("in time")
        .expect("response")
}

/// The body of `GET path`, which must end cleanly.
async fn text(s: &mut SendRequest<Empty<Bytes>>, path: &str) -> String {
    let a = get(s, path).await;
    String::from_utf8(a.body.expect("a whole body")).expect("text")
}

/// `GET path` does not end cleanly: the stream is reset before or after its head.
async fn breaks(s: &mut SendRequest<Empty<Bytes>>, path: &str) -> bool {
    let req = Request::builder()
        .uri(format!("http://app.test{path}"))
        .body(Empty::new())
        .expect("request");
    let exchange = async {
        match s.send_request(req).await {
            Ok(resp) => resp.into_body().collect().await.is_err(),
            Err(_) => true,
        }
    };
    tokio::time::timeout(PATIENCE, exchange)
        .await
        .expect("ended in time")
}

/// An edge with one route to `up`, and an h2c connection to it.
async fn edge_and_client(up: &RawUpstream) -> (basalt_edge::Edge, SendRequest<Empty<Bytes>>) {
    let (edge, addr) = edge(&pool_config(&[(up.addr, 1)], "")).await;
    (edge, h2(addr).await)
}

fn send(bytes: impl Into<Vec<u8>>) -> Step {
    Step::Send(bytes.into())
}

/// `body` as chunks of varying sizes, with a chunk extension and a trailer field.
fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    let mut rest = body;
    let mut size = 1;
    while !rest.is_empty() {
        let n = size.min(rest.len());
        out.extend_from_slice(format!("{n:x};ext=1\r\n").as_bytes());
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
        size = size * 7 + 3;
    }
    out.extend_from_slice(b"0\r\nx-trailer: t\r\n\r\n");
    out
}

#[tokio::test]
async fn every_framing_arrives_whole_and_exact_ends_reuse_the_connection() {
    let big = mebibyte();
    let body = big.clone();
    let up = raw_upstream(move |seen: &Seen| match seen.head.target.as_str() {
        "/length" => {
            let mut out =
                format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
            out.extend_from_slice(&body);
            // Sent in pieces with pauses, so the body is read as it arrives.
            let (a, b) = out.split_at(100_000);
            vec![send(a), Step::Pause(Duration::from_millis(30)), send(b)]
        }
        "/chunked" => {
            let out = chunked(&body);
            let (a, b) = out.split_at(out.len() / 3);
            vec![send(a), Step::Pause(Duration::from_millis(30)), send(b)]
        }
        "/small" => ok("small"),
        "/empty" => vec![send("HTTP/1.1 204 No Content\r\n\r\n")],
        _ => {
            let mut out = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
            out.extend_from_slice(&body[..5000]);
            vec![send(out), Step::Close]
        }
    })
    .await;
    let (_edge, mut s) = edge_and_client(&up).await;
    for path in ["/length", "/chunked", "/small", "/empty", "/length"] {
        let a = get(&mut s, path).await;
        assert_eq!(a.status, 200 + 4 * u16::from(path == "/empty"), "{path}");
        let expected: &[u8] = match path {
            "/small" => b"small",
            "/empty" => b"",
            _ => &big,
        };
        assert!(a.body.as_deref() == Ok(expected), "{path}: body differs");
        assert!(!a.headers.contains_key("transfer-encoding"), "{path}");
        let trailer = a.trailers.as_ref().and_then(|t| t.get("x-trailer"));
        assert_eq!(
            trailer.is_some(),
            path == "/chunked",
            "{path}: trailer fields pass"
        );
    }
    assert_eq!(
        up.accepted(),
        1,
        "each response ended exactly, so one connection"
    );
    // A body delimited by the close arrives whole, and its connection is not reused.
    let a = get(&mut s, "/close").await;
    assert_eq!(a.body.as_deref().map(<[u8]>::len), Ok(5000));
    assert_eq!(text(&mut s, "/small").await, "small");
    assert_eq!(up.accepted(), 2);
}

#[tokio::test]
async fn interim_heads_are_skipped_and_head_requests_get_no_body() {
    let up = raw_upstream(|seen: &Seen| match seen.head.method.as_str() {
        "HEAD" => vec![send("HTTP/1.1 200 OK\r\ncontent-length: 1234\r\nx-kind: head\r\n\r\n")],
        _ => vec![send(
            "HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-kind: final\r\n\r\nfinal",
        )],
    })
    .await;
    let (_edge, mut s) = edge_and_client(&up).await;
    let a = get(&mut s, "/hints").await;
    assert_eq!(
        (a.status, a.body.as_deref()),
        (StatusCode::OK, Ok(&b"final"[..]))
    );
    assert_eq!(a.headers["x-kind"], "final");
    let a = request(&mut s, Method::HEAD, "/head").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["content-length"], "1234");
    assert_eq!(a.body.as_deref(), Ok(&b""[..]));
    assert_eq!(text(&mut s, "/again").await, "final");
    assert_eq!(up.accepted(), 1);
}

#[tokio::test]
async fn bad_upstream_framing_is_a_502_and_its_connection_is_dropped() {
    let up = raw_upstream(|seen: &Seen| match seen.head.target.as_str() {
        "/both" => vec![send(
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
        )],
        "/two-lengths" => vec![send(
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello",
        )],
        "/garbage" => vec![send("HTTP/1.1 two hundred\r\n\r\n")],
        "/switch" => vec![send(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n",
        )],
        "/bad-chunk" => vec![send(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        )],
        _ => ok("fine"),
    })
    .await;
    let (_edge, mut s) = edge_and_client(&up).await;
    for path in ["/both", "/two-lengths", "/garbage", "/switch"] {
        let a = get(&mut s, path).await;
        assert_eq!(a.status, 502, "{path}");
        let body: serde_json::Value =
            serde_json::from_slice(a.body.as_deref().expect("body")).expect("json");
        assert_eq!(body["status"], 502, "{path}");
    }
    // Broken chunk framing after the head: the stream ends in an error, not a clean end.
    assert!(
        breaks(&mut s, "/bad-chunk").await,
        "a broken body must not look complete"
    );
    assert_eq!(text(&mut s, "/ok").await, "fine");
    assert_eq!(
        up.accepted(),
        6,
        "no refused response's connection was reused"
    );
}

#[tokio::test]
async fn an_upstream_closing_mid_body_or_sending_extra_bytes() {
    let up = raw_upstream(|seen: &Seen| match seen.head.target.as_str() {
        "/short" => vec![
            send("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b"),
            Step::Close,
        ],
        "/extra" => vec![send(
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n",
        )],
        _ => ok("fine"),
    })
    .await;
    let (_edge, mut s) = edge_and_client(&up).await;
    assert!(
        breaks(&mut s, "/short").await,
        "a cut body must not look complete"
    );
    // Bytes nobody asked for after a body: the answer stands, the connection is not reused.
    assert_eq!(text(&mut s, "/extra").await, "ok");
    assert_eq!(text(&mut s, "/next").await, "fine");
    assert_eq!(up.accepted(), 3);
}

#[tokio::test]
async fn the_upstream_sees_an_http11_head_with_forwarding_headers() {
    let up = raw_upstream(|_: &Seen| ok("ok")).await;
    let (_edge, mut s) = edge_and_client(&up).await;
    let req = Request::builder()
        .method(Method::POST)
        .uri("http://app.test/p?q=1")
        .header("x-custom", "a")
        .header("x-custom", "b")
        .header("te", "trailers")
        .body(Empty::new())
        .expect("request");
    let resp = response(&mut s, req).await;
    assert_eq!(resp.status(), 200);
    let seen = up.seen();
    let head = &seen[0].head;
    assert_eq!(
        (head.method.as_str(), head.target.as_str()),
        ("POST", "/p?q=1")
    );
    assert_eq!(head.text("host"), "app.test");
    assert_eq!(head.text("x-forwarded-for"), "127.0.0.1");
    assert_eq!(head.text("x-forwarded-proto"), "http");
    assert_eq!(head.text("x-forwarded-host"), "app.test");
    assert_eq!(
        head.text("content-length"),
        "0",
        "an empty POST body is framed"
    );
    assert_eq!(head.count("x-custom"), 2);
    assert!(!head.has("te"), "hop-by-hop headers stay on their hop");
}

#[tokio::test]
async fn a_stream_abandoned_mid_body_closes_its_upstream_connection() {
    let up = raw_upstream(|seen: &Seen| match seen.head.target.as_str() {
        "/endless" => vec![
            send("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"),
            Step::Stream {
                every: Duration::from_millis(5),
                chunk: b"400\r\n"
                    .iter()
                    .copied()
                    .chain([b'x'; 1024])
                    .chain(*b"\r\n")
                    .collect(),
            },
        ],
        _ => ok("fine"),
    })
    .await;
    let (_edge, mut s) = edge_and_client(&up).await;
    let req = Request::builder()
        .uri("http://app.test/endless")
        .body(Empty::new())
        .expect("request");
    let resp = response(&mut s, req).await;
    let mut body = resp.into_body();
    let first = tokio::time::timeout(PATIENCE, body.frame())
        .await
        .expect("a frame in time");
    assert!(first.is_some_and(|f| f.is_ok()));
    drop(body); // resets the stream
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !up.log.stream_cut.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the upstream connection stayed open"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The next request gets a fresh connection and a clean answer.
    assert_eq!(text(&mut s, "/ok").await, "fine");
    assert_eq!(up.accepted(), 2);
}

/// The first connection answers `/first`, then closes under whatever comes next without
/// a byte of an answer: the keep-alive race every proxy meets, made certain.
fn closes_after_first(seen: &Seen) -> Vec<Step> {
    if seen.conn == 0 && seen.head.target != "/first" {
        vec![Step::Close]
    } else {
        ok("fresh")
    }
}

#[tokio::test]
async fn a_reused_connection_closed_under_a_request_is_replaced_only_for_idempotent_methods() {
    let up = raw_upstream(closes_after_first).await;
    let (_edge, mut s) = edge_and_client(&up).await;
    assert_eq!(text(&mut s, "/first").await, "fresh");
    let a = get(&mut s, "/again").await;
    assert_eq!(
        (a.status, a.body.as_deref()),
        (StatusCode::OK, Ok(&b"fresh"[..]))
    );
    let seen: Vec<(usize, String)> = up
        .seen()
        .iter()
        .map(|s| (s.conn, s.head.target.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (0, "/first".into()),
            (0, "/again".into()),
            (1, "/again".into())
        ]
    );

    // A POST may have been acted on: it is not sent again.
    let up = raw_upstream(closes_after_first).await;
    let (_edge, mut s) = edge_and_client(&up).await;
    assert_eq!(get(&mut s, "/first").await.status, 200);
    assert_eq!(request(&mut s, Method::POST, "/post").await.status, 502);
    assert_eq!(up.requests(), 2, "the POST was not sent twice");
}
