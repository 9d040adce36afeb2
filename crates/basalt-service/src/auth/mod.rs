//! The auth flows of auth collections, one per file: password login (`password_login`),
//! refresh / impersonation / file tokens (`session`), the email flows (`email_flows`),
//! one-time codes (`otp`), the second factor (`mfa`), sign-in origins and alerts
//! (`alerts`), the mail they send (`outbox`) and OAuth2 sign-in with account linking
//! (`oauth2`). Shared here: the rate limit a protocol
//! puts in front of them ([`Throttle`]) and how a successful first factor becomes a
//! session ([`finish_auth`]).

mod alerts;
pub mod email_flows;
mod mfa;
pub mod oauth2;
pub mod otp;
mod outbox;
pub mod password_login;
pub mod session;
mod system;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use basalt_auth::{TokenClaims, TokenKind};
use basalt_schema::request::AuthInfo;
use basalt_schema::{Collection, FieldError, RequestInfo, ValidationErrors};
use basalt_store::{Access, Record, WriteOp};
use serde_json::{Map, Value};

use crate::error::{ServiceError, ServiceResult};
use crate::records::{collection, load_unrestricted, public_record};
use crate::tokens::{duration, sign, text};
use crate::{Caller, Services};

pub use alerts::Origin;
pub(crate) use system::purge_all_expired;

/// The rate limit in front of an auth flow, kept by the protocol (it knows the client's
/// address): admits one `action` attempt on collection `c` for `identity` (an email,
/// identity or OTP id, when the flow has one), or refuses it (429). Flows ask at the
/// point PocketBase does, after the input they count by is read.
pub trait Throttle: Sync {
    fn admit<'a>(
        &'a self,
        c: &'a Collection,
        action: &'a str,
        identity: Option<&'a str>,
    ) -> Pin<Box<dyn Future<Output = ServiceResult<()>> + Send + 'a>>;
}

/// A session that started: the auth token and the record as its owner sees it.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub record: Map<String, Value>,
    /// What the flow adds (OAuth2: the provider's data).
    pub meta: Option<Value>,
}

/// What a first factor leads to.
#[derive(Debug, Clone)]
pub enum AuthOutcome {
    Session(Session),
    /// A second factor is due: retry with another method carrying this `mfaId`.
    MfaRequired {
        mfa_id: String,
    },
}

pub fn auth_collection(svc: &Services, name: &str) -> ServiceResult<Arc<Collection>> {
    let c = collection(svc, name)?;
    if !c.is_auth() {
        return Err(ServiceError::bad_request(format!(
            "Collection \"{}\" is not an auth collection.",
            c.name
        )));
    }
    Ok(c)
}

/// Reads an unverified token's claims and loads the record it names in `c`; the caller
/// still verifies the signature with [`verify`].
pub async fn token_record(
    svc: &Services,
    c: &Arc<Collection>,
    token: &str,
) -> ServiceResult<Option<Record>> {
    let Ok(claims) = basalt_auth::decode_unverified(token) else {
        return Ok(None);
    };
    if claims.collection_id != c.id {
        return Ok(None);
    }
    load_record(svc, c, &claims.id).await
}

pub async fn load_record(
    svc: &Services,
    c: &Arc<Collection>,
    id: &str,
) -> ServiceResult<Option<Record>> {
    load_unrestricted(svc, c, id, "Failed to authenticate.").await
}

/// Writes `input` to a record as the system (rules do not apply).
pub async fn system_update(
    svc: &Services,
    c: &Arc<Collection>,
    id: &str,
    input: Map<String, Value>,
    message: &str,
) -> ServiceResult<Record> {
    let op = WriteOp::Update {
        uploads: Vec::new(),
        collection: c.clone(),
        id: id.to_string(),
        input,
        access: Access::Unrestricted,
    };
    svc.store
        .write(vec![op], Arc::new(RequestInfo::default()))
        .await
        .map_err(|e| ServiceError::from_store(e, message))?
        .pop()
        .flatten()
        .ok_or_else(ServiceError::internal)
}

pub fn validation(message: &str, key: &str, code: &str, text: &str) -> ServiceError {
    ServiceError::validation(
        message,
        &ValidationErrors::single(key, FieldError::new(code, text)),
    )
}

/// `value` of the required input `key` (empty when absent), or a validation error
/// naming it.
pub fn required<'a>(key: &str, value: &'a str) -> ServiceResult<&'a str> {
    match value {
        s if !s.is_empty() => Ok(s),
        _ => Err(ServiceError::validation(
            "An error occurred while validating the submitted data.",
            &ValidationErrors::single(key, FieldError::required()),
        )),
    }
}

/// The requester as the owner of `record` (they see their own email).
fn owner(c: &Collection, record: &Record) -> Caller {
    Caller(Some(AuthInfo {
        collection_id: c.id.clone(),
        collection_name: c.name.clone(),
        record: Map::from_iter([(
            "id".to_string(),
            Value::String(text(record, "id").to_string()),
        )]),
        is_superuser: c.is_superusers(),
    }))
}

/// A plain session with a fresh, refreshable auth token of the collection's duration
/// (flows that need the auth rule, MFA and alerts use [`finish_auth`]).
pub fn session(svc: &Services, c: &Collection, record: &Record) -> ServiceResult<Session> {
    session_of(svc, c, record, true, duration(c, TokenKind::Auth))
}

/// A session with a fresh auth token of `duration_secs` seconds.
pub fn session_of(
    svc: &Services,
    c: &Collection,
    record: &Record,
    refreshable: bool,
    duration_secs: i64,
) -> ServiceResult<Session> {
    let mut claims = TokenClaims::new(TokenKind::Auth, text(record, "id"), &c.id, duration_secs);
    claims.refreshable = refreshable;
    let token = sign(svc, c, record, &claims, TokenKind::Auth)?;
    Ok(Session {
        token,
        record: public_record(c, record, &owner(c, record)),
        meta: None,
    })
}

/// After a successful first factor: the collection's auth rule must admit the record,
/// then MFA may ask for a second factor (an `mfaId`), else the session starts, carrying
/// `meta` when given (OAuth2's provider data).
pub async fn finish_auth(
    svc: &Services,
    c: &Arc<Collection>,
    record: Record,
    method: &str,
    mfa_id: Option<&str>,
    origin: Origin,
    meta: Option<Value>,
) -> ServiceResult<AuthOutcome> {
    let failed = || ServiceError::bad_request("Failed to authenticate.");
    match svc.store.schema().rules(&c.id).map(|r| r.auth.clone()) {
        Some(basalt_schema::RuleSlot::Expr(e)) => {
            let visible = svc
                .store
                .get_record(
                    c,
                    text(&record, "id"),
                    Access::Rule(e.clone()),
                    Arc::new(RequestInfo::default()),
                )
                .await
                .map_err(|e| ServiceError::from_store(e, "Failed to authenticate."))?;
            if visible.is_none() {
                return Err(failed());
            }
        }
        Some(basalt_schema::RuleSlot::Locked) => {
            return Err(ServiceError::forbidden(
                "The authentication is not allowed for this collection.",
            ));
        }
        _ => {}
    }
    if let Some(mfa_id) = mfa::gate(svc, c, &record, method, mfa_id).await? {
        return Ok(AuthOutcome::MfaRequired { mfa_id });
    }
    alerts::remember(svc, c, &record, origin).await;
    let mut out = session(svc, c, &record)?;
    out.meta = meta;
    Ok(AuthOutcome::Session(out))
}
