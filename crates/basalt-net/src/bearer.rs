//! A shared secret a client presents as `Authorization: Bearer <token>`: the one check
//! every bearer-protected endpoint calls (the edge's admin listener, the API's `/metrics`).

use std::sync::Arc;

/// A configured bearer token. A secret: its `Debug` never shows it.
#[derive(Clone)]
pub struct BearerToken(Arc<[u8]>);

impl BearerToken {
    pub fn new(token: &str) -> Self {
        Self(token.as_bytes().into())
    }

    /// Whether an `Authorization` header value carries this token (scheme compared without
    /// case, blanks around the credentials ignored). Constant time in the token's bytes:
    /// only a difference in length shows.
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        let Some((scheme, given)) = authorization.and_then(|v| v.split_at_checked(7)) else {
            return false;
        };
        scheme.eq_ignore_ascii_case(b"bearer ")
            && bool::from(subtle::ConstantTimeEq::ct_eq(
                given.trim_ascii(),
                &self.0[..],
            ))
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_token_as_a_bearer_credential_is_admitted() {
        let token = BearerToken::new("0123456789abcdef");
        let admits = |v: Option<&str>| token.admits(v.map(str::as_bytes));
        assert!(admits(Some("Bearer 0123456789abcdef")));
        assert!(admits(Some("bearer  0123456789abcdef ")));
        for bad in [
            None,
            Some("Bearer 0123456789abcdeF"),
            Some("Bearer 0123456789abcde"),
            Some("Bearer 0123456789abcdef0"),
            Some("Basic 0123456789abcdef"),
            Some("0123456789abcdef"),
            Some("Bearer"),
            Some(""),
        ] {
            assert!(!admits(bad), "{bad:?}");
        }
        assert_eq!(format!("{token:?}"), "BearerToken(<redacted>)");
    }
}
