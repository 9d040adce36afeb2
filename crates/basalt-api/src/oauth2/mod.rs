//! OAuth2 / OpenID Connect on the wire: `POST /api/collections/{c}/auth-with-oauth2`
//! over `basalt_service::auth::oauth2`, and the provider's redirect back (`redirect`).

mod redirect;

pub(crate) use redirect::{redirect_get, redirect_post};

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use basalt_service::Caller;
use basalt_service::auth::oauth2::{self, OAuth2Login};
use basalt_service::records::InvalidParam;
use serde_json::{Map, Value};

use crate::ApiState;
use crate::auth::{ClientThrottle, outcome};
use crate::error::ApiResult;

fn text(body: &Value, key: &str) -> String {
    body.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

pub(crate) async fn auth_with_oauth2(
    State(state): State<ApiState>,
    Path(collection): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    throttle: ClientThrottle,
    caller: Caller,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let create_data = match body.get("createData") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(InvalidParam("createData")),
    };
    let input = OAuth2Login {
        collection,
        provider: text(&body, "provider"),
        code: text(&body, "code"),
        code_verifier: text(&body, "codeVerifier"),
        redirect_url: match text(&body, "redirectURL") {
            r if r.is_empty() => text(&body, "redirectUrl"),
            r => r,
        },
        create_data,
        // Passed on as given, blank included, as this endpoint always has.
        mfa_id: query
            .get("mfaId")
            .map(String::as_str)
            .or_else(|| body.get("mfaId").and_then(Value::as_str))
            .map(str::to_string),
        origin: throttle.origin(),
    };
    let done = oauth2::sign_in(&state.service, &throttle, &caller, input).await?;
    Ok(outcome(done))
}
