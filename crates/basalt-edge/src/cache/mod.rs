//! The HTTP cache for upstream responses (RFC 9111): zones with a byte-bounded memory tier and
//! an optional disk tier, entries found by URL plus the request headers the response `Vary`s
//! on, and purge by URL or tag. `flow` runs one request through a zone.
//!
//! Freshness, storability, `Vary` matching and revalidation follow `http-cache-semantics`
//! (a shared cache: `private` and authorised responses without `public`/`s-maxage` are not
//! stored); the edge adds what that crate leaves out: `stale-while-revalidate`,
//! `stale-if-error`, never storing `Set-Cookie`, bounds, tags and the cache lock.

mod directives;
mod disk;
mod flow;
mod lock;
mod lru;
mod purge;
mod respond;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use http_cache_semantics::CachePolicy;
use serde::{Deserialize, Serialize};

use crate::config::{CacheZoneConfig, RouteConfig, parse_size};
use crate::error::EdgeError;
use crate::metrics::EdgeMetrics;
use crate::route::{Action, Route};

pub use flow::serve;
pub use purge::purge_request;

/// What a stored response is, apart from its body; also the disk tier's file header.
#[derive(Clone, Serialize, Deserialize)]
pub struct EntryMeta {
    /// The variant key: the URL plus the values of the headers the response varies on.
    pub key: String,
    /// The effective request URL (`scheme://host/path?query`), what purge by URL names.
    pub url: String,
    pub tags: Vec<String>,
    pub policy: CachePolicy,
    pub status: u16,
    /// Response headers as stored (hop-by-hop headers were removed by the proxy).
    pub headers: Vec<(String, Vec<u8>)>,
    /// When the entry stops being fresh (milliseconds since the epoch).
    pub stale_at_ms: u64,
}

pub struct Entry {
    pub meta: EntryMeta,
    pub body: Bytes,
}

impl Entry {
    /// Bytes it counts for against a tier's bound: body plus a rough share for headers.
    fn weight(&self) -> u64 {
        let head: usize = self
            .meta
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.len() + 4)
            .sum();
        (self.body.len() + head + self.meta.key.len() + 256) as u64
    }

    fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::with_capacity(self.meta.headers.len());
        for (k, v) in &self.meta.headers {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_bytes(v),
            ) {
                h.append(k, v);
            }
        }
        h
    }

    /// How long ago it stopped being fresh (zero while fresh).
    fn staleness(&self, now: SystemTime) -> Duration {
        let stale_at = SystemTime::UNIX_EPOCH + Duration::from_millis(self.meta.stale_at_ms);
        now.duration_since(stale_at).unwrap_or_default()
    }
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Which variants and tags exist, so lookups know the `Vary` of a URL and purges find keys.
#[derive(Default)]
struct Index {
    urls: HashMap<String, UrlVariants>,
    tags: HashMap<String, HashSet<String>>,
}

#[derive(Default)]
struct UrlVariants {
    vary: Vec<HeaderName>,
    keys: HashSet<String>,
}

impl Index {
    fn add(&mut self, meta: &EntryMeta, vary: Vec<HeaderName>) {
        let u = self.urls.entry(meta.url.clone()).or_default();
        u.vary = vary;
        u.keys.insert(meta.key.clone());
        for t in &meta.tags {
            self.tags
                .entry(t.clone())
                .or_default()
                .insert(meta.key.clone());
        }
    }

    fn forget(&mut self, url: &str, key: &str) {
        if let Some(u) = self.urls.get_mut(url) {
            u.keys.remove(key);
            if u.keys.is_empty() {
                self.urls.remove(url);
            }
        }
    }
}

