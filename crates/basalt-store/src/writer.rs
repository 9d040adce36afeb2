//! The single writer: one connection on its own thread, fed by a bounded queue. Jobs that
//! queue up together commit together (group commit), each inside its own savepoint so one
//! failing job rolls back alone. A job's caller hears back only after the commit.

use rusqlite::Connection;
use tokio::sync::mpsc;

use crate::reader::{self, CommitGeneration, ReaderPool};

/// What a job reports back to the writer: whether its savepoint is kept, and what to run
/// once the enclosing transaction's fate (committed or not) is known.
pub(crate) struct Finish {
    pub ok: bool,
    pub done: Box<dyn FnOnce(bool) + Send>,
}

pub(crate) type Job = Box<dyn FnOnce(&Connection) -> Finish + Send>;

const GROUP_MAX: usize = 128;

/// Runs one transaction-control statement through the statement cache: `execute_batch`
/// would parse it again for every job of every group.
fn control(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Runs until every sender is dropped, then closes the connection cleanly. `generation`
/// is odd from right before each COMMIT until it returned, before any of its jobs is
/// answered; the idle `readers` end their snapshots before it (see [`crate::reader`]:
/// they would hold its checkpoint back).
pub(crate) fn run(
    conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    generation: &CommitGeneration,
    readers: &ReaderPool,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < GROUP_MAX {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        if let Err(e) = control(&conn, "BEGIN IMMEDIATE") {
            tracing::error!(error = %e, "writer could not begin a transaction");
            for job in jobs {
                // Run nothing: tell each caller the write did not happen.
                let f = job_failed(job);
                (f.done)(false);
            }
            continue;
        }
        let mut finishes = Vec::with_capacity(jobs.len());
        for job in jobs {
            let savepoint = control(&conn, "SAVEPOINT job").is_ok();
            let f = job(&conn);
            if savepoint {
                let end = if f.ok {
                    control(&conn, "RELEASE job")
                } else {
                    control(&conn, "ROLLBACK TO job").and_then(|()| control(&conn, "RELEASE job"))
                };
                if let Err(e) = end {
                    tracing::error!(error = %e, "writer savepoint failed");
                }
            }
            finishes.push(f);
        }
        generation.begin_commit();
        reader::end_all(readers);
        let committed = match control(&conn, "COMMIT") {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "writer commit failed");
                let _ = conn.execute_batch("ROLLBACK");
                false
            }
        };
        generation.end_commit();
        for f in finishes {
            (f.done)(committed);
        }
    }
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "final checkpoint failed");
    }
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the writer connection failed");
    }
}

/// Drops a job unrun; its reply channel closes, which its caller reads as unavailable.
fn job_failed(job: Job) -> Finish {
    drop(job);
    Finish {
        ok: false,
        done: Box::new(|_| {}),
    }
}
