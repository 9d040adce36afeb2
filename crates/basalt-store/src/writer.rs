//! The single writer: one connection on its own thread, fed by a bounded queue. Jobs that
//! queue up together commit together (group commit), each inside its own savepoint so one
//! failing job rolls back alone. A job's caller hears back only after the commit.
//!
//! The acknowledgement rule (ARCHITECTURE.md, invariants): a job is acknowledged only when
//! COMMIT returned success in the transaction the job ran in. SQLite may roll the whole
//! transaction back by itself (an I/O error, a full disk, out of memory); the statements
//! after that would run in autocommit mode and commit one by one, and the group's COMMIT
//! would then commit whatever transaction happens to be open. So after every job the writer
//! checks that its savepoint is still there and the transaction still open, and a commit
//! hook refuses every commit but the group's own COMMIT. Any doubt (a savepoint statement
//! failing, the transaction gone, a job panicking) rolls the whole group back and answers
//! every job of it as not stored; a COMMIT that returned an error answers every job
//! "outcome unknown", since its pages may have reached the disk.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::Connection;
use tokio::sync::mpsc;

use crate::health::Health;
use crate::reader::{self, CommitGeneration, ReaderPool};

/// What became of the transaction a job ran in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// COMMIT returned success in that transaction.
    Committed,
    /// It rolled back, or the job never ran: nothing of the job is stored.
    RolledBack,
    /// COMMIT returned an error: the job may or may not be stored.
    Unknown,
}

/// What a job reports back to the writer: whether its savepoint is kept, and what to run
/// once the enclosing transaction's fate is known.
pub(crate) struct Finish {
    pub ok: bool,
    pub done: Box<dyn FnOnce(Outcome) + Send>,
}

pub(crate) type Job = Box<dyn FnOnce(&Connection) -> Finish + Send>;

/// Opens a fresh writer connection (configured as at start).
pub(crate) type Reopen = Box<dyn Fn() -> Result<Connection, crate::StoreError> + Send>;

const GROUP_MAX: usize = 128;

/// Runs one transaction-control statement through the statement cache: `execute_batch`
/// would parse it again for every job of every group.
fn control(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Lets a transaction commit only while the writer runs its group's COMMIT: a statement
/// that would commit by itself (autocommit after SQLite rolled the group back, or the
/// release of a savepoint that began a transaction) is rolled back instead.
struct CommitGate(Arc<AtomicBool>);

impl CommitGate {
    fn install(conn: &Connection) -> Self {
        let open = Arc::new(AtomicBool::new(false));
        let gate = open.clone();
        conn.commit_hook(Some(move || {
            #[cfg(test)]
            if FAIL_NEXT_COMMIT.with(|f| f.replace(false)) {
                return true;
            }
            // true turns the commit into a rollback.
            !gate.load(Ordering::SeqCst)
        }));
        Self(open)
    }

    fn commit(&self, conn: &Connection) -> rusqlite::Result<()> {
        self.0.store(true, Ordering::SeqCst);
        let res = control(conn, "COMMIT");
        self.0.store(false, Ordering::SeqCst);
        res
    }
}

/// Runs until every sender is dropped, then closes the connection cleanly. `generation`
/// is odd from right before each COMMIT until it returned, before any of its jobs is
/// answered; the idle `readers` end their snapshots before it (see [`crate::reader`]:
/// they would hold its checkpoint back). A connection that cannot begin a transaction is
/// replaced by a fresh one from `reopen`: an `open` that failed once can leave SQLite
/// holding a file read-only for the connection's life (measured under injected open
/// errors: every later write failed "attempt to write a readonly database").
pub(crate) fn run(
    mut conn: Connection,
    reopen: Reopen,
    mut rx: mpsc::Receiver<Job>,
    generation: &CommitGeneration,
    readers: &ReaderPool,
    health: &Arc<Health>,
) {
    let mut gate = CommitGate::install(&conn);
    while let Some(first) = rx.blocking_recv() {
        // SQLite opens a file read-only when opening it read-write failed; that lasts for
        // the connection's life.
        if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
            tracing::error!("the writer's connection holds the database read-only");
            reopen_into(&mut conn, &mut gate, &reopen);
        }
        let mut jobs = vec![first];
        while jobs.len() < GROUP_MAX {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let group = Group {
            conn: &conn,
            gate: &gate,
            generation,
            readers,
            health,
        };
        if group.run(jobs) == ConnState::Broken {
            reopen_into(&mut conn, &mut gate, &reopen);
        }
        #[cfg(test)]
        if KILL_WRITER.with(|k| k.replace(false)) {
            panic!("the writer was killed (test)");
        }
    }
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "final checkpoint failed");
    }
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the writer connection failed");
    }
}

/// Replaces the writer's connection with a fresh one (kept when the reopen fails: the next
/// group tries again).
fn reopen_into(conn: &mut Connection, gate: &mut CommitGate, reopen: &Reopen) {
    match reopen() {
        Ok(fresh) => {
            tracing::warn!("writer reopened its connection");
            if let Err((_, e)) = std::mem::replace(conn, fresh).close() {
                tracing::warn!(error = %e, "closing the broken writer connection failed");
            }
            *gate = CommitGate::install(conn);
        }
        Err(e) => tracing::error!(error = %e, "writer could not reopen its connection"),
    }
}

