//! Sign in with Apple's client secret: an ES256 JWT signed with the team's private key
//! (`extra.teamId`, `extra.keyId`, `extra.privateKey`), built per exchange so it never
//! expires in the configuration.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

use crate::{OAuth2Error, Provider};

/// Lifetime of a built secret; Apple accepts up to six months.
const SECRET_TTL_SECS: i64 = 300;

pub(crate) fn client_secret(p: &Provider) -> Result<String, OAuth2Error> {
    client_secret_at(p, chrono::Utc::now().timestamp())
}

fn client_secret_at(p: &Provider, now: i64) -> Result<String, OAuth2Error> {
    let cfg = &p.config;
    let (team, key_id, pem) = (
        cfg.extra_str("teamId"),
        cfg.extra_str("keyId"),
        cfg.extra_str("privateKey"),
    );
    if team.is_empty() || key_id.is_empty() || pem.is_empty() {
        return Err(OAuth2Error::ClientSecret(
            "clientSecret or extra.teamId/keyId/privateKey required".into(),
        ));
    }
    let key = EncodingKey::from_ec_pem(pem.as_bytes())
        .map_err(|e| OAuth2Error::ClientSecret(format!("private key: {e}")))?;
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key_id.to_string());
    let claims = json!({
        "iss": team,
        "iat": now,
        "exp": now + SECRET_TTL_SECS,
        "aud": "https://appleid.apple.com",
        "sub": p.client_id,
    });
    encode(&header, &claims, &key).map_err(|e| OAuth2Error::ClientSecret(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_schema::collection_oauth2::OAuth2Provider;
    use jsonwebtoken::{DecodingKey, Validation, decode};

    // A P-256 key generated for this test only (openssl ecparam -genkey -name prime256v1 | openssl pkcs8 -topk8 -nocrypt).
    const PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgF7cgH1U1bbS8G/qE
bmtPTLd7K4G1pu8FtbY27xc5dGKhRANCAATsdlcm3MpfigejDGvynzyGtYJnM0Su
KMok1imkcBtPq7TdTSQQm/Px9rvkVwYNY3vjCRo8dfxp2iBVRAVWQTje
-----END PRIVATE KEY-----
";
    const PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7HZXJtzKX4oHowxr8p88hrWCZzNE
rijKJNYppHAbT6u03U0kEJvz8fa75FcGDWN74wkaPHX8adogVUQFVkE43g==
-----END PUBLIC KEY-----
";

    fn apple(extra: serde_json::Value) -> Provider {
        let mut cfg = OAuth2Provider {
            name: "apple".into(),
            client_id: "com.example.app".into(),
            ..Default::default()
        };
        if let serde_json::Value::Object(m) = extra {
            cfg.extra = m;
        }
        Provider::resolve(&cfg).unwrap()
    }

    #[test]
    fn secret_is_an_es256_jwt_apple_can_verify() {
        let p =
            apple(json!({"teamId": "TEAM123456", "keyId": "KEY1234567", "privateKey": PRIVATE}));
        let now = chrono::Utc::now().timestamp();
        let token = client_secret_at(&p, now).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some("KEY1234567"));
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&["https://appleid.apple.com"]);
        v.set_issuer(&["TEAM123456"]);
        let claims = decode::<serde_json::Value>(
            &token,
            &DecodingKey::from_ec_pem(PUBLIC.as_bytes()).unwrap(),
            &v,
        )
        .unwrap()
        .claims;
        assert_eq!(claims["sub"], "com.example.app");
        assert_eq!(claims["exp"].as_i64().unwrap() - now, SECRET_TTL_SECS);
    }

    #[test]
    fn missing_or_bad_keys_are_errors() {
        assert!(client_secret(&apple(json!({}))).is_err());
        assert!(
            client_secret(&apple(
                json!({"teamId": "T", "keyId": "K", "privateKey": "not a pem"})
            ))
            .is_err()
        );
    }
}
