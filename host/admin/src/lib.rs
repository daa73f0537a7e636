//! strowger-admin: the admin HTTP API of the Strowger switch.
//!
//! Entry points: [`router`] (an `axum::Router` to mount or test with
//! `tower::ServiceExt::oneshot`) and [`serve`] (runs it on a listener, with
//! client addresses recorded in the audit log). The switch's live state
//! (registrations, calls, trunk status) is reached through the
//! [`SwitchControl`] trait; [`MemorySwitch`] is an in-memory implementation
//! for tests and for running the API without a switch.
//!
//! Auth: every request, reads included, needs `Authorization: Bearer <token>`
//! with a token configured by [`AdminState::with_token`], except `/healthz`,
//! `/readyz` and `/metrics`; a wrong or missing token gets 401 JSON before
//! any request body is read. Without any token configured every such request
//! gets 401 (`strowger serve` always configures one: it generates a token
//! file when none is given).
//! Secrets (user passwords, trunk secrets, the secret of a register string)
//! are write-only: answers and the audit log carry `"<key>_set": true`
//! instead (see [`redact`]).
//! Every write appends to the store's audit log (actor = token id, source
//! address, action, target, detail).
//!
//! Limits ([`Limits`]): JSON bodies, plugin uploads and data-set uploads
//! each have a maximum size; above it the answer is 413 JSON and nothing
//! is applied.
//!
//! Errors: every 4xx/5xx is JSON `{"error": "...", "field": ..., "detail": ...}`;
//! nothing is half-applied (validation, plugin init and policy test cases run
//! before anything is stored or activated).

mod api;
mod error;
mod exposition;
mod openapi;
mod switch;

pub use api::{
    CaseResult, PolicyDocument, PolicyTest, StoredBinding, build_policy, mismatches,
    parse_dataset_csv, redact, redact_register_string, run_cases, subset,
};
pub use error::ApiError;
pub use switch::{
    CallInfo, MemorySwitch, RegistrationInfo, SwitchControl, SwitchFuture, TrunkStatus, UserAccount,
};

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use strowger_plugin::{Generation, PluginVersion, Runtime};
use strowger_store::Store;

/// Shared state of the admin API: the plugin runtime, the store, the switch
/// and the API tokens. Cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) runtime: Runtime,
    pub(crate) store: Store,
    pub(crate) switch: Arc<dyn SwitchControl>,
    /// token → token id (the audit log's actor).
    pub(crate) tokens: HashMap<String, String>,
    /// Where a client finds the token (named in 401 answers), e.g. the
    /// token file the switch wrote.
    pub(crate) token_hint: Option<String>,
    /// Body size limits.
    pub(crate) limits: Limits,
    /// Requests refused: 401 (no or wrong token), 413 (body too large).
    pub(crate) refused_unauthorized: std::sync::atomic::AtomicU64,
    pub(crate) refused_too_large: std::sync::atomic::AtomicU64,
    /// Loaded plugins by sha256.
    pub(crate) plugins: parking_lot::Mutex<BTreeMap<String, Arc<PluginVersion>>>,
    /// Policy versions, generations, activation history.
    pub(crate) book: tokio::sync::Mutex<PolicyBook>,
    /// Serializes trunk writes (check with the switch, then store).
    pub(crate) trunk_writes: tokio::sync::Mutex<()>,
}

/// Request body limits of the admin API (bytes). Above a limit the answer
/// is 413 JSON naming the limit; nothing is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// JSON bodies (policies, trunks, users, simulate, ...).
    pub max_body_bytes: usize,
    /// `POST /v1/plugins` (.wasm components).
    pub max_plugin_bytes: usize,
    /// `POST /v1/datasets/{name}` (CSV, streamed).
    pub max_dataset_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            max_plugin_bytes: 64 << 20,
            max_dataset_bytes: 256 << 20,
        }
    }
}

/// Built generations by policy version and the activation history.
#[derive(Default)]
pub(crate) struct PolicyBook {
    pub(crate) generations: BTreeMap<u64, Arc<Generation>>,
    pub(crate) documents: BTreeMap<u64, PolicyDocument>,
    /// Activated versions, oldest first; the last is the active one.
    pub(crate) history: Vec<u64>,
    /// Canary version and percent.
    pub(crate) canary: Option<(u64, u8)>,
    /// When version 0 (the configuration file's bindings) was taken over.
    pub(crate) config_loaded_at_ms: Option<i64>,
}

impl AdminState {
    /// State over a runtime, a store and the switch. Add tokens with
    /// [`AdminState::with_token`]; without any, every write gets 401.
    pub fn new(runtime: Runtime, store: Store, switch: Arc<dyn SwitchControl>) -> AdminState {
        AdminState {
            inner: Arc::new(Inner {
                runtime,
                store,
                switch,
                tokens: HashMap::new(),
                token_hint: None,
                limits: Limits::default(),
                refused_unauthorized: Default::default(),
                refused_too_large: Default::default(),
                plugins: Default::default(),
                book: Default::default(),
                trunk_writes: Default::default(),
            }),
        }
    }

    /// Accept `Authorization: Bearer <token>` for writes, recorded as `id`
    /// in the audit log. Call before cloning the state.
    pub fn with_token(mut self, id: impl Into<String>, token: impl Into<String>) -> AdminState {
        Arc::get_mut(&mut self.inner)
            .expect("with_token must be called before the state is shared")
            .tokens
            .insert(token.into(), id.into());
        self
    }

    /// Name where a client finds the token (e.g. the token file), quoted
    /// in 401 answers. Call before cloning the state.
    pub fn with_token_hint(mut self, hint: impl Into<String>) -> AdminState {
        Arc::get_mut(&mut self.inner)
            .expect("with_token_hint must be called before the state is shared")
            .token_hint = Some(hint.into());
        self
    }

    /// Body size limits. Call before cloning the state.
    pub fn with_limits(mut self, limits: Limits) -> AdminState {
        Arc::get_mut(&mut self.inner)
            .expect("with_limits must be called before the state is shared")
            .limits = limits;
        self
    }

    /// The plugin runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Reload the control plane from the store after a restart: every stored
    /// plugin artifact is loaded, every stored data set's active version is
    /// put in the runtime, and the active policy version is rebuilt and
    /// activated. What runs before the call (the configuration file's
    /// bindings) becomes policy version 0, so `rollback` after the first
    /// version goes back to it. Returns the active stored policy version, if any.
    pub async fn restore(&self) -> Result<Option<u64>, ApiError> {
        api::restore(self).await
    }
}

/// The admin API routes (see the crate docs and `GET /openapi.json`).
pub fn router(state: AdminState) -> axum::Router {
    api::routes(state)
}

/// Serve the admin API on `listener` until the task is dropped; client
/// addresses are recorded in the audit log.
pub async fn serve(listener: tokio::net::TcpListener, state: AdminState) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}
