//! The authorization-code exchange (RFC 6749 4.1.3 with the PKCE verifier), the user-info
//! fetch, and the provider HTTP client: bounded time, bounded bodies, no redirects
//! followed (a token endpoint that redirects is misconfigured, and following could hand
//! the code to another host).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::cache::DocCache;
use crate::fetch::{get_json, read_bounded};
use crate::id_token;
use crate::pkce::{check_verifier, nonce_for};
use crate::redirect::check_redirect_url;
use crate::{AuthUser, OAuth2Error, Preset, Provider, apple, map_user};

/// How long Apple's forwarded user name waits for its code exchange.
const APPLE_NAME_TTL: Duration = Duration::from_secs(60);
/// Bound on remembered names, so redirects cannot grow memory without limit.
const APPLE_NAMES_MAX: usize = 10_000;

/// The client for provider calls.
#[derive(Debug, Clone)]
pub struct ProviderClient {
    http: reqwest::Client,
    /// Apple sends the user's name only once, to the redirect, never to the exchange:
    /// kept here briefly, keyed by the authorization code.
    apple_names: Arc<Mutex<HashMap<String, (String, Instant)>>>,
    docs: Arc<DocCache>,
}

impl ProviderClient {
    pub fn new(timeout: Duration) -> Result<Self, OAuth2Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("basalt/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OAuth2Error::Misconfigured(format!("http client: {e}")))?;
        Ok(Self {
            http,
            apple_names: Arc::default(),
            docs: Arc::default(),
        })
    }

