//! Hostile uploads over HTTP: an image bomb asked for a thumb, truncated multipart
//! bodies, file names meant to escape or confuse storage, and S3 going away. Each gets a
//! clear answer (2xx with a safe stored name, a 4xx, or a 5xx for the outage) and leaves
//! no partial record and no stored file without its record; the server lives on.

use basalt_testkit::TestServer;
use basalt_testkit::images::png_with_idat;
use basalt_testkit::multipart::{BOUNDARY, send, send_body};
use basalt_testkit::s3::{CutProxy, Moto};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_basalt");

async fn docs(s: &TestServer, su: &str) -> String {
    s.open_collection(
        su,
        "docs",
        json!([{"name": "f", "type": "file", "maxSelect": 1, "maxSize": 5_000_000,
                "thumbs": ["10x10"]}]),
    )
    .await
}

/// A PNG whose header declares `w`×`h` with one tiny IDAT: a decompression bomb's shape.
fn bomb_png(w: u32, h: u32) -> Vec<u8> {
    png_with_idat(w, h, &[0x78, 0x9c, 0x63, 0, 0, 0, 1, 0, 1])
}

async fn healthy(s: &TestServer) {
    let (st, _) = s.call("GET", "/api/health", None, None).await;
    assert_eq!(st, 200, "the server lives on");
}

#[tokio::test]
async fn image_bombs_get_the_original_or_a_4xx_never_an_allocation() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    docs(&s, &su).await;
    for (w, h) in [
        (100_000, 100_000),
        (u32::MAX >> 1, 1),
        (1, u32::MAX >> 1),
        (65_535, 65_535),
    ] {
        let bomb = bomb_png(w, h);
        let (st, r) = send(
            &s,
            "POST",
            "/api/collections/docs/records",
            None,
            &[("f", Some("bomb.png"), &bomb)],
        )
        .await;
        assert_eq!(st, 200, "{r}");
        let url = s.url(&format!(
            "/api/files/docs/{}/{}?thumb=10x10",
            r["id"].as_str().expect("id"),
            r["f"].as_str().expect("f")
        ));
        let res = s.http.get(url).send().await.expect("thumb request");
        let status = res.status().as_u16();
        let body = res.bytes().await.expect("body");
        assert!(
            status == 200 || (400..500).contains(&status),
            "{w}x{h}: {status}"
        );
        if status == 200 {
            assert_eq!(
                body.as_ref(),
                bomb.as_slice(),
                "{w}x{h}: the original, not a thumb"
            );
        }
        healthy(&s).await;
    }
}

#[tokio::test]
async fn truncated_multipart_is_a_4xx_with_nothing_stored() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    docs(&s, &su).await;
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\
         Content-Type: text/plain\r\n\r\nsome bytes of a file"
    );
    let bodies: Vec<Vec<u8>> = vec![
        // Cut inside a file part: no closing boundary.
        head.clone().into_bytes(),
        // Cut inside the part's headers.
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f\"; filen").into_bytes(),
        // A closing boundary that never comes after a complete part.
        format!("{head}\r\n--{BOUNDARY}").into_bytes(),
        // No boundary at all.
        b"just some bytes".to_vec(),
    ];
    for body in bodies {
        let (st, e) = send_body(
            &s,
            "POST",
            "/api/collections/docs/records",
            None,
            body.clone(),
        )
        .await;
        assert!(
            (400..500).contains(&st),
            "{st} {e} for {:?}",
            String::from_utf8_lossy(&body)
        );
        assert!(e["message"].is_string(), "PocketBase's error shape: {e}");
    }
    assert_eq!(s.record_count("docs").await, 0);
    assert_eq!(s.stored_files(), Vec::<String>::new());
    healthy(&s).await;
}

/// A create whose file part is named by `name` (raw bytes, so not only UTF-8).
fn named_part(name: &[u8]) -> Vec<u8> {
    let mut out =
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"")
            .into_bytes();
    out.extend_from_slice(name);
    out.extend_from_slice(b"\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n");
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

#[tokio::test]
async fn hostile_file_names_are_stored_under_safe_names_or_refused() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let cid = docs(&s, &su).await;
    let long = "a".repeat(5000) + ".txt";
    let names: Vec<Vec<u8>> = vec![
        b"../../../etc/passwd".to_vec(),
        b"..\\..\\windows\\system32\\cmd.exe".to_vec(),
        b"/etc/shadow".to_vec(),
        b"C:\\boot.ini".to_vec(),
        b"a\0b.txt".to_vec(),
        b"CON".to_vec(),
        b"aux.txt".to_vec(),
        b"NUL.png".to_vec(),
        b"..".to_vec(),
        b".".to_vec(),
        b"".to_vec(),
        b".htaccess".to_vec(),
        long.into_bytes(),
        vec![0xff, 0xfe, b'x', 0xc3, 0x28, b'.', b't', b'x', b't'],
        "ünïcödé 名前.txt".as_bytes().to_vec(),
        b"name\r\nX-Injected: 1.txt".to_vec(),
    ];
    let mut ids = vec![];
    for name in &names {
        let (st, r) = send_body(
            &s,
            "POST",
            "/api/collections/docs/records",
            None,
            named_part(name),
        )
        .await;
        let shown = String::from_utf8_lossy(name);
        assert!(
            st == 200 || (400..500).contains(&st),
            "{st} {r} for {shown:?}"
        );
        if st != 200 {
            assert!(r["message"].is_string(), "{r}");
            continue;
        }
        let id = r["id"].as_str().expect("id").to_string();
        let stored_name = match &r["f"] {
            Value::String(n) => n.clone(),
            other => panic!("{other} for {shown:?}"),
        };
        if stored_name.is_empty() {
            continue;
        }
        assert!(stored_name.len() <= 150, "{stored_name}");
        assert!(
            stored_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
                && !stored_name.starts_with('.')
                && !stored_name.contains(".."),
            "{stored_name:?} from {shown:?}"
        );
        ids.push((id, stored_name));
    }
    // Every stored file lies where its record says, and nowhere else.
    let mut want: Vec<String> = ids
        .iter()
        .map(|(id, n)| format!("{cid}/{id}/{n}"))
        .collect();
    want.sort();
    assert_eq!(s.stored_files(), want);
    assert!(!s.data_dir().join("etc").exists());
    healthy(&s).await;
}

