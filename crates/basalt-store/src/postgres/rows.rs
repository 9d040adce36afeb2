//! PostgreSQL rows as records and record values as bound parameters: the column types of
//! `pg_schema` (`text`, `double precision`, `boolean`, `jsonb`) mapped to the values a
//! [`Record`] holds, exactly as the SQLite codec decodes its columns.

use basalt_schema::record::{canonical_number, zero_value};
use basalt_schema::{Collection, Field, FieldKind};
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::Record;
use crate::sql::SqlValue;

/// The compiler's parameters, bound in order to a statement from
/// [`crate::sql::SqlFragment::pg_sql`] (whose placeholders are typed to match).
pub(crate) fn params(values: &[SqlValue]) -> Vec<&(dyn ToSql + Sync)> {
    values
        .iter()
        .map(|p| match p {
            SqlValue::Null => &None::<String> as &(dyn ToSql + Sync),
            SqlValue::Integer(i) => i as &(dyn ToSql + Sync),
            SqlValue::Real(f) => f as &(dyn ToSql + Sync),
            SqlValue::Text(s) => s as &(dyn ToSql + Sync),
        })
        .collect()
}

/// A placeholder for field `f`'s value as [`crate::codec::encode_value`] binds it, cast
/// to its column's type (booleans are bound as 0/1, JSON as its text).
pub(crate) fn value_placeholder(f: &Field) -> &'static str {
    match &f.kind {
        FieldKind::Bool(_) => "(? <> 0)",
        FieldKind::Json(_) | FieldKind::GeoPoint(_) => "CAST(? AS jsonb)",
        _ if f.is_multiple() && f.name != "id" => "CAST(? AS jsonb)",
        _ => "?",
    }
}

/// Where each of `c`'s fields is among a statement's columns (`None`: not there).
pub(crate) fn positions(c: &Collection, row: &Row) -> Vec<Option<usize>> {
    let cols = row.columns();
    c.fields
        .iter()
        .map(|f| cols.iter().position(|col| col.name() == f.name))
        .collect()
}

/// Decodes a `SELECT *` row of `c`'s table; `positions` from [`positions`].
pub(crate) fn decode(c: &Collection, positions: &[Option<usize>], row: &Row) -> Record {
    let mut out = Record::with_capacity(c.fields.len());
    for (f, pos) in c.fields.iter().zip(positions) {
        let v = match pos {
            Some(i) => decode_value(f, row, *i).unwrap_or_else(|| zero_value(f)),
            None => zero_value(f),
        };
        out.insert(f.name.clone(), v);
    }
    out
}

/// Every row of a result, decoded.
pub(crate) fn decode_all(c: &Collection, rows: &[Row]) -> Vec<Record> {
    let Some(first) = rows.first() else {
        return Vec::new();
    };
    let at = positions(c, first);
    rows.iter().map(|r| decode(c, &at, r)).collect()
}

/// One column's value (`None`: a type the field's column does not have).
fn decode_value(f: &Field, row: &Row, i: usize) -> Option<Value> {
    Some(match &f.kind {
        FieldKind::Number(_) => canonical_number(row.try_get::<_, Option<f64>>(i).ok()??),
        FieldKind::Bool(_) => Value::Bool(row.try_get::<_, Option<bool>>(i).ok()??),
        FieldKind::Json(_) => row
            .try_get::<_, Option<Value>>(i)
            .ok()?
            .unwrap_or(Value::Null),
        // jsonb keeps keys sorted ("lat" first): answered as SQLite's stored text is.
        FieldKind::GeoPoint(_) => basalt_schema::record::geo_point::normalize(
            &row.try_get::<_, Option<Value>>(i)
                .ok()?
                .unwrap_or(Value::Null),
        ),
        _ if f.is_multiple() && f.name != "id" => match row.try_get::<_, Option<Value>>(i).ok()? {
            Some(Value::Array(a)) => Value::Array(a),
            Some(Value::String(s)) if !s.is_empty() => Value::Array(vec![Value::String(s)]),
            _ => Value::Array(vec![]),
        },
        _ => Value::String(
            row.try_get::<_, Option<String>>(i)
                .ok()?
                .unwrap_or_default(),
        ),
    })
}