    /// Downloads the image at a user's `avatar_url` (http or https, no redirects, the
    /// client's time bound), refusing a body over `max_bytes`: the avatar PocketBase's
    /// `mappedFields.avatarURL` stores into a file field.
    pub async fn download_avatar(
        &self,
        avatar_url: &str,
        max_bytes: u64,
    ) -> Result<Vec<u8>, OAuth2Error> {
        let url = url::Url::parse(avatar_url).map_err(|e| OAuth2Error::Avatar(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(OAuth2Error::Avatar(format!("scheme {}", url.scheme())));
        }
        let mut res = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| OAuth2Error::Avatar(e.without_url().to_string()))?;
        if !res.status().is_success() {
            return Err(OAuth2Error::Avatar(format!("status {}", res.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = res
            .chunk()
            .await
            .map_err(|e| OAuth2Error::Avatar(e.without_url().to_string()))?
        {
            if (body.len() + chunk.len()) as u64 > max_bytes {
                return Err(OAuth2Error::Avatar(format!(
                    "larger than {max_bytes} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Remembers the name Apple posted with `code` (its `user` JSON) for the exchange.
    pub fn remember_apple_name(&self, code: &str, user_json: &str) {
        let Ok(v) = serde_json::from_str::<Value>(user_json) else {
            return;
        };
        let part = |k: &str| v["name"][k].as_str().unwrap_or("").to_string();
        let name: String = format!("{} {}", part("firstName"), part("lastName"))
            .trim()
            .chars()
            .take(150)
            .collect();
        if name.is_empty() || code.is_empty() || code.len() > 1000 {
            return;
        }
        let Ok(mut names) = self.apple_names.lock() else {
            return;
        };
        names.retain(|_, (_, at)| at.elapsed() < APPLE_NAME_TTL);
        if names.len() < APPLE_NAMES_MAX {
            names.insert(code.to_string(), (name, Instant::now()));
        }
    }

    fn take_apple_name(&self, code: &str) -> Option<String> {
        let mut names = self.apple_names.lock().ok()?;
        names
            .remove(code)
            .filter(|(_, at)| at.elapsed() < APPLE_NAME_TTL)
            .map(|(n, _)| n)
    }
}

struct TokenResponse {
    access_token: String,
    refresh_token: String,
    id_token: String,
    expires_in: Option<i64>,
}

async fn fetch_token(
    http: &reqwest::Client,
    p: &Provider,
    code: &str,
    verifier: &str,
    redirect_url: &str,
) -> Result<TokenResponse, OAuth2Error> {
    let secret = if p.preset == Preset::Apple && p.client_secret.is_empty() {
        apple::client_secret(p)?
    } else {
        p.client_secret.clone()
    };
    let mut form = vec![
        ("grant_type", "authorization_code".to_string()),
        ("code", code.to_string()),
        ("redirect_uri", redirect_url.to_string()),
        ("client_id", p.client_id.clone()),
        ("client_secret", secret),
    ];
    if p.pkce {
        form.push(("code_verifier", verifier.to_string()));
    }
    let fail = |e: String| OAuth2Error::TokenExchange(e);
    let res = http
        .post(&p.token_url)
        .header("accept", "application/json")
        .form(&form)
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let status = res.status();
    let body = read_bounded(res).await.map_err(fail)?;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|_| fail(format!("status {status}, response is not json")))?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    // GitHub answers errors with 200 and an `error` key.
    if !status.is_success() || !text("error").is_empty() {
        return Err(fail(format!("status {status}, error {:?}", text("error"))));
    }
    let access_token = text("access_token");
    if access_token.is_empty() {
        return Err(fail("no access_token".into()));
    }
    Ok(TokenResponse {
        access_token,
        refresh_token: text("refresh_token"),
        id_token: text("id_token"),
        expires_in: v.get("expires_in").and_then(|e| {
            e.as_i64()
                .or_else(|| e.as_str().and_then(|s| s.parse().ok()))
        }),
    })
}

impl ProviderClient {
    /// Exchanges `code` (obtained with `verifier` and `redirect_url`) for the provider's
    /// verified user.
    pub async fn exchange_code(
        &self,
        p: &Provider,
        code: &str,
        verifier: &str,
        redirect_url: &str,
    ) -> Result<AuthUser, OAuth2Error> {
        let mut user =
            exchange_code(&self.http, &self.docs, p, code, verifier, redirect_url).await?;
        if p.preset == Preset::Apple
            && user.name.is_empty()
            && let Some(name) = self.take_apple_name(code)
        {
            user.name = name;
        }
        Ok(user)
    }
}

/// See [`ProviderClient::exchange_code`].
async fn exchange_code(
    http: &reqwest::Client,
    docs: &DocCache,
    p: &Provider,
    code: &str,
    verifier: &str,
    redirect_url: &str,
) -> Result<AuthUser, OAuth2Error> {
    check_redirect_url(p, redirect_url)?;
    if p.pkce {
        check_verifier(verifier)?;
    }
    if code.is_empty() || code.len() > 4096 {
        return Err(OAuth2Error::TokenExchange(
            "missing or oversized code".into(),
        ));
    }
    let token = fetch_token(http, p, code, verifier, redirect_url).await?;
    let claims: Option<Map<String, Value>> = if token.id_token.is_empty() {
        None
    } else {
        let nonce = (p.pkce && p.uses_id_token()).then(|| nonce_for(verifier));
        Some(id_token::verify(http, docs, p, &token.id_token, nonce.as_deref()).await?)
    };
    let user_info = |url: String| {
        let access = token.access_token.clone();
        async move {
            get_json(http, &url, Some(&access))
                .await
                .map_err(OAuth2Error::UserInfo)
        }
    };
    let (raw, emails) =
        match p.preset {
            Preset::Apple => {
                (
                    Value::Object(claims.clone().ok_or_else(|| {
                        OAuth2Error::IdToken("apple returned no id_token".into())
                    })?),
                    None,
                )
            }
            Preset::Oidc if p.user_info_url.is_empty() => (
                Value::Object(claims.clone().ok_or_else(|| {
                    OAuth2Error::IdToken("no id_token and no userInfoURL".into())
                })?),
                None,
            ),
            Preset::Github => {
                let raw = user_info(p.user_info_url.clone()).await?;
                // No email scope granted answers 401/403/404: the user simply has no email.
                let emails = get_json(
                    http,
                    &format!("{}/emails", p.user_info_url),
                    Some(&token.access_token),
                )
                .await
                .ok();
                (raw, emails)
            }
            _ => (user_info(p.user_info_url.clone()).await?, None),
        };
    // OpenID Connect Core 5.3.2: user info about another subject must be refused.
    if let (Some(c), Preset::Oidc | Preset::Google) = (&claims, p.preset) {
        let sub = c.get("sub").and_then(Value::as_str);
        if raw.get("sub").and_then(Value::as_str) != sub {
            return Err(OAuth2Error::UserInfo(
                "user info subject differs from id_token".into(),
            ));
        }
    }
    let mut user = map_user(p, &raw, claims.as_ref(), emails.as_ref())?;
    user.access_token = token.access_token;
    user.refresh_token = token.refresh_token;
    if let Some(secs) = token.expires_in.filter(|s| *s > 0) {
        let at = chrono::Utc::now() + chrono::Duration::seconds(secs.min(10 * 365 * 86_400));
        user.expiry = at.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string();
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apple_names_are_kept_once_per_code_and_bounded() {
        let c = ProviderClient::new(Duration::from_secs(1)).unwrap();
        c.remember_apple_name(
            "code1",
            r#"{"name":{"firstName":"Jane","lastName":"Appleseed"}}"#,
        );
        c.remember_apple_name("code2", "not json");
        c.remember_apple_name("code3", r#"{"name":{"firstName":"","lastName":""}}"#);
        assert_eq!(
            c.take_apple_name("code1").as_deref(),
            Some("Jane Appleseed")
        );
        assert_eq!(c.take_apple_name("code1"), None, "single use");
        assert_eq!(c.take_apple_name("code2"), None);
        assert_eq!(c.take_apple_name("code3"), None);
        let long = format!(r#"{{"name":{{"firstName":"{}"}}}}"#, "x".repeat(500));
        c.remember_apple_name("code4", &long);
        assert_eq!(c.take_apple_name("code4").map(|n| n.len()), Some(150));
    }
}
