//! Black-box trunk tests (issue 5): IP trust, qualify, call limits,
//! failover by cause, weighted groups, caller-id / Request-URI parameters
//! and two switches interconnected by IP trunks. Real SIPp peers on
//! distinct loopback addresses; routing by the real route-table plugin.
//! Registration-related trunk tests are in `blackbox_trunks_reg.rs`.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;

/// A SIPp trunk peer on a fresh loopback address, without a call limit
/// (answers OPTIONS and INVITEs with `trunk_uas_any.xml`); collect what it
/// received with [`RunningSipp::stop`].
fn peer(scenario_path: PathBuf) -> RunningSipp {
    let ip = unique_loopback();
    let port = free_port(ip);
    Sipp::scenario(scenario_path)
        .local(ip, Some(port))
        .trace_msg()
        .timeout(Duration::from_secs(150))
        .spawn()
}

/// Requests `method` received so far by a running SIPp (its message log).
fn received_so_far(s: &RunningSipp, method: &str) -> usize {
    let log = std::fs::read_to_string(s.dir().join("messages.log")).unwrap_or_default();
    count_requests(&log, method)
}

/// `[[trunks]]` towards `addr` plus `extra` TOML lines.
fn trunk(name: &str, addr: SocketAddr, extra: &str) -> String {
    format!(
        "[[trunks]]\nname = \"{name}\"\nhost = \"{}\"\nport = {}\n{extra}\n\n",
        addr.ip(),
        addr.port()
    )
}

/// Wait until `cond` holds (polling), at most `limit`.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

#[test]
fn ip_trunk_accepts_its_peer_and_challenges_other_addresses() {
    let callee = peer(scenario("trunk_uas_any.xml"));
    let carrier_ip = unique_loopback();
    let cfg = format!(
        "{BASE}{}{}{ROUTE_BINDING}",
        users_toml(1001, 1),
        trusted_trunk("carrier", carrier_ip)
    );
    let sw = Switch::builder(&cfg)
        .file("routes.json", routes_to_uri(callee.addr().unwrap()))
        .start();

    // An INVITE without credentials from another address is not routed.
    let mut stranger = SipClient::new(unique_loopback(), sw.addr());
    let status = invite_status(&mut stranger, "5511333344444");
    assert!(
        matches!(status, Some(401 | 403 | 407)),
        "an INVITE from an untrusted address got {status:?}, expected a challenge or 403"
    );

    // The trunk's peer is trusted: its call reaches the callee.
    let r = uac(scenario("uac_bye.xml"), carrier_ip, &sw, "5511333344444").run();
    r.assert_ok(1);
    let got = callee.stop();
    let invites = count_requests(&got.messages, "INVITE");
    assert_eq!(
        invites, 1,
        "the callee must see exactly the trusted peer's call:\n{}",
        got.messages
    );
    assert!(got.messages.contains("5511999990000"), "{}", got.messages);
}

