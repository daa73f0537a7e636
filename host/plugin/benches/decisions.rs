//! Decision latency on a warm instance, and instantiate + init time, for
//! the four standard Rust plugins and for Go routers against equivalent
//! Rust routers:
//! - `bench-prefix-go` vs `bench-prefix-rust` (benches/plugins/): the same
//!   logic (prefix replace + one trunk) in both languages;
//! - `tod-router` (Go, guest-examples/go) vs `route-table` configured for the
//!   same time-of-day routing with overflow.
//!
//! Every decision goes through the public runtime API (`Generation::route`
//! etc.: pool checkout, CPU deadline, host calls, answer validation,
//! metrics), on one tokio current-thread runtime. Latency percentiles come
//! from `N` individually timed decisions per subject (`Instant` around each,
//! sorted): criterion's mean alone hides the tail. Criterion then runs its
//! own sampling of the same calls (means with confidence intervals).
//!
//! Run: `scripts/build-guests.sh && cargo bench --workspace --bench decisions`
//! (`STROWGER_BENCH_TABLE_ONLY=1` skips criterion; `STROWGER_BENCH_N` sets N;
//! `STROWGER_BENCH_ONLY=<part of a subject name>` selects subjects;
//! `STROWGER_BENCH_LNP_CSV=<file>` puts a national-scale ported-numbers
//! table under br-portability, see [`big_ported`]).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use strowger_plugin::types::*;
use strowger_plugin::*;

const PREFIX_CONFIG: &str = r#"{"from": "90", "to": "91", "trunk": "bench-uas"}"#;

#[derive(Clone)]
enum Req {
    Route(Box<Call>),
    Authorize(AuthRequest),
    Portability(PortabilityQuery),
    Rewrite(RewriteRequest),
}

struct Spec {
    label: &'static str,
    plugin: &'static str,
    /// Config text if it starts with `{`, else the name of a file in the
    /// plugin's directory in `guest-examples/rust/` or `guest-examples/go/`;
    /// `None` means `example-config.json` there.
    config: Option<&'static str>,
    req: Req,
}

struct Subject {
    label: &'static str,
    hook: Hook,
    plugin: Arc<PluginVersion>,
    config: String,
    datasets: Vec<String>,
    generation: Arc<Generation>,
    req: Req,
}

fn specs() -> Vec<Spec> {
    // Monday 2026-11-23 11:30 local (UTC-3): inside business hours.
    let mut route_table_call = json::example_call();
    route_table_call.ingress = Ingress::User("1001".into());
    route_table_call.b_number = "901133334444".into();
    route_table_call.request_uri = "sip:901133334444@switch.example".into();
    route_table_call.to.user = "901133334444".into();

    let mut prefix_call = json::example_call();
    prefix_call.ingress = Ingress::Trunk("bench-uac".into());
    prefix_call.b_number = "901133334444".into();

    let mut tod_call = json::example_call();
    tod_call.b_number = "551122223333".into();

    let mut auth = json::example_auth_request();
    auth.source.ip = "192.168.10.20".into(); // inside 1001's allow list

    let mut rewrite = json::example_rewrite_request();
    rewrite.trunk = Some("carrier-sp".into());
    rewrite.ingress = Ingress::Trunk("carrier-sp".into());

    vec![
        Spec {
            label: "route-table",
            plugin: "route-table",
            config: None,
            req: Req::Route(Box::new(route_table_call)),
        },
        Spec {
            label: "registrar-policy",
            plugin: "registrar-policy",
            config: None,
            req: Req::Authorize(auth),
        },
        Spec {
            label: "br-portability",
            plugin: "br-portability",
            config: None,
            req: Req::Portability(json::example_portability_query()),
        },
        Spec {
            label: "e164-normalize",
            plugin: "e164-normalize",
            config: None,
            req: Req::Rewrite(rewrite),
        },
        Spec {
            label: "prefix: Rust",
            plugin: "bench-prefix-rust",
            config: Some(PREFIX_CONFIG),
            req: Req::Route(Box::new(prefix_call.clone())),
        },
        Spec {
            label: "prefix: Go",
            plugin: "bench-prefix-go",
            config: Some(PREFIX_CONFIG),
            req: Req::Route(Box::new(prefix_call)),
        },
        Spec {
            label: "tod: Rust route-table",
            plugin: "route-table",
            config: Some("tod-config.json"),
            req: Req::Route(Box::new(tod_call.clone())),
        },
        Spec {
            label: "tod: Go tod-router",
            plugin: "tod-router",
            config: None,
            req: Req::Route(Box::new(tod_call)),
        },
    ]
}

