//! The runtime: engine, linker, compiled-component cache, plugin loading,
//! generation building and activation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, types::ComponentItem};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::datasets::Datasets;
use crate::deadline::Ticker;
use crate::executor::Executor;
use crate::host::{HostServices, InstanceState, NoHostServices};
use crate::metrics::{Collector, MetricsSnapshot, PluginMetrics};
use crate::policy::{Generation, Policy};
use crate::pool::{InstancePool, Pre};
use crate::{BuildError, Hook};

/// Runtime-wide settings. Per-binding settings (deadline, fallback, data
/// sets) live in [`Binding`](crate::Binding).
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Directory for compiled components (`<sha256>-<wasmtime>-<hash>.cwasm`);
    /// `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
    /// Local time zone of `now()` and of call times, minutes east of UTC.
    pub utc_offset_minutes: i32,
    /// CPU-time budget of one decision unless the binding sets one.
    pub default_deadline: Duration,
    /// Largest deadline a binding may ask for; a policy with more is refused.
    pub max_deadline: Duration,
    /// CPU-time budget of instantiation plus `init(config)`; twice this is
    /// its wall-time limit (also while the guest waits in WASI or the host).
    pub init_deadline: Duration,
    /// Wall-time limit of one decision: the larger of this and twice the
    /// binding's CPU deadline. Enforced while the guest runs (epoch
    /// interruption) and while it waits (WASI sleep or poll, host calls).
    pub wall_limit: Duration,
    /// Threads of the decision pool, which runs every plugin call (never on
    /// the caller's threads).
    pub decision_threads: usize,
    /// Decisions that may wait for a decision-pool thread; beyond
    /// `decision_threads + decision_queue` in flight a decision gets the
    /// binding's fallback at once (reason `overloaded`).
    pub decision_queue: usize,
    /// Linear-memory cap of one instance (each instance has its own).
    pub memory_limit_bytes: usize,
    /// Maximum wasm stack of one decision.
    pub max_wasm_stack: usize,
    /// Instances that may exist at once, over all bindings (sizes the
    /// pooling allocator).
    pub max_instances: u32,
    /// Warm idle instances kept per binding.
    pub max_idle_per_binding: usize,
    /// Decisions running at once per binding (more wait up to `queue_timeout`).
    pub max_concurrency_per_binding: usize,
    /// How long a decision may wait for a free instance slot.
    pub queue_timeout: Duration,
    /// Replace an instance after this many decisions (Go heaps never shrink).
    pub recycle_after_calls: u64,
    /// Epoch tick (deadline check granularity).
    pub epoch_tick: Duration,
    /// Bound of one `location-lookup` / `trunk-status` host call.
    pub host_call_timeout: Duration,
    /// Log lines per second and binding passed on to `tracing`.
    pub log_lines_per_second: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: None,
            utc_offset_minutes: 0,
            default_deadline: Duration::from_millis(5),
            max_deadline: Duration::from_millis(2000),
            init_deadline: Duration::from_secs(2),
            wall_limit: Duration::from_millis(500),
            decision_threads: default_decision_threads(),
            decision_queue: 256,
            memory_limit_bytes: 64 << 20,
            max_wasm_stack: 512 << 10,
            max_instances: 256,
            max_idle_per_binding: 8,
            max_concurrency_per_binding: 32,
            queue_timeout: Duration::from_millis(200),
            recycle_after_calls: 100_000,
            epoch_tick: Duration::from_millis(1),
            host_call_timeout: Duration::from_millis(100),
            log_lines_per_second: 100,
        }
    }
}

/// The default size of the decision pool: one thread per CPU, 2..=16.
pub fn default_decision_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 16)
}

/// Why a component could not be loaded or bound.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a WebAssembly component.
    #[error("{0}")]
    NotAComponent(String),
    /// The component does not match the plugin contract.
    #[error("{0}")]
    Contract(String),
    /// Anything else (engine, I/O).
    #[error("{0}")]
    Other(String),
}

