//! A pooled read-only connection and its held read snapshot: a read transaction kept open
//! between uses while nothing has committed, so a point read skips SQLite's begin and end
//! of a WAL read transaction (the read-mark lock and unlock, two `fcntl` calls per read).
//!
//! Correctness rests on the store's commit generation: the writer changes it around every
//! commit (odd while committing, even again before acknowledging the write), and a reader
//! reads it *before* its snapshot begins, so a snapshot is never older than its tag. A snapshot is reused only while the
//! generation is unchanged, so a read after an acknowledged write always begins afresh and
//! sees it. Writes by other processes (the `basalt superuser` CLI, `sqlite3`) do not bump
//! the generation: a snapshot is reused for at most [`SNAPSHOT_MAX_AGE`], their bound of
//! staleness.
//!
//! Held snapshots must not starve checkpoints: the checkpoint SQLite runs inside a commit
//! can only copy the WAL back up to the oldest snapshot in use, and the WAL only starts
//! over once a checkpoint went all the way. Idle readers would hold snapshots from before
//! every commit, so the WAL would grow for as long as reads and writes go on (measured:
//! 1 -> 67 MB in a 10 s 90/10 read/write run). So while the writer commits, the generation
//! is odd and reads hold no snapshot (they run as plain autocommit reads); the writer ends
//! the idle readers' snapshots once it is odd, right before COMMIT ([`end_all`]), leaving
//! only reads in flight in the way, as without held snapshots. The sweeper ends old
//! snapshots of readers left idle.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
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

/// Twice the commits since the store opened, plus one while the writer commits.
#[derive(Default)]
pub(crate) struct CommitGeneration(AtomicU64);

impl CommitGeneration {
    pub(crate) fn current(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Called by the writer right before COMMIT: makes the generation odd.
    pub(crate) fn begin_commit(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    /// Called by the writer once COMMIT returned (or failed: a spurious change only costs
    /// readers a fresh snapshot), before any of its jobs is answered: even again.
    pub(crate) fn end_commit(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn committing(generation: u64) -> bool {
    generation % 2 == 1
}

/// The idle readers; a reader is out of it while it serves a read. Boxed: each read takes
/// one out and puts it back, and a `Reader` is a few hundred bytes to move.
pub(crate) type ReaderPool = Mutex<Vec<Box<Reader>>>;

/// A pooled read-only connection and what it caches.
pub(crate) struct Reader {
    pub(crate) conn: Connection,
    pub(crate) counts: CountCache,
    pub(crate) points: PointReads,
    /// The held read transaction: the generation read before it began, and when.
    snapshot: Option<(u64, Instant)>,
}

fn err(e: rusqlite::Error) -> StoreError {
    crate::health::db_err(e)
}

impl Reader {
    pub(crate) fn new(conn: Connection) -> Box<Reader> {
        Box::new(Reader {
            conn,
            counts: CountCache::default(),
            points: PointReads::default(),
            snapshot: None,
        })
    }

    /// Makes the connection read from a snapshot at least as new as `generation` (read by
    /// the caller before this call, and after it loaded the schema it will read with):
    /// the held one when it is still current and young, else a new transaction, which
    /// SQLite begins at the first read that follows. While the writer commits, no
    /// snapshot is held: the read runs in autocommit mode.
    pub(crate) fn prepare(&mut self, generation: u64) -> Result<(), StoreError> {
        if let Some((tag, began)) = self.snapshot
            && tag == generation
            && !self.conn.is_autocommit()
            && began.elapsed() < SNAPSHOT_MAX_AGE
        {
            return Ok(());
        }
        self.end()?;
        if committing(generation) {
            return Ok(());
        }
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

/// Ends every idle reader's snapshot now: before each commit (they are all about to be
/// stale, and would keep its checkpoint from finishing) and before the final checkpoint
/// at close (which would otherwise wait for them).
pub(crate) fn end_all(pool: &ReaderPool) {
    if let Ok(mut pool) = pool.lock() {
        // By the connection's own state: a transaction whose COMMIT once failed is open
        // without a tag.
        for reader in pool.iter_mut().filter(|r| !r.conn.is_autocommit()) {
            if let Err(e) = reader.end() {
                tracing::warn!(error = %e, "ending a read snapshot failed");
            }
        }
    }
}
