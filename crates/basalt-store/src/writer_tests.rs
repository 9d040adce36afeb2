//! The writer's acknowledgement rule against a transaction SQLite rolled back in the middle
//! of a group (what it does on an I/O error): every acknowledged job is stored, and every
//! stored job was acknowledged or answered "outcome unknown".

use std::sync::Arc;
use std::time::Duration;

use crate::engine::Sqlite as Store;
use crate::{StoreConfig, StoreError};

fn cfg(dir: &std::path::Path) -> StoreConfig {
    StoreConfig {
        data_dir: dir.to_path_buf(),
        readers: 2,
        writer_queue: 64,
        synchronous_full: false,
        change_log: Default::default(),
    }
}

/// What the job in the middle of the group does to the group's transaction.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Rolls the whole transaction back, as SQLite does on SQLITE_IOERR or SQLITE_FULL,
    /// and reports success, as a job that did not notice would.
    Rollback,
    /// Rolls it back and opens another one: the writer's savepoints are gone but a
    /// transaction is open, so `is_autocommit()` alone would not notice.
    RollbackThenBegin,
    /// Panics half-way through.
    Panic,
}

/// Runs `job` on the writer and returns its answer.
async fn sql_job(store: &Store, sql: String) -> Result<(), StoreError> {
    store
        .write_job(move |conn, _| {
            conn.execute_batch(&sql)
                .map_err(|e| StoreError::Internal(e.to_string()))?;
            Ok(((), None))
        })
        .await
}

/// Queues `jobs` behind a job that holds the writer, so they all land in one group, then
/// lets the writer go and collects the answers in queue order.
async fn one_group(
    store: &Store,
    fault: Fault,
    before: &[i64],
    after: &[i64],
) -> Vec<(i64, Result<(), StoreError>)> {
    let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let holder = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .write_job(move |_, _| {
                    let _ = started_tx.send(());
                    let _ = hold_rx.recv_timeout(Duration::from_secs(30));
                    Ok(((), None))
                })
                .await
        })
    };
    started_rx.await.expect("the holding job started");
    let mut queued = Vec::new();
    let mut queue = |task: tokio::task::JoinHandle<Result<(), StoreError>>, n: i64| {
        queued.push((n, task));
    };
    let depth = |s: &Store| s.stats().writer_queue_depth;
    for (i, n) in before.iter().chain([&0]).chain(after).enumerate() {
        let store2 = store.clone();
        let task = if i == before.len() {
            tokio::spawn(async move {
                store2
                    .write_job(move |conn, _| {
                        match fault {
                            Fault::Rollback => conn.execute_batch("ROLLBACK"),
                            Fault::RollbackThenBegin => conn.execute_batch("ROLLBACK; BEGIN"),
                            Fault::Panic => {
                                let _ = conn.execute_batch("INSERT INTO t VALUES (-1)");
                                panic!("a job panicked (test)");
                            }
                        }
                        .map_err(|e| StoreError::Internal(e.to_string()))?;
                        Ok(((), None))
                    })
                    .await
            })
        } else {
            let n = *n;
            tokio::spawn(
                async move { sql_job(&store2, format!("INSERT INTO t VALUES ({n})")).await },
            )
        };
        queue(task, *n);
        // Queue order is the order the jobs run in: wait for this one to be queued.
        while depth(store) < i + 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    hold_tx.send(()).expect("release the writer");
    holder
        .await
        .expect("holder")
        .expect("the holding job committed");
    let mut out = Vec::new();
    for (n, task) in queued {
        out.push((n, task.await.expect("job task")));
    }
    out
}

async fn stored(store: &Store) -> Vec<i64> {
    store
        .read(|conn, _| {
            let mut stmt = conn
                .prepare("SELECT n FROM t ORDER BY n")
                .map_err(|e| StoreError::Internal(e.to_string()))?;
            let rows = stmt
                .query_map([], |r| r.get(0))
                .and_then(|rows| rows.collect::<Result<Vec<i64>, _>>())
                .map_err(|e| StoreError::Internal(e.to_string()))?;
            Ok(rows)
        })
        .await
        .expect("read t")
}

