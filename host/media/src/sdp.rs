//! Line-oriented SDP (RFC 8866 / RFC 4566) parser and rewriter.
//!
//! Every line is kept as the exact text it arrived with, together with its
//! own line ending, so a serialized SDP is byte-identical to the input except
//! for the lines the relay deliberately edits (`o=`, `c=`, `m=` port and
//! format list, `a=rtcp`, removed codec lines, removed ICE lines). Unknown
//! lines and attributes (SDES `a=crypto`, T.38 `a=T38Fax...`, DTLS
//! fingerprints, vendor attributes) pass through verbatim.
//!
//! Parsing validates only what the relay depends on: `v=0` first, an `o=`
//! line, every line of the form `<letter>=<value>`, well-formed `m=` and
//! `c=` lines. Anything else is an [`SdpError`], which the switch answers
//! with 488 Not Acceptable Here.

use std::fmt;
use std::net::IpAddr;

/// Why an SDP body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SDP (line {line}): {reason}")]
pub struct SdpError {
    /// 1-based line number (0 = the body as a whole).
    pub line: usize,
    /// Human-readable reason.
    pub reason: String,
}

fn err(line: usize, reason: impl Into<String>) -> SdpError {
    SdpError {
        line,
        reason: reason.into(),
    }
}

/// One SDP line: its text (without line ending) and the ending it had.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    text: String,
    eol: &'static str,
}

impl Line {
    fn kind(&self) -> u8 {
        self.text.as_bytes().first().copied().unwrap_or(0)
    }
    fn value(&self) -> &str {
        self.text.get(2..).unwrap_or("")
    }
    /// `a=name:value` / `a=name` → (name, value).
    fn attr(&self) -> Option<(&str, Option<&str>)> {
        if self.kind() != b'a' {
            return None;
        }
        let v = self.value();
        match v.split_once(':') {
            Some((n, rest)) => Some((n, Some(rest))),
            None => Some((v, None)),
        }
    }
}

/// Media direction attribute (RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// `a=sendrecv` (the default).
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    fn from_attr(name: &str) -> Option<Direction> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
}

/// A `c=` line: `IN IP4 192.0.2.1` (a multicast `/ttl` suffix is kept in `raw_addr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Parsed address (without any `/ttl/count` suffix).
    pub addr: IpAddr,
}

/// An `a=rtpmap` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub pt: u8,
    /// Encoding name as written (e.g. `PCMU`, `telephone-event`).
    pub name: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Channels (audio), if given.
    pub channels: Option<u32>,
}

/// A parsed SDP session description that remembers its exact text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    session: Vec<Line>,
    media: Vec<MediaSection>,
    default_eol: &'static str,
}

/// One media description (`m=` line and the lines after it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSection {
    lines: Vec<Line>,
}

fn parse_connection(v: &str, lineno: usize) -> Result<Connection, SdpError> {
    let mut it = v.split_ascii_whitespace();
    let (nt, at, addr) = (it.next(), it.next(), it.next());
    if nt != Some("IN") {
        return Err(err(lineno, "c= network type is not IN"));
    }
    let addr = addr.ok_or_else(|| err(lineno, "c= without address"))?;
    let host = addr.split('/').next().unwrap_or("");
    let ip: IpAddr = host
        .parse()
        .map_err(|_| err(lineno, format!("c= address {host:?} is not an IP address")))?;
    match (at, ip) {
        (Some("IP4"), IpAddr::V4(_)) | (Some("IP6"), IpAddr::V6(_)) => Ok(Connection { addr: ip }),
        _ => Err(err(lineno, "c= address type does not match the address")),
    }
}

