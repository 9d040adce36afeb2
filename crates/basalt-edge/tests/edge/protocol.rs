//! Protocol probes over raw sockets: ambiguous HTTP/1 framing is answered 400 and never
//! reaches the upstream, limits and client timeouts hold, PROXY protocol, IPv6, h2c.

use std::time::Duration;

use crate::support::upstreams::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn ambiguous_framing_is_refused_and_never_forwarded() {
    let a = upstream("a").await;
    let (_edge, addr) = edge(&pool_config(&[(a.addr, 1)], "")).await;
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "content-length with transfer-encoding",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
            "HTTP/1.1 400",
        ),
        (
            "duplicate identical content-length",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
            "HTTP/1.1 400",
        ),
        (
            "duplicate different content-length",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            "HTTP/1.1 400",
        ),
        ("bare LF line endings", b"GET / HTTP/1.1\nHost: x\n\n", "HTTP/1.1 400"),
        (
            "bare LF inside the head",
            b"GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (
            "obs-fold",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (
            "transfer-encoding other than chunked",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
            "HTTP/1.1 501",
        ),
        (
            "smuggled request after a valid one",
            b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nZ",
            "HTTP/1.1 400",
        ),
    ];
    for (name, bytes, expect) in cases {
        let before = a.hits();
        let reply = raw(addr, bytes).await;
        assert!(reply.contains(expect), "{name}: {reply}");
        assert!(
            reply.contains("\"status\":"),
            "{name}: PocketBase error shape: {reply}"
        );
        let forwarded = a.hits() - before;
        let allowed = usize::from(name.starts_with("smuggled"));
        assert_eq!(forwarded, allowed, "{name}: reached the upstream");
    }
}

