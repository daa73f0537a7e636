//! Builders that write SIP text straight into an output buffer, and an editor
//! for proxy-style "modify and re-serialise" of a received message.

use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};

use crate::header::HeaderName;
use crate::message::Message;
use crate::method::{Method, Transport};

/// Default reason phrase for a status code ("" if unknown).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        199 => "Early Dialog Terminated",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        417 => "Unknown Resource-Priority",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        428 => "Use Identity Header",
        429 => "Provide Referrer Identity",
        433 => "Anonymity Disallowed",
        436 => "Bad Identity-Info",
        437 => "Unsupported Certificate",
        438 => "Invalid Identity Header",
        439 => "First Hop Lacks Outbound Support",
        440 => "Max-Breadth Exceeded",
        469 => "Bad Info Package",
        470 => "Consent Needed",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        494 => "Security Agreement Required",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        555 => "Push Notification Service Not Supported",
        580 => "Precondition Failure",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        607 => "Unwanted",
        608 => "Rejected",
        _ => "",
    }
}

fn put_status(out: &mut BytesMut, status: u16) {
    let s = status.min(999);
    out.put_slice(&[
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ]);
}

fn put_u32(out: &mut BytesMut, mut n: u32) {
    let mut buf = [0u8; 10];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&buf[i..]);
}

fn put(out: &mut BytesMut, s: &str) {
    out.put_slice(s.as_bytes());
}

fn put_header(out: &mut BytesMut, name: &str, value: &str) {
    out.reserve(name.len() + value.len() + 4);
    put(out, name);
    put(out, ": ");
    put(out, value);
    put(out, "\r\n");
}

/// Writes `addr` in name-addr form: wrapped in `<>` unless it already has
/// them (or a display name).
fn put_addr(out: &mut BytesMut, addr: &str) {
    if addr.contains('<') {
        put(out, addr);
    } else {
        put(out, "<");
        put(out, addr);
        put(out, ">");
    }
}

fn finish(mut out: BytesMut, body: Option<(&str, &[u8])>) -> Bytes {
    match body {
        Some((ct, b)) => {
            if !ct.is_empty() {
                put_header(&mut out, "Content-Type", ct);
            }
            put(&mut out, "Content-Length: ");
            put_u32(&mut out, b.len() as u32);
            put(&mut out, "\r\n\r\n");
            out.put_slice(b);
        }
        None => put(&mut out, "Content-Length: 0\r\n\r\n"),
    }
    out.freeze()
}

/// Builds a response to a received request: copies all Via lines, From, To,
/// Call-ID and CSeq (RFC 3261 §8.2.6.2), optionally adds a To tag, and sets
/// Content-Length.
///
/// ```
/// # use strowger_sip::*;
/// # let req = parse(bytes::Bytes::from_static(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")).unwrap();
/// let resp = ResponseBuilder::new(&req, 200).to_tag("abc").header("Allow", "INVITE, ACK").build();
/// let r = parse(resp).unwrap();
/// assert_eq!(r.to_tag(), Some("abc"));
/// ```
pub struct ResponseBuilder<'a> {
    req: &'a Message,
    out: BytesMut,
    to_tag: Option<&'a str>,
    to_written: bool,
    body: Option<(&'a str, &'a [u8])>,
}

