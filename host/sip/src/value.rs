//! Borrowed header value types: Via, name-addr (From/To/Contact/Route),
//! CSeq, parameters, quoted strings and list splitting.

use std::borrow::Cow;
use std::fmt;

use crate::method::{Method, Transport};
use crate::uri::Uri;

/// Why a header value (or URI) could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub Cow<'static, str>);

impl ValueError {
    pub(crate) fn new(s: &'static str) -> ValueError {
        ValueError(Cow::Borrowed(s))
    }
}

/// Byte search for short ASCII needles: cheaper than `str::find` (which
/// goes through the generic memchr) on the short strings of SIP values.
pub(crate) trait FindByte {
    /// Index of the first `c`.
    fn fb(&self, c: u8) -> Option<usize>;
}

impl FindByte for str {
    #[inline]
    fn fb(&self, c: u8) -> Option<usize> {
        self.bytes().position(|b| b == c)
    }
}

/// RFC 3261 `token` character.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

pub(crate) fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Trims SIP linear white space (space, tab, and any CR/LF left over).
pub(crate) fn trim_lws(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t' || c == '\r' || c == '\n')
}

/// Length of the quoted string that starts at `s[0] == '"'` (including both
/// quotes), honouring `\` escapes. `None` if unterminated.
pub(crate) fn quoted_len(s: &[u8]) -> Option<usize> {
    debug_assert_eq!(s.first(), Some(&b'"'));
    let mut i = 1;
    while i < s.len() {
        match memchr::memchr2(b'\\', b'"', &s[i..]) {
            None => return None,
            Some(j) => {
                i += j;
                if s[i] == b'"' {
                    return Some(i + 1);
                }
                i += 2;
            }
        }
    }
    None
}

/// Removes surrounding double quotes and resolves `\x` escapes. Unquoted input
/// is returned unchanged.
pub fn unquote(s: &str) -> Cow<'_, str> {
    let b = s.as_bytes();
    if b.len() < 2 || b[0] != b'"' || b[b.len() - 1] != b'"' {
        return Cow::Borrowed(s);
    }
    let inner = &s[1..s.len() - 1];
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Finds the first `sep` byte in `s` that is outside quoted strings and
/// outside `<...>`.
pub(crate) fn find_unquoted(s: &[u8], sep: u8) -> Option<usize> {
    let mut i = 0;
    while i < s.len() {
        let j = i + memchr::memchr3(sep, b'"', b'<', &s[i..])?;
        match s[j] {
            b'"' => i = j + quoted_len(&s[j..])?,
            b'<' if sep != b'<' => {
                // URIs cannot contain an unescaped '>'.
                i = j + 1 + memchr::memchr(b'>', &s[j + 1..])? + 1;
            }
            _ => return Some(j),
        }
    }
    None
}

/// Splits a list header value on commas that are outside quoted strings and
/// `<...>` (RFC 3261 §7.3.1). Elements are trimmed; empty elements skipped.
pub fn split_list(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        loop {
            let r = rest?;
            let (item, next) = match find_unquoted(r.as_bytes(), b',') {
                Some(i) => (&r[..i], Some(&r[i + 1..])),
                None => (r, None),
            };
            rest = next;
            let item = trim_lws(item);
            if !item.is_empty() {
                return Some(item);
            }
        }
    })
}

/// A `;`-separated parameter list (as found after a URI or a header value),
/// kept as raw text and parsed on access. The stored text excludes the leading
/// `;`.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Params<'a>(&'a str);

impl<'a> Params<'a> {
    /// Wraps a raw parameter string (without the leading `;`).
    pub fn new(raw: &'a str) -> Params<'a> {
        Params(raw)
    }

    /// The raw text (without the leading `;`).
    pub fn as_str(&self) -> &'a str {
        self.0
    }

    /// True if there are no parameters.
    pub fn is_empty(&self) -> bool {
        trim_lws(self.0).is_empty()
    }

