//! How tokens are bound to records: the key of a token of each kind is the server secret,
//! the collection's secret for that kind and the record's part ([`record_key`]).

use basalt_auth::{TokenClaims, TokenKind, TokenScope};
use basalt_schema::Collection;
use basalt_schema::collection::AuthOptions;
use basalt_store::Record;
use serde_json::Value;

use crate::Services;
use crate::error::{ServiceError, ServiceResult};

pub fn options(c: &Collection) -> AuthOptions {
    c.auth.clone().unwrap_or_default()
}

/// A record's string value of `key`, empty when absent.
pub fn text<'a>(r: &'a Record, key: &str) -> &'a str {
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
pub fn record_key(kind: TokenKind, r: &Record) -> String {
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

/// How long tokens of `kind` of the collection live, in seconds.
pub fn duration(c: &Collection, kind: TokenKind) -> i64 {
    let a = options(c);
    match kind {
        TokenKind::Auth => a.auth_token.duration,
        TokenKind::Verification => a.verification_token.duration,
        TokenKind::PasswordReset => a.password_reset_token.duration,
        TokenKind::EmailChange => a.email_change_token.duration,
        TokenKind::File => a.file_token.duration,
    }
}

pub fn sign(
    svc: &Services,
    c: &Collection,
    record: &Record,
    claims: &TokenClaims,
    kind: TokenKind,
) -> ServiceResult<String> {
    let secret = collection_secret(c, kind);
    let key = record_key(kind, record);
    basalt_auth::issue_token(
        &svc.keys,
        claims,
        TokenScope {
            collection_secret: &secret,
            record_key: &key,
        },
    )
    .map_err(|_| ServiceError::internal())
}

/// Verifies `token` as a `kind` token of `record`.
pub fn verify(
    svc: &Services,
    c: &Collection,
    record: &Record,
    token: &str,
    kind: TokenKind,
) -> Option<TokenClaims> {
    let secret = collection_secret(c, kind);
    let key = record_key(kind, record);
    basalt_auth::verify_token(
        &svc.keys,
        token,
        kind,
        TokenScope {
            collection_secret: &secret,
            record_key: &key,
        },
    )
    .ok()
}
