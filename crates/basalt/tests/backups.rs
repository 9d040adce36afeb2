//! Backups over HTTP and the CLI against the real binary: PocketBase's `/api/backups`
//! answers, refused archives, a restore of a backup taken under write load (every write
//! acknowledged before the backup began is in it), kill -9 during a restore (the old state
//! or the new one, whole), the `backups.cron` schedule, and the orphan sweep.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use basalt_testkit::TestServer;
use basalt_testkit::s3::Moto;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_basalt");
const BOUNDARY: &str = "basaltBackupBoundary7MA4YWxkTrZu0gW";

fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, file, bytes) in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let head = match file {
            Some(f) => format!(
                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            ),
            None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"),
        };
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

async fn send(
    s: &TestServer,
    path: &str,
    token: &str,
    parts: &[(&str, Option<&str>, &[u8])],
) -> (u16, Value) {
    let res = s
        .http
        .post(s.url(path))
        .header("Authorization", token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart(parts))
        .send()
        .await
        .expect("request");
    let st = res.status().as_u16();
    (st, res.json().await.unwrap_or(Value::Null))
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, body) in entries {
        z.start_file(*name, zip::write::SimpleFileOptions::default())
            .expect("entry");
        z.write_all(body).expect("write");
    }
    z.finish().expect("finish").into_inner()
}

async fn file_token(s: &TestServer, su: &str) -> String {
    let (st, v) = s.call("POST", "/api/files/token", Some(su), None).await;
    assert_eq!(st, 200, "{v}");
    v["token"].as_str().expect("token").to_string()
}

async fn keys(s: &TestServer, su: &str) -> Vec<String> {
    let (st, v) = s.call("GET", "/api/backups", Some(su), None).await;
    assert_eq!(st, 200, "{v}");
    v.as_array()
        .expect("list")
        .iter()
        .map(|b| b["key"].as_str().expect("key").to_string())
        .collect()
}

