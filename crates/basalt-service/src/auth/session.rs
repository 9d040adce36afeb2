//! Sessions: refresh (a new token for a refreshable one, the same one back otherwise),
//! impersonation (superusers mint a non-refreshable token of a chosen lifetime for any
//! record: the API key of a server-to-server integration) and file tokens (short-lived,
//! of the `file` kind, for protected files).

use basalt_auth::TokenKind;
use serde_json::{Value, json};

use super::{Session, auth_collection, load_record, session, session_of};
use crate::error::{ServiceError, ServiceResult};
use crate::records::Param;
use crate::tokens::{duration, sign};
use crate::{Caller, Services};

/// A new session for the caller's token `current` (already verified, of `collection`).
pub async fn refresh(
    svc: &Services,
    caller: &Caller,
    collection: &str,
    current: &str,
) -> ServiceResult<Session> {
    let c = auth_collection(svc, collection)?;
    let Some(info) = &caller.0 else {
        return Err(ServiceError::unauthorized());
    };
    if info.collection_id != c.id {
        return Err(ServiceError::forbidden(
            "The request requires valid auth record of this collection.",
        ));
    }
    let id = info
        .record
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let record = load_record(svc, &c, id)
        .await?
        .ok_or_else(ServiceError::not_found)?;
    // The token was verified with the caller; its claims say whether it may be renewed.
    // A non-refreshable one (impersonation) comes back unchanged, as PocketBase does, so
    // its lifetime never grows.
    let refreshable = basalt_auth::decode_unverified(current).is_ok_and(|cl| cl.refreshable);
    if !refreshable {
        let mut same = session_of(svc, &c, &record, false, 0)?;
        same.token = current.to_string();
        return Ok(same);
    }
    session(svc, &c, &record)
}

/// A non-refreshable session of record `id` of `collection`, minted by a superuser.
#[derive(Debug, Clone)]
pub struct Impersonation {
    pub collection: String,
    pub id: String,
    /// Seconds; absent or 0: the collection's auth token duration.
    pub duration: Param<Option<i64>>,
}

pub async fn impersonate(
    svc: &Services,
    caller: &Caller,
    input: Impersonation,
) -> ServiceResult<Session> {
    caller.require_superuser()?;
    let c = auth_collection(svc, &input.collection)?;
    let secs = input
        .duration
        .ok()
        .map(|d| d.unwrap_or(0))
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            ServiceError::validation(
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
        })?;
    let secs = if secs == 0 {
        duration(&c, TokenKind::Auth)
    } else {
        secs
    };
    let record = load_record(svc, &c, &input.id)
        .await?
        .ok_or_else(ServiceError::not_found)?;
    session_of(svc, &c, &record, false, secs)
}

/// A file token of the caller's record, living its collection's `fileToken.duration`.
pub async fn file_token(svc: &Services, caller: &Caller) -> ServiceResult<String> {
    let Some(info) = &caller.0 else {
        return Err(ServiceError::unauthorized());
    };
    let c = auth_collection(svc, &info.collection_id)?;
    let id = info
        .record
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let record = load_record(svc, &c, id)
        .await?
        .ok_or_else(ServiceError::unauthorized)?;
    let claims =
        basalt_auth::TokenClaims::new(TokenKind::File, id, &c.id, duration(&c, TokenKind::File));
    sign(svc, &c, &record, &claims, TokenKind::File)
}
