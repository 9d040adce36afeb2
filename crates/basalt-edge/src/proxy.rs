//! Forwarding to an upstream pool: hop-by-hop headers removed, `X-Forwarded-*` set, a
//! target picked per attempt, timeouts, retries of idempotent bodiless requests within the
//! pool's retry budget, and protocol upgrades (WebSocket) tunnelled after a 101.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Body as _, Frame};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

use crate::body::{Body, BoxError, error_response};
use crate::client_body::{BodyWatch, ClientFault};
use crate::pool::h1_client::PooledBody;
use crate::pool::{Lease, PickContext, PickError, Pool};

/// What the proxy knows about the client side of a request.
pub struct ClientSide {
    /// The connection's peer: the hop appended to `X-Forwarded-For`.
    pub peer: IpAddr,
    /// The client behind trusted proxies: what consistent hashing by client IP uses.
    pub client: IpAddr,
    pub https: bool,
}

/// Headers that belong to one connection and never cross the proxy (RFC 9110 7.6.1), and
/// `HTTP2-Settings`, which only ever goes with an `h2c` upgrade of one connection (RFC 9113
/// 3.2, RFC 7540 3.2.1).
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    HeaderName::from_static("http2-settings"),
];

// Consts, so the names are checked once at compile time instead of on every request.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the names first, noting which hop-by-hop ones are present (bit i for
    // `HOP_BY_HOP[i]`, bit 9 for `Upgrade`): most messages carry none of them but
    // `Connection`, and comparing names is cheaper than hashing ten for removals.
    let mut present = 0u16;
    for name in headers.keys() {
        if let Some(bit) = hop_by_hop_bit(name.as_str()) {
            present |= 1 << bit;
        }
    }
    if present == 0 {
        return;
    }
    // Headers named in `Connection` are hop-by-hop too. The usual single `Connection`
    // value is taken out whole and its names removed as `&str` look-ups: building a
    // `HeaderName` for a name like `keep-alive` allocates, once per request and response.
    let mut values = headers.get_all(header::CONNECTION).iter();
    match (values.next(), values.next()) {
        (None, _) => {}
        (Some(_), None) => {
            if let Some(value) = headers.remove(header::CONNECTION) {
                remove_named(headers, &value, keep_upgrade);
            }
        }
        _ => {
            let all: Vec<HeaderValue> = headers
                .get_all(header::CONNECTION)
                .iter()
                .cloned()
                .collect();
            headers.remove(header::CONNECTION);
            for value in &all {
                remove_named(headers, value, keep_upgrade);
            }
        }
    }
    // `Connection` (bit 0) is gone already; a name it listed was removed above.
    for (i, name) in HOP_BY_HOP.iter().enumerate().skip(1) {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    if !keep_upgrade && present & (1 << HOP_BY_HOP.len()) != 0 {
        headers.remove(header::UPGRADE);
    }
}

/// The bit of a hop-by-hop name in `strip_hop_by_hop`'s mask: its index in `HOP_BY_HOP`,
/// or 9 for `Upgrade`. One string match instead of comparing against each of the names.
fn hop_by_hop_bit(name: &str) -> Option<u32> {
    Some(match name {
        "connection" => 0,
        "keep-alive" => 1,
        "proxy-connection" => 2,
        "proxy-authenticate" => 3,
        "proxy-authorization" => 4,
        "te" => 5,
        "trailer" => 6,
        "transfer-encoding" => 7,
        "http2-settings" => 8,
        "upgrade" => 9,
        _ => return None,
    })
}

/// Removes the headers a `Connection` value names (a name that is not a valid header
/// name matches nothing).
fn remove_named(headers: &mut HeaderMap, connection: &HeaderValue, keep_upgrade: bool) {
    let Ok(names) = connection.to_str() else {
        return;
    };
    for name in names.split(',').map(str::trim) {
        if name.is_empty() || (keep_upgrade && name.eq_ignore_ascii_case("upgrade")) {
            continue;
        }
        headers.remove(name);
    }
}

/// The protocols a request asks to switch to that the proxy passes on: every `Upgrade`
/// token but `h2c`. An `h2c` upgrade would switch the upstream connection to HTTP/2 with
/// settings the client chose, behind the edge's checks (h2c smuggling), so the token is
/// dropped, as nginx does; a request asking only for it is forwarded as a plain request.
/// `None` when nothing is left to upgrade to (or the request is not a GET).
fn forwarded_upgrade<B>(req: &Request<B>) -> Option<HeaderValue> {
    if req.method() != Method::GET {
        return None;
    }
    let mut values = req.headers().get_all(header::UPGRADE).iter();
    let first = values.next()?;
    let h2c = |t: &str| t.trim().eq_ignore_ascii_case("h2c");
    let only_value = values.next().is_none();
    // The usual case, one value without `h2c`, is passed on as it came, without a copy.
    if only_value
        && let Ok(text) = first.to_str()
        && !text.split(',').any(h2c)
    {
        return Some(first.clone());
    }
    let kept: Vec<&str> = req
        .headers()
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty() && !h2c(t))
        .collect();
    if kept.is_empty() {
        return None;
    }
    HeaderValue::from_str(&kept.join(", ")).ok()
}

