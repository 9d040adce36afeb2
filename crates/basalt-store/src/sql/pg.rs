//! PostgreSQL's side of the compiler: SQLite's loose typing made explicit.
//!
//! PocketBase's filter language means what SQLite makes of it. SQLite compares values of
//! different types by their storage class (NULL < numbers < text) after converting one
//! side by the other's column affinity (a number column turns the text `'10'` into 10; a
//! text column turns the number 10 into `'10'`). PostgreSQL refuses to compare a number
//! with text at all. So each operand carries its [`Ty`], and a comparison is either a plain
//! one (both sides of one type after SQLite's conversions: indexes still apply) or made
//! over [`SUPPORT_SQL`]'s `basalt_key` values, which order values as SQLite does.
//!
//! Text compares by bytes (`COLLATE "C"`, SQLite's BINARY); `~` is `ILIKE` with `\` as the
//! escape, which folds ASCII case only under the C collation, as SQLite's LIKE does.

use basalt_schema::filter::CompareOp;

use super::{Affinity, Kind, SqlFragment, SqlValue, Ty};

/// The identity column every PostgreSQL collection table has: insertion order, the
/// stable tiebreak of a list and what `@rowid` sorts by (SQLite's `rowid`).
pub(crate) const ROWID: &str = "\"_rowid\"";

/// The type and functions the PostgreSQL dialect's statements call, installed in the
/// schema the collections live in (idempotent).
///
/// `basalt_key(v)` is SQLite's comparison order as a value: class 1 for numbers, 2 for
/// text, NULL for NULL; `basalt_numkey` applies SQLite's NUMERIC affinity first (text that
/// reads as a number becomes one), `basalt_textkey` its TEXT affinity (a number becomes
/// its text). `basalt_text` is a value as SQLite's text functions (LIKE, LOWER, LENGTH)
/// see it. JSON values read as SQLite's `json_extract` returns them: true/false as 1/0,
/// strings unquoted, arrays and objects as their JSON text. `basalt_jsonb` is text as
/// JSON when it is JSON, else as a JSON string (a column converted to a json field).
/// `basalt_num` reads a value as SQLite's math functions do (numbers, and text that reads
/// as one; NULL otherwise); `basalt_geo_distance` is `geoDistance`; `basalt_ts` reads a
/// time value as SQLite's date functions do (NULL when it cannot) and `basalt_add_months`
/// is SQLite's `±N months` (the day of month overflowing into the next month).
pub(crate) const SUPPORT_SQL: &str = r#"
DO $$ BEGIN
  CREATE TYPE basalt_key AS (c integer, n double precision, t text COLLATE "C");
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

CREATE OR REPLACE FUNCTION basalt_numtext(v double precision) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $f$ SELECT CASE WHEN v = trunc(v) AND abs(v) < 1e15 THEN v::bigint::text ELSE v::text END $f$;

CREATE OR REPLACE FUNCTION basalt_key(v text) RETURNS basalt_key
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $f$ SELECT ROW(2, 0, v)::basalt_key $f$;

CREATE OR REPLACE FUNCTION basalt_key(v double precision) RETURNS basalt_key
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $f$ SELECT ROW(1, v, '')::basalt_key $f$;

