//! The change log (`_changes`): one entry per written record, in the writer's transaction,
//! for the readers to come (change-event sinks to brokers and webhooks, cross-node
//! fan-out). An entry holds the record as a superuser would read it: never a password
//! hash or a `tokenKey` (see [`basalt_schema::Collection::holds_secret`]). Entries are
//! pruned by age and count, in small batches that each hold the write lock briefly.

use std::sync::{Arc, Weak};
use std::time::Duration;

use basalt_schema::Collection;
use basalt_schema::value::{format_datetime, now_string};
use rusqlite::Connection;
use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::engine::Inner;
use crate::engine::Sqlite;
use crate::records::err;
use crate::{ChangeLogRetention, Record, StoreError};

/// Entries deleted per pruning job: a few milliseconds of the writer's time.
pub(crate) const PRUNE_BATCH: usize = 1000;

/// Appends the entry of one change of record `id` of `c`; `r` is the stored row (none
/// for a delete), written without its secrets.
pub(crate) fn append(
    conn: &Connection,
    c: &Collection,
    id: &str,
    action: &str,
    r: Option<&Record>,
) -> Result<(), StoreError> {
    let doc = r
        .map(|r| serde_json::to_string(&WithoutSecrets(c, r)))
        .transpose()
        .map_err(|e| StoreError::Internal(e.to_string()))?;
    conn.prepare_cached("INSERT INTO _changes (collection_id, record_id, action, record, created) VALUES (?, ?, ?, ?, ?)")
        .and_then(|mut s| s.execute(rusqlite::params![c.id, id, action, doc, now_string()]))
        .map_err(err)?;
    Ok(())
}

/// A stored record serialised without its secret fields, straight from the record (no
/// filtered copy of it first).
pub(crate) struct WithoutSecrets<'a>(pub &'a Collection, pub &'a Record);

impl Serialize for WithoutSecrets<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let WithoutSecrets(c, r) = self;
        let mut map = s.serialize_map(None)?;
        for (k, v) in r.iter() {
            if c.field(k).is_none_or(|f| !c.holds_secret(f)) {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

/// System migration 4: removes the secrets that entries written before it carry. Every
/// entry loses `password` and `tokenKey` (the names the API never shows, whatever the
/// collection, deleted ones included), and each collection's entries lose its other
/// secret fields. `secure_delete` is on meanwhile, so the old values are overwritten in
/// the database file rather than left in free space.
pub(crate) fn scrub_secrets(conn: &Connection) -> Result<(), StoreError> {
    let was: i64 = conn
        .query_row("PRAGMA secure_delete", [], |r| r.get(0))
        .map_err(err)?;
    conn.execute_batch("PRAGMA secure_delete = ON")
        .map_err(err)?;
    let res = (|| {
        conn.execute(
            "UPDATE _changes SET record = json_remove(record, '$.password', '$.tokenKey') \
             WHERE record IS NOT NULL AND json_valid(record)",
            [],
        )
        .map_err(err)?;
        let schema = crate::system::load_schema(conn)?;
        for c in schema.collections() {
            for f in c.fields.iter().filter(|f| c.holds_secret(f)) {
                let path = format!("$.\"{}\"", f.name.replace('"', ""));
                conn.execute(
                    "UPDATE _changes SET record = json_remove(record, ?1) \
                     WHERE collection_id = ?2 AND record IS NOT NULL AND json_valid(record)",
                    rusqlite::params![path, c.id],
                )
                .map_err(err)?;
            }
        }
        Ok(())
    })();
    conn.execute_batch(&format!("PRAGMA secure_delete = {was}"))
        .map_err(err)?;
    res
}

/// What is past `r`'s bounds: entries with a sequence number up to the first, and
/// entries created before the second.
pub(crate) fn bounds(
    r: &ChangeLogRetention,
    now: chrono::DateTime<chrono::Utc>,
    newest: i64,
) -> (i64, Option<String>) {
    // Sequence numbers are never reused, so those below this are past the count bound
    // (fewer entries are kept when a rolled-back write used a number up).
    let floor = r
        .max_rows
        .map_or(i64::MIN, |n| newest.saturating_sub_unsigned(n));
    let cutoff = r
        .max_age
        .and_then(|a| chrono::Duration::from_std(a).ok())
        .and_then(|a| now.checked_sub_signed(a))
        .map(format_datetime);
    (floor, cutoff)
}

/// Deletes up to [`PRUNE_BATCH`] of the oldest entries that are past a bound of `r` (older
/// than `max_age`, or beyond the newest `max_rows`); returns how many went. Only the
/// oldest entries are read (by primary key), never the whole log.
fn prune_batch(
    conn: &Connection,
    r: &ChangeLogRetention,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, StoreError> {
    let newest: i64 = conn
        .query_row("SELECT COALESCE(MAX(seq), 0) FROM _changes", [], |row| {
            row.get(0)
        })
        .map_err(err)?;
    let (floor, cutoff) = bounds(r, now, newest);
    let mut stmt = conn
        .prepare_cached("SELECT seq, created FROM _changes ORDER BY seq LIMIT ?")
        .map_err(err)?;
    let oldest = stmt
        .query_map([PRUNE_BATCH as i64], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(err)?;
    let mut upto = None;
    for row in oldest {
        let (seq, created) = row.map_err(err)?;
        if seq <= floor || cutoff.as_ref().is_some_and(|c| created < *c) {
            upto = Some(seq);
        } else {
            break;
        }
    }
    let Some(upto) = upto else { return Ok(0) };
    conn.prepare_cached("DELETE FROM _changes WHERE seq <= ?")
        .and_then(|mut s| s.execute([upto]))
        .map_err(err)
}

impl Sqlite {
    /// Prunes the change log once, batch after batch until nothing is past its bounds;
    /// each batch is its own writer job, so other writes go between them. Returns how
    /// many entries went.
    pub async fn prune_change_log(&self, r: ChangeLogRetention) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let n = self
                .write_job(move |conn, _| {
                    prune_batch(conn, &r, chrono::Utc::now()).map(|n| (n, None))
                })
                .await?;
            total += n;
            if n < PRUNE_BATCH {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }
}

/// Prunes at start and then every `r.interval`, until the store closes or is dropped.
pub(crate) fn spawn_pruner(inner: Weak<Inner>, r: ChangeLogRetention) {
    if r.max_age.is_none() && r.max_rows.is_none() {
        return;
    }
    let interval = r.interval.max(Duration::from_millis(10));
    tokio::spawn(async move {
        loop {
            {
                let Some(inner) = inner.upgrade().filter(|i| !i.is_closed()) else {
                    return;
                };
                let store = Sqlite {
                    inner: Arc::clone(&inner),
                };
                match store.prune_change_log(r).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(entries = n, "change log pruned"),
                    Err(e) => tracing::warn!(error = %e, "pruning the change log failed"),
                }
            }
            tokio::time::sleep(interval).await;
        }
    });
}
