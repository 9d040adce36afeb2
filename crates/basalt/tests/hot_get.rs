//! The get-by-id hot path (basalt-api's `hot_get`) against the router's answer: an
//! anonymous `GET /api/collections/{c}/records/{id}` of an open collection must answer
//! byte for byte and header for header as the router does, keep request ids, CORS and
//! metrics, and never serve data older than an acknowledged write.

use basalt_testkit::TestServer;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_basalt");

/// Status, headers (without the per-request id and date) and body of a GET.
async fn get(s: &TestServer, path: &str, headers: &[(&str, &str)]) -> (u16, HeaderMap, String) {
    let mut req = s.http.get(s.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.expect("send");
    let status = res.status().as_u16();
    let mut h = res.headers().clone();
    h.remove("x-request-id");
    h.remove("date");
    (status, h, res.text().await.expect("body"))
}

/// The same read through the hot path (no query) and through the router (a query string
/// the view ignores sends it there).
async fn both(s: &TestServer, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let hot = get(s, path, headers).await;
    let routed = get(s, &format!("{path}?unused=1"), headers).await;
    assert_eq!(hot, routed, "{path}");
    (hot.0, hot.2)
}

async fn open_collection(s: &TestServer, su: &str) -> String {
    let (st, c) = s
        .call(
            "POST",
            "/api/collections",
            Some(su),
            Some(json!({"name": "notes", "listRule": "", "viewRule": "",
                "fields": [
                    {"name": "title", "type": "text"},
                    {"name": "views", "type": "number"},
                    {"name": "done", "type": "bool"},
                    {"name": "meta", "type": "json"},
                    {"name": "secret", "type": "text", "hidden": true},
                    {"name": "labels", "type": "select", "maxSelect": 3, "values": ["a", "b", "c"]},
                    {"name": "owner", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1}
                ]})),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    let (st, r) = s
        .call(
            "POST",
            "/api/collections/notes/records",
            Some(su),
            Some(
                json!({"title": "héllo \"quoted\" \u{1F600}", "views": 2.5, "done": true,
                "meta": {"a": [1, {"b": null}]}, "secret": "s3", "labels": ["a", "c"]}),
            ),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    r["id"].as_str().expect("id").to_string()
}

#[tokio::test]
async fn hot_reads_answer_exactly_as_the_router_does() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let id = open_collection(&s, &su).await;
    let path = format!("/api/collections/notes/records/{id}");
    let (st, body) = both(&s, &path, &[]).await;
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["title"], "héllo \"quoted\" \u{1F600}");
    assert_eq!(v["views"], 2.5);
    assert_eq!(v["meta"], json!({"a": [1, {"b": null}]}));
    assert_eq!(v["labels"], json!(["a", "c"]));
    assert!(v.get("secret").is_none(), "{v}");
    // By collection id, with CORS, and for a missing record (PocketBase's 404 shape).
    let by_id = format!(
        "/api/collections/{}/records/{id}",
        v["collectionId"].as_str().expect("cid")
    );
    assert_eq!(both(&s, &by_id, &[]).await.1, body);
    let (_, h, _) = get(&s, &path, &[("Origin", "https://app.example")]).await;
    assert_eq!(h["access-control-allow-origin"], "*");
    assert_eq!(h["access-control-expose-headers"], "x-request-id");
    both(&s, &path, &[("Origin", "https://app.example")]).await;
    let (st, missing) = both(&s, "/api/collections/notes/records/nope1234567890x", &[]).await;
    assert_eq!(st, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&missing).expect("json")["status"],
        404
    );
    // A GET with a body too large for the limit is refused as before (the router's 413),
    // on a connection of its own (the promised body never comes).
    let once = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let res = once
        .get(s.url(&path))
        .header("content-length", "999999999999")
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 413);
    // Unknown collections and escaped paths answer as before.
    assert_eq!(
        both(&s, "/api/collections/nothere/records/x", &[]).await.0,
        404
    );
    let escaped = format!("/api/collections/no%74es/records/{id}");
    assert_eq!(get(&s, &escaped, &[]).await.2, body);
}

