//! The hyper path's upstream side on the fast path's raw connections: a bodiless request
//! that hyper served (an HTTP/2 stream above all, or an HTTP/1 request the fast path left
//! to hyper) is written to the upstream from its parts, and the response head parsed with
//! httparse, without hyper's client connection task and the channels between it and the
//! request. The connections are the fast path's (`H1Client::take_idle`/`keep_idle`).
//!
//! A request with a body or asking for an upgrade keeps hyper's client.

use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::header;
use http::uri::Authority;
use http::{Method, Request, Response};
use http_body::{Frame, SizeHint};
use tokio::io::AsyncWriteExt;

use super::io;
use super::{Failure, STALE_TRIES, Upstream};
use crate::body::{Body, BoxError};
use crate::pool::h1_client::H1Client;
use crate::wire::chunked::Chunks;
use crate::wire::head::{self, Framing};

/// Whether `req` is sent on a raw connection: nothing to stream after its head and
/// nothing that could switch protocols.
pub(crate) fn takes(req: &Request<Body>) -> bool {
    use http_body::Body as _;
    req.body().is_end_stream()
        && req.method() != Method::CONNECT
        && !req.headers().contains_key(header::UPGRADE)
}

/// Sends `req` (see [`takes`]) to `authority` and reads the response head. A reused
/// connection found closed is replaced as on the fast path: after a failed write, and,
/// for an idempotent method, after it closed with no byte of a response.
pub(crate) async fn send(
    client: &Arc<H1Client>,
    authority: Authority,
    req: Request<Body>,
) -> Result<Response<RawBody>, BoxError> {
    let mut wire = Vec::with_capacity(512);
    write_head(&req, &authority, &mut wire);
    let head_request = req.method() == Method::HEAD;
    let idempotent = crate::proxy::idempotent(req.method());
    let mut tries = 0;
    loop {
        tries += 1;
        let (mut up, reused) = match client.take_idle(authority.as_str()) {
            Some(up) => (up, true),
            // Bounded by the pool's connect timeout; the caller bounds the rest.
            None => match super::connect(authority.as_str(), client.connect_timeout, None).await {
                Ok(up) => (up, false),
                Err(Failure::Broken(why)) => return Err(why.into()),
                Err(_) => return Err("upstream connect timed out".into()),
            },
        };
        // The caller bounds the whole exchange with the pool's read timeout.
        let stale_ok = reused && tries < STALE_TRIES;
        match up.stream.write_all(&wire).await {
            Ok(()) => {}
            Err(_) if stale_ok => continue,
            Err(e) => return Err(e.into()),
        }
        match read_head(&mut up, head_request).await {
            Ok(parts) => return Ok(respond(client, authority, up, parts)),
            Err(ReadError::Closed) if stale_ok && idempotent && up.buf.is_empty() => continue,
            Err(ReadError::Closed) => return Err("upstream closed the connection".into()),
            Err(ReadError::Failed(why)) => return Err(why.into()),
        }
    }
}

