//! The HTTP/1.1 fast path: every HTTP/1 client connection starts here, and plain proxy
//! requests are served on it directly, from the raw bytes.
//!
//! A request qualifies when its head is unambiguous and simple (HTTP/1.1, `Host` given,
//! no body or a `Content-Length` one, no upgrade, no `Expect`, an origin-form target of
//! plain characters) and its route forwards to an HTTP/1.1 pool without caching or
//! compression. Its head is parsed once with httparse on the stack; the upstream head is
//! written from the client's bytes (hop-by-hop headers dropped, `X-Forwarded-*` set);
//! the upstream connection is driven inside the request itself, with no task, channel or
//! boxed body per request; the response head is parsed and rewritten the same way and
//! the body copied through with its framing followed (length, chunked, or until close).
//!
//! Anything else — the framing guard's refusals, upgrades, chunked request bodies,
//! HTTP/1.0, HTTP/2's preface, every route action but a plain pool, refusals before
//! routing, rate limits — is handed to the hyper path with the connection: the bytes not
//! yet used go first, and hyper serves the connection from then on, exactly as before.
//! A request is judged before anything of it is consumed, so either path sees it whole.

pub(crate) mod client;
mod io;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant as StdInstant;

use bytes::{Buf, BytesMut};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::Shared;
use crate::pool::h1_client::H1Client;
use crate::pool::{Lease, PickContext, PickError, Pool};
use crate::route::Action;
use crate::snapshot::ListenerRuntime;
use crate::wire::chunked::Chunks;
use crate::wire::date;
use crate::wire::head::{self, Additions, Framing, Parsed};
pub(crate) use io::Upstream;
use io::{Drain, Ended, Timer};

/// An upstream response head larger than this is refused (nginx's default is 4-8 KiB).
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// A response body up to this size goes out in the same write as its head.
const COALESCE: usize = 16 * 1024;
/// Connections a request may find closed under it before its attempt fails.
const STALE_TRIES: usize = 3;

/// Serves an HTTP/1 client connection (plain or TLS): the fast path while requests
/// qualify, then hyper for the rest of the connection.
pub(crate) async fn serve<I>(
    io: I,
    peer: SocketAddr,
    rt: Arc<ListenerRuntime>,
    shared: Arc<Shared>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    // Held while the fast path serves (the edge's graceful shutdown waits for it), then
    // handed to hyper with the connection.
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut conn = Conn {
        io,
        buf: BytesMut::with_capacity(8 * 1024),
        up_head: Vec::with_capacity(1024),
        out: Vec::with_capacity(1024),
        timer: Timer::new(),
        drain: Drain::new(shared.draining.subscribe()),
        peer,
        peer_text: forwarded_text(peer.ip()),
        body_timeout: rt.limits.body_timeout,
        served: false,
    };
    if conn.run(&rt, &shared).await {
        let Conn {
            io, buf, served, ..
        } = conn;
        let left = Leftover {
            bytes: buf,
            after_requests: served,
        };
        crate::listener::hand_off(io, left, peer, rt, shared, builder, watcher).await;
    }
}

/// What the fast path leaves for hyper when it hands a connection over.
pub(crate) struct Leftover {
    /// Bytes read from the client and not used: the head of the request handed over.
    pub bytes: BytesMut,
    /// Requests were served before (HTTP/2's preface can then no longer start HTTP/2).
    pub after_requests: bool,
}

/// The peer as `X-Forwarded-For` names it (an IPv4-mapped address as IPv4).
fn forwarded_text(ip: IpAddr) -> String {
    basalt_net::normalize(ip).to_string()
}

struct Conn<I> {
    io: I,
    /// Bytes read from the client and not used yet.
    buf: BytesMut,
    /// The upstream request head being sent.
    up_head: Vec<u8>,
    /// The client response head (and a small body) being written.
    out: Vec<u8>,
    timer: Timer,
    drain: Drain,
    peer: SocketAddr,
    peer_text: String,
    /// How long a request body may stall.
    body_timeout: std::time::Duration,
    /// A request was served on the fast path.
    served: bool,
}

