//! Native tests of the route-table logic.

use route_table::table::RouteTable;
use strowger_sdk::route::*;
use strowger_sdk::testing::datetime;
use strowger_sdk::{Endpoint, Transport};

fn party(user: &str) -> Party {
    Party {
        uri: format!("sip:{user}@example.com"),
        user: user.into(),
        host: "example.com".into(),
        display_name: None,
    }
}

fn call(ingress: Ingress, a: &str, b: &str) -> Call {
    Call {
        call_id: "c1".into(),
        ingress,
        source: Endpoint {
            ip: "127.0.0.1".into(),
            port: 5060,
            transport: Transport::Udp,
        },
        request_uri: format!("sip:{b}@example.com"),
        a_number: a.into(),
        b_number: b.into(),
        display_name: None,
        from: party(a),
        to: party(b),
        pai: None,
        diversion: vec![],
        headers: vec![],
        codecs: vec!["PCMU".into(), "PCMA".into()],
        portability: None,
        time: datetime(2026, 3, 4, 3, 10, 0), // Wednesday 10:00
    }
}

fn user() -> Ingress {
    Ingress::User("sip:1001@example.com".into())
}

fn forward(d: RouteDecision) -> Forward {
    match d {
        RouteDecision::Forward(f) => f,
        other => panic!("expected forward, got {other:?}"),
    }
}

fn table(json: &str) -> RouteTable {
    RouteTable::from_config(json).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn asterisk_pattern_with_exten_substring() {
    let t = table(
        r#"{"routes": [{"name": "out", "b": ["_90."], "b_rewrite": "91${EXTEN:2}",
            "destination": {"trunk": "carrier"}}]}"#,
    );
    let f = forward(t.decide(&call(user(), "1001", "901133334444")));
    assert_eq!(f.attempts.len(), 1);
    assert_eq!(
        f.attempts[0].destination,
        Destination::Trunk("carrier".into())
    );
    assert_eq!(f.attempts[0].b_number.as_deref(), Some("911133334444"));
    // does not match without digits after 90
    assert!(
        matches!(t.decide(&call(user(), "1001", "90")), RouteDecision::Reject(r) if r.code == 404)
    );
}

#[test]
fn freepbx_strip_and_khomp_regex() {
    let t = table(
        r#"{"routes": [
            {"name": "strip012", "priority": 1, "b": [{"freepbx": "012|."}], "destination": {"trunk": "t1"}},
            {"name": "khomp", "priority": 2, "b": ["/^48([0-9]{8})$/$1/"], "destination": {"trunk": "t2"}}
        ]}"#,
    );
    let f = forward(t.decide(&call(user(), "1001", "0121133334444")));
    assert_eq!(f.attempts[0].b_number.as_deref(), Some("1133334444"));
    assert_eq!(f.attempts[0].destination, Destination::Trunk("t1".into()));
    let f = forward(t.decide(&call(user(), "1001", "4833334444")));
    assert_eq!(f.attempts.len(), 1);
    assert_eq!(f.attempts[0].b_number.as_deref(), Some("33334444"));
    assert_eq!(f.attempts[0].destination, Destination::Trunk("t2".into()));
}

#[test]
fn priority_order_failover_and_retry_union() {
    let t = table(
        r#"{"retry_on": ["408"], "routes": [
            {"name": "backup", "priority": 5, "b": ["_0800."], "destination": {"trunk": "b"}, "retry_on": ["486"]},
            {"name": "primary", "priority": 0, "b": ["_0800."], "destination": {"trunk": "a"}, "retry_on": ["503", "5xx", "no-answer"]},
            {"name": "same-prio-later", "priority": 5, "b": ["_0800."], "destination": {"trunk_group": "g"}},
            {"name": "disabled", "priority": 0, "enabled": false, "b": ["_0800."], "destination": {"trunk": "x"}}
        ]}"#,
    );
    let c = call(user(), "1001", "08001234567");
    assert_eq!(
        t.matching_routes(&c),
        ["primary", "backup", "same-prio-later"]
    );
    let f = forward(t.decide(&c));
    let dests: Vec<_> = f.attempts.iter().map(|a| a.destination.clone()).collect();
    assert_eq!(
        dests,
        [
            Destination::Trunk("a".into()),
            Destination::Trunk("b".into()),
            Destination::TrunkGroup("g".into())
        ]
    );
    // global + primary + backup causes; the last route's own causes are moot
    assert_eq!(
        f.retry_on,
        [
            Cause::Status(408),
            Cause::Status(503),
            Cause::StatusClass(5),
            Cause::NoAnswer,
            Cause::Status(486)
        ]
    );
}

