//! Resolves identifiers (`author.name`, `tags:each`, `comments_via_post.title`, `data.a.b`,
//! `@request.auth.*`, `@collection.x.y`, ...) into SQL: a single value or a set of values.
//!
//! It also decides what a client-written expression may read (`Ctx::readable_root`,
//! `readable_rows`, `readable_field`, `field_value`): every path, every join into another
//! collection and every field named goes through them.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use basalt_schema::filter::{Modifier, Path, PathRoot};
use basalt_schema::{Collection, Field, FieldKind, RequestInfo, RuleSlot, Schema};
use serde_json::Value;

use super::{Affinity, Dialect, Kind, SqlFragment, SqlValue, Ty};
use crate::{Author, StoreError};

const MAX_DEPTH: usize = 6;

/// A resolved operand: one value, or a one-column (`v`) subquery of many, with the type
/// of the value (of each value of the set).
pub(crate) enum Side {
    Scalar(SqlFragment, Ty),
    Set(SqlFragment, Ty),
}

/// A bound parameter as an operand.
pub(crate) fn param_side(v: SqlValue) -> Side {
    let ty = Ty::of_param(&v);
    Side::Scalar(SqlFragment::param(v), ty)
}

/// The type of a field's column: what it holds and SQLite's affinity for it (a column
/// declared TEXT has TEXT affinity; NUMERIC, BOOLEAN and JSON have NUMERIC affinity).
pub(crate) fn column_ty(field: &Field) -> Ty {
    match &field.kind {
        FieldKind::Number(_) | FieldKind::Bool(_) => Ty {
            kind: Kind::Num,
            affinity: Affinity::Numeric,
        },
        FieldKind::Json(_) | FieldKind::GeoPoint(_) => Ty {
            kind: Kind::Json,
            affinity: Affinity::Numeric,
        },
        _ if field.is_multiple() && field.name != "id" => Ty {
            kind: Kind::Json,
            affinity: Affinity::Numeric,
        },
        _ => Ty {
            kind: Kind::Text,
            affinity: Affinity::Text,
        },
    }
}

/// One `@collection.NAME[:alias]` reference, joined once per alias key.
pub(crate) struct CollectionJoin {
    key: String,
    pub alias: String,
    pub table: String,
}

/// Compilation state of one expression.
pub(crate) struct Ctx<'a> {
    pub d: Dialect,
    pub schema: &'a Schema,
    pub root: &'a Collection,
    /// The SQL alias of the rows of `root` the expression is about.
    root_alias: String,
    pub req: &'a RequestInfo,
    author: Author,
    /// Shared with the contexts of the rules compiled into this expression's joins, so no
    /// two aliases of one statement collide.
    counter: Rc<Cell<usize>>,
    pub collection_joins: RefCell<Vec<CollectionJoin>>,
}

pub(crate) fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::InvalidQuery(msg.into())
}

impl<'a> Ctx<'a> {
    /// A context for an expression over rows of `root` aliased `"__root"`.
    pub fn new(
        d: Dialect,
        schema: &'a Schema,
        root: &'a Collection,
        req: &'a RequestInfo,
        author: Author,
    ) -> Self {
        Self {
            d,
            schema,
            root,
            root_alias: "__root".into(),
            req,
            author,
            counter: Rc::new(Cell::new(0)),
            collection_joins: RefCell::new(vec![]),
        }
    }

