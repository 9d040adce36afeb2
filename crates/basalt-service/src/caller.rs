//! Who is asking: the [`Caller`] (the auth record behind a verified token, or nobody) and
//! what access rules read of the request besides it (`@request.*`, [`RequestMeta`]).
//! A protocol resolves its token with [`resolve_token`] and supplies the rest.

use std::sync::Arc;

use basalt_auth::TokenKind;
use basalt_schema::RequestInfo;
use basalt_schema::request::AuthInfo;
use basalt_store::Access;
use serde_json::{Map, Value};

use crate::Services;
use crate::error::{ServiceError, ServiceResult};

/// The authenticated record a request acts as, if any. An invalid or expired token makes
/// the caller anonymous (as PocketBase does).
#[derive(Debug, Clone, Default)]
pub struct Caller(pub Option<AuthInfo>);

impl Caller {
    pub fn is_superuser(&self) -> bool {
        self.0.as_ref().is_some_and(|a| a.is_superuser)
    }

    pub fn require_superuser(&self) -> ServiceResult<()> {
        match &self.0 {
            None => Err(ServiceError::unauthorized()),
            Some(a) if !a.is_superuser => Err(ServiceError::not_allowed()),
            Some(_) => Ok(()),
        }
    }
}

/// What rules read of a request besides the caller and its body: `@request.query` and
/// `@request.headers` (names lowercased, `-` as `_`). Produced only when a rule may read
/// them; a protocol without them passes `&()`.
pub trait RequestMeta: Sync {
    fn query(&self) -> Map<String, Value>;
    fn headers(&self) -> Map<String, Value>;
}

impl RequestMeta for () {
    fn query(&self) -> Map<String, Value> {
        Map::new()
    }

    fn headers(&self) -> Map<String, Value> {
        Map::new()
    }
}

/// The request as rules see it.
pub fn request_info(
    caller: &Caller,
    method: &str,
    meta: &dyn RequestMeta,
    body: Map<String, Value>,
) -> RequestInfo {
    RequestInfo {
        auth: caller.0.clone(),
        body,
        query: meta.query(),
        headers: meta.headers(),
        method: method.to_string(),
        context: "default".into(),
    }
}

/// Verifies `token` against its record's tokenKey and returns the identity: `Ok(None)`
/// for a token that is not valid (the caller is anonymous then, as in PocketBase), an
/// error when its record could not be read (the database unavailable), so that a signed-in
/// caller is never served as anonymous.
pub async fn resolve_token(
    svc: &Services,
    token: &str,
    kind: TokenKind,
) -> ServiceResult<Option<AuthInfo>> {
    let Ok(claims) = basalt_auth::decode_unverified(token) else {
        return Ok(None);
    };
    if claims.token_type != kind.claim() {
        return Ok(None);
    }
    let schema = svc.store.schema();
    let Some(collection) = schema.by_id(&claims.collection_id).cloned() else {
        return Ok(None);
    };
    if !collection.is_auth() {
        return Ok(None);
    }
    let record = match svc
        .store
        .get_record(
            &collection,
            &claims.id,
            Access::Unrestricted,
            Arc::new(RequestInfo::default()),
        )
        .await
    {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(None),
        Err(e) => return Err(ServiceError::from_store(e, "Failed to verify the token.")),
    };
    if crate::tokens::verify(svc, &collection, &record, token, kind).is_none() {
        return Ok(None);
    }
    let mut rec = record.clone();
    rec.insert("collectionId".into(), Value::String(collection.id.clone()));
    rec.insert(
        "collectionName".into(),
        Value::String(collection.name.clone()),
    );
    Ok(Some(AuthInfo {
        collection_id: collection.id.clone(),
        collection_name: collection.name.clone(),
        record: rec,
        is_superuser: collection.is_superusers(),
    }))
}
