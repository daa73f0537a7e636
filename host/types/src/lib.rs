//! strowger-types: the vocabulary several Strowger crates exchange, in a
//! leaf crate (as `wasmtime-environ` is for wasmtime) so that the engine,
//! the store, the media relay, the plugin runtime and the admin API agree
//! on one definition without depending on each other.
//!
//! It holds data and pure functions only: no runtime, no I/O.

pub mod cdr;
pub mod civil;
pub mod dtmf;
pub mod redact;

pub use cdr::{Cdr, CdrAttempt};
pub use civil::{Civil, civil, format_utc_ms, now_unix_ms};
pub use dtmf::{DtmfMode, dtmf_event, dtmf_signal};
pub use redact::redact_register_string;