    /// Iterates `(name, value)` pairs; `value` is `None` for flag params
    /// (`;lr`). Values are raw (quoted values keep their quotes; see
    /// [`unquote`]).
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> {
        let mut rest = Some(self.0);
        std::iter::from_fn(move || {
            loop {
                let r = rest?;
                let (item, next) = match find_unquoted(r.as_bytes(), b';') {
                    Some(i) => (&r[..i], Some(&r[i + 1..])),
                    None => (r, None),
                };
                rest = next;
                let item = trim_lws(item);
                if item.is_empty() {
                    continue;
                }
                return Some(match item.fb(b'=') {
                    Some(eq) => (trim_lws(&item[..eq]), Some(trim_lws(&item[eq + 1..]))),
                    None => (item, None),
                });
            }
        })
    }

    /// Looks a parameter up by case-insensitive name. Returns `Some("")` for a
    /// flag parameter, `None` if absent.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.unwrap_or(""))
    }

    /// Like [`Params::get`] but distinguishes a flag (`Some(None)`) from a
    /// value.
    pub fn get_raw(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// True if the parameter is present (with or without value).
    pub fn has(&self, name: &str) -> bool {
        self.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// Value with quotes removed and escapes resolved.
    pub fn get_unquoted(&self, name: &str) -> Option<Cow<'a, str>> {
        self.get(name).map(unquote)
    }

    /// Checks syntax: every name a token, values tokens / quoted strings /
    /// host-ish text without whitespace.
    pub(crate) fn validate(&self) -> Result<(), ValueError> {
        if find_unquoted_quote_unterminated(self.0) {
            return Err(ValueError::new("unterminated quoted string in parameters"));
        }
        for (n, v) in self.iter() {
            if !n.bytes().all(is_token_byte) || n.is_empty() {
                return Err(ValueError::new("bad parameter name"));
            }
            if let Some(v) = v {
                if v.starts_with('"') {
                    if quoted_len(v.as_bytes()) != Some(v.len()) {
                        return Err(ValueError::new("bad quoted parameter value"));
                    }
                } else if v
                    .bytes()
                    .any(|b| is_ws(b) || b == b'"' || b == b'<' || b == b'>')
                {
                    return Err(ValueError::new("bad parameter value"));
                }
            }
        }
        Ok(())
    }
}

fn find_unquoted_quote_unterminated(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(j) = memchr::memchr(b'"', &b[i..]) {
        match quoted_len(&b[i + j..]) {
            Some(n) => i += j + n,
            None => return true,
        }
    }
    false
}

impl fmt::Debug for Params<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl fmt::Display for Params<'_> {
    /// Writes `;name=value` for each parameter (normalised whitespace).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, v) in self.iter() {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
        Ok(())
    }
}

/// Parses `host[:port]` where host may be a bracketed IPv6 reference.
/// Returns (host as written, port).
pub(crate) fn parse_hostport(s: &str) -> Result<(&str, Option<u16>), ValueError> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Err(ValueError::new("empty host"));
    }
    let (host, rest) = if b[0] == b'[' {
        let end = s
            .fb(b']')
            .ok_or(ValueError::new("unterminated IPv6 reference"))?;
        let inner = &s[1..end];
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
            || !inner.contains(':')
        {
            return Err(ValueError::new("bad IPv6 reference"));
        }
        (&s[..=end], &s[end + 1..])
    } else {
        let end = s.fb(b':').unwrap_or(s.len());
        let host = &s[..end];
        if host.is_empty()
            || !host
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_')
        {
            return Err(ValueError::new("bad host"));
        }
        (host, &s[end..])
    };
    let port = if rest.is_empty() {
        None
    } else if let Some(p) = rest.strip_prefix(':') {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|c| c.is_ascii_digit()) {
            return Err(ValueError::new("bad port"));
        }
        Some(
            p.parse::<u16>()
                .map_err(|_| ValueError::new("port out of range"))?,
        )
    } else {
        return Err(ValueError::new("garbage after host"));
    };
    Ok((host, port))
}

/// One Via header value (`SIP/2.0/UDP host:port;branch=...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via<'a> {
    /// Transport token as written (e.g. "UDP", "TLS", "WSS").
    pub transport: &'a str,
    /// sent-by host as written (IPv6 with brackets).
    pub host: &'a str,
    /// sent-by port, if given.
    pub port: Option<u16>,
    /// Via parameters (branch, received, rport, maddr, ttl, ...).
    pub params: Params<'a>,
}

