//! `auth-with-password`: identity + password. Unknown identities cost a dummy
//! verification and get the same answer as a wrong password; bcrypt hashes imported from
//! PocketBase are upgraded to argon2id after a good login.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use basalt_schema::{Collection, FieldError, ValidationErrors};
use basalt_store::Record;
use serde_json::{Map, Value};

use super::alerts::Origin;
use super::limits::ClientIp;
use super::{auth_collection, finish_auth, options, system_update, text};
use crate::ApiState;
use crate::body::Body;
use crate::error::{ApiError, ApiResult};

pub(crate) async fn auth_with_password(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    let c = auth_collection(&state, &name)?;
    let opts = options(&c);
    let identity = body
        .get("identity")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    state
        .limits
        .check(
            &state,
            &c,
            "authWithPassword",
            ip,
            &headers,
            Some(&identity),
        )
        .await?;
    if !opts.password_auth.enabled {
        return Err(ApiError::forbidden(
            "The collection is not configured to allow password authentication.",
        ));
    }
    let password = body
        .get("password")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut errs = ValidationErrors::new();
    if identity.is_empty() {
        errs.add("identity", FieldError::required());
    }
    if password.is_empty() {
        errs.add("password", FieldError::required());
    }
    if !errs.is_empty() {
        return Err(ApiError::validation(
            "An error occurred while validating the submitted data.",
            &errs,
        ));
    }
    let wanted = body
        .get("identityField")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let mut found = None;
    for f in opts
        .password_auth
        .identity_fields
        .iter()
        .filter(|f| wanted.is_none_or(|w| w == f.as_str()))
    {
        if let Some(r) = state
            .store
            .find_auth_record(&c, f, &identity)
            .await
            .map_err(|e| ApiError::from_store(e, "Failed to authenticate."))?
        {
            found = Some(r);
            break;
        }
    }
    let failed = || ApiError::bad_request("Failed to authenticate.");
    let Some(record) = found else {
        state.passwords.dummy(password).await;
        return Err(failed());
    };
    let hash = text(&record, "password").to_string();
    let rehash = basalt_auth::needs_rehash(&hash);
    if !state.passwords.verify(password.clone(), hash).await {
        return Err(failed());
    }
    let record = if rehash {
        upgrade_hash(&state, &c, record, password).await
    } else {
        record
    };
    let mfa_id = query
        .get("mfaId")
        .map(String::as_str)
        .or_else(|| body.get("mfaId").and_then(Value::as_str))
        .filter(|s| !s.is_empty());
    finish_auth(
        &state,
        &c,
        record,
        "password",
        mfa_id,
        Origin::new(ip, &headers),
    )
    .await
}

/// Replaces a bcrypt hash (imported from PocketBase) with argon2id after a good login.
/// The token key stays: sessions signed before the upgrade remain valid.
async fn upgrade_hash(
    state: &ApiState,
    c: &Arc<Collection>,
    record: Record,
    password: String,
) -> Record {
    let Ok(hash) = state.passwords.hash(password).await else {
        return record;
    };
    let input = Map::from_iter([("password".to_string(), Value::String(hash))]);
    match system_update(
        state,
        c,
        text(&record, "id"),
        input,
        "Failed to authenticate.",
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(status = %e.status, "password rehash failed");
            record
        }
    }
}
