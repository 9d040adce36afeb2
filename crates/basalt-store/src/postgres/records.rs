//! Record reads and writes on PostgreSQL. Reads compile through the PostgreSQL dialect
//! (rules in the WHERE clause, bound parameters only). A write is one READ COMMITTED
//! transaction on a pooled connection: validation and normalisation (`basalt_schema`),
//! relation checks, the row (its `RETURNING *` is the stored record), the create rule
//! checked on the new row, the `_changes` entry, cascades; an updated or deleted row is
//! locked (`FOR UPDATE`) before it is checked, uniqueness is the indexes'.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use basalt_schema::record::{prepare_create, prepare_update};
use basalt_schema::value::now_string;
use basalt_schema::{Collection, FieldKind, RequestInfo, Schema, ValidationErrors};
use deadpool_postgres::{GenericClient, Transaction};
use serde_json::{Map, Value};
use tokio_postgres::Row;

use super::rows::{decode, decode_all, params, positions, value_placeholder};
use super::{Postgres, feed, pg_err};
use crate::change_log::WithoutSecrets;
use crate::codec::encode_value;
use crate::events::{ChangeAction, PendingChange, SnapshotCheck, snapshot_query};
use crate::records::{
    by_id_sql, missing_relation, not_unique, relation_ids, select_by_id, still_required, text,
    writable, write_target,
};
use crate::sql::{Dialect, SqlFragment, SqlValue, compile_condition, compile_list};
use crate::{
    Access, Author, DroppedFiles, ListQuery, Record, RecordPage, RowView, RowsPage, StoreError,
    WriteOp, WriteResult, auth_identity, dropped_files,
};

const D: Dialect = Dialect::Postgres;

fn q(ident: &str) -> String {
    D.quote(ident)
}

/// Runs a compiled fragment (its `?` placeholders typed and numbered for PostgreSQL).
/// Outside a transaction, a cached statement that a schema change made stale (another
/// node's, which this one's caches do not know of) is prepared again once.
async fn query(client: &impl GenericClient, f: &SqlFragment) -> Result<Vec<Row>, StoreError> {
    let sql = f.pg_sql();
    let args = params(&f.params);
    let stmt = client.prepare_cached(&sql).await.map_err(pg_err)?;
    match client.query(&stmt, &args).await {
        Err(e) if is_stale_plan(&e) => {
            let fresh = client.prepare(&sql).await.map_err(pg_err)?;
            client.query(&fresh, &args).await.map_err(pg_err)
        }
        other => other.map_err(pg_err),
    }
}

/// PostgreSQL's refusal to run a statement prepared before its table changed shape.
fn is_stale_plan(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::FEATURE_NOT_SUPPORTED)
}

async fn load(
    client: &impl GenericClient,
    schema: &Schema,
    c: &Collection,
    id: &str,
    access: &Access,
    req: &RequestInfo,
) -> Result<Option<Record>, StoreError> {
    let f = select_by_id(D, schema, c, id, access, req)?;
    Ok(decode_all(c, &query(client, &f).await?).pop())
}

/// A unique violation as PocketBase's `validation_not_unique` on the fields its key names
/// (`Key (title)=(x) already exists.`; the email index's key is `lower(email)`).
fn map_write_err(c: &Collection, e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error()
        && db.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION
    {
        let key = db
            .detail()
            .and_then(|d| d.strip_prefix("Key ("))
            .and_then(|d| d.split(")=(").next())
            .unwrap_or_default();
        let mut errs = ValidationErrors::new();
        for part in key.split(", ") {
            let name = part
                .trim_start_matches("lower(")
                .trim_end_matches(')')
                .trim_end_matches("::text")
                .trim_matches('"');
            if let Some(f) = c.field(name) {
                errs.add(&f.name, not_unique());
            }
        }
        if !errs.is_empty() {
            return StoreError::Validation(errs);
        }
    }
    pg_err(e)
}

/// A write transaction's work: its answer, and the job handed back with what it noted.
/// Boxed and `Send`, so the callers' futures are.
type Work<'j, T> = Pin<Box<dyn Future<Output = Result<(T, Job<'j>), StoreError>> + Send + 'j>>;

