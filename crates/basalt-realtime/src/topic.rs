//! Subscription topics as PocketBase clients send them: `COLLECTION/*`,
//! `COLLECTION/RECORD_ID` or a special topic such as `@oauth2`, each optionally followed by
//! `?options=<url-encoded JSON {"query":{...},"headers":{...}}>`.

use std::sync::Arc;

use basalt_schema::filter::{Expr, parse_with_params};
use serde_json::{Map, Value};

use crate::RealtimeError;

/// Longest accepted topic, options included (PocketBase's limit).
pub const MAX_TOPIC_LEN: usize = 2500;
/// Most subscriptions one client may hold (PocketBase's limit).
pub const MAX_SUBSCRIPTIONS: usize = 1000;

/// What a subscription listens to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every record of a collection (by name or id): the list rule applies.
    Collection(String),
    /// One record: the view rule applies.
    Record(String, String),
    /// A topic no record event matches (e.g. `@oauth2`); only direct sends reach it.
    Special(String),
}

/// One parsed subscription. `topic` is the exact string the client sent: events are named
/// by it, so the SDK finds its listener.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub topic: Arc<str>,
    pub target: Target,
    /// `options.query`, values as strings (`@request.query.*`; `filter`, `expand`, `fields`).
    pub query: Map<String, Value>,
    /// `options.headers`, names lowercased with `-` as `_` (`@request.headers.*`).
    pub headers: Map<String, Value>,
    /// `options.query.filter`, parsed once; `Err` keeps the parse error for the log.
    pub filter: Option<Result<Arc<Expr>, String>>,
}

impl Subscription {
    pub fn parse(raw: &str) -> Result<Subscription, RealtimeError> {
        let raw_trimmed = raw.trim();
        if raw_trimmed.is_empty() {
            return Err(RealtimeError::InvalidTopic("empty topic".into()));
        }
        if raw_trimmed.len() > MAX_TOPIC_LEN {
            return Err(RealtimeError::InvalidTopic(format!(
                "longer than {MAX_TOPIC_LEN} characters"
            )));
        }
        // Events are named by the topic: a line break would forge fields in an SSE stream.
        if raw.chars().any(char::is_control) {
            return Err(RealtimeError::InvalidTopic("control characters".into()));
        }
        let (path, query_string) = match raw_trimmed.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (raw_trimmed, None),
        };
        let target = match path.split_once('/') {
            _ if path.starts_with('@') => Target::Special(path.to_string()),
            Some((c, "*")) if !c.is_empty() => Target::Collection(c.to_string()),
            Some((c, id)) if !c.is_empty() && !id.is_empty() && !id.contains('/') => {
                Target::Record(c.to_string(), id.to_string())
            }
            // The bare collection name is PocketBase's deprecated form of `COLLECTION/*`.
            None => Target::Collection(path.to_string()),
            _ => return Err(RealtimeError::InvalidTopic(format!("{path:?}"))),
        };
        let mut sub = Subscription {
            topic: Arc::from(raw),
            target,
            query: Map::new(),
            headers: Map::new(),
            filter: None,
        };
        if let Some(options) = query_string.and_then(options_param) {
            let parsed: Value = serde_json::from_str(&options)
                .map_err(|_| RealtimeError::InvalidTopic("options are not JSON".into()))?;
            if let Some(q) = parsed.get("query").and_then(Value::as_object) {
                sub.query = q
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(plain_string(v))))
                    .collect();
            }
            if let Some(h) = parsed.get("headers").and_then(Value::as_object) {
                sub.headers = h
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.to_ascii_lowercase().replace('-', "_"),
                            Value::String(plain_string(v)),
                        )
                    })
                    .collect();
            }
        }
        if let Some(f) = sub.query.get("filter").and_then(Value::as_str)
            && !f.trim().is_empty()
        {
            sub.filter = Some(
                parse_with_params(f, &Map::new())
                    .map(Arc::new)
                    .map_err(|e| e.to_string()),
            );
        }
        Ok(sub)
    }

    /// The collection (name or id) and record id an event must have to match.
    pub fn matches(&self, collection_name: &str, collection_id: &str, record_id: &str) -> bool {
        let same = |c: &str| c.eq_ignore_ascii_case(collection_name) || c == collection_id;
        match &self.target {
            Target::Collection(c) => same(c),
            Target::Record(c, id) => id == record_id && same(c),
            Target::Special(_) => false,
        }
    }

    /// True for a single-record subscription in this collection, whatever the record.
    pub(crate) fn targets_a_record_of(&self, collection_name: &str, collection_id: &str) -> bool {
        matches!(&self.target, Target::Record(c, _)
            if c.eq_ignore_ascii_case(collection_name) || c == collection_id)
    }

    /// The topic without its options: what `send_to_client` callers name.
    pub fn base(&self) -> &str {
        self.topic.split('?').next().unwrap_or(&self.topic)
    }
}

fn plain_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The decoded value of the `options` parameter of a URL query string.
fn options_param(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (percent_decode(k)? == "options").then(|| percent_decode(v))?
    })
}

/// URL query decoding (`+` is a space, `%XX` a byte); `None` for invalid UTF-8 or escapes.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_parse_as_the_sdk_sends_them() {
        let s = Subscription::parse("posts/*").expect("parse");
        assert_eq!(s.target, Target::Collection("posts".into()));
        assert!(s.matches("posts", "pbc_1", "abc"));
        assert!(s.matches("POSTS", "pbc_1", "abc"));
        assert!(!s.matches("comments", "pbc_2", "abc"));

        let s = Subscription::parse("pbc_1/abc").expect("parse");
        assert!(s.matches("posts", "pbc_1", "abc"));
        assert!(!s.matches("posts", "pbc_1", "abd"));

        // encodeURIComponent(JSON.stringify({query:{filter:"n > 1",expand:"a"},headers:{"X-Y":"z"}}))
        let raw = "posts/*?options=%7B%22query%22%3A%7B%22filter%22%3A%22n%20%3E%201%22%2C%22expand%22%3A%22a%22%7D%2C%22headers%22%3A%7B%22X-Y%22%3A%22z%22%7D%7D";
        let s = Subscription::parse(raw).expect("parse");
        assert_eq!(&*s.topic, raw);
        assert_eq!(s.base(), "posts/*");
        assert_eq!(s.query.get("expand"), Some(&Value::String("a".into())));
        assert_eq!(s.headers.get("x_y"), Some(&Value::String("z".into())));
        assert!(matches!(s.filter, Some(Ok(_))));

        let s = Subscription::parse("@oauth2").expect("parse");
        assert_eq!(s.target, Target::Special("@oauth2".into()));
        assert!(!s.matches("@oauth2", "", ""));
    }

    #[test]
    fn malformed_topics_are_refused() {
        for bad in [
            "",
            "  ",
            "/*",
            "posts/",
            "a/b/c",
            "posts/*\nevent:x",
            "posts/*?options=\r",
        ] {
            assert!(Subscription::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Subscription::parse(&"x".repeat(MAX_TOPIC_LEN + 1)).is_err());
        assert!(Subscription::parse("posts/*?options=%7Bnot-json").is_err());
        // A filter that does not parse is kept as an error and skips deliveries later.
        let s = Subscription::parse(
            "posts/*?options=%7B%22query%22%3A%7B%22filter%22%3A%22((%22%7D%7D",
        )
        .expect("parse");
        assert!(matches!(s.filter, Some(Err(_))));
    }
}
