//! CORS with a fast path for the default, any-origin configuration.
//!
//! With every origin allowed, an actual (non-preflight) request's CORS headers do not
//! depend on the request at all: the same three static headers go on every answer. tower-
//! http's `Cors` rebuilds them per request (a header map, a joined `Vary` value, the
//! origin check); here they are appended from constants, and only preflights (`OPTIONS`)
//! and origin lists go through `Cors`, whose answers are the reference the tests compare.

use std::task::{Context, Poll};

use axum::http::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue, VARY,
};
use axum::http::{HeaderMap, Method, Request, Response};
use futures_util::future::{Either, FutureExt, Map};
use tower::{Layer, Service};
use tower_http::cors::{Cors, CorsLayer};

/// What `Cors` (allow any origin, expose `x-request-id`) puts on an actual request's answer.
static VARY_VALUE: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);
static ANY_ORIGIN: HeaderValue = HeaderValue::from_static("*");
static EXPOSED: HeaderValue = HeaderValue::from_static("x-request-id");

#[derive(Clone)]
pub(crate) struct ApiCorsLayer {
    cors: CorsLayer,
    any_origin: bool,
}

impl ApiCorsLayer {
    /// `any_origin` must be true only when `cors` allows any origin, exposes just
    /// `x-request-id` and allows no credentials.
    pub(crate) fn new(cors: CorsLayer, any_origin: bool) -> Self {
        Self { cors, any_origin }
    }
}

impl<S> Layer<S> for ApiCorsLayer {
    type Service = ApiCors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiCors {
            cors: self.cors.layer(inner),
            any_origin: self.any_origin,
        }
    }
}

#[derive(Clone)]
pub(crate) struct ApiCors<S> {
    cors: Cors<S>,
    any_origin: bool,
}

type Answer<B, E> = Result<Response<B>, E>;
type AddHeaders<B, E> = fn(Answer<B, E>) -> Answer<B, E>;

fn with_any_origin_headers<B, E>(res: Answer<B, E>) -> Answer<B, E> {
    res.map(|mut res| {
        add_any_origin_headers(res.headers_mut());
        res
    })
}

/// The headers `Cors` allowing any origin puts on an actual request's answer.
pub(crate) fn add_any_origin_headers(h: &mut HeaderMap) {
    // `Vary` may already list what the handler varies on: added to, never replaced.
    h.append(VARY, VARY_VALUE.clone());
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, ANY_ORIGIN.clone());
    h.insert(ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSED.clone());
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ApiCors<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<
        <Cors<S> as Service<Request<ReqBody>>>::Future,
        Map<S::Future, AddHeaders<ResBody, S::Error>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.cors.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if self.any_origin && req.method() != Method::OPTIONS {
            let add: AddHeaders<ResBody, S::Error> = with_any_origin_headers;
            Either::Right(self.cors.get_mut().call(req).map(add))
        } else {
            Either::Left(self.cors.call(req))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::body::Body;
    use axum::http::{HeaderMap, StatusCode};
    use tower::{ServiceBuilder, ServiceExt, service_fn};
    use tower_http::cors::Any;

    use super::*;

    fn reference() -> CorsLayer {
        CorsLayer::new()
            .allow_methods([Method::GET, Method::POST])
            .allow_headers(Any)
            .allow_origin(Any)
            .expose_headers([axum::http::HeaderName::from_static("x-request-id")])
    }

    async fn headers_of(any_origin: bool, req: Request<Body>) -> HeaderMap {
        let inner = service_fn(|_req: Request<Body>| async {
            let mut res = Response::new(Body::empty());
            res.headers_mut()
                .insert(VARY, HeaderValue::from_static("accept-encoding"));
            *res.status_mut() = StatusCode::OK;
            Ok::<_, Infallible>(res)
        });
        let svc = ServiceBuilder::new()
            .layer(ApiCorsLayer::new(reference(), any_origin))
            .service(inner);
        svc.oneshot(req).await.unwrap().headers().clone()
    }

    fn request(method: Method, origin: Option<&str>) -> Request<Body> {
        let mut b = Request::builder().method(method).uri("/api/x");
        if let Some(o) = origin {
            b = b.header("origin", o);
        }
        b.body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn the_fast_path_answers_with_the_same_headers_as_tower_http() {
        for method in [Method::GET, Method::POST, Method::DELETE] {
            for origin in [None, Some("https://app.example")] {
                let fast = headers_of(true, request(method.clone(), origin)).await;
                let slow = headers_of(false, request(method.clone(), origin)).await;
                assert_eq!(fast, slow, "{method} {origin:?}");
                assert_eq!(fast[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
                assert_eq!(fast.get_all(VARY).iter().count(), 2);
            }
        }
    }
}
