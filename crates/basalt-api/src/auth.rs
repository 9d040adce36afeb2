//! Auth endpoints of auth collections: password login, token refresh, auth methods.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use basalt_auth::TokenClaims;
use basalt_schema::{Collection, RequestInfo};
use basalt_store::{Access, Record, WriteOp};
use serde_json::{Map, Value, json};

use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::records::collection;
use crate::records::shape::public_record;
use crate::request_info::Auth;

fn auth_collection(state: &ApiState, name: &str) -> ApiResult<Arc<Collection>> {
    let c = collection(state, name)?;
    if !c.is_auth() {
        return Err(ApiError::bad_request(format!(
            "Collection \"{}\" is not an auth collection.",
            c.name
        )));
    }
    Ok(c)
}

fn issue(state: &ApiState, c: &Collection, record: &Record) -> ApiResult<String> {
    let duration = c.auth.as_ref().map_or(604_800, |a| a.auth_token.duration);
    let claims = TokenClaims {
        id: record
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        collection_id: c.id.clone(),
        token_type: "auth".into(),
        refreshable: true,
        exp: chrono::Utc::now().timestamp() + duration,
    };
    let key = record
        .get("tokenKey")
        .and_then(Value::as_str)
        .unwrap_or_default();
    basalt_auth::issue_token(&state.keys, &claims, key).map_err(|_| ApiError::internal())
}

pub(crate) fn auth_response(
    state: &ApiState,
    c: &Collection,
    record: &Record,
) -> ApiResult<Json<Value>> {
    let token = issue(state, c, record)?;
    let id = record.get("id").and_then(Value::as_str).unwrap_or_default();
    // The record owner sees their own email.
    let owner = Auth(Some(basalt_schema::request::AuthInfo {
        collection_id: c.id.clone(),
        collection_name: c.name.clone(),
        record: Map::from_iter([("id".to_string(), Value::String(id.to_string()))]),
        is_superuser: c.is_superusers(),
    }));
    Ok(Json(
        json!({"token": token, "record": public_record(c, record, &owner)}),
    ))
}

pub(crate) async fn auth_with_password(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let c = auth_collection(&state, &name)?;
    let opts = c
        .auth
        .clone()
        .unwrap_or_else(|| basalt_schema::collection::AuthOptions {
            auth_rule: Some(String::new()),
            manage_rule: None,
            password_auth: Default::default(),
            auth_token: Default::default(),
            oauth2: Default::default(),
        });
    if !opts.password_auth.enabled {
        return Err(ApiError::forbidden(
            "The collection is not configured to allow password authentication.",
        ));
    }
    let identity = body
        .get("identity")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let password = body
        .get("password")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut errs = basalt_schema::ValidationErrors::new();
    if identity.is_empty() {
        errs.add("identity", basalt_schema::FieldError::required());
    }
    if password.is_empty() {
        errs.add("password", basalt_schema::FieldError::required());
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
    let fields: Vec<String> = opts
        .password_auth
        .identity_fields
        .iter()
        .filter(|f| wanted.is_none_or(|w| w == f.as_str()))
        .cloned()
        .collect();
    let mut found = None;
    for f in &fields {
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
    let hash = record
        .get("password")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let rehash = basalt_auth::needs_rehash(&hash);
    let ok = state.passwords.verify(password.clone(), hash).await;
    if !ok {
        return Err(failed());
    }
    // The collection's auth rule must also admit the record.
    let rule = state.store.schema().rules(&c.id).map(|r| r.auth.clone());
    if let Some(basalt_schema::RuleSlot::Expr(e)) = &rule {
        let id = record.get("id").and_then(Value::as_str).unwrap_or_default();
        let visible = state
            .store
            .get_record(
                &c,
                id,
                Access::Rule(e.clone()),
                Arc::new(RequestInfo::default()),
            )
            .await
            .map_err(|e| ApiError::from_store(e, "Failed to authenticate."))?;
        if visible.is_none() {
            return Err(failed());
        }
    } else if matches!(rule, Some(basalt_schema::RuleSlot::Locked)) {
        return Err(ApiError::forbidden(
            "The authentication is not allowed for this collection.",
        ));
    }
    let record = if rehash {
        upgrade_hash(&state, &c, record, password).await
    } else {
        record
    };
    auth_response(&state, &c, &record)
}

/// Replaces a bcrypt hash (imported from PocketBase) with argon2id after a good login.
async fn upgrade_hash(
    state: &ApiState,
    c: &Arc<Collection>,
    record: Record,
    password: String,
) -> Record {
    let Ok(hash) = state.passwords.hash(password).await else {
        return record;
    };
    let id = record
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let input = Map::from_iter([("password".to_string(), Value::String(hash))]);
    let op = WriteOp::Update {
        collection: c.clone(),
        id,
        input,
        access: Access::Unrestricted,
    };
    match state
        .store
        .write(vec![op], Arc::new(RequestInfo::default()))
        .await
    {
        Ok(mut out) => out.pop().flatten().unwrap_or(record),
        Err(e) => {
            tracing::warn!(error = %e, "password rehash failed");
            record
        }
    }
}

pub(crate) async fn auth_refresh(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    auth: Auth,
) -> ApiResult<Json<Value>> {
    let c = auth_collection(&state, &name)?;
    let Some(info) = auth.0 else {
        return Err(ApiError::unauthorized());
    };
    if info.collection_id != c.id {
        return Err(ApiError::forbidden(
            "The request requires valid auth record of this collection.",
        ));
    }
    let id = info
        .record
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let record = state
        .store
        .get_record(
            &c,
            id,
            Access::Unrestricted,
            Arc::new(RequestInfo::default()),
        )
        .await
        .map_err(|e| ApiError::from_store(e, "Failed to refresh."))?
        .ok_or_else(ApiError::not_found)?;
    auth_response(&state, &c, &record)
}

pub(crate) async fn auth_methods(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let c = auth_collection(&state, &name)?;
    let pa = c
        .auth
        .as_ref()
        .map(|a| a.password_auth.clone())
        .unwrap_or_default();
    Ok((
        StatusCode::OK,
        Json(json!({
            "password": {"enabled": pa.enabled, "identityFields": pa.identity_fields},
            "oauth2": crate::oauth2::auth_methods(&c),
            "mfa": {"enabled": false, "duration": 0},
            "otp": {"enabled": false, "duration": 0},
            // Kept by PocketBase for older SDKs.
            "authProviders": crate::oauth2::auth_methods(&c)["providers"],
            "usernamePassword": pa.identity_fields.iter().any(|f| f == "username"),
            "emailPassword": pa.enabled && pa.identity_fields.iter().any(|f| f == "email"),
        })),
    ))
}
