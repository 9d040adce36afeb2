//! Reading what requests and stored responses say about caching: `Cache-Control`
//! directives the policy crate leaves to us (stale-*, must-revalidate, only-if-cached,
//! a client refusing stale) and the client's validators.

use std::time::Duration;

use http::header::{self, HeaderMap};

/// A cache directive's seconds (`stale-while-revalidate=30`) in a `Cache-Control` value.
pub fn directive(headers: &HeaderMap, name: &str) -> Option<Duration> {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|d| d.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.trim().trim_matches('"').parse().ok())
        .map(Duration::from_secs)
}

/// `must-revalidate` / `proxy-revalidate`: a stale entry is never served without a
/// successful revalidation (RFC 9111 5.2.2.2), whatever `stale-*` says.
pub fn must_revalidate(stored: &HeaderMap) -> bool {
    stored
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| {
            let d = d.trim();
            d.eq_ignore_ascii_case("must-revalidate") || d.eq_ignore_ascii_case("proxy-revalidate")
        })
}

pub fn only_if_cached(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("only-if-cached"))
}

/// Whether the client asked not to be given anything stale.
pub fn client_wants_fresh(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| {
            let d = d.trim().to_ascii_lowercase();
            d == "no-cache" || d == "max-age=0" || d == "must-revalidate"
        })
        || headers
            .get(header::PRAGMA)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"no-cache"))
}

/// Whether the client's validators match the entry (then it gets a 304).
pub fn not_modified(req: &HeaderMap, stored: &HeaderMap) -> bool {
    if let Some(inm) = req.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        let Some(etag) = stored.get(header::ETAG).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
        return inm.trim() == "*" || inm.split(',').any(|t| bare(t) == bare(etag));
    }
    let since = req
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    let modified = stored
        .get(header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    matches!((since, modified), (Some(s), Some(m)) if m <= s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn validators_and_directives() {
        let mut stored = HeaderMap::new();
        stored.insert(header::ETAG, HeaderValue::from_static("\"v1\""));
        stored.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=1, stale-while-revalidate=30"),
        );
        let mut req = HeaderMap::new();
        req.insert(header::IF_NONE_MATCH, HeaderValue::from_static("W/\"v1\""));
        assert!(not_modified(&req, &stored));
        req.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"v2\""));
        assert!(!not_modified(&req, &stored));
        assert_eq!(
            directive(&stored, "stale-while-revalidate"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(directive(&stored, "stale-if-error"), None);
        let mut c = HeaderMap::new();
        c.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        assert!(client_wants_fresh(&c));
    }
}
