//! Collection changes on PostgreSQL: each is one transaction (DDL is transactional there)
//! that alters the table without losing data, rewrites the collection document and, once
//! committed, swaps this node's snapshot. The schema advisory lock orders them across
//! nodes; this node's record writes wait for them (see `Inner::schema_lock`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use basalt_schema::collection_validate::validate;
use basalt_schema::error::FieldError;
use basalt_schema::value::now_string;
use basalt_schema::{Collection, Field, FieldKind, Schema, ValidationErrors};
use deadpool_postgres::Transaction;

use super::{Postgres, SCHEMA_LOCK, pg_err, system};
use crate::collections::{
    check_deletable, import_errors, import_target, missing_from, with_collection,
    without_collection,
};
use crate::pg_schema::{check_supported, column_def, create_table, index_statements};
use crate::{DroppedFiles, StoreError, dropped_files};

fn q(ident: &str) -> String {
    crate::sql::Dialect::Postgres.quote(ident)
}

fn invalid_index(e: tokio_postgres::Error) -> StoreError {
    let why = e
        .as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_string());
    StoreError::Validation(ValidationErrors::single(
        "indexes",
        FieldError::new(
            "validation_invalid_index_expression",
            format!("Invalid index: {why}."),
        ),
    ))
}

/// Refuses a table name another relation of the schema already has (a table, view,
/// index or sequence that is no collection's), compared without case as collection names
/// are. `own` is the collection's current table, which a rename may keep.
async fn check_name_free(
    tx: &Transaction<'_>,
    name: &str,
    own: Option<&str>,
) -> Result<(), StoreError> {
    let taken = tx
        .query(
            "SELECT relname::text FROM pg_class \
             WHERE relnamespace = current_schema()::regnamespace AND lower(relname) = lower($1)",
            &[&name],
        )
        .await
        .map_err(pg_err)?;
    if taken
        .iter()
        .any(|r| own.is_none_or(|o| o != r.get::<_, &str>(0)))
    {
        return Err(StoreError::Validation(ValidationErrors::single(
            "name",
            basalt_schema::collection_validate::reserved_name(),
        )));
    }
    Ok(())
}

async fn run_create(tx: &Transaction<'_>, c: &Collection) -> Result<(), StoreError> {
    for (i, stmt) in create_table(c)?.iter().enumerate() {
        // After the CREATE TABLE come the indexes: PostgreSQL refusing one is the
        // superuser's index expression, a 400.
        tx.batch_execute(stmt).await.map_err(|e| match i {
            0 => pg_err(e),
            _ => invalid_index(e),
        })?;
    }
    Ok(())
}

async fn apply_create(
    tx: &Transaction<'_>,
    schema: &Schema,
    c: Collection,
) -> Result<(Collection, Schema), StoreError> {
    let c = validate(c, None, schema, &now_string()).map_err(StoreError::Validation)?;
    // A name that is taken is told first, as on SQLite, whatever the collection's type.
    check_name_free(tx, &c.name, None).await?;
    check_supported(&c)?;
    run_create(tx, &c).await?;
    system::save_collection(tx, &c).await?;
    let next = with_collection(schema, c.clone());
    Ok((c, next))
}

async fn apply_update(
    tx: &Transaction<'_>,
    schema: &Schema,
    old: &Collection,
    c: Collection,
    dropped: &mut Vec<DroppedFiles>,
) -> Result<(Collection, Schema), StoreError> {
    let c = validate(c, Some(old), schema, &now_string()).map_err(StoreError::Validation)?;
    check_supported(&c)?;
    if c.name != old.name {
        check_name_free(tx, &c.name, Some(&old.name)).await?;
    }
    migrate_table(tx, old, &c, dropped).await?;
    system::save_collection(tx, &c).await?;
    let next = with_collection(schema, c.clone());
    Ok((c, next))
}

async fn apply_delete(
    tx: &Transaction<'_>,
    schema: &Schema,
    c: &Collection,
) -> Result<Schema, StoreError> {
    check_deletable(schema, c)?;
    tx.batch_execute(&format!("DROP TABLE IF EXISTS {}", q(&c.name)))
        .await
        .map_err(pg_err)?;
    tx.execute("DELETE FROM _collections WHERE id = $1", &[&c.id])
        .await
        .map_err(pg_err)?;
    Ok(without_collection(schema, &c.id))
}

