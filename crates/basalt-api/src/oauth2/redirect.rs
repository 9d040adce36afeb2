//! `GET`/`POST /api/oauth2-redirect`: where a provider sends the browser back after the
//! all-in-one SDK flow. The `state` names the realtime client that started the login; the
//! code goes to that client only (topic `@oauth2`, once), and the browser gets a small page.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::ApiState;

const TOPIC: &str = "@oauth2";

#[derive(Debug, Default, Deserialize)]
struct RedirectData {
    #[serde(default)]
    state: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    error: String,
    /// Apple's form post carries the user's name on first consent.
    #[serde(default)]
    user: String,
}

fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><p>{text}</p><script>window.close()</script></body></html>"
    );
    (status, Html(body)).into_response()
}

/// 200 as in PocketBase: it is a page for a person, and the API's error middleware would
/// turn any non-JSON error status into a JSON body.
fn failure() -> Response {
    page(
        StatusCode::OK,
        "OAuth2 sign-in failed",
        "Failed to authenticate. You can close this window and go back to the app to try again.",
    )
}

fn forward(state: &ApiState, data: Result<RedirectData, serde_urlencoded::de::Error>) -> Response {
    let Ok(data) = data else {
        return failure();
    };
    // Realtime client ids are short tokens; anything else cannot name one.
    if data.state.is_empty() || data.state.len() > 200 {
        tracing::debug!("oauth2 redirect without a usable state");
        return failure();
    }
    if !data.user.is_empty() && data.error.is_empty() && !data.code.is_empty() {
        state
            .service
            .oauth2
            .remember_apple_name(&data.code, &data.user);
    }
    let mut message = json!({"state": data.state, "code": data.code});
    if !data.error.is_empty() {
        message["error"] = json!(data.error);
    }
    if !state.realtime.send_to_client(&data.state, TOPIC, message) {
        tracing::debug!("oauth2 redirect for no subscribed realtime client");
        return failure();
    }
    // One redirect per subscription: a replayed redirect finds nobody listening.
    let _ = state
        .realtime
        .unsubscribe(&data.state, &[TOPIC.to_string()]);
    if !data.error.is_empty() || data.code.is_empty() {
        return failure();
    }
    page(
        StatusCode::OK,
        "OAuth2 sign-in completed",
        "Auth completed. You can close this window and go back to the app.",
    )
}

pub(crate) async fn redirect_get(State(state): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    forward(
        &state,
        serde_urlencoded::from_str(q.as_deref().unwrap_or("")),
    )
}

pub(crate) async fn redirect_post(State(state): State<ApiState>, body: Bytes) -> Response {
    forward(&state, serde_urlencoded::from_bytes(&body))
}
