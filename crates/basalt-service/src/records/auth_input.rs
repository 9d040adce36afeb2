//! What an auth collection's create/update input needs before it reaches the store:
//! auth-only keys only superusers and managers (records matching the collection's
//! `manageRule`) may set are dropped, the password is checked against its
//! confirmation (and, for a non-superuser changing it, the old password), hashed off the
//! async runtime, and a password change rotates the record's token key.

use std::sync::Arc;

use basalt_schema::{Collection, FieldError, RequestInfo, ValidationErrors};
use basalt_store::Access;
use serde_json::{Map, Value};

use crate::error::{ServiceError, ServiceResult};
use crate::{Caller, Services};

/// Which write the input is for.
#[derive(Clone, Copy)]
pub enum Target<'a> {
    Create,
    Update(&'a str),
}

fn fail(target: Target<'_>, key: &str, e: FieldError) -> ServiceError {
    let message = match target {
        Target::Create => "Failed to create record.",
        Target::Update(_) => "Failed to update record.",
    };
    ServiceError::validation(message, &ValidationErrors::single(key, e))
}

async fn stored_record(
    svc: &Services,
    c: &Arc<Collection>,
    id: &str,
) -> ServiceResult<basalt_store::Record> {
    super::load_unrestricted(svc, c, id, "Failed to update record.")
        .await?
        .ok_or_else(ServiceError::not_found)
}

async fn old_password_matches(
    svc: &Services,
    c: &Arc<Collection>,
    id: &str,
    old: &str,
) -> ServiceResult<bool> {
    let stored = stored_record(svc, c, id).await?;
    let hash = stored
        .get("password")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let old = old.to_string();
    Ok(svc.passwords.verify(old, hash).await)
}

/// Whether the requester manages the record being updated: the collection's
/// `manageRule` (`null`: nobody; `""`: any authenticated record) admits it with the
/// requester as `@request.auth`.
async fn manages(
    svc: &Services,
    c: &Arc<Collection>,
    caller: &Caller,
    target: Target<'_>,
) -> ServiceResult<bool> {
    let (Target::Update(id), Some(info)) = (target, &caller.0) else {
        return Ok(false);
    };
    let slot = svc.store.schema().rules(&c.id).map(|r| r.manage.clone());
    let expr = match slot {
        Some(basalt_schema::RuleSlot::Open) => return Ok(true),
        Some(basalt_schema::RuleSlot::Expr(e)) => e,
        _ => return Ok(false),
    };
    let req = RequestInfo {
        auth: Some(info.clone()),
        method: "PATCH".into(),
        context: "default".into(),
        ..RequestInfo::default()
    };
    let seen = svc
        .store
        .get_record(c, id, Access::Rule(expr), Arc::new(req))
        .await
        .map_err(|e| ServiceError::from_store(e, "Failed to update record."))?;
    Ok(seen.is_some())
}

pub async fn prepare_auth_input(
    svc: &Services,
    c: &Arc<Collection>,
    body: &mut Map<String, Value>,
    caller: &Caller,
    target: Target<'_>,
) -> ServiceResult<()> {
    if !c.is_auth() {
        return Ok(());
    }
    let confirm = body.remove("passwordConfirm");
    let old = body.remove("oldPassword");
    let manager = caller.is_superuser() || manages(svc, c, caller, target).await?;
    if !caller.is_superuser() {
        body.remove("tokenKey");
    }
    if !manager {
        body.remove("verified");
    }
    if let (Target::Update(id), false, Some(new_email)) = (target, manager, body.get("email")) {
        // Only managers change an address directly; everyone else proves the new one
        // through request-email-change (else a verified account could move to an
        // unverified address and stay verified).
        let stored = stored_record(svc, c, id).await?;
        if new_email.as_str() != stored.get("email").and_then(Value::as_str) {
            let owner = caller.0.as_ref().is_some_and(|a| {
                a.collection_id == c.id && a.record.get("id").and_then(Value::as_str) == Some(id)
            });
            // Others learn nothing about a record they may not manage.
            if !owner {
                return Err(ServiceError::not_found());
            }
            return Err(fail(
                target,
                "email",
                FieldError::new("validation_values_mismatch", "Values don't match."),
            ));
        }
    }
    let (Some(field), Some(pw)) = (c.field("password"), body.get("password")) else {
        return Ok(());
    };
    let plain = pw.as_str().unwrap_or_default().to_string();
    basalt_schema::record::validate_password(field, &plain)
        .map_err(|e| fail(target, "password", e))?;
    if confirm.as_ref().and_then(Value::as_str) != Some(plain.as_str()) {
        return Err(fail(
            target,
            "passwordConfirm",
            FieldError::new("validation_values_mismatch", "Values don't match."),
        ));
    }
    if let Target::Update(id) = target
        && !manager
    {
        let old = old.as_ref().and_then(Value::as_str).unwrap_or_default();
        if old.is_empty() || !old_password_matches(svc, c, id, old).await? {
            return Err(fail(
                target,
                "oldPassword",
                FieldError::new(
                    "validation_invalid_old_password",
                    "Missing or invalid old password.",
                ),
            ));
        }
    }
    let hash = svc.passwords.hash(plain).await?;
    body.insert("password".into(), Value::String(hash));
    if matches!(target, Target::Update(_)) {
        // A new password signs out every session of the record.
        body.insert(
            "tokenKey".into(),
            Value::String(basalt_schema::id::random_id(50)),
        );
    }
    Ok(())
}
