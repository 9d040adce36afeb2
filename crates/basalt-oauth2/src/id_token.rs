//! id_token verification: RS256 or ES256 only (never `none`, never an HMAC algorithm, so a
//! provider's public key can never serve as a shared secret), the signature against the
//! provider's JWKS (configured or from its discovery document), then `iss`, `aud` =
//! client id, `exp`/`nbf`, and the nonce bound to the login's PKCE verifier.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::{Map, Value};

use crate::cache::DocCache;
use crate::{OAuth2Error, Preset, Provider};

/// Clock skew tolerated on `exp`/`nbf`.
const LEEWAY_SECS: u64 = 60;

fn invalid(why: impl Into<String>) -> OAuth2Error {
    OAuth2Error::IdToken(why.into())
}

/// Where the signing keys are and which issuers are accepted, discovering what the
/// configuration leaves out from `{issuer}/.well-known/openid-configuration`.
async fn trust(
    http: &reqwest::Client,
    docs: &DocCache,
    p: &Provider,
) -> Result<(String, Vec<String>), OAuth2Error> {
    let microsoft = p.preset == Preset::Microsoft;
    if !p.jwks_url.is_empty() && (!p.issuers.is_empty() || microsoft) {
        return Ok((p.jwks_url.clone(), p.issuers.clone()));
    }
    let base = match p.issuers.first() {
        Some(i) => i.trim_end_matches('/').to_string(),
        None => {
            let u = url::Url::parse(&p.auth_url)
                .map_err(|_| invalid("no issuer configured and authURL is not a url"))?;
            u.origin().ascii_serialization()
        }
    };
    let doc = docs
        .get(
            http,
            &format!("{base}/.well-known/openid-configuration"),
            false,
        )
        .await
        .map_err(|e| invalid(format!("discovery failed: {e}")))?;
    let issuer = doc.get("issuer").and_then(Value::as_str).unwrap_or("");
    // OpenID Connect Discovery 4.3: the document must name the issuer it was fetched for.
    if issuer.trim_end_matches('/') != base {
        return Err(invalid("discovery document names another issuer"));
    }
    let jwks = match p.jwks_url.as_str() {
        "" => doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        configured => configured.to_string(),
    };
    if jwks.is_empty() {
        return Err(invalid("no jwks_uri"));
    }
    let issuers = if p.issuers.is_empty() {
        vec![issuer.to_string()]
    } else {
        p.issuers.clone()
    };
    Ok((jwks, issuers))
}

/// The key of `set` that may verify a token with `alg` and `kid`.
fn pick_key<'a>(
    set: &'a JwkSet,
    alg: Algorithm,
    kid: Option<&str>,
) -> Result<&'a Jwk, OAuth2Error> {
    let fits = |k: &&Jwk| {
        let kind_ok = match (&k.algorithm, alg) {
            (AlgorithmParameters::RSA(_), Algorithm::RS256) => true,
            (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
                ec.curve == EllipticCurve::P256
            }
            _ => false,
        };
        let alg_ok = k
            .common
            .key_algorithm
            .is_none_or(|a| format!("{a:?}") == format!("{alg:?}"));
        kind_ok && alg_ok
    };
    let mut candidates = set.keys.iter().filter(fits);
    match kid {
        Some(kid) => candidates
            .find(|k| k.common.key_id.as_deref() == Some(kid))
            .ok_or_else(|| invalid("no matching signing key")),
        None => {
            let first = candidates
                .next()
                .ok_or_else(|| invalid("no matching signing key"))?;
            if candidates.next().is_some() {
                return Err(invalid("several keys fit and the token names none"));
            }
            Ok(first)
        }
    }
}