#[test]
fn qualify_marks_a_silent_trunk_down_and_back_up_when_it_answers() {
    // "silent": a bound socket that reads nothing and answers nothing (no
    // ICMP either), so only qualify can tell it is dead.
    let silent_ip = unique_loopback();
    let silent_port = free_port(silent_ip);
    let silent_addr = SocketAddr::new(silent_ip, silent_port);
    let hole = UdpSocket::bind(silent_addr).unwrap();
    let good = peer(scenario("trunk_uas_any.xml"));
    let caller_ip = unique_loopback();
    let cfg = format!(
        "{BASE}{}{}{}{ROUTE_BINDING}",
        trusted_trunk("pbx", caller_ip),
        trunk("silent", silent_addr, "inbound = \"none\"\nqualify_s = 1"),
        trunk(
            "good",
            good.addr().unwrap(),
            "inbound = \"none\"\nqualify_s = 1"
        ),
    );
    let routes = r#"{"retry_on": ["unavailable", "503", "408"], "routes": [
        {"name": "silent-first", "priority": 1, "b": ["_X."], "destination": {"trunk": "silent"}},
        {"name": "good-second", "priority": 2, "b": ["_X."], "destination": {"trunk": "good"}}
    ]}"#;
    let sw = Switch::builder(&cfg).file("routes.json", routes).start();
    // qualify every 1 s, 2 s without answer -> down.
    std::thread::sleep(Duration::from_millis(4500));

    let t0 = Instant::now();
    let r = uac(scenario("uac_bye.xml"), caller_ip, &sw, "5511333344444").run();
    let elapsed = t0.elapsed();
    eprintln!("call with the first trunk down: {elapsed:?} (SIPp run included)");
    r.assert_ok(1);
    assert!(
        elapsed < Duration::from_secs(3),
        "the call waited for the silent trunk: {elapsed:?}"
    );
    assert!(
        wait_for(Duration::from_secs(2), || received_so_far(&good, "INVITE")
            == 1),
        "the good trunk did not get the call"
    );
    // What the silent trunk got: qualify OPTIONS, no INVITE.
    hole.set_nonblocking(true).unwrap();
    let (mut options, mut invites) = (0, 0);
    let mut buf = vec![0u8; 65_536];
    while let Ok((n, _)) = hole.recv_from(&mut buf) {
        let text = String::from_utf8_lossy(&buf[..n]);
        if text.starts_with("OPTIONS ") {
            options += 1;
        } else if text.starts_with("INVITE ") {
            invites += 1;
        }
    }
    assert!(options >= 2, "no qualify OPTIONS reached the silent trunk");
    assert_eq!(invites, 0, "a call was sent to the trunk marked down");

    // The silent address starts answering: it comes back up and gets the
    // calls again (it is the first route).
    drop(hole);
    let revived = Sipp::scenario(scenario("trunk_uas_any.xml"))
        .local(silent_ip, Some(silent_port))
        .trace_msg()
        .timeout(Duration::from_secs(60))
        .spawn();
    assert!(
        wait_for(Duration::from_secs(10), || received_so_far(
            &revived, "OPTIONS"
        ) >= 1),
        "no qualify OPTIONS after the trunk started answering"
    );
    std::thread::sleep(Duration::from_millis(1500));
    let r = uac(scenario("uac_bye.xml"), caller_ip, &sw, "5511333344445").run();
    r.assert_ok(1);
    std::thread::sleep(Duration::from_millis(300));
    let revived = revived.stop();
    assert_eq!(
        count_requests(&revived.messages, "INVITE"),
        1,
        "the trunk that answers again did not get the call:\n{}",
        revived.messages
    );
    assert_eq!(
        count_requests(&good.stop().messages, "INVITE"),
        1,
        "the second call went to the backup trunk"
    );
}

#[test]
fn outgoing_limit_refuses_the_third_call_and_incoming_zero_refuses_all() {
    let far = peer(scenario("trunk_uas_any.xml"));
    let caller_ip = unique_loopback();
    let noin_ip = unique_loopback();
    let cfg = format!(
        "{BASE}{}{}[[trunks]]\nname = \"noin\"\nhost = \"{noin_ip}\"\ninbound = \"ip\"\nmax_calls_in = 0\n\n{ROUTE_BINDING}",
        trusted_trunk("pbx", caller_ip),
        trunk(
            "limited",
            far.addr().unwrap(),
            "inbound = \"none\"\nmax_calls_out = 2"
        ),
    );
    let routes =
        r#"{"routes": [{"name": "out", "b": ["_X."], "destination": {"trunk": "limited"}}]}"#;
    let sw = Switch::builder(&cfg).file("routes.json", routes).start();

    // Two calls held for 4 s.
    let held = Sipp::scenario(scenario("uac_bye.xml"))
        .local(caller_ip, None)
        .remote(sw.addr())
        .service("5511333344444")
        .key("caller", "5511999990000")
        .arg("-d")
        .arg("4000")
        .calls(2)
        .rate(10)
        .trace_msg()
        .recv_timeout(Duration::from_secs(20))
        .timeout(Duration::from_secs(60))
        .spawn();
    assert!(
        wait_for(Duration::from_secs(10), || received_so_far(&far, "ACK")
            >= 2),
        "the two held calls were not both answered"
    );
    // The third concurrent call is refused with 503.
    uac(
        scenario_with("uac_reject.xml", &[("CODE", "503")]),
        caller_ip,
        &sw,
        "5511333344445",
    )
    .run()
    .assert_ok(1);
    // Inbound from a trunk with max_calls_in = 0: 503.
    uac(
        scenario_with("uac_reject.xml", &[("CODE", "503")]),
        noin_ip,
        &sw,
        "5511333344446",
    )
    .run()
    .assert_ok(1);
    held.wait().assert_ok(2);
    let got = far.stop();
    assert_eq!(
        count_requests(&got.messages, "INVITE"),
        2,
        "the trunk got more calls than its limit:\n{}",
        got.messages
    );
}

