//! Deterministic tests of the core: events in, actions out, fake clock.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use strowger_sip::Message;

use crate::core::*;
use crate::flow::{Flow, Target, Transport};
use crate::transport::Inbound;

const SW: &str = "127.0.0.1:5060";
const PHONE: &str = "127.0.0.1:7001";
const PHONE2: &str = "127.0.0.1:7002";
const TRUNK: &str = "127.0.0.9:5060";

struct H {
    core: Core,
    now: Now,
    sent: Vec<(Target, Message)>,
    actions: Vec<Action>,
}

fn flow(remote: &str) -> Flow {
    Flow {
        transport: Transport::Udp,
        local: SW.parse().unwrap(),
        remote: remote.parse().unwrap(),
        conn: None,
    }
}

impl H {
    fn new() -> H {
        H::with(|_| {})
    }

    /// A harness whose config `f` adjusts (after the standard users and
    /// trunks are in).
    fn with(f: impl FnOnce(&mut CoreConfig)) -> H {
        let mut cfg = CoreConfig::for_tests(SW.parse().unwrap());
        cfg.users = (1001..=1003)
            .map(|u| UserCred {
                user: u.to_string(),
                password: format!("pw{u}"),
                domain: "test.local".into(),
            })
            .collect();
        let mut backup = TrunkInfo::new(
            "backup",
            "127.0.0.10",
            Some("127.0.0.10:5060".parse().unwrap()),
            Transport::Udp,
        );
        backup.inbound = TrunkInbound::None;
        cfg.trunks = vec![
            TrunkInfo::new(
                "carrier",
                "127.0.0.9",
                Some(TRUNK.parse().unwrap()),
                Transport::Udp,
            ),
            backup,
        ];
        f(&mut cfg);
        H {
            core: Core::new(cfg),
            now: Now::real(),
            sent: Vec::new(),
            actions: Vec::new(),
        }
    }

    fn collect(&mut self) {
        for a in self.core.drain_actions() {
            match a {
                Action::Send { target, data } => {
                    let m = strowger_sip::parse(data).expect("core sends parseable SIP");
                    self.sent.push((target, m));
                }
                other => self.actions.push(other),
            }
        }
    }

    fn rx(&mut self, from: &str, text: &str) {
        let text = text.replace('\n', "\r\n");
        self.core.handle(
            self.now,
            Event::Net(Inbound {
                flow: flow(from),
                data: Bytes::from(text),
            }),
        );
        self.collect();
    }

    fn rx_msg(&mut self, from: &str, data: Bytes) {
        self.core.handle(
            self.now,
            Event::Net(Inbound {
                flow: flow(from),
                data,
            }),
        );
        self.collect();
    }

    fn advance(&mut self, d: Duration) {
        self.now = self.now.after(d);
        self.core.poll_timers(self.now);
        self.collect();
    }

    fn take_sent(&mut self) -> Vec<(Target, Message)> {
        std::mem::take(&mut self.sent)
    }

    fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// Answers every pending Authorize with the built-in default verdict.
    fn authorize_default(&mut self) {
        for a in self.take_actions() {
            if let Action::Authorize { pending, facts } = a {
                let verdict = AuthVerdict::default_for(&facts);
                self.core
                    .handle(self.now, Event::AuthDecided { pending, verdict });
            }
        }
        self.collect();
    }

    fn accept_all(&mut self) {
        for a in self.take_actions() {
            if let Action::Authorize { pending, .. } = a {
                let verdict = AuthVerdict::Accept {
                    max_expires: None,
                    min_expires: None,
                    max_contacts: None,
                };
                self.core
                    .handle(self.now, Event::AuthDecided { pending, verdict });
            }
        }
        self.collect();
    }

    fn register(
        &mut self,
        from: &str,
        user: &str,
        contact: &str,
        expires: u32,
        cseq: u32,
    ) -> Message {
        let msg = format!(
            "REGISTER sip:test.local SIP/2.0
Via: SIP/2.0/UDP {from};branch=z9hG4bKreg{user}{cseq}{expires};rport
Max-Forwards: 70
From: <sip:{user}@test.local>;tag=r{user}
To: <sip:{user}@test.local>
Call-ID: reg-{user}-{from}
CSeq: {cseq} REGISTER
Contact: <{contact}>
Expires: {expires}
User-Agent: phone
Content-Length: 0

"
        );
        self.rx(from, &msg);
        self.accept_all();
        let mut s = self.take_sent();
        assert_eq!(s.len(), 1, "one response to REGISTER");
        s.pop().unwrap().1
    }
}

fn invite(from_user: &str, to: &str, call_id: &str, branch: &str, src: &str) -> String {
    format!(
        "INVITE sip:{to}@test.local SIP/2.0
Via: SIP/2.0/UDP {src};branch={branch}
Max-Forwards: 70
From: \"Alice\" <sip:{from_user}@carrier.example>;tag=a1
To: <sip:{to}@test.local>
Call-ID: {call_id}
CSeq: 1 INVITE
Contact: <sip:{from_user}@{src}>
X-Account: 42
Secret-Topology: internal-host
Content-Type: application/sdp
Content-Length: 40

v=0
m=audio 4000 RTP/AVP 0 8
a=x:yz12345
"
    )
}

/// [`invite`] carrying `sdp` (CRLF or LF lines) as its body.
fn invite_with_sdp(
    from_user: &str,
    to: &str,
    call_id: &str,
    branch: &str,
    src: &str,
    sdp: &str,
) -> String {
    invite(from_user, to, call_id, branch, src).replace(
        "Content-Length: 40\n\nv=0\nm=audio 4000 RTP/AVP 0 8\na=x:yz12345\n",
        &format!(
            "Content-Length: {}\n\n{}",
            sdp.len(),
            sdp.replace("\r\n", "\n")
        ),
    )
}

fn plan_to(
    h: &mut H,
    attempts: Vec<PlannedAttempt>,
    retry_on: Vec<Cause>,
    prefer_last: bool,
) -> u64 {
    let acts = h.take_actions();
    let call = acts
        .iter()
        .find_map(|a| match a {
            Action::PlanCall { call, .. } => Some(*call),
            _ => None,
        })
        .expect("PlanCall");
    h.core.handle(
        h.now,
        Event::CallPlanned {
            call,
            plan: Plan {
                a_number: "1001".into(),
                b_number: "5511".into(),
                display_name: None,
                routing_number: None,
                decision: PlanDecision::Forward {
                    attempts,
                    retry_on,
                    prefer_last,
                },
                generation: "1 route=test@1".into(),
            },
        },
    );
    h.collect();
    call
}

fn attempt(dest: Dest) -> PlannedAttempt {
    PlannedAttempt {
        dest,
        a_number: "1001".into(),
        b_number: "5511".into(),
        display_name: Some("Alice".into()),
        add_headers: vec![("X-Route".into(), "r1".into())],
        remove_headers: vec![],
        ring_timeout: Some(Duration::from_secs(20)),
        relay: None,
        codecs: None,
        group: None,
    }
}

/// Builds a response from the far end to a request we sent.
fn answer(req: &Message, code: u16, to_tag: &str, sdp: bool) -> Bytes {
    let mut b = strowger_sip::ResponseBuilder::new(req, code).to_tag(to_tag);
    if (180..300).contains(&code) {
        b = b.contact("sip:callee@127.0.0.1:7001");
    }
    if sdp {
        b = b.body("application/sdp", b"v=0\r\nm=audio 5000 RTP/AVP 0\r\n");
    }
    b.build()
}

