//! Black-box call tests: SIPp UAC -> strowger (B2BUA) -> SIPp UAS on
//! distinct loopback addresses, routed by the real route-table plugin.

mod common;

use common::*;

#[test]
fn answered_call_torn_down_by_caller() {
    let callee = uas(scenario("uas.xml"), 1);
    let uac_ip = unique_loopback();
    let sw = switch_to_uri(uac_ip, callee.addr().unwrap());
    let r = uac(scenario("uac_bye.xml"), uac_ip, &sw, "5511333344444").run();
    r.assert_ok(1);
    let callee_r = callee.wait();
    callee_r.assert_ok(1);
    // The callee saw the B number in the Request-URI.
    assert!(
        callee_r.messages.contains("INVITE sip:5511333344444@"),
        "{}",
        callee_r.messages
    );
}

#[test]
fn answered_call_torn_down_by_callee() {
    let callee = uas(scenario("uas_bye.xml"), 1);
    let uac_ip = unique_loopback();
    let sw = switch_to_uri(uac_ip, callee.addr().unwrap());
    let r = uac(scenario("uac_wait_bye.xml"), uac_ip, &sw, "1002").run();
    r.assert_ok(1);
    callee.wait().assert_ok(1);
}

#[test]
fn cancel_before_answer_reaches_callee_and_caller_gets_487() {
    let callee = uas(scenario("uas_cancel.xml"), 1);
    let uac_ip = unique_loopback();
    let sw = switch_to_uri(uac_ip, callee.addr().unwrap());
    let r = uac(scenario("uac_cancel.xml"), uac_ip, &sw, "1002").run();
    r.assert_ok(1);
    // The callee got the CANCEL (its scenario requires it) and answered 487.
    callee.wait().assert_ok(1);
}

#[test]
fn serial_failover_503_then_200_gives_one_final_response() {
    let first = uas(
        scenario_with(
            "uas_reject.xml",
            &[("CODE", "503"), ("REASON", "Service Unavailable")],
        ),
        1,
    );
    let second = uas(scenario("uas.xml"), 1);
    let uac_ip = unique_loopback();
    let routes = format!(
        r#"{{"retry_on": ["503"], "routes": [
            {{"name": "primary", "priority": 1, "b": ["_X."], "destination": {{"uri": "sip:${{B}}@{}"}}}},
            {{"name": "backup", "priority": 2, "b": ["_X."], "destination": {{"uri": "sip:${{B}}@{}"}}}}
        ]}}"#,
        first.addr().unwrap(),
        second.addr().unwrap()
    );
    let cfg = format!("{BASE}{}{ROUTE_BINDING}", trusted_trunk("sipp-uac", uac_ip));
    let sw = Switch::builder(&cfg).file("routes.json", routes).start();
    let r = uac(scenario("uac_bye.xml"), uac_ip, &sw, "1133334444").run();
    r.assert_ok(1);
    // Exactly one final response reached the caller for the INVITE: the 200
    // (SIPp would fail the call on an unexpected 503 too).
    let finals: Vec<&str> = r
        .messages
        .lines()
        .filter(|l| l.starts_with("SIP/2.0 ") && !l.starts_with("SIP/2.0 1"))
        .collect();
    assert!(
        !finals.iter().any(|l| l.starts_with("SIP/2.0 503")),
        "caller saw the 503: {finals:?}"
    );
    first.wait().assert_ok(1);
    second.wait().assert_ok(1);
}

#[test]
fn calls_between_registered_users_and_to_unregistered_or_unrouted_numbers() {
    let pbx_ip = unique_loopback();
    let cfg = format!(
        "{BASE}{}{}{ROUTE_BINDING}",
        users_toml(1001, 10),
        trusted_trunk("pbx", pbx_ip)
    );
    let routes = r#"{"no_route": {"code": 404, "reason": "No route"},
        "routes": [{"name": "ext", "b": [{"regex": "^10(0[1-9]|10)$"}], "destination": {"user": "${EXTEN}"}}]}"#;
    let sw = Switch::builder(&cfg).file("routes.json", routes).start();

    // 1002 registers from ip:port with SIPp, then a SIPp UAS takes that port.
    let callee_ip = unique_loopback();
    let callee_port = free_port(callee_ip);
    sipp_register(&sw, callee_ip, callee_port, "1002", "pw1002");
    let callee = Sipp::scenario(scenario("uas.xml"))
        .local(callee_ip, Some(callee_port))
        .calls(1)
        .trace_msg()
        .timeout(std::time::Duration::from_secs(60))
        .spawn();

    // 1001 calls 1002 with digest credentials.
    let caller_ip = unique_loopback();
    let r = Sipp::scenario(scenario("uac_auth_bye.xml"))
        .local(caller_ip, None)
        .remote(sw.addr())
        .service("1002")
        .users(&[("1001", "pw1001")])
        .arg("-d")
        .arg("300")
        .calls(1)
        .trace_msg()
        .recv_timeout(std::time::Duration::from_secs(20))
        .timeout(std::time::Duration::from_secs(60))
        .run();
    r.assert_ok(1);
    callee.wait().assert_ok(1);

    // From a trusted trunk: 1003 exists but is not registered -> 480;
    // 2999 matches no route -> the plugin's 404.
    for (number, code) in [("1003", "480"), ("2999", "404")] {
        let r = Sipp::scenario(scenario_with("uac_reject.xml", &[("CODE", code)]))
            .local(pbx_ip, None)
            .remote(sw.addr())
            .service(number)
            .key("caller", "5511999990000")
            .calls(1)
            .trace_msg()
            .timeout(std::time::Duration::from_secs(30))
            .run();
        r.assert_ok(1);
    }
}
