//! The hot path: an anonymous `GET /api/collections/{c}/records/{id}` of a collection
//! whose view rule is open, answered without the router.
//!
//! Get by id is the most frequent request of a typical app and the cheapest one for the
//! store; through the router it pays for the route match, the url-params and matched-path
//! extensions, a boxed route clone, the `observe` middleware's boxed `Next` and the
//! handler's extractors, together more than the read itself. Here the path is split by
//! hand, and the answer `records::view` gives in this case is written straight from the
//! stored row (`AnonymousRow`: no decoded record map in between). Anything
//! else — a query string, an `Authorization` header, a percent-escape, a rule, an unknown
//! collection — goes through the router unchanged, so the fast path never has to agree
//! with the router on a case it does not handle.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::http::{Method, Request, header};
use axum::response::{IntoResponse, Response};
use basalt_schema::RuleSlot;
use futures_util::future::Either;
use tower::{Layer, Service};

use crate::ApiState;
use crate::error::ApiError;
use crate::json::{json_response, to_json};
use crate::records::shape::AnonymousRow;

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

#[derive(Clone)]
pub(crate) struct HotGetLayer {
    shared: Arc<Shared>,
}

struct Shared {
    state: ApiState,
}

impl HotGetLayer {
    pub(crate) fn new(state: ApiState) -> Self {
        Self {
            shared: Arc::new(Shared { state }),
        }
    }
}

impl<S> Layer<S> for HotGetLayer {
    type Service = HotGet<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HotGet {
            shared: self.shared.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub(crate) struct HotGet<S> {
    shared: Arc<Shared>,
    inner: S,
}

type Answer = Pin<Box<dyn Future<Output = Result<Response, std::convert::Infallible>> + Send>>;

impl<S, B> Service<Request<B>> for HotGet<S>
where
    S: Service<Request<B>, Response = Response, Error = std::convert::Infallible>,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Either<Answer, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match self.hot(&req) {
            Some(answer) => Either::Left(answer),
            None => Either::Right(self.inner.call(req)),
        }
    }
}

impl<S> HotGet<S> {
    /// The answer when `req` is the hot case, `None` for the router.
    fn hot<B>(&self, req: &Request<B>) -> Option<Answer> {
        if req.method() != Method::GET
            || req.uri().query().is_some()
            || req.headers().contains_key(header::AUTHORIZATION)
        {
            return None;
        }
        let (name, id) = record_path(req.uri().path())?;
        let state = &self.shared.state;
        let schema = state.store.schema();
        let c = schema.find(name)?.clone();
        if !matches!(schema.rules(&c.id)?.view, RuleSlot::Open) {
            return None;
        }
        let start = Instant::now();
        let request_id = req.headers().get(&crate::middleware::REQUEST_ID).cloned();
        let id = id.to_owned();
        let shared = self.shared.clone();
        Some(Box::pin(async move {
            let state = &shared.state;
            let written = state
                .store
                .view_row(&c, &id, {
                    let c = c.clone();
                    move |row| to_json(&AnonymousRow::new(&c, row))
                })
                .await;
            let res = match written {
                Ok(Some(Ok(json))) => json_response(json),
                Ok(Some(Err(e))) => {
                    tracing::error!(error = %e, "serialising a response");
                    ApiError::internal().into_response()
                }
                Ok(None) => ApiError::not_found().into_response(),
                Err(e) => ApiError::from_store(e, "Failed to view record.").into_response(),
            };
            crate::middleware::record_request(
                &state.metrics,
                &Method::GET,
                ROUTE,
                request_id.as_ref(),
                res.status(),
                start,
            );
            Ok(res)
        }))
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
