//! Issue 15's API findings, each test named after what broke: OAuth2 client secrets in
//! collection answers, `sqlite_*` collection names answered with a 500, responses without
//! `X-Content-Type-Options: nosniff`, auth records taking ids of other auth collections,
//! emails unique only by exact spelling, and a change log keeping password hashes and
//! token keys forever. Results are checked on the real binary, the database read with
//! rusqlite where the API cannot tell.

use std::path::Path;
use std::process::Command;

use basalt_testkit::{SUPERUSER_EMAIL, TestServer};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_basalt");
const CLIENT_SECRET: &str = "github-client-secret-do-not-show";
const PRIVATE_KEY: &str = "-----BEGIN PRIVATE KEY-----apple-key-do-not-show";
const PASSWORD: &str = "User-pass-123";

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

async fn create_user(s: &TestServer, su: &str, body: Value) -> (u16, Value) {
    let mut body = body;
    body["password"] = json!(PASSWORD);
    body["passwordConfirm"] = json!(PASSWORD);
    s.call(
        "POST",
        "/api/collections/users/records",
        Some(su),
        Some(body),
    )
    .await
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

#[tokio::test]
async fn auth_records_could_take_the_id_of_another_auth_collections_record() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (_, me) = s
        .call(
            "GET",
            "/api/collections/_superusers/records",
            Some(&su),
            None,
        )
        .await;
    let su_id = me["items"][0]["id"]
        .as_str()
        .expect("superuser id")
        .to_string();
    let refused = |st: u16, body: &Value| {
        st == 400
            && body["data"]["id"]["code"] == "validation_invalid_auth_id"
            && body["data"]["id"]["message"] == "Invalid or duplicated auth record id."
            && body["message"] == "Failed to create record."
    };
    // A user (anonymous sign-up or created by a superuser) with a superuser's id.
    let (st, body) = s
        .call(
            "POST",
            "/api/collections/users/records",
            None,
            Some(json!({"id": su_id, "email": "a@example.com",
                "password": PASSWORD, "passwordConfirm": PASSWORD})),
        )
        .await;
    assert!(refused(st, &body), "{st} {body}");
    let (st, body) = create_user(&s, &su, json!({"id": su_id, "email": "a@example.com"})).await;
    assert!(refused(st, &body), "{st} {body}");
    // The reverse: a superuser with a user's id; and a third auth collection.
    let (st, user) = create_user(
        &s,
        &su,
        json!({"id": "useridaaaaaaaa1", "email": "u@example.com"}),
    )
    .await;
    assert_eq!(st, 200, "{user}");
    let (st, body) = s
        .call(
            "POST",
            "/api/collections/_superusers/records",
            Some(&su),
            Some(json!({"id": "useridaaaaaaaa1", "email": "su2@example.com",
                "password": PASSWORD, "passwordConfirm": PASSWORD})),
        )
        .await;
    assert!(refused(st, &body), "{st} {body}");
    let (st, body) = s
        .call(
            "POST",
            "/api/collections",
            Some(&su),
            Some(json!({"name": "members", "type": "auth", "createRule": ""})),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let (st, body) = s
        .call(
            "POST",
            "/api/collections/members/records",
            None,
            Some(json!({"id": "useridaaaaaaaa1", "email": "m@example.com",
                "password": PASSWORD, "passwordConfirm": PASSWORD})),
        )
        .await;
    assert!(refused(st, &body), "{st} {body}");
    // A batch with the colliding create changes nothing.
    let (st, body) = s
        .call(
            "PATCH",
            "/api/settings",
            Some(&su),
            Some(json!({"batch": {"enabled": true, "maxRequests": 10}})),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let (st, body) = s
        .call(
            "POST",
            "/api/batch",
            Some(&su),
            Some(json!({"requests": [
                {"method": "POST", "url": "/api/collections/members/records",
                 "body": {"email": "ok@example.com", "password": PASSWORD, "passwordConfirm": PASSWORD}},
                {"method": "POST", "url": "/api/collections/members/records",
                 "body": {"id": su_id, "email": "m2@example.com", "password": PASSWORD, "passwordConfirm": PASSWORD}}
            ]})),
        )
        .await;
    assert_eq!(st, 400, "{body}");
    let (_, list) = s
        .call("GET", "/api/collections/members/records", Some(&su), None)
        .await;
    assert_eq!(list["totalItems"], 0, "{list}");
    // Ids of other (non-auth) collections stay free to share.
    let (st, body) = s
        .call(
            "POST",
            "/api/collections",
            Some(&su),
            Some(json!({"name": "notes", "createRule": ""})),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let (st, body) = s
        .call(
            "POST",
            "/api/collections/notes/records",
            None,
            Some(json!({"id": su_id})),
        )
        .await;
    assert_eq!(st, 200, "{body}");
}

#[tokio::test]
async fn emails_differing_only_in_case_registered_as_two_accounts() {
    let mut s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (st, alice) = create_user(&s, &su, json!({"email": "Alice@Example.com"})).await;
    assert_eq!(st, 200, "{alice}");
    assert_eq!(
        alice["email"], "Alice@Example.com",
        "the stored spelling is kept"
    );
    let not_unique = |st: u16, body: &Value| {
        st == 400 && body["data"]["email"]["code"] == "validation_not_unique"
    };
    for email in [
        "alice@example.com",
        "ALICE@EXAMPLE.COM",
        "Alice@Example.com",
    ] {
        let (st, body) = create_user(&s, &su, json!({"email": email})).await;
        assert!(not_unique(st, &body), "{email}: {st} {body}");
        let (st, body) = s
            .call(
                "POST",
                "/api/collections/users/records",
                None,
                Some(json!({"email": email, "password": PASSWORD, "passwordConfirm": PASSWORD})),
            )
            .await;
        assert!(not_unique(st, &body), "anonymous {email}: {st} {body}");
    }
    let (st, bob) = create_user(&s, &su, json!({"email": "bob@example.com"})).await;
    assert_eq!(st, 200, "{bob}");
    let bob_path = format!(
        "/api/collections/users/records/{}",
        bob["id"].as_str().unwrap()
    );
    let (st, body) = s
        .call(
            "PATCH",
            &bob_path,
            Some(&su),
            Some(json!({"email": "aLiCe@example.COM"})),
        )
        .await;
    assert!(not_unique(st, &body), "{st} {body}");
    // A record may respell its own address.
    let (st, body) = s
        .call(
            "PATCH",
            &bob_path,
            Some(&su),
            Some(json!({"email": "Bob@Example.com"})),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["email"], "Bob@Example.com");
    // Sign-in matches without case and answers with the stored spelling.
    let token = s.token("users", "alice@EXAMPLE.com", PASSWORD).await;
    assert!(!token.is_empty());
    let (_, res) = s
        .call(
            "POST",
            "/api/collections/users/auth-with-password",
            None,
            Some(json!({"identity": "ALICE@example.com", "password": PASSWORD})),
        )
        .await;
    assert_eq!(res["record"]["email"], "Alice@Example.com", "{res}");
    // Each auth collection is its own namespace: the same address may sign up elsewhere.
    let (st, body) = s
        .call(
            "POST",
            "/api/collections/_superusers/records",
            Some(&su),
            Some(json!({"email": "ALICE@example.com", "password": PASSWORD, "passwordConfirm": PASSWORD})),
        )
        .await;
    assert_eq!(st, 200, "{body}");

    // The superuser CLI finds an existing superuser whatever the case, keeping its spelling.
    assert!(s.terminate(), "clean stop");
    let status = Command::new(BIN)
        .args([
            "superuser",
            "upsert",
            &SUPERUSER_EMAIL.to_uppercase(),
            "New-pass-1234",
            "--dir",
        ])
        .arg(s.data_dir())
        .envs(s.database_url().map(|u| ("BASALT_DATABASE_URL", u)))
        .status()
        .expect("superuser upsert");
    assert!(status.success());
    s.restart().await;
    let (_, sus) = s
        .call(
            "GET",
            "/api/collections/_superusers/records?perPage=100",
            Some(
                &s.token("_superusers", SUPERUSER_EMAIL, "New-pass-1234")
                    .await,
            ),
            None,
        )
        .await;
    let emails: Vec<&str> = sus["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["email"].as_str())
        .collect();
    assert_eq!(
        emails
            .iter()
            .filter(|e| e.eq_ignore_ascii_case(SUPERUSER_EMAIL))
            .count(),
        1,
        "{emails:?}"
    );
    assert!(emails.contains(&SUPERUSER_EMAIL), "{emails:?}");
}

#[tokio::test]
async fn existing_case_duplicate_emails_do_not_stop_start_up() {
    let mut s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (st, body) = create_user(&s, &su, json!({"email": "carol@example.com"})).await;
    assert_eq!(st, 200, "{body}");
    s.terminate();
    {
        // As a database from before case-insensitive emails: the index absent and a
        // second spelling stored.
        let conn = db(s.data_dir());
        conn.execute_batch("DROP INDEX \"_email_nocase__pb_users_auth_\"")
            .expect("the index exists");
        conn.execute(
            "INSERT INTO users (id, email, password, tokenKey, created, updated) \
             SELECT 'carolduplicate1', 'Carol@Example.com', password, 'other-token-key-other-token-key-xx', created, updated FROM users WHERE email = 'carol@example.com'",
            [],
        )
        .expect("duplicate");
    }
    s.restart().await;
    let su = s.superuser_token().await;
    // Both sign in by their exact spelling; new duplicates are still refused.
    let (_, res) = s
        .call(
            "POST",
            "/api/collections/users/auth-with-password",
            None,
            Some(json!({"identity": "Carol@Example.com", "password": PASSWORD})),
        )
        .await;
    assert_eq!(res["record"]["id"], "carolduplicate1", "{res}");
    let (st, body) = create_user(&s, &su, json!({"email": "CAROL@example.com"})).await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["data"]["email"]["code"], "validation_not_unique");
    // Once resolved, the next start creates the index.
    let (st, _) = s
        .call(
            "DELETE",
            "/api/collections/users/records/carolduplicate1",
            Some(&su),
            None,
        )
        .await;
    assert_eq!(st, 204);
    s.restart().await;
    let n: i64 = db(s.data_dir())
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = '_email_nocase__pb_users_auth_'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(n, 1);
}

/// Every `record` of `_changes`, as stored.
fn change_log(dir: &Path) -> Vec<String> {
    let conn = db(dir);
    let mut stmt = conn
        .prepare("SELECT COALESCE(record, '') FROM _changes ORDER BY seq")
        .expect("prepare");
    stmt.query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[tokio::test]
async fn the_change_log_kept_password_hashes_and_token_keys() {
    let mut s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (st, user) = create_user(&s, &su, json!({"email": "dan@example.com", "name": "Dan"})).await;
    assert_eq!(st, 200, "{user}");
    let id = user["id"].as_str().unwrap().to_string();
    let (st, body) = s
        .call(
            "PATCH",
            &format!("/api/collections/users/records/{id}"),
            Some(&su),
            Some(json!({"password": "Other-pass-456", "passwordConfirm": "Other-pass-456"})),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let secrets = |dir: &Path| -> Vec<String> {
        let conn = db(dir);
        let mut stmt = conn
            .prepare("SELECT password, tokenKey FROM users UNION ALL SELECT password, tokenKey FROM _superusers")
            .expect("prepare");
        stmt.query_map([], |r| Ok([r.get::<_, String>(0)?, r.get::<_, String>(1)?]))
            .expect("query")
            .flat_map(|r| r.expect("row"))
            .collect()
    };
    let log = change_log(s.data_dir());
    assert!(log.len() >= 2, "{log:?}");
    let entry: Value = serde_json::from_str(log.last().unwrap()).expect("json entry");
    assert_eq!(entry["id"], id.as_str());
    assert_eq!(entry["name"], "Dan", "what sinks need stays");
    for secret in secrets(s.data_dir()) {
        assert!(
            log.iter().all(|e| !e.contains(&secret)),
            "a secret is in the change log"
        );
    }
    assert!(
        log.iter()
            .all(|e| !e.contains("tokenKey") && !e.contains("\"password\""))
    );

    // A database written before: the migration scrubs what it holds.
    s.terminate();
    {
        let conn = db(s.data_dir());
        conn.execute(
            "UPDATE _changes SET record = json_set(record, '$.password', (SELECT password FROM users), '$.tokenKey', (SELECT tokenKey FROM users)) WHERE record IS NOT NULL",
            [],
        )
        .expect("put secrets back");
        conn.execute("DELETE FROM _migrations WHERE version >= 4", [])
            .expect("unapply");
    }
    assert!(
        change_log(s.data_dir())
            .iter()
            .any(|e| e.contains("tokenKey"))
    );
    s.restart().await;
    let log = change_log(s.data_dir());
    for secret in secrets(s.data_dir()) {
        assert!(log.iter().all(|e| !e.contains(&secret)), "not scrubbed");
    }
    let entry: Value = serde_json::from_str(log.last().unwrap()).expect("json entry");
    assert_eq!(entry["name"], "Dan");
}

#[tokio::test]
async fn the_change_log_grew_forever() {
    let mut s = TestServer::start_with_env(BIN, &[("BASALT_CHANGE_LOG_MAX_ROWS", "5")]).await;
    let su = s.superuser_token().await;
    let (st, body) = s
        .call(
            "POST",
            "/api/collections",
            Some(&su),
            Some(json!({"name": "notes", "fields": [{"name": "n", "type": "number"}]})),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    for n in 0..12 {
        let (st, body) = s
            .call(
                "POST",
                "/api/collections/notes/records",
                Some(&su),
                Some(json!({"n": n})),
            )
            .await;
        assert_eq!(st, 200, "{body}");
    }
    let count = |dir: &Path| -> i64 {
        db(dir)
            .query_row("SELECT COUNT(*) FROM _changes", [], |r| r.get(0))
            .expect("count")
    };
    // The pruner runs at start, then every minute: a restart prunes now.
    s.restart().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count(s.data_dir()) > 5 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(count(s.data_dir()), 5);
    let newest: i64 = db(s.data_dir())
        .query_row(
            "SELECT json_extract(record, '$.n') FROM _changes ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("newest");
    assert_eq!(newest, 11, "the newest entries stay");

    // By age: entries dated a year back go, today's stay.
    s.terminate();
    db(s.data_dir())
        .execute(
            "UPDATE _changes SET created = '2000-01-01 00:00:00.000Z' WHERE seq IN (SELECT seq FROM _changes ORDER BY seq LIMIT 3)",
            [],
        )
        .expect("age entries");
    s.set_env("BASALT_CHANGE_LOG_MAX_ROWS", "0");
    s.restart().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count(s.data_dir()) > 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(count(s.data_dir()), 2);
}
