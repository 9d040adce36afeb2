//! Compiles whole expressions: comparisons with PocketBase's any/all semantics over
//! multi-valued operands, null handling, LIKE escaping, macros; then ORDER BY and the
//! paged list statements.

use basalt_schema::filter::{CompareOp, DateMacro, Expr, Literal, Operand};
use basalt_schema::{Collection, RequestInfo, Schema};
use chrono::{Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};

use super::path::{Ctx, Side, invalid, param_side};
use super::{Dialect, SqlFragment, SqlValue, Ty, pg};
use crate::{Access, Author, ListQuery, SortKey, StoreError};

/// A WHERE condition over rows of `collection` aliased `"__root"`, written by `author`
/// (which decides what it may read of other collections: see [`Author`]).
pub(crate) fn compile_condition(
    d: Dialect,
    schema: &Schema,
    collection: &Collection,
    expr: &Expr,
    req: &RequestInfo,
    author: Author,
) -> Result<SqlFragment, StoreError> {
    condition(&Ctx::new(d, schema, collection, req, author), expr)
}

/// `expr` as a condition in `ctx`, with the `@collection` joins it made.
pub(super) fn condition(ctx: &Ctx, expr: &Expr) -> Result<SqlFragment, StoreError> {
    let body = expr_sql(ctx, expr)?;
    let joins = ctx.collection_joins.borrow();
    if joins.is_empty() {
        return Ok(body);
    }
    // `@collection.x` references share one LEFT JOIN per alias, so several comparisons
    // on the same alias must hold for the same joined row.
    let mut f = SqlFragment::new("EXISTS (SELECT 1 FROM (SELECT 1) __one");
    for j in joins.iter() {
        f.push_str(&format!(
            " LEFT JOIN {} {} ON 1=1",
            ctx.d.quote(&j.table),
            j.alias
        ));
    }
    f.push_str(" WHERE ");
    f.push(body);
    f.push_str(")");
    Ok(f)
}

fn expr_sql(ctx: &Ctx, expr: &Expr) -> Result<SqlFragment, StoreError> {
    match expr {
        Expr::And(a, b) | Expr::Or(a, b) => {
            let joiner = if matches!(expr, Expr::And(..)) {
                " AND "
            } else {
                " OR "
            };
            let mut f = SqlFragment::new("(");
            f.push(expr_sql(ctx, a)?);
            f.push_str(joiner);
            f.push(expr_sql(ctx, b)?);
            f.push_str(")");
            Ok(f)
        }
        Expr::Compare { left, op, right } => compare(ctx, left, *op, right),
    }
}

/// `o` as one side of a comparison; `equality` says the comparison is `=`/`!=` (or their
/// any-forms), where PocketBase reads a `strftime` that yields NULL as `''`.
fn operand(ctx: &Ctx, o: &Operand, like_pattern: bool, equality: bool) -> Result<Side, StoreError> {
    Ok(match o {
        Operand::Literal(Literal::String(s)) if like_pattern => {
            param_side(SqlValue::Text(like_value(s)))
        }
        Operand::Literal(Literal::String(s)) => param_side(SqlValue::Text(s.clone())),
        Operand::Literal(Literal::Number(n)) => param_side(number(*n)),
        Operand::Literal(Literal::Bool(b)) => param_side(SqlValue::Integer(i64::from(*b))),
        Operand::Literal(Literal::Null) => Side::Scalar(
            SqlFragment::new(match ctx.d {
                Dialect::Sqlite => "NULL",
                Dialect::Postgres => "NULL::text",
            }),
            Ty::TEXT,
        ),
        Operand::Macro(m) => param_side(macro_value(*m)),
        Operand::Call(c) if like_pattern => {
            like_wrapped(ctx.d, super::functions::call(ctx, c, false)?)
        }
        Operand::Call(c) => super::functions::call(ctx, c, equality)?,
        Operand::Path(p) if like_pattern => like_wrapped(ctx.d, ctx.resolve(p)?),
        Operand::Path(p) => ctx.resolve(p)?,
    })
}

