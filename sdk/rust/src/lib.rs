//! # Strowger plugin SDK for Rust
//!
//! A Strowger plugin is a WebAssembly component that makes one kind of
//! decision for the switch: where a call goes ([`Router`]), whether a
//! REGISTER or call may proceed ([`Authorizer`]), which carrier owns a
//! number ([`Portability`]) or how numbers are written ([`Rewriter`]).
//! This crate hides the generated WIT bindings (`wit/strowger.wit`): implement
//! one trait, export it with one macro, build with
//! `cargo build --release --target wasm32-wasip2` (crate type `cdylib`).
//!
//! ```no_run
//! use strowger_sdk::route::*;
//!
//! #[derive(Default)]
//! struct Hello;
//!
//! impl strowger_sdk::Router for Hello {
//!     fn route(&self, call: Call) -> Result<RouteDecision, String> {
//!         if call.b_number.starts_with("10") {
//!             Ok(RouteDecision::forward(vec![Attempt::to(Destination::User(call.b_number))]))
//!         } else {
//!             Ok(RouteDecision::reject(404, "No route"))
//!         }
//!     }
//! }
//!
//! strowger_sdk::export_router!(Hello);
//! # fn main() {}
//! ```
//!
//! State: the host creates instances at will, calls `init` on each with the
//! plugin's JSON configuration, and may discard them at any time. Keep only
//! what you derive from the configuration in `self`; all call state belongs
//! to the host.
//!
//! Natively (`cargo test`) the host imports are replaced by the in-process
//! fakes of [`testing`], so plugin logic can be unit-tested without a runtime.

#![warn(missing_docs)]

pub mod bindings;
pub mod config;
pub mod e164;
pub mod freepbx;
pub mod host;
pub mod net;
pub mod pattern;
pub mod regex_sub;
pub mod template;
pub mod testing;
pub mod time;

mod adapter;
pub mod builders;

pub use bindings::route::strowger::plugin::host::{Contact, Level, PrefixMatch, TrunkState};
pub use bindings::route::strowger::plugin::types::{
    Datetime, Endpoint, Header, Ingress, Party, PortabilityResult, Reject, Transport,
};

/// The extension traits, for `use strowger_sdk::prelude::*`.
pub mod prelude {
    pub use crate::builders::{
        AttemptExt, AuthDecisionExt, HeaderExt, IngressExt, RejectExt, RouteDecisionExt,
    };
    pub use crate::{Authorizer, Portability, Rewriter, Router};
}

/// Types of the `route` hook.
pub mod route {
    pub use crate::bindings::route::strowger::plugin::routing_types::{
        Attempt, Call, Cause, Destination, Forward, MediaMode, PreferredCause, RouteDecision,
    };
    pub use crate::builders::{AttemptExt, HeaderExt, IngressExt, RejectExt, RouteDecisionExt};
    pub use crate::{Datetime, Endpoint, Header, Ingress, Party, PortabilityResult, Reject};
}

/// Types of the `authorize` hook.
pub mod authorize {
    pub use crate::bindings::authorize::strowger::plugin::authorize_types::{
        Accept, AuthDecision, AuthRequest, Challenge, Credentials, DigestAlgorithm,
        RegistrationState,
    };
    pub use crate::builders::{AuthDecisionExt, IngressExt, RejectExt};
    pub use crate::{Datetime, Endpoint, Ingress, Reject};
}

/// Types of the `portability` hook.
pub mod portability {
    pub use crate::bindings::portability::strowger::plugin::portability_types::PortabilityQuery;
    pub use crate::{Datetime, Ingress, PortabilityResult};
}

/// Types of the `rewrite` hook.
pub mod rewrite {
    pub use crate::bindings::rewrite::strowger::plugin::rewrite_types::{
        Direction, Numbers, RewriteRequest,
    };
    pub use crate::{Datetime, Ingress};
}

