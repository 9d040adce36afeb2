//! A set of IPv4/IPv6 addresses given as CIDR ranges or single addresses. Ranges are kept
//! merged and sorted in one 128-bit space (IPv4 as IPv4-mapped IPv6), so a lookup is one
//! binary search whatever the size of the list.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::NetError;

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) becomes plain IPv4, so one client is one address
/// whichever socket family it arrived on.
pub fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match normalize(ip) {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Parses `a.b.c.d`, `a.b.c.d/n`, `x::y` or `x::y/n` into an inclusive range.
fn parse_range(s: &str) -> Result<(u128, u128), NetError> {
    let bad = || NetError::InvalidRange(s.to_string());
    let t = s.trim();
    let (addr, len) = match t.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u8>().map_err(|_| bad())?)),
        None => (t, None),
    };
    let ip = IpAddr::from_str(addr).map_err(|_| bad())?;
    // A prefix over an IPv4-mapped IPv6 address counts in IPv6 bits; over IPv4, in IPv4
    // bits shifted into the mapped space.
    let prefix = match (ip, len) {
        (_, None) => 128,
        (IpAddr::V4(_), Some(l)) if l <= 32 => 96 + u32::from(l),
        (IpAddr::V6(_), Some(l)) if l <= 128 => u32::from(l),
        _ => return Err(bad()),
    };
    let base = match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    };
    let host_bits = 128 - prefix;
    let mask = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    Ok((base & !mask, (base & !mask) | mask))
}

/// An immutable set of address ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpSet {
    /// Sorted, non-overlapping, non-adjacent inclusive ranges.
    ranges: Vec<(u128, u128)>,
}

impl IpSet {
    /// Parses every entry; the first invalid one is the error.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<IpSet, NetError> {
        let mut ranges = entries
            .iter()
            .map(|e| parse_range(e.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        ranges.sort_unstable();
        let mut merged: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            match merged.last_mut() {
                Some(last) if start <= last.1.saturating_add(1) => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        Ok(IpSet { ranges: merged })
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let x = to_u128(ip);
        // The last range starting at or before x is the only candidate.
        let i = self.ranges.partition_point(|(start, _)| *start <= x);
        i > 0 && self.ranges[i - 1].1 >= x
    }
}

impl IpSet {
    /// The loopback ranges of both families (a proxy on the same host).
    pub fn loopback() -> IpSet {
        IpSet {
            ranges: vec![
                (
                    u128::from(Ipv6Addr::LOCALHOST),
                    u128::from(Ipv6Addr::LOCALHOST),
                ),
                (
                    u128::from(Ipv4Addr::new(127, 0, 0, 0).to_ipv6_mapped()),
                    u128::from(Ipv4Addr::new(127, 255, 255, 255).to_ipv6_mapped()),
                ),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_match_ipv4_ipv6_and_mapped_addresses() {
        let set = IpSet::parse(&["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "::1"]).unwrap();
        for (addr, want) in [
            ("10.1.2.3", true),
            ("10.255.255.255", true),
            ("11.0.0.0", false),
            ("9.255.255.255", false),
            ("192.168.1.7", true),
            ("192.168.1.8", false),
            ("::ffff:10.9.9.9", true),
            ("::ffff:11.9.9.9", false),
            ("2001:db8:ffff::1", true),
            ("2001:db9::1", false),
            ("::1", true),
            ("::2", false),
        ] {
            assert_eq!(set.contains(ip(addr)), want, "{addr}");
        }
    }

    #[test]
    fn overlapping_and_adjacent_ranges_merge() {
        let set =
            IpSet::parse(&["10.0.0.0/9", "10.128.0.0/9", "10.0.0.0/16", "0.0.0.0/0"]).unwrap();
        assert_eq!(set.ranges.len(), 1);
        assert!(set.contains(ip("8.8.8.8")));
        assert!(
            !set.contains(ip("2001:db8::1")),
            "IPv4 /0 is not all of IPv6"
        );
        let all = IpSet::parse(&["::/0"]).unwrap();
        assert!(all.contains(ip("8.8.8.8")) && all.contains(ip("2001:db8::1")));
    }

    #[test]
    fn invalid_entries_are_errors() {
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0",
            "x",
            "10.0.0.0/",
            "/8",
            "1.2.3.4/-1",
        ] {
            assert!(IpSet::parse(&[bad]).is_err(), "{bad}");
        }
        assert!(IpSet::parse::<&str>(&[]).unwrap().is_empty());
    }

    #[test]
    fn loopback_covers_both_families() {
        let l = IpSet::loopback();
        assert!(
            l.contains(ip("127.0.0.1"))
                && l.contains(ip("::1"))
                && l.contains(ip("::ffff:127.1.2.3"))
        );
        assert!(!l.contains(ip("10.0.0.1")));
    }
}
