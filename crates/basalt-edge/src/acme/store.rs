//! The certificate store on disk: the ACME account, each certificate's chain and key,
//! written atomically (temp file, fsync, rename) with keys readable by the owner only.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Files of one certificate, named after its first domain.
pub struct CertFiles {
    pub chain: PathBuf,
    pub key: PathBuf,
}

pub fn cert_files(store: &Path, primary: &str) -> CertFiles {
    CertFiles {
        chain: store.join(format!("{primary}.crt.pem")),
        key: store.join(format!("{primary}.key.pem")),
    }
}

pub fn account_file(store: &Path) -> PathBuf {
    store.join("account.json")
}

/// A certificate read from the store, ready to serve.
pub struct StoredCert {
    pub key: Arc<CertifiedKey>,
    /// The leaf's notAfter, seconds since the epoch.
    pub not_after: i64,
    pub serial: String,
    /// DNS names of the leaf's subjectAltName.
    pub names: Vec<String>,
    /// Modification time of the chain file when it was read.
    pub modified: Option<SystemTime>,
}

/// Writes `bytes` to `path` so readers see the old or the new file, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, if private { 0o600 } else { 0o644 });
    let written = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename itself must reach the disk before the write counts as done.
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

pub fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reads a chain and key pair; `Err` says why it cannot be served.
pub fn load(files: &CertFiles) -> Result<StoredCert, String> {
    let modified = modified(&files.chain);
    let chain_pem = std::fs::read(&files.chain).map_err(|e| e.to_string())?;
    let key_pem = std::fs::read(&files.key).map_err(|e| e.to_string())?;
    let mut stored = parse(&chain_pem, &key_pem)?;
    stored.modified = modified;
    Ok(stored)
}

/// Parses a PEM chain and key into a servable certificate.
pub fn parse(chain_pem: &[u8], key_pem: &[u8]) -> Result<StoredCert, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate chain: {e}"))?;
    let Some(leaf) = chain.first() else {
        return Err("no certificate in the chain file".into());
    };
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| format!("certificate: {e}"))?;
    let not_after = parsed.validity().not_after.timestamp();
    let serial = parsed.tbs_certificate.raw_serial_as_string();
    let mut names = Vec::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("private key: {e}"))?;
    let signing = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("private key: {e}"))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| format!("key does not match the certificate: {e}"))?;
    Ok(StoredCert {
        key: Arc::new(certified),
        not_after,
        serial,
        names,
        modified: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let c = rcgen::generate_simple_self_signed(names).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    #[test]
    fn atomic_writes_replace_whole_files_and_keep_keys_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.key.pem");
        write_atomic(&p, b"one", true).unwrap();
        write_atomic(&p, b"two", true).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn a_stored_pair_loads_with_its_names_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let files = cert_files(dir.path(), "example.com");
        let (chain, key) = self_signed(&["example.com", "www.example.com"]);
        write_atomic(&files.chain, chain.as_bytes(), false).unwrap();
        write_atomic(&files.key, key.as_bytes(), true).unwrap();
        let c = load(&files).unwrap();
        assert_eq!(c.names, ["example.com", "www.example.com"]);
        assert!(c.not_after > 0);
        assert!(!c.serial.is_empty());
        assert!(c.modified.is_some());
    }

    #[test]
    fn a_key_from_another_certificate_is_refused() {
        let (chain, _) = self_signed(&["a.example"]);
        let (_, other_key) = self_signed(&["a.example"]);
        let e = parse(chain.as_bytes(), other_key.as_bytes()).err().unwrap();
        assert!(e.contains("does not match"), "{e}");
        assert!(parse(b"", b"").is_err());
    }
}
