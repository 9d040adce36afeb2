//! Auth endpoints of auth collections, one flow per file: password login
//! (`password_login`), refresh / impersonation / auth methods (`session`), the email
//! flows (`email_flows`), one-time codes (`otp`), the second factor (`mfa`), the mail they
//! send (`outbox`) and the rate limits in front of them (`limits`). Shared here: how
//! tokens are bound to records and how a successful first factor becomes a session.

mod alerts;
mod email_flows;
mod limits;
mod mfa;
mod otp;
mod outbox;
mod password_login;
mod session;

use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use basalt_auth::{TokenClaims, TokenKind, TokenScope};
use basalt_schema::collection::AuthOptions;
use basalt_schema::request::AuthInfo;
use basalt_schema::{Collection, FieldError, RequestInfo, ValidationErrors};
use basalt_store::{Access, Record, WriteOp};
use serde_json::{Map, Value, json};

use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::records::collection;
use crate::records::shape::public_record;
use crate::request_info::Auth;

pub(crate) use alerts::Origin;
pub(crate) use email_flows::{
    confirm_email_change, confirm_password_reset, confirm_verification, request_email_change,
    request_password_reset, request_verification,
};
pub(crate) use limits::ClientIp;
pub use limits::{AuthLimits, AuthLimitsConfig};
pub(crate) use otp::{auth_with_otp, request_otp};
pub(crate) use password_login::auth_with_password;
pub(crate) use session::{auth_methods, auth_refresh, file_token, impersonate};

pub(crate) fn auth_collection(state: &ApiState, name: &str) -> ApiResult<Arc<Collection>> {
    let c = collection(state, name)?;
    if !c.is_auth() {
        return Err(ApiError::bad_request(format!(
            "Collection \"{}\" is not an auth collection.",
            c.name
        )));
    }
    Ok(c)
}

pub(crate) fn options(c: &Collection) -> AuthOptions {
    c.auth.clone().unwrap_or_default()
}

pub(crate) fn text<'a>(r: &'a Record, key: &str) -> &'a str {
    r.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The collection's secret for tokens of `kind`.
fn collection_secret(c: &Collection, kind: TokenKind) -> String {
    let Some(a) = &c.auth else {
        return String::new();
    };
    let t = match kind {
        TokenKind::Auth => &a.auth_token,
        TokenKind::Verification => &a.verification_token,
        TokenKind::PasswordReset => &a.password_reset_token,
        TokenKind::EmailChange => &a.email_change_token,
        TokenKind::File => &a.file_token,
    };
    t.secret.clone().unwrap_or_default()
}

/// The record's part of a token key. Single-use kinds also bind what using them changes,
/// so a used token stops verifying: a reset changes the password hash, a verification
/// the verified flag, an email change the email (and each of them the tokenKey).
pub(crate) fn record_key(kind: TokenKind, r: &Record) -> String {
    let tk = text(r, "tokenKey");
    match kind {
        TokenKind::Auth | TokenKind::File => tk.to_string(),
        TokenKind::Verification => format!(
            "{tk}|verified={}",
            r.get("verified").and_then(Value::as_bool).unwrap_or(false)
        ),
        TokenKind::PasswordReset => format!("{tk}|{}", text(r, "password")),
        TokenKind::EmailChange => format!("{tk}|{}", text(r, "email").to_lowercase()),
    }
}

pub(crate) fn duration(c: &Collection, kind: TokenKind) -> i64 {
    let a = options(c);
    match kind {
        TokenKind::Auth => a.auth_token.duration,
        TokenKind::Verification => a.verification_token.duration,
        TokenKind::PasswordReset => a.password_reset_token.duration,
        TokenKind::EmailChange => a.email_change_token.duration,
        TokenKind::File => a.file_token.duration,
    }
}

pub(crate) fn sign(
    state: &ApiState,
    c: &Collection,
    record: &Record,
    claims: &TokenClaims,
    kind: TokenKind,
) -> ApiResult<String> {
    let secret = collection_secret(c, kind);
    let key = record_key(kind, record);
    basalt_auth::issue_token(
        &state.keys,
        claims,
        TokenScope {
            collection_secret: &secret,
            record_key: &key,
        },
    )
    .map_err(|_| ApiError::internal())
}

/// Verifies `token` as a `kind` token of `record`.
pub(crate) fn verify(
    state: &ApiState,
    c: &Collection,
    record: &Record,
    token: &str,
    kind: TokenKind,
) -> Option<TokenClaims> {
    let secret = collection_secret(c, kind);
    let key = record_key(kind, record);
    basalt_auth::verify_token(
        &state.keys,
        token,
        kind,
        TokenScope {
            collection_secret: &secret,
            record_key: &key,
        },
    )
    .ok()
}

/// Reads an unverified token's claims and loads the record it names in `c`; the caller
/// still verifies the signature with [`verify`].
pub(crate) async fn token_record(
    state: &ApiState,
    c: &Arc<Collection>,
    token: &str,
) -> ApiResult<Option<Record>> {
    let Ok(claims) = basalt_auth::decode_unverified(token) else {
        return Ok(None);
    };
    if claims.collection_id != c.id {
        return Ok(None);
    }
    load_record(state, c, &claims.id).await
}