impl<'a> ResponseBuilder<'a> {
    /// Starts a response with the default reason phrase.
    pub fn new(req: &'a Message, status: u16) -> ResponseBuilder<'a> {
        ResponseBuilder::with_reason(req, status, reason_phrase(status))
    }

    /// Starts a response with a custom reason phrase.
    pub fn with_reason(req: &'a Message, status: u16, reason: &str) -> ResponseBuilder<'a> {
        let mut out = BytesMut::with_capacity(req.as_bytes().len().min(2048) + 128);
        put(&mut out, "SIP/2.0 ");
        put_status(&mut out, status);
        put(&mut out, " ");
        // Reason phrases must not break the line.
        if reason.chars().any(char::is_control) {
            for c in reason.chars() {
                let _ = out.write_char(if c.is_control() { ' ' } else { c });
            }
        } else {
            put(&mut out, reason);
        }
        put(&mut out, "\r\n");
        for h in req.headers_iter() {
            if h.kind == HeaderName::Via {
                put_header(&mut out, "Via", h.value);
            }
        }
        put_header(&mut out, "From", req.from_str_raw());
        put_header(&mut out, "Call-ID", req.call_id());
        put(&mut out, "CSeq: ");
        put_u32(&mut out, req.cseq().seq);
        put(&mut out, " ");
        put(&mut out, req.cseq().method.as_str());
        put(&mut out, "\r\n");
        ResponseBuilder {
            req,
            out,
            to_tag: None,
            to_written: false,
            body: None,
        }
    }

    /// Adds `;tag=` to To unless the request's To already has a tag.
    pub fn to_tag(mut self, tag: &'a str) -> Self {
        self.to_tag = Some(tag);
        self
    }

    fn flush_to(&mut self) {
        if self.to_written {
            return;
        }
        self.to_written = true;
        let to = self.req.to_str_raw();
        put(&mut self.out, "To: ");
        put(&mut self.out, to);
        if let Some(t) = self.to_tag
            && self.req.to_tag().is_none()
        {
            put(&mut self.out, ";tag=");
            put(&mut self.out, t);
        }
        put(&mut self.out, "\r\n");
    }

    /// Copies the request's Record-Route lines (proxy behaviour for
    /// dialog-creating requests).
    pub fn copy_record_route(mut self) -> Self {
        self.flush_to();
        for h in self.req.headers_iter() {
            if h.kind == HeaderName::RecordRoute {
                put_header(&mut self.out, "Record-Route", h.value);
            }
        }
        self
    }

    /// Adds a header line.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.flush_to();
        put_header(&mut self.out, name, value);
        self
    }

    /// Adds a Contact header (wrapped in `<>` if needed).
    pub fn contact(mut self, addr: &str) -> Self {
        self.flush_to();
        put(&mut self.out, "Contact: ");
        put_addr(&mut self.out, addr);
        put(&mut self.out, "\r\n");
        self
    }

    /// Sets the body and its Content-Type.
    pub fn body(mut self, content_type: &'a str, body: &'a [u8]) -> Self {
        self.body = Some((content_type, body));
        self
    }

    /// Finishes the message (adds Content-Length and the body).
    pub fn build(mut self) -> Bytes {
        self.flush_to();
        finish(self.out, self.body)
    }
}

/// Builds a new request (UAC / B2BUA outgoing leg) header by header into
/// the output buffer. The caller supplies Via, From, To, Call-ID, CSeq and
/// Max-Forwards (use [`crate::ids`] for tags, branches, Call-IDs).
///
/// ```
/// # use strowger_sip::*;
/// let bytes = RequestBuilder::new(&Method::Invite, "sip:bob@example.com")
///     .via(Transport::Udp, "192.0.2.1:5060", "z9hG4bKabc", true)
///     .max_forwards(70)
///     .from("\"Alice\" <sip:alice@example.com>", "t1")
///     .to("sip:bob@example.com", None)
///     .call_id("abc@192.0.2.1")
///     .cseq(1)
///     .contact("sip:alice@192.0.2.1:5060")
///     .build();
/// let m = parse(bytes).unwrap();
/// assert_eq!(m.cseq().seq, 1);
/// ```
pub struct RequestBuilder<'a> {
    method: Method,
    out: BytesMut,
    body: Option<(&'a str, &'a [u8])>,
}

