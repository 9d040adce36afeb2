//! `auth-with-password`: identity + password. Unknown identities cost a dummy
//! verification and get the same answer as a wrong password; bcrypt hashes imported from
//! PocketBase are upgraded to argon2id after a good login.

use std::sync::Arc;

use basalt_schema::{Collection, FieldError, ValidationErrors};
use basalt_store::Record;
use serde_json::{Map, Value};

use super::{AuthOutcome, Origin, Throttle, auth_collection, finish_auth, system_update};
use crate::Services;
use crate::error::{ServiceError, ServiceResult};
use crate::tokens::{options, text};

/// A sign-in with an identity (one of the collection's identity fields) and password.
#[derive(Debug, Clone)]
pub struct PasswordLogin {
    pub collection: String,
    /// Empty when absent.
    pub identity: String,
    /// Empty when absent.
    pub password: String,
    /// The identity field to look in; `None`: each of the collection's in turn.
    pub identity_field: Option<String>,
    /// The pending second factor this login completes.
    pub mfa_id: Option<String>,
    pub origin: Origin,
}

pub async fn login(
    svc: &Services,
    throttle: &dyn Throttle,
    input: PasswordLogin,
) -> ServiceResult<AuthOutcome> {
    let PasswordLogin {
        collection,
        identity,
        password,
        identity_field,
        mfa_id,
        origin,
    } = input;
    let c = auth_collection(svc, &collection)?;
    let opts = options(&c);
    throttle
        .admit(&c, "authWithPassword", Some(&identity))
        .await?;
    if !opts.password_auth.enabled {
        return Err(ServiceError::forbidden(
            "The collection is not configured to allow password authentication.",
        ));
    }
    let mut errs = ValidationErrors::new();
    if identity.is_empty() {
        errs.add("identity", FieldError::required());
    }
    if password.is_empty() {
        errs.add("password", FieldError::required());
    }
    if !errs.is_empty() {
        return Err(ServiceError::validation(
            "An error occurred while validating the submitted data.",
            &errs,
        ));
    }
    let wanted = identity_field.as_deref().filter(|s| !s.is_empty());
    let mut found = None;
    for f in opts
        .password_auth
        .identity_fields
        .iter()
        .filter(|f| wanted.is_none_or(|w| w == f.as_str()))
    {
        if let Some(r) = svc
            .store
            .find_auth_record(&c, f, &identity)
            .await
            .map_err(|e| ServiceError::from_store(e, "Failed to authenticate."))?
        {
            found = Some(r);
            break;
        }
    }
    let failed = || ServiceError::bad_request("Failed to authenticate.");
    let Some(record) = found else {
        svc.passwords.dummy(password).await;
        return Err(failed());
    };
    let hash = text(&record, "password").to_string();
    let rehash = basalt_auth::needs_rehash(&hash);
    if !svc.passwords.verify(password.clone(), hash).await {
        return Err(failed());
    }
    let record = if rehash {
        upgrade_hash(svc, &c, record, password).await
    } else {
        record
    };
    let mfa_id = mfa_id.as_deref().filter(|s| !s.is_empty());
    finish_auth(svc, &c, record, "password", mfa_id, origin, None).await
}

/// Replaces a bcrypt hash (imported from PocketBase) with argon2id after a good login.
/// The token key stays: sessions signed before the upgrade remain valid.
async fn upgrade_hash(
    svc: &Services,
    c: &Arc<Collection>,
    record: Record,
    password: String,
) -> Record {
    let Ok(hash) = svc.passwords.hash(password).await else {
        return record;
    };
    let input = Map::from_iter([("password".to_string(), Value::String(hash))]);
    match system_update(
        svc,
        c,
        text(&record, "id"),
        input,
        "Failed to authenticate.",
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(status = e.kind.status(), "password rehash failed");
            record
        }
    }
}
