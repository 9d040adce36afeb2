//! The backup archive: a zip laid out as PocketBase lays out its own (`data.db` at the
//! root, record files under `storage/`), written from a database snapshot and the storage
//! directory, and read back only after it passed [`inspect`]: bounded entry count and
//! total size, every name a plain relative path under the layout, a SQLite file as
//! `data.db`. Blocking IO: callers run these on the blocking pool.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

/// Most entries an archive may hold.
pub const MAX_ENTRIES: usize = 100_000;
/// Most bytes an archive may unpack to, summed over its entries.
pub const MAX_UNPACKED: u64 = 32 << 30;
/// The database entry.
pub const DB_ENTRY: &str = "data.db";
/// The folder of record files.
pub const STORAGE_DIR: &str = "storage";

/// Why an archive is refused (the message is shown to the client).
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{0}")]
    Invalid(String),
    #[error("io: {0}")]
    Io(#[from] io::Error),
}

impl From<zip::result::ZipError> for ArchiveError {
    fn from(e: zip::result::ZipError) -> Self {
        match e {
            zip::result::ZipError::Io(e) => ArchiveError::Io(e),
            other => ArchiveError::Invalid(format!("not a valid zip archive: {other}")),
        }
    }
}

fn invalid(msg: impl Into<String>) -> ArchiveError {
    ArchiveError::Invalid(msg.into())
}

/// Writes the archive of `db` (a snapshot file) and every regular file under
/// `storage_root` to `out` (a new file), then fsyncs it. Names starting with `.` (temporary
/// files of uploads in progress) are left out.
pub fn write(db: &Path, storage_root: &Path, out: &Path) -> io::Result<u64> {
    let file = File::options().write(true).create_new(true).open(out)?;
    let mut zip = ZipWriter::new(file);
    let opts = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .large_file(true);
    zip.start_file(DB_ENTRY, opts).map_err(io::Error::other)?;
    io::copy(&mut File::open(db)?, &mut zip)?;
    let mut files = Vec::new();
    collect_files(storage_root, &mut PathBuf::new(), &mut files)?;
    files.sort();
    for rel in files {
        let Some(name) = rel.to_str() else { continue };
        let entry = format!("{STORAGE_DIR}/{name}");
        let mut src = match File::open(storage_root.join(&rel)) {
            Ok(f) => f,
            // Deleted since it was listed: a file no snapshot row may name any more.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        zip.start_file(entry, opts).map_err(io::Error::other)?;
        io::copy(&mut src, &mut zip)?;
    }
    let file = zip.finish().map_err(io::Error::other)?;
    file.sync_all()?;
    Ok(file.metadata()?.len())
}

/// Every regular file under `root/rel`, as paths relative to `root`; symlinks and names
/// starting with `.` are skipped.
fn collect_files(root: &Path, rel: &mut PathBuf, out: &mut Vec<PathBuf>) -> io::Result<()> {
    let entries = match std::fs::read_dir(root.join(&*rel)) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_str().is_none_or(|n| n.starts_with('.')) {
            continue;
        }
        let kind = entry.file_type()?;
        rel.push(&name);
        if kind.is_dir() {
            collect_files(root, rel, out)?;
        } else if kind.is_file() {
            out.push(rel.clone());
        }
        rel.pop();
    }
    Ok(())
}

/// True when `name` is a plain relative path: non-empty `/`-separated segments, none `.`,
/// `..` or starting with `.`, no `\`, NUL or control character.
fn safe_path(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 1024
        && name.split('/').all(|s| {
            !s.is_empty()
                && s.len() <= 255
                && !s.starts_with('.')
                && !s.chars().any(|c| c == '\\' || c.is_control())
        })
}

/// One file of an archive that passed [`inspect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub index: usize,
    /// `data.db` or `storage/...`.
    pub name: String,
    pub size: u64,
}

