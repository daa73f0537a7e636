//! Native tests of e164-normalize.

use e164_normalize::normalize::Normalizer;
use strowger_sdk::rewrite::*;
use strowger_sdk::testing::datetime;

fn req(direction: Direction, trunk: Option<&str>, a: &str, b: &str) -> RewriteRequest {
    RewriteRequest {
        direction,
        trunk: trunk.map(str::to_string),
        ingress: match trunk {
            Some(t) => Ingress::Trunk(t.into()),
            None => Ingress::User("sip:1001@pbx.example.com".into()),
        },
        numbers: Numbers {
            a_number: a.into(),
            b_number: b.into(),
            display_name: Some("Alice".into()),
        },
        time: datetime(2026, 3, 4, 3, 10, 0),
    }
}

fn example() -> Normalizer {
    let json = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/example-config.json"))
        .unwrap();
    Normalizer::from_config(&json).unwrap_or_else(|e| panic!("{e}"))
}

fn ab(n: Numbers) -> (String, String) {
    (n.a_number, n.b_number)
}

#[test]
fn brazilian_trunk_ingress_to_e164() {
    let n = example();
    for (a, b, want_a, want_b) in [
        ("1133334444", "87654321", "551133334444", "5511987654321"), // local mobile: area + ninth digit
        (
            "01133334444",
            "02121987654321",
            "551133334444",
            "5521987654321",
        ), // 0 + CSP 21
        (
            "+5511987654321",
            "0021442079460000",
            "5511987654321",
            "442079460000",
        ), // intl via 00 + CSP
        ("anonymous", "190", "anonymous", "190"),                    // not numbers: untouched
    ] {
        let out = n.apply(&req(Direction::Ingress, Some("carrier-sp"), a, b));
        assert_eq!(ab(out.clone()), (want_a.into(), want_b.into()), "{a} {b}");
        assert_eq!(out.display_name.as_deref(), Some("Alice"));
    }
}

#[test]
fn egress_formats_per_trunk() {
    let n = example();
    let out = n.apply(&req(
        Direction::Egress,
        Some("carrier-sp"),
        "551133334444",
        "5521987654321",
    ));
    assert_eq!(ab(out), ("1133334444".into(), "21987654321".into()));
    let out = n.apply(&req(
        Direction::Egress,
        Some("carrier-sp"),
        "551133334444",
        "442079460000",
    ));
    assert_eq!(ab(out).1, "00442079460000");
    let out = n.apply(&req(
        Direction::Egress,
        Some("carrier-intl"),
        "551133334444",
        "+5521987654321",
    ));
    assert_eq!(ab(out), ("+551133334444".into(), "+5521987654321".into()));
    // extensions pass through on egress
    let out = n.apply(&req(Direction::Egress, Some("carrier-sp"), "1001", "1002"));
    assert_eq!(ab(out), ("1001".into(), "1002".into()));
    // unknown trunk without a default: unchanged
    let out = n.apply(&req(
        Direction::Egress,
        Some("other"),
        "551133334444",
        "5521987654321",
    ));
    assert_eq!(ab(out), ("551133334444".into(), "5521987654321".into()));
}

#[test]
fn users_profile_only_b() {
    let n = example();
    // registered user dials a local number: only B is normalised
    let out = n.apply(&req(Direction::Ingress, None, "1001", "987654321"));
    assert_eq!(ab(out), ("1001".into(), "5511987654321".into()));
    // towards a user, in-area numbers are shown locally
    let out = n.apply(&req(
        Direction::Egress,
        None,
        "551133334444",
        "5511987654321",
    ));
    assert_eq!(ab(out), ("551133334444".into(), "987654321".into()));
}

#[test]
fn plus_internal_default_profile_and_switches() {
    let n = Normalizer::from_config(
        r#"{"internal": "e164-plus",
            "default": {"country_code": "1", "national_prefix": "1", "international_prefix": "011",
                        "area_code": "212", "area_code_len": 3, "local_lengths": [7], "national_lengths": [10],
                        "egress_format": "national", "ingress": true, "egress": false}}"#,
    )
    .unwrap();
    let out = n.apply(&req(
        Direction::Ingress,
        Some("any"),
        "5551234",
        "12125551234",
    ));
    assert_eq!(ab(out), ("+12125551234".into(), "+12125551234".into()));
    let out = n.apply(&req(
        Direction::Ingress,
        Some("any"),
        "01144207946000",
        "3105551234",
    ));
    assert_eq!(ab(out), ("+44207946000".into(), "+13105551234".into()));
    let out = n.apply(&req(
        Direction::Egress,
        Some("any"),
        "+12125551234",
        "+13105551234",
    ));
    assert_eq!(ab(out), ("+12125551234".into(), "+13105551234".into()));
}

#[test]
fn bad_configs_refused() {
    for (json, needle) in [
        (r#"{"trunks": {"t": {"country_code": "5x"}}}"#, "trunk `t`"),
        (
            r#"{"trunks": {"t": {"country_code": "55", "colour": "blue"}}}"#,
            "colour",
        ),
        (
            r#"{"trunks": {"t": {"country_code": "55", "egress_format": "fancy"}}}"#,
            "fancy",
        ),
        (
            r#"{"trunks": {"t": {"country_code": "55", "numbers": ["c"]}}}"#,
            "numbers",
        ),
        (r#"{"internal": "national"}"#, "internal"),
        (r#"{"trunks": {"t": {}}}"#, "country_code"),
    ] {
        let err = Normalizer::from_config(json)
            .err()
            .unwrap_or_else(|| panic!("accepted {json}"));
        assert!(err.contains(needle), "{json}: {err}");
    }
}
