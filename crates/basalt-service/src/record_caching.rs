//! How clients may cache record answers: the settings document's `recordCaching`
//! section (a Basalt extension, absent unless set, so the document stays PocketBase's),
//! keyed by collection name, each entry `{"cacheControl": "..."}`, the `Cache-Control`
//! of that collection's view and list answers. Without an entry an answer carries
//! `private, no-cache`: a client may keep it but asks again each time (a 304 when its
//! `ETag` still matches), which is what clients did before.
//!
//! Only private caching is accepted: an answer depends on who asks (rules, expand
//! targets' rules, email visibility, rules reading `@request.headers`), so a shared
//! cache (`public`, `s-maxage`) could hand one client's answer to another. A value
//! must say `private` or `no-store`, and every directive must act on a private cache.
//!
//! The entries are resolved to collection ids when the settings are saved, at start
//! and after every collection change made here (a rename moves its entry, a deleted
//! collection's entry goes), so a record path naming the collection by id or by name
//! finds the same entry.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use basalt_schema::Schema;
use serde_json::{Map, Value, json};

use crate::Services;
use crate::error::{ServiceError, ServiceResult};

/// The section's key in the settings document.
pub const SECTION: &str = "recordCaching";

/// What `Cache-Control` says when a collection has no entry.
pub const DEFAULT_CACHE_CONTROL: &str = "private, no-cache";

/// The largest `max-age` (and `stale-*`) accepted: a year, as RFC 9111 suggests for
/// "never expires".
const MAX_SECONDS: u64 = 31_536_000;

/// One collection's caching, as its answers carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePolicy {
    /// The normalised `Cache-Control` value (lowercase directives, `", "` between).
    pub cache_control: Arc<str>,
    /// Whether a client may reuse an answer without asking (a `max-age` without
    /// `no-cache`): then it must not reuse it for another `Authorization`.
    pub reusable: bool,
}

/// The resolved section: the policy of each collection id that has an entry, cheap to
/// read per request; and the seed answers' fingerprints are hashed with.
#[derive(Default)]
pub struct RecordCaching {
    by_id: ArcSwap<HashMap<String, CachePolicy>>,
    fingerprint_seed: u64,
}

impl RecordCaching {
    /// `fingerprint_seed` seeds the hash that tags an answer's bytes: derived from the
    /// server secret, so tags cannot be predicted and nodes sharing the secret tag alike.
    pub fn new(fingerprint_seed: u64) -> Self {
        Self {
            by_id: ArcSwap::default(),
            fingerprint_seed,
        }
    }

    /// The seed answers' fingerprints are hashed with.
    pub fn fingerprint_seed(&self) -> u64 {
        self.fingerprint_seed
    }

    /// The policy of the collection with id `collection_id`, `None` for the default.
    pub fn policy(&self, collection_id: &str) -> Option<CachePolicy> {
        let map = self.by_id.load();
        if map.is_empty() {
            return None;
        }
        map.get(collection_id).cloned()
    }

    fn set(&self, by_id: HashMap<String, CachePolicy>) {
        self.by_id.store(Arc::new(by_id));
    }
}

/// The error of a settings update that names the bad entry.
fn invalid(path: &[&str], message: impl Into<String>) -> ServiceError {
    let leaf = json!({"code": "validation_invalid_value", "message": message.into()});
    let data = path.iter().rev().fold(leaf, |d, k| json!({*k: d}));
    ServiceError::bad_request("An error occurred while validating the submitted data.")
        .with_data(json!({SECTION: data}))
}

/// Checks the section of a merged settings document against `schema` and tidies it in
/// place (entries and values set to `null` are removed, values normalised). A 400
/// names the first bad collection, key or directive.
pub(crate) fn check(settings: &mut Value, schema: &Schema) -> ServiceResult<()> {
    let Some(obj) = settings.as_object_mut() else {
        return Ok(());
    };
    match obj.get_mut(SECTION) {
        None => return Ok(()),
        Some(Value::Null) => {
            obj.remove(SECTION);
            return Ok(());
        }
        Some(Value::Object(section)) => check_section(section, schema)?,
        Some(_) => {
            return Err(ServiceError::bad_request(
                "An error occurred while validating the submitted data.",
            )
            .with_data(json!({SECTION: {
                "code": "validation_invalid_value",
                "message": "Must be an object keyed by collection name.",
            }})));
        }
    }
    Ok(())
}

