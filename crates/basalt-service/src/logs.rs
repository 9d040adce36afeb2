//! The request logs as PocketBase keeps them (`GET /api/logs`, `/api/logs/{id}`,
//! `/api/logs/stats`, superusers only) and the `logs` settings that govern them:
//! `maxDays` (how long entries are kept; 0 turns request logging off), `minLevel`
//! (entries below it are not stored, and raising it deletes the stored ones below it, as
//! PocketBase does), `logIP` (`remoteIP`/`userIP` kept or left out), `logAuthId` (`authId`
//! kept or left out) and `maxDataSize` (bytes of `data` kept; a larger `data` is replaced
//! by `{"__pb_truncated__":true}`; 0 is no limit).
//!
//! The policy sits in atomics read once per request ([`RequestLogs::policy`]); when logging
//! is off a protocol does nothing more for a request than that one load. Entries go to
//! [`basalt_store::logs::LogStore`]'s queue and never wait for the database.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use basalt_schema::filter::parse_with_params;
use basalt_store::logs::{LogEntry, LogStore, StoredLog};
use chrono::Utc;
use serde_json::{Map, Value};

use crate::error::{ErrorKind, ServiceError, ServiceResult};
use crate::records::{Param, bad_param};
use crate::{Caller, Services};

/// PocketBase's log levels.
pub const LEVEL_INFO: i64 = 0;
pub const LEVEL_ERROR: i64 = 8;

/// The request log and its settings; cheap to clone. Without a [`LogStore`] (some
/// in-process uses) nothing is logged and the API lists nothing.
#[derive(Clone, Default)]
pub struct RequestLogs {
    store: Option<LogStore>,
    policy: Arc<Policy>,
}

#[derive(Default)]
struct Policy {
    enabled: AtomicBool,
    max_days: AtomicI64,
    min_level: AtomicI64,
    log_ip: AtomicBool,
    log_auth_id: AtomicBool,
    max_data_size: AtomicU64,
}

/// What a request's entry keeps, read once per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPolicy {
    pub min_level: i64,
    pub log_ip: bool,
    pub log_auth_id: bool,
    max_data_size: u64,
}

/// One finished request as a protocol saw it; [`RequestLogs::record`] applies the policy.
#[derive(Debug)]
pub struct RequestRecord<'a> {
    pub method: &'a str,
    /// Path and query as the client sent them.
    pub url: &'a str,
    pub status: u16,
    pub exec_time_ms: f64,
    pub remote_ip: &'a str,
    pub user_ip: &'a str,
    pub referer: &'a str,
    pub user_agent: &'a str,
    /// The caller's auth collection name, `""` when anonymous.
    pub auth: &'a str,
    pub auth_id: &'a str,
    /// The error message answered, for 4xx/5xx.
    pub error: Option<&'a str>,
}

/// `data` as PocketBase stores it for a request (keys in its order).
#[derive(serde::Serialize)]
struct RequestData<'a> {
    auth: &'a str,
    #[serde(rename = "authId", skip_serializing_if = "Option::is_none")]
    auth_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(rename = "execTime")]
    exec_time: f64,
    method: &'a str,
    referer: &'a str,
    #[serde(rename = "remoteIP", skip_serializing_if = "Option::is_none")]
    remote_ip: Option<&'a str>,
    status: u16,
    #[serde(rename = "type")]
    kind: &'static str,
    url: &'a str,
    #[serde(rename = "userAgent")]
    user_agent: &'a str,
    #[serde(rename = "userIP", skip_serializing_if = "Option::is_none")]
    user_ip: Option<&'a str>,
}

impl RequestLogs {
    pub fn new(store: Option<LogStore>) -> Self {
        Self {
            store,
            policy: Arc::default(),
        }
    }

