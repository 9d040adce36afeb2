//! The HTTP/1.1 proxying contract on the wire: response framings delivered intact with the
//! client connection kept alive, bodiless and interim responses, bad upstream framing,
//! pipelining and request bodies, hop-by-hop and forwarding headers, upstream failures
//! and closes, a client leaving mid-stream, the edge's own errors on keep-alive, and a
//! client's broken or stalled request bodies, which never count against a target.
//!
//! Every test runs the edge in front of a scripted upstream that sees and sends raw bytes,
//! and talks to the edge over a raw socket; every read is bounded (see `h1_wire`).

mod client_bodies;
mod edge_errors;
mod headers;
mod requests;
mod responses;
mod upstream_failures;

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::h1_upstream::{
    RawUpstream, Seen, Step, mebibyte, ok, raw_upstream, slamming_upstream,
};
use crate::support::h1_wire::{self, Framing, Response, Wire};
use crate::support::upstreams::{edge, pool_config};

/// An edge with one route to `up` and the given extra pool settings.
async fn edge_for(up: &RawUpstream, pool_extra: &str) -> (basalt_edge::Edge, SocketAddr) {
    edge(&pool_config(&[(up.addr, 1)], pool_extra)).await
}

fn send(bytes: impl Into<Vec<u8>>) -> Step {
    Step::Send(bytes.into())
}

fn assert_pocketbase_error(r: &Response, status: u16) {
    assert_eq!(r.status(), status, "{:?}", r.head);
    let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json error body");
    assert_eq!(body["status"], status);
    assert!(body["message"].is_string(), "{body}");
    assert!(body["data"].is_object(), "{body}");
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

/// Answers `ok` and keeps what it was sent for the test to inspect.
fn answer_ok(_: &Seen) -> Vec<Step> {
    ok("ok")
}

/// The next request on the connection, `GET path`, is answered 200 with `expected` and
/// nothing else follows it.
async fn answers_next(c: &mut Wire, path: &str, expected: &str, context: &str) {
    let r = c.get(path).await;
    assert_eq!(
        (r.status(), r.body_text().as_str()),
        (200, expected),
        "{context}: the next request on the connection"
    );
    assert!(
        c.buf.is_empty(),
        "{context}: stray bytes {:?}",
        String::from_utf8_lossy(&c.buf)
    );
}
