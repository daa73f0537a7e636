//! Native tests of the registrar-policy logic.

use registrar_policy::policy::Policy;
use strowger_sdk::authorize::*;
use strowger_sdk::testing::datetime;
use strowger_sdk::{Endpoint, Transport};

fn req(user: &str, ip: &str, ua: Option<&str>, credentials: Credentials) -> AuthRequest {
    AuthRequest {
        method: "REGISTER".into(),
        aor: format!("sip:{user}@pbx.example.com"),
        user: user.into(),
        domain: "pbx.example.com".into(),
        auth_user: None,
        credentials,
        known_user: true,
        source: Endpoint {
            ip: ip.into(),
            port: 5062,
            transport: Transport::Udp,
        },
        ingress: Ingress::Unknown,
        user_agent: ua.map(str::to_string),
        contacts: vec![format!("sip:{user}@{ip}:5062")],
        expires: Some(3600),
        registration: RegistrationState::None,
        contact_count: 0,
        time: datetime(2026, 3, 4, 3, 10, 0),
    }
}

fn policy(json: &str) -> Policy {
    Policy::from_config(json).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn defaults_scanner_drop_and_credentials() {
    let p = policy("{}");
    for ua in [
        "friendly-scanner",
        "SIPVicious 0.3",
        "sipcli/v1.8",
        "VaxSIPUserAgent/3.1",
    ] {
        assert_eq!(
            p.decide(&req("1001", "10.0.0.5", Some(ua), Credentials::Valid))
                .0,
            AuthDecision::Drop,
            "{ua}"
        );
    }
    let (d, _) = p.decide(&req(
        "1001",
        "10.0.0.5",
        Some("Linphone/5.2"),
        Credentials::None,
    ));
    assert_eq!(
        d,
        AuthDecision::Challenge(Challenge {
            realm: None,
            algorithms: vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5]
        })
    );
    let (d, _) = p.decide(&req("1001", "10.0.0.5", None, Credentials::Stale));
    assert!(matches!(d, AuthDecision::Challenge(_)));
    let (d, _) = p.decide(&req("1001", "10.0.0.5", None, Credentials::Invalid));
    assert_eq!(d, AuthDecision::reject(403, "Forbidden"));
    let (d, _) = p.decide(&req("1001", "10.0.0.5", None, Credentials::Valid));
    assert_eq!(d, AuthDecision::accept());
}

#[test]
fn cidr_allow_lists_per_user_and_domain() {
    let p = policy(
        r#"{"allow": {"users": {"1001": ["192.168.10.0/24"], "sip:1002@pbx.example.com": ["::1"]},
                      "domains": {"pbx.example.com": ["10.0.0.0/8"]}},
            "min_expires": 60, "max_expires": 1800, "max_contacts": 2,
            "realm": "pbx.example.com", "algorithms": ["md5"]}"#,
    );
    let limits = AuthDecision::Accept(Accept {
        max_expires: Some(1800),
        min_expires: Some(60),
        max_contacts: Some(2),
    });
    assert_eq!(
        p.decide(&req("1001", "192.168.10.20", None, Credentials::Valid))
            .0,
        limits
    );
    // user list wins over the domain list: 10.x is not allowed for 1001
    assert_eq!(
        p.decide(&req("1001", "10.1.1.1", None, Credentials::Valid))
            .0,
        AuthDecision::reject(403, "Forbidden")
    );
    // even with correct credentials outside the list: 403 before any challenge
    assert_eq!(
        p.decide(&req("1001", "203.0.113.9", None, Credentials::None))
            .0,
        AuthDecision::reject(403, "Forbidden")
    );
    assert_eq!(
        p.decide(&req("1002", "::1", None, Credentials::Valid)).0,
        limits
    );
    assert_eq!(
        p.decide(&req("1002", "10.1.1.1", None, Credentials::Valid))
            .1,
        "outside_allowed"
    );
    // other users fall back to the domain list
    assert_eq!(
        p.decide(&req("1003", "10.9.9.9", None, Credentials::Valid))
            .0,
        limits
    );
    assert_eq!(
        p.decide(&req("1003", "172.16.0.1", None, Credentials::Valid))
            .1,
        "outside_allowed"
    );
    assert_eq!(
        p.decide(&req("1003", "10.9.9.9", None, Credentials::None))
            .0,
        AuthDecision::Challenge(Challenge {
            realm: Some("pbx.example.com".into()),
            algorithms: vec![DigestAlgorithm::Md5]
        })
    );
}

#[test]
fn configurable_actions_and_trusted() {
    let p = policy(
        r#"{"deny_user_agents": "^evil", "scanner_action": {"code": 488, "reason": "Go away"},
            "invalid": "challenge", "trusted": ["127.0.0.0/8"], "outside_allowed": "drop",
            "allow": {"domains": {"pbx.example.com": ["127.0.0.0/8", "10.0.0.0/8"]}}}"#,
    );
    assert_eq!(
        p.decide(&req("1", "10.0.0.1", Some("EvilBot"), Credentials::Valid))
            .0,
        AuthDecision::reject(488, "Go away")
    );
    assert_eq!(
        p.decide(&req(
            "1",
            "10.0.0.1",
            Some("friendly-scanner"),
            Credentials::Invalid
        ))
        .0,
        AuthDecision::Challenge(Challenge {
            realm: None,
            algorithms: vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5]
        })
    );
    assert_eq!(
        p.decide(&req("1", "127.0.0.1", None, Credentials::None)).0,
        AuthDecision::accept()
    );
    assert_eq!(
        p.decide(&req("1", "192.0.2.1", None, Credentials::Valid)).0,
        AuthDecision::Drop
    );
    // empty deny regex disables the scanner check
    let p = policy(r#"{"deny_user_agents": ""}"#);
    assert_eq!(
        p.decide(&req(
            "1",
            "10.0.0.1",
            Some("friendly-scanner"),
            Credentials::Valid
        ))
        .0,
        AuthDecision::accept()
    );
}

#[test]
fn bad_configs_refused() {
    for (json, needle) in [
        (r#"{"deny_user_agents": "("}"#, "regular expression"),
        (r#"{"allow": {"users": {"1": ["10.0.0.0/40"]}}}"#, "prefix"),
        (r#"{"algorithms": ["sha512"]}"#, "sha512"),
        (r#"{"min_expires": 600, "max_expires": 60}"#, "min_expires"),
        (r#"{"scanner_action": "explode"}"#, "explode"),
        (r#"{"invalid": {"code": 200}}"#, "400..=699"),
        (r#"{"max_contacts": 0}"#, "max_contacts"),
        (r#"{"realmz": "x"}"#, "realmz"),
    ] {
        let err = Policy::from_config(json)
            .err()
            .unwrap_or_else(|| panic!("accepted {json}"));
        assert!(err.contains(needle), "{json}: {err}");
    }
    let json = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/example-config.json"))
        .unwrap();
    policy(&json);
}
