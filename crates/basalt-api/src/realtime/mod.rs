//! Realtime over HTTP: PocketBase's SSE protocol (`GET /api/realtime` streams,
//! `POST /api/realtime` sets subscriptions), our WebSocket extension
//! (`/api/realtime/ws`), and how records are shaped for each subscriber.

mod direct;
mod render;
mod sse;
mod subscribe;
mod ws;

use axum::http::HeaderMap;
use basalt_realtime::Identity;

use crate::ApiState;
use crate::error::ApiError;
use basalt_service::resolve_token;

pub use direct::{DirectSocket, StreamSocket};
pub use render::renderer;
pub(crate) use sse::connect;
pub(crate) use subscribe::set_subscriptions;
pub(crate) use ws::{echo, websocket};

/// The identity behind a token, with its expiry; `None` for a missing, invalid, expired
/// or revoked token (the client is anonymous then, as PocketBase treats such requests);
/// an error when the token's record cannot be read (the database unavailable).
pub(crate) async fn identity_of_token(
    state: &ApiState,
    token: &str,
) -> Result<Option<Identity>, ApiError> {
    let token = token.strip_prefix("Bearer ").unwrap_or(token).trim();
    if token.is_empty() {
        return Ok(None);
    }
    let Some(auth) = resolve_token(&state.service, token, basalt_auth::TokenKind::Auth).await?
    else {
        return Ok(None);
    };
    let Ok(claims) = basalt_auth::decode_unverified(token) else {
        return Ok(None);
    };
    Ok(Some(Identity {
        auth,
        expires_at: claims.exp,
    }))
}

pub(crate) async fn identity_of_headers(
    state: &ApiState,
    headers: &HeaderMap,
) -> Result<Option<Identity>, ApiError> {
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        Some(raw) => identity_of_token(state, raw).await,
        None => Ok(None),
    }
}