/// A request the fast path will proxy, decided before any of it was consumed.
struct Plan {
    route: Arc<str>,
    pool: Arc<Pool>,
    method: Method,
    body: u64,
    close: bool,
    head_len: usize,
    client_ip: IpAddr,
    /// The request's headers as a map, only when the configuration reads headers
    /// (header routes, trusted proxies, rate limits or hashing by header).
    headers: Option<HeaderMap>,
}

/// Why an upstream attempt produced no response.
enum Failure {
    TimedOut,
    Broken(&'static str),
    /// The client went away (or stalled) while its body was being forwarded.
    ClientGone(Ended),
}

impl<I: AsyncRead + AsyncWrite + Unpin> Conn<I> {
    /// Serves requests until the connection ends (false) or must be handed to hyper (true).
    async fn run(&mut self, rt: &ListenerRuntime, shared: &Shared) -> bool {
        let limits = rt.limits;
        let mut idle_since = Instant::now();
        let mut head_since: Option<Instant> = None;
        loop {
            let planned = {
                let mut slots = head::request_slots();
                match head::parse_request(
                    &self.buf,
                    &mut slots,
                    limits.max_header_bytes,
                    limits.max_headers,
                ) {
                    Parsed::Other => return true,
                    Parsed::Partial => None,
                    Parsed::Plain(req) => {
                        match plan(
                            &req,
                            rt,
                            shared,
                            self.peer,
                            &self.peer_text,
                            &mut self.up_head,
                        ) {
                            Some(p) => Some(p),
                            None => return true,
                        }
                    }
                }
            };
            let Some(plan) = planned else {
                if self.buf.is_empty() && self.drain.fired() {
                    return false;
                }
                let waiting = head_since.is_none() && self.buf.is_empty();
                let deadline = match head_since {
                    Some(t) => t + limits.header_timeout,
                    None if waiting => idle_since + limits.idle_timeout,
                    None => Instant::now() + limits.header_timeout,
                };
                let drain = waiting.then_some(&mut self.drain);
                match io::read_client(
                    &mut self.io,
                    &mut self.buf,
                    &mut self.timer,
                    deadline,
                    drain,
                )
                .await
                {
                    Ok(()) => {
                        head_since.get_or_insert_with(Instant::now);
                        continue;
                    }
                    Err(Ended::TimedOut) => {
                        shared.metrics.rejected("timeout");
                        return false;
                    }
                    Err(_) => return false,
                }
            };
            self.served = true;
            let keep_alive = self.proxy(plan, rt, shared).await;
            if !keep_alive {
                let _ = self.io.shutdown().await;
                return false;
            }
            idle_since = Instant::now();
            head_since = (!self.buf.is_empty()).then_some(idle_since);
        }
    }

