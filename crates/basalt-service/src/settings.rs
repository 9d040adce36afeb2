//! The application settings document (superusers only), stored as a param; absent keys
//! take PocketBase's defaults. One extension of ours: `smtp.requireTLS`
//! (a boolean, absent unless set, so the document stays PocketBase's) refuses to deliver
//! mail without TLS. `backups.cron` and `backups.cronMaxKeep` drive the backup schedule
//! (`crate::backups`), so they are checked as PocketBase checks them. `recordCaching`
//! (absent unless set) is the `Cache-Control` of record answers (`crate::record_caching`).

use serde_json::{Value, json};

use crate::error::{ServiceError, ServiceResult};
use crate::{Caller, Services};

/// PocketBase's default settings document (secrets omitted, as it omits them too).
pub(crate) fn defaults() -> Value {
    json!({
        "meta": {"appName": "Acme", "appURL": "http://localhost:8090", "senderName": "Support",
                 "senderAddress": "support@example.com", "hideControls": false, "accentColor": "#1055c9"},
        "batch": {"enabled": false, "maxRequests": 50, "timeout": 3, "maxBodySize": 0},
        "rateLimits": {"enabled": false, "excludedIPs": [], "rules": [
            {"label": "*:auth", "audience": "", "duration": 3, "maxRequests": 2},
            {"label": "*:create", "audience": "", "duration": 5, "maxRequests": 20},
            {"label": "/api/batch", "audience": "", "duration": 1, "maxRequests": 3},
            {"label": "/api/", "audience": "", "duration": 10, "maxRequests": 300}
        ]},
        "trustedProxy": {"headers": [], "useLeftmostIP": false},
        "logs": {"maxDays": 5, "minLevel": 0, "logIP": true, "logAuthId": false, "maxDataSize": 0},
        "smtp": {"enabled": false, "host": "smtp.example.com", "port": 587, "username": "", "authMethod": "", "tls": false, "localName": ""},
        "s3": {"enabled": false, "bucket": "", "region": "", "endpoint": "", "accessKey": "", "forcePathStyle": false},
        "backups": {"cron": "", "cronMaxKeep": 3, "s3": {"enabled": false, "bucket": "", "region": "", "endpoint": "", "accessKey": "", "forcePathStyle": false}},
        "superuserIPs": []
    })
}

/// Deep-merges `patch` into `base` (objects merge, everything else replaces).
pub(crate) fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

/// The whole document, secrets included: for the server's own use.
pub async fn load(svc: &Services) -> ServiceResult<Value> {
    let mut s = defaults();
    if let Some(saved) = svc
        .store
        .get_param("settings")
        .await
        .map_err(|e| ServiceError::from_store(e, "Failed to load settings."))?
    {
        merge(&mut s, saved);
    }
    Ok(s)
}

/// The settings as clients see them: stored secrets (SMTP and S3 passwords) removed,
/// as PocketBase omits them.
fn redacted(mut s: Value) -> Value {
    if let Some(smtp) = s["smtp"].as_object_mut() {
        smtp.remove("password");
    }
    for path in [&["s3"][..], &["backups", "s3"][..]] {
        let mut v = &mut s;
        for k in path {
            v = &mut v[*k];
        }
        if let Some(o) = v.as_object_mut() {
            o.remove("secret");
        }
    }
    s
}

/// `backups.cron` must parse (PocketBase's five fields or a macro) and, when set,
/// `backups.cronMaxKeep` must be at least 1: the schedule acts on both.
/// Where backups are not made (`Backups::refused`), a schedule or a bucket for them is
/// refused too, naming the option, rather than saved and never acted on.
fn check_backups(svc: &Services, b: &Value) -> ServiceResult<()> {
    let fail = |field: &str, code: &str, message: String| {
        Err(
            ServiceError::bad_request("An error occurred while saving the new settings.")
                .with_data(json!({"backups": {field: {"code": code, "message": message}}})),
        )
    };
    let cron = match &b["cron"] {
        Value::String(c) => c.as_str(),
        Value::Null => "",
        _ => {
            return fail(
                "cron",
                "validation_invalid_cron",
                "Must be a string.".into(),
            );
        }
    };
    if let Err(refused) = svc.backups.check_supported() {
        let on = |v: &Value| v.as_bool() == Some(true);
        if !cron.is_empty() {
            return fail("cron", "validation_not_supported", refused.message);
        }
        if on(&b["s3"]["enabled"]) {
            return Err(ServiceError::bad_request(SAVE_FAILED).with_data(
                json!({"backups": {"s3": {
                    "enabled": {"code": "validation_not_supported", "message": refused.message}
                }}}),
            ));
        }
    }
    if cron.is_empty() {
        return Ok(());
    }
    if let Err(e) = crate::crons::Schedule::parse(cron) {
        return fail("cron", "validation_invalid_cron", e);
    }
    match b["cronMaxKeep"].as_i64() {
        None | Some(0) => fail(
            "cronMaxKeep",
            "validation_required",
            "Cannot be blank.".into(),
        ),
        Some(n) if n < 1 => fail(
            "cronMaxKeep",
            "validation_min_greater_equal_than_required",
            "Must be no less than 1.".into(),
        ),
        Some(_) => Ok(()),
    }
}