/// The upstream request head: origin-form target, `Host` from the target when the
/// request has none, the request's headers as they are (the proxy has already dropped
/// hop-by-hop ones and set `X-Forwarded-*`), and `Content-Length: 0` for a method whose
/// empty body would otherwise be unframed.
fn write_head(req: &Request<Body>, authority: &Authority, out: &mut Vec<u8>) {
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !req.headers().contains_key(header::HOST) {
        head::header_line(out, b"host", authority.as_str().as_bytes());
    }
    for (name, value) in req.headers() {
        head::header_line(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH)
        && !req.headers().contains_key(header::CONTENT_LENGTH)
    {
        out.extend_from_slice(b"content-length: 0\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

enum ReadError {
    /// The upstream closed the connection before a whole head.
    Closed,
    Failed(&'static str),
}

async fn read_head(up: &mut Upstream, head_request: bool) -> Result<head::Parts, ReadError> {
    loop {
        if !up.buf.is_empty() {
            match head::take_response(&mut up.buf, head_request) {
                Ok(Some(parts)) => return Ok(parts),
                Ok(None) if up.buf.len() > super::MAX_RESPONSE_HEAD => {
                    return Err(ReadError::Failed("upstream response head too large"));
                }
                Ok(None) => {}
                Err(head::BadResponse::UnexpectedSwitch) => {
                    return Err(ReadError::Failed("unexpected protocol switch"));
                }
                Err(head::BadResponse::Malformed(why)) => return Err(ReadError::Failed(why)),
            }
        }
        match std::future::poll_fn(|cx| io::poll_read(up, cx)).await {
            Ok(0) => return Err(ReadError::Closed),
            Ok(_) => {}
            Err(_) => return Err(ReadError::Failed("upstream connection failed")),
        }
    }
}

/// The response, its body read from `up`. A body already read whole gives the
/// connection back at once.
fn respond(
    client: &Arc<H1Client>,
    authority: Authority,
    mut up: Upstream,
    parts: head::Parts,
) -> Response<RawBody> {
    let left = match parts.framing {
        Framing::None => Some(0),
        Framing::Length(n) if n <= up.buf.len() as u64 => Some(n as usize),
        _ => None,
    };
    let body = match left {
        Some(n) => {
            let data = up.buf.split_to(n).freeze();
            if parts.reusable && up.buf.is_empty() {
                client.keep_idle(authority.as_str(), up);
            }
            RawBody {
                state: State::Whole(data),
            }
        }
        None => RawBody {
            state: State::Reading {
                up,
                left: match parts.framing {
                    Framing::Length(n) => Left::Length(n),
                    Framing::Chunked => Left::Chunked(Chunks::new(), Vec::new()),
                    _ => Left::UntilClose,
                },
                home: parts.reusable.then(|| (Arc::downgrade(client), authority)),
            },
        },
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = parts.status;
    *resp.headers_mut() = parts.headers;
    resp
}

/// An upstream response body read from a raw connection, decoded from its framing; the
/// connection goes back to its idle list when the body ended exactly, and is closed with
/// the body when it is dropped earlier.
pub(crate) struct RawBody {
    state: State,
}

enum State {
    /// The whole body (empty once yielded).
    Whole(Bytes),
    Reading {
        up: Upstream,
        left: Left,
        /// Where the connection goes back to, when it may be reused.
        home: Option<(Weak<H1Client>, Authority)>,
    },
    Done,
}

enum Left {
    Length(u64),
    /// The chunk decoder and the trailer section read so far.
    Chunked(Chunks, Vec<u8>),
    UntilClose,
}

impl RawBody {
    /// The body ended exactly: the connection is kept if it may be and nothing
    /// unasked followed the body.
    fn finish(&mut self) {
        if let State::Reading { up, home, .. } = std::mem::replace(&mut self.state, State::Done)
            && up.buf.is_empty()
            && let Some((client, authority)) = home
            && let Some(client) = client.upgrade()
        {
            client.keep_idle(authority.as_str(), up);
        }
    }

    /// Ends the body with an error; the connection is closed.
    fn fail(&mut self, why: &'static str) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.state = State::Done;
        Poll::Ready(Some(Err(why.into())))
    }
}

impl http_body::Body for RawBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            let (up, left) = match &mut self.state {
                State::Done => return Poll::Ready(None),
                State::Whole(data) => {
                    let data = std::mem::take(data);
                    self.state = State::Done;
                    return Poll::Ready((!data.is_empty()).then(|| Ok(Frame::data(data))));
                }
                State::Reading { up, left, .. } => (up, left),
            };
            if !up.buf.is_empty() {
                let (data, ended) = match left {
                    Left::Length(n) => {
                        let take = (*n).min(up.buf.len() as u64) as usize;
                        *n -= take as u64;
                        (up.buf.split_to(take).freeze(), *n == 0)
                    }
                    Left::UntilClose => (up.buf.split().freeze(), false),
                    Left::Chunked(chunks, trailer) if chunks.in_trailers() => {
                        let Ok(n) = chunks.feed(&up.buf) else {
                            return self.fail("malformed upstream chunked body");
                        };
                        trailer.extend_from_slice(&up.buf[..n]);
                        up.buf.advance(n);
                        if trailer.len() > super::MAX_RESPONSE_HEAD {
                            return self.fail("upstream trailer section too large");
                        }
                        if !chunks.done() {
                            continue;
                        }
                        let Ok(fields) = head::trailer_fields(trailer) else {
                            return self.fail("invalid upstream trailer field");
                        };
                        self.finish();
                        return Poll::Ready(fields.map(|f| Ok(Frame::trailers(f))));
                    }
                    Left::Chunked(chunks, _) => {
                        let Ok((framing, n)) = chunks.next_data(&up.buf) else {
                            return self.fail("malformed upstream chunked body");
                        };
                        up.buf.advance(framing);
                        (up.buf.split_to(n).freeze(), false)
                    }
                };
                if ended {
                    self.finish();
                }
                if !data.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                if ended {
                    return Poll::Ready(None);
                }
                continue;
            }
            match io::poll_read(up, cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(n)) if n > 0 => {}
                Poll::Ready(Ok(_)) if matches!(left, Left::UntilClose) => {
                    self.state = State::Done;
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(_)) => return self.fail("upstream closed the connection mid-body"),
                Poll::Ready(Err(e)) => {
                    self.state = State::Done;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            State::Done => true,
            State::Whole(data) => data.is_empty(),
            State::Reading { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Done => SizeHint::with_exact(0),
            State::Whole(data) => SizeHint::with_exact(data.len() as u64),
            State::Reading {
                left: Left::Length(n),
                ..
            } => SizeHint::with_exact(*n),
            State::Reading { .. } => SizeHint::default(),
        }
    }
}
