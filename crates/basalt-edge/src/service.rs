//! One request through the edge: refusals owed by the framing guard, HTTPS redirect, body
//! limit, route match, the route's action, HSTS, the access log and metrics.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::BodyExt;
use tower::Service;

use crate::body::{Body, BoxError, error_response, redirect};
use crate::proxy::{ClientSide, Held, forward};
use crate::route::Action;
use crate::snapshot::ListenerRuntime;
use crate::wire::guard::ConnState;
use crate::{ApiService, Shared};

pub type HandleFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<Body>, Infallible>> + Send>>;

/// Decrements the connection's in-flight count when the response is done.
struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

pub async fn handle<B>(
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
    listener: Arc<ListenerRuntime>,
    peer: SocketAddr,
    req: Request<B>,
) -> Result<Response<Body>, Infallible>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    if let Some((status, message)) = conn.next_request() {
        let mut r = error_response(status, message);
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Ok(r);
    }
    conn.in_flight.fetch_add(1, Ordering::AcqRel);
    let in_flight = InFlight(conn.clone());
    let started = Instant::now();
    let method = req.method().clone();
    let https = listener.tls.is_some();
    // The framing guard stops checking after an HTTP/1 upgrade request, so unless the
    // protocol really switches the connection must end with this response.
    let unchecked_after = req.version() <= http::Version::HTTP_11
        && method == http::Method::GET
        && req.headers().contains_key(header::UPGRADE);
    let (mut resp, route) = route_request(shared.clone(), listener.clone(), conn, peer, req).await;
    if unchecked_after && resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Some(hsts) = &listener.hsts {
        resp.headers_mut()
            .insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    if let Some(alt_svc) = &listener.alt_svc {
        resp.headers_mut().insert(header::ALT_SVC, alt_svc.clone());
    }
    record(
        &shared,
        route.as_deref().unwrap_or("-"),
        resp.status().as_u16(),
        started,
        peer,
        method.as_str(),
        https,
    );
    Ok(resp.map(|inner| {
        Held {
            inner,
            _guard: in_flight,
        }
        .boxed_unsync()
    }))
}

