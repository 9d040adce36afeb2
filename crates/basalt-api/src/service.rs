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
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::Response;
use futures_util::FutureExt;
use futures_util::future::Either;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
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
            && let Some((answer, id)) = hot.answer(&req, &self.shared.ids, self.peer)
        {
            return Either::Left(Box::pin(finish(answer, id, self.shared.request_timeout)));
        }
        if let Some(peer) = self.peer {
            req.extensions_mut().insert(ConnectInfo(peer));
        }
        if req.body().is_end_stream() {
            return Either::Right(self.shared.stack.clone().oneshot(req.map(Body::new)));
        }
        // A request with a body: what its handler leaves unread is read after it, so
        // the connection stays usable (see `Leftover`). A client that asked to be told
        // before sending its body is not made to send it just to be thrown away: its
        // connection is closed instead.
        let may_drain = req
            .headers()
            .get(header::EXPECT)
            .is_none_or(|v| !v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let slot = Slot::default();
        let req = req.map(|b| {
            Body::new(Leftover {
                inner: Some(Body::new(b)),
                slot: slot.clone(),
            })
        });
        let stack = self.shared.stack.clone();
        Either::Left(Box::pin(async move {
            let Ok(mut res) = stack.oneshot(req).await;
            if !drain(&slot, may_drain).await {
                res.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(res)
        }))
    }
}

/// Where a request body goes when its handler drops it unread.
type Slot = Arc<Mutex<Option<Body>>>;

/// How much of a body its handler left unread is read after it, and for how long: as Go's
/// server does (PocketBase's), small leftovers are read so the client may send its next
/// request on the same connection.
const DRAIN_BYTES: usize = 256 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// A request body that, dropped before its end (an upload refused as too large while it
/// still arrives), hands what is left to its [`Slot`]. hyper gives up on a connection
/// whose request body was not read, and closes it after the answer without saying so:
/// a client that reuses it (browsers, undici, the SDKs) sends its next request into a
/// closed socket and gets a broken pipe instead of an answer.
struct Leftover {
    inner: Option<Body>,
    slot: Slot,
}

impl HttpBody for Leftover {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = Pin::new(inner).poll_frame(cx);
        if let Poll::Ready(None) = frame {
            this.inner = None;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for Leftover {
    fn drop(&mut self) {
        if let Some(body) = self.inner.take().filter(|b| !b.is_end_stream()) {
            *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(body);
        }
    }
}

/// Reads and discards what a handler left of its request body, within [`DRAIN_BYTES`] and
/// [`DRAIN_TIME`] (not at all unless `may_drain`); false when it had to stop short (the
/// connection then closes).
async fn drain(slot: &Slot, may_drain: bool) -> bool {
    let left = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    let Some(mut body) = left else {
        return true;
    };
    if !may_drain {
        return false;
    }
    let read = async {
        let mut budget = DRAIN_BYTES;
        loop {
            match body.frame().await {
                None => return true,
                Some(Err(_)) => return false,
                Some(Ok(frame)) => {
                    let n = frame.data_ref().map_or(0, Bytes::len);
                    if n > budget {
                        return false;
                    }
                    budget -= n;
                }
            }
        }
    };
    tokio::time::timeout(DRAIN_TIME, read)
        .await
        .unwrap_or(false)
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
