//! Deterministic mutation test: 30,000 seeded random mutations of valid
//! messages must never panic the parser, the accessors, the builders or the
//! framer; accepted messages must survive a build/re-parse round trip.

use bytes::Bytes;
use strowger_sip::digest::{Challenge, Credentials};
use strowger_sip::transaction::{Output, TransactionLayer, TuEvent, TxConfig};
use strowger_sip::{Frame, MessageEditor, ResponseBuilder, Transport, frame, parse};

const SEEDS: &[&str] = &[
    "INVITE sip:bob@biloxi.example.com;transport=udp SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport, SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bKx\r\n\
Max-Forwards: 70\r\n\
To: \"Bob \\\"B\\\"\" <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>;expires=60;q=0.5, *\r\n\
Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
Authorization: Digest username=\"alice\", realm=\"atlanta.example.com\", nonce=\"abc\", uri=\"sip:bob@biloxi.example.com\", response=\"0123\", qop=auth, nc=00000001, cnonce=\"x\"\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 31\r\n\r\n\
v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n",
    "SIP/2.0 401 Unauthorized\r\n\
v: SIP/2.0/UDP h.example.com;branch=z9hG4bKabc;received=192.0.2.1;rport=5070\r\n\
f: <sip:100@example.com>;tag=a\r\n\
t: <sip:100@example.com>;tag=b\r\n\
i: reg-1@h\r\n\
CSeq: 2 REGISTER\r\n\
WWW-Authenticate: Digest realm=\"example.com\", nonce=\"n1, n2\", algorithm=SHA-256, qop=\"auth\"\r\n\
l: 0\r\n\r\n",
    "REGISTER sips:example.com SIP/2.0\r\n\
Via: SIP / 2.0 / TLS\r\n client.example.com:5061 ; branch = z9hG4bKreg\r\n\
From: sip:%61lice@example.com;tag=x\r\n\
To: sip:alice@example.com\r\n\
Call-ID: r@h\r\n\
CSeq: 1 REGISTER\r\n\
Contact: <sip:alice@[::1]:5061;transport=tls>;+sip.instance=\"<urn:uuid:1>\"\r\n\
Expires: 3600\r\n\r\n",
    "OPTIONS tel:+5511999990000;phone-context=example.com SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKo\n\
From: <tel:+5511888880000>;tag=1\n\
To: <tel:+5511999990000>\n\
Call-ID: o@h\n\
CSeq: 9 OPTIONS\n\
Supported: timer, 100rel\n\n",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[u8] = b":;,\"<>\r\n \t%\\@[]?=0123456789-\x00\xff\xc3/";

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = v.len().max(1);
        match rng.below(9) {
            0 => {
                let i = rng.below(len);
                if i < v.len() {
                    v[i] ^= 1 << rng.below(8);
                }
            }
            1 => {
                let i = rng.below(len + 1).min(v.len());
                let b = INTERESTING[rng.below(INTERESTING.len())];
                v.insert(i, b);
            }
            2 => {
                let i = rng.below(len);
                let n = rng.below(16);
                let end = (i + n).min(v.len());
                if i < end {
                    v.drain(i..end);
                }
            }
            3 => {
                let i = rng.below(len).min(v.len());
                let n = rng.below(64);
                let end = (i + n).min(v.len());
                let chunk = v[i..end].to_vec();
                let at = rng.below(v.len() + 1).min(v.len());
                v.splice(at..at, chunk);
            }
            4 => {
                let n = rng.below(len + 1);
                v.truncate(n);
            }
            5 => {
                // replace a digit run with a huge number
                if let Some(i) = (0..v.len()).find(|&i| v[i].is_ascii_digit() && rng.below(8) == 0)
                {
                    let big = b"18446744073709551617";
                    v.splice(i..i + 1, big.iter().copied());
                }
            }
            6 => {
                let i = rng.below(len);
                if i < v.len() {
                    v[i] = INTERESTING[rng.below(INTERESTING.len())];
                }
            }
            7 => {
                // swap two lines
                let lines: Vec<Vec<u8>> = v.split(|&b| b == b'\n').map(|l| l.to_vec()).collect();
                if lines.len() > 2 {
                    let mut lines = lines;
                    let a = rng.below(lines.len());
                    let b = rng.below(lines.len());
                    lines.swap(a, b);
                    v = lines.join(&b'\n');
                }
            }
            _ => {
                // duplicate a whole line
                let lines: Vec<Vec<u8>> = v.split(|&b| b == b'\n').map(|l| l.to_vec()).collect();
                let mut lines = lines;
                let a = rng.below(lines.len());
                let l = lines[a].clone();
                lines.insert(a, l);
                v = lines.join(&b'\n');
            }
        }
    }
    v
}

