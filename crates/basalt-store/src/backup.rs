//! A consistent copy of the database while writes go on: `VACUUM INTO` on a connection of
//! its own, opened read-only. In WAL mode its one read transaction sees every transaction
//! committed before it began and none after, and the writer never waits for it.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::StoreError;
use crate::health::db_err;

/// Writes a consistent snapshot of `<data_dir>/data.db` to `target` (a new file: SQLite
/// refuses to overwrite one). Every write acknowledged before the call is in it. Blocking;
/// safe while a server writes to the database, from this process or another.
pub fn snapshot_database(data_dir: &Path, target: &Path) -> Result<(), StoreError> {
    let target = target
        .to_str()
        .ok_or_else(|| StoreError::Internal("snapshot path is not UTF-8".into()))?;
    let conn = Connection::open_with_flags(
        data_dir.join("data.db"),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(db_err)?;
    conn.execute("VACUUM INTO ?1", [target]).map_err(db_err)?;
    Ok(())
}
