//! `GET /api/openapi.json`: the OpenAPI 3.1 document of this API, generated from the
//! store's schema snapshot and cached per snapshot, so a collection change shows in the
//! next request's document.

mod document;
mod fields;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use basalt_schema::Schema;
use basalt_service::Caller;

pub use document::{Audience, build};

use crate::ApiState;
use crate::error::ApiResult;

/// Who may read the document (`openapi` in the configuration).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OpenApiAccess {
    /// Anyone, shown every route (rules summarised, their text for superusers only).
    All,
    /// Anyone; callers other than superusers are shown the collections and actions whose
    /// rule is not superusers-only, and no superuser-only system route.
    #[default]
    Reachable,
    /// Superusers only; others get PocketBase's 401/403.
    Superusers,
}

impl std::str::FromStr for OpenApiAccess {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(Self::All),
            "reachable" => Ok(Self::Reachable),
            "superusers" => Ok(Self::Superusers),
            _ => Err(format!(
                "{s:?} is not one of \"all\", \"reachable\", \"superusers\""
            )),
        }
    }
}

/// The documents of the newest snapshot seen, per audience. Holding the snapshot's `Arc`
/// keeps its address from being reused while it is the cache key.
#[derive(Default)]
pub(crate) struct DocumentCache {
    inner: Mutex<Option<(Arc<Schema>, Documents)>>,
}

/// One rendered document per [`Audience`], made when first asked for.
type Documents = [Option<Bytes>; 3];

impl DocumentCache {
    fn get(&self, schema: &Arc<Schema>, audience: Audience) -> Bytes {
        let slot = audience as usize;
        if let Ok(guard) = self.inner.lock()
            && let Some((cached, docs)) = guard.as_ref()
            && Arc::ptr_eq(cached, schema)
            && let Some(doc) = &docs[slot]
        {
            return doc.clone();
        }
        let doc = Bytes::from(build(schema, audience).to_string());
        if let Ok(mut guard) = self.inner.lock() {
            match guard.as_mut() {
                Some((cached, docs)) if Arc::ptr_eq(cached, schema) => {
                    docs[slot] = Some(doc.clone());
                }
                _ => {
                    let mut docs = [None, None, None];
                    docs[slot] = Some(doc.clone());
                    *guard = Some((schema.clone(), docs));
                }
            }
        }
        doc
    }
}

pub(crate) async fn document(
    State(state): State<ApiState>,
    caller: Caller,
    access: OpenApiAccess,
    cache: Arc<DocumentCache>,
) -> ApiResult<Response> {
    let audience = if caller.is_superuser() {
        Audience::Superuser
    } else {
        match access {
            OpenApiAccess::All => Audience::Everything,
            OpenApiAccess::Reachable => Audience::Reachable,
            OpenApiAccess::Superusers => {
                caller.require_superuser()?;
                Audience::Superuser
            }
        }
    };
    let doc = cache.get(&state.service.store.schema(), audience);
    Ok(([(header::CONTENT_TYPE, "application/json")], doc).into_response())
}
