//! The default `[auth]` works with the tools and phones users have: SIPp
//! (which answers only the first challenge, and only MD5) registers against
//! a switch whose config has no `[auth]` section at all, and SHA-256 stays
//! offered for RFC 8760 clients.

mod common;

use std::time::Duration;

use common::*;

/// Users only: no `[auth]`, no `[registrar]`: every default applies.
fn default_switch() -> Switch {
    Switch::start(&users_toml(3000, 2))
}

#[test]
fn sipp_registers_with_the_default_auth_config() {
    let sw = default_switch();
    let ip = unique_loopback();
    let port = free_port(ip);
    let r = Sipp::scenario(scenario("register_auth.xml"))
        .local(ip, Some(port))
        .remote(sw.addr())
        .users(&[("3000", "pw3000")])
        .key("domain", DOMAIN)
        .key("expires", "600")
        .calls(1)
        .trace_msg()
        .recv_timeout(Duration::from_secs(20))
        .timeout(Duration::from_secs(40))
        .run();
    r.assert_ok(1);
    let contacts = fetch_bindings(&sw, "3000", "pw3000");
    assert!(
        contacts.iter().any(|c| c.contains(&format!("{ip}:{port}"))),
        "contacts {contacts:?} do not include SIPp at {ip}:{port}"
    );
}

#[test]
fn default_challenges_md5_first_and_still_offer_sha256() {
    let sw = default_switch();
    let mut c = SipClient::new(unique_loopback(), sw.addr());
    let contact = format!("sip:3001@{}", c.local);
    let first = c
        .register_once("3001", DOMAIN, Some(&contact), Some(600), None, T)
        .unwrap();
    let algs: Vec<_> = first.challenges().iter().map(|c| c.algorithm).collect();
    assert_eq!(algs, [Algorithm::Md5, Algorithm::Sha256], "{first:?}");
    // An RFC 8760 client answering the SHA-256 challenge registers.
    let ok = c.register(
        "3001",
        "pw3001",
        DOMAIN,
        Some(&contact),
        Some(600),
        Algorithm::Sha256,
        T,
    );
    assert_eq!(ok.response.status(), 200, "{:?}", ok.response);
}
