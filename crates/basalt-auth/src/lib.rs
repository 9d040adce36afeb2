//! Auth service: password hashing (argon2id for new hashes; argon2 and bcrypt verified so
//! imported PocketBase users keep their passwords), JWT issue/verification per token kind
//! with rotatable server secrets, one-time codes, and the emails of the auth flows
//! (templates and SMTP delivery).
//!
//! It must never know about HTTP or SQL: callers hand it secrets, records' token keys,
//! plaintexts and SMTP settings, and get hashes, tokens, codes and sent mail back.

mod mail;
mod otp;
mod password;
mod token;

pub use mail::{Mailer, OutgoingMail, SmtpSettings, render_template};
pub use otp::{constant_time_eq, origin_fingerprint, otp_code};
pub use password::{
    dummy_verify, hash_password, needs_rehash, release_work_memory, verify_password,
};
pub use token::{
    TokenClaims, TokenKeys, TokenKind, TokenScope, decode_unverified, issue_token, verify_token,
};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("invalid or expired token")]
    InvalidToken,
    #[error("mail could not be built: {0}")]
    MailBuild(String),
    #[error("mail could not be sent: {0}")]
    MailSend(String),
}
