//! Record reads (through the reader pool, access rules compiled into the WHERE clause) and
//! writes (in the writer's transaction: validation, relation checks, rule checks, the row,
//! its change-log entry, cascades).

use std::sync::Arc;

use basalt_schema::error::FieldError;
use basalt_schema::record::{prepare_create, prepare_import, prepare_update};
use basalt_schema::value::now_string;
use basalt_schema::{Collection, FieldKind, RequestInfo, Schema, ValidationErrors};

use crate::DroppedFiles;
use crate::dropped_files;
use rusqlite::{Connection, OptionalExtension, params_from_iter};
use serde_json::{Map, Value};

use crate::codec::{column_positions, decode_row, encode_value};
use crate::engine::Sqlite;
use crate::events::{ChangeAction, record_change};
use crate::sql::{Dialect, SqlFragment, SqlValue, compile_condition};
use crate::{Access, Author, ListQuery, Record, RecordPage, StoreError, WriteOp, WriteResult};
use crate::{auth_identity, change_log};

const D: Dialect = Dialect::Sqlite;

pub(crate) fn err(e: rusqlite::Error) -> StoreError {
    crate::health::db_err(e)
}

fn q(ident: &str) -> String {
    D.quote(ident)
}

fn query_records(
    conn: &Connection,
    c: &Collection,
    f: &SqlFragment,
) -> Result<Vec<Record>, StoreError> {
    let mut stmt = conn.prepare_cached(&f.sql).map_err(err)?;
    let positions = column_positions(c, &stmt);
    let rows = stmt
        .query_map(params_from_iter(f.params.iter()), |row| {
            decode_row(c, &positions, row)
        })
        .map_err(err)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(err)
}

/// `SELECT * FROM <c> "__root" WHERE id = ? [AND rule]`.
/// The rule-less by-id `SELECT` of `c`'s table, its one parameter the id.
pub(crate) fn by_id_sql(c: &Collection) -> String {
    format!(
        "SELECT \"__root\".* FROM {} \"__root\" WHERE \"__root\".\"id\" = ?",
        q(&c.name)
    )
}

pub(crate) fn select_by_id(
    d: Dialect,
    schema: &Schema,
    c: &Collection,
    id: &str,
    access: &Access,
    req: &RequestInfo,
) -> Result<SqlFragment, StoreError> {
    let mut f = SqlFragment::new(by_id_sql(c));
    f.params.push(SqlValue::Text(id.to_string()));
    if let Access::Rule(rule) = access {
        f.push_str(" AND ");
        f.push(compile_condition(d, schema, c, rule, req, Author::Server)?);
    }
    Ok(f)
}

fn load(
    conn: &Connection,
    schema: &Schema,
    c: &Collection,
    id: &str,
    access: &Access,
    req: &RequestInfo,
) -> Result<Option<Record>, StoreError> {
    let f = select_by_id(D, schema, c, id, access, req)?;
    Ok(query_records(conn, c, &f)?.into_iter().next())
}

/// The collection as the current snapshot has it (a request may hold an older one).
fn current(schema: &Schema, c: &Collection) -> Result<Arc<Collection>, StoreError> {
    schema.by_id(&c.id).cloned().ok_or(StoreError::NotFound)
}

fn check_relations(
    conn: &Connection,
    schema: &Schema,
    c: &Collection,
    r: &Record,
) -> Result<(), StoreError> {
    let mut errs = ValidationErrors::new();
    for f in &c.fields {
        let FieldKind::Relation(o) = &f.kind else {
            continue;
        };
        let ids = relation_ids(r, &f.name);
        if ids.is_empty() {
            continue;
        }
        let Some(target) = schema.by_id(&o.collection_id) else {
            continue;
        };
        let json = Value::Array(ids.iter().cloned().map(Value::String).collect()).to_string();
        let found: i64 = conn
            .prepare_cached(&format!(
                "SELECT COUNT(*) FROM {} WHERE id IN (SELECT value FROM json_each(?))",
                q(&target.name)
            ))
            .and_then(|mut s| s.query_row([json], |row| row.get(0)))
            .map_err(err)?;
        if found != ids.len() as i64 {
            errs.add(&f.name, missing_relation());
        }
    }
    errs.into_result().map_err(StoreError::Validation)
}

