//! Parser fuzz target: the input is parsed as one datagram and as a TCP
//! byte stream (framed with `frame`, each message parsed in stream mode).
//! Whatever parses has every accessor exercised and is serialised again
//! (response builder, message editor, ACK/CANCEL builders); the results
//! must parse too. Any panic is a bug: this is network input.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strowger_sip::digest::{Challenge, Credentials};
use strowger_sip::transaction::{build_ack, build_cancel};
use strowger_sip::{
    Frame, Message, MessageEditor, Method, ParseOptions, ResponseBuilder, StartLine, Uri, frame,
    parse, parse_with, percent_decode,
};

const MAX: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let opts = ParseOptions {
        max_size: MAX,
        stream: false,
    };
    match parse_with(Bytes::copy_from_slice(data), &opts) {
        Ok(m) => exercise(&m),
        Err(e) => {
            let _ = (e.kind(), e.reason(), e.status(), e.can_respond());
            let _ = e.bad_request_response(Some("fz"));
            let _ = e.bad_request_response(None);
        }
    }
    stream(data);
});

/// Frames `data` as a stream transport would and parses each message.
fn stream(data: &[u8]) {
    let opts = ParseOptions {
        max_size: MAX,
        stream: true,
    };
    let mut rest = data;
    while !rest.is_empty() {
        match frame(rest, MAX) {
            Ok(Frame::Incomplete) | Err(_) => break,
            Ok(Frame::KeepAlive { len, .. }) => {
                assert!(len > 0 && len <= rest.len(), "keep-alive of {len} bytes");
                rest = &rest[len..];
            }
            Ok(Frame::Message { len }) => {
                assert!(len > 0 && len <= rest.len(), "frame of {len} bytes");
                if let Ok(m) = parse_with(Bytes::copy_from_slice(&rest[..len]), &opts) {
                    exercise(&m);
                }
                rest = &rest[len..];
            }
        }
    }
}

fn uri(u: &Uri<'_>) {
    let _ = (
        u.is_sip(),
        u.host_unbracketed(),
        u.host_ip(),
        u.user_decoded(),
    );
    let _ = (u.transport_param(), u.is_user_phone(), u.has_lr());
    let _ = u.scheme.as_str();
    let text = u.to_string();
    assert!(u.equivalent(u), "URI not equivalent to itself: {}", u.raw);
    if let Ok(again) = Uri::parse(&text) {
        let _ = again.equivalent(u);
    }
    for (n, v) in u.params.iter() {
        let _ = (percent_decode(n), v.map(percent_decode));
    }
}

fn exercise(m: &Message) {
    // Accessors (the parse invariants promise these do not panic).
    match m.start_line() {
        StartLine::Request { method, uri: u } => {
            let _ = method.as_str();
            uri(&u);
        }
        StartLine::Response { status, reason } => {
            assert!((100..=699).contains(&status));
            let _ = reason;
        }
    }
    let _ = (
        m.method(),
        m.request_uri(),
        m.request_uri_str(),
        m.status(),
        m.reason(),
    );
    for h in m.headers_iter() {
        let _ = (h.name, h.kind, h.value);
        let _ = m.headers(h.name).count();
        let _ = m.header_values(h.name).count();
    }
    for v in m.vias() {
        let _ = (
            v.branch(),
            v.received(),
            v.rport(),
            v.maddr(),
            v.transport(),
        );
        let _ = (v.is_rfc3261_branch(), v.host_unbracketed());
    }
    let top = m.top_via();
    let _ = (top.branch(), m.top_via_str(), m.via_count());
    for na in [m.from(), m.to()] {
        uri(&na.uri);
        let _ = (na.tag(), na.display_name_unquoted(), na.to_string());
    }
    let _ = (m.from_tag(), m.to_tag(), m.from_str_raw(), m.to_str_raw());
    let _ = (m.call_id(), m.cseq().to_string(), m.max_forwards());
    if let Ok(cs) = m.contacts() {
        for c in cs {
            let _ = (c.expires(), c.q());
            if let Some(a) = c.addr() {
                uri(&a.uri);
            }
        }
    }
    let _ = (m.contact(), m.expires(), m.min_expires());
    let _ = (m.routes(), m.record_routes());
    let _ = (m.content_type(), m.user_agent(), m.server());
    let _ = (
        m.supported().count(),
        m.require().count(),
        m.proxy_require().count(),
    );
    let _ = m.supports("timer");
    for a in m.authorization().into_iter().chain(m.proxy_authorization()) {
        if let Ok(c) = Credentials::parse(a) {
            let _ = c.uri_matches(m.request_uri_str().unwrap_or(""));
        }
    }
    let _ = Challenge::pick_best(m.www_authenticate().chain(m.proxy_authenticate()));
    let _ = (m.body(), m.body_bytes(), m.body_range());

    // Serialisation: what the parser accepted, it accepts again.
    let again = parse(m.as_bytes().clone());
    assert!(again.is_ok(), "re-parse failed: {:?}", again.err());

    let edited = MessageEditor::new(m)
        .prepend_via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKfuzz")
        .remove("Route")
        .add("X-Fuzz", "1")
        .build();
    let _ = parse(edited);

    if m.is_request() && m.method() != Some(&Method::Ack) {
        for status in [100u16, 180, 200, 404, 487, 699] {
            let r = ResponseBuilder::new(m, status)
                .to_tag("fz1")
                .header("Server", "fuzz")
                .build();
            let p = parse(r);
            assert!(
                p.is_ok(),
                "response to a parsed request does not parse: {:?}",
                p.err()
            );
        }
        if m.method() == Some(&Method::Invite) {
            let _ = parse(build_cancel(m));
            if let Ok(resp) = parse(ResponseBuilder::new(m, 486).to_tag("fz2").build()) {
                let _ = parse(build_ack(m, &resp));
            }
        }
    }
}
