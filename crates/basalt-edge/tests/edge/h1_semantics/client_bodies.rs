//! A client's request body that fails on the client's side — broken chunked framing, a
//! body that stalls, a body sent slowly — is answered to that client (400, 408) and never
//! counts against the upstream target: no failure, no ejection, no retry, and the target's
//! failure metrics do not move (issue 15).

use super::*;

/// One target, ejected after a single counted failure for a minute: any failure wrongly
/// blamed on it shows as a 503 for the next client.
const EJECT_ON_FIRST_FAILURE: &str =
    "retries = 2\n[edge.pools.p.passive]\nfailures = 1\ncooldown_ms = 60000\n";

const CHUNKED_POST: &[u8] =
    b"POST /up HTTP/1.1\r\nHost: edge.test\r\nTransfer-Encoding: chunked\r\n\r\n";

/// Chunked bodies the edge must refuse as the client's error, and why each is broken.
const MALFORMED: &[(&str, &[u8])] = &[
    ("bare LF after the size", b"2\nab\n0\n\n"),
    ("bare LF after the data", b"2\r\nab\n0\r\n\r\n"),
    ("data longer than its size", b"2\r\nabc\r\n0\r\n\r\n"),
    (
        "oversized chunk size",
        b"fffffffffffffffff\r\nab\r\n0\r\n\r\n",
    ),
    ("bare LF after an extension", b"0;x\n\r\n"),
    ("bare CR in an extension", b"2;a\rb\r\nab\r\n0\r\n\r\n"),
    ("whitespace inside the size", b"2 3\r\nab\r\n0\r\n\r\n"),
    ("no size", b";x\r\nab\r\n0\r\n\r\n"),
    ("not hexadecimal", b"zz\r\nab\r\n0\r\n\r\n"),
    ("bare LF in a trailer", b"0\r\nT: 1\n\r\n"),
    ("bare CR in a trailer", b"0\r\nT: 1\r\r\n\r\n"),
];

