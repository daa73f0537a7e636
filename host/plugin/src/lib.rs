//! strowger-plugin: the WebAssembly plugin runtime of the Strowger switch.
//!
//! Every routing, authorization, portability and number-rewrite decision is
//! made by a sandboxed component plugin implementing one world of
//! `wit/strowger.wit`. This crate loads and validates those components,
//! keeps warm instances, enforces deadlines and memory caps, applies the
//! configured fallback when a plugin misbehaves, and swaps policy
//! generations atomically.
//!
//! ```no_run
//! # async fn demo(wasm: Vec<u8>, call: strowger_plugin::types::Call) -> anyhow::Result<()> {
//! use strowger_plugin::*;
//! let rt = Runtime::new(RuntimeConfig::default())?;
//! let plugin = rt.load("route-table", &wasm).await?;
//! let generation = rt
//!     .build(Policy { bindings: vec![Binding::new(Hook::Route, plugin).config_json(r#"{"routes":[]}"#)] })
//!     .await?;
//! rt.activate(generation);
//! // At the start of each call:
//! let g = rt.generation_for_call(&call.call_id);
//! if let Some(d) = g.route(None, &call).await {
//!     println!("{:?} (fallback: {:?})", d.value, d.fallback);
//! }
//! # Ok(()) }
//! ```

pub mod bindings;
pub mod datasets;
mod deadline;
mod executor;
mod host;
pub mod json;
pub mod metrics;
mod policy;
mod pool;
mod runtime;
pub mod shadow;
pub mod testing;
pub mod types;
mod validate;

pub use datasets::{
    Dataset, DatasetBuilder, DatasetInfo, Datasets, LoadGuard, LoadInfo, LoadPhase, LoadProgress,
};
pub use host::{
    HostFuture, HostServices, LogLine, NoHostServices, datetime_from_unix_ms, datetime_now,
};
pub use metrics::{MetricsSnapshot, PluginMetrics, PluginMetricsSnapshot};
pub use policy::{Binding, BuildError, Decision, Fallback, Generation, PluginRef, Policy, Scope};
pub use runtime::{
    ALLOWED_WASI_INTERFACES, LoadError, PluginVersion, Runtime, RuntimeConfig,
    default_decision_threads,
};

/// The four hooks (one WIT world each).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Hook {
    /// World `route`, export `router`.
    Route,
    /// World `authorize`, export `authorizer`.
    Authorize,
    /// World `portability`, export `portability-lookup`.
    Portability,
    /// World `rewrite`, export `rewriter`.
    Rewrite,
}

impl Hook {
    /// All hooks.
    pub const ALL: [Hook; 4] = [
        Hook::Route,
        Hook::Authorize,
        Hook::Portability,
        Hook::Rewrite,
    ];

    /// The hook's name as in WIT (`route`, `authorize`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Route => "route",
            Hook::Authorize => "authorize",
            Hook::Portability => "portability",
            Hook::Rewrite => "rewrite",
        }
    }

    /// The WIT interface the hook's world exports (besides `lifecycle`).
    pub fn interface(self) -> &'static str {
        match self {
            Hook::Route => "router",
            Hook::Authorize => "authorizer",
            Hook::Portability => "portability-lookup",
            Hook::Rewrite => "rewriter",
        }
    }

    fn from_interface(name: &str) -> Option<Hook> {
        Hook::ALL.into_iter().find(|h| h.interface() == name)
    }
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Hook {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Hook::ALL
            .into_iter()
            .find(|h| h.as_str() == s)
            .ok_or_else(|| {
                format!("unknown hook {s:?} (expected route, authorize, portability or rewrite)")
            })
    }
}

/// Why a decision was answered by the binding's fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FallbackReason {
    /// The guest trapped (panic, unreachable, out-of-bounds access, ...).
    Trap,
    /// The guest used up its deadline: its CPU-time budget, or its wall-time
    /// limit (also while waiting in a WASI sleep or poll or a host call).
    Timeout,
    /// The guest tried to grow its memory past the cap.
    MemoryLimit,
    /// The guest overflowed its stack (`max_wasm_stack`).
    StackOverflow,
    /// The guest returned `Err(..)`.
    GuestError,
    /// The guest's answer broke the contract (e.g. reject code 200).
    InvalidAnswer,
    /// No instance could be obtained (instantiation or `init` failed, or
    /// the binding's concurrency limit was reached for too long).
    Unavailable,
    /// The decision pool was full (`decision_threads + decision_queue`
    /// decisions in flight): refused at once, the plugin was not called.
    Overloaded,
}

impl FallbackReason {
    /// All reasons, in metric order.
    pub const ALL: [FallbackReason; 8] = [
        FallbackReason::Trap,
        FallbackReason::Timeout,
        FallbackReason::MemoryLimit,
        FallbackReason::StackOverflow,
        FallbackReason::GuestError,
        FallbackReason::InvalidAnswer,
        FallbackReason::Unavailable,
        FallbackReason::Overloaded,
    ];

    /// The reason as used in metrics labels and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FallbackReason::Trap => "trap",
            FallbackReason::Timeout => "timeout",
            FallbackReason::MemoryLimit => "memory-limit",
            FallbackReason::StackOverflow => "stack-overflow",
            FallbackReason::GuestError => "guest-error",
            FallbackReason::InvalidAnswer => "invalid-answer",
            FallbackReason::Unavailable => "unavailable",
            FallbackReason::Overloaded => "overloaded",
        }
    }
}

impl std::fmt::Display for FallbackReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
