//! `strowger policy ...`: policy repositories (format: `policies/README.md`).
//!
//! * `test DIR`: offline; loads the plugins, data sets and bindings into the
//!   real plugin runtime and runs every test case (the same code the admin
//!   API runs before it stores or activates a version); a diff per failing
//!   case; exit 1 if any fails.
//! * `plan DIR --server URL`: what `apply` would change.
//! * `apply DIR --server URL [--canary N]`: uploads missing plugins and
//!   changed data sets, creates the policy version (the server runs the test
//!   cases again and refuses it if one fails), activates it (or starts a
//!   canary on N % of new calls).
//! * `rollback --server URL [--to VERSION]`: the previous version (after
//!   the first `apply`: version 0, the configuration file's `[[bindings]]`).
//! * `list --server URL`: every version with its state (active, canary,
//!   shadow), creation time and source (`config` or `api`).
//! * `activate VERSION --server URL`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use serde_json::{Value, json};
use strowger_plugin::{Runtime, RuntimeConfig};

use crate::client::{Client, ServerArgs, block_on};
use crate::policy_repo::{self, Repo};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Run every test case of a policy repository offline in the real
    /// plugin runtime; exit 1 if one fails.
    Test(TestArgs),
    /// Show what `apply` would change on a running switch.
    Plan(PlanArgs),
    /// Upload what is missing, create the policy version and activate it
    /// (the server re-runs the test cases and refuses it if one fails).
    Apply(ApplyArgs),
    /// Activate the previous policy version again (or `--to VERSION`);
    /// version 0 is the configuration file's `[[bindings]]`.
    Rollback(RollbackArgs),
    /// List the policy versions on a running switch: state (active, canary,
    /// shadow), created, source (config file or API), bindings.
    List(ListArgs),
    /// Activate a policy version (the server runs its test cases first);
    /// version 0 is the configuration file's `[[bindings]]`.
    Activate(ActivateArgs),
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Print the server's JSON answer instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ActivateArgs {
    /// The policy version (`strowger policy list`).
    pub version: u64,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Where plugins named in `policy.toml` are found.
#[derive(clap::Args, Debug)]
pub struct RepoArgs {
    /// The policy repository (a directory with policy.toml).
    pub dir: PathBuf,
    /// Directory of `<name>.wasm` plugins.
    #[arg(long, env = "STROWGER_PLUGIN_DIR")]
    pub plugin_dir: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct TestArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Print every decision, not only failures.
    #[arg(long, short)]
    pub verbose: bool,
}

#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Send only this percentage of new calls to the new version (1-100);
    /// promote later with `POST /v1/policies/canary/promote`.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub canary: Option<u8>,
}

#[derive(clap::Args, Debug)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Activate this version instead of the previous one.
    #[arg(long)]
    pub to: Option<u64>,
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Test(a) => block_on(test(a))?,
        Command::Plan(a) => block_on(async move {
            let repo = load(&a.repo)?;
            let client = Client::new(&a.server)?;
            let plan = plan(&repo, &client).await?;
            print_plan(&plan);
            Ok(ExitCode::SUCCESS)
        })?,
        Command::Apply(a) => block_on(apply(a))?,
        Command::Rollback(a) => block_on(async move {
            let client = Client::new(&a.server)?;
            let body = match a.to {
                Some(v) => json!({"version": v}),
                None => json!({}),
            };
            let r = client
                .post_json("/v1/policies/rollback", &body)
                .await?
                .ok("rollback")?;
            println!(
                "rolled back: version {} active (was {}), generation {}",
                r["active"], r["from"], r["generation"]
            );
            Ok(ExitCode::SUCCESS)
        })?,
        Command::List(a) => block_on(async move {
            let client = Client::new(&a.server)?;
            let r = client
                .get("/v1/policies")
                .await?
                .ok("listing policy versions")?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", list_table(&r));
            }
            Ok(ExitCode::SUCCESS)
        })?,
        Command::Activate(a) => block_on(async move {
            let client = Client::new(&a.server)?;
            let r = client
                .post_json(&format!("/v1/policies/{}/activate", a.version), &json!({}))
                .await?
                .ok(&format!("activating policy version {}", a.version))?;
            println!(
                "policy version {} active (generation {})",
                r["active"], r["generation"]
            );
            Ok(ExitCode::SUCCESS)
        })?,
    }
}

