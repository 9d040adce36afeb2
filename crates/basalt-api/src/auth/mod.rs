//! Auth endpoints of auth collections over `basalt_service::auth`: each handler reads the
//! request into the flow's input, puts the rate limits (`limits`: client IP behind trusted
//! proxies, per-IP and per-identity limits, PocketBase's `rateLimits` rules) in front of it
//! as the flow's [`Throttle`], and writes the answer: a session as `{token, record}`, a
//! due second factor as 401 `{mfaId}`, the rest as 204 or small JSON bodies.

mod limits;
mod methods;

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use basalt_schema::Collection;
use basalt_service::auth::email_flows::{self, PasswordReset};
use basalt_service::auth::otp::{self, OtpLogin};
use basalt_service::auth::password_login::{self, PasswordLogin};
use basalt_service::auth::session::{self, Impersonation};
use basalt_service::auth::{AuthOutcome, Origin, Session, Throttle};
use basalt_service::records::InvalidParam;
use basalt_service::{Caller, ServiceResult};
use serde_json::{Map, Value, json};

use crate::ApiState;
use crate::body::Body;
use crate::error::{ApiError, ApiResult};

use limits::ClientIp;
pub use limits::{AuthLimits, AuthLimitsConfig};
pub(crate) use methods::auth_methods;

/// The rate limits in front of an auth flow for this request's client (its address and
/// headers), handed to the flow as its [`Throttle`].
pub(crate) struct ClientThrottle {
    state: ApiState,
    ip: IpAddr,
    headers: HeaderMap,
}

impl ClientThrottle {
    /// Where a sign-in comes from: the client's address and user agent.
    pub(crate) fn origin(&self) -> Origin {
        let user_agent = self
            .headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        Origin::new(self.ip, user_agent)
    }
}

impl FromRequestParts<ApiState> for ClientThrottle {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
        Ok(Self {
            state: state.clone(),
            ip,
            headers: parts.headers.clone(),
        })
    }
}

impl Throttle for ClientThrottle {
    fn admit<'a>(
        &'a self,
        c: &'a Collection,
        action: &'a str,
        identity: Option<&'a str>,
    ) -> Pin<Box<dyn Future<Output = ServiceResult<()>> + Send + 'a>> {
        let state = &self.state;
        Box::pin(
            state
                .limits
                .check(state, c, action, self.ip, &self.headers, identity),
        )
    }
}

