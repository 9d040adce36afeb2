//! Rate limits in front of the auth endpoints, per client address and per identity.
//!
//! The client address is the TCP peer unless the peer is a configured trusted proxy;
//! then it is the rightmost untrusted hop of `X-Forwarded-For` (`basalt-net`), so a
//! client cannot pick its own bucket by writing the header. Basalt's own limits are
//! always on (configurable); PocketBase's `rateLimits` settings apply on top when
//! enabled, through their `*:auth`-style labels.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use basalt_net::{Quota, RateLimiter, TrustedProxies, rate_key};
use basalt_schema::Collection;
use basalt_service::{ErrorKind, ServiceError, ServiceResult};

use crate::ApiState;
use crate::error::ApiError;

/// Most keys a limiter remembers; beyond it the closest to expiring are forgotten.
const MAX_KEYS: usize = 100_000;

/// What the operator chose (the binary reads it from the configuration).
#[derive(Debug, Clone, Default)]
pub struct AuthLimitsConfig {
    pub trusted_proxies: TrustedProxies,
    /// Auth requests per client address; `None` disables Basalt's own limit.
    pub per_ip: Option<Quota>,
    /// Auth requests per identity (email, username, OTP id); `None` disables it.
    pub per_identity: Option<Quota>,
}

type RuleKey = (String, u32, u64);

struct Inner {
    proxies: TrustedProxies,
    per_ip: Option<RateLimiter<IpAddr>>,
    per_identity: Option<RateLimiter<String>>,
    /// Limiters of the `rateLimits` settings rules, created when first used.
    rules: Mutex<HashMap<RuleKey, Arc<RateLimiter<IpAddr>>>>,
}

/// Shared limiter state; cheap to clone.
#[derive(Clone)]
pub struct AuthLimits(Arc<Inner>);

impl AuthLimits {
    pub fn new(cfg: AuthLimitsConfig) -> Self {
        Self(Arc::new(Inner {
            proxies: cfg.trusted_proxies,
            per_ip: cfg.per_ip.map(|q| RateLimiter::new(q, MAX_KEYS)),
            per_identity: cfg.per_identity.map(|q| RateLimiter::new(q, MAX_KEYS)),
            rules: Mutex::new(HashMap::new()),
        }))
    }

    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        self.0.proxies.client_ip(peer, headers)
    }

    fn rule_limiter(&self, key: RuleKey) -> Option<Arc<RateLimiter<IpAddr>>> {
        let quota = Quota::new(key.1, Duration::from_secs(key.2)).ok()?;
        let mut rules = self.0.rules.lock().ok()?;
        if rules.len() > 64 {
            // Settings changed many times: start over rather than grow.
            rules.clear();
        }
        Some(
            rules
                .entry(key)
                .or_insert_with(|| Arc::new(RateLimiter::new(quota, MAX_KEYS)))
                .clone(),
        )
    }

    /// Admits one `action` request of collection `c` from `ip` for `identity`, or 429.
    pub(crate) async fn check(
        &self,
        state: &ApiState,
        c: &Collection,
        action: &str,
        ip: IpAddr,
        headers: &HeaderMap,
        identity: Option<&str>,
    ) -> ServiceResult<()> {
        let too_many = || ServiceError::new(ErrorKind::TooManyRequests, "Too Many Requests.");
        if let Some(l) = &self.0.per_ip
            && l.check(&rate_key(ip)).is_err()
        {
            return Err(too_many());
        }
        if let (Some(l), Some(id)) = (&self.0.per_identity, identity.filter(|i| !i.is_empty())) {
            let key = format!("{}\u{0}{}", c.id, id.to_lowercase());
            if l.check(&key).is_err() {
                return Err(too_many());
            }
        }
        let settings = basalt_service::settings::load(&state.service).await?;
        let limits = &settings["rateLimits"];
        if !limits["enabled"].as_bool().unwrap_or(false) {
            return Ok(());
        }
        let authed = headers.contains_key("authorization");
        let labels = [
            format!("{}:{action}", c.name),
            format!("*:{action}"),
            format!("{}:auth", c.name),
            "*:auth".to_string(),
        ];
        let rules = limits["rules"].as_array().cloned().unwrap_or_default();
        let rule = labels.iter().find_map(|label| {
            rules.iter().find(|r| {
                let audience = r["audience"].as_str().unwrap_or_default();
                r["label"].as_str() == Some(label.as_str())
                    && match audience {
                        "@guest" => !authed,
                        "@auth" => authed,
                        _ => true,
                    }
            })
        });
        let Some(rule) = rule else {
            return Ok(());
        };
        let max = rule["maxRequests"]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok());
        let secs = rule["duration"].as_u64();
        let (Some(max), Some(secs)) = (max, secs) else {
            return Ok(());
        };
        let label = rule["label"].as_str().unwrap_or_default().to_string();
        if let Some(l) = self.rule_limiter((label, max, secs))
            && l.check(&rate_key(ip)).is_err()
        {
            return Err(too_many());
        }
        Ok(())
    }
}

/// The client address of a request (see the module docs).
pub(crate) struct ClientIp(pub IpAddr);

impl FromRequestParts<ApiState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        // Without connection info (in-process tests) every request shares one bucket.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        Ok(ClientIp(state.limits.client_ip(peer, &parts.headers)))
    }
}
