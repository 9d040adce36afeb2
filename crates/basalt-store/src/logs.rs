//! The request log: PocketBase's `_logs` table (`id`, `created`, `level`, `message`,
//! `data`) in a SQLite file of its own (`auxiliary.db` in the data dir, as PocketBase keeps
//! it), so writing a log entry never waits for, or holds up, the application's writer.
//!
//! Entries are handed to [`LogStore::push`], which never blocks: a bounded queue feeds one
//! writer thread that inserts whatever is queued in one transaction (a burst of requests
//! becomes one commit). When the queue is full the entry is dropped and counted
//! ([`LogStore::dropped`]): a request is never slowed or failed by its log entry. Reads
//! (list, view, hourly stats) run on a reader connection of their own; filters and sorts
//! go through the store's filter compiler over a `_logs` collection that exists only here
//! ([`logs_collection`]), so `data.x` json paths work as they do on a json field.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use basalt_schema::filter::Expr;
use basalt_schema::{Collection, RequestInfo, Schema};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, params, params_from_iter};
use serde_json::Value;

use crate::sql::{Dialect, compile_condition, compile_list};
use crate::{Access, Author, ListQuery, SortKey, StoreError};

/// The file beside `data.db` that holds the log, as PocketBase names it.
pub const LOG_DB_FILE: &str = "auxiliary.db";

/// How many entries may wait for the writer; more are dropped (and counted).
const QUEUE: usize = 8192;

/// The most entries one transaction inserts.
const BATCH: usize = 1024;

/// One entry as a request (or the server) hands it over; `id` is drawn by the writer.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub created: DateTime<Utc>,
    /// PocketBase's levels: -4 debug, 0 info, 4 warn, 8 error.
    pub level: i64,
    pub message: String,
    /// The `data` object, already serialised (the writer stores it as it is).
    pub data: String,
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredLog {
    pub id: String,
    pub created: String,
    pub level: i64,
    pub message: String,
    pub data: Value,
}

/// A page of [`LogStore::list`]; `total` is `None` when it was not asked for.
#[derive(Debug, Clone, Default)]
pub struct LogPage {
    pub items: Vec<StoredLog>,
    pub total: Option<u64>,
}

/// What the writer thread is asked to do.
enum Job {
    Insert(LogEntry),
    /// Delete entries created before `before` (`YYYY-MM-DD HH:MM:SS.sssZ`) or with a level
    /// below `below_level`, and answer how many went.
    Prune {
        before: Option<String>,
        below_level: Option<i64>,
        done: tokio::sync::oneshot::Sender<Result<u64, StoreError>>,
    },
    /// Answered once every entry queued before it is stored.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The log database; cheap to clone.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

struct Inner {
    queue: SyncSender<Job>,
    dropped: AtomicU64,
    reader: Mutex<Connection>,
    schema: Schema,
    collection: Arc<Collection>,
    path: PathBuf,
}

/// The `_logs` table's columns as a collection, so the filter compiler can read them.
pub fn logs_collection() -> Collection {
    serde_json::from_value(serde_json::json!({
        "id": "_logs", "name": "_logs", "type": "base", "system": true,
        "fields": [
            {"name": "id", "type": "text", "primaryKey": true},
            {"name": "created", "type": "date"},
            {"name": "level", "type": "number"},
            {"name": "message", "type": "text"},
            {"name": "data", "type": "json"}
        ]
    }))
    .expect("the _logs collection document is valid")
}

const SCHEMA_SQL: &str = "CREATE TABLE IF NOT EXISTS \"_logs\" (
    \"id\" TEXT PRIMARY KEY NOT NULL,
    \"level\" INTEGER NOT NULL DEFAULT 0,
    \"message\" TEXT NOT NULL DEFAULT '',
    \"data\" JSON NOT NULL DEFAULT '{}',
    \"created\" TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS \"_logs_idx_level\" ON \"_logs\" (\"level\");
CREATE INDEX IF NOT EXISTS \"_logs_idx_created_hour\" ON \"_logs\" (strftime('%Y-%m-%d %H:00:00', \"created\"));
CREATE INDEX IF NOT EXISTS \"_logs_idx_created\" ON \"_logs\" (\"created\");";

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Internal(format!("log database: {e}"))
}

