//! The admin API over real HTTP on 127.0.0.1, with the real plugin runtime,
//! real `.wasm` plugins built from guest-examples/ and a real SQLite store.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use strowger_admin::{AdminState, CallInfo, MemorySwitch, RegistrationInfo, serve};
use strowger_plugin::testing::plugin_bytes;
use strowger_plugin::{Runtime, RuntimeConfig};
use strowger_store::Store;

const TOKEN: &str = "s3cret-token";

struct H {
    base: String,
    http: reqwest::Client,
    state: AdminState,
    switch: Arc<MemorySwitch>,
    _dir: tempfile::TempDir,
}

async fn setup() -> H {
    setup_with(strowger_admin::Limits::default()).await
}

async fn setup_with(limits: strowger_admin::Limits) -> H {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("strowger.db")).unwrap();
    let rt = Runtime::new(RuntimeConfig::default()).unwrap();
    let switch = Arc::new(MemorySwitch::default());
    let state = AdminState::new(rt, store, switch.clone())
        .with_token("ops", TOKEN)
        .with_limits(limits);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(serve(l, state.clone()));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    H {
        base,
        http,
        state,
        switch,
        _dir: dir,
    }
}

impl H {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let code = resp.status();
        let text = resp.text().await.unwrap();
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }
    /// A GET without a token.
    async fn get_anon(&self, path: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let code = resp.status();
        let text = resp.text().await.unwrap();
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
    async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
    async fn upload(&self, name: &str, wasm: Vec<u8>) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}/v1/plugins?name={name}", self.base))
            .bearer_auth(TOKEN)
            .body(wasm)
            .send()
            .await
            .unwrap();
        let code = resp.status();
        (code, resp.json().await.unwrap())
    }
    async fn upload_csv(&self, name: &str, csv: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}/v1/datasets/{name}", self.base))
            .bearer_auth(TOKEN)
            .body(csv.to_string())
            .send()
            .await
            .unwrap();
        let code = resp.status();
        (code, resp.json().await.unwrap())
    }
}

fn route_config(trunk: &str) -> Value {
    json!({
        "no_route": {"code": 404, "reason": "No route"},
        "routes": [{"name": "all", "source": ["any"], "b": ["_X."], "destination": {"trunk": trunk}}]
    })
}

fn route_policy(plugin: &str, trunk: &str, expect_trunk: &str) -> Value {
    json!({
        "comment": format!("route to {trunk}"),
        "bindings": [{"hook": "route", "plugin": plugin, "config": route_config(trunk), "deadline_ms": 2000}],
        "tests": [{"name": "b number goes to the trunk", "hook": "route", "input": {"b_number": "5511999990000"},
                   "expect": {"Forward": {"attempts": [{"destination": {"Trunk": expect_trunk}}]}}}]
    })
}

/// The trunk a route decision sends the first attempt to.
fn first_trunk(decision: &Value) -> Value {
    decision["Forward"]["attempts"][0]["destination"]["Trunk"].clone()
}

