//! A pooled read-only connection and its held read snapshot: a read transaction kept open
//! between uses while nothing has committed, so a point read skips SQLite's begin and end
//! of a WAL read transaction (the read-mark lock and unlock, two `fcntl` calls per read).
//!
//! Correctness rests on the store's commit generation: the writer bumps it after every
//! commit and before acknowledging the write, and a reader reads it *before* its snapshot
//! begins, so a snapshot is never older than its tag. A snapshot is reused only while the
//! generation is unchanged, so a read after an acknowledged write always begins afresh and
//! sees it. Writes by other processes (the `basalt superuser` CLI, `sqlite3`) do not bump
//! the generation: a snapshot is reused for at most [`SNAPSHOT_MAX_AGE`], their bound of
//! staleness. Idle readers end their snapshots on the sweeper's next pass so they never
//! keep the WAL from being checkpointed for long.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::StoreError;
use crate::counts::CountCache;
use crate::engine::Inner;
use crate::row_view::PointReads;

/// How long a snapshot is reused at most: how late a write by another process may be seen.
pub(crate) const SNAPSHOT_MAX_AGE: Duration = Duration::from_millis(20);

/// How often idle readers' stale snapshots are ended (they hold back WAL checkpoints).
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// Commits since the store opened; bumped by the writer after each commit, before replying.
#[derive(Default)]
pub(crate) struct CommitGeneration(AtomicU64);

impl CommitGeneration {
    pub(crate) fn current(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Called by the writer once a COMMIT returned (or failed: a spurious bump only costs
    /// readers a fresh snapshot).
    pub(crate) fn bump(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A pooled read-only connection and what it caches.
pub(crate) struct Reader {
    pub(crate) conn: Connection,
    pub(crate) counts: CountCache,
    pub(crate) points: PointReads,
    /// The held read transaction: the generation read before it began, and when.
    snapshot: Option<(u64, Instant)>,
}

fn err(e: rusqlite::Error) -> StoreError {
    StoreError::Internal(e.to_string())
}

impl Reader {
    pub(crate) fn new(conn: Connection) -> Reader {
        Reader {
            conn,
            counts: CountCache::default(),
            points: PointReads::default(),
            snapshot: None,
        }
    }

    /// Makes the connection read from a snapshot at least as new as `generation` (read by
    /// the caller before this call, and after it loaded the schema it will read with):
    /// the held one when it is still current and young, else a new transaction, which
    /// SQLite begins at the first read that follows.
    pub(crate) fn prepare(&mut self, generation: u64) -> Result<(), StoreError> {
        if let Some((tag, began)) = self.snapshot
            && tag == generation
            && !self.conn.is_autocommit()
            && began.elapsed() < SNAPSHOT_MAX_AGE
        {
            return Ok(());
        }
        self.end()?;
        self.conn
            .prepare_cached("BEGIN")
            .and_then(|mut s| s.execute([]))
            .map_err(err)?;
        self.snapshot = Some((generation, Instant::now()));
        Ok(())
    }

    /// Ends the held read transaction, if any.
    pub(crate) fn end(&mut self) -> Result<(), StoreError> {
        self.snapshot = None;
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.conn
            .prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]))
            .map(|_| ())
            .map_err(err)
    }

    /// Whether the held snapshot (if any) is past its age and should end.
    fn is_stale(&self) -> bool {
        self.snapshot
            .is_some_and(|(_, began)| began.elapsed() >= SNAPSHOT_MAX_AGE)
    }
}

/// Starts the thread that ends idle readers' stale snapshots; it stops once the store is
/// closed or dropped.
pub(crate) fn spawn_sweeper(inner: Weak<Inner>) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name("basalt-reader-sweep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(SWEEP_EVERY);
                let Some(inner) = inner.upgrade() else { return };
                if !sweep(&inner) {
                    return;
                }
            }
        })
        .map(|_| ())
        .map_err(|e| StoreError::Internal(e.to_string()))
}

/// Ends the stale snapshots of the readers in the pool; false once the store is closed.
fn sweep(inner: &Arc<Inner>) -> bool {
    let Ok(mut pool) = inner.readers.lock() else {
        return false;
    };
    for reader in pool.iter_mut().filter(|r| r.is_stale()) {
        if let Err(e) = reader.end() {
            tracing::warn!(error = %e, "ending an idle read snapshot failed");
        }
    }
    !inner.is_closed()
}

/// Ends every pooled reader's snapshot now (before the final checkpoint at close, which
/// would otherwise wait for them).
pub(crate) fn end_all(inner: &Inner) {
    if let Ok(mut pool) = inner.readers.lock() {
        for reader in pool.iter_mut() {
            if let Err(e) = reader.end() {
                tracing::warn!(error = %e, "ending a read snapshot failed");
            }
        }
    }
}
