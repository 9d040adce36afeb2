//! L4 TCP streams against real TCP echo upstreams: distribution over the pool, failover
//! when a connect fails, health-check ejection and recovery, half-close, the idle timeout,
//! a large transfer arriving intact, allow/deny lists and PROXY protocol both ways.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::l4::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn stream_config(pool: &str, stream_extra: &str) -> String {
    format!(
        "[edge]\n[[edge.streams]]\nname = \"s\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n{stream_extra}\n[edge.pools.p]\n{pool}\n"
    )
}

#[tokio::test]
async fn connections_spread_by_weight_over_the_targets() {
    let (a, b) = (tcp_echo("a").await, tcp_echo("b").await);
    let pool = format!(
        "targets = [{{ address = \"{}\", weight = 3 }}, {{ address = \"{}\", weight = 1 }}]",
        a.addr, b.addr
    );
    let edge = start(&stream_config(&pool, "")).await;
    let addr = tcp_addr(&edge, "127.0.0.1:0");
    let mut seen: HashMap<String, usize> = HashMap::new();
    for _ in 0..40 {
        let (_s, name) = connect_named(addr).await;
        *seen.entry(name).or_default() += 1;
    }
    assert_eq!(seen.get("a"), Some(&30), "{seen:?}");
    assert_eq!(seen.get("b"), Some(&10), "{seen:?}");
    assert_eq!(
        metric(
            &edge,
            "stream_connections_total",
            &[("target", &a.addr.to_string())]
        ),
        30.0
    );
}

#[tokio::test]
async fn a_refused_connect_moves_to_another_target_and_ejects_the_dead_one() {
    let (a, b) = (tcp_echo("a").await, tcp_echo("b").await);
    let dead = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        l.local_addr().expect("addr")
    };
    let pool = format!(
        "{}\nretries = 1\n[edge.pools.p.passive]\nfailures = 2\ncooldown_ms = 60000",
        targets(&[dead, a.addr, b.addr])
    );
    let edge = start(&stream_config(&pool, "")).await;
    let addr = tcp_addr(&edge, "127.0.0.1:0");
    for i in 0..30 {
        let (mut s, name) = connect_named(addr).await;
        assert!(
            name == "a" || name == "b",
            "connection {i} reached {name:?}"
        );
        s.write_all(b"ping\n").await.expect("write");
        assert_eq!(read_line(&mut s).await, "ping");
    }
    let dead_label = dead.to_string();
    // Two failed connects eject it; no connection after that tries it.
    assert_eq!(
        metric(
            &edge,
            "stream_connect_failures_total",
            &[("target", &dead_label)]
        ),
        2.0
    );
    assert_eq!(
        metric(&edge, "ejections_total", &[("target", &dead_label)]),
        1.0
    );
}

#[tokio::test]
async fn health_checks_take_a_stopped_target_out_and_bring_it_back() {
    let a = tcp_echo("a").await;
    let b = tcp_echo("b").await;
    let a_addr = a.addr;
    let pool = format!(
        "{}\nretries = 0\n[edge.pools.p.health]\ninterval_ms = 50\ntimeout_ms = 200\nrise = 1\nfall = 1",
        targets(&[a.addr, b.addr])
    );
    let edge = start(&stream_config(&pool, "")).await;
    let addr = tcp_addr(&edge, "127.0.0.1:0");
    drop(a);
    let a_label = a_addr.to_string();
    assert!(
        eventually(
            async || metric(&edge, "target_healthy", &[("target", &a_label)]) == 0.0
                && metric(&edge, "target_healthy", &[("target", &b.addr.to_string())]) == 1.0
        )
        .await,
        "the stopped target is marked down"
    );
    // With retries = 0 a pick of the stopped target would fail the connection: none does.
    for _ in 0..10 {
        assert_eq!(connect_named(addr).await.1, "b");
    }
    let _a = tcp_echo_on("a", a_addr).await;
    assert!(
        eventually(async || metric(&edge, "target_healthy", &[("target", &a_label)]) == 1.0).await,
        "the restarted target is marked up"
    );
    let mut names = Vec::new();
    for _ in 0..4 {
        names.push(connect_named(addr).await.1);
    }
    assert!(names.iter().any(|n| n == "a"), "{names:?}");
}

#[tokio::test]
async fn a_client_half_close_reaches_the_upstream_and_its_answer_still_arrives() {
    let a = tcp_echo("a").await;
    let edge = start(&stream_config(&targets(&[a.addr]), "")).await;
    let addr = tcp_addr(&edge, "127.0.0.1:0");
    let (mut s, name) = connect_named(addr).await;
    assert_eq!(name, "a");
    s.write_all(b"last words\n").await.expect("write");
    s.shutdown().await.expect("half-close");
    let mut rest = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut rest))
        .await
        .expect("bounded")
        .expect("read");
    // The upstream saw EOF only after the data, and its reply came back after our FIN.
    assert_eq!(rest, "last words\nEOF\n");
}