impl<'a> Via<'a> {
    /// Parses one Via value. Whitespace around `/` is accepted (RFC 3261 LWS).
    pub fn parse(s: &'a str) -> Result<Via<'a>, ValueError> {
        let s = trim_lws(s);
        let slash1 = s.fb(b'/').ok_or(ValueError::new("Via: missing protocol"))?;
        if !trim_lws(&s[..slash1]).eq_ignore_ascii_case("SIP") {
            return Err(ValueError::new("Via: protocol is not SIP"));
        }
        let r = &s[slash1 + 1..];
        let slash2 = r
            .fb(b'/')
            .ok_or(ValueError::new("Via: missing transport"))?;
        if trim_lws(&r[..slash2]) != "2.0" {
            return Err(ValueError::new("Via: version is not 2.0"));
        }
        let r = r[slash2 + 1..].trim_start_matches([' ', '\t']);
        let tend = r.bytes().position(|b| !is_token_byte(b)).unwrap_or(r.len());
        let transport = &r[..tend];
        if transport.is_empty() {
            return Err(ValueError::new("Via: empty transport"));
        }
        let r = &r[tend..];
        let r2 = r.trim_start_matches([' ', '\t']);
        if r2.len() == r.len() {
            return Err(ValueError::new("Via: missing sent-by"));
        }
        let (sent_by, params) = match r2.fb(b';') {
            Some(i) => (trim_lws(&r2[..i]), &r2[i + 1..]),
            None => (trim_lws(r2), ""),
        };
        // Allow LWS around ':' in sent-by ("host : 5060").
        let (host, port) = if sent_by.bytes().any(is_ws) {
            let compact: Option<usize> = sent_by.fb(b':').filter(|_| !sent_by.starts_with('['));
            match compact {
                Some(c) => {
                    let h = trim_lws(&sent_by[..c]);
                    let p = trim_lws(&sent_by[c + 1..]);
                    let (h, _) = parse_hostport(h)?;
                    let port = if p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() {
                        p.parse::<u16>()
                            .map_err(|_| ValueError::new("Via: bad port"))?
                    } else {
                        return Err(ValueError::new("Via: bad port"));
                    };
                    (h, Some(port))
                }
                None => return Err(ValueError::new("Via: whitespace in sent-by")),
            }
        } else {
            parse_hostport(sent_by)?
        };
        let params = Params(params);
        params.validate()?;
        Ok(Via {
            transport,
            host,
            port,
            params,
        })
    }

    /// The transport as a known [`Transport`], if it is one.
    pub fn transport(&self) -> Option<Transport> {
        Transport::parse(self.transport)
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&'a str> {
        self.params.get("branch")
    }

    /// The `received` parameter.
    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received")
    }

    /// The `rport` parameter: `None` if absent, `Some(None)` if present as a
    /// flag (the client asks for it, RFC 3581), `Some(Some(port))` if filled.
    pub fn rport(&self) -> Option<Option<u16>> {
        match self.params.get_raw("rport")? {
            None => Some(None),
            Some("") => Some(None),
            Some(v) => Some(v.parse().ok()),
        }
    }

    /// The `maddr` parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr")
    }

    /// True if the branch carries the RFC 3261 magic cookie `z9hG4bK`.
    pub fn is_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with("z9hG4bK"))
    }

    /// sent-by host without IPv6 brackets.
    pub fn host_unbracketed(&self) -> &'a str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }
}