CREATE OR REPLACE FUNCTION basalt_key(v jsonb) RETURNS basalt_key
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $f$ SELECT CASE jsonb_typeof(v)
  WHEN 'number' THEN ROW(1, v::double precision, '')::basalt_key
  WHEN 'string' THEN ROW(2, 0, v #>> '{}')::basalt_key
  WHEN 'boolean' THEN ROW(1, CASE WHEN v = 'true'::jsonb THEN 1 ELSE 0 END, '')::basalt_key
  WHEN 'null' THEN NULL
  ELSE ROW(2, 0, v::text)::basalt_key END $f$;

CREATE OR REPLACE FUNCTION basalt_numkey(v text) RETURNS basalt_key
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $f$ SELECT CASE
  WHEN length(v) <= 200 AND v ~ '^\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,2})?\s*$'
  THEN ROW(1, trim(v)::double precision, '')::basalt_key
  ELSE ROW(2, 0, v)::basalt_key END $f$;

CREATE OR REPLACE FUNCTION basalt_numkey(v jsonb) RETURNS basalt_key
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $f$ SELECT CASE WHEN jsonb_typeof(v) = 'string' THEN basalt_numkey(v #>> '{}') ELSE basalt_key(v) END $f$;

CREATE OR REPLACE FUNCTION basalt_textkey(v double precision) RETURNS basalt_key
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $f$ SELECT ROW(2, 0, basalt_numtext(v))::basalt_key $f$;

CREATE OR REPLACE FUNCTION basalt_textkey(v jsonb) RETURNS basalt_key
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $f$ SELECT CASE jsonb_typeof(v)
  WHEN 'number' THEN ROW(2, 0, v #>> '{}')::basalt_key
  WHEN 'boolean' THEN ROW(2, 0, CASE WHEN v = 'true'::jsonb THEN '1' ELSE '0' END)::basalt_key
  ELSE basalt_key(v) END $f$;

CREATE OR REPLACE FUNCTION basalt_jsonb(v text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $f$ BEGIN RETURN v::jsonb; EXCEPTION WHEN others THEN RETURN to_jsonb(v); END $f$;

CREATE OR REPLACE FUNCTION basalt_text(v double precision) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $f$ SELECT basalt_numtext(v) $f$;

CREATE OR REPLACE FUNCTION basalt_text(v jsonb) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $f$ SELECT CASE jsonb_typeof(v)
  WHEN 'boolean' THEN CASE WHEN v = 'true'::jsonb THEN '1' ELSE '0' END
  WHEN 'null' THEN NULL
  WHEN 'string' THEN v #>> '{}'
  WHEN 'number' THEN v #>> '{}'
  ELSE v::text END $f$;
CREATE OR REPLACE FUNCTION basalt_num(v text) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $f$ BEGIN
  IF length(v) <= 200 AND v ~ '^\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$' THEN
    RETURN trim(v)::double precision;
  END IF;
  RETURN NULL;
EXCEPTION WHEN others THEN RETURN NULL;
END $f$;

CREATE OR REPLACE FUNCTION basalt_num(v jsonb) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $f$ SELECT CASE jsonb_typeof(v)
  WHEN 'number' THEN v::double precision
  WHEN 'string' THEN basalt_num(v #>> '{}')
  WHEN 'boolean' THEN CASE WHEN v = 'true'::jsonb THEN 1 ELSE 0 END
  ELSE NULL END $f$;

CREATE OR REPLACE FUNCTION basalt_geo_distance(lon_a double precision, lat_a double precision,
  lon_b double precision, lat_b double precision) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $f$ SELECT 2 * 6371.0 * asin(least(1.0, sqrt(
  sin(radians(lat_b - lat_a) / 2) * sin(radians(lat_b - lat_a) / 2)
  + cos(radians(lat_a)) * cos(radians(lat_b))
    * sin(radians(lon_b - lon_a) / 2) * sin(radians(lon_b - lon_a) / 2)))) $f$;

CREATE OR REPLACE FUNCTION basalt_ts(v text) RETURNS timestamp
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
AS $f$
DECLARE
  m text[];
  t timestamp;
BEGIN
  IF lower(trim(v)) = 'now' THEN
    RETURN date_trunc('milliseconds', now() AT TIME ZONE 'UTC');
  END IF;
  IF length(v) > 100 THEN
    RETURN NULL;
  END IF;
  IF v ~ '^\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)\s*$' THEN
    RETURN timestamp '1970-01-01' + round(((trim(v)::numeric - 2440587.5) * 86400), 3) * interval '1 second';
  END IF;
  m := regexp_match(v, '^\s*(?:([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[ T]+|$))?(?:([0-9]{2}):([0-9]{2})(?::([0-9]{2}(?:\.[0-9]*)?))?)?\s*([Zz]|[+-][0-9]{2}:[0-9]{2})?\s*$');
  IF m IS NULL OR (m[1] IS NULL AND m[4] IS NULL) THEN
    RETURN NULL;
  END IF;
  IF m[1] IS NULL THEN
    m[1] := '2000'; m[2] := '01'; m[3] := '01';
  END IF;
  -- A date that does not exist (February 31st, hour 24) is NULL here; SQLite formats
  -- its fields as written. Date fields never hold one.
  t := make_timestamp(m[1]::int, m[2]::int, m[3]::int,
    COALESCE(m[4]::int, 0), COALESCE(m[5]::int, 0), 0)
    + round(COALESCE(m[6]::numeric, 0), 3) * interval '1 second';
  IF COALESCE(m[6]::numeric, 0) >= 60 THEN
    RETURN NULL;
  END IF;
  IF m[7] IS NOT NULL AND m[7] NOT IN ('Z', 'z') THEN
    IF substr(m[7], 2, 2)::int > 14 OR substr(m[7], 5, 2)::int > 59 THEN
      RETURN NULL;
    END IF;
    t := t - (CASE WHEN left(m[7], 1) = '-' THEN -1 ELSE 1 END)
      * (substr(m[7], 2, 2)::int * interval '1 hour' + substr(m[7], 5, 2)::int * interval '1 minute');
  END IF;
  RETURN t;
EXCEPTION WHEN others THEN RETURN NULL;
END $f$;

CREATE OR REPLACE FUNCTION basalt_add_months(t timestamp, n bigint) RETURNS timestamp
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $f$ BEGIN
  RETURN date_trunc('month', t) + make_interval(months => n::int) + (t - date_trunc('month', t));
EXCEPTION WHEN others THEN RETURN NULL;
END $f$;
"#;

/// `json_expr`'s value at a path of segments validated as `[A-Za-z0-9_]+` (a `jsonb`),
/// read as SQLite's `$."a"[0]` paths are: a digit segment indexes an array only, a name
/// reads an object only (a strict jsonpath, its errors silenced into NULL). An array
/// index that does not fit an integer matches nothing, as in SQLite.
pub(super) fn json_extract(json_expr: &str, segments: &[String]) -> String {
    let mut path = String::from("strict $");
    for s in segments {
        if s.chars().all(|c| c.is_ascii_digit()) {
            if s.parse::<i32>().is_err() {
                return "(NULL::jsonb)".into();
            }
            path.push_str(&format!("[{s}]"));
        } else {
            path.push_str(&format!(".\"{s}\""));
        }
    }
    format!("jsonb_path_query_first({json_expr}, '{path}', '{{}}', TRUE)")
}

/// A value as text, for LIKE, LOWER and LENGTH.
pub(super) fn text_of(expr: &str, ty: Ty) -> String {
    match ty.kind {
        Kind::Text => expr.to_string(),
        Kind::Num | Kind::Json => format!("basalt_text({expr})"),
    }
}

/// How SQLite converts an operand before comparing it with the other: by the other's
/// column affinity (NUMERIC wins over TEXT; none converts nothing).
fn converted(ty: Ty, other: Ty) -> Conversion {
    if ty.affinity == Affinity::Numeric || other.affinity == Affinity::Numeric {
        if ty.affinity != Affinity::Numeric {
            return Conversion::Numeric;
        }
        return Conversion::None;
    }
    if other.affinity == Affinity::Text && ty.affinity == Affinity::None {
        return Conversion::Text;
    }
    Conversion::None
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Conversion {
    None,
    Numeric,
    Text,
}

/// The plain PostgreSQL type an operand has after its conversion, when it has one.
fn plain(ty: Ty, conv: Conversion) -> Option<Kind> {
    match (ty.kind, conv) {
        (Kind::Num, Conversion::None | Conversion::Numeric) => Some(Kind::Num),
        (Kind::Text, Conversion::None | Conversion::Text) => Some(Kind::Text),
        _ => None,
    }
}

fn key(expr: &str, ty: Ty, conv: Conversion) -> String {
    match (ty.kind, conv) {
        (Kind::Text, Conversion::Numeric) | (Kind::Json, Conversion::Numeric) => {
            format!("basalt_numkey({expr})")
        }
        (Kind::Num, Conversion::Text) | (Kind::Json, Conversion::Text) => {
            format!("basalt_textkey({expr})")
        }
        _ => format!("basalt_key({expr})"),
    }
}

/// `l op r` with SQLite's meaning (`=` and `!=` are SQLite's `IS` and `IS NOT`; `~` its
/// case-insensitive LIKE). `non_null` says one side is a bound non-NULL value: there `=`
/// selects the same rows as `IS NOT DISTINCT FROM` (its NULL only ever reads as false:
/// the compiler negates nothing but `COALESCE`d conditions) and an index can serve it.
pub(super) fn binary(op: CompareOp, l: &str, lt: Ty, r: &str, rt: Ty, non_null: bool) -> String {
    match op {
        CompareOp::Like => {
            return format!("{} ILIKE {} ESCAPE '\\'", text_of(l, lt), text_of(r, rt));
        }
        CompareOp::NotLike => {
            return format!(
                "({} NOT ILIKE {} ESCAPE '\\' OR {l} IS NULL)",
                text_of(l, lt),
                text_of(r, rt)
            );
        }
        _ => {}
    }
    let (lc, rc) = (converted(lt, rt), converted(rt, lt));
    let (l, r) = match (plain(lt, lc), plain(rt, rc)) {
        (Some(a), Some(b)) if a == b => {
            if a == Kind::Text && !matches!(op, CompareOp::Eq | CompareOp::Neq) {
                (l.to_string(), format!("{r} COLLATE \"C\""))
            } else {
                (l.to_string(), r.to_string())
            }
        }
        _ => (key(l, lt, lc), key(r, rt, rc)),
    };
    match op {
        CompareOp::Eq if non_null => format!("{l} = {r}"),
        CompareOp::Eq => format!("{l} IS NOT DISTINCT FROM {r}"),
        CompareOp::Neq => format!("{l} IS DISTINCT FROM {r}"),
        CompareOp::Gt => format!("{l} > {r}"),
        CompareOp::Gte => format!("{l} >= {r}"),
        CompareOp::Lt => format!("{l} < {r}"),
        _ => format!("{l} <= {r}"),
    }
}

/// `expr = null` (or `!= null`): PocketBase's empty values are NULL, `''` and 0 alike.
pub(super) fn is_empty(expr: &str, ty: Ty, eq: bool) -> String {
    let cond = match ty.kind {
        Kind::Text => format!("COALESCE({expr}, '') = ''"),
        Kind::Num => format!("COALESCE({expr}, 0) = 0"),
        Kind::Json => format!(
            "COALESCE({expr} IN ('null'::jsonb, '\"\"'::jsonb, '0'::jsonb, 'false'::jsonb), TRUE)"
        ),
    };
    if eq { cond } else { format!("NOT {cond}") }
}

/// An ORDER BY term sorting as SQLite does: text by bytes, NULLs first ascending.
pub(super) fn order_term(expr: &str, ty: Ty, descending: bool) -> String {
    let expr = match ty.kind {
        Kind::Text => format!("{expr} COLLATE \"C\""),
        Kind::Num => expr.to_string(),
        Kind::Json => format!("basalt_key({expr})"),
    };
    if descending {
        format!("{expr} DESC NULLS LAST")
    } else {
        format!("{expr} ASC NULLS FIRST")
    }
}

impl SqlFragment {
    /// The statement for PostgreSQL: each `?` placeholder becomes `$n` with its type
    /// (`$1::text`, `$2::int8`, `$3::float8`), the parameters bound in order.
    pub(crate) fn pg_sql(&self) -> String {
        let mut out = String::with_capacity(self.sql.len() + 8 * self.params.len());
        let mut params = self.params.iter();
        let mut n = 0;
        let mut quote: Option<char> = None;
        for ch in self.sql.chars() {
            match (quote, ch) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(ch),
                (None, '?') => {
                    n += 1;
                    let ty = match params.next() {
                        Some(SqlValue::Integer(_)) => "int8",
                        Some(SqlValue::Real(_)) => "float8",
                        _ => "text",
                    };
                    out.push_str(&format!("${n}::{ty}"));
                    continue;
                }
                (None, _) => {}
            }
            out.push(ch);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_and_typed_outside_quotes() {
        let f = SqlFragment {
            sql: "SELECT '?', \"a?\" FROM t WHERE a = ? AND b > ? AND c < ? AND d IS ?".into(),
            params: vec![
                SqlValue::Text("x".into()),
                SqlValue::Integer(1),
                SqlValue::Real(0.5),
                SqlValue::Null,
            ],
        };
        assert_eq!(
            f.pg_sql(),
            "SELECT '?', \"a?\" FROM t WHERE a = $1::text AND b > $2::int8 AND c < $3::float8 AND d IS $4::text"
        );
    }

    #[test]
    fn out_of_range_array_indexes_match_nothing() {
        assert_eq!(
            json_extract("\"m\"", &["a".into(), "0".into()]),
            "jsonb_path_query_first(\"m\", 'strict $.\"a\"[0]', '{}', TRUE)"
        );
        assert_eq!(
            json_extract("\"m\"", &["99999999999999999999".into()]),
            "(NULL::jsonb)"
        );
    }
}