/// The value of `series` in the edge's metrics; 0 when absent.
fn metric(edge: &basalt_edge::Edge, series: &str) -> f64 {
    edge.metrics()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The target's failure series: upstream requests without a response, and ejections.
fn failures(edge: &basalt_edge::Edge, target: SocketAddr) -> (f64, f64) {
    // The exposition orders labels by name.
    (
        metric(
            edge,
            &format!(
                "basalt_edge_upstream_requests_total{{pool=\"p\",status=\"0\",target=\"{target}\"}}"
            ),
        ),
        metric(
            edge,
            &format!("basalt_edge_ejections_total{{pool=\"p\",target=\"{target}\"}}"),
        ),
    )
}

/// A good request on a new connection: the target is still in the pool.
async fn target_still_serves(addr: SocketAddr, context: &str) {
    let mut other = Wire::connect(addr).await;
    let r = other.get("/after").await;
    assert_eq!(
        (r.status(), r.body_text().as_str()),
        (200, "ok"),
        "{context}: the next client's request"
    );
}

#[tokio::test]
async fn a_malformed_chunked_body_is_the_clients_400_and_never_ejects_the_target() {
    let up = raw_upstream(answer_ok).await;
    let (edge, addr) = edge_for(&up, EJECT_ON_FIRST_FAILURE).await;
    for (why, body) in MALFORMED {
        let mut c = Wire::connect(addr).await;
        c.send(&[CHUNKED_POST, body].concat()).await;
        let r = c.response("POST").await;
        assert_pocketbase_error(&r, 400);
        assert_eq!(r.head.text("connection"), "close", "{why}: {:?}", r.head);
        assert!(
            c.closes_within(Duration::from_secs(5)).await,
            "{why}: the connection stayed open after a broken body"
        );
        assert_eq!(
            failures(&edge, up.addr),
            (0.0, 0.0),
            "{why}: counted against the target"
        );
        target_still_serves(addr, why).await;
    }
    // No broken body reached the upstream as a complete request: only the good ones did.
    assert!(
        up.seen().iter().all(|s| s.head.target == "/after"),
        "{:?}",
        up.seen()
    );
    assert!(
        metric(&edge, "basalt_edge_rejected_total{reason=\"framing\"}") >= MALFORMED.len() as f64
    );
}

/// The same bodies sent a byte at a time: where the bytes are split changes nothing.
#[tokio::test]
async fn a_malformed_chunked_body_split_byte_by_byte_is_still_the_clients_400() {
    let up = raw_upstream(answer_ok).await;
    let (edge, addr) = edge_for(&up, EJECT_ON_FIRST_FAILURE).await;
    for (why, body) in MALFORMED.iter().take(4) {
        let mut c = Wire::connect(addr).await;
        c.send(CHUNKED_POST).await;
        for b in body.iter() {
            if !c.try_send(std::slice::from_ref(b)).await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let r = c.response("POST").await;
        assert_pocketbase_error(&r, 400);
        assert_eq!(failures(&edge, up.addr), (0.0, 0.0), "{why}");
    }
    target_still_serves(addr, "after byte-by-byte bodies").await;
}

/// A body that stops arriving: the client's 408 once the body timeout passes, not the
/// target's 504, whichever of the two timeouts runs out first.
#[tokio::test]
async fn a_stalled_request_body_is_the_clients_408_and_never_ejects_the_target() {
    for (limits, why) in [
        ("read_timeout_ms = 5000", "the body timeout first"),
        ("read_timeout_ms = 200", "the read timeout first"),
    ] {
        let up = raw_upstream(answer_ok).await;
        let config = format!(
            "{}[edge.limits]\nbody_timeout_ms = 400\n",
            pool_config(
                &[(up.addr, 1)],
                &format!("{limits}\n{EJECT_ON_FIRST_FAILURE}")
            )
        );
        let (edge, addr) = edge(&config).await;
        // Chunked (hyper's path), then a Content-Length body (the fast path).
        for body in [
            &[CHUNKED_POST, b"5\r\nab"].concat()[..],
            b"POST /up HTTP/1.1\r\nHost: edge.test\r\nContent-Length: 9\r\n\r\nab",
        ] {
            let mut c = Wire::connect(addr).await;
            c.send(body).await;
            let r = c.response("POST").await;
            assert_pocketbase_error(&r, 408);
            assert!(c.closes_within(Duration::from_secs(5)).await, "{why}");
            assert_eq!(failures(&edge, up.addr), (0.0, 0.0), "{why}");
            target_still_serves(addr, why).await;
        }
    }
}

/// A client sending a chunked body more slowly than the pool's read timeout, but never
/// stalling past it: the upstream gets the whole body and its answer is relayed.
#[tokio::test]
async fn a_slowly_sent_body_is_not_a_slow_target() {
    let up = raw_upstream(|seen: &Seen| ok(&String::from_utf8_lossy(&seen.body))).await;
    let (edge, addr) = edge_for(
        &up,
        &format!("read_timeout_ms = 300\n{EJECT_ON_FIRST_FAILURE}"),
    )
    .await;
    let mut c = Wire::connect(addr).await;
    c.send(CHUNKED_POST).await;
    for piece in ["a", "b", "c", "d", "e"] {
        tokio::time::sleep(Duration::from_millis(150)).await;
        c.send(format!("1\r\n{piece}\r\n").as_bytes()).await;
    }
    c.send(b"0\r\n\r\n").await;
    let r = c.response("POST").await;
    assert_eq!((r.status(), r.body_text().as_str()), (200, "abcde"));
    assert_eq!(failures(&edge, up.addr), (0.0, 0.0));
    // The same with a Content-Length body on the HTTP/1.1 fast path.
    c.send(b"POST /up HTTP/1.1\r\nHost: edge.test\r\nContent-Length: 5\r\n\r\n")
        .await;
    for piece in ["v", "w", "x", "y", "z"] {
        tokio::time::sleep(Duration::from_millis(150)).await;
        c.send(piece.as_bytes()).await;
    }
    let r = c.response("POST").await;
    assert_eq!((r.status(), r.body_text().as_str()), (200, "vwxyz"));
    assert_eq!(failures(&edge, up.addr), (0.0, 0.0));
}

/// A client leaving in the middle of its body is not the target's failure either.
#[tokio::test]
async fn a_client_leaving_mid_body_never_counts_against_the_target() {
    let up = raw_upstream(answer_ok).await;
    let (edge, addr) = edge_for(&up, EJECT_ON_FIRST_FAILURE).await;
    for head in [
        CHUNKED_POST,
        b"POST /up HTTP/1.1\r\nHost: edge.test\r\nContent-Length: 100\r\n\r\n",
    ] {
        let mut c = Wire::connect(addr).await;
        c.send(&[head, b"5\r\nab"].concat()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(c);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(failures(&edge, up.addr), (0.0, 0.0));
        target_still_serves(addr, "after a client left").await;
    }
}

/// An upstream that really fails a request with a body is still counted: the line between
/// the two is drawn by what failed, not by whether there was a body.
#[tokio::test]
async fn an_upstream_failing_a_chunked_request_still_counts() {
    let up = slamming_upstream().await;
    let (edge, addr) = edge_for(
        &up,
        "[edge.pools.p.passive]\nfailures = 1\ncooldown_ms = 60000\n",
    )
    .await;
    let mut c = Wire::connect(addr).await;
    c.send(&[CHUNKED_POST, b"2\r\nab\r\n0\r\n\r\n"].concat())
        .await;
    let r = c.response("POST").await;
    assert_pocketbase_error(&r, 502);
    assert_eq!(failures(&edge, up.addr), (1.0, 1.0));
}
