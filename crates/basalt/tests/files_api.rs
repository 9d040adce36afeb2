//! Record files over HTTP: the storage handle, uploads in record writes, downloads and
//! deletion after commit, against the real binary.

use basalt_testkit::TestServer;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_basalt");

/// S3 is not wired yet: enabling it is refused with a 400 naming it, never accepted and
/// ignored; the rest of the document still saves.
#[tokio::test]
async fn enabling_s3_is_refused_until_it_is_wired() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    for (body, path) in [
        (
            json!({"s3": {"enabled": true, "bucket": "b"}}),
            ["s3", "enabled"].as_slice(),
        ),
        (
            json!({"backups": {"s3": {"enabled": true}}}),
            ["backups", "s3", "enabled"].as_slice(),
        ),
    ] {
        let (st, e) = s
            .call("PATCH", "/api/settings", Some(&su), Some(body))
            .await;
        assert_eq!(st, 400, "{e}");
        let mut d = &e["data"];
        for k in path {
            d = &d[*k];
        }
        assert_eq!(d["code"], "validation_not_supported", "{e}");
    }
    let (st, v) = s.call("GET", "/api/settings", Some(&su), None).await;
    assert_eq!((st, &v["s3"]["enabled"]), (200, &json!(false)), "{v}");
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