pub(crate) fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Forwards `req` (path already rewritten) to `pool`.
pub async fn forward(
    pool: &Arc<Pool>,
    mut req: Request<Body>,
    client: &ClientSide,
) -> Response<Body> {
    let upgrade_value = forwarded_upgrade(&req);
    let upgrade = upgrade_value.is_some();
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let host = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    strip_hop_by_hop(&mut parts.headers, false);
    if let Some(u) = upgrade_value {
        parts.headers.insert(header::UPGRADE, u);
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    if let Some(h) = &host {
        parts.headers.insert(header::HOST, h.clone());
        parts.headers.insert(X_FORWARDED_HOST, h.clone());
    }
    append_forwarded_for(&mut parts.headers, client.peer);
    parts.headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if client.https { "https" } else { "http" }),
    );
    let path_and_query = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    // What becomes of the client's body, to tell its failures from the upstream's.
    let watch = parts.extensions.remove::<Arc<BodyWatch>>();
    // Retrying is safe only when nothing of the request can have been consumed.
    let retriable = idempotent(&parts.method) && body.is_end_stream() && !upgrade;
    let attempts = pool.attempts(retriable);
    let mut body = Some(body);
    let mut tried: Option<usize> = None;
    let mut last_error = (StatusCode::BAD_GATEWAY, "upstream unavailable");
    for attempt in 0..attempts {
        if attempt > 0 && !pool.take_retry() {
            break;
        }
        let ctx = PickContext {
            client_ip: client.client,
            headers: &parts.headers,
        };
        let lease = match pool.pick(&ctx, tried) {
            Ok(l) => l,
            Err(PickError::AllFull) => {
                return error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "every upstream target is at its request limit",
                );
            }
            Err(PickError::NoneAvailable) if attempt == 0 => {
                return error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no healthy upstream target",
                );
            }
            Err(PickError::NoneAvailable) => break,
        };
        tried = Some(lease.index);
        let uri = Uri::builder()
            .scheme("http")
            .authority(lease.target.authority.clone())
            .path_and_query(path_and_query.clone())
            .build();
        let Ok(uri) = uri else {
            return error_response(StatusCode::BAD_REQUEST, "invalid request target");
        };
        let mut up = Request::new(match body.take() {
            Some(b) => b,
            None => crate::body::empty(),
        });
        *up.method_mut() = parts.method.clone();
        *up.uri_mut() = uri;
        *up.version_mut() = Version::HTTP_11;
        // The last attempt takes the headers; earlier ones need a copy for the next.
        *up.headers_mut() = if attempt + 1 == attempts {
            std::mem::take(&mut parts.headers)
        } else {
            parts.headers.clone()
        };
        let started = Instant::now();
        let result = timed_send(pool, up, watch.as_deref(), started).await;
        let elapsed = started.elapsed();
        if let Ok(Err(e)) = &result
            && body_over_limit(e.as_ref())
        {
            // The client's fault, not the target's: no failure is recorded against it.
            pool.metrics.rejected("too_large");
            return error_response(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
        }
        // The client's body failed (broken framing, a stall, the client gone), or the
        // client was still to send more when the time ran out: the attempt failed because
        // of the client, so nothing is recorded against the target and nothing is retried.
        if let (Some(w), false) = (&watch, matches!(result, Ok(Ok(_)))) {
            if let Some(fault) = w.fault() {
                return client_fault(fault);
            }
            if result.is_err() && w.awaiting_client() {
                return client_fault(ClientFault {
                    status: StatusCode::REQUEST_TIMEOUT,
                    message: "request body timed out",
                });
            }
        }
        match result {
            Ok(Ok(resp)) => {
                let status = resp.status();
                let failed = matches!(status.as_u16(), 502..=504);
                pool.observe(&lease, elapsed, !failed);
                pool.metrics.upstream(
                    &pool.name,
                    &lease.target.address,
                    status.as_u16(),
                    elapsed.as_secs_f64(),
                );
                return finish(resp, lease, client_upgrade);
            }
            Ok(Err(e)) => {
                pool.observe(&lease, elapsed, false);
                pool.metrics
                    .upstream(&pool.name, &lease.target.address, 0, elapsed.as_secs_f64());
                tracing::warn!(pool = %pool.name, target = %lease.target.address, error = %e, "upstream request failed");
                last_error = (StatusCode::BAD_GATEWAY, "upstream request failed");
            }
            Err(_) => {
                pool.observe(&lease, elapsed, false);
                pool.metrics
                    .upstream(&pool.name, &lease.target.address, 0, elapsed.as_secs_f64());
                tracing::warn!(pool = %pool.name, target = %lease.target.address, "upstream timed out");
                last_error = (StatusCode::GATEWAY_TIMEOUT, "upstream timed out");
            }
        }
    }
    error_response(last_error.0, last_error.1)
}