/// One group commit.
struct Group<'a> {
    conn: &'a Connection,
    gate: &'a CommitGate,
    generation: &'a CommitGeneration,
    readers: &'a ReaderPool,
    health: &'a Arc<Health>,
}

/// Whether the writer's connection still serves after a group.
#[derive(Debug, PartialEq, Eq)]
enum ConnState {
    Usable,
    /// BEGIN failed other than for a lock: worth a fresh connection.
    Broken,
}

impl Group<'_> {
    fn run(&self, jobs: Vec<Job>) -> ConnState {
        let conn = self.conn;
        // A transaction left open by an earlier failure is not this group's.
        if !conn.is_autocommit()
            && let Err(e) = conn.execute_batch("ROLLBACK")
        {
            tracing::error!(error = %e, "writer could not end a leftover transaction");
        }
        if let Err(e) = control(conn, "BEGIN IMMEDIATE") {
            let locked = matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            );
            let e = crate::health::db_err(e);
            tracing::error!(error = %e, jobs = jobs.len(), "writer could not begin a transaction");
            if let crate::StoreError::Corrupt(detail) = &e {
                self.health.corruption(detail);
            }
            // Nothing ran: each caller hears the write did not happen.
            drop(jobs);
            return if locked {
                ConnState::Usable
            } else {
                ConnState::Broken
            };
        }
        let total = jobs.len();
        let mut finishes = Vec::with_capacity(total);
        let mut doubt = None;
        for job in jobs {
            // After a doubt the rest are dropped unrun: their callers hear "not executed".
            if doubt.is_some() {
                continue;
            }
            match self.run_job(job) {
                Ok(f) => finishes.push(f),
                Err((f, why)) => {
                    finishes.extend(f);
                    doubt = Some(why);
                }
            }
        }
        let outcome = match doubt {
            Some(why) => {
                self.health.group_failed();
                tracing::error!(
                    reason = %why,
                    jobs = total,
                    "writer rolled the whole group back: every job of it is answered as failed"
                );
                if !conn.is_autocommit()
                    && let Err(e) = conn.execute_batch("ROLLBACK")
                {
                    tracing::error!(error = %e, "writer rollback failed");
                }
                Outcome::RolledBack
            }
            None => self.commit(),
        };
        for f in finishes {
            let done = f.done;
            if let Err(panic) = catch_unwind(AssertUnwindSafe(move || done(outcome))) {
                tracing::error!(
                    panic = %panic_message(&*panic),
                    ?outcome,
                    "a write's reply panicked"
                );
            }
        }
        ConnState::Usable
    }

    /// Runs one job in its savepoint. An error says why the group's transaction is in
    /// doubt, with the job's finish when it got one.
    fn run_job(&self, job: Job) -> Result<Finish, (Option<Finish>, String)> {
        let conn = self.conn;
        control(conn, "SAVEPOINT job").map_err(|e| (None, format!("savepoint: {e}")))?;
        let f = match catch_unwind(AssertUnwindSafe(|| job(conn))) {
            Ok(f) => f,
            Err(panic) => {
                let why = format!("a job panicked: {}", panic_message(&*panic));
                return Err((None, why));
            }
        };
        let end = if f.ok {
            control(conn, "RELEASE job")
        } else {
            control(conn, "ROLLBACK TO job").and_then(|()| control(conn, "RELEASE job"))
        };
        if let Err(e) = end {
            return Err((Some(f), format!("ending the savepoint: {e}")));
        }
        if conn.is_autocommit() {
            return Err((Some(f), "the transaction was rolled back".into()));
        }
        Ok(f)
    }

    /// COMMITs the group: `Committed` only when COMMIT returned success.
    fn commit(&self) -> Outcome {
        let conn = self.conn;
        self.generation.begin_commit();
        reader::end_all(self.readers);
        let outcome = match self.gate.commit(conn) {
            Ok(()) => Outcome::Committed,
            Err(e) => {
                self.health.commit_unknown();
                tracing::error!(error = %e, "writer commit failed: the outcome of its writes is unknown");
                if !conn.is_autocommit()
                    && let Err(e) = conn.execute_batch("ROLLBACK")
                {
                    tracing::error!(error = %e, "writer rollback after a failed commit failed");
                }
                Outcome::Unknown
            }
        };
        self.generation.end_commit();
        outcome
    }
}

/// The message a panic was raised with, when it is a string.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;

#[cfg(test)]
thread_local! {
    static FAIL_NEXT_COMMIT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static KILL_WRITER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Test hook: the writer thread panics outside any job once this group is answered.
#[cfg(test)]
pub(crate) fn kill_writer_after_group() {
    KILL_WRITER.with(|k| k.set(true));
}

/// Test hook: the writer's next COMMIT on this thread fails (a job calls it).
#[cfg(test)]
pub(crate) fn fail_next_commit() {
    FAIL_NEXT_COMMIT.with(|f| f.set(true));
}
