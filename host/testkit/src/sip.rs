//! A raw SIP/UDP (and TCP) client for scripted exchanges.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use crate::digest::{Algorithm, Challenge};

/// A parsed SIP message (lenient; enough for tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipMessage {
    /// The start line (`SIP/2.0 200 OK` or `INVITE sip:... SIP/2.0`).
    pub start_line: String,
    /// Headers in order, names as received.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
}

fn compact(name: &str) -> &str {
    match name.to_ascii_lowercase().as_str() {
        "v" => "via",
        "f" => "from",
        "t" => "to",
        "i" => "call-id",
        "m" => "contact",
        "l" => "content-length",
        "c" => "content-type",
        "k" => "supported",
        "s" => "subject",
        "e" => "content-encoding",
        _ => name,
    }
}

impl SipMessage {
    /// Parse one message from `data`.
    pub fn parse(data: &[u8]) -> Option<SipMessage> {
        let text = String::from_utf8_lossy(data);
        let (head, body) = match text.find("\r\n\r\n") {
            Some(i) => (&text[..i], &text[i + 4..]),
            None => (&text[..], ""),
        };
        let mut lines = head.split("\r\n");
        let start_line = lines.next()?.to_string();
        let mut headers: Vec<(String, String)> = Vec::new();
        for l in lines {
            if (l.starts_with(' ') || l.starts_with('\t')) && !headers.is_empty() {
                let last = headers.last_mut().unwrap();
                last.1.push(' ');
                last.1.push_str(l.trim());
                continue;
            }
            let (n, v) = l.split_once(':')?;
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
        Some(SipMessage {
            start_line,
            headers,
            body: body.to_string(),
        })
    }

    /// True for responses.
    pub fn is_response(&self) -> bool {
        self.start_line.starts_with("SIP/2.0 ")
    }

    /// Status code of a response (0 for requests).
    pub fn status(&self) -> u16 {
        if !self.is_response() {
            return 0;
        }
        self.start_line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    /// Reason phrase of a response (empty for requests).
    pub fn reason(&self) -> String {
        if !self.is_response() {
            return String::new();
        }
        self.start_line
            .splitn(3, ' ')
            .nth(2)
            .unwrap_or("")
            .to_string()
    }

    /// Method of a request (or of the CSeq of a response).
    pub fn method(&self) -> String {
        if self.is_response() {
            self.header("CSeq")
                .and_then(|c| c.split_whitespace().nth(1))
                .unwrap_or("")
                .to_string()
        } else {
            self.start_line
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string()
        }
    }

    /// First value of header `name` (case-insensitive, compact forms known).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers(name).into_iter().next()
    }

    /// Every value of header `name`, in order (comma-joined values are not split).
    pub fn headers(&self, name: &str) -> Vec<&str> {
        let want = compact(name).to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(n, _)| compact(n).eq_ignore_ascii_case(&want))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The digest challenges of a 401/407, in order.
    pub fn challenges(&self) -> Vec<Challenge> {
        let mut v: Vec<Challenge> = self
            .headers("WWW-Authenticate")
            .into_iter()
            .filter_map(Challenge::parse)
            .collect();
        v.extend(
            self.headers("Proxy-Authenticate")
                .into_iter()
                .filter_map(Challenge::parse),
        );
        v
    }

    /// The Contact header values (one per binding; comma lists split).
    pub fn contacts(&self) -> Vec<String> {
        let mut out = Vec::new();
        for v in self.headers("Contact") {
            let mut depth = 0;
            let mut cur = String::new();
            let mut quoted = false;
            for ch in v.chars() {
                match ch {
                    '"' => quoted = !quoted,
                    '<' if !quoted => depth += 1,
                    '>' if !quoted => depth -= 1,
                    ',' if !quoted && depth == 0 => {
                        out.push(cur.trim().to_string());
                        cur.clear();
                        continue;
                    }
                    _ => {}
                }
                cur.push(ch);
            }
            if !cur.trim().is_empty() {
                out.push(cur.trim().to_string());
            }
        }
        out
    }
}

/// Random token for branches, tags, Call-IDs.
pub fn token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// How a [`SipClient`] reaches the switch.
enum Conn {
    Udp(UdpSocket),
    /// One TLS connection (RFC 3261 §18: responses come back on it) and
    /// the bytes read but not yet framed into a message.
    Tls(Box<std::cell::RefCell<(crate::tls::TlsStream, Vec<u8>)>>),
}

/// A SIP client on one UDP socket or one TLS connection (127.x address of
/// your choice).
pub struct SipClient {
    conn: Conn,
    /// Local address of the socket.
    pub local: SocketAddr,
    /// The switch.
    pub server: SocketAddr,
    /// Call-ID used by [`SipClient::register`] (stable, as a UA would).
    pub call_id: String,
    /// From tag used by [`SipClient::register`].
    pub tag: String,
    cseq: u32,
}

/// Outcome of [`SipClient::register`].
#[derive(Debug, Clone)]
pub struct RegisterOutcome {
    /// The challenge answered, if the first response was 401/407.
    pub challenge: Option<Challenge>,
    /// The final response (after authentication, if any).
    pub response: SipMessage,
}

impl SipClient {
    /// Bind a client on `local_ip` (port chosen by the OS) talking to `server`.
    pub fn new(local_ip: IpAddr, server: SocketAddr) -> SipClient {
        let sock = UdpSocket::bind(SocketAddr::new(local_ip, 0)).expect("bind client socket");
        let local = sock.local_addr().unwrap();
        SipClient {
            conn: Conn::Udp(sock),
            local,
            server,
            call_id: format!("{}@testkit", token()),
            tag: token(),
            cseq: 0,
        }
    }

