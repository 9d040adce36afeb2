//! One request through a cache zone: bypass for methods and ranges the cache does not serve,
//! invalidation on unsafe methods (RFC 9111 4.4), fresh hits, stale-while-revalidate,
//! revalidation with conditional requests (a 304 refreshes the stored headers),
//! stale-if-error, and misses behind the cache lock, stored when the policy allows.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, request};
use http_body::Frame;
use http_body_util::BodyExt;
use http_cache_semantics::{AfterResponse, BeforeRequest, CacheOptions, CachePolicy};

use super::lock::Turn;
use super::{CacheZone, Entry, EntryMeta, millis, variant_key, vary_names};
use crate::body::{Body, BoxError, empty, error_response, full};
use crate::pool::Pool;
use crate::proxy::{ClientSide, forward};

/// What the cache did with a request, sent as `X-Cache` and in `Cache-Status` (RFC 9211).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Hit,
    Miss,
    Stale,
    Revalidated,
    Bypass,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Stale => "stale",
            Outcome::Revalidated => "revalidated",
            Outcome::Bypass => "bypass",
        }
    }

    fn cache_status(self, stored: bool) -> &'static str {
        match (self, stored) {
            (Outcome::Hit, _) => "basalt; hit",
            (Outcome::Stale, _) => "basalt; hit; detail=stale",
            (Outcome::Revalidated, _) => "basalt; fwd=stale; fwd-status=304",
            (Outcome::Miss, true) => "basalt; fwd=uri-miss; stored",
            (Outcome::Miss, false) => "basalt; fwd=uri-miss",
            (Outcome::Bypass, _) => "basalt; fwd=bypass",
        }
    }
}

fn options() -> CacheOptions {
    CacheOptions {
        shared: true,
        ..CacheOptions::default()
    }
}

fn mark(
    zone: &CacheZone,
    mut resp: Response<Body>,
    outcome: Outcome,
    stored: bool,
) -> Response<Body> {
    zone.metrics.cache.lookup(&zone.name, outcome.label());
    let h = resp.headers_mut();
    h.insert(
        header::HeaderName::from_static("x-cache"),
        HeaderValue::from_static(match outcome {
            Outcome::Hit => "HIT",
            Outcome::Miss => "MISS",
            Outcome::Stale => "STALE",
            Outcome::Revalidated => "REVALIDATED",
            Outcome::Bypass => "BYPASS",
        }),
    );
    h.insert(
        header::HeaderName::from_static("cache-status"),
        HeaderValue::from_static(outcome.cache_status(stored)),
    );
    resp
}

/// The request as the policy sees it: GET (HEAD is answered from GET entries) on the URL.
fn policy_request(url: &str, headers: &HeaderMap) -> request::Parts {
    let mut parts = Request::new(()).into_parts().0;
    parts.method = Method::GET;
    parts.uri = url.parse().unwrap_or_default();
    parts.headers = headers.clone();
    // The URL already holds the host (without port) the entry is keyed by; the policy's
    // Host comparison uses the same, so listeners on other ports share entries.
    if let Some(h) = parts.uri.host().and_then(|h| HeaderValue::from_str(h).ok()) {
        parts.headers.insert(header::HOST, h);
    }
    parts
}

