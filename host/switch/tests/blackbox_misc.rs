//! Black-box: malformed input, restart persistence and CDRs, TCP, TLS.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::*;
use strowger_store::{CdrFilter, Store};

fn torture_cases(via: &str) -> Vec<(&'static str, Vec<u8>, &'static [u16])> {
    let hdrs = |extra: &str| {
        format!(
            "Via: SIP/2.0/UDP {via};branch=z9hG4bKtort{}\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: tort{}@x\r\nMax-Forwards: 70\r\n{extra}",
            rand_suffix(),
            rand_suffix()
        )
    };
    let req = |line: &str, extra: &str, body: &str| -> Vec<u8> {
        format!("{line}\r\n{}\r\n{body}", hdrs(extra)).into_bytes()
    };
    const BAD: &[u16] = &[400];
    vec![
        ("binary garbage", (0..300u32).map(|i| (i * 7 + 3) as u8).collect(), BAD),
        ("NUL bytes only", vec![0u8; 64], BAD),
        ("text without SIP", b"hello world\r\n\r\n".to_vec(), BAD),
        (
            "request line without version",
            req("OPTIONS sip:x@127.0.0.1", "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n", ""),
            BAD,
        ),
        (
            "unknown SIP version",
            req("OPTIONS sip:x@127.0.0.1 SIP/7.0", "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n", ""),
            &[400, 505],
        ),
        (
            "non-numeric CSeq",
            req("OPTIONS sip:x@127.0.0.1 SIP/2.0", "CSeq: abc OPTIONS\r\nContent-Length: 0\r\n", ""),
            BAD,
        ),
        (
            "CSeq method differs from request method",
            req("OPTIONS sip:x@127.0.0.1 SIP/2.0", "CSeq: 1 INVITE\r\nContent-Length: 0\r\n", ""),
            BAD,
        ),
        (
            "Content-Length larger than the datagram",
            req("OPTIONS sip:x@127.0.0.1 SIP/2.0", "CSeq: 1 OPTIONS\r\nContent-Length: 5000\r\n", "short"),
            BAD,
        ),
        (
            "negative Content-Length",
            req("OPTIONS sip:x@127.0.0.1 SIP/2.0", "CSeq: 1 OPTIONS\r\nContent-Length: -5\r\n", ""),
            BAD,
        ),
        (
            "two different Content-Length headers",
            req(
                "OPTIONS sip:x@127.0.0.1 SIP/2.0",
                "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\nContent-Length: 4\r\n",
                "abcd",
            ),
            BAD,
        ),
        (
            "missing Call-ID",
            format!(
                "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bKnocid\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            )
            .into_bytes(),
            BAD,
        ),
        (
            "missing From",
            format!(
                "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bKnofrom\r\nTo: <sip:b@x>\r\nCall-ID: nf@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            )
            .into_bytes(),
            BAD,
        ),
        (
            "missing Via (nowhere to answer)",
            b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: nv@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n".to_vec(),
            BAD,
        ),
        (
            "unescaped space in Request-URI",
            req("INVITE sip:user name@127.0.0.1 SIP/2.0", "CSeq: 1 INVITE\r\nContent-Length: 0\r\n", ""),
            &[400, 505],
        ),
        (
            "unknown URI scheme",
            req("INVITE xyz:foo@bar SIP/2.0", "CSeq: 1 INVITE\r\nContent-Length: 0\r\n", ""),
            &[400, 416],
        ),
        (
            "header line without colon",
            req("OPTIONS sip:x@127.0.0.1 SIP/2.0", "CSeq: 1 OPTIONS\r\nThis is not a header\r\nContent-Length: 0\r\n", ""),
            BAD,
        ),
        (
            "60 kB header value",
            req(
                "OPTIONS sip:x@127.0.0.1 SIP/2.0",
                &format!("CSeq: 1 OPTIONS\r\nSubject: {}\r\nContent-Length: 0\r\n", "a".repeat(60_000)),
                "",
            ),
            &[400, 413, 513],
        ),
        (
            "Via with a port out of range",
            b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:99999;branch=z9hG4bKbadport\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: bp@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n".to_vec(),
            BAD,
        ),
        (
            "stray response to no transaction",
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKstray\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: stray@x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
                .as_bytes()
                .to_vec(),
            &[],
        ),
        ("CRLF keep-alive", b"\r\n\r\n".to_vec(), &[]),
        ("empty datagram", Vec::new(), &[]),
    ]
}

fn rand_suffix() -> String {
    strowger_testkit::sip::token()
}

#[test]
fn malformed_messages_get_400_or_nothing_and_the_switch_survives() {
    let sw = Switch::start(BASE);
    let sock = UdpSocket::bind((unique_loopback(), 0)).unwrap();
    let via = sock.local_addr().unwrap().to_string();
    let mut problems = Vec::new();
    for (name, data, allowed) in torture_cases(&via) {
        sock.send_to(&data, sw.addr()).unwrap();
        // Collect what comes back for a while.
        sock.set_read_timeout(Some(Duration::from_millis(700)))
            .unwrap();
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            let m = strowger_testkit::SipMessage::parse(&buf[..n]);
            let status = m.as_ref().map(|m| m.status()).unwrap_or(0);
            if !allowed.contains(&status) {
                problems.push(format!(
                    "{name}: answered {status} (allowed {allowed:?} or nothing): {}",
                    String::from_utf8_lossy(&buf[..n.min(200)])
                ));
            }
        }
        assert!(
            sw.ping(Duration::from_secs(5)).is_some(),
            "switch stopped answering OPTIONS after `{name}`"
        );
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn registrations_survive_restart_and_cdrs_are_stored() {
    let callee = uas(scenario("uas.xml"), 1);
    let uac_ip = unique_loopback();
    let cfg = format!(
        "{BASE}{}{}{ROUTE_BINDING}",
        users_toml(3000, 2),
        trusted_trunk("sipp-uac", uac_ip)
    );
    let mut sw = Switch::builder(&cfg)
        .file("routes.json", routes_to_uri(callee.addr().unwrap()))
        .start();
    let mut c = SipClient::new(unique_loopback(), sw.addr());
    let contact = format!("sip:3000@{}", c.local);
    let r = c.register(
        "3000",
        "pw3000",
        DOMAIN,
        Some(&contact),
        Some(600),
        Algorithm::Sha256,
        T,
    );
    assert_eq!(r.response.status(), 200, "{:?}", r.response);
    uac(scenario("uac_bye.xml"), uac_ip, &sw, "5511333344444")
        .run()
        .assert_ok(1);
    callee.wait().assert_ok(1);

    sw.restart();
    let after = fetch_bindings(&sw, "3000", "pw3000");
    assert!(
        after.iter().any(|k| k.contains(&contact)),
        "registration lost across restart: {after:?}"
    );

    // CDR of the call, read from the store file after a clean stop.
    assert!(sw.stop().is_some(), "switch did not exit on SIGTERM");
    let store = Store::open(sw.store_path()).expect("open the switch's store");
    let cdrs = store
        .query_cdrs_blocking(&CdrFilter {
            number: Some("5511333344444".into()),
            ..CdrFilter::default()
        })
        .unwrap();
    assert_eq!(cdrs.len(), 1, "{cdrs:#?}");
    let cdr = &cdrs[0];
    assert_eq!(cdr.final_code, 200, "{cdr:#?}");
    assert!(cdr.answer_ms.is_some(), "{cdr:#?}");
    assert!(cdr.end_ms >= cdr.start_ms, "{cdr:#?}");
    assert_eq!(cdr.ingress_trunk.as_deref(), Some("sipp-uac"), "{cdr:#?}");
    assert_eq!(cdr.hangup_side.as_deref(), Some("caller"), "{cdr:#?}");
    assert!(!cdr.attempts.is_empty(), "{cdr:#?}");
}

#[test]
fn registration_and_call_over_tcp() {
    let callee = uas(scenario("uas.xml"), 1);
    let uac_ip = unique_loopback();
    let cfg = format!(
        "{BASE}{}{}{ROUTE_BINDING}",
        users_toml(4000, 2),
        trusted_trunk("sipp-uac", uac_ip)
    );
    let sw = Switch::builder(&cfg)
        .file("routes.json", routes_to_uri(callee.addr().unwrap()))
        .start();
    let reg_ip = unique_loopback();
    let reg_port = free_port(reg_ip);
    Sipp::scenario(scenario("register_auth.xml"))
        .local(reg_ip, Some(reg_port))
        .remote(sw.addr())
        .tcp()
        .users(&[("4000", "pw4000")])
        .key("domain", DOMAIN)
        .key("expires", "300")
        .calls(1)
        .trace_msg()
        .timeout(Duration::from_secs(30))
        .run()
        .assert_ok(1);
    let b = fetch_bindings(&sw, "4000", "pw4000");
    assert!(b.iter().any(|k| k.contains(&reg_ip.to_string())), "{b:?}");

    uac(scenario("uac_bye.xml"), uac_ip, &sw, "5511333344444")
        .tcp()
        .run()
        .assert_ok(1);
    callee.wait().assert_ok(1);
}

#[test]
fn registration_over_tls() {
    let sw = Switch::builder(&format!("{BASE}{}", users_toml(5000, 1)))
        .tls()
        .start();
    let cert = std::fs::read_to_string(sw.dir().join("cert.pem")).unwrap();
    let tls = sw.tls_addr().unwrap();
    // Debian's SIPp has no TLS: the testkit client speaks it (rustls).
    for alg in [Algorithm::Md5, Algorithm::Sha256] {
        let ip = unique_loopback();
        let mut c = SipClient::tls(ip, tls, &cert);
        let contact = format!("sip:5000@{};transport=tls", c.local);
        let out = c.register("5000", "pw5000", DOMAIN, Some(&contact), Some(300), alg, T);
        assert!(out.challenge.is_some(), "{alg:?}: not challenged");
        assert_eq!(out.response.status(), 200, "{alg:?}: {:?}", out.response);
        // The binding is the TLS flow's address (a TLS client's port is
        // ephemeral; replies must go back on the same connection).
        let b = fetch_bindings(&sw, "5000", "pw5000");
        assert!(b.iter().any(|k| k.contains(&ip.to_string())), "{b:?}");
        // A wrong password over TLS is refused too.
        let mut bad = SipClient::tls(unique_loopback(), tls, &cert);
        let out = bad.register("5000", "nope", DOMAIN, None, None, alg, T);
        assert!(
            matches!(out.response.status(), 401 | 403),
            "{alg:?} wrong password: {:?}",
            out.response
        );
    }
}

/// A request to the switch with `start` as its start line.
fn raw_request(start: &str, transport: &str, via: &str, cseq: &str) -> String {
    format!(
        "{start}\r\nVia: SIP/2.0/{transport} {via};branch=z9hG4bK{}\r\nMax-Forwards: 70\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: {}@x\r\nCSeq: 1 {cseq}\r\nContent-Length: 0\r\n\r\n",
        rand_suffix(),
        rand_suffix()
    )
}

/// Every status that comes back on `sock` until it stays quiet for 700 ms.
fn udp_answers(sock: &UdpSocket) -> Vec<u16> {
    sock.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut buf = vec![0u8; 65_536];
    let mut out = Vec::new();
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        out.push(strowger_testkit::SipMessage::parse(&buf[..n]).map_or(0, |m| m.status()));
    }
    out
}

/// A multi-byte UTF-8 character straddling byte 4 of the SIP-version token
/// (U+FEFF inside "SIP/2.0") once made the parser slice a &str inside a
/// character and panic: one datagram stopped all SIP. Sent over UDP and
/// TCP, in a request line and a status line; the switch must answer 400
/// (or nothing) and keep answering OPTIONS.
#[test]
fn multibyte_char_in_the_sip_version_does_not_stop_the_switch() {
    let sw = Switch::start(BASE);
    let sock = UdpSocket::bind((unique_loopback(), 0)).unwrap();
    let via = sock.local_addr().unwrap().to_string();
    let starts: [(&str, &str, &[u16]); 2] = [
        ("OPTIONS sip:x SI\u{feff}P/2.0", "OPTIONS", &[400]),
        ("SI\u{feff}P/2.0 200 OK", "OPTIONS", &[400, 0]),
    ];
    for (start, cseq, allowed) in starts {
        // UDP
        sock.send_to(raw_request(start, "UDP", &via, cseq).as_bytes(), sw.addr())
            .unwrap();
        let got = udp_answers(&sock);
        assert!(
            got.iter().all(|s| allowed.contains(s)) && got.len() <= 1,
            "UDP {start:?}: answered {got:?}"
        );
        if !allowed.contains(&0) {
            assert_eq!(got, allowed, "UDP {start:?}");
        }
        assert_eq!(
            sw.ping(T),
            Some(200),
            "switch stopped answering OPTIONS after {start:?} over UDP"
        );
        // TCP (a fresh connection; the answer comes back on it)
        let msg = raw_request(start, "TCP", "127.0.0.1:9", cseq);
        let got = strowger_testkit::sip::tcp_exchange(sw.addr(), &msg, Duration::from_secs(2))
            .map_or(0, |m| m.status());
        assert!(allowed.contains(&got), "TCP {start:?}: answered {got}");
        let ping = raw_request(
            &format!("OPTIONS sip:{} SIP/2.0", sw.addr()),
            "TCP",
            "127.0.0.1:9",
            "OPTIONS",
        );
        let after = strowger_testkit::sip::tcp_exchange(sw.addr(), &ping, T).map(|m| m.status());
        assert_eq!(
            after,
            Some(200),
            "switch stopped answering OPTIONS over TCP after {start:?}"
        );
        assert_eq!(sw.ping(T), Some(200), "after {start:?} over TCP");
    }
}

/// RFC 3261 §8.2.2.1: a Request-URI scheme the switch does not support gets
/// 416 Unsupported URI Scheme (it used to get 200 for OPTIONS).
#[test]
fn unknown_request_uri_scheme_gets_416() {
    let sw = Switch::start(BASE);
    let sock = UdpSocket::bind((unique_loopback(), 0)).unwrap();
    let via = sock.local_addr().unwrap().to_string();
    for (start, cseq) in [
        ("OPTIONS nobodyknowsthisscheme:x SIP/2.0", "OPTIONS"),
        ("INVITE urn:service:sos SIP/2.0", "INVITE"),
    ] {
        sock.send_to(raw_request(start, "UDP", &via, cseq).as_bytes(), sw.addr())
            .unwrap();
        assert_eq!(udp_answers(&sock), vec![416], "{start}");
    }
    // ACK gets no response at all.
    sock.send_to(
        raw_request("ACK nobodyknowsthisscheme:x SIP/2.0", "UDP", &via, "ACK").as_bytes(),
        sw.addr(),
    )
    .unwrap();
    assert_eq!(udp_answers(&sock), Vec::<u16>::new());
    assert_eq!(sw.ping(T), Some(200));
}
