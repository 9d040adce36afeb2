//! The filter language's functions: `strftime(format[, time[, modifier...]])` and
//! `geoDistance(lonA, latA, lonB, latB)`, on both dialects with one meaning.
//!
//! SQLite's `strftime` is the reference (PocketBase calls it). PostgreSQL has no
//! equivalent, so the format is translated at compile time into `to_char` pieces and the
//! modifiers into interval arithmetic; only specifiers and modifiers whose translation
//! answers exactly as SQLite does are accepted, on both backends, and anything else is an
//! invalid query (400) rather than an answer that differs by backend. `geoDistance` is a
//! function registered on every SQLite connection (`register_sqlite_functions`: the
//! bundled SQLite has no math functions) and `basalt_geo_distance` in `pg::SUPPORT_SQL`.

use basalt_schema::filter::{Call, DateMacro, Function, Literal, Operand};

use super::path::{Ctx, Side, invalid};
use super::{Dialect, Kind, SqlFragment, SqlValue, Ty};
use crate::StoreError;

/// Earth's mean radius in km, as PocketBase's `geoDistance` uses it.
const EARTH_RADIUS_KM: f64 = 6371.0;

/// The largest time shift one modifier may ask for, in seconds (about 3,000 years): keeps
/// PostgreSQL's interval arithmetic within its range, so no modifier can make it fail.
const MAX_SHIFT_SECONDS: f64 = 1.0e11;

/// `c` as an operand. `equality`: it is compared with `=`/`!=`, where PocketBase reads a
/// `strftime` that yields NULL (a value that is no date) as `''` (probed: `strftime('%Y',
/// name) = ''` holds, `!= ''` does not, `> ''` does not). `geoDistance` stays NULL.
pub(super) fn call(ctx: &Ctx, c: &Call, equality: bool) -> Result<Side, StoreError> {
    match c.func {
        Function::Strftime => {
            let side = strftime(ctx, &c.args)?;
            Ok(match side {
                Side::Scalar(f, ty) if equality => {
                    let mut out = SqlFragment::new("COALESCE(");
                    out.push(f);
                    out.push_str(", '')");
                    Side::Scalar(out, ty)
                }
                side => side,
            })
        }
        Function::GeoDistance => geo_distance(ctx, &c.args),
    }
}

/// One argument as a single value; a multi-valued one (a field reached through a
/// multiple relation, `:each`) is refused, as its meaning would depend on the backend.
fn scalar_arg(ctx: &Ctx, a: &Operand, func: &str) -> Result<(SqlFragment, Ty), StoreError> {
    let side = match a {
        Operand::Literal(Literal::String(s)) => super::path::param_side(SqlValue::Text(s.clone())),
        Operand::Literal(Literal::Number(n)) => super::path::param_side(SqlValue::Real(*n)),
        Operand::Literal(Literal::Null) => super::path::param_side(SqlValue::Null),
        Operand::Macro(m) => super::path::param_side(super::compile::macro_value(*m)),
        Operand::Path(p) => ctx.resolve(p)?,
        Operand::Literal(Literal::Bool(_)) | Operand::Call(_) => {
            return Err(invalid(format!("invalid argument of {func}()")));
        }
    };
    match side {
        Side::Scalar(f, ty) => Ok((f, ty)),
        Side::Set(..) => Err(invalid(format!(
            "{func}() does not take a multi-valued argument"
        ))),
    }
}

fn geo_distance(ctx: &Ctx, args: &[Operand]) -> Result<Side, StoreError> {
    let mut f = SqlFragment::new("basalt_geo_distance(");
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            f.push_str(", ");
        }
        let (arg, ty) = scalar_arg(ctx, a, "geoDistance")?;
        match ctx.d {
            Dialect::Sqlite => f.push(arg),
            Dialect::Postgres => {
                let wrap = match ty.kind {
                    Kind::Num => ("(", ")::float8"),
                    Kind::Text | Kind::Json => ("basalt_num(", ")"),
                };
                f.push_str(wrap.0);
                f.push(arg);
                f.push_str(wrap.1);
            }
        }
    }
    f.push_str(")");
    Ok(Side::Scalar(f, Ty::NUM))
}

