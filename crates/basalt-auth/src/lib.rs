//! Auth service: password hashing (argon2id for new hashes; argon2 and bcrypt verified so
//! imported PocketBase users keep their passwords) and JWT issue/verification.
//!
//! It must never know about HTTP or SQL: callers hand it secrets, records' token keys and
//! plaintexts, and get hashes, tokens and claims back.

mod password;
mod token;

pub use password::{
    dummy_verify, hash_password, needs_rehash, release_work_memory, verify_password,
};
pub use token::{TokenClaims, TokenKeys, decode_unverified, issue_token, verify_token};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("invalid or expired token")]
    InvalidToken,
}
