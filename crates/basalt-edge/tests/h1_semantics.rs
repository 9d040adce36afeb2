//! The HTTP/1.1 proxying contract on the wire: response framings delivered intact with the
//! client connection kept alive, bodiless and interim responses, bad upstream framing,
//! pipelining and request bodies, hop-by-hop and forwarding headers, upstream failures
//! and closes, a client leaving mid-stream, and the edge's own errors on keep-alive.
//!
//! Every test runs the edge in front of a scripted upstream that sees and sends raw bytes,
//! and talks to the edge over a raw socket; every read is bounded (see `h1_wire`).

mod common;
#[path = "common/h1_upstream.rs"]
mod h1_upstream;
#[path = "common/h1_wire.rs"]
mod h1_wire;

use std::net::SocketAddr;
use std::time::Duration;

use common::{edge, pool_config};
use h1_upstream::{RawUpstream, Seen, Step, ok, raw_upstream, slamming_upstream};
use h1_wire::{Framing, Response, Wire};

/// An edge with one route to `up` and the given extra pool settings.
async fn edge_for(up: &RawUpstream, pool_extra: &str) -> (basalt_edge::Edge, SocketAddr) {
    edge(&pool_config(&[(up.addr, 1)], pool_extra)).await
}

fn send(bytes: impl Into<Vec<u8>>) -> Step {
    Step::Send(bytes.into())
}

