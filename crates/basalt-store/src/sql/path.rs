//! Resolves identifiers (`author.name`, `tags:each`, `comments_via_post.title`, `data.a.b`,
//! `@request.auth.*`, `@collection.x.y`, ...) into SQL: a single value or a set of values.

use std::cell::RefCell;

use basalt_schema::filter::{Modifier, Path, PathRoot};
use basalt_schema::{Collection, FieldKind, RequestInfo, Schema};
use serde_json::Value;

use super::{Dialect, SqlFragment, SqlValue};
use crate::StoreError;

const MAX_DEPTH: usize = 6;

/// A resolved operand: one value, or a one-column (`v`) subquery of many.
pub(crate) enum Side {
    Scalar(SqlFragment),
    Set(SqlFragment),
}

/// Compilation state of one expression.
pub(crate) struct Ctx<'a> {
    pub d: Dialect,
    pub schema: &'a Schema,
    pub root: &'a Collection,
    pub req: &'a RequestInfo,
    counter: RefCell<usize>,
    /// `@collection` joins: (alias key, SQL alias, table name).
    pub collection_joins: RefCell<Vec<(String, String, String)>>,
}

pub(crate) fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::InvalidQuery(msg.into())
}

impl<'a> Ctx<'a> {
    pub fn new(d: Dialect, schema: &'a Schema, root: &'a Collection, req: &'a RequestInfo) -> Self {
        Self {
            d,
            schema,
            root,
            req,
            counter: RefCell::new(0),
            collection_joins: RefCell::new(vec![]),
        }
    }

    fn alias(&self, prefix: &str) -> String {
        let mut c = self.counter.borrow_mut();
        *c += 1;
        format!("__{prefix}{c}")
    }

    pub fn resolve(&self, path: &Path) -> Result<Side, StoreError> {
        match &path.root {
            PathRoot::Record => {
                self.record_path(self.root, "__root", None, &path.segments, path.modifier)
            }
            PathRoot::Collection { name, alias } => {
                let target = self
                    .schema
                    .by_name(name)
                    .ok_or_else(|| invalid(format!("unknown collection {name:?}")))?;
                let key = format!("{}:{}", target.name, alias.as_deref().unwrap_or(""));
                let existing = self
                    .collection_joins
                    .borrow()
                    .iter()
                    .find(|(k, _, _)| *k == key)
                    .map(|(_, a, _)| a.clone());
                let sql_alias = match existing {
                    Some(a) => a,
                    None => {
                        let a = self.alias("c");
                        self.collection_joins.borrow_mut().push((
                            key,
                            a.clone(),
                            target.name.clone(),
                        ));
                        a
                    }
                };
                self.record_path(target, &sql_alias, None, &path.segments, path.modifier)
            }
            PathRoot::RequestAuth => self.auth_path(path),
            PathRoot::RequestBody => self.body_path(path),
            PathRoot::RequestQuery => Ok(text_or_null(
                self.req.query.get(path.segments.join(".").as_str()),
            )),
            PathRoot::RequestHeaders => Ok(text_or_null(
                self.req.headers.get(path.segments.join(".").as_str()),
            )),
            PathRoot::RequestMethod => Ok(Side::Scalar(SqlFragment::param(SqlValue::Text(
                self.req.method.clone(),
            )))),
            PathRoot::RequestContext => Ok(Side::Scalar(SqlFragment::param(SqlValue::Text(
                self.req.context.clone(),
            )))),
        }
    }

    fn auth_path(&self, path: &Path) -> Result<Side, StoreError> {
        let Some(auth) = &self.req.auth else {
            return Ok(Side::Scalar(SqlFragment::param(SqlValue::Text(
                String::new(),
            ))));
        };
        let first = path
            .segments
            .first()
            .map(String::as_str)
            .unwrap_or_default();
        if path.segments.len() == 1 {
            let v = match first {
                "collectionId" => Some(Value::String(auth.collection_id.clone())),
                "collectionName" => Some(Value::String(auth.collection_name.clone())),
                _ => auth.record.get(first).cloned(),
            };
            return Ok(self.value_side(
                v.as_ref().unwrap_or(&Value::String(String::new())),
                path.modifier,
            ));
        }
        let coll = self
            .schema
            .by_id(&auth.collection_id)
            .ok_or_else(|| invalid("unknown auth collection"))?;
        let alias = self.alias("a");
        let id = auth
            .record
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut cond = SqlFragment::new(format!("{alias}.\"id\" = "));
        cond.push(SqlFragment::param(SqlValue::Text(id.to_string())));
        let start = (format!("{} {alias}", self.d.quote(&coll.name)), cond);
        self.record_path(coll, &alias, Some(start), &path.segments, path.modifier)
    }

