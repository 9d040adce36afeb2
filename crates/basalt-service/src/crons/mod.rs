//! Cron jobs as PocketBase has them (`GET /api/crons`, `POST /api/crons/{id}`): the
//! built-in maintenance jobs, each with a five-field expression ([`Schedule`], UTC), run
//! by [`run_schedule`] when their minute is due or at once by a superuser.
//!
//! The jobs, with PocketBase's ids where PocketBase has the job:
//! - `__pbDBOptimize__` (`0 0 * * *`): the planner's statistics ([`Store::optimize`]).
//! - `__pbMFACleanup__` and `__pbOTPCleanup__` (`0 * * * *`): `_mfas` / `_otps` entries
//!   older than their auth collection's `mfa.duration` / `otp.duration` are deleted.
//! - `__pbAutoBackup__` (the `backups.cron` setting, listed only while it is set): the
//!   scheduled backup and its `cronMaxKeep` pruning.
//! - `__pbLogsCleanup__` (`0 */6 * * *`): request log entries older than the `logs.maxDays`
//!   setting are deleted ([`crate::logs::RequestLogs::cleanup`]).
//! - `__basaltFilesSweep__` (`0 * * * *`, and once at start): stored files no record
//!   names are removed ([`crate::files::sweep`]).
//!
//! A job never overlaps itself: a run asked for while the same job
//! runs is skipped (and logged). A run asked for through the API starts in the background
//! and the request answers 204 at once, as PocketBase does.
//!
//! [`Store::optimize`]: basalt_store::Store::optimize

mod schedule;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use basalt_schema::collection::AuthOptions;
use chrono::{DateTime, Timelike, Utc};

pub use schedule::Schedule;

use crate::error::{ErrorKind, ServiceError, ServiceResult};
use crate::{Caller, Services};

/// One job as the crons API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronJob {
    pub id: &'static str,
    pub expression: String,
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    DbOptimize,
    MfaCleanup,
    OtpCleanup,
    FilesSweep,
    LogsCleanup,
    AutoBackup,
}

/// The jobs that are always there, in the order the API lists them.
const BUILTIN: [(&str, &str, Task); 5] = [
    ("__pbDBOptimize__", "0 0 * * *", Task::DbOptimize),
    ("__pbMFACleanup__", "0 * * * *", Task::MfaCleanup),
    ("__pbOTPCleanup__", "0 * * * *", Task::OtpCleanup),
    ("__pbLogsCleanup__", "0 */6 * * *", Task::LogsCleanup),
    ("__basaltFilesSweep__", "0 * * * *", Task::FilesSweep),
];

const AUTO_BACKUP: &str = "__pbAutoBackup__";

/// The ids of the jobs running now.
type RunningSet = Arc<Mutex<HashSet<&'static str>>>;

/// The jobs running now; cheap to clone (one set shared by the clones).
#[derive(Debug, Clone, Default)]
pub struct Crons {
    running: RunningSet,
}

/// Every job with its expression and what it does: the built-ins, then the scheduled
/// backup while `backups.cron` is set.
async fn jobs(svc: &Services) -> ServiceResult<Vec<(CronJob, Task)>> {
    let mut out: Vec<(CronJob, Task)> = BUILTIN
        .iter()
        .map(|&(id, expr, task)| {
            let job = CronJob {
                id,
                expression: expr.to_string(),
            };
            (job, task)
        })
        .collect();
    let settings = crate::settings::load(svc).await?;
    let backup = settings["backups"]["cron"].as_str().unwrap_or_default();
    if !backup.is_empty() {
        let job = CronJob {
            id: AUTO_BACKUP,
            expression: backup.to_string(),
        };
        out.push((job, Task::AutoBackup));
    }
    Ok(out)
}

/// `GET /api/crons`: every job (superusers only).
pub async fn list(svc: &Services, caller: &Caller) -> ServiceResult<Vec<CronJob>> {
    caller.require_superuser()?;
    Ok(jobs(svc).await?.into_iter().map(|(job, _)| job).collect())
}

/// `POST /api/crons/{id}`: starts job `id` in the background (superusers only); 404 for
/// an id no job has.
pub async fn run(svc: &Services, caller: &Caller, id: &str) -> ServiceResult<()> {
    caller.require_superuser()?;
    let (job, task) = jobs(svc)
        .await?
        .into_iter()
        .find(|(job, _)| job.id == id)
        .ok_or_else(|| ServiceError::new(ErrorKind::NotFound, "Missing or invalid cron job."))?;
    start(svc, job.id, task);
    Ok(())
}

/// Runs the jobs whose minute is due, every minute, until the task is dropped; the files
/// sweep also runs once at start.
pub async fn run_schedule(svc: Services) {
    start(&svc, "__basaltFilesSweep__", Task::FilesSweep);
    loop {
        let now = Utc::now();
        // Wake a second into the next minute, so the due minute is the one we are in.
        let wait = 61 - u64::from(now.second()).min(60);
        tokio::time::sleep(Duration::from_secs(wait)).await;
        tick(&svc, Utc::now()).await;
    }
}

/// Starts every job due in the minute of `now`.
async fn tick(svc: &Services, now: DateTime<Utc>) {
    let Ok(all) = jobs(svc).await else {
        return;
    };
    for (job, task) in all {
        match Schedule::parse(&job.expression) {
            Ok(s) if s.is_due(now) => start(svc, job.id, task),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(job = job.id, cron = %job.expression, error = %e, "cron expression does not parse")
            }
        }
    }
}

/// Runs `task` as job `id` in the background unless that job is running already.
fn start(svc: &Services, id: &'static str, task: Task) {
    let running = svc.crons.running.clone();
    if !lock(&running).insert(id) {
        tracing::info!(job = id, "cron job still running: this run is skipped");
        return;
    }
    let svc = svc.clone();
    tokio::spawn(async move {
        // Cleared however the task ends (a panic included), so the job can run again.
        let _running = Running(running, id);
        tracing::debug!(job = id, "cron job started");
        perform(&svc, id, task).await;
    });
}

/// Marks a job no longer running when dropped.
struct Running(RunningSet, &'static str);

impl Drop for Running {
    fn drop(&mut self) {
        lock(&self.0).remove(self.1);
    }
}

fn lock(m: &RunningSet) -> std::sync::MutexGuard<'_, HashSet<&'static str>> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn perform(svc: &Services, id: &'static str, task: Task) {
    match task {
        Task::DbOptimize => match svc.store.optimize().await {
            Ok(()) => tracing::info!(job = id, "database statistics refreshed"),
            Err(e) => tracing::warn!(job = id, error = %e, "optimizing the database failed"),
        },
        Task::MfaCleanup | Task::OtpCleanup => {
            let (sys, max_age): (_, fn(&AuthOptions) -> i64) = if task == Task::MfaCleanup {
                ("_mfas", |o| o.mfa.duration)
            } else {
                ("_otps", |o| o.otp.duration)
            };
            match crate::auth::purge_all_expired(svc, sys, max_age).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(job = id, removed = n, "expired auth entries deleted"),
                Err(e) => tracing::warn!(job = id, error = %e.message, "cleaning up failed"),
            }
        }
        Task::FilesSweep => crate::files::sweep::sweep_and_log(&svc.store, &svc.files).await,
        Task::LogsCleanup => match svc.logs.cleanup().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(job = id, removed = n, "old request log entries deleted"),
            Err(e) => tracing::warn!(job = id, error = %e.message, "cleaning up logs failed"),
        },
        Task::AutoBackup => {
            crate::backups::auto_backup(svc).await;
        }
    }
}
