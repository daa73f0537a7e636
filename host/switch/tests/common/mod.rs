//! Helpers shared by the black-box tests (each test file includes this).
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

pub use strowger_testkit::paths::scenario;
pub use strowger_testkit::sipp::RunningSipp;
pub use strowger_testkit::{Algorithm, SipClient, Sipp, Switch, free_port, unique_loopback};

/// Default SIP domain of the switch.
pub const DOMAIN: &str = "strowger.local";
/// Generous per-exchange timeout for a loaded 2-core machine.
pub const T: Duration = Duration::from_secs(10);

/// A scenario file with `@KEY@` placeholders substituted, written to a
/// process-wide temp dir.
pub fn scenario_with(name: &str, subst: &[(&str, &str)]) -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap());
    let mut text = std::fs::read_to_string(scenario(name)).unwrap();
    let mut file = name.trim_end_matches(".xml").to_string();
    for (k, v) in subst {
        text = text.replace(&format!("@{k}@"), v);
        file.push('_');
        file.push_str(&v.replace([' ', '/', '\n'], "_"));
    }
    let p = dir.path().join(format!("{file}.xml"));
    std::fs::write(&p, text).unwrap();
    p
}

/// `[[users]]` entries `first..first+n` with password `pw<user>`.
pub fn users_toml(first: u32, n: u32) -> String {
    (first..first + n)
        .map(|u| format!("[[users]]\nuser = \"{u}\"\npassword = \"pw{u}\"\n\n"))
        .collect()
}

/// A trunk trusted by source IP.
pub fn trusted_trunk(name: &str, ip: IpAddr) -> String {
    format!("[[trunks]]\nname = \"{name}\"\nhost = \"{ip}\"\ninbound = \"ip\"\n\n")
}

/// The route binding to route-table with `routes.json`.
pub const ROUTE_BINDING: &str = "[[bindings]]\nhook = \"route\"\nplugin = \"route-table\"\nconfig_file = \"routes.json\"\ndeadline_ms = 2000\n\n";

/// Base config: the default `[auth]` (SIPp registers with it), short
/// minimum expiry for expiry tests.
pub const BASE: &str = "[registrar]\nmin_expires = 1\n\n";

/// route-table JSON sending every number to one SIP URI.
pub fn routes_to_uri(uas: SocketAddr) -> String {
    format!(
        r#"{{"routes": [{{"name": "to-uas", "b": ["_X."], "destination": {{"uri": "sip:${{B}}@{uas}"}}}}]}}"#
    )
}

/// Start a switch trusting `uac_ip` and routing every number to `uas`.
pub fn switch_to_uri(uac_ip: IpAddr, uas: SocketAddr) -> Switch {
    let cfg = format!("{BASE}{}{ROUTE_BINDING}", trusted_trunk("sipp-uac", uac_ip));
    Switch::builder(&cfg)
        .file("routes.json", routes_to_uri(uas))
        .start()
}

/// A SIPp UAS on a fresh loopback address and port, for `calls` calls.
pub fn uas(scenario_path: PathBuf, calls: u64) -> RunningSipp {
    let ip = unique_loopback();
    let port = free_port(ip);
    Sipp::scenario(scenario_path)
        .local(ip, Some(port))
        .calls(calls)
        .arg("-d")
        .arg("300")
        .trace_msg()
        .timeout(Duration::from_secs(90))
        .spawn()
}

/// A SIPp UAC from `ip` to the switch calling `number`.
pub fn uac(scenario_path: PathBuf, ip: IpAddr, sw: &Switch, number: &str) -> Sipp {
    uac_to(scenario_path, ip, sw.addr(), number)
}

/// [`uac`] towards any SIP server (e.g. a Kamailio provider).
pub fn uac_to(scenario_path: PathBuf, ip: IpAddr, remote: SocketAddr, number: &str) -> Sipp {
    Sipp::scenario(scenario_path)
        .local(ip, None)
        .remote(remote)
        .service(number)
        .key("caller", "5511999990000")
        .arg("-d")
        .arg("300")
        .calls(1)
        .trace_msg()
        .recv_timeout(Duration::from_secs(20))
        .timeout(Duration::from_secs(60))
}

/// Register `user` with the SIPp `register_auth` scenario from `ip:port`
/// (so that a SIPp UAS bound there later receives the calls).
pub fn sipp_register(sw: &Switch, ip: IpAddr, port: u16, user: &str, password: &str) {
    Sipp::scenario(scenario("register_auth.xml"))
        .local(ip, Some(port))
        .remote(sw.addr())
        .users(&[(user, password)])
        .key("domain", DOMAIN)
        .key("expires", "300")
        .calls(1)
        .trace_msg()
        .timeout(Duration::from_secs(30))
        .run()
        .assert_ok(1);
}

/// REGISTER without Contact (a binding fetch) with SHA-256 credentials from
/// a fresh client; returns the final response's contacts.
pub fn fetch_bindings(sw: &Switch, user: &str, password: &str) -> Vec<String> {
    let mut c = SipClient::new(unique_loopback(), sw.addr());
    let out = c.register(user, password, DOMAIN, None, None, Algorithm::Sha256, T);
    assert_eq!(
        out.response.status(),
        200,
        "binding fetch for {user} failed: {:?}",
        out.response
    );
    out.response.contacts()
}

/// The requests received in a SIPp message log (`-trace_msg`), as text
/// (CRLF-normalised), in arrival order; retransmissions (same Call-ID and
/// CSeq) are dropped.
pub fn received_requests(log: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for block in log.split("\n-----------------------------------------------") {
        let mut lines = block.lines();
        lines.next(); // the separator's date (or the log's first line)
        let is_received = lines.next().is_some_and(|l| l.contains("message received"));
        let msg: String = lines
            .skip_while(|l| l.trim().is_empty())
            .map(|l| format!("{}\n", l.trim_end_matches('\r')))
            .collect();
        if !is_received || msg.starts_with("SIP/2.0") || msg.is_empty() {
            continue;
        }
        let key = (header(&msg, "Call-ID", "i"), header(&msg, "CSeq", ""));
        if seen.insert(key) {
            out.push(msg);
        }
    }
    out
}

/// How many distinct `method` requests a SIPp message log shows received.
pub fn count_requests(log: &str, method: &str) -> usize {
    received_requests(log)
        .iter()
        .filter(|m| m.starts_with(&format!("{method} ")))
        .count()
}

/// The first `method` request received in a SIPp message log.
pub fn received_request(log: &str, method: &str) -> Option<String> {
    received_requests(log)
        .into_iter()
        .find(|m| m.starts_with(&format!("{method} ")))
}

/// A header's value in a message's text (full or compact name).
pub fn header(msg: &str, name: &str, compact: &str) -> Option<String> {
    msg.lines()
        .take_while(|l| !l.trim().is_empty())
        .skip(1)
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            let n = n.trim();
            (n.eq_ignore_ascii_case(name)
                || (!compact.is_empty() && n.eq_ignore_ascii_case(compact)))
            .then(|| v.trim().to_string())
        })
}

/// Register `user` from a fresh loopback address (SIPp `register_auth`),
/// then start a SIPp UAS (`uas.xml`, one call) on that same address, so it
/// receives the calls sent to the registration.
pub fn registered_uas(sw: &Switch, user: &str, password: &str) -> RunningSipp {
    let ip = unique_loopback();
    let port = free_port(ip);
    sipp_register(sw, ip, port, user, password);
    Sipp::scenario(scenario("uas.xml"))
        .local(ip, Some(port))
        .calls(1)
        .trace_msg()
        .timeout(Duration::from_secs(60))
        .spawn()
}
