//! kill -9 during uploads, repeatedly: after each restart every record's files are on
//! disk (a file is stored, renamed into place, before the transaction naming it commits;
//! the page cache holding it outlives the process). Files
//! stored for writes that never committed may be left over; the orphan sweep is for
//! those. Bounded: 5 rounds, 8 concurrent uploaders, each round a fraction of a second.

use std::time::Duration;

use basalt_testkit::TestServer;
use basalt_testkit::multipart::{BOUNDARY, body};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_basalt");
const ROUNDS: usize = 5;
const UPLOADERS: usize = 8;

async fn uploader(url: String, n: usize) {
    let client = reqwest::Client::new();
    let payload = vec![(n % 251) as u8; 256 * 1024];
    // Until the server dies under it: errors end the loop.
    for i in 0..1000 {
        let name = format!("f{n}_{i}.bin");
        let res = client
            .post(&url)
            .timeout(Duration::from_secs(10))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body(&[("f", Some(&name), &payload), ("n", None, b"x")]))
            .send()
            .await;
        if res.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn kill_9_mid_upload_never_leaves_a_record_without_its_file() {
    let mut s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (st, c) = s
        .call(
            "POST",
            "/api/collections",
            Some(&su),
            Some(json!({"name": "docs", "listRule": "",
            "createRule": "", "fields": [{"name": "n", "type": "text"},
            {"name": "f", "type": "file", "maxSize": 1_000_000}]})),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    let cid = c["id"].as_str().expect("id").to_string();
    let mut checked = 0;
    for round in 0..ROUNDS {
        let url = s.url("/api/collections/docs/records");
        let tasks: Vec<_> = (0..UPLOADERS)
            .map(|n| tokio::spawn(uploader(url.clone(), n)))
            .collect();
        // Kill at a different point of the upload stream each round.
        tokio::time::sleep(Duration::from_millis(150 + 70 * round as u64)).await;
        s.kill9();
        for t in tasks {
            let _ = t.await;
        }
        s.restart().await;
        let mut page = 1;
        loop {
            let (st, v) = s
                .call(
                    "GET",
                    &format!("/api/collections/docs/records?perPage=500&page={page}"),
                    None,
                    None,
                )
                .await;
            assert_eq!(st, 200, "{v}");
            let items = v["items"].as_array().expect("items").clone();
            for r in &items {
                let id = r["id"].as_str().expect("id");
                let name = match &r["f"] {
                    Value::String(n) => n.clone(),
                    other => panic!("round {round}: {other}"),
                };
                assert!(!name.is_empty(), "round {round}: record {id} has no file");
                let path = s.data_dir().join("storage").join(&cid).join(id).join(&name);
                let len = std::fs::metadata(&path)
                    .unwrap_or_else(|e| panic!("round {round}: {} missing: {e}", path.display()))
                    .len();
                assert_eq!(len, 256 * 1024, "round {round}: {name} is whole");
                checked += 1;
            }
            if items.len() < 500 {
                break;
            }
            page += 1;
        }
    }
    assert!(checked > 0, "some uploads committed before the kills");
    eprintln!("{checked} record files checked across {ROUNDS} kills");
}