    /// Proxies one planned request and writes its response; whether the client
    /// connection stays open.
    async fn proxy(&mut self, plan: Plan, rt: &ListenerRuntime, shared: &Shared) -> bool {
        let started = StdInstant::now();
        self.buf.advance(plan.head_len);
        let pool = &*plan.pool;
        let Some(h1) = pool.h1() else {
            return false;
        };
        let empty = HeaderMap::new();
        let ctx = PickContext {
            client_ip: plan.client_ip,
            headers: plan.headers.as_ref().unwrap_or(&empty),
        };
        let idempotent = crate::proxy::idempotent(&plan.method);
        let retriable = idempotent && plan.body == 0;
        let attempts = pool.attempts(retriable);
        let mut body_left = plan.body;
        let mut tried: Option<usize> = None;
        let mut last_error = (StatusCode::BAD_GATEWAY, "upstream unavailable");
        for attempt in 0..attempts {
            if attempt > 0 && !pool.take_retry() {
                break;
            }
            let lease = match pool.pick(&ctx, tried) {
                Ok(l) => l,
                Err(PickError::AllFull) => {
                    last_error = (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "every upstream target is at its request limit",
                    );
                    break;
                }
                Err(PickError::NoneAvailable) if attempt == 0 => {
                    last_error = (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "no healthy upstream target",
                    );
                    break;
                }
                Err(PickError::NoneAvailable) => break,
            };
            tried = Some(lease.index);
            let attempt_started = Instant::now();
            let add = Additions {
                head_request: plan.method == Method::HEAD,
                close: plan.close,
                hsts: rt.hsts.as_ref().map(HeaderValue::as_bytes),
                alt_svc: rt.alt_svc.as_ref().map(HeaderValue::as_bytes),
            };
            let result = self
                .attempt(
                    h1,
                    &lease,
                    pool.read_timeout,
                    &mut body_left,
                    &add,
                    idempotent,
                )
                .await;
            let elapsed = attempt_started.elapsed();
            let address = &lease.target.address;
            let (error, answer) = match result {
                Ok((up, resp)) => {
                    let failed = matches!(resp.status, 502..=504);
                    pool.observe(&lease, elapsed, !failed);
                    pool.metrics
                        .upstream(&pool.name, address, resp.status, elapsed.as_secs_f64());
                    self.record(shared, &plan, resp.status, started, rt);
                    let reused = self.relay(up, &resp, h1, &lease).await;
                    return reused && !resp.closes;
                }
                // The client's fault, never the target's: nothing is recorded against it.
                // A client that stalled mid-body is told so (as on hyper's path), then
                // the connection closes; one that left gets nothing.
                Err(Failure::ClientGone(why)) => {
                    if why == Ended::TimedOut {
                        shared.metrics.rejected("timeout");
                        let status = StatusCode::REQUEST_TIMEOUT;
                        self.record(shared, &plan, status.as_u16(), started, rt);
                        self.answer_error(status, "request body timed out", true, rt)
                            .await;
                    }
                    return false;
                }
                Err(Failure::TimedOut) => {
                    let answer = (StatusCode::GATEWAY_TIMEOUT, "upstream timed out");
                    ("upstream timed out", answer)
                }
                Err(Failure::Broken(error)) => {
                    (error, (StatusCode::BAD_GATEWAY, "upstream request failed"))
                }
            };
            pool.observe(&lease, elapsed, false);
            pool.metrics
                .upstream(&pool.name, address, 0, elapsed.as_secs_f64());
            tracing::warn!(pool = %pool.name, target = %address, error, "upstream request failed");
            last_error = answer;
        }
        // A body not forwarded whole leaves the client's next request unfindable.
        let close = plan.close || body_left > 0 || self.drain.fired();
        self.record(shared, &plan, last_error.0.as_u16(), started, rt);
        self.answer_error(last_error.0, last_error.1, close, rt)
            .await
            && !close
    }

