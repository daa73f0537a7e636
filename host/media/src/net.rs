//! Which addresses the relay may send media to: an SDP connection address
//! (or `a=rtcp` address) is refused when it is not a unicast address of an
//! allowed network ([`check_media_addr`]).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP network (`10.0.0.0/8`, `2001:db8::/32`; a bare address is a /32
/// or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` is in this network (IPv4-mapped IPv6 addresses count as
    /// IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{s:?} is not an IP network (like 10.0.0.0/8)"))?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?,
            None => max,
        };
        Ok(IpNet { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl serde::Serialize for IpNet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for IpNet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a media address is refused (`None` = it may be used). Unspecified
/// addresses (`0.0.0.0`, `::`: hold) are the caller's business and pass.
/// Never allowed: multicast, the IPv4 broadcast address, reserved IPv4
/// (`0.0.0.0/8`, `240.0.0.0/4`). Loopback only when the relay itself is
/// bound to loopback (`relay_on_loopback`) or `allowed` lists it. With a
/// non-empty `allowed`, only addresses in one of its networks.
pub fn check_media_addr(
    ip: IpAddr,
    allowed: &[IpNet],
    relay_on_loopback: bool,
) -> Option<&'static str> {
    let ip = ip.to_canonical();
    if ip.is_unspecified() {
        return None;
    }
    if ip.is_multicast() {
        return Some("multicast");
    }
    if let IpAddr::V4(v4) = ip {
        if v4.is_broadcast() {
            return Some("broadcast");
        }
        let o = v4.octets();
        if o[0] == 0 || o[0] >= 240 {
            return Some("reserved");
        }
    }
    let listed = allowed.iter().any(|n| n.contains(ip));
    if ip.is_loopback() && !relay_on_loopback && !listed {
        return Some("loopback");
    }
    if !allowed.is_empty() && !listed {
        return Some("not allowed (media.allowed_networks)");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_match() {
        let n: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(n.contains(ip("10.1.2.3")));
        assert!(n.contains(ip("::ffff:10.1.2.3")));
        assert!(!n.contains(ip("11.0.0.1")));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        let one: IpNet = "192.0.2.7".parse().unwrap();
        assert_eq!(one.to_string(), "192.0.2.7/32");
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: IpNet = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::1")));
        for bad in ["10.0.0.0/33", "x/8", "10.0.0.0/", "::/129", ""] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn only_unicast_of_allowed_networks() {
        let none: &[IpNet] = &[];
        assert_eq!(
            check_media_addr(ip("224.0.0.1"), none, true),
            Some("multicast")
        );
        assert_eq!(
            check_media_addr(ip("ff02::1"), none, true),
            Some("multicast")
        );
        assert_eq!(
            check_media_addr(ip("::ffff:239.1.1.1"), none, true),
            Some("multicast")
        );
        assert_eq!(
            check_media_addr(ip("255.255.255.255"), none, true),
            Some("broadcast")
        );
        assert_eq!(
            check_media_addr(ip("0.1.2.3"), none, true),
            Some("reserved")
        );
        assert_eq!(check_media_addr(ip("0.0.0.0"), none, true), None);
        assert_eq!(check_media_addr(ip("203.0.113.5"), none, false), None);
        assert_eq!(check_media_addr(ip("127.0.0.1"), none, true), None);
        assert_eq!(
            check_media_addr(ip("127.0.0.1"), none, false),
            Some("loopback")
        );
        let lan = [
            "192.168.0.0/16".parse().unwrap(),
            "127.0.0.0/8".parse().unwrap(),
        ];
        assert_eq!(check_media_addr(ip("192.168.4.4"), &lan, false), None);
        assert_eq!(check_media_addr(ip("127.0.0.5"), &lan, false), None);
        assert!(check_media_addr(ip("203.0.113.5"), &lan, false).is_some());
        assert_eq!(
            check_media_addr(ip("224.0.0.1"), &["0.0.0.0/0".parse().unwrap()], true),
            Some("multicast")
        );
    }
}
