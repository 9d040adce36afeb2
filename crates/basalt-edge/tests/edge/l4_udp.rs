//! L4 UDP streams against real UDP echo upstreams: a client address keeps its target for
//! the life of its session, idle sessions expire, and the session table is bounded.

use std::collections::HashSet;
use std::time::Duration;

use crate::support::l4::*;
use tokio::net::UdpSocket;

fn udp_config(pool: &str, stream_extra: &str) -> String {
    format!(
        "[edge]\n[[edge.streams]]\nname = \"u\"\nlisten = \"127.0.0.1:0\"\nprotocol = \"udp\"\npool = \"p\"\n{stream_extra}\n[edge.pools.p]\n{pool}\n"
    )
}

async fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.expect("bind")
}

fn upstream_of(reply: &Option<String>) -> String {
    reply
        .as_deref()
        .and_then(|r| r.split_once(':'))
        .map(|(n, _)| n.to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn each_client_keeps_its_target_and_clients_spread_over_targets() {
    let ups = [
        udp_echo("a").await,
        udp_echo("b").await,
        udp_echo("c").await,
    ];
    let addrs: Vec<_> = ups.iter().map(|u| u.addr).collect();
    let edge = start(&udp_config(&targets(&addrs), "")).await;
    let addr = udp_addr(&edge, "127.0.0.1:0");
    let mut used = HashSet::new();
    for c in 0..3 {
        let sock = client().await;
        let first = udp_ask(&sock, addr, &format!("hello {c}")).await;
        assert_eq!(
            first
                .as_deref()
                .map(|r| r.ends_with(&format!(":hello {c}"))),
            Some(true)
        );
        let target = upstream_of(&first);
        for i in 0..5 {
            let r = udp_ask(&sock, addr, &format!("{c}/{i}")).await;
            assert_eq!(upstream_of(&r), target, "client {c} moved target");
        }
        used.insert(target);
    }
    // Round robin gives each new session the next target.
    assert_eq!(used.len(), 3, "{used:?}");
    assert_eq!(
        metric(&edge, "stream_connections_total", &[("stream", "u")]),
        1.0
    );
    assert_eq!(metric(&edge, "stream_active", &[("stream", "u")]), 1.0);
    assert!(metric(&edge, "stream_bytes_total", &[("direction", "out")]) > 0.0);
}

#[tokio::test]
async fn an_idle_session_expires_and_the_next_datagram_opens_a_new_one() {
    let (a, b) = (udp_echo("a").await, udp_echo("b").await);
    let edge = start(&udp_config(
        &targets(&[a.addr, b.addr]),
        "idle_timeout_ms = 200",
    ))
    .await;
    let addr = udp_addr(&edge, "127.0.0.1:0");
    let sock = client().await;
    let first = upstream_of(&udp_ask(&sock, addr, "one").await);
    assert!(
        eventually(async || metric(&edge, "stream_active", &[("stream", "u")]) == 0.0).await,
        "the idle session is forgotten"
    );
    let second = upstream_of(&udp_ask(&sock, addr, "two").await);
    assert!(!second.is_empty());
    assert_ne!(first, second, "a new session is balanced afresh");
}

#[tokio::test]
async fn the_session_table_is_bounded() {
    let a = udp_echo("a").await;
    let edge = start(&udp_config(
        &targets(&[a.addr]),
        "idle_timeout_ms = 400\nmax_sessions = 2",
    ))
    .await;
    let addr = udp_addr(&edge, "127.0.0.1:0");
    let (c1, c2, c3) = (client().await, client().await, client().await);
    assert!(udp_ask(&c1, addr, "1").await.is_some());
    assert!(udp_ask(&c2, addr, "2").await.is_some());
    assert_eq!(
        udp_ask(&c3, addr, "3").await,
        None,
        "a third session is refused"
    );
    assert!(
        metric(
            &edge,
            "stream_refused_total",
            &[("reason", "session_limit")]
        ) >= 1.0
    );
    // Sessions 1 and 2 go idle and make room.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(udp_ask(&c3, addr, "3 again").await.is_some());
}

#[tokio::test]
async fn a_target_that_refuses_is_passed_over_for_new_sessions() {
    let a = udp_echo("a").await;
    let dead = {
        let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        s.local_addr().expect("addr")
    };
    let pool = format!(
        "{}\n[edge.pools.p.passive]\nfailures = 1\ncooldown_ms = 60000",
        targets(&[dead, a.addr])
    );
    let edge = start(&udp_config(&pool, "")).await;
    let addr = udp_addr(&edge, "127.0.0.1:0");
    let mut answered = 0;
    for i in 0..6 {
        let sock = client().await;
        if udp_ask(&sock, addr, &i.to_string()).await.is_some() {
            answered += 1;
        }
    }
    // The ICMP port unreachable of the first datagram ejects the dead target.
    assert!(answered >= 5, "{answered} of 6 answered");
    assert_eq!(
        metric(&edge, "ejections_total", &[("target", &dead.to_string())]),
        1.0
    );
}