fn addrtype(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

impl Sdp {
    /// Parse an SDP body given as bytes (must be UTF-8).
    pub fn parse_bytes(body: &[u8]) -> Result<Sdp, SdpError> {
        let s = std::str::from_utf8(body).map_err(|_| err(0, "SDP is not UTF-8"))?;
        Sdp::parse(s)
    }

    /// Parse an SDP body.
    pub fn parse(body: &str) -> Result<Sdp, SdpError> {
        if body.len() > 64 * 1024 {
            return Err(err(0, "SDP larger than 64 KiB"));
        }
        let mut session = Vec::new();
        let mut media: Vec<MediaSection> = Vec::new();
        let mut crlf = 0usize;
        let mut lf = 0usize;
        let mut rest = body;
        let mut lineno = 0usize;
        while !rest.is_empty() {
            lineno += 1;
            let (raw, eol, next) = match rest.find('\n') {
                Some(i) => {
                    if i > 0 && rest.as_bytes()[i - 1] == b'\r' {
                        crlf += 1;
                        (&rest[..i - 1], "\r\n", &rest[i + 1..])
                    } else {
                        lf += 1;
                        (&rest[..i], "\n", &rest[i + 1..])
                    }
                }
                None => (rest, "", ""),
            };
            rest = next;
            let line = Line {
                text: raw.to_string(),
                eol,
            };
            if raw.is_empty() {
                // Blank lines (usually a stray trailing one) are kept verbatim.
                match media.last_mut() {
                    Some(m) => m.lines.push(line),
                    None => session.push(line),
                }
                continue;
            }
            let b = raw.as_bytes();
            if b.len() < 2 || !b[0].is_ascii_alphabetic() || b[1] != b'=' {
                return Err(err(lineno, format!("not a `<type>=<value>` line: {raw:?}")));
            }
            if lineno == 1 && raw != "v=0" {
                return Err(err(1, "first line must be v=0"));
            }
            match b[0] {
                b'm' => {
                    validate_m(line.value(), lineno)?;
                    media.push(MediaSection { lines: vec![line] });
                }
                b'c' => {
                    parse_connection(line.value(), lineno)?;
                    match media.last_mut() {
                        Some(m) => m.lines.push(line),
                        None => session.push(line),
                    }
                }
                _ => match media.last_mut() {
                    Some(m) => m.lines.push(line),
                    None => session.push(line),
                },
            }
        }
        if session.first().map(|l| l.text.as_str()) != Some("v=0") {
            return Err(err(1, "first line must be v=0"));
        }
        let o = session
            .iter()
            .position(|l| l.kind() == b'o')
            .ok_or_else(|| err(0, "missing o= line"))?;
        if session[o].value().split_ascii_whitespace().count() != 6 {
            return Err(err(o + 1, "o= line needs 6 fields"));
        }
        let sdp = Sdp {
            session,
            media,
            default_eol: if lf > crlf { "\n" } else { "\r\n" },
        };
        // Every active stream needs a connection address somewhere.
        for (i, m) in sdp.media.iter().enumerate() {
            if m.port() != 0 && sdp.connection(i).is_none() {
                return Err(err(0, format!("m= line {} has no c= address", i + 1)));
            }
        }
        Ok(sdp)
    }

    /// The media sections, in order.
    pub fn media(&self) -> &[MediaSection] {
        &self.media
    }

    /// Mutable access to the media sections.
    pub fn media_mut(&mut self) -> &mut [MediaSection] {
        &mut self.media
    }

    /// The session-level `c=`.
    pub fn session_connection(&self) -> Option<Connection> {
        self.session
            .iter()
            .find(|l| l.kind() == b'c')
            .and_then(|l| parse_connection(l.value(), 0).ok())
    }

    /// The effective connection address of media section `i` (media-level
    /// `c=` overrides session-level).
    pub fn connection(&self, i: usize) -> Option<Connection> {
        self.media
            .get(i)
            .and_then(|m| m.connection())
            .or_else(|| self.session_connection())
    }

    /// Session-level direction attribute, if any.
    pub fn session_direction(&self) -> Option<Direction> {
        self.session
            .iter()
            .filter_map(|l| l.attr())
            .find_map(|(n, _)| Direction::from_attr(n))
    }

    /// Effective direction of media section `i`.
    pub fn direction(&self, i: usize) -> Direction {
        self.media
            .get(i)
            .and_then(|m| m.direction_attr())
            .or_else(|| self.session_direction())
            .unwrap_or(Direction::SendRecv)
    }

    /// Rewrite every address that reveals the sender: the `o=` unicast
    /// address and all `c=` lines (a hold address `0.0.0.0` / `::` is kept,
    /// it is a signal, not a location).
    pub fn set_address(&mut self, ip: IpAddr) {
        for l in self.session.iter_mut() {
            if l.kind() == b'o' {
                let f: Vec<&str> = l.value().split_ascii_whitespace().collect();
                if f.len() == 6 {
                    l.text = format!(
                        "o={} {} {} {} {} {}",
                        f[0],
                        f[1],
                        f[2],
                        f[3],
                        addrtype(ip),
                        ip
                    );
                }
            }
        }
        let lines = self
            .session
            .iter_mut()
            .chain(self.media.iter_mut().flat_map(|m| m.lines.iter_mut()));
        for l in lines {
            if l.kind() == b'c'
                && let Ok(c) = parse_connection(l.value(), 0)
                && !c.addr.is_unspecified()
            {
                l.text = format!("c=IN {} {}", addrtype(ip), ip);
            }
        }
    }

    /// Remove ICE attributes (`a=candidate`, `a=ice-*`, ...): once media is
    /// anchored the phone's candidates would leak its addresses and make
    /// ICE bypass the relay.
    pub fn strip_ice(&mut self) {
        fn is_ice(l: &Line) -> bool {
            matches!(
                l.attr().map(|(n, _)| n),
                Some(
                    "candidate"
                        | "ice-ufrag"
                        | "ice-pwd"
                        | "ice-options"
                        | "ice-lite"
                        | "ice-mismatch"
                        | "end-of-candidates"
                        | "remote-candidates"
                )
            )
        }
        self.session.retain(|l| !is_ice(l));
        for m in &mut self.media {
            m.lines.retain(|l| !is_ice(l));
        }
    }

    /// Serialize back to text.
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(1024);
        let all = self
            .session
            .iter()
            .chain(self.media.iter().flat_map(|m| m.lines.iter()));
        let n = self.session.len() + self.media.iter().map(|m| m.lines.len()).sum::<usize>();
        for (i, l) in all.enumerate() {
            out.push_str(&l.text);
            // A line that had no ending is only legal as the very last one.
            if l.eol.is_empty() && i + 1 < n {
                out.push_str(self.default_eol);
            } else {
                out.push_str(l.eol);
            }
        }
        out
    }
}