/// A `name-addr` or `addr-spec` value as in From, To, Contact, Route,
/// Record-Route, Refer-To, P-Asserted-Identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name as written (quoted strings keep their quotes); `None` if
    /// absent. See [`NameAddr::display_name_unquoted`].
    pub display_name: Option<&'a str>,
    /// The URI.
    pub uri: Uri<'a>,
    /// True if the URI was enclosed in `<>`.
    pub angle: bool,
    /// Header parameters after the URI (tag, expires, q, lr is a URI param).
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    /// Parses a name-addr / addr-spec. In addr-spec form (no `<>`), everything
    /// after the first `;` is a header parameter (RFC 3261 §20.10).
    pub fn parse(s: &'a str) -> Result<NameAddr<'a>, ValueError> {
        let s = trim_lws(s);
        let b = s.as_bytes();
        if b.is_empty() {
            return Err(ValueError::new("empty address"));
        }
        let (display_name, after_dn) = if b[0] == b'"' {
            let n = quoted_len(b).ok_or(ValueError::new("unterminated quoted display name"))?;
            let rest = s[n..].trim_start_matches([' ', '\t']);
            if !rest.starts_with('<') {
                return Err(ValueError::new("display name not followed by <URI>"));
            }
            (Some(&s[..n]), rest)
        } else if let Some(lt) = s.fb(b'<') {
            let dn = trim_lws(&s[..lt]);
            if !dn
                .bytes()
                .all(|c| is_token_byte(c) || is_ws(c) || c >= 0x80)
            {
                return Err(ValueError::new("display name must be tokens or quoted"));
            }
            (if dn.is_empty() { None } else { Some(dn) }, &s[lt..])
        } else {
            // addr-spec
            let (uri, params) = match s.fb(b';') {
                Some(i) => (trim_lws(&s[..i]), &s[i + 1..]),
                None => (s, ""),
            };
            if uri
                .bytes()
                .any(|c| is_ws(c) || c == b',' || c == b'?' || c == b'>')
            {
                return Err(ValueError::new(
                    "addr-spec with space, ',' or '?' must be enclosed in <>",
                ));
            }
            let uri = Uri::parse(uri)?;
            let params = Params(params);
            params.validate()?;
            return Ok(NameAddr {
                display_name: None,
                uri,
                angle: false,
                params,
            });
        };
        // after_dn starts with '<'
        let gt = after_dn
            .fb(b'>')
            .ok_or(ValueError::new("missing '>' after URI"))?;
        let uri = Uri::parse(&after_dn[1..gt])?;
        let rest = trim_lws(&after_dn[gt + 1..]);
        let params = if rest.is_empty() {
            ""
        } else if let Some(p) = rest.strip_prefix(';') {
            p
        } else {
            return Err(ValueError::new("garbage after '>'"));
        };
        let params = Params(params);
        params.validate()?;
        Ok(NameAddr {
            display_name,
            uri,
            angle: true,
            params,
        })
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag")
    }

    /// Display name without quotes/escapes.
    pub fn display_name_unquoted(&self) -> Option<Cow<'a, str>> {
        self.display_name.map(unquote)
    }
}

impl fmt::Display for NameAddr<'_> {
    /// Writes `"Name" <uri>;params` (always in name-addr form).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(dn) = self.display_name {
            write!(f, "{dn} ")?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// One Contact value: `*` or an address with `expires` / `q` params.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contact<'a> {
    /// `Contact: *` (REGISTER: remove all bindings).
    Star,
    /// A contact address.
    Addr(NameAddr<'a>),
}

impl<'a> Contact<'a> {
    /// Parses one Contact value.
    pub fn parse(s: &'a str) -> Result<Contact<'a>, ValueError> {
        if trim_lws(s) == "*" {
            Ok(Contact::Star)
        } else {
            NameAddr::parse(s).map(Contact::Addr)
        }
    }

    /// The address, unless `*`.
    pub fn addr(&self) -> Option<&NameAddr<'a>> {
        match self {
            Contact::Star => None,
            Contact::Addr(a) => Some(a),
        }
    }

    /// The `expires` parameter, if present and numeric (values above u32 are
    /// clamped).
    pub fn expires(&self) -> Option<u32> {
        let v = self.addr()?.params.get("expires")?;
        parse_delta_seconds(v)
    }

    /// The `q` parameter (0.0 ..= 1.0), if present and valid.
    pub fn q(&self) -> Option<f32> {
        let v = self.addr()?.params.get("q")?;
        let q: f32 = v.parse().ok()?;
        (0.0..=1.0).contains(&q).then_some(q)
    }
}

