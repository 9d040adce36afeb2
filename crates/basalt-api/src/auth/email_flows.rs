//! Email verification, password reset and email change: a `request-*` endpoint mails a
//! single-use token (answering 204 whether or not the address exists) and a `confirm-*`
//! endpoint consumes it. Tokens are bound to what using them changes (see
//! [`super::record_key`]), so a replayed token fails.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use basalt_auth::{TokenClaims, TokenKind};
use basalt_schema::Collection;
use basalt_store::Record;
use serde_json::{Map, Value};

use super::limits::ClientIp;
use super::outbox::{MailSettings, mail_settings, send};
use super::{
    auth_collection, duration, options, required, sign, system_update, text, token_record,
    validation, verify,
};
use crate::ApiState;
use crate::body::Body;
use crate::error::{ApiError, ApiResult};
use crate::request_info::Auth;

const INVALID_DATA: &str = "An error occurred while validating the submitted data.";

fn email_arg<'a>(body: &'a Map<String, Value>, key: &str) -> ApiResult<&'a str> {
    let email = required(body, key)?;
    let plausible = email.len() <= 255
        && !email.chars().any(char::is_whitespace)
        && email
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.contains('@'));
    if !plausible {
        return Err(validation(
            INVALID_DATA,
            key,
            "validation_is_email",
            "Must be a valid email address.",
        ));
    }
    Ok(email)
}

async fn by_email(state: &ApiState, c: &Arc<Collection>, email: &str) -> ApiResult<Option<Record>> {
    state
        .store
        .find_auth_record(c, "email", email)
        .await
        .map_err(|e| ApiError::from_store(e, INVALID_DATA))
}

/// Every bad token answers alike (as PocketBase does), whatever was wrong with it.
fn invalid_token(_flow_message: &str) -> ApiError {
    validation(
        INVALID_DATA,
        "token",
        "validation_invalid_token",
        "Invalid or expired token.",
    )
}

/// The record a `kind` token from `body` was issued for, verified.
async fn consume(
    state: &ApiState,
    c: &Arc<Collection>,
    body: &Map<String, Value>,
    kind: TokenKind,
    message: &str,
) -> ApiResult<(Record, TokenClaims)> {
    let token = required(body, "token")?;
    let record = token_record(state, c, token)
        .await?
        .ok_or_else(|| invalid_token(message))?;
    let claims = verify(state, c, &record, token, kind).ok_or_else(|| invalid_token(message))?;
    // The token was mailed to an address: it is only good while that is the record's.
    let bound = claims.email.as_deref().unwrap_or_default();
    if !bound.eq_ignore_ascii_case(text(&record, "email")) {
        return Err(invalid_token(message));
    }
    Ok((record, claims))
}

/// Mails a `kind` token of `record` with the collection's template for that kind: to the
/// new address for an email change, to the record's own otherwise (sent in the background).
fn send_token(
    state: &ApiState,
    c: &Collection,
    settings: &MailSettings,
    record: &Record,
    kind: TokenKind,
    new_email: Option<&str>,
) -> ApiResult<()> {
    let mut claims = TokenClaims::new(kind, text(record, "id"), &c.id, duration(c, kind));
    claims.email = Some(text(record, "email").to_string());
    claims.new_email = new_email.map(str::to_string);
    let token = sign(state, c, record, &claims, kind)?;
    let opts = options(c);
    let template = match kind {
        TokenKind::PasswordReset => &opts.reset_password_template,
        TokenKind::EmailChange => &opts.confirm_email_change_template,
        _ => &opts.verification_template,
    };
    let to = new_email.unwrap_or_else(|| text(record, "email"));
    send(settings, template, to, record, &[("TOKEN", &token)]);
    Ok(())
}

