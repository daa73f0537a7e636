//! Deterministic tests of the RFC 3261 §17 / RFC 6026 transaction layer:
//! injected clock, no sockets, no sleeps.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strowger_sip::transaction::{
    Output, TransactionLayer, TryingPolicy, TuEvent, TxConfig, TxError, TxId, TxState,
};
use strowger_sip::{Message, Method, RequestBuilder, ResponseBuilder, Transport, parse};

const PEER: &str = "192.0.2.10:5060";

fn peer() -> SocketAddr {
    PEER.parse().unwrap()
}

fn request(method: Method, branch: &str, from_tag: &str, call_id: &str, seq: u32) -> Message {
    let b = RequestBuilder::new(&method, "sip:bob@example.com")
        .via(Transport::Udp, "192.0.2.10:5060", branch, true)
        .max_forwards(70)
        .from("sip:alice@example.com", from_tag)
        .to("sip:bob@example.com", None)
        .call_id(call_id)
        .cseq(seq)
        .build();
    parse(b).unwrap()
}

fn invite(branch: &str) -> Message {
    request(Method::Invite, branch, "ft1", "call-1", 1)
}

fn response(req: &Message, status: u16) -> Message {
    let tag = "tt9";
    parse(ResponseBuilder::new(req, status).to_tag(tag).build()).unwrap()
}

/// Drains outputs into (time, output) records.
struct Run {
    layer: TransactionLayer,
    t0: Instant,
    log: Vec<(Duration, Output)>,
}

