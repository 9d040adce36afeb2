//! Canonical text of an expression: re-parses to the same tree (used in logs and tests).

use std::fmt;

use super::ast::*;

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::And(a, b) => write!(f, "({a} && {b})"),
            Expr::Or(a, b) => write!(f, "({a} || {b})"),
            Expr::Compare { left, op, right } => write!(f, "{left} {} {right}", op.as_str()),
        }
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Literal(Literal::String(s)) => {
                write!(f, "\"{}\"", s.replace('"', "\\\""))
            }
            Operand::Literal(Literal::Number(n)) => write!(f, "{n}"),
            Operand::Literal(Literal::Bool(b)) => write!(f, "{b}"),
            Operand::Literal(Literal::Null) => write!(f, "null"),
            Operand::Macro(m) => write!(f, "@{}", macro_name(*m)),
            Operand::Path(p) => write!(f, "{p}"),
            Operand::Call(c) => {
                write!(f, "{}(", c.func.name())?;
                for (i, a) in c.args.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{a}")?;
                }
                write!(f, ")")
            }
        }
    }
}

fn macro_name(m: DateMacro) -> &'static str {
    match m {
        DateMacro::Now => "now",
        DateMacro::Yesterday => "yesterday",
        DateMacro::Tomorrow => "tomorrow",
        DateMacro::Second => "second",
        DateMacro::Minute => "minute",
        DateMacro::Hour => "hour",
        DateMacro::Day => "day",
        DateMacro::Month => "month",
        DateMacro::Year => "year",
        DateMacro::Weekday => "weekday",
        DateMacro::TodayStart => "todayStart",
        DateMacro::TodayEnd => "todayEnd",
        DateMacro::MonthStart => "monthStart",
        DateMacro::MonthEnd => "monthEnd",
        DateMacro::YearStart => "yearStart",
        DateMacro::YearEnd => "yearEnd",
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let root = match &self.root {
            PathRoot::Record => String::new(),
            PathRoot::RequestAuth => "@request.auth.".into(),
            PathRoot::RequestBody => "@request.body.".into(),
            PathRoot::RequestQuery => "@request.query.".into(),
            PathRoot::RequestHeaders => "@request.headers.".into(),
            PathRoot::RequestMethod => "@request.method".into(),
            PathRoot::RequestContext => "@request.context".into(),
            PathRoot::Collection { name, alias } => match alias {
                Some(a) => format!("@collection.{name}:{a}."),
                None => format!("@collection.{name}."),
            },
        };
        write!(f, "{root}{}", self.segments.join("."))?;
        if let Some(m) = self.modifier {
            let m = match m {
                Modifier::IsSet => "isset",
                Modifier::Changed => "changed",
                Modifier::Length => "length",
                Modifier::Each => "each",
                Modifier::Lower => "lower",
            };
            write!(f, ":{m}")?;
        }
        Ok(())
    }
}
