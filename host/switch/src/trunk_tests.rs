//! Deterministic trunk tests: groups, limits, qualify, outbound
//! registration and protection, driven by the injected clock.

use super::*;
use crate::trunks::{GroupAlgorithm, GroupInfo, RegStatus};
use std::collections::HashMap;

const THIRD: &str = "127.0.0.11:5060";

/// The standard harness plus a third trunk and a 2/1/0 group over
/// carrier/backup/third.
fn with_group(algorithm: GroupAlgorithm) -> H {
    H::with(|c| {
        c.trunks.push(TrunkInfo::new(
            "third",
            "127.0.0.11",
            Some(THIRD.parse().unwrap()),
            Transport::Udp,
        ));
        c.groups.push(GroupInfo {
            name: "g".into(),
            algorithm,
            force_proportional: false,
            members: vec![(0, 2), (1, 1), (2, 0)],
        });
    })
}

fn new_call(h: &mut H, n: u32) {
    h.rx(
        TRUNK,
        &invite(
            "5511",
            "999",
            &format!("G-{n}"),
            &format!("z9hG4bKg{n}"),
            TRUNK,
        ),
    );
    h.take_sent();
}

fn invites(sent: &[(Target, Message)]) -> Vec<(SocketAddr, Message)> {
    sent.iter()
        .filter(|(_, m)| m.method() == Some(&strowger_sip::Method::Invite))
        .map(|(t, m)| (t.addr(), m.clone()))
        .collect()
}

#[test]
fn group_weights_2_1_0_and_retry_inside_the_group() {
    let mut h = with_group(GroupAlgorithm::Calls);
    let mut count: HashMap<SocketAddr, u32> = HashMap::new();
    for n in 0..30 {
        new_call(&mut h, n);
        plan_to(&mut h, vec![attempt(Dest::Group("g".into()))], vec![], true);
        let inv = invites(&h.take_sent());
        assert_eq!(inv.len(), 1);
        *count.entry(inv[0].0).or_default() += 1;
    }
    assert_eq!(count.get(&TRUNK.parse().unwrap()), Some(&20));
    assert_eq!(count.get(&"127.0.0.10:5060".parse().unwrap()), Some(&10));
    assert_eq!(
        count.get(&THIRD.parse().unwrap()),
        None,
        "weight 0 only on retry"
    );

    // 503 marked for retry: the next member, then the weight-0 one
    new_call(&mut h, 100);
    plan_to(
        &mut h,
        vec![attempt(Dest::Group("g".into()))],
        vec![Cause::Status(503)],
        true,
    );
    let mut tried = Vec::new();
    for _ in 0..3 {
        let inv = invites(&h.take_sent());
        assert_eq!(inv.len(), 1, "one member at a time");
        tried.push(inv[0].0);
        h.rx_msg(&inv[0].0.to_string(), answer(&inv[0].1, 503, "t", false));
    }
    tried.sort();
    let mut all: Vec<SocketAddr> = [TRUNK, "127.0.0.10:5060", THIRD]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    all.sort();
    assert_eq!(tried, all, "every member tried once");
    let fin = h
        .take_sent()
        .into_iter()
        .find(|(_, m)| m.status().is_some_and(|s| s >= 300))
        .expect("final answer to the caller");
    assert_eq!(fin.1.status(), Some(503));
}

#[test]
fn outgoing_and_incoming_call_limits() {
    let mut h = H::with(|c| {
        c.trunks[1].max_out = Some(2);
        c.trunks[0].max_in = Some(3);
    });
    for n in 0..2 {
        new_call(&mut h, n);
        plan_to(
            &mut h,
            vec![attempt(Dest::Trunk("backup".into()))],
            vec![],
            true,
        );
        assert_eq!(invites(&h.take_sent()).len(), 1, "call {n} goes out");
    }
    new_call(&mut h, 2);
    plan_to(
        &mut h,
        vec![attempt(Dest::Trunk("backup".into()))],
        vec![],
        true,
    );
    let s = h.take_sent();
    assert!(
        invites(&s).is_empty(),
        "third call not sent to the full trunk"
    );
    let fin = s.iter().find(|(_, m)| m.status().is_some()).unwrap();
    assert_eq!(fin.1.status(), Some(503));
    // inbound from the carrier: calls 0 and 1 are up (the refused third one
    // ended); a third active one fits max_in = 3, a fourth does not
    new_call(&mut h, 3);
    assert!(
        h.take_actions()
            .iter()
            .any(|a| matches!(a, Action::PlanCall { .. }))
    );
    h.rx(TRUNK, &invite("5511", "999", "G-in", "z9hG4bKgin", TRUNK));
    let s = h.take_sent();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].1.status(), Some(503));
    assert!(
        h.take_actions()
            .iter()
            .all(|a| !matches!(a, Action::PlanCall { .. }))
    );
}

