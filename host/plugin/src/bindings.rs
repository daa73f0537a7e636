//! Host-side bindings of `wit/strowger.wit`, one module per world.
//!
//! The `route` world is generated first and owns the shared interfaces
//! (`types`, `host`); the other worlds map those interfaces onto it with
//! `with:`, so there is exactly one Rust type per WIT type.

#![allow(missing_docs, clippy::all)]

/// The `route` world (also home of the shared `types` and `host` interfaces).
pub mod route {
    wasmtime::component::bindgen!({
        world: "route",
        path: "../../wit",
        imports: { default: async },
        exports: { default: async },
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
    });
}

/// A hook world other than `route`: the same bindgen settings, with the
/// shared `types` and `host` interfaces mapped onto the `route` module's.
macro_rules! hook_world {
    ($(#[$doc:meta])* $module:ident, $world:literal) => {
        $(#[$doc])*
        pub mod $module {
            wasmtime::component::bindgen!({
                world: $world,
                path: "../../wit",
                imports: { default: async },
                exports: { default: async },
                additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
                with: {
                    "strowger:plugin/types": super::route::strowger::plugin::types,
                    "strowger:plugin/host": super::route::strowger::plugin::host,
                },
            });
        }
    };
}

hook_world!(
    /// The `authorize` world.
    authorize,
    "authorize"
);
hook_world!(
    /// The `portability` world.
    portability,
    "portability"
);
hook_world!(
    /// The `rewrite` world.
    rewrite,
    "rewrite"
);

use crate::host::InstanceState;
use wasmtime::component::{HasSelf, Linker};

impl route::strowger::plugin::routing_types::Host for InstanceState {}
impl authorize::strowger::plugin::authorize_types::Host for InstanceState {}
impl portability::strowger::plugin::portability_types::Host for InstanceState {}
impl rewrite::strowger::plugin::rewrite_types::Host for InstanceState {}

/// Adds the contract's imports (`types`, `host` and the per-hook type
/// interfaces) to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    route::strowger::plugin::types::add_to_linker::<_, HasSelf<InstanceState>>(linker, |s| s)?;
    route::strowger::plugin::host::add_to_linker::<_, HasSelf<InstanceState>>(linker, |s| s)?;
    route::strowger::plugin::routing_types::add_to_linker::<_, HasSelf<InstanceState>>(
        linker,
        |s| s,
    )?;
    authorize::strowger::plugin::authorize_types::add_to_linker::<_, HasSelf<InstanceState>>(
        linker,
        |s| s,
    )?;
    portability::strowger::plugin::portability_types::add_to_linker::<_, HasSelf<InstanceState>>(
        linker,
        |s| s,
    )?;
    rewrite::strowger::plugin::rewrite_types::add_to_linker::<_, HasSelf<InstanceState>>(
        linker,
        |s| s,
    )?;
    Ok(())
}