#[tokio::test]
async fn auth_records_hide_the_email_on_the_hot_path_too() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (st, c) = s
        .call(
            "PATCH",
            "/api/collections/users",
            Some(&su),
            Some(json!({"viewRule": ""})),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    let mut ids = Vec::new();
    for (email, visible) in [("hidden@example.com", false), ("shown@example.com", true)] {
        let (st, u) = s
            .call(
                "POST",
                "/api/collections/users/records",
                None,
                Some(json!({"email": email,
                "password": "User-pass-123", "passwordConfirm": "User-pass-123",
                "emailVisibility": visible})),
            )
            .await;
        assert_eq!(st, 200, "{u}");
        ids.push(u["id"].as_str().expect("id").to_string());
    }
    let (_, hidden) = both(
        &s,
        &format!("/api/collections/users/records/{}", ids[0]),
        &[],
    )
    .await;
    let (_, shown) = both(
        &s,
        &format!("/api/collections/users/records/{}", ids[1]),
        &[],
    )
    .await;
    assert!(
        !hidden.contains("hidden@example.com") && !hidden.contains("password"),
        "{hidden}"
    );
    assert!(
        shown.contains("shown@example.com") && !shown.contains("tokenKey"),
        "{shown}"
    );
}

#[tokio::test]
async fn request_ids_rules_writes_and_metrics_stay_as_they_were() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let id = open_collection(&s, &su).await;
    let path = format!("/api/collections/notes/records/{id}");
    // A client's request id is kept, a missing one is made.
    let res = s
        .http
        .get(s.url(&path))
        .header("x-request-id", "client-id-1")
        .send()
        .await
        .expect("send");
    assert_eq!(res.headers()["x-request-id"], "client-id-1");
    let res = s.http.get(s.url(&path)).send().await.expect("send");
    assert!(!res.headers()["x-request-id"].is_empty());
    // An acknowledged write is what the next read sees.
    for n in 0..20 {
        let (st, _) = s
            .call("PATCH", &path, Some(&su), Some(json!({"views": n})))
            .await;
        assert_eq!(st, 200);
        let (st, v) = s.call("GET", &path, None, None).await;
        assert_eq!((st, v["views"].as_i64()), (200, Some(n)));
    }
    // A new field shows at once (the reader's remembered statement is the old table's).
    let (st, c) = s
        .call("GET", "/api/collections/notes", Some(&su), None)
        .await;
    assert_eq!(st, 200);
    let mut fields = c["fields"].as_array().expect("fields").clone();
    fields.push(json!({"name": "extra", "type": "text"}));
    let (st, c) = s
        .call(
            "PATCH",
            "/api/collections/notes",
            Some(&su),
            Some(json!({"fields": fields})),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    let (_, body) = both(&s, &path, &[]).await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json")["extra"],
        "",
        "{body}"
    );
    // A rule now guards the collection: the anonymous read goes through the rule (404).
    let (st, _) = s
        .call(
            "PATCH",
            "/api/collections/notes",
            Some(&su),
            Some(json!({"viewRule": "done = false"})),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(both(&s, &path, &[]).await.0, 404);
    let (st, _) = s
        .call(
            "PATCH",
            "/api/collections/notes",
            Some(&su),
            Some(json!({"viewRule": null})),
        )
        .await;
    assert_eq!(st, 200);
    let (st, body) = both(&s, &path, &[]).await;
    assert_eq!(st, 403, "{body}");
    // The superuser's token skips the hot path and still reads the record.
    let (st, v) = s.call("GET", &path, Some(&su), None).await;
    assert_eq!((st, v["id"].as_str()), (200, Some(id.as_str())));
    // A deleted record is gone from the hot path at once.
    let (st, _) = s.call("DELETE", &path, Some(&su), None).await;
    assert_eq!(st, 204);
    let (st, _) = s
        .call(
            "PATCH",
            "/api/collections/notes",
            Some(&su),
            Some(json!({"viewRule": ""})),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(both(&s, &path, &[]).await.0, 404);
    // Hot reads are counted under the route's pattern.
    let text = s.metrics_text().await;
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("basalt_http_requests_total{")
                && l.contains("route=\"/api/collections/{collection}/records/{id}\"")
                && l.contains("method=\"GET\"")
                && l.contains("status=\"200\"")
        })
        .unwrap_or_else(|| panic!("no counter of hot reads in {text}"));
    let count: f64 = line
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("count");
    assert!(count >= 22.0, "{line}");
}
