//! The application settings document (superusers only), stored as a param; absent keys
//! take PocketBase's defaults. One extension of ours: `smtp.requireTLS`
//! (a boolean, absent unless set, so the document stays PocketBase's) refuses to deliver
//! mail without TLS. `backups.cron` and `backups.cronMaxKeep` drive the backup schedule
//! (`crate::backups`), so they are checked as PocketBase checks them.

use serde_json::{Value, json};

use crate::error::{ServiceError, ServiceResult};
use crate::{Caller, Services};

/// PocketBase's default settings document (secrets omitted, as it omits them too).
fn defaults() -> Value {
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
fn merge(base: &mut Value, patch: Value) {
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
fn check_backups(b: &Value) -> ServiceResult<()> {
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
    if cron.is_empty() {
        return Ok(());
    }
    if let Err(e) = crate::backups::cron::Schedule::parse(cron) {
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
    // Accept only what we do: file storage and backups on S3 are not wired yet.
    for (path, doc) in [("s3", &s["s3"]), ("backups.s3", &s["backups"]["s3"])] {
        if doc["enabled"] == json!(true) {
            let leaf = json!({"enabled": {"code": "validation_not_supported",
                "message": format!("{path}.enabled is not supported yet: files are stored on local disk.")}});
            let data = match path {
                "s3" => json!({"s3": leaf}),
                _ => json!({"backups": {"s3": leaf}}),
            };
            return Err(ServiceError::bad_request(
                "An error occurred while validating the submitted data.",
            )
            .with_data(data));
        }
    }
    check_backups(&s["backups"])?;
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
    Ok(redacted(s))
}