/// Data sets a standard plugin ships: `data/<stem>.csv` is granted under the
/// name its config gives in a `<stem>_dataset` key, else under `<stem>`.
fn load_datasets(rt: &Runtime, dir: &Path, config: &serde_json::Value) -> Vec<String> {
    let mut names = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir.join("data")) else {
        return names;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("csv") {
            continue;
        }
        let stem = p.file_stem().unwrap().to_str().unwrap().to_string();
        let name = config
            .get(format!("{stem}_dataset"))
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .unwrap_or(stem);
        let ds = Dataset::from_csv(
            "bench",
            std::io::BufReader::new(std::fs::File::open(&p).unwrap()),
        )
        .unwrap();
        rt.datasets().put_dataset(&name, Arc::new(ds));
        names.push(name);
    }
    names
}

fn hook_of(req: &Req) -> Hook {
    match req {
        Req::Route(_) => Hook::Route,
        Req::Authorize(_) => Hook::Authorize,
        Req::Portability(_) => Hook::Portability,
        Req::Rewrite(_) => Hook::Rewrite,
    }
}

fn subjects(rt: &Runtime, tok: &tokio::runtime::Runtime) -> Vec<Subject> {
    let root = testing::workspace_root();
    let mut loaded: Vec<(&str, Arc<PluginVersion>)> = Vec::new();
    let mut out = Vec::new();
    let only = std::env::var("STROWGER_BENCH_ONLY").ok();
    for spec in specs() {
        if only.as_deref().is_some_and(|o| !spec.label.contains(o)) {
            continue;
        }
        let src = ["rust", "go"]
            .map(|lang| root.join("guest-examples").join(lang).join(spec.plugin))
            .into_iter()
            .find(|d| d.is_dir())
            .unwrap_or_default();
        let config = match spec.config {
            Some(c) if c.starts_with('{') => c.to_string(),
            file => {
                let p = src.join(file.unwrap_or("example-config.json"));
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            }
        };
        let cfg_value: serde_json::Value = serde_json::from_str(&config).unwrap();
        let datasets = if src.as_os_str().is_empty() {
            Vec::new()
        } else {
            load_datasets(rt, &src, &cfg_value)
        };
        let plugin = match loaded.iter().find(|(n, _)| *n == spec.plugin) {
            Some((_, p)) => p.clone(),
            None => {
                let p = tok
                    .block_on(rt.load(spec.plugin, &testing::plugin_bytes(spec.plugin)))
                    .unwrap_or_else(|e| panic!("loading {}: {e}", spec.plugin));
                loaded.push((spec.plugin, p.clone()));
                p
            }
        };
        let hook = hook_of(&spec.req);
        let generation = tok
            .block_on(rt.build(Policy {
                bindings: vec![
                    Binding::new(hook, plugin.clone())
                        .config_json(config.clone())
                        .datasets(datasets.clone()),
                ],
            }))
            .unwrap_or_else(|e| panic!("{}: {e}", spec.label));
        out.push(Subject {
            label: spec.label,
            hook,
            plugin,
            config,
            datasets,
            generation,
            req: spec.req,
        });
    }
    out
}