#[test]
fn qualify_marks_a_silent_trunk_down_and_back_up() {
    let mut h = H::with(|c| c.trunks[1].qualify = Some(Duration::from_secs(5)));
    h.advance(Duration::from_millis(1));
    let opts: Vec<_> = h
        .take_sent()
        .into_iter()
        .filter(|(_, m)| m.method() == Some(&strowger_sip::Method::Options))
        .collect();
    assert_eq!(opts.len(), 1, "OPTIONS to the qualified trunk");
    assert_eq!(opts[0].0.addr(), "127.0.0.10:5060".parse().unwrap());
    // silence: down after the qualify timeout
    h.advance(Duration::from_millis(2100));
    assert!(!h.core.trunk_view().read()[1].up);
    // a call routed to it moves on at once
    new_call(&mut h, 1);
    plan_to(
        &mut h,
        vec![
            attempt(Dest::Trunk("backup".into())),
            attempt(Dest::Trunk("carrier".into())),
        ],
        vec![],
        true,
    );
    let inv = invites(&h.take_sent());
    assert_eq!(inv.len(), 1);
    assert_eq!(inv[0].0, TRUNK.parse().unwrap());
    // next round answered: up again, with a latency
    h.advance(Duration::from_secs(3));
    let opt = h
        .take_sent()
        .into_iter()
        .find(|(_, m)| m.method() == Some(&strowger_sip::Method::Options))
        .expect("next OPTIONS");
    h.advance(Duration::from_millis(30));
    h.rx_msg("127.0.0.10:5060", answer(&opt.1, 200, "q", false));
    let v = h.core.trunk_view().read()[1].clone();
    assert!(v.up);
    assert_eq!(v.latency_ms, Some(30));
}

fn challenge_for(req: &Message, nonce: &str) -> Bytes {
    strowger_sip::ResponseBuilder::new(req, 401)
        .to_tag("reg")
        .header(
            "WWW-Authenticate",
            &format!("Digest realm=\"prov\", nonce=\"{nonce}\", qop=\"auth\", algorithm=MD5"),
        )
        .build()
}

fn registers(h: &mut H) -> Vec<Message> {
    h.take_sent()
        .into_iter()
        .filter(|(_, m)| m.method() == Some(&strowger_sip::Method::Register))
        .map(|(_, m)| m)
        .collect()
}

#[test]
fn outbound_registration_authenticates_refreshes_and_gives_up() {
    let mut h = H::with(|c| {
        let t = &mut c.trunks[1];
        t.register = true;
        t.user = "acct".into();
        t.secret = Some("s3cret".into());
        t.did = Some("4830001111".into());
        t.register_expires = 600;
        t.register_retry = Duration::from_secs(5);
        t.register_attempts = 2;
    });
    h.advance(Duration::from_millis(1));
    let r = registers(&mut h);
    assert_eq!(r.len(), 1);
    assert!(r[0].header("Authorization").is_none());
    assert!(
        r[0].header("Contact").unwrap().contains("sip:4830001111@"),
        "the DID is our contact user"
    );
    h.rx_msg("127.0.0.10:5060", challenge_for(&r[0], "n1"));
    let r2 = registers(&mut h);
    assert_eq!(r2.len(), 1);
    let auth = r2[0].header("Authorization").expect("credentials");
    assert!(auth.contains("username=\"acct\""));
    assert!(auth.contains("nonce=\"n1\""));
    assert_eq!(r2[0].call_id(), r[0].call_id(), "same registration Call-ID");
    assert!(r2[0].cseq().seq > r[0].cseq().seq);
    // the digest is right: check it as a registrar would
    let creds = strowger_sip::digest::Credentials::parse(auth).unwrap();
    let ch = "Digest realm=\"prov\", nonce=\"n1\", qop=\"auth\", algorithm=MD5";
    let expected = strowger_sip::digest::answer(
        &strowger_sip::digest::Challenge::parse(ch).unwrap(),
        "REGISTER",
        &creds.uri,
        "acct",
        "s3cret",
        creds.cnonce.as_deref(),
        creds.nc.unwrap(),
    );
    let want = strowger_sip::digest::Credentials::parse(&expected).unwrap();
    assert_eq!(creds.response, want.response);
    // 200 with a shorter grant: refresh before it runs out
    let ok = strowger_sip::ResponseBuilder::new(&r2[0], 200)
        .to_tag("reg")
        .header("Expires", "60")
        .build();
    h.rx_msg("127.0.0.10:5060", ok);
    assert_eq!(
        h.core.trunk_view().read()[1].registration,
        Some(RegStatus::Registered)
    );
    h.advance(Duration::from_secs(47));
    assert!(registers(&mut h).is_empty(), "not yet");
    h.advance(Duration::from_secs(2));
    let r3 = registers(&mut h);
    assert_eq!(r3.len(), 1, "refreshed at 80 % of the grant");
    // now the secret is refused: challenge, answer, a stale challenge is
    // answered once more, a plain challenge to credentials = failure
    h.rx_msg("127.0.0.10:5060", challenge_for(&r3[0], "n2"));
    let r4 = registers(&mut h);
    let stale = strowger_sip::ResponseBuilder::new(&r4[0], 401)
        .to_tag("reg")
        .header(
            "WWW-Authenticate",
            "Digest realm=\"prov\", nonce=\"n3\", qop=\"auth\", algorithm=MD5, stale=true",
        )
        .build();
    h.rx_msg("127.0.0.10:5060", stale);
    let r5 = registers(&mut h);
    assert_eq!(r5.len(), 1, "a stale nonce gets one more round");
    h.rx_msg("127.0.0.10:5060", challenge_for(&r5[0], "n4"));
    assert!(registers(&mut h).is_empty());
    assert_eq!(
        h.core.trunk_view().read()[1].registration,
        Some(RegStatus::Unregistered)
    );
    // second attempt after register_retry, also refused: give up
    h.advance(Duration::from_secs(5));
    let r6 = registers(&mut h);
    assert_eq!(r6.len(), 1, "retry after register_retry");
    h.rx_msg(
        "127.0.0.10:5060",
        strowger_sip::ResponseBuilder::new(&r6[0], 403)
            .to_tag("x")
            .build(),
    );
    assert!(matches!(
        h.core.trunk_view().read()[1].registration,
        Some(RegStatus::Failed(_))
    ));
    h.advance(Duration::from_secs(60));
    assert!(registers(&mut h).is_empty(), "gave up");
}

