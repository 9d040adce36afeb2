//! The PostgreSQL engine: a pool of connections (`deadpool-postgres`, statements prepared
//! once per connection), the system tables and default collections (`system`), collection
//! changes as DDL in one transaction (`collections`), record reads and writes (`records`)
//! through the compiler's PostgreSQL dialect. Each write is one transaction on a pooled
//! connection; there is no writer thread.
//!
//! `basalt serve --database-url` runs on it (issue 18); other nodes' schema changes and
//! record changes arrive by LISTEN/NOTIFY (`listen`, `feed`), and the connection is plain
//! TCP (a URL asking for TLS is refused).

mod collections;
mod feed;
mod listen;
mod records;
mod rows;

#[cfg(test)]
pub(crate) use rows::params;
mod system;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use basalt_schema::Schema;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use serde_json::Value;
use tokio::sync::{RwLock, broadcast};
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;

use crate::change_log::PRUNE_BATCH;
use crate::events::{ChangeBus, ChangeEvent};
use crate::{ChangeLogRetention, PgConfig, StoreError, StoreHealth, StoreStats};

/// A handle to the PostgreSQL engine; cheap to clone.
#[derive(Clone)]
pub(crate) struct Postgres {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// The published snapshot: what committed transactions left.
    schema: ArcSwap<Schema>,
    /// Record writes hold it shared, collection changes alone: a write never runs against
    /// a table that a schema change (of this node) altered under its snapshot.
    schema_lock: RwLock<()>,
    changes: ChangeBus,
    /// The events of this node's write transactions by their `_changes` sequence number,
    /// noted before COMMIT: the feed publishes them in sequence order with the others.
    own_changes: std::sync::Mutex<std::collections::HashMap<i64, crate::events::PendingChange>>,
    /// Wakes the feed when one of this node's writes committed.
    feed_kick: Arc<tokio::sync::Notify>,
    closed: AtomicBool,
    max_connections: usize,
}

/// The key of the advisory lock that serialises system bootstrap and collection changes
/// across every node of a deployment ("basalt" in ASCII).
const SCHEMA_LOCK: i64 = 0x6261_7361_6c74;

/// What a driver error means to a caller: no connection is `Unavailable` (503, retried
/// later); anything else is internal.
pub(crate) fn pg_err(e: tokio_postgres::Error) -> StoreError {
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    // Class 08: connection exceptions; 57P0x: the server shutting down or starting;
    // 53300: too many connections.
    let down = e.code().is_some_and(|c| {
        let c = c.code();
        c.starts_with("08") || c.starts_with("57P0") || c == "53300"
    });
    if e.is_closed() || io || down {
        return StoreError::Unavailable(format!("the database connection failed: {e}"));
    }
    // Concurrent transactions in each other's way: nothing of this one is stored, and
    // trying again later may well succeed (a 503, not a 500).
    if e.code().is_some_and(|c| {
        *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    }) {
        return StoreError::Unavailable(
            "the write met a concurrent one (deadlock or serialization failure) and was not \
             stored"
                .into(),
        );
    }
    let detail = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    };
    StoreError::Internal(format!("postgresql: {detail}"))
}

/// The connection settings of `url`, refusing what the engine cannot do (TLS). The
/// message never repeats the URL, which may hold a password.
pub(crate) fn parse_url(url: &str) -> Result<tokio_postgres::Config, String> {
    const NO_TLS: &str = "the database URL asks for TLS (sslmode=require or verify-*), which \
                          Basalt's PostgreSQL engine does not support yet: use \
                          sslmode=disable on a trusted network";
    // The driver knows `disable`, `prefer` and `require` only: libpq's `verify-ca` and
    // `verify-full` must be told as TLS refused, not as a malformed URL.
    let query = url.split_once('?').map_or("", |(_, q)| q);
    if query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("sslmode="))
        .any(|mode| !matches!(mode, "disable" | "prefer"))
    {
        return Err(NO_TLS.into());
    }
    let pg: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("invalid database URL: {e}"))?;
    // `prefer` (the default) connects without TLS when the client has none, as libpq
    // built without SSL does; `require` must not be silently downgraded.
    if !matches!(pg.get_ssl_mode(), SslMode::Disable | SslMode::Prefer) {
        return Err(NO_TLS.into());
    }
    if pg.get_hosts().is_empty() {
        return Err("the database URL names no host".into());
    }
    Ok(pg)
}