/// One attempt within the pool's read timeout. The upstream cannot answer before it has
/// the whole request, so while the client is sending its body the timeout runs from the
/// client's last progress (a client stalled past it is the client's fault, told apart by
/// the caller), and once the body has ended, from its end: a client sending slowly is
/// never counted as a slow target.
async fn timed_send(
    pool: &Pool,
    up: Request<Body>,
    watch: Option<&BodyWatch>,
    started: Instant,
) -> Result<Result<Response<PooledBody>, BoxError>, tokio::time::error::Elapsed> {
    let sending = send(pool, up);
    tokio::pin!(sending);
    let mut deadline = started + pool.read_timeout;
    loop {
        match tokio::time::timeout_at(deadline.into(), &mut sending).await {
            Ok(result) => return Ok(result),
            Err(elapsed) => {
                let later = watch
                    .filter(|w| w.ended() || w.awaiting_client())
                    .map(|w| w.progress_at() + pool.read_timeout)
                    .filter(|d| *d > deadline);
                match later {
                    Some(d) => deadline = d,
                    None => return Err(elapsed),
                }
            }
        }
    }
}

/// The answer to a request whose body failed on the client's side. The connection closes
/// after it: what is left of the body cannot be found.
fn client_fault(fault: ClientFault) -> Response<Body> {
    let mut resp = error_response(fault.status, fault.message);
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// One attempt on the pool's upstream client.
async fn send(pool: &Pool, up: Request<Body>) -> Result<Response<PooledBody>, BoxError> {
    let resp = match pool.h1() {
        Some(h1) => h1.send(up).await?,
        None => match pool.client().request(up).await {
            Ok(resp) => resp.map(PooledBody::unpooled),
            Err(e) => return Err(Box::new(e)),
        },
    };
    if ambiguous_length(resp.headers()) {
        // Dropped unread, so its connection is closed rather than reused.
        return Err("upstream response with ambiguous framing".into());
    }
    Ok(resp)
}

/// An upstream response whose body length two parties could read differently: more than
/// one `Content-Length`, or one with `Transfer-Encoding`. It is refused (502), as the
/// HTTP/1.1 fast path refuses it, never relayed with either reading.
fn ambiguous_length(headers: &HeaderMap) -> bool {
    let lengths = headers.get_all(header::CONTENT_LENGTH).iter().count();
    lengths > 1 || (lengths == 1 && headers.contains_key(header::TRANSFER_ENCODING))
}

/// The request body was cut off at the route's body limit (a body without a declared
/// length, checked as it streams): the upstream request failed because of it.
fn body_over_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(err) = cause {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = err.source();
    }
    false
}

fn append_forwarded_for(headers: &mut HeaderMap, ip: IpAddr) {
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    // Every earlier hop is kept, in order, as one list (several headers are one list).
    let mut hops = String::new();
    for prev in headers.get_all(X_FORWARDED_FOR) {
        let prev = prev.as_bytes().trim_ascii();
        if let Ok(prev) = std::str::from_utf8(prev)
            && !prev.is_empty()
        {
            hops.push_str(prev);
            hops.push_str(", ");
        }
    }
    let value = if hops.is_empty() {
        Some(peer_value(ip))
    } else {
        HeaderValue::from_str(&format!("{hops}{ip}")).ok()
    };
    if let Some(v) = value {
        headers.insert(X_FORWARDED_FOR, v);
    }
}

thread_local! {
    /// The `X-Forwarded-For` value of the last peer this thread forwarded for. A keep-alive
    /// connection sends every request from one peer, so the value is formatted and
    /// allocated once instead of per request; a clone of it is a reference count.
    static LAST_PEER: std::cell::RefCell<Option<(IpAddr, HeaderValue)>> =
        const { std::cell::RefCell::new(None) };
}

