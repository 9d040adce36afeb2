//! Filter/rule/sort -> SQL compiler. User values only ever reach SQL as bound parameters;
//! identifiers only after they resolved against the schema (and always quoted).

mod compile;
mod functions;
mod path;
pub(crate) mod pg;

#[cfg(test)]
pub(crate) use compile::compile_order;
pub(crate) use compile::{compile_condition, compile_list};
pub(crate) use functions::register_sqlite_functions;

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

/// What a SQL expression holds, as far as PostgreSQL's strict typing needs to know it
/// (SQLite's loose typing ignores it): the value's type, and whether it has the affinity of
/// a column, which decides how SQLite converts the other side of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ty {
    pub kind: Kind,
    pub affinity: Affinity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    /// A number: `double precision`, `bigint` or `integer` in PostgreSQL.
    Num,
    /// A `jsonb` value whose JSON type is only known at run time.
    Json,
}

/// SQLite's column affinity (its "type affinity" rules for comparisons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Affinity {
    None,
    Text,
    Numeric,
}

impl Ty {
    pub const TEXT: Ty = Ty {
        kind: Kind::Text,
        affinity: Affinity::None,
    };
    pub const NUM: Ty = Ty {
        kind: Kind::Num,
        affinity: Affinity::None,
    };
    pub const JSON: Ty = Ty {
        kind: Kind::Json,
        affinity: Affinity::None,
    };

    /// The type of a bound parameter.
    pub fn of_param(v: &SqlValue) -> Ty {
        match v {
            SqlValue::Integer(_) | SqlValue::Real(_) => Ty::NUM,
            SqlValue::Null | SqlValue::Text(_) => Ty::TEXT,
        }
    }
}

/// The SQL dialect: owns quoting, JSON functions and (for PostgreSQL) the typing that
/// SQLite leaves to run time. SQLite's statements are the reference: PostgreSQL's must
/// select the same rows (the conformance test in `sql/conformance.rs` holds it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    /// Needs the support functions of [`pg::SUPPORT_SQL`] in the schema it runs in.
    Postgres,
}

impl Dialect {
    pub fn quote(self, ident: &str) -> String {
        let mut out = String::with_capacity(ident.len() + 2);
        self.push_quoted(&mut out, ident);
        out
    }

    /// Appends `ident` quoted to `out` (no allocation of its own).
    pub fn push_quoted(self, out: &mut String, ident: &str) {
        out.push('"');
        for (i, part) in ident.split('"').enumerate() {
            if i > 0 {
                out.push_str("\"\"");
            }
            out.push_str(part);
        }
        out.push('"');
    }

    /// A FROM item aliased `alias` whose column `value` holds the items of a JSON array
    /// expression. It may read the columns of the FROM items before it (a lateral join:
    /// SQLite's table-valued functions are), unlike a subquery in FROM.
    pub fn json_items_from(self, json_expr: &str, alias: &str) -> String {
        match self {
            Dialect::Sqlite => format!(
                "json_each(CASE WHEN json_valid({json_expr}) AND json_type({json_expr}) = 'array' THEN {json_expr} ELSE '[]' END) {alias}"
            ),
            Dialect::Postgres => format!(
                "jsonb_array_elements(CASE WHEN jsonb_typeof({json_expr}) = 'array' THEN {json_expr} ELSE '[]'::jsonb END) {alias}"
            ),
        }
    }

    /// A condition: the JSON array `json_expr` holds the text `item`.
    pub fn json_array_holds(self, json_expr: &str, item: &str) -> String {
        match self {
            Dialect::Sqlite => format!("{item} IN (SELECT value FROM json_each({json_expr}))"),
            Dialect::Postgres => format!("{json_expr} @> jsonb_build_array({item})"),
        }
    }

    /// A set (column `v`) of the items of a bound JSON array text.
    pub fn json_param_items(self) -> &'static str {
        match self {
            Dialect::Sqlite => "SELECT value AS v FROM json_each(",
            Dialect::Postgres => "SELECT value AS v FROM jsonb_array_elements(CAST(",
        }
    }

    pub fn json_param_items_end(self) -> &'static str {
        match self {
            Dialect::Sqlite => ")",
            Dialect::Postgres => " AS jsonb)) __e",
        }
    }

    pub fn json_length(self, json_expr: &str) -> String {
        match self {
            Dialect::Sqlite => format!(
                "COALESCE(json_array_length(CASE WHEN json_valid({json_expr}) THEN {json_expr} END), 0)"
            ),
            Dialect::Postgres => format!(
                "COALESCE(jsonb_array_length(CASE WHEN jsonb_typeof({json_expr}) = 'array' THEN {json_expr} END), 0)"
            ),
        }
    }

    /// Value at a JSON path of segments already validated as `[A-Za-z0-9_]+`.
    pub fn json_extract(self, json_expr: &str, segments: &[String]) -> String {
        match self {
            Dialect::Sqlite => {
                let mut path = String::from("$");
                for s in segments {
                    if s.chars().all(|c| c.is_ascii_digit()) {
                        path.push_str(&format!("[{s}]"));
                    } else {
                        path.push_str(&format!(".\"{s}\""));
                    }
                }
                format!(
                    "(CASE WHEN json_valid({json_expr}) THEN json_extract({json_expr}, '{path}') END)"
                )
            }
            Dialect::Postgres => pg::json_extract(json_expr, segments),
        }
    }

    /// A column as a comparable value: PostgreSQL's booleans read as 0/1, as SQLite
    /// stores them.
    pub fn column_value(self, col: String, field: &basalt_schema::Field) -> String {
        match (self, &field.kind) {
            (Dialect::Postgres, basalt_schema::FieldKind::Bool(_)) => format!("({col})::int"),
            _ => col,
        }
    }

    /// A condition: the boolean column `col` is true.
    pub fn is_true(self, col: &str) -> String {
        match self {
            Dialect::Sqlite => format!("{col} = 1"),
            Dialect::Postgres => format!("{col} IS TRUE"),
        }
    }

    pub fn random(self) -> &'static str {
        match self {
            Dialect::Sqlite => "RANDOM()",
            Dialect::Postgres => "random()",
        }
    }

    /// The column that orders a table's rows by insertion (PostgreSQL has no rowid: each
    /// table has an identity column, see [`pg::ROWID`]).
    pub fn rowid(self) -> &'static str {
        match self {
            Dialect::Sqlite => "rowid",
            Dialect::Postgres => pg::ROWID,
        }
    }

    /// A name for a subquery in FROM: PostgreSQL 15 requires one, SQLite's statements
    /// are kept as they were.
    pub fn subquery_alias(self, alias: &str) -> String {
        match self {
            Dialect::Sqlite => String::new(),
            Dialect::Postgres => format!(" {alias}"),
        }
    }
}

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod tests;