#[test]
fn brute_force_ban_and_scanner_drop() {
    let mut h = H::with(|c| {
        c.protection.scanner = Some(regex_lite::Regex::new("(?i)friendly-scanner").unwrap());
    });
    h.rx(PHONE, &reg_with_auth("1001", 1, "z9hG4bKb0", None));
    h.authorize_default();
    let r = h.take_sent().pop().unwrap().1;
    let ch = r.www_authenticate().next().unwrap().to_string();
    let c = strowger_sip::digest::Challenge::parse(&ch).unwrap();
    for i in 0..3 {
        let a = strowger_sip::digest::answer(
            &c,
            "REGISTER",
            "sip:test.local",
            "1001",
            "bad",
            None,
            i + 1,
        );
        h.rx(
            PHONE,
            &reg_with_auth("1001", 2 + i, &format!("z9hG4bKb{}", i + 1), Some(&a)),
        );
        h.authorize_default();
        assert_eq!(h.take_sent().pop().unwrap().1.status(), Some(403));
    }
    // banned: even good credentials get no answer
    let a =
        strowger_sip::digest::answer(&c, "REGISTER", "sip:test.local", "1001", "pw1001", None, 9);
    h.rx(PHONE, &reg_with_auth("1001", 9, "z9hG4bKb9", Some(&a)));
    h.authorize_default();
    assert!(h.take_sent().is_empty(), "banned source is ignored");
    // another address is not affected
    h.rx(
        "127.0.0.2:7001",
        &reg_with_auth("1001", 1, "z9hG4bKo1", None),
    );
    h.authorize_default();
    assert_eq!(h.take_sent().pop().unwrap().1.status(), Some(401));
    // the ban ends
    h.advance(Duration::from_secs(301));
    h.take_sent();
    h.rx(PHONE, &reg_with_auth("1001", 10, "z9hG4bKb10", None));
    h.authorize_default();
    assert_eq!(h.take_sent().pop().unwrap().1.status(), Some(401));
    // scanners are dropped silently
    let scan = "OPTIONS sip:100@test.local SIP/2.0
Via: SIP/2.0/UDP 127.0.0.3:5070;branch=z9hG4bKscan
From: <sip:100@x>;tag=s
To: <sip:100@test.local>
Call-ID: scan-1
CSeq: 1 OPTIONS
User-Agent: friendly-scanner
Content-Length: 0

";
    h.rx("127.0.0.3:5070", scan);
    assert!(h.take_sent().is_empty());
    // each drop is counted on /metrics
    let text = switch_metrics_text(&h);
    for line in [
        "strowger_protection_bans_total 1\n",
        "strowger_protection_dropped_total{reason=\"banned\"} 1\n",
        "strowger_protection_dropped_total{reason=\"scanner\"} 1\n",
        "strowger_protection_dropped_total{reason=\"rate_limit\"} 0\n",
    ] {
        assert!(text.contains(line), "no `{}` in:\n{text}", line.trim());
    }
}

