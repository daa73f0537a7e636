//! Black-box registrar tests: the real `strowger` binary, SIPp and a raw
//! SHA-256 digest client on loopback.

mod common;

use std::time::Duration;

use common::*;
use strowger_testkit::sip::token;

fn registrar_switch() -> Switch {
    Switch::start(&format!("{BASE}{}", users_toml(2000, 100)))
}

#[test]
fn sipp_registers_100_users_with_md5_digest() {
    let sw = registrar_switch();
    let ip = unique_loopback();
    let port = free_port(ip);
    let users: Vec<(String, String)> = (2000..2100)
        .map(|u| (u.to_string(), format!("pw{u}")))
        .collect();
    let r = Sipp::scenario(scenario("register_auth.xml"))
        .local(ip, Some(port))
        .remote(sw.addr())
        .users(&users)
        .key("domain", DOMAIN)
        .key("expires", "600")
        .calls(100)
        .rate(50)
        .limit(20)
        .recv_timeout(Duration::from_secs(20))
        .timeout(Duration::from_secs(60))
        .run();
    r.assert_ok(100);
    assert_eq!(r.successful, 100);
    // Every user is bound to SIPp's address; spot-check a few by fetch.
    for u in ["2000", "2042", "2099"] {
        let contacts = fetch_bindings(&sw, u, &format!("pw{u}"));
        assert!(
            contacts.iter().any(|c| c.contains(&format!("{ip}:{port}"))),
            "user {u}: contacts {contacts:?} do not include {ip}:{port}"
        );
    }
}

#[test]
fn sha256_client_registers_and_bad_credentials_never_get_200() {
    let sw = registrar_switch();
    let mut c = SipClient::new(unique_loopback(), sw.addr());
    let contact = format!("sip:2001@{}", c.local);

    // Correct password over SHA-256 (RFC 8760).
    let ok = c.register(
        "2001",
        "pw2001",
        DOMAIN,
        Some(&contact),
        Some(600),
        Algorithm::Sha256,
        T,
    );
    let ch = ok.challenge.expect("the switch must challenge");
    assert_eq!(ch.algorithm, Algorithm::Sha256);
    assert_eq!(ch.realm, DOMAIN);
    assert_eq!(ok.response.status(), 200, "{:?}", ok.response);
    assert!(
        ok.response.contacts().iter().any(|k| k.contains(&contact)),
        "200 must list the binding: {:?}",
        ok.response
    );

    // Both algorithms are offered.
    let first = c
        .register_once("2001", DOMAIN, Some(&contact), Some(600), None, T)
        .unwrap();
    let algs: Vec<_> = first.challenges().iter().map(|c| c.algorithm).collect();
    assert!(
        algs.contains(&Algorithm::Md5) && algs.contains(&Algorithm::Sha256),
        "{first:?}"
    );

    // Wrong password: 401/403, never 200; for both algorithms.
    for alg in [Algorithm::Sha256, Algorithm::Md5] {
        let mut bad = SipClient::new(unique_loopback(), sw.addr());
        let r = bad.register(
            "2002",
            "wrong",
            DOMAIN,
            Some("sip:2002@127.0.0.1:9"),
            Some(600),
            alg,
            T,
        );
        assert!(
            matches!(r.response.status(), 401 | 403),
            "{alg:?} wrong password got {:?}",
            r.response
        );
    }
    // Unknown user.
    let mut unknown = SipClient::new(unique_loopback(), sw.addr());
    let r = unknown.register(
        "9999",
        "x",
        DOMAIN,
        Some("sip:9999@127.0.0.1:9"),
        Some(600),
        Algorithm::Sha256,
        T,
    );
    assert!(
        matches!(r.response.status(), 401 | 403 | 404),
        "{:?}",
        r.response
    );
    // And the failed attempts bound nothing.
    assert!(fetch_bindings(&sw, "2002", "pw2002").is_empty());
}

