//! The client address of a request that may have crossed proxies. Only hops added by
//! proxies we trust are believed: walking `X-Forwarded-For` (or `Forwarded`) from the
//! right, the first address that is not a trusted proxy is the client. Anything to its
//! left was written by that client and may be forged.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

use crate::ip_set::{IpSet, normalize};

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    proxies: IpSet,
}

/// One hop of a forwarding header: an address, or something unusable (`unknown`, an
/// obfuscated identifier, garbage).
fn parse_hop(raw: &str) -> Option<IpAddr> {
    let t = raw.trim().trim_matches('"');
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = t.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    // `[2001:db8::1]` without a port.
    t.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|r| r.parse().ok())
}

/// The `for=` values of every `Forwarded` header, in order.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all(http::header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then(|| parse_hop(v))
            })
        })
        .collect()
}

fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(parse_hop)
        .collect()
}

impl TrustedProxies {
    pub fn new(proxies: IpSet) -> Self {
        Self { proxies }
    }

    /// Trusts nobody: the client is always the peer.
    pub fn none() -> Self {
        Self::default()
    }

    /// No proxy is trusted: the client is always the peer, and no header is read.
    pub fn is_empty(&self) -> bool {
        self.proxies.is_empty()
    }

    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.proxies.contains(ip)
    }

    /// The client address for a connection from `peer` carrying `headers`.
    /// `X-Forwarded-For` is read when present, `Forwarded` otherwise.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = normalize(peer);
        if !self.is_trusted(peer) {
            return peer;
        }
        let mut hops = x_forwarded_for(headers);
        if hops.is_empty() {
            hops = forwarded_for(headers);
        }
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            match hop.map(normalize) {
                Some(ip) => {
                    client = ip;
                    if !self.is_trusted(ip) {
                        return ip;
                    }
                }
                // We cannot see past an unusable hop: the last address we could read
                // (a trusted proxy) is as far as the chain can be believed.
                None => return client,
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn proxies() -> TrustedProxies {
        TrustedProxies::new(IpSet::parse(&["10.0.0.0/8", "::1", "127.0.0.1"]).unwrap())
    }

    #[test]
    fn untrusted_peers_cannot_spoof_their_address() {
        let h = headers(&[("x-forwarded-for", "1.1.1.1"), ("forwarded", "for=2.2.2.2")]);
        assert_eq!(
            proxies().client_ip(ip("203.0.113.9"), &h),
            ip("203.0.113.9")
        );
        assert_eq!(
            TrustedProxies::none().client_ip(ip("127.0.0.1"), &h),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let p = proxies();
        for (xff, want) in [
            ("203.0.113.5", "203.0.113.5"),
            // The client prepended a fake address; the edge proxy appended the real one.
            ("6.6.6.6, 203.0.113.5", "203.0.113.5"),
            ("6.6.6.6, 203.0.113.5, 10.1.1.1", "203.0.113.5"),
            ("6.6.6.6,203.0.113.5 ,10.1.1.1, 10.2.2.2", "203.0.113.5"),
            // Every hop is a trusted proxy: the leftmost is as far as we can see.
            ("10.3.3.3, 10.1.1.1", "10.3.3.3"),
            // An unusable hop stops the walk at the last trusted proxy.
            ("6.6.6.6, garbage, 10.1.1.1", "10.1.1.1"),
            ("[2001:db8::7]:443", "2001:db8::7"),
            ("::ffff:203.0.113.5", "203.0.113.5"),
        ] {
            let h = headers(&[("x-forwarded-for", xff)]);
            assert_eq!(p.client_ip(ip("10.0.0.1"), &h), ip(want), "{xff}");
        }
        // Several header lines are one list, in order.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "203.0.113.5, 10.1.1.1"),
        ]);
        assert_eq!(p.client_ip(ip("::1"), &h), ip("203.0.113.5"));
        assert_eq!(p.client_ip(ip("::1"), &HeaderMap::new()), ip("::1"));
    }

    #[test]
    fn forwarded_is_read_when_there_is_no_x_forwarded_for() {
        let h = headers(&[(
            "forwarded",
            "for=6.6.6.6;proto=https, for=\"[2001:db8::9]:80\";by=10.0.0.1, for=10.4.4.4",
        )]);
        assert_eq!(proxies().client_ip(ip("10.0.0.1"), &h), ip("2001:db8::9"));
        let unknown = headers(&[("forwarded", "for=unknown, for=10.4.4.4")]);
        assert_eq!(
            proxies().client_ip(ip("10.0.0.1"), &unknown),
            ip("10.4.4.4")
        );
    }

    #[test]
    fn a_mapped_peer_is_the_same_client_as_plain_ipv4() {
        let h = HeaderMap::new();
        assert_eq!(
            proxies().client_ip(ip("::ffff:198.51.100.1"), &h),
            ip("198.51.100.1")
        );
    }
}