/// A cache directive's seconds (`stale-while-revalidate=30`) in a `Cache-Control` value.
fn directive(headers: &HeaderMap, name: &str) -> Option<Duration> {
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
fn must_revalidate(stored: &HeaderMap) -> bool {
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

fn only_if_cached(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("only-if-cached"))
}

/// Whether the client asked not to be given anything stale.
fn client_wants_fresh(headers: &HeaderMap) -> bool {
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

pub async fn serve(
    zone: &Arc<CacheZone>,
    pool: &Arc<Pool>,
    req: Request<Body>,
    client: &ClientSide,
    url: String,
) -> Response<Body> {
    let method = req.method().clone();
    if method != Method::GET && method != Method::HEAD {
        let invalidates = method != Method::OPTIONS && method != Method::TRACE;
        let resp = forward(pool, req, client).await;
        let s = resp.status();
        if invalidates && (s.is_success() || s.is_redirection()) {
            zone.purge_url(&url).await;
        }
        return mark(zone, resp, Outcome::Bypass, false);
    }
    if req.headers().contains_key(header::RANGE) {
        // Ranges go to the upstream; the cache stores and serves whole bodies only.
        let resp = forward(pool, req, client).await;
        return mark(zone, resp, Outcome::Bypass, false);
    }
    let (parts, _) = req.into_parts();
    let lookup = policy_request(&url, &parts.headers);
    let key = zone.lookup_key(&url, &parts.headers);
    let cached_only = only_if_cached(&parts.headers);
    if let Some(entry) = zone.get(&key).await {
        let now = SystemTime::now();
        match entry.meta.policy.before_request(&lookup, now) {
            BeforeRequest::Fresh(_) => {
                return mark(zone, respond(&entry, &parts, now), Outcome::Hit, false);
            }
            BeforeRequest::Stale { .. } if cached_only => {}
            BeforeRequest::Stale {
                request,
                matches: true,
            } => {
                return stale(zone, pool, parts, client, url, entry, request).await;
            }
            BeforeRequest::Stale { matches: false, .. } => {}
        }
    }
    if cached_only {
        // RFC 9111 5.2.1.7: nothing usable is stored, and the client forbade going upstream.
        let resp = error_response(StatusCode::GATEWAY_TIMEOUT, "not in the cache");
        return mark(zone, resp, Outcome::Miss, false);
    }
    if method == Method::HEAD {
        let resp = forward(pool, Request::from_parts(parts, empty()), client).await;
        return mark(zone, resp, Outcome::Miss, false);
    }
    match zone.lock.acquire(&key) {
        Turn::Leader(guard) => {
            let (resp, stored) = fetch(zone, pool, &parts, client, &url).await;
            drop(guard);
            mark(zone, resp, Outcome::Miss, stored)
        }
        Turn::Follower(mut done) => {
            let _ = tokio::time::timeout(zone.lock_timeout, done.changed()).await;
            let key = zone.lookup_key(&url, &parts.headers);
            if let Some(entry) = zone.get(&key).await {
                let now = SystemTime::now();
                if let BeforeRequest::Fresh(_) = entry.meta.policy.before_request(&lookup, now) {
                    return mark(zone, respond(&entry, &parts, now), Outcome::Hit, false);
                }
            }
            let (resp, stored) = fetch(zone, pool, &parts, client, &url).await;
            mark(zone, resp, Outcome::Miss, stored)
        }
    }
}

/// A stored entry that needs revalidation: served stale while a background request
/// refreshes it (within `stale-while-revalidate`), or revalidated now.
async fn stale(
    zone: &Arc<CacheZone>,
    pool: &Arc<Pool>,
    parts: request::Parts,
    client: &ClientSide,
    url: String,
    entry: Arc<Entry>,
    revalidation: request::Parts,
) -> Response<Body> {
    let now = SystemTime::now();
    let staleness = entry.staleness(now);
    let stored_headers = entry.headers();
    let may_serve_stale = !client_wants_fresh(&parts.headers) && !must_revalidate(&stored_headers);
    if may_serve_stale
        && directive(&stored_headers, "stale-while-revalidate").is_some_and(|w| staleness <= w)
    {
        let first = super::locked(&zone.revalidating).insert(entry.meta.key.clone());
        if first {
            let (zone, pool, entry) = (zone.clone(), pool.clone(), entry.clone());
            let client = ClientSide {
                peer: client.peer,
                client: client.client,
                https: client.https,
            };
            let forward_parts = clone_parts(&parts);
            tokio::spawn(async move {
                let key = entry.meta.key.clone();
                let _ = revalidate(
                    &zone,
                    &pool,
                    forward_parts,
                    &client,
                    &url,
                    entry,
                    revalidation,
                )
                .await;
                super::locked(&zone.revalidating).remove(&key);
            });
        }
        return mark(zone, respond(&entry, &parts, now), Outcome::Stale, false);
    }
    let (resp, outcome, stored) = revalidate(
        zone,
        pool,
        clone_parts(&parts),
        client,
        &url,
        entry.clone(),
        revalidation,
    )
    .await;
    match resp {
        Revalidated::Entry(e) => mark(
            zone,
            respond(&e, &parts, SystemTime::now()),
            outcome,
            stored,
        ),
        Revalidated::Response(r) => mark(zone, r, outcome, stored),
    }
}

enum Revalidated {
    Entry(Arc<Entry>),
    Response(Response<Body>),
}

fn clone_parts(p: &request::Parts) -> request::Parts {
    let mut parts = Request::new(()).into_parts().0;
    parts.method = p.method.clone();
    parts.uri = p.uri.clone();
    parts.version = p.version;
    parts.headers = p.headers.clone();
    parts
}

/// Sends the conditional request. A 304 merges its headers into the entry; an error or 5xx
/// within `stale-if-error` keeps serving the entry; anything else replaces it.
async fn revalidate(
    zone: &Arc<CacheZone>,
    pool: &Arc<Pool>,
    mut parts: request::Parts,
    client: &ClientSide,
    url: &str,
    entry: Arc<Entry>,
    revalidation: request::Parts,
) -> (Revalidated, Outcome, bool) {
    parts.method = Method::GET;
    let client_headers = std::mem::replace(&mut parts.headers, revalidation.headers);
    let mut plain = clone_parts(&parts);
    plain.headers = client_headers.clone();
    let resp = forward(pool, Request::from_parts(parts, empty()), client).await;
    let now = SystemTime::now();
    if resp.status().is_server_error() {
        zone.metrics.cache.revalidation(&zone.name, "error");
        let stored = entry.headers();
        let window = directive(&stored, "stale-if-error").filter(|_| !must_revalidate(&stored));
        if window.is_some_and(|w| entry.staleness(now) <= w) {
            return (Revalidated::Entry(entry), Outcome::Stale, false);
        }
        return (Revalidated::Response(resp), Outcome::Miss, false);
    }
    let vary = vary_names(&entry.headers()).unwrap_or_default();
    let lookup = policy_request(url, &kept_headers(&vary, &client_headers));
    let (rparts, body) = resp.into_parts();
    match entry.meta.policy.after_response(&lookup, &rparts, now) {
        AfterResponse::NotModified(policy, merged) => {
            zone.metrics.cache.revalidation(&zone.name, "not_modified");
            let mut meta = entry.meta.clone();
            let ttl = policy.time_to_live(now);
            meta.policy = policy;
            meta.stale_at_ms = millis(now + ttl);
            meta.headers = stored_headers(&merged.headers);
            let fresh = Entry {
                meta,
                body: entry.body.clone(),
            };
            let vary = vary_names(&fresh.headers()).unwrap_or_default();
            let fresh = Arc::new(fresh);
            zone.put_arc(fresh.clone(), vary).await;
            (Revalidated::Entry(fresh), Outcome::Revalidated, true)
        }
        AfterResponse::Modified(..) if rparts.status == StatusCode::NOT_MODIFIED => {
            // A 304 that matches nothing stored (another validator): the client asked for
            // no condition, so fetch the full response instead of passing the 304 on.
            zone.metrics.cache.revalidation(&zone.name, "modified");
            let (resp, stored) = fetch(zone, pool, &plain, client, url).await;
            (Revalidated::Response(resp), Outcome::Miss, stored)
        }
        AfterResponse::Modified(..) => {
            zone.metrics.cache.revalidation(&zone.name, "modified");
            let resp = Response::from_parts(rparts, body);
            let (resp, stored) =
                store(zone, &policy_request(url, &client_headers), url, resp).await;
            (Revalidated::Response(resp), Outcome::Miss, stored)
        }
    }
}

/// Headers kept in an entry: what the upstream sent, minus per-response ones.
fn stored_headers(h: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    h.iter()
        .filter(|(k, _)| {
            *k != header::AGE && k.as_str() != "x-cache" && k.as_str() != "cache-status"
        })
        .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
        .collect()
}

/// A miss: the request goes upstream without the client's validators (the cache wants a
/// full response it can store and then answer the condition itself).
async fn fetch(
    zone: &Arc<CacheZone>,
    pool: &Arc<Pool>,
    parts: &request::Parts,
    client: &ClientSide,
    url: &str,
) -> (Response<Body>, bool) {
    let mut up = clone_parts(parts);
    up.headers.remove(header::IF_NONE_MATCH);
    up.headers.remove(header::IF_MODIFIED_SINCE);
    let resp = forward(pool, Request::from_parts(up, empty()), client).await;
    let lookup = policy_request(url, &parts.headers);
    let (resp, stored) = store(zone, &lookup, url, resp).await;
    if stored
        && let Some(entry) = zone.get(&zone.lookup_key(url, &parts.headers)).await
        && not_modified(&parts.headers, &entry.headers())
    {
        return (respond(&entry, parts, SystemTime::now()), true);
    }
    (resp, stored)
}

/// Stores `resp` when the policy allows and it fits, returning what the client gets.
async fn store(
    zone: &Arc<CacheZone>,
    lookup: &request::Parts,
    url: &str,
    resp: Response<Body>,
) -> (Response<Body>, bool) {
    let (rparts, body) = resp.into_parts();
    let now = SystemTime::now();
    let policy = CachePolicy::new_options(lookup, &rparts, now, options());
    let vary = vary_names(&rparts.headers);
    let declared = rparts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let storable = policy.is_storable()
        && !rparts.headers.contains_key(header::SET_COOKIE)
        && vary.is_some()
        && !rparts.headers.contains_key(header::CONTENT_RANGE)
        && declared.is_none_or(|n| n <= zone.max_object);
    let Some(vary) = vary.filter(|_| storable) else {
        return (Response::from_parts(rparts, body), false);
    };
    let mut buf = BytesMut::new();
    let mut body = body;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Ok(data) = f.into_data() {
                    buf.extend_from_slice(&data);
                    if buf.len() as u64 > zone.max_object {
                        // Too big to store: what was read and the rest stream on.
                        let rest = Prefixed {
                            prefix: Some(buf.freeze()),
                            rest: body,
                        };
                        return (Response::from_parts(rparts, rest.boxed_unsync()), false);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(zone = %zone.name, error = %e, "upstream body failed");
                return (
                    error_response(StatusCode::BAD_GATEWAY, "upstream response failed"),
                    false,
                );
            }
        }
    }
    let body = buf.freeze();
    // Only the headers the response varies on (and Host) are kept from the request: enough
    // to match later requests, without storing anyone's credentials.
    let kept = kept_headers(&vary, &lookup.headers);
    let stored_policy =
        CachePolicy::new_options(&policy_request(url, &kept), &rparts, now, options());
    let ttl = stored_policy.time_to_live(now);
    let entry = Entry {
        meta: EntryMeta {
            key: variant_key(url, &vary, &lookup.headers),
            url: url.to_string(),
            tags: zone.tags_of(&rparts.headers),
            policy: stored_policy,
            status: rparts.status.as_u16(),
            headers: stored_headers(&rparts.headers),
            stale_at_ms: millis(now + ttl),
        },
        body: body.clone(),
    };
    zone.put_arc(Arc::new(entry), vary).await;
    (Response::from_parts(rparts, full(body)), true)
}

/// The request headers a policy keeps: those the response varies on, and Host.
fn kept_headers(vary: &[header::HeaderName], headers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::new();
    for n in vary.iter().chain(std::iter::once(&header::HOST)) {
        for v in headers.get_all(n) {
            kept.append(n.clone(), v.clone());
        }
    }
    kept
}

/// Whether the client's validators match the entry (then it gets a 304).
fn not_modified(req: &HeaderMap, stored: &HeaderMap) -> bool {
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

/// The client's response from an entry: stored headers, a current `Age`, the body unless
/// HEAD, or a 304 when the client's validators match.
fn respond(entry: &Entry, req: &request::Parts, now: SystemTime) -> Response<Body> {
    let mut headers = entry.headers();
    let age = entry.meta.policy.age(now).as_secs();
    headers.insert(header::AGE, HeaderValue::from(age));
    let status = StatusCode::from_u16(entry.meta.status).unwrap_or(StatusCode::OK);
    if status == StatusCode::OK && not_modified(&req.headers, &headers) {
        headers.remove(header::CONTENT_LENGTH);
        let mut r = Response::new(empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        *r.headers_mut() = headers;
        return r;
    }
    let body = if req.method == Method::HEAD {
        empty()
    } else {
        full(entry.body.clone())
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

/// A body that yields bytes already read, then the rest of the stream.
struct Prefixed {
    prefix: Option<Bytes>,
    rest: Body,
}

impl http_body::Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(p) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(p))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