fn exercise(m: &strowger_sip::Message) {
    let _ = m.start_line();
    let _ = m.request_uri().map(|u| (u.to_string(), u.user_decoded()));
    for v in m.vias() {
        let _ = (v.branch(), v.rport(), v.received(), v.transport());
    }
    let _ = (
        m.from().tag(),
        m.to().display_name_unquoted(),
        m.call_id(),
        m.cseq(),
    );
    let _ = m.to().to_string();
    if let Ok(cs) = m.contacts() {
        for c in cs {
            let _ = (c.expires(), c.q());
        }
    }
    let _ = m.routes();
    let _ = m.record_routes();
    let _ = (
        m.expires(),
        m.max_forwards(),
        m.content_type(),
        m.body().len(),
    );
    let _ = m.supported().count();
    for h in m.headers_iter() {
        let _ = m.header_values(h.name).count();
    }
    if let Some(a) = m.authorization() {
        let _ = Credentials::parse(a);
    }
    for c in m.www_authenticate() {
        let _ = Challenge::parse(c);
    }
    // Builders on accepted input produce parseable output.
    let edited = MessageEditor::new(m)
        .prepend_via("SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKfuzz")
        .remove("Route")
        .add("X-Fuzz", "1")
        .build();
    if let Err(e) = parse(edited.clone()) {
        panic!(
            "edited message does not parse: {e}\n--- input\n{:?}\n--- output\n{}",
            m,
            String::from_utf8_lossy(&edited)
        );
    }
    if m.is_request() {
        let r = ResponseBuilder::new(m, 404).to_tag("t").build();
        if let Err(e) = parse(r.clone()) {
            panic!(
                "response does not parse: {e}\n--- input\n{:?}\n--- output\n{}",
                m,
                String::from_utf8_lossy(&r)
            );
        }
    }
}

#[test]
fn thirty_thousand_mutations_never_panic() {
    // STROWGER_MUTATIONS / STROWGER_MUTATION_SEED widen the search locally.
    let count: usize = std::env::var("STROWGER_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000);
    let seed: u64 = std::env::var("STROWGER_MUTATION_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_0F57_0E6E_u64);
    let mut rng = Rng(seed);
    let mut accepted = 0usize;
    let mut rejected = 0usize;
    for seed in SEEDS {
        // Each seed must itself be valid.
        exercise(&parse(Bytes::from_static(seed.as_bytes())).unwrap());
    }
    // Accepted messages also go through a transaction layer (as requests
    // from a peer, answered by the TU, or as responses), with time moving on.
    let mut layer = TransactionLayer::new(TxConfig::default());
    let t0 = std::time::Instant::now();
    let peer: std::net::SocketAddr = "192.0.2.1:5060".parse().unwrap();
    for i in 0..count {
        let seed = SEEDS[i % SEEDS.len()].as_bytes();
        let input = mutate(&mut rng, seed);
        match parse(Bytes::from(input.clone())) {
            Ok(m) => {
                accepted += 1;
                exercise(&m);
                let now = t0 + std::time::Duration::from_millis(i as u64 * 7);
                let transport = if i % 3 == 0 {
                    Transport::Tcp
                } else {
                    Transport::Udp
                };
                layer.on_incoming(m, peer, transport, now);
                layer.on_timer(now);
                let outs: Vec<Output> = layer.drain_outputs().collect();
                for o in outs {
                    if let Output::Event(TuEvent::Request { tx, msg, .. }) = o {
                        let status = [100, 180, 200, 404, 486][i % 5];
                        let r = ResponseBuilder::new(&msg, status).to_tag("t").build();
                        let _ = layer.send_response(tx, r, now);
                    }
                }
                layer.drain_outputs().for_each(drop);
            }
            Err(e) => {
                rejected += 1;
                assert!(!e.reason().is_empty());
                if let Some(resp) = e.bad_request_response(Some("x")) {
                    assert!(resp.starts_with(b"SIP/2.0 "));
                }
            }
        }
        // Stream framing of the same bytes never panics and never claims
        // more than the buffer.
        match frame(&input, 64 * 1024) {
            Ok(Frame::Message { len }) => assert!(len <= input.len()),
            Ok(Frame::KeepAlive { len, .. }) => assert!(len <= input.len() && len > 0),
            Ok(Frame::Incomplete) | Err(_) => {}
        }
    }
    eprintln!("mutations: {accepted} accepted, {rejected} rejected");
    // Both outcomes must be well represented, or the mutator is useless.
    assert!(accepted > count / 10, "accepted {accepted}");
    assert!(rejected > count / 10, "rejected {rejected}");
}
