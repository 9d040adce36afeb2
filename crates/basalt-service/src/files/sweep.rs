//! The orphan sweep: stored files no record names any more (a crash between an upload and
//! its write, a deletion after commit that failed, files of removed fields or collections)
//! are found and removed, at start, every hour and by `basalt files sweep`.
//!
//! It never removes a file a write in flight is about to name. Uploads are stored before
//! the write that names them commits, so a new file is unnamed for a while: files younger
//! than the grace period (an hour by default, far above any request's life) are left
//! alone. An older unnamed file can never become named again, since a write may keep or
//! drop the names a record holds but never name a stored file it did not upload. The
//! storage is streamed and judged in batches; each batch's records are read after the
//! batch was listed, so a file named at listing time is seen named.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use basalt_files::{ObjectKey, ObjectMeta};
use basalt_schema::RequestInfo;
use basalt_store::{Access, Store, file_names};
use futures_util::StreamExt;

use super::Files;

/// How a sweep runs.
#[derive(Debug, Clone, Copy)]
pub struct SweepOptions {
    /// Report only; remove nothing.
    pub dry_run: bool,
    /// Files modified more recently than this are never removed.
    pub grace: Duration,
    /// At most this many files are removed per run (the rest wait for the next one).
    pub max_removals: usize,
}

impl Default for SweepOptions {
    fn default() -> Self {
        SweepOptions {
            dry_run: false,
            grace: Duration::from_secs(3600),
            max_removals: 1000,
        }
    }
}

/// What a sweep found and did.
#[derive(Debug, Default, Clone)]
pub struct SweepReport {
    /// Stored objects looked at.
    pub examined: u64,
    /// Orphans old enough to remove (removed unless a dry run), in the order the storage
    /// listed them; at most `max_removals`.
    pub orphans: Vec<String>,
    /// Orphans left for a later run: younger than the grace period.
    pub young: u64,
    /// Orphans past this run's `max_removals`, left for the next run.
    pub deferred: u64,
    /// Orphans removed.
    pub removed: u64,
}

/// Why a sweep could not run.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("listing the storage: {0}")]
    Storage(#[from] basalt_files::StorageError),
    #[error("reading records: {0}")]
    Store(#[from] basalt_store::StoreError),
}

/// One record's directory: `{collectionId}/{recordId}`.
type RecordDir = (String, String);

/// How many listed objects are judged together (one batch of record look-ups): what the
/// sweep holds in memory besides the orphans it will remove.
const BATCH: usize = 512;

/// Finds (and unless `opts.dry_run` removes) stored files no record names. The storage
/// is streamed and judged a batch at a time, so memory does not grow with the number
/// of stored files.
pub async fn sweep(
    store: &Store,
    files: &Files,
    opts: SweepOptions,
) -> Result<SweepReport, SweepError> {
    let mut report = SweepReport::default();
    let storage = files.storage();
    let mut orphans = Vec::new();
    let mut listing = storage.list_all();
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let next = listing.next().await.transpose()?;
        let done = next.is_none();
        batch.extend(next);
        if batch.len() >= BATCH || (done && !batch.is_empty()) {
            report.examined += batch.len() as u64;
            judge(
                store,
                std::mem::take(&mut batch),
                &opts,
                &mut report,
                &mut orphans,
            )
            .await?;
        }
        if done {
            break;
        }
    }
    report.orphans = orphans.iter().map(|k| k.to_string()).collect();
    if opts.dry_run || orphans.is_empty() {
        return Ok(report);
    }
    // A backup running now may be copying a file its snapshot names: wait for it.
    let _pass = files.deletions.pass().await;
    for key in orphans {
        match storage.delete(&key).await {
            Ok(()) => report.removed += 1,
            Err(e) => tracing::warn!(%key, error = %e, "removing an orphaned file failed"),
        }
    }
    Ok(report)
}

/// Sorts one batch of listed objects into named files, young orphans, orphans to remove
/// (up to `opts.max_removals` in all) and deferred ones. The records are read after the
/// objects were listed, so a file named at listing time is seen named.
async fn judge(
    store: &Store,
    objects: Vec<ObjectMeta>,
    opts: &SweepOptions,
    report: &mut SweepReport,
    orphans: &mut Vec<ObjectKey>,
) -> Result<(), SweepError> {
    let now = SystemTime::now();
    // Record files sit at `{c}/{r}/{name}` and thumbs at `{c}/{r}/thumbs_{name}/...`; keys
    // of any other shape are not ours to judge.
    let mut dirs: BTreeMap<RecordDir, Vec<(ObjectMeta, String)>> = BTreeMap::new();
    for m in objects {
        let segs: Vec<&str> = m.key.segments().collect();
        if segs.len() < 3 {
            continue;
        }
        let source = if segs.len() > 3 {
            segs[2].strip_prefix("thumbs_").unwrap_or(segs[2])
        } else {
            segs[2]
        }
        .to_string();
        let dir = (segs[0].to_string(), segs[1].to_string());
        dirs.entry(dir).or_default().push((m, source));
    }
    let schema = store.schema();
    // Per collection, the records' names in batches of primary-key lookups.
    let mut by_collection: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (c, r) in dirs.keys() {
        by_collection.entry(c.clone()).or_default().push(r.clone());
    }
    let mut named: HashSet<(String, String, String)> = HashSet::new();
    for (cid, ids) in &by_collection {
        let Some(c) = schema.by_id(cid) else {
            continue;
        };
        if !super::has_file_fields(c) {
            continue;
        }
        for chunk in ids.chunks(64) {
            let records = store
                .get_records(
                    c,
                    chunk.to_vec(),
                    Access::Unrestricted,
                    Arc::new(RequestInfo::default()),
                )
                .await?;
            for r in records {
                let id = r.get("id").and_then(|v| v.as_str()).unwrap_or_default();
                for name in file_names(c, &r) {
                    named.insert((cid.clone(), id.to_string(), name));
                }
            }
        }
    }
    for ((cid, rid), objs) in dirs {
        for (m, source) in objs {
            if named.contains(&(cid.clone(), rid.clone(), source)) {
                continue;
            }
            let age = now.duration_since(m.last_modified).unwrap_or_default();
            if age < opts.grace {
                report.young += 1;
                continue;
            }
            if orphans.len() >= opts.max_removals {
                report.deferred += 1;
                continue;
            }
            orphans.push(m.key);
        }
    }
    Ok(())
}

/// Sweeps once and logs what it did (the hourly `__basaltFilesSweep__` cron job).
pub async fn sweep_and_log(store: &Store, files: &Files) {
    match sweep(store, files, SweepOptions::default()).await {
        Ok(r) if r.removed > 0 || r.deferred > 0 => tracing::info!(
            examined = r.examined,
            removed = r.removed,
            young = r.young,
            deferred = r.deferred,
            "orphan sweep removed files no record names"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "orphan sweep failed"),
    }
}
