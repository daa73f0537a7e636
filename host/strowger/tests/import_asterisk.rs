//! `strowger import asterisk` end to end: the real binary on the fixture
//! files in tests/fixtures/asterisk/, then
//! (a) the produced routes.json decides calls in the real route-table plugin
//!     (built by `scripts/build-guests.sh`) inside the plugin runtime;
//! (b) the produced trunks.toml parses into the trunk schema with unknown
//!     fields refused.
//!
//! Run: `scripts/build-guests.sh && cargo test --workspace --test import_asterisk`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use strowger_plugin::testing::plugin_bytes;
use strowger_plugin::types::*;
use strowger_plugin::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/asterisk")
        .join(name)
}

fn strowger(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strowger"))
        .args(args)
        .output()
        .expect("run strowger")
}

/// Runs the import on the fixtures into a fresh directory.
fn import_fixtures() -> (tempfile::TempDir, Output) {
    let out = tempfile::tempdir().unwrap();
    let o = strowger(&[
        "import".as_ref(),
        "asterisk".as_ref(),
        fixture("sip.conf").as_os_str(),
        fixture("extensions.conf").as_os_str(),
        "--out".as_ref(),
        out.path().as_os_str(),
    ]);
    (out, o)
}

// ------------------------------------------------------------------ (b) trunks.toml

/// Mirror of the `[[trunks]]` schema of the trunks issue (the exact values
/// are asserted here; the test also parses the file with the switch's own
/// config loader).
#[derive(Debug, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
struct TrunkSchema {
    name: String,
    host: String,
    port: Option<u16>,
    transport: Option<String>,
    inbound: Option<String>,
    ignore_source_port: Option<bool>,
    username: Option<String>,
    auth_username: Option<String>,
    secret: Option<String>,
    fromuser: Option<String>,
    fromdomain: Option<String>,
    register: Option<bool>,
    did: Option<String>,
    register_expires: Option<u32>,
    register_retry_s: Option<u32>,
    register_attempts: Option<u32>,
    qualify_s: Option<u32>,
    codecs: Option<Vec<String>>,
    dtmf: Option<String>,
    media: Option<String>,
    max_calls_in: Option<u32>,
    max_calls_out: Option<u32>,
    max_calls: Option<u32>,
    caller_id: Option<String>,
    ruri_params: Option<String>,
    use_pai: Option<bool>,
    b_from: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrunksFile {
    trunks: Vec<TrunkSchema>,
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[test]
fn trunks_toml_has_the_peers_and_registrations() {
    let (dir, o) = import_fixtures();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "exit {:?}\n{stderr}", o.status);

    let path = dir.path().join("trunks.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let file: TrunksFile =
        toml::from_str(&text).unwrap_or_else(|e| panic!("trunks.toml: {e}\n{text}"));
    // and the switch itself accepts the fragment as its configuration
    let cfg = strowger_switch::config::Config::parse(&text, dir.path())
        .unwrap_or_else(|e| panic!("the switch refuses trunks.toml: {e}\n{text}"));
    assert_eq!(cfg.trunks.len(), file.trunks.len());
    assert_eq!(
        file.trunks,
        [
            TrunkSchema {
                name: "ast_provider".into(),
                host: "192.168.1.1".into(),
                port: Some(5060),
                transport: s("udp"),
                inbound: s("ip"),
                ignore_source_port: Some(true),
                username: s("199"),
                secret: s("199pass"),
                fromuser: s("199"),
                register: Some(true),
                did: s("ast_provider_reg"),
                register_retry_s: Some(30),
                register_attempts: Some(10),
                qualify_s: Some(60),
                codecs: Some(vec!["PCMU".into(), "PCMA".into()]),
                dtmf: s("rfc2833"),
                ..TrunkSchema::default()
            },
            TrunkSchema {
                name: "22TRUNK".into(),
                host: "192.168.1.22".into(),
                port: Some(5060),
                transport: s("udp"),
                inbound: s("ip"),
                ignore_source_port: Some(true),
                username: s("AST22"),
                secret: s("123456"),
                fromuser: s("AST22"),
                register: Some(true),
                register_retry_s: Some(30),
                register_attempts: Some(10),
                media: s("relay"),
                max_calls: Some(10),
                ..TrunkSchema::default()
            },
            TrunkSchema {
                name: "AST21".into(),
                host: "dynamic".into(),
                port: Some(5060),
                transport: s("udp"),
                inbound: s("register"),
                username: s("AST21"),
                secret: s("bsmofeng"),
                qualify_s: Some(30),
                dtmf: s("info"),
                ..TrunkSchema::default()
            },
        ]
    );

    // the mirror really refuses a typo
    let typo = text.replace("dtmf = \"info\"", "dtmfmode = \"info\"");
    assert!(toml::from_str::<TrunksFile>(&typo).is_err());

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "trunks.toml holds secrets: {mode:o}");
    }

