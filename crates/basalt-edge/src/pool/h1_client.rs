//! The HTTP/1.1 upstream client: keep-alive connections per target authority, each
//! returned to its target's idle list when the response body has been read to its end.
//! Two kinds are kept apart: plain sockets, driven by the fast path (`crate::h1`) and by
//! `crate::h1::client` for every bodiless request hyper serves, and hyper's low-level
//! client connections for requests with a body or an upgrade.
//!
//! It replaces hyper-util's pooled client on the hot path, which spawns a task per
//! request to wait for the connection to become idle again and keys its pool through a
//! shared map of boxed entries; here a request costs one lock to take a connection and
//! one to give it back, and nothing is spawned after the connection's own task.
//!
//! A pool holds one per edge worker: a connection's task is spawned on, and its idle list
//! used from, the worker thread whose requests it serves.

use fnv::FnvHashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery};
use http::{Request, Response, StatusCode, Uri};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::body::{Body, BoxError};
use crate::h1::Upstream;
use crate::h1::client::RawBody;

/// More idle connections than this per target are closed instead of kept.
const MAX_IDLE_PER_TARGET: usize = 1024;

struct IdleConnection {
    sender: SendRequest<Body>,
    since: Instant,
}

/// An idle connection of the HTTP/1.1 fast path (`crate::h1`), which drives its own.
struct IdleUpstream {
    conn: Upstream,
    since: Instant,
}

pub struct H1Client {
    /// Idle connections per target, oldest first; the newest is reused first. Keyed by
    /// the authority's text: `Authority` hashes and compares byte by byte ignoring case,
    /// which cost more than the rest of a checkout and checkin together. Hashed with FNV:
    /// the keys are configured target addresses, short and never chosen by a client, so
    /// SipHash's resistance to chosen keys buys nothing for its extra cost.
    idle: Mutex<FnvHashMap<Box<str>, Vec<IdleConnection>>>,
    /// The fast path's idle connections, kept apart: they are plain sockets, not hyper's.
    fast_idle: Mutex<FnvHashMap<Box<str>, Vec<IdleUpstream>>>,
    pub(crate) connect_timeout: Duration,
    idle_timeout: Duration,
}