/// A loaded, compiled and contract-checked plugin component.
pub struct PluginVersion {
    pub(crate) name: Arc<str>,
    pub(crate) version: Arc<str>,
    pub(crate) sha256: String,
    pub(crate) hooks: Vec<Hook>,
    pub(crate) exports: Vec<String>,
    pub(crate) pres: Vec<(Hook, Pre)>,
    pub(crate) metrics: Arc<PluginMetrics>,
    pub(crate) from_cache: bool,
    pub(crate) load_time: Duration,
    pub(crate) size: usize,
}

impl std::fmt::Debug for PluginVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginVersion")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("hooks", &self.hooks)
            .finish()
    }
}

impl PluginVersion {
    /// Name given at load.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Version label: the first 12 hex digits of the sha256.
    pub fn version(&self) -> &str {
        &self.version
    }
    /// Hex sha256 of the component bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    /// Hooks the component implements (normally exactly one).
    pub fn hooks(&self) -> &[Hook] {
        &self.hooks
    }
    /// Component size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }
    /// True if the compiled code came from the on-disk cache.
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }
    /// Time spent compiling or loading from cache.
    pub fn load_time(&self) -> Duration {
        self.load_time
    }
    /// This version's metrics.
    pub fn metrics(&self) -> &Arc<PluginMetrics> {
        &self.metrics
    }

    /// Checks that the component implements `hook`, with a message naming
    /// what is missing and what is there instead.
    pub fn check_hook(&self, hook: Hook) -> Result<(), LoadError> {
        if self.hooks.contains(&hook) {
            return Ok(());
        }
        let has = if self.hooks.is_empty() {
            "no hook interface".to_string()
        } else {
            self.hooks
                .iter()
                .map(|h| format!("`{}` (a {h} plugin)", h.interface()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Err(LoadError::Contract(format!(
            "plugin {}@{} cannot serve hook `{hook}`: it does not export strowger:plugin/{}@0.1.0; it exports {has} instead \
             (exports: {})",
            self.name,
            self.version,
            hook.interface(),
            self.exports.join(", ")
        )))
    }

    pub(crate) fn pre(&self, hook: Hook) -> Option<&Pre> {
        self.pres.iter().find(|(h, _)| *h == hook).map(|(_, p)| p)
    }
}

struct Canary {
    generation: Arc<Generation>,
    percent: u8,
}

#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    pub sha256: String,
    pub hook: Hook,
    pub config: String,
    pub datasets: Vec<String>,
    pub memory: usize,
}

pub(crate) struct Inner {
    pub engine: Engine,
    pub linker: Linker<InstanceState>,
    pub config: RuntimeConfig,
    pub datasets: Arc<Datasets>,
    pub services: Arc<ArcSwap<Arc<dyn HostServices>>>,
    current: ArcSwap<Generation>,
    previous: ArcSwapOption<Generation>,
    canary: ArcSwapOption<Canary>,
    shadow: ArcSwapOption<crate::shadow::ShadowGen>,
    shadow_log: Arc<crate::shadow::ShadowLog>,
    next_generation: AtomicU64,
    plugins: Arc<Mutex<Vec<Arc<PluginMetrics>>>>,
    compilations: AtomicU64,
    cache_hits: AtomicU64,
    pub pools: Mutex<HashMap<PoolKey, Weak<InstancePool>>>,
    pub executor: Arc<Executor>,
    activate_lock: Mutex<()>,
    _ticker: Ticker,
}

/// The plugin runtime. Cheap to clone (shared).
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
}

fn wasmtime_error(e: wasmtime::Error) -> LoadError {
    LoadError::Other(format!("{e:#}"))
}

