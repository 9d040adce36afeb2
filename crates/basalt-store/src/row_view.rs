//! A stored row read in place: one record written out (as JSON) by the caller while the
//! reader still holds the row, without decoding it into a [`crate::Record`] first.
//!
//! Decoding builds a map with an owned key and value per field, which the plain get-by-id
//! answer only serialises and drops again. [`FieldJson`] writes each value as the decoded
//! value would serialise, borrowing the column's text where the decoded value is a plain
//! string and decoding (exactly as [`crate::codec`] does) everywhere else.

use std::sync::Arc;

use basalt_schema::record::{canonical_number, zero_value};
use basalt_schema::{Collection, Field, FieldKind};
use rusqlite::Row;
use rusqlite::types::ValueRef;
use serde::{Serialize, Serializer};
use serde_json::Value;

use rusqlite::params_from_iter;

use crate::codec::{column_positions, decode_row, decode_value};
use crate::engine::Sqlite;
use crate::records::{by_id_sql, err};
use crate::sql::{Dialect, compile_list};
use crate::{ListQuery, Record, StoreError};

/// What [`crate::Store::list_rows`] hands back: what `each` made of the page's rows, and
/// the total (`None` when `skip_total` was asked).
pub struct RowsPage<S> {
    pub rows: S,
    pub total_items: Option<u64>,
}

/// One row of a collection's table, as a `SELECT *` returned it.
pub struct RowView<'a> {
    collection: &'a Collection,
    source: Source<'a>,
}

enum Source<'a> {
    /// SQLite's row, read in place.
    Row {
        positions: &'a [Option<usize>],
        row: &'a Row<'a>,
    },
    /// A record already decoded (the PostgreSQL engine's rows).
    Decoded(&'a Record),
}

impl<'a> RowView<'a> {
    pub(crate) fn decoded(collection: &'a Collection, record: &'a Record) -> Self {
        RowView {
            collection,
            source: Source::Decoded(record),
        }
    }
}

impl RowView<'_> {
    /// The collection the row is of.
    pub fn collection(&self) -> &Collection {
        self.collection
    }

    /// The whole row decoded, as the store's record reads return it.
    pub fn record(&self) -> Result<Record, StoreError> {
        match &self.source {
            Source::Row { positions, row } => {
                decode_row(self.collection, positions, row).map_err(err)
            }
            Source::Decoded(r) => Ok((*r).clone()),
        }
    }

    /// The value of the collection's `i`th field, decoded as a [`crate::Record`] holds it.
    pub fn value(&self, i: usize) -> Value {
        match self.raw(i) {
            Some((field, Raw::Column(Some(raw)))) => decode_value(field, raw),
            Some((field, Raw::Column(None))) => zero_value(field),
            Some((_, Raw::Decoded(v))) => v.clone(),
            None => Value::Null,
        }
    }

    /// The `i`th field's value as JSON: what serialising [`RowView::value`] writes
    /// (`None`: the collection has no `i`th field).
    pub fn json(&self, i: usize) -> Option<FieldJson<'_>> {
        self.raw(i).map(|(field, raw)| FieldJson { field, raw })
    }

    /// Field `i` and its stored value (`Raw::Column(None)`: the table has no such column).
    fn raw(&self, i: usize) -> Option<(&Field, Raw<'_>)> {
        let field = self.collection.fields.get(i)?;
        let raw = match &self.source {
            Source::Row { positions, row } => match positions.get(i).copied().flatten() {
                Some(pos) => Raw::Column(Some(row.get_ref(pos).ok()?)),
                None => Raw::Column(None),
            },
            Source::Decoded(r) => match r.get(&field.name) {
                Some(v) => Raw::Decoded(v),
                None => Raw::Column(None),
            },
        };
        Some((field, raw))
    }
}

