//! The other query-string languages of the records API: `sort`, `expand` and `fields`.

use super::ast::PathRoot;
use super::parser::{FilterError, parse_path};

/// One `sort` key: a record field path, `@random` or `@rowid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub path: String,
    pub descending: bool,
}

/// One `fields` entry: a dotted path (`*`, `title`, `expand.author.name`) with an optional
/// `:excerpt(max, withEllipsis)` modifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSelector {
    pub path: Vec<String>,
    pub excerpt: Option<(usize, bool)>,
}

const MAX_EXPAND_DEPTH: usize = 6;
/// Entries per `sort`, `expand` or `fields` list: far above real use, well below SQLite's
/// limits, so an oversized list is a 400 and never a 500.
const MAX_ENTRIES: usize = 64;

fn too_many(what: &str) -> FilterError {
    FilterError(format!("too many {what} entries (at most {MAX_ENTRIES})"))
}

fn record_path(raw: &str) -> Result<(), FilterError> {
    let p = parse_path(raw)?;
    if p.root != PathRoot::Record || p.modifier.is_some() {
        return Err(FilterError(format!("invalid field path {raw:?}")));
    }
    Ok(())
}

pub fn parse_sort(input: &str) -> Result<Vec<SortKey>, FilterError> {
    let mut keys = Vec::new();
    for part in input.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (descending, path) = match part.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, part.strip_prefix('+').unwrap_or(part)),
        };
        if path != "@random" && path != "@rowid" {
            record_path(path)?;
        }
        keys.push(SortKey {
            path: path.to_string(),
            descending,
        });
    }
    if keys.len() > MAX_ENTRIES {
        return Err(too_many("sort"));
    }
    Ok(keys)
}

pub fn parse_expand(input: &str) -> Result<Vec<Vec<String>>, FilterError> {
    let mut out = Vec::new();
    for part in input.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        record_path(part)?;
        let segments: Vec<String> = part.split('.').map(str::to_string).collect();
        if segments.len() > MAX_EXPAND_DEPTH {
            return Err(FilterError(format!(
                "expand path {part:?} is deeper than {MAX_EXPAND_DEPTH}"
            )));
        }
        out.push(segments);
    }
    if out.len() > MAX_ENTRIES {
        return Err(too_many("expand"));
    }
    Ok(out)
}

pub fn parse_fields(input: &str) -> Result<Vec<FieldSelector>, FilterError> {
    let mut out = Vec::new();
    for part in split_top_level(input) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (path, excerpt) = match part.split_once(":excerpt(") {
            Some((path, args)) => {
                let args = args
                    .strip_suffix(')')
                    .ok_or_else(|| FilterError(format!("invalid excerpt in {part:?}")))?;
                let mut it = args.split(',').map(str::trim);
                let max: usize = it
                    .next()
                    .and_then(|m| m.parse().ok())
                    .filter(|m| *m > 0)
                    .ok_or_else(|| FilterError(format!("invalid excerpt length in {part:?}")))?;
                let ellipsis = match it.next() {
                    None => false,
                    Some("true") | Some("1") => true,
                    Some("false") | Some("0") => false,
                    Some(_) => {
                        return Err(FilterError(format!("invalid excerpt flag in {part:?}")));
                    }
                };
                (path, Some((max, ellipsis)))
            }
            None => (part, None),
        };
        let segments: Vec<String> = path.split('.').map(str::to_string).collect();
        let valid = segments.iter().all(|s| {
            s == "*" || (!s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        });
        if !valid {
            return Err(FilterError(format!("invalid field {part:?}")));
        }
        out.push(FieldSelector {
            path: segments,
            excerpt,
        });
    }
    if out.len() > MAX_ENTRIES {
        return Err(too_many("fields"));
    }
    Ok(out)
}

/// Splits on commas outside parentheses (`title:excerpt(10,true),id`).
fn split_top_level(input: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in input.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&input[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&input[start..]);
    parts
}
