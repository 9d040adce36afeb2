//! `GET /api/realtime` served outside hyper: the request head is recognised from the
//! socket, run through the same axum router (middleware, CORS, metrics, the SSE handler),
//! and the response is written straight onto the socket with no per-connection buffers.
//!
//! Why: hyper keeps an 8 KB read buffer and an 8 KB write buffer for every connection for
//! its whole life; for 10k idle realtime subscribers that is most of the server's memory.
//! A stream needs neither: it never reads another request, and each event is one write.
//! Anything that is not a plain, complete, body-less `GET /api/realtime` head in the first
//! segment goes to hyper untouched (nothing is consumed before the decision).

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use futures_util::FutureExt;
use http::{HeaderName, HeaderValue, Request, Response, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceExt;

use crate::stall::StallGuard;

/// Longest request head looked at; longer ones (huge cookies) go to hyper.
const MAX_HEAD: usize = 4096;
const MAX_HEADERS: usize = 48;
/// Events coalesced into one write when several are already waiting.
const MAX_BATCH: usize = 64 * 1024;

/// A request head taken off the socket, ready for the router.
pub struct StreamRequest {
    request: Request<Body>,
    head_len: usize,
}

/// Looks at the first bytes of a fresh connection without consuming them: a complete
/// `GET /api/realtime` head with no body, or `None` (then hyper serves the connection).
pub async fn sniff(stream: &TcpStream, peer: SocketAddr) -> Option<StreamRequest> {
    if stream.readable().await.is_err() {
        return None;
    }
    let mut buf = vec![0u8; MAX_HEAD];
    let n = stream.peek(&mut buf).await.ok()?;
    parse_head(&buf[..n], peer)
}

fn parse_head(bytes: &[u8], peer: SocketAddr) -> Option<StreamRequest> {
    // Cheap prefix test first: almost every other request is decided here.
    const PREFIX: &[u8] = b"GET /api/realtime";
    if !bytes.starts_with(PREFIX) || !matches!(bytes.get(PREFIX.len()), Some(b' ' | b'?')) {
        return None;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    if req.version != Some(1) {
        return None;
    }
    let path = req.path?;
    let mut builder = Request::builder()
        .method(http::Method::GET)
        .uri(path)
        .version(Version::HTTP_11);
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        // A body, an upgrade or an expectation is hyper's business.
        if name == http::header::CONTENT_LENGTH && h.value != b"0"
            || name == http::header::TRANSFER_ENCODING
            || name == http::header::UPGRADE
            || name == http::header::EXPECT
        {
            return None;
        }
        builder = builder.header(name, HeaderValue::from_bytes(h.value).ok()?);
    }
    let request = builder
        .extension(axum::extract::ConnectInfo(peer))
        .body(Body::empty())
        .ok()?;
    Some(StreamRequest { request, head_len })
}

/// Serves one realtime stream on `stream` and closes the connection when it ends.
pub async fn serve(stream: TcpStream, req: StreamRequest, app: Router) {
    let mut io = StallGuard::new(stream);
    // Consume the head that was only peeked at; it is already in the socket buffer.
    let mut head = vec![0u8; req.head_len];
    if io.read_exact(&mut head).await.is_err() {
        return;
    }
    drop(head);
    let Ok(response) = app.oneshot(req.request).await;
    if let Err(e) = write_response(&mut io, response).await {
        tracing::debug!(error = %e, "realtime stream ended with an error");
    }
    let _ = io.shutdown().await;
}

async fn write_response(io: &mut StallGuard, response: Response<Body>) -> std::io::Result<()> {
    let (parts, mut body) = response.into_parts();
    let exact = body.size_hint().exact();
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(parts.status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(
        parts
            .status
            .canonical_reason()
            .unwrap_or_default()
            .as_bytes(),
    );
    head.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        if name == http::header::CONNECTION
            || name == http::header::CONTENT_LENGTH
            || name == http::header::TRANSFER_ENCODING
        {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"date: ");
    head.extend_from_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
    // The connection ends with the stream: it is never reused for another request.
    head.extend_from_slice(b"\r\nconnection: close\r\n");
    if let Some(len) = exact {
        // A complete answer (an error from the handler or a middleware).
        head.extend_from_slice(format!("content-length: {len}\r\n\r\n").as_bytes());
        let bytes = body
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        head.extend_from_slice(&bytes);
        io.write_all(&head).await?;
        return io.flush().await;
    }
    head.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
    // The head leaves with the events already waiting (PB_CONNECT): one write, as the
    // first read of a client sees its id.
    if push_ready(&mut head, &mut body)? {
        return io.write_all(&head).await;
    }
    io.write_all(&head).await?;
    drop(head);
    let mut peer_input = [0u8; 64];
    loop {
        // The body first, then the peer: polled by hand rather than with `select!` on
        // `readable()`, whose per-wake waiter registration was a visible part of the
        // per-event cost with 10k subscribers (`poll_read_ready` keeps one waker).
        let next = std::future::poll_fn(|cx| {
            if let Poll::Ready(frame) = Pin::new(&mut body).poll_frame(cx) {
                return Poll::Ready(Next::Frame(frame));
            }
            io.get_ref().poll_read_ready(cx).map(Next::PeerReadable)
        })
        .await;
        match next {
            Next::Frame(frame) => {
                let Some(first) = frame_data(frame)? else {
                    return io.write_all(b"0\r\n\r\n").await;
                };
                // Everything else already waiting goes out in the same write.
                let mut out = Vec::with_capacity(first.len() + 16);
                push_chunk(&mut out, &first);
                let ended = push_ready(&mut out, &mut body)?;
                io.write_all(&out).await?;
                if ended {
                    return Ok(());
                }
            }
            // The peer closing its side ends the stream at once (and unregisters the
            // client); anything it sends is ignored, it never gets an answer.
            Next::PeerReadable(ready) => {
                ready?;
                match io.get_ref().try_read(&mut peer_input) {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

enum Next {
    Frame(Option<Result<http_body::Frame<Bytes>, axum::Error>>),
    PeerReadable(std::io::Result<()>),
}

/// Appends the frames the body has ready without waiting, up to a batch; true when the
/// body ended (the terminating chunk is appended then).
fn push_ready(out: &mut Vec<u8>, body: &mut Body) -> std::io::Result<bool> {
    while out.len() < MAX_BATCH {
        let Some(frame) = body.frame().now_or_never() else {
            return Ok(false);
        };
        match frame_data(frame)? {
            Some(data) => push_chunk(out, &data),
            None => {
                out.extend_from_slice(b"0\r\n\r\n");
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// The data of one body frame; `None` at the end of the body. Trailers are skipped.
fn frame_data(
    frame: Option<Result<http_body::Frame<Bytes>, axum::Error>>,
) -> std::io::Result<Option<Bytes>> {
    match frame {
        None => Ok(None),
        Some(Err(e)) => Err(std::io::Error::other(e)),
        Some(Ok(f)) => Ok(Some(f.into_data().unwrap_or_default())),
    }
}

fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        // An empty chunk would end the body.
        return;
    }
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "127.0.0.1:9".parse().unwrap()
    }

    #[test]
    fn only_complete_bodyless_realtime_gets_are_taken() {
        let ok = b"GET /api/realtime HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n";
        let r = parse_head(ok, peer()).expect("taken");
        assert_eq!(r.head_len, ok.len());
        assert_eq!(r.request.uri().path(), "/api/realtime");
        assert_eq!(r.request.headers()["accept"], "text/event-stream");
        assert!(parse_head(b"GET /api/realtime?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", peer()).is_some());
        for other in [
            &b"GET /api/realtime/ws HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"GET /api/realtimex HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST /api/realtime HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
            b"GET /api/realtime HTTP/1.1\r\nHost: x\r\n",
            b"GET /api/realtime HTTP/1.0\r\nHost: x\r\n\r\n",
            b"GET /api/realtime HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            b"GET /api/realtime HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /api/realtime HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            b"GET /api/realtime HTTP/1.1\r\nBad Header: x\r\n\r\n",
        ] {
            assert!(
                parse_head(other, peer()).is_none(),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }

    #[test]
    fn chunks_are_framed_and_empty_data_is_skipped() {
        let mut out = Vec::new();
        push_chunk(&mut out, b"hello world, sixteen+");
        push_chunk(&mut out, b"");
        assert_eq!(out, b"15\r\nhello world, sixteen+\r\n");
    }
}
