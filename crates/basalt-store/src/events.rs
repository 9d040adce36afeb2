//! Committed record changes as events: collected on the writer thread while a job runs,
//! published in commit order once its transaction committed (never for a rolled-back
//! job or group), and a rule check over a record snapshot for the realtime fan-out.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use basalt_schema::filter::Expr;
use basalt_schema::{Collection, RequestInfo, Schema};
use rusqlite::{Connection, params_from_iter};
use tokio::sync::broadcast;

use crate::codec::encode_value;
use crate::engine::Sqlite;
use crate::sql::{Dialect, SqlFragment, compile_condition};
use crate::{Author, Record, StoreError};

/// How many committed events the bus holds for a receiver that fell behind.
pub(crate) const BUS_CAPACITY: usize = 16_384;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeAction {
    Create,
    Update,
    Delete,
}

impl ChangeAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeAction::Create => "create",
            ChangeAction::Update => "update",
            ChangeAction::Delete => "delete",
        }
    }
}

/// One committed change of one record. For a delete, `record` is the row as it was just
/// before it was deleted.
#[derive(Debug, Clone)]
pub struct ChangeEvent {
    /// Increases by one per published event: commit order.
    pub seq: u64,
    pub collection: Arc<Collection>,
    pub action: ChangeAction,
    pub record: Record,
    /// When the transaction holding this change committed.
    pub committed_at: Instant,
}

/// The publishing side, owned by the store.
pub(crate) struct ChangeBus {
    sender: broadcast::Sender<Arc<ChangeEvent>>,
    seq: AtomicU64,
}

impl ChangeBus {
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(BUS_CAPACITY);
        Self {
            sender,
            seq: AtomicU64::new(0),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ChangeEvent>> {
        self.sender.subscribe()
    }

    /// Publishes the changes of one committed job; runs on the writer thread, in order.
    pub fn publish(&self, changes: Vec<PendingChange>) {
        if changes.is_empty() || self.sender.receiver_count() == 0 {
            return;
        }
        let committed_at = Instant::now();
        for c in changes {
            let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
            // An error only means nobody listens right now.
            let _ = self.sender.send(Arc::new(ChangeEvent {
                seq,
                collection: c.collection,
                action: c.action,
                record: c.record,
                committed_at,
            }));
        }
    }
}

/// A change made by the running job, not yet committed.
pub(crate) struct PendingChange {
    collection: Arc<Collection>,
    action: ChangeAction,
    record: Record,
}

thread_local! {
    /// The changes of the job running on this (writer) thread. Jobs run one at a time on
    /// the writer thread, so a thread-local keeps the record functions' signatures free of
    /// a collector argument.
    static PENDING: RefCell<Vec<PendingChange>> = const { RefCell::new(Vec::new()) };
}

impl PendingChange {
    pub(crate) fn new(
        schema: &Schema,
        c: &Collection,
        action: ChangeAction,
        record: &Record,
    ) -> Self {
        let collection = schema
            .by_id(&c.id)
            .cloned()
            .unwrap_or_else(|| Arc::new(c.clone()));
        PendingChange {
            collection,
            action,
            record: record.clone(),
        }
    }
}

/// Notes a change of the running job.
pub(crate) fn record_change(
    schema: &Schema,
    c: &Collection,
    action: ChangeAction,
    record: &Record,
) {
    let change = PendingChange::new(schema, c, action, record);
    PENDING.with(|p| p.borrow_mut().push(change));
}

/// Takes (and clears) the changes noted since the last call on this thread.
pub(crate) fn take_changes() -> Vec<PendingChange> {
    PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()))
}

/// One rule check: the collection's rule and the subscriber's filter (each when present)
/// must hold for the snapshot, with `request` as `@request.*`.
#[derive(Debug, Clone)]
pub struct SnapshotCheck {
    /// The collection's list or view rule: the server's, reading everything.
    pub rule: Option<Arc<Expr>>,
    /// The subscription's own filter: the client's ([`Author::Client`]).
    pub filter: Option<Arc<Expr>>,
    pub request: Arc<RequestInfo>,
}

/// The statement evaluating `check` against `record` as a one-row derived table standing
/// in for the collection's table, so the verdict does not depend on whether the row still
/// exists or has changed since. `value` is a field's bound value as a column expression.
pub(crate) fn snapshot_query(
    d: Dialect,
    schema: &Schema,
    c: &Collection,
    record: &Record,
    check: &SnapshotCheck,
    value: impl Fn(&basalt_schema::Field) -> &'static str,
) -> Result<SqlFragment, StoreError> {
    let columns: Vec<String> = c
        .fields
        .iter()
        .map(|f| format!("{} AS {}", value(f), d.quote(&f.name)))
        .collect();
    let mut f = SqlFragment::new(format!(
        "SELECT EXISTS (SELECT 1 FROM (SELECT {}) \"__root\" WHERE 1=1",
        columns.join(", ")
    ));
    f.params.extend(c.fields.iter().map(|field| {
        encode_value(
            field,
            record.get(&field.name).unwrap_or(&serde_json::Value::Null),
        )
    }));
    let conditions = [
        (&check.rule, Author::Server),
        (&check.filter, Author::Client),
    ];
    for (cond, author) in conditions {
        if let Some(cond) = cond {
            f.push_str(" AND ");
            f.push(compile_condition(
                d,
                schema,
                c,
                cond,
                &check.request,
                author,
            )?);
        }
    }
    f.push_str(")");
    Ok(f)
}

fn snapshot_matches(
    conn: &Connection,
    schema: &Schema,
    c: &Collection,
    record: &Record,
    check: &SnapshotCheck,
) -> Result<bool, StoreError> {
    let f = snapshot_query(Dialect::Sqlite, schema, c, record, check, |_| "?")?;
    conn.prepare_cached(&f.sql)
        .and_then(|mut s| s.query_row(params_from_iter(f.params.iter()), |r| r.get::<_, bool>(0)))
        .map_err(crate::health::db_err)
}

impl Sqlite {
    /// A receiver of every committed record change, in commit order. A receiver that
    /// falls more than the bus capacity behind gets `RecvError::Lagged` with the count
    /// it missed.
    pub fn subscribe_changes(&self) -> broadcast::Receiver<Arc<ChangeEvent>> {
        self.inner.changes.subscribe()
    }

    /// Whether each check holds for `record` (a snapshot of a record of `collection`),
    /// on one pooled reader. Each check has its own verdict: one that fails to compile
    /// or run does not affect the others.
    pub async fn record_matches(
        &self,
        collection: Arc<Collection>,
        record: Arc<Record>,
        checks: Vec<SnapshotCheck>,
    ) -> Result<Vec<Result<bool, StoreError>>, StoreError> {
        self.read(move |conn, schema| {
            let c = schema.by_id(&collection.id).cloned().unwrap_or(collection);
            Ok(checks
                .iter()
                .map(|check| snapshot_matches(conn, schema, &c, &record, check))
                .collect())
        })
        .await
    }
}
