//! Storage trouble reported over the real binary (issue 16): `basalt check [--full]` on a
//! sound database, a deliberately damaged copy, a file that is not a database and an empty
//! directory (verdict and exit code); a damaged page met by a request turns `/api/health`
//! to 503 and is counted in `/metrics`.

use std::io::{Seek, SeekFrom, Write};
use std::process::{Command, Output};

use basalt_testkit::TestServer;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_basalt");

fn basalt(args: &[&str], dir: &std::path::Path) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env("BASALT_LOG", "error")
        .output()
        .expect("run basalt")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn check_passes_a_sound_database_and_fails_a_damaged_copy() {
    let sound = tempfile::tempdir().expect("tmp");
    assert!(basalt(&["migrate"], sound.path()).status.success());
    for full in [false, true] {
        let args: &[&str] = if full {
            &["check", "--full"]
        } else {
            &["check"]
        };
        let out = basalt(args, sound.path());
        assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
        assert!(stdout(&out).starts_with("ok: "), "{}", stdout(&out));
    }

    // A copy with the second page (a system table's root) overwritten.
    let damaged = tempfile::tempdir().expect("tmp");
    let copy = damaged.path().join("data.db");
    std::fs::copy(sound.path().join("data.db"), &copy).expect("copy");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&copy)
        .expect("open copy");
    f.seek(SeekFrom::Start(4096)).expect("seek");
    f.write_all(&[0xA5; 512]).expect("damage");
    drop(f);
    for full in [false, true] {
        let args: &[&str] = if full {
            &["check", "--full"]
        } else {
            &["check"]
        };
        let out = basalt(args, damaged.path());
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(text.contains("damaged: "), "{text}");
        assert!(text.contains("page"), "no page named: {text}");
    }
    // The original is untouched by checking the copy.
    assert_eq!(basalt(&["check"], sound.path()).status.code(), Some(0));
}

#[test]
fn check_reports_a_file_that_is_not_a_database_and_a_missing_one() {
    let dir = tempfile::tempdir().expect("tmp");
    assert_eq!(basalt(&["check"], dir.path()).status.code(), Some(1));
    std::fs::write(dir.path().join("data.db"), vec![0x5A; 8192]).expect("write");
    let out = basalt(&["check"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
}

#[tokio::test]
async fn a_damaged_page_turns_health_503_and_is_counted() {
    let mut s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (st, _) = s
        .call(
            "POST",
            "/api/collections",
            Some(&su),
            Some(json!({"name": "notes", "fields": [{"name": "title", "type": "text"}]})),
        )
        .await;
    assert_eq!(st, 200);
    for i in 0..20 {
        let (st, _) = s
            .call(
                "POST",
                "/api/collections/notes/records",
                Some(&su),
                Some(json!({"title": format!("note {i}")})),
            )
            .await;
        assert_eq!(st, 200);
    }
    assert!(s.terminate(), "SIGTERM exits cleanly");
    basalt_testkit::damage::damage_root_page(&s.data_dir().join("data.db"), "notes");
    s.restart().await;
    let su = s.superuser_token().await;
    let (st, body) = s
        .call("GET", "/api/collections/notes/records", Some(&su), None)
        .await;
    assert_eq!(st, 500, "{body}");
    let (st, body) = s.call("GET", "/api/health", None, None).await;
    assert_eq!(st, 503, "{body}");
    assert_eq!(body["code"], 503);
    assert_eq!(body["data"]["reason"], "database_corrupt");
    let metrics = s.metrics_text().await;
    assert!(
        metrics.contains("basalt_store_corruption_total 1"),
        "{metrics}"
    );
    let out = basalt(&["check"], s.data_dir());
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stdout(&out).contains("table notes"), "{}", stdout(&out));
}