/// Drops the indexes of `table` that back no constraint (the collection's own and the
/// email index; the primary key and `_rowid`'s stay).
async fn drop_indexes(tx: &Transaction<'_>, table: &str) -> Result<(), StoreError> {
    let names = tx
        .query(
            "SELECT i.relname::text FROM pg_index x \
             JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
             WHERE t.relname = $1 AND t.relnamespace = current_schema()::regnamespace \
             AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)",
            &[&table],
        )
        .await
        .map_err(pg_err)?;
    for n in names {
        tx.batch_execute(&format!("DROP INDEX {}", q(n.get::<_, &str>(0))))
            .await
            .map_err(pg_err)?;
    }
    Ok(())
}

/// A column of `from`'s storage as SQLite's `CAST(... AS TEXT)` reads it.
fn as_text(col: &str, from: &Field) -> String {
    match &from.kind {
        FieldKind::Number(_) => format!("basalt_numtext({col})"),
        FieldKind::Bool(_) => format!("(CASE WHEN {col} THEN '1' ELSE '0' END)"),
        FieldKind::Json(_) | FieldKind::GeoPoint(_) => format!("basalt_text({col})"),
        _ if from.is_multiple() => format!("basalt_text({col})"),
        _ => col.to_string(),
    }
}

/// SQL converting column `col` stored as `from` into `to`'s storage, as SQLite's
/// conversion in `collections::conversion` does: a single value becomes a one-item array,
/// an array its last item, numbers their leading numeric text, booleans `'1'`/`'true'`.
fn conversion(col: &str, from: &Field, to: &Field) -> String {
    let single_from_multi = from.is_multiple() && !to.is_multiple();
    let text = if single_from_multi {
        format!("basalt_text({col} -> -1)")
    } else {
        as_text(col, from)
    };
    match &to.kind {
        _ if to.is_multiple() && !from.is_multiple() => {
            let item = match &from.kind {
                FieldKind::Number(_) => col.to_string(),
                _ => text.clone(),
            };
            format!(
                "CASE WHEN {col} IS NULL OR {text} = '' THEN '[]'::jsonb ELSE jsonb_build_array({item}) END"
            )
        }
        FieldKind::Number(_) => format!(
            "COALESCE(substring({text} from '^\\s*([+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][+-]?[0-9]{{1,2}})?)')::double precision, 0)"
        ),
        FieldKind::Bool(_) => format!("COALESCE({text} IN ('1', 'true'), FALSE)"),
        FieldKind::Json(_) => format!("basalt_jsonb({text})"),
        // As on SQLite: a field turned into a geoPoint starts at the blank point.
        FieldKind::GeoPoint(_) => "'{\"lon\":0,\"lat\":0}'::jsonb".to_string(),
        _ => format!("COALESCE({text}, '')"),
    }
}

/// Alters `old`'s table into `new`'s shape, keeping every value that survives; the
/// names a removed file field held go to `dropped`.
async fn migrate_table(
    tx: &Transaction<'_>,
    old: &Collection,
    new: &Collection,
    dropped: &mut Vec<DroppedFiles>,
) -> Result<(), StoreError> {
    let exec = |sql: String| async move { tx.batch_execute(&sql).await.map_err(pg_err) };
    if old.name != new.name {
        exec(format!(
            "ALTER TABLE {} RENAME TO {}",
            q(&old.name),
            q(&new.name)
        ))
        .await?;
    }
    let t = q(&new.name);
    drop_indexes(tx, &new.name).await?;
    for of in &old.fields {
        if new.fields.iter().any(|nf| nf.id == of.id) {
            continue;
        }
        if matches!(of.kind, FieldKind::File(_)) {
            let rows = tx
                .query(
                    &format!("SELECT id, to_jsonb({}) FROM {t}", q(&of.name)),
                    &[],
                )
                .await
                .map_err(pg_err)?;
            for r in rows {
                let value: Option<serde_json::Value> = r.get(1);
                let names = dropped_files::names_in(value.as_ref());
                dropped.extend(dropped_files::removed_field(new, r.get(0), names));
            }
        }
        exec(format!("ALTER TABLE {t} DROP COLUMN {}", q(&of.name))).await?;
    }
    for nf in &new.fields {
        let Some(of) = old.fields.iter().find(|of| of.id == nf.id) else {
            exec(format!(
                "ALTER TABLE {t} ADD COLUMN {} {}",
                q(&nf.name),
                column_def(nf)
            ))
            .await?;
            continue;
        };
        if of.name != nf.name {
            exec(format!(
                "ALTER TABLE {t} RENAME COLUMN {} TO {}",
                q(&of.name),
                q(&nf.name)
            ))
            .await?;
        }
        if column_def(of) != column_def(nf) || of.is_multiple() != nf.is_multiple() {
            let tmp = q(&format!("__tmp_{}", nf.name));
            let col = q(&nf.name);
            exec(format!(
                "ALTER TABLE {t} ADD COLUMN {tmp} {def};
                 UPDATE {t} SET {tmp} = {conv};
                 ALTER TABLE {t} DROP COLUMN {col};
                 ALTER TABLE {t} RENAME COLUMN {tmp} TO {col};",
                def = column_def(nf),
                conv = conversion(&col, of, nf),
            ))
            .await?;
        }
    }
    for stmt in index_statements(new)? {
        tx.batch_execute(&stmt).await.map_err(invalid_index)?;
    }
    Ok(())
}