/// The record ids relation field `name` of `r` holds.
pub(crate) fn relation_ids(r: &Record, name: &str) -> Vec<String> {
    match r.get(name) {
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => vec![],
    }
}

pub(crate) fn missing_relation() -> FieldError {
    FieldError::new(
        "validation_missing_rel_records",
        "Failed to find all relation records with the provided ids.",
    )
}

pub(crate) fn not_unique() -> FieldError {
    FieldError::new("validation_not_unique", "Value must be unique.")
}

/// A delete refused because a required relation would be left empty.
pub(crate) fn still_required() -> StoreError {
    StoreError::Forbidden(
        "Failed to delete record. Make sure that the record is not part of a required relation reference.".into(),
    )
}

/// The collection a write goes to, as the current snapshot has it; views refused.
pub(crate) fn write_target(schema: &Schema, c: &Collection) -> Result<Arc<Collection>, StoreError> {
    let c = current(schema, c)?;
    writable(&c)?;
    Ok(c)
}

/// Refuses writes to a view collection.
pub(crate) fn writable(c: &Collection) -> Result<(), StoreError> {
    if c.is_view() {
        Err(StoreError::Forbidden(
            "View collections are read-only.".into(),
        ))
    } else {
        Ok(())
    }
}

/// A text value of a record ("" when absent or not text).
pub(crate) fn text<'a>(r: &'a Record, key: &str) -> &'a str {
    r.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Maps a UNIQUE violation to `validation_not_unique` on the columns it names.
fn map_write_err(c: &Collection, e: rusqlite::Error) -> StoreError {
    let msg = e.to_string();
    if let Some(cols) = msg.split("UNIQUE constraint failed: ").nth(1) {
        let mut errs = ValidationErrors::new();
        for col in cols.split(", ") {
            let field = col.rsplit('.').next().unwrap_or(col);
            if c.field(field).is_some() {
                errs.add(field, not_unique());
            }
        }
        if !errs.is_empty() {
            return StoreError::Validation(errs);
        }
    }
    err(e)
}

fn rule_holds(
    conn: &Connection,
    schema: &Schema,
    c: &Collection,
    id: &str,
    access: &Access,
    req: &RequestInfo,
) -> Result<bool, StoreError> {
    let Access::Rule(_) = access else {
        return Ok(true);
    };
    let mut f = select_by_id(D, schema, c, id, access, req)?;
    f.sql = format!("SELECT EXISTS ({})", f.sql);
    conn.prepare_cached(&f.sql)
        .and_then(|mut s| s.query_row(params_from_iter(f.params.iter()), |r| r.get::<_, bool>(0)))
        .map_err(err)
}

/// The record's values as bound parameters, in field order.
fn encoded(c: &Collection, r: &Record) -> Vec<SqlValue> {
    c.fields
        .iter()
        .map(|f| encode_value(f, r.get(&f.name).unwrap_or(&Value::Null)))
        .collect()
}

/// Runs a write statement that ends in `RETURNING *` and decodes the row it wrote: the
/// stored record in the same step as the write, not a second statement.
fn write_returning(
    conn: &Connection,
    c: &Collection,
    sql: &str,
    values: &[SqlValue],
) -> Result<Option<Record>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(err)?;
    let positions = column_positions(c, &stmt);
    let mut rows = stmt
        .query(params_from_iter(values.iter()))
        .map_err(|e| map_write_err(c, e))?;
    let first = match rows.next().map_err(|e| map_write_err(c, e))? {
        Some(row) => Some(decode_row(c, &positions, row).map_err(err)?),
        None => None,
    };
    // Stepped to its end, so the statement is done before the next one runs.
    while rows.next().map_err(|e| map_write_err(c, e))?.is_some() {}
    Ok(first)
}