impl Postgres {
    pub(crate) async fn open(config: PgConfig) -> Result<Postgres, StoreError> {
        let pg = parse_url(&config.url).map_err(StoreError::Internal)?;
        let max_connections = if config.max_connections == 0 {
            std::thread::available_parallelism().map_or(8, |n| n.get() * 4)
        } else {
            config.max_connections
        };
        let listener_config = pg.clone();
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let wait = Some(Duration::from_secs(10));
        let pool = Pool::builder(manager)
            .max_size(max_connections)
            .runtime(Runtime::Tokio1)
            .wait_timeout(wait)
            .create_timeout(wait)
            .build()
            .map_err(|e| StoreError::Internal(format!("database pool: {e}")))?;
        let mut client = get(&pool).await?;
        let schema = system::migrate(&mut client).await?;
        drop(client);
        let store = Postgres {
            inner: Arc::new(Inner {
                pool,
                schema: ArcSwap::from_pointee(schema),
                schema_lock: RwLock::new(()),
                changes: ChangeBus::new(),
                own_changes: Default::default(),
                feed_kick: Default::default(),
                closed: AtomicBool::new(false),
                max_connections,
            }),
        };
        store.spawn_pruner(config.change_log);
        let feed = feed::Feed::start(&store).await?;
        store.spawn_listener(listener_config, feed);
        Ok(store)
    }

    /// A pooled connection.
    async fn client(&self) -> Result<Object, StoreError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the store is closed".into()));
        }
        get(&self.inner.pool).await
    }

    pub(crate) fn schema(&self) -> Arc<Schema> {
        self.inner.schema.load_full()
    }

    pub(crate) fn health(&self) -> StoreHealth {
        StoreHealth::default()
    }

    /// There is no writer thread to stop: never resolves.
    pub(crate) async fn writer_stopped(&self) -> String {
        std::future::pending().await
    }

    pub(crate) fn stats(&self) -> StoreStats {
        let status = self.inner.pool.status();
        StoreStats {
            writer_queue_depth: status.waiting,
            writer_queue_capacity: self.inner.max_connections,
            readers_total: self.inner.max_connections,
            readers_idle: self.inner.max_connections.saturating_sub(status.size) + status.available,
        }
    }

    /// Refuses new operations, waits for the writes under way and closes the pool.
    pub(crate) async fn close(&self) {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let _writes_done = self.inner.schema_lock.write().await;
        self.inner.pool.close();
    }

    pub(crate) fn subscribe_changes(&self) -> broadcast::Receiver<Arc<ChangeEvent>> {
        self.inner.changes.subscribe()
    }

    pub(crate) async fn get_param(&self, key: &str) -> Result<Option<Value>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT value::text FROM _params WHERE key = $1")
            .await
            .map_err(pg_err)?;
        let row = client.query_opt(&stmt, &[&key]).await.map_err(pg_err)?;
        Ok(row
            .and_then(|r| r.get::<_, Option<String>>(0))
            .and_then(|raw| serde_json::from_str(&raw).ok()))
    }

    pub(crate) async fn set_param(&self, key: &str, value: Value) -> Result<(), StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "INSERT INTO _params (key, value) VALUES ($1, $2::text::jsonb) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            )
            .await
            .map_err(pg_err)?;
        client
            .execute(&stmt, &[&key, &value.to_string()])
            .await
            .map_err(pg_err)?;
        Ok(())
    }
}

impl Postgres {
    /// Of two nodes inserting at once, both read the value that was stored first.
    pub(crate) async fn param_or_insert(
        &self,
        key: &str,
        value: Value,
    ) -> Result<Value, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "WITH ins AS (INSERT INTO _params (key, value) VALUES ($1, $2::text::jsonb) \
                 ON CONFLICT (key) DO NOTHING RETURNING value) \
                 SELECT value::text FROM ins UNION ALL \
                 SELECT value::text FROM _params WHERE key = $1",
            )
            .await
            .map_err(pg_err)?;
        let rows = client
            .query(&stmt, &[&key, &value.to_string()])
            .await
            .map_err(pg_err)?;
        match rows.first().and_then(|r| r.get::<_, Option<String>>(0)) {
            Some(raw) => Ok(serde_json::from_str(&raw).unwrap_or(Value::Null)),
            // Another transaction inserted it after this statement's snapshot was taken
            // (the insert waited for it to commit): a new statement sees it.
            None => Ok(self.get_param(key).await?.unwrap_or(Value::Null)),
        }
    }
}