#[test]
fn time_window_overflow() {
    let t = table(
        r#"{"routes": [
            {"name": "office", "priority": 0, "b": ["_0800."], "time": ["08:00-18:00|mon-fri"], "destination": {"trunk": "day"}},
            {"name": "overflow", "priority": 1, "b": ["_0800."], "destination": {"trunk": "night"}}
        ]}"#,
    );
    let mut c = call(user(), "1001", "08001234567");
    let f = forward(t.decide(&c));
    assert_eq!(f.attempts[0].destination, Destination::Trunk("day".into()));
    assert_eq!(f.attempts.len(), 2);
    c.time = datetime(2026, 3, 4, 3, 19, 0);
    let f = forward(t.decide(&c));
    assert_eq!(f.attempts.len(), 1);
    assert_eq!(
        f.attempts[0].destination,
        Destination::Trunk("night".into())
    );
    c.time = datetime(2026, 3, 7, 6, 10, 0); // Saturday
    assert_eq!(t.matching_routes(&c), ["overflow"]);
}

#[test]
fn sources_and_user_destination() {
    let json =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/demo-config.json")).unwrap();
    let t = table(&json);
    let f = forward(t.decide(&call(user(), "1001", "1005")));
    assert_eq!(f.attempts[0].destination, Destination::User("1005".into()));
    assert_eq!(f.attempts[0].ring_timeout_ms, Some(30_000));
    let f = forward(t.decide(&call(user(), "1001", "1010")));
    assert_eq!(f.attempts[0].destination, Destination::User("1010".into()));
    for b in ["1000", "1011", "100", "2001"] {
        assert!(
            matches!(t.decide(&call(user(), "1001", b)), RouteDecision::Reject(r) if r.code == 404 && r.reason == "No route"),
            "{b}"
        );
    }
    // only registered users, not trunks or unknown sources
    assert!(matches!(
        t.decide(&call(Ingress::Trunk("carrier".into()), "x", "1005")),
        RouteDecision::Reject(_)
    ));
    assert!(matches!(
        t.decide(&call(Ingress::Unknown, "x", "1005")),
        RouteDecision::Reject(_)
    ));

    let t = table(
        r#"{"no_route": {"code": 403, "reason": "Forbidden"}, "routes": [
            {"name": "from-carrier", "source": ["trunk:carrier"], "destination": {"user": "${EXTEN}"}},
            {"name": "boss", "source": ["user:1001"], "destination": {"uri": "sip:${EXTEN}@10.0.0.9:5080;transport=tcp"}},
            {"name": "anon", "source": ["unknown"], "destination": {"trunk": "ivr"}}
        ]}"#,
    );
    let f = forward(t.decide(&call(Ingress::Trunk("carrier".into()), "5511", "1002")));
    assert_eq!(f.attempts[0].destination, Destination::User("1002".into()));
    let f = forward(t.decide(&call(user(), "1001", "777")));
    assert_eq!(
        f.attempts[0].destination,
        Destination::Uri("sip:777@10.0.0.9:5080;transport=tcp".into())
    );
    assert!(
        matches!(t.decide(&call(Ingress::User("sip:1002@example.com".into()), "1002", "777")), RouteDecision::Reject(r) if r.code == 403)
    );
    assert!(matches!(
        t.decide(&call(Ingress::Trunk("other".into()), "1", "777")),
        RouteDecision::Reject(_)
    ));
    let f = forward(t.decide(&call(Ingress::Unknown, "1", "777")));
    assert_eq!(f.attempts[0].destination, Destination::Trunk("ivr".into()));
}