    fn body_path(&self, path: &Path) -> Result<Side, StoreError> {
        let key = path
            .segments
            .first()
            .map(String::as_str)
            .unwrap_or_default();
        if path.segments.len() > 1 {
            return Err(invalid(
                "relation traversal of @request.body is not supported",
            ));
        }
        let submitted = self.req.body.get(key);
        match path.modifier {
            Some(Modifier::IsSet) => Ok(Side::Scalar(SqlFragment::param(SqlValue::Integer(
                i64::from(submitted.is_some()),
            )))),
            Some(Modifier::Changed) => {
                let Some(v) = submitted else {
                    return Ok(Side::Scalar(SqlFragment::param(SqlValue::Integer(0))));
                };
                let field = self
                    .root
                    .field(key)
                    .ok_or_else(|| invalid(format!("unknown field {key:?}")))?;
                let mut f = SqlFragment::new("(CASE WHEN ");
                f.push(SqlFragment::param(stored_shape(v)));
                f.push_str(&format!(
                    " IS NOT \"__root\".{} THEN 1 ELSE 0 END)",
                    self.d.quote(&field.name)
                ));
                Ok(Side::Scalar(f))
            }
            m => Ok(self.value_side(submitted.unwrap_or(&Value::Null), m)),
        }
    }

    /// A request-supplied JSON value as an operand (arrays become sets).
    fn value_side(&self, v: &Value, modifier: Option<Modifier>) -> Side {
        if let Value::Array(items) = v {
            if modifier == Some(Modifier::Length) {
                return Side::Scalar(SqlFragment::param(SqlValue::Integer(items.len() as i64)));
            }
            let mut f = SqlFragment::new("SELECT value AS v FROM json_each(");
            f.push(SqlFragment::param(SqlValue::Text(v.to_string())));
            f.push_str(")");
            return Side::Set(lower_set(f, modifier));
        }
        let p = SqlFragment::param(stored_shape(v));
        Side::Scalar(lower_scalar(p, modifier))
    }

