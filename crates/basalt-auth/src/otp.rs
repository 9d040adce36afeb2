//! One-time codes (random digits from the OS generator), constant-time comparison, and
//! the fingerprint of a sign-in origin.

use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A code of `len` decimal digits (at least 4).
pub fn otp_code(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len.max(4))
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

/// Equality that takes the same time wherever the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A sign-in origin (client address and user agent) as a hex SHA-256, so `_authOrigins`
/// remembers where a record signed in from without storing the address itself.
pub fn origin_fingerprint(ip: &str, user_agent: &str) -> String {
    let mut h = Sha256::new();
    h.update(ip.as_bytes());
    h.update([0u8]);
    h.update(user_agent.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_digits_of_the_asked_length_and_differ() {
        let a = otp_code(8);
        assert_eq!(a.len(), 8);
        assert!(a.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(otp_code(1).len(), 4, "never shorter than four digits");
        let distinct: std::collections::HashSet<String> = (0..50).map(|_| otp_code(8)).collect();
        assert!(distinct.len() > 45);
    }

    #[test]
    fn fingerprints_separate_address_and_agent() {
        let a = origin_fingerprint("10.0.0.1", "curl");
        assert_eq!(a.len(), 64);
        assert_eq!(a, origin_fingerprint("10.0.0.1", "curl"));
        assert_ne!(a, origin_fingerprint("10.0.0.1", "firefox"));
        assert_ne!(origin_fingerprint("10.0.0.1c", "url"), a);
    }

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"123456", b"123456"));
        assert!(!constant_time_eq(b"123456", b"123457"));
        assert!(!constant_time_eq(b"12345", b"123456"));
    }
}
