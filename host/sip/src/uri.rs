//! SIP / SIPS / tel / other URIs (borrowed, zero-copy).

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use crate::method::Transport;
use crate::value::{FindByte, Params, ValueError, parse_hostport};

/// URI scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme<'a> {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
    /// `tel:` (RFC 3966)
    Tel,
    /// Any other absolute URI scheme (kept verbatim; e.g. `urn:`, `http:`).
    Other(&'a str),
}

impl Scheme<'_> {
    /// Scheme name in lower case (for `Other`, as written).
    pub fn as_str(&self) -> &str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
            Scheme::Other(s) => s,
        }
    }
}

/// A parsed URI borrowing from the message text.
///
/// For `sip:`/`sips:` all fields apply. For `tel:` the number is in `user`
/// and `host` is empty. For other schemes only `raw` is meaningful (`user` is
/// the opaque part).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uri<'a> {
    /// The URI text exactly as written.
    pub raw: &'a str,
    /// Scheme.
    pub scheme: Scheme<'a>,
    /// User part, still %-escaped (see [`Uri::user_decoded`]).
    pub user: Option<&'a str>,
    /// Password (deprecated but parsed).
    pub password: Option<&'a str>,
    /// Host as written (IPv6 references keep their brackets).
    pub host: &'a str,
    /// Port, if given.
    pub port: Option<u16>,
    /// URI parameters (`transport`, `user`, `lr`, `maddr`, ...).
    pub params: Params<'a>,
    /// URI headers after `?` (raw, %-escaped), if any.
    pub headers: Option<&'a str>,
}

fn valid_uri_chars(s: &str) -> bool {
    s.bytes()
        .all(|b| b > b' ' && b != 0x7f && !matches!(b, b'<' | b'>' | b'"'))
}

impl<'a> Uri<'a> {
    /// Parses a URI. Unknown schemes are accepted (as [`Scheme::Other`]) so
    /// that the caller can answer 416 rather than 400.
    pub fn parse(s: &'a str) -> Result<Uri<'a>, ValueError> {
        let colon = s.fb(b':').ok_or(ValueError::new("URI: missing scheme"))?;
        let scheme_s = &s[..colon];
        let sb = scheme_s.as_bytes();
        if sb.is_empty()
            || !sb[0].is_ascii_alphabetic()
            || !sb
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return Err(ValueError::new("URI: bad scheme"));
        }
        if !valid_uri_chars(s) {
            return Err(ValueError::new("URI: contains whitespace or <>\""));
        }
        let rest = &s[colon + 1..];
        let scheme = if scheme_s.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme_s.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme_s.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            if rest.is_empty() {
                return Err(ValueError::new("URI: empty"));
            }
            return Ok(Uri {
                raw: s,
                scheme: Scheme::Other(scheme_s),
                user: Some(rest),
                password: None,
                host: "",
                port: None,
                params: Params::default(),
                headers: None,
            });
        };
        if scheme == Scheme::Tel {
            let (num, params) = match rest.fb(b';') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, ""),
            };
            if num.is_empty() {
                return Err(ValueError::new("tel URI: empty number"));
            }
            return Ok(Uri {
                raw: s,
                scheme,
                user: Some(num),
                password: None,
                host: "",
                port: None,
                params: Params::new(params),
                headers: None,
            });
        }
        // '?' starts the URI headers, but it is also legal inside the user
        // part (RFC 4475 "intmeth"): if a '?' precedes the first '@', it
        // starts the headers only when what precedes it is a valid host.
        let q = rest.fb(b'?');
        let at = rest.fb(b'@');
        let q = match (q, at) {
            (Some(q), Some(a)) if q < a => {
                let before = &rest[..q];
                let hp = before.fb(b';').map_or(before, |i| &before[..i]);
                parse_hostport(hp).is_ok().then_some(q)
            }
            (q, _) => q,
        };
        let (body, headers) = match q {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let (userinfo, hostpart) = match body.fb(b'@') {
            Some(i) => (Some(&body[..i]), &body[i + 1..]),
            None => (None, body),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(ui) => {
                let (u, p) = match ui.fb(b':') {
                    Some(i) => (&ui[..i], Some(&ui[i + 1..])),
                    None => (ui, None),
                };
                if u.is_empty() {
                    return Err(ValueError::new("URI: empty user before '@'"));
                }
                (Some(u), p)
            }
        };
        // host[:port] ends at the first ';' (after any IPv6 reference).
        let hp_end = if hostpart.starts_with('[') {
            match hostpart.fb(b']') {
                Some(r) => hostpart[r..].fb(b';').map_or(hostpart.len(), |i| r + i),
                None => return Err(ValueError::new("URI: unterminated IPv6 reference")),
            }
        } else {
            hostpart.fb(b';').unwrap_or(hostpart.len())
        };
        let (host, port) = parse_hostport(&hostpart[..hp_end])?;
        let params = if hp_end < hostpart.len() {
            &hostpart[hp_end + 1..]
        } else {
            ""
        };
        Ok(Uri {
            raw: s,
            scheme,
            user,
            password,
            host,
            port,
            params: Params::new(params),
            headers,
        })
    }

    /// True for `sip:` and `sips:`.
    pub fn is_sip(&self) -> bool {
        matches!(self.scheme, Scheme::Sip | Scheme::Sips)
    }

    /// The user part with %-escapes decoded (invalid UTF-8 replaced).
    pub fn user_decoded(&self) -> Option<Cow<'a, str>> {
        self.user.map(percent_decode)
    }

    /// Host without IPv6 brackets.
    pub fn host_unbracketed(&self) -> &'a str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }

    /// Host as an IP address, if it is a literal.
    pub fn host_ip(&self) -> Option<IpAddr> {
        self.host_unbracketed().parse().ok()
    }

    /// The `transport` URI parameter as a [`Transport`].
    pub fn transport_param(&self) -> Option<Transport> {
        self.params.get("transport").and_then(Transport::parse)
    }

    /// True if `user=phone` is present.
    pub fn is_user_phone(&self) -> bool {
        self.params
            .get("user")
            .is_some_and(|v| v.eq_ignore_ascii_case("phone"))
    }

    /// True if the loose-routing `lr` parameter is present.
    pub fn has_lr(&self) -> bool {
        self.params.has("lr")
    }
}

