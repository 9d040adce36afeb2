//! The cron jobs do their work when run through `POST /api/crons/{id}` (the same code the
//! minute schedule starts): expired `_otps` / `_mfas` entries go and fresh ones stay, the
//! files sweep removes an old unnamed file, the scheduled backup is made and pruned, and
//! the database optimisation runs. The API's shape and who may call it are checked by
//! the SDK suite (tests/sdk/crons.test.mjs) against Basalt and PocketBase alike.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use basalt_testkit::TestServer;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_basalt");

/// Runs job `id` and expects it started.
async fn run(s: &TestServer, su: &str, id: &str) {
    let (st, v) = s
        .call("POST", &format!("/api/crons/{id}"), Some(su), None)
        .await;
    assert_eq!(st, 204, "{id}: {v}");
}

/// Polls `probe` until it holds, for at most 20 s (the jobs run in the background).
async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + Duration::from_secs(20);
    while !probe().await {
        assert!(Instant::now() < until, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn ids(s: &TestServer, su: &str, collection: &str) -> Vec<String> {
    let (st, v) = s
        .call(
            "GET",
            &format!("/api/collections/{collection}/records?perPage=100"),
            Some(su),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect()
}

fn backdate_row(dir: &Path, table: &str, id: &str) {
    let db = rusqlite::Connection::open(dir.join("data.db")).expect("open data.db");
    db.busy_timeout(Duration::from_secs(10)).expect("busy");
    let n = db
        .execute(
            &format!("UPDATE \"{table}\" SET created = '2020-01-01 00:00:00.000Z' WHERE id = ?"),
            [id],
        )
        .expect("backdate");
    assert_eq!(n, 1);
}

/// `__pbOTPCleanup__` and `__pbMFACleanup__` delete entries older than their auth
/// collection's `otp.duration` / `mfa.duration`, and nothing younger.
#[tokio::test]
async fn cleanup_jobs_delete_only_expired_auth_entries() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (st, user) = s
        .call(
            "POST",
            "/api/collections/users/records",
            None,
            Some(json!({"email": "cron@example.com", "password": "User-pass-123", "passwordConfirm": "User-pass-123"})),
        )
        .await;
    assert_eq!(st, 200, "{user}");
    let (_, users) = s
        .call("GET", "/api/collections/users", Some(&su), None)
        .await;
    let refs = json!({"collectionRef": users["id"], "recordRef": user["id"]});
    for (table, job, extra) in [
        ("_otps", "__pbOTPCleanup__", json!({"password": "123456"})),
        ("_mfas", "__pbMFACleanup__", json!({"method": "password"})),
    ] {
        let mut made = Vec::new();
        for _ in 0..2 {
            let mut body = refs.clone();
            body.as_object_mut()
                .expect("object")
                .extend(extra.as_object().expect("object").clone());
            let (st, v) = s
                .call(
                    "POST",
                    &format!("/api/collections/{table}/records"),
                    Some(&su),
                    Some(body),
                )
                .await;
            assert_eq!(st, 200, "{table}: {v}");
            made.push(v["id"].as_str().expect("id").to_string());
        }
        backdate_row(s.data_dir(), table, &made[0]);
        run(&s, &su, job).await;
        eventually(&format!("{job} deletes the expired entry"), || async {
            !ids(&s, &su, table).await.contains(&made[0])
        })
        .await;
        assert!(
            ids(&s, &su, table).await.contains(&made[1]),
            "{job} deleted a fresh entry"
        );
    }
}

/// `__basaltFilesSweep__` removes a stored file no record names once it is older than
/// the grace period; a young one stays.
#[tokio::test]
async fn files_sweep_job_removes_old_orphans() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let root = s
        .data_dir()
        .join("storage")
        .join("cronColl0000001")
        .join("cronrecord00001");
    std::fs::create_dir_all(&root).expect("mkdir");
    let old = root.join("old_orphan.txt");
    let young = root.join("young_orphan.txt");
    std::fs::write(&old, "old").expect("write");
    std::fs::write(&young, "young").expect("write");
    std::fs::File::options()
        .write(true)
        .open(&old)
        .and_then(|f| f.set_modified(SystemTime::now() - Duration::from_secs(2 * 86_400)))
        .expect("backdate");
    // Asked again while waiting: a run asked while the start-up sweep still runs is
    // skipped, as a job never overlaps itself.
    eventually("the sweep removes the old orphan", || async {
        run(&s, &su, "__basaltFilesSweep__").await;
        !old.exists()
    })
    .await;
    assert!(young.exists(), "a young file must stay");
}

/// `__pbAutoBackup__` is listed while `backups.cron` is set; run, it makes a scheduled
/// backup and prunes those beyond `cronMaxKeep`.
#[tokio::test]
async fn auto_backup_job_makes_and_prunes() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (st, _) = s
        .call("POST", "/api/crons/__pbAutoBackup__", Some(&su), None)
        .await;
    assert_eq!(st, 404, "no backup job while backups.cron is empty");
    let (st, v) = s
        .call(
            "PATCH",
            "/api/settings",
            Some(&su),
            Some(json!({"backups": {"cron": "0 3 1 1 *", "cronMaxKeep": 1}})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let auto = || async {
        let (_, v) = s.call("GET", "/api/backups", Some(&su), None).await;
        v.as_array()
            .expect("list")
            .iter()
            .filter_map(|b| b["key"].as_str())
            .filter(|k| k.starts_with("@auto_pb_backup_"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    run(&s, &su, "__pbAutoBackup__").await;
    eventually("a scheduled backup is made", || async {
        auto().await.len() == 1
    })
    .await;
    let first = auto().await;
    // Names carry the time to the second: the next one must not collide with it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    run(&s, &su, "__pbAutoBackup__").await;
    eventually("the second replaces the first (cronMaxKeep 1)", || async {
        let now = auto().await;
        now.len() == 1 && now != first
    })
    .await;
}

/// `__pbDBOptimize__` runs to its end and leaves the database serving.
#[tokio::test]
async fn db_optimize_job_runs() {
    let s = TestServer::start_with_env(BIN, &[("BASALT_LOG", "info")]).await;
    let su = s.superuser_token().await;
    run(&s, &su, "__pbDBOptimize__").await;
    eventually("the optimisation finishes", || async {
        s.log().contains("database statistics refreshed")
    })
    .await;
    let (st, v) = s.call("GET", "/api/health", None, None).await;
    assert_eq!(st, 200, "{v}");
}