    // the report: on stderr and in import-report.txt, with file:line and why
    let report = std::fs::read_to_string(dir.path().join("import-report.txt")).unwrap();
    for needle in [
        "sip.conf:3: not translated: `#include sip_custom.conf`",
        "sip.conf:35: info: [22TRUNK] nat=force_rport,comedia: nothing to do",
        "sip.conf:24: info: [ast_provider] context=from-provider: trunks have no context; routing comes from the route policy",
        "sip.conf:51: not translated: [AST21] `mailbox` has no Strowger trunk equivalent",
        "extensions.conf:11: not translated: Dial(SIP/AST21&SIP/22TRUNK): `&` rings several channels in parallel",
        "extensions.conf:12: not translated: Dial(IAX2/office/${EXTEN}): technology `IAX2`",
        "extensions.conf:25: not translated: [from-provider] special extension `s`",
    ] {
        assert!(report.contains(needle), "{needle:?} missing from\n{report}");
        assert!(
            stderr.contains(needle),
            "{needle:?} missing from stderr\n{stderr}"
        );
    }
    assert!(
        !report.contains("bsmofeng"),
        "secrets stay out of the report"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("imported 3 trunk(s)"), "{stdout}");
    assert!(stdout.contains("imported 7 route(s)"), "{stdout}");
}