/// The Haversine distance in km between two points given in degrees.
pub(crate) fn haversine_km(lon_a: f64, lat_a: f64, lon_b: f64, lat_b: f64) -> f64 {
    let (phi_a, phi_b) = (lat_a.to_radians(), lat_b.to_radians());
    let d_phi = (lat_b - lat_a).to_radians();
    let d_lambda = (lon_b - lon_a).to_radians();
    let h =
        (d_phi / 2.0).sin().powi(2) + phi_a.cos() * phi_b.cos() * (d_lambda / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// Registers the functions the SQLite dialect's statements call on `conn`.
pub(crate) fn register_sqlite_functions(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    use rusqlite::types::ValueRef;
    conn.create_scalar_function(
        "basalt_geo_distance",
        4,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |cx| {
            let mut v = [0.0f64; 4];
            for (i, slot) in v.iter_mut().enumerate() {
                // As SQLite's math functions read their arguments: numbers, and text that
                // reads as a number; anything else makes the result NULL.
                let n = match cx.get_raw(i) {
                    ValueRef::Integer(n) => n as f64,
                    ValueRef::Real(n) => n,
                    ValueRef::Text(t) => match std::str::from_utf8(t)
                        .ok()
                        .and_then(|s| s.trim().parse::<f64>().ok())
                        .filter(|n| n.is_finite())
                    {
                        Some(n) => n,
                        None => return Ok(None),
                    },
                    ValueRef::Null | ValueRef::Blob(_) => return Ok(None),
                };
                *slot = n;
            }
            let d = haversine_km(v[0], v[1], v[2], v[3]);
            Ok(d.is_finite().then_some(d))
        },
    )
}

/// One piece of a strftime format.
#[derive(Debug, PartialEq)]
enum Piece {
    Text(String),
    /// A specifier, as PostgreSQL SQL over the timestamp `{t}`.
    Spec(&'static str),
}

/// The specifiers whose PostgreSQL translation answers exactly as SQLite's strftime.
fn spec_sql(c: char) -> Option<&'static str> {
    Some(match c {
        'd' => "to_char({t}, 'DD')",
        'e' => "lpad(to_char({t}, 'FMDD'), 2, ' ')",
        'f' => "to_char({t}, 'SS.MS')",
        'F' => "to_char({t}, 'YYYY-MM-DD')",
        'G' => "to_char({t}, 'IYYY')",
        'g' => "to_char({t}, 'IY')",
        'H' => "to_char({t}, 'HH24')",
        'I' => "to_char({t}, 'HH12')",
        'j' => "to_char({t}, 'DDD')",
        'k' => "lpad(to_char({t}, 'FMHH24'), 2, ' ')",
        'l' => "lpad(to_char({t}, 'FMHH12'), 2, ' ')",
        'm' => "to_char({t}, 'MM')",
        'M' => "to_char({t}, 'MI')",
        'p' => "to_char({t}, 'AM')",
        'P' => "to_char({t}, 'am')",
        'R' => "to_char({t}, 'HH24:MI')",
        's' => "trunc(extract(epoch FROM {t}))::bigint::text",
        'S' => "to_char({t}, 'SS')",
        'T' => "to_char({t}, 'HH24:MI:SS')",
        'u' => "to_char({t}, 'ID')",
        'V' => "to_char({t}, 'IW')",
        'w' => "extract(dow FROM {t})::int::text",
        // SQLite: (day of year from 0 + 7 - weekday from Monday = 0) / 7.
        'W' => {
            "lpad(((extract(doy FROM {t})::int + 7 - extract(isodow FROM {t})::int) / 7)::text, 2, '0')"
        }
        'Y' => "to_char({t}, 'YYYY')",
        _ => return None,
    })
}

fn parse_format(format: &str) -> Result<Vec<Piece>, StoreError> {
    let mut out: Vec<Piece> = vec![];
    let mut text = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            text.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => text.push('%'),
            Some(s) => {
                let sql = spec_sql(s).ok_or_else(|| {
                    invalid(format!("strftime(): unsupported format specifier %{s}"))
                })?;
                if !text.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut text)));
                }
                out.push(Piece::Spec(sql));
            }
            None => return Err(invalid("strftime(): the format ends with a lone %")),
        }
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

