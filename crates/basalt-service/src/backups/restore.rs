//! An atomic restore. [`stage`] unpacks a backup into `<data>/.restore/new/` (every file
//! and directory fsynced), checks its database with `quick_check`, and then marks it
//! ready with one rename of `.restore/READY`: before that rename a crash leaves the old
//! state (the next start discards the staging); after it, the next start completes the
//! restore ([`complete_pending`]) before the database is opened. Completing moves the old
//! `data.db` (with its WAL and shared-memory files) and `storage/` into `.restore/old/`
//! and the staged ones into place, each step a rename that is skipped once done, so a
//! completion cut short by a kill -9 finishes at the next start: the state is the whole
//! old one or the whole new one.

use std::io;
use std::path::Path;

use crate::backups::archive::{self, ArchiveError};
use crate::backups::sync_dir;

/// The staging folder inside the data dir.
pub const RESTORE_DIR: &str = ".restore";
const READY: &str = "READY";
/// What a restore replaces, in the order they move out (the WAL before its database).
const OLD_ITEMS: [(&str, &str); 4] = [
    ("data.db-wal", "data.db"),
    ("data.db-shm", "data.db"),
    ("data.db", "data.db"),
    ("storage", "storage"),
];

/// Unpacks the backup at `archive_path` and marks it ready to complete.
pub fn stage(data_dir: &Path, archive_path: &Path) -> Result<(), ArchiveError> {
    let root = data_dir.join(RESTORE_DIR);
    if root.join(READY).exists() {
        return Err(ArchiveError::Invalid(
            "a restore is already pending completion".into(),
        ));
    }
    match std::fs::remove_dir_all(&root) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let entries = archive::inspect(archive_path)?;
    let new = root.join("new");
    std::fs::create_dir_all(&new)?;
    let staged = archive::extract(archive_path, &entries, &new).and_then(|()| {
        let report = basalt_store::check_database(&new, false)
            .map_err(|e| ArchiveError::Invalid(format!("data.db cannot be read: {e}")))?;
        if !report.ok() {
            return Err(ArchiveError::Invalid(format!(
                "data.db is damaged: {}",
                report.problems.join("; ")
            )));
        }
        Ok(())
    });
    if let Err(e) = staged {
        let _ = std::fs::remove_dir_all(&root);
        return Err(e);
    }
    // The one step that decides: after this rename the restore completes at next start.
    let tmp = root.join("READY.tmp");
    std::fs::write(&tmp, archive_path.display().to_string())?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, root.join(READY))?;
    sync_dir(&root)?;
    sync_dir(data_dir)?;
    Ok(())
}

/// What [`complete_pending`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// Nothing was staged.
    None,
    /// A staging that was never marked ready was removed: the old state stays.
    Discarded,
    /// A staged restore was completed: the data is the backup's.
    Completed,
}

/// Completes or discards a restore left by [`stage`]. Call before the database is
/// opened; idempotent, so a completion cut short finishes on the next call.
pub fn complete_pending(data_dir: &Path) -> io::Result<Pending> {
    let root = data_dir.join(RESTORE_DIR);
    if !root.exists() {
        return Ok(Pending::None);
    }
    if !root.join(READY).exists() {
        std::fs::remove_dir_all(&root)?;
        sync_dir(data_dir)?;
        return Ok(Pending::Discarded);
    }
    let (new, old) = (root.join("new"), root.join("old"));
    std::fs::create_dir_all(&old)?;
    for (item, gate) in OLD_ITEMS {
        // Only while the staged item has not moved in yet is the live one the old one.
        if new.join(gate).exists() && exists(&data_dir.join(item)) {
            std::fs::rename(data_dir.join(item), old.join(item))?;
        }
    }
    sync_dir(&old)?;
    sync_dir(data_dir)?;
    for item in ["storage", "data.db"] {
        if exists(&new.join(item)) {
            std::fs::rename(new.join(item), data_dir.join(item))?;
        }
    }
    sync_dir(data_dir)?;
    std::fs::remove_file(root.join(READY))?;
    sync_dir(&root)?;
    std::fs::remove_dir_all(&root)?;
    sync_dir(data_dir)?;
    Ok(Pending::Completed)
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, body: &str) {
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, body).expect("write");
    }

    fn state(d: &Path) -> (String, String, bool) {
        (
            std::fs::read_to_string(d.join("data.db")).unwrap_or_default(),
            std::fs::read_to_string(d.join("storage/c/r/f")).unwrap_or_default(),
            d.join("data.db-wal").exists(),
        )
    }

    /// A completion cut after every step finishes the same on the next call.
    #[test]
    fn completion_cut_anywhere_finishes_whole() {
        let steps = [
            "",
            "wal",
            "shm",
            "db",
            "storage",
            "in-storage",
            "in-db",
            "ready-gone",
        ];
        for (cut, step) in steps.iter().enumerate() {
            let dir = tempfile::tempdir().expect("dir");
            let d = dir.path();
            write(&d.join("data.db"), "old");
            write(&d.join("data.db-wal"), "oldwal");
            write(&d.join("data.db-shm"), "oldshm");
            write(&d.join("storage/c/r/f"), "oldfile");
            let root = d.join(RESTORE_DIR);
            write(&root.join("new/data.db"), "new");
            write(&root.join("new/storage/c/r/f"), "newfile");
            write(&root.join(READY), "x");
            std::fs::create_dir_all(root.join("old")).expect("old");
            // Replay the first `cut` renames by hand, as a kill -9 would leave them.
            let moves: [(&str, std::path::PathBuf, std::path::PathBuf); 6] = [
                ("wal", d.join("data.db-wal"), root.join("old/data.db-wal")),
                ("shm", d.join("data.db-shm"), root.join("old/data.db-shm")),
                ("db", d.join("data.db"), root.join("old/data.db")),
                ("storage", d.join("storage"), root.join("old/storage")),
                ("in-storage", root.join("new/storage"), d.join("storage")),
                ("in-db", root.join("new/data.db"), d.join("data.db")),
            ];
            for (_, from, to) in moves.iter().take(cut.min(moves.len())) {
                std::fs::rename(from, to).expect("rename");
            }
            if cut == 7 {
                std::fs::remove_file(root.join(READY)).expect("ready");
            }
            let res = complete_pending(d).expect("complete");
            if cut == 7 {
                // READY gone means the completion had finished its renames.
                assert_eq!(res, Pending::Discarded);
            } else {
                assert_eq!(res, Pending::Completed, "cut {cut}");
            }
            assert_eq!(
                state(d),
                ("new".into(), "newfile".into(), false),
                "cut after {step:?}"
            );
            assert!(!root.exists());
        }
    }

    #[test]
    fn an_unmarked_staging_is_discarded() {
        let dir = tempfile::tempdir().expect("dir");
        let d = dir.path();
        write(&d.join("data.db"), "old");
        write(&d.join("storage/c/r/f"), "oldfile");
        write(&d.join(RESTORE_DIR).join("new/data.db"), "half");
        assert_eq!(complete_pending(d).expect("complete"), Pending::Discarded);
        assert_eq!(state(d), ("old".into(), "oldfile".into(), false));
        assert_eq!(complete_pending(d).expect("again"), Pending::None);
    }
}
