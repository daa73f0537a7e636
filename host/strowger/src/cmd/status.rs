//! `strowger status`: a running switch's plugins, policy generations,
//! data sets, trunks, registrations and calls, from its admin API.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::client::{Client, ServerArgs, block_on};

/// `strowger status` arguments.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let c = Client::new(&args.server)?;
        let ready = c.get("/readyz").await?.body;
        let plugins = c.get("/v1/plugins").await?.ok("plugins")?;
        let policies = c.get("/v1/policies").await?.ok("policies")?;
        let datasets = c.get("/v1/datasets").await?.ok("data sets")?;
        let trunks = c.get("/v1/trunks/status").await?.ok("trunks")?;
        let regs = c.get("/v1/registrations").await?.ok("registrations")?;
        let calls = c.get("/v1/calls").await?.ok("calls")?;
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "ready": ready, "plugins": plugins["plugins"], "policies": policies,
                    "datasets": datasets["datasets"], "trunks": trunks["trunks"],
                    "registrations": regs["registrations"], "calls": calls["calls"],
                }))?
            );
            return Ok(ExitCode::SUCCESS);
        }
        let arr = |v: &Value| v.as_array().cloned().unwrap_or_default();
        println!(
            "switch: ready={} store={} generation {}",
            ready["ready"], ready["store"], ready["generation"]
        );
        println!(
            "policy: active version {} ({} versions stored){}",
            policies["active"],
            arr(&policies["versions"]).len(),
            if policies["canary"].is_null() {
                String::new()
            } else {
                format!(
                    ", canary version {} on {} %",
                    policies["canary"]["version"], policies["canary"]["percent"]
                )
            }
        );
        println!("plugins ({}):", arr(&plugins["plugins"]).len());
        for p in arr(&plugins["plugins"]) {
            let sha = p["sha256"].as_str().unwrap_or_default();
            let short = &sha[..sha.len().min(12)];
            // a plugin without a version of its own is named by its sha256
            let version = p["version"].as_str().filter(|v| *v != short).unwrap_or("");
            println!(
                "  {} {version} sha256 {short} hooks {}",
                p["name"].as_str().unwrap_or_default(),
                p["hooks"]
            );
        }
        println!("data sets ({}):", arr(&datasets["datasets"]).len());
        for d in arr(&datasets["datasets"]) {
            println!("  {d}");
        }
        println!("trunks ({}):", arr(&trunks["trunks"]).len());
        for t in arr(&trunks["trunks"]) {
            println!(
                "  {} {} calls {}",
                t["name"].as_str().unwrap_or_default(),
                t["state"].as_str().unwrap_or_default(),
                t["active_calls"]
            );
        }
        println!("registrations: {}", arr(&regs["registrations"]).len());
        let calls = arr(&calls["calls"]);
        println!("calls in progress: {}", calls.len());
        for c in calls.iter().take(20) {
            println!(
                "  {} {} -> {} {} via {} (generation {})",
                c["id"].as_str().unwrap_or_default(),
                c["a_number"].as_str().unwrap_or_default(),
                c["b_number"].as_str().unwrap_or_default(),
                c["state"].as_str().unwrap_or_default(),
                c["egress"].as_str().unwrap_or("-"),
                c["generation"]
            );
        }
        Ok(ExitCode::SUCCESS)
    })?
}
