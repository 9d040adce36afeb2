//! One-time codes: random digits from the OS generator, compared in constant time.

use rand::Rng;
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
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"123456", b"123456"));
        assert!(!constant_time_eq(b"123456", b"123457"));
        assert!(!constant_time_eq(b"12345", b"123456"));
    }
}
