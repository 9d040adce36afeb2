//! Files follow their records through every kind of write: a relation's cascade delete,
//! a removed file field, and batch updates and deletes each delete the files they leave
//! without a record, after the commit; a write that fails deletes nothing.

use std::path::Path;

use basalt_testkit::TestServer;
use basalt_testkit::multipart::send;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_basalt");

/// Every stored object under `storage/` (relative paths), sorted.
fn stored(s: &TestServer) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.push(
                    p.strip_prefix(root)
                        .expect("under root")
                        .display()
                        .to_string(),
                );
            }
        }
    }
    let root = s.data_dir().join("storage");
    let mut out = vec![];
    walk(&root, &root, &mut out);
    out.sort();
    out
}

async fn collection(s: &TestServer, su: &str, doc: Value) -> String {
    let (st, c) = s
        .call("POST", "/api/collections", Some(su), Some(doc))
        .await;
    assert_eq!(st, 200, "{c}");
    c["id"].as_str().expect("id").to_string()
}

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

#[tokio::test]
async fn cascade_deletes_take_the_files_of_every_deleted_record() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let open = json!({"listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": ""});
    let mut parent = json!({"name": "albums", "fields": [{"name": "cover", "type": "file"}]});
    merge(&mut parent, &open);
    let albums = collection(&s, &su, parent).await;
    let mut child = json!({"name": "photos", "fields": [
        {"name": "img", "type": "file"},
        {"name": "album", "type": "relation", "collectionId": albums, "cascadeDelete": true, "maxSelect": 1}]});
    merge(&mut child, &open);
    let photos = collection(&s, &su, child).await;

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
    assert_eq!(stored(&s).len(), 5);

    let (st, e) = s
        .call(
            "DELETE",
            &format!("/api/collections/albums/records/{a}"),
            None,
            None,
        )
        .await;
    assert_eq!(st, 204, "{e}");
    let left = stored(&s);
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

fn merge(base: &mut Value, extra: &Value) {
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
}

#[tokio::test]
async fn a_removed_file_field_takes_its_files_after_the_change_commits() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let cid = collection(
        &s,
        &su,
        json!({"name": "docs", "createRule": "", "fields": [
        {"name": "keep", "type": "file"}, {"name": "drop", "type": "file", "maxSelect": 3}]}),
    )
    .await;
    let r = upload(
        &s,
        "docs",
        &[
            ("keep", Some("k.txt"), b"k"),
            ("drop", Some("d1.txt"), b"d1"),
            ("drop", Some("d2.txt"), b"d2"),
        ],
    )
    .await;
    upload(&s, "docs", &[("keep", Some("k2.txt"), b"k2")]).await;
    assert_eq!(stored(&s).len(), 4);
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
    let left = stored(&s);
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
    let cid = collection(&s, &su, json!({"name": "docs", "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [{"name": "title", "type": "text", "max": 5}, {"name": "f", "type": "file", "maxSelect": 2}]})).await;
    let a = upload(&s, "docs", &[("f", Some("a.txt"), b"a")]).await;
    let b = upload(&s, "docs", &[("f", Some("b.txt"), b"b")]).await;
    let (ida, idb) = (id(&a), id(&b));
    assert_eq!(stored(&s).len(), 2);
    // A batch that fails (title too long) changes nothing and deletes nothing.
    let (st, e) = s.call("POST", "/api/batch", Some(&su), Some(json!({"requests": [
        {"method": "DELETE", "url": format!("/api/collections/docs/records/{idb}")},
        {"method": "PATCH", "url": format!("/api/collections/docs/records/{ida}"), "body": {"f": [], "title": "too long"}}]}))).await;
    assert_eq!(st, 400, "{e}");
    assert_eq!(stored(&s).len(), 2);
    // Committed: a's file removed by the update, b's by the delete.
    let (st, e) = s.call("POST", "/api/batch", Some(&su), Some(json!({"requests": [
        {"method": "DELETE", "url": format!("/api/collections/docs/records/{idb}")},
        {"method": "PATCH", "url": format!("/api/collections/docs/records/{ida}"), "body": {"f": []}}]}))).await;
    assert_eq!(st, 200, "{e}");
    assert_eq!(stored(&s), Vec::<String>::new(), "{cid}");
}