/// Issue 16: an I/O error inside a group commit lost acknowledged writes (the group's
/// transaction was gone, later jobs ran in autocommit, the final COMMIT "succeeded") and
/// stored writes that were answered as failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_rolled_back_inside_a_group_fails_the_whole_group() {
    for fault in [Fault::Rollback, Fault::RollbackThenBegin, Fault::Panic] {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(cfg(dir.path())).await.expect("open");
        sql_job(&store, "CREATE TABLE t (n INTEGER PRIMARY KEY)".into())
            .await
            .expect("create t");
        let answers = one_group(&store, fault, &[1, 2], &[3, 4]).await;
        // The store must still work after the failed group.
        sql_job(&store, "INSERT INTO t VALUES (100)".into())
            .await
            .expect("a write after the failed group");
        let rows = stored(&store).await;
        for (n, answer) in answers.iter().filter(|(n, _)| *n != 0) {
            let is_stored = rows.contains(n);
            match answer {
                Ok(()) => assert!(is_stored, "{fault:?}: job {n} acknowledged, not stored"),
                Err(StoreError::OutcomeUnknown(_)) => {}
                Err(e) => assert!(!is_stored, "{fault:?}: job {n} answered {e} but stored"),
            }
        }
        // Any doubt fails the whole group: nothing of it is acknowledged.
        for (n, answer) in &answers {
            assert!(
                answer.is_err(),
                "{fault:?}: job {n} acknowledged: {answer:?}"
            );
        }
        assert_eq!(rows, vec![100], "{fault:?}: the group left rows behind");
        store.close().await;
    }
}

/// A COMMIT that returns an error may still have reached the disk: every job of the group
/// is answered "outcome unknown", never acknowledged and never "not stored".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_answers_outcome_unknown() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Arc::new(Store::open(cfg(dir.path())).await.expect("open"));
    sql_job(&store, "CREATE TABLE t (n INTEGER PRIMARY KEY)".into())
        .await
        .expect("create t");
    let answer = store
        .write_job(|conn, _| {
            conn.execute_batch("INSERT INTO t VALUES (7)")
                .map_err(|e| StoreError::Internal(e.to_string()))?;
            super::fail_next_commit();
            Ok(((), None))
        })
        .await;
    assert!(
        matches!(answer, Err(StoreError::OutcomeUnknown(_))),
        "{answer:?}"
    );
    sql_job(&store, "INSERT INTO t VALUES (8)".into())
        .await
        .expect("a write after the failed commit");
    assert_eq!(stored(&store).await, vec![8]);
    store.close().await;
}

/// A writer thread that dies outside any job leaves a store that says so: health names
/// the reason, `writer_stopped` resolves, and every write answers "the writer stopped".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_writer_is_reported_and_writes_say_why() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(cfg(dir.path())).await.expect("open");
    assert!(store.health().is_healthy());
    let answer = store
        .write_job(|conn, _| {
            conn.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY)")
                .map_err(|e| StoreError::Internal(e.to_string()))?;
            super::kill_writer_after_group();
            Ok(((), None))
        })
        .await;
    assert!(answer.is_ok(), "the group itself committed: {answer:?}");
    let why = tokio::time::timeout(Duration::from_secs(10), store.writer_stopped())
        .await
        .expect("writer_stopped resolves");
    assert!(why.contains("killed (test)"), "{why}");
    let h = store.health();
    assert!(!h.is_healthy());
    assert!(h.writer_stopped.is_some());
    match sql_job(&store, "INSERT INTO t VALUES (1)".into()).await {
        Err(StoreError::Unavailable(m)) => assert!(m.contains("the writer stopped"), "{m}"),
        other => panic!("a write after the writer died: {other:?}"),
    }
    // Reads still work, and closing does not hang.
    assert!(stored(&store).await.is_empty());
    store.close().await;
}