#[test]
fn replayed_nonce_count_is_refused() {
    let sw = registrar_switch();
    let mut c = SipClient::new(unique_loopback(), sw.addr());
    let contact = format!("sip:2003@{}", c.local);
    let first = c
        .register_once("2003", DOMAIN, Some(&contact), Some(600), None, T)
        .unwrap();
    assert_eq!(first.status(), 401);
    let ch = first
        .challenges()
        .into_iter()
        .find(|c| c.algorithm == Algorithm::Sha256)
        .expect("sha256 challenge");
    let auth = ch.authorization(
        "2003",
        "pw2003",
        "REGISTER",
        &format!("sip:{DOMAIN}"),
        1,
        &token(),
    );
    let ok = c
        .register_once("2003", DOMAIN, Some(&contact), Some(600), Some(&auth), T)
        .unwrap();
    assert_eq!(ok.status(), 200, "{ok:?}");
    // The very same Authorization (same nonce, nc=00000001, cnonce) again.
    let replay = c
        .register_once("2003", DOMAIN, Some(&contact), Some(600), Some(&auth), T)
        .unwrap();
    assert_ne!(
        replay.status(),
        200,
        "replayed nonce-count accepted: {replay:?}"
    );
    assert!(matches!(replay.status(), 401 | 403), "{replay:?}");
}

#[test]
fn expired_registration_disappears() {
    let sw = registrar_switch();
    let mut c = SipClient::new(unique_loopback(), sw.addr());
    let contact = format!("sip:2004@{}", c.local);
    let r = c.register(
        "2004",
        "pw2004",
        DOMAIN,
        Some(&contact),
        Some(2),
        Algorithm::Sha256,
        T,
    );
    assert_eq!(r.response.status(), 200, "{:?}", r.response);
    assert!(
        fetch_bindings(&sw, "2004", "pw2004")
            .iter()
            .any(|k| k.contains(&contact)),
        "binding missing right after REGISTER"
    );
    // Expires: 2 (min_expires = 1 in BASE); wait past it (bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    std::thread::sleep(Duration::from_millis(2500));
    loop {
        let b = fetch_bindings(&sw, "2004", "pw2004");
        if b.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "binding still listed long after expiry: {b:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn unregister_with_expires_zero_and_wildcard() {
    let sw = registrar_switch();
    let mut c = SipClient::new(unique_loopback(), sw.addr());
    let a = format!("sip:2005@{}", c.local);
    let b = format!("sip:2005-b@{}", c.local);
    for k in [&a, &b] {
        let r = c.register(
            "2005",
            "pw2005",
            DOMAIN,
            Some(k),
            Some(600),
            Algorithm::Sha256,
            T,
        );
        assert_eq!(r.response.status(), 200, "{:?}", r.response);
    }
    let both = fetch_bindings(&sw, "2005", "pw2005");
    assert!(
        both.iter().any(|k| k.contains(&a)) && both.iter().any(|k| k.contains(&b)),
        "{both:?}"
    );

    // Expires: 0 for one contact.
    let r = c.register(
        "2005",
        "pw2005",
        DOMAIN,
        Some(&a),
        Some(0),
        Algorithm::Sha256,
        T,
    );
    assert_eq!(r.response.status(), 200, "{:?}", r.response);
    let left = fetch_bindings(&sw, "2005", "pw2005");
    assert!(!left.iter().any(|k| k.contains(&a)), "{left:?}");
    assert!(left.iter().any(|k| k.contains(&b)), "{left:?}");

    // Contact: * with Expires: 0 removes everything.
    let r = c.register(
        "2005",
        "pw2005",
        DOMAIN,
        Some("*"),
        Some(0),
        Algorithm::Sha256,
        T,
    );
    assert_eq!(r.response.status(), 200, "{:?}", r.response);
    assert!(fetch_bindings(&sw, "2005", "pw2005").is_empty());

    // Contact: * without Expires: 0 is a 400 (RFC 3261 §10.3 step 6).
    let r = c.register(
        "2005",
        "pw2005",
        DOMAIN,
        Some("*"),
        Some(60),
        Algorithm::Sha256,
        T,
    );
    assert_eq!(r.response.status(), 400, "{:?}", r.response);
}