#[test]
fn register_challenge_then_bindings() {
    let mut h = H::new();
    // no credentials: default policy challenges with SHA-256 and MD5 side by side
    h.rx(
        PHONE,
        "REGISTER sip:test.local SIP/2.0
Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKr1;rport
From: <sip:1001@test.local>;tag=x
To: <sip:1001@test.local>
Call-ID: r1
CSeq: 1 REGISTER
Contact: <sip:1001@10.0.0.5:5060>
Content-Length: 0

",
    );
    h.authorize_default();
    let s = h.take_sent();
    assert_eq!(s.len(), 1);
    let r = &s[0].1;
    assert_eq!(r.status(), Some(401));
    let ch: Vec<&str> = r.www_authenticate().collect();
    assert_eq!(ch.len(), 2);
    assert!(ch[0].contains("SHA-256") && ch[1].contains("MD5"), "{ch:?}");
    // RFC 3581: response goes to the packet source, Via gets received/rport
    assert_eq!(s[0].0, Target::Flow(flow(PHONE)));
    let v = r.top_via();
    assert_eq!(v.received(), Some("127.0.0.1"));
    assert_eq!(v.rport(), Some(Some(7001)));

    // accepted: two contacts, fetch, unregister one, wildcard
    let r = h.register(PHONE, "1001", "sip:1001@10.0.0.5:5060", 120, 2);
    assert_eq!(r.status(), Some(200));
    assert_eq!(r.contacts().unwrap().len(), 1);
    let r = h.register(PHONE2, "1001", "sip:1001@10.0.0.6:5060", 7200, 1);
    assert_eq!(r.status(), Some(200));
    let cs = r.contacts().unwrap();
    assert_eq!(cs.len(), 2);
    // max_expires clamps 7200 to 3600
    assert!(cs.iter().any(|c| c.expires() == Some(3600)), "{cs:?}");
    let loc = h.core.location();
    let b = loc.read().lookup("sip:1001@test.local", h.now.mono);
    assert_eq!(b.len(), 2);
    assert!(b.iter().any(|b| b.flow == flow(PHONE)));
    let saves = h.take_actions();
    assert!(
        saves
            .iter()
            .any(|a| matches!(a, Action::SaveBinding { .. }))
    );

    // too brief
    let r = h.register(PHONE, "1001", "sip:1001@10.0.0.5:5060", 10, 3);
    assert_eq!(r.status(), Some(423));
    assert_eq!(r.min_expires(), Some(60));

    // un-register one
    let r = h.register(PHONE, "1001", "sip:1001@10.0.0.5:5060", 0, 4);
    assert_eq!(r.status(), Some(200));
    assert_eq!(r.contacts().unwrap().len(), 1);
    // expiry by time
    h.advance(Duration::from_secs(3601));
    assert_eq!(
        loc.read().lookup("sip:1001@test.local", h.now.mono).len(),
        0
    );
    assert!(
        h.take_actions()
            .iter()
            .any(|a| matches!(a, Action::DeleteBinding { .. }))
    );
}

#[test]
fn register_retransmission_is_absorbed() {
    let mut h = H::new();
    let msg = "REGISTER sip:test.local SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:7001;branch=z9hG4bKsame
From: <sip:1002@test.local>;tag=x
To: <sip:1002@test.local>
Call-ID: rr
CSeq: 7 REGISTER
Contact: <sip:1002@127.0.0.1:7001>
Content-Length: 0

";
    h.rx(PHONE, msg);
    h.rx(PHONE, msg); // while the decision is pending: silently absorbed
    h.accept_all();
    assert_eq!(h.take_sent().len(), 1);
    h.rx(PHONE, msg); // after the final: the same response again, no new decision
    let s = h.take_sent();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].1.status(), Some(200));
    assert!(
        h.take_actions()
            .iter()
            .all(|a| !matches!(a, Action::Authorize { .. }))
    );
    assert_eq!(h.core.stats().retransmissions, 2);
}

#[test]
fn trunk_call_to_user_end_to_end() {
    let mut h = H::new();
    h.register(PHONE, "1002", "sip:1002@192.168.1.20:5060", 3600, 1);
    h.take_actions();
    h.rx(
        TRUNK,
        &invite("5511", "1002", "A-call-1", "z9hG4bKa1", TRUNK),
    );
    let s = h.take_sent();
    assert_eq!(s[0].1.status(), Some(100));
    let call = plan_to(
        &mut h,
        vec![attempt(Dest::User("1002".into()))],
        vec![],
        true,
    );
    let s = h.take_sent();
    assert_eq!(s.len(), 1);
    let (target, b_inv) = &s[0];
    // NAT: sent to the registration's flow, not to the Contact's host
    assert_eq!(*target, Target::Flow(flow(PHONE)));
    assert_eq!(b_inv.request_uri_str(), Some("sip:1002@192.168.1.20:5060"));
    // topology hiding: new Call-ID and tags, our Via only, safe headers copied
    assert_ne!(b_inv.call_id(), "A-call-1");
    assert_eq!(b_inv.via_count(), 1);
    assert!(b_inv.top_via().host.contains("127.0.0.1"));
    assert_eq!(b_inv.header("X-Account"), Some("42"));
    assert_eq!(b_inv.header("X-Route"), Some("r1"));
    assert_eq!(b_inv.header("Secret-Topology"), None);
    assert_eq!(b_inv.max_forwards(), Some(69));
    assert_eq!(b_inv.from().uri.user, Some("1001"));
    assert!(
        !b_inv.as_bytes().windows(8).any(|w| w == b"carrier."),
        "A-side host leaked"
    );
    assert!(b_inv.body().starts_with(b"v=0"));

    // 180 then 200 relayed with our tag and Contact
    h.rx_msg(PHONE, answer(b_inv, 180, "b1", false));
    let s = h.take_sent();
    assert_eq!(s.len(), 1);
    let a180 = &s[0].1;
    assert_eq!(a180.status(), Some(180));
    assert_eq!(a180.call_id(), "A-call-1");
    assert_eq!(s[0].0, Target::Flow(flow(TRUNK)));
    let a_tag = a180.to_tag().unwrap().to_string();
    assert_ne!(a_tag, "b1");
    h.rx_msg(PHONE, answer(b_inv, 200, "b1", true));
    let s = h.take_sent();
    assert_eq!(s.len(), 1);
    let a200 = &s[0].1;
    assert_eq!(a200.status(), Some(200));
    assert_eq!(a200.to_tag(), Some(a_tag.as_str()));
    assert!(a200.body().starts_with(b"v=0"));
    assert!(
        a200.contact()
            .unwrap()
            .unwrap()
            .addr()
            .unwrap()
            .uri
            .raw
            .contains("strowger@127.0.0.1")
    );
    // 200 is retransmitted until ACK
    h.advance(Duration::from_millis(600));
    assert_eq!(h.take_sent().len(), 1);

    // ACK from A becomes an ACK on the B dialog
    h.rx(
        TRUNK,
        &format!(
            "ACK sip:strowger@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP {TRUNK};branch=z9hG4bKack1
Max-Forwards: 70
From: \"Alice\" <sip:5511@carrier.example>;tag=a1
To: <sip:1002@test.local>;tag={a_tag}
Call-ID: A-call-1
CSeq: 1 ACK
Content-Length: 0

"
        ),
    );
    let s = h.take_sent();
    assert_eq!(s.len(), 1);
    let ack = &s[0].1;
    assert_eq!(ack.method(), Some(&strowger_sip::Method::Ack));
    assert_eq!(ack.call_id(), b_inv.call_id());
    assert_eq!(ack.request_uri_str(), Some("sip:callee@127.0.0.1:7001"));
    assert_eq!(ack.to_tag(), Some("b1"));
    h.advance(Duration::from_secs(2));
    assert!(
        h.take_sent().is_empty(),
        "no more 200 retransmissions after ACK"
    );

    // re-INVITE from B relayed to A, answer relayed back
    let b_from = b_inv.from_tag().unwrap().to_string();
    h.rx(
        PHONE,
        &format!(
            "INVITE sip:strowger@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP {PHONE};branch=z9hG4bKre1
Max-Forwards: 70
From: <sip:1002@test.local>;tag=b1
To: <sip:1001@test.local>;tag={b_from}
Call-ID: {}
CSeq: 5 INVITE
Contact: <sip:callee@127.0.0.1:7001>
Content-Type: application/sdp
Content-Length: 10

v=0 hold
",
            b_inv.call_id()
        ),
    );
    let s = h.take_sent();
    assert_eq!(s.len(), 1);
    let re = &s[0].1;
    assert_eq!(re.call_id(), "A-call-1");
    assert_eq!(re.request_uri_str(), Some("sip:5511@127.0.0.9:5060"));
    assert_eq!(re.from_tag(), Some(a_tag.as_str()));
    assert_eq!(re.to_tag(), Some("a1"));
    h.rx_msg(TRUNK, answer(re, 200, "a1", true));
    let s = h.take_sent();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].1.status(), Some(200));
    assert_eq!(s[0].1.cseq().seq, 5);
    assert_eq!(s[0].0, Target::Flow(flow(PHONE)));

    // BYE from the callee: 200 to B, BYE to A, CDR written
    h.rx(
        PHONE,
        &format!(
            "BYE sip:strowger@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP {PHONE};branch=z9hG4bKbye1
Max-Forwards: 70
From: <sip:1002@test.local>;tag=b1
To: <sip:1001@test.local>;tag={b_from}
Call-ID: {}
CSeq: 6 BYE
Content-Length: 0

",
            b_inv.call_id()
        ),
    );
    let s = h.take_sent();
    assert_eq!(s.len(), 2);
    assert!(s.iter().any(|(_, m)| m.status() == Some(200)));
    let bye = s
        .iter()
        .find(|(_, m)| m.method() == Some(&strowger_sip::Method::Bye))
        .unwrap();
    assert_eq!(bye.1.call_id(), "A-call-1");
    let acts = h.take_actions();
    let cdr = acts
        .iter()
        .find_map(|a| match a {
            Action::Cdr(c) => Some(c),
            _ => None,
        })
        .expect("CDR");
    assert_eq!(cdr.final_code, 200);
    assert_eq!(cdr.hangup_side.as_deref(), Some("callee"));
    assert_eq!(cdr.ingress, "trunk:carrier");
    assert_eq!(cdr.attempts.len(), 1);
    // the answered attempt carries the answer's status
    assert_eq!(cdr.attempts[0].final_code, Some(200), "{cdr:#?}");
    assert_eq!(cdr.attempts[0].cause.as_deref(), Some("answered"));
    assert!(cdr.attempts[0].answer_ms.is_some());
    assert!(cdr.answer_ms.is_some());
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::CallEnded { call: c } if *c == call))
    );
    // A's 200 for our BYE lets the call go
    h.rx_msg(TRUNK, answer(&bye.1, 200, "a1", false));
    assert_eq!(h.core.active_calls(), 0);
    // requests on the finished dialog: 481
    h.rx(
        PHONE,
        &format!(
            "BYE sip:strowger@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP {PHONE};branch=z9hG4bKbye2
From: <sip:1002@test.local>;tag=b1
To: <sip:1001@test.local>;tag={b_from}
Call-ID: {}
CSeq: 7 BYE
Content-Length: 0

",
            b_inv.call_id()
        ),
    );
    assert_eq!(h.take_sent()[0].1.status(), Some(481));
}