/// A collection with a number and a file field, open to anyone.
async fn notes(s: &TestServer, su: &str) -> String {
    let (st, c) = s
        .call(
            "POST",
            "/api/collections",
            Some(su),
            Some(
                json!({"name": "notes", "listRule": "", "viewRule": "", "createRule": "",
                "updateRule": "", "deleteRule": "", "fields": [
                {"name": "n", "type": "number"}, {"name": "tag", "type": "text"},
                {"name": "f", "type": "file", "maxSize": 100000}]}),
            ),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    c["id"].as_str().expect("id").to_string()
}

async fn add_note(s: &TestServer, n: u64, tag: &str, with_file: bool) -> Option<Value> {
    let num = n.to_string();
    let body = format!("file of note {n}");
    let mut parts: Vec<(&str, Option<&str>, &[u8])> =
        vec![("n", None, num.as_bytes()), ("tag", None, tag.as_bytes())];
    if with_file {
        parts.push(("f", Some("note.txt"), body.as_bytes()));
    }
    let res = s
        .http
        .post(s.url("/api/collections/notes/records"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart(&parts))
        .send()
        .await
        .ok()?;
    if res.status().as_u16() != 200 {
        return None;
    }
    res.json().await.ok()
}

/// The notes, or `None` while the server does not answer (it restarts after a restore).
async fn all_notes(s: &TestServer) -> Option<Vec<Value>> {
    let res = s
        .http
        .get(s.url("/api/collections/notes/records?perPage=1000&sort=n"))
        .send()
        .await
        .ok()?;
    if res.status().as_u16() != 200 {
        return None;
    }
    let v: Value = res.json().await.ok()?;
    v["items"].as_array().cloned()
}

/// Waits (bounded) until the server answers again after the restart a restore asks for,
/// and `ready` holds of the notes it serves.
async fn wait_restored(s: &TestServer, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(items) = all_notes(s).await
            && ready(&items)
        {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the restore did not complete; log:\n{}", s.log());
}

/// A server with the `notes` collection and `n` notes tagged `tag`, each with a file.
async fn server_with_notes(n: u64, tag: &str) -> (TestServer, String) {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    notes(&s, &su).await;
    for i in 0..n {
        add_note(&s, i, tag, true).await.expect("note");
    }
    (s, su)
}

/// `POST /api/backups` named `name`; its status and body.
async fn create_backup(s: &TestServer, su: &str, name: &str) -> (u16, Value) {
    s.call(
        "POST",
        "/api/backups",
        Some(su),
        Some(json!({"name": name})),
    )
    .await
}

/// `GET /api/backups/{key}?token=` (`key` as it goes in the path).
async fn download(s: &TestServer, key: &str, token: &str) -> reqwest::Response {
    s.http
        .get(s.url(&format!("/api/backups/{key}?token={token}")))
        .send()
        .await
        .expect("download")
}

/// `GET` of file `f` of note `r`: its status and body.
async fn note_file(s: &TestServer, r: &Value, f: &str) -> (u16, String) {
    let res = s
        .http
        .get(s.url(&format!(
            "/api/files/notes/{}/{f}",
            r["id"].as_str().unwrap_or_default()
        )))
        .send()
        .await
        .expect("file");
    (res.status().as_u16(), res.text().await.expect("body"))
}

/// Uploads `bytes` as the multipart part `part` named `file_name`.
async fn upload(
    s: &TestServer,
    su: &str,
    part: &str,
    file_name: &str,
    bytes: &[u8],
) -> (u16, Value) {
    send(
        s,
        "/api/backups/upload",
        su,
        &[(part, Some(file_name), bytes)],
    )
    .await
}

/// An upload refused with a 400 whose `file` error has `code`.
async fn upload_refused(
    s: &TestServer,
    su: &str,
    part: &str,
    file_name: &str,
    bytes: &[u8],
    code: &str,
) {
    let (st, e) = upload(s, su, part, file_name, bytes).await;
    assert_eq!(
        (st, &e["data"]["file"]["code"]),
        (400, &json!(code)),
        "{file_name}: {e}"
    );
}

#[tokio::test]
async fn backups_api_answers_as_pocketbase() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (st, e) = s.call("GET", "/api/backups", None, None).await;
    assert_eq!(st, 401, "{e}");
    let (st, e) = s.call("POST", "/api/backups", None, None).await;
    assert_eq!(st, 401, "{e}");
    for (name, code) in [
        ("bad name", "validation_match_invalid"),
        ("A.zip", "validation_match_invalid"),
        ("x.tar", "validation_match_invalid"),
        ("../a.zip", "validation_match_invalid"),
        (
            &*format!("{}.zip", "a".repeat(200)),
            "validation_length_out_of_range",
        ),
    ] {
        let (st, e) = s
            .call(
                "POST",
                "/api/backups",
                Some(&su),
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(
            (st, &e["data"]["name"]["code"]),
            (400, &json!(code)),
            "{name}: {e}"
        );
    }
    let (st, e) = s
        .call("POST", "/api/backups", Some(&su), Some(json!({"name": 12})))
        .await;
    assert_eq!(st, 400, "{e}");
    assert_eq!(create_backup(&s, &su, "my_b-1.zip").await.0, 204);
    let (st, e) = create_backup(&s, &su, "my_b-1.zip").await;
    assert_eq!(
        (st, &e["data"]["name"]["code"]),
        (400, &json!("validation_backup_name_exists")),
        "{e}"
    );
    let (st, _) = s.call("POST", "/api/backups", Some(&su), None).await;
    assert_eq!(st, 204);
    let (_, list) = s.call("GET", "/api/backups", Some(&su), None).await;
    let items = list.as_array().expect("list");
    assert_eq!(items.len(), 2, "{list}");
    assert_eq!(items[0]["key"], "my_b-1.zip");
    assert!(
        items[1]["key"]
            .as_str()
            .is_some_and(|k| k.starts_with("pb_backup_acme_") && k.ends_with(".zip")),
        "{list}"
    );
    assert!(items[0]["size"].as_u64().is_some_and(|n| n > 100), "{list}");
    assert!(
        items[0]["modified"]
            .as_str()
            .is_some_and(|m| m.ends_with('Z') && m.len() == 24),
        "{list}"
    );

    // Download: a superuser's file token, nothing else.
    let get = |q: String| {
        s.http
            .get(s.url(&format!("/api/backups/my_b-1.zip{q}")))
            .send()
    };
    assert_eq!(get(String::new()).await.expect("get").status(), 403);
    assert_eq!(
        get(format!("?token={su}")).await.expect("get").status(),
        403
    );
    let ft = file_token(&s, &su).await;
    let res = get(format!("?token={ft}")).await.expect("get");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .is_ok_and(|d| d.starts_with("attachment")),
    );
    let zip_bytes = res.bytes().await.expect("body").to_vec();
    assert!(zip_bytes.starts_with(b"PK"));
    assert_eq!(download(&s, "nope.zip", &ft).await.status(), 404);

    // Uploads: a backup archive only.
    upload_refused(
        &s,
        &su,
        "file",
        "x.txt",
        b"hello",
        "validation_invalid_mime_type",
    )
    .await;
    upload_refused(&s, &su, "other", "x.zip", &zip_bytes, "validation_required").await;
    let db = b"SQLite format 3\0 and more";
    for (name, bad) in [
        (
            "traversal.zip",
            zip_of(&[("data.db", db), ("storage/../../etc/x", b"x")]),
        ),
        ("dotdot.zip", zip_of(&[("data.db", db), ("../evil", b"x")])),
        (
            "absolute.zip",
            zip_of(&[("data.db", db), ("/etc/evil", b"x")]),
        ),
        ("nodb.zip", zip_of(&[("storage/c/r/f", b"x")])),
        (
            "notdb.zip",
            zip_of(&[("data.db", b"not a database at all")]),
        ),
        (
            "extra.zip",
            zip_of(&[("data.db", db), ("secret.key", b"x")]),
        ),
    ] {
        upload_refused(&s, &su, "file", name, &bad, "validation_invalid_backup").await;
    }
    // A zip whose central directory is cut off.
    let cut = &zip_bytes[..zip_bytes.len() / 2];
    let (st, e) = upload(&s, &su, "file", "cut.zip", cut).await;
    assert_eq!(st, 400, "{e}");
    upload_refused(
        &s,
        &su,
        "file",
        "my_b-1.zip",
        &zip_bytes,
        "validation_backup_name_exists",
    )
    .await;
    let (st, e) = upload(&s, &su, "file", "C:\\x\\Up Per.zip", &zip_bytes).await;
    assert_eq!(st, 204, "{e}");
    let listed = keys(&s, &su).await;
    assert!(listed.contains(&"Up Per.zip".to_string()), "{listed:?}");
    assert_eq!(listed.len(), 3, "refused uploads left nothing: {listed:?}");
    let leftovers: Vec<_> = std::fs::read_dir(s.data_dir().join("backups"))
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Delete and restore of what is not there.
    let (st, e) = s
        .call("DELETE", "/api/backups/nope.zip", Some(&su), None)
        .await;
    assert_eq!(st, 400, "{e}");
    let (st, e) = s
        .call("DELETE", "/api/backups/..%2Fdata.db", Some(&su), None)
        .await;
    assert_eq!(st, 400, "{e}");
    assert!(s.data_dir().join("data.db").is_file());
    let (st, _) = s
        .call("DELETE", "/api/backups/Up%20Per.zip", Some(&su), None)
        .await;
    assert_eq!(st, 204);
    let (st, e) = s
        .call("POST", "/api/backups/nope.zip/restore", Some(&su), None)
        .await;
    assert_eq!(
        (st, &e["message"]),
        (400, &json!("Missing or invalid backup file.")),
        "{e}"
    );

    // The schedule's settings are checked as PocketBase checks them.
    for (patch, field, code) in [
        (
            json!({"backups": {"cron": "bad"}}),
            "cron",
            "validation_invalid_cron",
        ),
        (
            json!({"backups": {"cron": "0 0 * * 7"}}),
            "cron",
            "validation_invalid_cron",
        ),
        (
            json!({"backups": {"cron": "@daily", "cronMaxKeep": 0}}),
            "cronMaxKeep",
            "validation_required",
        ),
        (
            json!({"backups": {"cron": "@daily", "cronMaxKeep": -1}}),
            "cronMaxKeep",
            "validation_min_greater_equal_than_required",
        ),
    ] {
        let (st, e) = s
            .call("PATCH", "/api/settings", Some(&su), Some(patch))
            .await;
        assert_eq!(
            (st, &e["data"]["backups"][field]["code"]),
            (400, &json!(code)),
            "{e}"
        );
    }
    let (st, v) = s
        .call(
            "PATCH",
            "/api/settings",
            Some(&su),
            Some(json!({"backups": {"cron": "*/5 1-3 * * 1-5", "cronMaxKeep": 2}})),
        )
        .await;
    assert_eq!(
        (st, &v["backups"]["cron"]),
        (200, &json!("*/5 1-3 * * 1-5")),
        "{v}"
    );
}

/// Writers keep writing while a backup is made; the backup holds every write acknowledged
/// before the backup request was sent, and restoring it brings exactly that state back.
#[tokio::test]
async fn restore_of_a_backup_taken_under_write_load() {
    let s = Arc::new(TestServer::start(BIN).await);
    let su = s.superuser_token().await;
    notes(&s, &su).await;
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(std::sync::Mutex::new(
        Vec::<(u64, String, Option<String>)>::new(),
    ));
    let mut writers = Vec::new();
    for w in 0..3u64 {
        let (s, stop, acked) = (s.clone(), stop.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) && i < 300 {
                let n = w * 100_000 + i;
                if let Some(r) = add_note(&s, n, "load", i.is_multiple_of(4)).await {
                    let file = r["f"]
                        .as_str()
                        .filter(|f| !f.is_empty())
                        .map(str::to_string);
                    acked.lock().expect("lock").push((
                        n,
                        r["id"].as_str().unwrap_or_default().to_string(),
                        file,
                    ));
                }
                i += 1;
            }
        }));
    }
    // Let some writes land first.
    while acked.lock().expect("lock").len() < 30 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before: Vec<_> = acked.lock().expect("lock").clone();
    let (st, e) = create_backup(&s, &su, "load.zip").await;
    assert_eq!(st, 204, "{e}");
    // Writes go on after the backup too; they are not in it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }
    let total = acked.lock().expect("lock").len();
    let after = add_note(&s, 999_999, "after", true).await.expect("after");
    assert!(total > before.len());

    let (st, e) = s
        .call("POST", "/api/backups/load.zip/restore", Some(&su), None)
        .await;
    assert_eq!(st, 204, "{e}");
    let items = wait_restored(&s, |items| !items.iter().any(|r| r["tag"] == "after")).await;
    let ids: std::collections::HashSet<&str> =
        items.iter().filter_map(|r| r["id"].as_str()).collect();
    for (n, id, _) in &before {
        assert!(
            ids.contains(id.as_str()),
            "note {n} ({id}) acknowledged before the backup is missing"
        );
    }
    assert!(
        items.len() >= before.len() && items.len() <= total,
        "{} of {total}",
        items.len()
    );
    assert!(!ids.contains(after["id"].as_str().unwrap_or_default()));
    // Every file a restored record names is there.
    for r in &items {
        if let Some(f) = r["f"].as_str().filter(|f| !f.is_empty()) {
            let (st, body) = note_file(&s, r, f).await;
            assert_eq!(st, 200, "file {f} of {r}");
            assert_eq!(body, format!("file of note {}", r["n"]));
        }
    }
    // The server is the same process and serves the restored superusers.
    let su2 = s.superuser_token().await;
    assert!(keys(&s, &su2).await.contains(&"load.zip".to_string()));
    assert!(!s.data_dir().join(".restore").exists());
}

