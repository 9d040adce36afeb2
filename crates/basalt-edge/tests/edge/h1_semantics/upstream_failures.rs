//! Upstreams that fail, close, stream or answer an upload early: the client connection
//! survives what it can survive, closes when a body was cut, and a client leaving ends the
//! upstream stream.

use super::*;

/// Routes `/bad...` to pool `bad` at `bad` and everything else to pool `good` at `good`.
fn two_pools(bad: SocketAddr, good: SocketAddr) -> String {
    format!(
        "[edge]\n[[edge.listeners]]\nlisten = \"127.0.0.1:0\"\n\
         [[edge.routes]]\nname = \"bad\"\npath_prefix = \"/bad\"\npool = \"bad\"\n\
         [[edge.routes]]\nname = \"good\"\npath_prefix = \"/\"\npool = \"good\"\n\
         [edge.pools.bad]\ntargets = [{{ address = \"{bad}\" }}]\n\
         [edge.pools.good]\ntargets = [{{ address = \"{good}\" }}]\n"
    )
}

#[tokio::test]
async fn an_upstream_closing_without_an_answer_is_a_502_and_the_connection_lives() {
    let bad = slamming_upstream().await;
    let good = raw_upstream(answer_ok).await;
    let (_edge, addr) = edge(&two_pools(bad.addr, good.addr)).await;
    let mut c = Wire::connect(addr).await;
    for round in 0..2 {
        let r = c.get("/bad/x").await;
        assert_pocketbase_error(&r, 502);
        assert!(bad.accepted() > round, "the edge never tried the upstream");
        answers_next(&mut c, "/again", "ok", "next").await;
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
        "/slow" => vec![
            Step::Pause(Duration::from_secs(3)),
            send("HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nlate"),
        ],
        _ => ok("ok"),
    })
    .await;
    let (_edge, addr) = edge_for(&up, "read_timeout_ms = 300").await;
    let mut c = Wire::connect(addr).await;
    let r = c.get("/slow").await;
    assert_pocketbase_error(&r, 504);
    answers_next(&mut c, "/again", "ok", "next").await;
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

/// An upstream connection its response says is closing is never used again, even when
/// the upstream leaves the socket open: a request sent on it would wait for nothing.
#[tokio::test]
async fn a_connection_the_upstream_said_is_closing_is_not_reused() {
    let up = raw_upstream(|seen| {
        let head = match seen.head.target.as_str() {
            "/http10" => "HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok",
            _ => "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok",
        };
        vec![send(head), Step::Stall]
    })
    .await;
    let (_edge, addr) = edge_for(&up, "read_timeout_ms = 2000").await;
    let mut c = Wire::connect(addr).await;
    for path in ["/http10", "/http10", "/close", "/close"] {
        let r = c.get(path).await;
        assert_eq!((r.status(), r.body_text().as_str()), (200, "ok"), "{path}");
    }
    assert_eq!(up.accepted(), 4);
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

fn declared_length(seen: &Seen) -> usize {
    seen.head
        .text("content-length")
        .parse()
        .expect("a declared length")
}

/// An upstream refusing an upload answers before reading its body: the client gets that
/// answer while still sending, and then either the connection closes or, once the rest of
/// the body is in, the next request on it is served; never a 502, a hang, or body bytes
/// read as a request.
#[tokio::test]
async fn an_upstream_answering_before_the_body_is_read() {
    let up = raw_upstream(|seen| {
        let refusal = "HTTP/1.1 413 Payload Too Large\r\ncontent-length: 4\r\n";
        match seen.head.target.as_str() {
            "/refuse-and-close" => vec![
                send(format!("{refusal}connection: close\r\n\r\nbig!")),
                Step::Close,
            ],
            // Keeps the connection: reads the body it refused, then serves the next request.
            "/refuse-and-keep" => vec![
                send(format!("{refusal}\r\nbig!")),
                Step::Skip(declared_length(seen)),
            ],
            _ => ok("next"),
        }
    })
    .await;
    let (_edge, addr) = edge_for(&up, "").await;
    // Whole requests as body bytes, so any read as a request would reach the upstream.
    let unit = "GET /smuggled HTTP/1.1\r\nHost: edge.test\r\n\r\n";
    let (first, rest) = (unit.repeat(25), unit.repeat(250));
    for path in ["/refuse-and-close", "/refuse-and-keep"] {
        let mut c = Wire::connect(addr).await;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: edge.test\r\nX-Answer-Before-Body: 1\r\nContent-Length: {}\r\n\r\n",
            first.len() + 9 * rest.len()
        );
        // A little of the body, then wait for the answer as a client watching for one does.
        c.send(format!("{head}{first}").as_bytes()).await;
        let r = c.final_response("POST").await;
        assert_eq!(
            (r.status(), r.body_text().as_str()),
            (413, "big!"),
            "{path}"
        );
        let mut open = true;
        for _ in 0..9 {
            open = open && c.try_send(rest.as_bytes()).await;
        }
        open = open
            && c.try_send(b"GET /next HTTP/1.1\r\nHost: edge.test\r\n\r\n")
                .await;
        match c.try_response("GET").await {
            Ok(next) => assert_eq!(
                (next.status(), next.body_text().as_str()),
                (200, "next"),
                "{path}"
            ),
            Err(e) => assert_eq!(e, h1_wire::Ended::Closed, "{path} (all sent: {open})"),
        }
    }
    let smuggled = up.seen().iter().any(|s| s.head.target == "/smuggled");
    assert!(!smuggled, "body bytes were read as a request");
}

/// An upstream that answers an upload early and closes: a client sending its whole body
/// still gets that answer (or its connection closed), not a 502 for the write that failed.
#[tokio::test]
async fn an_early_answer_from_a_closing_upstream_is_relayed_not_a_502() {
    let up = raw_upstream(|_| {
        vec![
            send("HTTP/1.1 413 Payload Too Large\r\ncontent-length: 4\r\nconnection: close\r\n\r\nbig!"),
            Step::Close,
        ]
    })
    .await;
    let (_edge, addr) = edge_for(&up, "").await;
    let size = 3_000_000;
    let mut c = Wire::connect(addr).await;
    let mut request = format!(
        "POST /upload HTTP/1.1\r\nHost: edge.test\r\nX-Answer-Before-Body: 1\r\nContent-Length: {size}\r\n\r\n"
    )
    .into_bytes();
    request.resize(request.len() + size, b'z');
    // The edge may stop reading once it has answered: a failed write is no failure here.
    let _ = c.try_send(&request).await;
    match c.try_response("POST").await {
        Ok(r) => assert_eq!((r.status(), r.body_text().as_str()), (413, "big!")),
        Err(e) => assert_eq!(e, h1_wire::Ended::Closed),
    }
}
