//! The request logs over HTTP (issue 23, item 1): every request, the hot get-by-id path
//! included, becomes an entry in PocketBase's shape in `auxiliary.db`; `/api/logs`,
//! `/api/logs/{id}` and `/api/logs/stats` answer superusers only, filter and sort in the
//! filter language (json paths into `data`); the `logs` settings act (`maxDays` 0 turns
//! logging off, `minLevel`, `logIP`, `logAuthId`, `maxDataSize`); `__pbLogsCleanup__`
//! deletes entries older than `maxDays`. Entries are written in the background, so each
//! test polls (bounded) for what it expects, never sleeps for a fixed time.

use std::time::{Duration, Instant};

use basalt_testkit::TestServer;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_basalt");

/// Lists `/api/logs?{query}` until `done` holds for the answer, for at most 20 s.
async fn logs_until(s: &TestServer, su: &str, query: &str, done: impl Fn(&Value) -> bool) -> Value {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let (st, v) = s
            .call("GET", &format!("/api/logs?{query}"), Some(su), None)
            .await;
        assert_eq!(st, 200, "{v}");
        if done(&v) {
            return v;
        }
        assert!(
            Instant::now() < until,
            "timed out waiting for logs: {query}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn items(v: &Value) -> &Vec<Value> {
    v["items"].as_array().expect("items")
}

/// The entry whose message is `message` (url with query), when listed.
fn find<'a>(v: &'a Value, message: &str) -> Option<&'a Value> {
    items(v).iter().find(|e| e["message"] == message)
}

async fn settings(s: &TestServer, su: &str, logs: Value) {
    let (st, v) = s
        .call(
            "PATCH",
            "/api/settings",
            Some(su),
            Some(json!({ "logs": logs })),
        )
        .await;
    assert_eq!(st, 200, "{v}");
}

