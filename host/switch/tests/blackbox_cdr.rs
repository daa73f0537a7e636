//! Black-box: every call keeps its CDR across restarts (graceful and
//! kill -9), and a panic in the switch core makes `strowger serve` exit
//! non-zero instead of staying up without serving SIP.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use strowger_store::rusqlite::{Connection, OpenFlags};
use strowger_store::{CdrFilter, Store};

/// Calls per phase (three phases: start, after a restart, after kill -9).
const CALLS: u64 = 5;

/// `CALLS` SIPp calls (INVITE, 200, ACK, BYE) from `ip` through the switch.
fn calls(ip: IpAddr, sw: &Switch, number: &str) {
    Sipp::scenario(scenario("uac_bye.xml"))
        .local(ip, None)
        .remote(sw.addr())
        .service(number)
        .key("caller", "5511999990000")
        .arg("-d")
        .arg("100")
        .calls(CALLS)
        .rate(10)
        .trace_msg()
        .recv_timeout(Duration::from_secs(20))
        .timeout(Duration::from_secs(90))
        .run()
        .assert_ok(CALLS);
}

/// CDR rows committed to the switch's store file (a read-only connection:
/// WAL readers see every acknowledged write, next to the running switch).
fn cdr_rows(db: &Path) -> i64 {
    let Ok(c) = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return -1;
    };
    c.query_row("SELECT count(*) FROM cdrs", [], |r| r.get(0))
        .unwrap_or(-1)
}

/// Waits (bounded) until the store holds `n` CDRs.
fn wait_cdrs(sw: &Switch, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let have = cdr_rows(&sw.store_path());
        if have == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the store holds {have} CDRs, expected {n} (calls without a CDR)"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_call_keeps_its_cdr_across_restart_and_kill_9() {
    // one callee for all phases (it outlives the switch's restarts)
    let callee_ip = unique_loopback();
    let callee = Sipp::scenario(scenario("uas.xml"))
        .local(callee_ip, Some(free_port(callee_ip)))
        .calls(3 * CALLS)
        .arg("-d")
        .arg("100")
        .trace_msg()
        .timeout(Duration::from_secs(400))
        .spawn();
    let uac_ip = unique_loopback();
    let mut sw = switch_to_uri(uac_ip, callee.addr().unwrap());

    calls(uac_ip, &sw, "5511300000001");
    wait_cdrs(&sw, CALLS as i64);
    sw.restart();
    calls(uac_ip, &sw, "5511300000002");
    // every CDR acknowledged (committed), then a crash
    wait_cdrs(&sw, 2 * CALLS as i64);
    sw.kill();
    sw.restart();
    calls(uac_ip, &sw, "5511300000003");
    assert!(sw.stop().is_some(), "switch did not exit on SIGTERM");
    callee.wait().assert_ok(3 * CALLS);

    let store = Store::open(sw.store_path()).expect("open the switch's store");
    let cdrs = store.query_cdrs_blocking(&CdrFilter::default()).unwrap();
    assert_eq!(cdrs.len() as u64, 3 * CALLS, "one CDR per call: {cdrs:#?}");
    let ids: HashSet<&str> = cdrs.iter().map(|c| c.call_id.as_str()).collect();
    assert_eq!(ids.len(), cdrs.len(), "call ids repeat: {ids:?}");
    for phase in 1..=3 {
        let n = cdrs
            .iter()
            .filter(|c| c.b_number == format!("551130000000{phase}"))
            .count();
        assert_eq!(n as u64, CALLS, "phase {phase}: {cdrs:#?}");
    }
    for c in &cdrs {
        assert_eq!(c.call_id.len(), 26, "a ULID: {}", c.call_id);
        assert_eq!(c.final_code, 200, "{c:#?}");
        assert_eq!(c.attempts.len(), 1, "{c:#?}");
        assert_eq!(
            c.attempts[0].final_code,
            Some(200),
            "the answered attempt's status: {c:#?}"
        );
    }
    assert!(
        !sw.log().contains("record dropped"),
        "a store write was dropped:\n{}",
        sw.log()
    );
}

/// One HTTP/1.0 GET on the admin API: (status, body).
fn http_get(admin: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&admin, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {admin}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

#[test]
fn a_core_panic_makes_serve_exit_70() {
    let uac_ip = unique_loopback();
    // nothing listens there: the switch panics before it would send
    let nowhere: SocketAddr = SocketAddr::new(unique_loopback(), 9);
    let cfg = format!(
        "{BASE}[admin]\ntoken = \"t0ken-abcdef\"\n\n{}{ROUTE_BINDING}",
        trusted_trunk("sipp-uac", uac_ip)
    );
    let mut sw = Switch::builder(&cfg)
        .file("routes.json", routes_to_uri(nowhere))
        .env("STROWGER_FAULT_INJECT", "panic-on-invite")
        .start();
    let admin: SocketAddr = sw
        .admin_url()
        .unwrap()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    // up and serving: /readyz says so, without a token
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = loop {
        if let Some((200, body)) = http_get(admin, "/readyz") {
            break body;
        }
        assert!(Instant::now() < deadline, "/readyz never answered 200");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(ready.contains("\"sip\":true"), "{ready}");

    // a call: forwarding it hits the injected panic in the core
    let mut caller = SipClient::new(uac_ip, sw.addr());
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 {uac_ip}\r\ns=-\r\nc=IN IP4 {uac_ip}\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"
    );
    let cseq = caller.next_cseq();
    let (invite, _) = caller.build_request(
        "INVITE",
        &format!("sip:5511400000001@{}", sw.addr()),
        &format!("<sip:5511999990000@{uac_ip}>;tag=p1"),
        "<sip:5511400000001@strowger.local>",
        "panic-1@test",
        cseq,
        &[
            format!("Contact: <sip:5511999990000@{}>", caller.local),
            "Content-Type: application/sdp".to_string(),
        ],
        &sdp,
    );
    caller.send_raw(invite.as_bytes());

    // the process exits by itself, with 70
    let deadline = Instant::now() + Duration::from_secs(60);
    while sw.is_running() {
        assert!(
            Instant::now() < deadline,
            "the switch is still running after its core panicked:\n{}",
            sw.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(sw.stop(), Some(70), "exit code\n{}", sw.log());
    let log = sw.log();
    assert!(log.contains("switch core panicked"), "{log}");
    assert!(log.contains("panic-on-invite"), "{log}");
}
