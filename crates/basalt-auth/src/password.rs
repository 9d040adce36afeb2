//! Password hashes: argon2id with OWASP's parameters for new hashes; bcrypt (`$2a$`,
//! `$2b$`, `$2y$`) accepted on verification for databases imported from PocketBase.
//!
//! Each argon2 run needs 19 MiB of working memory. Allocating it per call let the C
//! allocator keep a fresh copy per call site and thread (measured: 188 MB resident after
//! twenty logins), so every thread reuses one buffer of its own while busy, and gives it
//! back with [`release_work_memory`] when idle. The buffer is reserved above glibc's
//! 32 MiB ceiling for its dynamic mmap threshold, so it is always its own mapping, returned
//! to the system when freed (pages beyond the 19 MiB in use are never touched).

use std::cell::RefCell;
use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use crate::AuthError;

thread_local! {
    static WORK_MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Reserved size of a working buffer: above glibc's `DEFAULT_MMAP_THRESHOLD_MAX` (32 MiB on
/// 64-bit), so glibc neither serves it from an arena (where a freed buffer stays resident)
/// nor raises its mmap threshold after freeing it.
const RESERVED_BLOCKS: usize = 33 * 1024;

/// Frees this thread's argon2 working memory (a password worker calls it when idle).
pub fn release_work_memory() {
    WORK_MEMORY.with(|mem| *mem.borrow_mut() = Vec::new());
}

/// OWASP: m = 19 MiB, t = 2, p = 1.
fn owasp_params() -> Params {
    Params::new(19 * 1024, 2, 1, Some(32)).unwrap_or_default()
}

/// Runs argon2 into `out` on this thread's reusable working memory.
fn argon2_into(
    alg: Algorithm,
    version: Version,
    params: Params,
    plain: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), AuthError> {
    let blocks = params.block_count();
    WORK_MEMORY.with(|mem| {
        let mut mem = mem.borrow_mut();
        if mem.capacity() < blocks {
            *mem = Vec::with_capacity(blocks.max(RESERVED_BLOCKS));
        }
        if mem.len() < blocks {
            mem.resize(blocks, Block::default());
        }
        Argon2::new(alg, version, params)
            .hash_password_into_with_memory(plain, salt, out, &mut mem[..blocks])
            .map_err(|e| AuthError::Hash(e.to_string()))
    })
}

/// A PHC-format argon2id hash. CPU-heavy: call it off the async runtime.
pub fn hash_password(plain: &str) -> Result<String, AuthError> {
    let params = owasp_params();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|e| AuthError::Hash(e.to_string()))?;
    let mut out = [0u8; 32];
    argon2_into(
        Algorithm::Argon2id,
        Version::V0x13,
        params.clone(),
        plain.as_bytes(),
        salt_raw,
        &mut out,
    )?;
    let hash = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: (&params)
            .try_into()
            .map_err(|e: argon2::password_hash::Error| AuthError::Hash(e.to_string()))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| AuthError::Hash(e.to_string()))?),
    };
    Ok(hash.to_string())
}

/// Whether `plain` matches `hash` (argon2 PHC or bcrypt); comparisons are constant-time.
pub fn verify_password(plain: &str, hash: &str) -> Result<bool, AuthError> {
    if hash.starts_with("$2") {
        return Ok(bcrypt::verify(plain, hash).unwrap_or(false));
    }
    let Ok(parsed) = PasswordHash::new(hash) else {
        return Ok(false);
    };
    let Ok(alg) = Algorithm::try_from(parsed.algorithm) else {
        return Ok(false);
    };
    let version = parsed
        .version
        .and_then(|v| Version::try_from(v).ok())
        .unwrap_or_default();
    let (Ok(params), Some(salt), Some(expected)) =
        (Params::try_from(&parsed), parsed.salt, parsed.hash)
    else {
        return Ok(false);
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_raw) = salt.decode_b64(&mut salt_bytes) else {
        return Ok(false);
    };
    let mut out = vec![0u8; expected.len()];
    if argon2_into(alg, version, params, plain.as_bytes(), salt_raw, &mut out).is_err() {
        return Ok(false);
    }
    // `Output` compares in constant time.
    Ok(Output::new(&out).is_ok_and(|o| o == expected))
}

/// True for hashes that should be replaced by a fresh argon2id hash at the next login.
pub fn needs_rehash(hash: &str) -> bool {
    !hash.starts_with("$argon2id$")
}

/// Spends the same work as a real verification, so unknown identities cannot be told
/// apart by response time.
pub fn dummy_verify(plain: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let hash = DUMMY.get_or_init(|| hash_password("basalt-dummy-password").unwrap_or_default());
    let _ = verify_password(plain, hash);
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordHasher;

    #[test]
    fn argon2_round_trip() {
        let h = hash_password("Secret-pass-1").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("Secret-pass-1", &h).expect("verify"));
        assert!(!verify_password("secret-pass-1", &h).expect("verify"));
        assert!(!needs_rehash(&h));
    }

    #[test]
    fn hashes_from_the_reference_implementation_verify() {
        // A hash made by the argon2 crate's own PHC path, with other parameters.
        let params = Params::new(8 * 1024, 3, 1, None).expect("params");
        let salt = SaltString::generate(&mut OsRng);
        let h = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"other-pass-2", &salt)
            .expect("hash")
            .to_string();
        assert!(verify_password("other-pass-2", &h).expect("verify"));
        assert!(!verify_password("other-pass-3", &h).expect("verify"));
    }

    #[test]
    fn bcrypt_hashes_from_pocketbase_verify() {
        let h = bcrypt::hash("pass123456", 4).expect("bcrypt");
        assert!(verify_password("pass123456", &h).expect("verify"));
        assert!(!verify_password("pass1234567", &h).expect("verify"));
        assert!(needs_rehash(&h));
    }

    #[test]
    fn a_hash_written_by_pocketbase_itself_verifies() {
        // From the data.db of a real PocketBase (`pocketbase superuser upsert a@b.co Pass-12345678`).
        let h = "$2a$10$IDq9f9tc6l6TSj.I6HgN.uyPRo5qbSrqSnzv5F51fnx8EmlqlOmlW";
        assert!(verify_password("Pass-12345678", h).expect("verify"));
        assert!(!verify_password("Pass-12345679", h).expect("verify"));
        assert!(needs_rehash(h));
    }

    #[test]
    fn garbage_hashes_never_verify() {
        for h in [
            "",
            "plain",
            "$argon2id$bad",
            "$2b$bad",
            "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
        ] {
            assert!(!verify_password("x", h).expect("verify"));
        }
    }
}