/// `policy list` as a table, one version per line.
pub fn list_table(r: &Value) -> String {
    let mut rows = vec![[
        "VERSION".to_string(),
        "STATE".into(),
        "CREATED (UTC)".into(),
        "SOURCE".into(),
        "BY".into(),
        "BINDINGS".into(),
        "COMMENT".into(),
    ]];
    for v in r["versions"].as_array().into_iter().flatten() {
        let mut state = v["state"].as_str().unwrap_or("?").to_string();
        if state == "canary"
            && let Some(p) = r["canary"]["percent"].as_u64()
        {
            state = format!("canary {p}%");
        }
        let hooks: Vec<String> = v["bindings"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| match b["scope"]["trunk"].as_str() {
                Some(t) => format!("{}@{t}", b["hook"].as_str().unwrap_or("?")),
                None => b["hook"].as_str().unwrap_or("?").to_string(),
            })
            .collect();
        rows.push([
            v["version"].to_string(),
            state,
            v["created_at_ms"]
                .as_i64()
                .map(utc_time)
                .unwrap_or_else(|| "-".into()),
            v["source"].as_str().unwrap_or("api").to_string(),
            v["created_by"].as_str().unwrap_or("-").to_string(),
            if hooks.is_empty() {
                "-".into()
            } else {
                hooks.join(",")
            },
            v["comment"].as_str().unwrap_or("").to_string(),
        ]);
    }
    let mut width = [0usize; 7];
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, (c, w)) in r.iter().zip(width).enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS` (UTC): the
/// store's RFC 3339 form without the `T`, the milliseconds and the `Z`.
pub fn utc_time(ms: i64) -> String {
    let mut t = strowger_store::format_utc_ms(ms);
    t.truncate(19);
    t.replace('T', " ")
}

fn load(a: &RepoArgs) -> anyhow::Result<Repo> {
    policy_repo::load(&a.dir, a.plugin_dir.as_deref())
        .with_context(|| format!("policy repository {}", a.dir.display()))
}

async fn test(a: TestArgs) -> anyhow::Result<ExitCode> {
    let repo = load(&a.repo)?;
    let rt = Runtime::new(RuntimeConfig::default()).context("starting the plugin runtime")?;
    let mut loaded = std::collections::HashMap::new();
    for p in &repo.plugins {
        let wasm = p.wasm.as_ref().with_context(|| {
            format!(
                "plugin `{}` is referenced by sha256 only ({}): no local copy to test with",
                p.key, p.sha256
            )
        })?;
        let v = rt
            .load(&p.name, wasm)
            .await
            .map_err(|e| anyhow::anyhow!("plugin `{}` ({}): {e}", p.key, p.origin))?;
        loaded.insert(p.sha256.clone(), v);
    }
    for d in &repo.datasets {
        let (ds, _) = strowger_admin::parse_dataset_csv(&d.csv, "local")
            .map_err(|e| anyhow::anyhow!("data set `{}`: {e}", d.name))?;
        rt.datasets().put_dataset(&d.name, Arc::new(ds));
    }
    let mut bindings = Vec::new();
    for (i, b) in repo.document.bindings.iter().enumerate() {
        let p = loaded[&b.plugin].clone();
        bindings.push(
            b.to_binding(i, p)
                .map_err(|e| anyhow::anyhow!("{}", e.error))?,
        );
    }
    let g = strowger_admin::build_policy(&rt, bindings)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.error))?;
    let results = strowger_admin::run_cases(&g, &repo.document.tests).await;
    let mut failed = 0;
    for (r, origin) in results.iter().zip(&repo.test_origins) {
        let hook = repo.document.tests[r.index].hook;
        if r.passed {
            println!(
                "ok    {} ({origin}, {hook}, {:.0} µs)",
                r.test,
                r.elapsed_us.as_f64().unwrap_or_default()
            );
            if a.verbose {
                println!("      input:    {}", repo.document.tests[r.index].input);
                println!("      decision: {}", r.actual);
            }
        } else {
            failed += 1;
            println!("FAIL  {} ({origin}, {hook})", r.test);
            if a.verbose {
                println!("      input:    {}", repo.document.tests[r.index].input);
            }
            for m in &r.mismatches {
                println!("      {m}");
            }
            println!(
                "      - expected: {}",
                serde_json::to_string(&r.expected).unwrap_or_default()
            );
            println!(
                "      + actual:   {}",
                serde_json::to_string(&r.actual).unwrap_or_default()
            );
        }
    }
    println!(
        "{} test cases: {} passed, {failed} failed ({} bindings, {} plugins, {} data sets)",
        results.len(),
        results.len() - failed,
        repo.document.bindings.len(),
        repo.plugins.len(),
        repo.datasets.len()
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What `apply` would do.
pub struct Plan {
    /// Plugin keys to upload (with name and sha256).
    pub upload_plugins: Vec<(String, String, String)>,
    /// Plugins already on the server.
    pub present_plugins: Vec<(String, String)>,
    /// Data sets to upload (name, why, the active version on the server).
    pub upload_datasets: Vec<(String, String, Option<i64>)>,
    /// Data sets unchanged.
    pub same_datasets: Vec<String>,
    /// Active version on the server.
    pub active: Option<u64>,
    /// Differences between the repository's document and the active one
    /// (empty = identical: nothing to create).
    pub policy_changes: Vec<String>,
}

impl Plan {
    fn is_empty(&self) -> bool {
        self.upload_plugins.is_empty()
            && self.upload_datasets.is_empty()
            && self.policy_changes.is_empty()
    }
}

async fn plan(repo: &Repo, client: &Client) -> anyhow::Result<Plan> {
    let plugins = client.get("/v1/plugins").await?.ok("listing plugins")?;
    let on_server: Vec<String> = plugins["plugins"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["sha256"].as_str().map(str::to_string))
        .collect();
    let mut p = Plan {
        upload_plugins: Vec::new(),
        present_plugins: Vec::new(),
        upload_datasets: Vec::new(),
        same_datasets: Vec::new(),
        active: None,
        policy_changes: Vec::new(),
    };
    for lp in &repo.plugins {
        if on_server.contains(&lp.sha256) {
            p.present_plugins.push((lp.key.clone(), lp.sha256.clone()));
        } else {
            p.upload_plugins
                .push((lp.key.clone(), lp.name.clone(), lp.sha256.clone()));
        }
    }
    for d in &repo.datasets {
        let a = client.get(&format!("/v1/datasets/{}", d.name)).await?;
        if a.status == reqwest::StatusCode::NOT_FOUND {
            p.upload_datasets
                .push((d.name.clone(), "not on the server".into(), None));
            continue;
        }
        let v = a.ok("reading a data set")?;
        let active = v["active_version"].clone();
        let active_sha = v["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["version"] == active)
            .and_then(|x| x["sha256"].as_str());
        if active_sha == Some(d.sha256.as_str()) {
            p.same_datasets.push(d.name.clone());
        } else {
            p.upload_datasets.push((
                d.name.clone(),
                format!("content differs from active version {active}"),
                active.as_i64(),
            ));
        }
    }
    let active = client
        .get("/v1/policies/active")
        .await?
        .ok("reading the active policy")?;
    p.active = active["version"].as_u64();
    let local = serde_json::to_value(&repo.document)?;
    match p.active {
        None => p
            .policy_changes
            .push("no policy version is active: a first version will be created".into()),
        Some(v) => {
            let cur = client
                .get(&format!("/v1/policies/{v}"))
                .await?
                .ok("reading the active policy version")?;
            let remote = &cur["document"];
            if local["comment"] != remote["comment"] {
                p.policy_changes.push("comment".into());
            }
            let (lb, rb) = (&local["bindings"], &remote["bindings"]);
            let n = lb
                .as_array()
                .map_or(0, Vec::len)
                .max(rb.as_array().map_or(0, Vec::len));
            for i in 0..n {
                let (l, r) = (&lb[i], &rb[i]);
                if l != r {
                    let fields: Vec<&str> = [
                        "hook",
                        "plugin",
                        "config",
                        "datasets",
                        "scope",
                        "deadline_ms",
                        "fallback",
                        "memory_limit_bytes",
                    ]
                    .into_iter()
                    .filter(|f| l[*f] != r[*f])
                    .collect();
                    let what = if l.is_null() {
                        "removed".to_string()
                    } else if r.is_null() {
                        format!("added ({} → {})", l["hook"], l["plugin"])
                    } else {
                        format!("changed: {}", fields.join(", "))
                    };
                    p.policy_changes.push(format!("bindings[{i}] {what}"));
                }
            }
            if local["tests"] != remote["tests"] {
                p.policy_changes.push(format!(
                    "test cases: {} here, {} in version {v}",
                    local["tests"].as_array().map_or(0, Vec::len),
                    remote["tests"].as_array().map_or(0, Vec::len)
                ));
            }
        }
    }
    Ok(p)
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

fn print_plan(p: &Plan) {
    for (key, _, sha) in &p.upload_plugins {
        println!("+ plugin {key}: upload ({})", short(sha));
    }
    for (key, sha) in &p.present_plugins {
        println!("= plugin {key}: on the server ({})", short(sha));
    }
    for (name, why, _) in &p.upload_datasets {
        println!("+ data set {name}: upload a new version ({why})");
    }
    for name in &p.same_datasets {
        println!("= data set {name}: unchanged");
    }
    if p.policy_changes.is_empty() {
        println!(
            "= policy: identical to the active version {}",
            p.active.map(|v| v.to_string()).unwrap_or_default()
        );
    } else {
        println!(
            "+ policy: new version (active: {})",
            p.active
                .map(|v| v.to_string())
                .unwrap_or_else(|| "none".into())
        );
        for c in &p.policy_changes {
            println!("    {c}");
        }
    }
    if p.is_empty() {
        println!("nothing to do");
    }
}

async fn apply(a: ApplyArgs) -> anyhow::Result<ExitCode> {
    let repo = load(&a.repo)?;
    let client = Client::new(&a.server)?;
    let p = plan(&repo, &client).await?;
    print_plan(&p);
    if p.is_empty() && a.canary.is_none() {
        return Ok(ExitCode::SUCCESS);
    }
    for (key, name, sha) in &p.upload_plugins {
        let lp = repo
            .plugins
            .iter()
            .find(|x| &x.key == key)
            .expect("planned from the repo");
        let wasm = lp.wasm.clone().with_context(|| {
            format!("plugin `{key}` is pinned by sha256 {sha} only and the server does not have it")
        })?;
        let r = client
            .post_bytes(&format!("/v1/plugins?name={name}"), wasm)
            .await?
            .ok(&format!("uploading plugin {key}"))?;
        println!(
            "uploaded plugin {key} ({}), hooks {}",
            short(sha),
            r["hooks"]
        );
    }
    for (name, _, _) in &p.upload_datasets {
        let d = repo
            .datasets
            .iter()
            .find(|x| &x.name == name)
            .expect("planned from the repo");
        let r = client
            .post_bytes(&format!("/v1/datasets/{name}"), d.csv.clone())
            .await?
            .ok(&format!("uploading data set {name}"))?;
        println!(
            "uploaded data set {name}: version {}, {} rows",
            r["version"], r["rows"]
        );
    }
    let mut body = serde_json::to_value(&repo.document)?;
    body["activate"] = json!(a.canary.is_none());
    let ans = client.post_json("/v1/policies", &body).await?;
    if ans.status == reqwest::StatusCode::UNPROCESSABLE_ENTITY && ans.body["field"] == "tests" {
        println!(
            "REFUSED by the server: {} (the running version is unchanged)",
            ans.body["error"].as_str().unwrap_or("test cases failed")
        );
        print_failures(&ans.body["detail"]["failures"]);
        // the data sets uploaded above went live at once: put the previous versions back
        for (name, _, previous) in &p.upload_datasets {
            if let Some(v) = previous {
                client
                    .post_json(
                        &format!("/v1/datasets/{name}/activate"),
                        &json!({"version": v}),
                    )
                    .await?
                    .ok(&format!("restoring data set {name}"))?;
                println!("data set {name}: version {v} active again");
            }
        }
        return Ok(ExitCode::from(1));
    }
    let created = ans.ok("creating the policy version")?;
    let version = created["version"].as_u64().unwrap_or_default();
    match a.canary {
        None => println!(
            "policy version {version} active (generation {}, {} test cases passed on the server)",
            created["generation"], created["tests"]
        ),
        Some(pct) => {
            let r = client
                .post_json(
                    &format!("/v1/policies/{version}/canary"),
                    &json!({"percent": pct}),
                )
                .await?
                .ok("starting the canary")?;
            println!(
                "policy version {version} created; canary on {pct} % of new calls (generation {})",
                r["generation"]
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_failures(f: &Value) {
    for x in f.as_array().into_iter().flatten() {
        println!("FAIL  {}", x["test"].as_str().unwrap_or("?"));
        for m in x["mismatches"].as_array().into_iter().flatten() {
            println!("      {}", m.as_str().unwrap_or_default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times() {
        assert_eq!(utc_time(0), "1970-01-01 00:00:00");
        assert_eq!(utc_time(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc_time(1_796_216_645_123), "2026-12-02 13:04:05");
        assert_eq!(utc_time(-1000), "1969-12-31 23:59:59");
    }

    #[test]
    fn list_table_shows_state_source_and_hooks() {
        let r = json!({"active": 0, "canary": {"version": 2, "percent": 10}, "versions": [
            {"version": 0, "state": "active", "source": "config", "created_at_ms": 0,
             "created_by": null, "bindings": [{"hook": "route", "scope": "global"}],
             "comment": "the configuration file's [[bindings]]"},
            {"version": 2, "state": "canary", "source": "api", "created_at_ms": 1_796_216_645_123u64,
             "created_by": "admin", "bindings": [{"hook": "route", "scope": {"trunk": "a"}}],
             "comment": null}]});
        let t = list_table(&r);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("VERSION  STATE"), "{t}");
        assert!(lines[1].starts_with("0        active"), "{t}");
        assert!(
            lines[1].contains("config") && lines[1].contains("1970-01-01 00:00:00"),
            "{t}"
        );
        assert!(
            lines[2].contains("canary 10%") && lines[2].contains("route@a"),
            "{t}"
        );
        assert!(
            lines[2].contains("2026-12-02 13:04:05") && lines[2].contains("admin"),
            "{t}"
        );
    }
}