#[test]
fn failover_by_cause_503_retries_and_486_goes_back_to_the_caller() {
    let t1 = uas(
        scenario_with(
            "uas_reject.xml",
            &[("CODE", "503"), ("REASON", "Service Unavailable")],
        ),
        1,
    );
    let t2 = uas(scenario("uas.xml"), 1);
    let t3 = uas(
        scenario_with(
            "uas_reject.xml",
            &[("CODE", "486"), ("REASON", "Busy Here")],
        ),
        1,
    );
    let t4 = peer(scenario("trunk_uas_any.xml"));
    let caller_ip = unique_loopback();
    let cfg = format!(
        "{BASE}{}{}{}{}{}{ROUTE_BINDING}",
        trusted_trunk("pbx", caller_ip),
        trunk("t1", t1.addr().unwrap(), "inbound = \"none\""),
        trunk("t2", t2.addr().unwrap(), "inbound = \"none\""),
        trunk("t3", t3.addr().unwrap(), "inbound = \"none\""),
        trunk("t4", t4.addr().unwrap(), "inbound = \"none\""),
    );
    let routes = r#"{"routes": [
        {"name": "a1", "priority": 1, "b": ["_1X."], "destination": {"trunk": "t1"}, "retry_on": ["503"]},
        {"name": "a2", "priority": 2, "b": ["_1X."], "destination": {"trunk": "t2"}},
        {"name": "b1", "priority": 3, "b": ["_2X."], "destination": {"trunk": "t3"}, "retry_on": ["503"]},
        {"name": "b2", "priority": 4, "b": ["_2X."], "destination": {"trunk": "t4"}}
    ]}"#;
    let sw = Switch::builder(&cfg).file("routes.json", routes).start();

    // 503 is a retry cause: t2 answers, the caller never sees the 503.
    let r = uac(scenario("uac_bye.xml"), caller_ip, &sw, "15551000").run();
    r.assert_ok(1);
    assert!(
        !r.messages.contains("SIP/2.0 503"),
        "the caller saw the 503:\n{}",
        r.messages
    );
    t1.wait().assert_ok(1);
    t2.wait().assert_ok(1);

    // 486 is not: the caller gets it and t4 never sees the call.
    uac(
        scenario_with("uac_reject.xml", &[("CODE", "486")]),
        caller_ip,
        &sw,
        "25551000",
    )
    .run()
    .assert_ok(1);
    t3.wait().assert_ok(1);
    std::thread::sleep(Duration::from_millis(300));
    let got = t4.stop();
    assert_eq!(
        count_requests(&got.messages, "INVITE"),
        0,
        "the busy call was retried on t4:\n{}",
        got.messages
    );
}

#[test]
fn weighted_group_2_1_0_splits_300_calls_200_100_0() {
    let members = [
        peer(scenario("trunk_uas_any.xml")),
        peer(scenario("trunk_uas_any.xml")),
        peer(scenario("trunk_uas_any.xml")),
    ];
    let caller_ip = unique_loopback();
    let mut cfg = format!("{BASE}{}", trusted_trunk("pbx", caller_ip));
    for (name, m) in ["a", "b", "c"].iter().zip(&members) {
        cfg.push_str(&trunk(name, m.addr().unwrap(), "inbound = \"none\""));
    }
    cfg.push_str(
        "[[trunk_groups]]\nname = \"carriers\"\nalgorithm = \"calls\"\n\
         members = [{ trunk = \"a\", weight = 2 }, { trunk = \"b\", weight = 1 }, { trunk = \"c\", weight = 0 }]\n\n",
    );
    cfg.push_str(ROUTE_BINDING);
    let routes = r#"{"routes": [{"name": "grp", "b": ["_X."], "destination": {"trunk_group": "carriers"}}]}"#;
    let sw = Switch::builder(&cfg).file("routes.json", routes).start();

    let r = Sipp::scenario(scenario("uac_bye.xml"))
        .local(caller_ip, None)
        .remote(sw.addr())
        .service("5511333344444")
        .key("caller", "5511999990000")
        .arg("-d")
        .arg("200")
        .calls(300)
        .rate(100)
        .limit(60)
        .recv_timeout(Duration::from_secs(20))
        .timeout(Duration::from_secs(90))
        .run();
    r.assert_ok(300);
    std::thread::sleep(Duration::from_millis(300));
    let [a, b, c] = members.map(|m| count_requests(&m.stop().messages, "INVITE"));
    eprintln!("group 2/1/0 over 300 calls: a {a}, b {b}, c {c}");
    assert_eq!(a + b + c, 300, "calls per member: a {a}, b {b}, c {c}");
    assert!(
        (180..=220).contains(&a),
        "member a (weight 2) got {a} of 300"
    );
    assert!(
        (90..=110).contains(&b),
        "member b (weight 1) got {b} of 300"
    );
    assert_eq!(c, 0, "member c (weight 0, retry only) got {c} calls");
}

