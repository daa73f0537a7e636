//! `/healthz`, `/readyz` and `/metrics` over real HTTP on 127.0.0.1: the
//! probes follow the switch's state (a dead core: 503 with `"sip": false`),
//! need no token, and `/metrics` carries the store's write counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use strowger_admin::{
    AdminState, CallInfo, RegistrationInfo, SwitchControl, SwitchFuture, TrunkStatus, serve,
};
use strowger_plugin::{Runtime, RuntimeConfig};
use strowger_store::Store;

/// A switch whose core can be declared dead.
#[derive(Default)]
struct Switch {
    dead: AtomicBool,
}

impl SwitchControl for Switch {
    fn registrations(&self) -> Vec<RegistrationInfo> {
        Vec::new()
    }
    fn remove_registration(&self, _aor: &str, _contact: Option<&str>) -> usize {
        0
    }
    fn calls(&self) -> SwitchFuture<'_, Vec<CallInfo>> {
        Box::pin(async { Vec::new() })
    }
    fn hangup<'a>(&'a self, _id: &'a str) -> SwitchFuture<'a, bool> {
        Box::pin(async { false })
    }
    fn trunks(&self) -> SwitchFuture<'_, Vec<TrunkStatus>> {
        Box::pin(async { Vec::new() })
    }
    fn sip_ready(&self) -> SwitchFuture<'_, bool> {
        let alive = !self.dead.load(Ordering::SeqCst);
        Box::pin(async move { alive })
    }
    fn failure(&self) -> Option<String> {
        self.dead
            .load(Ordering::SeqCst)
            .then(|| "switch core panicked: test".to_string())
    }
}

async fn get(http: &reqwest::Client, url: String) -> (StatusCode, String) {
    let r = http.get(url).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_follow_the_switch_and_metrics_count_store_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("strowger.db")).unwrap();
    let rt = Runtime::new(RuntimeConfig::default()).unwrap();
    let switch = Arc::new(Switch::default());
    // a token is configured: the probes must still answer without one
    let state = AdminState::new(rt, store.clone(), switch.clone()).with_token("ops", "tok");
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(serve(l, state));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();

    let (code, body) = get(&http, format!("{base}/readyz")).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["sip"].as_bool(), v["ready"].as_bool()),
        (Some(true), Some(true)),
        "{v}"
    );
    assert_eq!(
        get(&http, format!("{base}/healthz")).await.0,
        StatusCode::OK
    );

    // a failed write shows in /metrics (a duplicate CDR: logged, dropped)
    let cdr = strowger_store::Cdr {
        call_id: "dup".into(),
        ..Default::default()
    };
    store.insert_cdr(cdr.clone()).await.unwrap();
    assert!(store.insert_cdr(cdr).await.is_err());
    let (code, text) = get(&http, format!("{base}/metrics")).await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        text.contains("strowger_store_write_errors_total 1"),
        "{text}"
    );
    assert!(
        text.contains("strowger_store_writes_dropped_total 1"),
        "{text}"
    );
    assert!(text.contains("strowger_store_retry_queue 0"), "{text}");

    // the core dies: not ready (sip false), not healthy
    switch.dead.store(true, Ordering::SeqCst);
    let (code, body) = get(&http, format!("{base}/readyz")).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["sip"], Value::Bool(false), "{v}");
    assert_eq!(v["store"], Value::Bool(true), "{v}");
    assert_eq!(v["ready"], Value::Bool(false), "{v}");
    let (code, body) = get(&http, format!("{base}/healthz")).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("switch core panicked"), "{body}");
}