/// A kill -9 at any point of a restore leaves the old state or the new one, whole.
#[tokio::test]
async fn kill9_during_restore_leaves_old_or_new_state() {
    let (mut s, su) = server_with_notes(20, "in_backup").await;
    assert_eq!(create_backup(&s, &su, "k.zip").await.0, 204);
    let mut seen = std::collections::BTreeMap::new();
    for (round, delay_ms) in [0u64, 5, 20, 60, 150, 400].into_iter().enumerate() {
        // The old state: what the backup holds plus one more note.
        add_note(&s, 1000 + round as u64, "after", true)
            .await
            .expect("note");
        let before = all_notes(&s).await.expect("notes");
        let su = s.superuser_token().await;
        let url = s.url("/api/backups/k.zip/restore");
        let http = s.http.clone();
        let req = tokio::spawn(async move {
            let _ = http.post(url).header("Authorization", su).send().await;
        });
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        s.kill9();
        req.abort();
        s.restart().await;
        let items = all_notes(&s).await.expect("notes after restart");
        let afters = items.iter().filter(|r| r["tag"] == "after").count();
        let state = if afters == 0 {
            assert_eq!(items.len(), 20, "new state whole");
            "new"
        } else {
            assert_eq!(items.len(), before.len(), "old state whole");
            "old"
        };
        *seen.entry(state).or_insert(0) += 1;
        for r in &items {
            let f = r["f"].as_str().unwrap_or_default();
            let (st, _) = note_file(&s, r, f).await;
            assert_eq!(st, 200, "{state} state: file {f} of {r} missing");
        }
        assert!(!s.data_dir().join(".restore").exists());
    }
    eprintln!("states after kill -9 during restore: {seen:?}");
}

