//! Filter/rule/sort -> SQL compiler. User values only ever reach SQL as bound parameters;
//! identifiers only after they resolved against the schema (and always quoted).

mod compile;
mod path;

#[cfg(test)]
pub(crate) use compile::compile_order;
pub(crate) use compile::{compile_condition, compile_list};

use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};

/// A bound parameter value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
}

impl ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        // Borrowed: binding a text parameter copies it once, inside SQLite, not here too.
        Ok(ToSqlOutput::Borrowed(match self {
            SqlValue::Null => ValueRef::Null,
            SqlValue::Integer(i) => ValueRef::Integer(*i),
            SqlValue::Real(f) => ValueRef::Real(*f),
            SqlValue::Text(s) => ValueRef::Text(s.as_bytes()),
        }))
    }
}

/// SQL text with `?` placeholders and their values, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SqlFragment {
    pub sql: String,
    pub params: Vec<SqlValue>,
}

impl SqlFragment {
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            params: vec![],
        }
    }

    pub fn param(v: SqlValue) -> Self {
        Self {
            sql: "?".into(),
            params: vec![v],
        }
    }

    pub fn push(&mut self, other: SqlFragment) {
        self.sql.push_str(&other.sql);
        self.params.extend(other.params);
    }

    pub fn push_str(&mut self, s: &str) {
        self.sql.push_str(s);
    }
}

/// The SQL dialect: owns quoting and JSON functions so PostgreSQL can be added beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
}

impl Dialect {
    pub fn quote(self, ident: &str) -> String {
        match self {
            Dialect::Sqlite => format!("\"{}\"", ident.replace('"', "\"\"")),
        }
    }

    /// A FROM item aliased `alias` whose column `value` holds the items of a JSON array
    /// expression. It may read the columns of the FROM items before it (a lateral join:
    /// SQLite's table-valued functions are), unlike a subquery in FROM.
    pub fn json_items_from(self, json_expr: &str, alias: &str) -> String {
        match self {
            Dialect::Sqlite => format!(
                "json_each(CASE WHEN json_valid({json_expr}) AND json_type({json_expr}) = 'array' THEN {json_expr} ELSE '[]' END) {alias}"
            ),
        }
    }

    pub fn json_length(self, json_expr: &str) -> String {
        match self {
            Dialect::Sqlite => format!(
                "COALESCE(json_array_length(CASE WHEN json_valid({json_expr}) THEN {json_expr} END), 0)"
            ),
        }
    }

    /// Value at a JSON path of segments already validated as `[A-Za-z0-9_]+`.
    pub fn json_extract(self, json_expr: &str, segments: &[String]) -> String {
        let mut path = String::from("$");
        for s in segments {
            if s.chars().all(|c| c.is_ascii_digit()) {
                path.push_str(&format!("[{s}]"));
            } else {
                path.push_str(&format!(".\"{s}\""));
            }
        }
        match self {
            Dialect::Sqlite => format!(
                "(CASE WHEN json_valid({json_expr}) THEN json_extract({json_expr}, '{path}') END)"
            ),
        }
    }

    pub fn random(self) -> &'static str {
        match self {
            Dialect::Sqlite => "RANDOM()",
        }
    }

    pub fn rowid(self) -> &'static str {
        match self {
            Dialect::Sqlite => "rowid",
        }
    }
}

#[cfg(test)]
mod tests;
