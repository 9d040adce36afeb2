//! A client's request body on its way to an upstream, watched: whatever goes wrong with
//! it (broken chunked framing, a stall, a client that leaves) is recorded here, at its
//! source, so the proxy can tell a client's fault from an upstream's after a failed
//! attempt. The upstream client only sees "the request body failed"; which side failed is
//! decided here, never guessed from an error message.

use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body::{Frame, SizeHint};

use crate::body::{Body, BoxError};
use crate::wire::guard::ConnState;

/// A client-side failure of a request body, answered to the client and never counted
/// against the upstream target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientFault {
    pub status: StatusCode,
    pub message: &'static str,
}

/// The error a watched body yields: the client's, with what the body reader reported.
#[derive(Debug)]
pub struct ClientBodyError {
    pub fault: ClientFault,
    source: BoxError,
}

impl std::fmt::Display for ClientBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "client request body: {}", self.fault.message)
    }
}

impl std::error::Error for ClientBodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

const STREAMING: u8 = 0;
/// The last poll found no bytes from the client yet.
const AWAITING_CLIENT: u8 = 1;
const ENDED: u8 = 2;
const FAILED: u8 = 3;

/// What became of a request body, shared between the body and the proxy.
pub struct BodyWatch {
    state: AtomicU8,
    fault: OnceLock<ClientFault>,
    /// When the client last sent part of the body (or ended it), in nanoseconds after
    /// `since`.
    progress_ns: AtomicU64,
    since: Instant,
}

impl BodyWatch {
    fn new() -> Self {
        Self {
            state: AtomicU8::new(STREAMING),
            fault: OnceLock::new(),
            progress_ns: AtomicU64::new(0),
            since: Instant::now(),
        }
    }

    /// The client's fault, when the body failed on the client's side.
    pub fn fault(&self) -> Option<ClientFault> {
        self.fault.get().copied()
    }

    /// The body is unfinished and its reader is waiting for the client to send more: the
    /// request is held up by the client, not by the upstream.
    pub fn awaiting_client(&self) -> bool {
        self.state.load(Ordering::Acquire) == AWAITING_CLIENT
    }

    /// The whole body has been read from the client.
    pub fn ended(&self) -> bool {
        self.state.load(Ordering::Acquire) == ENDED
    }

    /// When the client last sent part of the body, or its end.
    pub fn progress_at(&self) -> Instant {
        self.since + Duration::from_nanos(self.progress_ns.load(Ordering::Acquire))
    }

    fn progressed(&self, state: u8) {
        let n = self.since.elapsed().as_nanos() as u64;
        self.progress_ns.store(n, Ordering::Release);
        self.state.store(state, Ordering::Release);
    }
}

/// The default fault when the connection recorded none: the body ended short or was
/// malformed as its reader (hyper's HTTP/1, HTTP/2 or HTTP/3 decoder) saw it.
const INCOMPLETE: ClientFault = ClientFault {
    status: StatusCode::BAD_REQUEST,
    message: "malformed or incomplete request body",
};

/// A client's request body that records its fate in a [`BodyWatch`].
pub struct ClientBody<B> {
    inner: B,
    watch: Arc<BodyWatch>,
    conn: Arc<ConnState>,
}

impl<B> ClientBody<B> {
    /// Wraps the body of a request on `conn`; the watch goes to the proxy (in the request's
    /// extensions).
    pub fn new(inner: B, conn: Arc<ConnState>) -> (Self, Arc<BodyWatch>) {
        let watch = Arc::new(BodyWatch::new());
        let body = Self {
            inner,
            watch: watch.clone(),
            conn,
        };
        (body, watch)
    }
}

impl<B> http_body::Body for ClientBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let watch = &this.watch;
        match &polled {
            Poll::Pending => watch.state.store(AWAITING_CLIENT, Ordering::Release),
            Poll::Ready(None) => watch.progressed(ENDED),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => watch.progressed(ENDED),
            Poll::Ready(Some(Ok(_))) => watch.progressed(STREAMING),
            Poll::Ready(Some(Err(_))) => {}
        }
        match polled {
            Poll::Ready(Some(Err(e))) => {
                // The framing guard says why it cut the body off; otherwise the reader's
                // own verdict stands (a short or malformed body, a client gone).
                let fault = this
                    .conn
                    .body_fault()
                    .map(|(status, message)| ClientFault { status, message })
                    .unwrap_or(INCOMPLETE);
                let _ = watch.fault.set(fault);
                watch.state.store(FAILED, Ordering::Release);
                let error = ClientBodyError {
                    fault,
                    source: e.into(),
                };
                Poll::Ready(Some(Err(Box::new(error))))
            }
            other => other.map(|f| f.map(|r| r.map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Boxes a client's body with its watch.
pub fn watched<B>(inner: B, conn: Arc<ConnState>) -> (Body, Arc<BodyWatch>)
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    use http_body_util::BodyExt;
    let (body, watch) = ClientBody::new(inner, conn);
    (body.boxed_unsync(), watch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A body that yields one frame, then an error.
    struct Failing(u8);

    impl http_body::Body for Failing {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            self.0 += 1;
            Poll::Ready(Some(match self.0 {
                1 => Ok(Frame::data(Bytes::from_static(b"ab"))),
                _ => Err("cut".into()),
            }))
        }
    }

    #[tokio::test]
    async fn a_failing_body_records_the_clients_fault() {
        let (mut body, watch) = watched(Failing(0), ConnState::new());
        assert!(body.frame().await.expect("frame").is_ok());
        assert_eq!(watch.fault(), None);
        let e = body.frame().await.expect("frame").expect_err("error");
        assert!(e.is::<ClientBodyError>());
        assert_eq!(watch.fault(), Some(INCOMPLETE));
        assert!(!watch.ended() && !watch.awaiting_client());
    }

    #[tokio::test]
    async fn a_whole_body_records_its_end() {
        let inner = http_body_util::Full::new(Bytes::from_static(b"abc"));
        let (body, watch) = watched(inner, ConnState::new());
        assert_eq!(&body.collect().await.expect("body").to_bytes()[..], b"abc");
        assert!(watch.ended());
        assert_eq!(watch.fault(), None);
    }
}
