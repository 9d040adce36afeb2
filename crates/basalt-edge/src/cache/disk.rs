//! The disk tier: one file per entry (a length-prefixed JSON header, then the body), written
//! to a temporary name and renamed so a crash never leaves half an entry; the index is
//! rebuilt from the files' headers at start and bounded by bytes like the memory tier.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;
use http::HeaderName;
use sha2::{Digest, Sha256};

use super::lru::Lru;
use super::{Entry, EntryMeta, locked};

const SUFFIX: &str = "entry";
/// Largest header read back; anything bigger is not a file this tier wrote.
const MAX_META: u32 = 4 << 20;

/// An entry found on disk at start, with the header names its response varies on.
pub type Found = (EntryMeta, Vec<HeaderName>);

pub struct DiskTier {
    dir: PathBuf,
    /// Key -> URL (to clean the zone's index when a file is evicted).
    lru: Mutex<Lru<String>>,
}

fn file_name(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.{SUFFIX}")
}

fn read_meta(file: &mut fs::File) -> io::Result<EntryMeta> {
    let mut len = [0u8; 4];
    file.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len);
    if len > MAX_META {
        return Err(io::Error::other("cache file header too large"));
    }
    let mut meta = vec![0u8; len as usize];
    file.read_exact(&mut meta)?;
    serde_json::from_slice(&meta).map_err(io::Error::other)
}

impl DiskTier {
    /// Opens (creating) `dir`, drops leftovers of interrupted writes and unreadable files,
    /// and returns what is stored, oldest first, with each entry's `Vary` names.
    pub fn open(dir: &Path, max: u64) -> io::Result<(Self, Vec<Found>)> {
        fs::create_dir_all(dir)?;
        let mut found = Vec::new();
        for item in fs::read_dir(dir)? {
            let item = item?;
            let path = item.path();
            let name = item.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") {
                let _ = fs::remove_file(&path);
                continue;
            }
            if !name.ends_with(SUFFIX) {
                continue;
            }
            let md = item.metadata()?;
            let meta = fs::File::open(&path).and_then(|mut f| read_meta(&mut f));
            match meta {
                Ok(meta) if file_name(&meta.key) == name => {
                    found.push((md.modified().ok(), md.len(), meta))
                }
                _ => {
                    tracing::warn!(file = %path.display(), "unreadable cache file removed");
                    let _ = fs::remove_file(&path);
                }
            }
        }
        found.sort_by_key(|(modified, _, _)| *modified);
        let mut lru = Lru::new(max);
        let mut kept = Vec::new();
        for (_, len, meta) in found {
            for (key, _) in lru.insert(meta.key.clone(), meta.url.clone(), len) {
                let _ = fs::remove_file(dir.join(file_name(&key)));
            }
            let vary = super::vary_names(&entry_headers(&meta)).unwrap_or_default();
            kept.push((meta, vary));
        }
        kept.retain(|(m, _)| lru.contains(&m.key));
        Ok((
            Self {
                dir: dir.to_path_buf(),
                lru: Mutex::new(lru),
            },
            kept,
        ))
    }

    pub fn size(&self) -> (u64, usize) {
        let l = locked(&self.lru);
        (l.bytes(), l.len())
    }

    /// Writes `entry` atomically; returns the (key, url) of entries evicted for room.
    pub fn write(&self, entry: &Entry) -> io::Result<Vec<(String, String)>> {
        let meta = serde_json::to_vec(&entry.meta).map_err(io::Error::other)?;
        let meta_len = u32::try_from(meta.len())
            .ok()
            .filter(|n| *n <= MAX_META)
            .ok_or_else(|| io::Error::other("cache entry header too large"))?;
        let tmp = self
            .dir
            .join(format!(".tmp-{:016x}", rand::random::<u64>()));
        let result = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&meta_len.to_be_bytes())?;
            f.write_all(&meta)?;
            f.write_all(&entry.body)?;
            f.flush()?;
            drop(f);
            fs::rename(&tmp, self.dir.join(file_name(&entry.meta.key)))
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let weight = 4 + meta.len() as u64 + entry.body.len() as u64;
        let evicted =
            locked(&self.lru).insert(entry.meta.key.clone(), entry.meta.url.clone(), weight);
        for (key, _) in &evicted {
            let _ = fs::remove_file(self.dir.join(file_name(key)));
        }
        Ok(evicted)
    }

    /// Reads an entry back; a missing or broken file is forgotten.
    pub fn read(&self, key: &str) -> Option<Entry> {
        locked(&self.lru).get(key)?;
        let path = self.dir.join(file_name(key));
        let read = (|| {
            let mut f = fs::File::open(&path)?;
            let meta = read_meta(&mut f)?;
            let mut body = Vec::new();
            f.read_to_end(&mut body)?;
            Ok::<_, io::Error>(Entry {
                meta,
                body: Bytes::from(body),
            })
        })();
        match read {
            Ok(e) if e.meta.key == key => Some(e),
            _ => {
                self.remove(key);
                None
            }
        }
    }

    pub fn remove(&self, key: &str) -> bool {
        let known = locked(&self.lru).remove(key).is_some();
        let removed = fs::remove_file(self.dir.join(file_name(key))).is_ok();
        known || removed
    }
}

fn entry_headers(meta: &EntryMeta) -> http::HeaderMap {
    Entry {
        meta: meta.clone(),
        body: Bytes::new(),
    }
    .headers()
}
