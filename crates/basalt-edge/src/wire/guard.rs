//! The request-framing guard: an IO wrapper between the socket and hyper that checks every
//! HTTP/1 request head on the raw bytes before hyper sees it, and follows each body's
//! framing to find the next head on keep-alive connections.
//!
//! hyper quietly accepts identical duplicate `Content-Length`, `Content-Length` together
//! with `Transfer-Encoding` (preferring chunked) and bare LF line endings; a proxy that
//! forwards such a request may disagree with the upstream about where it ends (request
//! smuggling). A head failing a check never reaches hyper: hyper gets a harmless stand-in
//! head instead, the service answers it with the error recorded here and closes, and no
//! byte after the bad head is read. The guard also owns the client timeouts: a head must
//! arrive within `header_timeout` of its first byte (slowloris), an idle keep-alive
//! connection closes after `idle_timeout`, a stalled body after `body_timeout`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::chunked::Chunks;

/// Per-connection state shared between the guard and the service answering on it.
#[derive(Default)]
pub struct ConnState {
    /// Index of the request to refuse (the stand-in for a bad head); `u64::MAX` for none.
    bad_request: AtomicU64,
    bad_status: AtomicU32,
    bad_message: std::sync::Mutex<&'static str>,
    /// Requests the service has started on this connection.
    served: AtomicU64,
    /// Requests whose response has not finished; the idle timer waits for zero.
    pub in_flight: AtomicU32,
    /// The connection speaks HTTP/2 (ALPN or prior knowledge): the guard passes its bytes
    /// unchecked, so `h2_timeouts` owns its header and idle timeouts.
    pub http2: AtomicBool,
    /// Why the guard stopped reading a request body (`BODY_*`): the client's fault, which
    /// the proxy answers without blaming the upstream target.
    body_fault: AtomicU8,
}

const BODY_MALFORMED: u8 = 1;
const BODY_TIMED_OUT: u8 = 2;

impl ConnState {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            bad_request: AtomicU64::new(u64::MAX),
            ..Default::default()
        })
    }

    /// Called by the service for each request in order: the refusal owed to this request,
    /// if its head was rejected by the guard.
    pub fn next_request(&self) -> Option<(StatusCode, &'static str)> {
        let index = self.served.fetch_add(1, Ordering::AcqRel);
        if self.bad_request.load(Ordering::Acquire) != index {
            return None;
        }
        let status = StatusCode::from_u16(self.bad_status.load(Ordering::Acquire) as u16)
            .unwrap_or(StatusCode::BAD_REQUEST);
        let message = *self.bad_message.lock().unwrap_or_else(|p| p.into_inner());
        Some((status, message))
    }

    /// Requests the service has started on this connection so far.
    pub fn requests_started(&self) -> u64 {
        self.served.load(Ordering::Acquire)
    }

    /// Why the guard cut the request body off, if it did: broken chunked framing (400) or
    /// a body that stalled past `body_timeout` (408). Recorded before hyper reads the end
    /// of the bytes it was given, so it is set by the time hyper reports the body failed.
    pub fn body_fault(&self) -> Option<(StatusCode, &'static str)> {
        match self.body_fault.load(Ordering::Acquire) {
            BODY_MALFORMED => Some((StatusCode::BAD_REQUEST, "malformed chunked request body")),
            BODY_TIMED_OUT => Some((StatusCode::REQUEST_TIMEOUT, "request body timed out")),
            _ => None,
        }
    }
}

#[derive(Clone, Copy)]
pub struct GuardLimits {
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Head,
    Body(u64),
    /// In a chunked body: where in its grammar (size and trailer lines are judged whole).
    Chunked(Chunks),
    /// HTTP/2 or an upgrade in progress: bytes pass unchecked.
    Passthrough,
    /// Nothing more is read from the client: reads end (EOF).
    Closed,
    /// A head was refused: the stand-in is delivered, then reads never complete, because
    /// hyper drops a connection on EOF before answering; the refusal carries
    /// `Connection: close`, so hyper closes once it is written.
    Refused,
}

