//! Files in `/api/batch` as PocketBase's SDK sends them: a multipart body with the
//! requests in `@jsonPayload` and each file in a part named `requests.N.FIELD`. Stored
//! before the transaction, named in their sub-request, removed again when any
//! sub-request fails; answers in PocketBase's batch error shape.

use basalt_testkit::TestServer;
use basalt_testkit::multipart::send;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_basalt");

#[tokio::test]
async fn batch_uploads_as_the_sdk_sends_them() {
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
                {"name": "one", "type": "file", "maxSize": 10},
                {"name": "many", "type": "file", "maxSelect": 3}]),
        )
        .await;
    let url = "/api/collections/docs/records";
    let (st, first) = send(&s, "POST", url, None, &[("many", Some("m0.txt"), b"m0")]).await;
    assert_eq!(st, 200, "{first}");
    let existing = first["id"].as_str().expect("id").to_string();

    // A create with two files and an update appending one, in one batch.
    let payload = json!({"requests": [
        {"method": "POST", "url": url, "body": {"title": "new"}},
        {"method": "PATCH", "url": format!("{url}/{existing}"), "body": {}}]})
    .to_string();
    let (st, out) = send(
        &s,
        "POST",
        "/api/batch",
        None,
        &[
            ("requests.0.one", Some("a.txt"), b"alpha"),
            ("requests.0.many", Some("b.txt"), b"beta"),
            ("requests.1.many+", Some("c.txt"), b"gamma"),
            ("@jsonPayload", None, payload.as_bytes()),
        ],
    )
    .await;
    assert_eq!(st, 200, "{out}");
    let created = &out[0]["body"];
    let updated = &out[1]["body"];
    assert_eq!(created["title"], "new", "{out}");
    let one = created["one"].as_str().expect("one");
    assert!(one.starts_with('a') && one.ends_with(".txt"), "{one}");
    assert_eq!(created["many"].as_array().expect("many").len(), 1);
    assert_eq!(
        updated["many"].as_array().expect("many").len(),
        2,
        "{updated}"
    );
    assert_eq!(s.stored_files().len(), 4);
    let new_id = created["id"].as_str().expect("id");
    let res = s
        .http
        .get(s.url(&format!("/api/files/docs/{new_id}/{one}")))
        .send()
        .await
        .expect("get");
    assert_eq!(res.bytes().await.expect("body").as_ref(), b"alpha");

    // A file past its field's limit: PocketBase's batch error, nothing stored or written.
    let payload = json!({"requests": [{"method": "POST", "url": url, "body": {}}]}).to_string();
    let (st, e) = send(
        &s,
        "POST",
        "/api/batch",
        None,
        &[
            ("requests.0.one", Some("big.txt"), b"more than ten bytes"),
            ("@jsonPayload", None, payload.as_bytes()),
        ],
    )
    .await;
    assert_eq!(st, 400, "{e}");
    assert_eq!(e["message"], "Batch transaction failed.");
    let r0 = &e["data"]["requests"]["0"];
    assert_eq!(r0["code"], "batch_request_failed", "{e}");
    assert_eq!(r0["response"]["message"], "Failed to create record.", "{e}");
    assert_eq!(
        r0["response"]["data"]["one"]["code"], "validation_file_size_limit",
        "{e}"
    );
    assert_eq!(
        (s.record_count("docs").await, s.stored_files().len()),
        (2, 4)
    );

    // A later sub-request fails: the files the earlier ones stored are removed again.
    let payload = json!({"requests": [
        {"method": "POST", "url": url, "body": {}},
        {"method": "POST", "url": url, "body": {"title": "too long"}}]})
    .to_string();
    let (st, e) = send(
        &s,
        "POST",
        "/api/batch",
        None,
        &[
            ("requests.0.many", Some("x.txt"), b"x"),
            ("requests.1.many", Some("y.txt"), b"y"),
            ("@jsonPayload", None, payload.as_bytes()),
        ],
    )
    .await;
    assert_eq!(st, 400, "{e}");
    assert_eq!(
        (s.record_count("docs").await, s.stored_files().len()),
        (2, 4)
    );

    // Files only go with creates and updates.
    let payload =
        json!({"requests": [{"method": "DELETE", "url": format!("{url}/{existing}")}]}).to_string();
    let (st, e) = send(
        &s,
        "POST",
        "/api/batch",
        None,
        &[
            ("requests.0.many", Some("z.txt"), b"z"),
            ("@jsonPayload", None, payload.as_bytes()),
        ],
    )
    .await;
    assert_eq!(st, 400, "{e}");
    assert_eq!(
        (s.record_count("docs").await, s.stored_files().len()),
        (2, 4)
    );
    assert!(s.stored_files().iter().all(|k| k.starts_with(&cid)));
    // Files outside a batch's `requests.N.FIELD` naming are not record files anywhere.
    let (st, _) = send(
        &s,
        "POST",
        "/api/batch",
        None,
        &[
            ("stray", Some("s.txt"), b"s"),
            (
                "@jsonPayload",
                None,
                json!({"requests": [{"method": "POST", "url": url, "body": {}}]})
                    .to_string()
                    .as_bytes(),
            ),
        ],
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        (s.record_count("docs").await, s.stored_files().len()),
        (3, 4)
    );
}