impl Uri<'_> {
    /// URI equivalence per RFC 3261 §19.1.4: schemes equal; user and
    /// password compared case-sensitively after %-decoding; host
    /// case-insensitively; ports equal (an explicit port never equals an
    /// absent one); `user`, `ttl`, `method`, `maddr` and `transport`
    /// parameters must match if present in either URI, other parameters
    /// only if present in both; URI headers must all match. `tel:` numbers
    /// are compared ignoring visual separators (RFC 3966 §4).
    pub fn equivalent(&self, other: &Uri<'_>) -> bool {
        match (self.scheme, other.scheme) {
            (Scheme::Tel, Scheme::Tel) => {
                let digits = |u: &Uri<'_>| -> String {
                    u.user
                        .unwrap_or("")
                        .chars()
                        .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
                        .collect::<String>()
                        .to_ascii_lowercase()
                };
                digits(self) == digits(other) && params_equivalent(self, other, &[])
            }
            (Scheme::Other(a), Scheme::Other(b)) => {
                a.eq_ignore_ascii_case(b) && self.user == other.user
            }
            (a, b) if a == b => {
                let dec = |x: Option<&str>| x.map(|v| percent_decode(v).into_owned());
                dec(self.user) == dec(other.user)
                    && dec(self.password) == dec(other.password)
                    && self.host.eq_ignore_ascii_case(other.host)
                    && self.port == other.port
                    && params_equivalent(
                        self,
                        other,
                        &["user", "ttl", "method", "maddr", "transport"],
                    )
                    && headers_equivalent(self.headers, other.headers)
            }
            _ => false,
        }
    }
}

fn params_equivalent(a: &Uri<'_>, b: &Uri<'_>, must: &[&str]) -> bool {
    let eq = |x: &str, y: &str| percent_decode(x).eq_ignore_ascii_case(&percent_decode(y));
    for (n, v) in a.params.iter() {
        // a repeated name counts once, with its first value (as `get_raw`
        // reads it on the other side): otherwise a URI that repeats a
        // parameter with another value is not equivalent to itself
        if a.params.get_raw(n) != Some(v) {
            continue;
        }
        match b.params.get_raw(n) {
            Some(w) if !eq(v.unwrap_or(""), w.unwrap_or("")) => return false,
            Some(_) => {}
            None if must.iter().any(|m| m.eq_ignore_ascii_case(n)) => return false,
            None => {}
        }
    }
    for (n, _) in b.params.iter() {
        if must.iter().any(|m| m.eq_ignore_ascii_case(n)) && !a.params.has(n) {
            return false;
        }
    }
    true
}

fn headers_equivalent(a: Option<&str>, b: Option<&str>) -> bool {
    let split = |h: Option<&str>| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = h
            .unwrap_or("")
            .split('&')
            .filter(|x| !x.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (
                    percent_decode(k).to_ascii_lowercase(),
                    percent_decode(v).into_owned(),
                )
            })
            .collect();
        v.sort();
        v
    };
    split(a) == split(b)
}

