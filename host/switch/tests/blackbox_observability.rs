//! Black-box observability tests: the real `strowger` binary after real
//! SIP traffic (SIPp registrations and a call, a raw digest client with a
//! wrong password). `/metrics` must pass Prometheus' own checker
//! (`promtool check metrics`, Debian package `prometheus`, installed by
//! `scripts/install-deps.sh`) and carry the SIP series; the log must be
//! plain text (stderr is a file here), or JSON lines with `[log] format =
//! "json"`, and a failed login must be found by the fail2ban filter in
//! `docs/fail2ban/strowger.conf` (its regex applied by Python's `re`, the
//! engine fail2ban uses, with fail2ban's own `<HOST>` pattern); the log
//! filter changes at run time through `PUT /v1/log/level`.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const TOKEN: &str = "observability-test-token";

fn admin_toml() -> String {
    format!("[admin]\ntoken = \"{TOKEN}\"\n\n")
}

/// One HTTP/1.1 request to the switch's admin API; (status, headers, body).
fn http(
    sw: &Switch,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let url = sw.admin_url().expect("admin API enabled");
    let host = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(host).expect("connect to the admin API");
    s.set_read_timeout(Some(T)).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the answer");
    let raw = String::from_utf8(raw).expect("UTF-8 answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP answer");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    (code, head.to_ascii_lowercase(), body.to_string())
}

/// The value of the sample `series` (name with its labels, as written).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().expect("sample value"))
}

fn at_least(text: &str, series: &str, min: f64) {
    let v = value(text, series).unwrap_or_else(|| panic!("no sample {series} in:\n{text}"));
    assert!(v >= min, "{series} = {v}, expected at least {min}");
}