impl Runtime {
    /// Creates a runtime: engine (cranelift, component model, pooling
    /// allocator, epoch interruption), linker (WASI with an empty context
    /// plus the `host` interface) and the epoch ticker thread.
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Runtime> {
        let mut pool = PoolingAllocationConfig::default();
        let n = config.max_instances.max(1);
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(16))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(4))
            .total_stacks(n)
            .max_memories_per_component(4)
            .max_tables_per_component(8)
            .max_core_instances_per_component(32)
            .max_memory_size(config.memory_limit_bytes)
            .table_elements(200_000)
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(64 << 10);
        let mut c = Config::new();
        c.wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(config.max_wasm_stack)
            .async_stack_size(config.max_wasm_stack + (512 << 10))
            .cranelift_opt_level(wasmtime::OptLevel::Speed)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&c).map_err(|e| anyhow::anyhow!("creating wasm engine: {e:#}"))?;
        let mut linker: Linker<InstanceState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("linking WASI: {e:#}"))?;
        crate::bindings::add_to_linker(&mut linker)
            .map_err(|e| anyhow::anyhow!("linking host interface: {e:#}"))?;
        if config.max_deadline.is_zero() || config.default_deadline > config.max_deadline {
            anyhow::bail!(
                "plugin default deadline ({} ms) must be between 1 ms and the maximum deadline ({} ms)",
                config.default_deadline.as_millis(),
                config.max_deadline.as_millis()
            );
        }
        let ticker = Ticker::start(engine.clone(), config.epoch_tick)?;
        let executor = Arc::new(
            Executor::new(config.decision_threads, config.decision_queue)
                .map_err(|e| anyhow::anyhow!("starting the plugin decision pool: {e}"))?,
        );
        if let Some(dir) = &config.cache_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("creating plugin cache dir {}: {e}", dir.display()))?;
        }
        let empty = Arc::new(Generation::empty(0));
        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                linker,
                config,
                datasets: Arc::new(Datasets::new()),
                services: Arc::new(ArcSwap::from_pointee(
                    Arc::new(NoHostServices) as Arc<dyn HostServices>
                )),
                current: ArcSwap::new(empty),
                previous: ArcSwapOption::empty(),
                canary: ArcSwapOption::empty(),
                shadow: ArcSwapOption::empty(),
                shadow_log: Arc::default(),
                next_generation: AtomicU64::new(1),
                plugins: Arc::new(Mutex::new(Vec::new())),
                compilations: AtomicU64::new(0),
                cache_hits: AtomicU64::new(0),
                pools: Mutex::new(HashMap::new()),
                executor,
                activate_lock: Mutex::new(()),
                _ticker: ticker,
            }),
        })
    }

    /// The runtime's configuration.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// Installs the switch's services (location, trunk status). Instances
    /// see the new services from their next host call on.
    pub fn set_host_services(&self, services: Arc<dyn HostServices>) {
        self.inner.services.store(Arc::new(services));
    }

    /// The host-managed data sets plugins may read.
    pub fn datasets(&self) -> &Arc<Datasets> {
        &self.inner.datasets
    }

    /// Components compiled so far (cache misses).
    pub fn compilations(&self) -> u64 {
        self.inner.compilations.load(Ordering::Relaxed)
    }

    /// Components loaded from the compiled cache so far.
    pub fn cache_hits(&self) -> u64 {
        self.inner.cache_hits.load(Ordering::Relaxed)
    }

    /// Reads and loads a component file (see [`Runtime::load`]).
    pub async fn load_file(
        &self,
        name: &str,
        path: &Path,
    ) -> Result<Arc<PluginVersion>, LoadError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| LoadError::Other(format!("reading {}: {e}", path.display())))?;
        self.load(name, &bytes).await
    }

    /// Loads a plugin component: hashes it, compiles it (or loads the
    /// compiled form from the cache), detects its hooks from its exports and
    /// type-checks its imports and exports against the contract.
    /// Compilation runs on a blocking thread.
    pub async fn load(&self, name: &str, wasm: &[u8]) -> Result<Arc<PluginVersion>, LoadError> {
        let t0 = Instant::now();
        check_component_header(wasm)?;
        let sha256 = hex::encode(Sha256::digest(wasm));
        let inner = self.inner.clone();
        let bytes = wasm.to_vec();
        let sha = sha256.clone();
        let (component, from_cache) =
            tokio::task::spawn_blocking(move || inner.compile_cached(&sha, &bytes))
                .await
                .map_err(|e| LoadError::Other(format!("compile task failed: {e}")))??;
        let mut exports = Vec::new();
        let mut hooks = Vec::new();
        let mut has_lifecycle = false;
        let ty = component.component_type();
        for (export, item) in ty.exports(&self.inner.engine) {
            exports.push(export.to_string());
            let Some(iface) = contract_interface(export) else {
                continue;
            };
            if !matches!(item.ty, ComponentItem::ComponentInstance(_)) {
                continue;
            }
            if iface == "lifecycle" {
                has_lifecycle = true;
            } else if let Some(h) = Hook::from_interface(iface) {
                hooks.push(h);
            }
        }
        let mut imports_bad = Vec::new();
        let mut wasi_refused = Vec::new();
        for (import, _) in ty.imports(&self.inner.engine) {
            if import.starts_with("wasi:") {
                if !wasi_import_allowed(import) {
                    wasi_refused.push(import.to_string());
                }
                continue;
            }
            let ok = contract_interface(import).is_some_and(|i| {
                matches!(
                    i,
                    "host"
                        | "types"
                        | "routing-types"
                        | "authorize-types"
                        | "portability-types"
                        | "rewrite-types"
                )
            });
            if !ok {
                imports_bad.push(import.to_string());
            }
        }
        if !wasi_refused.is_empty() {
            tracing::warn!(plugin = name, imports = ?wasi_refused, "plugin refused: it imports WASI interfaces plugins may not use");
            return Err(LoadError::Contract(format!(
                "plugin {name} imports {} which plugins may not use: a plugin gets no network, \
                 files, environment or other outside access, only strowger:plugin/host and the \
                 WASI interfaces a language runtime needs ({}, at version 0.2.x); remove the code \
                 that uses it (for example std::net, net/http or os.Open)",
                wasi_refused.join(", "),
                ALLOWED_WASI_INTERFACES.join(", ")
            )));
        }
        if !imports_bad.is_empty() {
            return Err(LoadError::Contract(format!(
                "plugin {name} imports {} which the host does not provide (plugins may import \
                 strowger:plugin/host and WASI only)",
                imports_bad.join(", ")
            )));
        }
        if hooks.is_empty() || !has_lifecycle {
            let mut missing = Vec::new();
            if hooks.is_empty() {
                missing.push(
                    "a hook interface (strowger:plugin/router, authorizer, portability-lookup or rewriter @0.1.0)",
                );
            }
            if !has_lifecycle {
                missing.push("strowger:plugin/lifecycle@0.1.0");
            }
            return Err(LoadError::Contract(format!(
                "plugin {name} does not implement a Strowger world: missing {}; it exports [{}]",
                missing.join(" and "),
                exports.join(", ")
            )));
        }
        if hooks.len() > 1 {
            return Err(LoadError::Contract(format!(
                "plugin {name} exports more than one hook interface ({}); a plugin implements exactly one world",
                hooks
                    .iter()
                    .map(|h| h.interface())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut pres = Vec::new();
        for &h in &hooks {
            let pre = Pre::new(&self.inner.linker, &component, h).map_err(|e| {
                LoadError::Contract(format!(
                    "plugin {name} does not match the `{h}` world of the contract: {e}"
                ))
            })?;
            pres.push((h, pre));
        }
        let version: Arc<str> = Arc::from(&sha256[..12]);
        let name: Arc<str> = Arc::from(name);
        let metrics = Arc::new(PluginMetrics::new(name.clone(), version.clone()));
        {
            let mut p = self.inner.plugins.lock();
            if let Some(existing) = p.iter().find(|m| m.plugin == name && m.version == version) {
                // Same name and bytes loaded again: keep counting in one place.
                let existing = existing.clone();
                drop(p);
                return Ok(Arc::new(PluginVersion {
                    name,
                    version,
                    sha256,
                    hooks,
                    exports,
                    pres,
                    metrics: existing,
                    from_cache,
                    load_time: t0.elapsed(),
                    size: wasm.len(),
                }));
            }
            p.push(metrics.clone());
        }
        tracing::info!(plugin = &*name, version = &*version, hooks = ?hooks, from_cache, elapsed_ms = t0.elapsed().as_secs_f64() * 1e3, "plugin loaded");
        Ok(Arc::new(PluginVersion {
            name,
            version,
            sha256,
            hooks,
            exports,
            pres,
            metrics,
            from_cache,
            load_time: t0.elapsed(),
            size: wasm.len(),
        }))
    }

    /// Loads a component and checks that it implements `hook`.
    pub async fn load_for_hook(
        &self,
        name: &str,
        wasm: &[u8],
        hook: Hook,
    ) -> Result<Arc<PluginVersion>, LoadError> {
        let p = self.load(name, wasm).await?;
        p.check_hook(hook)?;
        Ok(p)
    }

    /// Builds a generation from a policy: checks every binding, creates (or
    /// reuses) its warm instance pool and runs `init(config)` on a first
    /// instance. Nothing is activated; on error nothing changes.
    pub async fn build(&self, policy: Policy) -> Result<Arc<Generation>, BuildError> {
        let id = self.inner.next_generation.fetch_add(1, Ordering::Relaxed);
        Generation::build(self, id, policy).await.map(Arc::new)
    }

    /// Makes `generation` the active one for new calls; returns the one it
    /// replaces (which stays reachable as [`Runtime::previous`]). Calls that
    /// already hold a generation keep using it.
    pub fn activate(&self, generation: Arc<Generation>) -> Arc<Generation> {
        let _g = self.inner.activate_lock.lock();
        let old = self.inner.current.swap(generation.clone());
        if !Arc::ptr_eq(&old, &generation) {
            generation.set_previous(Some(old.clone()));
            old.set_previous(None);
            self.inner.previous.store(Some(old.clone()));
        }
        if let Some(c) = self.inner.canary.load_full()
            && Arc::ptr_eq(&c.generation, &generation)
        {
            self.inner.canary.store(None);
        }
        tracing::info!(
            generation = generation.id(),
            replaced = old.id(),
            "policy generation activated"
        );
        old
    }

    /// Re-activates the previous generation, if any; returns it.
    pub fn rollback(&self) -> Option<Arc<Generation>> {
        let prev = self.inner.previous.load_full()?;
        self.activate(prev.clone());
        Some(prev)
    }

    /// Sends `percent` % of new calls (chosen by call-id hash, so a call id
    /// always gets the same answer) to `generation`; the rest keep the active one.
    pub fn activate_canary(&self, generation: Arc<Generation>, percent: u8) {
        let _g = self.inner.activate_lock.lock();
        generation.set_previous(Some(self.inner.current.load_full()));
        let percent = percent.min(100);
        tracing::info!(
            generation = generation.id(),
            percent,
            "canary generation activated"
        );
        self.inner.canary.store(Some(Arc::new(Canary {
            generation,
            percent,
        })));
    }

    /// Makes the canary the active generation; returns it.
    pub fn promote_canary(&self) -> Option<Arc<Generation>> {
        let c = self.inner.canary.load_full()?;
        self.activate(c.generation.clone());
        Some(c.generation.clone())
    }

    /// Stops sending calls to the canary; returns it.
    pub fn cancel_canary(&self) -> Option<Arc<Generation>> {
        let _g = self.inner.activate_lock.lock();
        self.inner.canary.swap(None).map(|c| c.generation.clone())
    }

    /// The canary generation and its share of calls, if any.
    pub fn canary(&self) -> Option<(Arc<Generation>, u8)> {
        self.inner
            .canary
            .load_full()
            .map(|c| (c.generation.clone(), c.percent))
    }

    /// Runs `generation` in shadow mode beside the active one (replacing
    /// any shadow): the host computes its decisions too, compares them and
    /// acts only on the active one. `label` names it in the diffs (the
    /// policy version).
    pub fn set_shadow(&self, generation: Arc<Generation>, label: impl Into<String>) {
        let label = label.into();
        tracing::info!(generation = generation.id(), %label, "shadow generation started");
        self.inner
            .shadow
            .store(Some(Arc::new(crate::shadow::ShadowGen {
                generation,
                label,
            })));
    }

    /// Stops shadow mode; returns the shadow generation and its label.
    pub fn clear_shadow(&self) -> Option<(Arc<Generation>, String)> {
        self.inner
            .shadow
            .swap(None)
            .map(|s| (s.generation.clone(), s.label.clone()))
    }

    /// The shadow generation and its label, if shadow mode is on.
    pub fn shadow(&self) -> Option<(Arc<Generation>, String)> {
        self.inner
            .shadow
            .load_full()
            .map(|s| (s.generation.clone(), s.label.clone()))
    }

    /// Shadow comparison counters and recent differences.
    pub fn shadow_log(&self) -> &Arc<crate::shadow::ShadowLog> {
        &self.inner.shadow_log
    }

    /// The active generation.
    pub fn current(&self) -> Arc<Generation> {
        self.inner.current.load_full()
    }

    /// The generation active before the current one, if any.
    pub fn previous(&self) -> Option<Arc<Generation>> {
        self.inner.previous.load_full()
    }

    /// The generation a new call with this id must use for all its
    /// decisions: the canary for its share of call ids, else the active one.
    pub fn generation_for_call(&self, call_id: &str) -> Arc<Generation> {
        if let Some(c) = &*self.inner.canary.load()
            && canary_bucket(call_id) < c.percent as u32
        {
            return c.generation.clone();
        }
        self.inner.current.load_full()
    }

    /// A copy of all plugin metrics.
    pub fn metrics_snapshot(&self) -> MetricsSnapshot {
        let plugins = self
            .inner
            .plugins
            .lock()
            .iter()
            .map(|m| m.snapshot())
            .collect();
        MetricsSnapshot {
            plugins,
            compilations: self.compilations(),
            cache_hits: self.cache_hits(),
            generation: self.current().id(),
            canary: self.canary().map(|(g, p)| (g.id(), p)),
            pool_in_flight: self.inner.executor.in_flight() as u64,
            pool_rejected: self.inner.executor.rejected(),
        }
    }

    /// Registers the plugin metrics (`strowger_plugin_*`) in a Prometheus registry.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register_collector(Box::new(Collector {
            plugins: self.inner.plugins.clone(),
            executor: self.inner.executor.clone(),
        }));
    }
}

