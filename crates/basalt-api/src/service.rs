//! The API as one tower service: the get-by-id hot path first, everything else through
//! the router and its middleware stack.
//!
//! The hot path (`hot_get`) gives the answers the stack would give around it, without the
//! stack's seven nested layers and the outer router: the request id kept or made from the
//! same sequence, the any-origin CORS headers, a panic or a timeout answered as the
//! panic catcher and timeout layer answer them (shaped by `shape_errors`). It runs only
//! when every origin is allowed; an origin list keeps every request on the stack.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, StatusCode};
use axum::response::Response;
use futures_util::FutureExt;
use futures_util::future::Either;
use tower::Service;
use tower::ServiceExt;
use tower::util::Oneshot;

use crate::hot_get::HotGet;
use crate::middleware::{REQUEST_ID, SequentialRequestId, Stack};

/// The whole API; cheap to clone (hyper clones the service for every request).
#[derive(Clone)]
pub struct ApiService {
    shared: Arc<Shared>,
    /// The connection's peer, handed to handlers as axum's `ConnectInfo` (the auth rate
    /// limits key on the client address); the hot path does not need it.
    peer: Option<SocketAddr>,
}

struct Shared {
    /// `None` unless CORS allows any origin (the only CORS the hot path writes).
    hot: Option<HotGet>,
    ids: SequentialRequestId,
    request_timeout: Duration,
    stack: Stack,
}

impl ApiService {
    pub(crate) fn new(
        hot: Option<HotGet>,
        ids: SequentialRequestId,
        request_timeout: Duration,
        stack: Stack,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                hot,
                ids,
                request_timeout,
                stack,
            }),
            peer: None,
        }
    }

    /// This service for the requests of one connection from `peer`.
    pub fn with_peer(&self, peer: SocketAddr) -> Self {
        Self {
            shared: self.shared.clone(),
            peer: Some(peer),
        }
    }
}

pub type ApiFuture = Either<
    Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>,
    Oneshot<Stack, Request<Body>>,
>;

impl<B> Service<Request<B>> for ApiService
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ApiFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The stack is cloned per request (below) and always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if let Some(hot) = &self.shared.hot
            && let Some((answer, id)) = hot.answer(&req, &self.shared.ids)
        {
            return Either::Left(Box::pin(finish(answer, id, self.shared.request_timeout)));
        }
        if let Some(peer) = self.peer {
            req.extensions_mut().insert(ConnectInfo(peer));
        }
        Either::Right(self.shared.stack.clone().oneshot(req.map(Body::new)))
    }
}

/// The hot answer with what the stack adds around it.
async fn finish(
    answer: impl Future<Output = Response>,
    id: HeaderValue,
    timeout: Duration,
) -> Result<Response, Infallible> {
    let guarded = AssertUnwindSafe(answer).catch_unwind();
    let mut res = match tokio::time::timeout(timeout, guarded).await {
        Ok(Ok(res)) => res,
        Ok(Err(_)) => {
            tracing::error!("a request handler panicked");
            crate::middleware::bare_status(StatusCode::INTERNAL_SERVER_ERROR)
        }
        Err(_) => crate::middleware::bare_status(StatusCode::REQUEST_TIMEOUT),
    };
    crate::cors::add_any_origin_headers(res.headers_mut());
    crate::middleware::add_security_headers(res.headers_mut());
    if !res.headers().contains_key(&REQUEST_ID) {
        res.headers_mut().insert(REQUEST_ID.clone(), id);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use axum::http::header::ACCESS_CONTROL_ALLOW_ORIGIN;

    use super::*;

    async fn json_of(res: Response) -> serde_json::Value {
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    #[tokio::test]
    async fn a_panicking_hot_answer_is_a_shaped_500_with_the_stacks_headers() {
        let id = HeaderValue::from_static("req-1");
        let answer = async {
            if id.len() < 100 {
                panic!("boom");
            }
            Response::new(Body::empty())
        };
        let Ok(res) = finish(answer, id.clone(), Duration::from_secs(5)).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(res.headers()[&REQUEST_ID], "req-1");
        assert_eq!(res.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        let v = json_of(res).await;
        assert_eq!(v["status"], 500);
        assert_eq!(
            v["message"],
            "Something went wrong while processing your request."
        );
    }

    #[tokio::test]
    async fn a_hot_answer_past_the_request_timeout_is_a_shaped_408() {
        let answer = std::future::pending::<Response>();
        let Ok(res) = finish(
            answer,
            HeaderValue::from_static("r"),
            Duration::from_millis(10),
        )
        .await;
        assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(json_of(res).await["message"], "Request timeout.");
    }
}
