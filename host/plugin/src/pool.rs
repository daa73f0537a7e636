//! Warm instance pools: one per (plugin version, hook, config, grants).
//!
//! An instance is created from the pre-instantiated component, `init(config)`
//! runs on it once, and it then serves decisions one at a time. It is put
//! back after a clean call (including a guest-level `Err`), dropped after
//! any trap or timeout (a trapped instance cannot be entered again) and
//! replaced after `recycle_after_calls` decisions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, Trap};

use crate::bindings::{authorize, portability, rewrite, route};
use crate::executor::Executor;
use crate::host::{BindingEnv, InstanceState, LogLine};
use crate::types::{
    AuthDecision, AuthRequest, Call, Numbers, PortabilityQuery, PortabilityResult, RewriteRequest,
    RouteDecision,
};
use crate::{FallbackReason, Hook};

/// Pre-instantiated component for one hook.
pub(crate) enum Pre {
    Route(route::RoutePre<InstanceState>),
    Authorize(authorize::AuthorizePre<InstanceState>),
    Portability(portability::PortabilityPre<InstanceState>),
    Rewrite(rewrite::RewritePre<InstanceState>),
}

impl Pre {
    pub fn new(
        linker: &Linker<InstanceState>,
        component: &Component,
        hook: Hook,
    ) -> wasmtime::Result<Pre> {
        let pre = linker.instantiate_pre(component)?;
        Ok(match hook {
            Hook::Route => Pre::Route(route::RoutePre::new(pre)?),
            Hook::Authorize => Pre::Authorize(authorize::AuthorizePre::new(pre)?),
            Hook::Portability => Pre::Portability(portability::PortabilityPre::new(pre)?),
            Hook::Rewrite => Pre::Rewrite(rewrite::RewritePre::new(pre)?),
        })
    }

    fn clone_pre(&self) -> Pre {
        match self {
            Pre::Route(p) => Pre::Route(p.clone()),
            Pre::Authorize(p) => Pre::Authorize(p.clone()),
            Pre::Portability(p) => Pre::Portability(p.clone()),
            Pre::Rewrite(p) => Pre::Rewrite(p.clone()),
        }
    }
}

enum Exports {
    Route(route::Route),
    Authorize(authorize::Authorize),
    Portability(portability::Portability),
    Rewrite(rewrite::Rewrite),
}

/// A request to a plugin, borrowed.
#[derive(Clone, Copy)]
pub(crate) enum Req<'a> {
    Route(&'a Call),
    Authorize(&'a AuthRequest),
    Portability(&'a PortabilityQuery),
    Rewrite(&'a RewriteRequest),
}

/// A request to a plugin, owned (to cross to the decision pool).
// Moved once per decision into the pool task's future (already one heap
// allocation); boxing the call would add a second.
#[allow(clippy::large_enum_variant)]
pub(crate) enum OwnedReq {
    Route(Call),
    Authorize(AuthRequest),
    Portability(PortabilityQuery),
    Rewrite(RewriteRequest),
}

impl Req<'_> {
    pub fn to_owned_req(self) -> OwnedReq {
        match self {
            Req::Route(c) => OwnedReq::Route(c.clone()),
            Req::Authorize(r) => OwnedReq::Authorize(r.clone()),
            Req::Portability(q) => OwnedReq::Portability(q.clone()),
            Req::Rewrite(r) => OwnedReq::Rewrite(r.clone()),
        }
    }
}

impl OwnedReq {
    pub fn as_req(&self) -> Req<'_> {
        match self {
            OwnedReq::Route(c) => Req::Route(c),
            OwnedReq::Authorize(r) => Req::Authorize(r),
            OwnedReq::Portability(q) => Req::Portability(q),
            OwnedReq::Rewrite(r) => Req::Rewrite(r),
        }
    }
}

/// A plugin's answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Resp {
    Route(RouteDecision),
    Authorize(AuthDecision),
    Portability(Option<PortabilityResult>),
    Rewrite(Numbers),
}