    /// A context for `root`'s own rule over the rows aliased `alias` of an enclosing
    /// statement.
    fn for_rule_of(&self, root: &'a Collection, alias: &str) -> Ctx<'a> {
        Ctx {
            d: self.d,
            schema: self.schema,
            root,
            root_alias: alias.to_string(),
            req: self.req,
            author: Author::Server,
            counter: self.counter.clone(),
            collection_joins: RefCell::new(vec![]),
        }
    }

    pub(super) fn alias(&self, prefix: &str) -> String {
        let n = self.counter.get() + 1;
        self.counter.set(n);
        format!("__{prefix}{n}")
    }

    /// Whether this expression reads only what its author may: a client's filter or
    /// sort, unless the client is a superuser.
    fn restricted(&self) -> bool {
        self.author == Author::Client && !self.req.is_superuser()
    }

    /// The one place that decides which rows of `coll` (aliased `alias`) an expression
    /// may read when it reaches them through a relation or a back-relation: all of them
    /// for a server-written expression or a superuser; for a client, those `coll`'s list
    /// rule shows it, as if the client had listed `coll` itself (a `null` rule refuses the
    /// query, as PocketBase does). `None` means every row.
    fn readable_rows(
        &self,
        coll: &'a Collection,
        alias: &str,
    ) -> Result<Option<SqlFragment>, StoreError> {
        if !self.restricted() {
            return Ok(None);
        }
        let rules = self
            .schema
            .rules(&coll.id)
            .ok_or_else(|| invalid(format!("unknown collection {:?}", coll.name)))?;
        match &rules.list {
            RuleSlot::Open => Ok(None),
            RuleSlot::Locked => Err(invalid(format!(
                "the collection {:?} can only be read by superusers",
                coll.name
            ))),
            RuleSlot::Expr(rule) => {
                let mut f = SqlFragment::new("(");
                f.push(super::compile::condition(
                    &self.for_rule_of(coll, alias),
                    rule,
                )?);
                f.push_str(")");
                Ok(Some(f))
            }
        }
    }

    /// Refuses a client's expression that names a hidden field (the password hash,
    /// `tokenKey`, or a field the collection marks hidden), whatever collection it is in.
    fn readable_field(&self, field: &Field) -> Result<(), StoreError> {
        if field.hidden && self.restricted() {
            return Err(invalid(format!("the field {:?} is hidden", field.name)));
        }
        Ok(())
    }

    /// The value of `field` at `col` (a column of `coll` aliased `alias`) as the author
    /// may read it: a client reads an auth record's `email` only where its owner made it
    /// visible or the record is the client's own, as the records API shows it; elsewhere
    /// it reads NULL, so no comparison tells a hidden address from any other.
    fn field_value(
        &self,
        coll: &Collection,
        alias: &str,
        field: &Field,
        col: String,
    ) -> (SqlFragment, Ty) {
        if !(self.restricted() && coll.is_auth() && field.name == "email") {
            return (
                SqlFragment::new(self.d.column_value(col, field)),
                column_ty(field),
            );
        }
        let visible = self.d.is_true(&format!("{alias}.\"emailVisibility\""));
        let mut f = SqlFragment::new(format!("(CASE WHEN {visible}"));
        let own = self
            .req
            .auth
            .as_ref()
            .filter(|a| a.collection_id == coll.id)
            .and_then(|a| a.record.get("id").and_then(Value::as_str));
        if let Some(id) = own {
            f.push_str(&format!(" OR {alias}.\"id\" = "));
            f.push(SqlFragment::param(SqlValue::Text(id.to_string())));
        }
        f.push_str(&format!(" THEN {col} END)"));
        (f, Ty::TEXT)
    }

    /// A client that is not a superuser may not name `@collection` or `@request` at all,
    /// as in PocketBase: they reach beyond the rows it lists.
    fn readable_root(&self, root: &PathRoot) -> Result<(), StoreError> {
        if !self.restricted() {
            return Ok(());
        }
        match root {
            PathRoot::Record => Ok(()),
            PathRoot::Collection { .. } => Err(StoreError::SuperusersOnly(
                "Only superusers can filter by @collection.".into(),
            )),
            _ => Err(StoreError::SuperusersOnly(
                "Only superusers can filter by @request.".into(),
            )),
        }
    }

    pub fn resolve(&self, path: &Path) -> Result<Side, StoreError> {
        self.readable_root(&path.root)?;
        match &path.root {
            PathRoot::Record => self.record_path(
                self.root,
                &self.root_alias,
                None,
                &path.segments,
                path.modifier,
            ),
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
                    .find(|j| j.key == key)
                    .map(|j| j.alias.clone());
                let sql_alias = match existing {
                    Some(a) => a,
                    None => {
                        let a = self.alias("c");
                        self.collection_joins.borrow_mut().push(CollectionJoin {
                            key,
                            alias: a.clone(),
                            table: target.name.clone(),
                        });
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
            PathRoot::RequestMethod => Ok(param_side(SqlValue::Text(self.req.method.clone()))),
            PathRoot::RequestContext => Ok(param_side(SqlValue::Text(self.req.context.clone()))),
        }
    }

    fn auth_path(&self, path: &Path) -> Result<Side, StoreError> {
        let Some(auth) = &self.req.auth else {
            return Ok(param_side(SqlValue::Text(String::new())));
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
        let submitted = self.req.body.get(key);
        if path.segments.len() > 1 {
            return self.body_relation_path(path, key, submitted);
        }
        match path.modifier {
            Some(Modifier::IsSet) => Ok(param_side(SqlValue::Integer(i64::from(
                submitted.is_some(),
            )))),
            Some(Modifier::Changed) => {
                let Some(v) = submitted else {
                    return Ok(param_side(SqlValue::Integer(0)));
                };
                let field = self
                    .root
                    .field(key)
                    .ok_or_else(|| invalid(format!("unknown field {key:?}")))?;
                let col = format!("{}.{}", self.root_alias, self.d.quote(&field.name));
                let value = stored_shape(v);
                let mut f = SqlFragment::new("(CASE WHEN ");
                match self.d {
                    Dialect::Sqlite => {
                        f.push(SqlFragment::param(value));
                        f.push_str(&format!(" IS NOT {col} THEN 1 ELSE 0 END)"));
                    }
                    Dialect::Postgres => {
                        let vt = Ty::of_param(&value);
                        let col = self.d.column_value(col, field);
                        f.push_str(&super::pg::binary(
                            basalt_schema::filter::CompareOp::Neq,
                            "?",
                            vt,
                            &col,
                            column_ty(field),
                            false,
                        ));
                        f.params.push(value);
                        f.push_str(" THEN 1 ELSE 0 END)");
                    }
                }
                Ok(Side::Scalar(f, Ty::NUM))
            }
            m => Ok(self.value_side(submitted.unwrap_or(&Value::Null), m)),
        }
    }

    /// `@request.body.rel.x...`: the records the submitted ids of the relation field `rel`
    /// name, read from there on as `rel.x...` would be. Only what was submitted counts (an
    /// id not submitted reads as absent). A rule is the server's, so it reads the target
    /// whole, as PocketBase's rules do; a client's filter cannot name `@request` at all.
    fn body_relation_path(
        &self,
        path: &Path,
        key: &str,
        submitted: Option<&Value>,
    ) -> Result<Side, StoreError> {
        if matches!(path.modifier, Some(Modifier::IsSet | Modifier::Changed)) {
            return Err(invalid(
                "the :isset and :changed modifiers apply to a submitted field itself",
            ));
        }
        let field = self
            .root
            .field(key)
            .ok_or_else(|| invalid(format!("unknown field {key:?}")))?;
        let target_id = field
            .relation_target()
            .ok_or_else(|| invalid(format!("the field {key:?} cannot be traversed")))?;
        let target = self.schema.by_id(target_id).ok_or_else(|| {
            invalid(format!(
                "the relation {key:?} points to a missing collection"
            ))
        })?;
        let ids: Vec<String> = match submitted {
            Some(Value::String(id)) if !id.is_empty() => vec![id.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .filter(|id| !id.is_empty())
                .map(str::to_string)
                .collect(),
            _ => vec![],
        };
        if ids.len() > 1000 {
            return Err(invalid(format!("too many ids submitted in {key:?}")));
        }
        let alias = self.alias("q");
        let cond = if ids.is_empty() {
            SqlFragment::new("1=0")
        } else {
            let mut c = SqlFragment::new(format!("{alias}.\"id\" IN ("));
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    c.push_str(", ");
                }
                c.push(SqlFragment::param(SqlValue::Text(id.clone())));
            }
            c.push_str(")");
            c
        };
        let start = (format!("{} {alias}", self.d.quote(&target.name)), cond);
        self.record_path_from(
            target,
            &alias,
            Some(start),
            field.is_multiple(),
            &path.segments[1..],
            path.modifier,
        )
    }

    /// A request-supplied JSON value as an operand (arrays become sets).
    fn value_side(&self, v: &Value, modifier: Option<Modifier>) -> Side {
        if let Value::Array(items) = v {
            if modifier == Some(Modifier::Length) {
                return param_side(SqlValue::Integer(items.len() as i64));
            }
            let mut f = SqlFragment::new(self.d.json_param_items());
            f.push(SqlFragment::param(SqlValue::Text(v.to_string())));
            f.push_str(self.d.json_param_items_end());
            return lower_set(self.d, f, Ty::JSON, modifier);
        }
        let value = stored_shape(v);
        let ty = Ty::of_param(&value);
        lower_scalar(self.d, SqlFragment::param(value), ty, modifier)
    }

    /// Walks `segments` from `coll` (SQL alias `alias`; `start` is the FROM/WHERE that
    /// introduces it when it is not already in scope).
    fn record_path(
        &self,
        coll: &'a Collection,
        alias: &str,
        start: Option<(String, SqlFragment)>,
        segments: &[String],
        modifier: Option<Modifier>,
    ) -> Result<Side, StoreError> {
        self.record_path_from(coll, alias, start, false, segments, modifier)
    }

    /// [`Self::record_path`] from a `start` that may hold several rows (`start_multi`:
    /// the path yields a set).
    fn record_path_from(
        &self,
        coll: &'a Collection,
        alias: &str,
        start: Option<(String, SqlFragment)>,
        start_multi: bool,
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
        let mut multi = start_multi;
        let mut coll = coll;
        let mut alias = alias.to_string();
        let mut value = SqlFragment::default();
        let mut ty = Ty::TEXT;
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
                self.readable_field(field)?;
                let next = self.alias("b");
                from.push(format!("{} {next}", d.quote(&src.name)));
                let col = format!("{next}.{}", d.quote(&field.name));
                conds.push(SqlFragment::new(if field.is_multiple() {
                    d.json_array_holds(&col, &format!("{alias}.\"id\""))
                } else {
                    format!("{col} = {alias}.\"id\"")
                }));
                conds.extend(self.readable_rows(src, &next)?);
                multi = true;
                coll = src;
                alias = next;
                if last {
                    value = SqlFragment::new(format!("{alias}.\"id\""));
                    ty = Ty {
                        kind: Kind::Text,
                        affinity: Affinity::Text,
                    };
                }
                i += 1;
                continue;
            }
            let field = coll
                .field(seg)
                .ok_or_else(|| invalid(format!("unknown field {seg:?}")))?;
            self.readable_field(field)?;
            let col = format!("{alias}.{}", d.quote(&field.name));
            if last {
                // As in PocketBase, a multi-valued field is compared as its stored JSON
                // text unless `:each` asks for its items (or `:length` for their count).
                if field.is_multiple() && modifier == Some(Modifier::Length) {
                    value = SqlFragment::new(d.json_length(&col));
                    ty = Ty::NUM;
                    length_of_json = true;
                } else if field.is_multiple() && modifier == Some(Modifier::Each) {
                    let item = self.alias("j");
                    from.push(d.json_items_from(&col, &item));
                    value = SqlFragment::new(format!("{item}.value"));
                    ty = Ty::JSON;
                    multi = true;
                } else {
                    (value, ty) = self.field_value(coll, &alias, field, col);
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
                        d.json_array_holds(&col, &format!("{next}.\"id\""))
                    } else {
                        format!("{next}.\"id\" = {col}")
                    }));
                    conds.extend(self.readable_rows(target, &next)?);
                    coll = target;
                    alias = next;
                }
                // A geoPoint is a JSON object (`loc.lon`, `loc.lat`), read as JSON is.
                FieldKind::Json(_) | FieldKind::GeoPoint(_) => {
                    value = SqlFragment::new(d.json_extract(&col, &segments[i + 1..]));
                    ty = Ty::JSON;
                    break;
                }
                _ => return Err(invalid(format!("the field {seg:?} cannot be traversed"))),
            }
            i += 1;
        }
        if from.is_empty() {
            let side = if multi {
                let mut set = SqlFragment::new("SELECT ");
                set.push(value);
                set.push_str(" AS v");
                Side::Set(set, ty)
            } else {
                Side::Scalar(value, ty)
            };
            return Ok(apply_modifier(d, side, modifier, length_of_json));
        }
        let mut q = SqlFragment::new("SELECT ");
        q.push(value);
        q.push_str(&format!(" AS v FROM {}", from.join(", ")));
        for (n, c) in conds.into_iter().enumerate() {
            q.push_str(if n == 0 { " WHERE " } else { " AND " });
            q.push(c);
        }
        if multi && modifier == Some(Modifier::Length) {
            return Ok(Side::Scalar(
                SqlFragment {
                    sql: format!(
                        "(SELECT COUNT(*) FROM ({}){})",
                        q.sql,
                        d.subquery_alias("__n")
                    ),
                    params: q.params,
                },
                Ty::NUM,
            ));
        }
        let side = if multi {
            Side::Set(q, ty)
        } else {
            Side::Scalar(
                SqlFragment {
                    sql: format!("({})", q.sql),
                    params: q.params,
                },
                ty,
            )
        };
        Ok(apply_modifier(d, side, modifier, length_of_json))
    }
}

