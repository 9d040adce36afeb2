//! Files follow their records through every kind of write: a relation's cascade delete
//! (a truncate's too), a file field removed by an update or an import, a collection an
//! import deletes, and batch updates and deletes each delete the files they leave without
//! a record, after the commit; a write that fails deletes nothing. The orphan sweep
//! collects what is left anyway.

use std::process::Command;
use std::time::{Duration, SystemTime};

use basalt_testkit::TestServer;
use basalt_testkit::multipart::send;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_basalt");

async fn upload(s: &TestServer, collection: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Value {
    let (st, r) = send(
        s,
        "POST",
        &format!("/api/collections/{collection}/records"),
        None,
        parts,
    )
    .await;
    assert_eq!(st, 200, "{r}");
    r
}

fn id(r: &Value) -> String {
    r["id"].as_str().expect("id").to_string()
}

/// `albums` (a `cover` file) and `photos` (an `img` file and an `album` relation that
/// cascades on delete), every rule open; their ids.
async fn albums_and_photos(s: &TestServer, su: &str) -> (String, String) {
    let albums = s
        .open_collection(su, "albums", json!([{"name": "cover", "type": "file"}]))
        .await;
    let photos = s
        .open_collection(
            su,
            "photos",
            json!([{"name": "img", "type": "file"},
                {"name": "album", "type": "relation", "collectionId": albums,
                 "cascadeDelete": true, "maxSelect": 1}]),
        )
        .await;
    (albums, photos)
}

#[tokio::test]
async fn cascade_deletes_take_the_files_of_every_deleted_record() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (albums, photos) = albums_and_photos(&s, &su).await;

    let a = id(&upload(&s, "albums", &[("cover", Some("c.txt"), b"cover")]).await);
    let other = id(&upload(&s, "albums", &[("cover", Some("o.txt"), b"other")]).await);
    let p1 = id(&upload(
        &s,
        "photos",
        &[
            ("img", Some("1.txt"), b"one"),
            ("album", None, a.as_bytes()),
        ],
    )
    .await);
    let p2 = id(&upload(
        &s,
        "photos",
        &[
            ("img", Some("2.txt"), b"two"),
            ("album", None, a.as_bytes()),
        ],
    )
    .await);
    let kept = id(&upload(
        &s,
        "photos",
        &[
            ("img", Some("3.txt"), b"three"),
            ("album", None, other.as_bytes()),
        ],
    )
    .await);
    assert_eq!(s.stored_files().len(), 5);

    let (st, e) = s
        .call(
            "DELETE",
            &format!("/api/collections/albums/records/{a}"),
            None,
            None,
        )
        .await;
    assert_eq!(st, 204, "{e}");
    let left = s.stored_files();
    assert_eq!(left.len(), 2, "{left:?}");
    for gone in [
        format!("{albums}/{a}/"),
        format!("{photos}/{p1}/"),
        format!("{photos}/{p2}/"),
    ] {
        assert!(
            !left.iter().any(|k| k.starts_with(&gone)),
            "{gone} in {left:?}"
        );
    }
    assert!(
        left.iter()
            .any(|k| k.starts_with(&format!("{photos}/{kept}/"))),
        "{left:?}"
    );
}

/// `docs` with a `keep` and a `drop` file field, and one record holding a file in `keep`
/// and two in `drop`; the collection's id and the record.
async fn keep_and_drop(s: &TestServer, su: &str) -> (String, Value) {
    let cid = s
        .open_collection(
            su,
            "docs",
            json!([{"name": "keep", "type": "file"},
                {"name": "drop", "type": "file", "maxSelect": 3}]),
        )
        .await;
    let r = upload(
        s,
        "docs",
        &[
            ("keep", Some("k.txt"), b"k"),
            ("drop", Some("d1.txt"), b"d1"),
            ("drop", Some("d2.txt"), b"d2"),
        ],
    )
    .await;
    (cid, r)
}

