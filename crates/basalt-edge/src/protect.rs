//! Client protection: the client address behind trusted proxies, IP allow/deny lists by
//! CIDR, and GCRA rate limits keyed by client IP, route, header or user id. The address
//! and limiter logic is `basalt-net`'s; this file applies it to edge requests.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use basalt_net::{IpSet, Quota, RateLimiter, TrustedProxies, rate_key};
use http::HeaderMap;

use crate::config::{ClientsConfig, RateLimitConfig};
use crate::error::EdgeError;

#[derive(Clone, Copy, Hash, PartialEq, Eq)]
pub enum LimitKey {
    Ip(IpAddr),
    /// A keyed (random per process) hash of a text key, so clients cannot aim collisions.
    Text(u64),
}

#[derive(Clone, PartialEq)]
enum KeyKind {
    ClientIp,
    Route,
    Header(http::HeaderName),
    User,
}

pub struct RateLimit {
    pub name: String,
    kind: KeyKind,
    routes: Vec<String>,
    quota: Quota,
    max_keys: usize,
    limiter: Arc<RateLimiter<LimitKey>>,
}

pub struct Protection {
    trusted: TrustedProxies,
    allow: Option<IpSet>,
    deny: IpSet,
    pub limits: Vec<RateLimit>,
    hasher: std::hash::RandomState,
}

impl Protection {
    pub fn build(
        clients: &ClientsConfig,
        limits: &[RateLimitConfig],
        route_names: &[&str],
        previous: Option<&Protection>,
    ) -> Result<Self, EdgeError> {
        let set = |what: &str, v: &[String]| {
            IpSet::parse(v).map_err(|e| EdgeError::Config(format!("clients.{what}: {e}")))
        };
        let trusted = TrustedProxies::new(set("trusted_proxies", &clients.trusted_proxies)?);
        let allow = if clients.allow.is_empty() {
            None
        } else {
            Some(set("allow", &clients.allow)?)
        };
        let deny = set("deny", &clients.deny)?;
        let mut built = Vec::new();
        for l in limits {
            let bad = |m: String| EdgeError::Config(format!("rate limit {}: {m}", l.name));
            let quota = Quota::new(l.burst, Duration::from_millis(l.period_ms))
                .map_err(|e| bad(e.to_string()))?;
            let kind = match l.key.as_deref() {
                None | Some("client_ip") => KeyKind::ClientIp,
                Some("route") => KeyKind::Route,
                Some("user") => KeyKind::User,
                Some(k) if k.starts_with("header:") => KeyKind::Header(
                    http::HeaderName::from_bytes(&k.as_bytes()["header:".len()..])
                        .map_err(|_| bad(format!("key {k:?}: bad header name")))?,
                ),
                Some(k) => {
                    return Err(bad(format!(
                        "key {k:?}: use client_ip, route, header:NAME or user"
                    )));
                }
            };
            for r in &l.routes {
                if !route_names.contains(&r.as_str()) {
                    return Err(bad(format!("unknown route {r:?}")));
                }
            }
            if l.max_keys == 0 {
                return Err(bad("max_keys must be at least 1".into()));
            }
            if built.iter().any(|b: &RateLimit| b.name == l.name) {
                return Err(bad("name appears twice".into()));
            }
            // Same name, quota and key as before: keep the counters across the reload.
            let kept = previous
                .and_then(|p| p.limits.iter().find(|o| o.name == l.name))
                .filter(|o| o.quota == quota && o.kind == kind && o.max_keys == l.max_keys)
                .map(|o| o.limiter.clone());
            built.push(RateLimit {
                name: l.name.clone(),
                kind,
                routes: l.routes.clone(),
                quota,
                max_keys: l.max_keys,
                limiter: kept.unwrap_or_else(|| Arc::new(RateLimiter::new(quota, l.max_keys))),
            });
        }
        Ok(Self {
            trusted,
            allow,
            deny,
            limits: built,
            hasher: std::hash::RandomState::new(),
        })
    }

    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        self.trusted.client_ip(peer, headers)
    }

    /// Whether the client address or a rate limit key can depend on request headers.
    pub fn reads_headers(&self) -> bool {
        !self.trusted.is_empty()
            || self
                .limits
                .iter()
                .any(|l| matches!(l.kind, KeyKind::Header(_) | KeyKind::User))
    }

    pub fn admits(&self, client: IpAddr) -> bool {
        !self.deny.contains(client) && self.allow.as_ref().is_none_or(|a| a.contains(client))
    }

    /// `Err(wait)` when a limit that covers `route` is exhausted for this request's key.
    pub fn check_limits(
        &self,
        route: &str,
        client: IpAddr,
        headers: &HeaderMap,
    ) -> Result<(), Duration> {
        for l in &self.limits {
            if !l.routes.is_empty() && !l.routes.iter().any(|r| r == route) {
                continue;
            }
            let key = match &l.kind {
                KeyKind::ClientIp => LimitKey::Ip(rate_key(client)),
                KeyKind::Route => LimitKey::Text(self.hasher.hash_one(route)),
                KeyKind::Header(name) => match headers.get(name) {
                    Some(v) => LimitKey::Text(self.hasher.hash_one(v.as_bytes())),
                    // Without the header the client's address is the key.
                    None => LimitKey::Ip(rate_key(client)),
                },
                KeyKind::User => match bearer_user(headers) {
                    Some(user) => LimitKey::Text(self.hasher.hash_one(user)),
                    None => LimitKey::Ip(rate_key(client)),
                },
            };
            l.limiter.check(&key)?;
        }
        Ok(())
    }
}