#[test]
fn serial_failover_and_causes() {
    let mut h = H::new();
    h.rx(TRUNK, &invite("5511", "999", "A-fo", "z9hG4bKfo", TRUNK));
    h.take_sent();
    plan_to(
        &mut h,
        vec![
            attempt(Dest::User("1003".into())), // not registered: unavailable, always moves on
            attempt(Dest::Trunk("backup".into())),
            attempt(Dest::Trunk("carrier".into())),
            attempt(Dest::Trunk("carrier".into())),
        ],
        vec![Cause::Status(503)],
        false,
    );
    let s = h.take_sent();
    assert_eq!(s.len(), 1, "attempt 1 unavailable, attempt 2 sent");
    assert_eq!(
        s[0].0,
        Target::Addr {
            transport: Transport::Udp,
            addr: "127.0.0.10:5060".parse().unwrap()
        }
    );
    assert_eq!(s[0].1.request_uri_str(), Some("sip:5511@127.0.0.10"));
    // 503: marked for retry → ACK + attempt 3
    h.rx_msg("127.0.0.10:5060", answer(&s[0].1, 503, "x", false));
    let s2 = h.take_sent();
    assert_eq!(s2.len(), 2);
    assert_eq!(s2[0].1.method(), Some(&strowger_sip::Method::Ack));
    assert_eq!(s2[0].1.top_via().branch(), s[0].1.top_via().branch());
    let inv3 = &s2[1].1;
    assert_eq!(
        s2[1].0,
        Target::Addr {
            transport: Transport::Udp,
            addr: TRUNK.parse().unwrap()
        }
    );
    // 486 is not marked: the call ends with it (attempt 4 never tried)
    h.rx_msg(TRUNK, answer(inv3, 486, "y", false));
    let s3 = h.take_sent();
    assert_eq!(s3.len(), 2);
    let fin = s3.iter().find(|(_, m)| m.status().is_some()).unwrap();
    assert_eq!(fin.1.status(), Some(486));
    assert_eq!(fin.1.call_id(), "A-fo");
    let cdr = h
        .take_actions()
        .into_iter()
        .find_map(|a| match a {
            Action::Cdr(c) => Some(c),
            _ => None,
        })
        .unwrap();
    assert_eq!(cdr.attempts.len(), 3);
    assert_eq!(cdr.attempts[0].cause.as_deref(), Some("unavailable"));
    assert_eq!(cdr.attempts[1].final_code, Some(503));
    assert_eq!(cdr.final_code, 486);
}

#[test]
fn preferred_cause_first_and_unavailable_user() {
    let mut h = H::new();
    h.rx(TRUNK, &invite("5511", "999", "A-pc", "z9hG4bKpc", TRUNK));
    h.take_sent();
    plan_to(
        &mut h,
        vec![
            attempt(Dest::User("1003".into())),
            attempt(Dest::Trunk("backup".into())),
        ],
        vec![Cause::StatusClass(5)],
        false,
    );
    let s = h.take_sent();
    h.rx_msg("127.0.0.10:5060", answer(&s[0].1, 502, "x", false));
    let s = h.take_sent();
    let fin = s.iter().find(|(_, m)| m.status().is_some()).unwrap();
    // first failure: the unregistered user → 480
    assert_eq!(fin.1.status(), Some(480));
}

#[test]
fn ring_timeout_cancels_and_moves_on() {
    let mut h = H::new();
    h.rx(TRUNK, &invite("5511", "999", "A-rt", "z9hG4bKrt", TRUNK));
    h.take_sent();
    plan_to(
        &mut h,
        vec![
            attempt(Dest::Trunk("backup".into())),
            attempt(Dest::Trunk("carrier".into())),
        ],
        vec![Cause::NoAnswer],
        true,
    );
    let s = h.take_sent();
    let inv1 = s[0].1.clone();
    h.rx_msg("127.0.0.10:5060", answer(&inv1, 180, "r1", false));
    assert_eq!(h.take_sent()[0].1.status(), Some(180));
    h.advance(Duration::from_secs(21));
    let s = h.take_sent();
    let cancel = s
        .iter()
        .find(|(_, m)| m.method() == Some(&strowger_sip::Method::Cancel))
        .expect("CANCEL");
    assert_eq!(cancel.1.top_via().branch(), inv1.top_via().branch());
    let inv2 = s
        .iter()
        .find(|(_, m)| m.method() == Some(&strowger_sip::Method::Invite))
        .expect("attempt 2");
    assert_eq!(inv2.0.addr(), TRUNK.parse::<SocketAddr>().unwrap());
    // late 487 for the cancelled leg is ACKed and changes nothing
    h.rx_msg("127.0.0.10:5060", answer(&inv1, 487, "r1", false));
    let s = h.take_sent();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].1.method(), Some(&strowger_sip::Method::Ack));
}