struct Warm {
    store: Store<InstanceState>,
    exports: Exports,
    calls: u64,
}

impl Warm {
    async fn invoke(&mut self, req: Req<'_>) -> wasmtime::Result<Result<Resp, String>> {
        let s = &mut self.store;
        Ok(match (&self.exports, req) {
            (Exports::Route(e), Req::Route(c)) => e
                .strowger_plugin_router()
                .call_route(s, c)
                .await?
                .map(Resp::Route),
            (Exports::Authorize(e), Req::Authorize(r)) => e
                .strowger_plugin_authorizer()
                .call_authorize(s, r)
                .await?
                .map(Resp::Authorize),
            (Exports::Portability(e), Req::Portability(q)) => e
                .strowger_plugin_portability_lookup()
                .call_lookup(s, q)
                .await?
                .map(Resp::Portability),
            (Exports::Rewrite(e), Req::Rewrite(r)) => e
                .strowger_plugin_rewriter()
                .call_rewrite(s, r)
                .await?
                .map(Resp::Rewrite),
            _ => {
                return Err(wasmtime::Error::msg(
                    "internal error: request does not match the plugin's hook",
                ));
            }
        })
    }
}

/// Settings of a pool.
#[derive(Clone)]
pub(crate) struct PoolSettings {
    pub memory_cap: usize,
    pub max_idle: usize,
    pub max_concurrency: usize,
    pub queue_timeout: Duration,
    pub recycle_after: u64,
    pub init_deadline: Duration,
    pub wall_limit: Duration,
}

impl PoolSettings {
    /// Wall-clock limit of one decision with CPU budget `budget`.
    pub fn decision_wall(&self, budget: Duration) -> Duration {
        self.wall_limit.max(budget.saturating_mul(2))
    }
    /// Wall-clock limit of instantiation plus `init`.
    pub fn init_wall(&self) -> Duration {
        self.init_deadline.saturating_mul(2)
    }
}

/// A failure to get an answer.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub reason: FallbackReason,
    pub message: String,
}

/// The outcome of one call into a pool.
pub(crate) struct CallResult {
    pub outcome: Result<Resp, Failure>,
    pub logs: Vec<LogLine>,
}

pub(crate) struct InstancePool {
    engine: Engine,
    exec: Arc<Executor>,
    pre: Pre,
    pub env: Arc<BindingEnv>,
    settings: PoolSettings,
    idle: Mutex<Vec<Warm>>,
    permits: Semaphore,
}