/// A malformed request that the parser answers with 400 (Content-Length
/// beyond the body).
const MALFORMED: &str = "INVITE sip:x@y SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:7001;branch=z9hG4bKmal
From: <sip:a@b>;tag=1
To: <sip:c@d>
Call-ID: bad
CSeq: 1 INVITE
Content-Length: 500

";

/// 1001's answer (qop=auth, cnonce "cn") to challenge `c`.
fn answer_1001(c: &strowger_sip::digest::Challenge<'_>, pw: &str, nc: u32) -> String {
    strowger_sip::digest::answer(c, "REGISTER", "sip:test.local", "1001", pw, Some("cn"), nc)
}

fn our_challenge(h: &mut H, from: &str, branch: &str) -> String {
    h.rx(from, &reg_with_auth("1001", 1, branch, None));
    h.authorize_default();
    let r = h.take_sent().pop().unwrap().1;
    assert_eq!(r.status(), Some(401));
    r.www_authenticate().next().unwrap().to_string()
}

#[test]
fn a_ban_means_silence_even_for_malformed_requests() {
    let mut h = H::new();
    // before the ban, malformed gets its 400
    h.rx(PHONE, MALFORMED);
    assert_eq!(h.take_sent().pop().unwrap().1.status(), Some(400));
    let ch = our_challenge(&mut h, PHONE, "z9hG4bKs0");
    let c = strowger_sip::digest::Challenge::parse(&ch).unwrap();
    for i in 0..3 {
        let a = answer_1001(&c, "bad", i + 1);
        h.rx(
            PHONE,
            &reg_with_auth("1001", 2 + i, &format!("z9hG4bKs{}", i + 1), Some(&a)),
        );
        h.authorize_default();
        assert_eq!(h.take_sent().pop().unwrap().1.status(), Some(403));
    }
    h.rx(PHONE, MALFORMED);
    assert!(
        h.take_sent().is_empty(),
        "a banned source got an answer to a malformed request"
    );
}

#[test]
fn spoofed_failures_over_a_nonce_issued_elsewhere_do_not_ban_the_victim() {
    let mut h = H::new();
    let attacker = "127.0.0.66:5060";
    // the attacker gets a nonce at its own address...
    let ch = our_challenge(&mut h, attacker, "z9hG4bKa0");
    let c = strowger_sip::digest::Challenge::parse(&ch).unwrap();
    // ...and sends wrong credentials with the victim's source address
    for i in 0..6 {
        let a = answer_1001(&c, "guess", i + 1);
        h.rx(
            PHONE,
            &reg_with_auth("1001", 2 + i, &format!("z9hG4bKa{}", i + 1), Some(&a)),
        );
        h.authorize_default();
        // a nonce we did not give this address: challenged afresh
        assert_eq!(h.take_sent().pop().unwrap().1.status(), Some(401));
    }
    assert_eq!(h.core.trunks.protection.bans, 0);
    // the victim registers normally
    let ch = our_challenge(&mut h, PHONE, "z9hG4bKv0");
    let c = strowger_sip::digest::Challenge::parse(&ch).unwrap();
    let a = answer_1001(&c, "pw1001", 1);
    h.rx(PHONE, &reg_with_auth("1001", 20, "z9hG4bKv1", Some(&a)));
    h.authorize_default();
    assert_eq!(h.take_sent().pop().unwrap().1.status(), Some(200));
}

fn no_qop_answer(ch: &str, pw: &str) -> String {
    let mut c = strowger_sip::digest::Challenge::parse(ch).unwrap();
    c.qop.clear();
    strowger_sip::digest::answer(&c, "REGISTER", "sip:test.local", "1001", pw, None, 1)
}

#[test]
fn digest_without_qop_is_refused_by_default() {
    let mut h = H::new();
    let ch = our_challenge(&mut h, PHONE, "z9hG4bKq0");
    let a = no_qop_answer(&ch, "pw1001");
    h.rx(PHONE, &reg_with_auth("1001", 2, "z9hG4bKq1", Some(&a)));
    h.authorize_default();
    assert_eq!(h.take_sent().pop().unwrap().1.status(), Some(403));
    assert!(h.core.location.read().is_empty());
}

