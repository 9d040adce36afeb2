//! Who is asking and with what: the auth token resolved to its record, and the request's
//! query, headers and body as access rules see them (`@request.*`).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use basalt_schema::RequestInfo;
use basalt_schema::request::AuthInfo;
use basalt_store::Access;
use serde_json::{Map, Value};

use crate::ApiState;
use crate::error::ApiError;

/// The authenticated record behind the `Authorization` header, if any. An invalid or
/// expired token makes the request anonymous (as PocketBase does).
#[derive(Debug, Clone, Default)]
pub struct Auth(pub Option<AuthInfo>);

impl Auth {
    pub fn is_superuser(&self) -> bool {
        self.0.as_ref().is_some_and(|a| a.is_superuser)
    }

    pub fn require_superuser(&self) -> Result<(), ApiError> {
        match &self.0 {
            None => Err(ApiError::unauthorized()),
            Some(a) if !a.is_superuser => Err(ApiError::superusers_only()),
            Some(_) => Ok(()),
        }
    }
}

impl FromRequestParts<ApiState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let Some(raw) = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
        else {
            return Ok(Auth(None));
        };
        let token = raw.strip_prefix("Bearer ").unwrap_or(raw).trim();
        Ok(Auth(
            resolve_token(state, token, basalt_auth::TokenKind::Auth).await,
        ))
    }
}

/// Verifies `token` against its record's tokenKey and returns the identity.
pub async fn resolve_token(
    state: &ApiState,
    token: &str,
    kind: basalt_auth::TokenKind,
) -> Option<AuthInfo> {
    let claims = basalt_auth::decode_unverified(token).ok()?;
    if claims.token_type != kind.claim() {
        return None;
    }
    let schema = state.store.schema();
    let collection = schema.by_id(&claims.collection_id)?.clone();
    if !collection.is_auth() {
        return None;
    }
    let record = state
        .store
        .get_record(
            &collection,
            &claims.id,
            Access::Unrestricted,
            Arc::new(RequestInfo::default()),
        )
        .await
        .ok()??;
    crate::auth::verify(state, &collection, &record, token, kind)?;
    let mut rec = record.clone();
    rec.insert("collectionId".into(), Value::String(collection.id.clone()));
    rec.insert(
        "collectionName".into(),
        Value::String(collection.name.clone()),
    );
    Some(AuthInfo {
        collection_id: collection.id.clone(),
        collection_name: collection.name.clone(),
        record: rec,
        is_superuser: collection.is_superusers(),
    })
}

/// Header names as rules see them: lowercased, `-` replaced by `_`.
pub fn headers_map(h: &HeaderMap) -> Map<String, Value> {
    h.iter()
        .filter_map(|(k, v)| {
            let v = v.to_str().ok()?;
            Some((
                k.as_str().to_ascii_lowercase().replace('-', "_"),
                Value::String(v.to_string()),
            ))
        })
        .collect()
}

pub fn build(
    auth: &Auth,
    method: &str,
    query: &Map<String, Value>,
    headers: &HeaderMap,
    body: Map<String, Value>,
) -> RequestInfo {
    RequestInfo {
        auth: auth.0.clone(),
        body,
        query: query.clone(),
        headers: headers_map(headers),
        method: method.to_string(),
        context: "default".into(),
    }
}
