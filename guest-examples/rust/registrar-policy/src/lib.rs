//! `registrar-policy`: the standard authorization plugin for REGISTER and
//! for initial requests from sources that are not trusted trunks.
//!
//! In order:
//! 1. `User-Agent` matching `deny_user_agents` (case-insensitive regex;
//!    default `friendly-scanner|sipvicious|sipcli|VaxSIPUserAgent`) →
//!    `scanner_action` (default `drop`: no answer at all).
//! 2. Source address outside the CIDR allow list of the user
//!    (`allow.users`, by user or AOR) or else of its domain
//!    (`allow.domains`) → `outside_allowed` (default 403). Users and
//!    domains without a list are not restricted.
//! 3. Source inside `trusted` networks → accept without credentials.
//! 4. Credentials: `valid` → accept (with `min_expires`, `max_expires`,
//!    `max_contacts`); `none`/`stale` → challenge (`realm`, `algorithms`,
//!    default `["sha256", "md5"]`); `invalid` → `invalid` (default reject
//!    403 "Forbidden"; `"challenge"` to ask again).

pub mod policy;

#[cfg(target_arch = "wasm32")]
strowger_sdk::export_authorizer!(policy::Policy);