#[tokio::test]
async fn an_idle_connection_is_closed_and_an_active_one_is_not() {
    let a = tcp_echo("a").await;
    let edge = start(&stream_config(&targets(&[a.addr]), "idle_timeout_ms = 300")).await;
    let addr = tcp_addr(&edge, "127.0.0.1:0");
    let (mut active, _) = connect_named(addr).await;
    let (mut idle, _) = connect_named(addr).await;
    for i in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        active
            .write_all(format!("{i}\n").as_bytes())
            .await
            .expect("write");
        assert_eq!(read_line(&mut active).await, i.to_string());
    }
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf))
        .await
        .expect("closed within the bound")
        .unwrap_or(0);
    assert_eq!(n, 0, "the idle connection was closed");
    assert!(
        eventually(async || metric(&edge, "stream_active", &[("stream", "s")]) == 1.0).await,
        "only the active connection is counted"
    );
}

#[tokio::test]
async fn a_large_transfer_arrives_intact_both_ways() {
    let a = tcp_echo("a").await;
    let edge = start(&stream_config(&targets(&[a.addr]), "")).await;
    let addr = tcp_addr(&edge, "127.0.0.1:0");
    let (s, _) = connect_named(addr).await;
    let (mut rd, mut wr) = s.into_split();
    // 16 MiB of a simple pseudo-random sequence, so a reordered or lost chunk shows.
    let len = 16 << 20;
    let data: Vec<u8> = (0..len as u64)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        wr.write_all(&sent).await.expect("write");
        wr.shutdown().await.expect("half-close");
    });
    let mut back = Vec::with_capacity(len + 4);
    tokio::time::timeout(Duration::from_secs(60), rd.read_to_end(&mut back))
        .await
        .expect("bounded")
        .expect("read");
    writer.await.expect("writer");
    assert_eq!(back.len(), len + 4);
    assert!(back[..len] == data[..], "echoed bytes differ");
    assert_eq!(&back[len..], b"EOF\n");
    let bytes_in = metric(&edge, "stream_bytes_total", &[("direction", "in")]);
    assert_eq!(bytes_in, len as f64);
}

#[tokio::test]
async fn denied_clients_are_closed_on_accept() {
    let a = tcp_echo("a").await;
    let edge = start(&stream_config(
        &targets(&[a.addr]),
        "deny = [\"127.0.0.0/8\"]",
    ))
    .await;
    let addr = tcp_addr(&edge, "127.0.0.1:0");
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("bounded")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert_eq!(
        metric(&edge, "stream_refused_total", &[("reason", "ip_denied")]),
        1.0
    );
    assert_eq!(metric(&edge, "stream_connections_total", &[]), 0.0);
}

#[tokio::test]
async fn the_client_address_from_a_proxy_header_is_checked_and_passed_on() {
    // The upstream reads the PROXY v2 header the edge sends and answers with the address.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let upstream = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = [0u8; 28];
                if s.read_exact(&mut head).await.is_err() {
                    return;
                }
                let ok =
                    &head[..12] == b"\r\n\r\n\0\r\nQUIT\n" && head[12] == 0x21 && head[13] == 0x11;
                let ip = std::net::Ipv4Addr::new(head[16], head[17], head[18], head[19]);
                let port = u16::from_be_bytes([head[24], head[25]]);
                let _ = s.write_all(format!("{ok} {ip}:{port}\n").as_bytes()).await;
            });
        }
    });
    let edge = start(&stream_config(
        &targets(&[upstream]),
        "proxy_protocol = true\nsend_proxy_protocol = true\ndeny = [\"192.0.2.0/24\"]",
    ))
    .await;
    let addr = tcp_addr(&edge, "127.0.0.1:0");
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"PROXY TCP4 203.0.113.9 10.0.0.1 4321 7000\r\n")
        .await
        .expect("write");
    assert_eq!(read_line(&mut s).await, "true 203.0.113.9:4321");
    let mut denied = TcpStream::connect(addr).await.expect("connect");
    denied
        .write_all(b"PROXY TCP4 192.0.2.1 10.0.0.1 4321 7000\r\n")
        .await
        .expect("write");
    assert_eq!(read_line(&mut denied).await, "");
    let mut garbage = TcpStream::connect(addr).await.expect("connect");
    garbage
        .write_all(b"GET / HTTP/1.1\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(read_line(&mut garbage).await, "");
    assert_eq!(
        metric(&edge, "stream_refused_total", &[("reason", "ip_denied")]),
        1.0
    );
    assert_eq!(
        metric(
            &edge,
            "stream_refused_total",
            &[("reason", "proxy_protocol")]
        ),
        1.0
    );
}
