//! What an access rule or filter may know about the request: `@request.auth.*`,
//! `@request.body.*`, `@request.query.*`, `@request.headers.*`, `@request.method`,
//! `@request.context`. Built by the API layer, read by the SQL compiler.

use serde_json::{Map, Value};

/// The authenticated identity behind a request: the auth record's fields (including `id`,
/// `collectionId`, `collectionName`) as PocketBase exposes them to rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthInfo {
    pub collection_id: String,
    pub collection_name: String,
    pub record: Map<String, Value>,
    /// True for records of the `_superusers` collection: rules are bypassed for them.
    pub is_superuser: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestInfo {
    pub auth: Option<AuthInfo>,
    /// Submitted body fields (after multipart/JSON parsing, before validation).
    pub body: Map<String, Value>,
    /// Query parameters, last value wins.
    pub query: Map<String, Value>,
    /// Header names lowercased with `-` replaced by `_`, as PocketBase exposes them.
    pub headers: Map<String, Value>,
    pub method: String,
    /// `default`, `oauth2`, `otp`, `password`, `realtime`, `protectedFile`, `batch`.
    pub context: String,
}

impl RequestInfo {
    pub fn is_superuser(&self) -> bool {
        self.auth.as_ref().is_some_and(|a| a.is_superuser)
    }
}
