//! `backups.cron` and `backups.cronMaxKeep`: the `__pbAutoBackup__` cron job makes a
//! backup named `@auto_pb_backup_{app}_{time}.zip`, then deletes the oldest scheduled
//! backups beyond `cronMaxKeep` (backups made by hand or uploaded are never pruned), as
//! PocketBase does. When it runs is the cron schedule's business (`crate::crons`).

use super::{AUTO_PREFIX, default_name};
use crate::Services;

/// What one run of the scheduled backup did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AutoBackup {
    /// The backup made, unless making it failed.
    pub created: Option<String>,
    /// Scheduled backups deleted beyond `cronMaxKeep`.
    pub pruned: Vec<String>,
}

/// Makes the scheduled backup and prunes the scheduled ones beyond `cronMaxKeep`.
pub async fn auto_backup(svc: &Services) -> AutoBackup {
    let mut out = AutoBackup::default();
    let Ok(settings) = crate::settings::load(svc).await else {
        return out;
    };
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