/// A schema change's work in its transaction: its answer and the schema it leaves. Boxed
/// and `Send`, so the callers' futures are (an `AsyncFnOnce`'s future is not known to be).
type Step<'t, T> =
    Pin<Box<dyn Future<Output = Result<(T, Option<Schema>), StoreError>> + Send + 't>>;

impl Postgres {
    /// Runs `change` in one transaction holding the schema locks (this node's and the
    /// deployment's advisory one) and publishes the schema it returns once committed.
    async fn change_schema<T>(
        &self,
        change: impl for<'t> FnOnce(&'t Transaction<'t>, Arc<Schema>) -> Step<'t, T>,
    ) -> Result<T, StoreError> {
        let _alone = self.inner.schema_lock.write().await;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await
            .map_err(pg_err)?;
        // Another node may have changed the schema since this one loaded it.
        let schema = Arc::new(system::load_schema(&tx).await?);
        let (out, next) = change(&tx, schema).await?;
        if next.is_some() {
            // Delivered at commit: every node reloads its snapshot (`listen`).
            tx.execute(
                "SELECT pg_notify($1, '')",
                &[&super::listen::SCHEMA_CHANNEL],
            )
            .await
            .map_err(pg_err)?;
        }
        tx.commit().await.map_err(|e| match pg_err(e) {
            StoreError::Unavailable(why) => StoreError::OutcomeUnknown(why),
            other => other,
        })?;
        // A statement prepared before reads the table's old columns: PostgreSQL refuses
        // to run it ("cached plan must not change result type"), so every connection
        // prepares afresh.
        self.inner.pool.manager().statement_caches.clear();
        if let Some(next) = next {
            self.inner.schema.store(Arc::new(next));
        }
        Ok(out)
    }

    pub(crate) async fn create_collection(
        &self,
        c: Collection,
    ) -> Result<Arc<Collection>, StoreError> {
        self.change_schema(move |tx, schema| {
            Box::pin(async move {
                let (c, next) = apply_create(tx, &schema, c).await?;
                Ok((Arc::new(c), Some(next)))
            })
        })
        .await
    }

    pub(crate) async fn update_collection_dropping_files(
        &self,
        id_or_name: &str,
        c: Collection,
    ) -> Result<(Arc<Collection>, Vec<DroppedFiles>), StoreError> {
        let key = id_or_name.to_string();
        self.change_schema(move |tx, schema| {
            Box::pin(async move {
                let old = schema.find(&key).cloned().ok_or(StoreError::NotFound)?;
                let mut dropped = Vec::new();
                let (c, next) = apply_update(tx, &schema, &old, c, &mut dropped).await?;
                Ok(((Arc::new(c), dropped), Some(next)))
            })
        })
        .await
    }

    pub(crate) async fn delete_collection(
        &self,
        id_or_name: &str,
    ) -> Result<Vec<DroppedFiles>, StoreError> {
        let key = id_or_name.to_string();
        self.change_schema(move |tx, schema| {
            Box::pin(async move {
                let c = schema.find(&key).cloned().ok_or(StoreError::NotFound)?;
                let next = apply_delete(tx, &schema, &c).await?;
                let mut dropped = Vec::new();
                dropped_files::emptied_into(&mut dropped, &c);
                Ok((dropped, Some(next)))
            })
        })
        .await
    }

    pub(crate) async fn import_collections(
        &self,
        cols: Vec<Collection>,
        delete_missing: bool,
    ) -> Result<Vec<DroppedFiles>, StoreError> {
        self.change_schema(move |tx, schema| {
            Box::pin(async move {
                let mut current: Schema = (*schema).clone();
                let mut errors = ValidationErrors::new();
                let mut dropped = Vec::new();
                for (i, c) in cols.iter().enumerate() {
                    let res = match import_target(&current, c) {
                        Some(old) => {
                            apply_update(tx, &current, &old, c.clone(), &mut dropped).await
                        }
                        None => apply_create(tx, &current, c.clone()).await,
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
                        current = apply_delete(tx, &current, &c).await?;
                        dropped_files::emptied_into(&mut dropped, &c);
                    }
                }
                Ok((dropped, Some(current)))
            })
        })
        .await
    }
}