fn backdate(path: &Path, secs: u64) {
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open");
    f.set_modified(SystemTime::now() - Duration::from_secs(secs))
        .expect("set mtime");
}

fn put(path: &Path, body: &str, age_secs: u64) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, body).expect("write");
    if age_secs > 0 {
        backdate(path, age_secs);
    }
}

fn cli(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("run basalt");
    let mut text = String::from_utf8_lossy(&out.stdout).to_string();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The sweep removes stored files no record names once they are older than the grace
/// period, and nothing else: not a named file, not its thumbs, not a young upload.
#[tokio::test]
async fn orphan_sweep_removes_only_old_unnamed_files() {
    let mut s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let cid = notes(&s, &su).await;
    let r = add_note(&s, 1, "x", true).await.expect("note");
    let (rid, name) = (
        r["id"].as_str().expect("id"),
        r["f"].as_str().expect("file"),
    );
    let storage = s.data_dir().join("storage");
    let named = storage.join(&cid).join(rid).join(name);
    backdate(&named, 7200);
    put(
        &storage
            .join(&cid)
            .join(rid)
            .join(format!("thumbs_{name}/10x10_{name}")),
        "t",
        7200,
    );
    put(
        &storage.join(&cid).join(rid).join("dropped_1234567890.txt"),
        "o",
        7200,
    );
    put(
        &storage
            .join(&cid)
            .join(rid)
            .join("thumbs_gone.png/10x10_gone.png"),
        "o",
        7200,
    );
    put(&storage.join(&cid).join("norecord12345ab/x.txt"), "o", 7200);
    put(&storage.join("pbc_gone/r/x.txt"), "o", 7200);
    let young = storage.join(&cid).join(rid).join("inflight_1234567890.txt");
    put(&young, "y", 0);

    // Under a running server only a dry run is allowed.
    let (ok, out) = cli(s.data_dir(), &["files", "sweep"]);
    assert!(!ok && out.contains("a server is running"), "{out}");
    let (ok, out) = cli(s.data_dir(), &["files", "sweep", "--dry-run"]);
    assert!(ok, "{out}");
    let mut listed: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("orphan "))
        .collect();
    listed.sort();
    let mut expected = vec![
        format!("{cid}/{rid}/dropped_1234567890.txt"),
        format!("{cid}/{rid}/thumbs_gone.png/10x10_gone.png"),
        format!("{cid}/norecord12345ab/x.txt"),
        "pbc_gone/r/x.txt".to_string(),
    ];
    expected.sort();
    assert_eq!(listed, expected, "{out}");
    assert!(
        storage.join("pbc_gone/r/x.txt").exists(),
        "a dry run removed a file"
    );

    assert!(s.terminate(), "clean shutdown");
    let (ok, out) = cli(s.data_dir(), &["files", "sweep"]);
    assert!(ok && out.contains("removed 4"), "{out}");
    for e in &expected {
        assert!(!storage.join(e).exists(), "{e} left");
    }
    assert!(named.exists() && young.exists());
    assert!(
        storage
            .join(&cid)
            .join(rid)
            .join(format!("thumbs_{name}/10x10_{name}"))
            .exists()
    );

    // The server sweeps at start too: an upload whose write never came (a crash between
    // the two) goes once it is old.
    let stray = storage.join(&cid).join(rid).join("crashed_1234567890.txt");
    put(&stray, "o", 7200);
    s.restart().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while stray.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !stray.exists(),
        "the start-up sweep left {}",
        stray.display()
    );
    assert!(named.exists() && young.exists());
    let res = s
        .http
        .get(s.url(&format!("/api/files/notes/{rid}/{name}")))
        .send()
        .await
        .expect("file");
    assert_eq!(res.status(), 200);
}