/// A stand-in request hyper parses in place of a refused head; the service answers it
/// with the recorded error and closes the connection.
const STAND_IN: &[u8] = b"GET / HTTP/1.1\r\nhost: refused.invalid\r\n\r\n";
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\n";
/// Longest chunk-size or trailer line, CRLF included.
const MAX_CHUNK_LINE: usize = 4096;

pub struct GuardedIo<T> {
    inner: T,
    conn: Arc<ConnState>,
    limits: GuardLimits,
    state: State,
    /// The head (or chunk line) being accumulated.
    line: Vec<u8>,
    /// Checked bytes waiting for hyper.
    out: Vec<u8>,
    out_pos: usize,
    scratch: Box<[u8]>,
    heads: u64,
    /// The first head may be HTTP/2's preface (false once HTTP/1 requests were served).
    h2_allowed: bool,
    head_started: Option<Instant>,
    waiting_since: Option<Instant>,
    timer: Pin<Box<Sleep>>,
    on_reject: Arc<dyn Fn(&'static str) + Send + Sync>,
}

impl<T> GuardedIo<T> {
    pub fn new(
        inner: T,
        conn: Arc<ConnState>,
        limits: GuardLimits,
        on_reject: Arc<dyn Fn(&'static str) + Send + Sync>,
    ) -> Self {
        Self {
            inner,
            conn,
            limits,
            state: State::Head,
            line: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            scratch: vec![0u8; 16 * 1024].into_boxed_slice(),
            heads: 0,
            h2_allowed: true,
            head_started: None,
            waiting_since: None,
            timer: Box::pin(tokio::time::sleep(Duration::from_secs(3600))),
            on_reject,
        }
    }

    /// Bytes read from the client before the guard took the connection over (what the
    /// HTTP/1.1 fast path read and did not use): checked as if the guard had read them.
    pub fn with_read(mut self, bytes: &[u8]) -> Self {
        self.process(bytes);
        self
    }

    /// For a connection that already served HTTP/1 requests: HTTP/2's preface is then a
    /// bad head like any other, never a switch to HTTP/2.
    pub fn after_http1(mut self) -> Self {
        self.h2_allowed = false;
        self
    }

    /// Records the refusal, queues the stand-in head and stops reading.
    fn reject(&mut self, status: StatusCode, message: &'static str) {
        *self
            .conn
            .bad_message
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = message;
        self.conn
            .bad_status
            .store(u32::from(status.as_u16()), Ordering::Release);
        self.conn.bad_request.store(self.heads, Ordering::Release);
        (self.on_reject)("framing");
        self.out.extend_from_slice(STAND_IN);
        self.line.clear();
        self.state = State::Refused;
    }

    /// A request body whose chunked framing broke: nothing more is read from the client
    /// (hyper sees its body end short and fails it), and the fault is the client's.
    fn broken_body(&mut self) {
        self.conn
            .body_fault
            .store(BODY_MALFORMED, Ordering::Release);
        (self.on_reject)("framing");
        self.line.clear();
        self.state = State::Closed;
    }

    /// Feeds bytes read from the client through the state machine.
    fn process(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match self.state {
                State::Closed | State::Refused => return,
                State::Passthrough => {
                    self.out.extend_from_slice(data);
                    return;
                }
                State::Body(n) => {
                    let take = (n as usize).min(data.len());
                    self.out.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    let left = n - take as u64;
                    self.state = if left == 0 {
                        State::Head
                    } else {
                        State::Body(left)
                    };
                }
                State::Chunked(Chunks::Data(n)) => {
                    let take = (n as usize).min(data.len());
                    self.out.extend_from_slice(&data[..take]);
                    let mut chunks = Chunks::Data(n);
                    // Chunk data is any bytes: following it cannot fail.
                    let _ = chunks.feed(&data[..take]);
                    data = &data[take..];
                    self.state = State::Chunked(chunks);
                }
                State::Chunked(mut chunks @ (Chunks::DataCr | Chunks::DataLf)) => {
                    if chunks.feed(&data[..1]).is_err() {
                        // Broken chunk framing mid-body: hyper gets a truncated body and
                        // nothing after it is read, so no smuggled request can follow.
                        self.broken_body();
                        return;
                    }
                    self.out.push(data[0]);
                    data = &data[1..];
                    self.state = State::Chunked(chunks);
                }
                // At a chunk-size or trailer line (the state moves only at a line's end).
                State::Chunked(mut chunks) => {
                    let (consumed, line_done) = take_line(&mut self.line, data);
                    // The line reaches hyper only once it is whole and valid, so hyper
                    // never parses a broken one: the body it sees just ends early.
                    data = &data[consumed..];
                    if self.line.len() > MAX_CHUNK_LINE {
                        self.broken_body();
                        return;
                    }
                    if !line_done {
                        continue;
                    }
                    let line = std::mem::take(&mut self.line);
                    // The chunked grammar judges the whole line: CRLF ends it, no other CR
                    // or LF may stand in it (a bare one is a line end to some parsers and
                    // not to others), and a size is 1 to 15 hex digits.
                    if chunks.feed(&line) != Ok(line.len()) {
                        self.broken_body();
                        return;
                    }
                    self.state = if chunks.done() {
                        State::Head
                    } else {
                        State::Chunked(chunks)
                    };
                    self.out.extend_from_slice(&line);
                    self.line = line;
                    self.line.clear();
                }
                State::Head => {
                    if self.line.is_empty() {
                        self.head_started = Some(Instant::now());
                    }
                    let start = self.line.len();
                    self.line.extend_from_slice(data);
                    data = &[];
                    // Only the first head of a connection may open HTTP/2 with prior knowledge.
                    let h2_possible = self.heads == 0 && self.h2_allowed;
                    if h2_possible && self.line.len() >= H2_PREFACE.len() {
                        if self.line.starts_with(H2_PREFACE) {
                            self.out.append(&mut self.line);
                            self.conn.http2.store(true, Ordering::Release);
                            self.state = State::Passthrough;
                            continue;
                        }
                    } else if h2_possible && H2_PREFACE.starts_with(&self.line) {
                        continue;
                    }
                    let from = start.saturating_sub(3);
                    let Some(end) = find(&self.line[from..], b"\r\n\r\n").map(|i| from + i + 4)
                    else {
                        if has_bare_lf(&self.line) {
                            self.reject(StatusCode::BAD_REQUEST, "bare LF in the request head");
                        } else if self.line.len() > self.limits.max_header_bytes {
                            self.reject(
                                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                                "request head too large",
                            );
                        }
                        continue;
                    };
                    if end > self.limits.max_header_bytes {
                        self.reject(
                            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                            "request head too large",
                        );
                        continue;
                    }
                    let rest = self.line.split_off(end);
                    match check_head(&self.line, self.limits.max_headers) {
                        Err((status, message)) => self.reject(status, message),
                        Ok(next) => {
                            self.out.extend_from_slice(&self.line);
                            self.line.clear();
                            self.heads += 1;
                            self.head_started = None;
                            self.state = next;
                            // What followed the head is processed in the new state.
                            self.process(&rest);
                        }
                    }
                }
            }
        }
    }