impl H1Client {
    pub fn new(connect_timeout: Duration, idle_timeout: Duration) -> Arc<Self> {
        let client = Arc::new(Self {
            idle: Mutex::new(FnvHashMap::default()),
            fast_idle: Mutex::new(FnvHashMap::default()),
            connect_timeout,
            idle_timeout,
        });
        // Idle connections past their timeout are closed even when no request comes;
        // the sweeper ends with the pool (a reload builds a new one).
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&client);
            let every = (idle_timeout / 2).max(Duration::from_millis(50));
            rt.spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let Some(client) = weak.upgrade() else {
                        return;
                    };
                    client.sweep();
                }
            });
        }
        client
    }

    /// Sends `req` (absolute URI naming the target) on an idle connection to its target, or
    /// on a new one when none is idle or an idle one turned out closed before the request
    /// was written. A bodiless request without an upgrade goes on a plain socket
    /// (`crate::h1::client`), any other on hyper's client connection.
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<Body>,
    ) -> Result<Response<PooledBody>, BoxError> {
        let Some(authority) = req.uri().authority().cloned() else {
            return Err("upstream request without a target".into());
        };
        let origin_form = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(origin_form);
        if crate::h1::client::takes(&req) {
            let resp = crate::h1::client::send(self, authority, req).await?;
            return Ok(resp.map(|raw| PooledBody {
                inner: Inner::Raw(raw),
            }));
        }
        if !req.headers().contains_key(header::HOST) {
            req.headers_mut()
                .insert(header::HOST, HeaderValue::from_str(authority.as_str())?);
        }
        while let Some(mut sender) = self.checkout(&authority) {
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(self.hold(resp, sender, authority)),
                Err(mut e) => match e.take_message() {
                    // Closed by the upstream while idle: nothing was sent, try another.
                    Some(unsent) => req = unsent,
                    None => return Err(Box::new(e.into_error())),
                },
            }
        }
        // Boxed: a new connection is the rare path, and its future (connect, timeout,
        // handshake) would otherwise enlarge every request's future, which hyper moves
        // into its box and the proxy's futures copy as they move along.
        let mut sender = Box::pin(self.connect(&authority)).await?;
        let resp = sender.send_request(req).await?;
        Ok(self.hold(resp, sender, authority))
    }

    fn checkout(&self, authority: &Authority) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.get_mut(authority.as_str())?;
        while let Some(c) = list.pop() {
            if !c.sender.is_closed() && c.since.elapsed() < self.idle_timeout {
                return Some(c.sender);
            }
        }
        None
    }

    fn checkin(&self, authority: Authority, sender: SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let connection = IdleConnection {
            sender,
            since: Instant::now(),
        };
        match idle.get_mut(authority.as_str()) {
            Some(list) if list.len() >= MAX_IDLE_PER_TARGET => {}
            Some(list) => list.push(connection),
            None => {
                idle.insert(authority.as_str().into(), vec![connection]);
            }
        }
    }

    /// Drops connections idle past the timeout or closed by their upstream.
    fn sweep(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        for list in idle.values_mut() {
            list.retain(|c| !c.sender.is_closed() && c.since.elapsed() < self.idle_timeout);
        }
        idle.retain(|_, list| !list.is_empty());
        drop(idle);
        let mut fast = self
            .fast_idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for list in fast.values_mut() {
            list.retain(|c| c.since.elapsed() < self.idle_timeout && c.conn.still_open());
        }
        fast.retain(|_, list| !list.is_empty());
    }

    /// An idle fast-path connection to `authority` (the newest), if one is still open.
    pub(crate) fn take_idle(&self, authority: &str) -> Option<Upstream> {
        let mut idle = self
            .fast_idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let list = idle.get_mut(authority)?;
        while let Some(c) = list.pop() {
            if c.since.elapsed() < self.idle_timeout && c.conn.still_open() {
                return Some(c.conn);
            }
        }
        None
    }

    /// Keeps a fast-path connection whose last response was read whole for the next
    /// request to `authority`.
    pub(crate) fn keep_idle(&self, authority: &str, conn: Upstream) {
        let mut idle = self
            .fast_idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = IdleUpstream {
            conn,
            since: Instant::now(),
        };
        match idle.get_mut(authority) {
            Some(list) if list.len() >= MAX_IDLE_PER_TARGET => {}
            Some(list) => list.push(entry),
            None => {
                idle.insert(authority.into(), vec![entry]);
            }
        }
    }

    async fn connect(&self, authority: &Authority) -> Result<SendRequest<Body>, BoxError> {
        let stream =
            tokio::time::timeout(self.connect_timeout, TcpStream::connect(authority.as_str()))
                .await
                .map_err(|_| "upstream connect timed out")??;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// Wraps the response so its connection goes back to the idle list once the body has
    /// been read whole; a protocol switch keeps the connection for the tunnel.
    fn hold(
        self: &Arc<Self>,
        resp: Response<Incoming>,
        sender: SendRequest<Body>,
        authority: Authority,
    ) -> Response<PooledBody> {
        let reusable = resp.status() != StatusCode::SWITCHING_PROTOCOLS;
        let mut checkin = reusable.then(|| Checkin {
            client: Arc::downgrade(self),
            authority,
            sender,
        });
        if resp.body().is_end_stream()
            && let Some(c) = checkin.take()
        {
            c.give_back();
        }
        resp.map(|body| PooledBody {
            inner: Inner::Hyper { body, checkin },
        })
    }
}

struct Checkin {
    client: Weak<H1Client>,
    authority: Authority,
    sender: SendRequest<Body>,
}

impl Checkin {
    fn give_back(self) {
        if let Some(client) = self.client.upgrade() {
            client.checkin(self.authority, self.sender);
        }
    }
}

/// An upstream response body; a connection read to the end of it is reused, one
/// abandoned earlier is dropped (closed) with it.
pub struct PooledBody {
    inner: Inner,
}

enum Inner {
    /// From hyper's client connection.
    Hyper {
        body: Incoming,
        checkin: Option<Checkin>,
    },
    /// From a raw connection (`crate::h1::client`), which gives itself back.
    Raw(RawBody),
}

impl PooledBody {
    /// A body from a client that pools on its own (hyper-util's, for h2c upstreams).
    pub fn unpooled(body: Incoming) -> Self {
        Self {
            inner: Inner::Hyper {
                body,
                checkin: None,
            },
        }
    }
}

impl http_body::Body for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.inner {
            Inner::Raw(raw) => Pin::new(raw).poll_frame(cx),
            Inner::Hyper { body, checkin } => {
                let polled = Pin::new(&mut *body).poll_frame(cx);
                let ended = match &polled {
                    Poll::Ready(None) => true,
                    Poll::Ready(Some(Ok(_))) => body.is_end_stream(),
                    _ => false,
                };
                if ended && let Some(c) = checkin.take() {
                    c.give_back();
                }
                polled.map_err(BoxError::from)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Raw(raw) => raw.is_end_stream(),
            Inner::Hyper { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Raw(raw) => raw.size_hint(),
            Inner::Hyper { body, .. } => body.size_hint(),
        }
    }
}