    /// Connect over TLS from `local_ip` to `server`, trusting exactly the
    /// certificate `cert_pem` (the switch's self-signed one).
    pub fn tls(local_ip: IpAddr, server: SocketAddr, cert_pem: &str) -> SipClient {
        let stream = crate::tls::connect(local_ip, server, cert_pem);
        let local = stream.sock.local_addr().unwrap();
        SipClient {
            conn: Conn::Tls(Box::new(std::cell::RefCell::new((stream, Vec::new())))),
            local,
            server,
            call_id: format!("{}@testkit", token()),
            tag: token(),
            cseq: 0,
        }
    }

    /// Transport token for Via and Contact (`UDP` or `TLS`).
    pub fn transport(&self) -> &'static str {
        match self.conn {
            Conn::Udp(_) => "UDP",
            Conn::Tls(_) => "TLS",
        }
    }

    /// Next CSeq number of this client.
    pub fn next_cseq(&mut self) -> u32 {
        self.cseq += 1;
        self.cseq
    }

    /// Send raw bytes to the switch.
    pub fn send_raw(&self, data: &[u8]) {
        match &self.conn {
            Conn::Udp(s) => {
                s.send_to(data, self.server).expect("send_to");
            }
            Conn::Tls(c) => {
                let mut c = c.borrow_mut();
                c.0.write_all(data).expect("TLS write");
                c.0.flush().expect("TLS flush");
            }
        }
    }

