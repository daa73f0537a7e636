//! `chaos`: a route plugin that misbehaves on purpose, to test the runtime's
//! limits and fallbacks. Do not deploy it.
//!
//! The behaviour of one decision is chosen by the call's B number (its first
//! `-`-separated word), else by the config's `"mode"`:
//!
//! | mode   | behaviour                                              |
//! |--------|--------------------------------------------------------|
//! | `ok`   | forward to `sip:<tag>@chaos.invalid` (tag from config) |
//! | `loop` | spin forever                                           |
//! | `trap` | panic (wasm `unreachable`)                             |
//! | `oom`  | allocate until memory runs out                         |
//! | `deep` | unbounded recursion (stack overflow)                   |
//! | `bad`  | invalid answer: reject with code 200                   |
//! | `empty`| invalid answer: forward with no attempts               |
//! | `err`  | guest error `Err("chaos: err")`                        |
//! | `slow` | busy for `spin_ms` CPU milliseconds, then `ok`         |
//! | `host` | `ok`, after exercising every host import               |
//! | `sleep`| sleep `sleep_ms` (a WASI clock subscription + `poll`), then `ok` |
//!
//! Config (JSON): `{"tag": "v7", "mode": "ok", "spin_ms": 2, "sleep_ms": 1000,
//! "fail_init": false, "init": "sleep"}`.
//! `fail_init: true` makes `init` refuse the configuration; `"init": "sleep"`
//! makes `init` sleep `sleep_ms` first, `"init": "loop"` makes it spin forever.

use std::cell::RefCell;

wit_bindgen::generate!({
    world: "route",
    path: "../../../wit",
    generate_all,
});

use exports::strowger::plugin::lifecycle::Guest as Lifecycle;
use exports::strowger::plugin::router::Guest as Router;
use strowger::plugin::host;
use strowger::plugin::routing_types::{
    Attempt, Call, Destination, Forward, PreferredCause, RouteDecision,
};
use strowger::plugin::types::Reject;

#[derive(Default, Clone)]
struct Config {
    tag: String,
    mode: String,
    spin_ms: u64,
    sleep_ms: u64,
}

thread_local! {
    static CONFIG: RefCell<Config> = RefCell::new(Config::default());
}

/// Minimal extraction of a string or number field from flat JSON (the chaos
/// plugin keeps no dependencies).
fn json_field(json: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\"");
    let at = json.find(&pat)? + pat.len();
    let rest = json[at..].trim_start().strip_prefix(':')?.trim_start();
    if let Some(s) = rest.strip_prefix('"') {
        Some(s[..s.find('"')?].to_string())
    } else {
        let end = rest.find([',', '}', ' ', '\n']).unwrap_or(rest.len());
        Some(rest[..end].to_string())
    }
}

struct Chaos;

impl Lifecycle for Chaos {
    fn init(config: String) -> Result<(), String> {
        if json_field(&config, "fail_init").as_deref() == Some("true") {
            return Err("chaos: fail_init is set".into());
        }
        let sleep_ms = json_field(&config, "sleep_ms")
            .and_then(|s| s.parse().ok())
            .unwrap_or(1000);
        match json_field(&config, "init").as_deref() {
            Some("sleep") => std::thread::sleep(std::time::Duration::from_millis(sleep_ms)),
            Some("loop") => {
                let mut x = 0u64;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            _ => {}
        }
        let cfg = Config {
            tag: json_field(&config, "tag").unwrap_or_else(|| "chaos".into()),
            mode: json_field(&config, "mode").unwrap_or_else(|| "ok".into()),
            spin_ms: json_field(&config, "spin_ms")
                .and_then(|s| s.parse().ok())
                .unwrap_or(1),
            sleep_ms,
        };
        CONFIG.with(|c| *c.borrow_mut() = cfg);
        Ok(())
    }
}

fn ok(tag: &str) -> RouteDecision {
    RouteDecision::Forward(Forward {
        attempts: vec![Attempt {
            destination: Destination::Uri(format!("sip:{tag}@chaos.invalid")),
            a_number: None,
            b_number: None,
            display_name: None,
            add_headers: vec![],
            remove_headers: vec![],
            ring_timeout_ms: None,
            media: None,
            codecs: None,
        }],
        retry_on: vec![],
        preferred_cause: PreferredCause::First,
    })
}

/// Unbounded non-tail recursion using only wasm locals (so the wasm stack
/// limit, not Rust's shadow stack in linear memory, is what overflows).
#[inline(never)]
fn deep(n: u64) -> u64 {
    if std::hint::black_box(n) == u64::MAX {
        return 0;
    }
    deep(n + 1).wrapping_mul(3).wrapping_add(n)
}

fn spin_cpu_ms(ms: u64) {
    // No clock in the guest without WASI: count host `now()` calls instead.
    let start = host::now().unix_ms;
    let mut x = 0u64;
    loop {
        for _ in 0..10_000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        if host::now().unix_ms - start >= ms as i64 {
            break;
        }
    }
}

impl Router for Chaos {
    fn route(call: Call) -> Result<RouteDecision, String> {
        let cfg = CONFIG.with(|c| c.borrow().clone());
        let word = call.b_number.split('-').next().unwrap_or("");
        let mode = if word.is_empty() || word.chars().all(|c| c.is_ascii_digit() || c == '+') {
            cfg.mode.as_str()
        } else {
            word
        };
        match mode {
            "ok" => Ok(ok(&cfg.tag)),
            "loop" => {
                let mut x = 0u64;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "trap" => panic!("chaos: trap requested"),
            "oom" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut v = vec![0u8; 1 << 20];
                    v[0] = 1;
                    hoard.push(std::hint::black_box(v));
                }
            }
            "deep" => Ok(RouteDecision::Reject(Reject {
                code: 500,
                reason: format!("{}", deep(0)),
            })),
            "bad" => Ok(RouteDecision::Reject(Reject {
                code: 200,
                reason: "OK".into(),
            })),
            "empty" => Ok(RouteDecision::Forward(Forward {
                attempts: vec![],
                retry_on: vec![],
                preferred_cause: PreferredCause::First,
            })),
            "err" => Err("chaos: err".into()),
            "slow" => {
                spin_cpu_ms(cfg.spin_ms);
                Ok(ok(&cfg.tag))
            }
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_millis(cfg.sleep_ms));
                Ok(ok(&cfg.tag))
            }
            "host" => {
                host::log(
                    host::Level::Info,
                    &format!("chaos host call {}", call.call_id),
                );
                host::counter_add("chaos_host_calls", 1);
                let config = host::config();
                let now = host::now();
                let got = host::dataset_get("chaos", &call.a_number);
                let lpm = host::dataset_longest_prefix("chaos", &call.a_number);
                let contacts = host::location_lookup(&call.a_number);
                let trunk = host::trunk_status("chaos-trunk");
                let tag = format!(
                    "{}.cfg{}.y{}.get-{}.lpm-{}.loc{}.trunk-{}",
                    cfg.tag,
                    config.len(),
                    now.year,
                    got.unwrap_or_else(|| "none".into()),
                    lpm.map(|m| format!("{}={}", m.prefix, m.value))
                        .unwrap_or_else(|| "none".into()),
                    contacts.len(),
                    trunk
                        .map(|t| t.up.to_string())
                        .unwrap_or_else(|| "none".into()),
                );
                Ok(ok(&tag))
            }
            other => Err(format!("chaos: unknown mode {other:?}")),
        }
    }
}

export!(Chaos);
