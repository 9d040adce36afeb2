//! Collection changes as migrations: each runs in one writer transaction that alters the
//! table (never losing data), rewrites the collection document and swaps the snapshot.

use std::sync::Arc;

use basalt_schema::collection_validate::validate;
use basalt_schema::error::FieldError;
use basalt_schema::value::now_string;
use basalt_schema::{Collection, CollectionType, Field, FieldKind, Schema, ValidationErrors};
use rusqlite::Connection;

use crate::StoreError;
use crate::codec::column_def;
use crate::engine::Sqlite;

fn err(e: rusqlite::Error) -> StoreError {
    crate::health::db_err(e)
}

fn q(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn invalid(key: &str, code: &str, msg: &str) -> StoreError {
    StoreError::Validation(ValidationErrors::single(key, FieldError::new(code, msg)))
}

/// An index statement a superuser may declare: one `CREATE [UNIQUE] INDEX` statement.
fn check_index(sql: &str) -> Result<(), StoreError> {
    let upper = sql.trim_start().to_ascii_uppercase();
    let ok = (upper.starts_with("CREATE INDEX") || upper.starts_with("CREATE UNIQUE INDEX"))
        && !sql.contains(';');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "indexes",
            "validation_invalid_index_expression",
            "Invalid index expression.",
        ))
    }
}

/// A view's query: a single SELECT statement.
fn check_view_query(sql: &str) -> Result<(), StoreError> {
    let upper = sql.trim_start().to_ascii_uppercase();
    if (upper.starts_with("SELECT") || upper.starts_with("WITH"))
        && !sql.trim_end().trim_end_matches(';').contains(';')
    {
        Ok(())
    } else {
        Err(invalid(
            "viewQuery",
            "validation_invalid_view_query",
            "The view query must be a single SELECT statement.",
        ))
    }
}

pub(crate) fn create_table(conn: &Connection, c: &Collection) -> Result<(), StoreError> {
    if c.kind == CollectionType::View {
        let query = c
            .view_query
            .as_deref()
            .unwrap_or_default()
            .trim()
            .trim_end_matches(';');
        check_view_query(query)?;
        conn.execute_batch(&format!("CREATE VIEW {} AS {query}", q(&c.name)))
            .map_err(|e| {
                invalid(
                    "viewQuery",
                    "validation_invalid_view_query",
                    &format!("Invalid view query: {e}."),
                )
            })?;
        return Ok(());
    }
    let cols: Vec<String> = c
        .fields
        .iter()
        .map(|f| format!("{} {}", q(&f.name), column_def(f)))
        .collect();
    conn.execute_batch(&format!(
        "CREATE TABLE {} ({})",
        q(&c.name),
        cols.join(", ")
    ))
    .map_err(err)?;
    create_indexes(conn, c)?;
    crate::auth_identity::ensure_email_index(conn, c)
}

fn create_indexes(conn: &Connection, c: &Collection) -> Result<(), StoreError> {
    for idx in &c.indexes {
        check_index(idx)?;
        conn.execute_batch(idx).map_err(|e| {
            invalid(
                "indexes",
                "validation_invalid_index_expression",
                &format!("Invalid index: {e}."),
            )
        })?;
    }
    Ok(())
}

fn drop_indexes(conn: &Connection, table: &str) -> Result<(), StoreError> {
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL")
        .and_then(|mut s| s.query_map([table], |r| r.get(0))?.collect())
        .map_err(err)?;
    for n in names {
        conn.execute_batch(&format!("DROP INDEX {}", q(&n)))
            .map_err(err)?;
    }
    Ok(())
}

/// Whether two field definitions store values differently (needs a data conversion).
fn storage_changed(a: &Field, b: &Field) -> bool {
    column_def(a) != column_def(b) || a.is_multiple() != b.is_multiple()
}