    /// Walks `segments` from `coll` (SQL alias `alias`; `start` is the FROM/WHERE that
    /// introduces it when it is not already in scope).
    fn record_path(
        &self,
        coll: &Collection,
        alias: &str,
        start: Option<(String, SqlFragment)>,
        segments: &[String],
        modifier: Option<Modifier>,
    ) -> Result<Side, StoreError> {
        if segments.len() > MAX_DEPTH {
            return Err(invalid("the field path is too deep"));
        }
        let d = self.d;
        let mut from: Vec<String> = vec![];
        let mut conds: Vec<SqlFragment> = vec![];
        if let Some((table, cond)) = start {
            from.push(table);
            conds.push(cond);
        }
        let mut multi = false;
        let mut coll = coll;
        let mut alias = alias.to_string();
        let mut value = String::new();
        let mut length_of_json = false;
        let mut i = 0;
        while i < segments.len() {
            let seg = &segments[i];
            let last = i + 1 == segments.len();
            if let Some((src_name, field_name)) = seg.split_once("_via_") {
                let src = self.schema.by_name(src_name).ok_or_else(|| {
                    invalid(format!("unknown back-relation collection {src_name:?}"))
                })?;
                let field = src
                    .field(field_name)
                    .filter(|f| f.relation_target() == Some(coll.id.as_str()))
                    .ok_or_else(|| invalid(format!("invalid back-relation {seg:?}")))?;
                let next = self.alias("b");
                from.push(format!("{} {next}", d.quote(&src.name)));
                let col = format!("{next}.{}", d.quote(&field.name));
                conds.push(SqlFragment::new(if field.is_multiple() {
                    format!("{alias}.\"id\" IN (SELECT value FROM json_each({col}))")
                } else {
                    format!("{col} = {alias}.\"id\"")
                }));
                multi = true;
                coll = src;
                alias = next;
                if last {
                    value = format!("{alias}.\"id\"");
                }
                i += 1;
                continue;
            }
            let field = coll
                .field(seg)
                .ok_or_else(|| invalid(format!("unknown field {seg:?}")))?;
            if field.hidden && !self.req.is_superuser() {
                return Err(invalid(format!("the field {seg:?} is hidden")));
            }
            let col = format!("{alias}.{}", d.quote(&field.name));
            if last {
                // As in PocketBase, a multi-valued field is compared as its stored JSON
                // text unless `:each` asks for its items (or `:length` for their count).
                if field.is_multiple() && modifier == Some(Modifier::Length) {
                    value = d.json_length(&col);
                    length_of_json = true;
                } else if field.is_multiple() && modifier == Some(Modifier::Each) {
                    let item = self.alias("j");
                    from.push(format!("({}) {item}", d.json_items(&col)));
                    value = format!("{item}.v");
                    multi = true;
                } else {
                    value = col;
                }
                break;
            }
            match &field.kind {
                FieldKind::Relation(o) => {
                    let target = self.schema.by_id(&o.collection_id).ok_or_else(|| {
                        invalid(format!(
                            "the relation {seg:?} points to a missing collection"
                        ))
                    })?;
                    let next = self.alias("r");
                    from.push(format!("{} {next}", d.quote(&target.name)));
                    conds.push(SqlFragment::new(if field.is_multiple() {
                        multi = true;
                        format!("{next}.\"id\" IN (SELECT value FROM json_each({col}))")
                    } else {
                        format!("{next}.\"id\" = {col}")
                    }));
                    coll = target;
                    alias = next;
                }
                FieldKind::Json(_) => {
                    value = d.json_extract(&col, &segments[i + 1..]);
                    break;
                }
                _ => return Err(invalid(format!("the field {seg:?} cannot be traversed"))),
            }
            i += 1;
        }
        if from.is_empty() {
            let side = if multi {
                Side::Set(SqlFragment::new(format!("SELECT {value} AS v")))
            } else {
                Side::Scalar(SqlFragment::new(value))
            };
            return Ok(apply_modifier(side, modifier, length_of_json));
        }
        let mut q = SqlFragment::new(format!("SELECT {value} AS v FROM {}", from.join(", ")));
        for (n, c) in conds.into_iter().enumerate() {
            q.push_str(if n == 0 { " WHERE " } else { " AND " });
            q.push(c);
        }
        if multi && modifier == Some(Modifier::Length) {
            return Ok(Side::Scalar(SqlFragment {
                sql: format!("(SELECT COUNT(*) FROM ({}))", q.sql),
                params: q.params,
            }));
        }
        let side = if multi {
            Side::Set(q)
        } else {
            Side::Scalar(SqlFragment {
                sql: format!("({})", q.sql),
                params: q.params,
            })
        };
        Ok(apply_modifier(side, modifier, length_of_json))
    }
}

fn apply_modifier(side: Side, modifier: Option<Modifier>, length_done: bool) -> Side {
    match (side, modifier) {
        (Side::Scalar(f), Some(Modifier::Lower)) => {
            Side::Scalar(lower_scalar(f, Some(Modifier::Lower)))
        }
        (Side::Set(f), Some(Modifier::Lower)) => Side::Set(lower_set(f, Some(Modifier::Lower))),
        (Side::Scalar(f), Some(Modifier::Length)) if !length_done => Side::Scalar(SqlFragment {
            sql: format!("LENGTH({})", f.sql),
            params: f.params,
        }),
        (side, _) => side,
    }
}

fn lower_scalar(f: SqlFragment, m: Option<Modifier>) -> SqlFragment {
    if m == Some(Modifier::Lower) {
        SqlFragment {
            sql: format!("LOWER({})", f.sql),
            params: f.params,
        }
    } else {
        f
    }
}

fn lower_set(f: SqlFragment, m: Option<Modifier>) -> SqlFragment {
    if m == Some(Modifier::Lower) {
        SqlFragment {
            sql: format!("SELECT LOWER(v) AS v FROM ({})", f.sql),
            params: f.params,
        }
    } else {
        f
    }
}

fn text_or_null(v: Option<&Value>) -> Side {
    Side::Scalar(SqlFragment::param(match v {
        Some(v) => stored_shape(v),
        None => SqlValue::Null,
    }))
}

/// A JSON value as the column encoding stores it (bools as 0/1, objects as JSON text).
pub(crate) fn stored_shape(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        other => SqlValue::Text(other.to_string()),
    }
}