/// A value used as the pattern of `~`: wrapped in `%...%` as PocketBase does.
fn like_wrapped(d: Dialect, side: Side) -> Side {
    match (d, side) {
        (Dialect::Sqlite, Side::Scalar(f, ty)) => Side::Scalar(
            SqlFragment {
                sql: format!("('%' || {} || '%')", f.sql),
                params: f.params,
            },
            ty,
        ),
        (Dialect::Sqlite, Side::Set(f, ty)) => Side::Set(
            SqlFragment {
                sql: format!("SELECT ('%' || v || '%') AS v FROM ({})", f.sql),
                params: f.params,
            },
            ty,
        ),
        (Dialect::Postgres, Side::Scalar(f, ty)) => Side::Scalar(
            SqlFragment {
                sql: format!("('%' || {} || '%')", pg::text_of(&f.sql, ty)),
                params: f.params,
            },
            Ty::TEXT,
        ),
        (Dialect::Postgres, Side::Set(f, ty)) => Side::Set(
            SqlFragment {
                sql: format!(
                    "SELECT ('%' || {} || '%') AS v FROM ({}) __lk",
                    pg::text_of("v", ty),
                    f.sql
                ),
                params: f.params,
            },
            Ty::TEXT,
        ),
    }
}

fn number(n: f64) -> SqlValue {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        SqlValue::Integer(n as i64)
    } else {
        SqlValue::Real(n)
    }
}

/// `%value%` with LIKE wildcards in the value escaped, unless the user wrote `%` themselves.
fn like_value(s: &str) -> String {
    if s.contains('%') {
        s.to_string()
    } else {
        let escaped = s.replace('\\', "\\\\").replace('_', "\\_");
        format!("%{escaped}%")
    }
}

fn base_op(op: CompareOp) -> CompareOp {
    match op {
        CompareOp::AnyEq => CompareOp::Eq,
        CompareOp::AnyNeq => CompareOp::Neq,
        CompareOp::AnyGt => CompareOp::Gt,
        CompareOp::AnyGte => CompareOp::Gte,
        CompareOp::AnyLt => CompareOp::Lt,
        CompareOp::AnyLte => CompareOp::Lte,
        CompareOp::AnyLike => CompareOp::Like,
        CompareOp::AnyNotLike => CompareOp::NotLike,
        other => other,
    }
}

/// One comparison of two values in `d` (`non_null`: one side is a bound non-NULL value).
fn binary(
    d: Dialect,
    op: CompareOp,
    (l, lt): (&str, Ty),
    (r, rt): (&str, Ty),
    non_null: bool,
) -> String {
    if d == Dialect::Postgres {
        return pg::binary(base_op(op), l, lt, r, rt, non_null);
    }
    match base_op(op) {
        CompareOp::Eq => format!("{l} IS {r}"),
        CompareOp::Neq => format!("{l} IS NOT {r}"),
        CompareOp::Gt => format!("{l} > {r}"),
        CompareOp::Gte => format!("{l} >= {r}"),
        CompareOp::Lt => format!("{l} < {r}"),
        CompareOp::Lte => format!("{l} <= {r}"),
        CompareOp::Like => format!("{l} LIKE {r} ESCAPE '\\'"),
        _ => format!("({l} NOT LIKE {r} ESCAPE '\\' OR {l} IS NULL)"),
    }
}

/// Whether a fragment is one bound value that is not NULL.
fn non_null_param(f: &SqlFragment) -> bool {
    f.sql == "?" && matches!(f.params.as_slice(), [v] if *v != SqlValue::Null)
}

fn compare(
    ctx: &Ctx,
    left: &Operand,
    op: CompareOp,
    right: &Operand,
) -> Result<SqlFragment, StoreError> {
    let like = matches!(base_op(op), CompareOp::Like | CompareOp::NotLike);
    let is_null = |o: &Operand| matches!(o, Operand::Literal(Literal::Null));
    let equality = matches!(base_op(op), CompareOp::Eq | CompareOp::Neq);
    let l = operand(ctx, left, false, equality)?;
    let null_cmp = is_null(right) || is_null(left);
    if null_cmp && matches!(base_op(op), CompareOp::Eq | CompareOp::Neq) {
        let (side, other) = if is_null(right) {
            (l, left)
        } else {
            (operand(ctx, right, false, equality)?, right)
        };
        let eq = base_op(op) == CompareOp::Eq;
        // A distance of 0 is a value: `geoDistance(...) = null` asks whether there is
        // none (PocketBase compares it without its empty-value fallback).
        if let (Operand::Call(c), Side::Scalar(f, _)) = (other, &side)
            && c.func == basalt_schema::filter::Function::GeoDistance
        {
            return Ok(SqlFragment {
                sql: format!("({} IS {}NULL)", f.sql, if eq { "" } else { "NOT " }),
                params: f.params.clone(),
            });
        }
        return Ok(match side {
            Side::Scalar(f, ty) => SqlFragment {
                sql: match ctx.d {
                    Dialect::Sqlite if eq => format!("COALESCE({}, '') IN ('', 0)", f.sql),
                    Dialect::Sqlite => format!("COALESCE({}, '') NOT IN ('', 0)", f.sql),
                    Dialect::Postgres => pg::is_empty(&f.sql, ty, eq),
                },
                params: f.params,
            },
            Side::Set(f, _) => SqlFragment {
                sql: format!("{}EXISTS ({})", if eq { "NOT " } else { "" }, f.sql),
                params: f.params,
            },
        });
    }
    let r = operand(ctx, right, like, equality)?;
    Ok(match (l, r) {
        (Side::Scalar(a, at), Side::Scalar(b, bt)) => {
            let sql = binary(
                ctx.d,
                op,
                (a.sql.as_str(), at),
                (b.sql.as_str(), bt),
                non_null_param(&a) || non_null_param(&b),
            );
            // `NOT LIKE` mentions the left side twice (see `binary`).
            let params = if base_op(op) == CompareOp::NotLike {
                [a.params.clone(), b.params, a.params].concat()
            } else {
                [a.params, b.params].concat()
            };
            SqlFragment {
                sql: format!("({sql})"),
                params,
            }
        }
        (a, b) => set_compare(ctx.d, op, to_set(a), to_set(b)),
    })
}

