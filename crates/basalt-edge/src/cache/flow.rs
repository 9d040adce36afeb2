//! One request through a cache zone: bypass for methods and ranges the cache does not serve,
//! invalidation on unsafe methods (RFC 9111 4.4), fresh hits, stale-while-revalidate,
//! revalidation with conditional requests (a 304 refreshes the stored headers),
//! stale-if-error, and misses behind the cache lock, stored when the policy allows.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, request};
use http_body_util::BodyExt;
use http_cache_semantics::{AfterResponse, BeforeRequest, CacheOptions, CachePolicy};

use super::directives::{
    client_wants_fresh, directive, must_revalidate, not_modified, only_if_cached,
};
use super::lock::Turn;
use super::respond::{Outcome, Prefixed, mark, respond};
use super::{CacheZone, Entry, EntryMeta, millis, variant_key, vary_names};
use crate::body::{Body, empty, error_response, full};
use crate::pool::Pool;
use crate::proxy::{ClientSide, forward};

fn options() -> CacheOptions {
    CacheOptions {
        shared: true,
        ..CacheOptions::default()
    }
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
