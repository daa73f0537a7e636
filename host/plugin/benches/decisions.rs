//! Decision latency on a warm instance for every plugin built into the
//! plugin dir (standard plugins with their shipped example-config.json, plus
//! `chaos` in `ok` mode), and instantiate + init time.
//!
//! Prints p50/p99/p99.9 from 20 000 timed decisions per plugin (criterion's
//! mean alone hides the tail), then runs the criterion benchmarks.
//! Run: `scripts/build-guests.sh && cargo bench -p strowger-plugin --bench decisions`.

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use strowger_plugin::*;

struct Subject {
    name: String,
    hook: Hook,
    generation: std::sync::Arc<Generation>,
    plugin: std::sync::Arc<PluginVersion>,
    config: String,
    datasets: Vec<String>,
    input: serde_json::Value,
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
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
        rt.datasets().put_dataset(&name, std::sync::Arc::new(ds));
        names.push(name);
    }
    names
}

fn subjects(rt: &Runtime, tok: &tokio::runtime::Runtime) -> Vec<Subject> {
    let root = testing::workspace_root();
    let mut out = Vec::new();
    let mut names: Vec<String> = [
        "route-table",
        "registrar-policy",
        "br-portability",
        "e164-normalize",
    ]
    .iter()
    .map(|s| s.to_string())
    .filter(|n| testing::plugin_dir().join(format!("{n}.wasm")).is_file())
    .collect();
    names.push("chaos".into());
    for name in names {
        let src = root.join("guest-examples/rust").join(&name);
        let config =
            std::fs::read_to_string(src.join("example-config.json")).unwrap_or_else(|_| {
                if name == "chaos" {
                    r#"{"tag":"bench","mode":"ok"}"#.into()
                } else {
                    "{}".into()
                }
            });
        let cfg_value: serde_json::Value = serde_json::from_str(&config).unwrap_or_default();
        let datasets = load_datasets(rt, &src, &cfg_value);
        let bytes = testing::plugin_bytes(&name);
        let plugin = tok.block_on(rt.load(&name, &bytes)).unwrap();
        let hook = plugin.hooks()[0];
        let generation = match tok.block_on(rt.build(Policy {
            bindings: vec![
                    Binding::new(hook, plugin.clone())
                        .config_json(config.clone())
                        .datasets(datasets.clone()),
                ],
        })) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("skipping {name}: {e}");
                continue;
            }
        };
        out.push(Subject {
            name,
            hook,
            generation,
            plugin,
            config,
            datasets,
            input: json::example_input(hook),
        });
    }
    out
}

async fn decide(s: &Subject, reqs: &Reqs) -> bool {
    let g = &s.generation;
    match reqs {
        Reqs::Route(c) => g.route(None, c).await.unwrap().fallback.is_none(),
        Reqs::Authorize(r) => g.authorize(None, "b", r).await.unwrap().fallback.is_none(),
        Reqs::Portability(q) => g
            .portability(None, "b", q)
            .await
            .unwrap()
            .fallback
            .is_none(),
        Reqs::Rewrite(r) => g.rewrite(None, "b", r).await.unwrap().fallback.is_none(),
    }
}

enum Reqs {
    Route(types::Call),
    Authorize(types::AuthRequest),
    Portability(types::PortabilityQuery),
    Rewrite(types::RewriteRequest),
}

fn reqs(s: &Subject) -> Reqs {
    let v = s.input.clone();
    match s.hook {
        Hook::Route => Reqs::Route(json::call_from_json(v).unwrap()),
        Hook::Authorize => Reqs::Authorize(json::auth_request_from_json(v).unwrap()),
        Hook::Portability => Reqs::Portability(json::portability_query_from_json(v).unwrap()),
        Hook::Rewrite => Reqs::Rewrite(json::rewrite_request_from_json(v).unwrap()),
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1e6
}

fn bench(c: &mut Criterion) {
    let tok = tokio_rt();
    let rt = Runtime::new(RuntimeConfig {
        max_instances: 64,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let subjects = subjects(&rt, &tok);
    println!(
        "\nplugin               hook         p50 µs   p99 µs  p99.9 µs  fallbacks  instantiate+init µs (p50)  size KB"
    );
    for s in &subjects {
        let r = reqs(s);
        let mut times = Vec::with_capacity(20_000);
        let fallbacks = tok.block_on(async {
            let mut fb = 0;
            for _ in 0..2_000 {
                decide(s, &r).await;
            }
            for _ in 0..20_000 {
                let t0 = Instant::now();
                let ok = decide(s, &r).await;
                times.push(t0.elapsed());
                fb += u32::from(!ok);
            }
            fb
        });
        times.sort();
        // Instantiate + init: build a generation whose pool cannot be reused
        // (config differs by trailing whitespace), which creates one instance.
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
            "{:<20} {:<11} {:>8.2} {:>8.2} {:>9.2} {:>10} {:>26.1} {:>8}",
            s.name,
            s.hook.as_str(),
            pct(&times, 0.50),
            pct(&times, 0.99),
            pct(&times, 0.999),
            fallbacks,
            pct(&inst, 0.5),
            s.plugin.size() / 1024
        );
    }
    println!();
    let mut group = c.benchmark_group("decision");
    for s in &subjects {
        let r = reqs(s);
        group.bench_function(&s.name, |b| b.iter(|| tok.block_on(decide(s, &r))));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
