//! Reload: the admin endpoint re-reads the file and swaps the snapshot atomically; an
//! invalid file is rejected and the old configuration keeps serving; requests under load
//! never fail; a WebSocket through the proxy stays open across a reload; the admin
//! listener's token.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::upstreams::*;
use basalt_edge::{ConfigSource, Edge, EdgeError};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// An edge whose configuration lives in a file, with an admin listener.
async fn edge_from_file(path: PathBuf, toml: &str) -> (Edge, std::net::SocketAddr) {
    std::fs::write(&path, toml).expect("write config");
    let p = path.clone();
    let source: ConfigSource = Arc::new(move || {
        let text = std::fs::read_to_string(&p).map_err(|e| EdgeError::Config(e.to_string()))?;
        edge_config::parse(&text)
    });
    let edge = Edge::start(source().expect("valid"), None, Some(source))
        .await
        .expect("start");
    let addr = edge.local_addrs()[0];
    (edge, addr)
}

fn with_admin(toml: &str) -> String {
    format!("{toml}\n[edge.admin]\nlisten = \"127.0.0.1:0\"\n")
}

async fn reload(admin: std::net::SocketAddr) -> (u16, String) {
    let r = client()
        .post(format!("http://{admin}/reload"))
        .send()
        .await
        .expect("reload");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

#[tokio::test]
async fn reload_applies_a_new_pool_and_rejects_an_invalid_file() {
    let dir = tempfile::tempdir().expect("dir");
    let (a, b) = (upstream("a").await, upstream("b").await);
    let path = dir.path().join("edge.toml");
    let (edge, addr) =
        edge_from_file(path.clone(), &with_admin(&pool_config(&[(a.addr, 1)], ""))).await;
    let admin = edge.admin_addr().expect("admin");
    let http = client();
    let who = |r: reqwest::Response| r.headers()["x-upstream"].to_str().expect("s").to_string();
    assert_eq!(
        who(http
            .get(format!("http://{addr}/"))
            .send()
            .await
            .expect("send")),
        "a"
    );

    std::fs::write(&path, with_admin(&pool_config(&[(b.addr, 1)], ""))).expect("write");
    assert_eq!(reload(admin).await.0, 200);
    assert_eq!(
        who(http
            .get(format!("http://{addr}/"))
            .send()
            .await
            .expect("send")),
        "b"
    );

    // Invalid: an unknown key, then a route to a missing pool. Both refused, b still serves.
    for broken in [
        "[edge]\nbogus = 1\n".to_string(),
        with_admin(&pool_config(&[(b.addr, 1)], "")).replace("pool = \"p\"", "pool = \"nope\""),
    ] {
        std::fs::write(&path, broken).expect("write");
        let (status, body) = reload(admin).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("invalid edge configuration"), "{body}");
        assert_eq!(
            who(http
                .get(format!("http://{addr}/"))
                .send()
                .await
                .expect("send")),
            "b"
        );
    }
    let metrics = http
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("basalt_edge_requests_total{route=\"all\",status=\"200\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("basalt_edge_upstream_requests_total"),
        "{metrics}"
    );
    assert!(metrics.contains("basalt_edge_target_healthy"), "{metrics}");
    // The exposition format is checked by promtool where CI installed it.
    if let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(metrics.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("promtool");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn reload_under_load_fails_no_request() {
    let dir = tempfile::tempdir().expect("dir");
    let (a, b) = (upstream("a").await, upstream("b").await);
    let path = dir.path().join("edge.toml");
    let cfg_a = with_admin(&pool_config(&[(a.addr, 1)], ""));
    let cfg_b = with_admin(&pool_config(&[(b.addr, 1)], ""));
    let (edge, addr) = edge_from_file(path.clone(), &cfg_a).await;
    let admin = edge.admin_addr().expect("admin");
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let stop_at = Instant::now() + Duration::from_secs(3);
    let mut workers = Vec::new();
    // 8 workers, at most 250 requests each (2000 in all), over at most 3 s.
    for _ in 0..8 {
        let (ok, failed, http) = (ok.clone(), failed.clone(), client());
        let url = format!("http://{addr}/x");
        workers.push(tokio::spawn(async move {
            for _ in 0..250 {
                if Instant::now() > stop_at {
                    break;
                }
                match http.get(&url).send().await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::SeqCst),
                    _ => failed.fetch_add(1, Ordering::SeqCst),
                };
            }
        }));
    }
    let mut reloads = 0;
    while Instant::now() < stop_at - Duration::from_millis(300) && reloads < 20 {
        let cfg = if reloads % 2 == 0 { &cfg_b } else { &cfg_a };
        std::fs::write(&path, cfg).expect("write");
        assert_eq!(reload(admin).await.0, 200);
        reloads += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for w in workers {
        w.await.expect("worker");
    }
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    assert!(
        ok.load(Ordering::SeqCst) > 100,
        "load ran: {}",
        ok.load(Ordering::SeqCst)
    );
    assert!(reloads >= 5);
    assert!(a.hits() > 0 && b.hits() > 0, "both configurations served");
}

#[tokio::test]
async fn a_websocket_stays_open_across_a_reload() {
    let dir = tempfile::tempdir().expect("dir");
    let ws_up = websocket_upstream().await;
    let other = upstream("other").await;
    let path = dir.path().join("edge.toml");
    let (edge, addr) =
        edge_from_file(path.clone(), &with_admin(&pool_config(&[(ws_up, 1)], ""))).await;
    let admin = edge.admin_addr().expect("admin");
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut ws, resp) = tokio_tungstenite::client_async(format!("ws://{addr}/socket"), tcp)
        .await
        .expect("websocket through the edge");
    assert_eq!(resp.status(), 101);
    ws.send(Message::text("before")).await.expect("send");
    assert_eq!(
        ws.next().await.expect("msg").expect("ok"),
        Message::text("before")
    );
    // The new configuration sends new requests elsewhere; the open stream is untouched.
    std::fs::write(&path, with_admin(&pool_config(&[(other.addr, 1)], ""))).expect("write");
    assert_eq!(reload(admin).await.0, 200);
    for i in 0..5 {
        let text = format!("after {i}");
        ws.send(Message::text(text.clone())).await.expect("send");
        let echoed = tokio::time::timeout(Duration::from_secs(3), ws.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("ok");
        assert_eq!(echoed, Message::text(text));
    }
    let r = client()
        .get(format!("http://{addr}/x"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.headers()["x-upstream"], "other");
    ws.close(None).await.expect("close");
}

/// The admin listener with a token: every endpoint answers 401 in PocketBase's error shape
/// without the right bearer token, and works with it; a listener on a non-loopback
/// address without a token is refused at start, naming the key (issue 15).
#[tokio::test]
async fn the_admin_listener_needs_its_token() {
    const TOKEN: &str = "admin-token-0123456789";
    let dir = tempfile::tempdir().expect("dir");
    let a = upstream("a").await;
    let toml = format!(
        "{}\n[edge.admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n",
        pool_config(&[(a.addr, 1)], "")
    );
    let (edge, _) = edge_from_file(dir.path().join("edge.toml"), &toml).await;
    let admin = edge.admin_addr().expect("admin");
    let http = client();
    let wrong = format!("{}x", &TOKEN[..TOKEN.len() - 1]);
    for (method, path) in [
        (reqwest::Method::POST, "/reload"),
        (reqwest::Method::GET, "/metrics"),
        (reqwest::Method::GET, "/health"),
        (reqwest::Method::POST, "/cache/purge"),
    ] {
        for auth in [
            None,
            Some(format!("Bearer {wrong}")),
            Some(TOKEN.to_string()),
        ] {
            let mut req = http.request(method.clone(), format!("http://{admin}{path}"));
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            let r = req.send().await.expect("admin request");
            assert_eq!(r.status().as_u16(), 401, "{path} with {auth:?}");
            assert_eq!(r.headers()["www-authenticate"], "Bearer");
            let body: serde_json::Value = r.json().await.expect("json");
            assert_eq!(body["status"], 401);
            assert!(
                body["message"].is_string() && body["data"].is_object(),
                "{body}"
            );
        }
    }
    let authed = |method: reqwest::Method, path: &str| {
        http.request(method, format!("http://{admin}{path}"))
            .bearer_auth(TOKEN)
    };
    let r = authed(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .expect("metrics");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().await.expect("text").contains("basalt_edge_"));
    let r = authed(reqwest::Method::POST, "/reload")
        .send()
        .await
        .expect("reload");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        authed(reqwest::Method::GET, "/health")
            .send()
            .await
            .expect("health")
            .status()
            .as_u16(),
        200
    );

    for (admin, key) in [
        ("listen = \"0.0.0.0:0\"", "edge.admin.token"),
        ("listen = \"0.0.0.0:0\"\ntoken = \"\"", "edge.admin.token"),
        (
            "listen = \"127.0.0.1:0\"\ntoken = \"short\"",
            "edge.admin.token",
        ),
    ] {
        let toml = format!(
            "{}\n[edge.admin]\n{admin}\n",
            pool_config(&[(a.addr, 1)], "")
        );
        let cfg = edge_config::parse(&toml).expect("parses");
        let e = Edge::start(cfg, None, None)
            .await
            .err()
            .unwrap_or_else(|| panic!("{admin}: started"))
            .to_string();
        assert!(e.contains(key), "{admin}: {e}");
    }
}