/// A routing plugin (`route` world).
///
/// The host builds the value with `Default`, calls [`Router::init`] once with
/// the JSON configuration, then [`Router::route`] for each new call.
pub trait Router: Default + 'static {
    /// Validate and digest the configuration; an error refuses the plugin
    /// at load time. The default accepts any configuration.
    fn init(&mut self, config: &str) -> Result<(), String> {
        let _ = config;
        Ok(())
    }
    /// Decide where `call` goes. An error makes the host apply its fallback.
    fn route(&self, call: route::Call) -> Result<route::RouteDecision, String>;
}

/// A registration/request authorization plugin (`authorize` world).
pub trait Authorizer: Default + 'static {
    /// Validate and digest the configuration (see [`Router::init`]).
    fn init(&mut self, config: &str) -> Result<(), String> {
        let _ = config;
        Ok(())
    }
    /// Decide on a REGISTER or an initial request from an untrusted source.
    fn authorize(&self, request: authorize::AuthRequest)
    -> Result<authorize::AuthDecision, String>;
}

/// A number-portability plugin (`portability` world).
pub trait Portability: Default + 'static {
    /// Validate and digest the configuration (see [`Router::init`]).
    fn init(&mut self, config: &str) -> Result<(), String> {
        let _ = config;
        Ok(())
    }
    /// Look a number up; `Ok(None)` when the data does not know it.
    fn lookup(
        &self,
        query: portability::PortabilityQuery,
    ) -> Result<Option<PortabilityResult>, String>;
}

/// A number-rewrite plugin (`rewrite` world).
pub trait Rewriter: Default + 'static {
    /// Validate and digest the configuration (see [`Router::init`]).
    fn init(&mut self, config: &str) -> Result<(), String> {
        let _ = config;
        Ok(())
    }
    /// Return the rewritten numbers (unchanged ones as given).
    fn rewrite(&self, request: rewrite::RewriteRequest) -> Result<rewrite::Numbers, String>;
}

#[doc(hidden)]
pub mod __private {
    pub use crate::adapter::{AuthorizerExport, PortabilityExport, RewriterExport, RouterExport};
}

/// Export a [`Router`] implementation as the component's `route` world.
///
/// ```ignore
/// strowger_sdk::export_router!(MyRouter);
/// ```
#[macro_export]
macro_rules! export_router {
    ($ty:ty) => {
        #[doc(hidden)]
        type __StrowgerRouterExport = $crate::__private::RouterExport<$ty>;
        $crate::bindings::route::__export_route_impl!(__StrowgerRouterExport with_types_in $crate::bindings::route);
    };
}

/// Export an [`Authorizer`] implementation as the component's `authorize` world.
#[macro_export]
macro_rules! export_authorizer {
    ($ty:ty) => {
        #[doc(hidden)]
        type __StrowgerAuthorizerExport = $crate::__private::AuthorizerExport<$ty>;
        $crate::bindings::authorize::__export_authorize_impl!(__StrowgerAuthorizerExport with_types_in $crate::bindings::authorize);
    };
}

/// Export a [`Portability`] implementation as the component's `portability` world.
#[macro_export]
macro_rules! export_portability {
    ($ty:ty) => {
        #[doc(hidden)]
        type __StrowgerPortabilityExport = $crate::__private::PortabilityExport<$ty>;
        $crate::bindings::portability::__export_portability_impl!(__StrowgerPortabilityExport with_types_in $crate::bindings::portability);
    };
}

/// Export a [`Rewriter`] implementation as the component's `rewrite` world.
#[macro_export]
macro_rules! export_rewriter {
    ($ty:ty) => {
        #[doc(hidden)]
        type __StrowgerRewriterExport = $crate::__private::RewriterExport<$ty>;
        $crate::bindings::rewrite::__export_rewrite_impl!(__StrowgerRewriterExport with_types_in $crate::bindings::rewrite);
    };
}