    /// When waiting on the client, how long it may take before the connection closes.
    fn deadline(&self) -> Option<Instant> {
        let in_flight = self.conn.in_flight.load(Ordering::Acquire) > 0;
        match self.state {
            State::Head if in_flight => None,
            State::Head => match self.head_started {
                Some(t) => Some(t + self.limits.header_timeout),
                None => self.waiting_since.map(|t| t + self.limits.idle_timeout),
            },
            State::Body(_) | State::Chunked(_) => {
                self.waiting_since.map(|t| t + self.limits.body_timeout)
            }
            State::Passthrough | State::Closed | State::Refused => None,
        }
    }
}

/// Moves bytes up to and including the next LF into `line`; (bytes consumed, line complete).
fn take_line(line: &mut Vec<u8>, data: &[u8]) -> (usize, bool) {
    match data.iter().position(|b| *b == b'\n') {
        Some(i) => {
            line.extend_from_slice(&data[..=i]);
            (i + 1, true)
        }
        None => {
            line.extend_from_slice(data);
            (data.len(), false)
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn has_bare_lf(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .enumerate()
        .any(|(i, b)| *b == b'\n' && (i == 0 || bytes[i - 1] != b'\r'))
}

/// Checks one complete head (ending in CRLF CRLF) and says how its body is framed.
fn check_head(head: &[u8], max_headers: usize) -> Result<State, (StatusCode, &'static str)> {
    const BAD: StatusCode = StatusCode::BAD_REQUEST;
    // One pass over the line ends: a bare LF, or a line starting with whitespace that
    // continues the previous one (obs-fold). A bare LF anywhere is the reported error.
    let mut folded = false;
    for (i, _) in head.iter().enumerate().filter(|(_, b)| **b == b'\n') {
        if i == 0 || head[i - 1] != b'\r' {
            return Err((BAD, "bare LF in the request head"));
        }
        folded |= matches!(head.get(i + 1), Some(b' ' | b'\t'));
    }
    if folded {
        return Err((BAD, "obsolete line folding in the request head"));
    }
    // On the stack for the usual limits, and left uninitialised for httparse to fill:
    // no allocation and no 4 KiB of zeroing per request head.
    let mut stack = [std::mem::MaybeUninit::<httparse::Header<'_>>::uninit(); 128];
    let mut heap;
    let storage: &mut [std::mem::MaybeUninit<httparse::Header<'_>>] = if max_headers <= stack.len()
    {
        &mut stack[..max_headers]
    } else {
        heap = vec![std::mem::MaybeUninit::uninit(); max_headers];
        &mut heap
    };
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(head, storage) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err((BAD, "incomplete request head")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err((
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too many request headers",
            ));
        }
        Err(_) => return Err((BAD, "malformed request head")),
    }
    if req.method == Some("CONNECT") {
        return Err((StatusCode::METHOD_NOT_ALLOWED, "CONNECT is not supported"));
    }
    let mut content_length: Option<u64> = None;
    let mut lengths = 0;
    let mut transfer_encoding: Option<&[u8]> = None;
    let mut upgrade = false;
    let mut hosts = 0;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
            let v = std::str::from_utf8(h.value).unwrap_or("").trim();
            if v.is_empty() || v.len() > 18 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err((BAD, "invalid Content-Length"));
            }
            content_length = v.parse().ok();
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if transfer_encoding.is_some() {
                return Err((BAD, "more than one Transfer-Encoding header"));
            }
            transfer_encoding = Some(h.value);
        } else if h.name.eq_ignore_ascii_case("upgrade") {
            upgrade = true;
        } else if h.name.eq_ignore_ascii_case("host") {
            hosts += 1;
        }
    }
    // RFC 9112 3.2: exactly one Host on HTTP/1.1, at most one on HTTP/1.0. Two could route
    // one way here and another way upstream.
    if hosts > 1 {
        return Err((BAD, "more than one Host header"));
    }
    if hosts == 0 && req.version == Some(1) {
        return Err((BAD, "missing Host header"));
    }
    if lengths > 1 {
        return Err((BAD, "more than one Content-Length header"));
    }
    if let Some(te) = transfer_encoding {
        if lengths > 0 {
            return Err((BAD, "both Content-Length and Transfer-Encoding"));
        }
        if req.version != Some(1) {
            return Err((BAD, "Transfer-Encoding in an HTTP/1.0 request"));
        }
        // Only plain `chunked` is forwarded: other codings leave the length ambiguous.
        if !std::str::from_utf8(te)
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("chunked")
        {
            return Err((StatusCode::NOT_IMPLEMENTED, "unsupported Transfer-Encoding"));
        }
        return Ok(State::Chunked(Chunks::new()));
    }
    if upgrade && req.method == Some("GET") {
        // A refused upgrade is answered with `Connection: close`, so unchecked bytes after
        // it are never parsed as another request.
        return Ok(State::Passthrough);
    }
    Ok(match content_length {
        Some(n) if n > 0 => State::Body(n),
        _ => State::Head,
    })
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.out_pos < this.out.len() {
                let n = (this.out.len() - this.out_pos).min(buf.remaining());
                buf.put_slice(&this.out[this.out_pos..this.out_pos + n]);
                this.out_pos += n;
                if this.out_pos == this.out.len() {
                    this.out.clear();
                    this.out_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.state == State::Closed {
                return Poll::Ready(Ok(()));
            }
            if this.state == State::Refused {
                return Poll::Pending;
            }
            if this.state == State::Passthrough {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut rb = ReadBuf::new(&mut this.scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    this.waiting_since = None;
                    let n = rb.filled().len();
                    if n == 0 {
                        return Poll::Ready(Ok(()));
                    }
                    // Taken out and put back so `process` can borrow the guard mutably.
                    let scratch = std::mem::take(&mut this.scratch);
                    this.process(&scratch[..n]);
                    this.scratch = scratch;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    let now = Instant::now();
                    if this.waiting_since.is_none() {
                        this.waiting_since = Some(now);
                    }
                    let Some(deadline) = this.deadline() else {
                        // Re-check periodically: a response in flight may finish and the
                        // idle timer must start then.
                        this.timer
                            .as_mut()
                            .reset((now + this.limits.idle_timeout).into());
                        let _ = this.timer.as_mut().poll(cx);
                        return Poll::Pending;
                    };
                    if deadline <= now {
                        (this.on_reject)("timeout");
                        if matches!(this.state, State::Body(_) | State::Chunked(_)) {
                            this.conn
                                .body_fault
                                .store(BODY_TIMED_OUT, Ordering::Release);
                        }
                        this.state = State::Closed;
                        return Poll::Ready(Ok(()));
                    }
                    this.timer.as_mut().reset(deadline.into());
                    ready!(this.timer.as_mut().poll(cx));
                    // The timer fired: loop to re-evaluate against the deadline.
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8]) -> (Vec<u8>, Option<(StatusCode, &'static str)>, State) {
        let conn = ConnState::new();
        let limits = GuardLimits {
            max_header_bytes: 1024,
            max_headers: 16,
            header_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
        };
        let mut g = GuardedIo::new((), conn.clone(), limits, Arc::new(|_| {}));
        // Byte by byte, to exercise every split point.
        for b in input {
            g.process(std::slice::from_ref(b));
        }
        let heads = g.heads;
        let mut refused = None;
        for _ in 0..=heads {
            if let Some(r) = conn.next_request() {
                refused = Some(r);
            }
        }
        (g.out, refused, g.state)
    }

    #[tokio::test]
    async fn framing_cases() {
        let ok: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.0\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        ];
        for case in ok {
            let (out, refused, state) = run(case);
            assert_eq!(out, *case, "{}", String::from_utf8_lossy(case));
            assert!(refused.is_none());
            assert_eq!(state, State::Head);
        }
        let bad: &[(&[u8], u16)] = &[
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
            (b"GET / HTTP/1.1\nHost: a\n\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n  folded\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n", 400),
            (b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 405),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nX: y\r\n\r\n", 400),
        ];
        for (case, status) in bad {
            let (out, refused, state) = run(case);
            assert_eq!(out, STAND_IN, "{}", String::from_utf8_lossy(case));
            assert_eq!(refused.map(|r| r.0.as_u16()), Some(*status));
            assert_eq!(state, State::Refused);
        }
        // A smuggled second request after a good one: the first passes, the second is refused.
        let (out, refused, _) = run(
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        );
        assert!(
            out.starts_with(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nhost: refused")
        );
        assert!(refused.is_some());
    }

    #[tokio::test]
    async fn h2_prior_knowledge_passes_through() {
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00";
        let (out, refused, state) = run(preface);
        assert_eq!(out, preface);
        assert!(refused.is_none());
        assert_eq!(state, State::Passthrough);
    }
}
