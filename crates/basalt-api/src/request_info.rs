//! Who is asking and with what, read from HTTP: the `Authorization` header resolved to the
//! [`Caller`], and the query and headers as access rules see them (`@request.*`).

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use basalt_service::{Caller, RequestMeta, resolve_token};
use serde_json::{Map, Value};

use crate::ApiState;
use crate::error::ApiError;

/// The caller behind the `Authorization` header, if any. An invalid or expired token
/// makes the request anonymous (as PocketBase does); a token whose record cannot be read
/// (the database unavailable) fails the request.
impl FromRequestParts<ApiState> for Caller {
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
            return Ok(Caller(None));
        };
        let token = raw.strip_prefix("Bearer ").unwrap_or(raw).trim();
        let caller =
            Caller(resolve_token(&state.service, token, basalt_auth::TokenKind::Auth).await?);
        if let Some(slot) = parts.extensions.get::<crate::logs::RequestLogSlot>() {
            slot.note(&caller);
        }
        Ok(caller)
    }
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

pub(crate) fn query_map(q: &HashMap<String, String>) -> Map<String, Value> {
    q.iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect()
}

/// An HTTP request's query string and headers, read only when a rule asks for them.
pub(crate) struct HttpMeta<'a> {
    pub query: &'a HashMap<String, String>,
    pub headers: &'a HeaderMap,
}

impl RequestMeta for HttpMeta<'_> {
    fn query(&self) -> Map<String, Value> {
        query_map(self.query)
    }

    fn headers(&self) -> Map<String, Value> {
        headers_map(self.headers)
    }
}