/// One decision; `Err` when the binding's fallback answered.
async fn decide(s: &Subject) -> Result<String, String> {
    let g = &s.generation;
    macro_rules! check {
        ($d:expr) => {{
            let d = $d.expect("binding");
            match d.fallback {
                None => Ok(format!("{:?}", d.value)),
                Some(f) => Err(format!("fallback {f:?}: {:?}", d.error)),
            }
        }};
    }
    match &s.req {
        Req::Route(c) => check!(g.route(None, c).await),
        Req::Authorize(r) => check!(g.authorize(None, "bench", r).await),
        Req::Portability(q) => check!(g.portability(None, "bench", q).await),
        Req::Rewrite(r) => check!(g.rewrite(None, "bench", r).await),
    }
}

/// Like [`decide`] without formatting a plugin answer (the timed path):
/// `None`, or the fallback's reason and message.
async fn decide_fast(s: &Subject) -> Option<String> {
    let g = &s.generation;
    let (fallback, error) = match &s.req {
        Req::Route(c) => {
            let d = g.route(None, c).await.unwrap();
            (d.fallback, d.error)
        }
        Req::Authorize(r) => {
            let d = g.authorize(None, "bench", r).await.unwrap();
            (d.fallback, d.error)
        }
        Req::Portability(q) => {
            let d = g.portability(None, "bench", q).await.unwrap();
            (d.fallback, d.error)
        }
        Req::Rewrite(r) => {
            let d = g.rewrite(None, "bench", r).await.unwrap();
            (d.fallback, d.error)
        }
    };
    fallback.map(|f| format!("{f}: {}", error.unwrap_or_default()))
}

/// CPU time of the calling thread (the decision runs on it: current-thread
/// tokio runtime). Unlike wall time it excludes time the thread spent
/// descheduled by other processes, so its tail shows the runtime's own cost
/// on a busy machine.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1e6
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn short(s: &str, n: usize) -> String {
    if s.len() <= n {
        s.to_string()
    } else {
        let mut cut = n;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &s[..cut])
    }
}

fn table(tok: &tokio::runtime::Runtime, rt: &Runtime, subjects: &[Subject]) {
    let n: usize = std::env::var("STROWGER_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    println!(
        "\nload average before: {}; {} timed decisions per subject after 2,000 warm-up; {} CPUs; \
         times in µs",
        loadavg(),
        n,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "wall = elapsed time per decision; cpu = the thread's CPU time per decision \
         (excludes preemption by other processes)"
    );
    println!(
        "{:<22} {:<11} {:>7} {:>10} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>11}",
        "subject",
        "hook",
        "size KB",
        "compile ms",
        "wall p50",
        "wall p99",
        "wall p99.9",
        "wall mean",
        "cpu p50",
        "cpu p99",
        "inst+init p50"
    );
    for s in subjects {
        let answer = tok.block_on(decide(s));
        let mut times = Vec::with_capacity(n);
        let mut cpu = Vec::with_capacity(n);
        let fallbacks = tok.block_on(async {
            for _ in 0..2_000 {
                decide_fast(s).await;
            }
            let mut fb = Vec::new();
            for _ in 0..n {
                let c0 = thread_cpu();
                let t0 = Instant::now();
                let failed = decide_fast(s).await;
                times.push(t0.elapsed());
                cpu.push(thread_cpu().saturating_sub(c0));
                fb.extend(failed);
            }
            fb
        });
        let mean = times.iter().sum::<Duration>().as_secs_f64() * 1e6 / n as f64;
        times.sort();
        cpu.sort();
        // Instantiate + init: build a one-binding generation whose pool
        // cannot be shared with an earlier one (the config differs by
        // trailing whitespace): that creates one instance and runs `init`.
        let mut inst = Vec::new();
        for i in 0..30 {
            let cfg = format!("{}{}", s.config, " ".repeat(i + 1));
            let t0 = Instant::now();
            let g = tok
                .block_on(rt.build(Policy {
                    bindings: vec![
                        Binding::new(s.hook, s.plugin.clone())
                            .config_json(cfg)
                            .datasets(s.datasets.clone()),
                    ],
                }))
                .unwrap();
            inst.push(t0.elapsed());
            drop(g);
        }
        inst.sort();
        println!(
            "{:<22} {:<11} {:>7} {:>10.0} {:>8.2} {:>8.2} {:>10.2} {:>9.2} {:>8.2} {:>8.2} {:>11.0}",
            s.label,
            s.hook.as_str(),
            s.plugin.size() / 1024,
            s.plugin.load_time().as_secs_f64() * 1e3,
            pct(&times, 0.50),
            pct(&times, 0.99),
            pct(&times, 0.999),
            mean,
            pct(&cpu, 0.50),
            pct(&cpu, 0.99),
            pct(&inst, 0.5),
        );
        match answer {
            Ok(a) => println!("    answer: {}", short(&a, 150)),
            Err(e) => println!("    FALLBACK: {e}"),
        }
        if !fallbacks.is_empty() {
            println!(
                "    {} of {n} timed decisions fell back; first: {}",
                fallbacks.len(),
                fallbacks[0]
            );
        }
    }
    println!("load average after: {}\n", loadavg());
}

