//! The client's side of a cache decision: `X-Cache` / `Cache-Status` on the response and
//! its metric, a response built from a stored entry, and a body that replays bytes already
//! read before the rest of an upstream stream.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode, request};
use http_body::Frame;

use super::directives::not_modified;
use super::{CacheZone, Entry};
use crate::body::{Body, BoxError, empty, full};

/// What the cache did with a request, sent as `X-Cache` and in `Cache-Status` (RFC 9211).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
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

pub fn mark(
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

/// The client's response from an entry: stored headers, a current `Age`, the body unless
/// HEAD, or a 304 when the client's validators match.
pub fn respond(entry: &Entry, req: &request::Parts, now: SystemTime) -> Response<Body> {
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
pub struct Prefixed {
    pub prefix: Option<Bytes>,
    pub rest: Body,
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
