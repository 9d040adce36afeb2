//! Multi-factor authentication as PocketBase does it: with `mfa.enabled`, a first factor
//! that succeeds for a record matching `mfa.rule` opens an `_mfas` entry and answers 401
//! with its `mfaId`; a second, different method carrying that `mfaId` within
//! `mfa.duration` seconds completes the login and consumes the entry.

use std::sync::Arc;

use basalt_schema::request::AuthInfo;
use basalt_schema::{Collection, RequestInfo};
use basalt_store::{Access, Record, WriteOp};
use serde_json::{Map, Value};

use super::otp::{age_secs, delete_system_record, purge_expired, system_collection};
use super::{load_record, options, text};
use crate::ApiState;
use crate::error::{ApiError, ApiResult};

/// Whether `mfa.rule` (empty: everyone) selects `record`. The rule sees the record as
/// `@request.auth`.
async fn applies(
    state: &ApiState,
    c: &Arc<Collection>,
    record: &Record,
    rule: &str,
) -> ApiResult<bool> {
    if rule.trim().is_empty() {
        return Ok(true);
    }
    // Parsed here rather than per snapshot: it runs once per login, next to a password hash.
    let expr = basalt_schema::filter::parse(rule).map_err(|_| {
        tracing::error!(collection = c.name.as_str(), "invalid mfa rule");
        ApiError::internal()
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
    let seen = state
        .store
        .get_record(
            c,
            text(record, "id"),
            Access::Rule(Arc::new(expr)),
            Arc::new(req),
        )
        .await
        .map_err(|e| ApiError::from_store(e, "Failed to authenticate."))?;
    Ok(seen.is_some())
}

/// `Ok(None)` when the session may start; `Ok(Some(mfaId))` when a second factor is due.
pub(crate) async fn gate(
    state: &ApiState,
    c: &Arc<Collection>,
    record: &Record,
    method: &str,
    mfa_id: Option<&str>,
) -> ApiResult<Option<String>> {
    let mfa = options(c).mfa;
    if !mfa.enabled || !applies(state, c, record, &mfa.rule).await? {
        return Ok(None);
    }
    let mfas = system_collection(state, "_mfas")?;
    if let Some(id) = mfa_id {
        let invalid = || ApiError::bad_request("Invalid or expired MFA session.");
        let entry = load_record(state, &mfas, id).await?.ok_or_else(invalid)?;
        if text(&entry, "collectionRef") != c.id || text(&entry, "recordRef") != text(record, "id")
        {
            return Err(invalid());
        }
        if age_secs(&entry) > mfa.duration {
            delete_system_record(state, &mfas, id).await;
            return Err(invalid());
        }
        if text(&entry, "method") == method {
            return Err(ApiError::bad_request(
                "The second factor must use a different authentication method.",
            ));
        }
        delete_system_record(state, &mfas, id).await;
        return Ok(None);
    }
    purge_expired(state, &mfas, &c.id, text(record, "id"), mfa.duration).await;
    let input = Map::from_iter([
        ("collectionRef".into(), Value::String(c.id.clone())),
        ("recordRef".into(), Value::String(text(record, "id").into())),
        ("method".into(), Value::String(method.into())),
    ]);
    let op = WriteOp::Create {
        collection: mfas,
        input,
        access: Access::Unrestricted,
    };
    let entry = state
        .store
        .write(vec![op], Arc::new(RequestInfo::default()))
        .await
        .map_err(|e| ApiError::from_store(e, "Failed to authenticate."))?
        .pop()
        .flatten()
        .ok_or_else(ApiError::internal)?;
    Ok(Some(text(&entry, "id").to_string()))
}