/// `ip` as a header value, from the thread's memo when it was the last peer.
fn peer_value(ip: IpAddr) -> HeaderValue {
    LAST_PEER.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((seen, value)) = &*last
            && *seen == ip
        {
            return value.clone();
        }
        let mut text = [0u8; 64];
        let mut cursor = std::io::Cursor::new(&mut text[..]);
        let _ = std::io::Write::write_fmt(&mut cursor, format_args!("{ip}"));
        let len = cursor.position() as usize;
        // An address's text is always a valid header value; the fallback is unreachable.
        let value = HeaderValue::from_bytes(&text[..len])
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        *last = Some((ip, value.clone()));
        value
    })
}

/// Turns the upstream response into the client's: hop-by-hop headers out, the target's
/// lease held until the body ends, and a tunnel for a 101.
fn finish(
    mut resp: Response<PooledBody>,
    lease: Lease,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Response<Body> {
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            let upgrade_header = resp.headers().get(header::UPGRADE).cloned();
            strip_hop_by_hop(resp.headers_mut(), true);
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            if let Some(u) = upgrade_header {
                resp.headers_mut().insert(header::UPGRADE, u);
            }
            tokio::spawn(async move {
                // The lease lives as long as the tunnel, so the stream counts as load.
                let _lease = lease;
                let (Ok(client), Ok(upstream)) = tokio::join!(client_upgrade, upstream_upgrade)
                else {
                    return;
                };
                let mut client = TokioIo::new(client);
                let mut upstream = TokioIo::new(upstream);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
            return resp.map(|_| crate::body::empty());
        }
        return error_response(StatusCode::BAD_GATEWAY, "unexpected protocol switch");
    }
    let refused_upgrade = client_upgrade.is_some();
    strip_hop_by_hop(resp.headers_mut(), false);
    if refused_upgrade {
        // The framing guard let bytes after an upgrade request through unchecked; closing
        // makes sure they are never read as another request.
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    // One box around the lease and the upstream body together: every box is an allocation
    // per response and a virtual call per frame.
    resp.map(|b| {
        Held {
            inner: b,
            _guard: lease,
        }
        .boxed_unsync()
    })
}

/// A body that keeps something alive (a lease, an in-flight mark) until it is done.
pub struct Held<B, G> {
    pub inner: B,
    pub _guard: G,
}

impl<B, G> http_body::Body for Held<B, G>
where
    B: http_body::Body<Data = Bytes, Error = BoxError> + Unpin,
    G: Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn hop_by_hop_bits_follow_the_list() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_bit(name.as_str()), Some(i as u32), "{name}");
        }
        assert_eq!(
            hop_by_hop_bit(header::UPGRADE.as_str()),
            Some(HOP_BY_HOP.len() as u32)
        );
        assert_eq!(hop_by_hop_bit("x-kept"), None);
    }

    #[test]
    fn ambiguous_response_lengths_are_told_apart() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("2"));
        assert!(!ambiguous_length(&h));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        assert!(ambiguous_length(&h));
        h.remove(header::TRANSFER_ENCODING);
        h.append(header::CONTENT_LENGTH, HeaderValue::from_static("2"));
        assert!(ambiguous_length(&h));
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        append_forwarded_for(&mut h, "10.0.0.1".parse().expect("ip"));
        append_forwarded_for(&mut h, "::ffff:10.0.0.2".parse().expect("ip"));
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 10.0.0.2");
        let mut h = HeaderMap::new();
        h.append(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        h.append(X_FORWARDED_FOR, HeaderValue::from_static(" 10.0.0.2 "));
        append_forwarded_for(&mut h, "10.0.0.3".parse().expect("ip"));
        assert_eq!(h.get_all(X_FORWARDED_FOR).iter().count(), 1);
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 10.0.0.2, 10.0.0.3");
        // The memo follows the peer: a different address is never answered from it.
        for ip in ["10.0.0.3", "10.0.0.3", "2001:db8::1", "10.0.0.3"] {
            let mut h = HeaderMap::new();
            append_forwarded_for(&mut h, ip.parse().expect("ip"));
            assert_eq!(h["x-forwarded-for"], ip);
        }
    }

    #[test]
    fn connection_named_headers_are_removed_without_a_header_name() {
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, HeaderValue::from_static("x-a, Upgrade"));
        h.append(
            header::CONNECTION,
            HeaderValue::from_static("x-b,,bad name"),
        );
        h.insert("x-a", HeaderValue::from_static("1"));
        h.insert("x-b", HeaderValue::from_static("1"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, true);
        assert!(!h.contains_key("x-a") && !h.contains_key("x-b"));
        assert!(!h.contains_key(header::CONNECTION));
        assert!(h.contains_key(header::UPGRADE) && h.contains_key("x-kept"));
    }
}