#[test]
fn digest_without_qop_when_allowed_is_one_use_from_one_address() {
    let mut h = H::with(|c| c.allow_no_qop = true);
    let ch = our_challenge(&mut h, PHONE, "z9hG4bKn0");
    let a = no_qop_answer(&ch, "pw1001");
    h.rx(PHONE, &reg_with_auth("1001", 2, "z9hG4bKn1", Some(&a)));
    h.authorize_default();
    assert_eq!(h.take_sent().pop().unwrap().1.status(), Some(200));
    // replayed from another address (the attacker's contact), and again
    // from the same one: neither is accepted
    for (i, from) in ["127.0.0.66:5060", "127.0.0.67:5060", PHONE]
        .into_iter()
        .enumerate()
    {
        let replay = reg_with_auth(
            "1001",
            3 + i as u32,
            &format!("z9hG4bKn{}", 2 + i),
            Some(&a),
        )
        .replace(
            "Contact: <sip:1001@127.0.0.1:7001>",
            "Contact: <sip:1001@127.0.0.66:5060>",
        );
        h.rx(from, &replay);
        h.authorize_default();
        let st = h.take_sent().pop().unwrap().1.status();
        assert_eq!(st, Some(401), "replay from {from}");
    }
    let bound: Vec<String> = h
        .core
        .location
        .read()
        .iter()
        .flat_map(|(_, v)| v.iter().map(|b| b.contact.clone()))
        .collect();
    assert!(
        !bound.iter().any(|c| c.contains("127.0.0.66")),
        "the replay bound the attacker's contact: {bound:?}"
    );
}

#[test]
fn trunk_challenge_on_invite_is_answered_once_with_its_credentials() {
    let mut h = H::with(|c| {
        c.trunks[1].user = "acct".into();
        c.trunks[1].secret = Some("s3cret".into());
    });
    new_call(&mut h, 1);
    plan_to(
        &mut h,
        vec![attempt(Dest::Trunk("backup".into()))],
        vec![],
        true,
    );
    let inv = invites(&h.take_sent());
    assert_eq!(inv.len(), 1);
    let ch = strowger_sip::ResponseBuilder::new(&inv[0].1, 407)
        .to_tag("p")
        .header(
            "Proxy-Authenticate",
            "Digest realm=\"prov\", nonce=\"abc\", qop=\"auth\", algorithm=MD5",
        )
        .build();
    h.rx_msg("127.0.0.10:5060", ch.clone());
    let s = h.take_sent();
    let ack = s
        .iter()
        .find(|(_, m)| m.method() == Some(&strowger_sip::Method::Ack))
        .expect("ACK for the 407");
    assert_eq!(ack.1.cseq().seq, 1);
    let again = invites(&s);
    assert_eq!(again.len(), 1, "INVITE sent again with credentials");
    let m = &again[0].1;
    assert_eq!(m.call_id(), inv[0].1.call_id());
    assert_eq!(m.cseq().seq, 2);
    assert_ne!(m.top_via().branch(), inv[0].1.top_via().branch());
    let auth = m.header("Proxy-Authorization").expect("credentials");
    assert!(auth.contains("username=\"acct\"") && auth.contains("nonce=\"abc\""));
    assert!(
        s.iter().all(|(_, m)| m.status().is_none_or(|c| c < 300)),
        "the caller sees no failure"
    );
    // answered: the ACK carries CSeq 2
    h.rx_msg("127.0.0.10:5060", answer(m, 200, "p", true));
    h.take_sent();
    // a second challenge for the same leg is the end (wrong credentials)
    new_call(&mut h, 2);
    plan_to(
        &mut h,
        vec![attempt(Dest::Trunk("backup".into()))],
        vec![],
        true,
    );
    let inv = invites(&h.take_sent());
    let ch = |m: &Message, n: &str| {
        strowger_sip::ResponseBuilder::new(m, 401)
            .to_tag("q")
            .header(
                "WWW-Authenticate",
                &format!("Digest realm=\"prov\", nonce=\"{n}\""),
            )
            .build()
    };
    h.rx_msg("127.0.0.10:5060", ch(&inv[0].1, "n1"));
    let inv2 = invites(&h.take_sent());
    h.rx_msg("127.0.0.10:5060", ch(&inv2[0].1, "n2"));
    let inv3 = invites(&h.take_sent());
    h.rx_msg("127.0.0.10:5060", ch(&inv3[0].1, "n3"));
    let s = h.take_sent();
    assert!(invites(&s).is_empty(), "no third answer");
    let fin = s
        .iter()
        .find(|(_, m)| m.status().is_some())
        .expect("final to A");
    assert_eq!(
        fin.1.status(),
        Some(403),
        "a far-end challenge never reaches the caller"
    );
}

