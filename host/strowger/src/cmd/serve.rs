//! `strowger serve`. Spec of its CLI and config (also docs/config.md):
//!
//! ```toml
//! # strowger.toml (every section optional; defaults shown)
//! [sip]
//! listen = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]   # also "tls:127.0.0.1:5061", "udp:[::1]:5060"
//! domain = "strowger.local"          # default domain and digest realm
//! user_agent = "Strowger/0.1"
//! t1_ms = 500
//! t2_ms = 4000
//! t4_ms = 5000
//! max_udp_size = 1300                # larger requests go over TCP (RFC 3261 §18.1.1)
//!
//! [tls]                              # needed when a tls: listener is configured
//! cert = "cert.pem"                  # paths relative to the config file's directory
//! key = "key.pem"
//!
//! [store]
//! path = "strowger.db"               # embedded store (SQLite); relative to the config file's dir
//!
//! [plugins]
//! dir = "..."                        # where <name>.wasm plugins are found; default $STROWGER_PLUGIN_DIR
//! cache_dir = "..."                  # compiled-component cache; default <store dir>/cache
//!
//! [auth]
//! algorithms = ["md5", "sha256"]     # offered side by side, in this order
//! nonce_ttl_s = 300
//!
//! [registrar]
//! min_expires = 60
//! max_expires = 3600
//! default_expires = 3600
//!
//! [calls]
//! ring_timeout_s = 60
//! max_forwards = 70
//! timezone_offset_minutes = 0        # local time seen by plugins
//!
//! [[users]]
//! user = "1001"
//! password = "demo1001"
//! # domain = "strowger.local"
//!
//! [[trunks]]                         # basic trunks now; the trunks issue extends this
//! name = "carrier"
//! host = "127.0.0.2"
//! port = 5060
//! transport = "udp"
//! inbound = "ip"                     # "ip" = trusted by source address, "none" = outbound only
//! ignore_source_port = true
//!
//! [[bindings]]                       # the initial policy: hook -> plugin
//! hook = "route"                      # route | authorize | portability | rewrite
//! plugin = "route-table"              # a name in plugins.dir (route-table -> route-table.wasm) or a path to a .wasm
//! config_file = "routes.json"         # or inline: config = { ... } (a TOML table turned into JSON)
//! scope = "global"                    # or a trunk name
//! deadline_ms = 5
//! fallback = { reject = { code = 503, reason = "Routing unavailable" } }
//! datasets = ["br-ported"]
//!
//! [[datasets]]
//! name = "br-ported"
//! file = "ported.csv"                 # key,value rows
//!
//! [admin]                            # the admin HTTP API (docs/config.md)
//! enabled = true
//! listen = "127.0.0.1:8080"
//! token = "..."                      # or $STROWGER_ADMIN_TOKEN; neither = token_file (generated, 0600)
//!
//! [log]                              # stderr log (docs/config.md)
//! format = "text"                    # or "json"; $STROWGER_LOG_FORMAT overrides
//! level = "info"                     # tracing filter; $STROWGER_LOG overrides; PUT /v1/log/level
//! ```
//! CLI: `strowger serve [--config FILE] [--demo] [--plugin-dir DIR]`. `--demo` without a file = built-in demo config: listen udp+tcp 127.0.0.1:5060 only, users 1001–1010 with password `demo<ext>`, store in `./strowger-demo.db` (or a data dir), route binding `route-table` with `guest-examples/rust/route-table/demo-config.json` (embedded into the binary with `include_str!`), prints a clear warning that demo credentials are active. On start the switch logs (stderr) `listening on <transport>:<addr>` per listener; SIGTERM/SIGINT shut it down cleanly (flush the store).
//!

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use strowger_switch::config::{self, Config};