impl Run {
    fn new(cfg: TxConfig) -> Run {
        Run {
            layer: TransactionLayer::new(cfg),
            t0: Instant::now(),
            log: Vec::new(),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn collect(&mut self, now: Instant) {
        while let Some(o) = self.layer.pop_output() {
            self.log.push((now - self.t0, o));
        }
    }

    /// Runs timers until `until_ms` (inclusive).
    fn advance(&mut self, until_ms: u64) {
        let until = self.at(until_ms);
        while let Some(t) = self.layer.poll_timeout() {
            if t > until {
                break;
            }
            self.layer.on_timer(t);
            self.collect(t);
        }
    }

    fn transmits(&self) -> Vec<(u64, Bytes)> {
        self.log
            .iter()
            .filter_map(|(t, o)| match o {
                Output::Transmit { bytes, .. } => Some((t.as_millis() as u64, bytes.clone())),
                _ => None,
            })
            .collect()
    }

    fn transmit_times(&self) -> Vec<u64> {
        self.transmits().into_iter().map(|(t, _)| t).collect()
    }

    fn events(&self) -> Vec<(u64, TuEvent)> {
        self.log
            .iter()
            .filter_map(|(t, o)| match o {
                Output::Event(e) => Some((t.as_millis() as u64, e.clone())),
                _ => None,
            })
            .collect()
    }

    fn clear(&mut self) {
        self.log.clear();
    }
}

fn is_timeout(e: &TuEvent, id: TxId) -> bool {
    matches!(e, TuEvent::Timeout { tx } if *tx == id)
}

fn status_line(b: &Bytes) -> String {
    String::from_utf8_lossy(b)
        .lines()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn invite_client_udp_timer_a_doubles_until_timer_b() {
    let mut r = Run::new(TxConfig::default());
    let id = r
        .layer
        .send_request(invite("z9hG4bKa1"), peer(), Transport::Udp, r.at(0))
        .unwrap();
    r.collect(r.at(0));
    r.advance(40_000);
    // Original + Timer A at T1, 2T1, 4T1, ... (no cap) before Timer B = 64*T1.
    assert_eq!(r.transmit_times(), [0, 500, 1500, 3500, 7500, 15500, 31500]);
    let ev = r.events();
    assert!(is_timeout(&ev[0].1, id), "{ev:?}");
    assert_eq!(ev[0].0, 32_000);
    assert!(matches!(ev[1].1, TuEvent::Terminated { tx } if tx == id));
    assert_eq!(r.layer.state(id), None);
    assert_eq!(r.layer.stats().retransmissions, 6);
    assert_eq!(r.layer.stats().timeouts, 1);
}

#[test]
fn invite_client_reliable_no_retransmit() {
    let mut r = Run::new(TxConfig::default());
    let id = r
        .layer
        .send_request(invite("z9hG4bKa2"), peer(), Transport::Tcp, r.at(0))
        .unwrap();
    r.collect(r.at(0));
    r.advance(40_000);
    assert_eq!(r.transmit_times(), [0]);
    assert!(is_timeout(&r.events()[0].1, id));
    assert_eq!(r.events()[0].0, 32_000);
}

#[test]
fn invite_client_provisional_stops_a_and_b() {
    let mut r = Run::new(TxConfig::default());
    let inv = invite("z9hG4bKa3");
    let id = r
        .layer
        .send_request(inv.clone(), peer(), Transport::Udp, r.at(0))
        .unwrap();
    r.collect(r.at(0));
    r.advance(600); // one retransmission at 500
    r.layer
        .on_incoming(response(&inv, 180), peer(), Transport::Udp, r.at(700));
    r.collect(r.at(700));
    r.advance(100_000);
    assert_eq!(r.transmit_times(), [0, 500]);
    assert_eq!(r.layer.state(id), Some(TxState::Proceeding));
    assert!(
        matches!(&r.events()[..], [(700, TuEvent::Response { tx, msg })] if *tx == id && msg.status() == Some(180))
    );
}

#[test]
fn invite_client_non2xx_generates_ack_and_timer_d() {
    for transport in [Transport::Udp, Transport::Tcp] {
        let mut r = Run::new(TxConfig::default());
        let inv = invite("z9hG4bKa4");
        let id = r
            .layer
            .send_request(inv.clone(), peer(), transport, r.at(0))
            .unwrap();
        r.collect(r.at(0));
        let busy = response(&inv, 486);
        r.layer
            .on_incoming(busy.clone(), peer(), transport, r.at(100));
        r.collect(r.at(100));
        let tx = r.transmits();
        assert_eq!(tx.len(), 2);
        let ack = parse(tx[1].1.clone()).unwrap();
        assert_eq!(ack.method(), Some(&Method::Ack));
        assert_eq!(ack.request_uri_str(), inv.request_uri_str());
        assert_eq!(ack.top_via().branch(), Some("z9hG4bKa4"));
        assert_eq!(ack.via_count(), 1);
        assert_eq!(ack.cseq().seq, 1);
        assert_eq!(ack.cseq().method, Method::Ack);
        assert_eq!(ack.to_tag(), Some("tt9"));
        assert_eq!(ack.from_tag(), Some("ft1"));
        assert_eq!(ack.call_id(), "call-1");
        let ev = r.events();
        assert!(
            matches!(&ev[0].1, TuEvent::Response { tx, msg } if *tx == id && msg.status() == Some(486))
        );
        if transport == Transport::Udp {
            assert_eq!(r.layer.state(id), Some(TxState::Completed));
            // Retransmitted 486: ACK re-sent, not shown to the TU.
            r.clear();
            r.layer.on_incoming(busy, peer(), transport, r.at(600));
            r.collect(r.at(600));
            assert_eq!(r.transmits().len(), 1);
            assert_eq!(r.transmits()[0].1, tx[1].1);
            assert!(r.events().is_empty());
            r.advance(32_099);
            assert_eq!(r.layer.state(id), Some(TxState::Completed));
            r.advance(32_100); // Timer D = 32 s after the 486
            assert_eq!(r.layer.state(id), None);
        } else {
            // Timer D = 0 on reliable transports.
            assert_eq!(r.layer.state(id), None);
        }
    }
}

#[test]
fn invite_client_2xx_accepted_passes_retransmissions_until_timer_m() {
    let mut r = Run::new(TxConfig::default());
    let inv = invite("z9hG4bKa5");
    let id = r
        .layer
        .send_request(inv.clone(), peer(), Transport::Udp, r.at(0))
        .unwrap();
    r.collect(r.at(0));
    let ok = response(&inv, 200);
    r.layer
        .on_incoming(ok.clone(), peer(), Transport::Udp, r.at(50));
    r.collect(r.at(50));
    assert_eq!(r.layer.state(id), Some(TxState::Accepted));
    r.layer.on_incoming(ok, peer(), Transport::Udp, r.at(550));
    r.collect(r.at(550));
    let responses = r
        .events()
        .iter()
        .filter(|(_, e)| matches!(e, TuEvent::Response { .. }))
        .count();
    assert_eq!(responses, 2, "2xx retransmission goes to the TU");
    // No ACK generated by the layer for 2xx, no request retransmission.
    assert_eq!(r.transmit_times(), [0]);
    r.advance(32_049);
    assert_eq!(r.layer.state(id), Some(TxState::Accepted));
    r.advance(32_050); // Timer M
    assert_eq!(r.layer.state(id), None);
}

#[test]
fn non_invite_client_timer_e_caps_at_t2_and_f_times_out() {
    let mut r = Run::new(TxConfig::default());
    let id = r
        .layer
        .send_request(
            request(Method::Options, "z9hG4bKn1", "f", "c", 1),
            peer(),
            Transport::Udp,
            r.at(0),
        )
        .unwrap();
    r.collect(r.at(0));
    r.advance(40_000);
    assert_eq!(
        r.transmit_times(),
        [
            0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert!(is_timeout(&r.events()[0].1, id));
    assert_eq!(r.events()[0].0, 32_000);
}

#[test]
fn non_invite_client_proceeding_uses_t2_then_timer_k() {
    let mut r = Run::new(TxConfig::default());
    let req = request(Method::Register, "z9hG4bKn2", "f", "c", 1);
    let id = r
        .layer
        .send_request(req.clone(), peer(), Transport::Udp, r.at(0))
        .unwrap();
    r.collect(r.at(0));
    r.layer
        .on_incoming(response(&req, 100), peer(), Transport::Udp, r.at(100));
    r.collect(r.at(100));
    r.advance(5_000);
    // 500 was scheduled in Trying; after that the interval is T2.
    assert_eq!(r.transmit_times(), [0, 500, 4500]);
    let ok = response(&req, 200);
    r.layer
        .on_incoming(ok.clone(), peer(), Transport::Udp, r.at(5_000));
    r.collect(r.at(5_000));
    assert_eq!(r.layer.state(id), Some(TxState::Completed));
    r.layer.on_incoming(ok, peer(), Transport::Udp, r.at(5_100));
    r.collect(r.at(5_100));
    let finals = r
        .events()
        .iter()
        .filter(|(_, e)| matches!(e, TuEvent::Response { msg, .. } if msg.status() == Some(200)))
        .count();
    assert_eq!(finals, 1, "retransmitted final absorbed");
    r.advance(9_999);
    assert_eq!(r.layer.state(id), Some(TxState::Completed));
    r.advance(10_000); // Timer K = T4
    assert_eq!(r.layer.state(id), None);
    assert_eq!(r.transmit_times(), [0, 500, 4500]);
}

#[test]
fn non_invite_client_reliable_completes_immediately() {
    let mut r = Run::new(TxConfig::default());
    let req = request(Method::Options, "z9hG4bKn3", "f", "c", 1);
    let id = r
        .layer
        .send_request(req.clone(), peer(), Transport::Tls, r.at(0))
        .unwrap();
    r.layer
        .on_incoming(response(&req, 200), peer(), Transport::Tls, r.at(10));
    assert_eq!(r.layer.state(id), None);
}

fn new_server_tx(r: &mut Run, msg: Message, transport: Transport, ms: u64) -> TxId {
    r.layer.on_incoming(msg, peer(), transport, r.at(ms));
    r.collect(r.at(ms));
    r.events()
        .iter()
        .rev()
        .find_map(|(_, e)| match e {
            TuEvent::Request { tx, .. } => Some(*tx),
            _ => None,
        })
        .expect("request event")
}

#[test]
fn invite_server_trying_after_200ms_unless_tu_answers() {
    // TU silent: 100 after 200 ms.
    let mut r = Run::new(TxConfig::default());
    let inv = invite("z9hG4bKs1");
    let _id = new_server_tx(&mut r, inv.clone(), Transport::Udp, 0);
    r.advance(199);
    assert!(r.transmits().is_empty());
    r.advance(200);
    let t = r.transmits();
    assert_eq!(t.len(), 1);
    assert_eq!(status_line(&t[0].1), "SIP/2.0 100 Trying");
    let trying = parse(t[0].1.clone()).unwrap();
    assert_eq!(trying.to_tag(), None);
    assert_eq!(trying.top_via().branch(), Some("z9hG4bKs1"));

    // TU answers 180 within 200 ms: no 100.
    let mut r = Run::new(TxConfig::default());
    let id = new_server_tx(&mut r, inv.clone(), Transport::Udp, 0);
    r.layer
        .send_response(
            id,
            ResponseBuilder::new(&inv, 180).to_tag("x").build(),
            r.at(50),
        )
        .unwrap();
    r.collect(r.at(50));
    r.advance(1_000);
    let t = r.transmits();
    assert_eq!(t.len(), 1);
    assert_eq!(status_line(&t[0].1), "SIP/2.0 180 Ringing");

    // Immediate policy.
    let mut r = Run::new(TxConfig {
        trying: TryingPolicy::Immediate,
        ..TxConfig::default()
    });
    new_server_tx(&mut r, inv, Transport::Udp, 0);
    assert_eq!(status_line(&r.transmits()[0].1), "SIP/2.0 100 Trying");
    assert_eq!(r.transmits()[0].0, 0);
    assert_eq!(r.layer.stats().trying_sent, 1);
}

#[test]
fn invite_server_absorbs_retransmissions_and_resends_last_response() {
    let mut r = Run::new(TxConfig::default());
    let inv = invite("z9hG4bKs2");
    let id = new_server_tx(&mut r, inv.clone(), Transport::Udp, 0);
    // Retransmission before any response: absorbed silently.
    r.layer
        .on_incoming(inv.clone(), peer(), Transport::Udp, r.at(100));
    r.collect(r.at(100));
    assert!(r.transmits().is_empty());
    let ringing = ResponseBuilder::new(&inv, 180).to_tag("x").build();
    r.layer
        .send_response(id, ringing.clone(), r.at(150))
        .unwrap();
    r.collect(r.at(150));
    r.clear();
    r.layer
        .on_incoming(inv.clone(), peer(), Transport::Udp, r.at(600));
    r.collect(r.at(600));
    assert_eq!(r.transmits().len(), 1);
    assert_eq!(r.transmits()[0].1, ringing);
    assert!(
        r.events().is_empty(),
        "retransmission not shown to the TU: {:?}",
        r.events()
    );
    assert_eq!(r.layer.stats().absorbed, 2);
}

#[test]
fn invite_server_non2xx_timer_g_then_h() {
    let mut r = Run::new(TxConfig::default());
    let inv = invite("z9hG4bKs3");
    let id = new_server_tx(&mut r, inv.clone(), Transport::Udp, 0);
    r.layer
        .send_response(
            id,
            ResponseBuilder::new(&inv, 486).to_tag("x").build(),
            r.at(100),
        )
        .unwrap();
    r.collect(r.at(100));
    r.advance(40_000);
    // 486 at 100, then Timer G: +500, +1000, +2000, then capped at T2 = 4 s,
    // until Timer H (64*T1 after the 486).
    assert_eq!(
        r.transmit_times(),
        [
            100, 600, 1600, 3600, 7600, 11600, 15600, 19600, 23600, 27600, 31600
        ]
    );
    let ev = r.events();
    let (t, e) = ev
        .iter()
        .find(|(_, e)| matches!(e, TuEvent::Timeout { .. }))
        .unwrap();
    assert!(is_timeout(e, id));
    assert_eq!(*t, 32_100);
}

#[test]
fn invite_server_non2xx_ack_confirms_then_timer_i() {
    let mut r = Run::new(TxConfig::default());
    let inv = invite("z9hG4bKs4");
    let id = new_server_tx(&mut r, inv.clone(), Transport::Udp, 0);
    let resp = ResponseBuilder::new(&inv, 404).to_tag("x").build();
    r.layer.send_response(id, resp.clone(), r.at(100)).unwrap();
    r.collect(r.at(100));
    r.advance(700); // one G retransmission at 600
    let client_tx_ack = strowger_sip::transaction::build_ack(&inv, &parse(resp).unwrap());
    r.layer.on_incoming(
        parse(client_tx_ack).unwrap(),
        peer(),
        Transport::Udp,
        r.at(800),
    );
    r.collect(r.at(800));
    assert_eq!(r.layer.state(id), Some(TxState::Confirmed));
    // ACK absorbed: not an event for the TU.
    assert!(
        !r.events()
            .iter()
            .any(|(_, e)| matches!(e, TuEvent::Ack { .. }))
    );
    r.advance(5_799);
    assert_eq!(r.layer.state(id), Some(TxState::Confirmed));
    r.advance(5_800); // Timer I = T4
    assert_eq!(r.layer.state(id), None);
    assert_eq!(r.transmit_times(), [100, 600]);
    assert!(
        !r.events()
            .iter()
            .any(|(_, e)| matches!(e, TuEvent::Timeout { .. }))
    );
}

#[test]
fn invite_server_reliable_non2xx_ack_terminates() {
    let mut r = Run::new(TxConfig::default());
    let inv = invite("z9hG4bKs5");
    let id = new_server_tx(&mut r, inv.clone(), Transport::Tcp, 0);
    let resp = ResponseBuilder::new(&inv, 603).to_tag("x").build();
    r.layer.send_response(id, resp.clone(), r.at(100)).unwrap();
    r.collect(r.at(100));
    r.advance(10_000);
    assert_eq!(r.transmit_times(), [100], "no Timer G on TCP");
    let ack = strowger_sip::transaction::build_ack(&inv, &parse(resp).unwrap());
    r.layer
        .on_incoming(parse(ack).unwrap(), peer(), Transport::Tcp, r.at(10_001));
    assert_eq!(
        r.layer.state(id),
        None,
        "Timer I = 0 on reliable transports"
    );
}

#[test]
fn invite_server_2xx_retransmitted_until_ack() {
    let mut r = Run::new(TxConfig::default());
    let inv = invite("z9hG4bKs6");
    let id = new_server_tx(&mut r, inv.clone(), Transport::Udp, 0);
    let ok = ResponseBuilder::new(&inv, 200).to_tag("x").build();
    r.layer.send_response(id, ok.clone(), r.at(100)).unwrap();
    r.collect(r.at(100));
    assert_eq!(r.layer.state(id), Some(TxState::Accepted));
    r.advance(2_000);
    assert_eq!(r.transmit_times(), [100, 600, 1600]);
    // INVITE retransmission in Accepted is absorbed without resending.
    r.layer
        .on_incoming(inv.clone(), peer(), Transport::Udp, r.at(2_000));
    r.collect(r.at(2_000));
    assert_eq!(r.transmits().len(), 3);
    // ACK for the 2xx: new branch, dialog identifiers match.
    let ack = RequestBuilder::new(&Method::Ack, "sip:bob@192.0.2.20")
        .via(Transport::Udp, "192.0.2.10:5060", "z9hG4bKack", false)
        .max_forwards(70)
        .from("sip:alice@example.com", "ft1")
        .to("sip:bob@example.com", Some("x"))
        .call_id("call-1")
        .cseq(1)
        .build();
    r.layer
        .on_incoming(parse(ack).unwrap(), peer(), Transport::Udp, r.at(2_100));
    r.collect(r.at(2_100));
    assert!(
        r.events()
            .iter()
            .any(|(_, e)| matches!(e, TuEvent::Ack { tx: Some(t), .. } if *t == id))
    );
    r.advance(40_000);
    assert_eq!(
        r.transmit_times(),
        [100, 600, 1600],
        "retransmissions stopped"
    );
    assert!(
        !r.events()
            .iter()
            .any(|(_, e)| matches!(e, TuEvent::AckTimeout { .. }))
    );
    assert_eq!(r.layer.state(id), None, "Timer L ended it");
}

#[test]
fn invite_server_2xx_without_ack_reports_ack_timeout() {
    let mut r = Run::new(TxConfig::default());
    let inv = invite("z9hG4bKs7");
    let id = new_server_tx(&mut r, inv.clone(), Transport::Udp, 0);
    let ok = ResponseBuilder::new(&inv, 200).to_tag("x").build();
    r.layer.send_response(id, ok, r.at(0)).unwrap();
    r.collect(r.at(0));
    r.advance(40_000);
    assert_eq!(
        r.transmit_times(),
        [
            0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    let ev = r.events();
    let at = ev
        .iter()
        .find(|(_, e)| matches!(e, TuEvent::AckTimeout { tx } if *tx == id))
        .map(|(t, _)| *t);
    assert_eq!(at, Some(32_000));
}

#[test]
fn non_invite_server_timer_j() {
    for (transport, end) in [(Transport::Udp, Some(32_100)), (Transport::Tcp, None)] {
        let mut r = Run::new(TxConfig::default());
        let req = request(Method::Register, "z9hG4bKr1", "f", "c", 5);
        let id = new_server_tx(&mut r, req.clone(), transport, 0);
        // Retransmission in Trying: absorbed, nothing sent.
        r.layer
            .on_incoming(req.clone(), peer(), transport, r.at(50));
        r.collect(r.at(50));
        assert!(r.transmits().is_empty());
        let ok = ResponseBuilder::new(&req, 200).to_tag("x").build();
        r.layer.send_response(id, ok.clone(), r.at(100)).unwrap();
        r.collect(r.at(100));
        assert_eq!(
            r.layer.send_response(id, ok.clone(), r.at(101)),
            Err(if end.is_some() {
                TxError::InvalidState
            } else {
                TxError::NoSuchTransaction
            })
        );
        if let Some(end) = end {
            r.layer
                .on_incoming(req.clone(), peer(), transport, r.at(200));
            r.collect(r.at(200));
            assert_eq!(r.transmit_times(), [100, 200], "final re-sent");
            r.advance(end - 1);
            assert_eq!(r.layer.state(id), Some(TxState::Completed));
            r.advance(end);
            assert_eq!(r.layer.state(id), None);
        } else {
            assert_eq!(r.layer.state(id), None);
        }
    }
}

#[test]
fn cancel_is_matched_to_its_invite() {
    let mut r = Run::new(TxConfig::default());
    let inv = invite("z9hG4bKc1");
    let inv_id = new_server_tx(&mut r, inv.clone(), Transport::Udp, 0);
    let cancel = parse(strowger_sip::transaction::build_cancel(&inv)).unwrap();
    r.layer
        .on_incoming(cancel.clone(), peer(), Transport::Udp, r.at(10));
    r.collect(r.at(10));
    let (cancel_id, cancels) = r
        .events()
        .iter()
        .find_map(|(_, e)| match e {
            TuEvent::Request {
                tx, msg, cancels, ..
            } if msg.method() == Some(&Method::Cancel) => Some((*tx, *cancels)),
            _ => None,
        })
        .unwrap();
    assert_eq!(cancels, Some(inv_id));
    assert_ne!(cancel_id, inv_id);
    // A CANCEL for an unknown INVITE: cancels = None.
    let other = parse(strowger_sip::transaction::build_cancel(&request(
        Method::Invite,
        "z9hG4bKc2",
        "ft2",
        "call-2",
        1,
    )))
    .unwrap();
    r.clear();
    r.layer.on_incoming(other, peer(), Transport::Udp, r.at(20));
    r.collect(r.at(20));
    assert!(matches!(
        &r.events()[0].1,
        TuEvent::Request { cancels: None, .. }
    ));
}

#[test]
fn merged_request_gets_482() {
    let mut r = Run::new(TxConfig {
        trying: TryingPolicy::Never,
        ..TxConfig::default()
    });
    let a = invite("z9hG4bKm1");
    new_server_tx(&mut r, a, Transport::Udp, 0);
    r.clear();
    // Same From tag, Call-ID, CSeq; other branch (forked by a proxy).
    let b = invite("z9hG4bKm2");
    r.layer.on_incoming(b, peer(), Transport::Udp, r.at(5));
    r.collect(r.at(5));
    assert!(r.events().is_empty(), "{:?}", r.events());
    let t = r.transmits();
    assert_eq!(t.len(), 1);
    assert_eq!(status_line(&t[0].1), "SIP/2.0 482 Loop Detected");
    let resp = parse(t[0].1.clone()).unwrap();
    assert_eq!(resp.top_via().branch(), Some("z9hG4bKm2"));
    assert!(resp.to_tag().is_some());
    assert_eq!(r.layer.stats().merged, 1);
}

#[test]
fn stray_response_and_ack_without_transaction() {
    let mut r = Run::new(TxConfig::default());
    let inv = invite("z9hG4bKx1");
    r.layer
        .on_incoming(response(&inv, 200), peer(), Transport::Udp, r.at(0));
    r.collect(r.at(0));
    assert!(matches!(
        &r.events()[0].1,
        TuEvent::StrayResponse { msg, .. } if msg.status() == Some(200)
    ));
    let ack = request(Method::Ack, "z9hG4bKx2", "f", "c", 1);
    r.clear();
    r.layer.on_incoming(ack, peer(), Transport::Udp, r.at(1));
    r.collect(r.at(1));
    assert!(matches!(&r.events()[0].1, TuEvent::Ack { tx: None, .. }));
    assert_eq!(r.layer.stats().stray_responses, 1);
}

#[test]
fn transport_error_fails_transactions_to_that_destination() {
    let mut r = Run::new(TxConfig::default());
    let id = r
        .layer
        .send_request(invite("z9hG4bKe1"), peer(), Transport::Tcp, r.at(0))
        .unwrap();
    let other: SocketAddr = "192.0.2.99:5060".parse().unwrap();
    let id2 = r
        .layer
        .send_request(invite("z9hG4bKe2"), other, Transport::Tcp, r.at(0))
        .unwrap();
    r.layer.on_transport_error(peer(), Transport::Tcp);
    r.collect(r.at(1));
    assert!(
        r.events()
            .iter()
            .any(|(_, e)| matches!(e, TuEvent::TransportError { tx } if *tx == id))
    );
    assert_eq!(r.layer.state(id), None);
    assert_eq!(r.layer.state(id2), Some(TxState::Calling));
}

#[test]
fn api_errors() {
    let mut r = Run::new(TxConfig::default());
    let inv = invite("z9hG4bKq1");
    r.layer
        .send_request(inv.clone(), peer(), Transport::Udp, r.at(0))
        .unwrap();
    assert_eq!(
        r.layer
            .send_request(inv.clone(), peer(), Transport::Udp, r.at(0)),
        Err(TxError::Duplicate)
    );
    let ack = request(Method::Ack, "z9hG4bKq2", "f", "c", 1);
    assert!(matches!(
        r.layer.send_request(ack, peer(), Transport::Udp, r.at(0)),
        Err(TxError::WrongKind(_))
    ));
    assert_eq!(
        r.layer.send_response(
            TxId(999),
            Bytes::from_static(b"SIP/2.0 200 OK\r\n"),
            r.at(0)
        ),
        Err(TxError::NoSuchTransaction)
    );
    assert!(matches!(
        r.layer
            .send_response(TxId(1), Bytes::from_static(b"garbage"), r.at(0)),
        Err(TxError::WrongKind(_))
    ));
}

#[test]
fn symmetric_vs_via_port_response_destination() {
    let src: SocketAddr = "198.51.100.7:40000".parse().unwrap();
    let req = {
        let b = RequestBuilder::new(&Method::Options, "sip:x@example.com")
            .via(Transport::Udp, "10.0.0.5:5062", "z9hG4bKd1", false)
            .max_forwards(70)
            .from("sip:a@example.com", "f")
            .to("sip:x@example.com", None)
            .call_id("c")
            .cseq(1)
            .build();
        parse(b).unwrap()
    };
    for (symmetric, want) in [(true, src), (false, "198.51.100.7:5062".parse().unwrap())] {
        let mut layer = TransactionLayer::new(TxConfig {
            symmetric_response: symmetric,
            ..TxConfig::default()
        });
        let now = Instant::now();
        layer.on_incoming(req.clone(), src, Transport::Udp, now);
        let id = match layer.pop_output() {
            Some(Output::Event(TuEvent::Request { tx, .. })) => tx,
            o => panic!("{o:?}"),
        };
        layer
            .send_response(id, ResponseBuilder::new(&req, 200).build(), now)
            .unwrap();
        let dest = layer
            .drain_outputs()
            .find_map(|o| match o {
                Output::Transmit { dest, .. } => Some(dest),
                _ => None,
            })
            .unwrap();
        assert_eq!(dest, want);
    }
}

#[test]
fn cancel_waits_for_a_provisional_then_uses_its_own_transaction() {
    let mut r = Run::new(TxConfig::default());
    let inv = invite("z9hG4bKcc1");
    let id = r
        .layer
        .send_request(inv.clone(), peer(), Transport::Udp, r.at(0))
        .unwrap();
    r.collect(r.at(0));
    // No provisional yet: the CANCEL is held.
    assert_eq!(r.layer.cancel(id, r.at(100)), Ok(None));
    r.collect(r.at(100));
    assert_eq!(r.transmit_times(), [0]);
    r.layer
        .on_incoming(response(&inv, 180), peer(), Transport::Udp, r.at(300));
    r.collect(r.at(300));
    let t = r.transmits();
    assert_eq!(t.len(), 2);
    let cancel = parse(t[1].1.clone()).unwrap();
    assert_eq!(cancel.method(), Some(&Method::Cancel));
    assert_eq!(cancel.top_via().branch(), Some("z9hG4bKcc1"));
    assert_eq!(cancel.cseq().seq, 1);
    assert_eq!(cancel.cseq().method, Method::Cancel);
    assert_eq!(cancel.request_uri_str(), inv.request_uri_str());
    assert_eq!(cancel.to_tag(), None);
    // 200 to the CANCEL goes to the CANCEL transaction, 487 to the INVITE's
    // (which ACKs it).
    r.clear();
    r.layer
        .on_incoming(response(&cancel, 200), peer(), Transport::Udp, r.at(350));
    r.layer
        .on_incoming(response(&inv, 487), peer(), Transport::Udp, r.at(360));
    r.collect(r.at(360));
    let ev = r.events();
    let cancel_tx = ev
        .iter()
        .find_map(|(_, e)| match e {
            TuEvent::Response { tx, msg } if msg.cseq().method == Method::Cancel => Some(*tx),
            _ => None,
        })
        .unwrap();
    assert_ne!(cancel_tx, id);
    assert!(ev.iter().any(
        |(_, e)| matches!(e, TuEvent::Response { tx, msg } if *tx == id && msg.status() == Some(487))
    ));
    let ack = parse(r.transmits().last().unwrap().1.clone()).unwrap();
    assert_eq!(ack.method(), Some(&Method::Ack));
    // After the final response a CANCEL is refused.
    assert_eq!(r.layer.cancel(id, r.at(400)), Err(TxError::InvalidState));
    // Proceeding: sent at once.
    let inv2 = request(Method::Invite, "z9hG4bKcc2", "f2", "call-2", 1);
    let id2 = r
        .layer
        .send_request(inv2.clone(), peer(), Transport::Udp, r.at(500))
        .unwrap();
    r.layer
        .on_incoming(response(&inv2, 183), peer(), Transport::Udp, r.at(600));
    assert!(matches!(r.layer.cancel(id2, r.at(700)), Ok(Some(_))));
}
