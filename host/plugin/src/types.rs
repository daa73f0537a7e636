//! The plugin contract's types, one Rust type per WIT type.
//!
//! All of them derive `serde::Serialize`/`Deserialize` (externally tagged
//! enums, Rust field names; see the crate README for the JSON form) and
//! `PartialEq`.

pub use crate::bindings::route::strowger::plugin::host::{Contact, Level, PrefixMatch, TrunkState};
pub use crate::bindings::route::strowger::plugin::types::{
    Datetime, Endpoint, Header, Ingress, Party, PortabilityResult, Reject, Transport,
};

pub use crate::bindings::route::strowger::plugin::routing_types::{
    Attempt, Call, Cause, Destination, Forward, MediaMode, PreferredCause, RouteDecision,
};

pub use crate::bindings::authorize::strowger::plugin::authorize_types::{
    Accept, AuthDecision, AuthRequest, Challenge, Credentials, DigestAlgorithm, RegistrationState,
};

pub use crate::bindings::portability::strowger::plugin::portability_types::PortabilityQuery;

pub use crate::bindings::rewrite::strowger::plugin::rewrite_types::{
    Direction, Numbers, RewriteRequest,
};
