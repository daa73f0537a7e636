//! strowger-switch: registrar, B2BUA calls and trunks on top of the sans-IO
//! SIP core, with tokio transports as a thin shell.

pub mod config;
