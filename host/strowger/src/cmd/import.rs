//! `strowger import ...`: translate other systems' configuration.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::asterisk::{self, Level};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Asterisk chan_sip: `sip.conf` peers and register lines become
    /// `[[trunks]]` (trunks.toml); simple `extensions.conf` Dial lines become
    /// a route-table policy (routes.json). Everything not translated is
    /// listed in import-report.txt with file:line and the reason.
    Asterisk(AsteriskArgs),
}

#[derive(clap::Args)]
pub struct AsteriskArgs {
    /// The sip.conf to import.
    sip_conf: PathBuf,
    /// An extensions.conf whose `exten => ...,Dial(SIP/...)` lines become routes.
    extensions_conf: Option<PathBuf>,
    /// Directory for trunks.toml, routes.json and import-report.txt.
    #[arg(long, default_value = ".")]
    out: PathBuf,
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Asterisk(a) => run_asterisk(a),
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", path.display()))
}

fn display_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    )
}

fn run_asterisk(a: AsteriskArgs) -> anyhow::Result<ExitCode> {
    // read everything first: nothing is written unless all input is readable
    let sip = read(&a.sip_conf)?;
    let ext = a.extensions_conf.as_deref().map(read).transpose()?;
    let sip_name = display_name(&a.sip_conf);
    let ext_name = a.extensions_conf.as_deref().map(display_name);
    let imp = asterisk::import((&sip_name, &sip), ext_name.as_deref().zip(ext.as_deref()));

    let trunks_toml = asterisk::trunks_toml(&imp.trunks)
        .map_err(|e| anyhow::anyhow!("serializing trunks: {e}"))?;
    let routes_json = imp.routes.as_deref().map(asterisk::routes_json);
    let mut report = String::new();
    report
        .push_str("# strowger import asterisk: lines not translated or translated with a remark\n");
    for n in &imp.report.notes {
        report.push_str(&n.to_string());
        report.push('\n');
    }

    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    write_private(&a.out.join("trunks.toml"), &trunks_toml)?;
    if let Some(j) = &routes_json {
        write(&a.out.join("routes.json"), j)?;
    }
    write(&a.out.join("import-report.txt"), &report)?;

    for n in &imp.report.notes {
        eprintln!("{n}");
    }
    let registering = imp
        .trunks
        .iter()
        .filter(|t| t.register == Some(true))
        .count();
    let dynamic = imp.trunks.iter().filter(|t| t.host == "dynamic").count();
    let routes = imp.routes.as_ref().map_or(0, Vec::len);
    println!(
        "imported {} trunk(s) ({registering} registering to the provider, {dynamic} registering to us) -> {}",
        imp.trunks.len(),
        a.out.join("trunks.toml").display()
    );
    if routes_json.is_some() {
        println!(
            "imported {routes} route(s) -> {} (configure it as the route-table binding's config_file)",
            a.out.join("routes.json").display()
        );
    }
    println!(
        "{} line(s) not translated, {} remark(s) -> {}",
        imp.report.count(Level::Untranslated),
        imp.report.count(Level::Info),
        a.out.join("import-report.txt").display()
    );
    if imp.trunks.is_empty() && routes == 0 {
        eprintln!("error: nothing could be translated");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// trunks.toml holds secrets: owner-only on Unix.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        f.write_all(text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))
    }
    #[cfg(not(unix))]
    write(path, text)
}