/// SQL converting a column `col` stored as `from` into `to`'s storage.
fn conversion(col: &str, from: &Field, to: &Field) -> String {
    match (&to.kind, from.is_multiple(), to.is_multiple()) {
        // A field turned into a geoPoint starts at the blank point (both backends).
        (FieldKind::GeoPoint(_), _, _) => "'{\"lon\":0,\"lat\":0}'".to_string(),
        (_, false, true) => {
            format!("CASE WHEN {col} IS NULL OR {col} = '' THEN '[]' ELSE json_array({col}) END")
        }
        (_, true, false) => format!("COALESCE(json_extract({col}, '$[#-1]'), '')"),
        (FieldKind::Number(_), _, _) => format!("COALESCE(CAST({col} AS NUMERIC), 0)"),
        (FieldKind::Bool(_), _, _) => {
            format!("CASE WHEN {col} IN (1, '1', 'true') THEN 1 ELSE 0 END")
        }
        (FieldKind::Json(_), _, _) => {
            format!("CASE WHEN json_valid({col}) THEN {col} ELSE json_quote({col}) END")
        }
        _ => format!("COALESCE(CAST({col} AS TEXT), '')"),
    }
}

/// Alters `old`'s table into `new`'s shape, keeping every value that survives.
/// The names a file field about to be dropped holds, noted for deletion after commit.
fn note_removed_files(
    conn: &Connection,
    c: &Collection,
    table: &str,
    field: &str,
) -> Result<(), StoreError> {
    let col = q(field);
    let mut st = conn
        .prepare(&format!(
            "SELECT id, {col} FROM {table} WHERE {col} IS NOT NULL AND {col} NOT IN ('', '[]')"
        ))
        .map_err(err)?;
    let rows = st
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })
        .map_err(err)?;
    for row in rows {
        let (id, raw) = row.map_err(err)?;
        let raw = raw.unwrap_or_default();
        let value = serde_json::from_str::<serde_json::Value>(&raw)
            .unwrap_or(serde_json::Value::String(raw));
        crate::dropped_files::field_removed(c, &id, crate::dropped_files::names_in(Some(&value)));
    }
    Ok(())
}

pub(crate) fn migrate_table(
    conn: &Connection,
    old: &Collection,
    new: &Collection,
) -> Result<(), StoreError> {
    if new.kind == CollectionType::View {
        conn.execute_batch(&format!("DROP VIEW IF EXISTS {}", q(&old.name)))
            .map_err(err)?;
        return create_table(conn, new);
    }
    if old.name != new.name {
        // SQLite refuses a rename to its own name in another case: go through a
        // temporary name then.
        let from = if old.name.eq_ignore_ascii_case(&new.name) {
            let tmp = format!("_basalt_rename_{}", new.id);
            conn.execute_batch(&format!(
                "ALTER TABLE {} RENAME TO {}",
                q(&old.name),
                q(&tmp)
            ))
            .map_err(err)?;
            tmp
        } else {
            old.name.clone()
        };
        conn.execute_batch(&format!(
            "ALTER TABLE {} RENAME TO {}",
            q(&from),
            q(&new.name)
        ))
        .map_err(err)?;
    }
    let t = q(&new.name);
    drop_indexes(conn, &new.name)?;
    for of in &old.fields {
        if !new.fields.iter().any(|nf| nf.id == of.id) {
            if matches!(of.kind, FieldKind::File(_)) {
                note_removed_files(conn, new, &t, &of.name)?;
            }
            conn.execute_batch(&format!("ALTER TABLE {t} DROP COLUMN {}", q(&of.name)))
                .map_err(err)?;
        }
    }
    for nf in &new.fields {
        match old.fields.iter().find(|of| of.id == nf.id) {
            None => {
                conn.execute_batch(&format!(
                    "ALTER TABLE {t} ADD COLUMN {} {}",
                    q(&nf.name),
                    column_def(nf)
                ))
                .map_err(err)?;
            }
            Some(of) => {
                if of.name != nf.name {
                    conn.execute_batch(&format!(
                        "ALTER TABLE {t} RENAME COLUMN {} TO {}",
                        q(&of.name),
                        q(&nf.name)
                    ))
                    .map_err(err)?;
                }
                if storage_changed(of, nf) {
                    let tmp = q(&format!("__tmp_{}", nf.name));
                    let col = q(&nf.name);
                    conn.execute_batch(&format!(
                        "ALTER TABLE {t} ADD COLUMN {tmp} {def};
                         UPDATE {t} SET {tmp} = {conv};
                         ALTER TABLE {t} DROP COLUMN {col};
                         ALTER TABLE {t} RENAME COLUMN {tmp} TO {col};",
                        def = column_def(nf),
                        conv = conversion(&col, of, nf),
                    ))
                    .map_err(err)?;
                }
            }
        }
    }
    create_indexes(conn, new)?;
    crate::auth_identity::ensure_email_index(conn, new)
}

