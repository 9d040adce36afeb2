//! Held read snapshots against a real SQLite file: an acknowledged write is seen by the very
//! next read on every reader, writes by another connection show up once a snapshot ages
//! out, idle readers do not keep the WAL from being checkpointed, and schema changes are seen.

use std::sync::Arc;
use std::time::Duration;

use basalt_schema::{Collection, RequestInfo};
use basalt_store::{Access, Store, StoreConfig, WriteOp};
use serde_json::{Map, Value, json};

fn cfg(dir: &std::path::Path, readers: usize) -> StoreConfig {
    StoreConfig {
        data_dir: dir.to_path_buf(),
        readers,
        writer_queue: 256,
        synchronous_full: false,
        change_log: Default::default(),
    }
}

fn doc(v: Value) -> Collection {
    serde_json::from_value(v).expect("collection document")
}

async fn notes(store: &Store, name: &str) -> Arc<Collection> {
    store
        .create_collection(doc(
            json!({"name": name, "fields": [{"name": "title", "type": "text"}]}),
        ))
        .await
        .expect("create collection")
}

async fn create(store: &Store, c: &Arc<Collection>, title: &str) -> String {
    let input: Map<String, Value> = json!({ "title": title })
        .as_object()
        .cloned()
        .unwrap_or_default();
    let out = store
        .write(
            vec![WriteOp::Create {
                uploads: Vec::new(),
                collection: c.clone(),
                input,
                access: Access::Unrestricted,
            }],
            Arc::new(RequestInfo::default()),
        )
        .await
        .expect("create record");
    out.into_iter()
        .flatten()
        .next()
        .and_then(|r| r.get("id").and_then(Value::as_str).map(str::to_string))
        .expect("created id")
}

async fn title_of(store: &Store, c: &Arc<Collection>, id: &str) -> Option<Value> {
    store
        .get_record(
            c,
            id,
            Access::Unrestricted,
            Arc::new(RequestInfo::default()),
        )
        .await
        .expect("read")
        .and_then(|r| r.get("title").cloned())
}

/// The number of records the store lists in `c` (a scan on the blocking pool's readers).
async fn count(store: &Store, c: &Arc<Collection>) -> usize {
    store
        .list_records(basalt_store::ListQuery {
            collection: c.clone(),
            filter: None,
            access: Access::Unrestricted,
            sort: vec![],
            author: basalt_store::Author::Client,
            page: 1,
            per_page: 1_000_000,
            skip_total: true,
            request: Arc::new(RequestInfo::default()),
        })
        .await
        .expect("list")
        .items
        .len()
}

/// Many tasks at once, each writing then reading its own record at once, then updating it
/// and reading again: every read right after an acknowledged write sees it, whichever
/// reader (each holding a snapshot from before) serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_after_an_acknowledged_write_sees_it_on_every_reader() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(cfg(dir.path(), 4)).await.expect("open");
    let c = notes(&store, "notes").await;
    let seed = create(&store, &c, "seed").await;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (store, c, seed) = (store.clone(), c.clone(), seed.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..40 {
                // Keep readers busy with snapshots taken before the write below.
                assert_eq!(title_of(&store, &c, &seed).await, Some(json!("seed")));
                let title = format!("t{t}-{i}");
                let id = create(&store, &c, &title).await;
                assert_eq!(title_of(&store, &c, &id).await, Some(json!(title)));
                assert!(count(&store, &c).await > 1 + i);
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(count(&store, &c).await, 1 + 8 * 40);
    store.close().await;
}

/// A write by another connection (as the `basalt superuser` CLI or `sqlite3` makes) does
/// not pass through the writer; a held snapshot hides it only until it ages out.
#[tokio::test]
async fn a_write_by_another_connection_is_seen_once_the_snapshot_ages_out() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(cfg(dir.path(), 2)).await.expect("open");
    let c = notes(&store, "notes").await;
    let id = create(&store, &c, "before").await;
    assert_eq!(title_of(&store, &c, &id).await, Some(json!("before")));
    let other = rusqlite::Connection::open(dir.path().join("data.db")).expect("other");
    other
        .execute_batch("PRAGMA busy_timeout = 5000")
        .expect("busy timeout");
    for round in 0..5 {
        let title = format!("outside {round}");
        other
            .execute("UPDATE notes SET title = ?1 WHERE id = ?2", [&title, &id])
            .expect("outside update");
        // Far past the snapshot's age bound (20 ms), on a machine however busy.
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(title_of(&store, &c, &id).await, Some(json!(title)));
        assert_eq!(count(&store, &c).await, 1);
    }
    store.close().await;
}