impl fmt::Display for Sdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

fn validate_m(v: &str, lineno: usize) -> Result<(), SdpError> {
    let f: Vec<&str> = v.split_ascii_whitespace().collect();
    if f.len() < 4 {
        return Err(err(lineno, "m= line needs media, port, proto and formats"));
    }
    let port = f[1].split('/').next().unwrap_or("");
    port.parse::<u16>()
        .map_err(|_| err(lineno, format!("m= port {port:?} is not a number")))?;
    if let Some(n) = f[1].split('/').nth(1) {
        n.parse::<u16>()
            .map_err(|_| err(lineno, "m= port count is not a number"))?;
    }
    Ok(())
}

impl MediaSection {
    fn m_fields(&self) -> Vec<&str> {
        self.lines[0].value().split_ascii_whitespace().collect()
    }

    /// Media type (`audio`, `video`, `image`, ...).
    pub fn media_type(&self) -> &str {
        self.lines[0]
            .value()
            .split_ascii_whitespace()
            .next()
            .unwrap_or("")
    }

    /// Transport port (0 = stream rejected/disabled).
    pub fn port(&self) -> u16 {
        self.m_fields()
            .get(1)
            .and_then(|p| p.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// Transport protocol (`RTP/AVP`, `RTP/SAVP`, `udptl`, ...).
    pub fn proto(&self) -> &str {
        self.lines[0]
            .value()
            .split_ascii_whitespace()
            .nth(2)
            .unwrap_or("")
    }

    /// Whether the transport is RTP-based (`RTP/...` or `UDP/TLS/RTP/...`).
    pub fn is_rtp(&self) -> bool {
        self.proto().contains("RTP/")
    }

    /// The format list (payload types for RTP).
    pub fn formats(&self) -> Vec<String> {
        self.m_fields()
            .iter()
            .skip(3)
            .map(|s| s.to_string())
            .collect()
    }

    /// Set the transport port, keeping any `/count` suffix.
    pub fn set_port(&mut self, port: u16) {
        let f = self.m_fields();
        let count = f[1].split_once('/').map(|(_, c)| c.to_string());
        let mut text = format!("m={} {}", f[0], port);
        if let Some(c) = count {
            text.push('/');
            text.push_str(&c);
        }
        for x in &f[2..] {
            text.push(' ');
            text.push_str(x);
        }
        self.lines[0].text = text;
    }

    fn set_formats(&mut self, fmts: &[String]) {
        let f = self.m_fields();
        let mut text = format!("m={} {} {}", f[0], f[1], f[2]);
        for x in fmts {
            text.push(' ');
            text.push_str(x);
        }
        self.lines[0].text = text;
    }

    /// Media-level `c=`.
    pub fn connection(&self) -> Option<Connection> {
        self.lines
            .iter()
            .find(|l| l.kind() == b'c')
            .and_then(|l| parse_connection(l.value(), 0).ok())
    }

    /// Media-level direction attribute.
    pub fn direction_attr(&self) -> Option<Direction> {
        self.lines
            .iter()
            .filter_map(|l| l.attr())
            .find_map(|(n, _)| Direction::from_attr(n))
    }

    /// Value of the first attribute `name` (`Some("")` for a flag).
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.lines
            .iter()
            .filter_map(|l| l.attr())
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.unwrap_or(""))
    }

