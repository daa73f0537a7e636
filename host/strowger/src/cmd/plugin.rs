//! `strowger plugin ...`: plugin author tools.
//!
//! `test` runs one decision of a plugin in the real runtime (same engine,
//! limits, host imports and fallbacks as `strowger serve`).
//! To add a subcommand, add a variant to [`Command`] and an arm to [`run`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use strowger_plugin::{Binding, Dataset, Fallback, Hook, Policy, Runtime, RuntimeConfig, json};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Run one decision of a plugin and print it as JSON (exit 0: the plugin
    /// answered; 2: the fallback answered (trap, timeout, error, invalid
    /// answer); 1: the plugin or its config was refused).
    Test(TestArgs),
    /// Build a plugin directory (Rust: Cargo.toml, Go: go.mod) into a
    /// validated component; prints size, world and exported hooks.
    Build(super::plugin_build::BuildArgs),
    /// Scaffold a new plugin (with a unit test) in Go or Rust.
    New(super::plugin_build::NewArgs),
    /// Build a plugin directory, upload it to a running switch and put it in
    /// force: a new policy version = the active one with the plugin bound to
    /// its hook (the server runs the version's test cases first), activated
    /// (or a canary with `--canary N`). Prints how to roll back.
    Deploy(DeployArgs),
}

/// Arguments of `strowger plugin deploy`.
#[derive(clap::Args, Debug)]
pub struct DeployArgs {
    /// Plugin source directory (Cargo.toml or go.mod).
    pub dir: PathBuf,
    /// The hook to bind (default: the hook of the plugin's world).
    #[arg(long)]
    pub hook: Option<Hook>,
    /// Plugin name on the server (default: the directory name).
    #[arg(long)]
    pub name: Option<String>,
    /// Bind for calls of this trunk only (default: every call).
    #[arg(long)]
    pub trunk: Option<String>,
    /// Plugin configuration (JSON). Default: the configuration of the
    /// binding it replaces if that was a version of the same plugin, else `{}`.
    #[arg(long)]
    pub config_json: Option<String>,
    /// CPU-time deadline per decision, in milliseconds (default: the
    /// replaced binding's, else the server's default).
    #[arg(long)]
    pub deadline_ms: Option<u64>,
    /// Go only: the world to build for.
    #[arg(long, value_parser = ["route", "authorize", "portability", "rewrite"])]
    pub world: Option<String>,
    /// Send only this percentage of new calls to the new version (1-100)
    /// instead of activating it.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub canary: Option<u8>,
    #[command(flatten)]
    pub server: crate::client::ServerArgs,
}

/// Arguments of `strowger plugin test`.
#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// The plugin component (.wasm).
    pub plugin: PathBuf,
    /// The hook to run (the plugin must implement it).
    #[arg(long)]
    pub hook: Hook,
    /// Configuration file (JSON) passed to `init` and `config()`.
    #[arg(long, conflicts_with = "config_json")]
    pub config: Option<PathBuf>,
    /// Configuration as inline JSON.
    #[arg(long)]
    pub config_json: Option<String>,
    /// The request (JSON, `-` = stdin); fields left out take the example
    /// values (`--print-example` shows them).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Data set the plugin may read, from a `key,value` CSV file (repeatable).
    #[arg(long = "dataset", value_name = "NAME=FILE.csv")]
    pub datasets: Vec<String>,
    /// CPU-time deadline of the decision, in milliseconds.
    #[arg(long, default_value_t = 5.0)]
    pub deadline_ms: f64,
    /// Memory cap of the instance, in MiB.
    #[arg(long, default_value_t = 64)]
    pub memory_mib: usize,
    /// Local time zone for `now()`, minutes east of UTC.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub utc_offset_minutes: i32,
    /// Print the complete example input of the hook and exit.
    #[arg(long)]
    pub print_example: bool,
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Test(args) => test(args),
        Command::Build(args) => super::plugin_build::run_build(args),
        Command::New(args) => super::plugin_build::run_new(args),
        Command::Deploy(args) => deploy(args),
    }
}