/// `basalt backup create|restore` with the server stopped; refused while it runs.
#[tokio::test]
async fn cli_backup_create_and_restore() {
    let (mut s, _) = server_with_notes(1, "in_backup").await;
    let (ok, out) = cli(s.data_dir(), &["backup", "create", "cli.zip"]);
    assert!(!ok && out.contains("a server is running"), "{out}");
    assert!(s.terminate());
    let (ok, out) = cli(s.data_dir(), &["backup", "create", "cli.zip"]);
    assert!(ok, "{out}");
    let (ok, out) = cli(s.data_dir(), &["backup", "create", "cli.zip"]);
    assert!(
        !ok && out.contains("validation_backup_name_exists"),
        "{out}"
    );
    let (ok, out) = cli(s.data_dir(), &["backup", "create", "Bad Name"]);
    assert!(!ok && out.contains("validation_match_invalid"), "{out}");
    s.restart().await;
    add_note(&s, 2, "after", true).await.expect("note");
    assert_eq!(all_notes(&s).await.expect("notes").len(), 2);
    assert!(s.terminate());
    let (ok, out) = cli(s.data_dir(), &["backup", "restore", "nope.zip"]);
    assert!(!ok, "{out}");
    let (ok, out) = cli(s.data_dir(), &["backup", "restore", "cli.zip"]);
    assert!(ok, "{out}");
    s.restart().await;
    let items = all_notes(&s).await.expect("notes");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["tag"], "in_backup");
}