#[tokio::test]
async fn requests_are_logged_in_pocketbases_shape_and_listed_to_superusers() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    assert!(s.data_dir().join("auxiliary.db").exists(), "the log file");

    let http = reqwest::Client::new();
    let res = http
        .get(s.url("/api/collections/missing/records?page=2"))
        .header("Referer", "http://example.com/from")
        .header("User-Agent", "logs-test/1")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 404);
    let (st, _) = s
        .call("GET", "/api/collections/users/records", Some(&su), None)
        .await;
    assert_eq!(st, 200);

    let v = logs_until(&s, &su, "perPage=100", |v| {
        find(v, "GET /api/collections/missing/records?page=2").is_some()
            && find(v, "GET /api/collections/users/records").is_some()
    })
    .await;
    let miss = find(&v, "GET /api/collections/missing/records?page=2").expect("404 entry");
    assert_eq!(miss["level"], 8);
    let d = &miss["data"];
    assert_eq!(d["type"], "request");
    assert_eq!(d["method"], "GET");
    assert_eq!(d["url"], "/api/collections/missing/records?page=2");
    assert_eq!(d["status"], 404);
    assert_eq!(d["referer"], "http://example.com/from");
    assert_eq!(d["userAgent"], "logs-test/1");
    assert_eq!(d["remoteIP"], "127.0.0.1");
    assert_eq!(d["userIP"], "127.0.0.1");
    assert_eq!(d["auth"], "");
    assert_eq!(d["error"], "Missing collection context.");
    assert!(d["execTime"].as_f64().expect("execTime") >= 0.0);
    assert!(
        d.get("authId").is_none(),
        "logAuthId is off by default: {d}"
    );
    let id = miss["id"].as_str().expect("id");
    assert_eq!(id.len(), 15);
    let created = miss["created"].as_str().expect("created");
    assert!(created.len() == 24 && created.ends_with('Z'), "{created}");

    let ok = find(&v, "GET /api/collections/users/records").expect("200 entry");
    assert_eq!(ok["level"], 0);
    assert_eq!(ok["data"]["auth"], "_superusers");
    assert!(ok["data"].get("error").is_none());

    // One entry by id; a missing id is PocketBase's 404.
    let (st, one) = s
        .call("GET", &format!("/api/logs/{id}"), Some(&su), None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(&one, miss);
    let (st, e) = s.call("GET", "/api/logs/nosuchlog", Some(&su), None).await;
    assert_eq!(st, 404);
    assert_eq!(
        e,
        json!({"status": 404, "message": "The requested resource wasn't found.", "data": {}})
    );

    // Filter and sort over the log's fields and json paths.
    let (st, f) = s
        .call(
            "GET",
            "/api/logs?filter=data.status%3D404%20%26%26%20level%3E%3D8&sort=-created",
            Some(&su),
            None,
        )
        .await;
    assert_eq!(st, 200, "{f}");
    assert!(!items(&f).is_empty());
    assert!(items(&f).iter().all(|e| e["data"]["status"] == 404), "{f}");
    let (st, p) = s
        .call(
            "GET",
            "/api/logs?perPage=1&skipTotal=1&sort=-@rowid",
            Some(&su),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(p["totalItems"], -1);
    assert_eq!(items(&p).len(), 1);

    // Hourly stats, all and filtered.
    let (st, all) = s.call("GET", "/api/logs/stats", Some(&su), None).await;
    assert_eq!(st, 200, "{all}");
    let hour = &all[0];
    assert!(
        hour["date"]
            .as_str()
            .expect("date")
            .ends_with(":00:00.000Z"),
        "{all}"
    );
    assert!(hour["total"].as_u64().expect("total") >= 2);
    let (st, errs) = s
        .call(
            "GET",
            "/api/logs/stats?filter=data.status%3E%3D400",
            Some(&su),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let errors: u64 = errs
        .as_array()
        .expect("hours")
        .iter()
        .map(|h| h["total"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        errors >= 1
            && errors
                < all
                    .as_array()
                    .expect("hours")
                    .iter()
                    .map(|h| h["total"].as_u64().unwrap_or(0))
                    .sum(),
        "{errs} {all}"
    );

    // Bad filters and sorts are PocketBase's 400 (the stats name the cause, as there).
    let opaque = "Something went wrong while processing your request.";
    for (q, message) in [
        ("/api/logs?filter=bad((", opaque),
        ("/api/logs?filter=nofield%3D1", opaque),
        ("/api/logs?sort=nofield", opaque),
        ("/api/logs/stats?filter=%3D%3D", "Invalid filter format."),
        (
            "/api/logs/stats?filter=nofield%3D1",
            "Invalid filter format.",
        ),
    ] {
        let (st, e) = s.call("GET", q, Some(&su), None).await;
        assert_eq!(st, 400, "{q}: {e}");
        assert_eq!(e["message"], message, "{q}");
        assert_eq!(e["data"], json!({}), "{q}");
    }

    // Superusers only: 401 anonymous, 403 for a signed-in user.
    let (st, _) = s
        .call(
            "POST",
            "/api/collections/users/records",
            None,
            Some(json!({"email": "u@example.com", "password": "User-pass-123", "passwordConfirm": "User-pass-123"})),
        )
        .await;
    assert_eq!(st, 200);
    let user = s.token("users", "u@example.com", "User-pass-123").await;
    for path in ["/api/logs", "/api/logs/stats", &format!("/api/logs/{id}")] {
        let (st, _) = s.call("GET", path, None, None).await;
        assert_eq!(st, 401, "{path}");
        let (st, _) = s.call("GET", path, Some(&user), None).await;
        assert_eq!(st, 403, "{path}");
    }
}

/// The hot get-by-id path (which bypasses the router) logs its requests too.
#[tokio::test]
async fn hot_path_reads_are_logged() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (st, c) = s
        .call(
            "POST",
            "/api/collections",
            Some(&su),
            Some(json!({"name": "notes", "listRule": "", "viewRule": "", "fields": [{"name": "title", "type": "text"}]})),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    let (st, r) = s
        .call(
            "POST",
            "/api/collections/notes/records",
            Some(&su),
            Some(json!({"title": "a"})),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    let path = format!(
        "/api/collections/notes/records/{}",
        r["id"].as_str().expect("id")
    );
    let (st, _) = s.call("GET", &path, None, None).await;
    assert_eq!(st, 200);
    let (st, _) = s
        .call(
            "GET",
            "/api/collections/notes/records/nosuchrecord123",
            None,
            None,
        )
        .await;
    assert_eq!(st, 404);
    let want = format!("GET {path}");
    let v = logs_until(&s, &su, "perPage=100", |v| {
        find(v, &want).is_some()
            && find(v, "GET /api/collections/notes/records/nosuchrecord123").is_some()
    })
    .await;
    let hit = find(&v, &want).expect("entry");
    assert_eq!(hit["data"]["status"], 200);
    assert_eq!(hit["data"]["remoteIP"], "127.0.0.1");
    let miss = find(&v, "GET /api/collections/notes/records/nosuchrecord123").expect("entry");
    assert_eq!(miss["level"], 8);
    assert_eq!(
        miss["data"]["error"],
        "The requested resource wasn't found."
    );
}

#[tokio::test]
async fn the_logs_settings_act() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;

    // logIP off, logAuthId on.
    settings(&s, &su, json!({"logIP": false, "logAuthId": true})).await;
    let (_, me) = s
        .call(
            "GET",
            "/api/collections/_superusers/records?marker=1",
            Some(&su),
            None,
        )
        .await;
    let su_id = me["items"][0]["id"].clone();
    let v = logs_until(&s, &su, "perPage=200", |v| {
        find(v, "GET /api/collections/_superusers/records?marker=1").is_some()
    })
    .await;
    let d = &find(&v, "GET /api/collections/_superusers/records?marker=1").expect("entry")["data"];
    assert!(
        d.get("remoteIP").is_none() && d.get("userIP").is_none(),
        "{d}"
    );
    assert_eq!(d["authId"], su_id, "{d}");
    assert_eq!(d["auth"], "_superusers");

    // maxDataSize: a larger data is replaced by PocketBase's marker.
    settings(
        &s,
        &su,
        json!({"logIP": true, "logAuthId": false, "maxDataSize": 10}),
    )
    .await;
    s.call("GET", "/api/health?marker=2", None, None).await;
    let v = logs_until(&s, &su, "perPage=200", |v| {
        find(v, "GET /api/health?marker=2").is_some()
    })
    .await;
    assert_eq!(
        find(&v, "GET /api/health?marker=2").expect("entry")["data"],
        json!({"__pb_truncated__": true})
    );
    settings(&s, &su, json!({"maxDataSize": 0})).await;

    // minLevel above info: successful requests are no longer stored and the stored info
    // entries go; errors still are.
    settings(&s, &su, json!({"minLevel": 5})).await;
    s.call("GET", "/api/health?marker=3", None, None).await;
    s.call(
        "GET",
        "/api/collections/missing/records?marker=4",
        None,
        None,
    )
    .await;
    let v = logs_until(&s, &su, "perPage=200", |v| {
        find(v, "GET /api/collections/missing/records?marker=4").is_some()
            && items(v).iter().all(|e| e["level"].as_i64() >= Some(5))
    })
    .await;
    assert!(find(&v, "GET /api/health?marker=3").is_none(), "{v}");

    // maxDays 0: nothing is logged any more (the marker request after the 404 proves
    // the writer caught up).
    settings(&s, &su, json!({"minLevel": 0, "maxDays": 0})).await;
    s.call(
        "GET",
        "/api/collections/missing/records?marker=5",
        None,
        None,
    )
    .await;
    settings(&s, &su, json!({"maxDays": 5})).await;
    s.call("GET", "/api/health?marker=6", None, None).await;
    let v = logs_until(&s, &su, "perPage=200", |v| {
        find(v, "GET /api/health?marker=6").is_some()
    })
    .await;
    assert!(
        find(&v, "GET /api/collections/missing/records?marker=5").is_none(),
        "{v}"
    );

    // Settings that cannot act are refused, naming the field.
    for (bad, field) in [
        (json!({"maxDays": -1}), "maxDays"),
        (json!({"maxDays": "x"}), "maxDays"),
        (json!({"minLevel": 1.5}), "minLevel"),
        (json!({"logIP": "yes"}), "logIP"),
        (json!({"maxDataSize": -3}), "maxDataSize"),
    ] {
        let (st, e) = s
            .call(
                "PATCH",
                "/api/settings",
                Some(&su),
                Some(json!({ "logs": bad })),
            )
            .await;
        assert_eq!(st, 400, "{bad}: {e}");
        assert!(e["data"]["logs"][field]["code"].is_string(), "{bad}: {e}");
    }
}

#[tokio::test]
async fn logs_cleanup_deletes_entries_older_than_max_days() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    s.call("GET", "/api/health?old=1", None, None).await;
    s.call("GET", "/api/health?new=1", None, None).await;
    let v = logs_until(&s, &su, "perPage=200", |v| {
        find(v, "GET /api/health?new=1").is_some()
    })
    .await;
    let old = find(&v, "GET /api/health?old=1").expect("entry")["id"].clone();
    let db = rusqlite::Connection::open(s.data_dir().join("auxiliary.db")).expect("open");
    db.busy_timeout(Duration::from_secs(10)).expect("busy");
    let n = db
        .execute(
            "UPDATE _logs SET created = '2020-01-01 00:00:00.000Z' WHERE id = ?",
            [old.as_str().expect("id")],
        )
        .expect("backdate");
    assert_eq!(n, 1);
    drop(db);
    let (st, jobs) = s.call("GET", "/api/crons", Some(&su), None).await;
    assert_eq!(st, 200);
    assert!(
        jobs.as_array()
            .expect("jobs")
            .iter()
            .any(|j| j == &json!({"id": "__pbLogsCleanup__", "expression": "0 */6 * * *"})),
        "{jobs}"
    );
    let (st, _) = s
        .call("POST", "/api/crons/__pbLogsCleanup__", Some(&su), None)
        .await;
    assert_eq!(st, 204);
    let v = logs_until(&s, &su, "perPage=200", |v| {
        find(v, "GET /api/health?old=1").is_none()
    })
    .await;
    assert!(
        find(&v, "GET /api/health?new=1").is_some(),
        "the fresh entry stays"
    );
}
