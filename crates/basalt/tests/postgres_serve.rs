//! `basalt serve` on PostgreSQL (`--database-url` / `BASALT_DATABASE_URL`, issue 18): the
//! API served from the database, what the data dir still holds, what is refused (backups,
//! TLS, bad URLs) and two servers on one database sharing data, the signing secret and
//! schema changes.
//! Cases that need PostgreSQL pass with a notice without `BASALT_TEST_PG_URL` (see
//! `basalt_testkit::pg`); the refusals at start need no database.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use basalt_testkit::TestServer;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_basalt");

/// Runs `basalt serve` with `args` and `env`, expecting it to exit by itself (bounded):
/// its exit success and standard error.
fn serve_exits(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = basalt_testkit::free_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(BIN)
        .args(["serve", "--http", &addr, "--dir"])
        .arg(dir.path())
        .args(args)
        .envs(env.iter().copied())
        .env("BASALT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            assert!(
                !dir.path().join("data.db").exists(),
                "no SQLite database is made when a database URL is given"
            );
            return (status.success(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve {args:?} did not exit by itself");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_database_url_that_cannot_be_used_stops_the_start_with_its_reason() {
    // Nothing listens on port 1: refused at once.
    let (ok, err) = serve_exits(
        &[
            "--database-url",
            "postgres://basalt:s3cret-pw@127.0.0.1:1/basalt",
        ],
        &[],
    );
    assert!(!ok, "{err}");
    assert!(
        err.contains("opening the PostgreSQL database") && err.contains("connect"),
        "{err}"
    );
    assert!(
        !err.contains("s3cret-pw"),
        "the password is never printed: {err}"
    );
    let cases = [
        ("postgres://basalt@127.0.0.1:1/b?sslmode=require", "TLS"),
        ("postgres://basalt@127.0.0.1:1/b?sslmode=verify-full", "TLS"),
        ("mysql://basalt@127.0.0.1/b", "postgres://"),
        (
            "postgres://basalt@127.0.0.1:1/b?nosuchoption=1",
            "invalid database URL",
        ),
    ];
    for (url, says) in cases {
        let (ok, err) = serve_exits(&[], &[("BASALT_DATABASE_URL", url)]);
        assert!(!ok, "{url}: {err}");
        assert!(
            err.contains("database_url") && err.contains(says),
            "{url}: {err}"
        );
    }
    // SQLite's writer options do nothing on PostgreSQL: refused, not ignored.
    let (ok, err) = serve_exits(
        &["--database-url", "postgres://basalt@127.0.0.1:1/b"],
        &[("BASALT_DB_SYNC_FULL", "1")],
    );
    assert!(!ok && err.contains("db_sync_full"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_postgresql_keeps_the_data_in_the_database() {
    let Some(mut s) = TestServer::start_on_postgres(BIN, &[]).await else {
        return;
    };
    let su = s.superuser_token().await;
    let (st, c) = s
        .call(
            "POST",
            "/api/collections",
            Some(&su),
            Some(
                json!({"name": "notes", "listRule": "", "viewRule": "", "createRule": "",
                "fields": [{"name": "title", "type": "text"}]}),
            ),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    let (st, r) = s
        .call(
            "POST",
            "/api/collections/notes/records",
            None,
            Some(json!({"title": "on postgres"})),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    let id = r["id"].as_str().expect("id").to_string();
    // The data dir holds no database (and no secret: the database keeps it).
    assert!(!s.data_dir().join("data.db").exists());
    assert!(!s.data_dir().join("secret.key").exists());
    // Forgetting the URL does not start an empty SQLite database beside its files
    // (whose sweep would then remove them all as named by no record).
    let out = Command::new(BIN)
        .args(["files", "sweep", "--dry-run", "--dir"])
        .arg(s.data_dir())
        .env_remove("BASALT_DATABASE_URL")
        .output()
        .expect("files sweep");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("--database-url"), "{err}");
    assert!(!s.data_dir().join("data.db").exists());

    // Backups cannot hold the database: every route says so, none answers empty.
    let (st, body) = s.call("GET", "/api/backups", Some(&su), None).await;
    assert_eq!(st, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("PostgreSQL"),
        "{body}"
    );
    let (st, body) = s
        .call("POST", "/api/backups", Some(&su), Some(json!({})))
        .await;
    assert_eq!(st, 400, "{body}");
    let (st, body) = s
        .call(
            "PATCH",
            "/api/settings",
            Some(&su),
            Some(json!({"backups": {"cron": "0 0 * * *", "cronMaxKeep": 3}})),
        )
        .await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(
        body["data"]["backups"]["cron"]["code"], "validation_not_supported",
        "{body}"
    );
    // View collections need SQLite's SQL: a 400 naming the query.
    let (st, body) = s
        .call(
            "POST",
            "/api/collections",
            Some(&su),
            Some(json!({"name": "v", "type": "view", "viewQuery": "SELECT id FROM notes"})),
        )
        .await;
    assert_eq!(st, 400, "{body}");

    // A restart (kill -9) keeps the data and the tokens signed before it.
    s.restart().await;
    let (st, got) = s
        .call(
            "GET",
            &format!("/api/collections/notes/records/{id}"),
            Some(&su),
            None,
        )
        .await;
    assert_eq!(st, 200, "{got}");
    assert_eq!(got["title"], "on postgres");
    let (st, _) = s.call("GET", "/api/collections", Some(&su), None).await;
    assert_eq!(
        st, 200,
        "the token signed before the restart still verifies"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_database_share_records_and_tokens() {
    let Some(a) = TestServer::start_on_postgres(BIN, &[]).await else {
        return;
    };
    let b = a.start_peer(&[]).await;
    let su = a.superuser_token().await;
    let (st, r) = b
        .call(
            "POST",
            "/api/collections/users/records",
            None,
            Some(
                json!({"email": "u@example.com", "password": "User-pass-123",
                "passwordConfirm": "User-pass-123"}),
            ),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    let id = r["id"].as_str().expect("id");
    // A's superuser token verifies on B (one signing secret), and A reads B's write.
    let (st, got) = b
        .call(
            "GET",
            &format!("/api/collections/users/records/{id}"),
            Some(&su),
            None,
        )
        .await;
    assert_eq!(st, 200, "{got}");
    let user = b.token("users", "u@example.com", "User-pass-123").await;
    let (st, got) = a
        .call(
            "GET",
            &format!("/api/collections/users/records/{id}"),
            Some(&user),
            None,
        )
        .await;
    assert_eq!(st, 200, "{got}");
    assert_eq!(got["email"], "u@example.com");

    // A collection created on A is usable on B without a restart (B reloads its schema
    // on A's notification); waited for, bounded.
    let (st, c) = a
        .call(
            "POST",
            "/api/collections",
            Some(&su),
            Some(
                json!({"name": "shared", "listRule": "", "viewRule": "", "createRule": "",
                "fields": [{"name": "title", "type": "text"}]}),
            ),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    let created = eventually(|| async {
        let (st, r) = b
            .call(
                "POST",
                "/api/collections/shared/records",
                None,
                Some(json!({"title": "made on B"})),
            )
            .await;
        (st == 200).then_some(r)
    })
    .await
    .expect("B serves the collection A created");
    assert_eq!(created["title"], "made on B");
    let (st, list) = a
        .call("GET", "/api/collections/shared/records", None, None)
        .await;
    assert_eq!((st, list["totalItems"].clone()), (200, json!(1)), "{list}");
    // A field A adds shows on B too.
    let (st, c) = a
        .call(
            "PATCH",
            "/api/collections/shared",
            Some(&su),
            Some(json!({"fields": [{"name": "title", "type": "text"},
                {"name": "note", "type": "text"}]})),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    let id = created["id"].as_str().expect("id").to_string();
    let got = eventually(|| async {
        let (st, r) = b
            .call(
                "GET",
                &format!("/api/collections/shared/records/{id}"),
                None,
                None,
            )
            .await;
        (st == 200 && r.get("note").is_some()).then_some(r)
    })
    .await
    .expect("B reads the field A added");
    assert_eq!(got["note"], "");
}

/// `probe`'s first `Some`, tried every 50 ms for at most 15 s.
async fn eventually<T, F, Fut>(probe: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Some(v) = probe().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}
