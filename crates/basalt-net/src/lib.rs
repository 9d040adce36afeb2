//! Client addresses and abuse limits, shared by the edge (`basalt-edge`) and the API
//! (`basalt-api`): CIDR sets over IPv4 and IPv6 with IPv4-mapped IPv6 addresses
//! normalised ([`IpSet`]), the client address behind trusted proxies
//! ([`TrustedProxies`]), and a GCRA rate limiter whose key store stays bounded however
//! many keys an attacker rotates through ([`RateLimiter`]), and the bearer-token check of
//! operator endpoints ([`BearerToken`]).
//!
//! It must never know about a server, an async runtime, the store or the wire format of
//! the API: it reads header maps and addresses and answers yes or no.

mod bearer;
mod client_ip;
mod ip_set;
mod rate;

pub use bearer::BearerToken;
pub use client_ip::TrustedProxies;
pub use ip_set::{IpSet, normalize};
pub use rate::{Quota, RateLimiter, rate_key};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    #[error("invalid address or CIDR range {0:?}")]
    InvalidRange(String),
    #[error("invalid rate limit: {0}")]
    InvalidQuota(String),
}
