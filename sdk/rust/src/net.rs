//! IP network helpers.

use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`);
/// a bare address is a /32 or /128.
///
/// ```
/// use strowger_sdk::net::Cidr;
/// let lan: Cidr = "192.168.10.0/24".parse().unwrap();
/// assert!(lan.contains_str("192.168.10.77"));
/// assert!(!lan.contains_str("192.168.11.1"));
/// assert!(!lan.contains_str("not an ip"));
/// let v6: Cidr = "2001:db8::/32".parse().unwrap();
/// assert!(v6.contains_str("2001:db8:1::5"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// True if `ip` lies inside this network (IPv4-mapped IPv6 addresses
    /// are compared as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    /// [`Cidr::contains`] for an address given as text; false if it does
    /// not parse (brackets around IPv6 are accepted).
    pub fn contains_str(&self, ip: &str) -> bool {
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        ip.parse().is_ok_and(|ip| self.contains(ip))
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("bad network address `{s}`"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("bad prefix length in `{s}`"))?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_v6_and_edges() {
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains_str("8.8.8.8"));
        assert!(!all.contains_str("::1"));
        let host: Cidr = "10.1.2.3".parse().unwrap();
        assert!(host.contains_str("10.1.2.3"));
        assert!(!host.contains_str("10.1.2.4"));
        let mapped: Cidr = "127.0.0.0/8".parse().unwrap();
        assert!(mapped.contains_str("::ffff:127.0.0.1"));
        let v6: Cidr = "::1/128".parse().unwrap();
        assert!(v6.contains_str("[::1]"));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("10.0.0/8".parse::<Cidr>().is_err());
        assert!("::/129".parse::<Cidr>().is_err());
    }
}
