//! `backups.cron` and `backups.cronMaxKeep`: each minute the settings are read; when the
//! minute is due a backup named `@auto_pb_backup_{app}_{time}.zip` is made, then the
//! oldest scheduled backups beyond `cronMaxKeep` are deleted (backups made by hand or
//! uploaded are never pruned), as PocketBase does.

use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};

use super::cron::Schedule;
use super::{AUTO_PREFIX, default_name};
use crate::Services;

/// Runs the schedule until the task is dropped.
pub async fn run_schedule(svc: Services) {
    loop {
        let now = Utc::now();
        // Wake a second into the next minute, so the due minute is the one we are in.
        let wait = 61 - u64::from(now.second()).min(60);
        tokio::time::sleep(Duration::from_secs(wait)).await;
        tick(&svc, Utc::now()).await;
    }
}

/// What one minute of the schedule did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tick {
    /// The backup made, if the minute was due.
    pub created: Option<String>,
    /// Scheduled backups deleted beyond `cronMaxKeep`.
    pub pruned: Vec<String>,
}

/// Runs the schedule's work for the minute of `now`.
pub async fn tick(svc: &Services, now: DateTime<Utc>) -> Tick {
    let mut out = Tick::default();
    let Ok(settings) = crate::settings::load(svc).await else {
        return out;
    };
    let expr = settings["backups"]["cron"].as_str().unwrap_or_default();
    if expr.is_empty() {
        return out;
    }
    let schedule = match Schedule::parse(expr) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(cron = expr, error = %e, "backups.cron does not parse: no backup");
            return out;
        }
    };
    if !schedule.is_due(now) {
        return out;
    }
    let app = settings["meta"]["appName"].as_str().unwrap_or_default();
    let name = default_name(AUTO_PREFIX, app);
    match svc
        .backups
        .create_now(&name, Some(&svc.files.deletions))
        .await
    {
        Ok(info) => {
            tracing::info!(backup = %info.key, size = info.size, "scheduled backup made");
            out.created = Some(info.key);
        }
        Err(e) => {
            tracing::warn!(backup = %name, error = %e.message, "scheduled backup failed");
            return out;
        }
    }
    let keep = settings["backups"]["cronMaxKeep"]
        .as_u64()
        .unwrap_or(3)
        .max(1) as usize;
    let Ok(all) = svc.backups.list().await else {
        return out;
    };
    let mut auto: Vec<_> = all
        .into_iter()
        .filter(|b| b.key.starts_with(AUTO_PREFIX))
        .collect();
    // Newest first; the time in the name breaks ties of equal modification times.
    auto.sort_by(|a, b| b.modified.cmp(&a.modified).then(b.key.cmp(&a.key)));
    for old in auto.into_iter().skip(keep) {
        match svc.backups.remove(&old.key).await {
            Ok(true) => out.pruned.push(old.key),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(backup = %old.key, error = %e.message, "pruning a backup failed")
            }
        }
    }
    out
}
