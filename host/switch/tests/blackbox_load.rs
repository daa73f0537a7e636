//! Load: 2,000 calls at 100 calls/s through the switch, zero failures.
//! Prints the measured numbers (not asserted: speed goals live in benches).

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn two_thousand_calls_at_100_cps_without_failures() {
    let ip = unique_loopback();
    let port = free_port(ip);
    let callee = Sipp::scenario(scenario("uas.xml"))
        .local(ip, Some(port))
        .calls(2000)
        .timeout(Duration::from_secs(180))
        .spawn();
    let uac_ip = unique_loopback();
    let sw = switch_to_uri(uac_ip, callee.addr().unwrap());
    let t0 = Instant::now();
    let r = Sipp::scenario(scenario("uac_bye.xml"))
        .local(uac_ip, None)
        .remote(sw.addr())
        .service("5511333344444")
        .key("caller", "5511999990000")
        .arg("-d")
        .arg("1000")
        .calls(2000)
        .rate(100)
        .limit(400)
        .recv_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(150))
        .run();
    let elapsed = t0.elapsed();
    eprintln!(
        "load: {} successful, {} failed, {} retransmissions (caller side) in {:.1} s ({:.1} calls/s)",
        r.successful,
        r.failed,
        r.retransmissions,
        elapsed.as_secs_f64(),
        r.successful as f64 / elapsed.as_secs_f64()
    );
    r.assert_ok(2000);
    assert_eq!(r.successful, 2000);
    let c = callee.wait();
    eprintln!(
        "load: callee {} successful, {} failed, {} retransmissions",
        c.successful, c.failed, c.retransmissions
    );
    c.assert_ok(2000);
}
