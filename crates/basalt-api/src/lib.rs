//! The HTTP layer: routes, extractors, wire types and error mapping of the
//! PocketBase-compatible API. The only crate that knows HTTP; it holds no business rules
//! (the operations live in `basalt-service`: a handler reads the request into a typed
//! input, calls the operation and renders its answer) and reads no configuration itself:
//! the binary hands it an [`ApiState`] and an [`ApiConfig`].

mod auth;
mod backups;
mod batch;
mod body;
mod collections;
mod cors;
mod crons;
mod error;
mod files;
mod hot_get;
mod idle_body;
mod json;
mod logs;
mod middleware;
mod oauth2;
mod openapi;
mod realtime;
mod records;
mod request_info;
mod request_log;
mod service;
mod settings;
pub mod typegen;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{delete, get, post};
use basalt_service::Services;
use basalt_telemetry::Metrics;

pub use auth::{AuthLimits, AuthLimitsConfig};
pub use error::ApiError;
pub use openapi::{Audience as OpenApiAudience, OpenApiAccess, build as openapi_document};
pub use realtime::renderer as realtime_renderer;
pub use realtime::{DirectSocket, StreamSocket};
pub use service::{ApiFuture, ApiService};

/// Everything a handler may use.
#[derive(Clone)]
pub struct ApiState {
    /// The operations' handles (store, token keys, password pool, OAuth2 client).
    pub service: Services,
    pub metrics: Arc<Metrics>,
    /// Realtime clients and their subscriptions.
    pub realtime: basalt_realtime::Hub,
    /// Rate limits of the auth endpoints and the trusted proxies naming client addresses.
    pub limits: AuthLimits,
}

/// The bearer token `/metrics` requires, when configured.
pub use basalt_net::BearerToken as MetricsToken;

/// HTTP behaviour chosen by the operator.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Allowed CORS origins; `["*"]` allows any.
    pub cors_origins: Vec<String>,
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    /// Requests running longer are answered with 408-style errors and dropped.
    pub request_timeout: Duration,
    /// Diagnostic: `/api/realtime/ws` echoes messages instead of speaking the realtime
    /// protocol (for WebSocket conformance suites). Never on in production.
    pub ws_echo: bool,
    /// When set, `/metrics` answers only requests carrying this bearer token (others get
    /// a 401); when unset it is open, as before.
    pub metrics_token: Option<MetricsToken>,
    /// Who may read `/api/openapi.json` and what they are shown.
    pub openapi: OpenApiAccess,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            cors_origins: vec!["*".into()],
            body_limit_bytes: 32 << 20,
            request_timeout: Duration::from_secs(60),
            ws_echo: false,
            metrics_token: None,
            openapi: OpenApiAccess::default(),
        }
    }
}

/// The whole API as one service.
pub fn router(state: ApiState, config: &ApiConfig) -> ApiService {
    let api = Router::new()
        .route(
            "/api/health",
            get(middleware::health).head(middleware::health),
        )
        .route("/metrics", {
            let token = config.metrics_token.clone();
            get(move |state, headers| middleware::metrics(state, headers, token))
        })
        .route("/api/openapi.json", {
            let access = config.openapi;
            let cache = Arc::new(openapi::DocumentCache::default());
            get(move |state, caller| openapi::document(state, caller, access, cache.clone()))
        })
        .route(
            "/api/collections",
            get(collections::list).post(collections::create),
        )
        .route(
            "/api/collections/import",
            axum::routing::put(collections::import),
        )
        .route(
            "/api/collections/{collection}",
            get(collections::view)
                .patch(collections::update)
                .delete(collections::delete),
        )
        .route(
            "/api/collections/{collection}/truncate",
            delete(collections::truncate),
        )
        .route(
            "/api/collections/{collection}/records",
            get(records::list).post(records::create),
        )
        .route(
            "/api/collections/{collection}/records/{id}",
            get(records::view)
                .patch(records::update)
                .delete(records::delete),
        )
        .route(
            "/api/collections/{collection}/auth-with-password",
            post(auth::auth_with_password),
        )
        .route(
            "/api/collections/{collection}/auth-refresh",
            post(auth::auth_refresh),
        )
        .route(
            "/api/collections/{collection}/auth-methods",
            get(auth::auth_methods),
        )
        .route(
            "/api/collections/{collection}/impersonate/{id}",
            post(auth::impersonate),
        )
        .route(
            "/api/collections/{collection}/request-verification",
            post(auth::request_verification),
        )
        .route(
            "/api/collections/{collection}/confirm-verification",
            post(auth::confirm_verification),
        )
        .route(
            "/api/collections/{collection}/request-password-reset",
            post(auth::request_password_reset),
        )
        .route(
            "/api/collections/{collection}/confirm-password-reset",
            post(auth::confirm_password_reset),
        )
        .route(
            "/api/collections/{collection}/request-email-change",
            post(auth::request_email_change),
        )
        .route(
            "/api/collections/{collection}/confirm-email-change",
            post(auth::confirm_email_change),
        )
        .route(
            "/api/collections/{collection}/request-otp",
            post(auth::request_otp),
        )
        .route(
            "/api/collections/{collection}/auth-with-otp",
            post(auth::auth_with_otp),
        )
        .route(
            "/api/collections/{collection}/auth-with-oauth2",
            post(oauth2::auth_with_oauth2),
        )
        .route("/api/files/token", post(auth::file_token))
        .route(
            "/api/files/{collection}/{record}/{filename}",
            get(files::download),
        )
        .route(
            "/api/oauth2-redirect",
            get(oauth2::redirect_get).post(oauth2::redirect_post),
        )
        .route("/api/batch", post(batch::batch))
        .route("/api/settings", get(settings::get).patch(settings::update))
        .route("/api/backups", get(backups::list).post(backups::create))
        .route("/api/backups/upload", post(backups::upload))
        .route(
            "/api/backups/{key}",
            get(backups::download).delete(backups::delete),
        )
        .route("/api/backups/{key}/restore", post(backups::restore))
        .route("/api/settings/test/s3", post(settings::test_s3))
        .route("/api/logs", get(logs::list))
        .route("/api/logs/stats", get(logs::stats))
        .route("/api/logs/{id}", get(logs::view))
        .route("/api/crons", get(crons::list))
        .route("/api/crons/{id}", post(crons::run))
        .route(
            "/api/realtime",
            get(realtime::connect).post(realtime::set_subscriptions),
        )
        .route(
            "/api/realtime/ws",
            if config.ws_echo {
                get(realtime::echo)
            } else {
                get(realtime::websocket)
            },
        )
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .with_state(state.clone());
    let ids = middleware::SequentialRequestId::new();
    let stack = middleware::layers(api, &state, config, ids.clone());
    let any_origin = config.cors_origins.iter().any(|o| o == "*");
    let hot = any_origin.then(|| hot_get::HotGet::new(state));
    ApiService::new(hot, ids, config.request_timeout, stack)
}
