//! Email verification, password reset and email change: a `request-*` endpoint mails a
//! single-use token (answering 204 whether or not the address exists) and a `confirm-*`
//! endpoint consumes it. Tokens are bound to what using them changes (see
//! [`crate::tokens::record_key`]), so a replayed token fails.

use std::sync::Arc;

use basalt_auth::{TokenClaims, TokenKind};
use basalt_schema::Collection;
use basalt_store::Record;
use serde_json::{Map, Value};

use super::outbox::{MailSettings, mail_settings, send};
use super::{Throttle, auth_collection, required, system_update, token_record, validation};
use crate::error::{ServiceError, ServiceResult};
use crate::tokens::{duration, options, sign, text, verify};
use crate::{Caller, Services};

const INVALID_DATA: &str = "An error occurred while validating the submitted data.";

fn email_arg<'a>(key: &str, value: &'a str) -> ServiceResult<&'a str> {
    let email = required(key, value)?;
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

async fn by_email(
    svc: &Services,
    c: &Arc<Collection>,
    email: &str,
) -> ServiceResult<Option<Record>> {
    svc.store
        .find_auth_record(c, "email", email)
        .await
        .map_err(|e| ServiceError::from_store(e, INVALID_DATA))
}

/// Every bad token answers alike (as PocketBase does), whatever was wrong with it.
fn invalid_token(_flow_message: &str) -> ServiceError {
    validation(
        INVALID_DATA,
        "token",
        "validation_invalid_token",
        "Invalid or expired token.",
    )
}

