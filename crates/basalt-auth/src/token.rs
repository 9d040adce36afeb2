//! JWTs shaped like PocketBase's (`id`, `collectionId`, `type`, `exp`, plus `refreshable`
//! or `email`/`newEmail` by kind) so the SDK can read them.
//!
//! Only HS256 is accepted, and the header's `alg` is checked before anything else, so
//! `none` and RS/HS confusion never reach a verifier. A token's key is the server secret,
//! the collection's secret for that token kind and the record's `tokenKey` joined: a new
//! tokenKey revokes every token of one record, a new collection secret every token of one
//! kind. Server secrets rotate: tokens are signed with the current secret and still
//! verify with the previous ones listed until they are dropped from the configuration.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

use crate::AuthError;

/// What a token is for; a token of one kind never passes as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Auth,
    Verification,
    PasswordReset,
    EmailChange,
    File,
}

impl TokenKind {
    /// The `type` claim, as PocketBase writes it.
    pub fn claim(self) -> &'static str {
        match self {
            TokenKind::Auth => "auth",
            TokenKind::Verification => "verification",
            TokenKind::PasswordReset => "passwordReset",
            TokenKind::EmailChange => "emailChange",
            TokenKind::File => "file",
        }
    }
}

/// The server's signing secrets: the current one and those still accepted.
#[derive(Clone)]
pub struct TokenKeys {
    current: Vec<u8>,
    previous: Vec<Vec<u8>>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(<redacted>)")
    }
}

impl TokenKeys {
    pub fn new(secret: Vec<u8>) -> Self {
        Self {
            current: secret,
            previous: vec![],
        }
    }

    /// `previous` secrets verify tokens issued before a rotation; none signs.
    pub fn with_previous(secret: Vec<u8>, previous: Vec<Vec<u8>>) -> Self {
        Self {
            current: secret,
            previous,
        }
    }

    /// A 128-bit key for `purpose`, derived from the current secret (SHA-256 over a
    /// length-prefixed purpose and the secret): every node of a deployment derives the
    /// same one, and it tells nothing about the secret.
    pub fn derived_key(&self, purpose: &str) -> [u8; 16] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update((purpose.len() as u64).to_be_bytes());
        h.update(purpose.as_bytes());
        h.update(&self.current);
        let digest = h.finalize();
        let mut key = [0; 16];
        key.copy_from_slice(&digest[..16]);
        key
    }

    fn join(server: &[u8], collection_secret: &str, record_token_key: &str) -> Vec<u8> {
        // Lengths are prefixed so no two different triples join to the same key.
        let mut k = Vec::with_capacity(
            server.len() + collection_secret.len() + record_token_key.len() + 16,
        );
        for part in [
            server,
            collection_secret.as_bytes(),
            record_token_key.as_bytes(),
        ] {
            k.extend_from_slice(&(part.len() as u64).to_be_bytes());
            k.extend_from_slice(part);
        }
        k
    }
}

/// The keys of one token: the collection's secret for its kind and the record's tokenKey
/// (plus, for single-use kinds, whatever changes when the token is used).
#[derive(Debug, Clone, Copy)]
pub struct TokenScope<'a> {
    pub collection_secret: &'a str,
    pub record_key: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenClaims {
    pub id: String,
    pub collection_id: String,
    #[serde(rename = "type")]
    pub token_type: String,
    /// Auth tokens only: impersonation tokens are not refreshable.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refreshable: bool,
    /// Verification and reset tokens: the address the token was sent to; email change: the old one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Email change tokens: the address to switch to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_email: Option<String>,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

impl TokenClaims {
    /// Claims of `kind` for a record, expiring `duration` seconds from now.
    pub fn new(kind: TokenKind, id: &str, collection_id: &str, duration: i64) -> Self {
        Self {
            id: id.to_string(),
            collection_id: collection_id.to_string(),
            token_type: kind.claim().to_string(),
            refreshable: false,
            email: None,
            new_email: None,
            exp: chrono::Utc::now().timestamp().saturating_add(duration),
            nbf: None,
        }
    }
}

pub fn issue_token(
    keys: &TokenKeys,
    claims: &TokenClaims,
    scope: TokenScope<'_>,
) -> Result<String, AuthError> {
    let key = TokenKeys::join(&keys.current, scope.collection_secret, scope.record_key);
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(&key),
    )
    .map_err(|_| AuthError::InvalidToken)
}

/// Claims read without checking the signature: only to find whose keys verify it.
/// Tokens whose header names any algorithm but HS256 are refused here already.
pub fn decode_unverified(token: &str) -> Result<TokenClaims, AuthError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::InvalidToken)?;
    if header.alg != Algorithm::HS256 {
        return Err(AuthError::InvalidToken);
    }
    jsonwebtoken::dangerous::insecure_decode::<TokenClaims>(token)
        .map(|d| d.claims)
        .map_err(|_| AuthError::InvalidToken)
}

