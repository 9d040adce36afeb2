//! The hot path: an anonymous `GET /api/collections/{c}/records/{id}` of a collection
//! whose view rule is open, answered without the router.
//!
//! Get by id is the most frequent request of a typical app and the cheapest one for the
//! store; through the router it pays for the route match, the url-params and matched-path
//! extensions, a boxed route clone, the `observe` middleware's boxed `Next` and the
//! handler's extractors, together more than the read itself. Here the path is split by
//! hand, and the answer `records::view` gives in this case is written straight from the
//! stored row (`StoredRow`: no decoded record map in between). Anything
//! else — a query string, an `Authorization` header, a percent-escape, a rule, an unknown
//! collection — goes through the router unchanged, so the fast path never has to agree
//! with the router on a case it does not handle.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;

use axum::body::HttpBody;
use axum::http::{HeaderMap, HeaderValue, Method, Request, header};
use axum::response::{IntoResponse, Response};
use basalt_schema::RuleSlot;
use basalt_service::Caller;

use crate::ApiState;
use crate::error::ApiError;
use crate::json::JSON_CAPACITY;
use crate::middleware::{REQUEST_ID, SequentialRequestId};
use crate::records::conditional::Validators;
use crate::records::shape::StoredRow;
use crate::request_log::PendingLog;

/// The router's own pattern of this route: metrics and logs label the request with it.
pub(crate) const ROUTE: &str = "/api/collections/{collection}/records/{id}";

/// `(collection, id)` of a record path, when it needs no decoding and has exactly those
/// two segments (what the router's `{collection}` and `{id}` match).
fn record_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/api/collections/")?;
    let (collection, rest) = rest.split_once('/')?;
    let id = rest.strip_prefix("records/")?;
    let plain = !collection.is_empty() && !id.is_empty() && !id.contains('/');
    (plain && !path.contains('%')).then_some((collection, id))
}

/// Answers the hot case; built once, shared by every request.
pub(crate) struct HotGet {
    state: ApiState,
}

impl HotGet {
    pub(crate) fn new(state: ApiState) -> Self {
        Self { state }
    }

    /// The answer when `req` is the hot case, `None` for the router, with the id the
    /// request goes by: its own `x-request-id`, or the next of `ids`.
    pub(crate) fn answer<B: HttpBody>(
        &self,
        req: &Request<B>,
        ids: &SequentialRequestId,
        peer: Option<SocketAddr>,
    ) -> Option<(impl Future<Output = Response> + Send + 'static, HeaderValue)> {
        // A request with a body goes to the router: its body limit answers an oversized
        // one with 413 whatever the route.
        if req.method() != Method::GET
            || req.uri().query().is_some()
            || req.headers().contains_key(header::AUTHORIZATION)
            || req.body().size_hint().exact() != Some(0)
        {
            return None;
        }
        let (name, id) = record_path(req.uri().path())?;
        let state = &self.state;
        let schema = state.service.store.schema();
        let c = schema.find(name)?.clone();
        if !matches!(schema.rules(&c.id)?.view, RuleSlot::Open) {
            return None;
        }
        let start = Instant::now();
        let request_id = match req.headers().get(&REQUEST_ID) {
            Some(id) => id.clone(),
            None => ids.next_value()?,
        };
        let answer_id = request_id.clone();
        let log = PendingLog::capture(state, req, peer);
        let logs = log.is_some().then(|| state.service.logs.clone());
        let id = id.to_owned();
        let validators = Validators::of(&state.service, &c);
        // Only `If-None-Match` of the request is read once the answer is ready.
        let mut conditions = HeaderMap::new();
        for tag in req.headers().get_all(header::IF_NONE_MATCH) {
            conditions.append(header::IF_NONE_MATCH, tag.clone());
        }
        let (store, metrics) = (state.service.store.clone(), state.metrics.clone());
        // Logged and counted once ready.
        let answer = async move {
            let written = store
                .view_row(&c, &id, {
                    let c = c.clone();
                    move |row| {
                        let mut out = Vec::with_capacity(JSON_CAPACITY);
                        StoredRow::new(&c, row, &Caller(None))
                            .write_json(&mut out)
                            .map(|()| out)
                    }
                })
                .await;
            let res = match written {
                Ok(Some(Ok(json))) => validators.answer(&metrics, &conditions, json),
                Ok(Some(Err(e))) => {
                    tracing::error!(error = %e, "serialising a response");
                    ApiError::internal().into_response()
                }
                Ok(None) => ApiError::not_found().into_response(),
                Err(e) => ApiError::from_store(e, "Failed to view record.").into_response(),
            };
            crate::middleware::record_request(
                &metrics,
                &Method::GET,
                ROUTE,
                Some(&request_id),
                res.status(),
                start,
            );
            if let (Some(log), Some(logs)) = (log, logs) {
                log.finish(&logs, &res, start);
            }
            res
        };
        Some((answer, answer_id))
    }
}

#[cfg(test)]
mod tests {
    use super::record_path;

    #[test]
    fn only_plain_two_segment_record_paths_are_hot() {
        let cases = [
            ("/api/collections/posts/records/abc", Some(("posts", "abc"))),
            ("/api/collections/p/records/a_b-c", Some(("p", "a_b-c"))),
            ("/api/collections/posts/records/", None),
            ("/api/collections/posts/records", None),
            ("/api/collections//records/abc", None),
            ("/api/collections/posts/records/abc/", None),
            ("/api/collections/posts/records/a/b", None),
            ("/api/collections/posts/records/a%20b", None),
            ("/api/collections/po%73ts/records/abc", None),
            ("/api/collections/posts/other/abc", None),
            ("/api/collections/posts/auth-methods", None),
            ("/api/collection/posts/records/abc", None),
        ];
        for (path, want) in cases {
            assert_eq!(record_path(path), want, "{path}");
        }
    }
}
