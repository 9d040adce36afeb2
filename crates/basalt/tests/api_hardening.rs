//! Issue 15's API findings, each test named after what broke: OAuth2 client secrets in
//! collection answers, `sqlite_*` collection names answered with a 500, responses without
//! `X-Content-Type-Options: nosniff`, auth records taking ids of other auth collections,
//! emails unique only by exact spelling, and a change log keeping password hashes and
//! token keys forever. Results are checked on the real binary, the database read with
//! rusqlite where the API cannot tell.

use std::path::Path;

use basalt_testkit::TestServer;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_basalt");
const CLIENT_SECRET: &str = "github-client-secret-do-not-show";
const PRIVATE_KEY: &str = "-----BEGIN PRIVATE KEY-----apple-key-do-not-show";

fn db(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("data.db")).expect("open data.db")
}

/// The stored document of collection `name`, secrets included.
fn stored_doc(dir: &Path, name: &str) -> Value {
    let doc: String = db(dir)
        .query_row("SELECT doc FROM _collections WHERE name = ?", [name], |r| {
            r.get(0)
        })
        .expect("collection row");
    serde_json::from_str(&doc).expect("document")
}

#[tokio::test]
async fn oauth2_client_secrets_were_shown_by_the_collections_api() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let providers = json!({"enabled": true, "providers": [
        {"name": "github", "clientId": "gh-id", "clientSecret": CLIENT_SECRET},
        {"name": "apple", "clientId": "com.example",
         "extra": {"teamId": "TEAM", "keyId": "KEY", "privateKey": PRIVATE_KEY}}
    ]});
    let leaks = |v: &Value| {
        let t = v.to_string();
        t.contains(CLIENT_SECRET) || t.contains(PRIVATE_KEY) || t.contains("clientSecret")
    };
    let (st, body) = s
        .call(
            "PATCH",
            "/api/collections/users",
            Some(&su),
            Some(json!({"oauth2": providers})),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert!(!leaks(&body), "update answer: {body}");
    assert_eq!(body["oauth2"]["providers"][0]["clientId"], "gh-id");
    assert_eq!(body["oauth2"]["providers"][1]["extra"]["teamId"], "TEAM");
    let (st, created) = s
        .call(
            "POST",
            "/api/collections",
            Some(&su),
            Some(json!({"name": "members", "type": "auth", "oauth2": providers})),
        )
        .await;
    assert_eq!(st, 200, "{created}");
    assert!(!leaks(&created), "create answer: {created}");
    for path in [
        "/api/collections/users",
        "/api/collections/members",
        "/api/collections",
        "/api/collections?filter=name%3D%22users%22",
    ] {
        let (st, body) = s.call("GET", path, Some(&su), None).await;
        assert_eq!(st, 200, "{path}: {body}");
        assert!(!leaks(&body), "{path}: {body}");
    }
    let kept = |s: &TestServer| {
        let doc = stored_doc(s.data_dir(), "users");
        let p = &doc["oauth2"]["providers"];
        p[0]["clientSecret"] == CLIENT_SECRET && p[1]["extra"]["privateKey"] == PRIVATE_KEY
    };
    assert!(kept(&s), "stored: {}", stored_doc(s.data_dir(), "users"));

    // Updates that send the document back as read (without secrets) keep them.
    let (_, read) = s
        .call("GET", "/api/collections/users", Some(&su), None)
        .await;
    for patch in [
        json!({"listRule": "id = @request.auth.id"}),
        json!({"oauth2": read["oauth2"].clone()}),
        json!({"oauth2": {"enabled": false}}),
        json!({"oauth2": {"enabled": true}}),
    ] {
        let (st, body) = s
            .call(
                "PATCH",
                "/api/collections/users",
                Some(&su),
                Some(patch.clone()),
            )
            .await;
        assert_eq!(st, 200, "{patch}: {body}");
        assert_eq!(
            body["oauth2"]["providers"].as_array().map(Vec::len),
            Some(2)
        );
        assert!(kept(&s), "{patch} lost a secret");
    }
    let (st, _) = s
        .call(
            "PUT",
            "/api/collections/import",
            Some(&su),
            Some(json!({"collections": [read]})),
        )
        .await;
    assert_eq!(st, 204);
    assert!(kept(&s), "an import of the document as read lost a secret");

    // An explicitly empty secret is refused (PocketBase: validation_required), unchanged.
    let (st, body) = s
        .call(
            "PATCH",
            "/api/collections/users",
            Some(&su),
            Some(json!({"oauth2": {"providers": [
                {"name": "github", "clientId": "gh-id", "clientSecret": ""}]}})),
        )
        .await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(
        body["data"]["oauth2"]["providers"]["0"]["clientSecret"]["code"],
        "validation_required"
    );
    assert!(kept(&s));
    // A removed provider takes its secret with it.
    let (st, body) = s
        .call(
            "PATCH",
            "/api/collections/users",
            Some(&su),
            Some(json!({"oauth2": {"providers": []}})),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let (st, body) = s
        .call(
            "PATCH",
            "/api/collections/users",
            Some(&su),
            Some(json!({"oauth2": {"providers": [{"name": "github", "clientId": "gh-id"}]}})),
        )
        .await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(
        body["data"]["oauth2"]["providers"]["0"]["clientSecret"]["code"],
        "validation_required"
    );
}

#[tokio::test]
async fn sqlite_reserved_collection_names_answered_500() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (_, before) = s.call("GET", "/api/collections", Some(&su), None).await;
    let invalid_name = |body: &Value| {
        body["data"]["name"]["code"] == "validation_collection_name_invalid"
            && body["status"] == 400
    };
    // `idx_email__pb_users_auth_` is an index of `users`: SQLite shares the namespace.
    for name in [
        "sqlite_master",
        "sqlite_stat1",
        "sqlite_sequence",
        "SQLITE_anything",
        "idx_email__pb_users_auth_",
    ] {
        for kind in ["base", "auth", "view"] {
            let (st, body) = s
                .call(
                    "POST",
                    "/api/collections",
                    Some(&su),
                    Some(json!({"name": name, "type": kind, "viewQuery": "SELECT id FROM users"})),
                )
                .await;
            assert_eq!(st, 400, "{name} ({kind}): {body}");
            assert!(invalid_name(&body), "{name} ({kind}): {body}");
        }
    }
    let (st, body) = s
        .call(
            "POST",
            "/api/collections",
            Some(&su),
            Some(json!({"name": "notes"})),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    for name in [
        "sqlite_stat1",
        "Sqlite_notes",
        "idx_tokenKey__pb_users_auth_",
    ] {
        let (st, body) = s
            .call(
                "PATCH",
                "/api/collections/notes",
                Some(&su),
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(st, 400, "rename to {name}: {body}");
        assert!(invalid_name(&body), "rename to {name}: {body}");
    }
    let (st, body) = s
        .call(
            "PUT",
            "/api/collections/import",
            Some(&su),
            Some(json!({"collections": [{"name": "sqlite_stat1"}]})),
        )
        .await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(
        body["data"]["collections"]["0"]["name"]["code"], "validation_collection_name_invalid",
        "{body}"
    );
    // Nothing changed but `notes`; a case-only rename of it still works.
    let (_, after) = s.call("GET", "/api/collections", Some(&su), None).await;
    assert_eq!(
        after["totalItems"],
        before["totalItems"].as_u64().unwrap() + 1
    );
    let (st, body) = s
        .call(
            "PATCH",
            "/api/collections/notes",
            Some(&su),
            Some(json!({"name": "Notes"})),
        )
        .await;
    assert_eq!(st, 200, "{body}");
}

#[tokio::test]
async fn api_responses_lacked_x_content_type_options_nosniff() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (st, c) = s
        .call(
            "POST",
            "/api/collections",
            Some(&su),
            Some(json!({"name": "notes", "listRule": "", "viewRule": "",
                "fields": [{"name": "title", "type": "text"}]})),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    let (st, r) = s
        .call(
            "POST",
            "/api/collections/notes/records",
            Some(&su),
            Some(json!({"title": "x"})),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    let id = r["id"].as_str().unwrap();
    let hot = format!("/api/collections/notes/records/{id}");
    let cases: Vec<(reqwest::Method, String, Option<&str>)> = vec![
        (reqwest::Method::GET, "/api/health".into(), None),
        (reqwest::Method::GET, hot.clone(), None),
        (reqwest::Method::GET, format!("{hot}?fields=id"), None),
        (
            reqwest::Method::GET,
            "/api/collections/notes/records/nope".into(),
            None,
        ),
        (
            reqwest::Method::GET,
            "/api/collections/notes/records".into(),
            None,
        ),
        (reqwest::Method::GET, "/api/collections".into(), None),
        (
            reqwest::Method::GET,
            "/api/collections".into(),
            Some(su.as_str()),
        ),
        (reqwest::Method::GET, "/api/nowhere".into(), None),
        (
            reqwest::Method::POST,
            "/api/collections/users/auth-with-password".into(),
            None,
        ),
        (reqwest::Method::GET, "/metrics".into(), None),
    ];
    for (method, path, token) in cases {
        let mut req = s.http.request(method.clone(), s.url(&path));
        if let Some(t) = token {
            req = req.header("Authorization", t);
        }
        let res = req.send().await.expect("send");
        assert_eq!(
            res.headers()
                .get("x-content-type-options")
                .map(|v| v.as_bytes()),
            Some(&b"nosniff"[..]),
            "{method} {path} ({})",
            res.status()
        );
    }
    // A CORS preflight and the realtime stream's head.
    let res = s
        .http
        .request(
            reqwest::Method::OPTIONS,
            s.url("/api/collections/notes/records"),
        )
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .expect("preflight");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    let res = s
        .http
        .get(s.url("/api/realtime"))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .expect("realtime");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
}
