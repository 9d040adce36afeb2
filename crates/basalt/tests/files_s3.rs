//! Record files on S3 chosen by the settings, as in PocketBase: the `s3` section
//! validated, its secret never shown, `POST /api/settings/test/s3`, new uploads going to
//! the storage the saved settings name (across restarts), against a real `moto_server`.

use basalt_testkit::TestServer;
use basalt_testkit::images::png;
use basalt_testkit::multipart::send;
use basalt_testkit::s3::Moto;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_basalt");

async fn patch_settings(s: &TestServer, su: &str, body: Value) -> (u16, Value) {
    s.call("PATCH", "/api/settings", Some(su), Some(body)).await
}

async fn test_s3(s: &TestServer, token: Option<&str>, body: Value) -> (u16, Value) {
    s.call("POST", "/api/settings/test/s3", token, Some(body))
        .await
}

#[tokio::test]
async fn s3_settings_are_validated_and_their_secret_never_shown() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    // Enabled without what a connection needs: each field named, as PocketBase does.
    let (st, e) = patch_settings(&s, &su, json!({"s3": {"enabled": true}})).await;
    assert_eq!(st, 400, "{e}");
    assert_eq!(
        e["message"],
        "An error occurred while saving the new settings."
    );
    for k in ["bucket", "region", "endpoint", "accessKey", "secret"] {
        assert_eq!(
            e["data"]["s3"][k]["code"], "validation_required",
            "{k}: {e}"
        );
    }
    let mut bad = json!({"enabled": true, "bucket": "b", "region": "r", "endpoint": "not a url",
                         "accessKey": "a", "secret": "s"});
    let (st, e) = patch_settings(&s, &su, json!({"s3": bad.clone()})).await;
    assert_eq!(
        (st, &e["data"]["s3"]["endpoint"]["code"]),
        (400, &json!("validation_is_url")),
        "{e}"
    );
    bad["endpoint"] = json!("http://127.0.0.1:9");
    bad["forcePathStyle"] = json!("yes");
    let (st, e) = patch_settings(&s, &su, json!({"s3": bad.clone()})).await;
    assert_eq!(
        (st, &e["data"]["s3"]["forcePathStyle"]["code"]),
        (400, &json!("validation_invalid_value")),
        "{e}"
    );
    // Nothing of a refused document was saved.
    let (_, v) = s.call("GET", "/api/settings", Some(&su), None).await;
    assert_eq!(v["s3"]["enabled"], false, "{v}");

    // A valid section saves; the secret (and the SMTP password) never come back.
    bad["forcePathStyle"] = json!(true);
    let (st, v) = patch_settings(
        &s,
        &su,
        json!({"s3": bad, "smtp": {"password": "smtp-secret"},
               "backups": {"s3": {"secret": "backup-secret"}}}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, got) = s.call("GET", "/api/settings", Some(&su), None).await;
    assert_eq!(st, 200);
    for doc in [&v, &got] {
        assert_eq!(doc["s3"]["enabled"], true, "{doc}");
        let text = doc.to_string();
        for secret in ["\"secret\"", "smtp-secret", "backup-secret", "\"password\""] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
    // A patch without the secret keeps it: the section stays usable.
    let (st, v) = patch_settings(&s, &su, json!({"s3": {"region": "eu-west-1"}})).await;
    assert_eq!(st, 200, "{v}");
    // Emptying it while enabled is refused.
    let (st, e) = patch_settings(&s, &su, json!({"s3": {"secret": ""}})).await;
    assert_eq!(
        (st, &e["data"]["s3"]["secret"]["code"]),
        (400, &json!("validation_required")),
        "{e}"
    );
    // Only superusers see or change settings.
    let (st, _) = s.call("GET", "/api/settings", None, None).await;
    assert_eq!(st, 401);
}

#[tokio::test]
async fn test_s3_answers_as_pocketbase() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    moto.create_bucket("tested").await;
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (st, e) = test_s3(&s, Some(&su), json!({})).await;
    assert_eq!(
        (st, &e["data"]["filesystem"]["code"]),
        (400, &json!("validation_required")),
        "{e}"
    );
    let (st, e) = test_s3(&s, Some(&su), json!({"filesystem": "disk"})).await;
    assert_eq!(
        (st, &e["data"]["filesystem"]["code"]),
        (400, &json!("validation_in_invalid")),
        "{e}"
    );
    assert_eq!(e["message"], "Failed to test the S3 filesystem.");
    // Not enabled: PocketBase's 400 with the reason and empty data.
    for fs in ["storage", "backups"] {
        let (st, e) = test_s3(&s, Some(&su), json!({"filesystem": fs})).await;
        assert_eq!((st, &e["data"]), (400, &json!({})), "{e}");
        let msg = e["message"].as_str().expect("message");
        assert!(
            msg.starts_with("Failed to test the S3 filesystem. Raw error: \n"),
            "{msg}"
        );
        assert!(msg.contains("not enabled"), "{msg}");
    }
    // A bucket that does not exist, then a server that is not there: 400s saying so.
    let mut section = moto.settings("missing-bucket");
    let (st, v) = patch_settings(&s, &su, json!({"s3": section.clone()})).await;
    assert_eq!(st, 200, "{v}");
    let (st, e) = test_s3(&s, Some(&su), json!({"filesystem": "storage"})).await;
    assert_eq!((st, &e["data"]), (400, &json!({})), "{e}");
    assert!(
        e["message"]
            .as_str()
            .expect("message")
            .contains("failed to upload a test file"),
        "{e}"
    );
    section["bucket"] = json!("tested");
    section["endpoint"] = json!(format!("http://127.0.0.1:{}", basalt_testkit::free_port()));
    patch_settings(&s, &su, json!({"s3": section.clone()})).await;
    let (st, e) = test_s3(&s, Some(&su), json!({"filesystem": "storage"})).await;
    assert_eq!((st, &e["data"]), (400, &json!({})), "{e}");
    // The real bucket: 204, and the test object is gone again.
    section["endpoint"] = json!(moto.endpoint());
    patch_settings(&s, &su, json!({"s3": section})).await;
    let (st, e) = test_s3(&s, Some(&su), json!({"filesystem": "storage"})).await;
    assert_eq!(st, 204, "{e}");
    assert!(moto.keys("tested").await.is_empty());
    // Superusers only.
    let (st, _) = test_s3(&s, None, json!({"filesystem": "storage"})).await;
    assert_eq!(st, 401);
}