impl LogStore {
    /// Opens (creating) `dir/auxiliary.db` and starts its writer thread.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(LOG_DB_FILE);
        let writer = Connection::open(&path).map_err(db_err)?;
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000;",
            )
            .map_err(db_err)?;
        writer.execute_batch(SCHEMA_SQL).map_err(db_err)?;
        let reader = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db_err)?;
        reader
            .execute_batch("PRAGMA busy_timeout = 10000;")
            .map_err(db_err)?;
        let (queue, jobs) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("basalt-log-writer".into())
            .spawn(move || write_loop(writer, jobs))
            .map_err(|e| StoreError::Internal(format!("starting the log writer: {e}")))?;
        let collection = logs_collection();
        Ok(Self {
            inner: Arc::new(Inner {
                queue,
                dropped: AtomicU64::new(0),
                reader: Mutex::new(reader),
                schema: Schema::new(vec![collection.clone()]),
                collection: Arc::new(collection),
                path,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Queues `entry` for the writer; when the queue is full it is dropped and counted.
    pub fn push(&self, entry: LogEntry) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.inner.queue.try_send(Job::Insert(entry))
        {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Entries dropped because the queue was full (or the writer gone) since start.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every entry queued before this call is stored.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.send_blocking(Job::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Deletes the entries created before `before` and those below `below_level`.
    pub async fn prune(
        &self,
        before: Option<DateTime<Utc>>,
        below_level: Option<i64>,
    ) -> Result<u64, StoreError> {
        let (done, rx) = tokio::sync::oneshot::channel();
        let before = before.map(|t| format_time(&t));
        self.send_blocking(Job::Prune {
            before,
            below_level,
            done,
        })
        .await?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the log writer stopped".into()))?
    }

    /// Maintenance jobs wait for room in the queue (requests never do).
    async fn send_blocking(&self, job: Job) -> Result<(), StoreError> {
        let queue = self.inner.queue.clone();
        tokio::task::spawn_blocking(move || queue.send(job))
            .await
            .map_err(|e| StoreError::Internal(e.to_string()))?
            .map_err(|_| StoreError::Unavailable("the log writer stopped".into()))
    }

    /// A page of entries matching `filter`, in `sort` order (then insertion order).
    pub async fn list(
        &self,
        filter: Option<Expr>,
        sort: Vec<SortKey>,
        page: u64,
        per_page: u64,
        skip_total: bool,
    ) -> Result<LogPage, StoreError> {
        let q = ListQuery {
            collection: self.inner.collection.clone(),
            filter,
            access: Access::Unrestricted,
            sort,
            author: Author::Server,
            page,
            per_page,
            skip_total,
            request: Arc::new(RequestInfo::default()),
        };
        let (page_sql, count_sql) = compile_list(Dialect::Sqlite, &self.inner.schema, &q)?;
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&page_sql.sql).map_err(db_err)?;
            let items = stmt
                .query_map(params_from_iter(page_sql.params.iter()), stored_log)
                .map_err(db_err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db_err)?;
            let total = match count_sql {
                Some(c) => Some(
                    conn.prepare_cached(&c.sql)
                        .and_then(|mut s| {
                            s.query_row(params_from_iter(c.params.iter()), |r| r.get::<_, i64>(0))
                        })
                        .map_err(db_err)? as u64,
                ),
                None => None,
            };
            Ok(LogPage { items, total })
        })
        .await
    }

    /// The entry `id`, if stored.
    pub async fn view(&self, id: String) -> Result<Option<StoredLog>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT \"id\", \"created\", \"level\", \"message\", \"data\" FROM \"_logs\" WHERE \"id\" = ?",
                )
                .map_err(db_err)?;
            let mut rows = stmt.query_map([id], stored_log).map_err(db_err)?;
            rows.next().transpose().map_err(db_err)
        })
        .await
    }

    /// Entries matching `filter` counted per hour of `created`, oldest hour first:
    /// `(date, total)` with `date` as `YYYY-MM-DD HH:00:00.000Z`.
    pub async fn hourly_stats(
        &self,
        filter: Option<Expr>,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let mut sql = String::from(
            "SELECT COUNT(\"__root\".\"id\"), strftime('%Y-%m-%d %H:00:00', \"__root\".\"created\") AS \"hour\" FROM \"_logs\" \"__root\" WHERE 1=1",
        );
        let mut params = vec![];
        if let Some(f) = &filter {
            let req = RequestInfo::default();
            let cond = compile_condition(
                Dialect::Sqlite,
                &self.inner.schema,
                &self.inner.collection,
                f,
                &req,
                Author::Server,
            )?;
            sql.push_str(" AND ");
            sql.push_str(&cond.sql);
            params = cond.params;
        }
        sql.push_str(" GROUP BY \"hour\" ORDER BY \"hour\" ASC");
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
            let rows = stmt
                .query_map(params_from_iter(params.iter()), |r| {
                    let total: i64 = r.get(0)?;
                    let hour: Option<String> = r.get(1)?;
                    Ok((hour, total))
                })
                .map_err(db_err)?;
            let mut out = vec![];
            for row in rows {
                let (hour, total) = row.map_err(db_err)?;
                if let Some(hour) = hour {
                    out.push((format!("{hour}.000Z"), total.max(0) as u64));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = inner.reader.lock().unwrap_or_else(|e| e.into_inner());
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?
    }
}

/// PocketBase's stored time format.
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string()
}