#[test]
fn caller_cancel_propagates() {
    let mut h = H::new();
    h.register(PHONE, "1002", "sip:1002@127.0.0.1:7001", 3600, 1);
    h.register(PHONE2, "1002", "sip:1002@127.0.0.1:7002", 3600, 1);
    h.take_actions();
    let inv = invite("5511", "1002", "A-cx", "z9hG4bKcx", TRUNK);
    h.rx(TRUNK, &inv);
    h.take_sent();
    plan_to(
        &mut h,
        vec![attempt(Dest::User("1002".into()))],
        vec![],
        true,
    );
    let s = h.take_sent();
    assert_eq!(s.len(), 2, "forked to both contacts");
    for (t, m) in &s {
        let src = t.addr().to_string();
        h.rx_msg(&src, answer(m, 180, "f", false));
    }
    h.take_sent();
    h.rx(
        TRUNK,
        "CANCEL sip:1002@test.local SIP/2.0
Via: SIP/2.0/UDP 127.0.0.9:5060;branch=z9hG4bKcx
Max-Forwards: 70
From: \"Alice\" <sip:5511@carrier.example>;tag=a1
To: <sip:1002@test.local>
Call-ID: A-cx
CSeq: 1 CANCEL
Content-Length: 0

",
    );
    let s = h.take_sent();
    let codes: Vec<u16> = s.iter().filter_map(|(_, m)| m.status()).collect();
    assert!(codes.contains(&200) && codes.contains(&487), "{codes:?}");
    assert_eq!(
        s.iter()
            .filter(|(_, m)| m.method() == Some(&strowger_sip::Method::Cancel))
            .count(),
        2
    );
}

#[test]
fn fork_first_answer_wins() {
    let mut h = H::new();
    h.register(PHONE, "1002", "sip:1002@127.0.0.1:7001", 3600, 1);
    h.register(PHONE2, "1002", "sip:1002@127.0.0.1:7002", 3600, 1);
    h.take_actions();
    h.rx(TRUNK, &invite("5511", "1002", "A-fk", "z9hG4bKfk", TRUNK));
    h.take_sent();
    plan_to(
        &mut h,
        vec![attempt(Dest::User("1002".into()))],
        vec![],
        true,
    );
    let s = h.take_sent();
    h.rx_msg(PHONE, answer(&s[0].1, 180, "p1", false));
    h.rx_msg(PHONE2, answer(&s[1].1, 180, "p2", false));
    h.take_sent();
    h.rx_msg(PHONE2, answer(&s[1].1, 200, "p2", true));
    let out = h.take_sent();
    assert!(out.iter().any(|(_, m)| m.status() == Some(200)));
    let c = out
        .iter()
        .find(|(_, m)| m.method() == Some(&strowger_sip::Method::Cancel))
        .unwrap();
    assert_eq!(c.1.call_id(), s[0].1.call_id());
}

#[test]
fn protocol_errors() {
    let mut h = H::new();
    // Max-Forwards 0
    h.rx(
        TRUNK,
        &invite("5511", "1002", "A-mf", "z9hG4bKmf", TRUNK)
            .replace("Max-Forwards: 70", "Max-Forwards: 0"),
    );
    assert_eq!(h.take_sent()[0].1.status(), Some(483));
    // loop: our own Via in the request
    let looped = invite("5511", "1002", "A-lp", "z9hG4bKlp", TRUNK).replace(
        "Max-Forwards: 70",
        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKours\nMax-Forwards: 70",
    );
    h.rx(TRUNK, &looped);
    assert_eq!(h.take_sent()[0].1.status(), Some(482));
    // unknown dialog
    h.rx(
        TRUNK,
        "BYE sip:x@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.9:5060;branch=z9hG4bKu1
From: <sip:a@b>;tag=1
To: <sip:c@d>;tag=2
Call-ID: nope
CSeq: 2 BYE
Content-Length: 0

",
    );
    assert_eq!(h.take_sent()[0].1.status(), Some(481));
    // OPTIONS to the switch
    h.rx(
        PHONE,
        "OPTIONS sip:127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:7001;branch=z9hG4bKo1
From: <sip:a@b>;tag=1
To: <sip:127.0.0.1>
Call-ID: opt
CSeq: 1 OPTIONS
Content-Length: 0

",
    );
    let s = h.take_sent();
    assert_eq!(s[0].1.status(), Some(200));
    assert!(s[0].1.header("Allow").unwrap().contains("INVITE"));
    // malformed: 400 with a reason, no panic
    h.rx(
        PHONE,
        "INVITE sip:x@y SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:7001;branch=z9hG4bKm1
From: <sip:a@b>;tag=1
To: <sip:c@d>
Call-ID: bad
CSeq: 1 INVITE
Content-Length: 500

",
    );
    let s = h.take_sent();
    assert_eq!(s[0].1.status(), Some(400));
    // garbage: dropped
    h.rx(PHONE, "\u{1}\u{2}garbage");
    assert!(h.take_sent().is_empty());
    assert!(h.core.stats().malformed >= 2);
}

fn options_to(ruri: &str, method: &str, branch: &str) -> String {
    format!(
        "{method} {ruri} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:7001;branch={branch}
Max-Forwards: 70
From: <sip:a@b>;tag=1
To: <sip:127.0.0.1>
Call-ID: scheme-{branch}
CSeq: 1 {method}
Content-Length: 0

"
    )
}

#[test]
fn unsupported_request_uri_scheme_gets_416() {
    let mut h = H::new();
    // RFC 3261 §8.2.2.1: unknown scheme -> 416, for any method but ACK.
    for (method, ruri, branch) in [
        ("OPTIONS", "nobodyknowsthisscheme:x", "z9hG4bKs1"),
        ("INVITE", "urn:service:sos", "z9hG4bKs2"),
        ("MESSAGE", "im:alice@example.com", "z9hG4bKs3"),
    ] {
        h.rx(PHONE, &options_to(ruri, method, branch));
        let s = h.take_sent();
        assert_eq!(s.len(), 1, "{method} {ruri}");
        assert_eq!(s[0].1.status(), Some(416), "{method} {ruri}");
        assert_eq!(s[0].1.reason(), Some("Unsupported URI Scheme"));
        assert!(s[0].1.to_tag().is_some());
    }
    // A retransmission gets the same answer (from the response cache).
    h.rx(
        PHONE,
        &options_to("nobodyknowsthisscheme:x", "OPTIONS", "z9hG4bKs1"),
    );
    assert_eq!(h.take_sent()[0].1.status(), Some(416));
    // An ACK gets no response.
    h.rx(
        PHONE,
        &options_to("nobodyknowsthisscheme:x", "ACK", "z9hG4bKs4"),
    );
    assert!(h.take_sent().is_empty());
    // Supported schemes (any case) are served as before.
    for (ruri, branch) in [
        ("sip:127.0.0.1:5060", "z9hG4bKs5"),
        ("SIPS:127.0.0.1:5061", "z9hG4bKs6"),
        ("tel:+15551234", "z9hG4bKs7"),
    ] {
        h.rx(PHONE, &options_to(ruri, "OPTIONS", branch));
        assert_eq!(h.take_sent()[0].1.status(), Some(200), "{ruri}");
    }
}