#[test]
fn caller_id_and_ruri_params_are_seen_by_the_far_end() {
    let far = uas(scenario("uas.xml"), 1);
    let caller_ip = unique_loopback();
    let cfg = format!(
        "{BASE}{}{}{ROUTE_BINDING}",
        trusted_trunk("pbx", caller_ip),
        trunk(
            "carrier",
            far.addr().unwrap(),
            "inbound = \"none\"\ncaller_id = \"5551234\"\nruri_params = \"user=phone\""
        ),
    );
    let routes =
        r#"{"routes": [{"name": "out", "b": ["_X."], "destination": {"trunk": "carrier"}}]}"#;
    let sw = Switch::builder(&cfg).file("routes.json", routes).start();
    uac(scenario("uac_bye.xml"), caller_ip, &sw, "5511333344444")
        .run()
        .assert_ok(1);
    let got = far.wait();
    got.assert_ok(1);
    let invite = received_request(&got.messages, "INVITE")
        .unwrap_or_else(|| panic!("no INVITE in the far end's log:\n{}", got.messages));
    let ruri = invite.lines().next().unwrap();
    assert!(
        ruri.starts_with("INVITE sip:5511333344444@") && ruri.contains(";user=phone"),
        "Request-URI without ;user=phone: {ruri}"
    );
    let from = header(&invite, "From", "f").unwrap_or_default();
    assert!(
        from.contains("sip:5551234@"),
        "From does not carry the unified caller number: {from}"
    );
}

#[test]
fn two_switches_interconnected_by_ip_trunks_90n_becomes_91n_and_reaches_extension_n() {
    let (ip_a, ip_b, pbx_ip) = (unique_loopback(), unique_loopback(), unique_loopback());

    // B: trusts A by address, delivers 91N to registered user N.
    let cfg_b = format!(
        "{BASE}{}[[trunks]]\nname = \"switch-a\"\nhost = \"{ip_a}\"\ninbound = \"ip\"\nignore_source_port = true\n\n{ROUTE_BINDING}",
        users_toml(2001, 1)
    );
    let routes_b =
        r#"{"routes": [{"name": "from-a", "b": ["_91."], "destination": {"user": "${EXTEN:2}"}}]}"#;
    let sw_b = Switch::builder(&cfg_b)
        .ip(ip_b)
        .file("routes.json", routes_b)
        .start();

    // A: sends 90N to B as 91N.
    let cfg_a = format!(
        "{BASE}{}{}{ROUTE_BINDING}",
        trusted_trunk("pbx", pbx_ip),
        trunk("switch-b", sw_b.addr(), "inbound = \"ip\""),
    );
    let routes_a = r#"{"routes": [{"name": "to-b", "b": ["_90."], "b_rewrite": "91${EXTEN:2}", "destination": {"trunk": "switch-b"}}]}"#;
    let sw_a = Switch::builder(&cfg_a)
        .ip(ip_a)
        .file("routes.json", routes_a)
        .start();

    // Extension 2001 registers on B; a SIPp UAS answers at its contact.
    let ext = registered_uas(&sw_b, "2001", "pw2001");

    uac(scenario("uac_bye.xml"), pbx_ip, &sw_a, "902001")
        .run()
        .assert_ok(1);
    let got = ext.wait();
    got.assert_ok(1);
    let invite = received_request(&got.messages, "INVITE").unwrap();
    let ruri = invite.lines().next().unwrap();
    assert!(
        ruri.starts_with("INVITE sip:2001@"),
        "extension 2001 got R-URI {ruri}"
    );
    // It came from switch B (B2BUA), not from A or the PBX.
    let via = header(&invite, "Via", "v").unwrap_or_default();
    assert!(
        via.contains(&ip_b.to_string()),
        "the INVITE did not come from switch B: Via {via}"
    );
}

