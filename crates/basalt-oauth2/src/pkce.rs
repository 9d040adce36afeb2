//! The authorization request: state, PKCE verifier and S256 challenge (RFC 7636), and
//! the OpenID Connect nonce.
//!
//! Basalt keeps no per-login server state (as PocketBase, whose SDK holds the verifier):
//! the nonce is derived from the verifier, so an id_token is accepted only together with
//! the verifier of the request that asked for it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::{OAuth2Error, Provider};

/// What `auth-methods` hands the client for one provider.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    pub state: String,
    /// Ends with `redirect_uri=` for the client to complete.
    pub auth_url: String,
    pub code_verifier: String,
    pub code_challenge: String,
    pub code_challenge_method: String,
}

const UNRESERVED: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn random_string(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| UNRESERVED[rng.random_range(0..UNRESERVED.len())] as char)
        .collect()
}

fn s256(input: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(input.as_bytes()))
}

/// The nonce an id_token must carry for a login that used `verifier`.
pub fn nonce_for(verifier: &str) -> String {
    s256(&format!("basalt-oidc-nonce:{verifier}"))
}

/// RFC 7636 section 4.1: 43 to 128 characters of `[A-Za-z0-9-._~]`.
pub(crate) fn check_verifier(verifier: &str) -> Result<(), OAuth2Error> {
    let ok = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(OAuth2Error::CodeVerifier)
    }
}

/// A fresh authorization request for `p`.
pub fn authorization_request(p: &Provider) -> AuthorizationRequest {
    let state = random_string(30);
    let code_verifier = random_string(43);
    let code_challenge = s256(&code_verifier);
    let mut params: Vec<(String, String)> = vec![("client_id".into(), p.client_id.clone())];
    if p.pkce {
        params.push(("code_challenge".into(), code_challenge.clone()));
        params.push(("code_challenge_method".into(), "S256".into()));
    }
    if p.uses_id_token() && p.pkce {
        params.push(("nonce".into(), nonce_for(&code_verifier)));
    }
    params.extend(p.auth_params.iter().cloned());
    params.push(("response_type".into(), "code".into()));
    params.push(("scope".into(), p.scopes.join(" ")));
    params.push(("state".into(), state.clone()));
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let sep = if p.auth_url.contains('?') { '&' } else { '?' };
    AuthorizationRequest {
        auth_url: format!("{}{sep}{query}&redirect_uri=", p.auth_url),
        state,
        code_verifier,
        code_challenge,
        code_challenge_method: "S256".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_schema::collection_oauth2::OAuth2Provider;

    #[test]
    fn challenge_is_s256_of_the_verifier() {
        // Expected value computed independently (Python hashlib + base64.urlsafe_b64encode).
        assert_eq!(
            s256("dBjftJeZ4CVP-mJ4S0v4xv6rLUzdpM2Q-ZaA8ZlsKAs"),
            "aWZCB8qsVCkMSF8WITX66IPW5eWHPFldkYgoO7_IT4w"
        );
    }

    #[test]
    fn verifier_format_is_enforced() {
        assert!(check_verifier(&"a".repeat(43)).is_ok());
        assert!(check_verifier(&"a".repeat(42)).is_err());
        assert!(check_verifier(&"a".repeat(129)).is_err());
        assert!(check_verifier(&format!("{}+", "a".repeat(43))).is_err());
        assert!(check_verifier("").is_err());
    }

    #[test]
    fn authorization_url_carries_pkce_state_and_nonce() {
        let p = Provider::resolve(&OAuth2Provider {
            name: "oidc".into(),
            client_id: "my client".into(),
            client_secret: Some("s".into()),
            auth_url: "http://127.0.0.1:9/authorize".into(),
            token_url: "http://127.0.0.1:9/token".into(),
            ..Default::default()
        })
        .unwrap();
        let r = authorization_request(&p);
        assert!(r.auth_url.ends_with("&redirect_uri="));
        assert!(r.auth_url.contains("client_id=my+client"));
        assert!(
            r.auth_url
                .contains(&format!("code_challenge={}", r.code_challenge))
        );
        assert!(r.auth_url.contains(&format!("state={}", r.state)));
        assert!(
            r.auth_url
                .contains(&format!("nonce={}", nonce_for(&r.code_verifier)))
        );
        check_verifier(&r.code_verifier).unwrap();
        assert_ne!(authorization_request(&p).state, r.state);
    }
}
