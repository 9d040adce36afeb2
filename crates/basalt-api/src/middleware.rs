//! Cross-cutting HTTP concerns: request ids, structured request logs and metrics, CORS,
//! body limits, timeouts, panic recovery, and the 404/405 fallbacks in PocketBase's shape.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;

use crate::error::ApiError;
use crate::{ApiConfig, ApiState};

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub(crate) async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({"message": "API is healthy.", "code": 200, "data": {}}))
}

pub(crate) async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    let s = state.store.stats();
    state.metrics.set_store_gauges(
        s.readers_total,
        s.readers_idle,
        s.writer_queue_depth,
        s.writer_queue_capacity,
    );
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// PocketBase routes unknown paths to its static file server, hence the message.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "File not found.")
}

/// PocketBase answers a known path with an unknown method as a missing route.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::not_found()
}

/// Logs each request with its id, route, status and latency, and counts it.
async fn observe(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let res = next.run(req).await;
    let secs = start.elapsed().as_secs_f64();
    let status = res.status().as_u16();
    state
        .metrics
        .observe_request(method.as_str(), &route, status, secs);
    tracing::info!(request_id = %id, method = %method, route = %route, status, latency_ms = secs * 1000.0, "request");
    res
}

/// Bodies that axum's own rejections produce (plain text) become PocketBase-shaped errors.
async fn shape_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("application/json") || v.starts_with("application/openmetrics")
        });
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

/// Layers, innermost first: metrics/logs see every routed request; limits, timeouts and
/// the panic catcher produce bare statuses that `shape_errors` turns into PocketBase's
/// body; CORS and request ids wrap everything, errors included.
pub(crate) fn layers(router: Router, state: ApiState, config: &ApiConfig) -> Router {
    router
        .layer(from_fn_with_state(state, observe))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .layer(RequestBodyLimitLayer::new(config.body_limit_bytes))
        .layer(CatchPanicLayer::new())
        .layer(from_fn_with_state((), |req: Request, next: Next| {
            shape_errors(req, next)
        }))
        .layer(cors(config))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
}