/// Inserts `r` into `c`'s table and returns the stored row.
fn insert(conn: &Connection, c: &Collection, r: &Record) -> Result<Record, StoreError> {
    write_returning(conn, c, &insert_sql(c), &encoded(c, r))?.ok_or(StoreError::NotFound)
}

/// `INSERT INTO "c" ("f1", ...) VALUES (?, ...) RETURNING *`, written into one string:
/// it is built for every create, so no string per column.
fn insert_sql(c: &Collection) -> String {
    let mut sql = String::with_capacity(48 + 24 * c.fields.len());
    sql.push_str("INSERT INTO ");
    D.push_quoted(&mut sql, &c.name);
    sql.push_str(" (");
    for (i, f) in c.fields.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        D.push_quoted(&mut sql, &f.name);
    }
    sql.push_str(") VALUES (");
    for i in 0..c.fields.len() {
        sql.push_str(if i == 0 { "?" } else { ", ?" });
    }
    sql.push_str(") RETURNING *");
    sql
}

/// Replaces the row of record `id` with `r` and returns the stored row.
fn update_row(
    conn: &Connection,
    c: &Collection,
    id: &str,
    r: &Record,
) -> Result<Record, StoreError> {
    let mut values = encoded(c, r);
    values.push(SqlValue::Text(id.to_string()));
    write_returning(conn, c, &update_sql(c), &values)?.ok_or(StoreError::NotFound)
}

/// `UPDATE "c" SET "f1" = ?, ... WHERE id = ? RETURNING *`, written into one string.
fn update_sql(c: &Collection) -> String {
    let mut sql = String::with_capacity(48 + 28 * c.fields.len());
    sql.push_str("UPDATE ");
    D.push_quoted(&mut sql, &c.name);
    sql.push_str(" SET ");
    for (i, f) in c.fields.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        D.push_quoted(&mut sql, &f.name);
        sql.push_str(" = ?");
    }
    sql.push_str(" WHERE id = ? RETURNING *");
    sql
}

fn create(
    conn: &Connection,
    schema: &Schema,
    c: &Collection,
    input: &Map<String, Value>,
    uploads: &[String],
    access: &Access,
    req: &RequestInfo,
) -> Result<Record, StoreError> {
    let r = prepare_create(c, input, uploads, &now_string()).map_err(StoreError::Validation)?;
    check_relations(conn, schema, c, &r)?;
    let id = r
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if c.is_auth() {
        auth_identity::check_auth_id_free(conn, schema, c, &id)?;
        auth_identity::check_email_free(conn, c, text(&r, "email"), &id)?;
    }
    let stored = insert(conn, c, &r)?;
    if !rule_holds(conn, schema, c, &id, access, req)? {
        return Err(StoreError::RuleFailed);
    }
    change_log::append(conn, c, &id, "create", Some(&stored))?;
    record_change(schema, c, ChangeAction::Create, &stored);
    Ok(stored)
}

fn update(
    conn: &Connection,
    schema: &Schema,
    c: &Collection,
    id: &str,
    (input, uploads): (&Map<String, Value>, &[String]),
    access: &Access,
    req: &RequestInfo,
) -> Result<Record, StoreError> {
    let existing = load(conn, schema, c, id, access, req)?.ok_or(StoreError::NotFound)?;
    let r = prepare_update(c, &existing, input, uploads, &now_string())
        .map_err(StoreError::Validation)?;
    check_relations(conn, schema, c, &r)?;
    if c.is_auth() && text(&r, "email") != text(&existing, "email") {
        auth_identity::check_email_free(conn, c, text(&r, "email"), id)?;
    }
    let stored = update_row(conn, c, id, &r)?;
    change_log::append(conn, c, id, "update", Some(&stored))?;
    record_change(schema, c, ChangeAction::Update, &stored);
    dropped_files::record_updated(c, id, &existing, &stored);
    Ok(stored)
}