#[test]
fn group_retries_a_503_on_the_weight_0_member() {
    let busy = peer(scenario_with(
        "uas_reject.xml",
        &[("CODE", "503"), ("REASON", "Service Unavailable")],
    ));
    let spare = peer(scenario("trunk_uas_any.xml"));
    let caller_ip = unique_loopback();
    let cfg = format!(
        "{BASE}{}{}{}[[trunk_groups]]\nname = \"carriers\"\n\
         members = [{{ trunk = \"busy\", weight = 1 }}, {{ trunk = \"spare\", weight = 0 }}]\n\n{ROUTE_BINDING}",
        trusted_trunk("pbx", caller_ip),
        trunk("busy", busy.addr().unwrap(), "inbound = \"none\""),
        trunk("spare", spare.addr().unwrap(), "inbound = \"none\""),
    );
    let routes = r#"{"retry_on": ["503"], "routes": [{"name": "grp", "b": ["_X."], "destination": {"trunk_group": "carriers"}}]}"#;
    let sw = Switch::builder(&cfg).file("routes.json", routes).start();
    for n in ["5511333344444", "5511333344445"] {
        let r = uac(scenario("uac_bye.xml"), caller_ip, &sw, n).run();
        r.assert_ok(1);
        assert!(!r.messages.contains("SIP/2.0 503"), "{}", r.messages);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count_requests(&busy.stop().messages, "INVITE"), 2);
    assert_eq!(
        count_requests(&spare.stop().messages, "INVITE"),
        2,
        "the weight-0 member did not take the retries"
    );
}

#[test]
fn digest_trunk_is_authenticated_per_call_and_routed_as_the_trunk() {
    let callee = uas(scenario("uas.xml"), 1);
    let cfg = format!(
        "{BASE}{}[[trunks]]\nname = \"pbx-digest\"\nhost = \"{}\"\ninbound = \"digest\"\n\
         username = \"pbxuser\"\nsecret = \"pbxsecret\"\n\n{ROUTE_BINDING}",
        users_toml(1001, 1),
        unique_loopback()
    );
    // Only calls that come in as the trunk match the route.
    let routes = format!(
        r#"{{"routes": [{{"name": "from-trunk", "source": ["trunk:pbx-digest"], "b": ["_X."], "destination": {{"uri": "sip:${{B}}@{}"}}}}]}}"#,
        callee.addr().unwrap()
    );
    let sw = Switch::builder(&cfg).file("routes.json", routes).start();
    let call = |user: &str, password: &str| {
        Sipp::scenario(scenario("uac_auth_bye.xml"))
            .local(unique_loopback(), None)
            .remote(sw.addr())
            .service("5511333344444")
            .users(&[(user, password)])
            .arg("-d")
            .arg("300")
            .calls(1)
            .trace_msg()
            .recv_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(40))
            .run()
    };
    // A wrong secret is refused; the right one is a call from the trunk.
    let bad = call("pbxuser", "not-the-secret");
    assert_ne!(bad.exit_code, Some(0), "a wrong trunk secret was accepted");
    call("pbxuser", "pbxsecret").assert_ok(1);
    let got = callee.wait();
    got.assert_ok(1);
    assert_eq!(count_requests(&got.messages, "INVITE"), 1);
}

#[test]
fn inbound_trunk_takes_a_from_pai_and_b_from_to() {
    let callee = uas(scenario("uas.xml"), 1);
    let carrier_ip = unique_loopback();
    let cfg = format!(
        "{BASE}[[trunks]]\nname = \"carrier\"\nhost = \"{carrier_ip}\"\ninbound = \"ip\"\n\
         use_pai = true\nb_from = \"to\"\n\n{ROUTE_BINDING}"
    );
    // Only B = 5511333344444 (the To user) is routed; the R-URI user is 999.
    let routes = format!(
        r#"{{"routes": [{{"name": "to", "b": ["5511333344444"], "destination": {{"uri": "sip:${{B}}@{}"}}}}]}}"#,
        callee.addr().unwrap()
    );
    let sw = Switch::builder(&cfg).file("routes.json", routes).start();
    Sipp::scenario(scenario("trunk_uac_pai.xml"))
        .local(carrier_ip, None)
        .remote(sw.addr())
        .service("999")
        .key("to", "5511333344444")
        .key("pai", "5550001")
        .key("caller", "anonymous")
        .arg("-d")
        .arg("300")
        .calls(1)
        .trace_msg()
        .recv_timeout(Duration::from_secs(20))
        .timeout(Duration::from_secs(60))
        .run()
        .assert_ok(1);
    let got = callee.wait();
    got.assert_ok(1);
    let invite = received_request(&got.messages, "INVITE").unwrap();
    assert!(
        invite.starts_with("INVITE sip:5511333344444@"),
        "{}",
        invite.lines().next().unwrap()
    );
    let from = header(&invite, "From", "f").unwrap_or_default();
    assert!(
        from.contains("sip:5550001@"),
        "A was not taken from P-Asserted-Identity: From {from}"
    );
}

