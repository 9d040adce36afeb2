//! Headers on the wire: hop-by-hop fields dropped both ways, `X-Forwarded-*` set, paths
//! rewritten by `strip_prefix`, obs-text, large and repeated fields kept in order.

use super::*;

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
    answers_next(&mut c, "/again", "ok", "next").await;
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
    answers_next(&mut c, "/again", "ok", "next").await;
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
    answers_next(&mut c, "/again", "ok", "next").await;
}

/// Regression: of two `X-Forwarded-For` lines only the first was kept and appended to.
/// Several lines are one list (RFC 9110 5.3): the edge's hop is appended to all of them.
#[tokio::test]
async fn every_forwarded_for_line_is_kept_when_appending() {
    let up = raw_upstream(answer_ok).await;
    let (_edge, addr) = edge_for(&up, "").await;
    let mut c = Wire::connect(addr).await;
    c.send(
        b"GET /f HTTP/1.1\r\nHost: edge.test\r\nX-Forwarded-For: 198.51.100.1\r\n\
          X-Forwarded-For: 198.51.100.2\r\n\r\n",
    )
    .await;
    assert_eq!(c.final_response("GET").await.status(), 200);
    let seen = up.seen();
    let all: Vec<String> = seen[0]
        .head
        .headers
        .iter()
        .filter(|(n, _)| n == "x-forwarded-for")
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert_eq!(all.join(", "), "198.51.100.1, 198.51.100.2, 127.0.0.1");
}

/// Regression: two `Host` lines, or none on HTTP/1.1, were routed and forwarded. RFC 9112
/// 3.2 says 400, and neither request reaches the upstream.
#[tokio::test]
async fn requests_with_two_hosts_or_none_are_a_400() {
    let up = raw_upstream(answer_ok).await;
    let (_edge, addr) = edge_for(&up, "").await;
    for request in [
        &b"GET /two HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n"[..],
        b"GET /none HTTP/1.1\r\nX-A: 1\r\n\r\n",
    ] {
        let mut c = Wire::connect(addr).await;
        c.send(request).await;
        let r = c.final_response("GET").await;
        assert_pocketbase_error(&r, 400);
    }
    assert_eq!(up.requests(), 0, "{:?}", up.seen());
}

/// h2c smuggling: an `Upgrade: h2c` request (with `HTTP2-Settings`) must never reach an
/// upstream as an upgrade, or the upstream connection would switch to HTTP/2 behind the
/// edge's checks. The edge drops the `h2c` token and `HTTP2-Settings`, as nginx does, and
/// forwards the request as a plain one; other upgrade tokens are kept.
#[tokio::test]
async fn an_h2c_upgrade_never_reaches_the_upstream() {
    let up = raw_upstream(|seen: &Seen| {
        if seen.head.text("upgrade").contains("h2c") {
            // What a vulnerable upstream would do.
            return vec![send(
                "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: h2c\r\n\r\n",
            )];
        }
        ok("ok")
    })
    .await;
    let (_edge, addr) = edge_for(&up, "").await;
    let requests: [&[u8]; 4] = [
        // The classic smuggling request.
        b"GET /a HTTP/1.1\r\nHost: edge.test\r\nConnection: Upgrade, HTTP2-Settings\r\n\
          Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        // HTTP2-Settings not named in Connection, and the token in another case.
        b"GET /b HTTP/1.1\r\nHost: edge.test\r\nConnection: Upgrade\r\nUpgrade: H2C\r\n\
          HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        // h2c among other tokens, in two fields.
        b"GET /c HTTP/1.1\r\nHost: edge.test\r\nConnection: Upgrade\r\nUpgrade: foo/2\r\n\
          Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        // Not a GET: the fast path takes it, and drops both as well.
        b"POST /d HTTP/1.1\r\nHost: edge.test\r\nConnection: Upgrade, HTTP2-Settings\r\n\
          Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: 2\r\n\r\nhi",
    ];
    for request in requests {
        let mut c = Wire::connect(addr).await;
        c.send(request).await;
        let r = c.final_response("GET").await;
        assert_ne!(r.status(), 101, "{:?}", String::from_utf8_lossy(request));
    }
    let seen = up.seen();
    assert_eq!(seen.len(), requests.len(), "{seen:?}");
    for s in &seen {
        assert!(!s.head.has("http2-settings"), "{:?}", s.head);
        let upgrade = s.head.text("upgrade").to_ascii_lowercase();
        assert!(!upgrade.contains("h2c"), "{:?}", s.head);
        let connection = s.head.text("connection").to_ascii_lowercase();
        assert!(!connection.contains("http2-settings"), "{:?}", s.head);
        if s.head.target == "/c" {
            assert_eq!(upgrade, "foo/2", "other tokens stay: {:?}", s.head);
        } else {
            assert!(
                upgrade.is_empty() && !connection.contains("upgrade"),
                "{:?}",
                s.head
            );
        }
    }
}
