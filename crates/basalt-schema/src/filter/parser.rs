//! Recursive-descent parser for PocketBase's filter language. Never panics: input length
//! and nesting depth are bounded, and every malformed input is a [`FilterError`].

use serde_json::{Map, Value};

use super::ast::*;
use super::lexer::{Token, tokenize};

const MAX_INPUT: usize = 16 * 1024;
const MAX_DEPTH: usize = 64;
/// Comparisons per expression: keeps the compiled SQL within the database's expression
/// depth limits, so an oversized filter is a 400 and never a 500.
const MAX_COMPARISONS: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter: {0}")]
pub struct FilterError(pub String);

/// Parses a filter or rule expression.
pub fn parse(input: &str) -> Result<Expr, FilterError> {
    parse_with_params(input, &Map::new())
}

/// Parses with `{:name}` placeholders replaced by literal values from `params`.
pub fn parse_with_params(input: &str, params: &Map<String, Value>) -> Result<Expr, FilterError> {
    if input.len() > MAX_INPUT {
        return Err(FilterError("the expression is too long".into()));
    }
    let tokens = tokenize(input)?;
    if tokens.is_empty() {
        return Err(FilterError("empty expression".into()));
    }
    let comparisons = tokens.iter().filter(|t| matches!(t, Token::Op(_))).count();
    if comparisons > MAX_COMPARISONS {
        return Err(FilterError(format!(
            "the expression has more than {MAX_COMPARISONS} comparisons"
        )));
    }
    let mut p = Parser {
        tokens,
        pos: 0,
        params,
        depth: 0,
    };
    let expr = p.or_expr()?;
    if p.pos != p.tokens.len() {
        return Err(FilterError(format!(
            "unexpected token at position {}",
            p.pos
        )));
    }
    Ok(expr)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    params: &'a Map<String, Value>,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn or_expr(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.and_expr()?;
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            let right = self.and_expr()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.primary()?;
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            let right = self.primary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn primary(&mut self) -> Result<Expr, FilterError> {
        if self.peek() == Some(&Token::LParen) {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(FilterError("the expression is nested too deeply".into()));
            }
            self.pos += 1;
            let e = self.or_expr()?;
            if self.next() != Some(Token::RParen) {
                return Err(FilterError("missing closing parenthesis".into()));
            }
            self.depth -= 1;
            return Ok(e);
        }
        let left = self.operand()?;
        let op = match self.next() {
            Some(Token::Op(op)) => op,
            _ => return Err(FilterError("expected a comparison operator".into())),
        };
        let right = self.operand()?;
        Ok(Expr::Compare { left, op, right })
    }

    fn operand(&mut self) -> Result<Operand, FilterError> {
        if let (Some(Token::Ident(name)), Some(Token::LParen)) =
            (self.tokens.get(self.pos), self.tokens.get(self.pos + 1))
        {
            let name = name.clone();
            self.pos += 2;
            return self.call(&name);
        }
        self.value()
    }

    /// `name(arg, ...)` after its opening parenthesis. Arguments are values, identifiers
    /// and placeholders, never calls (as in PocketBase).
    fn call(&mut self, name: &str) -> Result<Operand, FilterError> {
        let func = match name {
            "strftime" => Function::Strftime,
            "geoDistance" => Function::GeoDistance,
            _ => return Err(FilterError(format!("unknown function {name:?}"))),
        };
        let mut args = vec![];
        if self.peek() == Some(&Token::RParen) {
            self.pos += 1;
        } else {
            loop {
                if matches!(
                    (self.peek(), self.tokens.get(self.pos + 1)),
                    (Some(Token::Ident(_)), Some(Token::LParen))
                ) {
                    return Err(FilterError(format!(
                        "{name}() does not take a function call as an argument"
                    )));
                }
                args.push(self.value()?);
                match self.next() {
                    Some(Token::Comma) => {}
                    Some(Token::RParen) => break,
                    _ => {
                        return Err(FilterError(format!(
                            "expected , or ) in the arguments of {name}()"
                        )));
                    }
                }
            }
        }
        check_call(func, &args)?;
        Ok(Operand::Call(Call { func, args }))
    }

    fn value(&mut self) -> Result<Operand, FilterError> {
        match self.next() {
            Some(Token::Str(s)) => Ok(Operand::Literal(Literal::String(s))),
            Some(Token::Num(n)) => Ok(Operand::Literal(Literal::Number(n))),
            Some(Token::Ident(id)) => ident_operand(&id),
            Some(Token::Placeholder(name)) => match self.params.get(&name) {
                None => Err(FilterError(format!(
                    "missing value for placeholder {{:{name}}}"
                ))),
                Some(v) => Ok(Operand::Literal(value_literal(v))),
            },
            _ => Err(FilterError("expected a value or identifier".into())),
        }
    }
}