    /// Whether `a=rtcp-mux` is present.
    pub fn rtcp_mux(&self) -> bool {
        self.attribute("rtcp-mux").is_some()
    }

    /// `a=rtcp:<port> [IN IP4 addr]` → (port, address).
    pub fn rtcp(&self) -> Option<(u16, Option<IpAddr>)> {
        let v = self.attribute("rtcp")?;
        let mut it = v.split_ascii_whitespace();
        let port = it.next()?.parse().ok()?;
        let rest: Vec<&str> = it.collect();
        let addr = if rest.len() == 3 {
            rest[2].parse().ok()
        } else {
            None
        };
        Some((port, addr))
    }

    /// Rewrite `a=rtcp` (if present) to `port` and, if it carried an address, to `ip`.
    pub fn set_rtcp(&mut self, port: u16, ip: IpAddr) {
        for l in self.lines.iter_mut() {
            if let Some(("rtcp", Some(v))) = l.attr() {
                let has_addr = v.split_ascii_whitespace().count() >= 4;
                l.text = if has_addr {
                    format!("a=rtcp:{port} IN {} {ip}", addrtype(ip))
                } else {
                    format!("a=rtcp:{port}")
                };
            }
        }
    }

    /// All `a=rtpmap` entries.
    pub fn rtpmaps(&self) -> Vec<RtpMap> {
        self.lines
            .iter()
            .filter_map(|l| l.attr())
            .filter(|(n, _)| *n == "rtpmap")
            .filter_map(|(_, v)| parse_rtpmap(v?))
            .collect()
    }

    /// The rtpmap of payload type `pt` (explicit, else the RFC 3551 static one).
    pub fn rtpmap(&self, pt: u8) -> Option<RtpMap> {
        self.rtpmaps()
            .into_iter()
            .find(|r| r.pt == pt)
            .or_else(|| static_rtpmap(pt))
    }

    /// `a=fmtp` value for `pt`.
    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.lines
            .iter()
            .filter_map(|l| l.attr())
            .filter(|(n, _)| *n == "fmtp")
            .filter_map(|(_, v)| v)
            .find_map(|v| {
                let (p, rest) = v.split_once(' ').unwrap_or((v, ""));
                (p.parse::<u8>().ok() == Some(pt)).then_some(rest)
            })
    }

    /// Keep only the formats in `keep`, in the order of `keep`, and drop the
    /// `a=rtpmap` / `a=fmtp` / `a=rtcp-fb` lines of the removed ones.
    pub fn retain_formats(&mut self, keep: &[String]) {
        let present = self.formats();
        let mut fmts: Vec<String> = Vec::new();
        for f in keep {
            if present.contains(f) && !fmts.contains(f) {
                fmts.push(f.clone());
            }
        }
        self.set_formats(&fmts);
        self.lines.retain(|l| match l.attr() {
            Some(("rtpmap" | "fmtp" | "rtcp-fb", Some(v))) => {
                let p = v.split([' ', '/']).next().unwrap_or("");
                p == "*" || fmts.iter().any(|f| f == p)
            }
            _ => true,
        });
    }
}

fn parse_rtpmap(v: &str) -> Option<RtpMap> {
    let (pt, enc) = v.split_once(' ')?;
    let pt = pt.trim().parse().ok()?;
    let mut parts = enc.trim().split('/');
    let name = parts.next()?.to_string();
    let clock_rate = parts.next()?.parse().ok()?;
    let channels = parts.next().and_then(|c| c.parse().ok());
    Some(RtpMap {
        pt,
        name,
        clock_rate,
        channels,
    })
}

/// RFC 3551 static payload types that phones commonly send without rtpmap.
pub fn static_rtpmap(pt: u8) -> Option<RtpMap> {
    let (name, rate) = match pt {
        0 => ("PCMU", 8000),
        3 => ("GSM", 8000),
        4 => ("G723", 8000),
        5 => ("DVI4", 8000),
        6 => ("DVI4", 16000),
        7 => ("LPC", 8000),
        8 => ("PCMA", 8000),
        9 => ("G722", 8000),
        10 => ("L16", 44100),
        12 => ("QCELP", 8000),
        13 => ("CN", 8000),
        15 => ("G728", 8000),
        18 => ("G729", 8000),
        26 => ("JPEG", 90000),
        31 => ("H261", 90000),
        34 => ("H263", 90000),
        _ => return None,
    };
    Some(RtpMap {
        pt,
        name: name.to_string(),
        clock_rate: rate,
        channels: None,
    })
}