/// The wasmtime version this runtime is built with (pinned in the workspace).
pub(crate) const WASMTIME_VERSION: &str = "48.0.8";

/// Stable bucket 0..100 of a call id (FNV-1a), for canary selection.
pub(crate) fn canary_bucket(call_id: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in call_id.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h % 100
}

/// The WASI interfaces a plugin may import: what the standard library of
/// Rust (`wasm32-wasip2`) and Go (`wasip1` + the preview1 adapter) import
/// even for pure logic. They are linked to an empty context: no preopened
/// directories (so `wasi:filesystem` reaches no file), no environment or
/// arguments, stdin empty, stdout/stderr discarded. Waiting is possible
/// (`monotonic-clock` subscriptions with `wasi:io/poll`), and bounded by the
/// decision's wall-time limit. Anything else (`wasi:sockets`, `wasi:http`,
/// ...) is refused at load.
pub const ALLOWED_WASI_INTERFACES: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:filesystem/preopens",
    "wasi:filesystem/types",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:random/insecure-seed",
    "wasi:random/random",
];

/// `wasi:<pkg>/<iface>@0.2.x` with the interface in [`ALLOWED_WASI_INTERFACES`].
fn wasi_import_allowed(name: &str) -> bool {
    let Some((iface, version)) = name.split_once('@') else {
        return false;
    };
    version.starts_with("0.2.") && ALLOWED_WASI_INTERFACES.contains(&iface)
}