/// Reads `path`'s central directory and refuses anything but a Basalt backup: at most
/// [`MAX_ENTRIES`] entries unpacking to at most [`MAX_UNPACKED`] bytes, names only
/// `data.db` and safe paths under `storage/` (directory entries allowed there), no
/// symlinks, no name twice, and a `data.db` that starts as a SQLite file does.
pub fn inspect(path: &Path) -> Result<Vec<Entry>, ArchiveError> {
    let mut zip = ZipArchive::new(File::open(path)?)?;
    if zip.len() > MAX_ENTRIES {
        return Err(invalid(format!(
            "the archive holds more than {MAX_ENTRIES} entries"
        )));
    }
    let mut entries = Vec::new();
    let mut names = std::collections::HashSet::new();
    let mut total = 0u64;
    for index in 0..zip.len() {
        let f = zip.by_index_raw(index)?;
        let name = f
            .name()
            .map_err(|_| invalid("an entry name is not valid UTF-8"))?
            .into_owned();
        if f.is_symlink() {
            return Err(invalid(format!("entry {name:?} is a symbolic link")));
        }
        if f.is_dir() {
            let dir = name.trim_end_matches('/');
            if dir == STORAGE_DIR || dir.strip_prefix("storage/").is_some_and(safe_path) {
                continue;
            }
            return Err(invalid(format!("unexpected directory {name:?}")));
        }
        let allowed = name == DB_ENTRY || name.strip_prefix("storage/").is_some_and(safe_path);
        if !allowed {
            return Err(invalid(format!(
                "unexpected entry {name:?}: a backup holds data.db and storage/ only"
            )));
        }
        if !names.insert(name.clone()) {
            return Err(invalid(format!("entry {name:?} appears twice")));
        }
        total = total.saturating_add(f.size());
        if total > MAX_UNPACKED {
            return Err(invalid(format!(
                "the archive unpacks to more than {MAX_UNPACKED} bytes"
            )));
        }
        entries.push(Entry {
            index,
            name,
            size: f.size(),
        });
    }
    let Some(db) = entries.iter().find(|e| e.name == DB_ENTRY) else {
        return Err(invalid("the archive holds no data.db"));
    };
    let mut head = [0u8; 16];
    let mut db_file = zip.by_index(db.index)?;
    db_file
        .read_exact(&mut head)
        .map_err(|_| invalid("data.db is not a SQLite database"))?;
    if &head != b"SQLite format 3\0" {
        return Err(invalid("data.db is not a SQLite database"));
    }
    Ok(entries)
}

