//! Record files over HTTP: the storage handle, uploads in record writes, downloads and
//! deletion after commit, against the real binary.

use std::time::Duration;

use basalt_testkit::TestServer;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_basalt");

/// Enabling backups on S3 without a connection is refused with a 400 naming each missing
/// field (nothing of it saved); the rest of the document still saves.
#[tokio::test]
async fn enabling_backups_s3_without_a_connection_is_refused() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (st, e) = s
        .call(
            "PATCH",
            "/api/settings",
            Some(&su),
            Some(json!({"backups": {"s3": {"enabled": true}}})),
        )
        .await;
    assert_eq!(st, 400, "{e}");
    assert_eq!(
        e["data"]["backups"]["s3"]["bucket"]["code"], "validation_required",
        "{e}"
    );
    let (st, v) = s.call("GET", "/api/settings", Some(&su), None).await;
    assert_eq!(
        (st, &v["backups"]["s3"]["enabled"]),
        (200, &json!(false)),
        "{v}"
    );
    let (st, v) = s
        .call(
            "PATCH",
            "/api/settings",
            Some(&su),
            Some(json!({"s3": {"enabled": false, "bucket": "kept"}})),
        )
        .await;
    assert_eq!((st, &v["s3"]["bucket"]), (200, &json!("kept")), "{v}");
    // The local storage lives where PocketBase keeps it.
    assert!(s.data_dir().join(".upload_spool").is_dir());
}

use basalt_testkit::files::open_rules;
use basalt_testkit::multipart::send;

fn names(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) if !s.is_empty() => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        _ => vec![],
    }
}

const PNG: &[u8] = &[
    0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, b'I', b'H', b'D', b'R', 0, 0, 0,
    1, 0, 0, 0, 1, 8, 6, 0, 0, 0,
];

async fn docs_collection(s: &TestServer, su: &str, create_rule: &str) -> Value {
    s.create_collection(
        su,
        open_rules(
            json!({"name": "docs", "createRule": create_rule, "fields": [
            {"name": "title", "type": "text"},
            {"name": "one", "type": "file", "maxSize": 1000, "mimeTypes": ["text/plain"]},
            {"name": "many", "type": "file", "maxSelect": 3}]}),
        ),
    )
    .await
}

