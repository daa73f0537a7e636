//! The four standard Rust plugins (guest-examples/rust/{route-table,
//! registrar-policy, br-portability, e164-normalize}), built as real
//! components by `scripts/build-guests.sh`, deciding in the real runtime.
//!
//! Run: `scripts/build-guests.sh && cargo test -p strowger-plugin --test standard_plugins`.

use std::sync::Arc;
use std::time::Duration;

use strowger_plugin::testing::{plugin_bytes, workspace_root};
use strowger_plugin::types::*;
use strowger_plugin::*;

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig {
        utc_offset_minutes: -180,
        // generous for a loaded 2-core machine
        default_deadline: Duration::from_millis(200),
        wall_limit: Duration::from_secs(5),
        queue_timeout: Duration::from_secs(5),
        ..RuntimeConfig::default()
    })
    .expect("runtime")
}

/// 2026-11-23 (a Monday) + `day_offset` days at `hour`:`minute`, local time UTC-3.
fn local(day_offset: i64, hour: i64, minute: i64) -> Datetime {
    let midnight_utc = 1_795_392_000_000_i64; // 2026-11-23T00:00:00Z
    let local = midnight_utc + ((day_offset * 24 + hour) * 60 + minute) * 60_000;
    datetime_from_unix_ms(local + 180 * 60_000, -180)
}

fn party(user: &str) -> Party {
    Party {
        uri: format!("sip:{user}@pbx.example.com"),
        user: user.into(),
        host: "pbx.example.com".into(),
        display_name: None,
    }
}

fn call(ingress: Ingress, a: &str, b: &str, time: Datetime) -> Call {
    Call {
        call_id: format!("std-{a}-{b}"),
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
        time,
    }
}

fn user(u: &str) -> Ingress {
    Ingress::User(format!("sip:{u}@pbx.example.com"))
}

