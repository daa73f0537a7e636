//! Black-box tests of the control plane: the real `strowger serve` binary
//! with its admin API, SIPp callers and callees on loopback, the real
//! plugins, and the `strowger policy` CLI.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use strowger_testkit::paths::{plugin_path, scenario, strowger_bin, workspace_root};
use strowger_testkit::{Algorithm, SipClient, Sipp, Switch, free_port, unique_loopback};

const TOKEN: &str = "test-admin-token";

/// Blocking admin API client for one switch.
struct Api {
    base: String,
    http: reqwest::blocking::Client,
}

impl Api {
    /// Waits (bounded) until the switch's admin API answers `/readyz`.
    fn connect(sw: &Switch) -> Api {
        let api = Api {
            base: sw.admin_url().expect("admin API enabled"),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = api.http.get(format!("{}/readyz", api.base)).send()
                && r.status().is_success()
            {
                return api;
            }
            assert!(
                Instant::now() < deadline,
                "admin API at {} not ready\n{}",
                api.base,
                sw.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn answer(r: reqwest::blocking::Response) -> (u16, Value) {
        let code = r.status().as_u16();
        let text = r.text().unwrap_or_default();
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn get(&self, path: &str) -> Value {
        let (code, v) = Self::answer(
            self.http
                .get(format!("{}{path}", self.base))
                .bearer_auth(TOKEN)
                .send()
                .unwrap(),
        );
        assert_eq!(code, 200, "GET {path}: {v}");
        v
    }

    fn send(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            r = r.json(b);
        }
        Self::answer(r.send().unwrap())
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body))
    }

    /// The `/metrics` text.
    fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .unwrap()
            .text()
            .unwrap()
    }

    fn upload_plugin(&self, name: &str) -> String {
        let wasm = std::fs::read(plugin_path(name)).unwrap();
        let (code, v) = Self::answer(
            self.http
                .post(format!("{}/v1/plugins?name={name}", self.base))
                .bearer_auth(TOKEN)
                .body(wasm)
                .send()
                .unwrap(),
        );
        assert!(code == 201 || code == 200, "upload {name}: {code} {v}");
        v["sha256"].as_str().unwrap().to_string()
    }
}

/// A route-table policy sending every number to `uas` with `prefix`
/// prepended to the called number, with a test case saying so (or, with
/// `wrong_expectation`, a test case that must fail).
fn uri_policy(prefix: &str, uas: SocketAddr, wrong_expectation: bool) -> Value {
    let expect_prefix = if wrong_expectation { "0" } else { prefix };
    json!({
        "comment": format!("all calls to {uas} as {prefix}<B>"),
        "bindings": [{"hook": "route", "plugin": "route-table", "deadline_ms": 1000,
            "config": {"routes": [{"name": format!("to-{prefix}"), "b": ["_X."],
                "destination": {"uri": format!("sip:{prefix}${{B}}@{uas}")}}]}}],
        "tests": [{"name": "routed with the prefix", "hook": "route",
            "input": {"b_number": "5511333344444"},
            "expect": {"Forward": {"attempts": [{"destination":
                {"Uri": format!("sip:{expect_prefix}5511333344444@{uas}")}}]}}}]
    })
}

/// A callee on its own loopback address that fails any call whose called
/// number does not start with `prefix`, and logs every called number.
struct Callee {
    sipp: strowger_testkit::sipp::RunningSipp,
    _scenario_dir: tempfile::TempDir,
}

impl Callee {
    fn start(prefix: &str) -> Callee {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(
            workspace_root().join("host/strowger/tests/scenarios/uas_prefix.xml"),
        )
        .unwrap()
        .replace("@PREFIX@", prefix);
        let path: PathBuf = dir.path().join(format!("uas_prefix_{prefix}.xml"));
        std::fs::write(&path, text).unwrap();
        let ip = unique_loopback();
        let sipp = Sipp::scenario(&path)
            .local(ip, Some(free_port(ip)))
            .arg("-trace_logs")
            .timeout(Duration::from_secs(240))
            .spawn();
        Callee {
            sipp,
            _scenario_dir: dir,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.sipp.addr().unwrap()
    }

    /// Stop it; its statistics and every called number it logged.
    fn finish(self) -> (strowger_testkit::SippResult, Vec<String>) {
        let dir = self.sipp.dir();
        // SIPp writes its statistics once a second: let the last calls land
        std::thread::sleep(Duration::from_millis(2500));
        let mut numbers = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            if e.file_name().to_string_lossy().ends_with("_logs.log") {
                let text = std::fs::read_to_string(e.path()).unwrap();
                numbers.extend(
                    text.lines()
                        .filter_map(|l| l.trim().strip_prefix("B "))
                        .map(str::to_string),
                );
            }
        }
        (self.sipp.stop(), numbers)
    }
}

/// `uac_reject.xml` expecting the final response `code`, written in `dir`.
fn reject_scenario(dir: &std::path::Path, code: u16) -> PathBuf {
    let path = dir.join(format!("uac_reject_{code}.xml"));
    std::fs::write(
        &path,
        std::fs::read_to_string(scenario("uac_reject.xml"))
            .unwrap()
            .replace("@CODE@", &code.to_string()),
    )
    .unwrap();
    path
}

/// Copy a directory tree.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// One call from `ip` to `number` through the switch (held `hold_ms`).
fn call(sw: &Switch, ip: IpAddr, number: &str, hold_ms: u32) -> strowger_testkit::SippResult {
    Sipp::scenario(scenario("uac_bye.xml"))
        .local(ip, None)
        .remote(sw.addr())
        .service(number)
        .key("caller", "5511999990000")
        .arg("-d")
        .arg(hold_ms.to_string())
        .calls(1)
        .recv_timeout(Duration::from_secs(20))
        .timeout(Duration::from_secs(40))
        .run()
}