fn deploy(a: DeployArgs) -> anyhow::Result<ExitCode> {
    use crate::client::{Client, block_on};
    use serde_json::{Value, json};

    let config: Option<Value> = match &a.config_json {
        Some(c) => Some(serde_json::from_str(c).context("--config-json is not valid JSON")?),
        None => None,
    };
    let built = super::plugin_build::build(&a.dir, None, a.world.as_deref())?;
    let world: Hook = built
        .world
        .parse()
        .map_err(|e: String| anyhow::anyhow!("{e}"))?;
    let hook = a.hook.unwrap_or(world);
    if hook != world {
        anyhow::bail!(
            "the plugin implements the {world} world: it cannot be bound to the {hook} hook"
        );
    }
    println!(
        "built {} ({} bytes, world {})",
        built.path.display(),
        built.size,
        built.world
    );
    let wasm =
        std::fs::read(&built.path).with_context(|| format!("reading {}", built.path.display()))?;
    let name = match &a.name {
        Some(n) => n.clone(),
        None => built
            .path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("plugin")
            .to_string(),
    };
    let scope = match &a.trunk {
        Some(t) => serde_json::to_value(strowger_plugin::Scope::Trunk(t.clone()))?,
        None => serde_json::to_value(strowger_plugin::Scope::Global)?,
    };
    let server = a.server.server.clone();
    block_on(async move {
        let client = Client::new(&a.server)?;
        let up = client
            .post_bytes(&format!("/v1/plugins?name={name}"), wasm)
            .await?
            .ok(&format!("uploading plugin {name}"))?;
        let sha = up["sha256"]
            .as_str()
            .context("the server answered no sha256")?
            .to_string();
        let short = &sha[..sha.len().min(12)];
        println!(
            "uploaded plugin {name} ({short}){}",
            if up["created"] == json!(false) {
                ", already on the server"
            } else {
                ""
            }
        );
        // the active version is the base of the new one
        let active = client
            .get("/v1/policies/active")
            .await?
            .ok("reading the active policy")?;
        let base = active["version"].as_u64();
        let mut doc = match base {
            Some(v) => client
                .get(&format!("/v1/policies/{v}"))
                .await?
                .ok("reading the active policy version")?["document"]
                .clone(),
            None => json!({"bindings": [], "tests": []}),
        };
        let names: std::collections::HashMap<String, String> =
            client.get("/v1/plugins").await?.ok("listing plugins")?["plugins"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| Some((p["sha256"].as_str()?.into(), p["name"].as_str()?.into())))
                .collect();
        let bindings = doc["bindings"]
            .as_array_mut()
            .context("the active policy version has no bindings list")?;
        let hook_s = hook.as_str();
        let pos = bindings
            .iter()
            .position(|b| b["hook"] == hook_s && b["scope"] == scope);
        let mut binding = json!({"hook": hook_s, "plugin": sha, "scope": scope, "config": {}});
        let mut replaced = None;
        if let Some(i) = pos {
            let old = bindings.remove(i);
            let old_sha = old["plugin"].as_str().unwrap_or_default().to_string();
            let same_plugin = old_sha == sha || names.get(&old_sha) == Some(&name);
            if same_plugin {
                // a new version of the same plugin: same configuration, data sets, limits
                binding = old.clone();
                binding["plugin"] = json!(sha);
            } else if let Some(d) = old.get("deadline_ms").filter(|d| !d.is_null()) {
                binding["deadline_ms"] = d.clone();
            }
            replaced = Some((i, old_sha));
        }
        if let Some(c) = &config {
            binding["config"] = c.clone();
        }
        if let Some(d) = a.deadline_ms {
            binding["deadline_ms"] = json!(d);
        }
        match replaced {
            Some((i, _)) => bindings.insert(i, binding),
            None => bindings.push(binding),
        }
        let base_text = base
            .map(|v| format!("version {v}"))
            .unwrap_or_else(|| "no active version".into());
        doc["comment"] = json!(format!(
            "plugin deploy: {hook_s} -> {name} {short} (based on {base_text})"
        ));
        doc["activate"] = json!(a.canary.is_none());
        let tests = doc["tests"].as_array().map_or(0, Vec::len);
        let ans = client.post_json("/v1/policies", &doc).await?;
        if ans.status == reqwest::StatusCode::UNPROCESSABLE_ENTITY && ans.body["field"] == "tests" {
            println!(
                "REFUSED by the server: {} (the running version is unchanged)",
                ans.body["error"].as_str().unwrap_or("test cases failed")
            );
            for x in ans.body["detail"]["failures"]
                .as_array()
                .into_iter()
                .flatten()
            {
                println!("FAIL  {}", x["test"].as_str().unwrap_or("?"));
                for m in x["mismatches"].as_array().into_iter().flatten() {
                    println!("      {}", m.as_str().unwrap_or_default());
                }
            }
            return Ok(ExitCode::from(1));
        }
        let created = ans.ok("creating the policy version")?;
        let version = created["version"].as_u64().unwrap_or_default();
        let scope_text = a
            .trunk
            .as_ref()
            .map(|t| format!("calls of trunk {t}"))
            .unwrap_or_else(|| "every call".into());
        match &replaced {
            Some((_, old)) => println!(
                "policy version {version} = {base_text} with {hook_s} ({scope_text}) -> {name} {short} (was {})",
                names
                    .get(old)
                    .cloned()
                    .unwrap_or_else(|| old[..old.len().min(12)].to_string())
            ),
            None => println!(
                "policy version {version} = {base_text} plus {hook_s} ({scope_text}) -> {name} {short}"
            ),
        }
        println!("{tests} test cases passed on the server");
        let back = match base {
            Some(b) => format!("strowger policy activate {b} --server {server}"),
            None => format!("strowger policy rollback --server {server}"),
        };
        match a.canary {
            None => {
                println!(
                    "active (generation {})
roll back: {back}",
                    created["generation"]
                );
            }
            Some(pct) => {
                let r = client
                    .post_json(
                        &format!("/v1/policies/{version}/canary"),
                        &json!({"percent": pct}),
                    )
                    .await?
                    .ok("starting the canary")?;
                println!(
                    "canary on {pct} % of new calls (generation {})
                     promote: strowger policy activate {version} --server {server}
                     stop:    DELETE {server}/v1/policies/canary",
                    r["generation"]
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })?
}

fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
    if args.print_example {
        println!(
            "{}",
            serde_json::to_string_pretty(&json::example_input(args.hook))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .try_init();
    let config = match (&args.config, &args.config_json) {
        (Some(p), _) => {
            std::fs::read_to_string(p).with_context(|| format!("reading config {}", p.display()))?
        }
        (None, Some(s)) => s.clone(),
        (None, None) => "{}".to_string(),
    };
    serde_json::from_str::<serde_json::Value>(&config)
        .context("the configuration is not valid JSON")?;
    let input: serde_json::Value = match &args.input {
        None => serde_json::json!({}),
        Some(p) if p.as_os_str() == "-" => {
            serde_json::from_reader(std::io::stdin()).context("reading input from stdin")?
        }
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading input {}", p.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("input {} is not valid JSON", p.display()))?
        }
    };
    let wasm = std::fs::read(&args.plugin)
        .with_context(|| format!("reading {}", args.plugin.display()))?;
    let name = args
        .plugin
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("plugin")
        .to_string();
    if !(args.deadline_ms > 0.0 && args.deadline_ms.is_finite()) {
        anyhow::bail!("--deadline-ms must be a positive number");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting async runtime")?;
    rt.block_on(async move {
        let runtime = Runtime::new(RuntimeConfig {
            utc_offset_minutes: args.utc_offset_minutes,
            memory_limit_bytes: args.memory_mib << 20,
            max_instances: 8,
            ..RuntimeConfig::default()
        })?;
        let mut granted = Vec::new();
        for spec in &args.datasets {
            let (ds_name, file) = spec
                .split_once('=')
                .with_context(|| format!("--dataset {spec:?}: expected NAME=FILE.csv"))?;
            let f =
                std::fs::File::open(file).with_context(|| format!("opening data set {file}"))?;
            let t0 = Instant::now();
            let ds = Dataset::from_csv(file, std::io::BufReader::new(f))
                .with_context(|| format!("loading data set {ds_name} from {file}"))?;
            eprintln!(
                "data set {ds_name}: {} rows from {file} in {:.1} ms",
                ds.len(),
                t0.elapsed().as_secs_f64() * 1e3
            );
            runtime.datasets().put_dataset(ds_name, Arc::new(ds));
            granted.push(ds_name.to_string());
        }
        let t0 = Instant::now();
        let plugin = runtime
            .load_for_hook(&name, &wasm, args.hook)
            .await
            .map_err(|e| anyhow::anyhow!("plugin refused: {e}"))?;
        let load_ms = t0.elapsed().as_secs_f64() * 1e3;
        let t1 = Instant::now();
        let generation = runtime
            .build(Policy {
                bindings: vec![
                    Binding::new(args.hook, plugin.clone())
                        .config_json(config)
                        .datasets(granted)
                        .deadline(Duration::from_secs_f64(args.deadline_ms / 1e3))
                        .fallback(Fallback::Default),
                ],
            })
            .await
            .map_err(|e| anyhow::anyhow!("plugin refused: {e}"))?;
        let init_ms = t1.elapsed().as_secs_f64() * 1e3;
        let (out, fell_back) = match args.hook {
            Hook::Route => {
                let call =
                    json::call_from_json(input).context("input is not a valid route call")?;
                let d = generation
                    .route(None, &call)
                    .await
                    .context("no route binding")?;
                (serde_json::to_value(&d)?, d.fallback.is_some())
            }
            Hook::Authorize => {
                let req = json::auth_request_from_json(input)
                    .context("input is not a valid auth request")?;
                let d = generation
                    .authorize(None, "cli", &req)
                    .await
                    .context("no authorize binding")?;
                (serde_json::to_value(&d)?, d.fallback.is_some())
            }
            Hook::Portability => {
                let q = json::portability_query_from_json(input)
                    .context("input is not a valid portability query")?;
                let d = generation
                    .portability(None, "cli", &q)
                    .await
                    .context("no portability binding")?;
                (serde_json::to_value(&d)?, d.fallback.is_some())
            }
            Hook::Rewrite => {
                let r = json::rewrite_request_from_json(input)
                    .context("input is not a valid rewrite request")?;
                let d = generation
                    .rewrite(None, "cli", &r)
                    .await
                    .context("no rewrite binding")?;
                (serde_json::to_value(&d)?, d.fallback.is_some())
            }
        };
        let mut out = out;
        if let Some(o) = out.as_object_mut() {
            // `value` is the decision: call it that in the CLI output.
            if let Some(v) = o.remove("value") {
                o.insert("decision".into(), v);
            }
            o.insert("load_ms".into(), serde_json::json!(load_ms));
            o.insert("init_ms".into(), serde_json::json!(init_ms));
            o.insert("from_cache".into(), serde_json::json!(plugin.from_cache()));
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
        Ok(if fell_back {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        })
    })
}
