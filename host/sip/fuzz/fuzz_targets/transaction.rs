//! Transaction-layer fuzz target: a program of operations decoded from the
//! input drives one `TransactionLayer` on both sides (server: incoming
//! requests answered by the TU; client: requests sent, responses received)
//! with an injected clock. Checks: no panic, every transmitted message
//! parses, and once the TU has answered everything and the clock has run
//! long enough, no transaction is left behind (except INVITE client
//! transactions in Proceeding, which RFC 3261 leaves to the TU's Timer C).
//!
//! Input format (so that seeds can be written by hand): a sequence of
//! records `op byte, argument bytes`; a raw message argument runs up to the
//! next NUL byte. See `Op` below.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strowger_sip::transaction::{
    Output, TransactionLayer, TryingPolicy, TuEvent, TxConfig, TxId, TxState,
};
use strowger_sip::{
    Message, Method, ParseOptions, RequestBuilder, ResponseBuilder, Transport, parse, parse_with,
};

const TRANSPORTS: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Tls];
const METHODS: [Method; 6] = [
    Method::Invite,
    Method::Options,
    Method::Register,
    Method::Bye,
    Method::Cancel,
    Method::Ack,
];

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from(self.byte()?) << 8 | u16::from(self.byte()?))
    }
    /// Bytes up to the next NUL (consumed) or the end.
    fn until_nul(&mut self) -> &'a [u8] {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(self.0.len());
        let m = &self.0[..end];
        self.0 = &self.0[(end + 1).min(self.0.len())..];
        m
    }
}

fn peer(i: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1 + i % 4], 5060 + u16::from(i % 2)))
}

fn transport(i: u8) -> Transport {
    TRANSPORTS[usize::from(i) % TRANSPORTS.len()]
}

fn status(b: u8) -> u16 {
    // 100..=699, with the interesting classes frequent.
    match b % 8 {
        0 => 100,
        1 => 180,
        2 => 183,
        3 => 200,
        4 => 486,
        5 => 487,
        _ => 100 + (u32::from(b) * 600 / 256) as u16,
    }
}

/// A syntactically valid request built from a few small choices.
fn synth_request(method: &Method, branch: u8, dialog: u8, seq: u8, t: Transport) -> Message {
    let b = RequestBuilder::new(method, "sip:bob@example.com")
        .via(t, "192.0.2.9:5060", &format!("z9hG4bK{}", branch % 8), true)
        .max_forwards(70)
        .from("sip:alice@example.com", &format!("ft{}", dialog % 4))
        .to("sip:bob@example.com", (dialog & 0x80 != 0).then_some("tt1"))
        .call_id(&format!("call-{}", dialog % 4))
        .cseq(u32::from(seq % 4) + 1)
        .build();
    parse(b).expect("builder output parses")
}

struct Client {
    id: TxId,
    req: Message,
    dest: SocketAddr,
    transport: Transport,
}

struct Run {
    layer: TransactionLayer,
    now: Instant,
    servers: Vec<TxId>,
    clients: Vec<Client>,
}