impl fmt::Display for Uri<'_> {
    /// Re-serialises from the parsed parts (equals the input for
    /// canonically written URIs; parameters get normalised whitespace).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scheme {
            Scheme::Other(_) => f.write_str(self.raw),
            Scheme::Tel => write!(f, "tel:{}{}", self.user.unwrap_or_default(), self.params),
            Scheme::Sip | Scheme::Sips => {
                f.write_str(self.scheme.as_str())?;
                f.write_str(":")?;
                if let Some(u) = self.user {
                    f.write_str(u)?;
                    if let Some(p) = self.password {
                        write!(f, ":{p}")?;
                    }
                    f.write_str("@")?;
                }
                f.write_str(self.host)?;
                if let Some(p) = self.port {
                    write!(f, ":{p}")?;
                }
                write!(f, "{}", self.params)?;
                if let Some(h) = self.headers {
                    write!(f, "?{h}")?;
                }
                Ok(())
            }
        }
    }
}

/// Decodes `%XX` escapes; malformed escapes are kept verbatim; invalid UTF-8
/// in the result is replaced with U+FFFD.
pub fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let h = (b[i + 1] as char).to_digit(16);
            let l = (b[i + 2] as char).to_digit(16);
            if let (Some(h), Some(l)) = (h, l) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri() {
        let u = Uri::parse("sip:alice:pw@atlanta.com:5070;transport=tcp;lr?subject=x").unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("pw"));
        assert_eq!(u.host, "atlanta.com");
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.transport_param(), Some(Transport::Tcp));
        assert!(u.has_lr());
        assert_eq!(u.headers, Some("subject=x"));
        assert_eq!(u.to_string(), u.raw);
    }

    #[test]
    fn ipv6_and_escapes() {
        let u = Uri::parse("sips:%61lice@[2001:db8::10]:5061;maddr=[::1]").unwrap();
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.user_decoded().unwrap(), "alice");
        assert_eq!(u.host, "[2001:db8::10]");
        assert_eq!(u.host_ip(), Some("2001:db8::10".parse().unwrap()));
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.to_string(), u.raw);
        let u = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        assert_eq!(u.host, "example.com");
    }

    #[test]
    fn tel_and_other() {
        let u = Uri::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(u.scheme, Scheme::Tel);
        assert_eq!(u.user, Some("+1-201-555-0123"));
        assert_eq!(u.params.get("phone-context"), Some("example.com"));
        assert_eq!(u.to_string(), u.raw);
        let u = Uri::parse("urn:service:sos").unwrap();
        assert_eq!(u.scheme, Scheme::Other("urn"));
        assert!(Uri::parse("sip:").is_err());
        assert!(Uri::parse("sip:a b@c").is_err());
        assert!(Uri::parse("sip:host:99999").is_err());
        assert_eq!(percent_decode("a%00b%zz%4"), "a\0b%zz%4");
    }

    #[test]
    fn a_uri_repeating_a_parameter_is_equivalent_to_itself() {
        // found by the `parse` fuzz target
        for raw in [
            "tel:+15551234;phone-context=example.com;phone-context=other.net",
            "sip:a@b;x=1;X=2;transport=udp;transport=tcp",
        ] {
            let u = Uri::parse(raw).unwrap();
            assert!(u.equivalent(&u), "{raw}");
        }
    }

    #[test]
    fn rfc3261_equivalence() {
        let eq = |a: &str, b: &str| Uri::parse(a).unwrap().equivalent(&Uri::parse(b).unwrap());
        // RFC 3261 §19.1.4 examples of equivalent URIs.
        assert!(eq(
            "sip:%61lice@atlanta.com;transport=TCP",
            "sip:alice@AtLanTa.CoM;Transport=tcp"
        ));
        assert!(eq(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com;newparam=5"
        ));
        assert!(eq(
            "sip:carol@chicago.com;security=on",
            "sip:carol@chicago.com;newparam=5"
        ));
        assert!(eq(
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"
        ));
        assert!(eq(
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:alice@atlanta.com?priority=urgent&subject=project%20x"
        ));
        // ... and of non-equivalent ones.
        assert!(!eq(
            "SIP:ALICE@AtLanTa.CoM;Transport=udp",
            "sip:alice@AtLanTa.CoM;Transport=UDP"
        ));
        assert!(!eq("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"));
        assert!(!eq(
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com;transport=udp"
        ));
        assert!(!eq(
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com:6000;transport=tcp"
        ));
        assert!(!eq(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com?Subject=next%20meeting"
        ));
        assert!(!eq("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"));
        assert!(!eq(
            "sip:carol@chicago.com;security=on",
            "sip:carol@chicago.com;security=off"
        ));
        assert!(!eq("sip:a@h", "sips:a@h"));
        assert!(eq("tel:+1-201-555-0123", "tel:+12015550123"));
        assert!(!eq("tel:+12015550123", "sip:+12015550123@h"));
    }
}