/// One write transaction: the connection, the schema it writes with, and what it noted
/// for after the commit (change events, dropped files).
struct Job<'a> {
    tx: &'a Transaction<'a>,
    schema: &'a Schema,
    req: &'a RequestInfo,
    changes: Vec<PendingChange>,
    /// The `_changes` sequence numbers this job wrote.
    seqs: Vec<i64>,
    dropped: Vec<DroppedFiles>,
}

impl Job<'_> {
    async fn rule_holds(
        &self,
        c: &Collection,
        id: &str,
        access: &Access,
    ) -> Result<bool, StoreError> {
        let Access::Rule(_) = access else {
            return Ok(true);
        };
        let mut f = select_by_id(D, self.schema, c, id, access, self.req)?;
        f.sql = format!("SELECT EXISTS ({})", f.sql);
        Ok(query(self.tx, &f).await?.first().is_some_and(|r| r.get(0)))
    }

    async fn check_relations(&self, c: &Collection, r: &Record) -> Result<(), StoreError> {
        let mut errs = ValidationErrors::new();
        for f in &c.fields {
            let FieldKind::Relation(o) = &f.kind else {
                continue;
            };
            let ids = relation_ids(r, &f.name);
            let Some(target) = self.schema.by_id(&o.collection_id) else {
                continue;
            };
            if ids.is_empty() {
                continue;
            }
            let found: i64 = self
                .tx
                .query_one(
                    &format!(
                        "SELECT COUNT(*) FROM {} WHERE id = ANY($1::text[])",
                        q(&target.name)
                    ),
                    &[&ids],
                )
                .await
                .map_err(pg_err)?
                .get(0);
            if found != ids.len() as i64 {
                errs.add(&f.name, missing_relation());
            }
        }
        errs.into_result().map_err(StoreError::Validation)
    }

    /// Refuses `email` when another record of `c` (not `id`) has it in any case.
    async fn check_email_free(
        &self,
        c: &Collection,
        id: &str,
        email: &str,
    ) -> Result<(), StoreError> {
        if email.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "SELECT 1 FROM {} WHERE lower(\"email\") = lower($1) AND \"email\" <> '' AND id <> $2 LIMIT 1",
            q(&c.name)
        );
        if self.has_row(&sql, &[&email, &id]).await? {
            return Err(auth_identity::email_taken());
        }
        Ok(())
    }

    async fn check_auth_id_free(&self, c: &Collection, id: &str) -> Result<(), StoreError> {
        for other in self
            .schema
            .collections()
            .iter()
            .filter(|o| o.is_auth() && o.id != c.id)
        {
            let sql = format!("SELECT 1 FROM {} WHERE id = $1", q(&other.name));
            if self.has_row(&sql, &[&id]).await? {
                return Err(auth_identity::auth_id_taken());
            }
        }
        Ok(())
    }

    /// Runs an `INSERT`/`UPDATE ... RETURNING *` and decodes the row it wrote.
    async fn write_returning(
        &self,
        c: &Collection,
        f: &SqlFragment,
    ) -> Result<Option<Record>, StoreError> {
        let stmt = self.tx.prepare_cached(&f.pg_sql()).await.map_err(pg_err)?;
        let rows = self
            .tx
            .query(&stmt, &params(&f.params))
            .await
            .map_err(|e| map_write_err(c, e))?;
        Ok(decode_all(c, &rows).pop())
    }

    async fn append_change(
        &mut self,
        c: &Collection,
        id: &str,
        action: ChangeAction,
        stored: &Record,
    ) -> Result<(), StoreError> {
        // A delete keeps the row as it was too (SQLite's entry holds none): other nodes
        // check their subscribers' rules on it (`postgres::feed`).
        let doc = serde_json::to_string(&WithoutSecrets(c, stored))
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let stmt = self
            .tx
            .prepare_cached(
                "INSERT INTO _changes (collection_id, record_id, action, record, created) \
                 VALUES ($1, $2, $3, $4::text::jsonb, $5) RETURNING seq",
            )
            .await
            .map_err(pg_err)?;
        let seq: i64 = self
            .tx
            .query_one(&stmt, &[&c.id, &id, &action.as_str(), &doc, &now_string()])
            .await
            .map_err(pg_err)?
            .get(0);
        self.seqs.push(seq);
        self.changes
            .push(PendingChange::new(self.schema, c, action, stored));
        Ok(())
    }

    async fn create(
        &mut self,
        c: &Collection,
        input: &Map<String, Value>,
        uploads: &[String],
        access: &Access,
    ) -> Result<Record, StoreError> {
        let r = prepare_create(c, input, uploads, &now_string()).map_err(StoreError::Validation)?;
        self.check_relations(c, &r).await?;
        let id = text(&r, "id").to_string();
        if c.is_auth() {
            self.check_auth_id_free(c, &id).await?;
            self.check_email_free(c, &id, text(&r, "email")).await?;
        }
        let cols: Vec<String> = c.fields.iter().map(|f| q(&f.name)).collect();
        let marks: Vec<&str> = c.fields.iter().map(value_placeholder).collect();
        let f = SqlFragment {
            sql: format!(
                "INSERT INTO {} ({}) VALUES ({}) RETURNING *",
                q(&c.name),
                cols.join(", "),
                marks.join(", ")
            ),
            params: encoded(c, &r),
        };
        let stored = self
            .write_returning(c, &f)
            .await?
            .ok_or(StoreError::NotFound)?;
        if !self.rule_holds(c, &id, access).await? {
            return Err(StoreError::RuleFailed);
        }
        self.append_change(c, &id, ChangeAction::Create, &stored)
            .await?;
        Ok(stored)
    }

    /// Locks record `id`'s row for the rest of the transaction; whether it exists.
    async fn lock(&self, c: &Collection, id: &str) -> Result<bool, StoreError> {
        let sql = format!("SELECT 1 FROM {} WHERE id = $1 FOR UPDATE", q(&c.name));
        self.has_row(&sql, &[&id]).await
    }

    /// Whether `sql` returns a row.
    async fn has_row(
        &self,
        sql: &str,
        args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<bool, StoreError> {
        let stmt = self.tx.prepare_cached(sql).await.map_err(pg_err)?;
        let row = self.tx.query_opt(&stmt, args).await.map_err(pg_err)?;
        Ok(row.is_some())
    }

    async fn update(
        &mut self,
        c: &Collection,
        id: &str,
        (input, uploads): (&Map<String, Value>, &[String]),
        access: &Access,
    ) -> Result<Record, StoreError> {
        if !self.lock(c, id).await? {
            return Err(StoreError::NotFound);
        }
        let existing = load(self.tx, self.schema, c, id, access, self.req)
            .await?
            .ok_or(StoreError::NotFound)?;
        let r = prepare_update(c, &existing, input, uploads, &now_string())
            .map_err(StoreError::Validation)?;
        self.check_relations(c, &r).await?;
        if c.is_auth() && text(&r, "email") != text(&existing, "email") {
            self.check_email_free(c, id, text(&r, "email")).await?;
        }
        let sets: Vec<String> = c
            .fields
            .iter()
            .map(|f| format!("{} = {}", q(&f.name), value_placeholder(f)))
            .collect();
        let mut values = encoded(c, &r);
        values.push(SqlValue::Text(id.to_string()));
        let f = SqlFragment {
            sql: format!(
                "UPDATE {} SET {} WHERE id = ? RETURNING *",
                q(&c.name),
                sets.join(", ")
            ),
            params: values,
        };
        let stored = self
            .write_returning(c, &f)
            .await?
            .ok_or(StoreError::NotFound)?;
        self.append_change(c, id, ChangeAction::Update, &stored)
            .await?;
        self.dropped
            .extend(dropped_files::updated(c, id, &existing, &stored));
        Ok(stored)
    }

    /// Deletes a record and handles what points at it, as the SQLite engine's
    /// `records::delete_cascading` does. Returns whether the record was there.
    fn delete_cascading<'s>(
        &'s mut self,
        c: &'s Collection,
        id: &'s str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send + 's>> {
        Box::pin(async move {
            let f = SqlFragment {
                sql: format!("DELETE FROM {} WHERE id = ? RETURNING *", q(&c.name)),
                params: vec![SqlValue::Text(id.to_string())],
            };
            let Some(before) = decode_all(c, &query(self.tx, &f).await?).pop() else {
                return Ok(false);
            };
            self.append_change(c, id, ChangeAction::Delete, &before)
                .await?;
            self.dropped.extend(dropped_files::deleted(c, id));
            let schema = self.schema;
            for other in schema.collections().iter().filter(|o| !o.is_view()) {
                for f in other
                    .fields
                    .iter()
                    .filter(|f| f.relation_target() == Some(c.id.as_str()))
                {
                    let (col, table) = (q(&f.name), q(&other.name));
                    let (select, remove) = if f.is_multiple() {
                        (
                            format!(
                                "SELECT id FROM {table} WHERE {col} @> jsonb_build_array($1::text)"
                            ),
                            format!(
                                "UPDATE {table} SET {col} = COALESCE((SELECT jsonb_agg(v) FROM jsonb_array_elements({col}) v \
                                 WHERE v <> to_jsonb($1::text)), '[]'::jsonb) WHERE id = $2"
                            ),
                        )
                    } else {
                        (
                            format!("SELECT id FROM {table} WHERE {col} = $1"),
                            format!(
                                "UPDATE {table} SET {col} = '' WHERE id = $2 AND $1::text IS NOT NULL"
                            ),
                        )
                    };
                    let refs: Vec<String> = self
                        .tx
                        .query(&select, &[&id])
                        .await
                        .map_err(pg_err)?
                        .iter()
                        .map(|r| r.get(0))
                        .collect();
                    let cascade = matches!(&f.kind, FieldKind::Relation(o) if o.cascade_delete);
                    for rid in refs {
                        if other.id == c.id && rid == id {
                            continue;
                        }
                        if cascade {
                            self.delete_cascading(other, &rid).await?;
                            continue;
                        }
                        if f.is_required() {
                            let remaining: i64 = if f.is_multiple() {
                                self.tx
                                    .query_one(
                                        &format!(
                                            "SELECT COUNT(*) FROM {table}, jsonb_array_elements({table}.{col}) v \
                                             WHERE {table}.id = $1 AND v <> to_jsonb($2::text)"
                                        ),
                                        &[&rid, &id],
                                    )
                                    .await
                                    .map_err(pg_err)?
                                    .get(0)
                            } else {
                                0
                            };
                            if remaining == 0 {
                                return Err(still_required());
                            }
                        }
                        self.tx
                            .execute(&remove, &[&id, &rid])
                            .await
                            .map_err(pg_err)?;
                    }
                }
            }
            Ok(true)
        })
    }

    async fn run_op(&mut self, op: &WriteOp) -> Result<WriteResult, StoreError> {
        match op {
            WriteOp::Create {
                collection,
                input,
                access,
                uploads,
            } => {
                let c = write_target(self.schema, collection)?;
                self.create(&c, input, uploads, access).await.map(Some)
            }
            WriteOp::Update {
                collection,
                id,
                input,
                access,
                uploads,
            } => {
                let c = write_target(self.schema, collection)?;
                self.update(&c, id, (input, uploads), access)
                    .await
                    .map(Some)
            }
            WriteOp::Upsert {
                collection,
                input,
                create_access,
                update_access,
            } => {
                let c = write_target(self.schema, collection)?;
                match input.get("id").and_then(Value::as_str) {
                    Some(id) if self.lock(&c, id).await? => self
                        .update(&c, id, (input, &[]), update_access)
                        .await
                        .map(Some),
                    _ => self.create(&c, input, &[], create_access).await.map(Some),
                }
            }
            WriteOp::Delete {
                collection,
                id,
                access,
            } => {
                let c = write_target(self.schema, collection)?;
                if !self.lock(&c, id).await? || !self.rule_holds(&c, id, access).await? {
                    return Err(StoreError::NotFound);
                }
                if !self.delete_cascading(&c, id).await? {
                    return Err(StoreError::NotFound);
                }
                Ok(None)
            }
            WriteOp::Import { .. } => Err(StoreError::Forbidden(
                "importing records is not built on PostgreSQL".into(),
            )),
        }
    }
}

