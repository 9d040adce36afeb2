//! Multi-factor authentication as PocketBase does it: with `mfa.enabled`, a first factor
//! that succeeds for a record matching `mfa.rule` opens an `_mfas` entry and answers 401
//! with its `mfaId`; a second, different method carrying that `mfaId` within
//! `mfa.duration` seconds completes the login and consumes the entry.

use std::sync::Arc;

use basalt_schema::request::AuthInfo;
use basalt_schema::{Collection, RequestInfo};
use basalt_store::{Access, Record, WriteOp};
use serde_json::{Map, Value};

use super::load_record;
use super::system::{age_secs, delete_system_record, purge_expired, system_collection};
use crate::Services;
use crate::error::{ServiceError, ServiceResult};
use crate::tokens::{options, text};

/// Whether `mfa.rule` (empty: everyone) selects `record`. The rule sees the record as
/// `@request.auth`.
async fn applies(
    svc: &Services,
    c: &Arc<Collection>,
    record: &Record,
    rule: &str,
) -> ServiceResult<bool> {
    if rule.trim().is_empty() {
        return Ok(true);
    }
    // Parsed here rather than per snapshot: it runs once per login, next to a password hash.
    let expr = basalt_schema::filter::parse(rule).map_err(|_| {
        tracing::error!(collection = c.name.as_str(), "invalid mfa rule");
        ServiceError::internal()
    })?;
    let req = RequestInfo {
        auth: Some(AuthInfo {
            collection_id: c.id.clone(),
            collection_name: c.name.clone(),
            record: record.clone(),
            is_superuser: c.is_superusers(),
        }),
        method: "POST".into(),
        context: "default".into(),
        ..RequestInfo::default()
    };
    let seen = svc
        .store
        .get_record(
            c,
            text(record, "id"),
            Access::Rule(Arc::new(expr)),
            Arc::new(req),
        )
        .await
        .map_err(|e| ServiceError::from_store(e, "Failed to authenticate."))?;
    Ok(seen.is_some())
}

/// `Ok(None)` when the session may start; `Ok(Some(mfaId))` when a second factor is due.
pub(super) async fn gate(
    svc: &Services,
    c: &Arc<Collection>,
    record: &Record,
    method: &str,
    mfa_id: Option<&str>,
) -> ServiceResult<Option<String>> {
    let mfa = options(c).mfa;
    if !mfa.enabled || !applies(svc, c, record, &mfa.rule).await? {
        return Ok(None);
    }
    let mfas = system_collection(svc, "_mfas")?;
    if let Some(id) = mfa_id {
        let invalid = || ServiceError::bad_request("Invalid or expired MFA session.");
        let entry = load_record(svc, &mfas, id).await?.ok_or_else(invalid)?;
        if text(&entry, "collectionRef") != c.id || text(&entry, "recordRef") != text(record, "id")
        {
            return Err(invalid());
        }
        if age_secs(&entry) > mfa.duration {
            delete_system_record(svc, &mfas, id).await;
            return Err(invalid());
        }
        if text(&entry, "method") == method {
            return Err(ServiceError::bad_request(
                "The second factor must use a different authentication method.",
            ));
        }
        delete_system_record(svc, &mfas, id).await;
        return Ok(None);
    }
    purge_expired(svc, &mfas, &c.id, text(record, "id"), mfa.duration).await;
    let input = Map::from_iter([
        ("collectionRef".into(), Value::String(c.id.clone())),
        ("recordRef".into(), Value::String(text(record, "id").into())),
        ("method".into(), Value::String(method.into())),
    ]);
    let op = WriteOp::Create {
        uploads: Vec::new(),
        collection: mfas,
        input,
        access: Access::Unrestricted,
    };
    let entry = svc
        .store
        .write(vec![op], Arc::new(RequestInfo::default()))
        .await
        .map_err(|e| ServiceError::from_store(e, "Failed to authenticate."))?
        .pop()
        .flatten()
        .ok_or_else(ServiceError::internal)?;
    Ok(Some(text(&entry, "id").to_string()))
}