/// `strowger:plugin/<iface>@0.1.x` → `<iface>`.
fn contract_interface(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("strowger:plugin/")?;
    let (iface, ver) = rest.split_once('@').unwrap_or((rest, ""));
    (ver.is_empty() || ver.starts_with("0.1.")).then_some(iface)
}

fn check_component_header(wasm: &[u8]) -> Result<(), LoadError> {
    if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        return Err(LoadError::NotAComponent(
            "not a WebAssembly file (no \\0asm header); expected a component built with \
             `cargo build --target wasm32-wasip2` or `wasm-tools component new`"
                .into(),
        ));
    }
    if wasm[4..8] == [1, 0, 0, 0] {
        return Err(LoadError::NotAComponent(
            "this is a core WebAssembly module, not a component; build with --target wasm32-wasip2 \
             (Rust) or wrap it with `wasm-tools component new` (Go: see scripts/build-go-guest.sh)"
                .into(),
        ));
    }
    Ok(())
}

impl Inner {
    fn cache_path(&self, sha256: &str) -> Option<PathBuf> {
        use std::hash::{Hash, Hasher};
        let dir = self.config.cache_dir.as_ref()?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        Some(dir.join(format!(
            "{sha256}-wasmtime{}-{:016x}.cwasm",
            WASMTIME_VERSION,
            h.finish()
        )))
    }

