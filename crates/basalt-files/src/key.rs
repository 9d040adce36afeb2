//! Object keys: relative `/`-separated paths that cannot leave the storage root. Every key
//! a caller passes goes through [`ObjectKey::new`], so a name from a request never reaches
//! a filesystem path or an S3 key unchecked.

use std::fmt;

use crate::StorageError;

/// Longest key accepted, in bytes (S3's limit is 1024).
const MAX_KEY_LEN: usize = 1024;

/// A validated key: non-empty segments of at most 255 bytes, none `.`/`..`-like (no
/// segment starts with `.`, which also keeps temporary files out of the key space), no
/// `\`, no control characters, no leading or trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

impl ObjectKey {
    pub fn new(key: impl Into<String>) -> Result<ObjectKey, StorageError> {
        let key = key.into();
        let ok = !key.is_empty()
            && key.len() <= MAX_KEY_LEN
            && key.split('/').all(|seg| {
                !seg.is_empty()
                    && seg.len() <= 255
                    && !seg.starts_with('.')
                    && !seg.chars().any(|c| c == '\\' || c.is_control())
            });
        if ok {
            Ok(ObjectKey(key))
        } else {
            Err(StorageError::InvalidKey(key))
        }
    }

    /// A record's file: `{collectionId}/{recordId}/{filename}`, PocketBase's layout.
    pub fn file(
        collection_id: &str,
        record_id: &str,
        filename: &str,
    ) -> Result<ObjectKey, StorageError> {
        Self::checked_join(&[collection_id, record_id, filename])
    }

    /// A thumb of a record's file:
    /// `{collectionId}/{recordId}/thumbs_{filename}/{size}_{filename}`.
    pub fn thumb(
        collection_id: &str,
        record_id: &str,
        filename: &str,
        size: &str,
    ) -> Result<ObjectKey, StorageError> {
        Self::checked_join(&[
            collection_id,
            record_id,
            &format!("thumbs_{filename}"),
            &format!("{size}_{filename}"),
        ])
    }

    /// Everything stored for one record (its files and their thumbs).
    pub fn record_prefix(collection_id: &str, record_id: &str) -> Result<ObjectKey, StorageError> {
        Self::checked_join(&[collection_id, record_id])
    }

    /// Everything stored for one collection.
    pub fn collection_prefix(collection_id: &str) -> Result<ObjectKey, StorageError> {
        Self::checked_join(&[collection_id])
    }

    /// Joins parts that must each be one segment (a `/` inside a part is refused).
    fn checked_join(parts: &[&str]) -> Result<ObjectKey, StorageError> {
        if parts.iter().any(|p| p.contains('/')) {
            return Err(StorageError::InvalidKey(parts.join("/")));
        }
        ObjectKey::new(parts.join("/"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The last segment (the file name).
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or_default()
    }

    /// True when `self` is `prefix` or lies under it (whole segments: `a/b` is under
    /// `a`, `ab/c` is not).
    pub fn starts_with(&self, prefix: &ObjectKey) -> bool {
        self.0 == prefix.0
            || self
                .0
                .strip_prefix(&prefix.0)
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_never_escape_the_root() {
        for bad in [
            "",
            "/",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a/",
            "..",
            ".",
            ".hidden",
            "a/.tmp-1",
            "a\\..\\b",
            "a\0b",
            "a\nb",
        ] {
            assert!(ObjectKey::new(bad).is_err(), "{bad:?}");
        }
        assert!(ObjectKey::new("x".repeat(256)).is_err());
        assert!(ObjectKey::new(["a"; 600].join("/")).is_err());
        assert!(ObjectKey::file("c", "r", "../x").is_err());
        assert!(ObjectKey::file("c", "r/../..", "x").is_err());
        assert!(ObjectKey::file("c", "", "x").is_err());
    }

    #[test]
    fn layout_is_pocketbases() {
        let k = ObjectKey::file("pbc_1", "abc", "a_1234567890.png").expect("key");
        assert_eq!(k.as_str(), "pbc_1/abc/a_1234567890.png");
        assert_eq!(k.name(), "a_1234567890.png");
        let t = ObjectKey::thumb("pbc_1", "abc", "a_1234567890.png", "100x100t").expect("key");
        assert_eq!(
            t.as_str(),
            "pbc_1/abc/thumbs_a_1234567890.png/100x100t_a_1234567890.png"
        );
        let p = ObjectKey::record_prefix("pbc_1", "abc").expect("prefix");
        assert!(k.starts_with(&p) && t.starts_with(&p));
        assert!(!ObjectKey::new("pbc_1/abcd/x").expect("key").starts_with(&p));
        let c = ObjectKey::collection_prefix("pbc_1").expect("prefix");
        assert!(p.starts_with(&c) && t.starts_with(&c));
        assert_eq!(t.segments().count(), 4);
    }
}