/// `strowger serve` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Configuration file (TOML).
    #[arg(long, short = 'c', env = "STROWGER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Run the built-in demo configuration (users 1001-1010, route-table).
    #[arg(long)]
    pub demo: bool,
    /// Directory of `<name>.wasm` plugins (overrides `[plugins] dir`).
    #[arg(long, env = "STROWGER_PLUGIN_DIR")]
    pub plugin_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut cfg = match (&args.config, args.demo) {
        (Some(path), _) => Config::from_file(path).map_err(|e| anyhow::anyhow!("{e}"))?,
        (None, true) => Config::demo(),
        (None, false) => anyhow::bail!("give --config FILE or --demo"),
    };
    if let Some(dir) = args.plugin_dir {
        cfg.plugins.dir = Some(dir);
    }
    cfg.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let log = crate::logging::init(&cfg.log)?;
    if args.config.is_none() && args.demo {
        tracing::warn!("WARNING: {}", config::DEMO_WARNING);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("strowger")
        .build()
        .context("starting the async runtime")?;
    let opts = fault_injection()?;
    let failed = rt.block_on(async move {
        let admin = cfg.admin.clone();
        let token_file = cfg.admin_token_file();
        let running = strowger_switch::server::start_with(cfg, opts).await?;
        let admin_addr = crate::control::start(&admin, &token_file, &running, log).await?;
        // the listeners were logged by the switch (`listening on <transport>:<addr>`)
        if let Some(a) = admin_addr {
            tracing::info!("admin API on http://{a}");
        }
        let failed = tokio::select! {
            _ = wait_for_signal() => None,
            why = running.failed() => Some(why),
        };
        match &failed {
            None => tracing::info!("shutting down"),
            Some(why) => {
                // already logged by the supervisor; say what happens next
                tracing::error!(failure = %why, exit_code = EXIT_FAILED, "the switch failed: flushing the store and exiting");
            }
        }
        running.shutdown().await?;
        anyhow::Ok(failed)
    })?;
    // the runtime (admin API, listener tasks) goes before the exit code
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    Ok(match failed {
        None => ExitCode::SUCCESS,
        Some(_) => ExitCode::from(EXIT_FAILED),
    })
}

/// Exit code when a switch task failed (a panic in the core loop or a
/// listener): `EX_SOFTWARE`. Registrations and CDRs are in the store; a
/// supervisor (systemd `Restart=on-failure`) starts the switch again.
pub const EXIT_FAILED: u8 = 70;

/// Test-only fault injection, read once at start-up (never over the
/// network): `STROWGER_FAULT_INJECT=panic-on-invite` makes the core panic
/// on the first call it forwards (docs/config.md).
pub const FAULT_ENV: &str = "STROWGER_FAULT_INJECT";

fn fault_injection() -> anyhow::Result<strowger_switch::server::StartOptions> {
    let mut opts = strowger_switch::server::StartOptions::default();
    match std::env::var(FAULT_ENV).ok().as_deref() {
        None | Some("") => {}
        Some("panic-on-invite") => {
            tracing::warn!(
                "{FAULT_ENV}=panic-on-invite: TEST-ONLY fault injection, the core will panic on the first forwarded call"
            );
            opts.media = Some(Box::new(PanicOnInvite));
        }
        Some(other) => anyhow::bail!("{FAULT_ENV}={other}: unknown fault (known: panic-on-invite)"),
    }
    Ok(opts)
}

/// A media handler that panics when asked for an outbound INVITE's SDP
/// (fault injection, see [`FAULT_ENV`]).
struct PanicOnInvite;

impl strowger_switch::media::MediaHandler for PanicOnInvite {
    fn rewrite(
        &mut self,
        _call: u64,
        _leg: u64,
        _dir: strowger_switch::media::SdpDirection,
        _sdp: &[u8],
        _relay: Option<bool>,
        _codecs: Option<&[String]>,
    ) -> Result<Vec<u8>, strowger_switch::media::MediaRefusal> {
        panic!("fault injection: {FAULT_ENV}=panic-on-invite");
    }
    fn release(&mut self, _call: u64) {}
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
