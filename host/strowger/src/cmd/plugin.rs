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
    }
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
