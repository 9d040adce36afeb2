//! Password hashes: argon2id with OWASP's parameters for new hashes; bcrypt (`$2a$`,
//! `$2b$`, `$2y$`) accepted on verification for databases imported from PocketBase.

use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::AuthError;

fn hasher() -> Argon2<'static> {
    // OWASP: m = 19 MiB, t = 2, p = 1.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A PHC-format argon2id hash. CPU-heavy: call it off the async runtime.
pub fn hash_password(plain: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(plain.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Whether `plain` matches `hash` (argon2 PHC or bcrypt); comparisons are constant-time.
pub fn verify_password(plain: &str, hash: &str) -> Result<bool, AuthError> {
    if hash.starts_with("$2") {
        return Ok(bcrypt::verify(plain, hash).unwrap_or(false));
    }
    let parsed = match PasswordHash::new(hash) {
        Ok(p) => p,
        Err(_) => return Ok(false),
    };
    Ok(hasher().verify_password(plain.as_bytes(), &parsed).is_ok())
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

    #[test]
    fn argon2_round_trip() {
        let h = hash_password("Secret-pass-1").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password("Secret-pass-1", &h).expect("verify"));
        assert!(!verify_password("secret-pass-1", &h).expect("verify"));
        assert!(!needs_rehash(&h));
    }

    #[test]
    fn bcrypt_hashes_from_pocketbase_verify() {
        let h = bcrypt::hash("pass123456", 4).expect("bcrypt");
        assert!(verify_password("pass123456", &h).expect("verify"));
        assert!(!verify_password("pass1234567", &h).expect("verify"));
        assert!(needs_rehash(&h));
    }

    #[test]
    fn garbage_hashes_never_verify() {
        for h in ["", "plain", "$argon2id$bad", "$2b$bad"] {
            assert!(!verify_password("x", h).expect("verify"));
        }
    }
}