#[test]
fn silent_proxy_falls_back_to_the_next_without_a_route_retry() {
    let p2: SocketAddr = "127.0.0.12:5060".parse().unwrap();
    let mut h = H::with(|c| {
        c.trunks[1].proxies = vec!["127.0.0.10:5060".parse().unwrap(), p2];
        c.trunks[1].proxy_timeout = Duration::from_secs(2);
    });
    new_call(&mut h, 1);
    plan_to(
        &mut h,
        vec![attempt(Dest::Trunk("backup".into()))],
        vec![],
        true,
    );
    let first = invites(&h.take_sent());
    assert_eq!(first[0].0, "127.0.0.10:5060".parse().unwrap());
    h.advance(Duration::from_millis(2001));
    let s = h.take_sent();
    let second: Vec<_> = invites(&s).into_iter().filter(|(a, _)| *a == p2).collect();
    assert_eq!(second.len(), 1, "INVITE to the second proxy");
    assert_eq!(second[0].1.call_id(), first[0].1.call_id());
    assert_eq!(second[0].1.request_uri_str(), first[0].1.request_uri_str());
    assert!(second[0].1.cseq().seq > first[0].1.cseq().seq);
    // the second proxy answers: the call completes there
    h.rx_msg(&p2.to_string(), answer(&second[0].1, 200, "ok", true));
    let s = h.take_sent();
    assert!(
        s.iter().any(|(_, m)| m.status() == Some(200)),
        "200 relayed to the caller"
    );
    // requests from either proxy are the trunk's (the backup trunk is
    // outbound-only here, so check the carrier trust rule is untouched)
    assert!(
        h.core
            .trunk_index_by_source(h.now, TRUNK.parse().unwrap())
            .is_some()
    );
}

/// The caller's INVITE (trusted trunk) with extra header lines.
fn invite_with(call_id: &str, extra: &str) -> String {
    invite("5511", "999", call_id, &format!("z9hG4bK{call_id}"), TRUNK).replacen(
        "CSeq: 1 INVITE\n",
        &format!("CSeq: 1 INVITE\n{extra}"),
        1,
    )
}

/// Answers the B leg's INVITE with 200 (+ `extra` headers) and ACKs the
/// caller's side; returns (B INVITE, 200 sent to A).
fn answer_and_ack(h: &mut H, call_id: &str, extra: &[(&str, &str)]) -> (Message, Message) {
    let inv = invites(&h.take_sent()).remove(0);
    let mut b = strowger_sip::ResponseBuilder::new(&inv.1, 200)
        .to_tag("b1")
        .contact("sip:callee@127.0.0.10:5060");
    for (n, v) in extra {
        b = b.header(n, v);
    }
    h.rx_msg(
        &inv.0.to_string(),
        b.body("application/sdp", b"v=0\r\nm=audio 5000 RTP/AVP 0\r\n")
            .build(),
    );
    let ok = h
        .take_sent()
        .into_iter()
        .find(|(_, m)| m.status() == Some(200))
        .expect("200 to A")
        .1;
    let a_tag = ok.to_tag().unwrap().to_string();
    h.rx(
        TRUNK,
        &format!(
            "ACK sip:strowger@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP {TRUNK};branch=z9hG4bKack{call_id}
Max-Forwards: 70
From: \"Alice\" <sip:5511@carrier.example>;tag=a1
To: <sip:999@test.local>;tag={a_tag}
Call-ID: {call_id}
CSeq: 1 ACK
Content-Length: 0

"
        ),
    );
    h.take_sent();
    (inv.1, ok)
}

fn byes(sent: &[(Target, Message)]) -> Vec<String> {
    sent.iter()
        .filter(|(_, m)| m.method() == Some(&strowger_sip::Method::Bye))
        .map(|(_, m)| m.call_id().to_string())
        .collect()
}

fn cdr_cause(h: &mut H) -> Option<String> {
    h.take_actions().into_iter().find_map(|a| match a {
        Action::Cdr(c) => Some(c.cause.clone()),
        _ => None,
    })
}