/// Checks the algorithm (HS256 only, from the header first), the signature against the
/// current then each previous server secret, `exp` and `nbf` (no leeway) and the kind.
pub fn verify_token(
    keys: &TokenKeys,
    token: &str,
    kind: TokenKind,
    scope: TokenScope<'_>,
) -> Result<TokenClaims, AuthError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::InvalidToken)?;
    if header.alg != Algorithm::HS256 {
        return Err(AuthError::InvalidToken);
    }
    let mut v = Validation::new(Algorithm::HS256);
    v.leeway = 0;
    v.validate_nbf = true;
    v.validate_aud = false;
    v.set_required_spec_claims(&["exp"]);
    for server in std::iter::once(&keys.current).chain(keys.previous.iter()) {
        let key = TokenKeys::join(server, scope.collection_secret, scope.record_key);
        match decode::<TokenClaims>(token, &DecodingKey::from_secret(&key), &v) {
            Ok(d) if d.claims.token_type == kind.claim() => return Ok(d.claims),
            Ok(_) => return Err(AuthError::InvalidToken),
            Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature) => {
                continue;
            }
            Err(_) => return Err(AuthError::InvalidToken),
        }
    }
    Err(AuthError::InvalidToken)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCOPE: TokenScope<'static> = TokenScope {
        collection_secret: "collection-secret",
        record_key: "tk1",
    };

    fn claims(exp_in: i64) -> TokenClaims {
        let mut c = TokenClaims::new(TokenKind::Auth, "abc", "_pb_users_auth_", exp_in);
        c.refreshable = true;
        c
    }

    #[test]
    fn issued_tokens_verify_only_with_the_same_keys_and_kind() {
        let keys = TokenKeys::new(b"server-secret".to_vec());
        let t = issue_token(&keys, &claims(3600), SCOPE).expect("issue");
        assert_eq!(
            verify_token(&keys, &t, TokenKind::Auth, SCOPE)
                .expect("valid")
                .id,
            "abc"
        );
        assert_eq!(
            decode_unverified(&t).expect("decode").collection_id,
            "_pb_users_auth_"
        );
        let other_record = TokenScope {
            record_key: "tk2",
            ..SCOPE
        };
        assert!(verify_token(&keys, &t, TokenKind::Auth, other_record).is_err());
        let other_collection = TokenScope {
            collection_secret: "x",
            ..SCOPE
        };
        assert!(verify_token(&keys, &t, TokenKind::Auth, other_collection).is_err());
        assert!(verify_token(&keys, &t, TokenKind::PasswordReset, SCOPE).is_err());
        assert!(
            verify_token(
                &TokenKeys::new(b"other".to_vec()),
                &t,
                TokenKind::Auth,
                SCOPE
            )
            .is_err()
        );
    }

    #[test]
    fn rotated_secrets_verify_until_dropped() {
        let old = TokenKeys::new(b"old-secret".to_vec());
        let t = issue_token(&old, &claims(3600), SCOPE).expect("issue");
        let rotated =
            TokenKeys::with_previous(b"new-secret".to_vec(), vec![b"old-secret".to_vec()]);
        assert!(verify_token(&rotated, &t, TokenKind::Auth, SCOPE).is_ok());
        let fresh = issue_token(&rotated, &claims(3600), SCOPE).expect("issue");
        assert!(
            verify_token(
                &TokenKeys::new(b"new-secret".to_vec()),
                &fresh,
                TokenKind::Auth,
                SCOPE
            )
            .is_ok()
        );
        assert!(
            verify_token(&old, &fresh, TokenKind::Auth, SCOPE).is_err(),
            "signed with the current secret"
        );
        let dropped = TokenKeys::new(b"new-secret".to_vec());
        assert!(verify_token(&dropped, &t, TokenKind::Auth, SCOPE).is_err());
    }

    #[test]
    fn expired_future_tampered_and_foreign_algorithm_tokens_are_rejected() {
        let keys = TokenKeys::new(b"server-secret".to_vec());
        let expired = issue_token(&keys, &claims(-10), SCOPE).expect("issue");
        assert!(verify_token(&keys, &expired, TokenKind::Auth, SCOPE).is_err());
        let mut early = claims(3600);
        early.nbf = Some(chrono::Utc::now().timestamp() + 600);
        let early = issue_token(&keys, &early, SCOPE).expect("issue");
        assert!(verify_token(&keys, &early, TokenKind::Auth, SCOPE).is_err());
        let t = issue_token(&keys, &claims(3600), SCOPE).expect("issue");
        let parts: Vec<&str> = t.split('.').collect();
        // {"alg":"none","typ":"JWT"} with the same payload and no signature
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]);
        assert!(verify_token(&keys, &none, TokenKind::Auth, SCOPE).is_err());
        assert!(decode_unverified(&none).is_err());
        // {"alg":"RS256","typ":"JWT"} carrying the HS256 signature
        let rs = format!(
            "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.{}.{}",
            parts[1], parts[2]
        );
        assert!(verify_token(&keys, &rs, TokenKind::Auth, SCOPE).is_err());
        assert!(verify_token(&keys, &format!("{t}x"), TokenKind::Auth, SCOPE).is_err());
        assert!(verify_token(&keys, "not-a-token", TokenKind::Auth, SCOPE).is_err());
    }
}