    /// Wait up to `timeout` for one datagram from anywhere; parse it.
    pub fn recv(&self, timeout: Duration) -> Option<SipMessage> {
        let sock = match &self.conn {
            Conn::Udp(s) => s,
            Conn::Tls(c) => {
                let (stream, pending) = &mut *c.borrow_mut();
                return read_framed(stream, pending, timeout);
            }
        };
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65_536];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            if left.is_zero() {
                return None;
            }
            sock.set_read_timeout(Some(left)).ok()?;
            match sock.recv_from(&mut buf) {
                Ok((n, _)) => {
                    if let Some(m) = SipMessage::parse(&buf[..n]) {
                        return Some(m);
                    }
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return None;
                }
                Err(_) => return None,
            }
        }
    }

    /// Wait for the final (>= 200) response whose Via branch is `branch`,
    /// skipping provisional and unrelated messages. Answers nothing.
    pub fn recv_final(&self, branch: &str, timeout: Duration) -> Option<SipMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let m = self.recv(left)?;
            if m.is_response()
                && m.status() >= 200
                && m.header("Via").is_some_and(|v| v.contains(branch))
            {
                return Some(m);
            }
        }
    }

    /// Build a request from this client. `extra` headers are inserted
    /// verbatim (`Name: value` lines without CRLF). Returns (text, branch).
    #[allow(clippy::too_many_arguments)]
    pub fn build_request(
        &self,
        method: &str,
        ruri: &str,
        from: &str,
        to: &str,
        call_id: &str,
        cseq: u32,
        extra: &[String],
        body: &str,
    ) -> (String, String) {
        let branch = format!("z9hG4bK{}", token());
        let mut m = format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/{} {};branch={branch};rport\r\nMax-Forwards: 70\r\n\
             From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nUser-Agent: strowger-testkit\r\n",
            self.transport(),
            self.local
        );
        for h in extra {
            m.push_str(h);
            m.push_str("\r\n");
        }
        m.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        (m, branch)
    }

    /// OPTIONS to the switch; the final status, if any arrived in `timeout`.
    pub fn options(&mut self, timeout: Duration) -> Option<u16> {
        let cseq = self.next_cseq();
        let host = self.server;
        let (m, branch) = self.build_request(
            "OPTIONS",
            &format!("sip:{host}"),
            &format!("<sip:ping@{}>;tag={}", self.local, token()),
            &format!("<sip:{host}>"),
            &format!("{}@ping", token()),
            cseq,
            &[],
            "",
        );
        self.send_raw(m.as_bytes());
        self.recv_final(&branch, timeout).map(|r| r.status())
    }

    /// One REGISTER transaction (no auth handling); `auth` is a full
    /// `Authorization` header value. `contact` = None sends no Contact
    /// (a binding fetch); `Some("*")` a wildcard.
    pub fn register_once(
        &mut self,
        user: &str,
        domain: &str,
        contact: Option<&str>,
        expires: Option<u32>,
        auth: Option<&str>,
        timeout: Duration,
    ) -> Option<SipMessage> {
        let cseq = self.next_cseq();
        let mut extra = Vec::new();
        if let Some(c) = contact {
            if c == "*" {
                extra.push("Contact: *".to_string());
            } else {
                extra.push(format!("Contact: <{c}>"));
            }
        }
        if let Some(e) = expires {
            extra.push(format!("Expires: {e}"));
        }
        if let Some(a) = auth {
            extra.push(format!("Authorization: {a}"));
        }
        let aor = format!("sip:{user}@{domain}");
        let (m, branch) = self.build_request(
            "REGISTER",
            &format!("sip:{domain}"),
            &format!("<{aor}>;tag={}", self.tag),
            &format!("<{aor}>"),
            &self.call_id.clone(),
            cseq,
            &extra,
            "",
        );
        self.send_raw(m.as_bytes());
        self.recv_final(&branch, timeout)
    }

    /// REGISTER with digest authentication using `alg` (the challenge for
    /// that algorithm is picked from the 401). Panics if the switch offers
    /// no challenge for `alg`. Returns the final response.
    #[allow(clippy::too_many_arguments)]
    pub fn register(
        &mut self,
        user: &str,
        password: &str,
        domain: &str,
        contact: Option<&str>,
        expires: Option<u32>,
        alg: Algorithm,
        timeout: Duration,
    ) -> RegisterOutcome {
        let first = self
            .register_once(user, domain, contact, expires, None, timeout)
            .expect("no response to REGISTER");
        if first.status() != 401 && first.status() != 407 {
            return RegisterOutcome {
                challenge: None,
                response: first,
            };
        }
        let ch = first
            .challenges()
            .into_iter()
            .find(|c| c.algorithm == alg)
            .unwrap_or_else(|| panic!("no {alg:?} challenge in {first:?}"));
        let auth = ch.authorization(
            user,
            password,
            "REGISTER",
            &format!("sip:{domain}"),
            1,
            &token(),
        );
        let response = self
            .register_once(user, domain, contact, expires, Some(&auth), timeout)
            .expect("no response to authenticated REGISTER");
        RegisterOutcome {
            challenge: Some(ch),
            response,
        }
    }
}

/// Send one message over a fresh TCP connection and read one response
/// (Content-Length framed). For TCP smoke checks.
pub fn tcp_exchange(server: SocketAddr, msg: &str, timeout: Duration) -> Option<SipMessage> {
    let mut s = TcpStream::connect_timeout(&server, timeout).ok()?;
    s.write_all(msg.as_bytes()).ok()?;
    read_framed(&mut s, &mut Vec::new(), timeout)
}

/// Something to read framed SIP from whose read timeout can be set.
pub(crate) trait TimedRead: Read {
    fn set_timeout(&mut self, t: Duration) -> std::io::Result<()>;
}

impl TimedRead for TcpStream {
    fn set_timeout(&mut self, t: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(t))
    }
}

/// Read one Content-Length framed message from a stream (RFC 3261 §18.3),
/// keeping any following bytes in `pending` for the next call; CRLF
/// keep-alives before a message are skipped.
fn read_framed(
    s: &mut impl TimedRead,
    pending: &mut Vec<u8>,
    timeout: Duration,
) -> Option<SipMessage> {
    let deadline = Instant::now() + timeout;
    let mut chunk = [0u8; 4096];
    loop {
        while pending.starts_with(b"\r\n") {
            pending.drain(..2);
        }
        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..i]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length:")
                        .or_else(|| l.strip_prefix("l:"))
                })
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if pending.len() >= i + 4 + len {
                let msg: Vec<u8> = pending.drain(..i + 4 + len).collect();
                return SipMessage::parse(&msg);
            }
        }
        let left = deadline.checked_duration_since(Instant::now())?;
        if left.is_zero() {
            return None;
        }
        s.set_timeout(left).ok()?;
        match s.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
            Err(_) => return None,
        }
    }
}