fn to_set(side: Side) -> (SqlFragment, Ty) {
    match side {
        Side::Set(f, ty) => (f, ty),
        Side::Scalar(f, ty) => (
            SqlFragment {
                sql: format!("SELECT {} AS v", f.sql),
                params: f.params,
            },
            ty,
        ),
    }
}

/// An empty set compares like a single NULL (a LEFT JOIN that found nothing).
fn padded(d: Dialect, f: SqlFragment) -> SqlFragment {
    SqlFragment {
        sql: format!(
            "SELECT v FROM ({0}){1} UNION ALL SELECT NULL WHERE NOT EXISTS ({0})",
            f.sql,
            d.subquery_alias("__p")
        ),
        params: [f.params.clone(), f.params].concat(),
    }
}

/// Any-operators: some pair matches. Plain operators: every pair matches.
fn set_compare(
    d: Dialect,
    op: CompareOp,
    (l, lt): (SqlFragment, Ty),
    (r, rt): (SqlFragment, Ty),
) -> SqlFragment {
    let (l, r) = (padded(d, l), padded(d, r));
    let cond = binary(d, op, ("__l.v", lt), ("__r.v", rt), false);
    let false_ = match d {
        Dialect::Sqlite => "0",
        Dialect::Postgres => "FALSE",
    };
    let sql = if op.is_any() {
        format!(
            "EXISTS (SELECT 1 FROM ({}) __l, ({}) __r WHERE {cond})",
            l.sql, r.sql
        )
    } else {
        format!(
            "NOT EXISTS (SELECT 1 FROM ({}) __l, ({}) __r WHERE NOT COALESCE({cond}, {false_}))",
            l.sql, r.sql
        )
    };
    SqlFragment {
        sql,
        params: [l.params, r.params].concat(),
    }
}

pub(super) fn macro_value(m: DateMacro) -> SqlValue {
    let now = Utc::now();
    let fmt = |t: chrono::DateTime<Utc>| SqlValue::Text(basalt_schema::value::format_datetime(t));
    let day_start =
        |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default());
    let today = now.date_naive();
    match m {
        DateMacro::Now => fmt(now),
        DateMacro::Yesterday => fmt(now - Duration::days(1)),
        DateMacro::Tomorrow => fmt(now + Duration::days(1)),
        DateMacro::Second => SqlValue::Integer(i64::from(now.second())),
        DateMacro::Minute => SqlValue::Integer(i64::from(now.minute())),
        DateMacro::Hour => SqlValue::Integer(i64::from(now.hour())),
        DateMacro::Day => SqlValue::Integer(i64::from(now.day())),
        DateMacro::Month => SqlValue::Integer(i64::from(now.month())),
        DateMacro::Year => SqlValue::Integer(i64::from(now.year())),
        DateMacro::Weekday => SqlValue::Integer(i64::from(now.weekday().num_days_from_sunday())),
        DateMacro::TodayStart => fmt(day_start(today)),
        DateMacro::TodayEnd => {
            fmt(day_start(today) + Duration::days(1) - Duration::milliseconds(1))
        }
        DateMacro::MonthStart => fmt(day_start(today.with_day(1).unwrap_or(today))),
        DateMacro::MonthEnd => {
            let first = today.with_day(1).unwrap_or(today);
            let next = first
                .checked_add_months(chrono::Months::new(1))
                .unwrap_or(first);
            fmt(day_start(next) - Duration::milliseconds(1))
        }
        DateMacro::YearStart => fmt(day_start(
            NaiveDate::from_ymd_opt(today.year(), 1, 1).unwrap_or(today),
        )),
        DateMacro::YearEnd => fmt(day_start(
            NaiveDate::from_ymd_opt(today.year() + 1, 1, 1).unwrap_or(today),
        ) - Duration::milliseconds(1)),
    }
}