#[test]
fn unauthenticated_invite_is_challenged() {
    let mut h = H::new();
    h.rx(PHONE, &invite("1001", "1002", "A-auth", "z9hG4bKau", PHONE));
    h.authorize_default();
    let s = h.take_sent();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].1.status(), Some(407));
    assert_eq!(s[0].1.proxy_authenticate().count(), 2);
}

fn reg_with_auth(user: &str, cseq: u32, branch: &str, auth: Option<&str>) -> String {
    let auth = auth
        .map(|a| format!("Authorization: {a}\n"))
        .unwrap_or_default();
    format!(
        "REGISTER sip:test.local SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:7001;branch={branch}
From: <sip:{user}@test.local>;tag=x
To: <sip:{user}@test.local>
Call-ID: dg-{user}
CSeq: {cseq} REGISTER
Contact: <sip:{user}@127.0.0.1:7001>
{auth}Content-Length: 0

"
    )
}

#[test]
fn digest_register_sha256_and_md5_replay_and_wrong_password() {
    // four refused credentials below: keep the brute-force ban out of it
    let mut h = H::with(|c| c.protection.ban_time = Duration::ZERO);
    h.rx(PHONE, &reg_with_auth("1001", 1, "z9hG4bKd1", None));
    h.authorize_default();
    let r = h.take_sent().pop().unwrap().1;
    assert_eq!(r.status(), Some(401));
    let chs: Vec<String> = r.www_authenticate().map(str::to_string).collect();
    let mut nc = 0;
    for (i, ch) in chs.iter().enumerate() {
        let c = strowger_sip::digest::Challenge::parse(ch).unwrap();
        nc += 1;
        let a = strowger_sip::digest::answer(
            &c,
            "REGISTER",
            "sip:test.local",
            "1001",
            "pw1001",
            None,
            nc,
        );
        let msg = reg_with_auth("1001", 2 + i as u32 * 2, &format!("z9hG4bKd2{i}"), Some(&a));
        h.rx(PHONE, &msg);
        h.authorize_default();
        let r = h.take_sent().pop().unwrap().1;
        assert_eq!(r.status(), Some(200), "algorithm {}", c.algorithm.as_str());
        // same credentials again on a new transaction: nonce-count replay,
        // refused with a fresh stale=true challenge (not a failed attempt)
        let replay = reg_with_auth("1001", 3 + i as u32 * 2, &format!("z9hG4bKd3{i}"), Some(&a));
        h.rx(PHONE, &replay);
        h.authorize_default();
        let r = h.take_sent().pop().unwrap().1;
        assert_eq!(r.status(), Some(401));
        assert!(r.www_authenticate().all(|v| v.contains("stale=true")));
    }
    // wrong password
    let c = strowger_sip::digest::Challenge::parse(&chs[0]).unwrap();
    let a = strowger_sip::digest::answer(&c, "REGISTER", "sip:test.local", "1001", "nope", None, 9);
    h.rx(PHONE, &reg_with_auth("1001", 20, "z9hG4bKd9", Some(&a)));
    h.authorize_default();
    assert_eq!(h.take_sent().pop().unwrap().1.status(), Some(403));
    // someone else's valid credentials for this AOR
    let a =
        strowger_sip::digest::answer(&c, "REGISTER", "sip:test.local", "1002", "pw1002", None, 10);
    h.rx(PHONE, &reg_with_auth("1001", 21, "z9hG4bKd10", Some(&a)));
    h.authorize_default();
    assert_eq!(h.take_sent().pop().unwrap().1.status(), Some(403));
    // an expired nonce: stale=true challenge
    h.now = h.now.after(Duration::from_secs(400));
    let a =
        strowger_sip::digest::answer(&c, "REGISTER", "sip:test.local", "1001", "pw1001", None, 11);
    h.rx(PHONE, &reg_with_auth("1001", 22, "z9hG4bKd11", Some(&a)));
    h.authorize_default();
    let r = h.take_sent().pop().unwrap().1;
    assert_eq!(r.status(), Some(401));
    assert!(r.www_authenticate().all(|v| v.contains("stale=true")));
}

#[test]
fn media_timeout_ends_only_the_answered_leg() {
    let mut h = H::new();
    h.register(PHONE, "1002", "sip:1002@127.0.0.1:7001", 3600, 1);
    h.register(PHONE2, "1002", "sip:1002@127.0.0.1:7002", 3600, 1);
    h.take_actions();
    h.rx(TRUNK, &invite("5511", "1002", "A-mt", "z9hG4bKmt", TRUNK));
    h.take_sent();
    let call = plan_to(
        &mut h,
        vec![attempt(Dest::User("1002".into()))],
        vec![],
        true,
    );
    let s = h.take_sent();
    h.rx_msg(PHONE2, answer(&s[1].1, 200, "p2", true));
    h.take_sent();
    // A timeout on the losing fork (leg 0) or an unknown call changes nothing.
    h.core.handle(h.now, Event::MediaTimeout { call, leg: 0 });
    h.core.handle(
        h.now,
        Event::MediaTimeout {
            call: call + 99,
            leg: 1,
        },
    );
    h.collect();
    assert!(h.take_sent().is_empty());
    assert!(h.take_actions().is_empty());
    // On the answered leg: BYE to both sides, CDR cause media-timeout.
    h.core.handle(h.now, Event::MediaTimeout { call, leg: 1 });
    h.collect();
    let byes: Vec<_> = h
        .take_sent()
        .into_iter()
        .filter(|(_, m)| m.method() == Some(&strowger_sip::Method::Bye))
        .collect();
    assert_eq!(byes.len(), 2, "{byes:?}");
    assert!(byes.iter().any(|(_, m)| m.call_id() == "A-mt"));
    assert!(byes.iter().any(|(_, m)| m.call_id() == s[1].1.call_id()));
    let cdr = h
        .take_actions()
        .into_iter()
        .find_map(|a| match a {
            Action::Cdr(c) => Some(c),
            _ => None,
        })
        .expect("CDR");
    assert_eq!(cdr.cause, "media-timeout");
    assert_eq!(cdr.hangup_side.as_deref(), Some("switch"));
}

fn sdp(ip: &str, port: u16, dir: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na={dir}\r\n"
    )
}

/// (c= address, m= port) of an SDP body.
fn sdp_addr(body: &[u8]) -> (String, u16) {
    let t = std::str::from_utf8(body).unwrap();
    let c = t
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .unwrap()
        .to_string();
    let m = t.lines().find_map(|l| l.strip_prefix("m=audio ")).unwrap();
    (c, m.split(' ').next().unwrap().parse().unwrap())
}