/// 1 MiB that is not periodic over short spans, so a dropped or repeated piece shows.
fn mebibyte() -> Vec<u8> {
    (0..1usize << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// The upstream for the framing tests: the response shape is chosen by the path; any other
/// path is answered `next` with a length.
fn framings(seen: &Seen) -> Vec<Step> {
    match seen.head.target.as_str() {
        "/length" => ok("hello, length"),
        "/chunked" => vec![send(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-sum\r\n\r\n\
             5;name=value\r\nhello\r\n8;quoted=\"a;b\"\r\n, chunks\r\n0\r\nx-sum: 13\r\n\r\n",
        )],
        "/until-close" => vec![
            send("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nno length, "),
            Step::Pause(Duration::from_millis(30)),
            send("then close"),
            Step::Close,
        ],
        "/mebibyte" => {
            let body = mebibyte();
            let mut bytes =
                format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
            bytes.extend_from_slice(&body);
            vec![Step::Send(bytes)]
        }
        "/trickle" => {
            // The head split mid-line and the body in 25 pieces of 4 bytes, with pauses.
            let mut steps = vec![
                send("HTTP/1.1 200 OK\r\ncont"),
                Step::Pause(Duration::from_millis(15)),
                send("ent-length: 100\r\n"),
                Step::Pause(Duration::from_millis(15)),
                send("\r\n"),
            ];
            for i in 0..25 {
                steps.push(Step::Pause(Duration::from_millis(8)));
                steps.push(send(format!("{i:03}.")));
            }
            steps
        }
        _ => ok("next"),
    }
}

fn trickled_body() -> String {
    (0..25).map(|i| format!("{i:03}.")).collect()
}

/// One framing case: the body arrives whole, then the same client connection serves
/// another request (unless the edge delimited the body by closing, which then must close).
async fn framing_case(path: &str, expected: &[u8]) {
    let up = raw_upstream(framings).await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    let r = c.get(path).await;
    assert_eq!(r.status(), 200, "{path}: {:?}", r.head);
    assert_eq!(r.body.len(), expected.len(), "{path}: body length");
    assert!(r.body == expected, "{path}: body differs");
    if r.framing == Framing::UntilClose {
        assert!(c.closes_within(Duration::from_secs(5)).await);
        return;
    }
    let next = c.get("/next").await;
    assert_eq!(
        (next.status(), next.body_text().as_str()),
        (200, "next"),
        "{path}: second request on the same connection"
    );
    assert_eq!(up.requests(), 2);
}

#[tokio::test]
async fn content_length_body_then_keep_alive() {
    framing_case("/length", b"hello, length").await;
}

#[tokio::test]
async fn chunked_body_with_extensions_and_trailers_then_keep_alive() {
    framing_case("/chunked", b"hello, chunks").await;
}

/// Today the edge re-frames a close-delimited upstream body as chunked and keeps the
/// client connection; closing after it would satisfy the contract too.
#[tokio::test]
async fn close_delimited_body_arrives_whole() {
    framing_case("/until-close", b"no length, then close").await;
}

#[tokio::test]
async fn one_mebibyte_body_is_byte_exact() {
    framing_case("/mebibyte", &mebibyte()).await;
}

#[tokio::test]
async fn body_written_in_small_pieces_with_pauses_arrives_whole() {
    framing_case("/trickle", trickled_body().as_bytes()).await;
}

#[tokio::test]
async fn head_response_with_content_length_has_no_body() {
    let up = raw_upstream(|seen| match seen.head.method.as_str() {
        "HEAD" => vec![send(
            "HTTP/1.1 200 OK\r\ncontent-length: 1234\r\ncontent-type: text/plain\r\n\r\n",
        )],
        _ => ok("after head"),
    })
    .await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    for round in 0..2 {
        c.send(b"HEAD /doc HTTP/1.1\r\nHost: edge.test\r\n\r\n")
            .await;
        let r = c.response("HEAD").await;
        assert_eq!(r.status(), 200, "round {round}");
        assert!(
            c.buf.is_empty(),
            "body bytes after a HEAD answer: {:?}",
            c.buf
        );
        // The next response starts right where the HEAD answer's head ended.
        let next = c.get("/after").await;
        assert_eq!(next.status(), 200, "round {round}");
        assert_eq!(next.body_text(), "after head");
    }
    // The upstream side was not left waiting for 1234 body bytes either: one connection
    // served all four requests.
    assert_eq!(up.requests(), 4);
    assert_eq!(up.accepted(), 1);
}

#[tokio::test]
async fn no_content_and_not_modified_have_no_body() {
    let up = raw_upstream(|seen| match seen.head.target.as_str() {
        "/204" => vec![send("HTTP/1.1 204 No Content\r\nx-kind: empty\r\n\r\n")],
        // A 304 may carry the length of the representation it stands for: no body follows.
        "/304" => vec![send(
            "HTTP/1.1 304 Not Modified\r\netag: \"v1\"\r\ncontent-length: 42\r\n\r\n",
        )],
        _ => ok("after"),
    })
    .await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    for path in ["/204", "/304", "/204"] {
        let r = c.get(path).await;
        assert_eq!(r.status().to_string(), path[1..], "{:?}", r.head);
        assert!(r.body.is_empty());
        assert!(!r.head.has("transfer-encoding"), "{path}: {:?}", r.head);
        let next = c.get("/after").await;
        assert_eq!((next.status(), next.body_text().as_str()), (200, "after"));
    }
    let r = c.get("/304").await;
    assert_eq!(r.head.text("etag"), "\"v1\"");
}

#[tokio::test]
async fn early_hints_then_the_final_response() {
    let up = raw_upstream(|seen| match seen.head.target.as_str() {
        "/hints" => vec![
            send("HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"),
            Step::Pause(Duration::from_millis(20)),
            send("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal"),
        ],
        _ => ok("next"),
    })
    .await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    let r = c.get("/hints").await;
    assert_eq!((r.status(), r.body_text().as_str()), (200, "final"));
    let next = c.get("/next").await;
    assert_eq!((next.status(), next.body_text().as_str()), (200, "next"));
}

/// A complete fake response: a proxy that framed the body below by its `Content-Length`
/// instead of its chunks would hand these bytes to the client as the next response.
const SMUGGLED: &str = "HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nSMUGGLED";

/// Upstream responses whose framing conflicts: a length together with chunked coding
/// (in either order), two different lengths, a list of lengths.
fn conflicting(seen: &Seen) -> Vec<Step> {
    let chunk = format!("{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n", SMUGGLED.len());
    let bytes = match seen.head.target.as_str() {
        "/length-0-and-chunked" => format!(
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\ntransfer-encoding: chunked\r\n\r\n{chunk}"
        ),
        "/chunked-and-length-3" => format!(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n{chunk}"
        ),
        "/length-100-and-chunked" => format!(
            "HTTP/1.1 200 OK\r\ncontent-length: 100\r\ntransfer-encoding: chunked\r\n\r\n{chunk}"
        ),
        "/two-lengths" => {
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!".into()
        }
        "/length-list" => "HTTP/1.1 200 OK\r\ncontent-length: 5, 6\r\n\r\nhello!".into(),
        _ => return ok("next"),
    };
    vec![Step::Send(bytes.into_bytes())]
}

fn assert_pocketbase_error(r: &Response, status: u16) {
    assert_eq!(r.status(), status, "{:?}", r.head);
    let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json error body");
    assert_eq!(body["status"], status);
    assert!(body["message"].is_string(), "{body}");
    assert!(body["data"].is_object(), "{body}");
}

/// After a response, the same client connection answers the next request with the
/// upstream's genuine answer to it and nothing else.
async fn next_is_genuine(c: &mut Wire, context: &str) {
    let next = c.get("/next").await;
    assert_eq!(
        (next.status(), next.body_text().as_str()),
        (200, "next"),
        "{context}: the response after it"
    );
    assert!(
        c.buf.is_empty(),
        "{context}: stray bytes {:?}",
        String::from_utf8_lossy(&c.buf)
    );
}

/// Two different lengths are a 502 in PocketBase's shape and the connection lives on.
#[tokio::test]
async fn conflicting_upstream_lengths_are_a_502() {
    let up = raw_upstream(conflicting).await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    for path in ["/two-lengths", "/length-list"] {
        let r = c.get(path).await;
        assert_pocketbase_error(&r, 502);
        next_is_genuine(&mut c, path).await;
    }
}

/// Length plus chunked never desynchronises the client: the bytes inside the chunk never
/// surface as a response of their own, and the next request gets its own answer. Two
/// outcomes keep that: a 502 (what `length_and_chunked_from_upstream_is_a_502` wants), or
/// today's, which decodes the chunks (the upstream connection stays in step) but forwards
/// the upstream's `Content-Length`, so the body is cut to it, or, when the length is
/// longer than the chunks, the connection closes after them.
#[tokio::test]
async fn length_and_chunked_from_upstream_never_desync_the_client() {
    let up = raw_upstream(conflicting).await;
    let (_edge, addr) = edge_for(&up, "").await;
    for (path, length) in [
        ("/length-0-and-chunked", 0),
        ("/chunked-and-length-3", 3),
        ("/length-100-and-chunked", 100),
    ] {
        let mut c = Wire::connect(addr).await;
        c.send(format!("GET {path} HTTP/1.1\r\nHost: edge.test\r\n\r\n").as_bytes())
            .await;
        match c.try_response("GET").await {
            Ok(r) if r.status() == 502 => assert_pocketbase_error(&r, 502),
            Ok(r) => {
                assert_eq!(r.status(), 200, "{path}");
                assert!(
                    length <= SMUGGLED.len(),
                    "{path}: complete though cut short"
                );
                assert_eq!(r.head.text("content-length"), length.to_string(), "{path}");
                assert_eq!(r.body, SMUGGLED.as_bytes()[..length], "{path}");
            }
            Err(e) => {
                assert!(length > SMUGGLED.len(), "{path}: {e:?}");
                assert_eq!(e, h1_wire::Ended::Closed, "{path}");
                continue;
            }
        }
        next_is_genuine(&mut c, path).await;
    }
}

#[tokio::test]
#[ignore = "bug: an upstream response with both Content-Length and Transfer-Encoding: chunked \
            is forwarded with its Content-Length (only Transfer-Encoding is stripped), so the \
            client gets a 200 whose decoded body is silently cut to that length (RFC 9112 6.3: \
            remove the Content-Length or treat the response as an error)"]
async fn length_and_chunked_from_upstream_is_a_502() {
    let up = raw_upstream(conflicting).await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    for path in ["/length-0-and-chunked", "/chunked-and-length-3"] {
        let r = c.get(path).await;
        assert_pocketbase_error(&r, 502);
        next_is_genuine(&mut c, path).await;
    }
}

/// Echoes the request target as the body; a HEAD gets the length of that body only.
fn echo_target(seen: &Seen) -> Vec<Step> {
    let target = &seen.head.target;
    match seen.head.method.as_str() {
        "HEAD" => vec![send(format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
            target.len()
        ))],
        _ => ok(target),
    }
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let up = raw_upstream(echo_target).await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    c.send(
        b"GET /one HTTP/1.1\r\nHost: edge.test\r\n\r\nHEAD /two HTTP/1.1\r\nHost: edge.test\r\n\r\nGET /three HTTP/1.1\r\nHost: edge.test\r\n\r\n",
    )
    .await;
    let one = c.response("GET").await;
    let two = c.response("HEAD").await;
    let three = c.response("GET").await;
    assert_eq!((one.status(), one.body_text().as_str()), (200, "/one"));
    assert_eq!(two.status(), 200);
    assert_eq!(
        (three.status(), three.body_text().as_str()),
        (200, "/three")
    );
    next_is_genuine_echo(&mut c).await;
    let order: Vec<String> = up.seen().iter().map(|s| s.head.target.clone()).collect();
    assert_eq!(order, ["/one", "/two", "/three", "/four"]);
}

async fn next_is_genuine_echo(c: &mut Wire) {
    let four = c.get("/four").await;
    assert_eq!((four.status(), four.body_text().as_str()), (200, "/four"));
    assert!(c.buf.is_empty(), "stray bytes {:?}", c.buf);
}

#[tokio::test]
async fn a_request_body_sent_in_pieces_reaches_the_upstream_byte_exact() {
    let up = raw_upstream(|seen| ok(&seen.body.len().to_string())).await;
    let (_edge, addr) = edge_for(&up, "").await;
    let body: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut c = Wire::connect(addr).await;
    c.send(
        format!(
            "POST /upload HTTP/1.1\r\nHost: edge.test\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await;
    for piece in body.chunks(500) {
        tokio::time::sleep(Duration::from_millis(15)).await;
        c.send(piece).await;
    }
    let r = c.final_response("POST").await;
    assert_eq!((r.status(), r.body_text().as_str()), (200, "3000"));
    let next = c.get("/next").await;
    assert_eq!(next.status(), 200);
    let seen = up.seen();
    assert!(seen[0].body == body, "the upstream got a different body");
    assert_eq!(seen[0].head.text("content-length"), "3000");
    assert!(!seen[0].head.has("transfer-encoding"));
}

#[tokio::test]
async fn get_then_chunked_post_then_get_on_one_connection() {
    let up = raw_upstream(|seen| ok(&format!("{} {}", seen.head.target, seen.body.len()))).await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    let first = c.get("/first").await;
    assert_eq!(first.body_text(), "/first 0");
    c.send(b"POST /chunked HTTP/1.1\r\nHost: edge.test\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n")
        .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    c.send(b"3;ext=1\r\nefg\r\n0\r\nx-trailer: 1\r\n\r\n").await;
    let post = c.final_response("POST").await;
    assert_eq!(
        (post.status(), post.body_text().as_str()),
        (200, "/chunked 7")
    );
    let last = c.get("/last").await;
    assert_eq!(last.body_text(), "/last 0");
    assert_eq!(up.seen()[1].body, b"abcdefg");
}

#[tokio::test]
async fn connection_close_from_the_client_closes_after_the_response() {
    let up = raw_upstream(echo_target).await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    c.send(b"GET /bye HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n\r\n")
        .await;
    let r = c.response("GET").await;
    assert_eq!((r.status(), r.body_text().as_str()), (200, "/bye"));
    assert!(
        r.head.text("connection").eq_ignore_ascii_case("close"),
        "{:?}",
        r.head
    );
    assert!(c.closes_within(Duration::from_secs(5)).await);
    assert!(c.buf.is_empty());
}

/// An HTTP/1.0 client without keep-alive gets its response unchunked (it could not read
/// chunks) even when the upstream answers chunked, then the connection closes.
#[tokio::test]
async fn http10_without_keep_alive_gets_an_unchunked_response_then_close() {
    let up = raw_upstream(|_| {
        vec![send(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\nold, s\r\n5\r\nchool\r\n0\r\n\r\n",
        )]
    })
    .await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    c.send(b"GET /old HTTP/1.0\r\nHost: edge.test\r\n\r\n")
        .await;
    let r = c.response("GET").await;
    assert_eq!((r.status(), r.body_text().as_str()), (200, "old, school"));
    assert_ne!(r.framing, Framing::Chunked, "{:?}", r.head);
    assert!(!r.head.has("transfer-encoding"));
    if r.framing != Framing::UntilClose {
        assert!(c.closes_within(Duration::from_secs(5)).await);
    }
    assert_eq!(up.seen()[0].head.target, "/old");
}

/// Answers `ok` and keeps what it was sent for the test to inspect.
fn answer_ok(_: &Seen) -> Vec<Step> {
    ok("ok")
}

#[tokio::test]
async fn hop_by_hop_request_headers_never_reach_the_upstream() {
    let up = raw_upstream(answer_ok).await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    c.send(
        b"GET /h HTTP/1.1\r\nHost: front.test\r\nConnection: keep-alive, X-Conn-Listed\r\n\
          X-Conn-Listed: secret\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n\
          TE: trailers\r\nTrailer: x-t\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\n\
          X-Kept: yes\r\n\r\n",
    )
    .await;
    assert_eq!(c.final_response("GET").await.status(), 200);
    // Upgrade on a request that is not an upgrade (not a GET) is hop-by-hop too.
    c.send(b"POST /u HTTP/1.1\r\nHost: front.test\r\nUpgrade: websocket\r\nContent-Length: 2\r\n\r\nhi")
        .await;
    assert_eq!(c.final_response("POST").await.status(), 200);
    next_is_genuine_ok(&mut c).await;
    let seen = up.seen();
    for (i, s) in seen.iter().enumerate() {
        for name in [
            "x-conn-listed",
            "keep-alive",
            "proxy-connection",
            "te",
            "trailer",
            "proxy-authorization",
            "upgrade",
        ] {
            assert!(
                !s.head.has(name),
                "request {i}: {name} forwarded: {:?}",
                s.head
            );
        }
        // The edge may speak for its own connection, never repeat the client's list.
        let connection = s.head.text("connection").to_ascii_lowercase();
        assert!(
            connection.is_empty() || connection == "keep-alive",
            "request {i}: {:?}",
            s.head
        );
    }
    assert_eq!(seen[0].head.text("x-kept"), "yes");
    assert_eq!(seen[1].body, b"hi");
}

async fn next_is_genuine_ok(c: &mut Wire) {
    let r = c.get("/again").await;
    assert_eq!((r.status(), r.body_text().as_str()), (200, "ok"));
    assert!(c.buf.is_empty(), "stray bytes {:?}", c.buf);
}

#[tokio::test]
async fn forwarding_headers_on_the_wire() {
    let up = raw_upstream(answer_ok).await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    c.send(
        b"GET /f HTTP/1.1\r\nHost: front.test:8080\r\nX-Forwarded-For: 198.51.100.7\r\n\
          X-Forwarded-Host: evil.test\r\nX-Forwarded-Proto: https\r\n\r\n",
    )
    .await;
    assert_eq!(c.final_response("GET").await.status(), 200);
    c.send(b"GET /g HTTP/1.1\r\nHost: other.test\r\n\r\n").await;
    assert_eq!(c.final_response("GET").await.status(), 200);
    let seen = up.seen();
    let first = &seen[0].head;
    for name in [
        "host",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
    ] {
        assert_eq!(first.count(name), 1, "{name}: {first:?}");
    }
    assert_eq!(first.text("host"), "front.test:8080");
    assert_eq!(first.text("x-forwarded-for"), "198.51.100.7, 127.0.0.1");
    assert_eq!(first.text("x-forwarded-host"), "front.test:8080");
    assert_eq!(first.text("x-forwarded-proto"), "http");
    let second = &seen[1].head;
    assert_eq!(second.text("host"), "other.test");
    assert_eq!(second.text("x-forwarded-for"), "127.0.0.1");
    assert_eq!(second.text("x-forwarded-host"), "other.test");
    assert_eq!(second.text("x-forwarded-proto"), "http");
}

#[tokio::test]
async fn hop_by_hop_response_headers_never_reach_the_client() {
    let up = raw_upstream(|_| {
        vec![send(
            "HTTP/1.1 200 OK\r\nConnection: X-Secret, keep-alive\r\nX-Secret: 1\r\n\
             Keep-Alive: timeout=5, max=100\r\nUpgrade: h2c\r\nX-Visible: yes\r\n\
             Content-Length: 2\r\n\r\nok",
        )]
    })
    .await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    for round in 0..3 {
        let r = c.get("/r").await;
        assert_eq!((r.status(), r.body_text().as_str()), (200, "ok"));
        for name in ["x-secret", "keep-alive", "upgrade"] {
            assert!(!r.head.has(name), "round {round}: {name}: {:?}", r.head);
        }
        let connection = r.head.text("connection").to_ascii_lowercase();
        assert!(
            connection.is_empty() || connection == "keep-alive",
            "{:?}",
            r.head
        );
        assert_eq!(r.head.text("x-visible"), "yes");
    }
    // The upstream's `keep-alive` token kept its connection: one served all three.
    assert_eq!(up.accepted(), 1);
}

#[tokio::test]
async fn strip_prefix_rewrites_the_path_on_the_wire() {
    let up = raw_upstream(echo_target).await;
    let toml = format!(
        "[edge]\n[[edge.listeners]]\nlisten = \"127.0.0.1:0\"\n\
         [[edge.routes]]\nname = \"app\"\npath_prefix = \"/app\"\nstrip_prefix = true\npool = \"p\"\n\
         [[edge.routes]]\nname = \"rest\"\npath_prefix = \"/\"\npool = \"p\"\n\
         [edge.pools.p]\ntargets = [{{ address = \"{}\" }}]\n",
        up.addr
    );
    let (_edge, addr) = edge(&toml).await;
    let mut c = Wire::connect(addr).await;
    for (sent, forwarded) in [
        ("/app/x", "/x"),
        ("/app/x/y?q=1&r=%20s", "/x/y?q=1&r=%20s"),
        ("/app", "/"),
        ("/app?q=1", "/?q=1"),
        ("/app/", "/"),
        ("/apple?q=1", "/apple?q=1"),
        ("/other", "/other"),
    ] {
        let r = c.get(sent).await;
        assert_eq!(
            (r.status(), r.body_text().as_str()),
            (200, forwarded),
            "{sent}"
        );
    }
}

#[tokio::test]
async fn obs_text_header_values_pass_byte_exact_both_ways() {
    let up = raw_upstream(|_| {
        let mut head =
            b"HTTP/1.1 200 OK\r\nX-Obs-Back: \xe9t\xe9 \x80\xff!\r\nX-MiXeD-BaCk: v\r\n".to_vec();
        head.extend_from_slice(b"Content-Length: 2\r\n\r\nok");
        vec![Step::Send(head)]
    })
    .await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    c.send(b"GET /o HTTP/1.1\r\nHost: edge.test\r\nX-Obs: caf\xe9 \x80\xff end\r\nX-MiXeD-CaSe: v\r\n\r\n")
        .await;
    let r = c.final_response("GET").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.head.get("x-obs-back"), Some(&b"\xe9t\xe9 \x80\xff!"[..]));
    assert_eq!(r.head.text("x-mixed-back"), "v");
    let seen = up.seen();
    assert_eq!(
        seen[0].head.get("x-obs"),
        Some(&b"caf\xe9 \x80\xff end"[..])
    );
    assert_eq!(seen[0].head.text("x-mixed-case"), "v");
    next_is_genuine_ok(&mut c).await;
}

/// Routes `/bad...` to pool `bad` at `bad` and everything else to pool `good` at `good`.
fn two_pools(bad: SocketAddr, good: SocketAddr, bad_extra: &str) -> String {
    format!(
        "[edge]\n[[edge.listeners]]\nlisten = \"127.0.0.1:0\"\n\
         [[edge.routes]]\nname = \"bad\"\npath_prefix = \"/bad\"\npool = \"bad\"\n\
         [[edge.routes]]\nname = \"good\"\npath_prefix = \"/\"\npool = \"good\"\n\
         [edge.pools.bad]\ntargets = [{{ address = \"{bad}\" }}]\n{bad_extra}\n\
         [edge.pools.good]\ntargets = [{{ address = \"{good}\" }}]\n"
    )
}

#[tokio::test]
async fn an_upstream_closing_without_an_answer_is_a_502_and_the_connection_lives() {
    let bad = slamming_upstream().await;
    let good = raw_upstream(answer_ok).await;
    let (_edge, addr) = edge(&two_pools(bad.addr, good.addr, "")).await;
    let mut c = Wire::connect(addr).await;
    for round in 0..2 {
        let r = c.get("/bad/x").await;
        assert_pocketbase_error(&r, 502);
        assert!(bad.accepted() > round, "the edge never tried the upstream");
        next_is_genuine_ok(&mut c).await;
    }
}

/// An upstream that promises 100 bytes, sends 10 and closes: the client is never left
/// waiting for the other 90 on an open connection, nor told the body was complete.
#[tokio::test]
async fn a_truncated_length_body_closes_the_client_connection() {
    let up = raw_upstream(|_| {
        vec![
            send("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789"),
            Step::Pause(Duration::from_millis(20)),
            Step::Close,
        ]
    })
    .await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    c.send(b"GET /cut HTTP/1.1\r\nHost: edge.test\r\n\r\n")
        .await;
    assert!(
        c.closes_within(Duration::from_secs(5)).await,
        "connection left open after a cut body"
    );
    let text = String::from_utf8_lossy(&c.buf).into_owned();
    let end = h1_wire::find(&c.buf, b"\r\n\r\n").map(|i| i + 4);
    let head = end.map(|e| h1_wire::parse_response_head(&c.buf[..e]));
    if let (Some(end), Some(Ok(head))) = (end, head)
        && head.status == 200
    {
        assert!(c.buf.len() - end < 100, "a complete body: {text}");
    }
}

/// The same for chunked: the edge must not end the client's chunked body with the last
/// chunk the upstream never sent, which would make the cut body look complete.
#[tokio::test]
async fn a_truncated_chunked_body_is_never_completed_for_the_client() {
    let up = raw_upstream(|_| {
        vec![
            send("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\na\r\n0123456789\r\n"),
            Step::Pause(Duration::from_millis(20)),
            Step::Close,
        ]
    })
    .await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    c.send(b"GET /cut HTTP/1.1\r\nHost: edge.test\r\n\r\n")
        .await;
    match c.try_response("GET").await {
        Ok(r) => assert_ne!(r.status(), 200, "the cut body arrived as complete: {r:?}"),
        Err(e) => assert_eq!(e, h1_wire::Ended::Closed),
    }
}

#[tokio::test]
async fn a_slow_upstream_is_a_504_and_the_connection_lives() {
    let up = raw_upstream(|seen| match seen.head.target.as_str() {
        "/slow" => vec![Step::Pause(Duration::from_secs(3)), ok("late").remove(0)],
        _ => ok("ok"),
    })
    .await;
    let (_edge, addr) = edge_for(&up, "read_timeout_ms = 300").await;
    let mut c = Wire::connect(addr).await;
    let r = c.get("/slow").await;
    assert_pocketbase_error(&r, 504);
    next_is_genuine_ok(&mut c).await;
}

/// Echoes the target, announcing `Connection: close`, and closes.
fn close_each_time(seen: &Seen) -> Vec<Step> {
    let body = &seen.head.target;
    vec![
        send(format!(
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )),
        Step::Close,
    ]
}

#[tokio::test]
async fn an_upstream_closing_after_each_answer_keeps_the_client_connection() {
    let up = raw_upstream(close_each_time).await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    for i in 0..20 {
        let path = format!("/r{i}");
        let r = c.get(&path).await;
        assert_eq!((r.status(), r.body_text()), (200, path), "request {i}");
        assert!(
            !r.head.text("connection").eq_ignore_ascii_case("close"),
            "the upstream's close reached the client: {:?}",
            r.head
        );
    }
    assert_eq!(up.accepted(), 20);
}

/// Echoes the target and closes without saying so, as an upstream whose keep-alive timer
/// ran out right after answering.
fn close_silently(seen: &Seen) -> Vec<Step> {
    let mut steps = ok(&seen.head.target);
    steps.push(Step::Close);
    steps
}

#[tokio::test]
async fn an_upstream_silently_closing_idle_connections_costs_no_get() {
    let up = raw_upstream(close_silently).await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    for i in 0..8 {
        let path = format!("/r{i}");
        let r = c.get(&path).await;
        assert_eq!((r.status(), r.body_text()), (200, path), "request {i}");
        // Idle for a moment: long enough for the close to arrive before the next request.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(up.accepted(), 8);
}

#[tokio::test]
async fn a_client_leaving_mid_stream_ends_the_upstream_stream() {
    let up = raw_upstream(|_| {
        vec![
            send("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"),
            Step::Stream {
                every: Duration::from_millis(50),
                chunk: b"c\r\ndata: tick\n\n\r\n".to_vec(),
            },
        ]
    })
    .await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    c.send(b"GET /events HTTP/1.1\r\nHost: edge.test\r\n\r\n")
        .await;
    let head = c.raw_head().await.expect("response head");
    assert!(head.starts_with(b"HTTP/1.1 200"));
    // Two events through, then the client goes away.
    c.until_seen(b"data: tick", 2).await.expect("two events");
    drop(c);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !up.log.stream_cut.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the upstream kept streaming to nobody"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The same without the pause: the close arrives with the answer and the next request
/// follows at once, as a busy client's would.
#[tokio::test]
async fn an_upstream_closing_right_after_answering_costs_no_back_to_back_get() {
    let up = raw_upstream(close_silently).await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    for i in 0..20 {
        let path = format!("/r{i}");
        let r = c.get(&path).await;
        assert_eq!((r.status(), r.body_text()), (200, path), "request {i}");
    }
}

/// Routes `/open` and `/limited` (rate limited to one request a minute per client) to
/// `up`, nothing else; request bodies up to 100 bytes.
fn guarded_routes(up: SocketAddr) -> String {
    format!(
        "[edge]\n[[edge.listeners]]\nlisten = \"127.0.0.1:0\"\n\
         [[edge.routes]]\nname = \"open\"\npath_prefix = \"/open\"\npool = \"p\"\n\
         [[edge.routes]]\nname = \"limited\"\npath_prefix = \"/limited\"\npool = \"p\"\n\
         [edge.pools.p]\ntargets = [{{ address = \"{up}\" }}]\n\
         [edge.limits]\nmax_body_bytes = 100\n\
         [[edge.rate_limits]]\nname = \"one\"\nburst = 1\nperiod_ms = 60000\nroutes = [\"limited\"]\n"
    )
}

async fn open_route_answers(c: &mut Wire, context: &str) {
    let r = c.get("/open").await;
    assert_eq!(
        (r.status(), r.body_text().as_str()),
        (200, "/open"),
        "{context}: the next request on the connection"
    );
    assert!(c.buf.is_empty(), "{context}: stray bytes {:?}", c.buf);
}

#[tokio::test]
async fn the_edges_own_404_keeps_the_connection() {
    let up = raw_upstream(echo_target).await;
    let (_edge, addr) = edge(&guarded_routes(up.addr)).await;
    let mut c = Wire::connect(addr).await;
    for _ in 0..2 {
        let r = c.get("/nowhere").await;
        assert_pocketbase_error(&r, 404);
        open_route_answers(&mut c, "after a 404").await;
    }
    assert_eq!(up.requests(), 2);
}

#[tokio::test]
async fn the_edges_own_429_keeps_the_connection() {
    let up = raw_upstream(echo_target).await;
    let (_edge, addr) = edge(&guarded_routes(up.addr)).await;
    let mut c = Wire::connect(addr).await;
    let first = c.get("/limited").await;
    assert_eq!(
        (first.status(), first.body_text().as_str()),
        (200, "/limited")
    );
    for _ in 0..2 {
        let r = c.get("/limited").await;
        assert_pocketbase_error(&r, 429);
        assert!(r.head.has("retry-after"), "{:?}", r.head);
        open_route_answers(&mut c, "after a 429").await;
    }
    assert_eq!(up.requests(), 3);
}

/// A declared length over the limit is refused before the body is read; the body the
/// client sent anyway must not be taken for the next request.
#[tokio::test]
async fn the_edges_own_413_keeps_the_connection() {
    let up = raw_upstream(echo_target).await;
    let (_edge, addr) = edge(&guarded_routes(up.addr)).await;
    let mut c = Wire::connect(addr).await;
    let body = "GET /smuggled HTTP/1.1\r\nHost: edge.test\r\n\r\n".repeat(5);
    assert!(body.len() > 100);
    c.send(
        format!(
            "POST /open HTTP/1.1\r\nHost: edge.test\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await;
    let r = c.final_response("POST").await;
    assert_pocketbase_error(&r, 413);
    open_route_answers(&mut c, "after a 413").await;
    assert_eq!(up.requests(), 1, "{:?}", up.seen());
}

/// Requests served plainly, then a protocol switch on the same connection: the 101 and the
/// tunnel work after them (the upgrade is the hyper path's, the requests before may not be).
#[tokio::test]
async fn an_upgrade_after_plain_requests_on_one_connection() {
    let up = raw_upstream(|seen| match seen.head.target.as_str() {
        "/switch" => vec![
            send(
                "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
            ),
            Step::Echo,
        ],
        _ => ok("ok"),
    })
    .await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    next_is_genuine_ok(&mut c).await;
    next_is_genuine_ok(&mut c).await;
    c.send(
        b"GET /switch HTTP/1.1\r\nHost: edge.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
    )
    .await;
    let r = c.response("GET").await;
    assert_eq!(r.status(), 101, "{:?}", r.head);
    assert!(r.head.text("upgrade").eq_ignore_ascii_case("echo"));
    c.send(b"ping one").await;
    c.until_seen(b"ping one", 1).await.expect("echoed");
    c.send(b", two").await;
    c.until_seen(b"ping one, two", 1).await.expect("echoed");
    let seen = up.seen();
    let switch = &seen[2].head;
    assert!(
        switch.text("upgrade").eq_ignore_ascii_case("echo"),
        "{switch:?}"
    );
    assert!(
        switch
            .text("connection")
            .to_ascii_lowercase()
            .contains("upgrade"),
        "{switch:?}"
    );
}

#[tokio::test]
async fn expect_100_continue_gets_the_interim_response_then_the_body_through() {
    let up = raw_upstream(|seen| ok(&String::from_utf8_lossy(&seen.body))).await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    c.send(
        b"POST /e HTTP/1.1\r\nHost: edge.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await;
    let interim = c.response("POST").await;
    assert_eq!(interim.status(), 100, "{:?}", interim.head);
    c.send(b"hello").await;
    let r = c.final_response("POST").await;
    assert_eq!((r.status(), r.body_text().as_str()), (200, "hello"));
    next_is_genuine_ok_after(&mut c, "").await;
}

async fn next_is_genuine_ok_after(c: &mut Wire, expected: &str) {
    let r = c.get("/again").await;
    assert_eq!((r.status(), r.body_text().as_str()), (200, expected));
    assert!(c.buf.is_empty(), "stray bytes {:?}", c.buf);
}

/// HTTP/1.0 with `Connection: keep-alive` and a counted upstream body stays open.
#[tokio::test]
async fn http10_keep_alive_with_a_counted_body_stays_open() {
    let up = raw_upstream(echo_target).await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    for path in ["/k1", "/k2"] {
        c.send(
            format!("GET {path} HTTP/1.0\r\nHost: edge.test\r\nConnection: keep-alive\r\n\r\n")
                .as_bytes(),
        )
        .await;
        let r = c.response("GET").await;
        assert_eq!((r.status(), r.body_text().as_str()), (200, path));
        assert_eq!(r.framing, Framing::ContentLength, "{:?}", r.head);
    }
}

/// Large and repeated headers pass in order both ways: a 12 KB value, 60 fields, two
/// `Set-Cookie` answers and three same-named request fields.
#[tokio::test]
async fn large_and_repeated_headers_pass_in_order() {
    let big = "b".repeat(12_000);
    let response_big = big.clone();
    let up = raw_upstream(move |_| {
        let mut head = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..60 {
            head.push_str(&format!("x-h{i}: value {i}\r\n"));
        }
        head.push_str(&format!(
            "x-big: {response_big}\r\nset-cookie: a=1; Path=/\r\nset-cookie: b=2; HttpOnly\r\n"
        ));
        head.push_str("content-length: 2\r\n\r\nok");
        vec![send(head)]
    })
    .await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    c.send(
        format!(
            "GET /big HTTP/1.1\r\nHost: edge.test\r\nX-Multi: one\r\nX-Big: {big}\r\nX-Multi: two\r\nX-Multi: three\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    let r = c.final_response("GET").await;
    assert_eq!((r.status(), r.body_text().as_str()), (200, "ok"));
    assert_eq!(r.head.text("x-big"), big);
    for i in 0..60 {
        assert_eq!(r.head.text(&format!("x-h{i}")), format!("value {i}"));
    }
    let cookies: Vec<&[u8]> = r
        .head
        .headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .map(|(_, v)| v.as_slice())
        .collect();
    assert_eq!(cookies, [&b"a=1; Path=/"[..], b"b=2; HttpOnly"]);
    let seen = up.seen();
    let multi: Vec<&[u8]> = seen[0]
        .head
        .headers
        .iter()
        .filter(|(n, _)| n == "x-multi")
        .map(|(_, v)| v.as_slice())
        .collect();
    assert_eq!(multi, [&b"one"[..], b"two", b"three"]);
    assert_eq!(seen[0].head.text("x-big"), big);
    next_is_genuine_ok_after(&mut c, "ok").await;
}

#[tokio::test]
async fn a_mebibyte_request_body_reaches_the_upstream_byte_exact() {
    let up = raw_upstream(|seen| ok(&seen.body.len().to_string())).await;
    let (_edge, addr) = edge_for(&up, "").await;
    let body = mebibyte();
    let mut c = Wire::connect(addr).await;
    let mut request = format!(
        "PUT /blob HTTP/1.1\r\nHost: edge.test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    c.send(&request).await;
    let r = c.final_response("PUT").await;
    assert_eq!((r.status(), r.body_text()), (200, body.len().to_string()));
    assert!(
        up.seen()[0].body == body,
        "the upstream got a different body"
    );
}