#[derive(Clone, Copy)]
enum Raw<'a> {
    Column(Option<ValueRef<'a>>),
    Decoded(&'a Value),
}

/// A field's stored value, serialised as its decoded [`Value`] would be.
pub struct FieldJson<'a> {
    field: &'a Field,
    raw: Raw<'a>,
}

impl Serialize for FieldJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw = match self.raw {
            Raw::Column(Some(raw)) => raw,
            Raw::Column(None) => return zero_value(self.field).serialize(s),
            Raw::Decoded(v) => return v.serialize(s),
        };
        let plain_text = !matches!(
            self.field.kind,
            FieldKind::Number(_) | FieldKind::Bool(_) | FieldKind::Json(_) | FieldKind::GeoPoint(_)
        ) && !self.field.is_multiple();
        match (&self.field.kind, raw) {
            (FieldKind::Number(_), ValueRef::Integer(i)) => canonical_number(i as f64).serialize(s),
            (FieldKind::Number(_), ValueRef::Real(f)) => canonical_number(f).serialize(s),
            (FieldKind::Bool(_), ValueRef::Integer(i)) => s.serialize_bool(i != 0),
            (_, ValueRef::Text(t)) if plain_text => match std::str::from_utf8(t) {
                Ok(text) => s.serialize_str(text),
                Err(_) => s.serialize_str(&String::from_utf8_lossy(t)),
            },
            _ => decode_value(self.field, raw).serialize(s),
        }
    }
}

/// Point reads a reader made lately, newest last: each collection's by-id `SELECT` and
/// where its fields are among that statement's columns. Building the SQL and matching the
/// column names cost about as much as the primary-key lookup itself.
///
/// Keyed by the collection snapshot itself (held, so its address is never reused): a
/// schema change publishes new snapshots, which miss and build afresh. The column count is
/// checked on every use, for a table changed under a snapshot not yet replaced.
#[derive(Default)]
pub(crate) struct PointReads {
    entries: Vec<PointRead>,
}

struct PointRead {
    collection: Arc<Collection>,
    sql: String,
    columns: usize,
    positions: Vec<Option<usize>>,
}

/// Collections remembered per reader; past it the oldest is forgotten.
const MAX_POINT_READS: usize = 32;

impl PointReads {
    /// The entry of `c`, made (with its statement's columns unknown) when missing.
    fn entry(&mut self, c: &Arc<Collection>) -> &mut PointRead {
        if let Some(i) = self
            .entries
            .iter()
            .position(|e| Arc::ptr_eq(&e.collection, c))
        {
            return &mut self.entries[i];
        }
        if self.entries.len() >= MAX_POINT_READS {
            self.entries.remove(0);
        }
        self.entries.push(PointRead {
            collection: c.clone(),
            sql: by_id_sql(c),
            columns: usize::MAX,
            positions: Vec::new(),
        });
        let last = self.entries.len() - 1;
        &mut self.entries[last]
    }
}

impl Sqlite {
    /// The record with `id`, whatever the rules say, handed to `write` as the stored row
    /// (`None`: no such record). A primary-key read: on the calling thread when a reader is
    /// free. `write` runs while the reader is held: keep it to formatting the row.
    pub async fn view_row<T, F>(
        &self,
        collection: &Arc<Collection>,
        id: &str,
        write: F,
    ) -> Result<Option<T>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&RowView<'_>) -> T + Send + 'static,
    {
        let (c, id) = (collection.clone(), id.to_string());
        self.read_point_cached(move |conn, points| {
            let entry = points.entry(&c);
            let mut stmt = conn.prepare_cached(&entry.sql).map_err(err)?;
            if stmt.column_count() != entry.columns {
                entry.positions = column_positions(&c, &stmt);
                entry.columns = stmt.column_count();
            }
            let mut rows = stmt.query([id.as_str()]).map_err(err)?;
            let Some(row) = rows.next().map_err(err)? else {
                return Ok(None);
            };
            let view = RowView {
                collection: &c,
                source: Source::Row {
                    positions: &entry.positions,
                    row,
                },
            };
            Ok(Some(write(&view)))
        })
        .await
    }