fn in_dialog(
    method: &str,
    from: &str,
    from_tag: &str,
    to_tag: &str,
    call_id: &str,
    cseq: u32,
    body: &str,
) -> String {
    format!(
        "{method} sip:strowger@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK{method}{cseq}\r\nMax-Forwards: 70\r\nFrom: <sip:x@test.local>;tag={from_tag}\r\nTo: <sip:y@test.local>;tag={to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:x@{from}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .replace("\r\n", "\n") // H::rx turns LF into CRLF
}

#[test]
fn relay_anchors_initial_and_reinvite_sdp() {
    use crate::media::{MediaSettings, Mode, RelayMedia};
    let mut h = H::new();
    let settings = MediaSettings {
        port_min: 42000,
        port_max: 42200,
        workers: 1,
        ..Default::default()
    };
    let relay =
        strowger_media::MediaRelay::start(settings.relay_config("127.0.0.1".parse().unwrap()))
            .unwrap();
    h.core.media = Box::new(RelayMedia::new(std::sync::Arc::new(relay), Mode::Relay));
    h.register(PHONE, "1002", "sip:1002@127.0.0.1:7001", 3600, 1);
    h.take_actions();
    let offer = sdp("10.1.1.1", 4000, "sendrecv");
    let inv = invite_with_sdp("5511", "1002", "A-rl", "z9hG4bKrl", TRUNK, &offer);
    h.rx(TRUNK, &inv);
    h.take_sent();
    plan_to(
        &mut h,
        vec![attempt(Dest::User("1002".into()))],
        vec![],
        true,
    );
    let s = h.take_sent();
    let b_inv = &s[0].1;
    let (ip, b_port) = sdp_addr(b_inv.body());
    assert_eq!(ip, "127.0.0.1");
    assert!((42000..42200).contains(&b_port), "{b_port}");
    let ok = strowger_sip::ResponseBuilder::new(b_inv, 200)
        .to_tag("b1")
        .contact("sip:callee@127.0.0.1:7001")
        .body(
            "application/sdp",
            sdp("10.2.2.2", 5000, "sendrecv").as_bytes(),
        )
        .build();
    h.rx_msg(PHONE, ok);
    let s = h.take_sent();
    let a200 = &s[0].1;
    let a_tag = a200.to_tag().unwrap().to_string();
    let (ip, a_port) = sdp_addr(a200.body());
    assert_eq!(ip, "127.0.0.1");
    assert_ne!(a_port, b_port);

    // Callee puts the call on hold: the caller sees the relay, same port.
    let b_from = b_inv.from_tag().unwrap().to_string();
    let hold = sdp("10.2.2.2", 5000, "sendonly");
    h.rx(
        PHONE,
        &in_dialog("INVITE", PHONE, "b1", &b_from, b_inv.call_id(), 5, &hold),
    );
    let s = h.take_sent();
    assert_eq!(s.len(), 1, "{s:?}");
    let re = &s[0].1;
    assert_eq!(re.call_id(), "A-rl");
    assert_eq!(sdp_addr(re.body()), ("127.0.0.1".into(), a_port));
    assert!(re.body().windows(10).any(|w| w == b"a=sendonly"));
    let held = strowger_sip::ResponseBuilder::new(re, 200)
        .to_tag("a1")
        .body(
            "application/sdp",
            sdp("10.1.1.1", 4000, "recvonly").as_bytes(),
        )
        .build();
    h.rx_msg(TRUNK, held);
    let s = h.take_sent();
    assert_eq!(s[0].1.status(), Some(200));
    assert_eq!(sdp_addr(s[0].1.body()), ("127.0.0.1".into(), b_port));

    // A caller re-INVITE with unusable SDP gets 488; nothing reaches the callee.
    h.rx(
        TRUNK,
        &in_dialog(
            "INVITE",
            TRUNK,
            "a1",
            &a_tag,
            "A-rl",
            2,
            "v=0\r\nm=audio x\r\n",
        ),
    );
    let s = h.take_sent();
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].1.status(), Some(488));
}

#[test]
fn failed_leg_frees_its_relay_ports_before_the_call_ends() {
    use crate::media::{MediaSettings, Mode, RelayMedia};
    let mut h = H::new();
    let settings = MediaSettings {
        port_min: 42400,
        port_max: 42500,
        workers: 1,
        ..Default::default()
    };
    let relay = std::sync::Arc::new(
        strowger_media::MediaRelay::start(settings.relay_config("127.0.0.1".parse().unwrap()))
            .unwrap(),
    );
    h.core.media = Box::new(RelayMedia::new(relay.clone(), Mode::Relay));
    let total = relay.stats().ports_free;
    let offer = sdp("10.1.1.1", 4000, "sendrecv");
    let inv = invite_with_sdp("5511", "999", "A-fr", "z9hG4bKfr", TRUNK, &offer);
    h.rx(TRUNK, &inv);
    h.take_sent();
    plan_to(
        &mut h,
        vec![
            attempt(Dest::Trunk("backup".into())),
            attempt(Dest::Trunk("carrier".into())),
        ],
        vec![Cause::Status(503)],
        false,
    );
    let s = h.take_sent();
    assert_eq!(
        relay.stats().ports_free,
        total - 2,
        "one session = two pairs"
    );
    h.rx_msg("127.0.0.10:5060", answer(&s[0].1, 503, "x", false));
    h.take_sent();
    // the failed leg's pairs come back (the worker closes its sockets
    // asynchronously), the second attempt holds two
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while relay.stats().ports_free != total - 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(relay.stats().ports_free, total - 2);
}

/// RFC 4733 packet (PT 101) with the end bit set or not.
fn te_packet(seq: u16, ts: u32, event: u8, end: bool) -> Vec<u8> {
    let mut p = vec![0x80, 101];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&0x0101_0101u32.to_be_bytes());
    p.extend_from_slice(&[event, if end { 0x8a } else { 0x0a }]);
    p.extend_from_slice(&(if end { 1280u16 } else { 320 }).to_be_bytes());
    p
}

/// A relayed call from trunk `carrier` to trunk `backup` where trunk
/// number `info_trunk` has `dtmf = "info"`, answered; real UDP sockets
/// play the two phones.
struct DtmfCall {
    h: H,
    events: tokio::sync::mpsc::UnboundedReceiver<strowger_media::MediaEvent>,
    caller: std::net::UdpSocket,
    callee: std::net::UdpSocket,
    call: u64,
    b_inv: Message,
    a_tag: String,
    /// Relay ports the caller / the callee send to.
    relay_a: SocketAddr,
    relay_b: SocketAddr,
}

fn dtmf_call(info_trunk: usize, port_min: u16, call_id: &str) -> DtmfCall {
    use crate::media::{MediaSettings, Mode, RelayMedia};
    use std::net::UdpSocket;
    let mut h = H::with(|cfg| cfg.trunks[info_trunk].dtmf = crate::config::DtmfMode::Info);
    let settings = MediaSettings {
        port_min,
        port_max: port_min + 100,
        workers: 1,
        ..Default::default()
    };
    let relay =
        strowger_media::MediaRelay::start(settings.relay_config("127.0.0.1".parse().unwrap()))
            .unwrap();
    let events = relay.take_events().unwrap();
    h.core.media = Box::new(RelayMedia::new(std::sync::Arc::new(relay), Mode::Relay));
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    let callee = UdpSocket::bind("127.0.0.1:0").unwrap();
    for s in [&caller, &callee] {
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
    }
    let offer = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-16\r\n",
        caller.local_addr().unwrap().port()
    );
    let inv = invite_with_sdp(
        "5511",
        "999",
        call_id,
        &format!("z9hG4bK{call_id}"),
        TRUNK,
        &offer,
    );
    h.rx(TRUNK, &inv);
    h.take_sent();
    let call = plan_to(
        &mut h,
        vec![attempt(Dest::Trunk("backup".into()))],
        vec![],
        false,
    );
    let s = h.take_sent();
    let b_inv = s[0].1.clone();
    // Telephone-event is still offered (the answer decides).
    assert!(
        b_inv.body().windows(15).any(|w| w == b"telephone-event"),
        "{b_inv:?}"
    );
    let answer_sdp = offer.replace(
        &format!("m=audio {} ", caller.local_addr().unwrap().port()),
        &format!("m=audio {} ", callee.local_addr().unwrap().port()),
    );
    let ok = strowger_sip::ResponseBuilder::new(&b_inv, 200)
        .to_tag("bt")
        .contact("sip:gw@127.0.0.10:5060")
        .body("application/sdp", answer_sdp.as_bytes())
        .build();
    h.rx_msg("127.0.0.10:5060", ok);
    let s = h.take_sent();
    let a_port = sdp_addr(s[0].1.body()).1;
    let a_tag = s[0].1.to_tag().unwrap().to_string();
    let relay_a: SocketAddr = format!("127.0.0.1:{a_port}").parse().unwrap();

    let relay_b: SocketAddr = format!("127.0.0.1:{}", sdp_addr(b_inv.body()).1)
        .parse()
        .unwrap();
    DtmfCall {
        h,
        events,
        caller,
        callee,
        call,
        b_inv,
        a_tag,
        relay_a,
        relay_b,
    }
}