/// The settings as the caller (a superuser) sees them.
pub async fn view(svc: &Services, caller: &Caller) -> ServiceResult<Value> {
    caller.require_superuser()?;
    Ok(redacted(load(svc).await?))
}

/// Merges `patch` into the settings and answers them as [`view`] does.
pub async fn update(svc: &Services, caller: &Caller, patch: Value) -> ServiceResult<Value> {
    caller.require_superuser()?;
    if !patch.is_object() {
        return Err(ServiceError::bad_request(
            "Failed to load the submitted data due to invalid formatting.",
        ));
    }
    let mut s = load(svc).await?;
    merge(&mut s, patch);
    if s["smtp"].get("requireTLS").is_some_and(|v| !v.is_boolean()) {
        return Err(ServiceError::bad_request("An error occurred while validating the submitted data.").with_data(
            json!({"smtp": {"requireTLS": {"code": "validation_invalid_value", "message": "Must be a boolean."}}}),
        ));
    }
    // The record files' section and the backups' one are checked alike; errors nest as
    // the sections do.
    for path in [&["s3"][..], &["backups", "s3"][..]] {
        let section = path.iter().fold(&s, |v, k| &v[*k]);
        let nest = |data: Value| path.iter().rev().fold(data, |d, k| json!({*k: d}));
        if let Some(data) = s3_errors(section) {
            return Err(ServiceError::bad_request(SAVE_FAILED).with_data(nest(data)));
        }
        if let Some(cfg) = crate::files::s3_settings(section)
            && let Err(e) = basalt_files::S3Storage::new(&cfg)
        {
            return Err(ServiceError::bad_request(SAVE_FAILED).with_data(nest(
                json!({"endpoint": {"code": "validation_invalid_value", "message": e.to_string()}}),
            )));
        }
    }
    check_backups(svc, &s["backups"])?;
    check_logs(&s["logs"])?;
    crate::record_caching::check(&mut s, &svc.store.schema())?;
    let batch = &s["batch"];
    if batch["maxRequests"].as_i64().is_some_and(|n| n < 1)
        || batch["timeout"].as_i64().is_some_and(|n| n < 1)
    {
        return Err(ServiceError::bad_request("An error occurred while validating the submitted data.").with_data(
            json!({"batch": {"maxRequests": {"code": "validation_min_greater_equal_than_required", "message": "Must be no less than 1."}}}),
        ));
    }
    svc.store
        .set_param("settings", s.clone())
        .await
        .map_err(|e| ServiceError::from_store(e, "Failed to save settings."))?;
    // New uploads and backups go where the saved settings say from now on.
    crate::files::use_settings(svc, &s)?;
    use_backup_settings(svc, &s)?;
    svc.logs.use_settings(&s);
    crate::record_caching::use_settings(svc, &s);
    Ok(redacted(s))
}

/// Points backups at the storage `settings` name (`backups.s3`).
pub(crate) fn use_backup_settings(svc: &Services, settings: &Value) -> ServiceResult<()> {
    svc.backups.use_settings(settings).map_err(|e| {
        tracing::error!(error = %e, "the backups.s3 settings cannot be used");
        ServiceError::internal()
    })
}

/// The `logs` section: `maxDays`, `minLevel` and `maxDataSize` integers (`maxDays` and
/// `maxDataSize` not negative), `logIP` and `logAuthId` booleans; each is acted on by
/// `crate::logs`.
fn check_logs(logs: &Value) -> ServiceResult<()> {
    let fail = |field: &str, code: &str, message: &str| {
        Err(ServiceError::bad_request(SAVE_FAILED)
            .with_data(json!({"logs": {field: {"code": code, "message": message}}})))
    };
    for field in ["maxDays", "maxDataSize"] {
        match logs[field].as_i64() {
            Some(n) if n >= 0 => {}
            Some(_) => {
                return fail(
                    field,
                    "validation_min_greater_equal_than_required",
                    "Must be no less than 0.",
                );
            }
            None => return fail(field, "validation_invalid_value", "Must be an integer."),
        }
    }
    if logs["minLevel"].as_i64().is_none() {
        return fail(
            "minLevel",
            "validation_invalid_value",
            "Must be an integer.",
        );
    }
    for field in ["logIP", "logAuthId"] {
        if !logs[field].is_boolean() {
            return fail(field, "validation_invalid_value", "Must be a boolean.");
        }
    }
    Ok(())
}