fn check_section(section: &mut Map<String, Value>, schema: &Schema) -> ServiceResult<()> {
    section.retain(|_, v| !v.is_null());
    for (name, entry) in section.iter_mut() {
        if schema.by_name(name).is_none_or(|c| c.name != *name) {
            return Err(invalid(&[name], format!("Unknown collection {name:?}.")));
        }
        let Value::Object(entry) = entry else {
            return Err(invalid(&[name], "Must be an object."));
        };
        entry.retain(|_, v| !v.is_null());
        for (key, value) in entry.iter_mut() {
            match key.as_str() {
                "cacheControl" => {
                    let Some(text) = value.as_str() else {
                        return Err(invalid(&[name, key], "Must be a string."));
                    };
                    let policy =
                        parse_cache_control(text).map_err(|why| invalid(&[name, key], why))?;
                    *value = Value::String(policy.cache_control.to_string());
                }
                _ => return Err(invalid(&[name, key], format!("Unknown option {key:?}."))),
            }
        }
    }
    section.retain(|_, v| v.as_object().is_some_and(|o| !o.is_empty()));
    Ok(())
}

/// The policies a checked settings document names, by collection id. Entries whose
/// collection is gone (a change made by another node) are skipped with a warning.
fn resolve(settings: &Value, schema: &Schema) -> HashMap<String, CachePolicy> {
    let mut by_id = HashMap::new();
    let Some(section) = settings[SECTION].as_object() else {
        return by_id;
    };
    for (name, entry) in section {
        let Some(text) = entry["cacheControl"].as_str() else {
            continue;
        };
        match (schema.by_name(name), parse_cache_control(text)) {
            (Some(c), Ok(policy)) => {
                by_id.insert(c.id.clone(), policy);
            }
            (None, _) => tracing::warn!(collection = %name, "recordCaching names no collection"),
            (_, Err(why)) => {
                tracing::warn!(collection = %name, %why, "recordCaching entry ignored");
            }
        }
    }
    by_id
}

/// Makes the saved settings' section the one answers follow.
pub(crate) fn use_settings(svc: &Services, settings: &Value) {
    svc.record_caching
        .set(resolve(settings, &svc.store.schema()));
}

/// Loads the saved settings' section: at start.
pub async fn apply_settings(svc: &Services) -> ServiceResult<()> {
    let settings = crate::settings::load(svc).await?;
    use_settings(svc, &settings);
    Ok(())
}

/// After a collection change: entries follow their collection by id from `before` to
/// the current schema (a rename moves the entry, a deletion removes it) and the saved
/// section is rewritten when that changed it.
pub(crate) async fn follow_collections(svc: &Services, before: &Schema) {
    if let Err(e) = follow(svc, before).await {
        tracing::error!(error = %e.message, "recordCaching could not follow a collection change");
    }
}

async fn follow(svc: &Services, before: &Schema) -> ServiceResult<()> {
    let mut settings = crate::settings::load(svc).await?;
    let Some(section) = settings[SECTION].as_object() else {
        return Ok(());
    };
    let now = svc.store.schema();
    let mut moved = Map::new();
    for (name, entry) in section {
        let id = before.by_name(name).map(|c| c.id.clone());
        if let Some(c) = id.as_deref().and_then(|id| now.by_id(id)) {
            moved.insert(c.name.clone(), entry.clone());
        }
    }
    if moved != *section {
        settings[SECTION] = Value::Object(moved);
        svc.store
            .set_param("settings", settings.clone())
            .await
            .map_err(|e| ServiceError::from_store(e, "Failed to save settings."))?;
    }
    use_settings(svc, &settings);
    Ok(())
}