/// The `id` (PocketBase) or `sub` claim of a bearer JWT, read without verification: the
/// edge only needs a stable key per user, and the API verifies the token itself.
fn bearer_user(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let token = auth.strip_prefix("Bearer ").unwrap_or(auth).trim();
    let payload = token.split('.').nth(1)?;
    let json = base64url_decode(payload)?;
    let v: serde_json::Value = serde_json::from_slice(&json).ok()?;
    v.get("id")
        .or_else(|| v.get("sub"))
        .and_then(|s| s.as_str())
        .map(str::to_string)
}

fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() > 8192 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            b'=' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(key: &str) -> RateLimitConfig {
        RateLimitConfig {
            name: "l".into(),
            burst: 2,
            period_ms: 60_000,
            key: Some(key.into()),
            routes: vec![],
            max_keys: 100,
        }
    }

    #[test]
    fn user_keys_come_from_the_token_claims() {
        // {"id":"u1"} base64url-encoded, as a PocketBase token carries it.
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            "Bearer x.eyJpZCI6InUxIn0.sig".parse().expect("v"),
        );
        assert_eq!(bearer_user(&h).as_deref(), Some("u1"));
        let p = Protection::build(&ClientsConfig::default(), &[limit("user")], &[], None)
            .expect("build");
        let ip: IpAddr = "10.0.0.1".parse().expect("ip");
        let other: IpAddr = "10.0.0.2".parse().expect("ip");
        assert!(p.check_limits("r", ip, &h).is_ok());
        assert!(p.check_limits("r", other, &h).is_ok());
        // Same user from another address: still the same bucket.
        assert!(p.check_limits("r", other, &h).is_err());
        assert!(p.check_limits("r", ip, &HeaderMap::new()).is_ok());
    }

    #[test]
    fn allow_and_deny_lists() {
        let c = ClientsConfig {
            trusted_proxies: vec![],
            allow: vec!["10.0.0.0/8".into(), "2001:db8::/32".into()],
            deny: vec!["10.9.0.0/16".into()],
        };
        let p = Protection::build(&c, &[], &[], None).expect("build");
        for (ip, ok) in [
            ("10.1.2.3", true),
            ("::ffff:10.1.2.3", true),
            ("10.9.1.1", false),
            ("192.0.2.1", false),
            ("2001:db8::5", true),
        ] {
            assert_eq!(p.admits(ip.parse().expect("ip")), ok, "{ip}");
        }
        let bad = ClientsConfig {
            deny: vec!["10.0.0.0/33".into()],
            ..Default::default()
        };
        assert!(Protection::build(&bad, &[], &[], None).is_err());
    }
}
