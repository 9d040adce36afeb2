//! `GET /api/realtime` served outside hyper: the request head is recognised from the
//! socket, run through the same axum router (middleware, CORS, metrics, the SSE handler),
//! and the response is written straight onto the socket with no per-connection buffers.
//!
//! Why: hyper keeps an 8 KB read buffer and an 8 KB write buffer for every connection for
//! its whole life; for 10k idle realtime subscribers that is most of the server's memory.
//! A stream needs neither: it never reads another request, and each event is one write.
//! Anything that is not a plain, complete, body-less `GET /api/realtime` head in the first
//! segment goes to hyper untouched (nothing is consumed before the decision).
//!
//! The socket is shared ([`SocketSink`]): the SSE handler writes PB_CONNECT, keep-alives
//! and queued events to it, and the realtime fan-out writes each event to it directly
//! when nothing is waiting before it (one `writev`, no task wake-up per subscriber).

use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;

use axum::body::Body;
use basalt_api::ApiService;
use basalt_api::StreamSocket;
use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use http::{Request, Response, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tower::ServiceExt;

use basalt_edge::wire::chunked::{LAST_CHUNK, push_chunk, size_line};
use basalt_edge::wire::stall::WRITE_STALL_LIMIT;
use basalt_edge::wire::{date, head, peek};

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
    peek::first_head(stream, b"GET /api/realtime", |req| {
        realtime_request(req, peer)
    })
    .await
}

/// A plain head (`wire::head` judged it: HTTP/1.1, whole, unambiguous, no upgrade,
/// `Expect` or chunked body) of a body-less `GET /api/realtime`, as the router's request.
fn realtime_request(req: &head::Request<'_>, peer: SocketAddr) -> Option<StreamRequest> {
    if req.method != "GET" || req.path() != "/api/realtime" || req.content_length != 0 {
        return None;
    }
    let mut builder = Request::builder()
        .method(http::Method::GET)
        .uri(req.target)
        .version(Version::HTTP_11);
    *builder.headers_mut()? = req.header_map()?;
    let request = builder
        .extension(axum::extract::ConnectInfo(peer))
        .body(Body::empty())
        .ok()?;
    Some(StreamRequest {
        request,
        head_len: req.len,
    })
}

/// Serves one realtime stream on `stream` and closes the connection when it ends.
pub async fn serve(mut stream: TcpStream, req: StreamRequest, app: ApiService) {
    // Consume the head that was only peeked at; it is already in the socket buffer.
    let mut head = vec![0u8; req.head_len];
    if stream.read_exact(&mut head).await.is_err() {
        return;
    }
    drop(head);
    let socket = Arc::new(SocketSink::new(stream));
    let mut request = req.request;
    // The SSE handler writes to the socket itself (and lets the fan-out do so).
    request
        .extensions_mut()
        .insert(basalt_api::DirectSocket(socket.clone()));
    let Ok(response) = app.oneshot(request).await;
    if let Err(e) = write_response(&socket, response).await {
        tracing::debug!(error = %e, "realtime stream ended with an error");
    }
    // The socket closes when the last reference goes: the client's handle (dropped with
    // the body above) no longer lends it to the fan-out.
}

/// Writes bytes already framed (the head, chunks made here, the last chunk) in order.
async fn write_all(socket: &SocketSink, bytes: &[u8]) -> std::io::Result<()> {
    {
        let mut st = socket.lock();
        socket.write_locked(&mut st, &[bytes])?;
    }
    socket.flush_out().await
}

