//! Reading a PocketBase (v0.23+) `data.db` for `basalt import pocketbase`: opened
//! read-only, its collection documents (`_collections`), params (`_params`) and each
//! table's rows a page at a time, in id order, as JSON values of SQLite's storage
//! classes (the importer gives them their fields' shapes). Nothing here writes to it.

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde_json::{Map, Value};

use crate::StoreError;

/// A PocketBase database, open read-only.
pub struct PocketBaseDb {
    conn: Connection,
}

fn err(e: rusqlite::Error) -> StoreError {
    StoreError::Internal(format!("reading the PocketBase database: {e}"))
}

fn q(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn json_of(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        ValueRef::Text(t) | ValueRef::Blob(t) => Value::String(String::from_utf8_lossy(t).into()),
    }
}

impl PocketBaseDb {
    /// Opens `path` read-only; fails unless it holds PocketBase's `_collections` and
    /// `_params` tables of v0.23+ (a `fields` column).
    pub fn open(path: &Path) -> Result<PocketBaseDb, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        let db = PocketBaseDb { conn };
        let columns = db.columns("_collections")?;
        if !columns.iter().any(|c| c == "fields") || !db.has_table("_params")? {
            return Err(StoreError::Internal(format!(
                "{} is not a PocketBase v0.23+ database (no _collections.fields or _params)",
                path.display()
            )));
        }
        Ok(db)
    }

    /// Whether the database has table `name`.
    pub fn has_table(&self, name: &str) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?",
                [name],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
            .map_err(err)
    }

    /// The column names of table `name` (empty when there is no such table).
    pub fn columns(&self, name: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("PRAGMA table_info({})", q(name)))
            .map_err(err)?;
        let cols = stmt
            .query_map([], |r| r.get::<_, String>(1))
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(cols)
    }

    /// Every row of `_collections` (creation order), columns as stored: `fields`,
    /// `indexes` and `options` are JSON text.
    pub fn collections(&self) -> Result<Vec<Map<String, Value>>, StoreError> {
        self.rows("SELECT * FROM _collections ORDER BY created, rowid", &[])
    }

    /// Every row of `_params` (`id`, `value`, ...).
    pub fn params(&self) -> Result<Vec<Map<String, Value>>, StoreError> {
        self.rows("SELECT * FROM _params ORDER BY id", &[])
    }

    /// How many rows table `name` holds.
    pub fn count(&self, table: &str) -> Result<u64, StoreError> {
        self.conn
            .query_row(&format!("SELECT COUNT(*) FROM {}", q(table)), [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n.max(0) as u64)
            .map_err(err)
    }

    /// Up to `limit` rows of table `table` whose id sorts after `after` (`""`: from the
    /// first), in id order: one page of a stream over the table in bounded memory.
    pub fn page(
        &self,
        table: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<Map<String, Value>>, StoreError> {
        let sql = format!(
            "SELECT * FROM {} WHERE id > ? ORDER BY id LIMIT {}",
            q(table),
            limit.max(1)
        );
        self.rows(&sql, &[after])
    }

    fn rows(&self, sql: &str, params: &[&str]) -> Result<Vec<Map<String, Value>>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(err)?;
        let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(err)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(err)? {
            let mut m = Map::new();
            for (i, name) in names.iter().enumerate() {
                m.insert(name.clone(), json_of(row.get_ref(i).map_err(err)?));
            }
            out.push(m);
        }
        Ok(out)
    }
}
