//! Load balancing against real upstreams: distribution per algorithm, active health checks,
//! passive ejection, retries (never after a body was sent), timeouts and the per-target cap.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::support::upstreams::*;

async fn get(c: &reqwest::Client, url: &str) -> (u16, String) {
    match c.get(url).send().await {
        Ok(r) => {
            let s = r.status().as_u16();
            let upstream = r
                .headers()
                .get("x-upstream")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            (s, upstream)
        }
        Err(_) => (0, String::new()),
    }
}

#[tokio::test]
async fn weighted_round_robin_splits_by_weight() {
    let (a, b, c) = (
        upstream("a").await,
        upstream("b").await,
        upstream("c").await,
    );
    let (_edge, addr) = edge(&pool_config(&[(a.addr, 1), (b.addr, 2), (c.addr, 3)], "")).await;
    let http = client();
    for _ in 0..600 {
        assert_eq!(get(&http, &format!("http://{addr}/x")).await.0, 200);
    }
    assert_eq!((a.hits(), b.hits(), c.hits()), (100, 200, 300));
}

#[tokio::test]
async fn least_connections_avoids_the_busy_target() {
    let (slow, fast) = (upstream("slow").await, upstream("fast").await);
    slow.b.delay_ms.store(400, Ordering::SeqCst);
    let (_edge, addr) = edge(&pool_config(
        &[(slow.addr, 1), (fast.addr, 1)],
        "algorithm = \"least_connections\"",
    ))
    .await;
    let http = client();
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let (http, url) = (http.clone(), format!("http://{addr}/x"));
        tasks.push(tokio::spawn(async move { get(&http, &url).await }));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for t in tasks {
        assert_eq!(t.await.expect("task").0, 200);
    }
    // The slow target holds its requests long, so new ones go to the fast one.
    assert!(
        slow.hits() <= 5,
        "slow {} fast {}",
        slow.hits(),
        fast.hits()
    );
    assert_eq!(slow.hits() + fast.hits(), 40);
}

#[tokio::test]
async fn peak_ewma_prefers_the_faster_target() {
    let (slow, fast) = (upstream("slow").await, upstream("fast").await);
    slow.b.delay_ms.store(60, Ordering::SeqCst);
    let (_edge, addr) = edge(&pool_config(
        &[(slow.addr, 1), (fast.addr, 1)],
        "algorithm = \"peak_ewma\"",
    ))
    .await;
    let http = client();
    for _ in 0..100 {
        assert_eq!(get(&http, &format!("http://{addr}/x")).await.0, 200);
    }
    assert!(
        fast.hits() >= 90,
        "slow {} fast {}",
        slow.hits(),
        fast.hits()
    );
}

#[tokio::test]
async fn consistent_hashing_keeps_each_key_on_one_target() {
    let ups = [
        upstream("a").await,
        upstream("b").await,
        upstream("c").await,
    ];
    let (_edge, addr) = edge(&pool_config(
        &[(ups[0].addr, 1), (ups[1].addr, 1), (ups[2].addr, 1)],
        "algorithm = \"consistent_hash\"\nhash_key = \"cookie:session\"",
    ))
    .await;
    let http = client();
    let mut owners = std::collections::HashSet::new();
    for user in 0..30 {
        let mut first = None;
        for _ in 0..4 {
            let r = http
                .get(format!("http://{addr}/x"))
                .header("cookie", format!("theme=dark; session=user{user}"))
                .send()
                .await
                .expect("send");
            let who = r.headers()["x-upstream"].to_str().expect("str").to_string();
            assert_eq!(*first.get_or_insert(who.clone()), who);
        }
        owners.insert(first.expect("owner"));
    }
    assert_eq!(owners.len(), 3, "sessions spread over every target");
}