/// Deletes a record and handles what points at it: cascade deletes, id removal from
/// optional relations, and a refusal when a required relation would be left empty.
/// Returns whether the record was there; when it was not, nothing changed.
pub(crate) fn delete_cascading(
    conn: &Connection,
    schema: &Schema,
    c: &Collection,
    id: &str,
) -> Result<bool, StoreError> {
    // Subscribers are told what was deleted: the statement itself returns the row as it
    // was, so a delete is one statement, not a read and a write. The row goes first, so a
    // cycle of cascading relations finds it gone and stops; a refusal below rolls the
    // whole job back anyway.
    let f = SqlFragment {
        sql: format!("DELETE FROM {} WHERE id = ? RETURNING *", q(&c.name)),
        params: vec![SqlValue::Text(id.to_string())],
    };
    let Some(before) = query_records(conn, c, &f)?.pop() else {
        return Ok(false);
    };
    change_log::append(conn, c, id, "delete", None)?;
    record_change(schema, c, ChangeAction::Delete, &before);
    dropped_files::record_deleted(c, id);
    for other in schema.collections().iter().filter(|o| !o.is_view()) {
        for f in other
            .fields
            .iter()
            .filter(|f| f.relation_target() == Some(c.id.as_str()))
        {
            let col = q(&f.name);
            let table = q(&other.name);
            let (select, remove) = if f.is_multiple() {
                (
                    format!(
                        "SELECT id FROM {table} WHERE EXISTS (SELECT 1 FROM json_each({col}) WHERE value = ?1)"
                    ),
                    format!(
                        "UPDATE {table} SET {col} = (SELECT json_group_array(value) FROM json_each({col}) WHERE value != ?1) WHERE id = ?2"
                    ),
                )
            } else {
                (
                    format!("SELECT id FROM {table} WHERE {col} = ?1"),
                    format!("UPDATE {table} SET {col} = '' WHERE id = ?2"),
                )
            };
            let refs: Vec<String> = conn
                .prepare_cached(&select)
                .and_then(|mut s| s.query_map([id], |r| r.get(0))?.collect())
                .map_err(err)?;
            let cascade = matches!(&f.kind, FieldKind::Relation(o) if o.cascade_delete);
            for rid in refs {
                if other.id == c.id && rid == id {
                    continue;
                }
                if cascade {
                    delete_cascading(conn, schema, other, &rid)?;
                    continue;
                }
                if f.is_required() {
                    let remaining: i64 = if f.is_multiple() {
                        conn.query_row(
                            &format!("SELECT COUNT(*) FROM {table}, json_each({table}.{col}) WHERE {table}.id = ?1 AND value != ?2"),
                            [&rid, id],
                            |r| r.get(0),
                        )
                        .map_err(err)?
                    } else {
                        0
                    };
                    if remaining == 0 {
                        return Err(still_required());
                    }
                }
                conn.prepare_cached(&remove)
                    .and_then(|mut s| s.execute([id, rid.as_str()]))
                    .map_err(err)?;
            }
        }
    }
    Ok(true)
}

/// A record as another store held it ([`WriteOp::Import`]).
fn import(
    conn: &Connection,
    schema: &Schema,
    c: &Collection,
    input: &Map<String, Value>,
) -> Result<Record, StoreError> {
    let r = prepare_import(c, input, &now_string()).map_err(StoreError::Validation)?;
    let id = text(&r, "id").to_string();
    if c.is_auth() {
        auth_identity::check_auth_id_free(conn, schema, c, &id)?;
        auth_identity::check_email_free(conn, c, text(&r, "email"), &id)?;
    }
    let previous = load(
        conn,
        schema,
        c,
        &id,
        &Access::Unrestricted,
        &RequestInfo::default(),
    )?;
    let (stored, action) = match &previous {
        Some(_) => (update_row(conn, c, &id, &r)?, ChangeAction::Update),
        None => (insert(conn, c, &r)?, ChangeAction::Create),
    };
    let kind = if previous.is_some() {
        "update"
    } else {
        "create"
    };
    change_log::append(conn, c, &id, kind, Some(&stored))?;
    record_change(schema, c, action, &stored);
    if let Some(existing) = &previous {
        dropped_files::record_updated(c, &id, existing, &stored);
    }
    Ok(stored)
}

