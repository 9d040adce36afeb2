//! Client protection over real sockets: rate limits (429 with Retry-After, never reaching
//! the upstream), IP deny/allow lists, and the client address from trusted proxies only.

use crate::support::upstreams::*;

#[tokio::test]
async fn rate_limits_by_client_ip_and_by_header() {
    let a = upstream("a").await;
    let cfg = format!(
        "{}\n[[edge.rate_limits]]\nname = \"per_ip\"\nburst = 3\nperiod_ms = 60000\nroutes = [\"all\"]\n[[edge.rate_limits]]\nname = \"per_key\"\nburst = 2\nperiod_ms = 60000\nkey = \"header:x-api-key\"\n",
        pool_config(&[(a.addr, 1)], "")
    );
    let (edge, addr) = edge(&cfg).await;
    let http = client();
    let mut statuses = vec![];
    for i in 0..5 {
        let r = http
            .get(format!("http://{addr}/"))
            .header("x-api-key", format!("k{}", i % 2))
            .send()
            .await
            .expect("send");
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
            let body: serde_json::Value = r.json().await.expect("json");
            assert_eq!(body["status"], 429);
            statuses.push(429);
        } else {
            statuses.push(r.status().as_u16());
        }
    }
    // The per-IP limit (3) runs out first; keys k0/k1 each stayed within 2.
    assert_eq!(statuses, vec![200, 200, 200, 429, 429]);
    assert_eq!(a.hits(), 3);
    assert!(
        edge.metrics()
            .render()
            .contains("basalt_edge_rejected_total{reason=\"rate_limited\"} 2")
    );
}

#[tokio::test]
async fn deny_lists_and_trusted_proxies() {
    let a = upstream("a").await;
    // The test client is 127.0.0.1: trusted as a proxy, so X-Forwarded-For is believed.
    let cfg = format!(
        "{}\n[edge.clients]\ntrusted_proxies = [\"127.0.0.1/32\"]\ndeny = [\"203.0.113.0/24\", \"2001:db8:bad::/48\"]\n",
        pool_config(&[(a.addr, 1)], "")
    );
    let (_edge, addr) = edge(&cfg).await;
    let http = client();
    let status = |xff: &'static str| {
        let http = http.clone();
        async move {
            http.get(format!("http://{addr}/"))
                .header("x-forwarded-for", xff)
                .send()
                .await
                .expect("send")
                .status()
                .as_u16()
        }
    };
    assert_eq!(status("203.0.113.7").await, 403);
    assert_eq!(status("2001:db8:bad::1").await, 403);
    assert_eq!(status("198.51.100.1").await, 200);
    // A forged left-most hop does not help: the right-most untrusted hop is the client.
    assert_eq!(status("198.51.100.1, 203.0.113.7").await, 403);
    assert_eq!(status("203.0.113.7, 198.51.100.1").await, 200);

    // Without trust, the header is ignored and the peer (127.0.0.1) is the client.
    let cfg = format!(
        "{}\n[edge.clients]\ndeny = [\"203.0.113.0/24\"]\nallow = [\"127.0.0.0/8\"]\n",
        pool_config(&[(a.addr, 1)], "")
    );
    let (_edge, addr2) = edge(&cfg).await;
    let r = http
        .get(format!("http://{addr2}/"))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let cfg = format!(
        "{}\n[edge.clients]\nallow = [\"10.0.0.0/8\"]\n",
        pool_config(&[(a.addr, 1)], "")
    );
    let (_edge, addr3) = edge(&cfg).await;
    let r = http
        .get(format!("http://{addr3}/"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
}