pub(crate) fn with_collection(schema: &Schema, c: Collection) -> Schema {
    let mut all: Vec<Collection> = schema
        .collections()
        .iter()
        .filter(|x| x.id != c.id)
        .map(|x| (**x).clone())
        .collect();
    all.push(c);
    Schema::new(all)
}

pub(crate) fn without_collection(schema: &Schema, id: &str) -> Schema {
    Schema::new(
        schema
            .collections()
            .iter()
            .filter(|x| x.id != id)
            .map(|x| (**x).clone())
            .collect(),
    )
}

/// Relation fields elsewhere that point at `id`.
pub(crate) fn referrers<'a>(schema: &'a Schema, id: &str) -> Vec<(&'a Arc<Collection>, &'a Field)> {
    schema
        .collections()
        .iter()
        .flat_map(|c| c.fields.iter().map(move |f| (c, f)))
        .filter(|(c, f)| c.id != id && f.relation_target() == Some(id))
        .collect()
}

/// Refuses a table name that another database object (an index, a trigger, a table or
/// view that is no collection's) already has: SQLite shares one namespace among them,
/// case-insensitively. `own` is the collection's current table, which a rename may keep.
fn check_name_free(conn: &Connection, name: &str, own: Option<&str>) -> Result<(), StoreError> {
    let taken: Vec<String> = conn
        .prepare_cached("SELECT name FROM sqlite_master WHERE name = ?1 COLLATE NOCASE")
        .and_then(|mut s| s.query_map([name], |r| r.get(0))?.collect())
        .map_err(err)?;
    if taken.iter().any(|t| own.is_none_or(|o| o != t)) {
        return Err(StoreError::Validation(ValidationErrors::single(
            "name",
            basalt_schema::collection_validate::reserved_name(),
        )));
    }
    Ok(())
}

fn apply_create(
    conn: &Connection,
    schema: &Schema,
    c: Collection,
) -> Result<(Collection, Schema), StoreError> {
    let c = validate(c, None, schema, &now_string()).map_err(StoreError::Validation)?;
    check_name_free(conn, &c.name, None)?;
    let c = if c.kind == CollectionType::View {
        infer_view_fields(conn, c)?
    } else {
        c
    };
    create_table(conn, &c)?;
    crate::system::save_collection(conn, &c)?;
    let next = with_collection(schema, c.clone());
    Ok((c, next))
}

fn apply_update(
    conn: &Connection,
    schema: &Schema,
    old: &Collection,
    c: Collection,
) -> Result<(Collection, Schema), StoreError> {
    let c = validate(c, Some(old), schema, &now_string()).map_err(StoreError::Validation)?;
    if c.name != old.name {
        check_name_free(conn, &c.name, Some(&old.name))?;
    }
    let c = if c.kind == CollectionType::View {
        infer_view_fields(conn, c)?
    } else {
        c
    };
    migrate_table(conn, old, &c)?;
    crate::system::save_collection(conn, &c)?;
    let next = with_collection(schema, c.clone());
    Ok((c, next))
}