pub(crate) async fn request_verification(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<StatusCode> {
    let c = auth_collection(&state, &name)?;
    let email = email_arg(&body, "email")?;
    state
        .limits
        .check(&state, &c, "requestVerification", ip, &headers, Some(email))
        .await?;
    let settings = mail_settings(&state).await?;
    if let Some(r) = by_email(&state, &c, email).await?
        && !r.get("verified").and_then(Value::as_bool).unwrap_or(false)
    {
        send_token(&state, &c, &settings, &r, TokenKind::Verification, None)?;
    }
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn confirm_verification(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<StatusCode> {
    let c = auth_collection(&state, &name)?;
    state
        .limits
        .check(&state, &c, "confirmVerification", ip, &headers, None)
        .await?;
    let message = "Invalid or expired verification token.";
    let (record, _) = consume(&state, &c, &body, TokenKind::Verification, message).await?;
    let input = Map::from_iter([("verified".to_string(), Value::Bool(true))]);
    system_update(&state, &c, text(&record, "id"), input, message).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn request_password_reset(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<StatusCode> {
    let c = auth_collection(&state, &name)?;
    let email = email_arg(&body, "email")?;
    state
        .limits
        .check(
            &state,
            &c,
            "requestPasswordReset",
            ip,
            &headers,
            Some(email),
        )
        .await?;
    let settings = mail_settings(&state).await?;
    if let Some(r) = by_email(&state, &c, email).await? {
        send_token(&state, &c, &settings, &r, TokenKind::PasswordReset, None)?;
    }
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn confirm_password_reset(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<StatusCode> {
    let c = auth_collection(&state, &name)?;
    state
        .limits
        .check(&state, &c, "confirmPasswordReset", ip, &headers, None)
        .await?;
    let message = "Invalid or expired password reset token.";
    let password = required(&body, "password")?.to_string();
    if let Some(field) = c.field("password") {
        basalt_schema::record::validate_password(field, &password).map_err(|e| {
            ApiError::validation(
                INVALID_DATA,
                &basalt_schema::ValidationErrors::single("password", e),
            )
        })?;
    }
    if body.get("passwordConfirm").and_then(Value::as_str) != Some(password.as_str()) {
        return Err(validation(
            INVALID_DATA,
            "passwordConfirm",
            "validation_values_mismatch",
            "Values don't match.",
        ));
    }
    let (record, _) = consume(&state, &c, &body, TokenKind::PasswordReset, message).await?;
    let hash = state.passwords.hash(password).await?;
    let input = Map::from_iter([
        ("password".to_string(), Value::String(hash)),
        // Every session and every other token of the record ends here.
        (
            "tokenKey".to_string(),
            Value::String(basalt_schema::id::random_id(50)),
        ),
        // Following the mailed link proved the address.
        ("verified".to_string(), Value::Bool(true)),
    ]);
    system_update(&state, &c, text(&record, "id"), input, message).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn request_email_change(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    auth: Auth,
    Body(body): Body,
) -> ApiResult<StatusCode> {
    let c = auth_collection(&state, &name)?;
    let Some(info) = auth.0 else {
        return Err(ApiError::unauthorized());
    };
    if info.collection_id != c.id {
        return Err(ApiError::forbidden(
            "The request requires valid auth record of this collection.",
        ));
    }
    let new_email = email_arg(&body, "newEmail")?;
    let id = info
        .record
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let record = super::load_record(&state, &c, id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    if by_email(&state, &c, new_email).await?.is_some() {
        return Err(validation(
            INVALID_DATA,
            "newEmail",
            "validation_invalid_new_email",
            "Invalid new email address.",
        ));
    }
    let settings = mail_settings(&state).await?;
    send_token(
        &state,
        &c,
        &settings,
        &record,
        TokenKind::EmailChange,
        Some(new_email),
    )?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn confirm_email_change(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<StatusCode> {
    let c = auth_collection(&state, &name)?;
    state
        .limits
        .check(&state, &c, "confirmEmailChange", ip, &headers, None)
        .await?;
    let message = "Invalid or expired email change token.";
    let password = required(&body, "password")?.to_string();
    let (record, claims) = consume(&state, &c, &body, TokenKind::EmailChange, message).await?;
    let new_email = claims
        .new_email
        .filter(|e| !e.is_empty())
        .ok_or_else(|| invalid_token(message))?;
    let hash = text(&record, "password").to_string();
    if !state.passwords.verify(password, hash).await {
        return Err(validation(
            message,
            "password",
            "validation_invalid_password",
            "Missing or invalid auth record password.",
        ));
    }
    let input = Map::from_iter([
        ("email".to_string(), Value::String(new_email)),
        ("verified".to_string(), Value::Bool(true)),
        (
            "tokenKey".to_string(),
            Value::String(basalt_schema::id::random_id(50)),
        ),
    ]);
    system_update(&state, &c, text(&record, "id"), input, message).await?;
    Ok(StatusCode::NO_CONTENT)
}
