//! Black-box trunk registration tests (issue 5): the switch registers to a
//! real Kamailio provider (digest, refresh, give-up, DID routing), a SIPp
//! gateway registers to the switch as a dynamic trunk, and brute-force
//! protection bans a source address after failed authentications.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Kamailio 5.6 (`kamailio` on PATH) running `tests/kamailio/<cfg>` on one
/// UDP listener; its stderr goes to `kamailio.log` in a temp dir. Stopped
/// (SIGTERM, then SIGKILL) on drop.
struct Kamailio {
    child: Option<Child>,
    dir: tempfile::TempDir,
    addr: SocketAddr,
}

impl Kamailio {
    fn start(cfg: &str) -> Kamailio {
        let cfg_path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/kamailio")
            .join(cfg);
        let dir = tempfile::Builder::new()
            .prefix("kamailio-")
            .tempdir()
            .unwrap();
        let ip = unique_loopback();
        let addr = SocketAddr::new(ip, free_port(ip));
        let log = std::fs::File::create(dir.path().join("kamailio.log")).unwrap();
        let child = Command::new("kamailio")
            .args(["-DD", "-E", "-n", "1", "-m", "64", "-M", "8", "-f"])
            .arg(&cfg_path)
            .arg("-l")
            .arg(format!("udp:{addr}"))
            .arg("-Y")
            .arg(dir.path())
            .arg("-P")
            .arg(dir.path().join("kamailio.pid"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run kamailio (Debian package kamailio): {e}"));
        let mut k = Kamailio {
            child: Some(child),
            dir,
            addr,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::UdpSocket::bind(addr).is_ok() {
            let exited = k
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            assert!(
                !exited && Instant::now() < deadline,
                "kamailio is not listening on {addr}:\n{}",
                k.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // The workers finish forking after the socket is bound.
        std::thread::sleep(Duration::from_millis(500));
        k
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
    }

    /// The `TKREG` lines (one per REGISTER) for From user `user`.
    fn registers(&self, user: &str) -> Vec<String> {
        let needle = format!("TKREG user={user} ");
        self.log()
            .lines()
            .filter_map(|l| l.find(&needle).map(|i| l[i..].to_string()))
            .collect()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- kamailio log ---\n{}\n--- end ---", tail(&self.log()));
        }
    }
}

fn tail(s: &str) -> &str {
    let start = s.len().saturating_sub(12_000);
    let start = (start..s.len())
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(s.len());
    &s[start..]
}

fn successes(lines: &[String]) -> usize {
    lines.iter().filter(|l| l.contains(" rc=1 ")).count()
}

/// REGISTERs that carried credentials (an Authorization header).
fn authenticated(lines: &[String]) -> usize {
    lines.iter().filter(|l| !l.contains(" au=<null> ")).count()
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

/// The Kamailio provider itself, without the switch: a SIPp customer
/// registers with digest (refused with a wrong password), receives a call
/// to its account through lookup + t_relay, and every REGISTER is logged.
/// So a failure of the next test points at the switch, not at Kamailio.
#[test]
fn kamailio_provider_selfcheck() {
    let kam = Kamailio::start("provider.cfg");
    let ip = unique_loopback();
    let port = free_port(ip);
    let register = |password: &str| {
        Sipp::scenario(scenario("register_auth.xml"))
            .local(ip, Some(port))
            .remote(kam.addr)
            .users(&[("provuser", password)])
            .key("domain", &kam.addr.ip().to_string())
            .key("expires", "3600")
            .calls(1)
            .trace_msg()
            .recv_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .run()
    };
    let bad = register("not-the-secret");
    assert_ne!(bad.exit_code, Some(0), "Kamailio accepted a wrong password");
    let ok = register("provsecret");
    ok.assert_ok(1);
    // max_expires 10: the granted expiry is 10 s.
    assert!(ok.messages.contains("expires=10"), "{}", ok.messages);
    let lines = kam.registers("provuser");
    assert_eq!(successes(&lines), 1, "{lines:?}");
    assert!(authenticated(&lines) >= 2, "{lines:?}");

    let customer = Sipp::scenario(scenario("uas.xml"))
        .local(ip, Some(port))
        .calls(1)
        .trace_msg()
        .timeout(Duration::from_secs(30))
        .spawn();
    uac_to(
        scenario("uac_bye.xml"),
        unique_loopback(),
        kam.addr,
        "provuser",
    )
    .run()
    .assert_ok(1);
    let got = customer.wait();
    got.assert_ok(1);
    assert!(
        received_request(&got.messages, "INVITE")
            .unwrap()
            .starts_with("INVITE sip:provuser@"),
        "{}",
        got.messages
    );
}

#[test]
fn registers_to_kamailio_refreshes_gives_up_on_wrong_secret_and_routes_the_did() {
    let kam = Kamailio::start("provider.cfg");
    let k = kam.addr;
    let callee = uas(scenario("uas.xml"), 1);
    // "prov": register string with DID 5550100 (the provider grants 10 s,
    // we ask the default 3600). "bad": wrong secret, 2 attempts 1 s apart.
    let cfg = format!(
        "{BASE}[[trunks]]\nname = \"prov\"\nhost = \"{ip}\"\nport = {port}\ninbound = \"ip\"\n\
         register_string = \"provuser:provsecret@{ip}:{port}/5550100\"\n\n\
         [[trunks]]\nname = \"bad\"\nhost = \"{ip}\"\nport = {port}\ninbound = \"none\"\n\
         register = true\nusername = \"baduser\"\nsecret = \"wrong-secret\"\n\
         register_attempts = 2\nregister_retry_s = 1\n\n{ROUTE_BINDING}",
        ip = k.ip(),
        port = k.port()
    );
    let routes = format!(
        r#"{{"routes": [{{"name": "did", "b": ["5550100"], "source": ["trunk:prov"], "destination": {{"uri": "sip:${{B}}@{}"}}}}]}}"#,
        callee.addr().unwrap()
    );
    let started = Instant::now();
    let sw = Switch::builder(&cfg).file("routes.json", routes).start();

    // Digest registration succeeds.
    assert!(
        wait_until(Duration::from_secs(20), || successes(
            &kam.registers("provuser")
        ) >= 1),
        "no successful REGISTER from the switch: {:?}",
        kam.registers("provuser")
    );
    let first_ok = Instant::now();
    let first = kam.registers("provuser");
    assert!(
        first
            .iter()
            .any(|l| l.contains("contact=<sip:5550100@") || l.contains("contact=sip:5550100@")),
        "the REGISTER Contact does not carry the DID: {first:?}"
    );

    // An inbound call to the account reaches the switch with R-URI user =
    // the DID, which route-table routes (the route matches B = 5550100 from
    // trunk prov only).
    let caller_ip = unique_loopback();
    uac_to(scenario("uac_bye.xml"), caller_ip, k, "provuser")
        .run()
        .assert_ok(1);
    let got = callee.wait();
    got.assert_ok(1);
    let invite = received_request(&got.messages, "INVITE").unwrap();
    assert!(
        invite.starts_with("INVITE sip:5550100@"),
        "callee R-URI: {}",
        invite.lines().next().unwrap()
    );
    assert!(
        kam.log().contains("TKCALL relay ruri=sip:5550100@"),
        "Kamailio did not relay to the DID contact"
    );

    // Refresh before the granted 10 s run out.
    assert!(
        wait_until(
            Duration::from_secs(10).saturating_sub(first_ok.elapsed()),
            || successes(&kam.registers("provuser")) >= 2
        ),
        "no refresh within the granted 10 s: {:?}",
        kam.registers("provuser")
    );

    // The wrong secret: at most 2 authenticated attempts over >= 6 s.
    let six = Duration::from_secs(6);
    if started.elapsed() < six {
        std::thread::sleep(six - started.elapsed());
    }
    let bad = kam.registers("baduser");
    let tries = authenticated(&bad);
    assert!(
        (1..=2).contains(&tries),
        "expected 1..=2 authenticated REGISTERs with the wrong secret, got {tries}: {bad:?}"
    );
    assert_eq!(successes(&bad), 0, "{bad:?}");
    drop(sw);
}

#[test]
fn dynamic_trunk_registers_to_us_and_receives_its_calls() {
    let pbx_ip = unique_loopback();
    let cfg = format!(
        "{BASE}[[trunks]]\nname = \"gw\"\nhost = \"dynamic\"\ninbound = \"register\"\n\
         username = \"gwuser\"\nsecret = \"gwsecret\"\n\n{}{ROUTE_BINDING}",
        trusted_trunk("pbx", pbx_ip)
    );
    let routes = r#"{"routes": [{"name": "to-gw", "b": ["_X."], "destination": {"trunk": "gw"}}]}"#;
    let sw = Switch::builder(&cfg).file("routes.json", routes).start();

    // The gateway registers (digest) ...
    // ... and a SIPp UAS on that address receives the trunk's call.
    let gw = registered_uas(&sw, "gwuser", "gwsecret");
    uac(scenario("uac_bye.xml"), pbx_ip, &sw, "5511333344444")
        .run()
        .assert_ok(1);
    let got = gw.wait();
    got.assert_ok(1);
    let invite = received_request(&got.messages, "INVITE").unwrap();
    assert!(
        invite.contains("5511333344444"),
        "the gateway's INVITE does not carry the B number:\n{invite}"
    );
}

#[test]
fn three_bad_passwords_ban_the_source_address_only() {
    let cfg = format!(
        "{BASE}{}[protection]\nban_failures = 3\nban_window_s = 60\nban_time_s = 300\n\n",
        users_toml(1001, 1)
    );
    let sw = Switch::start(&cfg);
    let x = unique_loopback();
    let contact = |c: &SipClient| format!("sip:1001@{}", c.local);

    let mut last_challenge = None;
    for i in 0..3 {
        let mut c = SipClient::new(x, sw.addr());
        let out = c.register(
            "1001",
            "wrong",
            DOMAIN,
            Some(&contact(&c)),
            Some(60),
            Algorithm::Md5,
            T,
        );
        assert!(
            matches!(out.response.status(), 401 | 403),
            "bad password #{} got {:?}",
            i + 1,
            out.response
        );
        last_challenge = out.challenge;
    }

    // X is now ignored, even with the right password.
    let mut c = SipClient::new(x, sw.addr());
    let ch = last_challenge.expect("the switch challenged the REGISTERs");
    let auth = ch.authorization(
        "1001",
        "pw1001",
        "REGISTER",
        &format!("sip:{DOMAIN}"),
        1,
        &strowger_testkit::sip::token(),
    );
    let contact_x = contact(&c);
    let reply = c.register_once(
        "1001",
        DOMAIN,
        Some(&contact_x),
        Some(60),
        Some(&auth),
        Duration::from_secs(3),
    );
    assert!(
        reply.is_none(),
        "the banned address got an answer: {reply:?}"
    );
    assert!(
        c.register_once(
            "1001",
            DOMAIN,
            Some(&contact_x),
            Some(60),
            None,
            Duration::from_secs(2)
        )
        .is_none(),
        "the banned address got an answer to a plain REGISTER"
    );

    // Another address registers normally.
    let mut y = SipClient::new(unique_loopback(), sw.addr());
    let contact_y = contact(&y);
    let out = y.register(
        "1001",
        "pw1001",
        DOMAIN,
        Some(&contact_y),
        Some(60),
        Algorithm::Md5,
        T,
    );
    assert_eq!(out.response.status(), 200, "{:?}", out.response);
}