    /// A list page, each row handed in order to `each` (with `out`, returned afterwards)
    /// while the reader holds it: for a caller that writes rows out as they are instead
    /// of decoding each into a record first (`list_records` decodes them).
    pub async fn list_rows<S, F>(
        &self,
        q: ListQuery,
        out: S,
        each: F,
    ) -> Result<RowsPage<S>, StoreError>
    where
        S: Send + 'static,
        F: FnMut(&mut S, &RowView<'_>) -> Result<(), StoreError> + Send + 'static,
    {
        self.read_counted(move |conn, schema, counts| {
            let (mut out, mut each) = (out, each);
            let (page, count) = compile_list(Dialect::Sqlite, schema, &q)?;
            let mut stmt = conn.prepare_cached(&page.sql).map_err(err)?;
            let positions = column_positions(&q.collection, &stmt);
            let mut rows = stmt
                .query(params_from_iter(page.params.iter()))
                .map_err(err)?;
            while let Some(row) = rows.next().map_err(err)? {
                let view = RowView {
                    collection: &q.collection,
                    source: Source::Row {
                        positions: &positions,
                        row,
                    },
                };
                each(&mut out, &view)?;
            }
            drop(rows);
            drop(stmt);
            let total_items = match count {
                Some(c) => Some(counts.count(conn, &c)?),
                None => None,
            };
            Ok(RowsPage {
                rows: out,
                total_items,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use basalt_schema::Collection;
    use rusqlite::Connection;
    use serde_json::json;

    use super::*;
    use crate::codec::decode_row;

    /// Every kind the store keeps, with the awkward stored values a row can hold.
    #[test]
    fn each_value_writes_as_its_decoded_value() {
        let c: Collection = serde_json::from_value(json!({
            "id": "notes0000000001", "name": "notes", "type": "base",
            "fields": [
                {"name": "id", "type": "text", "primaryKey": true},
                {"name": "title", "type": "text"},
                {"name": "views", "type": "number"},
                {"name": "done", "type": "bool"},
                {"name": "meta", "type": "json"},
                {"name": "labels", "type": "select", "maxSelect": 3, "values": ["a", "b"]},
                {"name": "when", "type": "date"},
                {"name": "missing", "type": "text"}
            ]
        }))
        .unwrap();
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id, title, views, done, meta, labels, \"when\");
             INSERT INTO t VALUES ('a', 'h\u{e9}llo \"q\" \\ \n', 3, 1, '{\"x\":[1,null]}', '[\"a\",\"b\"]', '');
             INSERT INTO t VALUES ('b', 7, 2.5, 0, NULL, 'a', NULL);
             INSERT INTO t VALUES ('c', X'ff41', '12', 'true', 'not json', '', 5);
             INSERT INTO t VALUES ('d', NULL, NULL, 2.0, 1.5, NULL, 1.25);",
        )
        .unwrap();
        let mut stmt = conn.prepare("SELECT * FROM t").unwrap();
        let positions = column_positions(&c, &stmt);
        assert_eq!(positions.last(), Some(&None));
        let mut rows = stmt.query([]).unwrap();
        let mut seen = 0;
        while let Some(row) = rows.next().unwrap() {
            let view = RowView {
                collection: &c,
                source: Source::Row {
                    positions: &positions,
                    row,
                },
            };
            let decoded = decode_row(&c, &positions, row).unwrap();
            for (i, f) in c.fields.iter().enumerate() {
                let direct = serde_json::to_string(&view.json(i).unwrap()).unwrap();
                assert_eq!(
                    direct,
                    decoded[&f.name].to_string(),
                    "{} of row {seen}",
                    f.name
                );
                assert_eq!(view.value(i), decoded[&f.name]);
            }
            seen += 1;
        }
        assert_eq!(seen, 4);
    }
}