/// The record's values as bound parameters, in field order.
fn encoded(c: &Collection, r: &Record) -> Vec<SqlValue> {
    c.fields
        .iter()
        .map(|f| encode_value(f, r.get(&f.name).unwrap_or(&Value::Null)))
        .collect()
}

impl Postgres {
    /// Runs `work` in one transaction on a pooled connection, with the schema this node
    /// holds (no collection change of this node runs meanwhile), and publishes the change
    /// events it noted once COMMIT returned.
    async fn write_tx<T>(
        &self,
        req: &RequestInfo,
        work: impl for<'j> FnOnce(Job<'j>) -> Work<'j, T>,
    ) -> Result<(T, Vec<DroppedFiles>), StoreError> {
        let _shared = self.inner.schema_lock.read().await;
        let schema = self.inner.schema.load_full();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        let job = Job {
            tx: &tx,
            schema: &schema,
            req,
            changes: Vec::new(),
            seqs: Vec::new(),
            dropped: Vec::new(),
        };
        let (out, job) = work(job).await?;
        let (changes, seqs, dropped) = (job.changes, job.seqs, job.dropped);
        if let Some(last) = seqs.iter().max() {
            // Delivered at commit: the other nodes read the entries (`feed`).
            tx.execute(
                "SELECT pg_notify($1, $2)",
                &[&feed::CHANGES_CHANNEL, &last.to_string()],
            )
            .await
            .map_err(pg_err)?;
        }
        // This node's feed publishes these events at their place in sequence order (so
        // two transactions' events on one record follow their commit order).
        self.own_changes(&seqs, changes);
        let committed = tx.commit().await.map_err(|e| match pg_err(e) {
            StoreError::Unavailable(why) => StoreError::OutcomeUnknown(why),
            other => other,
        });
        if let Err(e) = committed {
            // Rolled back (or unknown: then the feed reads it as another node's, if it
            // committed).
            self.forget_own_changes(&seqs);
            return Err(e);
        }
        self.inner.feed_kick.notify_one();
        Ok((out, dropped))
    }

    pub(crate) async fn write_dropping_files(
        &self,
        ops: Vec<WriteOp>,
        req: Arc<RequestInfo>,
    ) -> Result<(Vec<WriteResult>, Vec<DroppedFiles>), StoreError> {
        self.write_tx(&req, move |mut job| {
            Box::pin(async move {
                let single = ops.len() == 1;
                let mut out = Vec::with_capacity(ops.len());
                for (index, op) in ops.iter().enumerate() {
                    match job.run_op(op).await {
                        Ok(r) => out.push(r),
                        Err(e) if single => return Err(e),
                        Err(e) => {
                            return Err(StoreError::Batch {
                                index,
                                source: Box::new(e),
                            });
                        }
                    }
                }
                Ok((out, job))
            })
        })
        .await
    }

    pub(crate) async fn truncate_collection(
        &self,
        id_or_name: &str,
    ) -> Result<Vec<DroppedFiles>, StoreError> {
        let req = RequestInfo::default();
        let key = id_or_name.to_string();
        self.write_tx(&req, move |mut job| {
            Box::pin(async move {
                let c = job.schema.find(&key).cloned().ok_or(StoreError::NotFound)?;
                writable(&c)?;
                let ids: Vec<String> = job
                    .tx
                    .query(&format!("SELECT id FROM {}", q(&c.name)), &[])
                    .await
                    .map_err(pg_err)?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                for id in ids {
                    job.delete_cascading(&c, &id).await?;
                }
                Ok((c, job))
            })
        })
        .await
        .map(|(c, mut dropped)| {
            dropped_files::emptied_into(&mut dropped, &c);
            dropped
        })
    }

    pub(crate) async fn list_records(&self, q: ListQuery) -> Result<RecordPage, StoreError> {
        let schema = self.schema();
        let (page, count) = compile_list(D, &schema, &q)?;
        let client = self.client().await?;
        let items = decode_all(&q.collection, &query(&client, &page).await?);
        let total_items = match count {
            Some(c) => {
                let n: i64 = query(&client, &c).await?.first().map_or(0, |r| r.get(0));
                Some(u64::try_from(n).unwrap_or_default())
            }
            None => None,
        };
        Ok(RecordPage { items, total_items })
    }

    pub(crate) async fn get_record(
        &self,
        collection: &Arc<Collection>,
        id: &str,
        access: Access,
        req: Arc<RequestInfo>,
    ) -> Result<Option<Record>, StoreError> {
        let schema = self.schema();
        let client = self.client().await?;
        load(&client, &schema, collection, id, &access, &req).await
    }

    pub(crate) async fn get_records(
        &self,
        collection: &Arc<Collection>,
        ids: Vec<String>,
        access: Access,
        req: Arc<RequestInfo>,
    ) -> Result<Vec<Record>, StoreError> {
        let schema = self.schema();
        let c = collection;
        let json = Value::Array(ids.iter().cloned().map(Value::String).collect()).to_string();
        let mut f = SqlFragment::new(format!(
            "SELECT \"__root\".* FROM {} \"__root\" WHERE \"__root\".\"id\" IN \
             (SELECT value FROM jsonb_array_elements_text(CAST(? AS jsonb)))",
            q(&c.name)
        ));
        f.params.push(SqlValue::Text(json));
        if let Access::Rule(rule) = &access {
            f.push_str(" AND ");
            f.push(compile_condition(
                D,
                &schema,
                c,
                rule,
                &req,
                Author::Server,
            )?);
        }
        let client = self.client().await?;
        let mut found = decode_all(c, &query(&client, &f).await?);
        found.sort_by_key(|r| {
            let id = text(r, "id");
            ids.iter().position(|x| x == id).unwrap_or(usize::MAX)
        });
        Ok(found)
    }

    pub(crate) async fn find_auth_record(
        &self,
        collection: &Arc<Collection>,
        field: &str,
        value: &str,
    ) -> Result<Option<Record>, StoreError> {
        let c = collection;
        let f = c
            .field(field)
            .ok_or_else(|| StoreError::InvalidQuery(format!("unknown identity field {field:?}")))?;
        let col = q(&f.name);
        // Emails match without case (the collection's `lower(email)` index); where older
        // data holds several spellings, the exact one wins.
        let cond = if matches!(f.kind, FieldKind::Email(_)) {
            format!("lower({col}) = lower($1) AND {col} <> '' ORDER BY ({col} = $1) DESC")
        } else {
            format!("{col} = $1")
        };
        let sql = format!("SELECT * FROM {} WHERE {cond} LIMIT 1", q(&c.name));
        let client = self.client().await?;
        let rows = client.query(&sql, &[&value]).await.map_err(pg_err)?;
        Ok(decode_all(c, &rows).pop())
    }

    /// `list_records`, each decoded record handed to `each` as a row.
    pub(crate) async fn list_rows<S, F>(
        &self,
        q: ListQuery,
        mut out: S,
        mut each: F,
    ) -> Result<RowsPage<S>, StoreError>
    where
        S: Send + 'static,
        F: FnMut(&mut S, &RowView<'_>) -> Result<(), StoreError> + Send + 'static,
    {
        let c = q.collection.clone();
        let page = self.list_records(q).await?;
        for r in &page.items {
            each(&mut out, &RowView::decoded(&c, r))?;
        }
        Ok(RowsPage {
            rows: out,
            total_items: page.total_items,
        })
    }

    pub(crate) async fn view_row<T, F>(
        &self,
        collection: &Arc<Collection>,
        id: &str,
        write: F,
    ) -> Result<Option<T>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&RowView<'_>) -> T + Send + 'static,
    {
        let f = SqlFragment {
            sql: by_id_sql(collection),
            params: vec![SqlValue::Text(id.to_string())],
        };
        let client = self.client().await?;
        let Some(row) = query(&client, &f).await?.pop() else {
            return Ok(None);
        };
        let record = decode(collection, &positions(collection, &row), &row);
        Ok(Some(write(&RowView::decoded(collection, &record))))
    }

    pub(crate) async fn record_matches(
        &self,
        collection: Arc<Collection>,
        record: Arc<Record>,
        checks: Vec<SnapshotCheck>,
    ) -> Result<Vec<Result<bool, StoreError>>, StoreError> {
        let schema = self.schema();
        let c = schema.by_id(&collection.id).cloned().unwrap_or(collection);
        let client = self.client().await?;
        let mut out = Vec::with_capacity(checks.len());
        for check in &checks {
            let verdict = match snapshot_query(D, &schema, &c, &record, check, value_placeholder) {
                Ok(f) => query(&client, &f)
                    .await
                    .map(|rows| rows.first().is_some_and(|r| r.get(0))),
                Err(e) => Err(e),
            };
            out.push(verdict);
        }
        Ok(out)
    }
}
