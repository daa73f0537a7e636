//! `strowger`: the switch binary and its command-line tools.
//!
//! Each subcommand lives in its own module under `cmd/` so that the parts of
//! the product (switch, plugin tooling, policy tooling, importers) evolve
//! independently.

use clap::{Parser, Subcommand};

mod asterisk;
mod client;
mod cmd;
mod control;
mod logging;
mod policy_repo;

#[derive(Parser)]
#[command(name = "strowger", version, about = "Programmable SIP/RTP switch")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the switch.
    Serve(cmd::serve::Args),
    /// Plugin author tools: test, build, new.
    #[command(subcommand)]
    Plugin(cmd::plugin::Command),
    /// Policy repository tools: test, plan, apply, rollback.
    #[command(subcommand)]
    Policy(cmd::policy::Command),
    /// Import configuration from other systems.
    #[command(subcommand)]
    Import(cmd::import::Command),
    /// Show a running switch's plugins, generations, trunks and calls.
    Status(cmd::status::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(a) => cmd::serve::run(a),
        Command::Plugin(c) => cmd::plugin::run(c),
        Command::Policy(c) => cmd::policy::run(c),
        Command::Import(c) => cmd::import::run(c),
        Command::Status(a) => cmd::status::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