/// Parses delta-seconds; values too large for u32 are clamped to u32::MAX
/// (RFC 3261 §27: treat as 2**32-1).
pub(crate) fn parse_delta_seconds(v: &str) -> Option<u32> {
    let v = trim_lws(v);
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        v.parse::<u64>()
            .map_or(u32::MAX, |n| n.min(u32::MAX as u64) as u32),
    )
}

/// A CSeq value: sequence number and method.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CSeq {
    /// Sequence number (RFC 3261: less than 2**31).
    pub seq: u32,
    /// Method.
    pub method: Method,
}

impl CSeq {
    /// Parses `1234 INVITE`.
    pub fn parse(s: &str) -> Result<CSeq, ValueError> {
        let s = trim_lws(s);
        let sp = s
            .find([' ', '\t'])
            .ok_or(ValueError::new("CSeq: missing method"))?;
        let num = &s[..sp];
        let method = trim_lws(&s[sp..]);
        if num.is_empty() || num.len() > 10 || !num.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ValueError::new("CSeq: bad sequence number"));
        }
        let seq: u64 = num
            .parse()
            .map_err(|_| ValueError::new("CSeq: bad sequence number"))?;
        if seq >= 1 << 31 {
            return Err(ValueError::new("CSeq: sequence number out of range"));
        }
        if !Method::is_token(method) {
            return Err(ValueError::new("CSeq: bad method"));
        }
        Ok(CSeq {
            seq: seq as u32,
            method: Method::from_token(method),
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_split() {
        let v: Vec<_> = split_list(r#""A, B" <sip:a@b;x=1,2>;q=1 , <sip:c@d>,,sip:e@f"#).collect();
        assert_eq!(v, [r#""A, B" <sip:a@b;x=1,2>;q=1"#, "<sip:c@d>", "sip:e@f"]);
    }

    #[test]
    fn via_basic() {
        let v =
            Via::parse("SIP/2.0/UDP [::1]:5070;branch=z9hG4bKabc;rport;received=1.2.3.4").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, "[::1]");
        assert_eq!(v.host_unbracketed(), "::1");
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.branch(), Some("z9hG4bKabc"));
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.received(), Some("1.2.3.4"));
        let v = Via::parse("SIP / 2.0 / TCP  host.example :  5061 ; rport=9 ; branch = z9hG4bK1")
            .unwrap();
        assert_eq!(v.transport(), Some(Transport::Tcp));
        assert_eq!(v.port, Some(5061));
        assert_eq!(v.rport(), Some(Some(9)));
        assert_eq!(v.branch(), Some("z9hG4bK1"));
        assert!(Via::parse("SIP/2.0/UDP").is_err());
        assert!(Via::parse("SIP/3.0/UDP h").is_err());
    }

    #[test]
    fn name_addr() {
        let n =
            NameAddr::parse(r#""Bob \"B\"" <sip:bob@example.com;transport=tcp>;tag=abc"#).unwrap();
        assert_eq!(n.display_name_unquoted().unwrap(), "Bob \"B\"");
        assert_eq!(n.uri.params.get("transport"), Some("tcp"));
        assert_eq!(n.tag(), Some("abc"));
        let n = NameAddr::parse("sip:bob@example.com;tag=xyz").unwrap();
        assert_eq!(n.tag(), Some("xyz"));
        assert!(n.uri.params.is_empty());
        let n = NameAddr::parse("Bob Smith <sip:b@h>").unwrap();
        assert_eq!(n.display_name, Some("Bob Smith"));
        assert!(NameAddr::parse("\"unterminated <sip:a@b>").is_err());
        assert!(NameAddr::parse("Bell, Alexander <sip:a@b>").is_err());
    }

    #[test]
    fn cseq() {
        let c = CSeq::parse("  4711   INVITE ").unwrap();
        assert_eq!(c.seq, 4711);
        assert_eq!(c.method, Method::Invite);
        assert!(CSeq::parse("-1 INVITE").is_err());
        assert!(CSeq::parse("36893488147419103232 INVITE").is_err());
        assert!(CSeq::parse("1").is_err());
    }
}