/// The relay events that arrive within a short wait (at least one expected).
fn relay_events(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<strowger_media::MediaEvent>,
) -> Vec<strowger_media::MediaEvent> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut evs = Vec::new();
    while evs.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        while let Ok(e) = events.try_recv() {
            evs.push(e);
        }
    }
    std::thread::sleep(Duration::from_millis(100));
    while let Ok(e) = events.try_recv() {
        evs.push(e);
    }
    evs
}

#[test]
fn rfc2833_from_the_caller_becomes_sip_info_on_an_info_trunk() {
    let DtmfCall {
        mut h,
        mut events,
        caller,
        callee,
        call,
        b_inv,
        a_tag,
        relay_a,
        ..
    } = dtmf_call(1, 42600, "A-dt");
    // Digit 7: two progress packets, the end packet three times; then audio.
    for (i, end) in [false, false, true, true, true].into_iter().enumerate() {
        caller
            .send_to(&te_packet(10 + i as u16, 800, 7, end), relay_a)
            .unwrap();
    }
    let mut audio = te_packet(15, 2400, 0, false);
    audio[1] = 8;
    audio.resize(172, 0xd5);
    caller.send_to(&audio, relay_a).unwrap();
    // Only the audio packet reaches the callee.
    let mut buf = [0u8; 2048];
    let (n, _) = callee.recv_from(&mut buf).expect("audio relayed");
    assert_eq!((n, buf[1]), (172, 8));
    assert!(callee.recv_from(&mut buf).is_err(), "an event leaked");

    // One relay event for the digit; the core turns it into one INFO.
    let evs = relay_events(&mut events);
    assert_eq!(evs.len(), 1, "{evs:?}");
    let ev = crate::media::core_event(&evs[0]).expect("a core event");
    assert!(
        matches!(ev, Event::MediaDtmf { call: c, leg: 0, from_caller: true, signal: '7', duration_ms: 160 } if c == call),
        "{ev:?}"
    );
    h.core.handle(h.now, ev);
    h.collect();
    let s = h.take_sent();
    assert_eq!(s.len(), 1, "{s:?}");
    let (to, info) = &s[0];
    assert_eq!(to.addr(), "127.0.0.10:5060".parse::<SocketAddr>().unwrap());
    assert_eq!(info.method(), Some(&strowger_sip::Method::Info));
    assert_eq!(info.call_id(), b_inv.call_id());
    assert_eq!(info.to_tag(), Some("bt"));
    assert_eq!(info.content_type(), Some("application/dtmf-relay"));
    assert_eq!(info.body(), b"Signal=7\r\nDuration=160\r\n");
    // A digit for an unknown leg or call is ignored.
    for (c, leg) in [(call, 5), (call + 9, 0)] {
        h.core.handle(
            h.now,
            Event::MediaDtmf {
                call: c,
                leg,
                from_caller: true,
                signal: '1',
                duration_ms: 100,
            },
        );
    }
    h.collect();
    assert!(h.take_sent().is_empty());

    // The CDR carries the media counters, DTMF packets included.
    h.rx(TRUNK, &in_dialog("BYE", TRUNK, "a1", &a_tag, "A-dt", 2, ""));
    let _ = h.take_sent();
    let cdr = h
        .take_actions()
        .into_iter()
        .find_map(|a| match a {
            Action::Cdr(c) => Some(c),
            _ => None,
        })
        .expect("CDR");
    let media = cdr.media.expect("media counters in the CDR");
    let caller_side = &media[0]["streams"][0]["caller"];
    assert_eq!(caller_side["packets"], 6, "{media}");
    assert_eq!(caller_side["dtmf_packets"], 5, "{media}");
    assert_eq!(
        media[0]["streams"][0]["callee"]["sent_packets"], 1,
        "{media}"
    );
}

#[test]
fn rfc2833_from_the_callee_becomes_sip_info_to_an_info_caller() {
    let DtmfCall {
        mut h,
        mut events,
        caller,
        callee,
        call,
        relay_a,
        relay_b,
        ..
    } = dtmf_call(0, 42800, "A-dt2");
    // The caller's own events still reach the callee (it does RFC 2833).
    caller
        .send_to(&te_packet(1, 160, 3, true), relay_a)
        .unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = callee.recv_from(&mut buf).expect("caller event relayed");
    assert_eq!((n, buf[1]), (16, 101));
    // '*' from the callee: one event, not forwarded, INFO on the A dialog.
    for (i, end) in [false, true, true, true].into_iter().enumerate() {
        callee
            .send_to(&te_packet(20 + i as u16, 4000, 10, end), relay_b)
            .unwrap();
    }
    assert!(caller.recv_from(&mut buf).is_err(), "an event leaked");
    let evs = relay_events(&mut events);
    assert_eq!(evs.len(), 1, "{evs:?}");
    let ev = crate::media::core_event(&evs[0]).expect("a core event");
    assert!(
        matches!(ev, Event::MediaDtmf { call: c, leg: 0, from_caller: false, signal: '*', .. } if c == call),
        "{ev:?}"
    );
    h.core.handle(h.now, ev);
    h.collect();
    let s = h.take_sent();
    assert_eq!(s.len(), 1, "{s:?}");
    let (to, info) = &s[0];
    assert_eq!(to.addr(), TRUNK.parse::<SocketAddr>().unwrap());
    assert_eq!(info.method(), Some(&strowger_sip::Method::Info));
    assert_eq!(info.call_id(), "A-dt2");
    assert_eq!(info.to_tag(), Some("a1"));
    assert_eq!(info.body(), b"Signal=*\r\nDuration=160\r\n");
}

#[test]
fn sip_info_from_an_info_trunk_becomes_rfc2833_towards_the_caller() {
    let DtmfCall {
        mut h,
        caller,
        b_inv,
        ..
    } = dtmf_call(1, 43000, "A-dt3");
    let body = "Signal=9\r\nDuration=200\r\n";
    let info = format!(
        "INFO sip:strowger@127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.10:5060;branch=z9hG4bKinfo1\nMax-Forwards: 70\nFrom: <sip:gw@x>;tag=bt\nTo: <sip:y@x>;tag={}\nCall-ID: {}\nCSeq: 7 INFO\nContent-Type: application/dtmf-relay\nContent-Length: {}\n\n{}",
        b_inv.from_tag().unwrap(),
        b_inv.call_id(),
        body.len(),
        body.replace("\r\n", "\n")
    );
    h.rx("127.0.0.10:5060", &info);
    // Answered here; nothing goes to the caller's signalling.
    let s = h.take_sent();
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].1.status(), Some(200));
    assert_eq!(s[0].1.cseq().seq, 7);
    // The caller's RTP address gets the digit as RFC 4733 from the relay:
    // start (marker) + the end packet three times, one timestamp.
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok((n, _)) = caller.recv_from(&mut buf) {
        got.push(buf[..n].to_vec());
    }
    assert_eq!(got.len(), 4, "{got:?}");
    for (i, p) in got.iter().enumerate() {
        assert_eq!(p.len(), 16);
        assert_eq!(p[1] & 0x7f, 101, "telephone-event PT of the caller's SDP");
        assert_eq!(p[1] & 0x80 != 0, i == 0, "marker on the first packet only");
        assert_eq!(p[12], 9, "event");
        assert_eq!(p[13] & 0x80 != 0, i > 0, "end bit");
        assert_eq!(p[4..8], got[0][4..8], "one timestamp");
    }
    assert_eq!(
        u16::from_be_bytes([got[3][14], got[3][15]]),
        1600,
        "200 ms at 8 kHz"
    );
    // An INFO of another kind is relayed as before.
    let other = info
        .replace("application/dtmf-relay", "application/x-custom")
        .replace("CSeq: 7", "CSeq: 8")
        .replace("branch=z9hG4bKinfo1", "branch=z9hG4bKinfo2");
    h.rx("127.0.0.10:5060", &other);
    let s = h.take_sent();
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].1.method(), Some(&strowger_sip::Method::Info));
    assert_eq!(s[0].1.call_id(), "A-dt3");
}