/// Hot deploy under load: SIPp calls at 100/s with a 2 s hold for 60 s
/// while the test activates two policy versions alternately 20 times over
/// HTTP. Version 1 sends calls to callee 1 as `1<B>`, version 2 to callee 2
/// as `2<B>`; each callee fails any call with the other prefix. After every
/// activation a probe call with its own number must arrive at the callee of
/// the version just activated. A candidate whose test case fails is refused
/// mid-load and changes nothing.
#[test]
fn hot_deploy_under_load_drops_no_call() {
    let callee1 = Callee::start("1");
    let callee2 = Callee::start("2");
    let uac_ip = unique_loopback();
    let probe_ip = unique_loopback();
    let cfg = format!(
        "[[trunks]]\nname = \"load\"\nhost = \"{uac_ip}\"\ninbound = \"ip\"\n\n\
         [[trunks]]\nname = \"probe\"\nhost = \"{probe_ip}\"\ninbound = \"ip\"\n\n\
         [admin]\ntoken = \"{TOKEN}\"\n"
    );
    let sw = Switch::start(&cfg);
    let api = Api::connect(&sw);
    api.upload_plugin("route-table");
    let (c, v1) = api.post("/v1/policies", &uri_policy("1", callee1.addr(), false));
    assert_eq!(c, 201, "{v1}");
    let (c, v2) = api.post("/v1/policies", &uri_policy("2", callee2.addr(), false));
    assert_eq!(c, 201, "{v2}");
    let versions = [
        v1["version"].as_u64().unwrap(),
        v2["version"].as_u64().unwrap(),
    ];
    let (c, a) = api.post(
        &format!("/v1/policies/{}/activate", versions[0]),
        &json!({}),
    );
    assert_eq!(c, 200, "{a}");

    const CALLS: u64 = 6000;
    let load = Sipp::scenario(scenario("uac_bye.xml"))
        .local(uac_ip, None)
        .remote(sw.addr())
        .service("5511333344444")
        .key("caller", "5511999990000")
        .arg("-d")
        .arg("2000")
        .calls(CALLS)
        .rate(100)
        .limit(1000)
        .recv_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(200))
        .spawn();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let mut probes: Vec<(String, usize)> = Vec::new();
    let mut swaps = 0;
    for i in 0..20usize {
        let which = (i + 1) % 2; // version 2 first (version 1 is active)
        let (c, a) = api.post(
            &format!("/v1/policies/{}/activate", versions[which]),
            &json!({}),
        );
        assert_eq!(c, 200, "activation {i}: {a}");
        swaps += 1;
        let number = format!("77{i:02}");
        let r = call(&sw, probe_ip, &number, 100);
        r.assert_ok(1);
        probes.push((number, which));
        if i == 9 {
            // a candidate failing its test case: refused, nothing changes
            let (c, e) = api.post(
                "/v1/policies",
                &json!({"activate": true, "bindings": uri_policy("1", callee1.addr(), true)["bindings"],
                        "tests": uri_policy("1", callee1.addr(), true)["tests"]}),
            );
            assert_eq!(c, 422, "{e}");
            assert_eq!(e["field"], "tests");
            assert_eq!(
                api.get("/v1/policies/active")["version"],
                versions[which],
                "running version unchanged"
            );
            let r = call(&sw, probe_ip, "7799", 100);
            r.assert_ok(1);
            probes.push(("7799".into(), which));
        }
        // spread the 20 swaps over the 60 s of load
        let next = Duration::from_millis(5000 + 2500 * (i as u64 + 1));
        if let Some(d) = next.checked_sub(t0.elapsed()) {
            std::thread::sleep(d);
        }
    }
    let mid_calls = api.get("/v1/calls")["calls"].as_array().unwrap().len();
    let r = load.wait();
    let elapsed = t0.elapsed();
    let (c1, numbers1) = callee1.finish();
    let (c2, numbers2) = callee2.finish();
    eprintln!(
        "hot deploy: {} calls ok, {} failed, {} retransmissions at the caller in {:.1} s; {swaps} activations; \
         callee 1 {} ok / {} failed, callee 2 {} ok / {} failed; {} calls in progress at the last swap",
        r.successful,
        r.failed,
        r.retransmissions,
        elapsed.as_secs_f64(),
        c1.successful,
        c1.failed,
        c2.successful,
        c2.failed,
        mid_calls
    );
    r.assert_ok(CALLS);
    assert_eq!(r.successful, CALLS);
    assert_eq!(swaps, 20);
    assert_eq!(
        c1.failed + c2.failed,
        0,
        "a callee got a call with the other version's number"
    );
    // every load call and probe arrived at exactly one callee, with its version's prefix
    let load1 = numbers1
        .iter()
        .filter(|n| n.as_str() == "15511333344444")
        .count();
    let load2 = numbers2
        .iter()
        .filter(|n| n.as_str() == "25511333344444")
        .count();
    assert_eq!(
        load1 + load2,
        CALLS as usize,
        "callee 1 got {load1}, callee 2 {load2}"
    );
    assert!(
        load1 > 500 && load2 > 500,
        "both versions carried load: {load1} / {load2}"
    );
    for (number, which) in &probes {
        let (mine, other) = if *which == 0 {
            (&numbers1, &numbers2)
        } else {
            (&numbers2, &numbers1)
        };
        let prefix = if *which == 0 { "1" } else { "2" };
        assert!(
            mine.contains(&format!("{prefix}{number}")),
            "probe {number} after activating version {} did not reach its callee",
            versions[*which]
        );
        assert!(
            !other
                .iter()
                .any(|n| n.ends_with(number.as_str()) && n.len() == number.len() + 1)
        );
    }
    // both generations appear in the CDRs, and no call failed there either
    let cdrs = api.get("/v1/cdrs?limit=100000");
    let rows = cdrs["cdrs"].as_array().unwrap();
    assert!(rows.len() as u64 >= CALLS, "{} CDRs", rows.len());
    assert!(
        rows.iter().all(|c| c["final_code"] == 200),
        "a CDR with a failure: {:?}",
        rows.iter().find(|c| c["final_code"] != 200)
    );
}