    /// One attempt on `lease`'s target: sends the request and reads the response head
    /// (rewritten into `out`). A reused connection found closed under a bodiless request
    /// is replaced: when writing to it failed (nothing was taken), and, for an idempotent
    /// method only, when it closed with no byte of a response (the upstream may have
    /// acted on the request, as in the keep-alive race every proxy faces).
    /// The answer must start within `read_timeout` of the attempt's start or, as the
    /// upstream cannot answer before it has the whole request, of the body's end: a client
    /// sending its body slowly is never counted as a slow target.
    async fn attempt(
        &mut self,
        h1: &H1Client,
        lease: &Lease,
        read_timeout: std::time::Duration,
        body_left: &mut u64,
        add: &Additions<'_>,
        idempotent: bool,
    ) -> Result<(Upstream, head::Response), Failure> {
        let authority = lease.target.authority.as_str();
        let bodiless = *body_left == 0;
        let deadline = Instant::now() + read_timeout;
        let mut tries = 0;
        loop {
            tries += 1;
            let (mut up, reused) = match h1.take_idle(authority) {
                Some(up) => (up, true),
                None => (
                    connect(authority, h1.connect_timeout, Some(deadline)).await?,
                    false,
                ),
            };
            let stale_ok = reused && bodiless && tries < STALE_TRIES;
            match self.send(&mut up, body_left, deadline).await {
                Ok(()) => {}
                Err(Failure::Broken(_)) if stale_ok => continue,
                Err(e) => return Err(e),
            }
            let deadline = if bodiless {
                deadline
            } else {
                deadline.max(Instant::now() + read_timeout)
            };
            // An upstream that answered before taking the whole body closes the client
            // connection after its answer (the rest of the body is never read as a request),
            // and its own connection is not reused.
            let whole = *body_left == 0;
            let add = Additions {
                close: add.close || !whole,
                ..*add
            };
            match self.read_head(&mut up, deadline, &add).await {
                Ok(mut resp) => {
                    resp.reusable &= whole;
                    return Ok((up, resp));
                }
                Err(Failure::Broken(_)) if stale_ok && idempotent && up.buf.is_empty() => {
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes the upstream head, then the request body as the client sends it.
    async fn send(
        &mut self,
        up: &mut Upstream,
        body_left: &mut u64,
        deadline: Instant,
    ) -> Result<(), Failure> {
        if *body_left == 0 {
            return write_upstream(up, &self.up_head, &mut self.timer, deadline, false)
                .await
                .map(drop);
        }
        // The head and what of the body has arrived go out together; a body is never
        // resent, so the head can carry it.
        let n = (self.buf.len() as u64).min(*body_left) as usize;
        self.up_head.extend_from_slice(&self.buf[..n]);
        self.buf.advance(n);
        *body_left -= n as u64;
        // From here on the upstream may answer before taking the whole body (a 413, say):
        // sending stops and the answer is read. A failed write may be such an upstream
        // closing, so its answer is looked for too (none is a 502 all the same).
        match write_upstream(up, &self.up_head, &mut self.timer, deadline, true).await {
            Ok(true) => {}
            Ok(false) | Err(Failure::Broken(_)) => return Ok(()),
            Err(e) => return Err(e),
        }
        while *body_left > 0 {
            let stall = Instant::now() + self.body_timeout;
            match io::read_body(&mut self.io, &mut self.buf, up, &mut self.timer, stall).await {
                Ok(()) => {}
                Err(Ended::Answered) => return Ok(()),
                Err(why) => return Err(Failure::ClientGone(why)),
            }
            let n = (self.buf.len() as u64).min(*body_left) as usize;
            match write_upstream(up, &self.buf[..n], &mut self.timer, deadline, true).await {
                Ok(true) => {}
                Ok(false) | Err(Failure::Broken(_)) => return Ok(()),
                Err(e) => return Err(e),
            }
            self.buf.advance(n);
            *body_left -= n as u64;
        }
        Ok(())
    }

    /// Reads the upstream's final response head (informational ones are skipped) and
    /// rewrites it into `out`.
    async fn read_head(
        &mut self,
        up: &mut Upstream,
        deadline: Instant,
        add: &Additions<'_>,
    ) -> Result<head::Response, Failure> {
        loop {
            if !up.buf.is_empty() {
                // A shutdown that began while the upstream worked closes after this response.
                let add = Additions {
                    close: add.close || self.drain.fired(),
                    ..*add
                };
                match head::parse_response(&up.buf, &add, &mut self.out) {
                    Ok(Some(r)) if r.status < 200 => {
                        up.buf.advance(r.len);
                        continue;
                    }
                    Ok(Some(r)) => {
                        up.buf.advance(r.len);
                        return Ok(r);
                    }
                    Ok(None) if up.buf.len() > MAX_RESPONSE_HEAD => {
                        return Err(Failure::Broken("upstream response head too large"));
                    }
                    Ok(None) => {}
                    Err(head::BadResponse::UnexpectedSwitch) => {
                        return Err(Failure::Broken("unexpected protocol switch"));
                    }
                    Err(head::BadResponse::Malformed(why)) => return Err(Failure::Broken(why)),
                }
            }
            match io::read_upstream(
                up,
                &mut self.io,
                &mut self.buf,
                &mut self.timer,
                Some(deadline),
            )
            .await
            {
                Ok(()) => {}
                Err(Ended::TimedOut) => return Err(Failure::TimedOut),
                Err(Ended::ClientGone) => return Err(Failure::ClientGone(Ended::ClientGone)),
                Err(Ended::Eof) => return Err(Failure::Broken("upstream closed the connection")),
                Err(_) => return Err(Failure::Broken("upstream connection failed")),
            }
        }
    }

    /// Writes the response head in `out` and copies the body through, following its
    /// framing; the upstream connection is kept for reuse when the body ended exactly.
    /// Whether the client connection is still in a state to continue.
    async fn relay(
        &mut self,
        mut up: Upstream,
        resp: &head::Response,
        h1: &H1Client,
        lease: &Lease,
    ) -> bool {
        let mut left = match resp.framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        let mut chunks = Chunks::new();
        loop {
            let available = &up.buf[..];
            let (take, done) = match resp.framing {
                Framing::None => (0, true),
                Framing::Length(_) => {
                    let take = (available.len() as u64).min(left) as usize;
                    left -= take as u64;
                    (take, left == 0)
                }
                Framing::Chunked => match chunks.feed(available) {
                    Ok(take) => (take, chunks.done()),
                    // Broken framing: what was sent stands, and both connections end.
                    Err(()) => return false,
                },
                Framing::UntilClose => (available.len(), false),
            };
            let written = if !self.out.is_empty() {
                let result = if take <= COALESCE {
                    self.out.extend_from_slice(&available[..take]);
                    self.io.write_all(&self.out).await
                } else {
                    match self.io.write_all(&self.out).await {
                        Ok(()) => self.io.write_all(&available[..take]).await,
                        Err(e) => Err(e),
                    }
                };
                self.out.clear();
                result
            } else if take > 0 {
                self.io.write_all(&available[..take]).await
            } else {
                Ok(())
            };
            if written.is_err() || self.io.flush().await.is_err() {
                return false;
            }
            up.buf.advance(take);
            if done {
                // Bytes after the body were never asked for: that connection is not reused.
                if resp.reusable && up.buf.is_empty() {
                    h1.keep_idle(lease.target.authority.as_str(), up);
                }
                return true;
            }
            match io::read_upstream(&mut up, &mut self.io, &mut self.buf, &mut self.timer, None)
                .await
            {
                Ok(()) => {}
                // The end of a body delimited by the close.
                Err(Ended::Eof) if resp.framing == Framing::UntilClose => return true,
                // A truncated body: the client sees its connection end.
                Err(_) => return false,
            }
        }
    }

    /// Answers an error the edge produced, in PocketBase's shape; whether it was written.
    async fn answer_error(
        &mut self,
        status: StatusCode,
        message: &str,
        close: bool,
        rt: &ListenerRuntime,
    ) -> bool {
        let body = crate::body::error_json(status, message);
        self.out.clear();
        head::status_line(&mut self.out, status.as_u16(), None);
        head::header_line(&mut self.out, b"content-type", b"application/json");
        head::header_line(
            &mut self.out,
            b"content-length",
            body.len().to_string().as_bytes(),
        );
        if close {
            head::header_line(&mut self.out, b"connection", b"close");
        }
        date::append(&mut self.out);
        for (name, value) in [
            ("strict-transport-security", &rt.hsts),
            ("alt-svc", &rt.alt_svc),
        ] {
            if let Some(v) = value {
                head::header_line(&mut self.out, name.as_bytes(), v.as_bytes());
            }
        }
        self.out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(body.as_bytes());
        let written = self.io.write_all(&self.out).await.is_ok() && self.io.flush().await.is_ok();
        self.out.clear();
        written
    }

    fn record(
        &self,
        shared: &Shared,
        plan: &Plan,
        status: u16,
        started: StdInstant,
        rt: &ListenerRuntime,
    ) {
        crate::service::record(
            shared,
            &plan.route,
            status,
            started,
            self.peer,
            plan.method.as_str(),
            rt.tls.is_some(),
        );
    }
}

/// Judges a complete plain head: `Some` when the fast path proxies it (the upstream head
/// is then written into `up_head`), `None` when hyper must answer it. Nothing stateful
/// happens before the last check, the rate limit, which takes its token only when the
/// request goes ahead here.
fn plan(
    req: &head::Request<'_>,
    rt: &ListenerRuntime,
    shared: &Shared,
    peer: SocketAddr,
    peer_text: &str,
    up_head: &mut Vec<u8>,
) -> Option<Plan> {
    // HTTPS redirects and ACME HTTP-01 answers belong to the hyper path.
    if rt.redirect_https_port.is_some() {
        return None;
    }
    let snapshot = shared.snapshot.load();
    if rt.tls.is_none() && !snapshot.acme.is_empty() {
        return None;
    }
    let limit = snapshot.max_body_bytes;
    if limit > 0 && req.content_length > limit {
        return None;
    }
    let headers = if snapshot.reads_headers {
        Some(req.header_map()?)
    } else {
        None
    };
    let empty = HeaderMap::new();
    let map = headers.as_ref().unwrap_or(&empty);
    let client_ip = snapshot.protection.client_ip(peer.ip(), map);
    if !snapshot.protection.admits(client_ip) {
        return None;
    }
    let method = Method::from_bytes(req.method.as_bytes()).ok()?;
    let host = crate::service::host_without_port(req.host).unwrap_or("");
    let route = snapshot
        .routes
        .iter()
        .find(|r| r.matches(host, &method, req.path(), map))?;
    let Action::Pool(pool) = &route.action else {
        return None;
    };
    if route.cache.is_some() || route.compress.is_some() || pool.h1().is_none() {
        return None;
    }
    let target = match (&route.prefix, route.strip_prefix) {
        (Some(prefix), true) => crate::service::stripped(req.target, prefix),
        _ => None,
    }
    .unwrap_or(("", req.target));
    snapshot
        .protection
        .check_limits(&route.name, client_ip, map)
        .ok()?;
    let forwarding = head::Forwarding {
        target,
        peer: peer_text,
        https: rt.tls.is_some(),
    };
    head::write_upstream_request(req, &forwarding, up_head);
    Some(Plan {
        route: route.name.clone(),
        pool: pool.clone(),
        method,
        body: req.content_length,
        close: req.connection.close,
        head_len: req.len,
        client_ip,
        headers,
    })
}

/// A new connection to `authority`, within the pool's connect timeout and the attempt's
/// deadline if there is one. Boxed: the rare path, kept out of every request's future.
async fn connect(
    authority: &str,
    connect_timeout: std::time::Duration,
    deadline: Option<Instant>,
) -> Result<Upstream, Failure> {
    let limit = Instant::now() + connect_timeout;
    let limit = deadline.map_or(limit, |d| d.min(limit));
    let connecting = Box::pin(tokio::time::timeout_at(
        limit,
        tokio::net::TcpStream::connect(authority),
    ));
    match connecting.await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(Upstream::new(stream))
        }
        Ok(Err(_)) => Err(Failure::Broken("upstream connect failed")),
        Err(_) if Some(limit) == deadline => Err(Failure::TimedOut),
        Err(_) => Err(Failure::Broken("upstream connect timed out")),
    }
}

/// Writes `bytes` to the upstream, giving up at `deadline`: `Ok(true)` once all are
/// written. With `answer`, an upstream that speaks (or closes) while the write waits ends
/// it early, `Ok(false)`, what it sent kept in `up.buf`.
async fn write_upstream(
    up: &mut Upstream,
    mut bytes: &[u8],
    timer: &mut Timer,
    deadline: Instant,
    answer: bool,
) -> Result<bool, Failure> {
    use std::task::Poll;
    use tokio::io::AsyncWrite as _;
    const FAILED: Failure = Failure::Broken("upstream write failed");
    while !bytes.is_empty() {
        // `None`: the upstream spoke first.
        let written = std::future::poll_fn(|cx| {
            match std::pin::Pin::new(&mut up.stream).poll_write(cx, bytes) {
                Poll::Ready(r) => return Poll::Ready(r.map(Some).map_err(|_| FAILED)),
                Poll::Pending => {}
            }
            if answer && io::poll_upstream(up, cx).is_ready() {
                return Poll::Ready(Ok(None));
            }
            timer
                .poll_until(cx, deadline)
                .map(|()| Err(Failure::TimedOut))
        })
        .await?;
        match written {
            None => return Ok(false),
            Some(0) => return Err(FAILED),
            Some(n) => bytes = &bytes[n..],
        }
    }
    Ok(true)
}