fn truncate_msg(mut s: String) -> String {
    const MAX: usize = 2048;
    if s.len() > MAX {
        let mut cut = MAX;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

fn classify(state: &mut InstanceState, e: &wasmtime::Error) -> Failure {
    let used_ns = state.call.cpu.used();
    let reason = if state.limiter.memory_refused {
        FallbackReason::MemoryLimit
    } else if state.call.cpu.expired {
        FallbackReason::Timeout
    } else {
        match e.downcast_ref::<Trap>() {
            Some(Trap::StackOverflow) => FallbackReason::StackOverflow,
            Some(Trap::Interrupt) => FallbackReason::Timeout,
            _ => FallbackReason::Trap,
        }
    };
    let message = match reason {
        FallbackReason::Timeout
            if state
                .call
                .cpu
                .wall_deadline
                .is_some_and(|d| std::time::Instant::now() >= d) =>
        {
            format!(
                "deadline exceeded: wall-time limit reached ({:.2} ms CPU used of {:.2} ms budget)",
                used_ns as f64 / 1e6,
                state.call.cpu.budget_ns as f64 / 1e6
            )
        }
        FallbackReason::Timeout => format!(
            "deadline exceeded ({:.2} ms CPU of {:.2} ms budget)",
            used_ns as f64 / 1e6,
            state.call.cpu.budget_ns as f64 / 1e6
        ),
        FallbackReason::MemoryLimit => {
            format!(
                "memory limit of {} MiB reached: {}",
                state.limiter.memory_cap >> 20,
                crate::runtime::root_cause(e)
            )
        }
        _ => crate::runtime::root_cause(e),
    };
    Failure {
        reason,
        message: truncate_msg(message),
    }
}

impl InstancePool {
    pub fn new(
        engine: Engine,
        exec: Arc<Executor>,
        pre: &Pre,
        env: Arc<BindingEnv>,
        settings: PoolSettings,
    ) -> InstancePool {
        InstancePool {
            engine,
            exec,
            pre: pre.clone_pre(),
            env,
            permits: Semaphore::new(settings.max_concurrency.max(1)),
            settings,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Number of warm idle instances.
    #[allow(dead_code)]
    pub fn idle(&self) -> usize {
        self.idle.lock().len()
    }

    /// Creates an instance and runs `init(config)` on it, within the init
    /// deadline: `init_deadline` of CPU time (epoch interruption) and twice
    /// that of wall time (a tokio timeout around instantiation and `init`,
    /// which also stops a guest waiting in a WASI sleep or poll).
    async fn instantiate(&self) -> Result<Warm, Failure> {
        let mut store = Store::new(
            &self.engine,
            InstanceState::new(self.env.clone(), self.settings.memory_cap),
        );
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_callback(crate::deadline::on_epoch);
        store.data_mut().call.call_id.push_str("(init)");
        let wall = self.settings.init_wall();
        store
            .data_mut()
            .call
            .cpu
            .start(self.settings.init_deadline, wall);
        store.set_epoch_deadline(1);
        let config = self.env.config.clone();
        let pre = &self.pre;
        let r = tokio::time::timeout(wall, async {
            let r = match pre {
                Pre::Route(p) => p.instantiate_async(&mut store).await.map(Exports::Route),
                Pre::Authorize(p) => p
                    .instantiate_async(&mut store)
                    .await
                    .map(Exports::Authorize),
                Pre::Portability(p) => p
                    .instantiate_async(&mut store)
                    .await
                    .map(Exports::Portability),
                Pre::Rewrite(p) => p.instantiate_async(&mut store).await.map(Exports::Rewrite),
            };
            let exports = match r {
                Ok(e) => e,
                Err(e) => {
                    let mut f = classify(store.data_mut(), &e);
                    f.message = format!("instantiation failed: {}", f.message);
                    f.reason = FallbackReason::Unavailable;
                    return Err(f);
                }
            };
            let init = match &exports {
                Exports::Route(e) => {
                    e.strowger_plugin_lifecycle()
                        .call_init(&mut store, &config)
                        .await
                }
                Exports::Authorize(e) => {
                    e.strowger_plugin_lifecycle()
                        .call_init(&mut store, &config)
                        .await
                }
                Exports::Portability(e) => {
                    e.strowger_plugin_lifecycle()
                        .call_init(&mut store, &config)
                        .await
                }
                Exports::Rewrite(e) => {
                    e.strowger_plugin_lifecycle()
                        .call_init(&mut store, &config)
                        .await
                }
            };
            match init {
                Ok(Ok(())) => Ok(exports),
                Ok(Err(msg)) => Err(Failure {
                    reason: FallbackReason::Unavailable,
                    message: truncate_msg(format!("init refused the configuration: {msg}")),
                }),
                Err(e) => {
                    let f = classify(store.data_mut(), &e);
                    if f.reason == FallbackReason::Timeout {
                        self.env.metrics.init_timed_out();
                    }
                    Err(Failure {
                        reason: FallbackReason::Unavailable,
                        message: format!("init failed ({}): {}", f.reason, f.message),
                    })
                }
            }
        })
        .await;
        let exports = match r {
            Ok(Ok(e)) => e,
            Ok(Err(f)) => return Err(f),
            Err(_elapsed) => {
                // The guest was waiting (not running: a running guest is
                // stopped by the epoch callback). Dropping the future above
                // abandoned the call; the store is dropped with it.
                self.env.metrics.init_timed_out();
                let used = store.data_mut().call.cpu.used();
                tracing::warn!(
                    plugin = &*self.env.plugin_name,
                    version = &*self.env.plugin_version,
                    wall_ms = wall.as_millis() as u64,
                    "plugin instantiation or init exceeded its deadline while waiting"
                );
                return Err(Failure {
                    reason: FallbackReason::Unavailable,
                    message: format!(
                        "init failed (timeout): deadline exceeded: no answer within {} ms of wall \
                         time ({:.2} ms CPU used of {} ms); the plugin was waiting (a WASI sleep or \
                         poll, or a host call)",
                        wall.as_millis(),
                        used as f64 / 1e6,
                        self.settings.init_deadline.as_millis()
                    ),
                });
            }
        };
        let mut warm = Warm {
            store,
            exports,
            calls: 0,
        };
        let st = warm.store.data_mut();
        st.call.logs.clear();
        st.call.call_id.clear();
        self.env.metrics.instantiated();
        Ok(warm)
    }

    /// Creates one instance (running `init` on the decision pool) and keeps
    /// it warm. Used when a generation is built, so that a bad plugin or
    /// configuration is refused before it goes live.
    pub async fn warm_up(self: &Arc<Self>) -> Result<Vec<LogLine>, Failure> {
        let pool = self.clone();
        let task = self.exec.spawn(async move {
            let mut w = pool.instantiate().await?;
            let logs = std::mem::take(&mut w.store.data_mut().call.logs);
            pool.idle.lock().push(w);
            Ok(logs)
        });
        let backstop = self.settings.init_wall() + Duration::from_secs(5);
        wait(task, backstop, |f| {
            Err(Failure {
                reason: FallbackReason::Unavailable,
                message: format!("init failed: {}", f.message),
            })
        })
        .await
    }

    /// Runs one decision on the decision pool: `budget` of CPU time, and
    /// [`PoolSettings::decision_wall`] of wall time for the call itself. When
    /// the pool is full, fails at once with reason `overloaded`.
    pub async fn decide(
        self: &Arc<Self>,
        call_id: &str,
        req: Req<'_>,
        budget: Duration,
    ) -> CallResult {
        let submitted = Instant::now();
        let pool = self.clone();
        let call_id_owned = call_id.to_string();
        let owned = req.to_owned_req();
        let Some(task) = self.exec.try_spawn(async move {
            pool.call(&call_id_owned, owned.as_req(), budget, submitted)
                .await
        }) else {
            return CallResult {
                outcome: Err(Failure {
                    reason: FallbackReason::Overloaded,
                    message: format!(
                        "decision pool full: {} decisions in flight ({} plugin threads, queue {}); \
                         raise plugins.decision_threads / plugins.decision_queue or fix the slow plugin",
                        self.exec.in_flight(),
                        self.exec.threads,
                        self.exec.capacity - self.exec.threads
                    ),
                }),
                logs: Vec::new(),
            };
        };
        // The task bounds itself (queue wait, instance wait, init and call
        // deadlines); this backstop only guards against a wedged pool.
        let backstop = self.settings.queue_timeout.saturating_mul(2)
            + self.settings.init_wall()
            + self.settings.decision_wall(budget)
            + Duration::from_secs(1);
        wait(task, backstop, |f| CallResult {
            outcome: Err(f),
            logs: Vec::new(),
        })
        .await
    }

    fn unavailable(&self, message: String) -> CallResult {
        CallResult {
            outcome: Err(Failure {
                reason: FallbackReason::Unavailable,
                message,
            }),
            logs: Vec::new(),
        }
    }

    /// Runs one decision (on a decision-pool thread) with a CPU-time budget.
    async fn call(
        &self,
        call_id: &str,
        req: Req<'_>,
        budget: Duration,
        submitted: Instant,
    ) -> CallResult {
        let queue_timeout = self.settings.queue_timeout;
        let waited = submitted.elapsed();
        if waited >= queue_timeout {
            return CallResult {
                outcome: Err(Failure {
                    reason: FallbackReason::Overloaded,
                    message: format!(
                        "waited {} ms for a free plugin thread (queue_timeout {} ms); the plugin \
                         was not called",
                        waited.as_millis(),
                        queue_timeout.as_millis()
                    ),
                }),
                logs: Vec::new(),
            };
        }
        let permit =
            match tokio::time::timeout(queue_timeout - waited, self.permits.acquire()).await {
                Ok(Ok(p)) => p,
                _ => {
                    return self.unavailable(format!(
                        "no free instance within {} ms ({} decisions already running)",
                        queue_timeout.as_millis(),
                        self.settings.max_concurrency
                    ));
                }
            };
        let pooled = self.idle.lock().pop();
        let mut w = match pooled {
            Some(w) => w,
            None => match self.instantiate().await {
                Ok(w) => w,
                Err(f) => {
                    return CallResult {
                        outcome: Err(f),
                        logs: Vec::new(),
                    };
                }
            },
        };
        let wall = self.settings.decision_wall(budget);
        {
            let st = w.store.data_mut();
            st.call.call_id.clear();
            st.call.call_id.push_str(call_id);
            st.call.logs.clear();
            st.call.logs_dropped = 0;
            st.call.snapshots.clear();
            st.limiter.memory_refused = false;
            st.call.cpu.start(budget, wall);
        }
        w.store.set_epoch_deadline(1);
        // The epoch callback stops a guest that runs too long (CPU budget,
        // wall limit); this timeout stops one that waits too long (a WASI
        // sleep or poll, a host call), by dropping the call's future.
        let r = tokio::time::timeout(wall, w.invoke(req)).await;
        w.calls += 1;
        let st = w.store.data_mut();
        let mut logs = std::mem::take(&mut st.call.logs);
        if st.call.logs_dropped > 0 {
            logs.push(LogLine {
                level: crate::types::Level::Warn,
                message: format!("{} more log lines dropped", st.call.logs_dropped),
            });
        }
        st.call.snapshots.clear();
        let outcome = match r {
            Ok(Ok(Ok(resp))) => Ok(resp),
            Ok(Ok(Err(msg))) => Err(Failure {
                reason: FallbackReason::GuestError,
                message: truncate_msg(msg),
            }),
            Ok(Err(e)) => {
                let f = classify(w.store.data_mut(), &e);
                drop(w);
                drop(permit);
                return CallResult {
                    outcome: Err(f),
                    logs,
                };
            }
            Err(_elapsed) => {
                // The instance is abandoned mid-call: discard it.
                let used = w.store.data_mut().call.cpu.used();
                drop(w);
                drop(permit);
                return CallResult {
                    outcome: Err(Failure {
                        reason: FallbackReason::Timeout,
                        message: format!(
                            "deadline exceeded: no answer within {} ms of wall time ({:.2} ms CPU \
                             used of {:.2} ms budget); the plugin was waiting (a WASI sleep or \
                             poll, or a host call)",
                            wall.as_millis(),
                            used as f64 / 1e6,
                            budget.as_secs_f64() * 1e3
                        ),
                    }),
                    logs,
                };
            }
        };
        if w.calls < self.settings.recycle_after {
            let mut idle = self.idle.lock();
            if idle.len() < self.settings.max_idle {
                idle.push(w);
            }
        }
        drop(permit);
        CallResult { outcome, logs }
    }
}

/// Awaits a pool task for at most `backstop`; `failed` makes the answer
/// when the task panicked or the backstop expired.
async fn wait<T>(
    mut task: crate::executor::AbortOnDrop<T>,
    backstop: Duration,
    failed: impl FnOnce(Failure) -> T,
) -> T {
    match tokio::time::timeout(backstop, &mut task.0).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => failed(Failure {
            reason: FallbackReason::Trap,
            message: format!("plugin task failed: {e}"),
        }),
        Err(_) => {
            tracing::error!(
                backstop_ms = backstop.as_millis() as u64,
                "the plugin decision pool did not answer in time"
            );
            failed(Failure {
                reason: FallbackReason::Timeout,
                message: format!(
                    "deadline exceeded: no answer from the plugin decision pool within {} ms",
                    backstop.as_millis()
                ),
            })
        }
    }
}
