//! What the store knows of its own health: a writer that stopped, damage SQLite reported in
//! the database file, groups that failed and commits whose outcome is unknown. The health
//! endpoint and the metrics read it ([`crate::Store::health`]); every SQLite error becomes
//! a [`StoreError`] through [`db_err`], which is where corruption is recognised.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::ErrorCode;

use crate::StoreError;

/// A snapshot of the store's health and its durability counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreHealth {
    /// Why the writer stopped, once it has: every write then answers 503 until the process
    /// is restarted (`basalt serve` exits non-zero so its supervisor does that).
    pub writer_stopped: Option<String>,
    /// SQLite errors that reported the database file damaged since the store opened.
    pub corruption_errors: u64,
    /// A corruption error that no later `quick_check` cleared, or damage a check found.
    /// (I/O errors can make SQLite report corruption of a file that is sound.)
    pub database_damaged: bool,
    /// Groups of writes rolled back whole because their transaction was in doubt.
    pub failed_groups: u64,
    /// COMMITs that returned an error: their writes may or may not be stored.
    pub unknown_commits: u64,
}

impl StoreHealth {
    /// Healthy: the writer runs and the database file is not (believed) damaged.
    pub fn is_healthy(&self) -> bool {
        self.writer_stopped.is_none() && !self.database_damaged
    }
}

/// The store's shared health state.
pub(crate) struct Health {
    db_path: PathBuf,
    writer_stopped: Mutex<Option<String>>,
    stopped: tokio::sync::watch::Sender<bool>,
    corruption_errors: AtomicU64,
    failed_groups: AtomicU64,
    unknown_commits: AtomicU64,
    damage: Mutex<Damage>,
}

/// What the store believes of the file after corruption errors. Each error is a
/// suspicion; a `quick_check` (on a thread of its own, one at a time) clears the
/// suspicions it started after, or confirms the damage for good.
#[derive(Default)]
struct Damage {
    /// Corruption errors so far (the check clears only what it saw).
    suspicions: u64,
    /// Suspicions a clean check cleared.
    cleared: u64,
    confirmed: bool,
    checking: bool,
}

/// How long the check waits before trying again after an inconclusive run (the check
/// itself met an I/O error) or a suspicion raised while it ran.
const RECHECK_AFTER: Duration = Duration::from_secs(10);

impl Health {
    pub(crate) fn new(db_path: PathBuf) -> Self {
        Self {
            db_path,
            writer_stopped: Mutex::new(None),
            stopped: tokio::sync::watch::Sender::new(false),
            corruption_errors: AtomicU64::new(0),
            failed_groups: AtomicU64::new(0),
            unknown_commits: AtomicU64::new(0),
            damage: Mutex::new(Damage::default()),
        }
    }

    pub(crate) fn snapshot(&self) -> StoreHealth {
        StoreHealth {
            writer_stopped: self.writer_stopped(),
            corruption_errors: self.corruption_errors.load(Ordering::Relaxed),
            database_damaged: self
                .damage
                .lock()
                .map_or(true, |d| d.confirmed || d.suspicions > d.cleared),
            failed_groups: self.failed_groups.load(Ordering::Relaxed),
            unknown_commits: self.unknown_commits.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn writer_stopped(&self) -> Option<String> {
        self.writer_stopped.lock().ok().and_then(|r| r.clone())
    }

    /// The writer thread ended other than by the store closing.
    pub(crate) fn stop_writer(&self, reason: String) {
        tracing::error!(
            file = %self.db_path.display(),
            %reason,
            "the database writer stopped: every write fails until the process restarts"
        );
        if let Ok(mut r) = self.writer_stopped.lock() {
            r.get_or_insert(reason);
        }
        self.stopped.send_replace(true);
    }

    /// Resolves once the writer stopped (never, while it runs).
    pub(crate) async fn wait_writer_stopped(&self) -> String {
        let mut rx = self.stopped.subscribe();
        let _ = rx.wait_for(|stopped| *stopped).await;
        self.writer_stopped().unwrap_or_default()
    }

    pub(crate) fn group_failed(&self) {
        self.failed_groups.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn commit_unknown(&self) {
        self.unknown_commits.fetch_add(1, Ordering::Relaxed);
    }

    /// Looks at a store error on its way out: corruption is logged with the database file,
    /// counted, and checked with `quick_check`, which logs what it finds.
    pub(crate) fn observe<T>(
        self: &Arc<Self>,
        res: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Err(StoreError::Corrupt(detail)) = &res {
            self.corruption(detail);
        }
        res
    }

    pub(crate) fn corruption(self: &Arc<Self>, detail: &str) {
        let n = self.corruption_errors.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::error!(
            file = %self.db_path.display(),
            %detail,
            count = n,
            "database corruption: run `basalt check --full` and restore from a backup"
        );
        let Ok(mut d) = self.damage.lock() else {
            return;
        };
        d.suspicions += 1;
        if d.confirmed || d.checking {
            return;
        }
        d.checking = true;
        let health = self.clone();
        let spawned = std::thread::Builder::new()
            .name("basalt-corruption-check".into())
            .spawn(move || health.check_damage());
        if let Err(e) = spawned {
            d.checking = false;
            tracing::warn!(error = %e, "could not start the corruption check");
        }
    }

    /// Runs `PRAGMA quick_check` on its own connection until it gives a verdict on every
    /// suspicion, and logs what it names (tables, pages): SQLite's error for a damaged page
    /// does not say which page it was.
    fn check_damage(&self) {
        let path = &self.db_path;
        loop {
            let Some(seen) = self.damage.lock().ok().map(|d| d.suspicions) else {
                return;
            };
            let verdict = crate::check::run(path, false);
            let Ok(mut d) = self.damage.lock() else {
                return;
            };
            match verdict {
                Ok(report) if report.ok() => {
                    tracing::warn!(
                        file = %path.display(),
                        "quick_check found no damage after a corruption error (an I/O error?): health restored"
                    );
                    d.cleared = d.cleared.max(seen);
                }
                Ok(report) => {
                    for problem in report.problems.iter().take(20) {
                        tracing::error!(file = %path.display(), %problem, "database damage");
                    }
                    d.confirmed = true;
                }
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "quick_check could not run")
                }
            }
            if d.confirmed || d.cleared >= d.suspicions {
                d.checking = false;
                return;
            }
            drop(d);
            std::thread::sleep(RECHECK_AFTER);
        }
    }
}

/// Every SQLite error becomes a store error here: the codes that mean the file is damaged
/// (`SQLITE_CORRUPT`, `SQLITE_NOTADB`) become [`StoreError::Corrupt`], the rest internal.
pub(crate) fn db_err(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            StoreError::Corrupt(e.to_string())
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A corruption error on a sound file (what an I/O error can produce) degrades health
    /// only until `quick_check` found the file sound; the counter keeps it.
    #[test]
    fn a_corruption_error_on_a_sound_file_is_cleared_by_the_check() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("data.db");
        rusqlite::Connection::open(&path)
            .and_then(|c| c.execute_batch("CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1)"))
            .expect("a sound database");
        let health = Arc::new(Health::new(path));
        health.corruption("database disk image is malformed");
        assert!(health.snapshot().database_damaged);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while health.snapshot().database_damaged && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let h = health.snapshot();
        assert!(!h.database_damaged, "the clean check did not clear it");
        assert_eq!(h.corruption_errors, 1);
        assert!(h.is_healthy());
    }
}
