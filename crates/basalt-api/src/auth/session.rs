//! Sessions: `auth-refresh` (a new token for a refreshable one, the same one back
//! otherwise), `impersonate`
//! (superusers mint a non-refreshable token of a chosen lifetime for any record: the API
//! key of a server-to-server integration), `auth-methods` and `/api/files/token` (a
//! short-lived token of the `file` kind for protected files).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use basalt_auth::TokenKind;
use serde_json::{Value, json};

use super::{
    auth_collection, auth_response, duration, load_record, options, session_response, sign,
};
use crate::ApiState;
use crate::body::Body;
use crate::error::{ApiError, ApiResult};
use crate::request_info::Auth;

fn bearer(headers: &HeaderMap) -> &str {
    let raw = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    raw.strip_prefix("Bearer ").unwrap_or(raw).trim()
}

pub(crate) async fn auth_refresh(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    auth: Auth,
) -> ApiResult<Json<Value>> {
    let c = auth_collection(&state, &name)?;
    let Some(info) = auth.0 else {
        return Err(ApiError::unauthorized());
    };
    if info.collection_id != c.id {
        return Err(ApiError::forbidden(
            "The request requires valid auth record of this collection.",
        ));
    }
    let id = info
        .record
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let record = load_record(&state, &c, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    // The extractor verified the token; its claims say whether it may be renewed. A
    // non-refreshable one (impersonation) comes back unchanged, as PocketBase does, so
    // its lifetime never grows.
    let current = bearer(&headers);
    let refreshable = basalt_auth::decode_unverified(current).is_ok_and(|cl| cl.refreshable);
    if !refreshable {
        let Json(mut body) = session_response(&state, &c, &record, false, 0)?;
        body["token"] = Value::String(current.to_string());
        return Ok(Json(body));
    }
    auth_response(&state, &c, &record)
}

pub(crate) async fn impersonate(
    State(state): State<ApiState>,
    Path((name, id)): Path<(String, String)>,
    auth: Auth,
    Body(body): Body,
) -> ApiResult<Json<Value>> {
    if auth.0.is_none() {
        return Err(ApiError::unauthorized());
    }
    if !auth.is_superuser() {
        return Err(ApiError::forbidden(
            "The authorized record is not allowed to perform this action.",
        ));
    }
    let c = auth_collection(&state, &name)?;
    let secs = match body.get("duration") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_i64().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::validation(
                "An error occurred while validating the submitted data.",
                &basalt_schema::ValidationErrors::single(
                    "duration",
                    basalt_schema::FieldError::new(
                        "validation_min_greater_equal_than_required",
                        "Must be no less than 0.",
                    )
                    .with_params(json!({"threshold": 0})),
                ),
            )
        })?,
    };
    let secs = if secs == 0 {
        duration(&c, TokenKind::Auth)
    } else {
        secs
    };
    let record = load_record(&state, &c, &id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    session_response(&state, &c, &record, false, secs)
}

pub(crate) async fn auth_methods(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let c = auth_collection(&state, &name)?;
    let a = options(&c);
    let pa = &a.password_auth;
    let secs = |enabled: bool, d: i64| if enabled { d } else { 0 };
    let oauth2 = crate::oauth2::auth_methods(&c);
    Ok(Json(json!({
        "password": {"enabled": pa.enabled, "identityFields": pa.identity_fields},
        "oauth2": oauth2,
        "mfa": {"enabled": a.mfa.enabled, "duration": secs(a.mfa.enabled, a.mfa.duration)},
        "otp": {"enabled": a.otp.enabled, "duration": secs(a.otp.enabled, a.otp.duration)},
        // Kept by PocketBase for older SDKs.
        "authProviders": oauth2["providers"],
        "usernamePassword": pa.enabled && pa.identity_fields.iter().any(|f| f == "username"),
        "emailPassword": pa.enabled && pa.identity_fields.iter().any(|f| f == "email"),
    })))
}

/// `POST /api/files/token`: a file token of the signed-in record, living the
/// collection's `fileToken.duration`.
pub(crate) async fn file_token(
    State(state): State<ApiState>,
    auth: Auth,
) -> ApiResult<Json<Value>> {
    let Some(info) = auth.0 else {
        return Err(ApiError::unauthorized());
    };
    let c = auth_collection(&state, &info.collection_id)?;
    let id = info
        .record
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let record = load_record(&state, &c, id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let claims =
        basalt_auth::TokenClaims::new(TokenKind::File, id, &c.id, duration(&c, TokenKind::File));
    let token = sign(&state, &c, &record, &claims, TokenKind::File)?;
    Ok(Json(json!({ "token": token })))
}