#[test]
fn scanner_user_agent_gets_no_answer() {
    let sw = Switch::start(&format!("{BASE}{}", users_toml(1001, 1)));
    let c = SipClient::new(unique_loopback(), sw.addr());
    let send = |ua: &str| {
        let (m, branch) = c.build_request(
            "OPTIONS",
            &format!("sip:100@{}", c.server),
            &format!(
                "<sip:100@{}>;tag={}",
                c.local,
                strowger_testkit::sip::token()
            ),
            &format!("<sip:100@{}>", c.server),
            &format!("{}@scan", strowger_testkit::sip::token()),
            1,
            &[],
            "",
        );
        c.send_raw(
            m.replace("User-Agent: strowger-testkit", &format!("User-Agent: {ua}"))
                .as_bytes(),
        );
        c.recv_final(&branch, Duration::from_secs(2))
    };
    assert!(
        send("friendly-scanner").is_none(),
        "a scanner User-Agent was answered"
    );
    // The same address with an ordinary User-Agent is answered.
    assert!(
        send("Ordinary Phone 1.0").is_some(),
        "an ordinary OPTIONS got no answer"
    );
}

#[test]
fn request_flood_is_rate_limited_per_source_and_trusted_trunks_are_exempt() {
    let trunk_ip = unique_loopback();
    let sw = Switch::start(&format!(
        "{BASE}{}[protection]\nrate_limit = 20\n\n",
        trusted_trunk("carrier", trunk_ip)
    ));
    // 100 OPTIONS at once; the answers that come back within 1.5 s.
    let burst = |ip| {
        let mut c = SipClient::new(ip, sw.addr());
        for _ in 0..100 {
            let cseq = c.next_cseq();
            let (m, _) = c.build_request(
                "OPTIONS",
                &format!("sip:{}", c.server),
                &format!(
                    "<sip:flood@{}>;tag={}",
                    c.local,
                    strowger_testkit::sip::token()
                ),
                &format!("<sip:{}>", c.server),
                &format!("{}@flood", strowger_testkit::sip::token()),
                cseq,
                &[],
                "",
            );
            c.send_raw(m.as_bytes());
        }
        let deadline = Instant::now() + Duration::from_millis(1500);
        let mut answered = 0;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match c.recv(left) {
                Some(m) if m.is_response() => answered += 1,
                Some(_) => {}
                None => break,
            }
        }
        answered
    };
    let flooded = burst(unique_loopback());
    eprintln!("rate_limit 20/s: {flooded} of 100 burst OPTIONS answered");
    assert!(
        (10..=40).contains(&flooded),
        "rate_limit = 20: {flooded} of 100 burst requests answered"
    );
    // Another address is unaffected; the trusted trunk is not limited.
    assert_eq!(sw.ping(T), Some(200));
    assert!(
        SipClient::new(unique_loopback(), sw.addr())
            .options(T)
            .is_some()
    );
    assert_eq!(burst(trunk_ip), 100, "the trusted trunk was rate limited");
}

