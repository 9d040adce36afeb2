//! PostgreSQL going away under a running node (issue 18, failure behaviour).
//!
//! While the database is down, requests that need it answer 503 in PocketBase's error
//! shape with `Retry-After`, and `/api/health` says the node is degraded. When the
//! database returns, the node serves again by itself, without a restart. A crash restart
//! (`pg_ctl restart -m immediate`) under write load loses no acknowledged write.
//!
//! Each test runs its own throwaway cluster (`scripts/pg.sh` on a private directory and
//! port), so stopping it disturbs no other test. The tests run where the shared cluster
//! does (`BASALT_TEST_PG_URL` set, as CI does), and pass with a notice elsewhere.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use basalt_testkit::TestServer;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_basalt");

/// A PostgreSQL cluster of one test's own, removed on drop.
struct Cluster {
    dir: PathBuf,
    port: u16,
    url: String,
}

impl Cluster {
    /// `None` (with a notice) where the PostgreSQL tests do not run.
    fn start() -> Option<Cluster> {
        basalt_testkit::pg::url()?;
        let port = basalt_testkit::free_port();
        let dir =
            std::env::temp_dir().join(format!("basalt-outage-pg-{}-{port}", std::process::id()));
        let mut c = Cluster {
            dir,
            port,
            url: String::new(),
        };
        c.url = c.pg("start").trim().to_string();
        Some(c)
    }

    /// `scripts/pg.sh CMD` on this cluster.
    fn command(&self, cmd: &str) -> Command {
        let mut c = Command::new("bash");
        c.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/pg.sh"))
            .arg(cmd)
            .env("BASALT_PG_DIR", &self.dir)
            .env("BASALT_PG_PORT", self.port.to_string());
        c
    }