    /// The policy when request logging is on (a log store and `maxDays` > 0).
    #[inline]
    pub fn policy(&self) -> Option<LogPolicy> {
        let p = &self.policy;
        if !p.enabled.load(Ordering::Relaxed) {
            return None;
        }
        Some(LogPolicy {
            min_level: p.min_level.load(Ordering::Relaxed),
            log_ip: p.log_ip.load(Ordering::Relaxed),
            log_auth_id: p.log_auth_id.load(Ordering::Relaxed),
            max_data_size: p.max_data_size.load(Ordering::Relaxed),
        })
    }

    /// Entries dropped because the writer's queue was full.
    pub fn dropped(&self) -> u64 {
        self.store.as_ref().map_or(0, LogStore::dropped)
    }

    /// Stores one request's entry (queued; never waits) under `policy`.
    pub fn record(&self, policy: LogPolicy, r: &RequestRecord<'_>) {
        let Some(store) = &self.store else { return };
        let level = if r.status >= 400 {
            LEVEL_ERROR
        } else {
            LEVEL_INFO
        };
        // The level is checked against the setting as it is now, not as the request
        // found it: a request that raised `minLevel` must not add an entry below it after
        // the entries below it were deleted.
        if level
            < policy
                .min_level
                .max(self.policy.min_level.load(Ordering::Relaxed))
        {
            return;
        }
        let data = RequestData {
            auth: r.auth,
            auth_id: policy.log_auth_id.then_some(r.auth_id),
            error: r.error,
            exec_time: r.exec_time_ms,
            method: r.method,
            referer: r.referer,
            remote_ip: policy.log_ip.then_some(r.remote_ip),
            status: r.status,
            kind: "request",
            url: r.url,
            user_agent: r.user_agent,
            user_ip: policy.log_ip.then_some(r.user_ip),
        };
        let mut data = serde_json::to_string(&data).unwrap_or_else(|_| "{}".into());
        if policy.max_data_size > 0 && data.len() as u64 > policy.max_data_size {
            data = r#"{"__pb_truncated__":true}"#.into();
        }
        let mut message = String::with_capacity(r.method.len() + 1 + r.url.len());
        message.push_str(r.method);
        message.push(' ');
        message.push_str(r.url);
        store.push(LogEntry {
            created: Utc::now(),
            level,
            message,
            data,
        });
    }

    /// Follows the `logs` section of `settings`; raising `minLevel` deletes the stored
    /// entries below it (in the background).
    pub fn use_settings(&self, settings: &Value) {
        let logs = &settings["logs"];
        let p = &self.policy;
        let max_days = logs["maxDays"].as_i64().unwrap_or(5);
        let min_level = logs["minLevel"].as_i64().unwrap_or(0);
        let old_min = p.min_level.swap(min_level, Ordering::Relaxed);
        p.max_days.store(max_days, Ordering::Relaxed);
        p.log_ip
            .store(logs["logIP"].as_bool().unwrap_or(true), Ordering::Relaxed);
        p.log_auth_id.store(
            logs["logAuthId"].as_bool().unwrap_or(false),
            Ordering::Relaxed,
        );
        p.max_data_size
            .store(logs["maxDataSize"].as_u64().unwrap_or(0), Ordering::Relaxed);
        p.enabled
            .store(self.store.is_some() && max_days > 0, Ordering::Relaxed);
        if min_level > old_min
            && let Some(store) = self.store.clone()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                if let Err(e) = store.prune(None, Some(min_level)).await {
                    tracing::warn!(error = %e, "deleting log entries below minLevel failed");
                }
            });
        }
    }

    /// `__pbLogsCleanup__`: deletes entries older than `maxDays` days; how many went.
    pub async fn cleanup(&self) -> ServiceResult<u64> {
        let Some(store) = &self.store else {
            return Ok(0);
        };
        let days = self.policy.max_days.load(Ordering::Relaxed).max(0);
        // With logging off (`maxDays` 0) every stored entry is past its time.
        let before = Utc::now() - chrono::Duration::days(days);
        store
            .prune(Some(before), None)
            .await
            .map_err(|e| ServiceError::from_store(e, "Failed to delete old logs."))
    }

    /// Waits until every entry queued so far is stored (tests, shutdown).
    pub async fn flush(&self) {
        if let Some(store) = &self.store {
            store.flush().await;
        }
    }
}