/// A named cache: memory tier, optional disk tier, index, cache lock and its metrics.
pub struct CacheZone {
    pub name: String,
    settings: CacheZoneConfig,
    max_object: u64,
    tag_header: HeaderName,
    lock_timeout: Duration,
    memory: Mutex<lru::Lru<Arc<Entry>>>,
    disk: Option<Arc<disk::DiskTier>>,
    index: Mutex<Index>,
    lock: lock::Coalescer,
    /// Keys being revalidated in the background (stale-while-revalidate sends one at a time).
    revalidating: Mutex<HashSet<String>>,
    metrics: Arc<EdgeMetrics>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The header names a response varies on, lowercased and sorted; `None` for `Vary: *`.
fn vary_names(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names = Vec::new();
    for v in headers.get_all(http::header::VARY) {
        for n in v.to_str().unwrap_or("*").split(',') {
            let n = n.trim();
            if n == "*" {
                return None;
            }
            if let Ok(h) = HeaderName::from_bytes(n.as_bytes())
                && !names.contains(&h)
            {
                names.push(h);
            }
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Some(names)
}

fn variant_key(url: &str, vary: &[HeaderName], headers: &HeaderMap) -> String {
    let mut key = url.to_string();
    for n in vary {
        key.push('\n');
        key.push_str(n.as_str());
        key.push(':');
        let values: Vec<&[u8]> = headers.get_all(n).iter().map(|v| v.as_bytes()).collect();
        key.push_str(&String::from_utf8_lossy(&values.join(&b","[..])));
    }
    key
}

/// The effective request URL a cache entry is stored under.
pub fn request_url(https: bool, host: &str, uri: &Uri) -> String {
    let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let scheme = if https { "https" } else { "http" };
    format!("{scheme}://{}{pq}", host.to_ascii_lowercase())
}

impl CacheZone {
    fn build(cfg: &CacheZoneConfig, metrics: &Arc<EdgeMetrics>) -> Result<Self, EdgeError> {
        let bad = |m: String| EdgeError::Config(format!("cache zone {:?}: {m}", cfg.name));
        let size = |field: &str, v: &str| {
            parse_size(v)
                .filter(|n| *n > 0)
                .ok_or_else(|| bad(format!("{field} {v:?} is not a size like \"64MB\"")))
        };
        let memory_max = size("memory_max", &cfg.memory_max)?;
        let disk_max = size("disk_max", &cfg.disk_max)?;
        let max_object = size("max_object", &cfg.max_object)?;
        if max_object > memory_max {
            return Err(bad("max_object must not exceed memory_max".into()));
        }
        let tag_header = HeaderName::from_bytes(cfg.tag_header.as_bytes()).map_err(|_| {
            bad(format!(
                "tag_header {:?} is not a header name",
                cfg.tag_header
            ))
        })?;
        if cfg.lock_timeout_ms == 0 || cfg.lock_timeout_ms > 600_000 {
            return Err(bad("lock_timeout_ms must be 1..=600000".into()));
        }
        let mut index = Index::default();
        let disk = match &cfg.disk_path {
            Some(dir) => {
                let (tier, metas) = disk::DiskTier::open(dir, disk_max)
                    .map_err(|e| bad(format!("disk_path {}: {e}", dir.display())))?;
                for (meta, vary) in metas {
                    index.add(&meta, vary);
                }
                Some(Arc::new(tier))
            }
            None => None,
        };
        let zone = Self {
            name: cfg.name.clone(),
            settings: cfg.clone(),
            max_object,
            tag_header,
            lock_timeout: Duration::from_millis(cfg.lock_timeout_ms),
            memory: Mutex::new(lru::Lru::new(memory_max)),
            disk,
            index: Mutex::new(index),
            lock: lock::Coalescer::default(),
            revalidating: Mutex::new(HashSet::new()),
            metrics: metrics.clone(),
        };
        zone.report_sizes();
        Ok(zone)
    }

    fn report_sizes(&self) {
        let (bytes, entries) = {
            let m = locked(&self.memory);
            (m.bytes(), m.len())
        };
        self.metrics
            .cache
            .set_size(&self.name, "memory", bytes, entries);
        if let Some(d) = &self.disk {
            let (bytes, entries) = d.size();
            self.metrics
                .cache
                .set_size(&self.name, "disk", bytes, entries);
        }
    }

    /// The variant key for a request to `url`, from the `Vary` last stored for it.
    fn lookup_key(&self, url: &str, headers: &HeaderMap) -> String {
        let index = locked(&self.index);
        match index.urls.get(url) {
            Some(u) => variant_key(url, &u.vary, headers),
            None => url.to_string(),
        }
    }

    /// The entry for `key` from memory, or from disk (then promoted to memory).
    async fn get(&self, key: &str) -> Option<Arc<Entry>> {
        if let Some(e) = locked(&self.memory).get(key) {
            return Some(e);
        }
        let disk = self.disk.clone()?;
        let k = key.to_string();
        let entry = tokio::task::spawn_blocking(move || disk.read(&k))
            .await
            .ok()
            .flatten()?;
        let entry = Arc::new(entry);
        self.remember(entry.clone());
        Some(entry)
    }

    fn remember(&self, entry: Arc<Entry>) {
        let weight = entry.weight();
        let evicted = locked(&self.memory).insert(entry.meta.key.clone(), entry, weight);
        let mut index = locked(&self.index);
        for (key, e) in &evicted {
            self.metrics.cache.eviction(&self.name, "memory");
            // Without a disk tier an entry evicted from memory is gone.
            if self.disk.is_none() {
                index.forget(&e.meta.url, key);
            }
        }
        drop(index);
        self.report_sizes();
    }

    /// Stores an entry in memory and, when there is one, on disk (atomically).
    async fn put_arc(&self, entry: Arc<Entry>, vary: Vec<HeaderName>) {
        locked(&self.index).add(&entry.meta, vary);
        self.remember(entry.clone());
        if let Some(disk) = self.disk.clone() {
            let written = tokio::task::spawn_blocking(move || disk.write(&entry)).await;
            match written {
                Ok(Ok(evicted)) => {
                    let mut index = locked(&self.index);
                    for (key, url) in evicted {
                        self.metrics.cache.eviction(&self.name, "disk");
                        if !locked(&self.memory).contains(&key) {
                            index.forget(&url, &key);
                        }
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(zone = %self.name, error = %e, "cache entry not written to disk")
                }
                Err(_) => tracing::warn!(zone = %self.name, "cache disk write panicked"),
            }
            self.report_sizes();
        }
    }

    /// Removes one variant from every tier.
    async fn remove(&self, key: &str) -> bool {
        let in_memory = locked(&self.memory).remove(key).is_some();
        let on_disk = match self.disk.clone() {
            Some(d) => {
                let k = key.to_string();
                tokio::task::spawn_blocking(move || d.remove(&k))
                    .await
                    .unwrap_or(false)
            }
            None => false,
        };
        in_memory || on_disk
    }

    /// Removes every variant stored for `url`; returns how many there were.
    pub async fn purge_url(&self, url: &str) -> usize {
        let keys: Vec<String> = match locked(&self.index).urls.remove(url) {
            Some(u) => u.keys.into_iter().collect(),
            None => Vec::new(),
        };
        let mut n = 0;
        for k in keys {
            n += usize::from(self.remove(&k).await);
        }
        self.report_sizes();
        n
    }

    /// Removes every entry tagged `tag`; returns how many there were.
    pub async fn purge_tag(&self, tag: &str) -> usize {
        let keys: Vec<String> = locked(&self.index)
            .tags
            .remove(tag)
            .map(|s| s.into_iter().collect())
            .unwrap_or_default();
        let mut n = 0;
        for k in keys {
            n += usize::from(self.remove(&k).await);
        }
        self.report_sizes();
        n
    }

    /// Tags an upstream response carries in the zone's tag header.
    fn tags_of(&self, headers: &HeaderMap) -> Vec<String> {
        let mut tags = Vec::new();
        for v in headers.get_all(&self.tag_header) {
            for t in v.to_str().unwrap_or("").split([',', ' ']) {
                let t = t.trim();
                if !t.is_empty() && !tags.iter().any(|x| x == t) {
                    tags.push(t.to_string());
                }
            }
        }
        tags
    }
}

/// Builds the zones, keeping a previous zone (and its contents) whose settings did not change.
pub fn build_zones(
    cfgs: &[CacheZoneConfig],
    previous: Option<&BTreeMap<String, Arc<CacheZone>>>,
    metrics: &Arc<EdgeMetrics>,
) -> Result<BTreeMap<String, Arc<CacheZone>>, EdgeError> {
    let mut zones = BTreeMap::new();
    let mut disks = HashSet::new();
    for c in cfgs {
        if c.name.is_empty() {
            return Err(EdgeError::Config("a cache zone needs a name".into()));
        }
        if zones.contains_key(&c.name) {
            return Err(EdgeError::Config(format!(
                "cache zone {:?} appears twice",
                c.name
            )));
        }
        if let Some(d) = &c.disk_path
            && !disks.insert(d.clone())
        {
            return Err(EdgeError::Config(format!(
                "cache zone {:?}: disk_path {} is used by another zone",
                c.name,
                d.display()
            )));
        }
        let zone = match previous.and_then(|p| p.get(&c.name)) {
            Some(old) if old.settings == *c => old.clone(),
            _ => Arc::new(CacheZone::build(c, metrics)?),
        };
        zones.insert(c.name.clone(), zone);
    }
    Ok(zones)
}

/// Resolves a route's `cache` setting to its zone; only pool routes cache.
pub fn attach(
    route: &mut Route,
    cfg: &RouteConfig,
    zones: &BTreeMap<String, Arc<CacheZone>>,
) -> Result<(), EdgeError> {
    let Some(c) = &cfg.cache else {
        return Ok(());
    };
    let bad = |m: String| EdgeError::Config(format!("route {}: {m}", route.name));
    if !matches!(route.action, Action::Pool(_)) {
        return Err(bad("cache is for routes with a pool".into()));
    }
    let zone = zones
        .get(&c.zone)
        .ok_or_else(|| bad(format!("unknown cache zone {:?}", c.zone)))?;
    route.cache = Some(zone.clone());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("64MB"), Some(64 << 20));
        assert_eq!(parse_size("1gb"), Some(1 << 30));
        assert_eq!(parse_size("512 KiB"), Some(512 << 10));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("12XB"), None);
        assert_eq!(parse_size("MB"), None);
    }

    #[test]
    fn variant_keys_follow_vary() {
        let mut h = HeaderMap::new();
        h.insert("accept-language", HeaderValue::from_static("fr"));
        let mut r = HeaderMap::new();
        r.insert(
            "vary",
            HeaderValue::from_static("Accept-Language, accept-encoding"),
        );
        let names = vary_names(&r).expect("no star");
        assert_eq!(names.len(), 2);
        let k = variant_key("http://a/x", &names, &h);
        assert_eq!(k, "http://a/x\naccept-encoding:\naccept-language:fr");
        r.insert("vary", HeaderValue::from_static("*"));
        assert!(vary_names(&r).is_none());
    }
}