    /// Runs `scripts/pg.sh CMD` on this cluster; its standard output.
    fn pg(&self, cmd: &str) -> String {
        let out = self.command(cmd).output().expect("run scripts/pg.sh");
        assert!(
            out.status.success(),
            "pg.sh {cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.command("stop").output();
    }
}

/// A node on `c` with an open `notes` collection; its superuser token.
async fn node(c: &Cluster) -> (TestServer, String) {
    let s = TestServer::start_with_env(BIN, &[("BASALT_DATABASE_URL", &c.url)]).await;
    let su = s.superuser_token().await;
    let (st, body) = s
        .call(
            "POST",
            "/api/collections",
            Some(&su),
            Some(json!({
                "name": "notes", "type": "base",
                "listRule": "", "viewRule": "", "createRule": "",
                "fields": [{"name": "text", "type": "text"}],
            })),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    (s, su)
}

/// Status, `Retry-After` and JSON body of a request.
async fn fetch(
    s: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Option<String>, Value) {
    let client = reqwest::Client::new();
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client
        .request(m, s.url(path))
        .timeout(Duration::from_secs(30));
    if let Some(t) = token {
        req = req.header("Authorization", t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req
        .send()
        .await
        .expect("the node answers while the database is away");
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = res.text().await.unwrap_or_default();
    (
        status,
        retry,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// Every id in `notes`, page by page.
async fn all_ids(s: &TestServer) -> Vec<String> {
    let mut ids = Vec::new();
    for page in 1.. {
        let (st, body) = s
            .call(
                "GET",
                &format!("/api/collections/notes/records?perPage=500&page={page}&skipTotal=1"),
                None,
                None,
            )
            .await;
        assert_eq!(st, 200, "{body}");
        let items = body["items"].as_array().expect("items").clone();
        ids.extend(
            items
                .iter()
                .filter_map(|r| r["id"].as_str().map(str::to_string)),
        );
        if items.len() < 500 {
            return ids;
        }
    }
    unreachable!()
}

/// Polls until the node's health check says healthy again (bounded).
async fn wait_healthy(s: &TestServer) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (st, _, _) = fetch(s, "GET", "/api/health", None, None).await;
        if st == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the node did not recover by itself"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_node_answers_503_while_the_database_is_away_and_recovers_by_itself() {
    let Some(c) = Cluster::start() else {
        return;
    };
    let (s, su) = node(&c).await;
    let (st, before) = s
        .call(
            "POST",
            "/api/collections/notes/records",
            None,
            Some(json!({"text": "before"})),
        )
        .await;
    assert_eq!(st, 200, "{before}");

    c.pg("halt");
    let (st, retry, body) = fetch(&s, "GET", "/api/health", None, None).await;
    assert_eq!(st, 503, "{body}");
    assert_eq!(body["data"]["reason"], "database_unreachable", "{body}");
    assert!(
        retry.is_some(),
        "a degraded health check says when to retry"
    );
    let writes = fetch(
        &s,
        "POST",
        "/api/collections/notes/records",
        None,
        Some(json!({"text": "during"})),
    )
    .await;
    let reads = fetch(&s, "GET", "/api/collections/notes/records", None, None).await;
    // The superuser's token is checked against the database too: unavailable, not 401.
    let admin = fetch(&s, "GET", "/api/collections", Some(&su), None).await;
    for (what, (st, retry, body)) in [("write", writes), ("read", reads), ("admin", admin)] {
        assert_eq!(st, 503, "{what}: {body}");
        assert_eq!(
            body["status"], 503,
            "{what}: PocketBase's error shape: {body}"
        );
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
        assert_eq!(body["data"], json!({}), "{what}: {body}");
        assert_eq!(retry.as_deref(), Some("2"), "{what}: Retry-After");
    }

    c.pg("resume");
    wait_healthy(&s).await;
    let (st, after) = s
        .call(
            "POST",
            "/api/collections/notes/records",
            None,
            Some(json!({"text": "after"})),
        )
        .await;
    assert_eq!(st, 200, "{after}");
    let mut ids = all_ids(&s).await;
    ids.sort();
    let mut expected = vec![
        before["id"].as_str().expect("id").to_string(),
        after["id"].as_str().expect("id").to_string(),
    ];
    expected.sort();
    assert_eq!(ids, expected, "the refused write stored nothing");
    let (st, _) = s.call("GET", "/api/collections", Some(&su), None).await;
    assert_eq!(st, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_restart_under_writes_loses_no_acknowledged_write() {
    let Some(c) = Cluster::start() else {
        return;
    };
    let (s, _) = node(&c).await;
    let s = Arc::new(s);
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<(Instant, String)>::new()));
    let unexpected = Arc::new(Mutex::new(Vec::<String>::new()));
    let refused = Arc::new(Mutex::new(0u32));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (s, stop, acked, unexpected, refused) = (
                s.clone(),
                stop.clone(),
                acked.clone(),
                unexpected.clone(),
                refused.clone(),
            );
            tokio::spawn(async move {
                // Bounded: the stop flag, else 5000 writes each.
                for k in 0..5000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let (st, _, body) = fetch(
                        &s,
                        "POST",
                        "/api/collections/notes/records",
                        None,
                        Some(json!({"text": format!("w{w}-{k}")})),
                    )
                    .await;
                    match st {
                        200 => acked
                            .lock()
                            .expect("acked")
                            .push((Instant::now(), body["id"].as_str().expect("id").to_string())),
                        503 => {
                            *refused.lock().expect("refused") += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        _ => unexpected
                            .lock()
                            .expect("unexpected")
                            .push(format!("{st} {body}")),
                    }
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(700)).await;
    let cluster = Arc::new(c);
    let crashed = {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || cluster.pg("crash-restart"))
    };
    crashed.await.expect("crash restart");
    let restarted = Instant::now();
    // Writes go on until some are acknowledged after the restart (bounded).
    let deadline = restarted + Duration::from_secs(60);
    loop {
        let after = acked
            .lock()
            .expect("acked")
            .iter()
            .filter(|(t, _)| *t > restarted)
            .count();
        if after >= 20 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no write was acknowledged after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.expect("writer");
    }

    let unexpected = unexpected.lock().expect("unexpected").clone();
    assert!(unexpected.is_empty(), "only 200s and 503s: {unexpected:?}");
    let stored: std::collections::HashSet<String> = all_ids(&s).await.into_iter().collect();
    let acked = acked.lock().expect("acked").clone();
    let missing: Vec<_> = acked
        .iter()
        .filter(|(_, id)| !stored.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost",
        missing.len(),
        acked.len()
    );
    eprintln!(
        "{} writes acknowledged, {} refused with 503 during the restart",
        acked.len(),
        refused.lock().expect("refused")
    );
}