/// Runs `promtool check metrics` on `text`; panics (never passes) when
/// promtool is missing.
fn promtool_check(text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!(
            "promtool is needed to check /metrics ({e}): install Debian's `prometheus` package \
             (scripts/install-deps.sh does)"
        ),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused /metrics:\n{}{}\n--- metrics ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits (bounded) until the switch's log contains `needle`.
fn wait_log(sw: &Switch, needle: &str) -> String {
    let deadline = Instant::now() + T;
    loop {
        let log = sw.log();
        if log.contains(needle) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "the log has no `{needle}`:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A REGISTER for `user` answered with `password` (wrong or right) from a
/// fresh client on `ip`; returns the final status.
fn register_from(sw: &Switch, ip: IpAddr, user: &str, password: &str) -> u16 {
    let mut c = SipClient::new(ip, sw.addr());
    let contact = format!("sip:{user}@{}", c.local);
    c.register(
        user,
        password,
        DOMAIN,
        Some(&contact),
        Some(300),
        Algorithm::Md5,
        T,
    )
    .response
    .status()
}

/// The addresses fail2ban would take from `log` with the filter in
/// docs/fail2ban/strowger.conf: every `failregex` line with `<HOST>`
/// replaced by fail2ban's pattern (fail2ban 1.0 `failregex.py`, usedns
/// default), applied with Python's `re` to each line with its leading
/// timestamp cut out, as fail2ban does before it matches.
fn fail2ban_hosts(log: &str) -> Vec<String> {
    let filter =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/fail2ban/strowger.conf");
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("strowger.log");
    std::fs::write(&log_path, log).unwrap();
    let script = r#"
import re, sys
filt, logf = sys.argv[1], sys.argv[2]
IP4 = r"(?:\d{1,3}\.){3}\d{1,3}"
IP6 = r"(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|(?<=:):)"
ADDR = r"\[?(?:(?:::f{4,6}:)?(?P<ip4>%s)|(?P<ip6>%s))\]?" % (IP4, IP6)
HOST = r"(?:%s|(?P<dns>[\w\-.^_]*\w))" % ADDR
regexes, inside = [], False
for line in open(filt):
    line = line.rstrip("\n")
    if line.startswith("failregex"):
        inside = True
        line = line.split("=", 1)[1]
    elif inside and not (line[:1].isspace() and line.strip()):
        inside = False
    if inside and line.strip():
        regexes.append(re.compile(line.strip().replace("<HOST>", HOST)))
if not regexes:
    sys.exit("no failregex in " + filt)
DATE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")
for line in open(logf):
    line = line.rstrip("\n")
    cut = DATE.sub("", line, count=1)
    for r in regexes:
        m = r.search(cut)
        if m:
            print(m.group("ip4") or m.group("ip6") or m.group("dns"))
            break
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&filter)
        .arg(&log_path)
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed to apply the fail2ban filter's regex ({e})"));
    assert!(
        out.status.success(),
        "applying {}: {}",
        filter.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn metrics_after_sip_traffic_pass_promtool_and_count_sip() {
    let callee = uas(scenario("uas.xml"), 1);
    let uac_ip = unique_loopback();
    let cfg = format!(
        "{BASE}{}{}{ROUTE_BINDING}{}",
        users_toml(3000, 3),
        trusted_trunk("sipp-uac", uac_ip),
        admin_toml()
    );
    let sw = Switch::builder(&cfg)
        .file("routes.json", routes_to_uri(callee.addr().unwrap()))
        .start();

    // three registrations (SIPp, MD5 digest)
    let ip = unique_loopback();
    let users: Vec<(String, String)> = (3000..3003)
        .map(|u| (u.to_string(), format!("pw{u}")))
        .collect();
    Sipp::scenario(scenario("register_auth.xml"))
        .local(ip, Some(free_port(ip)))
        .remote(sw.addr())
        .users(&users)
        .key("domain", DOMAIN)
        .key("expires", "300")
        .calls(3)
        .timeout(Duration::from_secs(30))
        .run()
        .assert_ok(3);
    // a wrong password
    let bad_ip = unique_loopback();
    assert_ne!(register_from(&sw, bad_ip, "3001", "wrong"), 200);
    // a call, answered and hung up by the caller
    uac(scenario("uac_bye.xml"), uac_ip, &sw, "5511333344444")
        .run()
        .assert_ok(1);
    callee.wait().assert_ok(1);

    let (code, head, text) = http(&sw, "GET", "/metrics", &[], "");
    assert_eq!(code, 200, "{text}");
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    promtool_check(&text);

    // SIP by method and code, transactions, registrations, auth, calls
    at_least(
        &text,
        "strowger_sip_requests_received_total{method=\"REGISTER\"}",
        7.0,
    );
    at_least(
        &text,
        "strowger_sip_requests_received_total{method=\"INVITE\"}",
        1.0,
    );
    at_least(
        &text,
        "strowger_sip_requests_received_total{method=\"BYE\"}",
        1.0,
    );
    at_least(
        &text,
        "strowger_sip_requests_sent_total{method=\"INVITE\"}",
        1.0,
    );
    at_least(
        &text,
        "strowger_sip_requests_sent_total{method=\"BYE\"}",
        1.0,
    );
    at_least(
        &text,
        "strowger_sip_responses_sent_total{code=\"401\"}",
        4.0,
    );
    at_least(
        &text,
        "strowger_sip_responses_sent_total{code=\"200\"}",
        5.0,
    );
    at_least(
        &text,
        "strowger_sip_responses_received_total{code=\"200\"}",
        2.0,
    );
    at_least(
        &text,
        "strowger_sip_transactions_total{role=\"server\"}",
        9.0,
    );
    at_least(
        &text,
        "strowger_sip_transactions_total{role=\"client\"}",
        2.0,
    );
    at_least(&text, "strowger_register_results_total{code=\"200\"}", 3.0);
    at_least(&text, "strowger_registers_accepted_total", 3.0);
    at_least(&text, "strowger_auth_failures_total", 1.0);
    at_least(&text, "strowger_registrations", 3.0);
    assert_eq!(value(&text, "strowger_calls_started_total"), Some(1.0));
    assert_eq!(value(&text, "strowger_calls_answered_total"), Some(1.0));
    assert_eq!(
        value(
            &text,
            "strowger_calls_ended_total{ingress_trunk=\"sipp-uac\",egress_trunk=\"\",cause=\"normal\"}"
        ),
        Some(1.0),
        "{text}"
    );
    // families present: protection, trunks, relay, store, plugin histogram
    for family in [
        "strowger_protection_bans_total",
        "strowger_protection_dropped_total",
        "strowger_sip_retransmissions_total",
        "strowger_trunk_up",
        "strowger_relay_sessions",
        "strowger_relay_packets_total",
        "strowger_relay_rtp_lost_packets_total",
        "strowger_store_write_queue",
        "strowger_plugin_decision_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "no family {family}:\n{text}"
        );
    }
    assert_eq!(
        value(&text, "strowger_trunk_up{trunk=\"sipp-uac\"}"),
        Some(1.0)
    );
    let inf = text
        .lines()
        .find(|l| {
            l.starts_with("strowger_plugin_decision_seconds_bucket{plugin=\"route-table\"")
                && l.contains("le=\"+Inf\"")
        })
        .unwrap_or_else(|| panic!("no +Inf bucket for route-table:\n{text}"));
    assert!(inf.ends_with(" 1"), "{inf}");

    // OpenMetrics when asked for, as Prometheus asks
    let (code, head, om) = http(
        &sw,
        "GET",
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        )],
        "",
    );
    assert_eq!(code, 200);
    assert!(
        head.contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(
        om.contains("# TYPE strowger_sip_requests_received counter\n"),
        "{om}"
    );
    assert!(
        !om.lines()
            .any(|l| l.starts_with("# TYPE ") && l.ends_with("_total counter")),
        "an OpenMetrics counter family is named with _total:\n{om}"
    );
}

#[test]
fn failed_login_is_one_plain_log_line_the_fail2ban_filter_matches() {
    let cfg = format!("{BASE}{}{}", users_toml(3100, 2), admin_toml());
    let sw = Switch::start(&cfg);
    let good_ip = unique_loopback();
    assert_eq!(register_from(&sw, good_ip, "3100", "pw3100"), 200);
    let bad_ip = unique_loopback();
    assert_ne!(register_from(&sw, bad_ip, "3101", "not-the-password"), 200);
    // a user name that tries to write a line naming another address
    let forged = "x%0A2026-01-01T00:00:00.000000Z%20%20WARN%20a%3A%20authentication%20failed%20from%20192.0.2.99";
    let forger_ip = unique_loopback();
    assert_ne!(register_from(&sw, forger_ip, forged, "pw"), 200);

    wait_log(&sw, &format!("authentication failed from {forger_ip}"));
    let log = wait_log(&sw, &format!("authentication failed from {bad_ip}"));
    // stderr is a file: no colour codes
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escape codes in the log:\n{log}"
    );
    // one line per REGISTER result
    assert!(
        log.lines()
            .any(|l| l.contains("REGISTER accepted") && l.contains(&good_ip.to_string())),
        "{log}"
    );
    let hosts = fail2ban_hosts(&log);
    assert!(
        hosts.contains(&bad_ip.to_string()),
        "the fail2ban filter did not find {bad_ip} in:\n{log}\nfound: {hosts:?}"
    );
    assert!(hosts.contains(&forger_ip.to_string()), "{hosts:?}");
    assert!(
        !hosts.iter().any(|h| h == "192.0.2.99"),
        "a user name forged a fail2ban match: {hosts:?}\n{log}"
    );
    assert!(!hosts.contains(&good_ip.to_string()), "{hosts:?}");
}

#[test]
fn json_log_lines_parse_and_feed_the_fail2ban_filter() {
    let cfg = format!(
        "{BASE}{}{}[log]\nformat = \"json\"\n",
        users_toml(3200, 1),
        admin_toml()
    );
    let sw = Switch::start(&cfg);
    let bad_ip = unique_loopback();
    assert_ne!(register_from(&sw, bad_ip, "3200", "wrong"), 200);
    let log = wait_log(&sw, &format!("authentication failed from {bad_ip}"));
    let mut n = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\n--- log ---\n{log}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
        n += 1;
    }
    assert!(n >= 3, "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("authentication failed from"))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["level"], "WARN");
    assert_eq!(v["user"], "3200", "{line}");
    assert_eq!(fail2ban_hosts(&log), vec![bad_ip.to_string()], "{log}");
}

#[test]
fn log_level_changes_at_run_time_through_the_api() {
    let cfg = format!("{BASE}{}{}", users_toml(3300, 1), admin_toml());
    let sw = Switch::start(&cfg);
    let auth = format!("Bearer {TOKEN}");
    let json = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    // at info, a challenge is not logged
    assert_eq!(register_from(&sw, unique_loopback(), "3300", "pw3300"), 200);
    wait_log(&sw, "REGISTER accepted");
    assert!(!sw.log().contains("REGISTER challenged"), "{}", sw.log());

    // a token is needed
    let (code, _, body) = http(&sw, "PUT", "/v1/log/level", &[], r#"{"level":"debug"}"#);
    assert_eq!(code, 401, "{body}");
    // a bad filter: 400 JSON naming the field, nothing changed
    let (code, _, body) = http(
        &sw,
        "PUT",
        "/v1/log/level",
        &json,
        r#"{"level":"strowger_switch=loud"}"#,
    );
    assert_eq!(code, 400, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["field"], "level", "{body}");
    assert!(v["error"].as_str().unwrap().contains("loud"), "{body}");
    let (code, _, body) = http(&sw, "PUT", "/v1/log/level", &json, r#"{"level":""}"#);
    assert_eq!(code, 400, "{body}");
    let (code, _, body) = http(&sw, "GET", "/v1/log/level", &json[..1], "");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["level"], "info", "{body}");

    // debug for the switch: the challenge step is logged now
    let (code, _, body) = http(
        &sw,
        "PUT",
        "/v1/log/level",
        &json,
        r#"{"level":"info,strowger_switch=debug"}"#,
    );
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["level"], "info,strowger_switch=debug");
    assert_eq!(register_from(&sw, unique_loopback(), "3300", "pw3300"), 200);
    wait_log(&sw, "REGISTER challenged");

    // and back to warn: a successful REGISTER writes nothing more
    let (code, _, _) = http(&sw, "PUT", "/v1/log/level", &json, r#"{"level":"warn"}"#);
    assert_eq!(code, 200);
    let accepted = sw.log().matches("REGISTER accepted").count();
    let bad_ip = unique_loopback();
    assert_ne!(register_from(&sw, bad_ip, "3300", "wrong"), 200);
    assert_eq!(register_from(&sw, unique_loopback(), "3300", "pw3300"), 200);
    // the failed login (WARN) is written, the accepted REGISTER (INFO) is not
    let log = wait_log(&sw, &format!("authentication failed from {bad_ip}"));
    assert_eq!(log.matches("REGISTER accepted").count(), accepted, "{log}");
}