impl<'a> RequestBuilder<'a> {
    /// Starts `METHOD request-uri SIP/2.0`.
    pub fn new(method: &Method, request_uri: &str) -> RequestBuilder<'a> {
        let mut out = BytesMut::with_capacity(768);
        put(&mut out, method.as_str());
        put(&mut out, " ");
        put(&mut out, request_uri);
        put(&mut out, " SIP/2.0\r\n");
        RequestBuilder {
            method: method.clone(),
            out,
            body: None,
        }
    }

    /// Adds `Via: SIP/2.0/<T> sent_by;branch=<branch>[;rport]`.
    pub fn via(mut self, transport: Transport, sent_by: &str, branch: &str, rport: bool) -> Self {
        let _ = write!(
            self.out,
            "Via: SIP/2.0/{} {};branch={}{}\r\n",
            transport.as_str(),
            sent_by,
            branch,
            if rport { ";rport" } else { "" }
        );
        self
    }

    /// Adds a raw Via value (e.g. copied from another message).
    pub fn via_raw(mut self, value: &str) -> Self {
        put_header(&mut self.out, "Via", value);
        self
    }

    /// Adds `From: <addr>;tag=<tag>`.
    pub fn from(mut self, addr: &str, tag: &str) -> Self {
        put(&mut self.out, "From: ");
        put_addr(&mut self.out, addr);
        put(&mut self.out, ";tag=");
        put(&mut self.out, tag);
        put(&mut self.out, "\r\n");
        self
    }

    /// Adds `To: <addr>[;tag=<tag>]`.
    pub fn to(mut self, addr: &str, tag: Option<&str>) -> Self {
        put(&mut self.out, "To: ");
        put_addr(&mut self.out, addr);
        if let Some(t) = tag {
            put(&mut self.out, ";tag=");
            put(&mut self.out, t);
        }
        put(&mut self.out, "\r\n");
        self
    }

    /// Adds Call-ID.
    pub fn call_id(mut self, call_id: &str) -> Self {
        put_header(&mut self.out, "Call-ID", call_id);
        self
    }

    /// Adds `CSeq: <seq> <METHOD>` (the request's method).
    pub fn cseq(mut self, seq: u32) -> Self {
        put(&mut self.out, "CSeq: ");
        put_u32(&mut self.out, seq);
        put(&mut self.out, " ");
        put(&mut self.out, self.method.as_str());
        put(&mut self.out, "\r\n");
        self
    }

    /// Adds Max-Forwards.
    pub fn max_forwards(mut self, n: u8) -> Self {
        put(&mut self.out, "Max-Forwards: ");
        put_u32(&mut self.out, n as u32);
        put(&mut self.out, "\r\n");
        self
    }

    /// Adds Contact (wrapped in `<>` if needed).
    pub fn contact(mut self, addr: &str) -> Self {
        put(&mut self.out, "Contact: ");
        put_addr(&mut self.out, addr);
        put(&mut self.out, "\r\n");
        self
    }

    /// Adds Route (wrapped in `<>` if needed).
    pub fn route(mut self, addr: &str) -> Self {
        put(&mut self.out, "Route: ");
        put_addr(&mut self.out, addr);
        put(&mut self.out, "\r\n");
        self
    }

    /// Adds any header line.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        put_header(&mut self.out, name, value);
        self
    }

    /// Sets the body and its Content-Type.
    pub fn body(mut self, content_type: &'a str, body: &'a [u8]) -> Self {
        self.body = Some((content_type, body));
        self
    }

    /// Finishes the message (adds Content-Length and the body).
    pub fn build(self) -> Bytes {
        finish(self.out, self.body)
    }
}

/// Proxy-style edits of a received message, re-serialised in one pass:
/// change the Request-URI, prepend or pop Vias, remove / replace / add
/// headers, replace the body. Headers not touched are copied verbatim and in
/// order (unknown headers included); Content-Length is always recomputed.
pub struct MessageEditor<'a> {
    msg: &'a Message,
    ruri: Option<&'a str>,
    prepend_via: Vec<&'a str>,
    pop_via: bool,
    remove: Vec<&'a str>,
    replace: Vec<(&'a str, &'a str)>,
    add: Vec<(&'a str, &'a str)>,
    body: Option<(Option<&'a str>, &'a [u8])>,
}

