//! Client requests reaching the upstream intact: pipelining, bodies in pieces and chunks,
//! `Expect: 100-continue`, `Connection: close`, HTTP/1.0, an upgrade after plain requests,
//! and a client leaving halfway through its body.

use super::*;

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
    answers_next(&mut c, "/four", "/four", "after the pipeline").await;
    let order: Vec<String> = up.seen().iter().map(|s| s.head.target.clone()).collect();
    assert_eq!(order, ["/one", "/two", "/three", "/four"]);
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
    answers_next(&mut c, "/again", "", "next").await;
}

#[tokio::test]
async fn connection_close_from_the_client_closes_after_the_response() {
    let up = raw_upstream(echo_target).await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    // A request pipelined after the closing one is never served.
    c.send(b"GET /bye HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n\r\nGET /after-close HTTP/1.1\r\nHost: edge.test\r\n\r\n")
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
    let targets: Vec<String> = up.seen().iter().map(|s| s.head.target.clone()).collect();
    assert_eq!(targets, ["/bye"]);
}

/// A request head arriving three bytes at a time, split inside every line end and the
/// blank line, is read whole.
#[tokio::test]
async fn a_request_head_in_small_pieces_is_read_whole() {
    let up = raw_upstream(echo_target).await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    let request = b"GET /pieces?x=1 HTTP/1.1\r\nHost: edge.test\r\nX-Long-Header: abcdefghij\r\nContent-Length: 4\r\n\r\nbody";
    for piece in request.chunks(3) {
        c.send(piece).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let r = c.final_response("GET").await;
    assert_eq!((r.status(), r.body_text().as_str()), (200, "/pieces?x=1"));
    assert_eq!(up.seen()[0].body, b"body");
    answers_next(&mut c, "/next", "/next", "after a trickled head").await;
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
    answers_next(&mut c, "/again", "ok", "next").await;
    answers_next(&mut c, "/again", "ok", "next").await;
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

/// Bodies where a parser might assume none or one: a GET with a length, a POST with an
/// empty one, a DELETE without any; each reaches the upstream as sent and the connection
/// stays in step.
#[tokio::test]
async fn request_bodies_on_any_method_are_framed_by_their_headers() {
    let up = raw_upstream(|seen| ok(&format!("{} {}", seen.head.method, seen.body.len()))).await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    for (request, method, answer) in [
        (
            "GET /q HTTP/1.1\r\nHost: edge.test\r\nContent-Length: 5\r\n\r\nquery",
            "GET",
            "GET 5",
        ),
        (
            "POST /e HTTP/1.1\r\nHost: edge.test\r\nContent-Length: 0\r\n\r\n",
            "POST",
            "POST 0",
        ),
        (
            "DELETE /d HTTP/1.1\r\nHost: edge.test\r\n\r\n",
            "DELETE",
            "DELETE 0",
        ),
        (
            "OPTIONS * HTTP/1.1\r\nHost: edge.test\r\n\r\n",
            "OPTIONS",
            "OPTIONS 0",
        ),
    ] {
        c.send(request.as_bytes()).await;
        let r = c.final_response(method).await;
        assert_eq!(
            (r.status(), r.body_text().as_str()),
            (200, answer),
            "{request}"
        );
    }
    answers_next(&mut c, "/again", "GET 0", "after the bodies").await;
    let seen = up.seen();
    assert_eq!(seen[0].body, b"query");
    let targets: Vec<&str> = seen.iter().map(|s| s.head.target.as_str()).collect();
    assert_eq!(targets, ["/q", "/e", "/d", "*", "/again"]);
}

/// The request target reaches the upstream byte for byte in origin form: escapes, odd
/// characters and an 8 KB query untouched, an absolute-form target reduced to its path.
#[tokio::test]
async fn request_targets_reach_the_upstream_unchanged() {
    let up = raw_upstream(echo_target).await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    let long = format!("/long?q={}", "x".repeat(8000));
    for target in [
        "/a%2Fb/%2e%2e/c",
        "/%7Euser/a;b=c,d",
        "/x?y=a%20b&z=&&w=%00",
        "/sp%20ace/caf%C3%A9",
        long.as_str(),
    ] {
        let r = c.get(target).await;
        assert_eq!((r.status(), r.body_text().as_str()), (200, target));
    }
    c.send(b"GET http://edge.test/abs?q=1 HTTP/1.1\r\nHost: edge.test\r\n\r\n")
        .await;
    let r = c.final_response("GET").await;
    assert_eq!((r.status(), r.body_text().as_str()), (200, "/abs?q=1"));
}

/// Batches of pipelined requests with bodies of varied sizes, answered with bodies of
/// varied sizes: every answer comes in order and matches its request, on one connection.
#[tokio::test]
async fn many_pipelined_requests_of_varied_sizes_stay_in_order() {
    let up = raw_upstream(|seen| {
        // The answer repeats the body's length as many times as the path asks.
        let times: usize = seen.head.target[1..].parse().unwrap_or(0);
        ok(&seen.body.len().to_string().repeat(times))
    })
    .await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    let size = |i: usize| (i * 7919) % 20_000;
    for batch in 0..20 {
        let mut bytes = Vec::new();
        for i in batch * 5..batch * 5 + 5 {
            let body = vec![b'0' + (i % 10) as u8; size(i)];
            let method = if body.is_empty() { "GET" } else { "POST" };
            bytes.extend_from_slice(
                format!(
                    "{method} /{} HTTP/1.1\r\nHost: edge.test\r\nContent-Length: {}\r\n\r\n",
                    (i * 31) % 3000,
                    body.len()
                )
                .as_bytes(),
            );
            bytes.extend_from_slice(&body);
        }
        c.send(&bytes).await;
        for i in batch * 5..batch * 5 + 5 {
            let r = c.final_response("POST").await;
            let expected = size(i).to_string().repeat((i * 31) % 3000);
            assert_eq!(r.status(), 200, "request {i}");
            assert!(r.body_text() == expected, "request {i}: wrong answer");
        }
    }
    assert_eq!(up.requests(), 100);
}

/// A client that leaves halfway through its request body: the upstream connection that
/// got half a body is closed, never given to the next request (whose head the upstream
/// would read as the rest of that body).
#[tokio::test]
async fn a_client_leaving_mid_body_never_leaves_its_upstream_connection_in_use() {
    let up = raw_upstream(|seen| ok(&seen.body.len().to_string())).await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    c.send(b"POST /half HTTP/1.1\r\nHost: edge.test\r\nContent-Length: 1000\r\n\r\n")
        .await;
    c.send(&[b'h'; 400]).await;
    // The edge has an upstream connection for the request before the client leaves.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while up.accepted() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never forwarded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    drop(c);
    while up
        .log
        .closed_by_peer
        .load(std::sync::atomic::Ordering::SeqCst)
        == 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the upstream connection with half a body was kept open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut c = Wire::connect(addr).await;
    answers_next(&mut c, "/after", "0", "a new client").await;
    assert_eq!(up.requests(), 1, "{:?}", up.seen());
}
