//! Warm instance pools: one per (plugin version, hook, config, grants).
//!
//! An instance is created from the pre-instantiated component, `init(config)`
//! runs on it once, and it then serves decisions one at a time. It is put
//! back after a clean call (including a guest-level `Err`), dropped after
//! any trap or timeout (a trapped instance cannot be entered again) and
//! replaced after `recycle_after_calls` decisions.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, Trap};

use crate::bindings::{authorize, portability, rewrite, route};
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

    async fn init(&mut self, config: &str) -> wasmtime::Result<Result<(), String>> {
        let s = &mut self.store;
        match &self.exports {
            Exports::Route(e) => e.strowger_plugin_lifecycle().call_init(s, config).await,
            Exports::Authorize(e) => e.strowger_plugin_lifecycle().call_init(s, config).await,
            Exports::Portability(e) => e.strowger_plugin_lifecycle().call_init(s, config).await,
            Exports::Rewrite(e) => e.strowger_plugin_lifecycle().call_init(s, config).await,
        }
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
        pre: &Pre,
        env: Arc<BindingEnv>,
        settings: PoolSettings,
    ) -> InstancePool {
        InstancePool {
            engine,
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

    async fn instantiate(&self) -> Result<Warm, Failure> {
        let mut store = Store::new(
            &self.engine,
            InstanceState::new(self.env.clone(), self.settings.memory_cap),
        );
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_callback(crate::deadline::on_epoch);
        store.data_mut().call.call_id.push_str("(init)");
        store.data_mut().call.cpu.start(
            self.settings.init_deadline,
            self.settings.init_deadline.max(self.settings.wall_limit) * 4,
        );
        store.set_epoch_deadline(1);
        let r = match &self.pre {
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
        let mut warm = Warm {
            store,
            exports,
            calls: 0,
        };
        let config = self.env.config.clone();
        match warm.init(&config).await {
            Ok(Ok(())) => {}
            Ok(Err(msg)) => {
                return Err(Failure {
                    reason: FallbackReason::Unavailable,
                    message: truncate_msg(format!("init refused the configuration: {msg}")),
                });
            }
            Err(e) => {
                let f = classify(warm.store.data_mut(), &e);
                return Err(Failure {
                    reason: FallbackReason::Unavailable,
                    message: format!("init failed ({}): {}", f.reason, f.message),
                });
            }
        }
        let st = warm.store.data_mut();
        st.call.logs.clear();
        st.call.call_id.clear();
        self.env.metrics.instantiated();
        Ok(warm)
    }

    /// Creates one instance (running `init`) and keeps it warm. Used when a
    /// generation is built, so that a bad plugin or configuration is refused
    /// before it goes live.
    pub async fn warm_up(&self) -> Result<Vec<LogLine>, Failure> {
        let mut w = self.instantiate().await?;
        let logs = std::mem::take(&mut w.store.data_mut().call.logs);
        self.idle.lock().push(w);
        Ok(logs)
    }

    /// Runs one decision with a CPU-time budget.
    pub async fn call(&self, call_id: &str, req: Req<'_>, budget: Duration) -> CallResult {
        let permit =
            match tokio::time::timeout(self.settings.queue_timeout, self.permits.acquire()).await {
                Ok(Ok(p)) => p,
                _ => {
                    return CallResult {
                        outcome: Err(Failure {
                            reason: FallbackReason::Unavailable,
                            message: format!(
                                "no free instance within {} ms ({} decisions already running)",
                                self.settings.queue_timeout.as_millis(),
                                self.settings.max_concurrency
                            ),
                        }),
                        logs: Vec::new(),
                    };
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
        {
            let st = w.store.data_mut();
            st.call.call_id.clear();
            st.call.call_id.push_str(call_id);
            st.call.logs.clear();
            st.call.logs_dropped = 0;
            st.call.snapshots.clear();
            st.limiter.memory_refused = false;
            st.call
                .cpu
                .start(budget, self.settings.wall_limit.max(budget * 2));
        }
        w.store.set_epoch_deadline(1);
        let r = w.invoke(req).await;
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
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(msg)) => Err(Failure {
                reason: FallbackReason::GuestError,
                message: truncate_msg(msg),
            }),
            Err(e) => {
                let f = classify(w.store.data_mut(), &e);
                drop(w);
                drop(permit);
                return CallResult {
                    outcome: Err(f),
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
