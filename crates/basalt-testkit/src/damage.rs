//! Deliberate damage to a SQLite database file, for the tests of corruption reporting and
//! `basalt check`.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

/// Overwrites the first 64 bytes of the page holding `table`'s root with garbage (and
/// syncs), so any read of `table` meets a malformed page.
pub fn damage_root_page(db: &Path, table: &str) {
    let conn = rusqlite::Connection::open(db).expect("open for damage");
    let page_size: u64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .expect("page size");
    let root: u64 = conn
        .query_row(
            "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )
        .expect("root page");
    drop(conn);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(db)
        .expect("open file");
    f.seek(SeekFrom::Start((root - 1) * page_size))
        .expect("seek");
    f.write_all(&[0xA5; 64]).expect("damage");
    f.sync_all().expect("sync");
}
