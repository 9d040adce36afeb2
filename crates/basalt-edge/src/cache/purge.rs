//! `POST /cache/purge` on the admin listener: `{"url": "..."}` (or `"key"`) removes every
//! variant stored for that URL, `{"tag": "..."}` every entry carrying the tag; `"zone"`
//! narrows it to one zone. Answers `{"purged": N}`.

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;

use crate::Edge;
use crate::body::{Body, error_response, full};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Purge {
    #[serde(default)]
    zone: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    tag: Option<String>,
}

pub async fn purge_request(edge: &Edge, req: Request<Incoming>) -> Response<Body> {
    let bytes = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "purge body unreadable or over 64KB",
            );
        }
    };
    let purge: Purge = match serde_json::from_slice(&bytes) {
        Ok(p) => p,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &format!(
                    "purge body must be json like {{\"url\": \"...\"}} or {{\"tag\": \"...\"}}: {e}"
                ),
            );
        }
    };
    // Entries are keyed by host without port; a URL given with one still finds them.
    let url = purge
        .url
        .or(purge.key)
        .map(|u| match u.parse::<http::Uri>() {
            Ok(uri) => match (uri.scheme_str(), uri.host()) {
                (Some(scheme), Some(host)) => super::request_url(scheme == "https", host, &uri),
                _ => u,
            },
            Err(_) => u,
        });
    if url.is_some() == purge.tag.is_some() {
        return error_response(
            StatusCode::BAD_REQUEST,
            "purge needs exactly one of url (or key) and tag",
        );
    }
    let snapshot = edge.inner.shared.snapshot.load_full();
    let zones: Vec<_> = match &purge.zone {
        Some(z) => match snapshot.cache_zones.get(z) {
            Some(zone) => vec![zone.clone()],
            None => return error_response(StatusCode::NOT_FOUND, "unknown cache zone"),
        },
        None => snapshot.cache_zones.values().cloned().collect(),
    };
    let mut purged = 0;
    for zone in zones {
        purged += match (&url, &purge.tag) {
            (Some(u), _) => zone.purge_url(u).await,
            (None, Some(t)) => zone.purge_tag(t).await,
            (None, None) => 0,
        };
    }
    let mut r = Response::new(full(serde_json::json!({ "purged": purged }).to_string()));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}
