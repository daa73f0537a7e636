//! Policies (sets of bindings), generations and decisions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

use crate::host::{BindingEnv, LogLine};
use crate::pool::{InstancePool, PoolSettings, Req, Resp};
use crate::runtime::{PluginVersion, PoolKey, Runtime};
use crate::types::*;
use crate::{FallbackReason, Hook};

/// Where a binding applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Every call (unless a trunk binding of the same hook matches).
    Global,
    /// Calls of this trunk (ingress trunk for route/portability/ingress
    /// rewrite, egress trunk for egress rewrite).
    Trunk(String),
}

/// What a binding answers when its plugin fails (trap, timeout, memory,
/// guest error, invalid answer, no instance). JSON: `{"kind": "default"}`,
/// `{"kind": "reject", "code": 503, "reason": "..."}`,
/// `{"kind": "static", "decision": <the hook's decision JSON>}`,
/// `{"kind": "previous"}`.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fallback {
    /// The hook's default: route → reject 503; authorize → plain digest
    /// authentication (accept valid credentials, challenge the rest);
    /// portability → no result; rewrite → numbers unchanged.
    #[default]
    Default,
    /// Reject with this final response (route and authorize only).
    Reject {
        /// SIP status, 400..=699.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// Ask for credentials (authorize only).
    Challenge,
    /// A fixed decision in the hook's JSON form (route: a `RouteDecision`,
    /// authorize: an `AuthDecision`, portability: a `PortabilityResult` or
    /// null, rewrite: `Numbers`).
    Static {
        /// The decision.
        decision: serde_json::Value,
    },
    /// The answer of the previous generation's binding for the same hook
    /// and scope; the hook default when there is none or it fails too.
    Previous,
}

/// One plugin bound to a hook and scope.
#[derive(Debug, Clone)]
pub struct Binding {
    /// The hook.
    pub hook: Hook,
    /// Global or per trunk.
    pub scope: Scope,
    /// The plugin version.
    pub plugin: Arc<PluginVersion>,
    /// Configuration JSON passed to `init` and returned by `config()`.
    pub config_json: String,
    /// Data sets the plugin may read.
    pub datasets: Vec<String>,
    /// CPU-time budget per decision (the wall-time limit is the larger of
    /// the runtime's `wall_limit` and twice this); `None` = the runtime
    /// default. At most the runtime's `max_deadline`.
    pub deadline: Option<Duration>,
    /// What to answer when the plugin fails.
    pub fallback: Fallback,
    /// Memory cap per instance; `None` = the runtime default (it cannot exceed it).
    pub memory_limit_bytes: Option<usize>,
}

impl Binding {
    /// A global binding with config `{}`, no data sets, default deadline and fallback.
    pub fn new(hook: Hook, plugin: Arc<PluginVersion>) -> Binding {
        Binding {
            hook,
            scope: Scope::Global,
            plugin,
            config_json: "{}".into(),
            datasets: Vec::new(),
            deadline: None,
            fallback: Fallback::Default,
            memory_limit_bytes: None,
        }
    }
    /// Sets the scope.
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }
    /// Sets the configuration JSON.
    pub fn config_json(mut self, config: impl Into<String>) -> Self {
        self.config_json = config.into();
        self
    }
    /// Grants data sets.
    pub fn datasets<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.datasets = names.into_iter().map(Into::into).collect();
        self
    }
    /// Sets the per-decision CPU deadline.
    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = Some(d);
        self
    }
    /// Sets the fallback.
    pub fn fallback(mut self, f: Fallback) -> Self {
        self.fallback = f;
        self
    }
    /// Sets the per-instance memory cap.
    pub fn memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit_bytes = Some(bytes);
        self
    }
}

/// A set of bindings, built into a [`Generation`] by [`Runtime::build`].
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// The bindings; at most one per (hook, scope).
    pub bindings: Vec<Binding>,
}

/// Why a policy could not be built. Nothing was activated.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A binding is inconsistent (wrong hook, duplicate scope, bad fallback, ...).
    #[error("binding {index} ({hook} {scope}, plugin {plugin}): {message}")]
    Binding {
        /// 0-based index in `Policy::bindings`.
        index: usize,
        /// The binding's hook.
        hook: Hook,
        /// The binding's scope, as text.
        scope: String,
        /// `name@version`.
        plugin: String,
        /// What is wrong.
        message: String,
    },
}