#[test]
fn session_timer_we_refresh_the_trunk_leg_and_end_the_call_when_refused() {
    let mut h = H::with(|c| c.trunks[1].session_expires = Some(Duration::from_secs(120)));
    h.rx(TRUNK, &invite_with("ST-1", ""));
    h.take_sent();
    plan_to(
        &mut h,
        vec![attempt(Dest::Trunk("backup".into()))],
        vec![],
        true,
    );
    let sent = h.take_sent();
    let inv = invites(&sent);
    assert_eq!(
        inv[0].1.header("Session-Expires"),
        Some("120;refresher=uac")
    );
    h.sent = sent;
    let (b_inv, ok) = answer_and_ack(
        &mut h,
        "ST-1",
        &[
            ("Session-Expires", "120;refresher=uac"),
            ("Require", "timer"),
        ],
    );
    assert!(
        ok.header("Session-Expires").is_none(),
        "the caller asked for no timer"
    );
    h.advance(Duration::from_secs(59));
    assert!(h.take_sent().is_empty());
    h.advance(Duration::from_secs(2));
    let s = h.take_sent();
    let upd: Vec<_> = s
        .iter()
        .filter(|(_, m)| m.method() == Some(&strowger_sip::Method::Update))
        .collect();
    assert_eq!(upd.len(), 1, "refresh at half the interval");
    assert_eq!(upd[0].1.call_id(), b_inv.call_id());
    assert_eq!(
        upd[0].1.header("Session-Expires"),
        Some("120;refresher=uac")
    );
    h.rx_msg("127.0.0.10:5060", answer(&upd[0].1, 200, "b1", false));
    h.advance(Duration::from_secs(61));
    let s = h.take_sent();
    let upd2 = s
        .iter()
        .find(|(_, m)| m.method() == Some(&strowger_sip::Method::Update))
        .expect("second refresh");
    assert!(upd2.1.cseq().seq > upd[0].1.cseq().seq);
    // the trunk refuses the refresh: the session is over
    h.take_actions();
    h.rx_msg("127.0.0.10:5060", answer(&upd2.1, 481, "b1", false));
    let b = byes(&h.take_sent());
    assert!(b.contains(&"ST-1".to_string()), "BYE to the caller: {b:?}");
    assert_eq!(cdr_cause(&mut h).as_deref(), Some("session-timer"));
}

#[test]
fn session_timer_the_trunk_refreshes_or_the_call_ends() {
    let mut h = H::with(|c| c.trunks[1].session_expires = Some(Duration::from_secs(120)));
    h.rx(TRUNK, &invite_with("ST-2", ""));
    h.take_sent();
    plan_to(
        &mut h,
        vec![attempt(Dest::Trunk("backup".into()))],
        vec![],
        true,
    );
    let (b_inv, _) = answer_and_ack(&mut h, "ST-2", &[("Session-Expires", "120;refresher=uas")]);
    // the trunk refreshes at 60 s with an UPDATE: the expiry moves
    h.advance(Duration::from_secs(60));
    let b_to = b_inv.from_tag().unwrap().to_string();
    let upd = format!(
        "UPDATE sip:strowger@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.10:5060;branch=z9hG4bKupd1
Max-Forwards: 70
From: <sip:999@127.0.0.10>;tag=b1
To: <sip:1001@test.local>;tag={b_to}
Call-ID: {}
CSeq: 5 UPDATE
Contact: <sip:callee@127.0.0.10:5060>
Session-Expires: 120;refresher=uas
Content-Length: 0

",
        b_inv.call_id()
    );
    h.rx("127.0.0.10:5060", &upd);
    h.take_sent();
    // 88 s after the refresh (120 - 32) without another: BYE both sides
    h.advance(Duration::from_secs(87));
    assert!(byes(&h.take_sent()).is_empty(), "refreshed: still up");
    h.take_actions();
    h.advance(Duration::from_secs(2));
    let b = byes(&h.take_sent());
    assert_eq!(b.len(), 2, "{b:?}");
    assert_eq!(cdr_cause(&mut h).as_deref(), Some("session-timer"));
}

#[test]
fn session_timer_asked_by_the_caller_is_accepted_and_watched() {
    let mut h = H::new();
    h.rx(
        TRUNK,
        &invite_with("ST-3", "Supported: timer\nSession-Expires: 90\n"),
    );
    h.take_sent();
    plan_to(
        &mut h,
        vec![attempt(Dest::Trunk("backup".into()))],
        vec![],
        true,
    );
    let (b_inv, ok) = answer_and_ack(&mut h, "ST-3", &[]);
    assert!(
        b_inv.header("Session-Expires").is_none(),
        "trunk timer off by default here"
    );
    assert_eq!(ok.header("Session-Expires"), Some("90;refresher=uac"));
    assert_eq!(ok.header("Require"), Some("timer"));
    h.take_actions();
    h.advance(Duration::from_secs(59));
    assert!(byes(&h.take_sent()).is_empty());
    h.advance(Duration::from_secs(2));
    assert_eq!(
        byes(&h.take_sent()).len(),
        2,
        "no refresh from the caller within 90 - 30 s"
    );
    assert_eq!(cdr_cause(&mut h).as_deref(), Some("session-timer"));
}