/// Refuses to delete a system collection or one a relation elsewhere points at.
pub(crate) fn check_deletable(schema: &Schema, c: &Collection) -> Result<(), StoreError> {
    if c.system {
        return Err(StoreError::Forbidden(
            "System collections cannot be deleted.".into(),
        ));
    }
    if !referrers(schema, &c.id).is_empty() {
        return Err(StoreError::Forbidden(
            "Failed to delete collection due to existing dependency.".into(),
        ));
    }
    Ok(())
}

/// The non-system collections of `current` that an import with `delete_missing` removes:
/// those `listed` names neither by id nor by name.
pub(crate) fn missing_from(current: &Schema, listed: &[Collection]) -> Vec<Arc<Collection>> {
    let named = |c: &Collection| {
        listed
            .iter()
            .any(|x| x.id == c.id || x.name.eq_ignore_ascii_case(&c.name))
    };
    current
        .collections()
        .iter()
        .filter(|c| !c.system && !named(c))
        .cloned()
        .collect()
}

/// The collection an imported document updates: the one with its id, else its name.
pub(crate) fn import_target(current: &Schema, c: &Collection) -> Option<Arc<Collection>> {
    (!c.id.is_empty())
        .then(|| current.by_id(&c.id).cloned())
        .flatten()
        .or_else(|| current.by_name(&c.name).cloned())
}

/// Wraps the per-collection validation errors of an import as PocketBase answers them.
pub(crate) fn import_errors(errors: ValidationErrors) -> StoreError {
    let mut top = ValidationErrors::new();
    top.add_nested("collections", errors);
    StoreError::Validation(top)
}

fn apply_delete(conn: &Connection, schema: &Schema, c: &Collection) -> Result<Schema, StoreError> {
    check_deletable(schema, c)?;
    let kind = if c.kind == CollectionType::View {
        "VIEW"
    } else {
        "TABLE"
    };
    conn.execute_batch(&format!("DROP {kind} IF EXISTS {}", q(&c.name)))
        .map_err(err)?;
    conn.execute("DELETE FROM _collections WHERE id = ?", [&c.id])
        .map_err(err)?;
    crate::dropped_files::collection_emptied(c);
    Ok(without_collection(schema, &c.id))
}

/// A view's fields are its columns: `id` as text, the rest as json.
fn infer_view_fields(conn: &Connection, mut c: Collection) -> Result<Collection, StoreError> {
    let query = c.view_query.clone().unwrap_or_default();
    check_view_query(&query)?;
    let stmt = conn
        .prepare(&format!(
            "SELECT * FROM ({}) LIMIT 0",
            query.trim().trim_end_matches(';')
        ))
        .map_err(|e| {
            invalid(
                "viewQuery",
                "validation_invalid_view_query",
                &format!("Invalid view query: {e}."),
            )
        })?;
    let names: Vec<String> = stmt
        .column_names()
        .into_iter()
        .map(str::to_string)
        .collect();
    if !names.iter().any(|n| n == "id") {
        return Err(invalid(
            "viewQuery",
            "validation_invalid_view_query",
            "The view query must select an id column.",
        ));
    }
    let previous = c.fields.clone();
    c.fields = names
        .iter()
        .map(|n| {
            previous
                .iter()
                .find(|f| &f.name == n)
                .cloned()
                .unwrap_or_else(|| {
                    let kind = if n == "id" {
                        FieldKind::Text(Default::default())
                    } else {
                        FieldKind::Json(Default::default())
                    };
                    let mut f = Field {
                        id: String::new(),
                        name: n.clone(),
                        system: false,
                        hidden: false,
                        presentable: false,
                        help: String::new(),
                        kind,
                    };
                    f.id = format!(
                        "{}{}",
                        f.type_name(),
                        basalt_schema::collection_validate::crc32(n.as_bytes())
                    );
                    f
                })
        })
        .collect();
    Ok(c)
}