async fn get(pool: &Pool) -> Result<Object, StoreError> {
    pool.get().await.map_err(|e| match e {
        deadpool_postgres::PoolError::Backend(e) => pg_err(e),
        other => StoreError::Unavailable(format!("no database connection: {other}")),
    })
}

impl Postgres {
    /// A pooled connection runs `SELECT 1` within `within` (the pool's own waits are
    /// longer: a health check must answer sooner).
    pub(crate) async fn ping(&self, within: Duration) -> Result<(), StoreError> {
        let ping = async {
            let client = self.client().await?;
            client.simple_query("SELECT 1").await.map_err(pg_err)?;
            Ok(())
        };
        tokio::time::timeout(within, ping)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "the database did not answer within {} ms",
                    within.as_millis()
                )))
            })
    }

    /// Refreshes the planner's statistics of every table (`ANALYZE`).
    pub(crate) async fn optimize(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.batch_execute("ANALYZE").await.map_err(pg_err)
    }

    /// Prunes the change log batch after batch (each its own short transaction) until
    /// nothing is past `r`'s bounds; returns how many entries went.
    pub(crate) async fn prune_change_log(
        &self,
        r: ChangeLogRetention,
    ) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let client = self.client().await?;
            let newest: i64 = client
                .query_one("SELECT COALESCE(MAX(seq), 0)::int8 FROM _changes", &[])
                .await
                .map_err(pg_err)?
                .get(0);
            let (floor, cutoff) = crate::change_log::bounds(&r, chrono::Utc::now(), newest);
            let stmt = client
                .prepare_cached(
                    "DELETE FROM _changes WHERE seq IN (SELECT seq FROM _changes \
                     WHERE seq <= $1 OR created < $2 ORDER BY seq LIMIT $3)",
                )
                .await
                .map_err(pg_err)?;
            let batch = PRUNE_BATCH as i64;
            let n = client
                .execute(&stmt, &[&floor, &cutoff, &batch])
                .await
                .map_err(pg_err)? as usize;
            total += n;
            if n < PRUNE_BATCH {
                return Ok(total);
            }
        }
    }

    /// Prunes at start and then every `r.interval`, until the store closes or is dropped.
    fn spawn_pruner(&self, r: ChangeLogRetention) {
        if r.max_age.is_none() && r.max_rows.is_none() {
            return;
        }
        let interval = r.interval.max(Duration::from_millis(10));
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                {
                    let Some(inner) = weak.upgrade().filter(|i| !i.closed.load(Ordering::SeqCst))
                    else {
                        return;
                    };
                    match (Postgres { inner }).prune_change_log(r).await {
                        Ok(0) => {}
                        Ok(n) => tracing::debug!(entries = n, "change log pruned"),
                        Err(e) => tracing::warn!(error = %e, "pruning the change log failed"),
                    }
                }
                tokio::time::sleep(interval).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use basalt_testkit::pg::PgSchema;

    use super::*;

    /// Two transactions updating two rows in opposite orders: PostgreSQL aborts one, and
    /// that is a 503 (not stored, try again), never a 500.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deadlock_is_unavailable_not_internal() {
        let Some(schema) = PgSchema::create("pgerr").await else {
            return;
        };
        let (a, b) = (schema.connect().await, schema.connect().await);
        a.batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0), (2, 0)",
        )
        .await
        .expect("table");
        a.batch_execute("BEGIN; UPDATE t SET v = 1 WHERE id = 1")
            .await
            .expect("a locks 1");
        b.batch_execute("BEGIN; UPDATE t SET v = 1 WHERE id = 2")
            .await
            .expect("b locks 2");
        let (ra, rb) = tokio::join!(
            a.batch_execute("UPDATE t SET v = 2 WHERE id = 2"),
            b.batch_execute("UPDATE t SET v = 2 WHERE id = 1"),
        );
        let victim = ra.err().or(rb.err()).expect("one of them deadlocks");
        assert!(
            matches!(pg_err(victim), StoreError::Unavailable(_)),
            "a deadlock is a 503"
        );
    }
}
