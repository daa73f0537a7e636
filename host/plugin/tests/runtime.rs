//! Runtime behaviour against real components built by `scripts/build-guests.sh`
//! (the `chaos` plugin misbehaves on demand).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use strowger_plugin::types::*;
use strowger_plugin::*;

fn chaos() -> Vec<u8> {
    testing::plugin_bytes("chaos")
}

fn small_config() -> RuntimeConfig {
    RuntimeConfig {
        max_instances: 64,
        ..RuntimeConfig::default()
    }
}

fn call(id: &str, b: &str) -> Call {
    let mut c = json::example_call();
    c.call_id = id.into();
    c.b_number = b.into();
    c
}

fn uri_of(d: &RouteDecision) -> Option<&str> {
    match d {
        RouteDecision::Forward(f) => match &f.attempts.first()?.destination {
            Destination::Uri(u) => Some(u),
            _ => None,
        },
        _ => None,
    }
}

async fn chaos_generation(
    rt: &Runtime,
    tag: &str,
    f: impl FnOnce(Binding) -> Binding,
) -> Arc<Generation> {
    let p = rt.load("chaos", &chaos()).await.expect("load chaos");
    let b = Binding::new(Hook::Route, p).config_json(format!(r#"{{"tag":"{tag}"}}"#));
    rt.build(Policy {
        bindings: vec![f(b)],
    })
    .await
    .expect("build")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_plugins_get_the_fallback_while_good_decisions_continue() {
    let rt = Runtime::new(small_config()).unwrap();
    let g = chaos_generation(&rt, "good", |b| {
        b.deadline(Duration::from_millis(25))
            .memory_limit(16 << 20)
            .fallback(Fallback::Reject {
                code: 503,
                reason: "Plugin Failed".into(),
            })
    })
    .await;
    rt.activate(g.clone());

    // Good decisions run continuously on other tasks meanwhile.
    let stop = Arc::new(AtomicBool::new(false));
    let good = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for w in 0..2 {
        let (g, stop, good) = (g.clone(), stop.clone(), good.clone());
        workers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) || i < 50 {
                let d = g
                    .route(None, &call(&format!("good-{w}-{i}"), "5511999990000"))
                    .await
                    .unwrap();
                assert_eq!(d.fallback, None, "good decision failed: {:?}", d.error);
                assert_eq!(uri_of(&d.value), Some("sip:good@chaos.invalid"));
                good.fetch_add(1, Ordering::Relaxed);
                i += 1;
                tokio::task::yield_now().await;
            }
        }));
    }

    let cases = [
        ("loop", FallbackReason::Timeout),
        ("trap", FallbackReason::Trap),
        ("oom", FallbackReason::MemoryLimit),
        ("deep", FallbackReason::StackOverflow),
        ("bad", FallbackReason::InvalidAnswer),
        ("empty", FallbackReason::InvalidAnswer),
        ("err", FallbackReason::GuestError),
    ];
    for round in 0..3 {
        let mut tasks = Vec::new();
        for (mode, want) in cases {
            let g = g.clone();
            tasks.push(tokio::spawn(async move {
                let t0 = Instant::now();
                let d = g
                    .route(None, &call(&format!("{mode}-{round}"), mode))
                    .await
                    .unwrap();
                (mode, want, d, t0.elapsed())
            }));
        }
        for t in tasks {
            let (mode, want, d, wall) = t.await.unwrap();
            assert_eq!(d.fallback, Some(want), "{mode}: {:?}", d.error);
            assert_eq!(
                d.value,
                RouteDecision::Reject(Reject {
                    code: 503,
                    reason: "Plugin Failed".into()
                }),
                "{mode}"
            );
            assert!(d.error.is_some(), "{mode}");
            // Generous on a loaded 2-core machine; the budget itself is 25 ms of CPU.
            assert!(wall < Duration::from_secs(3), "{mode} took {wall:?}");
            if mode == "loop" {
                assert!(
                    d.error.as_deref().unwrap().contains("deadline exceeded"),
                    "{:?}",
                    d.error
                );
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    assert!(good.load(Ordering::Relaxed) >= 100);

    // Counted per plugin version and reason.
    let m = g.bindings()[0].2.metrics().clone();
    assert_eq!(m.fallbacks(FallbackReason::Timeout), 3);
    assert_eq!(m.fallbacks(FallbackReason::Trap), 3);
    assert_eq!(m.fallbacks(FallbackReason::MemoryLimit), 3);
    assert_eq!(m.fallbacks(FallbackReason::StackOverflow), 3);
    assert_eq!(m.fallbacks(FallbackReason::InvalidAnswer), 6);
    assert_eq!(m.fallbacks(FallbackReason::GuestError), 3);
    let snap = rt.metrics_snapshot();
    let s = snap.plugins.iter().find(|p| p.plugin == "chaos").unwrap();
    assert_eq!(s.decisions, m.decisions());
    assert_eq!(s.fallbacks["timeout"], 3);
    assert_eq!(
        s.latency_buckets_us.iter().map(|(_, n)| n).sum::<u64>(),
        s.decisions
    );

    // After all that, the binding still answers.
    let d = g.route(None, &call("after", "5511")).await.unwrap();
    assert_eq!(d.fallback, None);

    // The Prometheus rendering names reasons.
    let mut reg = prometheus_client::registry::Registry::default();
    rt.register_metrics(&mut reg);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
    assert!(text.contains(r#"reason="timeout""#), "{text}");
    assert!(
        text.contains("strowger_plugin_decision_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_time_not_wall_time_is_charged() {
    // A decision that burns ~1 ms of CPU fits a 20 ms budget.
    let rt = Runtime::new(small_config()).unwrap();
    let p = rt.load("chaos", &chaos()).await.unwrap();
    let g = rt
        .build(Policy {
            bindings: vec![
                Binding::new(Hook::Route, p)
                    .config_json(r#"{"tag":"slow","mode":"slow","spin_ms":1}"#)
                    .deadline(Duration::from_millis(20)),
            ],
        })
        .await
        .unwrap();
    for i in 0..5 {
        let d = g
            .route(None, &call(&format!("s{i}"), "5511"))
            .await
            .unwrap();
        assert_eq!(d.fallback, None, "{:?}", d.error);
        assert_eq!(uri_of(&d.value), Some("sip:slow@chaos.invalid"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_broken_components_are_refused_at_load() {
    let rt = Runtime::new(small_config()).unwrap();
    // chaos is a route plugin: refused as rewrite, naming what is missing and what is there.
    let e = rt
        .load_for_hook("chaos", &chaos(), Hook::Rewrite)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("strowger:plugin/rewriter"), "{e}");
    assert!(e.contains("router"), "{e}");
    // Same through a policy binding.
    let p = rt.load("chaos", &chaos()).await.unwrap();
    assert_eq!(p.hooks(), &[Hook::Route]);
    let e = rt
        .build(Policy {
            bindings: vec![Binding::new(Hook::Authorize, p.clone())],
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("authorizer") && e.contains("binding 0"), "{e}");
    // Garbage, a core module, a truncated component.
    let e = rt
        .load("junk", b"hello world, not wasm")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a WebAssembly file"), "{e}");
    let e = rt
        .load("core", b"\0asm\x01\0\0\0")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("core WebAssembly module"), "{e}");
    let bytes = chaos();
    let e = rt
        .load("cut", &bytes[..bytes.len() / 2])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a valid WebAssembly component"), "{e}");
    // init refusing the configuration refuses the whole generation.
    let e = rt
        .build(Policy {
            bindings: vec![
                Binding::new(Hook::Route, p.clone()).config_json(r#"{"tag":"a"}"#),
                Binding::new(Hook::Route, p.clone())
                    .scope(Scope::Trunk("t1".into()))
                    .config_json(r#"{"fail_init": true}"#),
            ],
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("binding 1") && e.contains("fail_init"), "{e}");
    assert_eq!(rt.current().id(), 0, "nothing activated");
    // Bad config JSON, bad static fallback, duplicate scope.
    let e = rt
        .build(Policy {
            bindings: vec![Binding::new(Hook::Route, p.clone()).config_json("{nope")],
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("not valid JSON"), "{e}");
    let e = rt
        .build(Policy {
            bindings: vec![
                Binding::new(Hook::Route, p.clone()).fallback(Fallback::Reject {
                    code: 200,
                    reason: "OK".into(),
                }),
            ],
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("400..=699"), "{e}");
    let e = rt
        .build(Policy {
            bindings: vec![
                Binding::new(Hook::Route, p.clone()),
                Binding::new(Hook::Route, p.clone()),
            ],
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("second route binding"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_100_times_under_load() {
    // 101 generations built up front, each with a warm instance.
    let rt = Runtime::new(RuntimeConfig {
        max_instances: 256,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let p = rt.load("chaos", &chaos()).await.unwrap();
    let mut gens = Vec::new();
    let mut tags = HashMap::new();
    for v in 0..=100 {
        let g = rt
            .build(Policy {
                bindings: vec![
                    Binding::new(Hook::Route, p.clone())
                        .config_json(format!(r#"{{"tag":"v{v}"}}"#)),
                ],
            })
            .await
            .unwrap();
        tags.insert(g.id(), format!("sip:v{v}@chaos.invalid"));
        gens.push(g);
    }
    let tags = Arc::new(tags);
    rt.activate(gens[0].clone());

    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..4 {
        let (rt, stop, tags) = (rt.clone(), stop.clone(), tags.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut seen = std::collections::HashSet::new();
            while !stop.load(Ordering::Relaxed) {
                let id = format!("t{t}-{n}");
                let g = rt.generation_for_call(&id);
                // Two decisions of one "call": both from its generation.
                for _ in 0..2 {
                    let d = g.route(None, &call(&id, "5511")).await.unwrap();
                    assert_eq!(d.fallback, None, "{:?}", d.error);
                    assert_eq!(d.generation, g.id());
                    assert_eq!(
                        uri_of(&d.value),
                        Some(tags[&g.id()].as_str()),
                        "answer from another generation"
                    );
                }
                seen.insert(g.id());
                n += 1;
                tokio::task::yield_now().await;
            }
            (n, seen.len())
        }));
    }
    // A call that started on generation 0 keeps it across swaps.
    let held = rt.generation_for_call("held");
    for g in gens.iter().skip(1) {
        rt.activate(g.clone());
        tokio::time::sleep(Duration::from_millis(2)).await;
        let d = held.route(None, &call("held", "5511")).await.unwrap();
        assert_eq!(uri_of(&d.value), Some("sip:v0@chaos.invalid"));
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    let mut distinct = 0;
    for t in tasks {
        let (n, s) = t.await.unwrap();
        total += n;
        distinct = distinct.max(s);
    }
    assert!(total > 100, "only {total} decisions");
    assert!(distinct > 5, "decisions saw only {distinct} generations");
    assert_eq!(rt.current().id(), gens[100].id());
    assert_eq!(rt.previous().unwrap().id(), gens[99].id());
    // Rollback re-activates the previous generation.
    assert_eq!(rt.rollback().unwrap().id(), gens[99].id());
    assert_eq!(rt.current().id(), gens[99].id());
    eprintln!(
        "hot swap: {total} calls x2 decisions, up to {distinct} generations seen by one task"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_generations_are_freed() {
    let rt = Runtime::new(small_config()).unwrap();
    let g1 = chaos_generation(&rt, "a", |b| b).await;
    let weak = Arc::downgrade(&g1);
    rt.activate(g1);
    let g2 = chaos_generation(&rt, "b", |b| b).await;
    rt.activate(g2);
    assert!(weak.upgrade().is_some(), "kept as previous");
    let g3 = chaos_generation(&rt, "c", |b| b).await;
    rt.activate(g3);
    assert!(
        weak.upgrade().is_none(),
        "generation 1 freed once nothing references it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_cache_is_hit_on_second_load() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = || RuntimeConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..small_config()
    };
    let rt1 = Runtime::new(cfg()).unwrap();
    let p1 = rt1.load("chaos", &chaos()).await.unwrap();
    assert!(!p1.from_cache());
    assert_eq!((rt1.compilations(), rt1.cache_hits()), (1, 0));
    let rt2 = Runtime::new(cfg()).unwrap();
    let p2 = rt2.load("chaos", &chaos()).await.unwrap();
    assert!(p2.from_cache());
    assert_eq!((rt2.compilations(), rt2.cache_hits()), (0, 1));
    eprintln!(
        "compile {:?}, from cache {:?}",
        p1.load_time(),
        p2.load_time()
    );
    // The cached code works.
    let g = rt2
        .build(Policy {
            bindings: vec![Binding::new(Hook::Route, p2)],
        })
        .await
        .unwrap();
    let d = g.route(None, &call("c1", "5511")).await.unwrap();
    assert_eq!(d.fallback, None);
    // A corrupt cache entry is ignored and replaced.
    for e in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::write(e.unwrap().path(), b"garbage").unwrap();
    }
    let rt3 = Runtime::new(cfg()).unwrap();
    let p3 = rt3.load("chaos", &chaos()).await.unwrap();
    assert!(!p3.from_cache());
    assert_eq!(rt3.compilations(), 1);
}

struct FakeSwitch;

impl HostServices for FakeSwitch {
    fn location_lookup<'a>(&'a self, aor: &'a str) -> HostFuture<'a, Vec<Contact>> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            (0..2)
                .map(|i| Contact {
                    uri: format!("sip:{aor}@10.0.0.{i}"),
                    expires_in: 60,
                    source: Endpoint {
                        ip: format!("10.0.0.{i}"),
                        port: 5060,
                        transport: Transport::Udp,
                    },
                    user_agent: None,
                })
                .collect()
        })
    }
    fn trunk_status<'a>(&'a self, name: &'a str) -> HostFuture<'a, Option<TrunkState>> {
        Box::pin(async move {
            Some(TrunkState {
                name: name.into(),
                up: true,
                active_in: 0,
                active_out: 0,
                max_in: None,
                max_out: None,
                max_total: None,
                latency_ms: Some(3),
                registered: None,
            })
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_imports() {
    let rt = Runtime::new(small_config()).unwrap();
    rt.set_host_services(Arc::new(FakeSwitch));
    rt.datasets()
        .put("chaos", "v1", [("551133334444", "exact"), ("5511", "SP")])
        .unwrap();
    let p = rt.load("chaos", &chaos()).await.unwrap();
    let g = rt
        .build(Policy {
            bindings: vec![
                Binding::new(Hook::Route, p.clone())
                    .config_json(r#"{"tag":"h"}"#)
                    .datasets(["chaos"]),
                // No grant: data set lookups answer none.
                Binding::new(Hook::Route, p.clone())
                    .scope(Scope::Trunk("nogrant".into()))
                    .config_json(r#"{"tag":"n"}"#),
            ],
        })
        .await
        .unwrap();
    let mut c = call("h1", "host");
    let d = g.route(None, &c).await.unwrap();
    assert_eq!(d.fallback, None, "{:?}", d.error);
    let year = datetime_now(0).year;
    assert_eq!(
        uri_of(&d.value).unwrap(),
        format!(
            "sip:h.cfg11.y{year}.get-exact.lpm-551133334444=exact.loc2.trunk-true@chaos.invalid"
        )
    );
    assert_eq!(d.logs.len(), 1);
    assert!(d.logs[0].message.contains("chaos host call h1"));
    assert_eq!(d.logs[0].level, Level::Info);
    c.a_number = "5599".into();
    let d = g.route(Some("nogrant"), &c).await.unwrap();
    assert!(
        uri_of(&d.value).unwrap().contains("get-none.lpm-none"),
        "{:?}",
        d.value
    );
    // A data set swapped between decisions is seen by the next decision.
    rt.datasets().put("chaos", "v2", [("5599", "new")]).unwrap();
    let d = g.route(None, &c).await.unwrap();
    assert!(
        uri_of(&d.value).unwrap().contains("get-new.lpm-5599=new"),
        "{:?}",
        d.value
    );
    let snap = rt.metrics_snapshot();
    let s = snap.plugins.iter().find(|p| p.plugin == "chaos").unwrap();
    assert_eq!(s.counters["chaos_host_calls"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_and_previous_fallback() {
    let rt = Runtime::new(small_config()).unwrap();
    let stable = chaos_generation(&rt, "stable", |b| b).await;
    rt.activate(stable.clone());
    // The candidate always fails; its fallback is the previous generation's answer.
    let p = rt.load("chaos", &chaos()).await.unwrap();
    let candidate = rt
        .build(Policy {
            bindings: vec![
                Binding::new(Hook::Route, p)
                    .config_json(r#"{"tag":"cand","mode":"err"}"#)
                    .fallback(Fallback::Previous),
            ],
        })
        .await
        .unwrap();
    rt.activate_canary(candidate.clone(), 30);
    let mut to_canary = 0;
    for i in 0..1000 {
        let id = format!("call-{i}");
        let g = rt.generation_for_call(&id);
        assert_eq!(g.id(), rt.generation_for_call(&id).id(), "deterministic");
        if g.id() == candidate.id() {
            to_canary += 1;
        }
    }
    assert!((200..400).contains(&to_canary), "{to_canary}");
    let d = candidate.route(None, &call("x", "5511")).await.unwrap();
    assert_eq!(d.fallback, Some(FallbackReason::GuestError));
    assert_eq!(
        uri_of(&d.value),
        Some("sip:stable@chaos.invalid"),
        "previous generation answered"
    );
    assert_eq!(d.generation, candidate.id());
    rt.cancel_canary();
    assert_eq!(rt.generation_for_call("call-1").id(), stable.id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_binding_means_none() {
    let rt = Runtime::new(small_config()).unwrap();
    let g = rt.current();
    assert!(g.route(None, &json::example_call()).await.is_none());
    assert!(
        g.rewrite(None, "x", &json::example_rewrite_request())
            .await
            .is_none()
    );
}
