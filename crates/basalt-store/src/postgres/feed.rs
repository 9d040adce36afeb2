//! Other nodes' record changes for this node's realtime subscribers. A write transaction
//! notifies `basalt_changes` with its newest `_changes` sequence number (delivered at
//! commit); this node's listener (`listen`) then reads the entries after the last one it
//! handled — and, without a notification, once a second, and after reconnecting, so a
//! missed notification delays an event but does not lose it — and publishes those of
//! other nodes on its bus in sequence order, as its own writes publish theirs.
//!
//! Sequence numbers are drawn before commit, so a smaller one can commit after a larger
//! one was read: the numbers skipped over are kept as holes and asked for again for
//! `HOLE_WAIT` (a transaction that stays open longer loses its events on other nodes; a
//! rolled-back one leaves a hole that just expires). Two changes of one record commit in
//! their sequence order (the second waits for the first's row lock), so per record the
//! order holds. The event's record is the row as it is when read (the entry's copy,
//! without secrets, when it is gone, and for a delete).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use basalt_schema::Collection;

use super::rows::decode_all;
use super::{Postgres, pg_err};
use crate::events::{ChangeAction, PendingChange};
use crate::{Record, StoreError};

/// The channel write transactions notify, with their newest sequence number.
pub(super) const CHANGES_CHANNEL: &str = "basalt_changes";

/// How long a skipped sequence number is asked for again.
const HOLE_WAIT: Duration = Duration::from_secs(10);
/// Gaps wider than this are not tracked number by number.
const MAX_HOLES: i64 = 10_000;
/// Entries read per statement.
const PAGE: i64 = 1000;

/// Where this node's reading of `_changes` stands.
pub(super) struct Feed {
    last: i64,
    holes: BTreeMap<i64, Instant>,
}

impl Feed {
    /// Starts after the newest entry: a node publishes what commits after it started.
    pub(super) async fn start(pg: &Postgres) -> Result<Feed, StoreError> {
        let client = pg.client().await?;
        let last: i64 = client
            .query_one("SELECT COALESCE(MAX(seq), 0)::int8 FROM _changes", &[])
            .await
            .map_err(pg_err)?
            .get(0);
        Ok(Feed {
            last,
            holes: BTreeMap::new(),
        })
    }
}

impl Postgres {
    /// Notes (`add`) or forgets the entries of one of this node's write transactions.
    pub(super) fn own_changes(&self, seqs: &[i64], add: bool) {
        let Ok(mut own) = self.inner.own_changes.lock() else {
            return;
        };
        for s in seqs {
            if add {
                own.insert(*s);
            } else {
                own.remove(s);
            }
        }
    }

    /// Publishes the other nodes' entries committed since the last call.
    pub(super) async fn catch_up(&self, feed: &mut Feed) -> Result<(), StoreError> {
        loop {
            let client = self.client().await?;
            let holes: Vec<i64> = feed.holes.keys().copied().collect();
            let rows = client
                .query(
                    "SELECT seq, collection_id, record_id, action, record::text FROM _changes \
                     WHERE seq > $1 OR seq = ANY($2) ORDER BY seq LIMIT $3",
                    &[&feed.last, &holes, &PAGE],
                )
                .await
                .map_err(pg_err)?;
            drop(client);
            let now = Instant::now();
            let mut events = Vec::new();
            for row in &rows {
                let seq: i64 = row.get(0);
                if seq > feed.last {
                    if seq - feed.last <= MAX_HOLES {
                        for h in feed.last + 1..seq {
                            feed.holes.insert(h, now);
                        }
                    }
                    feed.last = seq;
                } else {
                    feed.holes.remove(&seq);
                }
                let own = self
                    .inner
                    .own_changes
                    .lock()
                    .map(|mut o| o.remove(&seq))
                    .unwrap_or(false);
                if own {
                    continue;
                }
                let (cid, rid, action) = (
                    row.get::<_, String>(1),
                    row.get::<_, String>(2),
                    row.get::<_, String>(3),
                );
                let doc: Option<Record> = row
                    .get::<_, Option<String>>(4)
                    .and_then(|raw| serde_json::from_str(&raw).ok());
                if let Some(e) = self.event(&cid, &rid, &action, doc).await? {
                    events.push(e);
                }
            }
            feed.holes.retain(|_, seen| seen.elapsed() < HOLE_WAIT);
            self.inner.changes.publish(events);
            if (rows.len() as i64) < PAGE {
                return Ok(());
            }
        }
    }

    /// The event of one entry; `None` when its collection is gone.
    async fn event(
        &self,
        collection_id: &str,
        record_id: &str,
        action: &str,
        doc: Option<Record>,
    ) -> Result<Option<PendingChange>, StoreError> {
        let action = match action {
            "create" => ChangeAction::Create,
            "update" => ChangeAction::Update,
            "delete" => ChangeAction::Delete,
            _ => return Ok(None),
        };
        let mut schema = self.schema();
        if schema.by_id(collection_id).is_none() {
            // Created by another node a moment ago: its notification may still be on
            // its way.
            self.reload_schema().await?;
            schema = self.schema();
        }
        let Some(c) = schema.by_id(collection_id).cloned() else {
            return Ok(None);
        };
        let current = match action {
            ChangeAction::Delete => None,
            _ => self.current_row(&c, record_id).await?,
        };
        let Some(record) = current.or(doc) else {
            return Ok(None);
        };
        Ok(Some(PendingChange::new(&schema, &c, action, &record)))
    }

    /// The stored row (its secrets included, as a local event has them: the fan-out
    /// follows auth records' token keys).
    async fn current_row(
        &self,
        c: &Arc<Collection>,
        id: &str,
    ) -> Result<Option<Record>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT * FROM {} WHERE id = $1",
            crate::sql::Dialect::Postgres.quote(&c.name)
        );
        let rows = client.query(&sql, &[&id]).await.map_err(pg_err)?;
        Ok(decode_all(c, &rows).pop())
    }
}