#[path = "trunk_tests.rs"]
mod trunk_tests;

/// The host call id of the call started by an INVITE from the trunk.
fn first_call_id(h: &mut H, sip_call_id: &str) -> String {
    h.rx(
        TRUNK,
        &invite("5511", "1002", sip_call_id, "z9hG4bKid1", TRUNK),
    );
    h.take_actions()
        .into_iter()
        .find_map(|a| match a {
            Action::PlanCall { facts, .. } => Some(facts.call_id.clone()),
            _ => None,
        })
        .expect("PlanCall")
}

#[test]
fn call_ids_are_unique_across_restarts_and_repeatable_with_a_seed() {
    // a restarted switch (a fresh core, new seed) must not reuse the id
    // of an earlier process's first call: CDRs are keyed by it
    let mut before = H::with(|c| c.id_seed = 11);
    let mut after = H::with(|c| c.id_seed = 12);
    after.now = before.now;
    let a = first_call_id(&mut before, "A-id-1");
    let b = first_call_id(&mut after, "A-id-1");
    assert_ne!(a, b);
    for id in [&a, &b] {
        assert_eq!(id.len(), 26, "{id}");
        assert_eq!(
            crate::call_id::unix_ms_of(id),
            Some(before.now.unix_ms),
            "{id}: the injected clock's time"
        );
    }
    // same seed and clock: same id (deterministic tests)
    let mut again = H::with(|c| c.id_seed = 11);
    again.now = before.now;
    assert_eq!(first_call_id(&mut again, "A-id-1"), a);
    // a second call of the same core gets another id
    assert_ne!(first_call_id(&mut before, "A-id-2"), a);
}

/// An OPTIONS from `PHONE` with `vias` extra Via lines of ~60 bytes (the
/// response echoes them: a big response, as in a header-stuffing flood).
fn stuffed_options(i: usize, vias: usize) -> String {
    let mut m = format!(
        "OPTIONS sip:test.local SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:7001;branch=z9hG4bKflood{i}\n"
    );
    for j in 0..vias {
        m.push_str(&format!(
            "Via: SIP/2.0/UDP 192.0.2.{}:5060;branch=z9hG4bKstuff{j:08}\n",
            j % 250
        ));
    }
    m.push_str(&format!(
        "From: <sip:x@test.local>;tag=f{i}\nTo: <sip:test.local>\nCall-ID: flood{i}\n\
         CSeq: 1 OPTIONS\nContent-Length: 0\n\n"
    ));
    m
}

#[test]
fn response_cache_stays_within_entries_and_bytes_under_a_flood() {
    let limits = CacheLimits {
        max_entries: 50,
        max_bytes: 60_000,
        max_entry_bytes: 8 * 1024,
    };
    let mut h = H::with(|c| c.response_cache = limits);
    // 1,000 distinct requests whose responses are ~2 kB: 2 MB unbounded
    for i in 0..1000 {
        h.rx(PHONE, &stuffed_options(i, 30));
        assert_eq!(h.take_sent().len(), 1, "request {i} answered");
        assert!(h.core.cache.len() <= limits.max_entries, "entries at {i}");
        assert!(h.core.cache.bytes() <= limits.max_bytes, "bytes at {i}");
    }
    let m = h.core.guard_metrics();
    let evicted = m.cache_evictions.load(std::sync::atomic::Ordering::Relaxed);
    assert!(evicted >= 900, "evictions counted: {evicted}");
    // the newest entry still absorbs a retransmission with the same answer
    h.rx(PHONE, &stuffed_options(999, 30));
    let again = h.take_sent();
    assert_eq!(again.len(), 1);
    assert_eq!(h.core.stats().retransmissions, 1);
    // the oldest was evicted: its retransmission is handled anew
    h.rx(PHONE, &stuffed_options(0, 30));
    assert_eq!(h.take_sent().len(), 1);
    assert_eq!(h.core.stats().retransmissions, 1);
    // entries still expire by time: two rotations (64*T1 each) empty it
    h.advance(Duration::from_secs(33));
    h.advance(Duration::from_secs(33));
    assert_eq!(h.core.cache.len(), 0);
    assert_eq!(h.core.cache.bytes(), 0);
}

#[test]
fn response_larger_than_the_entry_cap_is_not_cached() {
    let mut h = H::with(|c| {
        c.response_cache = CacheLimits {
            max_entries: 1000,
            max_bytes: 1 << 20,
            max_entry_bytes: 4096,
        }
    });
    // ~27 kB of Via headers: the 200 echoes them
    h.rx(PHONE, &stuffed_options(1, 450));
    let s = h.take_sent();
    assert_eq!(s.len(), 1);
    assert!(h.core.cache.bytes() < 4096, "{}", h.core.cache.bytes());
    assert_eq!(
        h.core
            .guard_metrics()
            .cache_oversize
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // its retransmission is absorbed (not re-handled), without an answer
    h.rx(PHONE, &stuffed_options(1, 450));
    assert!(h.take_sent().is_empty());
    assert_eq!(h.core.stats().retransmissions, 1);
}

/// The switch's own /metrics families, as the admin API renders them.
fn switch_metrics_text(h: &H) -> String {
    let mut e = crate::metrics::Exposition::default();
    h.core.metrics_snapshot(h.now).render(&mut e);
    e.finish()
}

#[test]
fn rate_limit_drops_are_counted_on_metrics() {
    let mut h = H::with(|c| c.protection.rate_limit = 5);
    // 12 requests in the same instant from one source: a burst of 5 passes
    let mut answered = 0;
    for i in 0..12 {
        h.rx(PHONE, &stuffed_options(i, 0));
        answered += h.take_sent().len();
    }
    assert_eq!(answered, 5);
    let text = switch_metrics_text(&h);
    assert!(
        text.contains("strowger_protection_dropped_total{reason=\"rate_limit\"} 7\n"),
        "{text}"
    );
    // another source address is not limited and not counted
    h.rx("127.0.0.2:7001", &stuffed_options(100, 0));
    assert_eq!(h.take_sent().len(), 1);
    let text = switch_metrics_text(&h);
    assert!(
        text.contains("strowger_protection_dropped_total{reason=\"rate_limit\"} 7\n"),
        "{text}"
    );
}

#[test]
fn rate_limit_table_is_bounded_under_a_flood_of_sources() {
    let mut h = H::with(|c| {
        c.protection.rate_limit = 5;
        c.max_tracked_sources = 20;
    });
    for i in 0..200u32 {
        let src = format!("10.{}.{}.1:5060", i / 250, i % 250);
        h.rx(&src, &stuffed_options(i as usize, 0));
        assert_eq!(h.take_sent().len(), 1, "source {i} answered");
        let (buckets, _, _) = h.core.trunks.protection.tracked();
        assert!(buckets <= 20, "{buckets} buckets at source {i}");
    }
    // a second later the idle buckets are dropped: new sources are metered
    h.now = h.now.after(Duration::from_secs(2));
    h.rx("10.9.9.9:5060", &stuffed_options(5000, 0));
    let (buckets, _, _) = h.core.trunks.protection.tracked();
    assert!(buckets <= 1, "{buckets}");
}
