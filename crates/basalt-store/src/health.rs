//! What the store knows of its own health: a writer that stopped, damage SQLite reported in
//! the database file, groups that failed and commits whose outcome is unknown. The health
//! endpoint and the metrics read it ([`crate::Store::health`]); every SQLite error becomes
//! a [`StoreError`] through [`db_err`], which is where corruption is recognised.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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
    /// Groups of writes rolled back whole because their transaction was in doubt.
    pub failed_groups: u64,
    /// COMMITs that returned an error: their writes may or may not be stored.
    pub unknown_commits: u64,
}

impl StoreHealth {
    /// Healthy: the writer runs and no corruption was seen.
    pub fn is_healthy(&self) -> bool {
        self.writer_stopped.is_none() && self.corruption_errors == 0
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
    /// Set once the first corruption started a `quick_check` to name the damaged pages.
    checked: AtomicBool,
}

impl Health {
    pub(crate) fn new(db_path: PathBuf) -> Self {
        Self {
            db_path,
            writer_stopped: Mutex::new(None),
            stopped: tokio::sync::watch::Sender::new(false),
            corruption_errors: AtomicU64::new(0),
            failed_groups: AtomicU64::new(0),
            unknown_commits: AtomicU64::new(0),
            checked: AtomicBool::new(false),
        }
    }

    pub(crate) fn snapshot(&self) -> StoreHealth {
        StoreHealth {
            writer_stopped: self.writer_stopped(),
            corruption_errors: self.corruption_errors.load(Ordering::Relaxed),
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
    /// counted, and the first one starts a `quick_check` that logs which pages are damaged.
    pub(crate) fn observe<T>(&self, res: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(StoreError::Corrupt(detail)) = &res {
            self.corruption(detail);
        }
        res
    }

    pub(crate) fn corruption(&self, detail: &str) {
        let n = self.corruption_errors.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::error!(
            file = %self.db_path.display(),
            %detail,
            count = n,
            "database corruption: run `basalt check --full` and restore from a backup"
        );
        if !self.checked.swap(true, Ordering::Relaxed) {
            let path = self.db_path.clone();
            let spawned = std::thread::Builder::new()
                .name("basalt-corruption-check".into())
                .spawn(move || log_damage(&path));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "could not start the corruption check");
            }
        }
    }
}

/// Runs `PRAGMA quick_check` on its own connection and logs what it names (pages, trees):
/// SQLite's error for a damaged page does not say which page it was.
fn log_damage(path: &Path) {
    match crate::check::run(path, false) {
        Ok(report) if report.ok() => tracing::error!(
            file = %path.display(),
            "quick_check found no damage after a corruption error: run `basalt check --full`"
        ),
        Ok(report) => {
            for problem in report.problems.iter().take(20) {
                tracing::error!(file = %path.display(), %problem, "database damage");
            }
        }
        Err(e) => tracing::error!(file = %path.display(), error = %e, "quick_check failed"),
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