/// Counts a request in the route's metrics and writes its access log line; both paths
/// (hyper's and the HTTP/1.1 fast path) call it when the response head is ready.
pub(crate) fn record(
    shared: &Shared,
    route: &str,
    status: u16,
    started: Instant,
    peer: SocketAddr,
    method: &str,
    https: bool,
) {
    shared
        .metrics
        .request(route, status, started.elapsed().as_secs_f64());
    tracing::info!(
        target: "basalt_edge::access",
        client = %peer.ip(),
        method,
        status,
        route,
        https,
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
}

async fn route_request<B>(
    shared: Arc<Shared>,
    listener: Arc<ListenerRuntime>,
    conn: Arc<ConnState>,
    peer: SocketAddr,
    req: Request<B>,
) -> (Response<Body>, Option<Arc<str>>)
where
    B: http_body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let host = request_host(&req);
    let snapshot = shared.snapshot.load_full();
    // ACME HTTP-01 answers come before the redirect: the CA validates over plain HTTP.
    // The rarely taken actions below are boxed: their futures would otherwise make every
    // request's future several kilobytes, copied whole into hyper's boxed service future.
    if listener.tls.is_none()
        && !snapshot.acme.is_empty()
        && let Some(r) = Box::pin(crate::acme::answer_http01(&snapshot.acme, &req)).await
    {
        return (r, Some("acme-challenge".into()));
    }
    if let Some(port) = listener.redirect_https_port {
        let Some(host) = host else {
            return (
                error_response(StatusCode::BAD_REQUEST, "missing Host header"),
                None,
            );
        };
        let pq = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let location = if port == 443 {
            format!("https://{host}{pq}")
        } else {
            format!("https://{host}:{port}{pq}")
        };
        return (redirect(StatusCode::PERMANENT_REDIRECT, &location), None);
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let limit = snapshot.max_body_bytes;
    if limit > 0 && declared.is_some_and(|n| n > limit) {
        shared.metrics.rejected("too_large");
        return (
            error_response(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
            None,
        );
    }
    let client_ip = snapshot.protection.client_ip(peer.ip(), req.headers());
    if !snapshot.protection.admits(client_ip) {
        shared.metrics.rejected("ip_denied");
        return (error_response(StatusCode::FORBIDDEN, "access denied"), None);
    }
    let host_str = host.unwrap_or("");
    let Some(route) = snapshot
        .routes
        .iter()
        .find(|r| r.matches(host_str, req.method(), req.uri().path(), req.headers()))
    else {
        return (
            error_response(StatusCode::NOT_FOUND, "no route for this request"),
            None,
        );
    };
    let name = Some(route.name.clone());
    if let Err(wait) = snapshot
        .protection
        .check_limits(&route.name, client_ip, req.headers())
    {
        shared.metrics.rejected("rate_limited");
        let mut r = error_response(StatusCode::TOO_MANY_REQUESTS, "too many requests");
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        return (r, name);
    }
    let cache_url = route
        .cache
        .as_ref()
        .map(|_| crate::cache::request_url(listener.tls.is_some(), host_str, req.uri()));
    let accept_encoding = req.headers().get(header::ACCEPT_ENCODING).cloned();
    let request_method = req.method().clone();
    let mut parts_watch = None;
    let (parts, b) = req.into_parts();
    let mut req = Request::from_parts(
        parts,
        // Most requests have no body: `Empty` is zero-sized, so its box allocates nothing,
        // where boxing the connection's empty body type is an allocation per request.
        if b.is_end_stream() {
            crate::body::empty()
        } else {
            // Watched, so a failure of the client's body is told apart from the upstream's.
            let (b, watch) = crate::client_body::watched(b, conn);
            parts_watch = Some(watch);
            if limit > 0 && declared.is_none() {
                // Chunked bodies are cut off at the limit too.
                http_body_util::Limited::new(b, limit as usize).boxed_unsync()
            } else {
                b
            }
        },
    );
    if let Some(watch) = parts_watch {
        req.extensions_mut().insert(watch);
    }
    if route.strip_prefix
        && let Some(prefix) = &route.prefix
        && let Some(uri) = strip_prefix(req.uri(), prefix)
    {
        *req.uri_mut() = uri;
    }
    let resp = match &route.action {
        Action::Pool(pool) => {
            let client = ClientSide {
                peer: peer.ip(),
                client: client_ip,
                https: listener.tls.is_some(),
            };
            match (&route.cache, cache_url) {
                (Some(zone), Some(url)) => {
                    Box::pin(crate::cache::serve(zone, pool, req, &client, url)).await
                }
                _ => forward(pool, req, &client).await,
            }
        }
        Action::Api => match &shared.api {
            Some(api) => Box::pin(call_api(api.clone(), req, peer)).await,
            None => error_response(StatusCode::NOT_FOUND, "no route for this request"),
        },
        Action::Static(dir) => {
            let (parts, _) = req.into_parts();
            Box::pin(dir.serve(&parts.method, parts.uri.path(), &parts.headers)).await
        }
        Action::Redirect {
            to,
            status,
            keep_path,
        } => {
            let location = if *keep_path {
                let pq = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/");
                format!("{to}{pq}")
            } else {
                to.clone()
            };
            redirect(*status, &location)
        }
    };
    let resp = match &route.compress {
        Some(c) => c.apply(accept_encoding.as_ref(), &request_method, resp),
        None => resp,
    };
    (resp, name)
}

async fn call_api(mut api: ApiService, mut req: Request<Body>, peer: SocketAddr) -> Response<Body> {
    // The API reads the peer from the extensions when it needs it.
    req.extensions_mut().insert(peer);
    // `poll_ready` then `call` rather than `oneshot`: the boxed future `call` returns is
    // Send for every lifetime, which hyper's connection future needs.
    if let Err(e) = std::future::poll_fn(|cx| api.poll_ready(cx)).await {
        match e {}
    }
    match api.call(req).await {
        Ok(r) => r,
        Err(e) => match e {},
    }
}

/// The host a request is for: the URI authority (HTTP/2) or the Host header, without port.
fn request_host<B>(req: &Request<B>) -> Option<&str> {
    let raw = match req.uri().authority() {
        Some(a) => a.as_str(),
        None => req.headers().get(header::HOST)?.to_str().ok()?,
    };
    host_without_port(raw)
}

/// A `Host` value or authority without its port (`[::1]:8080` gives `[::1]`).
pub(crate) fn host_without_port(raw: &str) -> Option<&str> {
    let host = if raw.starts_with('[') {
        raw.split_inclusive(']').next().unwrap_or(raw)
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, _)| h)
    };
    (!host.is_empty()).then_some(host)
}

/// A request target with a route's prefix taken off, as the two parts to send one after
/// the other: `/` is put back in front when nothing or only a query is left.
pub(crate) fn stripped<'a>(target: &'a str, prefix: &str) -> Option<(&'static str, &'a str)> {
    let rest = target.strip_prefix(prefix)?;
    Some(if rest.is_empty() || rest.starts_with('?') {
        ("/", rest)
    } else {
        ("", rest)
    })
}

fn strip_prefix(uri: &Uri, prefix: &str) -> Option<Uri> {
    let (lead, rest) = stripped(uri.path_and_query()?.as_str(), prefix)?;
    let rest = format!("{lead}{rest}");
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = rest.parse().ok();
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_prefixes() {
        let r = Request::builder()
            .uri("/x")
            .header("host", "Example.com:8080")
            .body(())
            .expect("req");
        assert_eq!(
            request_host(&r),
            Some("Example.com:8080").map(|_| "Example.com")
        );
        let r6 = Request::builder()
            .uri("/x")
            .header("host", "[::1]:8080")
            .body(())
            .expect("req");
        assert_eq!(request_host(&r6), Some("[::1]"));
        let u: Uri = "/app/x?y=1".parse().expect("uri");
        assert_eq!(strip_prefix(&u, "/app").expect("s").to_string(), "/x?y=1");
        let u: Uri = "/app?y=1".parse().expect("uri");
        assert_eq!(strip_prefix(&u, "/app").expect("s").to_string(), "/?y=1");
    }
}