/// Identifies the plugin (and generation) that made a decision.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginRef {
    /// Plugin name.
    pub name: String,
    /// Version (first 12 hex digits of the sha256).
    pub version: String,
    /// Full sha256 of the component.
    pub sha256: String,
    /// Hook.
    pub hook: Hook,
    /// Scope of the binding.
    pub scope: Scope,
}

/// One decision: the value to apply and how it was obtained.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Decision<T> {
    /// The decision to apply (the plugin's answer, or the fallback's).
    pub value: T,
    /// Set when `value` comes from the fallback.
    pub fallback: Option<FallbackReason>,
    /// What went wrong, when `fallback` is set.
    pub error: Option<String>,
    /// The binding's plugin.
    #[serde(serialize_with = "ser_arc")]
    pub plugin: Arc<PluginRef>,
    /// Id of the generation that decided.
    pub generation: u64,
    /// Time from request to answer (including waiting for an instance).
    #[serde(serialize_with = "ser_duration_us", rename = "elapsed_us")]
    pub elapsed: Duration,
    /// Log lines the plugin wrote during the decision.
    pub logs: Vec<LogLine>,
}

fn ser_arc<S: serde::Serializer, T: serde::Serialize>(v: &Arc<T>, s: S) -> Result<S::Ok, S::Error> {
    T::serialize(v, s)
}

fn ser_duration_us<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e6)
}

impl<T> Decision<T> {
    /// True if the plugin answered (no fallback).
    pub fn is_plugin_answer(&self) -> bool {
        self.fallback.is_none()
    }
}

enum Resolved {
    Static(Resp),
    Default,
    Previous,
}

struct Bound {
    hook: Hook,
    scope: Scope,
    plugin: Arc<PluginVersion>,
    plugin_ref: Arc<PluginRef>,
    pool: Arc<InstancePool>,
    deadline: Duration,
    fallback: Resolved,
    /// The binding as given to [`Runtime::build`] (for [`Generation::binding_specs`]).
    spec: Binding,
}

/// An immutable, validated set of bindings with warm instance pools. A call
/// takes one `Arc<Generation>` at its start and uses it for every decision.
pub struct Generation {
    id: u64,
    bindings: Vec<Bound>,
    index: HashMap<(Hook, Option<String>), usize>,
    previous: ArcSwapOption<Generation>,
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation")
            .field("id", &self.id)
            .field("bindings", &self.bindings.len())
            .finish()
    }
}

fn scope_text(s: &Scope) -> String {
    match s {
        Scope::Global => "global".into(),
        Scope::Trunk(t) => format!("trunk {t}"),
    }
}

fn resolve_fallback(hook: Hook, f: &Fallback) -> Result<Resolved, String> {
    let reject_ok = |code: u16| {
        if (400..=699).contains(&code) {
            Ok(())
        } else {
            Err(format!("fallback reject code {code} is outside 400..=699"))
        }
    };
    Ok(match (f, hook) {
        (Fallback::Default, _) => Resolved::Default,
        (Fallback::Previous, _) => Resolved::Previous,
        (Fallback::Reject { code, reason }, Hook::Route) => {
            reject_ok(*code)?;
            Resolved::Static(Resp::Route(RouteDecision::Reject(Reject {
                code: *code,
                reason: reason.clone(),
            })))
        }
        (Fallback::Reject { code, reason }, Hook::Authorize) => {
            reject_ok(*code)?;
            Resolved::Static(Resp::Authorize(AuthDecision::Reject(Reject {
                code: *code,
                reason: reason.clone(),
            })))
        }
        (Fallback::Challenge, Hook::Authorize) => {
            Resolved::Static(Resp::Authorize(AuthDecision::Challenge(Challenge {
                realm: None,
                algorithms: vec![],
            })))
        }
        (Fallback::Static { decision }, h) => {
            let resp = match h {
                Hook::Route => serde_json::from_value(decision.clone()).map(Resp::Route),
                Hook::Authorize => serde_json::from_value(decision.clone()).map(Resp::Authorize),
                Hook::Portability => {
                    serde_json::from_value(decision.clone()).map(Resp::Portability)
                }
                Hook::Rewrite => serde_json::from_value(decision.clone()).map(Resp::Rewrite),
            }
            .map_err(|e| format!("static fallback is not a valid {h} decision: {e}"))?;
            crate::validate::answer(&resp)
                .map_err(|e| format!("static fallback is invalid: {e}"))?;
            Resolved::Static(resp)
        }
        (f, h) => return Err(format!("fallback {f:?} is not available for hook {h}")),
    })
}

