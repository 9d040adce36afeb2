//! Column encoding of field values (see the storage layout in ARCHITECTURE.md): rows to
//! [`Record`]s and record values to bound parameters.

use basalt_schema::record::canonical_number;
use basalt_schema::{Collection, Field, FieldKind};
use rusqlite::Row;
use rusqlite::types::ValueRef;
use serde_json::Value;

use crate::Record;
use crate::sql::SqlValue;

/// Where each of `collection`'s fields is in a `SELECT *` statement's columns (`None`: not
/// there). Computed once per statement, so decoding a row is one pass over the fields.
pub(crate) fn column_positions(
    collection: &Collection,
    stmt: &rusqlite::Statement<'_>,
) -> Vec<Option<usize>> {
    // Tables are created and migrated in field order, so the columns usually are the fields
    // one for one: checked in a single pass, instead of a by-name search per field (each a
    // scan of every column name).
    let names = stmt.column_names();
    if names.len() == collection.fields.len()
        && names
            .iter()
            .zip(&collection.fields)
            .all(|(n, f)| n.eq_ignore_ascii_case(&f.name))
    {
        return (0..names.len()).map(Some).collect();
    }
    collection
        .fields
        .iter()
        .map(|f| stmt.column_index(f.name.as_str()).ok())
        .collect()
}

/// Decodes a `SELECT *` row of `collection`'s table; `positions` from [`column_positions`].
pub(crate) fn decode_row(
    collection: &Collection,
    positions: &[Option<usize>],
    row: &Row<'_>,
) -> rusqlite::Result<Record> {
    let mut out = Record::with_capacity(collection.fields.len());
    for (field, pos) in collection.fields.iter().zip(positions) {
        let v = match pos {
            Some(i) => decode_value(field, row.get_ref(*i)?),
            None => basalt_schema::record::zero_value(field),
        };
        out.insert(field.name.clone(), v);
    }
    Ok(out)
}

fn text_of(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
    }
}

pub(crate) fn decode_value(field: &Field, v: ValueRef<'_>) -> Value {
    match &field.kind {
        FieldKind::Number(_) => match v {
            ValueRef::Integer(i) => canonical_number(i as f64),
            ValueRef::Real(f) => canonical_number(f),
            other => canonical_number(text_of(other).and_then(|t| t.parse().ok()).unwrap_or(0.0)),
        },
        FieldKind::Bool(_) => Value::Bool(match v {
            ValueRef::Integer(i) => i != 0,
            ValueRef::Real(f) => f != 0.0,
            other => matches!(text_of(other).as_deref(), Some("true" | "1")),
        }),
        FieldKind::Json(_) => match v {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::from(i),
            ValueRef::Real(f) => canonical_number(f),
            other => {
                let t = text_of(other).unwrap_or_default();
                serde_json::from_str(&t).unwrap_or(Value::String(t))
            }
        },
        FieldKind::GeoPoint(_) => match text_of(v) {
            Some(t) => basalt_schema::record::geo_point::normalize(&Value::String(t)),
            None => basalt_schema::record::geo_point::zero(),
        },
        _ if field.is_multiple() => {
            let t = text_of(v).unwrap_or_default();
            match serde_json::from_str::<Value>(&t) {
                Ok(Value::Array(a)) => Value::Array(a),
                _ if t.is_empty() => Value::Array(vec![]),
                _ => Value::Array(vec![Value::String(t)]),
            }
        }
        _ => Value::String(text_of(v).unwrap_or_default()),
    }
}

/// The bound parameter storing `v` in `field`'s column.
pub(crate) fn encode_value(field: &Field, v: &Value) -> SqlValue {
    match (&field.kind, v) {
        (FieldKind::Json(_), Value::Null) => SqlValue::Null,
        (FieldKind::Json(_), other) => SqlValue::Text(other.to_string()),
        (FieldKind::GeoPoint(_), v) => {
            SqlValue::Text(basalt_schema::record::geo_point::normalize(v).to_string())
        }
        (FieldKind::Number(_), v) => match v.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(v.as_f64().unwrap_or(0.0)),
        },
        (FieldKind::Bool(_), v) => SqlValue::Integer(i64::from(v.as_bool().unwrap_or(false))),
        (_, Value::Array(_)) => SqlValue::Text(v.to_string()),
        (_, Value::String(s)) => SqlValue::Text(s.clone()),
        (_, Value::Null) if field.is_multiple() => SqlValue::Text("[]".into()),
        (_, Value::Null) => SqlValue::Text(String::new()),
        (_, other) => SqlValue::Text(other.to_string()),
    }
}

/// The column definition of a field.
pub(crate) fn column_def(field: &Field) -> &'static str {
    match &field.kind {
        _ if field.name == "id" => "TEXT PRIMARY KEY NOT NULL",
        FieldKind::Number(_) => "NUMERIC NOT NULL DEFAULT 0",
        FieldKind::Bool(_) => "BOOLEAN NOT NULL DEFAULT FALSE",
        FieldKind::Json(_) => "JSON DEFAULT NULL",
        FieldKind::GeoPoint(_) => "JSON NOT NULL DEFAULT '{\"lon\":0,\"lat\":0}'",
        _ if field.is_multiple() => "JSON NOT NULL DEFAULT '[]'",
        _ => "TEXT NOT NULL DEFAULT ''",
    }
}