/// Waits (bounded: the schedule looks at every minute) until `stored` shows a single
/// scheduled backup, a new one, and checks that pruning kept the one made by hand
/// (`manual.zip`); the keys it saw last.
async fn wait_for_pruning<F>(stored: impl Fn() -> F) -> Vec<String>
where
    F: std::future::Future<Output = Vec<String>>,
{
    let scheduled = |keys: &[String]| -> Vec<String> {
        keys.iter()
            .filter(|k| k.starts_with("@auto_pb_backup_"))
            .cloned()
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(150);
    let mut keys = Vec::new();
    while Instant::now() < deadline {
        keys = stored().await;
        let auto = scheduled(&keys);
        if auto.len() == 1 && !auto[0].contains("2020010") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let auto = scheduled(&keys);
    assert_eq!(auto.len(), 1, "{keys:?}");
    assert!(auto[0].starts_with("@auto_pb_backup_acme_"), "{keys:?}");
    assert!(!auto[0].contains("2020010"), "{keys:?}");
    assert!(keys.contains(&"manual.zip".to_string()), "{keys:?}");
    keys
}

/// `backups.cron` makes backups on its schedule and `cronMaxKeep` prunes the oldest
/// scheduled ones (never a backup made by hand).
#[tokio::test]
async fn backups_cron_makes_and_prunes_backups() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let dir = s.data_dir().join("backups");
    assert_eq!(create_backup(&s, &su, "manual.zip").await.0, 204);
    for old in [
        "@auto_pb_backup_acme_20200101000000.zip",
        "@auto_pb_backup_acme_20200102000000.zip",
    ] {
        std::fs::copy(dir.join("manual.zip"), dir.join(old)).expect("copy");
        backdate(&dir.join(old), 86_400);
    }
    let (st, v) = s
        .call(
            "PATCH",
            "/api/settings",
            Some(&su),
            Some(json!({"backups": {"cron": "* * * * *", "cronMaxKeep": 1}})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let listed = wait_for_pruning(|| keys(&s, &su)).await;
    let auto: Vec<_> = listed
        .iter()
        .filter(|k| k.starts_with("@auto_pb_backup_"))
        .collect();
    // A scheduled backup downloads like any other.
    let ft = file_token(&s, &su).await;
    let res = download(&s, &auto[0].replace('@', "%40"), &ft).await;
    assert_eq!(res.status(), 200);
}

/// Points the server's backups at `bucket` of `moto`.
async fn backups_on_s3(s: &TestServer, su: &str, moto: &Moto, bucket: &str) {
    moto.create_bucket(bucket).await;
    let (st, v) = s
        .call(
            "PATCH",
            "/api/settings",
            Some(su),
            Some(json!({"backups": {"s3": moto.settings(bucket)}})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert!(!v.to_string().contains("\"secret\""), "{v}");
}

/// Entries of the local backups folder (none should stay when backups go to S3).
fn local_backups(s: &TestServer) -> Vec<String> {
    std::fs::read_dir(s.data_dir().join("backups"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// With `backups.s3` enabled every backup operation uses the bucket, keys at its root as
/// PocketBase keeps them: create, list, download with a file token, upload, restore (the
/// data comes back), delete, and the CLI; the local folder keeps nothing.
#[tokio::test]
async fn backups_on_s3_create_list_download_restore_delete() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let (mut s, su) = server_with_notes(3, "in_backup").await;
    // Enabled without a connection: each missing field named, as PocketBase does.
    let (st, e) = s
        .call(
            "PATCH",
            "/api/settings",
            Some(&su),
            Some(json!({"backups": {"s3": {"enabled": true}}})),
        )
        .await;
    assert_eq!(st, 400, "{e}");
    for k in ["bucket", "region", "endpoint", "accessKey", "secret"] {
        assert_eq!(
            e["data"]["backups"]["s3"][k]["code"], "validation_required",
            "{k}: {e}"
        );
    }
    backups_on_s3(&s, &su, &moto, "backups").await;
    let (st, e) = s
        .call(
            "POST",
            "/api/settings/test/s3",
            Some(&su),
            Some(json!({"filesystem": "backups"})),
        )
        .await;
    assert_eq!(st, 204, "{e}");
    assert!(moto.keys("backups").await.is_empty());

    let (st, e) = create_backup(&s, &su, "on_s3.zip").await;
    assert_eq!(st, 204, "{e}");
    assert_eq!(moto.keys("backups").await, vec!["on_s3.zip"]);
    assert!(local_backups(&s).is_empty(), "{:?}", local_backups(&s));
    let (st, e) = create_backup(&s, &su, "on_s3.zip").await;
    assert_eq!(
        (st, &e["data"]["name"]["code"]),
        (400, &json!("validation_backup_name_exists")),
        "{e}"
    );
    let (_, list) = s.call("GET", "/api/backups", Some(&su), None).await;
    assert_eq!(list[0]["key"], "on_s3.zip", "{list}");
    let size = list[0]["size"].as_u64().expect("size");

    let ft = file_token(&s, &su).await;
    let res = download(&s, "on_s3.zip", &ft).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    let zip_bytes = res.bytes().await.expect("body").to_vec();
    assert!(zip_bytes.starts_with(b"PK") && zip_bytes.len() as u64 == size);

    let (st, e) = upload(&s, &su, "file", "uploaded.zip", &zip_bytes).await;
    assert_eq!(st, 204, "{e}");
    upload_refused(
        &s,
        &su,
        "file",
        "uploaded.zip",
        &zip_bytes,
        "validation_backup_name_exists",
    )
    .await;
    assert_eq!(
        moto.keys("backups").await,
        vec!["on_s3.zip", "uploaded.zip"]
    );
    assert!(local_backups(&s).is_empty(), "{:?}", local_backups(&s));

    // Restore: downloaded into the data dir, then the same atomic restore.
    add_note(&s, 100, "after", true).await.expect("note");
    let (st, e) = s
        .call("POST", "/api/backups/on_s3.zip/restore", Some(&su), None)
        .await;
    assert_eq!(st, 204, "{e}");
    let items = wait_restored(&s, |items| !items.iter().any(|r| r["tag"] == "after")).await;
    assert_eq!(items.len(), 3);
    for r in &items {
        let f = r["f"].as_str().expect("file");
        let (st, body) = note_file(&s, r, f).await;
        assert_eq!(
            (st, body),
            (200, format!("file of note {}", r["n"])),
            "file {f} of {r}"
        );
    }
    assert!(local_backups(&s).is_empty(), "{:?}", local_backups(&s));
    assert!(!s.data_dir().join(".restore").exists());

    // The restored settings still name the bucket.
    let su = s.superuser_token().await;
    assert_eq!(keys(&s, &su).await, vec!["on_s3.zip", "uploaded.zip"]);
    let (st, _) = s
        .call("DELETE", "/api/backups/uploaded.zip", Some(&su), None)
        .await;
    assert_eq!(st, 204);
    let (st, e) = s
        .call("DELETE", "/api/backups/uploaded.zip", Some(&su), None)
        .await;
    assert_eq!(
        (st, &e["message"]),
        (400, &json!("Invalid or already deleted backup file.")),
        "{e}"
    );
    let (st, e) = s
        .call("POST", "/api/backups/uploaded.zip/restore", Some(&su), None)
        .await;
    assert_eq!(st, 400, "{e}");
    assert_eq!(moto.keys("backups").await, vec!["on_s3.zip"]);

    // The CLI keeps and restores backups where the settings say too.
    add_note(&s, 101, "after", true).await.expect("note");
    assert!(s.terminate());
    let (ok, out) = cli(s.data_dir(), &["backup", "create", "cli.zip"]);
    assert!(ok && out.contains("backups.s3"), "{out}");
    assert_eq!(moto.keys("backups").await, vec!["cli.zip", "on_s3.zip"]);
    let (ok, out) = cli(s.data_dir(), &["backup", "restore", "on_s3.zip"]);
    assert!(ok, "{out}");
    assert!(local_backups(&s).is_empty(), "{:?}", local_backups(&s));
    s.restart().await;
    assert_eq!(all_notes(&s).await.expect("notes").len(), 3);
}

/// With the bucket gone every backup operation answers a 503 in PocketBase's error shape
/// and changes nothing locally; the data and the server stay as they were.
#[tokio::test]
async fn backups_s3_outage_answers_503_and_changes_nothing() {
    let Some(mut moto) = Moto::start().await else {
        return;
    };
    let (s, su) = server_with_notes(2, "kept").await;
    backups_on_s3(&s, &su, &moto, "backups").await;
    assert_eq!(create_backup(&s, &su, "a.zip").await.0, 204);
    let ft = file_token(&s, &su).await;
    let zip_bytes = download(&s, "a.zip", &ft)
        .await
        .bytes()
        .await
        .expect("body")
        .to_vec();

    moto.stop();
    let mut answers = vec![
        s.call("GET", "/api/backups", Some(&su), None).await,
        create_backup(&s, &su, "b.zip").await,
        s.call("DELETE", "/api/backups/a.zip", Some(&su), None)
            .await,
        s.call("POST", "/api/backups/a.zip/restore", Some(&su), None)
            .await,
        upload(&s, &su, "file", "c.zip", &zip_bytes).await,
    ];
    let res = download(&s, "a.zip", &ft).await;
    answers.push((res.status().as_u16(), res.json().await.expect("json")));
    for (st, e) in answers {
        assert_eq!(st, 503, "{e}");
        assert_eq!(e["status"], 503, "{e}");
        assert!(
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("backups S3 storage")),
            "{e}"
        );
        assert!(e["data"].is_object(), "{e}");
    }
    assert!(local_backups(&s).is_empty(), "{:?}", local_backups(&s));
    assert!(!s.data_dir().join(".restore").exists());
    let items = all_notes(&s).await.expect("the server still serves");
    assert_eq!(items.len(), 2);
    // A create or restore that failed left the backups free for the next one.
    moto.resume().await;
    moto.create_bucket("backups").await;
    assert_eq!(keys(&s, &su).await, Vec::<String>::new());
    assert_eq!(create_backup(&s, &su, "b.zip").await.0, 204);
    assert_eq!(moto.keys("backups").await, vec!["b.zip"]);
}

/// The schedule makes its backups in the bucket and `cronMaxKeep` prunes the oldest
/// scheduled ones there (never one made by hand).
#[tokio::test]
async fn backups_cron_prunes_on_s3() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    backups_on_s3(&s, &su, &moto, "backups").await;
    assert_eq!(create_backup(&s, &su, "manual.zip").await.0, 204);
    let ft = file_token(&s, &su).await;
    let zip_bytes = download(&s, "manual.zip", &ft)
        .await
        .bytes()
        .await
        .expect("body")
        .to_vec();
    for old in [
        "@auto_pb_backup_acme_20200101000000.zip",
        "@auto_pb_backup_acme_20200102000000.zip",
    ] {
        let (st, e) = upload(&s, &su, "file", old, &zip_bytes).await;
        assert_eq!(st, 204, "{e}");
    }
    assert_eq!(moto.keys("backups").await.len(), 3);
    let (st, v) = s
        .call(
            "PATCH",
            "/api/settings",
            Some(&su),
            Some(json!({"backups": {"cron": "* * * * *", "cronMaxKeep": 1}})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let stored = wait_for_pruning(|| moto.keys("backups")).await;
    assert_eq!(keys(&s, &su).await, stored);
    assert!(local_backups(&s).is_empty(), "{:?}", local_backups(&s));
}
