//! strowger-switch: registrar, B2BUA calls and trunks on top of the sans-IO
//! SIP core, with tokio transports as a thin shell.
//!
//! * [`core::Core`]: the single-threaded, sans-IO engine (registrar,
//!   B2BUA call state, retransmission absorption) driven by events and an
//!   injected clock; it emits [`core::Action`]s.
//! * [`transport`]: UDP/TCP/TLS listeners and connections (tokio).
//! * [`server`]: the shell that runs the core, its timers, the plugin
//!   decisions (spawned, never blocking the core) and the store.
//! * [`control`]: the control plane's handle on a running switch (calls
//!   list and hang-up, registrations, trunk status).

pub mod auth;
mod b2bua;
pub mod call_id;
pub use strowger_types::civil;
pub mod config;
pub use b2bua::control;
pub mod core;
pub mod flow;
pub mod guard;
pub mod location;
pub mod media;
pub mod metrics;
mod registrar;
pub mod server;
pub mod session_timer;
pub mod timers;
pub mod transport;
pub mod trunks;

#[cfg(test)]
mod core_tests;