#[tokio::test]
async fn uploads_in_record_writes() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let c = docs_collection(&s, &su, "").await;
    let cid = c["id"].as_str().expect("id").to_string();

    // Create: a single and two multiple files, text fields beside them.
    let (st, r) = send(
        &s,
        "POST",
        "/api/collections/docs/records",
        None,
        &[
            ("title", None, b"t1"),
            ("one", Some("Hello World.txt"), b"hello"),
            ("many", Some("a.bin"), b"aaa"),
            ("many", Some("b"), PNG),
        ],
    )
    .await;
    assert_eq!(st, 200, "{r}");
    let id = r["id"].as_str().expect("id").to_string();
    let one = r["one"].as_str().expect("one").to_string();
    assert!(
        one.starts_with("hello_world_") && one.ends_with(".txt"),
        "{one}"
    );
    let many = names(&r["many"]);
    assert_eq!(many.len(), 2, "{r}");
    assert!(many[0].starts_with('a') && many[0].ends_with(".bin"));
    // No extension from the client: the detected one.
    assert!(
        many[1].starts_with("b") && many[1].ends_with(".png"),
        "{many:?}"
    );
    let on_disk = |name: &str| format!("{cid}/{id}/{name}");
    let mut want: Vec<String> = [&one, &many[0], &many[1]]
        .iter()
        .map(|n| on_disk(n))
        .collect();
    want.sort();
    assert_eq!(s.stored_files(), want);
    let bytes = std::fs::read(s.data_dir().join("storage").join(on_disk(&one))).expect("file");
    assert_eq!(bytes, b"hello");

    // `many+` appends, `+many` prepends, `many-` removes (and deletes after commit).
    let path = format!("/api/collections/docs/records/{id}");
    let (st, r) = send(
        &s,
        "PATCH",
        &path,
        None,
        &[("many+", Some("c.txt"), b"ccc")],
    )
    .await;
    assert_eq!(st, 200, "{r}");
    let after = names(&r["many"]);
    assert_eq!(after.len(), 3);
    assert_eq!(&after[..2], &many[..]);
    // A fourth file is past maxSelect: refused, and nothing new is stored.
    let before = s.stored_files();
    let (st, e) = send(
        &s,
        "PATCH",
        &path,
        None,
        &[("+many", Some("d.txt"), b"ddd")],
    )
    .await;
    assert_eq!(st, 400, "{e}");
    assert_eq!(
        e["data"]["many"]["code"], "validation_too_many_files",
        "{e}"
    );
    assert_eq!(s.stored_files(), before);
    let (st, r) = send(
        &s,
        "PATCH",
        &path,
        None,
        &[
            ("many-", None, after[0].as_bytes()),
            ("+many", Some("d.txt"), b"ddd"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{r}");
    let now = names(&r["many"]);
    assert_eq!(now.len(), 3, "{r}");
    assert!(now[0].starts_with('d') && now[1..] == after[1..], "{now:?}");
    assert!(!s.stored_files().contains(&on_disk(&after[0])));

    // Removal by setting the field empty (multipart text) and `@jsonPayload` with a file.
    let (st, r) = send(
        &s,
        "PATCH",
        &path,
        None,
        &[
            ("one", None, b""),
            ("@jsonPayload", None, br#"{"title": "via payload"}"#),
            ("many", Some("e.txt"), b"eee"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        (&r["one"], &r["title"]),
        (&json!(""), &json!("via payload"))
    );
    // A plain `many` part replaces the list.
    let only = names(&r["many"]);
    assert_eq!(only.len(), 1, "{r}");
    assert_eq!(s.stored_files(), vec![on_disk(&only[0])]);

    // Deleting the record deletes its files.
    let (st, _) = s.call("DELETE", &path, None, None).await;
    assert_eq!(st, 204);
    assert!(s.stored_files().is_empty(), "{:?}", s.stored_files());
}

#[tokio::test]
async fn refused_uploads_leave_nothing_stored() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    docs_collection(&s, &su, "title = 'ok'").await;
    let create = "/api/collections/docs/records";

    // Past maxSize: PocketBase's code and message.
    let big = vec![b'x'; 1500];
    let (st, e) = send(
        &s,
        "POST",
        create,
        None,
        &[("title", None, b"ok"), ("one", Some("big.txt"), &big)],
    )
    .await;
    assert_eq!(st, 400, "{e}");
    assert_eq!(
        e["data"]["one"]["code"], "validation_file_size_limit",
        "{e}"
    );
    assert_eq!(
        e["data"]["one"]["message"],
        "Failed to upload big.txt - the maximum allowed file size is 1000 bytes."
    );
    // A type the field does not allow (detected from the content, not the name).
    let (st, e) = send(
        &s,
        "POST",
        create,
        None,
        &[("title", None, b"ok"), ("one", Some("x.txt"), PNG)],
    )
    .await;
    assert_eq!(st, 400, "{e}");
    assert_eq!(
        e["data"]["one"]["code"], "validation_invalid_mime_type",
        "{e}"
    );
    // The create rule refuses the record: its files are removed again.
    let (st, e) = send(
        &s,
        "POST",
        create,
        None,
        &[("title", None, b"no"), ("many", Some("x.txt"), b"x")],
    )
    .await;
    assert_eq!(st, 400, "{e}");
    // A validation error after the files were stored (title too: an unknown relation is
    // not needed, a bad id is enough).
    let (st, e) = send(
        &s,
        "POST",
        create,
        None,
        &[
            ("id", None, b"BAD ID"),
            ("title", None, b"ok"),
            ("many", Some("x.txt"), b"x"),
        ],
    )
    .await;
    assert_eq!(st, 400, "{e}");
    assert!(s.stored_files().is_empty(), "{:?}", s.stored_files());
    // Batch is off in these settings: refused before any part is stored, as PocketBase
    // does (files in batch are `files_batch.rs`'s).
    let (st, e) = send(
        &s,
        "POST",
        "/api/batch",
        None,
        &[("requests.0.many", Some("x.txt"), b"x")],
    )
    .await;
    assert_eq!(st, 403, "{e}");
    assert!(s.stored_files().is_empty());

    // Hostile names are stored under safe names inside the record's directory.
    let long = format!("{}.txt", "n".repeat(400));
    let (st, r) = send(
        &s,
        "POST",
        create,
        None,
        &[
            ("title", None, b"ok"),
            ("many", Some("../../../etc/passwd"), b"1"),
            ("many", Some("..\\..\\win.ini"), b"2"),
            ("many", Some(&long), b"3"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{r}");
    let id = r["id"].as_str().expect("id");
    for n in names(&r["many"]) {
        assert!(n.len() < 140, "{n}");
        assert!(
            n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)),
            "{n}"
        );
        assert!(!n.starts_with('.'), "{n}");
    }
    let all = s.stored_files();
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(
        all.iter().all(|p| p.split('/').nth(1) == Some(id)),
        "{all:?}"
    );

    // Bodies past axum's 2 MB default and the 1 MB check above are taken (the field's
    // 5 MiB default applies).
    let big = vec![b'z'; 3 << 20];
    let (st, r) = send(
        &s,
        "POST",
        create,
        None,
        &[("title", None, b"ok"), ("many", Some("big.bin"), &big)],
    )
    .await;
    assert_eq!(st, 200, "{r}");
    let too_big = vec![b'z'; (5 << 20) + 1];
    let (st, e) = send(
        &s,
        "POST",
        create,
        None,
        &[("title", None, b"ok"), ("many", Some("big.bin"), &too_big)],
    )
    .await;
    assert_eq!(
        (st, &e["data"]["many"]["code"]),
        (400, &json!("validation_file_size_limit")),
        "{e}"
    );
    assert_eq!(s.stored_files().len(), 4);

    // Deleting the collection deletes its files.
    let (st, _) = s
        .call("DELETE", "/api/collections/docs", Some(&su), None)
        .await;
    assert_eq!(st, 204);
    assert!(s.stored_files().is_empty(), "{:?}", s.stored_files());
}

use basalt_testkit::images::png;

fn png_size(bytes: &[u8]) -> (u32, u32) {
    let n = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    (n(16), n(20))
}

async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(30));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("request")
}

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn downloads_with_ranges_validators_thumbs_and_tokens() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (st, c) = s
        .call(
            "POST",
            "/api/collections",
            Some(&su),
            Some(
                json!({"name": "pics", "listRule": "", "viewRule": "", "createRule": "",
                "updateRule": "", "fields": [
                {"name": "img", "type": "file", "maxSelect": 1,
                 "thumbs": ["10x10", "0x10", "10x0", "10x10t", "10x10b", "10x10f"]},
                {"name": "doc", "type": "file", "maxSelect": 2},
                {"name": "secret", "type": "file", "protected": true}]}),
            ),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    let image = png(40, 30);
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#;
    let (st, r) = send(
        &s,
        "POST",
        "/api/collections/pics/records",
        None,
        &[
            ("img", Some("photo.png"), &image),
            ("doc", Some("x.svg"), svg),
            ("secret", Some("s.txt"), b"top secret"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{r}");
    let id = r["id"].as_str().expect("id").to_string();
    let img = r["img"].as_str().expect("img").to_string();
    let doc = names(&r["doc"])[0].clone();
    let secret = r["secret"].as_str().expect("secret").to_string();
    let url = |name: &str, q: &str| s.url(&format!("/api/files/pics/{id}/{name}{q}"));

    // The whole file, with PocketBase's headers.
    let res = get(&url(&img, ""), &[]).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(header(&res, "content-type"), "image/png");
    assert_eq!(header(&res, "x-content-type-options"), "nosniff");
    assert!(header(&res, "content-security-policy").contains("sandbox"));
    assert_eq!(
        header(&res, "content-disposition"),
        format!("inline; filename=\"{img}\"")
    );
    assert_eq!(header(&res, "accept-ranges"), "bytes");
    let etag = header(&res, "etag");
    let modified = header(&res, "last-modified");
    assert!(!etag.is_empty() && !modified.is_empty());
    assert_eq!(res.bytes().await.expect("body").as_ref(), image.as_slice());
    let head = reqwest::Client::new()
        .head(url(&img, ""))
        .send()
        .await
        .expect("head");
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(header(&head, "content-length"), image.len().to_string());

    // Ranges.
    let res = get(&url(&img, ""), &[("range", "bytes=0-9")]).await;
    assert_eq!(res.status().as_u16(), 206);
    assert_eq!(
        header(&res, "content-range"),
        format!("bytes 0-9/{}", image.len())
    );
    assert_eq!(res.bytes().await.expect("body").as_ref(), &image[..10]);
    let res = get(&url(&img, ""), &[("range", "bytes=-5")]).await;
    assert_eq!(res.status().as_u16(), 206);
    assert_eq!(
        res.bytes().await.expect("body").as_ref(),
        &image[image.len() - 5..]
    );
    let res = get(&url(&img, ""), &[("range", "bytes=99999-")]).await;
    assert_eq!(res.status().as_u16(), 416);
    assert_eq!(
        header(&res, "content-range"),
        format!("bytes */{}", image.len())
    );

    // Validators.
    let res = get(&url(&img, ""), &[("if-none-match", &etag)]).await;
    assert_eq!(res.status().as_u16(), 304);
    let res = get(&url(&img, ""), &[("if-modified-since", &modified)]).await;
    assert_eq!(res.status().as_u16(), 304);
    let res = get(&url(&img, ""), &[("if-none-match", "\"other\"")]).await;
    assert_eq!(res.status().as_u16(), 200);

    // `?download=1`, and active content is never inline.
    let res = get(&url(&img, "?download=1"), &[]).await;
    assert_eq!(
        header(&res, "content-disposition"),
        format!("attachment; filename=\"{img}\"")
    );
    let res = get(&url(&doc, ""), &[]).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(header(&res, "content-type"), "image/svg+xml");
    assert!(header(&res, "content-disposition").starts_with("attachment"));

    // Thumbs in every form the field lists, made once and kept in storage.
    for (spec, check) in [
        ("10x10", (Some(10), Some(10))),
        ("0x10", (None, Some(10))),
        ("10x0", (Some(10), None)),
        ("10x10t", (Some(10), Some(10))),
        ("10x10b", (Some(10), Some(10))),
        ("10x10f", (Some(10), None)),
    ] {
        let res = get(&url(&img, &format!("?thumb={spec}")), &[]).await;
        assert_eq!(res.status().as_u16(), 200, "{spec}");
        assert_eq!(header(&res, "content-type"), "image/png", "{spec}");
        let bytes = res.bytes().await.expect("body");
        let (w, h) = png_size(&bytes);
        assert!(check.0.is_none_or(|cw| cw == w), "{spec}: {w}x{h}");
        assert!(check.1.is_none_or(|ch| ch == h), "{spec}: {w}x{h}");
        assert!(w <= 40 && h <= 30 && (w, h) != (40, 30), "{spec}: {w}x{h}");
        let cached = format!(
            "{}/{id}/thumbs_{img}/{spec}_{img}",
            c["id"].as_str().expect("id")
        );
        assert!(s.stored_files().contains(&cached), "{spec}");
        // Served from storage: its type read from the stored thumb's own bytes.
        let again = get(&url(&img, &format!("?thumb={spec}")), &[]).await;
        assert_eq!(header(&again, "content-type"), "image/png", "{spec}");
        assert_eq!(again.bytes().await.expect("body"), bytes, "{spec}");
    }
    // A size the field does not list: the original, as PocketBase serves it.
    let res = get(&url(&img, "?thumb=20x20"), &[]).await;
    assert_eq!(res.bytes().await.expect("body").as_ref(), image.as_slice());

    // Protected: an open view rule needs no token (PocketBase 0.40.6); a rule does.
    assert_eq!(get(&url(&secret, ""), &[]).await.status().as_u16(), 200);
    let (st, _) = s
        .call(
            "PATCH",
            "/api/collections/pics",
            Some(&su),
            Some(json!({"viewRule": "@request.auth.id != ''"})),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(get(&url(&secret, ""), &[]).await.status().as_u16(), 404);
    assert_eq!(
        get(&url(&secret, "?token=bad"), &[])
            .await
            .status()
            .as_u16(),
        404
    );
    // An auth token is not a file token.
    let q = format!("?token={su}");
    assert_eq!(get(&url(&secret, &q), &[]).await.status().as_u16(), 404);
    let (st, t) = s.call("POST", "/api/files/token", Some(&su), None).await;
    assert_eq!(st, 200, "{t}");
    let q = format!("?token={}", t["token"].as_str().expect("token"));
    let res = get(&url(&secret, &q), &[]).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.bytes().await.expect("body").as_ref(), b"top secret");
    // Unprotected files of the record stay public, as in PocketBase.
    assert_eq!(get(&url(&img, ""), &[]).await.status().as_u16(), 200);

    // Names the record does not hold, records that do not exist: 404.
    assert_eq!(get(&url("nope.png", ""), &[]).await.status().as_u16(), 404);
    let other = s.url(&format!("/api/files/pics/xxxxxxxxxxxxxxx/{img}"));
    assert_eq!(get(&other, &[]).await.status().as_u16(), 404);
    let other = s.url(&format!("/api/files/nope/{id}/{img}"));
    assert_eq!(get(&other, &[]).await.status().as_u16(), 404);
}
