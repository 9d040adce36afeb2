//! `basalt check`: SQLite's own integrity checks (`quick_check`, `integrity_check`) over a
//! data directory's database, on a read-only connection of their own.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::StoreError;
use crate::health::db_err;

/// What an integrity check found.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// The database file checked.
    pub file: PathBuf,
    /// `integrity_check` (also compares indexes with their tables) rather than `quick_check`.
    pub full: bool,
    /// SQLite's findings, one per line (pages, trees, rows); empty when the file is sound.
    pub problems: Vec<String>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// At most this many problems are listed: the first ones say what to restore.
const MAX_PROBLEMS: u32 = 100;

/// Checks `<data_dir>/data.db`. A file too damaged to be read at all is a report with that
/// problem, not an error; an error means the check could not run (no file, no access).
pub fn check_database(data_dir: &Path, full: bool) -> Result<CheckReport, StoreError> {
    run(&data_dir.join("data.db"), full)
}

pub(crate) fn run(file: &Path, full: bool) -> Result<CheckReport, StoreError> {
    if !file.is_file() {
        return Err(StoreError::Internal(format!(
            "no database at {}",
            file.display()
        )));
    }
    // Read-only: the check never writes to (or checkpoints into) a file it found damaged.
    let conn = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db_err)?;
    let pragma = if full {
        "integrity_check"
    } else {
        "quick_check"
    };
    let problems = match findings(&conn, &format!("PRAGMA {pragma}({MAX_PROBLEMS})")) {
        Ok(lines) => lines.into_iter().filter(|l| l != "ok").collect(),
        // The check reads every row, and a page too damaged to read ends it with an error
        // that names nothing: check table by table to say where the damage is.
        Err(StoreError::Corrupt(detail)) => {
            let mut problems = vec![detail];
            problems.extend(per_table(&conn, pragma));
            problems
        }
        Err(e) => return Err(e),
    };
    Ok(CheckReport {
        file: file.to_path_buf(),
        full,
        problems,
    })
}

/// Runs the check on each table (with its indexes) alone; one line per damaged table.
fn per_table(conn: &Connection, pragma: &str) -> Vec<String> {
    let tables = match findings(
        conn,
        "SELECT name || char(31) || rootpage FROM sqlite_master WHERE type = 'table' ORDER BY name",
    ) {
        Ok(t) => t,
        Err(e) => return vec![format!("the schema table cannot be read: {e}")],
    };
    let mut out = Vec::new();
    for entry in tables {
        let (name, root) = entry.split_once('\u{1f}').unwrap_or((&entry, "?"));
        let sql = format!("PRAGMA {pragma}(\"{}\")", name.replace('"', "\"\""));
        match findings(conn, &sql) {
            Ok(lines) => out.extend(
                lines
                    .into_iter()
                    .filter(|l| l != "ok")
                    .map(|l| format!("table {name} (root page {root}): {l}")),
            ),
            Err(e) => out.push(format!("table {name} (root page {root}): {e}")),
        }
    }
    out
}

fn findings(conn: &Connection, sql: &str) -> Result<Vec<String>, StoreError> {
    conn.execute_batch("PRAGMA busy_timeout = 10000")
        .map_err(db_err)?;
    let mut stmt = conn.prepare(sql).map_err(db_err)?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(db_err)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
}