impl Run {
    fn drain(&mut self) {
        while let Some(o) = self.layer.pop_output() {
            match o {
                Output::Transmit { bytes, .. } => {
                    // Everything the layer sends must be valid SIP.
                    if let Err(e) = parse(bytes.clone()) {
                        panic!("transmitted unparsable message ({e}): {bytes:?}");
                    }
                }
                Output::Event(TuEvent::Request { tx, .. }) => self.servers.push(tx),
                Output::Event(_) => {}
            }
        }
    }

    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        while let Some(t) = self.layer.poll_timeout() {
            if t > until {
                break;
            }
            // Timers may be reported early; never go back in time.
            self.now = self.now.max(t);
            self.layer.on_timer(self.now);
            self.drain();
        }
        self.now = until;
        self.layer.on_timer(self.now);
        self.drain();
    }

    fn incoming(&mut self, m: Message, src: SocketAddr, t: Transport) {
        self.layer.on_incoming(m, src, t, self.now);
        self.drain();
    }

    fn respond(&mut self, which: u8, status: u16) {
        if self.servers.is_empty() {
            return;
        }
        let id = self.servers[usize::from(which) % self.servers.len()];
        let Some(req) = self.layer.request(id).cloned() else {
            // Terminated: the layer must refuse, not panic.
            let _ =
                self.layer
                    .send_response(id, Bytes::from_static(b"SIP/2.0 200 OK\r\n"), self.now);
            return;
        };
        let r = ResponseBuilder::new(&req, status).to_tag("uas").build();
        let _ = self.layer.send_response(id, r, self.now);
        self.drain();
    }

    fn send(&mut self, req: Message, dest: SocketAddr, t: Transport) {
        if let Ok(id) = self.layer.send_request(req.clone(), dest, t, self.now) {
            self.clients.push(Client {
                id,
                req,
                dest,
                transport: t,
            });
        }
        self.drain();
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let cfg_byte = inp.byte().unwrap_or(0);
    let cfg = TxConfig {
        trying: match cfg_byte % 3 {
            0 => TryingPolicy::After(Duration::from_millis(200)),
            1 => TryingPolicy::Immediate,
            _ => TryingPolicy::Never,
        },
        retransmit_2xx: cfg_byte & 4 == 0,
        symmetric_response: cfg_byte & 8 == 0,
        ..TxConfig::default()
    };
    let mut run = Run {
        layer: TransactionLayer::new(cfg),
        now: Instant::now(),
        servers: Vec::new(),
        clients: Vec::new(),
    };
    let mut ops = 0;
    while let Some(op) = inp.byte() {
        ops += 1;
        if ops > 256 {
            break;
        }
        match op % 10 {
            // Raw incoming message: transport, peer, bytes up to NUL.
            0 => {
                let (Some(t), Some(p)) = (inp.byte(), inp.byte()) else {
                    break;
                };
                let t = transport(t);
                let raw = inp.until_nul();
                let opts = ParseOptions {
                    stream: t.is_reliable(),
                    ..ParseOptions::default()
                };
                if let Ok(m) = parse_with(Bytes::copy_from_slice(raw), &opts) {
                    run.incoming(m, peer(p), t);
                }
            }
            // Synthesised incoming request.
            1 => {
                let (Some(m), Some(br), Some(d), Some(s), Some(t), Some(p)) = (
                    inp.byte(),
                    inp.byte(),
                    inp.byte(),
                    inp.byte(),
                    inp.byte(),
                    inp.byte(),
                ) else {
                    break;
                };
                let t = transport(t);
                let req = synth_request(&METHODS[usize::from(m) % METHODS.len()], br, d, s, t);
                run.incoming(req, peer(p), t);
            }
            // Response (from the peer) to one of our client transactions.
            2 => {
                let (Some(w), Some(st)) = (inp.byte(), inp.byte()) else {
                    break;
                };
                if run.clients.is_empty() {
                    continue;
                }
                let c = &run.clients[usize::from(w) % run.clients.len()];
                let tag = if w & 0x80 != 0 { "peer2" } else { "peer1" };
                let r = ResponseBuilder::new(&c.req, status(st)).to_tag(tag).build();
                let (dest, t) = (c.dest, c.transport);
                run.incoming(parse(r).expect("builder output parses"), dest, t);
            }
            // TU sends a synthesised request.
            3 => {
                let (Some(m), Some(br), Some(d), Some(t), Some(p)) =
                    (inp.byte(), inp.byte(), inp.byte(), inp.byte(), inp.byte())
                else {
                    break;
                };
                let t = transport(t);
                let req = synth_request(&METHODS[usize::from(m) % METHODS.len()], br, d, 0, t);
                run.send(req, peer(p), t);
            }
            // TU sends a raw request (whatever parses).
            4 => {
                let (Some(t), Some(p)) = (inp.byte(), inp.byte()) else {
                    break;
                };
                let raw = inp.until_nul();
                if let Ok(m) = parse(Bytes::copy_from_slice(raw)) {
                    run.send(m, peer(p), transport(t));
                }
            }
            // TU answers a server transaction.
            5 => {
                let (Some(w), Some(st)) = (inp.byte(), inp.byte()) else {
                    break;
                };
                run.respond(w, status(st));
            }
            // Clock advances (0..=65 s).
            6 => {
                let Some(ms) = inp.u16() else { break };
                run.advance(Duration::from_millis(u64::from(ms)));
            }
            // TU cancels a client transaction.
            7 => {
                let Some(w) = inp.byte() else { break };
                if !run.clients.is_empty() {
                    let id = run.clients[usize::from(w) % run.clients.len()].id;
                    if let Ok(Some(cid)) = run.layer.cancel(id, run.now) {
                        let req = run.layer.request(cid).cloned().expect("new CANCEL tx");
                        let c = &run.clients[usize::from(w) % run.clients.len()];
                        let (dest, transport) = (c.dest, c.transport);
                        run.clients.push(Client {
                            id: cid,
                            req,
                            dest,
                            transport,
                        });
                    }
                    run.drain();
                }
            }
            // Transport error towards a peer.
            8 => {
                let (Some(p), Some(t)) = (inp.byte(), inp.byte()) else {
                    break;
                };
                run.layer.on_transport_error(peer(p), transport(t));
                run.drain();
            }
            // Stateless send, state queries.
            _ => {
                run.layer
                    .send_stateless(Bytes::from_static(b"\r\n\r\n"), peer(0), Transport::Udp);
                let _ = run.layer.pop_output();
                let _ = (run.layer.len(), run.layer.stats(), run.layer.is_empty());
                for c in &run.clients {
                    let _ = run.layer.state(c.id);
                }
            }
        }
    }

    // End: the TU answers every server transaction still waiting, then
    // the clock runs far past every timer (64*T1 = 32 s, Timer D = 32 s).
    for i in 0..run.servers.len() {
        let id = run.servers[i];
        if let Some(req) = run.layer.request(id).cloned() {
            let r = ResponseBuilder::new(&req, 486).to_tag("uas").build();
            let _ = run.layer.send_response(id, r, run.now);
        }
    }
    run.drain();
    // Acknowledge nothing: Timer H / L must clean up unacknowledged finals.
    for _ in 0..4 {
        run.advance(Duration::from_secs(60));
    }
    for &id in &run.servers {
        assert_eq!(
            run.layer.state(id),
            None,
            "server transaction {id:?} left behind"
        );
    }
    for c in &run.clients {
        let st = run.layer.state(c.id);
        let allowed = st.is_none()
            || (c.req.method() == Some(&Method::Invite) && st == Some(TxState::Proceeding));
        assert!(allowed, "client transaction {:?} left in {st:?}", c.id);
    }
});
