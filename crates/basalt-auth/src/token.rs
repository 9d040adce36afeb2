//! JWTs shaped like PocketBase's (`id`, `collectionId`, `type`, `refreshable`, `exp`) so
//! the SDK can read them. HS256 only; the key is the server secret joined with the
//! record's `tokenKey`, so changing a record's tokenKey revokes all its tokens.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

use crate::AuthError;

/// The server's signing secret.
#[derive(Clone)]
pub struct TokenKeys {
    secret: Vec<u8>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(<redacted>)")
    }
}

impl TokenKeys {
    pub fn new(secret: Vec<u8>) -> Self {
        Self { secret }
    }

    fn key(&self, record_token_key: &str) -> Vec<u8> {
        let mut k = self.secret.clone();
        k.extend_from_slice(record_token_key.as_bytes());
        k
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenClaims {
    pub id: String,
    pub collection_id: String,
    #[serde(rename = "type")]
    pub token_type: String,
    #[serde(default)]
    pub refreshable: bool,
    pub exp: i64,
}

pub fn issue_token(
    keys: &TokenKeys,
    claims: &TokenClaims,
    record_token_key: &str,
) -> Result<String, AuthError> {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(&keys.key(record_token_key)),
    )
    .map_err(|_| AuthError::InvalidToken)
}

/// Claims read without checking the signature: only to find whose key verifies it.
pub fn decode_unverified(token: &str) -> Result<TokenClaims, AuthError> {
    jsonwebtoken::dangerous::insecure_decode::<TokenClaims>(token)
        .map(|d| d.claims)
        .map_err(|_| AuthError::InvalidToken)
}

/// Checks signature (HS256 only), expiry (no leeway) and shape.
pub fn verify_token(
    keys: &TokenKeys,
    token: &str,
    record_token_key: &str,
) -> Result<TokenClaims, AuthError> {
    let mut v = Validation::new(Algorithm::HS256);
    v.leeway = 0;
    v.set_required_spec_claims(&["exp"]);
    decode::<TokenClaims>(
        token,
        &DecodingKey::from_secret(&keys.key(record_token_key)),
        &v,
    )
    .map(|d| d.claims)
    .map_err(|_| AuthError::InvalidToken)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> TokenClaims {
        TokenClaims {
            id: "abc".into(),
            collection_id: "_pb_users_auth_".into(),
            token_type: "auth".into(),
            refreshable: true,
            exp,
        }
    }

    fn future() -> i64 {
        chrono::Utc::now().timestamp() + 3600
    }

    #[test]
    fn issued_tokens_verify_only_with_the_same_keys() {
        let keys = TokenKeys::new(b"server-secret".to_vec());
        let t = issue_token(&keys, &claims(future()), "tk1").expect("issue");
        assert_eq!(verify_token(&keys, &t, "tk1").expect("valid").id, "abc");
        assert_eq!(
            decode_unverified(&t).expect("decode").collection_id,
            "_pb_users_auth_"
        );
        assert!(
            verify_token(&keys, &t, "tk2").is_err(),
            "a new tokenKey revokes"
        );
        assert!(verify_token(&TokenKeys::new(b"other".to_vec()), &t, "tk1").is_err());
    }

    #[test]
    fn expired_tampered_and_alg_none_tokens_are_rejected() {
        let keys = TokenKeys::new(b"server-secret".to_vec());
        let expired =
            issue_token(&keys, &claims(chrono::Utc::now().timestamp() - 10), "k").expect("issue");
        assert!(verify_token(&keys, &expired, "k").is_err());
        let t = issue_token(&keys, &claims(future()), "k").expect("issue");
        let mut parts: Vec<&str> = t.split('.').collect();
        // alg "none" header with the same payload and no signature
        let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
        parts[0] = none_header;
        assert!(verify_token(&keys, &format!("{}.{}.", parts[0], parts[1]), "k").is_err());
        let tampered = format!("{}x", t);
        assert!(verify_token(&keys, &tampered, "k").is_err());
        assert!(verify_token(&keys, "not-a-token", "k").is_err());
    }
}