/// Restart: the control plane written over the API and the CLI, a
/// registration and a CDR survive a stop and start of the switch, and the
/// restored policy decides the next call.
#[test]
fn control_plane_survives_a_restart() {
    let trunk_ip = unique_loopback();
    let cfg = format!(
        "[[users]]\nuser = \"1002\"\npassword = \"pw1002\"\n\n\
         [[trunks]]\nname = \"carrier-a\"\nhost = \"{trunk_ip}\"\ninbound = \"ip\"\n\n\
         [admin]\ntoken = \"{TOKEN}\"\n"
    );
    let mut sw = Switch::start(&cfg);
    let api = Api::connect(&sw);

    // the example policy repository, applied with the CLI
    let out = std::process::Command::new(strowger_bin())
        .args(["policy", "apply"])
        .arg(workspace_root().join("policies"))
        .args(["--server", &sw.admin_url().unwrap(), "--token", TOKEN])
        .env("STROWGER_PLUGIN_DIR", strowger_testkit::paths::plugin_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "policy apply failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("active"), "{stdout}");

    // a repository whose new data make a test case fail: refused, and the
    // data set uploaded on the way is put back to its previous version
    let active_before = api.get("/v1/policies/active")["version"].clone();
    let ported_before = api.get("/v1/datasets/br-ported")["active_version"].clone();
    let broken = tempfile::tempdir().unwrap();
    copy_dir(&workspace_root().join("policies"), broken.path());
    let csv = broken.path().join("datasets/br-ported.csv");
    let text = std::fs::read_to_string(&csv)
        .unwrap()
        .replace("11987654321,55321", "11987654321,55399");
    std::fs::write(&csv, text).unwrap();
    let out = std::process::Command::new(strowger_bin())
        .args(["policy", "apply"])
        .arg(broken.path())
        .args(["--server", &sw.admin_url().unwrap(), "--token", TOKEN])
        .env("STROWGER_PLUGIN_DIR", strowger_testkit::paths::plugin_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("REFUSED"), "{stdout}");
    assert!(
        stdout.contains("carrier: expected \"55321\", got \"55399\""),
        "{stdout}"
    );
    assert!(stdout.contains("data set br-ported: version"), "{stdout}");
    assert_eq!(api.get("/v1/policies/active")["version"], active_before);
    assert_eq!(
        api.get("/v1/datasets/br-ported")["active_version"],
        ported_before
    );
    let (_, sim) = api.post(
        "/v1/simulate",
        &json!({"hook": "portability", "input": {"number": "11987654321"}}),
    );
    assert_eq!(sim["decision"]["carrier"], "55321", "{sim}");

    let (c, _) = api.send(
        reqwest::Method::PUT,
        "/v1/trunks/carrier-x",
        Some(&json!({"host": "192.0.2.7", "port": 5060})),
    );
    assert_eq!(c, 200);
    let (c, _) = api.send(
        reqwest::Method::PUT,
        "/v1/users/strowger.local/2001",
        Some(&json!({"password": "pw2001"})),
    );
    assert_eq!(c, 200);

    // a registration (the registrar policy challenges, then accepts)
    let phone_ip = unique_loopback();
    let mut phone = SipClient::new(phone_ip, sw.addr());
    let reg = phone.register(
        "1002",
        "pw1002",
        "strowger.local",
        Some(&format!("sip:1002@{phone_ip}:5070")),
        Some(600),
        Algorithm::Sha256,
        Duration::from_secs(10),
    );
    assert_eq!(reg.response.status(), 200, "{:?}", reg.response);

    // a call the policy rejects with its own reason phrase: a CDR
    let no_route = |sw: &Switch| -> (u16, String) {
        let client = SipClient::new(trunk_ip, sw.addr());
        let call_id = format!("restart-{}@test", strowger_testkit::sip::token());
        let (m, branch) = client.build_request(
            "INVITE",
            &format!("sip:190@{}", sw.addr()),
            "<sip:551133334444@carrier-a.example>;tag=t1",
            &format!("<sip:190@{}>", sw.addr()),
            &call_id,
            1,
            &[format!("Contact: <sip:551133334444@{trunk_ip}>")],
            "",
        );
        client.send_raw(m.as_bytes());
        let r = client
            .recv_final(&branch, Duration::from_secs(10))
            .expect("final response");
        let reason = r.reason();
        (r.status(), reason)
    };
    assert_eq!(no_route(&sw), (404, "No route".to_string()));

    let snapshot = |api: &Api| {
        (
            api.get("/v1/policies/active")["version"].clone(),
            api.get("/v1/datasets")["datasets"].clone(),
            api.get("/v1/trunks")["trunks"].clone(),
            api.get("/v1/users")["users"].clone(),
            api.get("/v1/plugins")["plugins"].clone(),
        )
    };
    let wait_cdr = |api: &Api| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let c = api.get("/v1/cdrs?number=190");
            if c["count"].as_u64() >= Some(1) || Instant::now() > deadline {
                return c;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let before = snapshot(&api);
    assert!(before.0.is_u64(), "a policy version is active");
    assert_eq!(before.1.as_array().unwrap().len(), 2, "{}", before.1);
    let cdrs_before = wait_cdr(&api);
    assert_eq!(cdrs_before["count"], 1, "{cdrs_before}");
    let regs = api.get("/v1/registrations")["registrations"].clone();
    assert_eq!(regs.as_array().unwrap().len(), 1, "{regs}");
    assert_eq!(regs[0]["aor"], "sip:1002@strowger.local");

    sw.restart();
    let api = Api::connect(&sw);
    let after = snapshot(&api);
    assert_eq!(before, after, "control plane after restart");
    let regs_after = api.get("/v1/registrations")["registrations"].clone();
    assert_eq!(regs_after.as_array().unwrap().len(), 1, "{regs_after}");
    assert_eq!(regs_after[0]["contact"], regs[0]["contact"]);
    let cdrs_after = api.get("/v1/cdrs?number=190");
    assert_eq!(cdrs_after["cdrs"], cdrs_before["cdrs"]);
    // the restored policy and data sets decide live traffic
    assert_eq!(no_route(&sw), (404, "No route".to_string()));
    let (c, sim) = api.post(
        "/v1/simulate",
        &json!({"hook": "portability", "input": {"number": "11987654321"}}),
    );
    assert_eq!(c, 200, "{sim}");
    assert_eq!(sim["decision"]["carrier"], "55321", "{sim}");
    let status = std::process::Command::new(strowger_bin())
        .args([
            "status",
            "--server",
            &sw.admin_url().unwrap(),
            "--token",
            TOKEN,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text}");
    assert!(
        text.contains(&format!("active version {}", before.0)),
        "{text}"
    );
    assert!(text.contains("registrations: 1"), "{text}");

    // the user created over the API (before the restart) registers
    let user_ip = unique_loopback();
    let mut phone = SipClient::new(user_ip, sw.addr());
    let reg = phone.register(
        "2001",
        "pw2001",
        "strowger.local",
        Some(&format!("sip:2001@{user_ip}:5070")),
        Some(600),
        Algorithm::Sha256,
        Duration::from_secs(10),
    );
    assert_eq!(reg.response.status(), 200, "{:?}", reg.response);
    let mut intruder = SipClient::new(unique_loopback(), sw.addr());
    let bad = intruder.register(
        "2001",
        "wrong",
        "strowger.local",
        Some("sip:2001@127.0.0.9:5070"),
        Some(600),
        Algorithm::Sha256,
        Duration::from_secs(10),
    );
    assert_ne!(bad.response.status(), 200, "{:?}", bad.response);
}

/// The live state behind the admin API is the switch's: a call in progress
/// is listed (answered, with its generation and egress) and an operator's
/// hang-up sends BYE to both parties; trunk status counts the call; a
/// registration is listed and removed (the device can no longer be called).
#[test]
fn live_calls_hangup_registrations_and_trunks() {
    let callee = Callee::start("9");
    let uac_ip = unique_loopback();
    let cfg = format!(
        "[[users]]\nuser = \"1003\"\npassword = \"pw1003\"\n\n\
         [[trunks]]\nname = \"caller\"\nhost = \"{uac_ip}\"\ninbound = \"ip\"\n\n\
         [admin]\ntoken = \"{TOKEN}\"\n"
    );
    let sw = Switch::start(&cfg);
    let api = Api::connect(&sw);
    api.upload_plugin("route-table");
    let mut p = uri_policy("9", callee.addr(), false);
    p["activate"] = json!(true);
    let (c, v) = api.post("/v1/policies", &p);
    assert_eq!(c, 201, "{v}");
    let generation = v["generation"].as_u64().unwrap();

    // a caller that holds until the far end hangs up
    let caller = Sipp::scenario(scenario("uac_wait_bye.xml"))
        .local(uac_ip, None)
        .remote(sw.addr())
        .service("5511333344444")
        .key("caller", "5511999990000")
        .calls(1)
        .recv_timeout(Duration::from_secs(60))
        .timeout(Duration::from_secs(60))
        .spawn();
    let deadline = Instant::now() + Duration::from_secs(20);
    let call = loop {
        let calls = api.get("/v1/calls")["calls"].clone();
        if let Some(c) = calls.as_array().unwrap().first()
            && c["state"] == "answered"
        {
            break c.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no answered call listed: {calls}\n{}",
            sw.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(call["b_number"], "5511333344444", "{call}");
    assert_eq!(call["ingress"], "trunk:caller", "{call}");
    assert_eq!(call["generation"], generation, "{call}");
    assert!(
        call["egress"]
            .as_str()
            .unwrap()
            .contains(&callee.addr().to_string()),
        "{call}"
    );
    let trunks = api.get("/v1/trunks/status")["trunks"].clone();
    assert_eq!(trunks[0]["name"], "caller");
    assert_eq!(trunks[0]["active_calls"], 1, "{trunks}");
    let metrics = api.metrics();
    assert!(metrics.contains("strowger_calls_active 1"), "{metrics}");

    // hang-up: both SIPp sides receive BYE and finish their scenario
    let id = call["id"].as_str().unwrap();
    let (c, e) = api.send(reqwest::Method::DELETE, "/v1/calls/no-such-call", None);
    assert_eq!(c, 404, "{e}");
    let (c, h) = api.send(reqwest::Method::DELETE, &format!("/v1/calls/{id}"), None);
    assert_eq!(c, 200, "{h}");
    caller.wait().assert_ok(1);
    let (callee_result, numbers) = callee.finish();
    assert_eq!(callee_result.successful, 1, "callee did not get the BYE");
    assert_eq!(numbers, ["95511333344444"]);
    assert!(api.get("/v1/calls")["calls"].as_array().unwrap().is_empty());
    let audit = api.get("/v1/audit");
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "call.hangup" && e["target"] == id),
        "{audit}"
    );

    // registrations: listed, removed, gone from the store too
    let phone_ip = unique_loopback();
    let mut phone = SipClient::new(phone_ip, sw.addr());
    let contact = format!("sip:1003@{phone_ip}:5070");
    let reg = phone.register(
        "1003",
        "pw1003",
        "strowger.local",
        Some(&contact),
        Some(600),
        Algorithm::Sha256,
        Duration::from_secs(10),
    );
    assert_eq!(reg.response.status(), 200);
    let stored = |n: usize| {
        let store = strowger_store::Store::open(sw.store_path()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let rows = store
                .registrations_of_blocking("sip:1003@strowger.local")
                .unwrap();
            if rows.len() == n || Instant::now() > deadline {
                return rows.len();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert_eq!(stored(1), 1, "the registration is in the store");
    let regs = api.get("/v1/registrations")["registrations"].clone();
    assert_eq!(regs[0]["contact"], contact.as_str(), "{regs}");
    assert_eq!(regs[0]["transport"], "udp");
    let (c, r) = api.send(
        reqwest::Method::DELETE,
        "/v1/registrations?aor=sip:1003@strowger.local",
        None,
    );
    assert_eq!(c, 200, "{r}");
    assert_eq!(r["removed"], 1);
    assert!(
        api.get("/v1/registrations")["registrations"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(stored(0), 0, "removed from the store too");

    // hang-up of a ringing call: CANCEL to the callee, 480 to the caller
    let ring_ip = unique_loopback();
    let ringing = Sipp::scenario(scenario("uas_cancel.xml"))
        .local(ring_ip, Some(free_port(ring_ip)))
        .calls(1)
        .timeout(Duration::from_secs(60))
        .spawn();
    let mut p = uri_policy("8", ringing.addr().unwrap(), false);
    p["activate"] = json!(true);
    let (c, v) = api.post("/v1/policies", &p);
    assert_eq!(c, 201, "{v}");
    let dir = tempfile::tempdir().unwrap();
    let reject = reject_scenario(dir.path(), 480);
    let caller = Sipp::scenario(&reject)
        .local(uac_ip, None)
        .remote(sw.addr())
        .service("5511333344444")
        .key("caller", "5511999990000")
        .calls(1)
        .recv_timeout(Duration::from_secs(60))
        .timeout(Duration::from_secs(60))
        .spawn();
    let deadline = Instant::now() + Duration::from_secs(20);
    let call = loop {
        let calls = api.get("/v1/calls")["calls"].clone();
        if let Some(c) = calls.as_array().unwrap().first()
            && c["state"] == "ringing"
        {
            break c.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no ringing call listed: {calls}\n{}",
            sw.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let (c, h) = api.send(
        reqwest::Method::DELETE,
        &format!("/v1/calls/{}", call["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(c, 200, "{h}");
    caller.wait().assert_ok(1);
    ringing.wait().assert_ok(1);
}

/// Waits (bounded) for `f` to return something.
fn wait_for<T>(what: &str, sw: &Switch, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}\n{}", sw.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Shadow mode on live traffic: version 1 (active) routes to callee 1,
/// version 2 (shadow) would route to callee 2. A SIPp call reaches callee 1
/// only; the shadow diffs list the call (its CDR id) with both decisions.
#[test]
fn shadow_version_is_compared_on_live_calls_but_not_acted_on() {
    let active_callee = Callee::start("1");
    let shadow_callee = Callee::start("2");
    let uac_ip = unique_loopback();
    let cfg = format!(
        "[[trunks]]\nname = \"caller\"\nhost = \"{uac_ip}\"\ninbound = \"ip\"\n\n\
         [admin]\ntoken = \"{TOKEN}\"\n"
    );
    let sw = Switch::start(&cfg);
    let api = Api::connect(&sw);
    api.upload_plugin("route-table");
    let mut p1 = uri_policy("1", active_callee.addr(), false);
    p1["activate"] = json!(true);
    let (c, v1) = api.post("/v1/policies", &p1);
    assert_eq!(c, 201, "{v1}");
    let (c, v2) = api.post(
        "/v1/policies",
        &uri_policy("2", shadow_callee.addr(), false),
    );
    assert_eq!(c, 201, "{v2}");
    let ver2 = v2["version"].as_u64().unwrap();
    let (c, s) = api.post(&format!("/v1/policies/{ver2}/shadow"), &json!({}));
    assert_eq!(c, 200, "{s}");
    assert_eq!(api.get("/v1/policies/shadow")["shadow"], ver2);

    call(&sw, uac_ip, "5511333344444", 200).assert_ok(1);
    let diffs = wait_for("no shadow diff for the call", &sw, || {
        let d = api.get("/v1/policies/shadow/diffs");
        (!d["diffs"].as_array().unwrap().is_empty()).then_some(d)
    });
    let diff = &diffs["diffs"][0];
    assert_eq!(diff["source"], "call", "{diffs}");
    assert_eq!(diff["hook"], "route");
    assert_eq!(diff["active_generation"], v1["generation"], "{diffs}");
    assert_eq!(diff["shadow_generation"], v2["generation"], "{diffs}");
    assert_eq!(diff["error"], false);
    let active = diff["active"].as_str().unwrap();
    let shadow = diff["shadow"].as_str().unwrap();
    assert!(
        active.contains(&format!("15511333344444@{}", active_callee.addr())),
        "{diffs}"
    );
    assert!(
        shadow.contains(&format!("25511333344444@{}", shadow_callee.addr())),
        "{diffs}"
    );
    assert_eq!(diffs["counts"]["differ"], 1, "{diffs}");
    // the diff names the call as its CDR does
    let cdrs = wait_for("no CDR", &sw, || {
        let c = api.get("/v1/cdrs");
        (c["count"] == 1).then_some(c)
    });
    assert_eq!(cdrs["cdrs"][0]["call_id"], diff["call_id"], "{cdrs}");
    let metrics = api.metrics();
    assert!(
        metrics.contains("strowger_shadow_decisions_total{result=\"differ\"} 1"),
        "{metrics}"
    );

    // only the active route's callee got the call
    let (r1, n1) = active_callee.finish();
    let (_, n2) = shadow_callee.finish();
    assert_eq!(r1.successful, 1);
    assert_eq!(n1, ["15511333344444"]);
    assert!(n2.is_empty(), "the shadow route was followed: {n2:?}");
}

/// Trunks stored over the API reach the running switch: a call from an
/// unknown address is challenged; once an IP trunk for that address is
/// PUT, its calls are trusted and routed; a bad trunk is refused with the
/// configuration's message and changes nothing; after a restart the stored
/// trunk is still in force; once deleted, calls from there are challenged
/// again.
#[test]
fn trunks_stored_over_the_api_reach_the_switch() {
    let callee = Callee::start("7");
    let peer_ip = unique_loopback();
    let cfg = format!("[admin]\ntoken = \"{TOKEN}\"\n");
    let mut sw = Switch::start(&cfg);
    let api = Api::connect(&sw);
    api.upload_plugin("route-table");
    let mut p = uri_policy("7", callee.addr(), false);
    p["activate"] = json!(true);
    let (c, v) = api.post("/v1/policies", &p);
    assert_eq!(c, 201, "{v}");

    let dir = tempfile::tempdir().unwrap();
    let challenged = reject_scenario(dir.path(), 407);
    let expect_407 = |sw: &Switch| {
        Sipp::scenario(&challenged)
            .local(peer_ip, None)
            .remote(sw.addr())
            .service("5511333344444")
            .key("caller", "5511999990000")
            .calls(1)
            .recv_timeout(Duration::from_secs(20))
            .timeout(Duration::from_secs(40))
            .run()
            .assert_ok(1)
    };
    expect_407(&sw);

    // bad trunks: 400 with what to fix, nothing stored or applied
    let (c, e) = api.send(
        reqwest::Method::PUT,
        "/v1/trunks/peer",
        Some(&json!({"host": peer_ip.to_string(), "inbound": "sometimes"})),
    );
    assert_eq!(c, 400, "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("unknown variant `sometimes`"),
        "{e}"
    );
    let (c, e) = api.send(
        reqwest::Method::PUT,
        "/v1/trunks/peer",
        Some(&json!({"host": peer_ip.to_string(), "inbound": "ip", "qualify_s": 5, "no_such_field": 1})),
    );
    assert_eq!(c, 400, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("no_such_field"),
        "{e}"
    );
    // the answer to a bad trunk never quotes its secret
    for bad in [
        json!({"host": peer_ip.to_string(), "secret": 918273645}),
        json!({"register_string": "acct:regSECRET-3141@192.0.2.1:port"}),
        json!({"register_string": "acct:regSECRET-3141"}),
    ] {
        let (c, e) = api.send(reqwest::Method::PUT, "/v1/trunks/peer", Some(&bad));
        assert_eq!(c, 400, "{e}");
        let text = e.to_string();
        assert!(
            !text.contains("918273645") && !text.contains("regSECRET-3141"),
            "{text}"
        );
    }
    assert!(
        api.get("/v1/trunks")["trunks"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        api.get("/v1/trunks/status")["trunks"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // an IP trunk for the caller's address: trusted and routed
    let (c, t) = api.send(
        reqwest::Method::PUT,
        "/v1/trunks/peer",
        Some(&json!({"host": peer_ip.to_string(), "inbound": "ip"})),
    );
    assert_eq!(c, 200, "{t}");
    let status = api.get("/v1/trunks/status")["trunks"].clone();
    assert_eq!(status[0]["name"], "peer", "{status}");
    call(&sw, peer_ip, "5511333344444", 100).assert_ok(1);
    let cdrs = wait_for("no CDR", &sw, || {
        let c = api.get("/v1/cdrs");
        (c["count"] == 1).then_some(c)
    });
    assert_eq!(cdrs["cdrs"][0]["ingress_trunk"], "peer", "{cdrs}");

    // still there after a restart (stored trunks merged over the file's)
    sw.restart();
    let api = Api::connect(&sw);
    assert_eq!(
        api.get("/v1/trunks/status")["trunks"][0]["name"],
        "peer",
        "{}",
        sw.log()
    );
    call(&sw, peer_ip, "5511333344444", 100).assert_ok(1);

    // a peer that registers to us: its credentials are a registrar user now
    let (c, t) = api.send(
        reqwest::Method::PUT,
        "/v1/trunks/pbx",
        Some(&json!({"host": "dynamic", "inbound": "register", "username": "pbx1", "secret": "pbx-pw"})),
    );
    assert_eq!(c, 200, "{t}");
    let pbx_ip = unique_loopback();
    let mut pbx = SipClient::new(pbx_ip, sw.addr());
    let reg = pbx.register(
        "pbx1",
        "pbx-pw",
        "strowger.local",
        Some(&format!("sip:pbx1@{pbx_ip}:5070")),
        Some(600),
        Algorithm::Sha256,
        Duration::from_secs(10),
    );
    assert_eq!(reg.response.status(), 200, "{}", sw.log());
    let status = api.get("/v1/trunks/status")["trunks"].clone();
    assert_eq!(status.as_array().unwrap().len(), 2, "{status}");

    // deleted: challenged again
    let (c, d) = api.send(reqwest::Method::DELETE, "/v1/trunks/peer", None);
    assert_eq!(c, 200, "{d}");
    let (c, _) = api.send(reqwest::Method::DELETE, "/v1/trunks/peer", None);
    assert_eq!(c, 404);
    expect_407(&sw);
    let (_, numbers) = callee.finish();
    assert_eq!(numbers, ["75511333344444", "75511333344444"]);
}

/// `strowger <args> --server <sw> --token TOKEN` with the binary `bin`:
/// (success, stdout + stderr).
fn cli_with(bin: &std::path::Path, sw: &Switch, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(bin)
        .args(args)
        .args(["--server", &sw.admin_url().unwrap(), "--token", TOKEN])
        .env_remove("STROWGER_SERVER")
        .env_remove("STROWGER_ADMIN_TOKEN")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn cli(sw: &Switch, args: &[&str]) -> (bool, String) {
    cli_with(&strowger_bin(), sw, args)
}

/// The route decision of the active policy for a call to `b` (simulated
/// over the API, with the token).
fn simulate_route(api: &Api, b: &str) -> Value {
    let (c, sim) = api.post(
        "/v1/simulate",
        &json!({"hook": "route", "input": {"b_number": b}}),
    );
    assert_eq!(c, 200, "{sim}");
    sim["decision"].clone()
}

/// The route-table binding of the configuration file (every number to
/// `sip:cfg<B>@192.0.2.1`).
fn config_route_binding() -> String {
    format!(
        "[[bindings]]\nhook = \"route\"\nplugin = \"route-table\"\ndeadline_ms = 1000\n\
         config = {{ routes = [{{ name = \"from-config\", b = [\"_X.\"], \
         destination = {{ uri = \"sip:cfg${{B}}@192.0.2.1\" }} }}] }}\n\n\
         [admin]\ntoken = \"{TOKEN}\"\n"
    )
}

fn uri_of(decision: &Value) -> &str {
    decision["Forward"]["attempts"][0]["destination"]["Uri"]
        .as_str()
        .unwrap_or_else(|| panic!("not forwarded to a URI: {decision}"))
}

/// The configuration file's `[[bindings]]` are policy version 0: after the
/// first version is applied, `policy rollback` goes back to them, and they
/// stay in force after a restart; `policy list` shows the versions with
/// their state and source, `policy activate` switches between them.
#[test]
fn first_apply_rolls_back_to_the_config_file_bindings() {
    let mut sw = Switch::start(&config_route_binding());
    let api = Api::connect(&sw);
    let number = "5511333344444";
    let from_config = format!("sip:cfg{number}@192.0.2.1");
    assert_eq!(uri_of(&simulate_route(&api, number)), from_config);

    api.upload_plugin("route-table");
    let uas: SocketAddr = "192.0.2.2:5060".parse().unwrap();
    let mut first = uri_policy("1", uas, false);
    first["activate"] = json!(true);
    let (c, v1) = api.post("/v1/policies", &first);
    assert_eq!(c, 201, "{v1}");
    let v1 = v1["version"].as_u64().unwrap();
    let from_v1 = format!("sip:1{number}@{uas}");
    assert_eq!(uri_of(&simulate_route(&api, number)), from_v1);

    let (ok, out) = cli(&sw, &["policy", "rollback"]);
    assert!(ok, "rollback after the first apply: {out}");
    assert!(out.contains("version 0 active"), "{out}");
    assert_eq!(uri_of(&simulate_route(&api, number)), from_config);

    let (ok, list) = cli(&sw, &["policy", "list"]);
    assert!(ok, "{list}");
    let row = |v: u64| {
        list.lines()
            .find(|l| l.split_whitespace().next() == Some(&v.to_string()))
            .unwrap_or_else(|| panic!("no version {v} in\n{list}"))
            .to_string()
    };
    assert!(list.starts_with("VERSION"), "{list}");
    let r0 = row(0);
    assert!(r0.contains(" active ") && r0.contains(" config "), "{list}");
    let r1 = row(v1);
    assert!(r1.contains(" inactive ") && r1.contains(" api "), "{list}");
    assert!(r1.contains(" admin "), "created by the token's id: {list}");
    assert!(r1.contains("all calls to 192.0.2.2:5060"), "{list}");

    // a restart keeps the configuration file's bindings in force
    sw.restart();
    let api = Api::connect(&sw);
    assert_eq!(uri_of(&simulate_route(&api, number)), from_config);
    let (ok, list) = cli(&sw, &["policy", "list", "--json"]);
    assert!(ok, "{list}");
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["active"], 0, "{list}");

    // activate a version by number, then roll back to the file's again
    let (ok, out) = cli(&sw, &["policy", "activate", &v1.to_string()]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("policy version {v1} active")),
        "{out}"
    );
    assert_eq!(uri_of(&simulate_route(&api, number)), from_v1);
    let (ok, out) = cli(&sw, &["policy", "activate", "999"]);
    assert!(!ok && out.contains("no policy version 999"), "{out}");
    let (ok, out) = cli(&sw, &["policy", "rollback"]);
    assert!(ok, "{out}");
    assert_eq!(uri_of(&simulate_route(&api, number)), from_config);
}

/// A new plugin author's loop with a binary copied away from the checkout
/// it was built in: `plugin new` (no checkout around: a vendored SDK, no
/// absolute path of the build machine), then `plugin deploy` to a running
/// switch: built, uploaded, bound to its hook in a new version based on
/// the active one, activated; the new plugin answers; the printed command
/// rolls back.
#[test]
fn a_scaffolded_plugin_deploys_with_one_command() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin/strowger");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(strowger_bin(), &bin).unwrap();
    let repo = tmp.path().join("my-plugins");
    std::fs::create_dir_all(&repo).unwrap();
    let out = std::process::Command::new(&bin)
        .args([
            "plugin",
            "new",
            "--lang",
            "rust",
            "--world",
            "route",
            "my-router",
        ])
        .current_dir(&repo)
        .env_remove("STROWGER_SDK")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "plugin new: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = repo.join("my-router");
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let checkout = workspace_root().canonicalize().unwrap();
    for text in [manifest.clone()].into_iter().chain(
        [
            "strowger-sdk/Cargo.toml",
            "strowger-sdk/bindings/route/Cargo.toml",
        ]
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap()),
    ) {
        assert!(!text.contains(checkout.to_str().unwrap()), "{text}");
        assert!(!text.contains("path = \"/"), "an absolute path:\n{text}");
    }
    // the author's own answer, to tell it from any other plugin's
    let lib = dir.join("src/lib.rs");
    let src = std::fs::read_to_string(&lib).unwrap();
    assert!(src.contains("\"No route\""), "{src}");
    std::fs::write(
        &lib,
        src.replace("\"No route\"", "\"No route (my-router)\""),
    )
    .unwrap();

    let sw = Switch::start(&config_route_binding());
    let api = Api::connect(&sw);
    let (ok, out) = cli_with(&bin, &sw, &["plugin", "deploy", dir.to_str().unwrap()]);
    assert!(ok, "plugin deploy: {out}");
    assert!(out.contains("uploaded plugin my-router"), "{out}");
    assert!(
        out.contains("= version 0 with route (every call) -> my-router"),
        "{out}"
    );
    let rollback = format!(
        "roll back: strowger policy activate 0 --server {}",
        sw.admin_url().unwrap()
    );
    assert!(out.contains(&rollback), "{out}");
    // the new plugin decides
    let d = simulate_route(&api, "1002");
    assert_eq!(
        d["Forward"]["attempts"][0]["destination"]["User"], "1002",
        "{d}"
    );
    let d = simulate_route(&api, "5511333344444");
    assert_eq!(d["Reject"]["code"], 404, "{d}");
    assert_eq!(d["Reject"]["reason"], "No route (my-router)", "{d}");
    let (c, active) = api.send(reqwest::Method::GET, "/v1/policies/active", None);
    assert_eq!(c, 200);
    assert_eq!(active["bindings"].as_array().unwrap().len(), 1, "{active}");

    // the printed rollback brings the configuration file's binding back
    let (ok, out) = cli_with(&bin, &sw, &["policy", "activate", "0"]);
    assert!(ok, "{out}");
    let d = simulate_route(&api, "5511333344444");
    assert_eq!(uri_of(&d), "sip:cfg5511333344444@192.0.2.1");

    // a plugin that is not for the hook asked for is refused before upload
    let (ok, out) = cli_with(
        &bin,
        &sw,
        &[
            "plugin",
            "deploy",
            dir.to_str().unwrap(),
            "--hook",
            "rewrite",
        ],
    );
    assert!(
        !ok && out.contains("cannot be bound to the rewrite hook"),
        "{out}"
    );
}

/// Without a configured token the switch generates one into a 0600 file
/// next to its store and says where; every API route but the probes and
/// metrics then needs it; `strowger status` run from that directory finds
/// it on its own, from elsewhere it fails naming `--token`.
#[test]
fn a_switch_without_a_token_generates_a_private_token_file() {
    let sw = Switch::builder("").env("STROWGER_ADMIN_TOKEN", "").start();
    let api = Api::connect(&sw);
    let file = sw.dir().join("strowger-admin.token");
    let token = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", file.display(), sw.log()));
    let token = token.trim();
    assert_eq!(token.len(), 64, "{token}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }
    assert!(sw.log().contains("strowger-admin.token"), "{}", sw.log());
    let anon = api
        .http
        .get(format!("{}/v1/users", api.base))
        .send()
        .unwrap();
    assert_eq!(anon.status().as_u16(), 401);
    let body = anon.text().unwrap();
    assert!(
        body.contains("strowger-admin.token") && body.contains("--token"),
        "{body}"
    );
    let ok = api
        .http
        .get(format!("{}/v1/users", api.base))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let status = |dir: &std::path::Path| {
        std::process::Command::new(strowger_bin())
            .args(["status", "--server", &sw.admin_url().unwrap()])
            .env_remove("STROWGER_ADMIN_TOKEN")
            .env_remove("STROWGER_ADMIN_TOKEN_FILE")
            .current_dir(dir)
            .output()
            .unwrap()
    };
    let here = status(sw.dir());
    assert!(
        here.status.success(),
        "{}{}",
        String::from_utf8_lossy(&here.stdout),
        String::from_utf8_lossy(&here.stderr)
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let there = status(elsewhere.path());
    assert!(!there.status.success());
    let err = String::from_utf8_lossy(&there.stderr);
    assert!(err.contains("401") && err.contains("--token"), "{err}");
}

/// A national-scale portability table loaded while calls flow: SIPp calls
/// at 50/s go through the portability hook (br-portability: exact lookup
/// of the number, else longest prefix, both in the data set `lnp`) and the
/// route table sends each call to a callee as `<routing number>`; the
/// callee fails any call whose number does not carry the expected routing
/// number. Meanwhile a 1,000,000-row CSV (11-digit numbers and 7-digit
/// ranges, 30 routing numbers) is uploaded over the admin API. Every load
/// call completes; afterwards probe calls and simulated lookups give the
/// exact and longest-prefix answers of the new version, and the version is
/// held in the compact numeric layout (≤ 16 heap bytes per row).
#[test]
fn million_row_dataset_loads_while_calls_flow() {
    const ROWS: u64 = 1_000_000;
    // Calls go to 11 3333 4444: a range row `1133334` in both versions.
    const LOAD_RN: &str = "55302";
    let callee = Callee::start(&format!("{LOAD_RN}1133334444"));
    let probe_callee = Callee::start("55");
    let uac_ip = unique_loopback();
    let probe_ip = unique_loopback();
    let cfg = format!(
        "[[trunks]]\nname = \"load\"\nhost = \"{uac_ip}\"\ninbound = \"ip\"\n\n\
         [[trunks]]\nname = \"probe\"\nhost = \"{probe_ip}\"\ninbound = \"ip\"\n\n\
         [admin]\ntoken = \"{TOKEN}\"\n"
    );
    let sw = Switch::start(&cfg);
    let api = Api::connect(&sw);
    api.upload_plugin("br-portability");
    api.upload_plugin("route-table");
    let upload = |csv: String| -> (u16, Value) {
        Api::answer(
            api.http
                .post(format!("{}/v1/datasets/lnp", api.base))
                .bearer_auth(TOKEN)
                .body(csv)
                .send()
                .unwrap(),
        )
    };
    let (c, v) = upload(format!("1133334,{LOAD_RN}\n"));
    assert_eq!(c, 201, "{v}");
    let route = |trunk: &str, uas: SocketAddr| {
        json!({"name": trunk, "source": [format!("trunk:{trunk}")], "b": ["_X."],
               "destination": {"uri": format!("sip:${{RN}}@{uas}")}})
    };
    let (c, p) = api.post(
        "/v1/policies",
        &json!({"activate": true, "bindings": [
            {"hook": "portability", "plugin": "br-portability", "deadline_ms": 1000,
             "config": {"ported_dataset": "lnp", "ranges_dataset": "lnp"}, "datasets": ["lnp"]},
            {"hook": "route", "plugin": "route-table", "deadline_ms": 1000,
             "config": {"routes": [route("load", callee.addr()), route("probe", probe_callee.addr())]}}]}),
    );
    assert_eq!(c, 201, "{p}");

    // The big version: row i is a number (or every 100th a 7-digit range)
    // with routing number 55300 + i % 30; the load calls' range keeps its value.
    let number = |i: u64| {
        format!(
            "{}9{:08}",
            11 + (i * 7) % 89,
            (i * 2_654_435_761) % 100_000_000
        )
    };
    let rn = |i: u64| format!("{}", 55300 + i % 30);
    let mut csv = String::with_capacity(ROWS as usize * 18);
    csv.push_str("# key,value\n");
    for i in 0..ROWS {
        let n = number(i);
        let k = if i % 100 == 0 { &n[..7] } else { &n[..] };
        csv.push_str(&format!("{k},{}\n", rn(i)));
    }
    csv.push_str(&format!("1133334,{LOAD_RN}\n"));

    const CALLS: u64 = 1000;
    let load = Sipp::scenario(scenario("uac_bye.xml"))
        .local(uac_ip, None)
        .remote(sw.addr())
        .service("5511333344444")
        .key("caller", "5511999990000")
        .arg("-d")
        .arg("500")
        .calls(CALLS)
        .rate(50)
        .limit(200)
        .recv_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(120))
        .spawn();
    std::thread::sleep(Duration::from_secs(2));
    let (c, up) = upload(csv);
    assert_eq!(c, 201, "{up}");
    let r = load.wait();
    let (done, _) = callee.finish();
    eprintln!(
        "1 M-row upload under load: {up}; calls {} ok / {} failed; callee {} ok / {} failed",
        r.successful, r.failed, done.successful, done.failed
    );
    r.assert_ok(CALLS);
    assert_eq!(done.failed, 0, "a call got a wrong routing number");

    assert_eq!(up["lines"], ROWS + 1);
    assert_eq!(up["layout"], "numeric", "{up}");
    let rows = up["rows"].as_u64().unwrap();
    assert!(rows > ROWS * 99 / 100, "{up}");
    let bytes = up["bytes"].as_u64().unwrap();
    assert!(bytes <= 16 * rows, "{bytes} heap bytes for {rows} rows");
    let listed = api.get("/v1/datasets");
    assert_eq!(listed["loading"], json!([]), "{listed}");
    assert_eq!(listed["datasets"][0]["layout"], "numeric", "{listed}");

    // The answer the new version must give for row i (a later duplicate wins).
    let mut last = std::collections::HashMap::new();
    for i in 0..ROWS {
        let n = number(i);
        let k = if i % 100 == 0 { n[..7].to_string() } else { n };
        last.insert(k, i);
    }
    let simulate = |national: &str| {
        let (c, s) = api.post(
            "/v1/simulate",
            &json!({"hook": "portability", "input": {"number": format!("55{national}")}}),
        );
        assert_eq!(c, 200, "{s}");
        s["decision"].clone()
    };
    let mut probes = Vec::new();
    for i in (1..ROWS).step_by(99_991).take(10) {
        let n = number(i);
        if i % 100 == 0 {
            continue;
        }
        // exact: a number of the table
        let d = simulate(&n);
        assert_eq!(d["carrier"], rn(last[&n]), "exact {n}: {d}");
        assert_eq!(d["ported"], true, "{d}");
        probes.push((n.clone(), format!("{}{n}", rn(last[&n]))));
    }
    for i in (0..ROWS).step_by(100_000) {
        // prefix: another number in the range of row i
        let range = number(i)[..7].to_string();
        let other = format!("{range}0000");
        if last.contains_key(&other) {
            continue;
        }
        let d = simulate(&other);
        assert_eq!(d["carrier"], rn(last[&range]), "prefix {other}: {d}");
        assert_eq!(d["ported"], false, "{d}");
        probes.push((other.clone(), format!("{}{other}", rn(last[&range]))));
    }
    assert!(probes.len() >= 15, "{probes:?}");
    for (n, _) in probes.iter().take(4) {
        call(&sw, probe_ip, &format!("55{n}"), 100).assert_ok(1);
    }
    let (_, seen) = probe_callee.finish();
    for (_, expect) in probes.iter().take(4) {
        assert!(seen.contains(expect), "{expect} not among {seen:?}");
    }
}
