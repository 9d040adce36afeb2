//! The `totalItems` cache of one reader connection: list counts keyed by their SQL and
//! parameters, valid while SQLite's `PRAGMA data_version` of that connection is unchanged.
//!
//! `data_version` changes whenever any other connection (the writer, or another process such
//! as `basalt superuser`) commits, so a cached count is never older than the data the same
//! connection would read. A repeated list (a dashboard polling page 1) then costs its page,
//! not a scan of every matching row.

use std::collections::HashMap;

use rusqlite::{Connection, params_from_iter};

use crate::StoreError;
use crate::sql::SqlFragment;

/// Bounded so that ever-changing parameters (`@now`) cannot grow it without limit.
const MAX_ENTRIES: usize = 256;

/// Longer keys (huge filters) are counted every time rather than kept: with
/// `MAX_ENTRIES`, a connection's cache stays under 1 MiB of keys.
const MAX_KEY_BYTES: usize = 4096;

#[derive(Default)]
pub(crate) struct CountCache {
    data_version: Option<i64>,
    entries: HashMap<String, u64>,
}

impl CountCache {
    /// `SELECT COUNT(*) ...` of `count`, from the cache when the database has not changed.
    pub(crate) fn count(
        &mut self,
        conn: &Connection,
        count: &SqlFragment,
    ) -> Result<u64, StoreError> {
        let err = crate::health::db_err;
        let version: i64 = conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(err)?;
        if self.data_version != Some(version) {
            self.entries.clear();
            self.data_version = Some(version);
        }
        let key = format!("{}\u{0}{:?}", count.sql, count.params);
        if let Some(n) = self.entries.get(&key) {
            return Ok(*n);
        }
        let n = conn
            .prepare_cached(&count.sql)
            .and_then(|mut s| {
                s.query_row(params_from_iter(count.params.iter()), |r| {
                    r.get::<_, i64>(0)
                })
            })
            .map_err(err)?
            .max(0) as u64;
        if key.len() > MAX_KEY_BYTES {
            return Ok(n);
        }
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.clear();
        }
        self.entries.insert(key, n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::SqlValue;

    fn count_of(conn: &Connection, cache: &mut CountCache, min: i64) -> u64 {
        let mut f = SqlFragment::new("SELECT COUNT(*) FROM t WHERE n > ?");
        f.params.push(SqlValue::Integer(min));
        cache.count(conn, &f).expect("count")
    }

    /// A commit by another connection (here: another connection to the same file, as the
    /// writer thread is) must be seen by the next count, never the cached one.
    #[test]
    fn a_commit_elsewhere_invalidates_cached_counts() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("c.db");
        let writer = Connection::open(&path).expect("writer");
        writer
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1), (2), (3);")
            .expect("seed");
        let reader = Connection::open(&path).expect("reader");
        let mut cache = CountCache::default();
        assert_eq!(count_of(&reader, &mut cache, 1), 2);
        assert_eq!(count_of(&reader, &mut cache, 0), 3);
        assert_eq!(cache.entries.len(), 2, "both counts are cached");
        writer
            .execute("INSERT INTO t VALUES (4)", [])
            .expect("insert");
        assert_eq!(count_of(&reader, &mut cache, 1), 3);
        assert_eq!(count_of(&reader, &mut cache, 0), 4);
        writer
            .execute("DELETE FROM t WHERE n < 3", [])
            .expect("delete");
        assert_eq!(count_of(&reader, &mut cache, 1), 2);
    }

    #[test]
    fn huge_filters_are_counted_but_not_kept() {
        let conn = Connection::open_in_memory().expect("db");
        conn.execute_batch("CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1), (2);")
            .expect("seed");
        let mut cache = CountCache::default();
        let mut f = SqlFragment::new("SELECT COUNT(*) FROM t WHERE n > ?");
        f.params.push(SqlValue::Text("x".repeat(MAX_KEY_BYTES)));
        // Text compares greater than any integer in SQLite: nothing matches.
        assert_eq!(cache.count(&conn, &f).expect("count"), 0);
        assert!(cache.entries.is_empty());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let conn = Connection::open_in_memory().expect("db");
        conn.execute_batch("CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1);")
            .expect("seed");
        let mut cache = CountCache::default();
        for min in 0..(MAX_ENTRIES as i64 * 2) {
            let expected = u64::from(min < 1);
            assert_eq!(count_of(&conn, &mut cache, min), expected);
            assert!(cache.entries.len() <= MAX_ENTRIES);
        }
    }
}