/// Replaces `br-ported` with the rows of `csv` (e.g. the national-scale
/// table `benches/datasets.rs` writes) followed by the plugin's own sample
/// rows, so br-portability's answers stay the same but each lookup searches
/// the big table.
fn big_ported(rt: &Runtime, csv: &Path) {
    use std::io::BufRead;
    let t = Instant::now();
    let mut b = DatasetBuilder::new();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../guest-examples/rust/br-portability/data/ported.csv");
    for p in [csv, sample.as_path()] {
        let f = std::io::BufReader::new(std::fs::File::open(p).unwrap());
        for line in f.lines() {
            let line = line.unwrap();
            let t = line.trim();
            if let Some((k, v)) = t.split_once(',').filter(|_| !t.starts_with('#')) {
                b.insert(k.trim(), v.trim()).unwrap();
            }
        }
    }
    let ds = b.finish("big");
    println!(
        "br-ported: {} rows from {} ({} layout, {:.1} heap bytes/row, built in {:.1} s)",
        ds.len(),
        csv.display(),
        ds.layout_name(),
        ds.heap_bytes() as f64 / ds.len() as f64,
        t.elapsed().as_secs_f64()
    );
    rt.datasets().put_dataset("br-ported", Arc::new(ds));
}

fn bench(c: &mut Criterion) {
    let tok = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut config = RuntimeConfig {
        max_instances: 64,
        utc_offset_minutes: -180,
        ..RuntimeConfig::default()
    };
    // Experiments only: the epoch tick (deadline check period), default 1 ms.
    if let Some(ms) = std::env::var("STROWGER_BENCH_EPOCH_TICK_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.epoch_tick = Duration::from_millis(ms);
        println!("epoch tick: {ms} ms");
    }
    let rt = Runtime::new(config).unwrap();
    let subjects = subjects(&rt, &tok);
    if let Some(csv) = std::env::var_os("STROWGER_BENCH_LNP_CSV") {
        big_ported(&rt, Path::new(&csv));
    }
    table(&tok, &rt, &subjects);
    if std::env::var_os("STROWGER_BENCH_TABLE_ONLY").is_some() {
        return;
    }
    let mut group = c.benchmark_group("decision");
    for s in &subjects {
        // All iterations inside one `block_on`, as in the table: entering
        // the tokio runtime per decision would add its own microseconds.
        group.bench_function(s.label, |b| {
            b.iter_custom(|iters| {
                tok.block_on(async {
                    let t0 = Instant::now();
                    for _ in 0..iters {
                        std::hint::black_box(decide_fast(s).await);
                    }
                    t0.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