    /// Compiles `wasm`, or loads the compiled form from the cache.
    fn compile_cached(&self, sha256: &str, wasm: &[u8]) -> Result<(Component, bool), LoadError> {
        let path = self.cache_path(sha256);
        if let Some(p) = &path
            && p.exists()
        {
            {
                // SAFETY: the file name binds it to this wasm's sha256, this
                // wasmtime version and this engine configuration, and only
                // this function writes into the cache directory.
                // Read into memory rather than mmap: a cache file truncated
                // underneath a mapping would crash the process with SIGBUS.
                let bytes = std::fs::read(p).unwrap_or_default();
                match unsafe { Component::deserialize(&self.engine, &bytes) } {
                    Ok(c) => {
                        self.cache_hits.fetch_add(1, Ordering::Relaxed);
                        return Ok((c, true));
                    }
                    Err(e) => {
                        tracing::warn!(path = %p.display(), "ignoring unusable compiled cache entry: {e:#}")
                    }
                }
            }
        }
        let t0 = Instant::now();
        let component = Component::new(&self.engine, wasm).map_err(|e| {
            LoadError::NotAComponent(format!(
                "not a valid WebAssembly component: {}",
                root_cause(&e)
            ))
        })?;
        self.compilations.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            sha256,
            elapsed_ms = t0.elapsed().as_secs_f64() * 1e3,
            "component compiled"
        );
        if let Some(p) = &path {
            match component.serialize() {
                Ok(bytes) => {
                    let tmp = p.with_extension(format!("tmp{}", std::process::id()));
                    let r = std::fs::write(&tmp, &bytes).and_then(|_| std::fs::rename(&tmp, p));
                    if let Err(e) = r {
                        let _ = std::fs::remove_file(&tmp);
                        tracing::warn!(path = %p.display(), "cannot write compiled cache entry: {e}");
                    }
                }
                Err(e) => {
                    tracing::warn!("cannot serialize compiled component: {}", wasmtime_error(e))
                }
            }
        }
        Ok((component, false))
    }
}