#[test]
fn unreadable_or_empty_input_fails_without_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = strowger(&[
        "import".as_ref(),
        "asterisk".as_ref(),
        dir.path().join("missing-sip.conf").as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot read") && err.contains("missing-sip.conf"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written for unreadable input");

    // readable extensions.conf but unreadable sip.conf is the same; a
    // missing extensions.conf fails too, before anything is written
    let o = strowger(&[
        "import".as_ref(),
        "asterisk".as_ref(),
        fixture("sip.conf").as_os_str(),
        dir.path().join("missing-ext.conf").as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert!(!o.status.success());
    assert!(!out.exists());

    // readable but nothing to translate
    let empty = dir.path().join("empty.conf");
    std::fs::write(&empty, "[general]\nbindport=5060\n").unwrap();
    let o = strowger(&[
        "import".as_ref(),
        "asterisk".as_ref(),
        empty.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing could be translated"));
}

// ------------------------------------------------------------------ (a) routes.json

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig {
        // generous for a loaded 2-core machine
        default_deadline: Duration::from_millis(200),
        wall_limit: Duration::from_secs(5),
        queue_timeout: Duration::from_secs(5),
        ..RuntimeConfig::default()
    })
    .expect("runtime")
}

fn party(user: &str) -> Party {
    Party {
        uri: format!("sip:{user}@pbx.example.com"),
        user: user.into(),
        host: "pbx.example.com".into(),
        display_name: None,
    }
}

fn call(ingress: Ingress, a: &str, b: &str) -> Call {
    Call {
        call_id: format!("import-{a}-{b}"),
        ingress,
        source: Endpoint {
            ip: "127.0.0.1".into(),
            port: 5062,
            transport: Transport::Udp,
        },
        request_uri: format!("sip:{b}@pbx.example.com"),
        a_number: a.into(),
        b_number: b.into(),
        display_name: None,
        from: party(a),
        to: party(b),
        pai: None,
        diversion: vec![],
        headers: vec![],
        codecs: vec!["PCMU".into(), "PCMA".into()],
        portability: None,
        time: datetime_from_unix_ms(1_795_392_000_000, 0),
    }
}

fn phone(u: &str) -> Ingress {
    Ingress::User(format!("sip:{u}@pbx.example.com"))
}

fn trunk(t: &str) -> Ingress {
    Ingress::Trunk(t.into())
}

async fn route(g: &Generation, c: &Call) -> RouteDecision {
    let d = g.route(None, c).await.expect("route binding");
    assert!(
        d.is_plugin_answer(),
        "fallback {:?}: {:?}",
        d.fallback,
        d.error
    );
    d.value
}

/// (destination, B, A) of each attempt.
fn attempts(d: &RouteDecision) -> Vec<(Destination, Option<String>, Option<String>)> {
    match d {
        RouteDecision::Forward(f) => f
            .attempts
            .iter()
            .map(|a| {
                (
                    a.destination.clone(),
                    a.b_number.clone(),
                    a.a_number.clone(),
                )
            })
            .collect(),
        other => panic!("expected forward, got {other:?}"),
    }
}

fn t(n: &str) -> Destination {
    Destination::Trunk(n.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_json_decides_in_the_route_table_plugin() {
    let (dir, o) = import_fixtures();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let config = std::fs::read_to_string(dir.path().join("routes.json")).unwrap();

    let rt = runtime();
    let plugin = rt
        .load("route-table", &plugin_bytes("route-table"))
        .await
        .expect("load route-table");
    let g: Arc<Generation> = rt
        .build(Policy {
            bindings: vec![Binding::new(Hook::Route, plugin).config_json(&config)],
        })
        .await
        .unwrap_or_else(|e| panic!("route-table refused the imported routes.json: {e}\n{config}"));

    // _90. + Dial(SIP/22TRUNK/91${EXTEN:2},40): 900123 -> 22TRUNK as 910123
    let d = route(&g, &call(phone("1001"), "1001", "900123")).await;
    assert_eq!(attempts(&d), [(t("22TRUNK"), Some("910123".into()), None)]);
    let RouteDecision::Forward(f) = &d else {
        unreachable!()
    };
    assert_eq!(f.attempts[0].ring_timeout_ms, Some(40_000));

    // _0X.: Set(CALLERID(num)) then two Dials = two attempts, any failure moves on
    let d = route(&g, &call(phone("1001"), "1001", "01133334444")).await;
    assert_eq!(
        attempts(&d),
        [
            (
                t("ast_provider"),
                Some("1133334444".into()),
                Some("1133334444".into())
            ),
            (t("22TRUNK"), None, Some("1133334444".into())),
        ]
    );
    let RouteDecision::Forward(f) = &d else {
        unreachable!()
    };
    assert!(
        f.retry_on.contains(&Cause::StatusClass(4)),
        "{:?}",
        f.retry_on
    );
    assert!(f.retry_on.contains(&Cause::NoAnswer), "{:?}", f.retry_on);

    // _1XXX + Dial(SIP/${EXTEN}): the registered user
    let d = route(&g, &call(phone("1001"), "1001", "1002")).await;
    assert_eq!(
        attempts(&d),
        [(Destination::User("1002".into()), None, None)]
    );

    // include => emergency
    let d = route(&g, &call(phone("1001"), "1001", "192")).await;
    assert_eq!(attempts(&d), [(t("ast_provider"), None, None)]);

    // [FROMSIP] is the context of 22TRUNK and AST21: 91+N -> extension N
    for ingress in [trunk("22TRUNK"), trunk("AST21")] {
        let d = route(&g, &call(ingress, "2001", "911001")).await;
        assert_eq!(
            attempts(&d),
            [(Destination::User("1001".into()), None, None)]
        );
    }
    // ... and only theirs: the provider's context has no 91. pattern
    let no_route = RouteDecision::Reject(Reject {
        code: 404,
        reason: "No route".into(),
    });
    assert_eq!(
        route(&g, &call(trunk("ast_provider"), "x", "911001")).await,
        no_route
    );

    // the provider's DID token (register string /ast_provider_reg)
    let d = route(&g, &call(trunk("ast_provider"), "x", "ast_provider_reg")).await;
    assert_eq!(
        attempts(&d),
        [(Destination::User("1001".into()), None, None)]
    );

    // a number matching no pattern is rejected; so is the parallel-ring
    // pattern that was not translated
    for b in ["5555", "8001"] {
        assert_eq!(route(&g, &call(phone("1001"), "1001", b)).await, no_route);
    }
}
