//! The SIPp scenarios used by the black-box tests, checked against each
//! other without the switch (SIPp UAC -> SIPp UAS directly), so a failing
//! switch test points at the switch, not at a scenario.

mod common;

use common::*;

fn pair(uas_file: std::path::PathBuf, uac_file: std::path::PathBuf) {
    let callee = uas(uas_file, 1);
    let r = Sipp::scenario(uac_file)
        .local(unique_loopback(), None)
        .remote(callee.addr().unwrap())
        .service("1002")
        .key("caller", "1001")
        .arg("-d")
        .arg("100")
        .calls(1)
        .trace_msg()
        .timeout(std::time::Duration::from_secs(30))
        .run();
    r.assert_ok(1);
    callee.wait().assert_ok(1);
}

#[test]
fn caller_hangs_up() {
    pair(scenario("uas.xml"), scenario("uac_bye.xml"));
}

#[test]
fn callee_hangs_up() {
    pair(scenario("uas_bye.xml"), scenario("uac_wait_bye.xml"));
}

#[test]
fn cancel() {
    pair(scenario("uas_cancel.xml"), scenario("uac_cancel.xml"));
}

#[test]
fn reject() {
    pair(
        scenario_with(
            "uas_reject.xml",
            &[("CODE", "486"), ("REASON", "Busy Here")],
        ),
        scenario_with("uac_reject.xml", &[("CODE", "486")]),
    );
}