#[tokio::test]
async fn a_removed_file_field_takes_its_files_after_the_change_commits() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (cid, r) = keep_and_drop(&s, &su).await;
    upload(&s, "docs", &[("keep", Some("k2.txt"), b"k2")]).await;
    assert_eq!(s.stored_files().len(), 4);
    let (st, c) = s
        .call("GET", "/api/collections/docs", Some(&su), None)
        .await;
    assert_eq!(st, 200);
    let fields: Vec<Value> = c["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter(|f| f["name"] != "drop")
        .cloned()
        .collect();
    let (st, e) = s
        .call(
            "PATCH",
            "/api/collections/docs",
            Some(&su),
            Some(json!({"fields": fields})),
        )
        .await;
    assert_eq!(st, 200, "{e}");
    let left = s.stored_files();
    assert_eq!(left.len(), 2, "{left:?}");
    let keep = r["keep"].as_str().expect("keep");
    assert!(
        left.contains(&format!("{cid}/{}/{keep}", id(&r))),
        "{left:?}"
    );
}

#[tokio::test]
async fn batch_updates_and_deletes_drop_files_after_commit_and_failures_drop_none() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (st, v) = s
        .call(
            "PATCH",
            "/api/settings",
            Some(&su),
            Some(json!({"batch": {"enabled": true}})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let cid = s
        .open_collection(
            &su,
            "docs",
            json!([{"name": "title", "type": "text", "max": 5},
                {"name": "f", "type": "file", "maxSelect": 2}]),
        )
        .await;
    let a = upload(&s, "docs", &[("f", Some("a.txt"), b"a")]).await;
    let b = upload(&s, "docs", &[("f", Some("b.txt"), b"b")]).await;
    let (ida, idb) = (id(&a), id(&b));
    assert_eq!(s.stored_files().len(), 2);
    // A batch that fails (title too long) changes nothing and deletes nothing.
    let (st, e) = s.call("POST", "/api/batch", Some(&su), Some(json!({"requests": [
        {"method": "DELETE", "url": format!("/api/collections/docs/records/{idb}")},
        {"method": "PATCH", "url": format!("/api/collections/docs/records/{ida}"), "body": {"f": [], "title": "too long"}}]}))).await;
    assert_eq!(st, 400, "{e}");
    assert_eq!(s.stored_files().len(), 2);
    // Committed: a's file removed by the update, b's by the delete.
    let (st, e) = s.call("POST", "/api/batch", Some(&su), Some(json!({"requests": [
        {"method": "DELETE", "url": format!("/api/collections/docs/records/{idb}")},
        {"method": "PATCH", "url": format!("/api/collections/docs/records/{ida}"), "body": {"f": []}}]}))).await;
    assert_eq!(st, 200, "{e}");
    assert_eq!(s.stored_files(), Vec::<String>::new(), "{cid}");
}

/// Regression: a truncate deleted the files of the truncated collection only, and left
/// those of the records its cascade deleted in other collections.
#[tokio::test]
async fn a_truncate_takes_the_files_of_the_records_its_cascade_deleted() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (_, photos) = albums_and_photos(&s, &su).await;
    let a = id(&upload(&s, "albums", &[("cover", Some("c.txt"), b"cover")]).await);
    for (name, body) in [("1.txt", b"one"), ("2.txt", b"two")] {
        upload(
            &s,
            "photos",
            &[("img", Some(name), body), ("album", None, a.as_bytes())],
        )
        .await;
    }
    let loose = id(&upload(&s, "photos", &[("img", Some("3.txt"), b"three")]).await);
    assert_eq!(s.stored_files().len(), 4);

    let (st, e) = s
        .call(
            "DELETE",
            "/api/collections/albums/truncate",
            Some(&su),
            None,
        )
        .await;
    assert_eq!(st, 204, "{e}");
    assert_eq!(s.record_count("photos").await, 1);
    let left = s.stored_files();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        left[0].starts_with(&format!("{photos}/{loose}/")),
        "{left:?}"
    );
}