fn stored_log(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredLog> {
    let data: String = r.get("data")?;
    Ok(StoredLog {
        id: r.get("id")?,
        created: r.get("created")?,
        level: r.get("level")?,
        message: r.get("message")?,
        data: serde_json::from_str(&data).unwrap_or(Value::Null),
    })
}

/// The writer thread: waits for a job, takes what else is queued (up to [`BATCH`]) and
/// stores the entries among them in one transaction; ends when every [`LogStore`] is gone.
fn write_loop(mut conn: Connection, jobs: Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = insert_all(&mut conn, &batch) {
            tracing::warn!(error = %e, entries = batch.len(), "writing request log entries failed");
        }
        for job in batch {
            match job {
                Job::Insert(_) => {}
                Job::Flush(done) => {
                    let _ = done.send(());
                }
                Job::Prune {
                    before,
                    below_level,
                    done,
                } => {
                    let _ = done.send(prune(&conn, before, below_level));
                }
            }
        }
    }
}

fn insert_all(conn: &mut Connection, batch: &[Job]) -> rusqlite::Result<()> {
    if !batch.iter().any(|j| matches!(j, Job::Insert(_))) {
        return Ok(());
    }
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO \"_logs\" (\"id\", \"level\", \"message\", \"data\", \"created\") VALUES (?, ?, ?, ?, ?)",
        )?;
        for job in batch {
            if let Job::Insert(e) = job {
                let id = basalt_schema::id::random_id(15);
                stmt.execute(params![
                    id,
                    e.level,
                    e.message,
                    e.data,
                    format_time(&e.created)
                ])?;
            }
        }
    }
    tx.commit()
}

/// Deletes in slices of 1000 rows so a large prune never holds the file for long.
fn prune(
    conn: &Connection,
    before: Option<String>,
    below_level: Option<i64>,
) -> Result<u64, StoreError> {
    let mut removed = 0u64;
    loop {
        let n = conn
            .execute(
                "DELETE FROM \"_logs\" WHERE rowid IN (SELECT rowid FROM \"_logs\" WHERE (?1 IS NOT NULL AND \"created\" < ?1) OR (?2 IS NOT NULL AND \"level\" < ?2) LIMIT 1000)",
                params![before, below_level],
            )
            .map_err(db_err)?;
        removed += n as u64;
        if n < 1000 {
            return Ok(removed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(level: i64, message: &str, data: &str, created: DateTime<Utc>) -> LogEntry {
        LogEntry {
            created,
            level,
            message: message.into(),
            data: data.into(),
        }
    }

    #[tokio::test]
    async fn entries_are_listed_filtered_counted_per_hour_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogStore::open(dir.path()).unwrap();
        let old = Utc::now() - chrono::Duration::days(10);
        let now = Utc::now();
        logs.push(entry(0, "GET /a", r#"{"status":200,"method":"GET"}"#, old));
        logs.push(entry(8, "GET /b", r#"{"status":404,"method":"GET"}"#, now));
        logs.push(entry(
            0,
            "POST /c",
            r#"{"status":200,"method":"POST"}"#,
            now,
        ));
        logs.flush().await;

        let all = logs.list(None, vec![], 1, 30, false).await.unwrap();
        assert_eq!(all.total, Some(3));
        assert_eq!(all.items[0].message, "GET /a", "insertion order by default");
        assert_eq!(all.items[1].data["status"], 404);

        let f = basalt_schema::filter::parse("data.status >= 400 && level = 8").unwrap();
        let hits = logs.list(Some(f), vec![], 1, 30, false).await.unwrap();
        assert_eq!(hits.items.len(), 1);
        assert_eq!(hits.items[0].message, "GET /b");
        let got = logs.view(hits.items[0].id.clone()).await.unwrap().unwrap();
        assert_eq!(got, hits.items[0]);
        assert_eq!(logs.view("missing".into()).await.unwrap(), None);

        let sort = vec![SortKey {
            path: "data.method".into(),
            descending: true,
        }];
        let sorted = logs.list(None, sort, 1, 1, true).await.unwrap();
        assert_eq!(sorted.items[0].message, "POST /c");
        assert_eq!(sorted.total, None);

        let stats = logs.hourly_stats(None).await.unwrap();
        assert_eq!(stats.len(), 2);
        assert_eq!(stats.iter().map(|s| s.1).sum::<u64>(), 3);
        assert!(stats[0].0.ends_with(":00:00.000Z"), "{stats:?}");

        let cutoff = Utc::now() - chrono::Duration::days(5);
        assert_eq!(logs.prune(Some(cutoff), None).await.unwrap(), 1);
        assert_eq!(logs.prune(None, Some(4)).await.unwrap(), 1);
        let left = logs.list(None, vec![], 1, 30, false).await.unwrap();
        assert_eq!(left.total, Some(1));
        assert_eq!(left.items[0].level, 8);
    }

    #[tokio::test]
    async fn a_bad_filter_path_is_an_invalid_query() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogStore::open(dir.path()).unwrap();
        let f = basalt_schema::filter::parse("nofield = 1").unwrap();
        assert!(matches!(
            logs.list(Some(f), vec![], 1, 30, false).await,
            Err(StoreError::InvalidQuery(_))
        ));
    }
}