async fn write_response(socket: &SocketSink, response: Response<Body>) -> std::io::Result<()> {
    let (parts, mut body) = response.into_parts();
    let exact = body.size_hint().exact();
    let mut head = Vec::with_capacity(256);
    head::status_line(&mut head, parts.status.as_u16(), None);
    for (name, value) in &parts.headers {
        if name == http::header::CONNECTION
            || name == http::header::CONTENT_LENGTH
            || name == http::header::TRANSFER_ENCODING
        {
            continue;
        }
        head::header_line(&mut head, name.as_str().as_bytes(), value.as_bytes());
    }
    date::append(&mut head);
    // The connection ends with the stream: it is never reused for another request.
    head::header_line(&mut head, b"connection", b"close");
    if let Some(len) = exact {
        // A complete answer (an error from the handler or a middleware).
        head::header_line(&mut head, b"content-length", len.to_string().as_bytes());
        head.extend_from_slice(b"\r\n");
        let bytes = body
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        head.extend_from_slice(&bytes);
        return write_all(socket, &head).await;
    }
    head::header_line(&mut head, b"transfer-encoding", b"chunked");
    head.extend_from_slice(b"\r\n");
    // The head waits for the events already there (PB_CONNECT) and leaves with them in
    // one write, so the first read of a client sees its id. It is held in the socket's
    // pending bytes: the SSE handler writes PB_CONNECT itself, after it.
    socket.lock().pending.extend_from_slice(&head);
    drop(head);
    let mut first = Vec::new();
    let ended = push_ready(&mut first, &mut body)?;
    write_all(socket, &first).await?;
    if ended {
        return Ok(());
    }
    let mut peer_input = [0u8; 64];
    loop {
        // The body first, then the peer: polled by hand rather than with `select!` on
        // `readable()`, whose per-wake waiter registration was a visible part of the
        // per-event cost with 10k subscribers (`poll_read_ready` keeps one waker).
        let next = std::future::poll_fn(|cx| {
            if let Poll::Ready(frame) = Pin::new(&mut body).poll_frame(cx) {
                return Poll::Ready(Next::Frame(frame));
            }
            socket.sock.poll_read_ready(cx).map(Next::PeerReadable)
        })
        .await;
        match next {
            Next::Frame(frame) => {
                let Some(first) = frame_data(frame)? else {
                    return write_all(socket, LAST_CHUNK).await;
                };
                // Everything else already waiting goes out in the same write.
                let mut out = Vec::with_capacity(first.len() + 16);
                push_chunk(&mut out, &first);
                let ended = push_ready(&mut out, &mut body)?;
                write_all(socket, &out).await?;
                if ended {
                    return Ok(());
                }
            }
            // The peer closing its side ends the stream at once (and unregisters the
            // client); anything it sends is ignored, it never gets an answer.
            Next::PeerReadable(ready) => {
                ready?;
                match socket.sock.try_read(&mut peer_input) {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

/// The stream's socket, shared by its task and the fan-out. Every write happens under
/// `state`'s lock and never blocks; bytes the socket does not take wait in `pending` and
/// go first. Deliveries the fan-out had to queue are counted, and the fan-out writes
/// directly only when none is outstanding: so events leave in the order they were offered.
pub struct SocketSink {
    sock: TcpStream,
    state: Mutex<SinkState>,
    flush_wanted: Notify,
}

#[derive(Default)]
struct SinkState {
    /// Deliveries the fan-out queued that the stream's task has not written yet.
    queued: usize,
    pending: Vec<u8>,
}

/// Largest write copied into one buffer for `send` (see [`SocketSink::send_copied`]).
const MAX_SEND_COPY: usize = 16 * 1024;

thread_local! {
    /// The buffer `send_copied` reuses: no allocation per subscriber.
    static SEND_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Most parts one write takes without copying (an SSE event is 7, plus the chunk framing).
const MAX_PARTS: usize = 14;

impl SocketSink {
    fn new(sock: TcpStream) -> Self {
        Self {
            sock,
            state: Mutex::new(SinkState::default()),
            flush_wanted: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `parts` after whatever is pending, keeping what the socket does not take.
    fn write_locked(&self, st: &mut SinkState, parts: &[&[u8]]) -> std::io::Result<()> {
        if !st.pending.is_empty() || parts.len() > MAX_PARTS {
            for p in parts {
                st.pending.extend_from_slice(p);
            }
            return self.drain(st);
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len <= MAX_SEND_COPY {
            return self.send_copied(st, parts, len);
        }
        let mut slices = [IoSlice::new(&[]); MAX_PARTS];
        for (slice, p) in slices.iter_mut().zip(parts) {
            *slice = IoSlice::new(p);
        }
        let mut written = match self.sock.try_write_vectored(&slices[..parts.len()]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e),
        };
        for p in parts {
            if written >= p.len() {
                written -= p.len();
            } else {
                st.pending.extend_from_slice(&p[written..]);
                written = 0;
            }
        }
        Ok(())
    }

    /// One `send` of `parts` copied into a reused buffer. Why: an event is a few hundred
    /// bytes in nine pieces, and `writev` on a socket goes through the file layer (fd
    /// position lock, fsnotify) and imports the iovec; `send` with one buffer skips all
    /// of that. With 10k subscribers this is the per-event syscall of each of them.
    fn send_copied(&self, st: &mut SinkState, parts: &[&[u8]], len: usize) -> std::io::Result<()> {
        SEND_BUF.with_borrow_mut(|buf| {
            buf.clear();
            buf.reserve(len);
            for p in parts {
                buf.extend_from_slice(p);
            }
            // Straight to the (non-blocking) socket, not through tokio's readiness
            // check: that is one more cache line per subscriber, and it only matters to
            // a writer about to wait. The one that waits (`flush_out`) writes through
            // tokio first, so a full socket is seen there before it waits.
            let sent = socket2::SockRef::from(&self.sock).send(buf);
            let written = match sent {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e),
            };
            if written < buf.len() {
                st.pending.extend_from_slice(&buf[written..]);
            }
            Ok(())
        })
    }

    /// Sends as much of `pending` as the socket takes now.
    fn drain(&self, st: &mut SinkState) -> std::io::Result<()> {
        while !st.pending.is_empty() {
            match self.sock.try_write(&st.pending) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    st.pending.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if st.pending.is_empty() && st.pending.capacity() > 0 {
            // Idle subscribers are many: none keeps a buffer it no longer needs.
            st.pending = Vec::new();
        }
        Ok(())
    }

    /// Waits until every pending byte is out; a peer that leaves the socket unwritable
    /// for [`WRITE_STALL_LIMIT`] is cut off. Progress, however slow, restarts the bound.
    async fn flush_out(&self) -> std::io::Result<()> {
        loop {
            {
                let mut st = self.lock();
                self.drain(&mut st)?;
                if st.pending.is_empty() {
                    return Ok(());
                }
            }
            match tokio::time::timeout(WRITE_STALL_LIMIT, self.sock.writable()).await {
                Ok(ready) => ready?,
                Err(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the peer stopped reading",
                    ));
                }
            }
        }
    }

    /// Writes one body chunk made of `parts`.
    fn write_chunk(&self, st: &mut SinkState, parts: &[&[u8]]) -> std::io::Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len == 0 {
            // An empty chunk would end the body.
            return Ok(());
        }
        let mut size = [0u8; 18];
        let size = size_line(len, &mut size);
        let mut all: [&[u8]; MAX_PARTS] = [&[]; MAX_PARTS];
        if parts.len() + 2 > MAX_PARTS {
            let mut joined = Vec::with_capacity(len);
            for p in parts {
                joined.extend_from_slice(p);
            }
            return self.write_locked(st, &[size, &joined, b"\r\n"]);
        }
        all[0] = size;
        all[1..=parts.len()].copy_from_slice(parts);
        all[parts.len() + 1] = b"\r\n";
        self.write_locked(st, &all[..parts.len() + 2])
    }
}

impl StreamSocket for SocketSink {
    fn try_send(&self, parts: &[&[u8]]) -> bool {
        let mut st = self.lock();
        if st.queued > 0 || !st.pending.is_empty() {
            st.queued += 1;
            return false;
        }
        match self.write_chunk(&mut st, parts) {
            Ok(()) => {
                if !st.pending.is_empty() {
                    // The rest of this event goes out from the stream's task.
                    self.flush_wanted.notify_one();
                }
                true
            }
            Err(_) => {
                // The stream's task meets the same error and ends the stream.
                st.queued += 1;
                false
            }
        }
    }

    fn send(&self, parts: &[&[u8]], dequeued: bool) -> std::io::Result<()> {
        let mut st = self.lock();
        if dequeued {
            st.queued = st.queued.saturating_sub(1);
        }
        self.write_chunk(&mut st, parts)
    }

    fn flush(&self) -> BoxFuture<'_, std::io::Result<()>> {
        Box::pin(self.flush_out())
    }

    fn flush_wanted(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.flush_wanted.notified())
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
                out.extend_from_slice(LAST_CHUNK);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_head(bytes: &[u8]) -> Option<StreamRequest> {
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        peek::judge(bytes, b"GET /api/realtime", |req| {
            realtime_request(req, peer)
        })
    }

    #[test]
    fn only_complete_bodyless_realtime_gets_are_taken() {
        let ok = b"GET /api/realtime HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n";
        let r = parse_head(ok).expect("taken");
        assert_eq!(r.head_len, ok.len());
        assert_eq!(r.request.uri().path(), "/api/realtime");
        assert_eq!(r.request.headers()["accept"], "text/event-stream");
        assert!(parse_head(b"GET /api/realtime?x=1 HTTP/1.1\r\nHost: x\r\n\r\n").is_some());
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
                parse_head(other).is_none(),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }

    /// A sink on the server side of a loopback connection, and the client side.
    async fn sink_and_peer() -> (SocketSink, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (SocketSink::new(server), peer)
    }

    #[tokio::test]
    async fn the_fan_out_writes_directly_only_when_nothing_queued_waits_before_it() {
        let (sink, mut peer) = sink_and_peer().await;
        assert!(
            sink.try_send(&[b"a", b"1"]),
            "nothing waits: written at once"
        );
        // A delivery is queued (as when the socket was full): later ones queue behind it
        // until the stream's task has written it.
        sink.lock().queued = 1;
        assert!(!sink.try_send(&[b"c"]));
        sink.send(&[b"b"], true).unwrap();
        assert!(!sink.try_send(&[b"d"]), "c is still queued");
        sink.send(&[b"c"], true).unwrap();
        sink.send(&[b"d"], true).unwrap();
        assert!(sink.try_send(&[b"e"]), "the queue is drained");
        sink.flush_out().await.unwrap();
        let want = b"2\r\na1\r\n1\r\nb\r\n1\r\nc\r\n1\r\nd\r\n1\r\ne\r\n";
        let mut got = vec![0u8; want.len()];
        tokio::time::timeout(std::time::Duration::from_secs(5), peer.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn copied_sends_keep_what_a_full_socket_did_not_take_in_order() {
        let (sink, mut peer) = sink_and_peer().await;
        // The peer does not read: events (each one `send`) fill the socket until one is
        // only partly taken; its rest waits and every later one queues behind it.
        let event = vec![b'x'; 1000];
        let mut sent = 0usize;
        while sink.try_send(&[b"e", &event]) {
            sent += 1;
            assert!(sent < 100_000, "the socket never filled");
        }
        assert!(
            !sink.lock().pending.is_empty(),
            "a partial write kept its rest"
        );
        // The queued one goes out through the stream's path, after the rest.
        sink.send(&[b"q"], true).unwrap();
        let want_len = sent * (5 + 1001 + 2) + (1 + 2 + 1 + 2);
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; want_len];
            peer.read_exact(&mut got).await.map(|_| got)
        });
        tokio::time::timeout(std::time::Duration::from_secs(10), sink.flush_out())
            .await
            .unwrap()
            .unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), reader)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let mut want = Vec::with_capacity(want_len);
        for _ in 0..sent {
            want.extend_from_slice(b"3e9\r\ne");
            want.extend_from_slice(&event);
            want.extend_from_slice(b"\r\n");
        }
        want.extend_from_slice(b"1\r\nq\r\n");
        assert_eq!(got.len(), want.len());
        assert!(got == want, "bytes out of order");
    }

    #[tokio::test]
    async fn writes_larger_than_the_copy_bound_go_out_whole() {
        let (sink, mut peer) = sink_and_peer().await;
        let big = vec![b'y'; MAX_SEND_COPY + 10];
        assert!(sink.try_send(&[b"a", &big, b"z"]));
        sink.flush_out().await.unwrap();
        let len = 1 + big.len() + 1;
        let mut want = format!("{len:x}\r\na").into_bytes();
        want.extend_from_slice(&big);
        want.extend_from_slice(b"z\r\n");
        let mut got = vec![0u8; want.len()];
        tokio::time::timeout(std::time::Duration::from_secs(5), peer.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert!(got == want);
    }
}