#[test]
fn trunk_codec_allow_list_filters_the_offer() {
    let far = uas(
        scenario_with(
            "media_uas.xml",
            &[
                ("MEDIA_IP", "127.0.0.1"),
                ("MEDIA_PORT", "40000"),
                ("PTS", "8"),
                ("RTPMAPS", "a=rtpmap:8 PCMA/8000"),
            ],
        ),
        1,
    );
    let caller_ip = unique_loopback();
    let cfg = format!(
        "{BASE}{}{}{ROUTE_BINDING}",
        trusted_trunk("pbx", caller_ip),
        trunk(
            "carrier",
            far.addr().unwrap(),
            "inbound = \"none\"\ncodecs = [\"PCMA\"]"
        ),
    );
    let routes =
        r#"{"routes": [{"name": "out", "b": ["_X."], "destination": {"trunk": "carrier"}}]}"#;
    let sw = Switch::builder(&cfg).file("routes.json", routes).start();
    // The caller offers PCMU, PCMA and telephone-event.
    uac(scenario("uac_bye.xml"), caller_ip, &sw, "5511333344444")
        .run()
        .assert_ok(1);
    let got = far.wait();
    got.assert_ok(1);
    let invite = received_request(&got.messages, "INVITE").unwrap();
    let m = invite
        .lines()
        .find(|l| l.starts_with("m=audio"))
        .unwrap_or_else(|| panic!("no SDP offer to the trunk:\n{invite}"));
    let pts: Vec<&str> = m.split_whitespace().skip(3).collect();
    assert!(
        pts.contains(&"8"),
        "PCMA missing from the trunk's offer: {m}"
    );
    assert!(
        !pts.contains(&"0"),
        "PCMU offered to a PCMA-only trunk: {m}"
    );
}

#[test]
fn silent_outbound_proxy_falls_back_to_the_next_proxy() {
    let silent_ip = unique_loopback();
    let hole = UdpSocket::bind(SocketAddr::new(silent_ip, free_port(silent_ip))).unwrap();
    let proxy2 = peer(scenario("trunk_uas_any.xml"));
    let caller_ip = unique_loopback();
    let cfg = format!(
        "{BASE}{}[[trunks]]\nname = \"carrier\"\nhost = \"192.0.2.10\"\ninbound = \"none\"\n\
         proxies = [\"{}\", \"{}\"]\nproxy_timeout_ms = 500\n\n{ROUTE_BINDING}",
        trusted_trunk("pbx", caller_ip),
        hole.local_addr().unwrap(),
        proxy2.addr().unwrap(),
    );
    let routes =
        r#"{"routes": [{"name": "out", "b": ["_X."], "destination": {"trunk": "carrier"}}]}"#;
    let sw = Switch::builder(&cfg).file("routes.json", routes).start();
    let t0 = Instant::now();
    uac(scenario("uac_bye.xml"), caller_ip, &sw, "5511333344444")
        .run()
        .assert_ok(1);
    let elapsed = t0.elapsed();
    assert!(
        elapsed < Duration::from_secs(4),
        "fallback took {elapsed:?}"
    );
    // The first proxy got the INVITE (and never answered) ...
    hole.set_nonblocking(true).unwrap();
    let mut buf = vec![0u8; 65_536];
    let mut first = None;
    while let Ok((n, _)) = hole.recv_from(&mut buf) {
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with("INVITE ") {
            first.get_or_insert(text);
        }
    }
    let first = first.expect("the first proxy never got the INVITE");
    // ... the second one took the call, addressed to the trunk's host.
    std::thread::sleep(Duration::from_millis(300));
    let got = proxy2.stop();
    let invite = received_request(&got.messages, "INVITE")
        .unwrap_or_else(|| panic!("the second proxy got no INVITE:\n{}", got.messages));
    for m in [first.as_str(), invite.as_str()] {
        assert!(
            m.starts_with("INVITE sip:5511333344444@192.0.2.10"),
            "the Request-URI names the trunk host, not the proxy: {}",
            m.lines().next().unwrap()
        );
    }
}

/// Send an INVITE (with SDP) without credentials from `c`; the final status.
fn invite_status(c: &mut SipClient, number: &str) -> Option<u16> {
    let cseq = c.next_cseq();
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        ip = c.local.ip()
    );
    let (m, branch) = c.build_request(
        "INVITE",
        &format!("sip:{number}@{}", c.server),
        &format!(
            "<sip:5550000@{}>;tag={}",
            c.local,
            strowger_testkit::sip::token()
        ),
        &format!("<sip:{number}@{}>", c.server),
        &format!("{}@stranger", strowger_testkit::sip::token()),
        cseq,
        &[
            format!("Contact: <sip:5550000@{}>", c.local),
            "Content-Type: application/sdp".into(),
        ],
        &sdp,
    );
    c.send_raw(m.as_bytes());
    c.recv_final(&branch, T).map(|r| r.status())
}
