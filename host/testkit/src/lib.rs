//! strowger-testkit: helpers for black-box tests of the switch.
//!
//! * [`paths`]: find the workspace, the cargo target dir, the `strowger`
//!   binary (built once per test process with `cargo build -p strowger`
//!   into the *same* target dir the test runs from) and the plugin dir
//!   (`$STROWGER_PLUGIN_DIR`, else `<target>/plugins`; panics with "run
//!   scripts/build-guests.sh" when a plugin is missing: tests fail, never skip).
//! * [`net`]: free ports and distinct loopback addresses (127.1.x.y) per test.
//! * [`Switch`]: run `strowger serve --config` in a temp dir on free ports,
//!   wait until it answers OPTIONS, capture its log, restart it, kill it on drop.
//! * [`Sipp`]: run SIPp (scenario file or built-in) with bounded timeouts and
//!   parse its statistics.
//! * [`SipClient`]: a raw SIP/UDP client for scripted exchanges, with a
//!   digest client (MD5 and SHA-256, RFC 8760).

pub mod digest;
pub mod net;
pub mod paths;
pub mod sip;
pub mod sipp;
pub mod switch;
pub mod tls;

pub use digest::{Algorithm, Challenge};
pub use net::{free_port, free_udp_tcp_port, unique_loopback};
pub use sip::{SipClient, SipMessage};
pub use sipp::{Sipp, SippResult};
pub use switch::{Switch, SwitchBuilder};