#[test]
fn portability_filter_and_leg_options() {
    let t = table(
        r#"{"routes": [
            {"name": "vivo", "carriers": ["55320"], "b_rewrite": "${RN}", "destination": {"trunk": "vivo"},
             "a_rewrite": {"strip": 2, "prefix": "0"}, "display_name": "Acme ${A}",
             "headers": {"add": {"X-Route": "${ROUTE}"}, "remove": ["X-Secret"]},
             "media": "bypass", "codecs": ["PCMA"], "ring_timeout_s": 45},
            {"name": "ported-any", "ported": true, "destination": {"trunk": "ported"}},
            {"name": "rest", "destination": {"trunk": "default"}}
        ]}"#,
    );
    let mut c = call(Ingress::Trunk("pbx".into()), "5511333", "11987654321");
    assert_eq!(t.matching_routes(&c), ["rest"]);
    c.portability = Some(PortabilityResult {
        number: "11987654321".into(),
        carrier: "55320".into(),
        routing_number: "5532011987654321".into(),
        ported: true,
    });
    let f = forward(t.decide(&c));
    assert_eq!(f.attempts.len(), 3);
    let a = &f.attempts[0];
    assert_eq!(a.b_number.as_deref(), Some("5532011987654321"));
    assert_eq!(a.a_number.as_deref(), Some("011333"));
    assert_eq!(a.display_name.as_deref(), Some("Acme 5511333"));
    assert_eq!(
        a.add_headers,
        [strowger_sdk::Header::new("X-Route", "vivo")]
    );
    assert_eq!(a.remove_headers, ["X-Secret"]);
    assert_eq!(a.media, Some(MediaMode::Bypass));
    assert_eq!(a.codecs.as_deref(), Some(&["PCMA".to_string()][..]));
    assert_eq!(a.ring_timeout_ms, Some(45_000));
    assert_eq!(
        f.attempts[1].destination,
        Destination::Trunk("ported".into())
    );
    c.portability.as_mut().unwrap().carrier = "55321".into();
    c.portability.as_mut().unwrap().ported = false;
    assert_eq!(t.matching_routes(&c), ["rest"]);
}

#[test]
fn a_filter_and_regex_filter() {
    let t = table(
        r#"{"routes": [
            {"name": "vip", "a": [{"regex": "^1(00[1-5])$"}], "b": [{"asterisk": "_X."}], "destination": {"trunk": "vip"}},
            {"name": "exact", "b": [{"exact": "190"}], "destination": {"trunk": "emergency"}}
        ]}"#,
    );
    assert_eq!(t.matching_routes(&call(user(), "1003", "5551234")), ["vip"]);
    assert!(
        t.matching_routes(&call(user(), "1009", "5551234"))
            .is_empty()
    );
    assert_eq!(t.matching_routes(&call(user(), "1009", "190")), ["exact"]);
}

#[test]
fn bad_configs_are_refused_with_a_reason() {
    for (json, needle) in [
        (
            r#"{"routes": [{"destination": {"trunk": "x"}, "b": ["_[12"]}]}"#,
            "route-1",
        ),
        (
            r#"{"routes": [{"destination": {"trunk": "x"}, "b": [{"regex": "("}]}]}"#,
            "regular expression",
        ),
        (
            r#"{"routes": [{"destination": {"trunk": "x"}, "retry_on": ["bogus"]}]}"#,
            "retry cause",
        ),
        (
            r#"{"routes": [{"destination": {"trunk": "x"}, "source": ["vip"]}]}"#,
            "source",
        ),
        (
            r#"{"routes": [{"destination": {"trunk": "${NOPE}"}}]}"#,
            "NOPE",
        ),
        (
            r#"{"routes": [{"destination": {"trunk": "x"}, "time": ["25:00-26:00"]}]}"#,
            "time",
        ),
        (
            r#"{"routes": [{"destination": {"trunk": "x"}, "media": "magic"}]}"#,
            "media",
        ),
        (
            r#"{"routes": [{"destination": {"pigeon": "x"}}]}"#,
            "pigeon",
        ),
        (r#"{"routes": [{"b": ["_9."]}]}"#, "destination"),
        (r#"{"no_route": {"code": 200}}"#, "no_route"),
        (r#"{"routez": []}"#, "routez"),
        ("not json", "invalid configuration"),
    ] {
        let err = RouteTable::from_config(json)
            .err()
            .unwrap_or_else(|| panic!("accepted {json}"));
        assert!(err.contains(needle), "{json}: {err}");
    }
    // empty config: everything rejected with 404
    let t = table("{}");
    assert!(matches!(t.decide(&call(user(), "1", "2")), RouteDecision::Reject(r) if r.code == 404));
}

#[test]
fn example_config_loads() {
    let json = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/example-config.json"))
        .unwrap();
    let t = table(&json);
    let f = forward(t.decide(&call(user(), "1001", "901133334444")));
    assert!(!f.attempts.is_empty());
}