pub(crate) fn root_cause(e: &wasmtime::Error) -> String {
    let mut s = e.to_string();
    if let Some(src) = e.chain().last() {
        let last = src.to_string();
        if last != s {
            s = format!("{s}: {last}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names() {
        assert_eq!(
            contract_interface("strowger:plugin/router@0.1.0"),
            Some("router")
        );
        assert_eq!(contract_interface("strowger:plugin/router@0.2.0"), None);
        assert_eq!(contract_interface("wasi:cli/run@0.2.0"), None);
    }

    #[test]
    fn wasi_allow_list() {
        assert!(wasi_import_allowed("wasi:io/poll@0.2.6"));
        assert!(wasi_import_allowed("wasi:cli/stdout@0.2.0"));
        assert!(!wasi_import_allowed("wasi:sockets/tcp@0.2.0"));
        assert!(!wasi_import_allowed("wasi:http/outgoing-handler@0.2.0"));
        assert!(!wasi_import_allowed("wasi:io/poll@0.3.0"));
        assert!(!wasi_import_allowed("wasi:io/poll"));
    }

    #[test]
    fn canary_buckets_spread() {
        let n = (0..10_000)
            .filter(|i| canary_bucket(&format!("call-{i}")) < 10)
            .count();
        assert!((800..1200).contains(&n), "{n}");
        assert_eq!(canary_bucket("abc"), canary_bucket("abc"));
    }
}
