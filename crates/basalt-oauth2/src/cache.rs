//! Provider documents that change rarely (discovery, JWKS), kept for a while so a sign-in
//! costs one token call and one user-info call, not four; a key id missing from a cached
//! JWKS refetches it once (keys rotate).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fetch::get_json;

const TTL: Duration = Duration::from_secs(600);
/// Bound on cached documents (providers × documents is small; this is a safety net).
const MAX_DOCS: usize = 256;

#[derive(Debug, Default)]
pub(crate) struct DocCache {
    docs: Mutex<HashMap<String, (Value, Instant)>>,
}

impl DocCache {
    fn cached(&self, url: &str) -> Option<Value> {
        let docs = self.docs.lock().ok()?;
        docs.get(url)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(v, _)| v.clone())
    }

    /// The document at `url`, from the cache unless `fresh` or expired.
    pub(crate) async fn get(
        &self,
        http: &reqwest::Client,
        url: &str,
        fresh: bool,
    ) -> Result<Value, String> {
        if !fresh && let Some(v) = self.cached(url) {
            return Ok(v);
        }
        let v = get_json(http, url, None).await?;
        if let Ok(mut docs) = self.docs.lock() {
            docs.retain(|_, (_, at)| at.elapsed() < TTL);
            if docs.len() >= MAX_DOCS {
                docs.clear();
            }
            docs.insert(url.to_string(), (v.clone(), Instant::now()));
        }
        Ok(v)
    }
}
