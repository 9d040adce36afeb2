//! Cross-cutting HTTP concerns: request ids, structured request logs and metrics, CORS,
//! body limits, timeouts, panic recovery, and the 404/405 fallbacks in PocketBase's shape.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use basalt_telemetry::Metrics;
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};

use crate::error::ApiError;
use crate::idle_body::{IdleBody, IdleBounded};
use crate::request_log::PendingLog;
use crate::{ApiConfig, ApiState};

pub(crate) static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Headers every API response carries, whichever path answered it (the stack, the hot
/// path, errors, realtime streams). `nosniff` stops a browser from running a JSON body
/// or an uploaded file as HTML or script, as PocketBase's responses do.
pub(crate) fn add_security_headers(headers: &mut axum::http::HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// How long a health check waits for PostgreSQL before it calls the node degraded.
const HEALTH_PING: std::time::Duration = std::time::Duration::from_secs(2);

/// PocketBase's health answer while the store is sound; a 503 with the reason once its
/// writer stopped (the process exits so a supervisor restarts it), it saw corruption, or
/// (PostgreSQL) the database does not answer (the node stays up and is healthy again once
/// it does), so a load balancer or supervisor stops sending it traffic meanwhile.
pub(crate) async fn health(State(state): State<ApiState>) -> Response {
    let h = state.service.store.health();
    let unreachable = state.service.store.ping(HEALTH_PING).await.err();
    let (reason, message) = if let Some(e) = unreachable {
        tracing::warn!(error = %e, "health check: the database is unreachable");
        (
            "database_unreachable",
            "The database is unreachable: requests that need it fail until it answers again.",
        )
    } else if h.writer_stopped.is_some() {
        (
            "writer_stopped",
            "The database writer stopped: writes fail until the server restarts.",
        )
    } else if h.database_damaged {
        (
            "database_corrupt",
            "Database corruption was detected: run `basalt check` and restore from a backup.",
        )
    } else {
        return axum::Json(
            serde_json::json!({"message": "API is healthy.", "code": 200, "data": {}}),
        )
        .into_response();
    };
    let body = serde_json::json!({"message": message, "code": 503, "data": {"reason": reason}});
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, crate::error::RETRY_AFTER_SECS)],
        axum::Json(body),
    )
        .into_response()
}

/// The Prometheus exposition; with a configured token, only for requests carrying it.
pub(crate) async fn metrics(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
    token: Option<crate::MetricsToken>,
) -> Response {
    if let Some(token) = &token
        && !token.admits(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()))
    {
        let mut r = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "The request requires a valid metrics token.",
        )
        .into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    let h = state.service.store.health();
    state.metrics.set_store_health(
        h.writer_stopped.is_none(),
        h.corruption_errors,
        h.failed_groups,
        h.unknown_commits,
    );
    let s = state.service.store.stats();
    state.metrics.set_store_gauges(
        s.readers_total,
        s.readers_idle,
        s.writer_queue_depth,
        s.writer_queue_capacity,
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// PocketBase routes unknown paths to its static file server, hence the message.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "File not found.")
}

/// PocketBase answers a known path with an unknown method as a missing route.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::not_found()
}

/// Request ids: a per-process random prefix and a counter. Unique per process run without
/// a random-number syscall per request (what a UUID v4 costs).
#[derive(Clone)]
pub(crate) struct SequentialRequestId {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

impl SequentialRequestId {
    pub(crate) fn new() -> Self {
        Self {
            prefix: basalt_schema::id::random_id(12).into(),
            next: Arc::new(AtomicU64::new(1)),
        }
    }

    /// The next id, as a header value.
    pub(crate) fn next_value(&self) -> Option<HeaderValue> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_maybe_shared(axum::body::Bytes::from(request_id_bytes(&self.prefix, n)))
            .ok()
    }
}

impl MakeRequestId for SequentialRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        self.next_value().map(RequestId::new)
    }
}

/// `<prefix>-<n as at least 8 hex digits>`, written without the formatting machinery (it
/// runs for every request).
fn request_id_bytes(prefix: &str, n: u64) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (16 - n.leading_zeros() as usize / 4).max(8);
    let mut out = Vec::with_capacity(prefix.len() + 1 + digits);
    out.extend_from_slice(prefix.as_bytes());
    out.push(b'-');
    for i in (0..digits).rev() {
        out.push(HEX[((n >> (i * 4)) & 0xf) as usize]);
    }
    out
}

/// Logs each request with its id, route, status and latency, and counts it.
/// And its entry in the request log, while that is on.
async fn observe(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let id = req.headers().get(&REQUEST_ID).cloned();
    let log = PendingLog::capture_routed(&state, &mut req);
    let res = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    record_request(
        &state.metrics,
        &method,
        route,
        id.as_ref(),
        res.status(),
        start,
    );
    if let Some(log) = log {
        log.finish(&state.service.logs, &res, start);
    }
    res
}

/// The request's log line and metrics: `observe`'s, and the hot path's (which bypasses
/// the router and with it `observe`).
pub(crate) fn record_request(
    metrics: &Metrics,
    method: &Method,
    route: &str,
    id: Option<&HeaderValue>,
    status: StatusCode,
    start: Instant,
) {
    let secs = start.elapsed().as_secs_f64();
    metrics.observe_request(method.as_str(), route, status.as_u16(), secs);
    tracing::info!(
        request_id = id.and_then(|v| v.to_str().ok()).unwrap_or_default(),
        method = %method,
        route,
        status = status.as_u16(),
        latency_ms = secs * 1000.0,
        "request"
    );
}

