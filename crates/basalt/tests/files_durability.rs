//! Stored files promise what commits promise (docs/durability.md): under the default
//! `synchronous=NORMAL` an upload is renamed into place without an fsync, and with
//! `BASALT_DB_SYNC_FULL=true` its file and its directory are fsynced. Watched with
//! `strace` (Debian) attached to the running server; bounded by one upload per mode.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use basalt_testkit::TestServer;
use basalt_testkit::multipart::send;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_basalt");

/// The `fsync`-family calls on paths under the data dir's `storage/` while one file is
/// uploaded to a server started with `env`.
async fn storage_syncs(env: &[(&str, &str)]) -> Vec<String> {
    let s = TestServer::start_with_env(BIN, env).await;
    let su = s.superuser_token().await;
    let (st, c) = s
        .call(
            "POST",
            "/api/collections",
            Some(&su),
            Some(json!({"name": "docs", "createRule": "",
                "fields": [{"name": "f", "type": "file", "maxSize": 1_000_000}]})),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    let trace = tempfile::NamedTempFile::new().expect("trace file");
    let mut strace = Command::new("strace")
        .args([
            "-f",
            "-y",
            "-e",
            "trace=fsync,fdatasync,syncfs,sync_file_range",
            "-o",
        ])
        .arg(trace.path())
        .args(["-p", &s.pid().to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .expect("strace (Debian package strace) must be installed");
    // strace says on stderr when it has attached to the server's threads.
    let mut lines = BufReader::new(strace.stderr.take().expect("stderr")).lines();
    let attached = lines
        .next()
        .expect("strace said nothing")
        .expect("strace stderr");
    assert!(attached.contains("attached"), "{attached}");
    let (st, rec) = send(
        &s,
        "POST",
        "/api/collections/docs/records",
        None,
        &[("f", Some("a.txt"), &[b'x'; 1024])],
    )
    .await;
    assert_eq!(st, 200, "{rec}");
    let _ = strace.kill();
    let _ = strace.wait();
    let storage = format!("{}/storage", s.data_dir().display());
    std::fs::read_to_string(trace.path())
        .expect("trace")
        .lines()
        .filter(|l| l.contains(&storage))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn uploads_are_fsynced_only_when_commits_are() {
    let normal = storage_syncs(&[]).await;
    assert!(
        normal.is_empty(),
        "NORMAL fsynced a stored file: {normal:?}"
    );
    let full = storage_syncs(&[("BASALT_DB_SYNC_FULL", "true")]).await;
    // The file before its rename, and its directory after.
    assert!(
        full.len() >= 2,
        "FULL did not fsync file and directory: {full:?}"
    );
    assert!(
        full.iter().any(|l| l.contains(".tmp>")),
        "the file itself: {full:?}"
    );
}