/// Follows the saved settings' `logs` section (at start; `settings::update` follows
/// each change).
pub async fn apply_settings(svc: &Services) -> ServiceResult<()> {
    let settings = crate::settings::load(svc).await?;
    svc.logs.use_settings(&settings);
    Ok(())
}

/// What `GET /api/logs` asks for.
#[derive(Debug)]
pub struct LogListInput {
    pub page: Param<u64>,
    /// 0 means the default (30); larger than 1000 is capped (PocketBase's bounds).
    pub per_page: Param<u64>,
    pub skip_total: bool,
    pub filter: Option<String>,
    pub sort: Option<String>,
}

/// A page of log entries.
#[derive(Debug)]
pub struct LogListPage {
    pub page: u64,
    pub per_page: u64,
    pub total_items: Option<u64>,
    pub items: Vec<StoredLog>,
}

fn parse_filter(filter: Option<&str>) -> ServiceResult<Option<basalt_schema::filter::Expr>> {
    match filter.filter(|f| !f.trim().is_empty()) {
        Some(f) => parse_with_params(f, &Map::new())
            .map(Some)
            .map_err(|_| bad_param("filter")),
        None => Ok(None),
    }
}

fn store(svc: &Services) -> Option<&LogStore> {
    svc.logs.store.as_ref()
}

/// `GET /api/logs` (superusers only).
pub async fn list(
    svc: &Services,
    caller: &Caller,
    input: LogListInput,
) -> ServiceResult<LogListPage> {
    caller.require_superuser()?;
    let page = input.page.map_err(|p| bad_param(p.0))?.max(1);
    let per_page = match input.per_page.map_err(|p| bad_param(p.0))? {
        0 => 30,
        n => n.min(1000),
    };
    let filter = parse_filter(input.filter.as_deref())?;
    let sort = crate::records::sort_keys(input.sort.as_deref())?;
    let Some(store) = store(svc) else {
        return Ok(LogListPage {
            page,
            per_page,
            total_items: (!input.skip_total).then_some(0),
            items: vec![],
        });
    };
    let found = store
        .list(filter, sort, page, per_page, input.skip_total)
        .await
        .map_err(|e| ServiceError::from_store(e, "Failed to list logs."))?;
    Ok(LogListPage {
        page,
        per_page,
        total_items: found.total,
        items: found.items,
    })
}

/// `GET /api/logs/{id}` (superusers only); 404 for an id no entry has.
pub async fn view(svc: &Services, caller: &Caller, id: &str) -> ServiceResult<StoredLog> {
    caller.require_superuser()?;
    let not_found =
        || ServiceError::new(ErrorKind::NotFound, "The requested resource wasn't found.");
    let Some(store) = store(svc) else {
        return Err(not_found());
    };
    store
        .view(id.to_string())
        .await
        .map_err(|e| ServiceError::from_store(e, "Failed to view log."))?
        .ok_or_else(not_found)
}

/// `GET /api/logs/stats` (superusers only): `(hour, total)` of the entries `filter`
/// matches, oldest hour first.
pub async fn stats(
    svc: &Services,
    caller: &Caller,
    filter: Option<&str>,
) -> ServiceResult<Vec<(String, u64)>> {
    caller.require_superuser()?;
    // PocketBase names the cause here, unlike on the list.
    let invalid = || ServiceError::bad_request("Invalid filter format.");
    let filter = parse_filter(filter).map_err(|_| invalid())?;
    let Some(store) = store(svc) else {
        return Ok(vec![]);
    };
    store.hourly_stats(filter).await.map_err(|e| match e {
        basalt_store::StoreError::InvalidQuery(_) => invalid(),
        e => ServiceError::from_store(e, "Failed to load logs stats."),
    })
}