#[tokio::test]
async fn an_s3_outage_is_a_5xx_with_no_record_and_no_file() {
    let Some(mut moto) = Moto::start().await else {
        return;
    };
    moto.create_bucket("files").await;
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    docs(&s, &su).await;
    let (st, v) = s
        .call(
            "PATCH",
            "/api/settings",
            Some(&su),
            Some(json!({"s3": moto.settings("files")})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, r) = send(
        &s,
        "POST",
        "/api/collections/docs/records",
        None,
        &[("f", Some("ok.txt"), b"fine")],
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(moto.keys("files").await.len(), 1);

    // S3 goes away: small (one PUT) and large (multipart) uploads both fail as an outage.
    moto.stop();
    let big = vec![7u8; 4_000_000];
    for body in [b"small".as_slice(), big.as_slice()] {
        let (st, e) = send(
            &s,
            "POST",
            "/api/collections/docs/records",
            None,
            &[("f", Some("x.bin"), body)],
        )
        .await;
        assert!((500..600).contains(&st), "{st} {e}");
        assert!(e["message"].is_string(), "{e}");
    }
    // An update that would add a file fails the same way and leaves the record as it was.
    let id = r["id"].as_str().expect("id");
    let (st, _) = send(
        &s,
        "PATCH",
        &format!("/api/collections/docs/records/{id}"),
        None,
        &[("f", Some("y.txt"), b"new")],
    )
    .await;
    assert!((500..600).contains(&st), "{st}");
    assert_eq!(s.record_count("docs").await, 1, "no partial record");
    let (_, still) = s
        .call(
            "GET",
            &format!("/api/collections/docs/records/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(still["f"], r["f"]);
    healthy(&s).await;

    // S3 comes back (moto starts empty): uploads work again, and nothing half-written
    // from the outage appears.
    moto.resume().await;
    moto.create_bucket("files").await;
    let (st, r2) = send(
        &s,
        "POST",
        "/api/collections/docs/records",
        None,
        &[("f", Some("again.txt"), b"again")],
    )
    .await;
    assert_eq!(st, 200, "{r2}");
    let keys = moto.keys("files").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].contains(r2["id"].as_str().expect("id")), "{keys:?}");
    assert_eq!(
        s.stored_files(),
        Vec::<String>::new(),
        "nothing fell back to local disk"
    );
}

/// S3 goes away while an upload's body is streaming to it (a proxy cuts the connection
/// after 1 MiB): a single PUT and a multipart upload both get a 5xx in PocketBase's error
/// shape, no record, no object and no multipart upload left behind; once S3 is reachable
/// again uploads work.
#[tokio::test]
async fn s3_failing_mid_upload_is_a_5xx_with_no_record_and_no_file() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    moto.create_bucket("cut").await;
    let proxy = CutProxy::start(moto.port(), 1 << 20).await;
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    s.open_collection(
        &su,
        "docs",
        json!([{"name": "f", "type": "file", "maxSize": 20_000_000}]),
    )
    .await;
    let mut settings = moto.settings("cut");
    settings["endpoint"] = json!(proxy.endpoint());
    let (st, v) = s
        .call(
            "PATCH",
            "/api/settings",
            Some(&su),
            Some(json!({"s3": settings})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, first) = send(
        &s,
        "POST",
        "/api/collections/docs/records",
        None,
        &[("f", Some("before.txt"), b"before")],
    )
    .await;
    assert_eq!(st, 200, "{first}");
    let before = moto.keys("cut").await;
    assert_eq!(before.len(), 1);

    proxy.arm(true);
    // 3 MiB is one PUT; 12 MiB is a multipart upload of 5 MiB parts.
    for size in [3 << 20, 12 << 20] {
        let body = vec![b'x'; size];
        let (st, e) = send(
            &s,
            "POST",
            "/api/collections/docs/records",
            None,
            &[("f", Some("big.bin"), &body)],
        )
        .await;
        assert!((500..600).contains(&st), "{size}: {st} {e}");
        assert_eq!(e["status"], json!(st), "{e}");
        assert!(e["message"].is_string() && e["data"].is_object(), "{e}");
    }
    assert_eq!(s.record_count("docs").await, 1, "no partial record");
    assert_eq!(moto.keys("cut").await, before, "no object left");
    assert_eq!(moto.pending_uploads("cut").await, 0, "multipart aborted");
    assert_eq!(s.stored_files(), Vec::<String>::new(), "no local fallback");
    healthy(&s).await;

    proxy.arm(false);
    let body = vec![b'y'; 6 << 20];
    let (st, r) = send(
        &s,
        "POST",
        "/api/collections/docs/records",
        None,
        &[("f", Some("after.bin"), &body)],
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(moto.keys("cut").await.len(), 2);
}
