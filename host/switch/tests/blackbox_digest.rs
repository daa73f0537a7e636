//! Black-box digest attacks on the real `strowger` binary over UDP on
//! loopback: a response replayed from another address, failures sent in a
//! victim's name over a nonce issued elsewhere, and a banned address
//! sending malformed requests.

mod common;

use std::time::Duration;

use common::*;
use strowger_testkit::sip::token;

fn switch_with_bans() -> Switch {
    Switch::start(&format!(
        "{BASE}{}[protection]\nban_failures = 3\nban_window_s = 60\nban_time_s = 300\n\n",
        users_toml(3000, 10)
    ))
}

#[test]
fn a_response_replayed_from_another_address_binds_nothing() {
    let sw = switch_with_bans();
    let mut victim = SipClient::new(unique_loopback(), sw.addr());
    let mut attacker = SipClient::new(unique_loopback(), sw.addr());
    let contact = format!("sip:3001@{}", victim.local);
    let first = victim
        .register_once("3001", DOMAIN, Some(&contact), Some(600), None, T)
        .unwrap();
    assert_eq!(first.status(), 401);
    let ch = first.challenges().into_iter().next().expect("a challenge");
    let auth = ch.authorization(
        "3001",
        "pw3001",
        "REGISTER",
        &format!("sip:{DOMAIN}"),
        1,
        &token(),
    );
    // the attacker replays the victim's (captured) Authorization first,
    // with its own contact
    let evil = format!("sip:3001@{}", attacker.local);
    let r = attacker
        .register_once("3001", DOMAIN, Some(&evil), Some(600), Some(&auth), T)
        .unwrap();
    assert_ne!(r.status(), 200, "replay from another address: {r:?}");
    assert!(
        !fetch_bindings(&sw, "3001", "pw3001")
            .iter()
            .any(|c| c.contains(&attacker.local.to_string())),
        "the attacker's contact is bound"
    );
    // the victim's own use of it still works
    let ok = victim
        .register_once("3001", DOMAIN, Some(&contact), Some(600), Some(&auth), T)
        .unwrap();
    assert_eq!(ok.status(), 200, "{ok:?}");
}

#[test]
fn failures_sent_in_a_victims_name_do_not_ban_the_victim() {
    let sw = switch_with_bans();
    let victim_ip = unique_loopback();
    let mut attacker = SipClient::new(unique_loopback(), sw.addr());
    let first = attacker
        .register_once("3002", DOMAIN, None, None, None, T)
        .unwrap();
    let ch = first.challenges().into_iter().next().expect("a challenge");
    // wrong passwords over the attacker's nonce, from the victim's address
    // (on loopback the "spoofed" source is simply bound)
    let mut spoof = SipClient::new(victim_ip, sw.addr());
    for nc in 1..=6 {
        let auth = ch.authorization(
            "3002",
            "guess",
            "REGISTER",
            &format!("sip:{DOMAIN}"),
            nc,
            &token(),
        );
        let r = spoof.register_once("3002", DOMAIN, None, None, Some(&auth), T);
        // answered with a fresh challenge each time, never banned
        assert_eq!(r.map(|m| m.status()), Some(401), "attempt {nc}");
    }
    drop(spoof);
    let mut victim = SipClient::new(victim_ip, sw.addr());
    let contact = format!("sip:3002@{}", victim.local);
    let ok = victim.register(
        "3002",
        "pw3002",
        DOMAIN,
        Some(&contact),
        Some(600),
        Algorithm::Md5,
        T,
    );
    assert_eq!(ok.response.status(), 200, "{:?}", ok.response);
}

#[test]
fn a_banned_address_gets_silence_even_for_malformed_requests() {
    let sw = switch_with_bans();
    let mut c = SipClient::new(unique_loopback(), sw.addr());
    let malformed = |c: &SipClient, n: u32| {
        let local = c.local;
        format!(
            "INVITE sip:x@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKmal{n}\r\n\
             From: <sip:a@{DOMAIN}>;tag=m{n}\r\nTo: <sip:b@{DOMAIN}>\r\nCall-ID: mal-{n}\r\n\
             CSeq: 1 INVITE\r\nContent-Length: 500\r\n\r\n"
        )
    };
    c.send_raw(malformed(&c, 1).as_bytes());
    let r = c.recv(T).expect("a 400 before any ban");
    assert_eq!(r.status(), 400, "{r:?}");
    for _ in 0..3 {
        let r = c.register(
            "3003",
            "wrong",
            DOMAIN,
            Some("sip:3003@127.0.0.1:9"),
            Some(600),
            Algorithm::Md5,
            T,
        );
        assert_eq!(r.response.status(), 403, "{:?}", r.response);
    }
    c.send_raw(malformed(&c, 2).as_bytes());
    let r = c.recv(Duration::from_secs(2));
    assert!(r.is_none(), "the banned address got an answer: {r:?}");
}