/// A string of a body, empty when absent or not a string.
fn text(body: &Map<String, Value>, key: &str) -> String {
    body.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// `mfaId` from the query string, else from the body; blank is none.
fn mfa_id(query: &HashMap<String, String>, body: &Map<String, Value>) -> Option<String> {
    query
        .get("mfaId")
        .map(String::as_str)
        .or_else(|| body.get("mfaId").and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// `{token, record[, meta]}`.
pub(crate) fn session_json(s: Session) -> Json<Value> {
    let mut out = json!({"token": s.token, "record": s.record});
    if let (Some(meta), Value::Object(m)) = (s.meta, &mut out) {
        m.insert("meta".into(), meta);
    }
    Json(out)
}

/// A session, or 401 `{mfaId}` when a second factor is due.
pub(crate) fn outcome(o: AuthOutcome) -> Response {
    match o {
        AuthOutcome::Session(s) => session_json(s).into_response(),
        AuthOutcome::MfaRequired { mfa_id } => {
            (StatusCode::UNAUTHORIZED, Json(json!({"mfaId": mfa_id}))).into_response()
        }
    }
}

pub(crate) async fn auth_with_password(
    State(state): State<ApiState>,
    Path(collection): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    throttle: ClientThrottle,
    Body(body): Body,
) -> ApiResult<Response> {
    let input = PasswordLogin {
        collection,
        identity: text(&body, "identity"),
        password: text(&body, "password"),
        identity_field: body
            .get("identityField")
            .and_then(Value::as_str)
            .map(str::to_string),
        mfa_id: mfa_id(&query, &body),
        origin: throttle.origin(),
    };
    Ok(outcome(
        password_login::login(&state.service, &throttle, input).await?,
    ))
}

pub(crate) async fn request_otp(
    State(state): State<ApiState>,
    Path(collection): Path<String>,
    throttle: ClientThrottle,
    Body(body): Body,
) -> ApiResult<Json<Value>> {
    let email = text(&body, "email");
    let otp_id = otp::request_otp(&state.service, &throttle, &collection, &email).await?;
    Ok(Json(json!({ "otpId": otp_id })))
}

pub(crate) async fn auth_with_otp(
    State(state): State<ApiState>,
    Path(collection): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    throttle: ClientThrottle,
    Body(body): Body,
) -> ApiResult<Response> {
    let input = OtpLogin {
        collection,
        otp_id: text(&body, "otpId"),
        password: text(&body, "password"),
        mfa_id: mfa_id(&query, &body),
        origin: throttle.origin(),
    };
    Ok(outcome(
        otp::auth_with_otp(&state.service, &throttle, input).await?,
    ))
}

/// The token of the `Authorization` header, as the caller was resolved from.
fn bearer(headers: &HeaderMap) -> &str {
    let raw = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    raw.strip_prefix("Bearer ").unwrap_or(raw).trim()
}

pub(crate) async fn auth_refresh(
    State(state): State<ApiState>,
    Path(collection): Path<String>,
    headers: HeaderMap,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    let s = session::refresh(&state.service, &caller, &collection, bearer(&headers)).await?;
    Ok(session_json(s))
}

pub(crate) async fn impersonate(
    State(state): State<ApiState>,
    Path((collection, id)): Path<(String, String)>,
    caller: Caller,
    Body(body): Body,
) -> ApiResult<Json<Value>> {
    let duration = match body.get("duration") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or(InvalidParam("duration")),
    };
    let input = Impersonation {
        collection,
        id,
        duration,
    };
    Ok(session_json(
        session::impersonate(&state.service, &caller, input).await?,
    ))
}

/// `POST /api/files/token`: a file token of the signed-in record.
pub(crate) async fn file_token(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    let token = session::file_token(&state.service, &caller).await?;
    Ok(Json(json!({ "token": token })))
}

pub(crate) async fn request_verification(
    State(state): State<ApiState>,
    Path(collection): Path<String>,
    throttle: ClientThrottle,
    Body(body): Body,
) -> ApiResult<StatusCode> {
    let email = text(&body, "email");
    email_flows::request_verification(&state.service, &throttle, &collection, &email).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn confirm_verification(
    State(state): State<ApiState>,
    Path(collection): Path<String>,
    throttle: ClientThrottle,
    Body(body): Body,
) -> ApiResult<StatusCode> {
    let token = text(&body, "token");
    email_flows::confirm_verification(&state.service, &throttle, &collection, &token).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn request_password_reset(
    State(state): State<ApiState>,
    Path(collection): Path<String>,
    throttle: ClientThrottle,
    Body(body): Body,
) -> ApiResult<StatusCode> {
    let email = text(&body, "email");
    email_flows::request_password_reset(&state.service, &throttle, &collection, &email).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn confirm_password_reset(
    State(state): State<ApiState>,
    Path(collection): Path<String>,
    throttle: ClientThrottle,
    Body(body): Body,
) -> ApiResult<StatusCode> {
    let input = PasswordReset {
        collection,
        token: text(&body, "token"),
        password: text(&body, "password"),
        password_confirm: text(&body, "passwordConfirm"),
    };
    email_flows::confirm_password_reset(&state.service, &throttle, input).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn request_email_change(
    State(state): State<ApiState>,
    Path(collection): Path<String>,
    caller: Caller,
    Body(body): Body,
) -> ApiResult<StatusCode> {
    let new_email = text(&body, "newEmail");
    email_flows::request_email_change(&state.service, &caller, &collection, &new_email).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn confirm_email_change(
    State(state): State<ApiState>,
    Path(collection): Path<String>,
    throttle: ClientThrottle,
    Body(body): Body,
) -> ApiResult<StatusCode> {
    let (token, password) = (text(&body, "token"), text(&body, "password"));
    email_flows::confirm_email_change(&state.service, &throttle, &collection, &token, &password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