impl<'a> MessageEditor<'a> {
    /// Starts editing `msg`.
    pub fn new(msg: &'a Message) -> MessageEditor<'a> {
        MessageEditor {
            msg,
            ruri: None,
            prepend_via: Vec::new(),
            pop_via: false,
            remove: Vec::new(),
            replace: Vec::new(),
            add: Vec::new(),
            body: None,
        }
    }

    /// Replaces the Request-URI (requests only; ignored for responses).
    pub fn set_request_uri(mut self, uri: &'a str) -> Self {
        self.ruri = Some(uri);
        self
    }

    /// Adds a Via value on top (call repeatedly: first call ends up on top).
    pub fn prepend_via(mut self, value: &'a str) -> Self {
        self.prepend_via.push(value);
        self
    }

    /// Removes the topmost Via value (forwarding a response upstream).
    pub fn pop_via(mut self) -> Self {
        self.pop_via = true;
        self
    }

    /// Removes every header with this name (case-insensitive, compact forms
    /// equivalent).
    pub fn remove(mut self, name: &'a str) -> Self {
        self.remove.push(name);
        self
    }

    /// Replaces every header with this name by one line with `value`, at
    /// the position of the first occurrence (appended if absent).
    pub fn replace(mut self, name: &'a str, value: &'a str) -> Self {
        self.replace.push((name, value));
        self
    }

    /// Appends a header line.
    pub fn add(mut self, name: &'a str, value: &'a str) -> Self {
        self.add.push((name, value));
        self
    }

    /// Replaces the body; `content_type` `Some` replaces Content-Type, `None`
    /// keeps the existing one (or removes it if the body is empty).
    pub fn set_body(mut self, content_type: Option<&'a str>, body: &'a [u8]) -> Self {
        self.body = Some((content_type, body));
        self
    }

    /// Writes the edited message.
    pub fn build(self) -> Bytes {
        let msg = self.msg;
        let src: &[u8] = msg.as_bytes();
        let s = |r: std::ops::Range<usize>| std::str::from_utf8(&src[r]).unwrap_or("");
        let matches = |want: (&str, HeaderName), name: &str, kind: HeaderName| {
            if want.1 == HeaderName::Other {
                kind == HeaderName::Other && name.eq_ignore_ascii_case(want.0)
            } else {
                want.1 == kind
            }
        };
        let remove: Vec<(&str, HeaderName)> = self
            .remove
            .iter()
            .map(|w| (*w, HeaderName::from_str(w)))
            .collect();
        let replace_kinds: Vec<(&str, HeaderName)> = self
            .replace
            .iter()
            .map(|(w, _)| (*w, HeaderName::from_str(w)))
            .collect();
        let mut out = BytesMut::with_capacity(src.len() + 256);
        // Start line.
        match (msg.ruri_range(), self.ruri) {
            (Some(r), Some(new)) => {
                out.put_slice(&src[..r.start]);
                put(&mut out, new);
                let eol = memchr::memchr(b'\n', &src[r.end..]).map_or(src.len(), |i| r.end + i);
                let line_end = if eol > r.end && src[eol - 1] == b'\r' {
                    eol - 1
                } else {
                    eol
                };
                out.put_slice(&src[r.end..line_end]);
                put(&mut out, "\r\n");
            }
            _ => {
                let first = msg.header_spans().next().map_or(0, |(n, _, _)| n.start);
                // start line up to its line end, normalised to CRLF
                let line = &src[..first];
                let mut l = line.len();
                while l > 0 && (line[l - 1] == b'\n' || line[l - 1] == b'\r') {
                    l -= 1;
                }
                // skip leading CRLFs
                let lead = line
                    .iter()
                    .take_while(|&&c| c == b'\r' || c == b'\n')
                    .count();
                out.put_slice(&line[lead..l]);
                put(&mut out, "\r\n");
            }
        }
        for v in &self.prepend_via {
            put_header(&mut out, "Via", v);
        }
        let mut replaced = vec![false; self.replace.len()];
        let mut via_popped = !self.pop_via;
        let removing_ct = matches!(self.body, Some((Some(_), _)))
            || matches!(self.body, Some((None, b)) if b.is_empty());
        for (nr, vr, kind) in msg.header_spans() {
            let name = s(nr.clone());
            let value = s(vr.clone());
            if kind == HeaderName::ContentLength {
                continue;
            }
            if kind == HeaderName::ContentType && removing_ct {
                continue;
            }
            if remove.iter().any(|w| matches(*w, name, kind)) {
                continue;
            }
            if let Some(i) = replace_kinds.iter().position(|w| matches(*w, name, kind)) {
                if !replaced[i] {
                    replaced[i] = true;
                    put_header(&mut out, self.replace[i].0, self.replace[i].1);
                }
                continue;
            }
            if kind == HeaderName::Via && !via_popped {
                via_popped = true;
                // drop the first value of this line, keep the rest
                let mut rest = crate::value::split_list(value).skip(1).peekable();
                if rest.peek().is_some() {
                    let joined: Vec<&str> = rest.collect();
                    put_header(&mut out, name, &joined.join(", "));
                }
                continue;
            }
            put_header(&mut out, name, value);
        }
        for (i, (n, v)) in self.replace.iter().enumerate() {
            if !replaced[i] {
                put_header(&mut out, n, v);
            }
        }
        for (n, v) in &self.add {
            put_header(&mut out, n, v);
        }
        match self.body {
            Some((ct, b)) => finish(out, Some((ct.unwrap_or(""), b))),
            None => finish(out, Some(("", msg.body()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    const INV: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds, SIP/2.0/TCP p1;branch=z9hG4bKp1\r\n\
v: SIP/2.0/UDP p2;branch=z9hG4bKp2\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
X-Custom: keep me\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\n";

    #[test]
    fn response_copies_mandatory() {
        let req = parse(Bytes::from_static(INV.as_bytes())).unwrap();
        let r = ResponseBuilder::new(&req, 180).to_tag("xyz").build();
        let r = parse(r).unwrap();
        assert_eq!(r.status(), Some(180));
        assert_eq!(r.reason(), Some("Ringing"));
        assert_eq!(r.via_count(), 3);
        assert_eq!(r.top_via().branch(), Some("z9hG4bK776asdhds"));
        assert_eq!(r.to_tag(), Some("xyz"));
        assert_eq!(r.from_tag(), Some("1928301774"));
        assert_eq!(r.call_id(), req.call_id());
        assert_eq!(r.cseq(), req.cseq());
        assert!(r.body().is_empty());
    }

    #[test]
    fn request_builder_roundtrip() {
        let b = RequestBuilder::new(&Method::Register, "sip:example.com")
            .via(Transport::Tcp, "[::1]:5070", "z9hG4bKx", true)
            .max_forwards(70)
            .from("sip:100@example.com", "ft")
            .to("sip:100@example.com", None)
            .call_id("cid1")
            .cseq(7)
            .contact("<sip:100@[::1]:5070;transport=tcp>;expires=60")
            .header("X-A", "b")
            .body("text/plain", b"hi")
            .build();
        let m = parse(b).unwrap();
        assert_eq!(m.method(), Some(&Method::Register));
        assert_eq!(m.top_via().host, "[::1]");
        assert_eq!(m.top_via().rport(), Some(None));
        assert_eq!(m.cseq().method, Method::Register);
        assert_eq!(m.contacts().unwrap()[0].expires(), Some(60));
        assert_eq!(m.header("x-a"), Some("b"));
        assert_eq!(m.body(), b"hi");
    }

    #[test]
    fn editor() {
        let req = parse(Bytes::from_static(INV.as_bytes())).unwrap();
        let out = MessageEditor::new(&req)
            .set_request_uri("sip:bob@10.0.0.2:5080")
            .prepend_via("SIP/2.0/UDP me;branch=z9hG4bKme")
            .replace("Max-Forwards", "69")
            .remove("x-custom")
            .add("X-New", "1")
            .build();
        let m = parse(out).unwrap();
        assert_eq!(m.request_uri_str(), Some("sip:bob@10.0.0.2:5080"));
        assert_eq!(m.via_count(), 4);
        assert_eq!(m.top_via().branch(), Some("z9hG4bKme"));
        assert_eq!(m.max_forwards(), Some(69));
        assert!(m.header("X-Custom").is_none());
        assert_eq!(m.header("X-New"), Some("1"));
        assert_eq!(m.body(), b"v=0\n");
        // pop via
        let out = MessageEditor::new(&m).pop_via().build();
        let m2 = parse(out).unwrap();
        assert_eq!(m2.via_count(), 3);
        assert_eq!(m2.top_via().branch(), Some("z9hG4bK776asdhds"));
        let out = MessageEditor::new(&m2).pop_via().build();
        let m3 = parse(out).unwrap();
        assert_eq!(m3.via_count(), 2);
        assert_eq!(m3.top_via().branch(), Some("z9hG4bKp1"));
        // new body
        let out = MessageEditor::new(&m3)
            .set_body(Some("application/sdp"), b"v=0\r\ns=-\r\n")
            .build();
        let m4 = parse(out).unwrap();
        assert_eq!(m4.body(), b"v=0\r\ns=-\r\n");
        assert_eq!(m4.headers("Content-Type").count(), 1);
    }
}