/// Unpacks the `entries` of `path` (as [`inspect`] returned them) under `dest`, each file
/// cut at its declared size (a bomb declaring less than it inflates to fails its checksum
/// or its size check) and fsynced, then every directory fsynced.
pub fn extract(path: &Path, entries: &[Entry], dest: &Path) -> Result<(), ArchiveError> {
    let mut zip = ZipArchive::new(File::open(path)?)?;
    let mut dirs = std::collections::BTreeSet::new();
    dirs.insert(dest.to_path_buf());
    std::fs::create_dir_all(dest.join(STORAGE_DIR))?;
    dirs.insert(dest.join(STORAGE_DIR));
    for e in entries {
        let target = e.name.split('/').fold(dest.to_path_buf(), |p, s| p.join(s));
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
            let mut p = parent.to_path_buf();
            while p.starts_with(dest) && dirs.insert(p.clone()) {
                if !p.pop() {
                    break;
                }
            }
        }
        let mut src = zip.by_index(e.index)?;
        let mut out = File::options().write(true).create_new(true).open(&target)?;
        let written = io::copy(&mut (&mut src).take(e.size + 1), &mut out)
            .map_err(|err| invalid(format!("entry {:?} is damaged: {err}", e.name)))?;
        if written != e.size {
            return Err(invalid(format!(
                "entry {:?} does not unpack to its declared size",
                e.name
            )));
        }
        out.flush()?;
        out.sync_all()?;
    }
    for d in dirs {
        File::open(&d)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zip_of(dir: &Path, name: &str, entries: &[(&str, &[u8])]) -> PathBuf {
        let path = dir.join(name);
        let mut z = ZipWriter::new(File::create(&path).expect("create"));
        for (n, body) in entries {
            if n.ends_with('/') {
                z.add_directory(*n, SimpleFileOptions::default())
                    .expect("dir");
            } else {
                z.start_file(*n, SimpleFileOptions::default())
                    .expect("file");
                z.write_all(body).expect("write");
            }
        }
        z.finish().expect("finish");
        path
    }

    const DB: &[u8] = b"SQLite format 3\0rest of the file";

    /// A case: its name and the archive's entries.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a [u8])]);

    #[test]
    fn refuses_what_is_not_a_backup() {
        let dir = tempfile::tempdir().expect("dir");
        let cases: &[Case] = &[
            ("traversal", &[("data.db", DB), ("storage/../../x", b"x")]),
            ("dotdot", &[("data.db", DB), ("../data.db", b"x")]),
            ("absolute", &[("data.db", DB), ("/etc/x", b"x")]),
            ("backslash", &[("data.db", DB), ("storage/a\\..\\b", b"x")]),
            ("hidden", &[("data.db", DB), ("storage/.x", b"x")]),
            ("other", &[("data.db", DB), ("secret.key", b"x")]),
            ("nodb", &[("storage/a/b/c", b"x")]),
            (
                "notsqlite",
                &[("data.db", b"hello, this is not a database")],
            ),
            ("shortdb", &[("data.db", b"SQL")]),
            ("baddir", &[("data.db", DB), ("other/", b"")]),
        ];
        for (name, entries) in cases {
            let p = zip_of(dir.path(), name, entries);
            assert!(
                matches!(inspect(&p), Err(ArchiveError::Invalid(_))),
                "{name} accepted"
            );
        }
        let junk = dir.path().join("junk.zip");
        std::fs::write(&junk, b"PK\x03\x04 not really").expect("write");
        assert!(matches!(inspect(&junk), Err(ArchiveError::Invalid(_))));
    }

    #[test]
    fn accepts_and_unpacks_a_backup() {
        let dir = tempfile::tempdir().expect("dir");
        let p = zip_of(
            dir.path(),
            "ok.zip",
            &[
                ("data.db", DB),
                ("storage/", b""),
                ("storage/c1/r1/", b""),
                ("storage/c1/r1/a.txt", b"hello"),
            ],
        );
        let entries = inspect(&p).expect("valid");
        assert_eq!(entries.len(), 2);
        let out = dir.path().join("out");
        extract(&p, &entries, &out).expect("extract");
        assert_eq!(std::fs::read(out.join("data.db")).expect("db"), DB);
        assert_eq!(
            std::fs::read(out.join("storage/c1/r1/a.txt")).expect("file"),
            b"hello"
        );
    }

    #[test]
    fn a_bomb_is_cut_at_its_declared_size() {
        // An entry declaring 16 bytes that inflates to 1 MiB: the central directory is
        // patched to lie, as a bomb does.
        let dir = tempfile::tempdir().expect("dir");
        let big = vec![0u8; 1 << 20];
        let mut body = DB.to_vec();
        body.extend_from_slice(&big);
        let p = zip_of(dir.path(), "bomb.zip", &[("data.db", &body)]);
        let mut bytes = std::fs::read(&p).expect("read");
        let real = (body.len() as u32).to_le_bytes();
        let fake = 16u32.to_le_bytes();
        let mut patched = 0;
        for i in 0..bytes.len().saturating_sub(4) {
            if bytes[i..i + 4] == real {
                bytes[i..i + 4].copy_from_slice(&fake);
                patched += 1;
            }
        }
        assert!(patched >= 1);
        std::fs::write(&p, &bytes).expect("write");
        let out = dir.path().join("out");
        let res = inspect(&p).and_then(|entries| extract(&p, &entries, &out));
        assert!(res.is_err(), "a lying entry unpacked");
        let written = std::fs::metadata(out.join("data.db")).map_or(0, |m| m.len());
        assert!(written <= 17, "wrote {written} bytes");
    }

    #[test]
    fn writes_pocketbases_layout() {
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("snap.db");
        std::fs::write(&db, DB).expect("db");
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(storage.join("c1/r1/thumbs_a.png")).expect("mkdir");
        std::fs::write(storage.join("c1/r1/a.png"), b"png").expect("file");
        std::fs::write(storage.join("c1/r1/thumbs_a.png/10x10_a.png"), b"t").expect("thumb");
        std::fs::write(storage.join("c1/r1/.a.png.tmp"), b"partial").expect("tmp");
        let out = dir.path().join("b.zip");
        write(&db, &storage, &out).expect("write");
        let names: Vec<String> = inspect(&out)
            .expect("valid")
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(
            names,
            [
                "data.db",
                "storage/c1/r1/a.png",
                "storage/c1/r1/thumbs_a.png/10x10_a.png"
            ]
        );
    }
}