async fn simulate_trunk(h: &H) -> Value {
    let (code, sim) = h
        .post(
            "/v1/simulate",
            json!({"call": {"b_number": "5511999990000"}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{sim}");
    first_trunk(&sim["decision"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_upload_validate_list_delete() {
    let h = setup().await;
    // Bad wasm → 422 with a JSON reason.
    let (code, err) = h.upload("junk", b"\0asm-not-really".to_vec()).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(err["error"].as_str().unwrap().contains("plugin"), "{err}");
    assert_eq!(err["field"], "body");
    // Missing name → 400 JSON.
    let (code, err) = h.upload("", plugin_bytes("route-table")).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["field"], "name");

    let wasm = plugin_bytes("route-table");
    let (code, p) = h.upload("route-table", wasm.clone()).await;
    assert_eq!(code, StatusCode::CREATED, "{p}");
    let sha = p["sha256"].as_str().unwrap().to_string();
    assert_eq!(sha.len(), 64);
    assert_eq!(p["hooks"], json!(["route"]));
    assert_eq!(p["size"], wasm.len());
    // Same bytes again: idempotent, 200.
    let (code, _) = h.upload("route-table", wasm).await;
    assert_eq!(code, StatusCode::OK);

    let (_, list) = h.get("/v1/plugins").await;
    assert_eq!(list["plugins"].as_array().unwrap().len(), 1);
    let (code, one) = h.get(&format!("/v1/plugins/{sha}")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(one["name"], "route-table");

    // A plugin used by a policy version cannot be deleted.
    let (code, pol) = h
        .post("/v1/policies", route_policy(&sha, "carrier-a", "carrier-a"))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{pol}");
    let (code, err) = h
        .send(reqwest::Method::DELETE, &format!("/v1/plugins/{sha}"), None)
        .await;
    assert_eq!(code, StatusCode::CONFLICT, "{err}");

    // An unused one can.
    let (_, chaos) = h.upload("chaos", plugin_bytes("chaos")).await;
    let csha = chaos["sha256"].as_str().unwrap();
    let (code, _) = h
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/plugins/{csha}"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = h.get(&format!("/v1/plugins/{csha}")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // The audit log recorded the writes with the token id.
    let (_, audit) = h.get("/v1/audit").await;
    let entries = audit["entries"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "plugin.upload" && e["actor"] == "ops"),
        "{audit}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "plugin.delete" && e["target"] == csha)
    );
    assert!(
        entries.iter().all(|e| e["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("127.0.0.1:"))),
        "{audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_a_valid_token() {
    let h = setup().await;
    let url = format!("{}/v1/plugins?name=x", h.base);
    let r = h
        .http
        .post(&url)
        .body(plugin_bytes("route-table"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("Bearer"), "{body}");
    let r = h
        .http
        .post(&url)
        .bearer_auth("wrong")
        .body(plugin_bytes("route-table"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = h
        .http
        .put(format!("{}/v1/trunks/t1", h.base))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Nothing was stored.
    let (_, list) = h.get("/v1/plugins").await;
    assert_eq!(list["plugins"].as_array().unwrap().len(), 0);
    let (_, t) = h.get("/v1/trunks").await;
    assert_eq!(t["trunks"].as_array().unwrap().len(), 0);
    // Without any token configured, writes are refused saying how to configure one.
    let dir = tempfile::tempdir().unwrap();
    let st = AdminState::new(
        Runtime::new(RuntimeConfig::default()).unwrap(),
        Store::open(dir.path().join("s.db")).unwrap(),
        Arc::new(MemorySwitch::default()),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(serve(l, st));
    let r = h
        .http
        .put(format!("{base}/v1/trunks/t1"))
        .bearer_auth(TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no admin API token is configured"),
        "{body}"
    );
    // Probes are open, everything else needs the token.
    assert_eq!(h.get_anon("/healthz").await.0, StatusCode::OK);
    assert_eq!(h.get_anon("/readyz").await.0, StatusCode::OK);
    assert_eq!(
        h.get_anon("/openapi.json").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (code, doc) = h.get("/openapi.json").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["paths"]["/v1/policies"]["post"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_validate_test_activate_rollback_canary() {
    let h = setup().await;
    let (_, p) = h.upload("route-table", plugin_bytes("route-table")).await;
    let sha = p["sha256"].as_str().unwrap().to_string();
    let (_, reg) = h
        .upload("registrar-policy", plugin_bytes("registrar-policy"))
        .await;

    // Missing plugin → 422 naming the field.
    let (code, err) = h
        .post(
            "/v1/policies",
            route_policy("no-such-plugin", "carrier-a", "carrier-a"),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["field"], "bindings[0].plugin");
    // A plugin exporting the wrong hook for the binding → 422.
    let mut wrong = route_policy("registrar-policy", "carrier-a", "carrier-a");
    wrong["bindings"][0]["config"] = json!({});
    let (code, err) = h.post("/v1/policies", wrong).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(err["error"].as_str().unwrap().contains("route"), "{err}");
    assert!(reg["hooks"] == json!(["authorize"]), "{reg}");
    // Bad plugin config (init fails) → 422.
    let mut badcfg = route_policy(&sha, "carrier-a", "carrier-a");
    badcfg["bindings"][0]["config"] =
        json!({"routes": [{"b": ["_X."], "destination": {"nowhere": 1}}]});
    let (code, err) = h.post("/v1/policies", badcfg).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(
        h.get("/v1/policies").await.1["versions"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "nothing stored"
    );

    // v1 (by name) built, tested and activated.
    let mut v1 = route_policy("route-table", "carrier-a", "carrier-a");
    v1["activate"] = json!(true);
    let (code, r1) = h.post("/v1/policies", v1).await;
    assert_eq!(code, StatusCode::CREATED, "{r1}");
    let ver1 = r1["version"].as_u64().unwrap();
    assert_eq!(
        r1["bindings"][0]["plugin"],
        sha.as_str(),
        "stored by sha256"
    );
    assert_eq!(simulate_trunk(&h).await, "carrier-a");
    let gen1 = h.state.runtime().current().id();

    // A candidate whose test case fails: 422 with the diff, not stored, v1 still answers.
    let mut bad = route_policy("route-table", "carrier-b", "carrier-c");
    bad["activate"] = json!(true);
    let (code, err) = h.post("/v1/policies", bad).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["field"], "tests");
    let f = &err["detail"]["failures"][0];
    assert_eq!(
        f["expected"]["Forward"]["attempts"][0]["destination"]["Trunk"],
        "carrier-c"
    );
    assert_eq!(first_trunk(&f["actual"]), "carrier-b");
    assert_eq!(h.state.runtime().current().id(), gen1);
    assert_eq!(simulate_trunk(&h).await, "carrier-a");
    assert_eq!(
        h.get("/v1/policies").await.1["versions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // v2 stored without activation: v1 still answers; simulate can target v2.
    let (code, r2) = h
        .post("/v1/policies", route_policy(&sha, "carrier-b", "carrier-b"))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{r2}");
    let ver2 = r2["version"].as_u64().unwrap();
    assert_eq!(simulate_trunk(&h).await, "carrier-a");
    let (_, sim2) = h
        .post(
            "/v1/simulate",
            json!({"call": {"b_number": "5511999990000"}, "version": ver2}),
        )
        .await;
    assert_eq!(first_trunk(&sim2["decision"]), "carrier-b");

    // Activate v2 → carrier-b answers.
    let (code, a) = h
        .post(&format!("/v1/policies/{ver2}/activate"), json!({}))
        .await;
    assert_eq!(code, StatusCode::OK, "{a}");
    assert_eq!(simulate_trunk(&h).await, "carrier-b");
    assert_eq!(h.get("/v1/policies/active").await.1["version"], ver2);

    // Rollback → v1 again.
    let (code, rb) = h
        .send(reqwest::Method::POST, "/v1/policies/rollback", None)
        .await;
    assert_eq!(code, StatusCode::OK, "{rb}");
    assert_eq!(rb["active"], ver1);
    assert_eq!(simulate_trunk(&h).await, "carrier-a");
    // Rollback to a given version.
    let (code, _) = h
        .post("/v1/policies/rollback", json!({"version": ver2}))
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(simulate_trunk(&h).await, "carrier-b");
    // Unknown version → 404, nothing changes.
    let (code, _) = h.post("/v1/policies/999/activate", json!({})).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(simulate_trunk(&h).await, "carrier-b");

    // Canary: 100 % of new calls to v1, then cancel.
    let (code, c) = h
        .post(
            &format!("/v1/policies/{ver1}/canary"),
            json!({"percent": 100}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{c}");
    let g = h.state.runtime().generation_for_call("any-call");
    assert_eq!(g.id(), c["generation"].as_u64().unwrap());
    let (code, _) = h
        .post(
            &format!("/v1/policies/{ver1}/canary"),
            json!({"percent": 0}),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    let (code, _) = h
        .send(reqwest::Method::DELETE, "/v1/policies/canary", None)
        .await;
    assert_eq!(code, StatusCode::OK);
    assert!(h.state.runtime().canary().is_none());

    // Metrics carry per-plugin decisions.
    let m = h.metrics().await;
    assert!(m.contains("strowger_plugin"), "{m}");
    assert!(m.contains("route-table"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataset_upload_changes_portability_lookups() {
    let h = setup().await;
    let (code, _) = h
        .upload("br-portability", plugin_bytes("br-portability"))
        .await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, pol) = h
        .post(
            "/v1/policies",
            json!({"activate": true, "bindings": [{"hook": "portability", "plugin": "br-portability",
                "config": {"ported_dataset": "br-ported", "ranges_dataset": "br-ranges"},
                "datasets": ["br-ported", "br-ranges"]}]}),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{pol}");
    let q = json!({"hook": "portability", "input": {"number": "5511987654321"}});

    let (code, before) = h.post("/v1/simulate", q.clone()).await;
    assert_eq!(code, StatusCode::OK, "{before}");
    assert!(before["decision"].is_null(), "no data yet: {before}");
    assert_eq!(before["trace"][0]["hook"], "portability");
    assert!(
        before["trace"][0]["plugin"]["sha256"].is_string(),
        "{before}"
    );
    assert!(before["trace"][0]["elapsed_us"].is_number(), "{before}");

    // A malformed CSV is refused with the line number; nothing imported.
    let (code, err) = h
        .upload_csv("br-ported", "# header\n11987654321,55321\nno-comma-here\n")
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["detail"]["line"], 3);
    assert_eq!(
        h.get("/v1/datasets/br-ported").await.0,
        StatusCode::NOT_FOUND
    );

    let (code, up) = h
        .upload_csv(
            "br-ported",
            "# key,value\n11987654321,55321\n2133334444,55341\n",
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{up}");
    assert_eq!(up["rows"], 2);
    let (_, after) = h.post("/v1/simulate", q.clone()).await;
    assert_eq!(after["decision"]["ported"], true, "{after}");
    assert!(
        after["decision"]["routing_number"]
            .as_str()
            .unwrap()
            .starts_with("55321"),
        "{after}"
    );

    // A new version moves the number to another carrier, atomically.
    let (code, up2) = h.upload_csv("br-ported", "11987654321,55399\n").await;
    assert_eq!(code, StatusCode::CREATED, "{up2}");
    let (_, after2) = h.post("/v1/simulate", q.clone()).await;
    assert!(
        after2["decision"]["routing_number"]
            .as_str()
            .unwrap()
            .starts_with("55399"),
        "{after2}"
    );
    let (_, versions) = h.get("/v1/datasets/br-ported").await;
    assert_eq!(
        versions["versions"].as_array().unwrap().len(),
        2,
        "{versions}"
    );
    assert_eq!(versions["active_version"], up2["version"]);

    // Back to the first version (from the store), atomically; unknown versions → 404.
    let (code, e) = h
        .post("/v1/datasets/br-ported/activate", json!({"version": 999}))
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{e}");
    let (code, a) = h
        .post(
            "/v1/datasets/br-ported/activate",
            json!({"version": up["version"]}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{a}");
    let (_, back) = h.post("/v1/simulate", q.clone()).await;
    assert!(
        back["decision"]["routing_number"]
            .as_str()
            .unwrap()
            .starts_with("55321"),
        "{back}"
    );
    assert_eq!(
        h.get("/v1/datasets/br-ported").await.1["active_version"],
        up["version"]
    );
    let (code, _) = h
        .post(
            "/v1/datasets/br-ported/activate",
            json!({"version": up2["version"]}),
        )
        .await;
    assert_eq!(code, StatusCode::OK);

    // A large upload (200k rows) streams through and is queryable.
    let mut big = String::with_capacity(200_000 * 20);
    for i in 0..200_000u32 {
        big.push_str(&format!("11{:09},55{:03}\n", 900_000_000 + i, i % 1000));
    }
    let t = std::time::Instant::now();
    let (code, up3) = h.upload_csv("br-ported", &big).await;
    eprintln!("200k-row data set import: {:?}", t.elapsed());
    assert_eq!(code, StatusCode::CREATED, "{up3}");
    assert_eq!(up3["rows"], 200_000);
    let (_, r) = h
        .post(
            "/v1/simulate",
            json!({"hook": "portability", "input": {"number": "11900000005"}}),
        )
        .await;
    assert!(
        r["decision"]["routing_number"]
            .as_str()
            .unwrap()
            .starts_with("55005"),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_register_users_trunks_registrations_calls_cdrs() {
    let h = setup().await;
    h.upload("registrar-policy", plugin_bytes("registrar-policy"))
        .await;
    let (code, pol) = h
        .post("/v1/policies", json!({"activate": true, "bindings": [{"hook": "authorize", "plugin": "registrar-policy"}]}))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{pol}");
    let (code, sim) = h
        .post(
            "/v1/simulate",
            json!({"register": {"credentials": "Valid"}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{sim}");
    assert_eq!(sim["trace"][0]["hook"], "authorize");
    assert!(sim["decision"].is_object(), "{sim}");
    // No route binding → 422 saying so; bad input → 400.
    let (code, err) = h.post("/v1/simulate", json!({"call": {}})).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let (code, err) = h
        .post("/v1/simulate", json!({"register": {"credentials": 42}}))
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{err}");

    // Trunks + users CRUD.
    let (code, t) = h
        .send(
            reqwest::Method::PUT,
            "/v1/trunks/carrier-a",
            Some(json!({"host": "192.0.2.1"})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{t}");
    assert_eq!(t["config"]["host"], "192.0.2.1");
    let (code, _) = h
        .send(
            reqwest::Method::PUT,
            "/v1/trunks/carrier-a",
            Some(json!([1])),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        h.get("/v1/trunks/carrier-a").await.1["config"]["host"],
        "192.0.2.1",
        "unchanged"
    );
    let (code, u) = h
        .send(
            reqwest::Method::PUT,
            "/v1/users/example.com/1001",
            Some(json!({"password": "pw", "max_contacts": 2})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{u}");
    assert_eq!(
        *h.switch.users.lock(),
        vec![strowger_admin::UserAccount {
            user: "1001".into(),
            domain: "example.com".into(),
            password: "pw".into()
        }],
        "the switch got the user"
    );
    let (code, e) = h
        .send(
            reqwest::Method::PUT,
            "/v1/users/example.com/1002",
            Some(json!({"max_contacts": 2})),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["field"], "password");
    assert_eq!(
        h.get("/v1/users").await.1["users"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (_, audit) = h.get("/v1/audit").await;
    assert!(
        !audit.to_string().contains("\\\"pw\\\""),
        "password not audited: {audit}"
    );
    assert_eq!(
        h.send(reqwest::Method::DELETE, "/v1/users/example.com/1001", None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        h.send(reqwest::Method::DELETE, "/v1/users/example.com/1001", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert!(
        h.switch.users.lock().is_empty(),
        "the switch forgot the user"
    );
    assert_eq!(
        h.send(reqwest::Method::DELETE, "/v1/trunks/carrier-a", None)
            .await
            .0,
        StatusCode::OK
    );

    // Registrations + calls via SwitchControl.
    h.switch.registrations.lock().push(RegistrationInfo {
        aor: "sip:1001@example.com".into(),
        contact: "sip:1001@198.51.100.7:5060".into(),
        expires_in_s: 3600,
        source: "198.51.100.7:5060".into(),
        transport: "udp".into(),
        user_agent: None,
    });
    h.switch.calls.lock().push(CallInfo {
        id: "c-1".into(),
        a_number: "1001".into(),
        b_number: "1002".into(),
        ingress: "user:1001".into(),
        egress: None,
        state: "ringing".into(),
        start_ms: 0,
        generation: Some(1),
    });
    assert_eq!(
        h.get("/v1/registrations").await.1["registrations"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (code, _) = h
        .send(
            reqwest::Method::DELETE,
            "/v1/registrations?aor=sip:1001@example.com",
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert!(h.switch.registrations.lock().is_empty());
    assert_eq!(
        h.send(reqwest::Method::DELETE, "/v1/calls/nope", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.send(reqwest::Method::DELETE, "/v1/calls/c-1", None)
            .await
            .0,
        StatusCode::OK
    );
    assert!(h.switch.calls.lock().is_empty());

    // CDRs: query + CSV.
    let cdr = strowger_store::Cdr {
        call_id: "cdr-1".into(),
        start_ms: 1_000,
        end_ms: 5_000,
        a_number: "1001".into(),
        b_number: "5511999990000".into(),
        ingress: "user:1001".into(),
        egress_trunk: Some("carrier-a".into()),
        final_code: 200,
        final_reason: "OK".into(),
        cause: "normal".into(),
        ..Default::default()
    };
    h.state.store().insert_cdr(cdr).await.unwrap();
    let (_, q) = h.get("/v1/cdrs?number=5511999990000&trunk=carrier-a").await;
    assert_eq!(q["count"], 1, "{q}");
    let (_, q) = h.get("/v1/cdrs?from=6000").await;
    assert_eq!(q["count"], 0, "{q}");
    let (code, e) = h.get("/v1/cdrs?from=yesterday").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(e["field"], "from");
    let csv = h
        .http
        .get(format!("{}/v1/cdrs.csv", h.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.lines().count() == 2 && csv.contains("cdr-1"), "{csv}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_rebuilds_the_active_policy_after_restart() {
    let h = setup().await;
    h.upload("route-table", plugin_bytes("route-table")).await;
    let mut v1 = route_policy("route-table", "carrier-a", "carrier-a");
    v1["activate"] = json!(true);
    let (code, r1) = h.post("/v1/policies", v1).await;
    assert_eq!(code, StatusCode::CREATED, "{r1}");
    h.state.store().flush().await.unwrap();
    // A second admin over the same database file, fresh runtime.
    let store = Store::open(h.state.store().path()).unwrap();
    let rt = Runtime::new(RuntimeConfig::default()).unwrap();
    let st2 = AdminState::new(rt, store, Arc::new(MemorySwitch::default()));
    let active = st2.restore().await.unwrap();
    assert_eq!(active, r1["version"].as_u64());
    let call = strowger_plugin::json::call_from_json(json!({"b_number": "5511999990000"})).unwrap();
    let d = st2.runtime().current().route(None, &call).await.unwrap();
    assert_eq!(
        first_trunk(&serde_json::to_value(&d.value).unwrap()),
        "carrier-a"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_mode_logs_differing_decisions_and_acts_on_the_active_one() {
    let h = setup().await;
    let (_, p) = h.upload("route-table", plugin_bytes("route-table")).await;
    let sha = p["sha256"].as_str().unwrap().to_string();
    let mut v1 = route_policy(&sha, "carrier-a", "carrier-a");
    v1["activate"] = json!(true);
    let (code, r1) = h.post("/v1/policies", v1).await;
    assert_eq!(code, StatusCode::CREATED, "{r1}");
    let ver1 = r1["version"].as_u64().unwrap();
    let (_, r2) = h
        .post("/v1/policies", route_policy(&sha, "carrier-b", "carrier-b"))
        .await;
    let ver2 = r2["version"].as_u64().unwrap();
    let (_, r3) = h
        .post("/v1/policies", route_policy(&sha, "carrier-a", "carrier-a"))
        .await;
    let ver3 = r3["version"].as_u64().unwrap();

    // Errors: unknown version 404, the active version 409, no shadow to stop 409.
    let (code, _) = h.post("/v1/policies/999/shadow", json!({})).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, e) = h
        .post(&format!("/v1/policies/{ver1}/shadow"), json!({}))
        .await;
    assert_eq!(code, StatusCode::CONFLICT, "{e}");
    let (code, _) = h
        .send(reqwest::Method::DELETE, "/v1/policies/shadow", None)
        .await;
    assert_eq!(code, StatusCode::CONFLICT);
    // Writes need the token.
    let code = h
        .http
        .post(format!("{}/v1/policies/{ver2}/shadow", h.base))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(code, StatusCode::UNAUTHORIZED);

    // v2 (carrier-b) in shadow beside v1 (carrier-a).
    let (code, s) = h
        .post(&format!("/v1/policies/{ver2}/shadow"), json!({}))
        .await;
    assert_eq!(code, StatusCode::OK, "{s}");
    assert_eq!(s["shadow"], ver2);
    let (code, sim) = h
        .post(
            "/v1/simulate",
            json!({"call": {"call_id": "shadow-call-1", "b_number": "5511999990000"}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{sim}");
    // the active version decided; the shadow's decision is reported beside it
    assert_eq!(first_trunk(&sim["decision"]), "carrier-a");
    assert_eq!(first_trunk(&sim["shadow"]["decision"]), "carrier-b");
    assert_eq!(sim["shadow"]["result"], "differ");
    let (code, d) = h.get("/v1/policies/shadow/diffs").await;
    assert_eq!(code, StatusCode::OK, "{d}");
    assert_eq!(d["shadow"], ver2);
    let diffs = d["diffs"].as_array().unwrap();
    assert_eq!(diffs.len(), 1, "{d}");
    assert_eq!(diffs[0]["call_id"], "shadow-call-1");
    assert_eq!(diffs[0]["hook"], "route");
    assert_eq!(diffs[0]["shadow_version"], ver2.to_string());
    assert!(
        diffs[0]["active"].as_str().unwrap().contains("carrier-a"),
        "{d}"
    );
    assert!(
        diffs[0]["shadow"].as_str().unwrap().contains("carrier-b"),
        "{d}"
    );
    assert!(diffs[0]["time_unix_ms"].as_i64().unwrap() > 0);
    assert_eq!(d["counts"]["differ"], 1);

    // v3 routes like v1: same decision, counted, not listed.
    let (code, _) = h
        .post(&format!("/v1/policies/{ver3}/shadow"), json!({}))
        .await;
    assert_eq!(code, StatusCode::OK);
    let (_, sim) = h
        .post(
            "/v1/simulate",
            json!({"call": {"call_id": "shadow-call-2", "b_number": "5511999990000"}}),
        )
        .await;
    assert_eq!(sim["shadow"]["result"], "same", "{sim}");
    let (_, d) = h.get("/v1/policies/shadow/diffs").await;
    assert_eq!(d["diffs"].as_array().unwrap().len(), 1, "{d}");
    assert_eq!(d["counts"]["same"], 1);
    let m = h.metrics().await;
    assert!(
        m.contains("strowger_shadow_decisions_total{result=\"differ\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("strowger_shadow_decisions_total{result=\"same\"} 1"),
        "{m}"
    );

    // Stop by version: the wrong version is refused, the right one stops it.
    let (code, _) = h
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/policies/{ver2}/shadow"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::CONFLICT);
    let (code, s) = h
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/policies/{ver3}/shadow"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{s}");
    assert!(h.state.runtime().shadow().is_none());
    let (_, sim) = h
        .post(
            "/v1/simulate",
            json!({"call": {"call_id": "shadow-call-3", "b_number": "5511999990000"}}),
        )
        .await;
    assert!(sim.get("shadow").is_none(), "{sim}");
    // Activating the shadowed version ends shadow mode.
    h.post(&format!("/v1/policies/{ver2}/shadow"), json!({}))
        .await;
    let (code, _) = h
        .post(&format!("/v1/policies/{ver2}/activate"), json!({}))
        .await;
    assert_eq!(code, StatusCode::OK);
    assert!(h.state.runtime().shadow().is_none());
    let audit = h.get("/v1/audit").await.1.to_string();
    assert!(audit.contains("policy.shadow"), "{audit}");
}

// ---- auth on every route, secrets never answered ------------------------

/// Secrets configured in `secrets_everywhere`: none may appear in any answer.
const SECRETS: [&str; 5] = [
    "userPW-7f3a9",
    "trunkSECRET-c41d2",
    "regSECRET-99b0e",
    "oldAuditSECRET-5e6f1",
    "userPW-second-0aa1",
];

/// The routes of the router: (path, method) of every `.route(...)` in
/// `src/api.rs`, so that a route added there but not to the OpenAPI
/// document fails `every_get_route_hides_secrets_with_and_without_token`.
fn router_routes() -> Vec<(String, String)> {
    let src = include_str!("../src/api.rs");
    let start = src.find("pub(crate) fn routes(").expect("routes()");
    let body = &src[start..];
    let body = &body[..body.find("\n}\n").expect("end of routes()")];
    let mut out = Vec::new();
    for chunk in body.split(".route(").skip(1) {
        let q1 = chunk.find('"').unwrap();
        let q2 = q1 + 1 + chunk[q1 + 1..].find('"').unwrap();
        let path = &chunk[q1 + 1..q2];
        let rest = &chunk[q2..];
        let rest = &rest[..rest.find("\n        .").unwrap_or(rest.len())];
        for m in ["get", "post", "put", "delete"] {
            let bytes = rest.as_bytes();
            let found = rest.match_indices(&format!("{m}(")).any(|(i, _)| {
                i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_')
            });
            if found {
                out.push((path.to_string(), m.to_string()));
            }
        }
    }
    assert!(out.len() > 20, "parsed too few routes: {out:?}");
    out
}

/// Every (path, method) of the served OpenAPI document.
fn openapi_routes(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in item.as_object().unwrap().keys() {
            out.push((path.clone(), m.clone()));
        }
    }
    out
}

/// A path of the OpenAPI document with its parameters filled in.
fn fill(path: &str, sha: &str, version: u64) -> String {
    path.replace("{sha256}", sha)
        .replace("{version}", &version.to_string())
        .replace("{name}", "t1")
        .replace("{domain}", "example.com")
        .replace("{user}", "alice")
        .replace("{id}", "no-such-call")
}

fn assert_no_secret(what: &str, body: &str) {
    for s in SECRETS {
        assert!(!body.contains(s), "{what} answered the secret {s}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_get_route_hides_secrets_with_and_without_token() {
    let h = setup().await;
    // A user, a trunk with a secret, one with a register string, a plugin,
    // a policy version, a data set: every GET route has something to show.
    let (code, u) = h
        .send(
            reqwest::Method::PUT,
            "/v1/users/example.com/alice",
            Some(json!({"password": SECRETS[0]})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{u}");
    assert_eq!(u["config"]["password_set"], true, "{u}");
    assert_no_secret("PUT user", &u.to_string());
    let (code, t) = h
        .send(
            reqwest::Method::PUT,
            "/v1/trunks/t1",
            Some(json!({"host": "192.0.2.1", "username": "acct", "secret": SECRETS[1], "inbound": "digest"})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{t}");
    assert_eq!(t["config"]["secret_set"], true, "{t}");
    assert_no_secret("PUT trunk", &t.to_string());
    let (code, t) = h
        .send(
            reqwest::Method::PUT,
            "/v1/trunks/t2",
            Some(
                json!({"register_string": format!("acct:{}:authu@192.0.2.2:5070/100", SECRETS[2])}),
            ),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{t}");
    assert_eq!(
        t["config"]["register_string"], "acct:***:authu@192.0.2.2:5070/100",
        "{t}"
    );
    // an audit entry written before secrets were redacted on write
    h.state
        .store()
        .append_audit(strowger_store::AuditEntry {
            id: 0,
            at_ms: 1,
            actor: "ops".into(),
            source: None,
            action: "trunk.put".into(),
            target: Some("old".into()),
            detail: Some(json!({"host": "192.0.2.9", "secret": SECRETS[3]}).to_string()),
        })
        .await
        .unwrap();
    let (code, p) = h.upload("route-table", plugin_bytes("route-table")).await;
    assert_eq!(code, StatusCode::CREATED, "{p}");
    let sha = p["sha256"].as_str().unwrap().to_string();
    let (code, v) = h
        .post("/v1/policies", route_policy("route-table", "t1", "t1"))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let version = v["version"].as_u64().unwrap();
    assert_eq!(h.upload_csv("t1", "k,v\n").await.0, StatusCode::CREATED);
    // a PUT made from a GET answer keeps the stored secret
    let (_, got) = h.get("/v1/users/example.com/alice").await;
    let mut again = got["config"].clone();
    again["max_contacts"] = json!(3);
    let (code, u) = h
        .send(
            reqwest::Method::PUT,
            "/v1/users/example.com/alice",
            Some(again),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{u}");
    assert_eq!(
        h.switch.users.lock()[0].password,
        SECRETS[0],
        "the switch still has the password"
    );
    let (_, got) = h.get("/v1/trunks/t2").await;
    let (code, t) = h
        .send(
            reqwest::Method::PUT,
            "/v1/trunks/t2",
            Some(got["config"].clone()),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{t}");
    // the switch's log through Debug shows no password either
    let dbg = format!("{:?}", h.switch.users.lock());
    assert_no_secret("Debug of UserAccount", &dbg);

    let (code, doc) = h.get("/openapi.json").await;
    assert_eq!(code, StatusCode::OK);
    let documented = openapi_routes(&doc);
    let routed = router_routes();
    for r in &routed {
        assert!(
            documented.contains(r),
            "route {r:?} is in the router but not in the OpenAPI document"
        );
    }
    for r in &documented {
        assert!(
            routed.contains(r),
            "route {r:?} is in the OpenAPI document but not in the router"
        );
    }
    let gets: Vec<&String> = documented
        .iter()
        .filter(|(_, m)| m == "get")
        .map(|(p, _)| p)
        .collect();
    assert!(gets.len() >= 20, "{gets:?}");
    let mut answered = 0;
    for path in gets {
        let url = fill(path, &sha, version);
        for token in [None, Some(TOKEN)] {
            let mut r = h.http.get(format!("{}{url}", h.base));
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            let resp = r.send().await.unwrap();
            let code = resp.status();
            let body = resp.text().await.unwrap();
            assert_no_secret(&format!("GET {url} (token: {})", token.is_some()), &body);
            if token.is_some() {
                assert!(code.is_success(), "GET {url}: {code} {body}");
                answered += 1;
            }
        }
    }
    assert!(answered >= 20);
    // the secrets are really there, just not shown: the old audit entry
    // is listed, scrubbed
    let (_, audit) = h.get("/v1/audit").await;
    let text = audit.to_string();
    assert!(text.contains("192.0.2.9"), "{text}");
    assert!(text.contains("secret_set"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_but_probes_and_metrics_needs_a_token() {
    let h = setup().await;
    let (_, doc) = h.get("/openapi.json").await;
    let open = ["/healthz", "/readyz", "/metrics"];
    let mut refused = 0;
    for (path, method) in openapi_routes(&doc) {
        let url = format!("{}{}", h.base, fill(&path, "0", 1));
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        for token in [None, Some("wrong-token")] {
            let mut r = h.http.request(m.clone(), &url);
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            if m == reqwest::Method::POST || m == reqwest::Method::PUT {
                r = r.json(&json!({}));
            }
            let resp = r.send().await.unwrap();
            let code = resp.status();
            let body = resp.text().await.unwrap();
            if open.contains(&path.as_str()) {
                assert_ne!(code, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
                continue;
            }
            assert_eq!(
                code,
                StatusCode::UNAUTHORIZED,
                "{method} {path} without a valid token: {body}"
            );
            let v: Value = serde_json::from_str(&body).unwrap();
            let msg = v["error"].as_str().unwrap();
            assert!(
                msg.contains("--token") && msg.contains("STROWGER_ADMIN_TOKEN"),
                "{msg}"
            );
            refused += 1;
        }
        // documented as needing the token, or as open
        let sec = &doc["paths"][&path][&method]["security"];
        assert_eq!(
            sec.as_array().unwrap().is_empty(),
            open.contains(&path.as_str()),
            "{method} {path}: {sec}"
        );
    }
    assert!(refused >= 60, "{refused}");
    // nothing was changed by the refused writes
    assert_eq!(h.get("/v1/trunks").await.1["trunks"], json!([]));
    assert_eq!(h.get("/v1/users").await.1["users"], json!([]));
    assert!(
        h.metrics()
            .await
            .contains("strowger_admin_refused_total{reason=\"unauthorized\"}")
    );
}

// ---- body limits ----------------------------------------------------------

/// Sends `head` (request line and headers, without the blank line) and
/// `body` on a fresh connection, then reads the answer (the request asks
/// for `Connection: close`). Bounded: 60 s without an answer fails.
async fn raw(base: &str, head: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("{head}\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    c.write_all(req.as_bytes()).await.unwrap();
    // the server may answer and close before the body is all sent
    let _ = c.write_all(body).await;
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        let mut buf = [0u8; 8192];
        loop {
            match c.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok() || !out.is_empty(),
        "no answer to `{head}` within 60 s"
    );
    let text = String::from_utf8_lossy(&out).to_string();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    (code, text)
}

/// An unauthenticated upload declaring 50 MB gets its 401 after 256 KiB
/// were sent: the server does not wait for (or read) the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_upload_is_refused_before_its_body_is_read() {
    let h = setup().await;
    let part = vec![b'a'; 256 << 10];
    for path in ["/v1/datasets/big", "/v1/plugins?name=big", "/v1/policies"] {
        let (code, text) = raw(
            &h.base,
            &format!("POST {path} HTTP/1.1\r\nContent-Length: 52428800"),
            &part,
        )
        .await;
        assert_eq!(code, 401, "{path}: {text}");
        assert!(text.contains("STROWGER_ADMIN_TOKEN"), "{text}");
    }
    // a wrong token: the same
    let (code, _) = raw(
        &h.base,
        "POST /v1/datasets/big HTTP/1.1\r\nAuthorization: Bearer nope\r\nContent-Length: 52428800",
        &part,
    )
    .await;
    assert_eq!(code, 401);
    assert_eq!(h.get("/v1/datasets").await.1["datasets"], json!([]));
}

/// Bodies above the limit of their route get 413 JSON naming the config
/// key, and nothing is applied: a data set sent chunked (no length) past
/// `max_dataset_bytes` leaves the active version as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_above_their_limit_get_413_and_change_nothing() {
    let h = setup_with(strowger_admin::Limits {
        max_body_bytes: 4096,
        max_plugin_bytes: 64 << 20,
        max_dataset_bytes: 64 << 10,
    })
    .await;
    let (code, v1) = h.upload_csv("ds", "k1,v1\n").await;
    assert_eq!(code, StatusCode::CREATED, "{v1}");
    let auth = format!("Authorization: Bearer {TOKEN}");
    // declared too large: refused before the body is read
    let (code, text) = raw(
        &h.base,
        &format!("POST /v1/datasets/ds HTTP/1.1\r\n{auth}\r\nContent-Length: 1181116006"),
        b"",
    )
    .await;
    assert_eq!(code, 413, "{text}");
    assert!(text.contains("admin.max_dataset_bytes"), "{text}");
    // chunked, no length: cut when the limit is passed
    let mut chunked = Vec::new();
    for i in 0..2000 {
        let line = format!("key{i:06},value-{i:040}\n");
        chunked.extend_from_slice(format!("{:x}\r\n{line}\r\n", line.len()).as_bytes());
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (code, text) = raw(
        &h.base,
        &format!("POST /v1/datasets/ds HTTP/1.1\r\n{auth}\r\nTransfer-Encoding: chunked"),
        &chunked,
    )
    .await;
    assert_eq!(code, 413, "{text}");
    let body: Value = serde_json::from_str(&text[text.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(body["field"], "body", "{body}");
    assert_eq!(body["detail"]["limit_bytes"], 65536, "{body}");
    let (_, versions) = h.get("/v1/datasets/ds").await;
    assert_eq!(versions["active_version"], v1["version"], "{versions}");
    assert_eq!(
        versions["versions"].as_array().unwrap().len(),
        1,
        "{versions}"
    );
    // a JSON route above max_body_bytes (sent with a length, and chunked)
    let big = json!({"hook": "route", "input": {"b_number": "1".repeat(8000)}}).to_string();
    let (code, text) = raw(
        &h.base,
        &format!("POST /v1/simulate HTTP/1.1\r\n{auth}\r\nContent-Type: application/json\r\nContent-Length: {}", big.len()),
        big.as_bytes(),
    )
    .await;
    assert_eq!(code, 413, "{text}");
    assert!(text.contains("admin.max_body_bytes"), "{text}");
    let (code, text) = raw(
        &h.base,
        &format!("PUT /v1/trunks/t1 HTTP/1.1\r\n{auth}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked"),
        format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len()).as_bytes(),
    )
    .await;
    assert_eq!(code, 413, "{text}");
    assert!(text.contains("application/json"), "{text}");
    assert_eq!(h.get("/v1/trunks").await.1["trunks"], json!([]));
    assert!(
        h.metrics()
            .await
            .contains("strowger_admin_refused_total{reason=\"too_large\"} 4")
    );
}