/// Readers that served reads and then sit idle end their snapshots, so a TRUNCATE
/// checkpoint completes and empties the WAL.
#[tokio::test]
async fn idle_readers_do_not_block_a_checkpoint() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(cfg(dir.path(), 4)).await.expect("open");
    let c = notes(&store, "notes").await;
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(create(&store, &c, &format!("n{i}")).await);
    }
    // Every reader takes a snapshot (some on the blocking pool, some in place).
    let mut reads = Vec::new();
    for id in ids.iter().take(8) {
        let (store, c, id) = (store.clone(), c.clone(), id.clone());
        reads.push(tokio::spawn(async move {
            title_of(&store, &c, &id).await;
            count(&store, &c).await
        }));
    }
    for r in reads {
        assert_eq!(r.await.expect("read"), 50);
    }
    let wal = dir.path().join("data.db-wal");
    assert!(std::fs::metadata(&wal).expect("wal").len() > 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let other = rusqlite::Connection::open(dir.path().join("data.db")).expect("other");
    let (busy, _, _): (i64, i64, i64) = other
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .expect("checkpoint");
    assert_eq!(busy, 0, "the checkpoint was blocked by a reader");
    assert_eq!(std::fs::metadata(&wal).expect("wal").len(), 0);
    // The store reads on as before.
    assert_eq!(title_of(&store, &c, &ids[0]).await, Some(json!("n0")));
    store.close().await;
}

/// A collection created, then altered, right after readers took snapshots: the next reads
/// of it, on every reader, find its table and its new column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_changes_are_seen_by_readers_holding_snapshots() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(cfg(dir.path(), 3)).await.expect("open");
    let a = notes(&store, "a").await;
    let first = create(&store, &a, "x").await;
    for round in 0..5 {
        for _ in 0..6 {
            assert_eq!(title_of(&store, &a, &first).await, Some(json!("x")));
        }
        let b = notes(&store, &format!("b{round}")).await;
        assert_eq!(count(&store, &b).await, 0);
        let mut next = (*b).clone();
        next.fields.push(
            serde_json::from_value(json!({"name": "extra", "type": "number"})).expect("field"),
        );
        let b = store.update_collection(&b.id, next).await.expect("alter");
        let id = create(&store, &b, "y").await;
        for _ in 0..6 {
            let r = store
                .get_record(
                    &b,
                    &id,
                    Access::Unrestricted,
                    Arc::new(RequestInfo::default()),
                )
                .await
                .expect("read")
                .expect("found");
            assert_eq!(r.get("extra"), Some(&json!(0)));
            assert_eq!(count(&store, &b).await, 1);
        }
    }
    store.close().await;
}

/// Reads on every reader between writes made one commit at a time: when a commit's
/// checkpoint runs, the readers sit idle with the snapshots they read from, and those must
/// not hold it back, so the WAL starts over and stays far smaller than everything written.
/// (Held idle snapshots once kept it growing for as long as the load lasted.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_snapshots_do_not_keep_the_wal_growing() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(cfg(dir.path(), 4)).await.expect("open");
    let c = notes(&store, "notes").await;
    let first = create(&store, &c, "first").await;
    let wal = dir.path().join("data.db-wal");
    let big = "x".repeat(4500);
    let (mut largest, writes) = (0u64, 3000);
    for _ in 0..writes {
        let reads: Vec<_> = (0..4)
            .map(|_| {
                let (store, c, first) = (store.clone(), c.clone(), first.clone());
                tokio::spawn(async move { title_of(&store, &c, &first).await })
            })
            .collect();
        for r in reads {
            assert_eq!(r.await.expect("read"), Some(json!("first")));
        }
        create(&store, &c, &big).await;
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    let written = (writes * big.len()) as u64;
    assert!(
        largest < written / 2,
        "the WAL grew to {largest} bytes for {written} bytes written"
    );
    store.close().await;
}