impl Sqlite {
    pub async fn create_collection(&self, c: Collection) -> Result<Arc<Collection>, StoreError> {
        self.write_job(move |conn, schema| {
            let (c, next) = apply_create(conn, schema, c)?;
            Ok((Arc::new(c), Some(next)))
        })
        .await
    }

    /// See [`crate::Store::update_collection_dropping_files`].
    pub async fn update_collection_dropping_files(
        &self,
        id_or_name: &str,
        c: Collection,
    ) -> Result<(Arc<Collection>, Vec<crate::DroppedFiles>), StoreError> {
        let key = id_or_name.to_string();
        self.write_job(move |conn, schema| {
            crate::dropped_files::reset();
            let old = schema.find(&key).cloned().ok_or(StoreError::NotFound)?;
            let (c, next) = apply_update(conn, schema, &old, c)?;
            Ok(((Arc::new(c), crate::dropped_files::take()), Some(next)))
        })
        .await
    }

    /// Deletes a collection; answers the stored files it left without a record (all of
    /// the collection's), for the caller to delete now that the change committed.
    pub async fn delete_collection(
        &self,
        id_or_name: &str,
    ) -> Result<Vec<crate::DroppedFiles>, StoreError> {
        let key = id_or_name.to_string();
        self.write_job(move |conn, schema| {
            crate::dropped_files::reset();
            let c = schema.find(&key).cloned().ok_or(StoreError::NotFound)?;
            let next = apply_delete(conn, schema, &c)?;
            Ok((crate::dropped_files::take(), Some(next)))
        })
        .await
    }

    /// Deletes every record (cascading to relations as single deletes would); answers
    /// the stored files left without a record: the collection's and those of records
    /// the cascades deleted in other collections.
    pub async fn truncate_collection(
        &self,
        id_or_name: &str,
    ) -> Result<Vec<crate::DroppedFiles>, StoreError> {
        let key = id_or_name.to_string();
        self.write_job(move |conn, schema| {
            crate::dropped_files::reset();
            let c = schema.find(&key).cloned().ok_or(StoreError::NotFound)?;
            if c.is_view() {
                return Err(StoreError::Forbidden(
                    "View collections cannot be truncated.".into(),
                ));
            }
            let ids: Vec<String> = conn
                .prepare(&format!("SELECT id FROM {}", q(&c.name)))
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .map_err(err)?;
            for id in ids {
                crate::records::delete_cascading(conn, schema, &c, &id)?;
            }
            crate::dropped_files::collection_emptied(&c);
            Ok((crate::dropped_files::take(), None))
        })
        .await
    }

    /// Creates or updates every given collection (matched by id, then name) in one
    /// transaction; with `delete_missing`, deletes the non-system ones not listed.
    /// Answers the stored files of the file fields and collections it removed, for the
    /// caller to delete now that the change committed.
    pub async fn import_collections(
        &self,
        cols: Vec<Collection>,
        delete_missing: bool,
    ) -> Result<Vec<crate::DroppedFiles>, StoreError> {
        self.write_job(move |conn, schema| {
            crate::dropped_files::reset();
            let mut current: Schema = (**schema).clone();
            let mut errors = ValidationErrors::new();
            for (i, c) in cols.iter().enumerate() {
                let res = match import_target(&current, c) {
                    Some(old) => apply_update(conn, &current, &old, c.clone()),
                    None => apply_create(conn, &current, c.clone()),
                };
                match res {
                    Ok((_, next)) => current = next,
                    Err(StoreError::Validation(e)) => errors.add_nested(i.to_string(), e),
                    Err(e) => return Err(e),
                }
            }
            if !errors.is_empty() {
                return Err(import_errors(errors));
            }
            if delete_missing {
                for c in missing_from(&current, &cols) {
                    current = apply_delete(conn, &current, &c)?;
                }
            }
            Ok((crate::dropped_files::take(), Some(current)))
        })
        .await
    }
}
