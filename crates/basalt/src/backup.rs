//! `basalt backup create [NAME]`, `basalt backup restore KEY` and `basalt files sweep`:
//! the data dir's backups and orphaned files, with no server running on it (a running
//! server does the same through `/api/backups`, its schedule and its hourly sweep).

use std::time::Duration;

use anyhow::Context;
use basalt_service::backups::{Backups, restore::Pending};
use clap::Subcommand;

use crate::config::Config;

#[derive(Subcommand)]
pub enum BackupAction {
    /// Makes a backup in `<dir>/backups/`, or in the `backups.s3` bucket when the
    /// settings enable it (default name: PocketBase's `pb_backup_{app}_{time}.zip`).
    Create { name: Option<String> },
    /// Replaces the data (database and files) with backup KEY of `<dir>/backups/` (or of
    /// the `backups.s3` bucket when the settings enable it), whole or not at all.
    Restore { key: String },
}

#[derive(Subcommand)]
pub enum FilesAction {
    /// Lists stored files that no record names and removes those older than the grace
    /// period (at most 1000 per run).
    Sweep {
        /// Only report.
        #[arg(long)]
        dry_run: bool,
        /// Files younger than this many seconds are left alone (uploads whose write may
        /// still be in flight).
        #[arg(long, default_value_t = 3600)]
        grace: u64,
    },
}

fn refused(e: basalt_service::ServiceError) -> anyhow::Error {
    let detail = if e.data.as_object().is_some_and(|d| !d.is_empty()) {
        format!(" {}", e.data)
    } else {
        String::new()
    };
    anyhow::anyhow!("{}{detail}", e.message)
}

pub async fn run(cfg: &Config, action: BackupAction) -> anyhow::Result<()> {
    if cfg.database_url.is_some() {
        anyhow::bail!("{}", crate::serve::PG_BACKUPS_REFUSED);
    }
    let backups = Backups::new(&cfg.dir);
    match action {
        BackupAction::Create { name } => {
            // A server deletes files after commits; only its own backups hold that back.
            let _lock = crate::data_lock::exclusive(
                &cfg.dir,
                "make the backup through the API (POST /api/backups) instead",
            )?;
            // The database must exist and be migrated before it is copied.
            let settings = use_settings(cfg, &backups).await?;
            let app = settings["meta"]["appName"]
                .as_str()
                .unwrap_or("Acme")
                .to_string();
            let name =
                name.unwrap_or_else(|| basalt_service::backups::default_name("pb_backup_", &app));
            basalt_service::backups::check_name(&name).map_err(refused)?;
            let info = backups.create_now(&name, None).await.map_err(refused)?;
            let place = if backups.on_s3() {
                "the backups.s3 bucket".to_string()
            } else {
                backups.dir().display().to_string()
            };
            println!(
                "backup {} written ({} bytes) in {place}",
                info.key, info.size
            );
        }
        BackupAction::Restore { key } => {
            let _lock = crate::data_lock::exclusive(
                &cfg.dir,
                "restore through the API (POST /api/backups/{key}/restore) or stop it first",
            )?;
            use_settings(cfg, &backups).await?;
            backups.stage_restore(&key).await.map_err(refused)?;
            let dir = cfg.dir.clone();
            let done = tokio::task::spawn_blocking(move || {
                basalt_service::backups::restore::complete_pending(&dir)
            })
            .await?
            .context("completing the restore")?;
            if done != Pending::Completed {
                anyhow::bail!("the restore did not complete ({done:?})");
            }
            println!("backup {key} restored into {}", cfg.dir.display());
        }
    }
    Ok(())
}

/// Reads the saved settings (the store closed again) and points `backups` where their
/// `backups.s3` section says, as a server would.
async fn use_settings(cfg: &Config, backups: &Backups) -> anyhow::Result<serde_json::Value> {
    let store = crate::serve::open_store(cfg).await?;
    let settings = store.get_param("settings").await;
    store.close().await;
    let settings = settings
        .context("reading the settings")?
        .unwrap_or_default();
    backups
        .use_settings(&settings)
        .context("the backups.s3 settings cannot be used")?;
    Ok(settings)
}

pub async fn files(cfg: &Config, action: FilesAction) -> anyhow::Result<()> {
    let FilesAction::Sweep { dry_run, grace } = action;
    let _lock = if dry_run {
        None
    } else {
        Some(crate::data_lock::exclusive(
            &cfg.dir,
            "it sweeps by itself every hour (use --dry-run to only report)",
        )?)
    };
    let store = crate::serve::open_store(cfg).await?;
    let files = crate::serve::files(cfg)?;
    let opts = basalt_service::files::sweep::SweepOptions {
        dry_run,
        grace: Duration::from_secs(grace),
        ..Default::default()
    };
    let report = basalt_service::files::sweep::sweep(&store, &files, opts).await;
    store.close().await;
    let report = report?;
    for key in &report.orphans {
        println!("{} {key}", if dry_run { "orphan" } else { "removed" });
    }
    println!(
        "examined {}, orphans {}, removed {}, younger than the grace period {}, left for the next run {}",
        report.examined,
        report.orphans.len(),
        report.removed,
        report.young,
        report.deferred
    );
    Ok(())
}