fn apply_modifier(d: Dialect, side: Side, modifier: Option<Modifier>, length_done: bool) -> Side {
    match (side, modifier) {
        (Side::Scalar(f, ty), Some(Modifier::Lower)) => {
            lower_scalar(d, f, ty, Some(Modifier::Lower))
        }
        (Side::Set(f, ty), Some(Modifier::Lower)) => lower_set(d, f, ty, Some(Modifier::Lower)),
        (Side::Scalar(f, ty), Some(Modifier::Length)) if !length_done => Side::Scalar(
            SqlFragment {
                sql: match d {
                    Dialect::Sqlite => format!("LENGTH({})", f.sql),
                    Dialect::Postgres => format!("length({})", super::pg::text_of(&f.sql, ty)),
                },
                params: f.params,
            },
            Ty::NUM,
        ),
        (side, _) => side,
    }
}

fn lower_scalar(d: Dialect, f: SqlFragment, ty: Ty, m: Option<Modifier>) -> Side {
    if m != Some(Modifier::Lower) {
        return Side::Scalar(f, ty);
    }
    let sql = match d {
        Dialect::Sqlite => format!("LOWER({})", f.sql),
        Dialect::Postgres => format!("lower({})", super::pg::text_of(&f.sql, ty)),
    };
    Side::Scalar(
        SqlFragment {
            sql,
            params: f.params,
        },
        Ty::TEXT,
    )
}

fn lower_set(d: Dialect, f: SqlFragment, ty: Ty, m: Option<Modifier>) -> Side {
    if m != Some(Modifier::Lower) {
        return Side::Set(f, ty);
    }
    let sql = match d {
        Dialect::Sqlite => format!("SELECT LOWER(v) AS v FROM ({})", f.sql),
        Dialect::Postgres => format!(
            "SELECT lower({}) AS v FROM ({}) __lw",
            super::pg::text_of("v", ty),
            f.sql
        ),
    };
    Side::Set(
        SqlFragment {
            sql,
            params: f.params,
        },
        Ty::TEXT,
    )
}

fn text_or_null(v: Option<&Value>) -> Side {
    param_side(match v {
        Some(v) => stored_shape(v),
        None => SqlValue::Null,
    })
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