fn exists(conn: &Connection, c: &Collection, id: &str) -> Result<bool, StoreError> {
    conn.prepare_cached(&format!("SELECT 1 FROM {} WHERE id = ?", q(&c.name)))
        .and_then(|mut s| s.query_row([id], |_| Ok(())))
        .optional()
        .map(|o| o.is_some())
        .map_err(err)
}

fn run_op(
    conn: &Connection,
    schema: &Schema,
    op: &WriteOp,
    req: &RequestInfo,
) -> Result<WriteResult, StoreError> {
    match op {
        WriteOp::Create {
            collection,
            input,
            access,
            uploads,
        } => {
            let c = write_target(schema, collection)?;
            create(conn, schema, &c, input, uploads, access, req).map(Some)
        }
        WriteOp::Update {
            collection,
            id,
            input,
            access,
            uploads,
        } => {
            let c = write_target(schema, collection)?;
            update(conn, schema, &c, id, (input, uploads), access, req).map(Some)
        }
        WriteOp::Upsert {
            collection,
            input,
            create_access,
            update_access,
        } => {
            let c = write_target(schema, collection)?;
            match input.get("id").and_then(Value::as_str) {
                Some(id) if exists(conn, &c, id)? => {
                    update(conn, schema, &c, id, (input, &[]), update_access, req).map(Some)
                }
                _ => create(conn, schema, &c, input, &[], create_access, req).map(Some),
            }
        }
        WriteOp::Import { collection, record } => {
            let c = write_target(schema, collection)?;
            import(conn, schema, &c, record).map(Some)
        }
        WriteOp::Delete {
            collection,
            id,
            access,
        } => {
            let c = write_target(schema, collection)?;
            // A rule is checked on the row before it goes (no row, or a rule that does
            // not hold, is a 404 either way); without one the delete itself finds the row.
            if !rule_holds(conn, schema, &c, id, access, req)? {
                return Err(StoreError::NotFound);
            }
            if !delete_cascading(conn, schema, &c, id)? {
                return Err(StoreError::NotFound);
            }
            Ok(None)
        }
    }
}