/// The record a `kind` token was issued for, verified.
async fn consume(
    svc: &Services,
    c: &Arc<Collection>,
    token: &str,
    kind: TokenKind,
    message: &str,
) -> ServiceResult<(Record, TokenClaims)> {
    let token = required("token", token)?;
    let record = token_record(svc, c, token)
        .await?
        .ok_or_else(|| invalid_token(message))?;
    let claims = verify(svc, c, &record, token, kind).ok_or_else(|| invalid_token(message))?;
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
    svc: &Services,
    c: &Collection,
    settings: &MailSettings,
    record: &Record,
    kind: TokenKind,
    new_email: Option<&str>,
) -> ServiceResult<()> {
    let mut claims = TokenClaims::new(kind, text(record, "id"), &c.id, duration(c, kind));
    claims.email = Some(text(record, "email").to_string());
    claims.new_email = new_email.map(str::to_string);
    let token = sign(svc, c, record, &claims, kind)?;
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

/// Mails a verification token to `email` (empty when absent) when it is an unverified
/// record's.
pub async fn request_verification(
    svc: &Services,
    throttle: &dyn Throttle,
    collection: &str,
    email: &str,
) -> ServiceResult<()> {
    let c = auth_collection(svc, collection)?;
    let email = email_arg("email", email)?;
    throttle
        .admit(&c, "requestVerification", Some(email))
        .await?;
    let settings = mail_settings(svc).await?;
    if let Some(r) = by_email(svc, &c, email).await?
        && !r.get("verified").and_then(Value::as_bool).unwrap_or(false)
    {
        send_token(svc, &c, &settings, &r, TokenKind::Verification, None)?;
    }
    Ok(())
}

/// Marks the record a verification `token` was mailed for verified.
pub async fn confirm_verification(
    svc: &Services,
    throttle: &dyn Throttle,
    collection: &str,
    token: &str,
) -> ServiceResult<()> {
    let c = auth_collection(svc, collection)?;
    throttle.admit(&c, "confirmVerification", None).await?;
    let message = "Invalid or expired verification token.";
    let (record, _) = consume(svc, &c, token, TokenKind::Verification, message).await?;
    let input = Map::from_iter([("verified".to_string(), Value::Bool(true))]);
    system_update(svc, &c, text(&record, "id"), input, message).await?;
    Ok(())
}

/// Mails a password reset token to `email` (empty when absent) when it is a record's.
pub async fn request_password_reset(
    svc: &Services,
    throttle: &dyn Throttle,
    collection: &str,
    email: &str,
) -> ServiceResult<()> {
    let c = auth_collection(svc, collection)?;
    let email = email_arg("email", email)?;
    throttle
        .admit(&c, "requestPasswordReset", Some(email))
        .await?;
    let settings = mail_settings(svc).await?;
    if let Some(r) = by_email(svc, &c, email).await? {
        send_token(svc, &c, &settings, &r, TokenKind::PasswordReset, None)?;
    }
    Ok(())
}

/// A new password for the record a reset token was mailed for; each field is empty when
/// absent.
#[derive(Debug, Clone)]
pub struct PasswordReset {
    pub collection: String,
    pub token: String,
    pub password: String,
    pub password_confirm: String,
}

pub async fn confirm_password_reset(
    svc: &Services,
    throttle: &dyn Throttle,
    input: PasswordReset,
) -> ServiceResult<()> {
    let c = auth_collection(svc, &input.collection)?;
    throttle.admit(&c, "confirmPasswordReset", None).await?;
    let message = "Invalid or expired password reset token.";
    let password = required("password", &input.password)?.to_string();
    if let Some(field) = c.field("password") {
        basalt_schema::record::validate_password(field, &password).map_err(|e| {
            ServiceError::validation(
                INVALID_DATA,
                &basalt_schema::ValidationErrors::single("password", e),
            )
        })?;
    }
    if input.password_confirm != password {
        return Err(validation(
            INVALID_DATA,
            "passwordConfirm",
            "validation_values_mismatch",
            "Values don't match.",
        ));
    }
    let (record, _) = consume(svc, &c, &input.token, TokenKind::PasswordReset, message).await?;
    let hash = svc.passwords.hash(password).await?;
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
    system_update(svc, &c, text(&record, "id"), input, message).await?;
    Ok(())
}

/// Mails a token to `new_email` (empty when absent) that moves the caller's record there.
pub async fn request_email_change(
    svc: &Services,
    caller: &Caller,
    collection: &str,
    new_email: &str,
) -> ServiceResult<()> {
    let c = auth_collection(svc, collection)?;
    let Some(info) = &caller.0 else {
        return Err(ServiceError::unauthorized());
    };
    if info.collection_id != c.id {
        return Err(ServiceError::forbidden(
            "The request requires valid auth record of this collection.",
        ));
    }
    let new_email = email_arg("newEmail", new_email)?;
    let id = info
        .record
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let record = super::load_record(svc, &c, id)
        .await?
        .ok_or_else(ServiceError::unauthorized)?;
    if by_email(svc, &c, new_email).await?.is_some() {
        return Err(validation(
            INVALID_DATA,
            "newEmail",
            "validation_invalid_new_email",
            "Invalid new email address.",
        ));
    }
    let settings = mail_settings(svc).await?;
    send_token(
        svc,
        &c,
        &settings,
        &record,
        TokenKind::EmailChange,
        Some(new_email),
    )?;
    Ok(())
}

/// Moves the record an email change `token` was mailed for to its new address; the
/// record's `password` confirms it (each empty when absent).
pub async fn confirm_email_change(
    svc: &Services,
    throttle: &dyn Throttle,
    collection: &str,
    token: &str,
    password: &str,
) -> ServiceResult<()> {
    let c = auth_collection(svc, collection)?;
    throttle.admit(&c, "confirmEmailChange", None).await?;
    let message = "Invalid or expired email change token.";
    let password = required("password", password)?.to_string();
    let (record, claims) = consume(svc, &c, token, TokenKind::EmailChange, message).await?;
    let new_email = claims
        .new_email
        .filter(|e| !e.is_empty())
        .ok_or_else(|| invalid_token(message))?;
    let hash = text(&record, "password").to_string();
    if !svc.passwords.verify(password, hash).await {
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
    system_update(svc, &c, text(&record, "id"), input, message).await?;
    Ok(())
}
