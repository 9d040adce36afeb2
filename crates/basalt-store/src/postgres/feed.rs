//! Record changes for this node's realtime subscribers, its own and other nodes'. A write
//! transaction notifies `basalt_changes` with its newest `_changes` sequence number
//! (delivered at commit) and notes its events here before COMMIT; the listener (`listen`)
//! reads the entries after the last one it handled — when this node's write committed,
//! on a notification, once a second, and after reconnecting, so a missed notification
//! delays an event but does not lose it — and publishes them on the bus in sequence
//! order: this node's with the events its writes noted (the stored rows), other nodes'
//! read back.
//!
//! Sequence numbers are drawn before commit, so a smaller one can commit after a larger
//! one was read: the numbers skipped over are kept as holes and asked for again for
//! `HOLE_WAIT` (a transaction that stays open longer loses its events on other nodes; a
//! rolled-back one leaves a hole that just expires). Two changes of one record commit in
//! their sequence order (the second waits for the first's row lock), so per record the
//! order holds. The event's record is the entry's copy of the row as that change left it
//! (without secrets; an auth record's current token key is read beside it).

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
    /// Notes the events of one of this node's write transactions, before its COMMIT
    /// (`seqs` and `changes` pair up: one entry per event).
    pub(super) fn own_changes(&self, seqs: &[i64], changes: Vec<PendingChange>) {
        if let Ok(mut own) = self.inner.own_changes.lock() {
            own.extend(seqs.iter().copied().zip(changes));
        }
    }

    /// Forgets them again: the transaction did not commit.
    pub(super) fn forget_own_changes(&self, seqs: &[i64]) {
        if let Ok(mut own) = self.inner.own_changes.lock() {
            for s in seqs {
                own.remove(s);
            }
        }
    }

    /// What wakes the feed when this node's writes committed.
    pub(super) fn feed_kick(&self) -> Arc<tokio::sync::Notify> {
        self.inner.feed_kick.clone()
    }

    /// Publishes the entries committed since the last call: this node's with the events
    /// its writes noted, other nodes' read back.
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
                    .ok()
                    .and_then(|mut o| o.remove(&seq));
                if let Some(change) = own {
                    events.push(change);
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
        let mut record = match doc {
            Some(d) => d,
            None => match self.current_row(&c, record_id).await? {
                Some(r) => r,
                None => return Ok(None),
            },
        };
        // The entry leaves secrets out; the fan-out follows an auth record's token key
        // (a changed one drops the identities signed with it): the stored one is read.
        if c.is_auth()
            && action != ChangeAction::Delete
            && !record.contains_key("tokenKey")
            && let Some(key) = self
                .current_row(&c, record_id)
                .await?
                .and_then(|mut r| r.remove("tokenKey"))
        {
            record.insert("tokenKey".into(), key);
        }
        Ok(Some(PendingChange::new(&schema, &c, action, &record)))
    }

    /// The stored row, its secrets included.
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