impl Sqlite {
    /// Runs `ops` in one writer transaction; see [`crate::Store::write_dropping_files`].
    pub async fn write_dropping_files(
        &self,
        ops: Vec<WriteOp>,
        req: Arc<RequestInfo>,
    ) -> Result<(Vec<WriteResult>, Vec<DroppedFiles>), StoreError> {
        self.write_job(move |conn, schema| {
            dropped_files::reset();
            let single = ops.len() == 1;
            let mut out = Vec::with_capacity(ops.len());
            for (index, op) in ops.iter().enumerate() {
                match run_op(conn, schema, op, &req) {
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
            Ok(((out, dropped_files::take()), None))
        })
        .await
    }

    pub async fn list_records(&self, q: ListQuery) -> Result<RecordPage, StoreError> {
        let page = self
            .list_rows(q, Vec::new(), |items, row| {
                items.push(row.record()?);
                Ok(())
            })
            .await?;
        Ok(RecordPage {
            items: page.rows,
            total_items: page.total_items,
        })
    }

    pub async fn get_record(
        &self,
        collection: &Arc<Collection>,
        id: &str,
        access: Access,
        req: Arc<RequestInfo>,
    ) -> Result<Option<Record>, StoreError> {
        let (c, id) = (collection.clone(), id.to_string());
        let point = matches!(access, Access::Unrestricted);
        let read =
            move |conn: &Connection, schema: &Schema| load(conn, schema, &c, &id, &access, &req);
        if point {
            self.read_point(read).await
        } else {
            self.read(read).await
        }
    }

    /// Relation values of `collection` naming records that do not exist: (record id,
    /// field name), at most `limit` of them.
    pub async fn dangling_relations(
        &self,
        collection: &Arc<Collection>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let c = collection.clone();
        self.read(move |conn: &Connection, schema: &Schema| {
            let mut out = Vec::new();
            for f in &c.fields {
                let Some(target) = f.relation_target().and_then(|t| schema.by_id(t)) else {
                    continue;
                };
                let (table, col, target) = (q(&c.name), q(&f.name), q(&target.name));
                let sql = if f.is_multiple() {
                    format!(
                        "SELECT DISTINCT {table}.id FROM {table}, json_each({table}.{col}) AS j \
                         WHERE j.value NOT IN (SELECT id FROM {target}) LIMIT {limit}"
                    )
                } else {
                    format!(
                        "SELECT id FROM {table} WHERE {col} != '' \
                         AND {col} NOT IN (SELECT id FROM {target}) LIMIT {limit}"
                    )
                };
                let ids: Vec<String> = conn
                    .prepare(&sql)
                    .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                    .map_err(err)?;
                out.extend(ids.into_iter().map(|id| (id, f.name.clone())));
            }
            out.truncate(limit);
            Ok(out)
        })
        .await
    }

    /// The records with `ids` that `access` lets the requester see, in `ids` order.
    pub async fn get_records(
        &self,
        collection: &Arc<Collection>,
        ids: Vec<String>,
        access: Access,
        req: Arc<RequestInfo>,
    ) -> Result<Vec<Record>, StoreError> {
        let c = collection.clone();
        // Without a rule and for a page's worth of ids, this is a few primary-key lookups:
        // a point read.
        let point = matches!(access, Access::Unrestricted) && ids.len() <= 64;
        let read = move |conn: &Connection, schema: &Schema| {
            let json = Value::Array(ids.iter().cloned().map(Value::String).collect()).to_string();
            let mut f = SqlFragment::new(format!(
                "SELECT \"__root\".* FROM {} \"__root\" WHERE \"__root\".\"id\" IN (SELECT value FROM json_each(?))",
                q(&c.name)
            ));
            f.params.push(SqlValue::Text(json));
            if let Access::Rule(rule) = &access {
                f.push_str(" AND ");
                f.push(compile_condition(
                    D,
                    schema,
                    &c,
                    rule,
                    &req,
                    Author::Server,
                )?);
            }
            let mut found = query_records(conn, &c, &f)?;
            found.sort_by_key(|r| {
                let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
                ids.iter().position(|x| x == id).unwrap_or(usize::MAX)
            });
            Ok(found)
        };
        if point {
            self.read_point(read).await
        } else {
            self.read(read).await
        }
    }

    /// An auth record by an identity field (email matched case-insensitively), with
    /// hidden fields included.
    pub async fn find_auth_record(
        &self,
        collection: &Arc<Collection>,
        field: &str,
        value: &str,
    ) -> Result<Option<Record>, StoreError> {
        let (c, field, value) = (collection.clone(), field.to_string(), value.to_string());
        self.read(move |conn, _| {
            let f = c.field(&field).ok_or_else(|| {
                StoreError::InvalidQuery(format!("unknown identity field {field:?}"))
            })?;
            let col = q(&f.name);
            // Emails match without case (through the collection's NOCASE index); where
            // older data holds several spellings, the exact one wins.
            let cond = if matches!(f.kind, FieldKind::Email(_)) {
                format!("{col} = ?1 COLLATE NOCASE AND {col} != '' ORDER BY {col} = ?1 DESC")
            } else {
                format!("{col} = ?1")
            };
            let sql = SqlFragment {
                sql: format!("SELECT * FROM {} WHERE {cond} LIMIT 1", q(&c.name)),
                params: vec![SqlValue::Text(value)],
            };
            Ok(query_records(conn, &c, &sql)?.into_iter().next())
        })
        .await
    }
}