/// Bodies that axum's own rejections produce (plain text) become PocketBase-shaped errors.
/// A plain response mapper, not a `from_fn` middleware: no boxed future per request.
fn shape_errors<B>(res: axum::http::Response<B>) -> Response
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let res = res.map(axum::body::Body::new);
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status.is_client_error() || status.is_server_error() {
        if is_json {
            return res;
        }
        let message = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "Request entity too large.",
            StatusCode::REQUEST_TIMEOUT => "Request timeout.",
            StatusCode::UNSUPPORTED_MEDIA_TYPE
            | StatusCode::UNPROCESSABLE_ENTITY
            | StatusCode::BAD_REQUEST => {
                return ApiError::bad_request(
                    "Failed to load the submitted data due to invalid formatting.",
                )
                .into_response();
            }
            s if s.is_server_error() => "Something went wrong while processing your request.",
            _ => "Something went wrong while processing your request.",
        };
        return ApiError::new(status, message).into_response();
    }
    res
}

/// What the stack answers when a layer gives up with a bare `status` (a panic, a timeout).
pub(crate) fn bare_status(status: StatusCode) -> Response {
    let mut res = Response::new(axum::body::Body::empty());
    *res.status_mut() = status;
    shape_errors(res)
}

fn cors(config: &ApiConfig) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::HEAD,
            Method::OPTIONS,
        ])
        .allow_headers(Any)
        .expose_headers([REQUEST_ID.clone()]);
    if config.cors_origins.iter().any(|o| o == "*") {
        layer.allow_origin(Any)
    } else {
        let origins: Vec<HeaderValue> = config
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        layer.allow_origin(AllowOrigin::list(origins))
    }
}

/// The API behind its middleware, as one boxed service (built once).
pub(crate) type Stack = BoxCloneSyncService<Request, Response, Infallible>;

/// Layers, innermost first: metrics/logs see every routed request (inside the router,
/// where the matched route is known); limits, timeouts and the panic catcher produce bare
/// statuses that `shape_errors` turns into PocketBase's body; CORS, request ids and the
/// security headers wrap everything, errors and preflights included. Only `observe` is a
/// router layer: axum clones a router layer's whole boxed stack for every request, while
/// the stack around the router is one plain struct cloned once per request. `ids` is shared with the hot path (one sequence).
/// The body limit of a request: the configured one, and for a multipart record write
/// that plus its collection's files (`files::body_limit`, PocketBase's rule).
#[derive(Clone)]
pub(crate) struct BodyLimit {
    base: u64,
    store: basalt_store::Store,
    /// How long an upload's body may send nothing (the request timeout's value).
    idle: std::time::Duration,
}

async fn limit_body(State(l): State<BodyLimit>, req: Request, next: Next) -> Response {
    let mut limit = l.base;
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    let collection = (multipart && matches!(*req.method(), Method::POST | Method::PATCH))
        .then(|| crate::body::records_collection(req.uri().path()))
        .flatten();
    if let Some(c) = collection
        .as_deref()
        .and_then(|name| l.store.schema().find(name).cloned())
    {
        limit = basalt_service::files::body_limit(&c, limit);
    }
    // A backup upload is as large as the backup; the archive's own bounds apply to it.
    if multipart && *req.method() == Method::POST && req.uri().path() == "/api/backups/upload" {
        limit = limit.max(basalt_service::backups::archive::MAX_UNPACKED);
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut req = req.map(|b| axum::body::Body::new(http_body_util::Limited::new(b, limit)));
    let batch_upload = multipart && req.uri().path() == "/api/batch";
    if collection.is_some() || batch_upload {
        // An upload takes as long as the link needs: bounded by idleness, not total time.
        let bounded = IdleBounded {
            timed_out: Arc::default(),
        };
        let flag = bounded.timed_out.clone();
        req.extensions_mut().insert(bounded);
        req = req.map(|b| axum::body::Body::new(IdleBody::new(b, l.idle, flag)));
    }
    next.run(req).await
}

/// The whole-request timeout, for every request but the uploads bounded by idleness.
async fn timeout_unless_upload(
    State(timeout): State<std::time::Duration>,
    req: Request,
    next: Next,
) -> Response {
    if req.extensions().get::<IdleBounded>().is_some() {
        return next.run(req).await;
    }
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => StatusCode::REQUEST_TIMEOUT.into_response(),
    }
}

pub(crate) fn layers(
    router: Router,
    state: &ApiState,
    config: &ApiConfig,
    ids: SequentialRequestId,
) -> Stack {
    let routed = router.layer(from_fn_with_state(state.clone(), observe));
    let stack = ServiceBuilder::new()
        .map_response(|mut res: Response| {
            add_security_headers(res.headers_mut());
            res
        })
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), ids))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(crate::cors::ApiCorsLayer::new(
            cors(config),
            config.cors_origins.iter().any(|o| o == "*"),
        ))
        .map_response(shape_errors)
        .layer(CatchPanicLayer::new())
        .layer(from_fn_with_state(
            BodyLimit {
                base: config.body_limit_bytes as u64,
                store: state.service.store.clone(),
                idle: config.request_timeout,
            },
            limit_body,
        ))
        // The limit above is the only one: axum's own 2 MB default for extractors is off.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(from_fn_with_state(
            config.request_timeout,
            timeout_unless_upload,
        ))
        .service(routed);
    BoxCloneSyncService::new(stack)
}

#[cfg(test)]
mod tests {
    use super::request_id_bytes;

    #[test]
    fn request_ids_are_the_prefix_and_the_counter_in_hex_padded_to_eight_digits() {
        for n in [0u64, 1, 0xabc, 0xffff_ffff, 0x1_0000_0000, u64::MAX] {
            assert_eq!(
                request_id_bytes("p", n),
                format!("p-{n:08x}").into_bytes(),
                "{n}"
            );
        }
    }
}