/// Regression: `PUT /api/collections/import` dropped file fields and collections but
/// left their files in storage.
#[tokio::test]
async fn an_import_that_drops_a_file_field_or_a_collection_takes_their_files() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (cid, r) = keep_and_drop(&s, &su).await;
    s.open_collection(&su, "extra", json!([{"name": "f", "type": "file"}]))
        .await;
    upload(&s, "extra", &[("f", Some("x.txt"), b"x")]).await;
    assert_eq!(s.stored_files().len(), 4);
    let kept = vec![format!(
        "{cid}/{}/{}",
        id(&r),
        r["keep"].as_str().expect("keep")
    )];

    let (_, all) = s
        .call("GET", "/api/collections?perPage=100", Some(&su), None)
        .await;
    let mut docs: Vec<Value> = all["items"].as_array().expect("items").clone();
    for doc in docs.iter_mut().filter(|d| d["name"] == "docs") {
        let fields = doc["fields"].as_array_mut().expect("fields");
        fields.retain(|f| f["name"] != "drop");
    }
    let (st, e) = s
        .call(
            "PUT",
            "/api/collections/import",
            Some(&su),
            Some(json!({"collections": docs.clone()})),
        )
        .await;
    assert_eq!(st, 204, "{e}");
    let left = s.stored_files();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&kept[0]), "{left:?}");

    // `deleteMissing` deletes `extra`, and its files with it.
    docs.retain(|d| d["name"] != "extra");
    let (st, e) = s
        .call(
            "PUT",
            "/api/collections/import",
            Some(&su),
            Some(json!({"collections": docs, "deleteMissing": true})),
        )
        .await;
    assert_eq!(st, 204, "{e}");
    let (st, _) = s
        .call("GET", "/api/collections/extra", Some(&su), None)
        .await;
    assert_eq!(st, 404);
    assert_eq!(s.stored_files(), kept);
}

/// Writes an old (two hours) stored file at `rel` under the data dir's `storage/`.
fn put_old(s: &TestServer, rel: &str) {
    let path = s.data_dir().join("storage").join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, "orphan").expect("write");
    let f = std::fs::File::options()
        .write(true)
        .open(&path)
        .expect("open");
    f.set_modified(SystemTime::now() - Duration::from_secs(7200))
        .expect("set mtime");
}

/// `basalt files sweep` on the server's data dir: whether it succeeded and its output.
fn sweep_cli(s: &TestServer) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["files", "sweep", "--dir"])
        .arg(s.data_dir())
        .envs(s.database_url().map(|u| ("BASALT_DATABASE_URL", u)))
        .output()
        .expect("run basalt files sweep");
    let mut text = String::from_utf8_lossy(&out.stdout).to_string();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The sweep streams the storage and judges it a batch at a time: with more files than
/// one batch (and one run's 1000 removals), every orphan is found, named files stay, and
/// what one run leaves the next removes.
#[tokio::test]
async fn the_sweep_walks_more_files_than_one_batch() {
    let mut s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let cid = s
        .open_collection(&su, "docs", json!([{"name": "f", "type": "file"}]))
        .await;
    let r = upload(&s, "docs", &[("f", Some("named.txt"), b"named")]).await;
    let named = format!("{cid}/{}/{}", id(&r), r["f"].as_str().expect("f"));
    put_old(&s, &format!("{cid}/{}/gone_1234567890.txt", id(&r)));
    for i in 0..1199 {
        put_old(
            &s,
            &format!("{cid}/orphan{:07}/o{}_1234567890.txt", i / 2, i % 2),
        );
    }
    assert_eq!(s.stored_files().len(), 1201);
    assert!(s.terminate());

    let (ok, out) = sweep_cli(&s);
    assert!(ok, "{out}");
    assert!(
        out.contains("examined 1201, orphans 1000, removed 1000, younger than the grace period 0, left for the next run 200"),
        "{out}"
    );
    assert_eq!(s.stored_files().len(), 201);
    let (ok, out) = sweep_cli(&s);
    assert!(ok, "{out}");
    assert!(
        out.contains("examined 201, orphans 200, removed 200"),
        "{out}"
    );
    assert_eq!(s.stored_files(), vec![named]);
}