/// The body of an ORDER BY clause (without the keywords). A sort key reads what a filter
/// by its author could: a client sorting by another collection's field, or by an email
/// kept hidden, sorts by NULL where a filter would read NULL.
pub(crate) fn compile_order(
    d: Dialect,
    schema: &Schema,
    collection: &Collection,
    sort: &[SortKey],
    req: &RequestInfo,
    author: Author,
) -> Result<SqlFragment, StoreError> {
    let ctx = Ctx::new(d, schema, collection, req, author);
    let mut out = SqlFragment::default();
    for (i, key) in sort.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let (expr, ty) = match key.path.as_str() {
            "@random" => (SqlFragment::new(d.random()), Ty::NUM),
            "@rowid" => (
                SqlFragment::new(format!("\"__root\".{}", d.rowid())),
                Ty::NUM,
            ),
            path => {
                let p =
                    basalt_schema::filter::parse_path(path).map_err(|e| invalid(e.to_string()))?;
                match ctx.resolve(&p)? {
                    Side::Scalar(f, ty) => (f, ty),
                    Side::Set(..) => {
                        return Err(invalid(format!("cannot sort by the multi-valued {path:?}")));
                    }
                }
            }
        };
        match d {
            Dialect::Sqlite => {
                out.push(expr);
                out.push_str(if key.descending { " DESC" } else { " ASC" });
            }
            Dialect::Postgres => out.push(SqlFragment {
                sql: pg::order_term(&expr.sql, ty, key.descending),
                params: expr.params,
            }),
        }
    }
    if !ctx.collection_joins.borrow().is_empty() {
        return Err(invalid("cannot sort by @collection fields"));
    }
    Ok(out)
}

/// The page query and (unless `skip_total`) the count query of a list request.
pub(crate) fn compile_list(
    d: Dialect,
    schema: &Schema,
    q: &ListQuery,
) -> Result<(SqlFragment, Option<SqlFragment>), StoreError> {
    let c = &q.collection;
    let mut filter = SqlFragment::new(format!(" FROM {} \"__root\" WHERE 1=1", d.quote(&c.name)));
    if let Some(f) = &q.filter {
        filter.push_str(" AND ");
        filter.push(compile_condition(d, schema, c, f, &q.request, q.author)?);
    }
    if let Access::Rule(rule) = &q.access {
        filter.push_str(" AND ");
        filter.push(compile_condition(
            d,
            schema,
            c,
            rule,
            &q.request,
            Author::Server,
        )?);
    }
    let count = (!q.skip_total).then(|| SqlFragment {
        sql: format!("SELECT COUNT(*){}", filter.sql),
        params: filter.params.clone(),
    });
    let mut page = SqlFragment::new("SELECT \"__root\".*");
    page.push(filter);
    let order = compile_order(d, schema, c, &q.sort, &q.request, q.author)?;
    page.push_str(" ORDER BY ");
    if !order.sql.is_empty() {
        page.push(order);
        page.push_str(", ");
    }
    // Views have no rowid; their id is the stable tiebreak.
    let tiebreak = if c.is_view() { "\"id\"" } else { d.rowid() };
    // The page size is written into the statement, not bound: SQLite's planner reads a
    // bound LIMIT's value (to size the sort), which marks the statement to be compiled
    // again every time that parameter is bound — a full re-prepare of every cached list
    // statement on every request (measured: ~120k of ~630k instructions per 20-row list).
    // An app uses a handful of page sizes, so the statement cache keeps one per size.
    let per_page = q.per_page.max(1);
    page.push_str(&format!(
        "\"__root\".{tiebreak} ASC LIMIT {per_page} OFFSET ?"
    ));
    page.params.push(SqlValue::Integer(
        (q.page.max(1) - 1).saturating_mul(per_page) as i64,
    ));
    Ok((page, count))
}