/// Parses and normalises a `Cache-Control` value for record answers, or says what is
/// wrong with it.
pub fn parse_cache_control(text: &str) -> Result<CachePolicy, String> {
    let mut seen: Vec<(String, Option<u64>)> = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err("Empty directive.".into());
        }
        let (name, arg) = match part.split_once('=') {
            Some((n, a)) => (n.trim().to_ascii_lowercase(), Some(a.trim())),
            None => (part.to_ascii_lowercase(), None),
        };
        let seconds = match (name.as_str(), arg) {
            (
                "private" | "no-cache" | "no-store" | "must-revalidate" | "no-transform"
                | "immutable",
                None,
            ) => None,
            ("max-age" | "stale-while-revalidate" | "stale-if-error", Some(a)) => {
                match a.parse::<u64>() {
                    Ok(n) if n <= MAX_SECONDS && a.bytes().all(|b| b.is_ascii_digit()) => Some(n),
                    _ => {
                        return Err(format!(
                            "{name} takes a number of seconds up to {MAX_SECONDS}."
                        ));
                    }
                }
            }
            ("public" | "s-maxage" | "proxy-revalidate", _) => {
                return Err(format!(
                    "{name} is for shared caches, which could serve one client's answer to another; only private caching is supported."
                ));
            }
            (
                "private" | "no-cache" | "no-store" | "must-revalidate" | "no-transform"
                | "immutable",
                Some(_),
            ) => return Err(format!("{name} takes no value.")),
            ("max-age" | "stale-while-revalidate" | "stale-if-error", None) => {
                return Err(format!("{name} needs a number of seconds."));
            }
            _ => return Err(format!("Unsupported directive {name:?}.")),
        };
        if seen.iter().any(|(n, _)| *n == name) {
            return Err(format!("{name} is given twice."));
        }
        seen.push((name, seconds));
    }
    let has = |n: &str| seen.iter().any(|(s, _)| s == n);
    if !has("private") && !has("no-store") {
        return Err("Must include private (or no-store): answers depend on who asks.".into());
    }
    if has("no-store") && seen.iter().any(|(n, _)| n != "no-store" && n != "private") {
        return Err("no-store keeps nothing, so nothing else applies beside it.".into());
    }
    if has("no-cache") && seen.iter().any(|(n, _)| n != "no-cache" && n != "private") {
        return Err(
            "no-cache asks every time, so freshness directives do nothing beside it.".into(),
        );
    }
    let reusable = seen
        .iter()
        .any(|(n, s)| n == "max-age" && s.is_some_and(|s| s > 0));
    let cache_control = seen
        .iter()
        .map(|(n, s)| match s {
            Some(s) => format!("{n}={s}"),
            None => n.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    Ok(CachePolicy {
        cache_control: cache_control.into(),
        reusable,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_cache_control;

    #[test]
    fn accepts_private_caching_and_normalises_it() {
        let cases = [
            ("private, no-cache", "private, no-cache", false),
            ("Private,  MAX-AGE=60", "private, max-age=60", true),
            (
                "private, max-age=0, must-revalidate",
                "private, max-age=0, must-revalidate",
                false,
            ),
            ("no-store", "no-store", false),
            ("private, no-store", "private, no-store", false),
            (
                "private, max-age=30, stale-while-revalidate=60, immutable",
                "private, max-age=30, stale-while-revalidate=60, immutable",
                true,
            ),
        ];
        for (input, want, reusable) in cases {
            let p = parse_cache_control(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(&*p.cache_control, want, "{input}");
            assert_eq!(p.reusable, reusable, "{input}");
        }
    }

    #[test]
    fn refuses_shared_caching_and_directives_that_do_nothing() {
        for input in [
            "",
            "public, max-age=60",
            "private, s-maxage=60",
            "max-age=60",
            "no-cache",
            "private, max-age=-1",
            "private, max-age=1e3",
            "private, max-age=99999999999",
            "private, max-age",
            "private=x",
            "private, private",
            "private, no-cache, max-age=5",
            "no-store, max-age=5",
            "private, foo",
            "private,,no-cache",
            "private, max-age=\"5\"",
        ] {
            assert!(parse_cache_control(input).is_err(), "{input:?} accepted");
        }
    }
}