#[tokio::test]
async fn active_health_checks_eject_and_bring_back_a_target() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    let (_edge, addr) = edge(&pool_config(
        &[(a.addr, 1), (b.addr, 1)],
        "[edge.pools.p.health]\npath = \"/health\"\ninterval_ms = 50\ntimeout_ms = 500\nrise = 2\nfall = 2",
    ))
    .await;
    let http = client();
    let url = format!("http://{addr}/x");
    a.b.unhealthy.store(true, Ordering::SeqCst);
    // Within a bounded wait, every request goes to b.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let all_b = {
            let mut ok = true;
            for _ in 0..6 {
                ok &= get(&http, &url).await.1 == "b";
            }
            ok
        };
        if all_b {
            break;
        }
        assert!(Instant::now() < deadline, "a was never taken out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = a.hits();
    for _ in 0..20 {
        assert_eq!(get(&http, &url).await, (200, "b".to_string()));
    }
    assert_eq!(a.hits(), before);
    a.b.unhealthy.store(false, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.hits() == before {
        assert!(Instant::now() < deadline, "a never came back");
        get(&http, &url).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn tcp_health_checks_take_out_a_dead_target() {
    let b = upstream("b").await;
    let dead = dead_address().await;
    let (_edge, addr) = edge(&pool_config(
        &[(dead, 1), (b.addr, 1)],
        "retries = 0\n[edge.pools.p.health]\ninterval_ms = 50\ntimeout_ms = 200\nrise = 1\nfall = 1",
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let http = client();
    for _ in 0..10 {
        assert_eq!(
            get(&http, &format!("http://{addr}/x")).await,
            (200, "b".into())
        );
    }
}

#[tokio::test]
async fn passive_ejection_after_consecutive_failures_then_recovery() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    a.b.fail.store(true, Ordering::SeqCst);
    let (_edge, addr) = edge(&pool_config(
        &[(a.addr, 1), (b.addr, 1)],
        "retries = 0\n[edge.pools.p.passive]\nfailures = 2\ncooldown_ms = 700",
    ))
    .await;
    let http = client();
    let url = format!("http://{addr}/x");
    let mut failures = 0;
    for _ in 0..20 {
        if get(&http, &url).await.0 != 200 {
            failures += 1;
        }
    }
    assert_eq!(failures, 2, "two failures eject a");
    assert_eq!(a.hits(), 2);
    a.b.fail.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(800)).await;
    for _ in 0..4 {
        assert_eq!(get(&http, &url).await.0, 200);
    }
    assert!(a.hits() > 2, "a is back after the cool-down");
}

#[tokio::test]
async fn idempotent_requests_are_retried_on_another_target() {
    let b = upstream("b").await;
    let dead = dead_address().await;
    let (edge, addr) = edge(&pool_config(&[(dead, 1), (b.addr, 1)], "retries = 1")).await;
    let http = client();
    for _ in 0..20 {
        assert_eq!(
            get(&http, &format!("http://{addr}/x")).await,
            (200, "b".into())
        );
    }
    assert_eq!(b.hits(), 20);
    let metrics = edge.metrics().render();
    assert!(
        metrics.contains("basalt_edge_retries_total{pool=\"p\"} 10"),
        "{metrics}"
    );
}

/// A pool of one target has no other target to retry on: the failure is answered at once,
/// and no retry is counted (one was counted, then abandoned, before).
#[tokio::test]
async fn a_single_target_pool_counts_no_retries() {
    let dead = dead_address().await;
    let (edge, addr) = edge(&pool_config(&[(dead, 1)], "retries = 2")).await;
    let http = client();
    for _ in 0..5 {
        assert_eq!(get(&http, &format!("http://{addr}/x")).await.0, 502);
    }
    let metrics = edge.metrics().render();
    assert!(
        !metrics.contains("basalt_edge_retries_total{pool=\"p\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn no_retry_after_a_body_was_sent() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    a.b.fail.store(true, Ordering::SeqCst);
    let (_edge, addr) = edge(&pool_config(&[(a.addr, 1), (b.addr, 1)], "retries = 3")).await;
    let http = client();
    let mut bad = 0;
    for _ in 0..10 {
        // PUT is idempotent, but its body reached the upstream: never resent.
        let r = http
            .put(format!("http://{addr}/x"))
            .body("payload")
            .send()
            .await
            .expect("send");
        if r.status() != 200 {
            assert_eq!(r.status(), 502);
            bad += 1;
        }
    }
    assert_eq!(bad, 5);
    assert_eq!(
        (a.hits(), b.hits()),
        (5, 5),
        "each request reached exactly one target"
    );
}

#[tokio::test]
async fn a_slow_upstream_times_out_with_504() {
    let a = upstream("a").await;
    a.b.delay_ms.store(3000, Ordering::SeqCst);
    let (_edge, addr) = edge(&pool_config(
        &[(a.addr, 1)],
        "retries = 0\nread_timeout_ms = 200",
    ))
    .await;
    // 504 (not the upstream's late 200): the edge's read timeout answered.
    let (status, _) = get(&client(), &format!("http://{addr}/x")).await;
    assert_eq!(status, 504);
}

#[tokio::test]
async fn a_target_that_never_accepts_hits_the_connect_timeout() {
    // A loopback listener whose accept queue is full: further SYNs are dropped, so a
    // connect hangs until the edge's connect timeout.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let silent = socket.listen(1).expect("listen");
    let target = silent.local_addr().expect("addr");
    let mut fillers = Vec::new();
    for _ in 0..8 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(target),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let (_edge, addr) = edge(&pool_config(
        &[(target, 1)],
        "retries = 0
connect_timeout_ms = 300
read_timeout_ms = 20000",
    ))
    .await;
    // 502 well before the 20 s read timeout could give a 504: the connect timed out.
    let (status, _) = get(&client(), &format!("http://{addr}/x")).await;
    assert_eq!(status, 502);
    drop(silent);
}

#[tokio::test]
async fn the_per_target_cap_answers_503_when_every_target_is_full() {
    let a = upstream("a").await;
    a.b.delay_ms.store(500, Ordering::SeqCst);
    let (_edge, addr) = edge(&pool_config(&[(a.addr, 1)], "max_requests_per_target = 2")).await;
    let http = client();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (http, url) = (http.clone(), format!("http://{addr}/x"));
        tasks.push(tokio::spawn(async move { get(&http, &url).await.0 }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    statuses.sort();
    assert_eq!(statuses, vec![200, 200, 503, 503, 503, 503]);
    assert_eq!(a.b.peak.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn forwarded_headers_set_and_hop_by_hop_headers_dropped() {
    let a = upstream("a").await;
    let (_edge, addr) = edge(&pool_config(&[(a.addr, 1)], "")).await;
    let r = client()
        .get(format!("http://{addr}/x?q=1"))
        .header("connection", "x-private")
        .header("x-private", "secret")
        .header("x-forwarded-for", "198.51.100.1")
        .header("te", "trailers")
        .send()
        .await
        .expect("send");
    let h = r.headers();
    assert_eq!(h["x-seen-x-forwarded-for"], "198.51.100.1, 127.0.0.1");
    assert_eq!(h["x-seen-x-forwarded-proto"], "http");
    assert_eq!(h["x-seen-x-forwarded-host"], format!("{addr}"));
    assert_eq!(h["x-seen-path"], "/x?q=1");
    assert!(h.get("x-seen-x-private").is_none());
    assert!(h.get("x-seen-te").is_none());
}

#[tokio::test]
async fn h2c_to_upstreams() {
    let a = upstream("a").await;
    let (_edge, addr) = edge(&pool_config(&[(a.addr, 1)], "protocol = \"h2c\"")).await;
    let r = client()
        .get(format!("http://{addr}/x"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.headers()["x-seen-version"], "HTTP/2.0");
}

#[tokio::test]
async fn no_healthy_target_is_a_503_in_pocketbase_shape() {
    let dead = dead_address().await;
    let (_edge, addr) = edge(&pool_config(
        &[(dead, 1)],
        "retries = 0\n[edge.pools.p.passive]\nfailures = 1\ncooldown_ms = 60000",
    ))
    .await;
    let http = client();
    assert_eq!(get(&http, &format!("http://{addr}/x")).await.0, 502);
    let r = http
        .get(format!("http://{addr}/x"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["status"], 503);
    assert!(body["message"].is_string());
}