/// Arity and argument kinds, as PocketBase checks them: `strftime` takes a string format,
/// an optional time value (a field, a string, a date macro) and string modifiers;
/// `geoDistance` four numbers or identifiers (`null` allowed).
fn check_call(func: Function, args: &[Operand]) -> Result<(), FilterError> {
    let name = func.name();
    let bad = |msg: String| Err(FilterError(format!("{name}(): {msg}")));
    match func {
        Function::Strftime => {
            let Some(format) = args.first() else {
                return bad("expected a format argument".into());
            };
            if !matches!(format, Operand::Literal(Literal::String(_))) {
                return bad("the format must be a string".into());
            }
            if let Some(time) = args.get(1)
                && !matches!(
                    time,
                    Operand::Path(_) | Operand::Macro(_) | Operand::Literal(Literal::String(_))
                )
            {
                return bad("the time value must be a field, a string or a date macro".into());
            }
            if args.len() > 2 + 8 {
                return bad("too many modifiers".into());
            }
            for m in args.iter().skip(2) {
                if !matches!(m, Operand::Literal(Literal::String(_))) {
                    return bad("modifiers must be strings".into());
                }
            }
        }
        Function::GeoDistance => {
            if args.len() != 4 {
                return bad(format!("expected 4 arguments, got {}", args.len()));
            }
            for (i, a) in args.iter().enumerate() {
                if !matches!(
                    a,
                    Operand::Path(_) | Operand::Literal(Literal::Number(_) | Literal::Null)
                ) {
                    return bad(format!("argument {} must be a number or a field", i + 1));
                }
            }
        }
    }
    Ok(())
}

fn value_literal(v: &Value) -> Literal {
    match v {
        Value::Null => Literal::Null,
        Value::Bool(b) => Literal::Bool(*b),
        Value::Number(n) => Literal::Number(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => Literal::String(s.clone()),
        other => Literal::String(other.to_string()),
    }
}

fn ident_operand(raw: &str) -> Result<Operand, FilterError> {
    match raw {
        "true" => return Ok(Operand::Literal(Literal::Bool(true))),
        "false" => return Ok(Operand::Literal(Literal::Bool(false))),
        "null" => return Ok(Operand::Literal(Literal::Null)),
        _ => {}
    }
    if let Some(m) = date_macro(raw) {
        return Ok(Operand::Macro(m));
    }
    parse_path(raw).map(Operand::Path)
}

fn date_macro(raw: &str) -> Option<DateMacro> {
    Some(match raw {
        "@now" => DateMacro::Now,
        "@yesterday" => DateMacro::Yesterday,
        "@tomorrow" => DateMacro::Tomorrow,
        "@second" => DateMacro::Second,
        "@minute" => DateMacro::Minute,
        "@hour" => DateMacro::Hour,
        "@day" => DateMacro::Day,
        "@month" => DateMacro::Month,
        "@year" => DateMacro::Year,
        "@weekday" => DateMacro::Weekday,
        "@todayStart" => DateMacro::TodayStart,
        "@todayEnd" => DateMacro::TodayEnd,
        "@monthStart" => DateMacro::MonthStart,
        "@monthEnd" => DateMacro::MonthEnd,
        "@yearStart" => DateMacro::YearStart,
        "@yearEnd" => DateMacro::YearEnd,
        _ => return None,
    })
}

fn is_segment(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses a dotted identifier with an optional trailing `:modifier`.
pub fn parse_path(raw: &str) -> Result<Path, FilterError> {
    let bad = || FilterError(format!("invalid identifier {raw:?}"));
    let (body, modifier) = match raw.rsplit_once(':') {
        // `@collection.name:alias.field` has a colon too, but a modifier has no dot after it.
        Some((b, m)) if !m.contains('.') => {
            let modifier = match m {
                "isset" => Modifier::IsSet,
                "changed" => Modifier::Changed,
                "length" => Modifier::Length,
                "each" => Modifier::Each,
                "lower" => Modifier::Lower,
                _ => return Err(FilterError(format!("unknown modifier :{m}"))),
            };
            (b, Some(modifier))
        }
        _ => (raw, None),
    };
    let mut parts = body.split('.');
    let first = parts.next().ok_or_else(bad)?;
    let rest: Vec<&str> = parts.collect();
    let (root, segments): (PathRoot, Vec<&str>) = if first == "@request" {
        let kind = rest.first().copied().ok_or_else(bad)?;
        let tail = rest[1..].to_vec();
        let root = match kind {
            "auth" => PathRoot::RequestAuth,
            "body" | "data" => PathRoot::RequestBody,
            "query" => PathRoot::RequestQuery,
            "headers" => PathRoot::RequestHeaders,
            "method" if tail.is_empty() => PathRoot::RequestMethod,
            "context" if tail.is_empty() => PathRoot::RequestContext,
            _ => return Err(bad()),
        };
        if tail.is_empty() && !matches!(root, PathRoot::RequestMethod | PathRoot::RequestContext) {
            return Err(bad());
        }
        (root, tail)
    } else if first == "@collection" {
        let target = rest.first().copied().ok_or_else(bad)?;
        let (name, alias) = match target.split_once(':') {
            Some((n, a)) => (n, Some(a.to_string())),
            None => (target, None),
        };
        if !is_segment(name) || alias.as_deref().is_some_and(|a| !is_segment(a)) || rest.len() < 2 {
            return Err(bad());
        }
        (
            PathRoot::Collection {
                name: name.to_string(),
                alias,
            },
            rest[1..].to_vec(),
        )
    } else if first.starts_with('@') {
        return Err(bad());
    } else {
        let mut all = vec![first];
        all.extend(rest);
        (PathRoot::Record, all)
    };
    if !segments.iter().all(|s| is_segment(s)) {
        return Err(bad());
    }
    if matches!(modifier, Some(Modifier::IsSet | Modifier::Changed))
        && root != PathRoot::RequestBody
    {
        return Err(FilterError(
            "the :isset and :changed modifiers apply only to @request.body fields".into(),
        ));
    }
    Ok(Path {
        root,
        segments: segments.into_iter().map(str::to_string).collect(),
        modifier,
    })
}