/// The hook's built-in default answer.
fn default_answer(req: Req<'_>) -> Resp {
    match req {
        Req::Route(_) => Resp::Route(RouteDecision::Reject(Reject {
            code: 503,
            reason: "Service Unavailable".into(),
        })),
        Req::Authorize(r) => Resp::Authorize(match r.credentials {
            Credentials::Valid => AuthDecision::Accept(Accept {
                max_expires: None,
                min_expires: None,
                max_contacts: None,
            }),
            _ => AuthDecision::Challenge(Challenge {
                realm: None,
                algorithms: vec![],
            }),
        }),
        Req::Portability(_) => Resp::Portability(None),
        Req::Rewrite(r) => Resp::Rewrite(r.numbers.clone()),
    }
}

impl Generation {
    pub(crate) fn empty(id: u64) -> Generation {
        Generation {
            id,
            bindings: Vec::new(),
            index: HashMap::new(),
            previous: ArcSwapOption::empty(),
        }
    }

    pub(crate) fn set_previous(&self, g: Option<Arc<Generation>>) {
        self.previous.store(g);
    }

    pub(crate) async fn build(
        rt: &Runtime,
        id: u64,
        policy: Policy,
    ) -> Result<Generation, BuildError> {
        let inner = &rt.inner;
        let cfg = &inner.config;
        let mut bindings = Vec::new();
        let mut index = HashMap::new();
        for (i, b) in policy.bindings.into_iter().enumerate() {
            let spec = b.clone();
            let err = |message: String| BuildError::Binding {
                index: i,
                hook: b.hook,
                scope: scope_text(&b.scope),
                plugin: format!("{}@{}", b.plugin.name(), b.plugin.version()),
                message,
            };
            b.plugin
                .check_hook(b.hook)
                .map_err(|e| err(e.to_string()))?;
            let key_scope = match &b.scope {
                Scope::Global => None,
                Scope::Trunk(t) => Some(t.clone()),
            };
            if index.insert((b.hook, key_scope), bindings.len()).is_some() {
                return Err(err(format!(
                    "a second {} binding for {}",
                    b.hook,
                    scope_text(&b.scope)
                )));
            }
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&b.config_json) {
                return Err(err(format!("config is not valid JSON: {e}")));
            }
            let fallback = resolve_fallback(b.hook, &b.fallback).map_err(err)?;
            let memory = b
                .memory_limit_bytes
                .unwrap_or(cfg.memory_limit_bytes)
                .min(cfg.memory_limit_bytes);
            let deadline = b.deadline.unwrap_or(cfg.default_deadline);
            if deadline.is_zero() {
                return Err(err("deadline must be greater than zero".into()));
            }
            if deadline > cfg.max_deadline {
                return Err(err(format!(
                    "deadline {} ms is above the maximum of {} ms (plugins.max_deadline_ms); \
                     a decision holds up a call while it runs",
                    deadline.as_millis(),
                    cfg.max_deadline.as_millis()
                )));
            }
            let mut datasets = b.datasets.clone();
            datasets.sort();
            datasets.dedup();
            for d in &datasets {
                if inner.datasets.get(d).is_none() {
                    tracing::warn!(
                        dataset = d,
                        plugin = b.plugin.name(),
                        "binding grants a data set that is not loaded (yet)"
                    );
                }
            }
            let key = PoolKey {
                sha256: b.plugin.sha256().to_string(),
                hook: b.hook,
                config: b.config_json.clone(),
                datasets: datasets.clone(),
                memory,
            };
            let existing = inner.pools.lock().get(&key).and_then(|w| w.upgrade());
            let pool = match existing {
                Some(p) => p,
                None => {
                    let pre = b
                        .plugin
                        .pre(b.hook)
                        .ok_or_else(|| err("internal: no pre-instance".into()))?;
                    let env = Arc::new(BindingEnv {
                        plugin_name: b.plugin.name.clone(),
                        plugin_version: b.plugin.version.clone(),
                        config: b.config_json.clone(),
                        datasets_granted: datasets.clone(),
                        datasets: inner.datasets.clone(),
                        services: inner.services.clone(),
                        utc_offset_minutes: cfg.utc_offset_minutes,
                        host_call_timeout: cfg.host_call_timeout,
                        metrics: b.plugin.metrics.clone(),
                        log_window: parking_lot::Mutex::new((Instant::now(), 0)),
                        log_per_second: cfg.log_lines_per_second,
                    });
                    let pool = Arc::new(InstancePool::new(
                        inner.engine.clone(),
                        inner.executor.clone(),
                        pre,
                        env,
                        PoolSettings {
                            memory_cap: memory,
                            max_idle: cfg.max_idle_per_binding,
                            max_concurrency: cfg.max_concurrency_per_binding,
                            queue_timeout: cfg.queue_timeout,
                            recycle_after: cfg.recycle_after_calls,
                            init_deadline: cfg.init_deadline,
                            wall_limit: cfg.wall_limit,
                        },
                    ));
                    pool.warm_up().await.map_err(|f| err(f.message))?;
                    pool
                }
            };
            let plugin_ref = Arc::new(PluginRef {
                name: b.plugin.name().to_string(),
                version: b.plugin.version().to_string(),
                sha256: b.plugin.sha256().to_string(),
                hook: b.hook,
                scope: b.scope.clone(),
            });
            bindings.push((
                key,
                Bound {
                    hook: b.hook,
                    scope: b.scope,
                    plugin: b.plugin,
                    plugin_ref,
                    pool,
                    deadline,
                    fallback,
                    spec,
                },
            ));
        }
        // Everything validated: publish the pools for reuse by later generations.
        let mut pools = inner.pools.lock();
        pools.retain(|_, w| w.strong_count() > 0);
        for (key, b) in &bindings {
            pools
                .entry(key.clone())
                .or_insert_with(|| Arc::downgrade(&b.pool));
        }
        drop(pools);
        Ok(Generation {
            id,
            bindings: bindings.into_iter().map(|(_, b)| b).collect(),
            index,
            previous: ArcSwapOption::empty(),
        })
    }

    /// The generation's id (increasing with every build).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The generation that was active before this one was activated (kept
    /// for the `previous` fallback; only one level is kept).
    pub fn previous(&self) -> Option<Arc<Generation>> {
        self.previous.load_full()
    }

    /// The bindings as (hook, scope, plugin).
    pub fn bindings(&self) -> Vec<(Hook, Scope, Arc<PluginVersion>)> {
        self.bindings
            .iter()
            .map(|b| (b.hook, b.scope.clone(), b.plugin.clone()))
            .collect()
    }

    /// The bindings exactly as they were given to [`Runtime::build`]
    /// (configuration, data sets, deadline, fallback, memory cap): what it
    /// takes to build the same policy again, e.g. to describe the
    /// configuration file's `[[bindings]]` as a policy document.
    pub fn binding_specs(&self) -> Vec<Binding> {
        self.bindings.iter().map(|b| b.spec.clone()).collect()
    }

    /// True if a binding exists for `hook` in this scope (trunk binding, else global).
    pub fn has(&self, hook: Hook, trunk: Option<&str>) -> bool {
        self.find(hook, trunk).is_some()
    }

    fn find(&self, hook: Hook, trunk: Option<&str>) -> Option<&Bound> {
        if let Some(t) = trunk {
            // Avoid allocating for the common case of no trunk bindings.
            if let Some(i) = self
                .index
                .iter()
                .find(|((h, s), _)| *h == hook && s.as_deref() == Some(t))
                .map(|(_, i)| *i)
            {
                return Some(&self.bindings[i]);
            }
        }
        self.index.get(&(hook, None)).map(|&i| &self.bindings[i])
    }

    fn decide<'a>(
        &'a self,
        b: &'a Bound,
        call_id: &'a str,
        req: Req<'a>,
        allow_previous: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Decision<Resp>> + Send + 'a>> {
        Box::pin(async move {
            let t0 = Instant::now();
            let r = b.pool.decide(call_id, req, b.deadline).await;
            let failure = match r.outcome {
                Ok(resp) => match crate::validate::answer(&resp) {
                    Ok(()) => None,
                    Err(msg) => Some((
                        FallbackReason::InvalidAnswer,
                        format!("invalid answer: {msg}"),
                    )),
                }
                .map_or(Ok(resp), Err),
                Err(f) => Err((f.reason, f.message)),
            };
            let (value, fallback, error) = match failure {
                Ok(v) => (v, None, None),
                Err((reason, message)) => {
                    tracing::warn!(
                        plugin = b.plugin_ref.name,
                        version = b.plugin_ref.version,
                        hook = %b.hook,
                        generation = self.id,
                        call_id,
                        reason = %reason,
                        "plugin failed, applying fallback: {message}"
                    );
                    let value = match &b.fallback {
                        Resolved::Static(v) => v.clone(),
                        Resolved::Default => default_answer(req),
                        Resolved::Previous => {
                            let trunk = match &b.scope {
                                Scope::Global => None,
                                Scope::Trunk(t) => Some(t.as_str()),
                            };
                            let prev = if allow_previous {
                                self.previous.load_full()
                            } else {
                                None
                            };
                            match prev {
                                Some(p) => match p.find(b.hook, trunk) {
                                    Some(pb) => p.decide(pb, call_id, req, false).await.value,
                                    None => default_answer(req),
                                },
                                None => default_answer(req),
                            }
                        }
                    };
                    (value, Some(reason), Some(message))
                }
            };
            let elapsed = t0.elapsed();
            b.plugin.metrics.record(elapsed, fallback);
            Decision {
                value,
                fallback,
                error,
                plugin: b.plugin_ref.clone(),
                generation: self.id,
                elapsed,
                logs: r.logs,
            }
        })
    }

    async fn run(
        &self,
        hook: Hook,
        trunk: Option<&str>,
        call_id: &str,
        req: Req<'_>,
    ) -> Option<Decision<Resp>> {
        let b = self.find(hook, trunk)?;
        Some(self.decide(b, call_id, req, true).await)
    }

    /// Routes `call` with the route binding of `trunk` (the ingress trunk),
    /// else the global one; `None` when no route plugin is bound.
    pub async fn route(&self, trunk: Option<&str>, call: &Call) -> Option<Decision<RouteDecision>> {
        let d = self
            .run(Hook::Route, trunk, &call.call_id, Req::Route(call))
            .await?;
        Some(map(
            d,
            |r| match r {
                Resp::Route(v) => Some(v),
                _ => None,
            },
            || {
                RouteDecision::Reject(Reject {
                    code: 503,
                    reason: "Service Unavailable".into(),
                })
            },
        ))
    }

    /// Authorizes `request`; `call_id` tags logs. `None` when no authorize plugin is bound.
    pub async fn authorize(
        &self,
        trunk: Option<&str>,
        call_id: &str,
        request: &AuthRequest,
    ) -> Option<Decision<AuthDecision>> {
        let d = self
            .run(Hook::Authorize, trunk, call_id, Req::Authorize(request))
            .await?;
        Some(map(
            d,
            |r| match r {
                Resp::Authorize(v) => Some(v),
                _ => None,
            },
            || {
                AuthDecision::Challenge(Challenge {
                    realm: None,
                    algorithms: vec![],
                })
            },
        ))
    }

    /// Looks `query` up; `None` when no portability plugin is bound.
    pub async fn portability(
        &self,
        trunk: Option<&str>,
        call_id: &str,
        query: &PortabilityQuery,
    ) -> Option<Decision<Option<PortabilityResult>>> {
        let d = self
            .run(Hook::Portability, trunk, call_id, Req::Portability(query))
            .await?;
        Some(map(
            d,
            |r| match r {
                Resp::Portability(v) => Some(v),
                _ => None,
            },
            || None,
        ))
    }

    /// Rewrites the numbers of `request` with the binding of `trunk` (ingress
    /// or egress trunk), else the global one; `None` when none is bound.
    pub async fn rewrite(
        &self,
        trunk: Option<&str>,
        call_id: &str,
        request: &RewriteRequest,
    ) -> Option<Decision<Numbers>> {
        let d = self
            .run(Hook::Rewrite, trunk, call_id, Req::Rewrite(request))
            .await?;
        let unchanged = request.numbers.clone();
        Some(map(
            d,
            |r| match r {
                Resp::Rewrite(v) => Some(v),
                _ => None,
            },
            move || unchanged,
        ))
    }
}

fn map<T>(
    d: Decision<Resp>,
    f: impl FnOnce(Resp) -> Option<T>,
    default: impl FnOnce() -> T,
) -> Decision<T> {
    let value = f(d.value).unwrap_or_else(default);
    Decision {
        value,
        fallback: d.fallback,
        error: d.error,
        plugin: d.plugin,
        generation: d.generation,
        elapsed: d.elapsed,
        logs: d.logs,
    }
}