pub(crate) async fn load_record(
    state: &ApiState,
    c: &Arc<Collection>,
    id: &str,
) -> ApiResult<Option<Record>> {
    crate::records::load_unrestricted(state, c, id, "Failed to authenticate.").await
}

/// Writes `input` to a record as the system (rules do not apply).
pub(crate) async fn system_update(
    state: &ApiState,
    c: &Arc<Collection>,
    id: &str,
    input: Map<String, Value>,
    message: &str,
) -> ApiResult<Record> {
    let op = WriteOp::Update {
        collection: c.clone(),
        id: id.to_string(),
        input,
        access: Access::Unrestricted,
    };
    state
        .store
        .write(vec![op], Arc::new(RequestInfo::default()))
        .await
        .map_err(|e| ApiError::from_store(e, message))?
        .pop()
        .flatten()
        .ok_or_else(ApiError::internal)
}

pub(crate) fn validation(message: &str, key: &str, code: &str, text: &str) -> ApiError {
    ApiError::validation(
        message,
        &ValidationErrors::single(key, FieldError::new(code, text)),
    )
}

/// The value of a required string key of a body, or a validation error naming it.
pub(crate) fn required<'a>(body: &'a Map<String, Value>, key: &str) -> ApiResult<&'a str> {
    match body.get(key).and_then(Value::as_str) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(ApiError::validation(
            "An error occurred while validating the submitted data.",
            &ValidationErrors::single(key, FieldError::required()),
        )),
    }
}

/// The requester as the owner of `record` (they see their own email).
fn owner(c: &Collection, record: &Record) -> Auth {
    Auth(Some(AuthInfo {
        collection_id: c.id.clone(),
        collection_name: c.name.clone(),
        record: Map::from_iter([(
            "id".to_string(),
            Value::String(text(record, "id").to_string()),
        )]),
        is_superuser: c.is_superusers(),
    }))
}

/// `{token, record}` with a fresh, refreshable auth token of the collection's duration:
/// a plain session (flows that need the auth rule, MFA and alerts use [`finish_auth`]).
pub(crate) fn auth_response(
    state: &ApiState,
    c: &Collection,
    record: &Record,
) -> ApiResult<Json<Value>> {
    session_response(state, c, record, true, duration(c, TokenKind::Auth))
}

/// `{token, record}` with a fresh auth token of `duration` seconds.
pub(crate) fn session_response(
    state: &ApiState,
    c: &Collection,
    record: &Record,
    refreshable: bool,
    duration_secs: i64,
) -> ApiResult<Json<Value>> {
    let mut claims = TokenClaims::new(TokenKind::Auth, text(record, "id"), &c.id, duration_secs);
    claims.refreshable = refreshable;
    let token = sign(state, c, record, &claims, TokenKind::Auth)?;
    Ok(Json(
        json!({"token": token, "record": public_record(c, record, &owner(c, record))}),
    ))
}

/// After a successful first factor: the collection's auth rule must admit the record,
/// then MFA may ask for a second factor (401 with an `mfaId`), else the session starts.
pub(crate) async fn finish_auth(
    state: &ApiState,
    c: &Arc<Collection>,
    record: Record,
    method: &str,
    mfa_id: Option<&str>,
    origin: alerts::Origin,
) -> ApiResult<Response> {
    finish_auth_with(state, c, record, method, mfa_id, origin, None).await
}

/// [`finish_auth`] whose answer also carries `meta` (OAuth2's provider data).
pub(crate) async fn finish_auth_with(
    state: &ApiState,
    c: &Arc<Collection>,
    record: Record,
    method: &str,
    mfa_id: Option<&str>,
    origin: alerts::Origin,
    meta: Option<Value>,
) -> ApiResult<Response> {
    let failed = || ApiError::bad_request("Failed to authenticate.");
    match state.store.schema().rules(&c.id).map(|r| r.auth.clone()) {
        Some(basalt_schema::RuleSlot::Expr(e)) => {
            let visible = state
                .store
                .get_record(
                    c,
                    text(&record, "id"),
                    Access::Rule(e.clone()),
                    Arc::new(RequestInfo::default()),
                )
                .await
                .map_err(|e| ApiError::from_store(e, "Failed to authenticate."))?;
            if visible.is_none() {
                return Err(failed());
            }
        }
        Some(basalt_schema::RuleSlot::Locked) => {
            return Err(ApiError::forbidden(
                "The authentication is not allowed for this collection.",
            ));
        }
        _ => {}
    }
    if let Some(challenge) = mfa::gate(state, c, &record, method, mfa_id).await? {
        return Ok((StatusCode::UNAUTHORIZED, Json(json!({"mfaId": challenge}))).into_response());
    }
    alerts::remember(state, c, &record, origin).await;
    let Json(mut out) = auth_response(state, c, &record)?;
    if let (Some(meta), Value::Object(m)) = (meta, &mut out) {
        m.insert("meta".into(), meta);
    }
    Ok(Json(out).into_response())
}