async fn files_collection(s: &TestServer, su: &str) -> String {
    s.open_collection(
        su,
        "docs",
        json!([{"name": "f", "type": "file", "maxSelect": 1, "thumbs": ["10x10"]}]),
    )
    .await
}

async fn download(s: &TestServer, id: &str, name: &str, query: &str) -> (u16, Vec<u8>) {
    let res = s
        .http
        .get(s.url(&format!("/api/files/docs/{id}/{name}{query}")))
        .send()
        .await
        .expect("download");
    let st = res.status().as_u16();
    (st, res.bytes().await.expect("body").to_vec())
}

/// The settings switch the storage of new files at once and after a restart; files
/// stored before stay where they were (PocketBase moves nothing): served again when the
/// settings point back at their storage.
#[tokio::test]
async fn settings_switch_record_files_to_s3_and_back() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    moto.create_bucket("records").await;
    let mut s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let cid = files_collection(&s, &su).await;
    let local_dir = s.data_dir().join("storage").join(&cid);

    let (st, before) = send(
        &s,
        "POST",
        "/api/collections/docs/records",
        None,
        &[("f", Some("local.txt"), b"on disk")],
    )
    .await;
    assert_eq!(st, 200, "{before}");
    let (local_id, local_name) = (
        before["id"].as_str().expect("id").to_string(),
        before["f"].as_str().expect("f").to_string(),
    );
    assert!(local_dir.join(&local_id).join(&local_name).is_file());

    let (st, v) = patch_settings(&s, &su, json!({"s3": moto.settings("records")})).await;
    assert_eq!(st, 200, "{v}");
    let image = png(40, 30);
    let (st, r) = send(
        &s,
        "POST",
        "/api/collections/docs/records",
        None,
        &[("f", Some("pic.png"), &image)],
    )
    .await;
    assert_eq!(st, 200, "{r}");
    let (id, name) = (
        r["id"].as_str().expect("id").to_string(),
        r["f"].as_str().expect("f").to_string(),
    );
    let key = format!("{cid}/{id}/{name}");
    assert_eq!(moto.keys("records").await, vec![key.clone()]);
    assert!(!local_dir.join(&id).exists(), "nothing of it on local disk");
    assert_eq!(download(&s, &id, &name, "").await, (200, image.clone()));
    // A thumb is made from the S3 object and kept beside it.
    let (st, thumb) = download(&s, &id, &name, "?thumb=10x10").await;
    assert_eq!(st, 200);
    assert_ne!(thumb, image);
    assert_eq!(moto.keys("records").await.len(), 2);
    // The file stored on disk before the switch is not moved: not served from S3.
    assert_eq!(download(&s, &local_id, &local_name, "").await.0, 404);

    // The choice survives a restart.
    s.restart().await;
    let (st, r2) = send(
        &s,
        "POST",
        "/api/collections/docs/records",
        None,
        &[("f", Some("after.txt"), b"after restart")],
    )
    .await;
    assert_eq!(st, 200, "{r2}");
    let id2 = r2["id"].as_str().expect("id").to_string();
    assert_eq!(moto.keys("records").await.len(), 3);
    assert!(!local_dir.join(&id2).exists());

    // Deleting a record deletes its S3 objects (file and thumbs) after the commit.
    let su = s.superuser_token().await;
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/api/collections/docs/records/{id}"),
            Some(&su),
            None,
        )
        .await;
    assert_eq!(st, 204);
    let left = moto.keys("records").await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].starts_with(&format!("{cid}/{id2}/")), "{left:?}");

    // Back to local disk: the old file is served again, new ones go to disk.
    let (st, v) = patch_settings(&s, &su, json!({"s3": {"enabled": false}})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        download(&s, &local_id, &local_name, "").await,
        (200, b"on disk".to_vec())
    );
    let (st, r3) = send(
        &s,
        "POST",
        "/api/collections/docs/records",
        None,
        &[("f", Some("back.txt"), b"back")],
    )
    .await;
    assert_eq!(st, 200, "{r3}");
    assert!(local_dir.join(r3["id"].as_str().expect("id")).is_dir());
    assert_eq!(moto.keys("records").await.len(), 1);
}