#[test]
fn replacing_trunks_keeps_state_of_kept_ones_and_starts_new_ones() {
    let mut h = H::with(|c| c.trunks[1].qualify = Some(Duration::from_secs(5)));
    h.advance(Duration::from_millis(1));
    h.take_sent();
    // backup silent: down
    h.advance(Duration::from_millis(2100));
    assert!(!h.core.trunk_view().read()[1].up);

    // carrier removed, backup moves to index 0 (same settings), third is new
    let backup = h.core.cfg.trunks[1].clone();
    let mut third = TrunkInfo::new(
        "third",
        "127.0.0.11",
        Some(THIRD.parse().unwrap()),
        Transport::Udp,
    );
    third.qualify = Some(Duration::from_secs(5));
    let groups = vec![GroupInfo {
        name: "g".into(),
        algorithm: GroupAlgorithm::Calls,
        force_proportional: false,
        members: vec![(1, 1)],
    }];
    let now = h.now;
    h.core.replace_trunks(now, vec![backup, third], groups);
    let view = h.core.trunk_view().read().clone();
    assert_eq!(view.len(), 2);
    assert_eq!(view[0].name, "backup");
    assert!(!view[0].up, "run-time state kept");
    // the new trunk is qualified at once, the kept one on its own schedule
    h.advance(Duration::from_millis(1));
    let opts: Vec<SocketAddr> = h
        .take_sent()
        .into_iter()
        .filter(|(_, m)| m.method() == Some(&strowger_sip::Method::Options))
        .map(|(t, _)| t.addr())
        .collect();
    // (the backup's may be retransmissions of its unanswered OPTIONS)
    let third: SocketAddr = THIRD.parse().unwrap();
    assert_eq!(opts.iter().filter(|a| **a == third).count(), 1, "{opts:?}");
    h.advance(Duration::from_secs(3));
    let opt = h
        .take_sent()
        .into_iter()
        .find(|(t, m)| {
            m.method() == Some(&strowger_sip::Method::Options)
                && t.addr() == "127.0.0.10:5060".parse().unwrap()
        })
        .expect("backup still qualified (timer re-indexed)");
    h.rx_msg("127.0.0.10:5060", answer(&opt.1, 200, "q", false));
    assert!(h.core.trunk_view().read()[0].up);
    assert_eq!(h.core.cfg.groups[0].members, [(1, 1)]);

    // the removed trunk's address is no longer trusted: challenged
    h.take_actions();
    h.rx(TRUNK, &invite("5511", "999", "R-1", "z9hG4bKr1", TRUNK));
    h.authorize_default();
    let sent = h.take_sent();
    assert!(
        sent.iter().any(|(_, m)| m.status() == Some(407)),
        "{:?}",
        sent.iter().map(|(_, m)| m.status()).collect::<Vec<_>>()
    );
}

#[test]
fn force_proportional_never_exceeds_a_share_even_on_retry() {
    let mut h = with_group(GroupAlgorithm::Calls);
    h.core.cfg.groups[0].force_proportional = true;
    // 2/1/0: the first call goes to carrier; on 503 the retry may use
    // backup (still below its third) but never the weight-0 member
    new_call(&mut h, 1);
    plan_to(
        &mut h,
        vec![attempt(Dest::Group("g".into()))],
        vec![Cause::Status(503)],
        true,
    );
    let first = invites(&h.take_sent());
    assert_eq!(first[0].0, TRUNK.parse().unwrap());
    h.rx_msg(TRUNK, answer(&first[0].1, 503, "x", false));
    let s = h.take_sent();
    let second = invites(&s);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].0, "127.0.0.10:5060".parse().unwrap());
    h.rx_msg("127.0.0.10:5060", answer(&second[0].1, 503, "y", false));
    let s = h.take_sent();
    assert!(invites(&s).is_empty(), "weight 0 is never used when forced");
    let fin = s
        .iter()
        .find(|(_, m)| m.status().is_some_and(|c| c >= 300))
        .unwrap();
    assert_eq!(fin.1.status(), Some(503));
    // and the split stays 2:1 over many calls (within one call: the two
    // calls above count too)
    let mut count: HashMap<SocketAddr, u32> = HashMap::new();
    for n in 10..40 {
        new_call(&mut h, n);
        plan_to(&mut h, vec![attempt(Dest::Group("g".into()))], vec![], true);
        for (a, _) in invites(&h.take_sent()) {
            *count.entry(a).or_default() += 1;
        }
    }
    let a = count.get(&TRUNK.parse().unwrap()).copied().unwrap_or(0);
    let b = count
        .get(&"127.0.0.10:5060".parse().unwrap())
        .copied()
        .unwrap_or(0);
    assert_eq!(a + b, 30, "{count:?}");
    assert!((20..=21).contains(&a), "{count:?}");
    assert_eq!(count.get(&THIRD.parse().unwrap()), None);
}
