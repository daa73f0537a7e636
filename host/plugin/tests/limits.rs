//! Limits that hold whatever a plugin does: wall-time deadlines around WASI
//! waits (a sleep in `init` or in a decision), the WASI allow-list, the
//! deadline cap, and the decision pool that keeps plugin code off the
//! caller's threads. Real components: `chaos` (sleeps and spins on demand)
//! and `net-probe` (imports `wasi:sockets`), built by
//! `scripts/build-guests.sh`.
//!
//! Durations asserted here are generous bounds that prove "not forever"
//! (deadlines of a few hundred ms must answer within seconds).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use strowger_plugin::types::*;
use strowger_plugin::*;

/// Upper bound for anything that must not hang; a hang fails the test here.
const NOT_FOREVER: Duration = Duration::from_secs(10);

fn call(id: &str, b: &str) -> Call {
    let mut c = json::example_call();
    c.call_id = id.into();
    c.b_number = b.into();
    c
}

fn plugin_failed() -> Fallback {
    Fallback::Reject {
        code: 503,
        reason: "Plugin Failed".into(),
    }
}

fn plugin_failed_value() -> RouteDecision {
    RouteDecision::Reject(Reject {
        code: 503,
        reason: "Plugin Failed".into(),
    })
}

async fn chaos_policy(
    rt: &Runtime,
    config: &str,
    deadline: Duration,
) -> Result<Arc<Generation>, BuildError> {
    let p = rt
        .load("chaos", &testing::plugin_bytes("chaos"))
        .await
        .expect("load chaos");
    rt.build(Policy {
        bindings: vec![
            Binding::new(Hook::Route, p)
                .config_json(config)
                .deadline(deadline)
                .fallback(plugin_failed()),
        ],
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_that_sleeps_or_spins_fails_the_build_within_the_init_deadline() {
    let rt = Runtime::new(RuntimeConfig {
        max_instances: 16,
        init_deadline: Duration::from_millis(200),
        ..RuntimeConfig::default()
    })
    .unwrap();
    for (init, want) in [("sleep", "was waiting"), ("loop", "CPU")] {
        let t0 = Instant::now();
        // A 10-minute sleep (or an endless loop) in init.
        let r = tokio::time::timeout(
            NOT_FOREVER,
            chaos_policy(
                &rt,
                &format!(r#"{{"tag":"i","init":"{init}","sleep_ms":600000}}"#),
                Duration::from_millis(5),
            ),
        )
        .await
        .unwrap_or_else(|_| panic!("init {init}: build did not answer within {NOT_FOREVER:?}"));
        let e = r.expect_err("a plugin whose init never returns must be refused");
        let msg = e.to_string();
        let took = t0.elapsed();
        assert!(
            msg.contains("binding 0") && msg.contains("init") && msg.contains("deadline exceeded"),
            "init {init}: {msg}"
        );
        assert!(msg.contains(want), "init {init}: {msg}");
        // 200 ms of CPU, 400 ms of wall time: well within seconds.
        assert!(took < Duration::from_secs(5), "init {init} took {took:?}");
    }
    assert_eq!(rt.current().id(), 0, "nothing activated");
    let snap = rt.metrics_snapshot();
    let s = snap.plugins.iter().find(|p| p.plugin == "chaos").unwrap();
    assert_eq!(s.init_timeouts, 2, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_that_sleeps_gets_the_fallback_within_its_deadline() {
    let rt = Runtime::new(RuntimeConfig {
        max_instances: 32,
        wall_limit: Duration::from_millis(100),
        decision_threads: 2,
        ..RuntimeConfig::default()
    })
    .unwrap();
    // `sleep` mode: a 10-minute WASI sleep (clock subscription + poll).
    let g = chaos_policy(
        &rt,
        r#"{"tag":"s","mode":"ok","sleep_ms":600000}"#,
        Duration::from_millis(200),
    )
    .await
    .unwrap();
    let m = g.bindings()[0].2.metrics().clone();
    let instances_before = m.snapshot().instantiations;

    // More sleeping decisions at once than there are pool threads: waiting
    // guests do not hold a thread, and each is stopped at its own deadline.
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..6 {
        let g = g.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::timeout(NOT_FOREVER, g.route(None, &call(&format!("z{i}"), "sleep"))).await
        }));
    }
    for t in tasks {
        let d = t
            .await
            .unwrap()
            .expect("a sleeping plugin held the call: no answer within the bound")
            .unwrap();
        assert_eq!(d.fallback, Some(FallbackReason::Timeout), "{:?}", d.error);
        assert_eq!(d.value, plugin_failed_value());
        let err = d.error.unwrap();
        assert!(
            err.contains("deadline exceeded") && err.contains("waiting"),
            "{err}"
        );
    }
    // Deadline 200 ms CPU -> 400 ms wall.
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(m.fallbacks(FallbackReason::Timeout), 6);

    // The timed-out instances were discarded; the binding still answers.
    let d = g.route(None, &call("after", "ok")).await.unwrap();
    assert_eq!(d.fallback, None, "{:?}", d.error);
    assert!(
        m.snapshot().instantiations > instances_before,
        "a new instance replaced the abandoned ones"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_importing_wasi_sockets_is_refused_at_load() {
    let rt = Runtime::new(RuntimeConfig {
        max_instances: 16,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let e = rt
        .load("net-probe", &testing::plugin_bytes("net-probe"))
        .await
        .expect_err("a plugin with network access must be refused")
        .to_string();
    assert!(e.contains("wasi:sockets/"), "{e}");
    assert!(e.contains("may not use"), "{e}");
    // Every other plugin we build (Rust std, the Go adapter when built)
    // imports only allowed interfaces.
    let mut loaded = 0;
    for name in testing::built_plugins() {
        if name == "net-probe" {
            continue;
        }
        let bytes = testing::plugin_bytes(&name);
        rt.load(&name, &bytes)
            .await
            .unwrap_or_else(|e| panic!("plugin {name} refused: {e}"));
        loaded += 1;
    }
    assert!(loaded >= 5, "only {loaded} plugins found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_above_the_maximum_are_refused() {
    let rt = Runtime::new(RuntimeConfig {
        max_instances: 16,
        max_deadline: Duration::from_millis(1000),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let e = chaos_policy(&rt, "{}", Duration::from_secs(20))
        .await
        .expect_err("a 20 s deadline must be refused")
        .to_string();
    assert!(e.contains("binding 0"), "{e}");
    assert!(
        e.contains("20000 ms is above the maximum of 1000 ms"),
        "{e}"
    );
    chaos_policy(&rt, "{}", Duration::from_millis(1000))
        .await
        .expect("the maximum itself is allowed");
}

/// The caller's runtime has a single thread: if plugin code ran on it, a
/// spinning decision would stop everything else on it.
#[tokio::test(flavor = "current_thread")]
async fn spinning_decisions_on_every_pool_thread_do_not_hold_up_the_caller() {
    let rt = Runtime::new(RuntimeConfig {
        max_instances: 16,
        decision_threads: 2,
        decision_queue: 0,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let g = chaos_policy(&rt, r#"{"tag":"p"}"#, Duration::from_millis(2000))
        .await
        .unwrap();

    // An unrelated task on the caller's runtime.
    let ticks = Arc::new(AtomicU64::new(0));
    let ticker = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                ticks.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    // Two decisions spin for their whole 2 s CPU budget, one per pool thread.
    let spinners: Vec<_> = (0..2)
        .map(|i| {
            let g = g.clone();
            tokio::spawn(async move { g.route(None, &call(&format!("spin{i}"), "loop")).await })
        })
        .collect();
    let t0 = Instant::now();
    while rt.metrics_snapshot().pool_in_flight < 2 {
        assert!(t0.elapsed() < NOT_FOREVER, "spinners never started");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The ticker keeps ticking while both pool threads spin.
    let t = ticks.load(Ordering::Relaxed);
    while ticks.load(Ordering::Relaxed) < t + 10 {
        assert!(t0.elapsed() < NOT_FOREVER, "the caller's runtime stalled");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(
        spinners.iter().all(|s| !s.is_finished()),
        "the ticker only ran after the spinning decisions ended"
    );
    // The pool is full: one more decision gets the fallback at once, while
    // both spinners are still running.
    let d = g.route(None, &call("excess", "ok")).await.unwrap();
    assert_eq!(
        d.fallback,
        Some(FallbackReason::Overloaded),
        "{:?}",
        d.error
    );
    assert_eq!(d.value, plugin_failed_value());
    assert!(d.error.unwrap().contains("decision pool full"));
    assert!(spinners.iter().all(|s| !s.is_finished()));
    // The spinners end at their deadline with the fallback.
    for s in spinners {
        let d = tokio::time::timeout(NOT_FOREVER, s)
            .await
            .expect("a spinning decision was never stopped")
            .unwrap()
            .unwrap();
        assert_eq!(d.fallback, Some(FallbackReason::Timeout), "{:?}", d.error);
    }
    ticker.abort();
    let m = g.bindings()[0].2.metrics().clone();
    assert_eq!(m.fallbacks(FallbackReason::Overloaded), 1);
    assert_eq!(m.fallbacks(FallbackReason::Timeout), 2);
    let snap = rt.metrics_snapshot();
    assert_eq!(snap.pool_rejected, 1);
    assert_eq!(snap.pool_in_flight, 0);
    // Free again: the next decision is answered by the plugin.
    let d = g.route(None, &call("later", "ok")).await.unwrap();
    assert_eq!(d.fallback, None, "{:?}", d.error);
}
