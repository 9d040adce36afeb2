//! Tokenizer of the filter language: operators, quoted strings, numbers, identifiers
//! (dotted, with `@` roots and `:modifiers`), `{:placeholders}`, the commas of function
//! calls and `//` comments.

use super::ast::CompareOp;
use super::parser::FilterError;

#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    LParen,
    RParen,
    Comma,
    And,
    Or,
    Op(CompareOp),
    Str(String),
    Num(f64),
    Ident(String),
    Placeholder(String),
}

pub fn tokenize(input: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            c if c.is_whitespace() => i += 1,
            '/' if next == Some('/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '(' => {
                out.push(Token::LParen);
                i += 1;
            }
            ')' => {
                out.push(Token::RParen);
                i += 1;
            }
            ',' => {
                out.push(Token::Comma);
                i += 1;
            }
            '&' if next == Some('&') => {
                out.push(Token::And);
                i += 2;
            }
            '|' if next == Some('|') => {
                out.push(Token::Or);
                i += 2;
            }
            '\'' | '"' => {
                let (s, end) = quoted(&chars, i)?;
                out.push(Token::Str(s));
                i = end;
            }
            '{' if next == Some(':') => {
                let start = i + 2;
                let mut j = start;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                if j == start || chars.get(j) != Some(&'}') {
                    return Err(FilterError(format!("invalid placeholder at {i}")));
                }
                out.push(Token::Placeholder(chars[start..j].iter().collect()));
                i = j + 1;
            }
            '=' | '!' | '>' | '<' | '~' | '?' => {
                let (op, len) = operator(&chars[i..])
                    .ok_or_else(|| FilterError(format!("invalid operator at {i}")))?;
                out.push(Token::Op(op));
                i += len;
            }
            c if c.is_ascii_digit()
                || (c == '-' && next.is_some_and(|n| n.is_ascii_digit() || n == '.'))
                || (c == '.' && next.is_some_and(|n| n.is_ascii_digit())) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let n: f64 = text
                    .parse()
                    .map_err(|_| FilterError(format!("invalid number {text:?}")))?;
                out.push(Token::Num(n));
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == '@' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || matches!(chars[i], '_' | '@' | '.' | ':'))
                {
                    i += 1;
                }
                out.push(Token::Ident(chars[start..i].iter().collect()));
            }
            other => {
                return Err(FilterError(format!(
                    "unexpected character {other:?} at {i}"
                )));
            }
        }
    }
    Ok(out)
}

fn quoted(chars: &[char], start: usize) -> Result<(String, usize), FilterError> {
    let q = chars[start];
    let mut s = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && chars.get(i + 1) == Some(&q) {
            s.push(q);
            i += 2;
        } else if c == q {
            return Ok((s, i + 1));
        } else {
            s.push(c);
            i += 1;
        }
    }
    Err(FilterError(format!(
        "unterminated string starting at {start}"
    )))
}

fn operator(s: &[char]) -> Option<(CompareOp, usize)> {
    let text: String = s.iter().take(4).collect();
    const OPS: &[(&str, CompareOp)] = &[
        ("?!=", CompareOp::AnyNeq),
        ("?!~", CompareOp::AnyNotLike),
        ("?>=", CompareOp::AnyGte),
        ("?<=", CompareOp::AnyLte),
        ("?=", CompareOp::AnyEq),
        ("?>", CompareOp::AnyGt),
        ("?<", CompareOp::AnyLt),
        ("?~", CompareOp::AnyLike),
        ("!=", CompareOp::Neq),
        ("!~", CompareOp::NotLike),
        (">=", CompareOp::Gte),
        ("<=", CompareOp::Lte),
        ("=", CompareOp::Eq),
        (">", CompareOp::Gt),
        ("<", CompareOp::Lt),
        ("~", CompareOp::Like),
    ];
    OPS.iter()
        .find(|(t, _)| text.starts_with(t))
        .map(|(t, op)| (*op, t.len()))
}