/// A modifier both backends apply alike.
#[derive(Debug, PartialEq)]
enum Shift {
    /// `±N days|hours|minutes|seconds`, in seconds.
    Seconds(f64),
    /// `±N months|years`, in months (the day of month kept and overflowing into the
    /// next month, as SQLite does).
    Months(i64),
    /// `start of day|month|year`: PostgreSQL's `date_trunc` field.
    StartOf(&'static str),
}

impl Shift {
    /// The modifier as SQLite reads it (its canonical spelling of what was validated).
    fn sqlite_text(&self) -> String {
        match self {
            Shift::Seconds(s) => format!("{s:+} seconds"),
            Shift::Months(m) => format!("{m:+} months"),
            Shift::StartOf(u) => format!("start of {u}"),
        }
    }
}

fn parse_modifier(m: &str) -> Result<Shift, StoreError> {
    let bad = || invalid(format!("strftime(): unsupported modifier {m:?}"));
    let lower = m.trim().to_ascii_lowercase();
    if let Some(unit) = lower.strip_prefix("start of ") {
        return match unit {
            "day" | "month" | "year" => Ok(Shift::StartOf(match unit {
                "day" => "day",
                "month" => "month",
                _ => "year",
            })),
            _ => Err(bad()),
        };
    }
    let (num, unit) = lower.split_once(' ').ok_or_else(bad)?;
    let unit = unit.trim();
    let unit = unit.strip_suffix('s').unwrap_or(unit);
    let number_ok = !num.is_empty()
        && num
            .trim_start_matches(['+', '-'])
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.')
        && num.chars().filter(|c| matches!(c, '+' | '-')).count() <= 1;
    let n: f64 = number_ok
        .then(|| num.parse().ok())
        .flatten()
        .filter(|n: &f64| n.is_finite())
        .ok_or_else(bad)?;
    let seconds = match unit {
        "day" => 86_400.0,
        "hour" => 3_600.0,
        "minute" => 60.0,
        "second" => 1.0,
        "month" | "year" => {
            if n.fract() != 0.0 {
                return Err(invalid(format!(
                    "strftime(): {m:?}: months and years must be whole numbers"
                )));
            }
            let months = if unit == "year" { n * 12.0 } else { n };
            if months.abs() * 31.0 * 86_400.0 > MAX_SHIFT_SECONDS {
                return Err(invalid(format!("strftime(): {m:?} is out of range")));
            }
            return Ok(Shift::Months(months as i64));
        }
        _ => return Err(bad()),
    };
    let s = n * seconds;
    if s.abs() > MAX_SHIFT_SECONDS {
        return Err(invalid(format!("strftime(): {m:?} is out of range")));
    }
    Ok(Shift::Seconds(s))
}

fn strftime(ctx: &Ctx, args: &[Operand]) -> Result<Side, StoreError> {
    let format = match args.first() {
        Some(Operand::Literal(Literal::String(s))) => s,
        _ => return Err(invalid("strftime(): the format must be a string")),
    };
    let pieces = parse_format(format)?;
    let shifts = args
        .iter()
        .skip(2)
        .map(|m| match m {
            Operand::Literal(Literal::String(s)) => parse_modifier(s),
            _ => Err(invalid("strftime(): modifiers must be strings")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Without a time value SQLite formats "now"; both backends get the same instant.
    let now = Operand::Macro(DateMacro::Now);
    let (time, ty) = scalar_arg(ctx, args.get(1).unwrap_or(&now), "strftime")?;
    match ctx.d {
        Dialect::Sqlite => {
            let mut f = SqlFragment::new("strftime(");
            f.push(SqlFragment::param(SqlValue::Text(format.clone())));
            f.push_str(", ");
            f.push(time);
            for s in &shifts {
                f.push_str(", ");
                f.push(SqlFragment::param(SqlValue::Text(s.sqlite_text())));
            }
            f.push_str(")");
            Ok(Side::Scalar(f, Ty::TEXT))
        }
        Dialect::Postgres => {
            let mut ts = SqlFragment::new("basalt_ts(");
            if ty.kind == Kind::Text {
                ts.push(time);
            } else {
                // What SQLite's strftime reads of a number or a JSON value: its text
                // (a number is a Julian day number, as `basalt_ts` reads it).
                ts.push_str("basalt_text(");
                ts.push(time);
                ts.push_str(")");
            }
            ts.push_str(")");
            for s in &shifts {
                ts = match s {
                    Shift::Seconds(secs) => {
                        let mut f = SqlFragment::new("(");
                        f.push(ts);
                        f.push_str(" + ");
                        f.push(SqlFragment::param(SqlValue::Real(*secs)));
                        f.push_str(" * interval '1 second')");
                        f
                    }
                    Shift::Months(m) => {
                        let mut f = SqlFragment::new("basalt_add_months(");
                        f.push(ts);
                        f.push_str(", ");
                        f.push(SqlFragment::param(SqlValue::Integer(*m)));
                        f.push_str(")");
                        f
                    }
                    Shift::StartOf(unit) => {
                        let mut f = SqlFragment::new(format!("date_trunc('{unit}', "));
                        f.push(ts);
                        f.push_str(")");
                        f
                    }
                };
            }
            let alias = ctx.alias("t");
            let t = format!("{alias}.t");
            // SQLite formats years 0000-9999 only and answers NULL outside them.
            let mut f = SqlFragment::new(format!(
                "(SELECT CASE WHEN {t} >= '0001-01-01'::timestamp AND {t} < '10000-01-01'::timestamp THEN "
            ));
            if pieces.is_empty() {
                f.push_str("''");
            }
            for (i, p) in pieces.iter().enumerate() {
                if i > 0 {
                    f.push_str(" || ");
                }
                match p {
                    Piece::Text(s) => f.push(SqlFragment::param(SqlValue::Text(s.clone()))),
                    Piece::Spec(sql) => f.push_str(&sql.replace("{t}", &t)),
                }
            }
            f.push_str(" END FROM (SELECT ");
            f.push(ts);
            f.push_str(&format!(" AS t) {alias})"));
            Ok(Side::Scalar(f, Ty::TEXT))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haversine_matches_known_distances() {
        assert_eq!(haversine_km(23.32, 42.69, 23.32, 42.69), 0.0);
        // Sofia to London, as PocketBase answers it (between 2014 and 2015 km).
        let d = haversine_km(23.32, 42.69, -0.12, 51.5);
        assert!((2014.0..2015.0).contains(&d), "{d}");
        assert!((haversine_km(0.0, 0.0, 180.0, 0.0) - std::f64::consts::PI * 6371.0).abs() < 1e-6);
    }

    #[test]
    fn formats_refuse_what_postgresql_cannot_answer_alike() {
        assert!(parse_format("%Y-%m-%d %H:%M:%f %%").is_ok());
        for bad in ["%J", "%Q", "%", "abc%", "%U", "%C"] {
            assert!(parse_format(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn modifiers_are_a_closed_set() {
        assert_eq!(parse_modifier("+1 day").unwrap(), Shift::Seconds(86_400.0));
        assert_eq!(
            parse_modifier("-2 Hours").unwrap(),
            Shift::Seconds(-7_200.0)
        );
        assert_eq!(parse_modifier("1.5 minutes").unwrap(), Shift::Seconds(90.0));
        assert_eq!(parse_modifier("+1 year").unwrap(), Shift::Months(12));
        assert_eq!(parse_modifier("-3 months").unwrap(), Shift::Months(-3));
        assert_eq!(
            parse_modifier("start of month").unwrap(),
            Shift::StartOf("month")
        );
        for bad in [
            "localtime",
            "utc",
            "unixepoch",
            "weekday 1",
            "+1.5 months",
            "+1 fortnight",
            "start of week",
            "++1 day",
            "1e3 days",
            "+99999999999 days",
            "",
        ] {
            assert!(parse_modifier(bad).is_err(), "{bad:?}");
        }
    }
}