/// PocketBase's answer to settings it refuses.
const SAVE_FAILED: &str = "An error occurred while saving the new settings.";

/// What is wrong with an `s3` section (PocketBase's checks: every connection field is
/// required once it is enabled, the endpoint a URL), as its error `data`; `None` when
/// it can be used.
fn s3_errors(section: &Value) -> Option<Value> {
    let mut errs = serde_json::Map::new();
    for key in ["enabled", "forcePathStyle"] {
        if !section[key].is_boolean() && !section[key].is_null() {
            errs.insert(
                key.into(),
                json!({"code": "validation_invalid_value", "message": "Must be a boolean."}),
            );
        }
    }
    for key in ["bucket", "region", "endpoint", "accessKey", "secret"] {
        if !section[key].is_string() && !section[key].is_null() {
            errs.insert(
                key.into(),
                json!({"code": "validation_invalid_value", "message": "Must be a string."}),
            );
        }
    }
    if section["enabled"] == json!(true) {
        for key in ["accessKey", "bucket", "endpoint", "region", "secret"] {
            if section[key].as_str().is_none_or(|v| v.trim().is_empty()) {
                errs.entry(key).or_insert(
                    json!({"code": "validation_required", "message": "Cannot be blank."}),
                );
            }
        }
        if let Some(endpoint) = section["endpoint"].as_str().filter(|e| !e.is_empty())
            && !is_http_url(endpoint)
        {
            // PocketBase takes any URL; only http(s) reaches an S3 server, so only that is
            // accepted.
            errs.insert(
                "endpoint".into(),
                json!({"code": "validation_is_url", "message": "Must be a valid URL."}),
            );
        }
    }
    (!errs.is_empty()).then_some(Value::Object(errs))
}

/// `http://host[:port][/...]` or `https://...` with a host and nothing that needs escaping.
fn is_http_url(s: &str) -> bool {
    let Some(rest) = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
    else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or_default();
    !host.is_empty()
        && !host.starts_with(':')
        && s.bytes().all(|b| b.is_ascii_graphic())
        && !host.contains(['@', '?', '#'])
}

/// Which S3 settings `POST /api/settings/test/s3` tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Target {
    /// The record files' (`s3`).
    Storage,
    /// The backups' (`backups.s3`).
    Backups,
}

const TEST_FAILED: &str = "Failed to test the S3 filesystem.";

impl S3Target {
    /// PocketBase's `filesystem` body value; a 400 naming it otherwise.
    pub fn parse(filesystem: Option<&Value>) -> ServiceResult<S3Target> {
        match filesystem.and_then(Value::as_str) {
            Some("storage") => Ok(S3Target::Storage),
            Some("backups") => Ok(S3Target::Backups),
            None | Some("") => Err(ServiceError::bad_request(TEST_FAILED).with_data(json!({
                "filesystem": {"code": "validation_required", "message": "Cannot be blank."}}))),
            Some(_) => Err(ServiceError::bad_request(TEST_FAILED).with_data(json!({
                "filesystem": {"code": "validation_in_invalid", "message": "Must be a valid value."}}))),
        }
    }
}

/// Checks that the saved S3 settings of `target` work: a small object is written to the
/// bucket and deleted again. Failures are a 400 saying why, as PocketBase answers (the
/// caller is a superuser checking their own settings).
pub async fn test_s3(svc: &Services, caller: &Caller, target: S3Target) -> ServiceResult<()> {
    caller.require_superuser()?;
    let s = load(svc).await?;
    let section = match target {
        S3Target::Storage => &s["s3"],
        S3Target::Backups => &s["backups"]["s3"],
    };
    let failed = |why: String| {
        ServiceError::bad_request(format!("{TEST_FAILED} Raw error: \n{why}.")).with_data(json!({}))
    };
    let Some(settings) = crate::files::s3_settings(section) else {
        return Err(failed("S3 storage filesystem is not enabled".into()));
    };
    let storage = basalt_files::S3Storage::new(&settings).map_err(|e| failed(e.to_string()))?;
    let key = basalt_files::ObjectKey::new(format!(
        "basalt_settings_test_{}/test.txt",
        basalt_schema::id::random_id(12)
    ))
    .map_err(|e| failed(e.to_string()))?;
    let mut body: &[u8] = b"test";
    basalt_files::Storage::put(&storage, &key, &mut body, 4)
        .await
        .map_err(|e| failed(format!("failed to upload a test file: {e}")))?;
    basalt_files::Storage::delete(&storage, &key)
        .await
        .map_err(|e| failed(format!("failed to delete a test file: {e}")))?;
    Ok(())
}