async fn generation(
    rt: &Runtime,
    name: &str,
    hook: Hook,
    config: &str,
    datasets: &[&str],
) -> Arc<Generation> {
    let plugin = rt
        .load(name, &plugin_bytes(name))
        .await
        .unwrap_or_else(|e| panic!("load {name}: {e}"));
    assert_eq!(plugin.hooks(), &[hook], "{name} targets the {hook} world");
    rt.build(Policy {
        bindings: vec![
            Binding::new(hook, plugin)
                .config_json(config)
                .datasets(datasets.iter().copied()),
        ],
    })
    .await
    .unwrap_or_else(|e| panic!("build {name}: {e}"))
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

fn forward(d: RouteDecision) -> Forward {
    match d {
        RouteDecision::Forward(f) => f,
        other => panic!("expected forward, got {other:?}"),
    }
}

fn counter(rt: &Runtime, plugin: &str, name: &str) -> u64 {
    let snap = rt.metrics_snapshot();
    let p = snap
        .plugins
        .iter()
        .find(|p| p.plugin == plugin)
        .expect("plugin metrics");
    p.counters.get(name).copied().unwrap_or(0)
}

const ROUTES: &str = r#"{
  "retry_on": ["408"],
  "routes": [
    {"name": "ext", "priority": 0, "source": ["registered"], "b": ["_1XXX"], "destination": {"user": "${EXTEN}"}},
    {"name": "out-9", "priority": 10, "source": ["registered"], "b": ["_90."], "b_rewrite": "91${EXTEN:2}",
     "destination": {"trunk": "carrier-a"}, "retry_on": ["503", "no-answer"], "ring_timeout_s": 25},
    {"name": "strip-012", "priority": 20, "b": [{"freepbx": "012|."}], "destination": {"trunk": "carrier-b"}},
    {"name": "khomp-48", "priority": 30, "b": ["/^48([0-9]{8})$/$1/"], "destination": {"trunk": "carrier-c"}},
    {"name": "tollfree-day", "priority": 40, "b": ["_0800."], "time": [{"hours": "08:00-18:00", "weekdays": "mon-fri"}],
     "destination": {"trunk": "day-trunk"}, "retry_on": ["5xx"]},
    {"name": "tollfree-any", "priority": 50, "b": ["_0800."], "destination": {"trunk_group": "carriers-weighted"},
     "media": "relay", "codecs": ["PCMA"], "headers": {"add": {"X-Route": "${ROUTE}"}, "remove": ["X-Internal"]}}
  ]
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_table_classic_examples() {
    let rt = runtime();
    let g = generation(&rt, "route-table", Hook::Route, ROUTES, &[]).await;
    let mon10 = local(0, 10, 0);

    // Asterisk `_90.` with `91${EXTEN:2}` to a trunk
    let f = forward(route(&g, &call(user("1001"), "1001", "901133334444", mon10)).await);
    assert_eq!(f.attempts.len(), 1);
    assert_eq!(
        f.attempts[0].destination,
        Destination::Trunk("carrier-a".into())
    );
    assert_eq!(f.attempts[0].b_number.as_deref(), Some("911133334444"));
    assert_eq!(f.attempts[0].ring_timeout_ms, Some(25_000));

    // FreePBX `012|.` strips the carrier prefix
    let f = forward(
        route(
            &g,
            &call(
                Ingress::Trunk("pbx".into()),
                "1133334444",
                "0121133334444",
                mon10,
            ),
        )
        .await,
    );
    assert_eq!(
        f.attempts[0].destination,
        Destination::Trunk("carrier-b".into())
    );
    assert_eq!(f.attempts[0].b_number.as_deref(), Some("1133334444"));

    // Khomp regex substitution
    let f = forward(
        route(
            &g,
            &call(
                Ingress::Trunk("pbx".into()),
                "1133334444",
                "4833334444",
                mon10,
            ),
        )
        .await,
    );
    assert_eq!(
        f.attempts[0].destination,
        Destination::Trunk("carrier-c".into())
    );
    assert_eq!(f.attempts[0].b_number.as_deref(), Some("33334444"));

    // registered-user routing: the user named by the B number
    let f = forward(route(&g, &call(user("1001"), "1001", "1002", mon10)).await);
    assert_eq!(
        f.attempts,
        [Attempt {
            destination: Destination::User("1002".into()),
            ..f.attempts[0].clone()
        }]
    );
    // ... but only for registered users
    let d = route(&g, &call(Ingress::Trunk("pbx".into()), "x", "1002", mon10)).await;
    assert_eq!(
        d,
        RouteDecision::Reject(Reject {
            code: 404,
            reason: "No route".into()
        })
    );

    assert!(counter(&rt, "route-table", "routed") >= 4);
    assert_eq!(counter(&rt, "route-table", "no_route"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_table_time_window_overflow_and_weighted_group() {
    let rt = runtime();
    let g = generation(&rt, "route-table", Hook::Route, ROUTES, &[]).await;

    // Monday 10:00 local: the day trunk first, then the weighted group
    let f = forward(
        route(
            &g,
            &call(user("1001"), "1001", "08001234567", local(0, 10, 0)),
        )
        .await,
    );
    let dests: Vec<_> = f.attempts.iter().map(|a| a.destination.clone()).collect();
    assert_eq!(
        dests,
        [
            Destination::Trunk("day-trunk".into()),
            Destination::TrunkGroup("carriers-weighted".into())
        ]
    );
    // retry resumes at the next priority on the first route's causes
    assert_eq!(f.retry_on, [Cause::Status(408), Cause::StatusClass(5)]);
    let group = &f.attempts[1];
    assert_eq!(group.media, Some(MediaMode::Relay));
    assert_eq!(group.codecs.as_deref(), Some(&["PCMA".to_string()][..]));
    assert_eq!(
        group.add_headers,
        [Header {
            name: "X-Route".into(),
            value: "tollfree-any".into()
        }]
    );
    assert_eq!(group.remove_headers, ["X-Internal"]);

    // 18:00 (window closed) and Saturday: overflow straight to the group
    for t in [local(0, 18, 0), local(5, 10, 0)] {
        let f = forward(route(&g, &call(user("1001"), "1001", "08001234567", t)).await);
        assert_eq!(f.attempts.len(), 1, "{t:?}");
        assert_eq!(
            f.attempts[0].destination,
            Destination::TrunkGroup("carriers-weighted".into())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_table_demo_config_and_bad_config() {
    let rt = runtime();
    let demo = std::fs::read_to_string(
        workspace_root().join("guest-examples/rust/route-table/demo-config.json"),
    )
    .unwrap();
    let g = generation(&rt, "route-table", Hook::Route, &demo, &[]).await;
    for ext in ["1001", "1005", "1010"] {
        let f = forward(route(&g, &call(user("1002"), "1002", ext, local(0, 3, 0))).await);
        assert_eq!(f.attempts[0].destination, Destination::User(ext.into()));
    }
    for other in ["1011", "0800123", "5511987654321"] {
        let d = route(&g, &call(user("1002"), "1002", other, local(0, 3, 0))).await;
        assert!(
            matches!(&d, RouteDecision::Reject(r) if r.code == 404),
            "{other}: {d:?}"
        );
    }

    // a bad configuration refuses the plugin version at build time, with the reason
    let plugin = rt
        .load("route-table", &plugin_bytes("route-table"))
        .await
        .unwrap();
    let err = rt
        .build(Policy {
            bindings: vec![
                Binding::new(Hook::Route, plugin)
                    .config_json(r#"{"routes": [{"b": ["_9[1"], "destination": {"trunk": "x"}}]}"#),
            ],
        })
        .await
        .expect_err("bad config must be refused");
    assert!(err.to_string().contains("unterminated"), "{err}");
}

fn auth(user: &str, ip: &str, ua: Option<&str>, credentials: Credentials) -> AuthRequest {
    AuthRequest {
        method: "REGISTER".into(),
        aor: format!("sip:{user}@pbx.example.com"),
        user: user.into(),
        domain: "pbx.example.com".into(),
        auth_user: Some(user.into()),
        credentials,
        known_user: true,
        source: Endpoint {
            ip: ip.into(),
            port: 5062,
            transport: Transport::Udp,
        },
        ingress: Ingress::Unknown,
        user_agent: ua.map(str::to_string),
        contacts: vec![format!("sip:{user}@{ip}:5062")],
        expires: Some(7200),
        registration: RegistrationState::None,
        contact_count: 0,
        time: local(0, 10, 0),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrar_policy_scanners_cidr_and_credentials() {
    let rt = runtime();
    let config = r#"{"allow": {"users": {"1001": ["127.0.0.0/8"]}}, "realm": "pbx.example.com",
                     "min_expires": 60, "max_expires": 3600, "max_contacts": 3}"#;
    let g = generation(&rt, "registrar-policy", Hook::Authorize, config, &[]).await;
    let decide = |r: AuthRequest| {
        let g = g.clone();
        async move {
            let d = g
                .authorize(None, "reg-1", &r)
                .await
                .expect("authorize binding");
            assert!(
                d.is_plugin_answer(),
                "fallback {:?}: {:?}",
                d.fallback,
                d.error
            );
            d.value
        }
    };

    assert_eq!(
        decide(auth(
            "1001",
            "127.0.0.1",
            Some("friendly-scanner"),
            Credentials::Valid
        ))
        .await,
        AuthDecision::Drop
    );
    assert_eq!(
        decide(auth(
            "1002",
            "127.0.0.9",
            Some("sipvicious"),
            Credentials::None
        ))
        .await,
        AuthDecision::Drop
    );
    assert_eq!(
        decide(auth(
            "1001",
            "10.1.2.3",
            Some("Linphone"),
            Credentials::Valid
        ))
        .await,
        AuthDecision::Reject(Reject {
            code: 403,
            reason: "Forbidden".into()
        })
    );
    assert_eq!(
        decide(auth(
            "1001",
            "127.0.0.1",
            Some("Linphone"),
            Credentials::None
        ))
        .await,
        AuthDecision::Challenge(Challenge {
            realm: Some("pbx.example.com".into()),
            algorithms: vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5]
        })
    );
    assert_eq!(
        decide(auth("1001", "127.0.0.1", None, Credentials::Valid)).await,
        AuthDecision::Accept(Accept {
            max_expires: Some(3600),
            min_expires: Some(60),
            max_contacts: Some(3)
        })
    );
    assert_eq!(
        decide(auth("1003", "192.0.2.1", None, Credentials::Invalid)).await,
        AuthDecision::Reject(Reject {
            code: 403,
            reason: "Forbidden".into()
        })
    );
    assert_eq!(counter(&rt, "registrar-policy", "scanner"), 2);
    assert_eq!(counter(&rt, "registrar-policy", "outside_allowed"), 1);
}

fn query(number: &str) -> PortabilityQuery {
    PortabilityQuery {
        number: number.into(),
        a_number: "1133334444".into(),
        ingress: Ingress::Trunk("pbx".into()),
        time: local(0, 10, 0),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn br_portability_ported_then_ranges_from_host_datasets() {
    let rt = runtime();
    let data = workspace_root().join("guest-examples/rust/br-portability/data");
    for (name, file) in [("br-ported", "ported.csv"), ("br-ranges", "ranges.csv")] {
        let f = std::io::BufReader::new(std::fs::File::open(data.join(file)).unwrap());
        rt.datasets()
            .put_dataset(name, Arc::new(Dataset::from_csv("v1", f).unwrap()));
    }
    let g = generation(
        &rt,
        "br-portability",
        Hook::Portability,
        "{}",
        &["br-ported", "br-ranges"],
    )
    .await;
    let look = |n: &str| {
        let (g, q) = (g.clone(), query(n));
        async move {
            let d = g
                .portability(None, "p-1", &q)
                .await
                .expect("portability binding");
            assert!(
                d.is_plugin_answer(),
                "fallback {:?}: {:?}",
                d.fallback,
                d.error
            );
            d.value
        }
    };

    // ported (exact table) beats the range the number belongs to
    let r = look("+55 11 98765-4321").await.expect("ported");
    assert_eq!(
        r,
        PortabilityResult {
            number: "11987654321".into(),
            carrier: "55321".into(),
            routing_number: "5532111987654321".into(),
            ported: true
        }
    );
    // not ported: longest-prefix range
    let r = look("011987650000").await.expect("range");
    assert_eq!(
        (r.carrier.as_str(), r.ported, r.routing_number.as_str()),
        ("55320", false, "5532011987650000")
    );
    let r = look("1133330000").await.expect("range");
    assert_eq!(r.carrier, "55100");
    // unknown to the data, and not Brazilian numbers
    assert_eq!(look("3133334444").await, None);
    assert_eq!(look("190").await, None);

    // a new data set version is seen by the next decision
    rt.datasets()
        .put("br-ranges", "v2", [("11", "55999")])
        .unwrap();
    assert_eq!(look("1133330000").await.expect("range v2").carrier, "55999");

    // data sets the binding was not granted are invisible
    let g2 = generation(
        &rt,
        "br-portability",
        Hook::Portability,
        "{}",
        &["br-ranges"],
    )
    .await;
    let d = g2
        .portability(None, "p-2", &query("11987654321"))
        .await
        .unwrap();
    assert_eq!(
        d.value.map(|r| (r.carrier, r.ported)),
        Some(("55999".to_string(), false))
    );
}

fn rw(direction: Direction, trunk: Option<&str>, a: &str, b: &str) -> RewriteRequest {
    RewriteRequest {
        direction,
        trunk: trunk.map(str::to_string),
        ingress: match trunk {
            Some(t) => Ingress::Trunk(t.into()),
            None => user("1001"),
        },
        numbers: Numbers {
            a_number: a.into(),
            b_number: b.into(),
            display_name: None,
        },
        time: local(0, 10, 0),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e164_normalize_ingress_and_egress() {
    let rt = runtime();
    let config = std::fs::read_to_string(
        workspace_root().join("guest-examples/rust/e164-normalize/example-config.json"),
    )
    .unwrap();
    let g = generation(&rt, "e164-normalize", Hook::Rewrite, &config, &[]).await;
    let run = |r: RewriteRequest| {
        let g = g.clone();
        async move {
            let d = g
                .rewrite(r.trunk.clone().as_deref(), "r-1", &r)
                .await
                .expect("rewrite binding");
            assert!(
                d.is_plugin_answer(),
                "fallback {:?}: {:?}",
                d.fallback,
                d.error
            );
            (d.value.a_number, d.value.b_number)
        }
    };
    // ingress from a Brazilian carrier: local, national with carrier code, ninth digit
    assert_eq!(
        run(rw(
            Direction::Ingress,
            Some("carrier-sp"),
            "33334444",
            "02121987654321"
        ))
        .await,
        ("551133334444".into(), "5521987654321".into())
    );
    assert_eq!(
        run(rw(
            Direction::Ingress,
            Some("carrier-sp"),
            "1187654321",
            "190"
        ))
        .await,
        ("5511987654321".into(), "190".into())
    );
    // egress: national format towards carrier-sp, +E.164 towards carrier-intl
    assert_eq!(
        run(rw(
            Direction::Egress,
            Some("carrier-sp"),
            "551133334444",
            "442079460000"
        ))
        .await,
        ("1133334444".into(), "00442079460000".into())
    );
    assert_eq!(
        run(rw(
            Direction::Egress,
            Some("carrier-intl"),
            "551133334444",
            "5521987654321"
        ))
        .await,
        ("+551133334444".into(), "+5521987654321".into())
    );
}