#[tokio::test]
async fn chunked_bodies_and_keep_alive_pass_the_guard() {
    let a = upstream("a").await;
    let (_edge, addr) = edge(&pool_config(&[(a.addr, 1)], "")).await;
    let reply = raw(
        addr,
        b"POST /1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(reply.matches("HTTP/1.1 200").count(), 2, "{reply}");
    assert!(reply.contains("x-seen-body-len: 4"), "{reply}");
    assert_eq!(a.hits(), 2);
}

#[tokio::test]
async fn oversized_heads_and_bodies_are_refused() {
    let a = upstream("a").await;
    let (_edge, addr) = edge(&format!(
        "{}\n[edge.limits]\nmax_header_bytes = 2048\nmax_headers = 10\nmax_body_bytes = 100\n",
        pool_config(&[(a.addr, 1)], "")
    ))
    .await;
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(4000)
    );
    assert!(raw(addr, big.as_bytes()).await.starts_with("HTTP/1.1 431"));
    let many: String = (0..20).map(|i| format!("X-{i}: 1\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    assert!(raw(addr, many.as_bytes()).await.starts_with("HTTP/1.1 431"));
    let body = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\nConnection: close\r\n\r\n{}",
        "b".repeat(200)
    );
    assert!(raw(addr, body.as_bytes()).await.starts_with("HTTP/1.1 413"));
    assert_eq!(a.hits(), 0);
}

#[tokio::test]
async fn slow_heads_and_idle_connections_are_closed() {
    let a = upstream("a").await;
    let (_edge, addr) = edge(&format!(
        "{}\n[edge.limits]\nheader_timeout_ms = 300\nidle_timeout_ms = 300\n",
        pool_config(&[(a.addr, 1)], "")
    ))
    .await;
    // Slowloris: a head trickled byte by byte never completes in time.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut closed = false;
    for b in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
        if s.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let mut buf = [0u8; 64];
    if !closed {
        let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
            .await
            .expect("closed in time")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    // An idle keep-alive connection is closed too.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert_eq!(a.hits(), 0);
}

#[tokio::test]
async fn proxy_protocol_sets_the_client_address() {
    let a = upstream("a").await;
    let (_edge, addr) = edge(&pool_config(&[(a.addr, 1)], "").replace(
        "listen = \"127.0.0.1:0\"",
        "listen = \"127.0.0.1:0\"\nproxy_protocol = true",
    ))
    .await;
    let v1 = raw(
        addr,
        b"PROXY TCP4 203.0.113.9 127.0.0.1 4000 80\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(v1.contains("x-seen-x-forwarded-for: 203.0.113.9"), "{v1}");
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v2.extend_from_slice(&[0x21, 0x11, 0, 12]);
    v2.extend_from_slice(&[198, 51, 100, 4, 127, 0, 0, 1, 0x1f, 0x90, 0, 80]);
    v2.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let reply = raw(addr, &v2).await;
    assert!(
        reply.contains("x-seen-x-forwarded-for: 198.51.100.4"),
        "{reply}"
    );
    // Without the header the connection is refused.
    let none = raw(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(none.is_empty(), "{none}");
    assert_eq!(a.hits(), 2);
}

#[tokio::test]
async fn ipv6_listener_and_h2c_prior_knowledge() {
    let a = upstream("a").await;
    let Ok(probe) = std::net::TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here; skipping the IPv6 half");
        return;
    };
    drop(probe);
    let (_edge, addr) = edge(
        &pool_config(&[(a.addr, 1)], "")
            .replace("listen = \"127.0.0.1:0\"", "listen = \"[::1]:0\""),
    )
    .await;
    assert!(addr.is_ipv6());
    let reply = raw(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.contains("x-seen-x-forwarded-for: ::1"), "{reply}");
    // HTTP/2 with prior knowledge (h2c) on the same listener.
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri(format!("http://[::1]:{}/h2", addr.port()))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("req");
    let resp = sender.send_request(req).await.expect("h2 response");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-seen-path"], "/h2");
}

#[tokio::test]
async fn https_redirect_and_redirect_routes() {
    let cfg = "[edge]\n[[edge.listeners]]\nlisten = \"127.0.0.1:0\"\nredirect_https_port = 8443\n[[edge.routes]]\nredirect = { to = \"https://example.test\" }\n";
    let (_edge, addr) = edge(cfg).await;
    let r = raw(
        addr,
        b"GET /a?b=1 HTTP/1.1\r\nHost: shop.test:8080\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 308"), "{r}");
    assert!(r.contains("location: https://shop.test:8443/a?b=1"), "{r}");
    let cfg = "[edge]\n[[edge.listeners]]\nlisten = \"127.0.0.1:0\"\n[[edge.routes]]\nhost = \"old.test\"\nredirect = { to = \"https://new.test/\", status = 301, keep_path = true }\n";
    let (_edge, addr) = edge(cfg).await;
    let r = raw(
        addr,
        b"GET /p?q=1 HTTP/1.1\r\nHost: old.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 301"), "{r}");
    assert!(r.contains("location: https://new.test/p?q=1"), "{r}");
    let r = raw(
        addr,
        b"GET / HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
}

/// A raw upstream streaming `count` server-sent events, one every `every`.
async fn sse_upstream(count: usize, every: Duration) -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for i in 0..count {
                    let event = format!("data: {i}\n\n");
                    let chunk = format!("{:x}\r\n{event}\r\n", event.len());
                    if s.write_all(chunk.as_bytes()).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(every).await;
                }
                let _ = s.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_event_stream_outlives_the_idle_timeout() {
    let up = sse_upstream(12, Duration::from_millis(100)).await;
    // Idle and header timeouts far shorter than the stream: they must not cut it.
    let (_edge, addr) = edge(&format!(
        "{}\n[edge.limits]\nidle_timeout_ms = 250\nheader_timeout_ms = 250\n",
        pool_config(&[(up, 1)], "")
    ))
    .await;
    let mut resp = client()
        .get(format!("http://{addr}/events"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    while let Some(chunk) = resp.chunk().await.expect("chunk") {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let events = text.matches("data: ").count();
    assert_eq!(events, 12, "{text}");
}

#[tokio::test]
async fn a_refused_upgrade_closes_so_nothing_unchecked_follows() {
    // Regression: the guard stops scanning after an upgrade request; a non-101 answer from
    // any action must close the connection, or a smuggled request would be parsed unchecked.
    let a = upstream("a").await;
    let cfg = format!(
        "[edge]\n[[edge.listeners]]\nlisten = \"127.0.0.1:0\"\n[[edge.routes]]\npath_prefix = \"/r\"\nredirect = {{ to = \"https://x.test\" }}\n[[edge.routes]]\npool = \"p\"\n[edge.pools.p]\ntargets = [{{ address = \"{}\" }}]\n",
        a.addr
    );
    let (_edge, addr) = edge(&cfg).await;
    for path in ["/r", "/plain"] {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nPOST /smuggled HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nZ"
        );
        let reply = raw(addr, req.as_bytes()).await;
        assert_eq!(reply.matches("HTTP/1.1 ").count(), 1, "{path}: {reply}");
        assert!(!reply.contains("/smuggled"), "{path}: {reply}");
    }
    assert_eq!(a.hits(), 1, "only the upgrade request reached the upstream");
}