/// Verifies `token` for `p` and returns its claims. `nonce`: the value the login asked
/// for, checked when given.
pub(crate) async fn verify(
    http: &reqwest::Client,
    docs: &DocCache,
    p: &Provider,
    token: &str,
    nonce: Option<&str>,
) -> Result<Map<String, Value>, OAuth2Error> {
    let header = decode_header(token).map_err(|e| invalid(format!("malformed header: {e}")))?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
        return Err(invalid(format!(
            "algorithm {:?} is not accepted",
            header.alg
        )));
    }
    let (jwks_url, issuers) = trust(http, docs, p).await?;
    let jwks = |fresh: bool| {
        let url = jwks_url.clone();
        async move {
            let v = docs
                .get(http, &url, fresh)
                .await
                .map_err(|e| invalid(format!("jwks fetch failed: {e}")))?;
            serde_json::from_value::<JwkSet>(v).map_err(|e| invalid(format!("malformed jwks: {e}")))
        }
    };
    let mut set = jwks(false).await?;
    if pick_key(&set, header.alg, header.kid.as_deref()).is_err() {
        // The provider may have rotated its keys since the JWKS was cached.
        set = jwks(true).await?;
    }
    let jwk = pick_key(&set, header.alg, header.kid.as_deref())?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| invalid(format!("unusable key: {e}")))?;
    let mut v = Validation::new(header.alg);
    v.algorithms = vec![header.alg];
    v.leeway = LEEWAY_SECS;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.set_audience(&[p.client_id.as_str()]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    if !issuers.is_empty() {
        v.set_issuer(&issuers);
    }
    let claims = decode::<Map<String, Value>>(token, &key, &v)
        .map_err(|e| invalid(format!("{e}")))?
        .claims;
    check_iat_and_azp(&claims, &p.client_id, chrono::Utc::now().timestamp())?;
    if p.preset == Preset::Microsoft && issuers.is_empty() {
        let tid = claims.get("tid").and_then(Value::as_str).unwrap_or("");
        let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
        if tid.is_empty() || iss != format!("https://login.microsoftonline.com/{tid}/v2.0") {
            return Err(invalid("issuer does not match the tenant"));
        }
    }
    if let Some(expected) = nonce
        && claims.get("nonce").and_then(Value::as_str) != Some(expected)
    {
        return Err(invalid("nonce mismatch"));
    }
    Ok(claims)
}

/// `iat` must not lie in the future, and a token for several audiences must name us as
/// its authorized party (OpenID Connect Core 3.1.3.7).
fn check_iat_and_azp(
    claims: &Map<String, Value>,
    client_id: &str,
    now: i64,
) -> Result<(), OAuth2Error> {
    if let Some(iat) = claims.get("iat").and_then(Value::as_i64)
        && iat > now + LEEWAY_SECS as i64
    {
        return Err(invalid("issued in the future"));
    }
    let several = claims
        .get("aud")
        .and_then(Value::as_array)
        .is_some_and(|a| a.len() > 1);
    if several && claims.get("azp").and_then(Value::as_str) != Some(client_id) {
        return Err(invalid(
            "several audiences and we are not the authorized party",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn future_iat_and_foreign_azp_are_refused() {
        let now = 1_000_000;
        assert!(check_iat_and_azp(&claims(json!({"iat": now, "aud": "me"})), "me", now).is_ok());
        assert!(
            check_iat_and_azp(&claims(json!({"iat": now + 3600, "aud": "me"})), "me", now).is_err()
        );
        assert!(check_iat_and_azp(&claims(json!({"aud": ["me", "other"]})), "me", now).is_err());
        assert!(
            check_iat_and_azp(
                &claims(json!({"aud": ["me", "other"], "azp": "other"})),
                "me",
                now
            )
            .is_err()
        );
        assert!(
            check_iat_and_azp(
                &claims(json!({"aud": ["me", "other"], "azp": "me"})),
                "me",
                now
            )
            .is_ok()
        );
    }

    fn set(keys: Value) -> JwkSet {
        serde_json::from_value(json!({"keys": keys})).unwrap()
    }

    const RSA: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";
    const EC_X: &str = "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4";
    const EC_Y: &str = "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM";

    #[test]
    fn keys_are_picked_by_kid_and_by_type() {
        let s = set(json!([
            {"kty": "RSA", "kid": "r1", "n": RSA, "e": "AQAB", "alg": "RS256", "use": "sig"},
            {"kty": "EC", "kid": "e1", "crv": "P-256", "x": EC_X, "y": EC_Y},
            {"kty": "oct", "kid": "h1", "k": "c2VjcmV0"}
        ]));
        assert!(pick_key(&s, Algorithm::RS256, Some("r1")).is_ok());
        assert!(pick_key(&s, Algorithm::ES256, Some("e1")).is_ok());
        // A kid of another key type never serves: no RSA key as an EC key and so on.
        assert!(pick_key(&s, Algorithm::ES256, Some("r1")).is_err());
        assert!(pick_key(&s, Algorithm::RS256, Some("e1")).is_err());
        assert!(pick_key(&s, Algorithm::RS256, Some("h1")).is_err());
        assert!(pick_key(&s, Algorithm::RS256, Some("unknown")).is_err());
        // Without a kid, exactly one fitting key is needed.
        assert!(pick_key(&s, Algorithm::RS256, None).is_ok());
        let two = set(json!([
            {"kty": "RSA", "kid": "a", "n": RSA, "e": "AQAB"},
            {"kty": "RSA", "kid": "b", "n": RSA, "e": "AQAB"}
        ]));
        assert!(pick_key(&two, Algorithm::RS256, None).is_err());
        // A key that declares another algorithm is not used for this one.
        let pinned =
            set(json!([{"kty": "RSA", "kid": "p", "n": RSA, "e": "AQAB", "alg": "RS512"}]));
        assert!(pick_key(&pinned, Algorithm::RS256, Some("p")).is_err());
    }
}
