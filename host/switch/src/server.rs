//! The tokio shell: runs the single-threaded [`Core`] on one task, feeds it
//! network events, timer expiries and plugin decisions, and carries out its
//! actions (send, ask a plugin, persist). Plugin decisions run on spawned
//! tasks so a slow plugin never stalls other calls.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use parking_lot::RwLock;
use strowger_plugin::types as pt;
use strowger_plugin::{Generation, Hook, HostFuture, HostServices, Runtime, RuntimeConfig};
use strowger_store::Store;
use tokio::sync::{mpsc, watch};

use crate::auth::{Credentials, DigestAlgorithm};
use crate::config::{self, Config};
use crate::core::{
    Action, AuthFacts, AuthVerdict, CallFacts, Cause, Core, CoreConfig, Dest, Event,
    GroupAlgorithm, GroupInfo, Ingress, Now, Plan, PlanDecision, PlannedAttempt, ProtectionInfo,
    RegState, TrunkInbound, TrunkInfo, TrunkView, UserCred,
};
use crate::flow::{Flow, Transport};
use crate::location::{Binding, Location, aor_key};
use crate::transport::{Listen, NetEvent, TlsSetup, Transports};

/// A running switch.
pub struct Running {
    /// Bound listeners (actual ports when 0 was configured).
    pub listeners: Vec<Listen>,
    /// The plugin runtime (for status and policy changes).
    pub runtime: Arc<Runtime>,
    /// The store.
    pub store: Store,
    /// The location service.
    pub location: Arc<RwLock<Location>>,
    /// Control-plane handle (calls, hang-up, registrations, trunks).
    pub control: crate::control::Control,
    /// Whether the supervised tasks (core loop, listeners) are alive.
    pub health: Health,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Health of a running switch: set by the supervisor when the core loop or
/// a listener task panics or stops on its own (the switch then serves no
/// SIP, or not on every listener). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Health {
    failed: Arc<watch::Sender<Option<String>>>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            failed: Arc::new(watch::channel(None).0),
        }
    }
}

impl Health {
    /// Why the switch failed, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failed.borrow().clone()
    }

    /// Resolves (with the reason) once a supervised task failed.
    pub async fn failed(&self) -> String {
        let mut rx = self.failed.subscribe();
        loop {
            if let Some(why) = rx.borrow_and_update().clone() {
                return why;
            }
            if rx.changed().await.is_err() {
                // the sender lives in `self`: cannot happen
                std::future::pending::<()>().await;
            }
        }
    }

    /// Record a failure (the first one is kept).
    pub fn fail(&self, why: String) {
        self.failed.send_if_modified(|f| {
            if f.is_none() {
                *f = Some(why);
                true
            } else {
                false
            }
        });
    }
}

/// The text of a panic payload.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-text panic payload)".into())
}

/// Watches task `name`: if it ends while the switch is not shutting down
/// (a panic, or a loop that returned), logs it at error with the panic
/// message and marks the switch failed.
fn supervise(
    name: String,
    task: tokio::task::JoinHandle<()>,
    stopping: watch::Receiver<bool>,
    health: Health,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let r = task.await;
        if *stopping.borrow() {
            return;
        }
        let why = match r {
            Err(e) if e.is_panic() => {
                format!("{name} panicked: {}", panic_message(&*e.into_panic()))
            }
            Err(e) => format!("{name} was cancelled: {e}"),
            Ok(()) => format!("{name} stopped"),
        };
        tracing::error!(task = %name, failure = %why, "switch task failed: SIP is not served; exit and restart");
        health.fail(why);
    })
}

impl Running {
    /// Address of the first listener of `transport`.
    pub fn addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|l| l.transport == transport)
            .map(|l| l.addr)
    }

    /// Resolves (with the reason) when the core loop or a listener task
    /// failed: the switch no longer serves SIP and should exit (its
    /// registrations and CDRs are in the store).
    pub async fn failed(&self) -> String {
        self.health.failed().await
    }

    /// Stops the core loop and flushes the store (writes waiting for a
    /// retry get a last attempt; any still failing are logged as dropped).
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let r = store.flush().wait();
            store.close();
            r
        })
        .await
        .context("store flush task")?
        .context("flushing the store")?;
        Ok(())
    }
}

/// The core's view of a configured trunk.
fn trunk_info(t: &config::TrunkConfig, addr: Option<std::net::SocketAddr>) -> TrunkInfo {
    let mut i = TrunkInfo::new(&t.name, &t.host, addr, transport_of(t.transport));
    i.inbound = match t.inbound {
        config::Inbound::Ip => TrunkInbound::Ip,
        config::Inbound::Register => TrunkInbound::Register,
        config::Inbound::Digest => TrunkInbound::Digest,
        config::Inbound::None => TrunkInbound::None,
    };
    i.ignore_source_port = t.ignore_source_port;
    i.user = t.user().to_string();
    i.auth_user = t.auth_username.clone();
    i.secret = t.secret.clone();
    i.fromuser = t.fromuser.clone();
    i.fromdomain = t.fromdomain.clone();
    i.register = t.register;
    i.did = t.did.clone();
    i.register_expires = t.register_expires;
    i.register_retry = Duration::from_secs(t.register_retry_s as u64);
    i.register_attempts = t.register_attempts;
    i.qualify = (t.qualify_s > 0).then(|| Duration::from_secs(t.qualify_s as u64));
    i.max_in = t.max_calls_in;
    i.max_out = t.max_calls_out;
    i.max_total = t.max_calls;
    i.caller_id = t.caller_id.clone();
    i.ruri_params = t.ruri_params.clone();
    i.use_pai = t.use_pai;
    i.b_from_to = t.b_from == config::BFrom::To;
    i.codecs = t.codecs.clone();
    i.relay = t.media.map(|m| m == config::MediaMode::Relay);
    i.dtmf = t.dtmf;
    i.proxy_timeout = Duration::from_millis(t.proxy_timeout_ms.max(100) as u64);
    i.session_expires =
        (t.session_expires_s > 0).then(|| Duration::from_secs(t.session_expires_s as u64));
    i
}

fn transport_of(t: config::Transport) -> Transport {
    match t {
        config::Transport::Udp => Transport::Udp,
        config::Transport::Tcp => Transport::Tcp,
        config::Transport::Tls => Transport::Tls,
    }
}

/// The core's view of a configured trunk, its host and proxies resolved
/// (now, once).
pub(crate) async fn resolve_trunk(t: &config::TrunkConfig) -> TrunkInfo {
    let addr = match t.socket_addr() {
        Some(a) => Some(a),
        None if t.is_dynamic() => None,
        None => tokio::net::lookup_host((t.host.as_str(), t.port))
            .await
            .ok()
            .and_then(|mut i| i.next()),
    };
    if addr.is_none() && !t.is_dynamic() {
        tracing::warn!(trunk = %t.name, host = %t.host, "trunk host does not resolve; trunk unavailable");
    }
    let mut info = trunk_info(t, addr);
    for p in &t.proxies {
        let (host, port) = match p.rsplit_once(':') {
            Some((h, port)) if !h.contains(':') || h.ends_with(']') => (
                h.trim_matches(|c| c == '[' || c == ']'),
                port.parse().unwrap_or(t.port),
            ),
            _ => (p.trim_matches(|c| c == '[' || c == ']'), t.port),
        };
        match tokio::net::lookup_host((host, port))
            .await
            .ok()
            .and_then(|mut i| i.next())
        {
            Some(a) => info.proxies.push(a),
            None => {
                tracing::warn!(trunk = %t.name, proxy = %p, "trunk proxy does not resolve; skipped")
            }
        }
    }
    info
}

/// The trunk groups with their members as indexes into `cfg.trunks`.
pub(crate) fn group_infos(cfg: &Config) -> Vec<GroupInfo> {
    cfg.trunk_groups
        .iter()
        .map(|g| GroupInfo {
            name: g.name.clone(),
            algorithm: match g.algorithm {
                config::GroupAlgorithm::Calls => GroupAlgorithm::Calls,
                config::GroupAlgorithm::Active => GroupAlgorithm::Active,
            },
            force_proportional: g.force_proportional,
            members: g
                .members
                .iter()
                .filter_map(|m| {
                    cfg.trunks
                        .iter()
                        .position(|t| t.name == m.trunk)
                        .map(|i| (i, m.weight))
                })
                .collect(),
        })
        .collect()
}

/// The digest users of a configuration: its users, and the peers that
/// authenticate to us (dynamic / digest trunks) as users of the registrar.
pub(crate) fn user_creds(cfg: &Config) -> Vec<UserCred> {
    cfg.users
        .iter()
        .map(|u| UserCred {
            user: u.user.clone(),
            password: u.password.clone(),
            domain: u.domain_or(&cfg.sip.domain).to_string(),
        })
        .chain(
            cfg.trunks
                .iter()
                .filter(|t| {
                    matches!(
                        t.inbound,
                        config::Inbound::Register | config::Inbound::Digest
                    )
                })
                .map(|t| UserCred {
                    user: t.user().to_string(),
                    password: t.secret.clone().unwrap_or_default(),
                    domain: cfg.sip.domain.clone(),
                }),
        )
        .collect()
}

/// Derives the core's settings from the configuration (trunk host names
/// are resolved here, once).
pub async fn core_config(cfg: &Config, listeners: &[Listen]) -> CoreConfig {
    let mut trunks = Vec::new();
    for t in &cfg.trunks {
        trunks.push(resolve_trunk(t).await);
    }
    let groups = group_infos(cfg);
    let pc = &cfg.protection;
    let protection = ProtectionInfo {
        ban_failures: pc.ban_failures,
        ban_window: Duration::from_secs(pc.ban_window_s as u64),
        ban_time: Duration::from_secs(pc.ban_time_s as u64),
        rate_limit: pc.rate_limit,
        scanner: (!pc.scanner_user_agents.is_empty())
            .then(|| regex_lite::Regex::new(&format!("(?i){}", pc.scanner_user_agents)).ok())
            .flatten(),
    };
    CoreConfig {
        groups,
        protection,
        domain: cfg.sip.domain.clone(),
        user_agent: cfg.sip.user_agent.clone(),
        listeners: listeners.iter().map(|l| (l.transport, l.addr)).collect(),
        users: user_creds(cfg),
        trunks,
        algorithms: cfg
            .auth
            .algorithms
            .iter()
            .map(|a| match a {
                config::DigestAlgorithm::Md5 => DigestAlgorithm::Md5,
                config::DigestAlgorithm::Sha256 => DigestAlgorithm::Sha256,
            })
            .collect(),
        nonce_ttl: cfg.auth.nonce_ttl(),
        allow_no_qop: cfg.auth.allow_no_qop,
        min_expires: cfg.registrar.min_expires,
        max_expires: cfg.registrar.max_expires,
        default_expires: cfg.registrar.default_expires,
        ring_timeout: cfg.calls.ring_timeout(),
        max_forwards: cfg.calls.max_forwards,
        t1: cfg.sip.t1(),
        t2: cfg.sip.t2(),
        t4: cfg.sip.t4(),
        max_udp_size: cfg.sip.max_udp_size,
        max_message_size: cfg.sip.max_message_size,
        tz_offset_minutes: cfg.calls.timezone_offset_minutes,
        // call ids must not repeat across restarts or nodes: OS randomness
        id_seed: rand::random(),
        response_cache: crate::core::CacheLimits {
            max_entries: cfg.sip.response_cache_max_entries,
            max_bytes: cfg.sip.response_cache_max_bytes,
            max_entry_bytes: cfg.sip.response_cache_max_entry_bytes,
        },
        max_tracked_sources: cfg.sip.max_tracked_sources,
    }
}

/// Host services for plugins: location lookups and trunk status.
struct Services {
    location: Arc<RwLock<Location>>,
    domain: String,
    trunks: TrunkView,
}

impl HostServices for Services {
    fn location_lookup<'a>(&'a self, aor: &'a str) -> HostFuture<'a, Vec<pt::Contact>> {
        Box::pin(async move {
            let key = aor_key(aor, &self.domain);
            let now = Instant::now();
            self.location
                .read()
                .lookup(&key, now)
                .into_iter()
                .map(|b| pt::Contact {
                    uri: b.contact.clone(),
                    expires_in: b.expires_in(now),
                    source: endpoint(&b.flow),
                    user_agent: b.user_agent.clone(),
                })
                .collect()
        })
    }
    fn trunk_status<'a>(&'a self, name: &'a str) -> HostFuture<'a, Option<pt::TrunkState>> {
        Box::pin(async move {
            self.trunks
                .read()
                .iter()
                .find(|t| t.name == name)
                .map(|t| pt::TrunkState {
                    name: t.name.clone(),
                    up: t.up,
                    active_in: t.active_in,
                    active_out: t.active_out,
                    max_in: t.max_in,
                    max_out: t.max_out,
                    max_total: t.max_total,
                    latency_ms: t.latency_ms,
                    registered: t
                        .registration
                        .as_ref()
                        .map(|r| *r == crate::trunks::RegStatus::Registered),
                })
        })
    }
}

fn endpoint(f: &Flow) -> pt::Endpoint {
    pt::Endpoint {
        ip: f.remote.ip().to_string(),
        port: f.remote.port(),
        transport: match f.transport {
            Transport::Udp => pt::Transport::Udp,
            Transport::Tcp => pt::Transport::Tcp,
            Transport::Tls => pt::Transport::Tls,
        },
    }
}

fn plugin_fallback(hook: Hook, f: &config::Fallback) -> strowger_plugin::Fallback {
    use strowger_plugin::Fallback as F;
    match f {
        config::Fallback::Reject(r) => F::Reject {
            code: r.code,
            reason: r.reason.clone(),
        },
        config::Fallback::Continue => F::Default,
        config::Fallback::Accept if hook == Hook::Authorize => F::Static {
            decision: serde_json::to_value(pt::AuthDecision::Accept(pt::Accept {
                max_expires: None,
                min_expires: None,
                max_contacts: None,
            }))
            .unwrap_or_default(),
        },
        config::Fallback::Drop if hook == Hook::Authorize => F::Static {
            decision: serde_json::to_value(pt::AuthDecision::Drop).unwrap_or_default(),
        },
        _ => F::Default,
    }
}

fn hook_of(h: config::Hook) -> Hook {
    match h {
        config::Hook::Route => Hook::Route,
        config::Hook::Authorize => Hook::Authorize,
        config::Hook::Portability => Hook::Portability,
        config::Hook::Rewrite => Hook::Rewrite,
    }
}

/// Builds the plugin runtime, loads data sets and plugins and activates the
/// initial policy from `[[bindings]]`.
pub async fn build_runtime(cfg: &Config) -> anyhow::Result<Arc<Runtime>> {
    let mut rc = RuntimeConfig {
        cache_dir: Some(cfg.cache_dir()),
        utc_offset_minutes: cfg.calls.timezone_offset_minutes,
        ..RuntimeConfig::default()
    };
    cfg.plugins.apply_limits(&mut rc);
    let rt = Arc::new(Runtime::new(rc).context("starting the plugin runtime")?);
    for d in &cfg.datasets {
        // Streamed from the file into the compact layout, off the async workers.
        let (d, load) = (d.clone(), rt.datasets().begin_load(&d.name));
        let name = d.name.clone();
        let ds = tokio::task::spawn_blocking(move || {
            let mut b = strowger_plugin::DatasetBuilder::new();
            let p = load.progress();
            let bytes = d.read_rows(|k, v| {
                p.add_row();
                b.insert(k, v).map_err(|e| e.to_string())
            })?;
            p.add_bytes(bytes);
            p.set_phase(strowger_plugin::LoadPhase::Indexing);
            Ok::<_, config::ConfigError>(b.finish("initial"))
        })
        .await
        .context("loading a data set")?
        .with_context(|| format!("data set {name}"))?;
        tracing::info!(dataset = %name, rows = ds.len(), layout = ds.layout_name(), bytes = ds.heap_bytes(), "data set loaded");
        rt.datasets().put_dataset(&name, Arc::new(ds));
    }
    let mut loaded: HashMap<PathBuf, Arc<strowger_plugin::PluginVersion>> = HashMap::new();
    let mut bindings = Vec::new();
    for b in &cfg.bindings {
        let path = cfg.plugin_path(&b.plugin);
        let plugin = match loaded.get(&path) {
            Some(p) => p.clone(),
            None => {
                let name = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| b.plugin.clone());
                let p = rt
                    .load_file(&name, &path)
                    .await
                    .with_context(|| format!("loading plugin {} ({})", b.plugin, path.display()))?;
                loaded.insert(path.clone(), p.clone());
                p
            }
        };
        let hook = hook_of(b.hook);
        let mut binding = strowger_plugin::Binding::new(hook, plugin)
            .config_json(b.config_json()?)
            .datasets(b.datasets.clone())
            .deadline(b.deadline())
            .fallback(plugin_fallback(hook, &b.effective_fallback()));
        if !b.is_global() {
            binding = binding.scope(strowger_plugin::Scope::Trunk(b.scope.clone()));
        }
        if let Some(mb) = b.max_memory_mb {
            binding = binding.memory_limit(mb as usize * 1024 * 1024);
        }
        bindings.push(binding);
    }
    let generation = rt
        .build(strowger_plugin::Policy { bindings })
        .await
        .map_err(|e| anyhow::anyhow!("building the initial policy: {e}"))?;
    rt.activate(generation);
    Ok(rt)
}

/// Parts [`start_with`] can replace (tests, fault injection).
#[derive(Default)]
pub struct StartOptions {
    /// Media handler instead of the configured relay / pass-through.
    pub media: Option<Box<dyn crate::media::MediaHandler>>,
}

/// Starts a switch from `cfg`: store, plugins, listeners, core loop.
pub async fn start(cfg: Config) -> anyhow::Result<Running> {
    start_with(cfg, StartOptions::default()).await
}

/// [`start`] with some parts replaced. The core loop and the listener
/// tasks are supervised: when one panics (or returns) the failure is
/// logged and [`Running::failed`] resolves.
pub async fn start_with(cfg: Config, opts: StartOptions) -> anyhow::Result<Running> {
    let store_path = cfg.store.path.clone();
    if let Some(dir) = store_path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let store = {
        let p = store_path.clone();
        let opts = cfg.store.options();
        tokio::task::spawn_blocking(move || Store::open_with_options(&p, opts))
            .await?
            .with_context(|| format!("opening the store {}", store_path.display()))?
    };
    let runtime = build_runtime(&cfg).await?;
    let listens: Vec<Listen> = cfg
        .sip
        .listen
        .iter()
        .map(|l| Listen {
            transport: transport_of(l.transport),
            addr: l.addr,
        })
        .collect();
    let tls = match &cfg.tls {
        Some(t) if listens.iter().any(|l| l.transport == Transport::Tls) => Some(TlsSetup {
            server: crate::transport::load_tls_server(&t.cert, &t.key)?,
            client: None,
        }),
        _ => None,
    };
    let limits = crate::transport::StreamLimits::from_config(&cfg.sip);
    let (transports, net_rx, bound) = Transports::bind_with(&listens, tls, 65536, limits).await?;
    for l in &bound {
        tracing::info!("listening on {}:{}", l.transport, l.addr);
    }
    let ccfg = core_config(&cfg, &bound).await;
    let location = Arc::new(RwLock::new(Location::new()));
    let trunk_view: TrunkView = Arc::new(RwLock::new(Vec::new()));
    runtime.set_host_services(Arc::new(Services {
        location: location.clone(),
        domain: cfg.sip.domain.clone(),
        trunks: trunk_view.clone(),
    }));
    // reload registrations
    let regs = store
        .load_registrations()
        .await
        .context("loading registrations")?;
    {
        let now = Now::real();
        let mut loc = location.write();
        let mut n = 0;
        for r in regs {
            if r.expires_at_ms <= now.unix_ms {
                continue;
            }
            let left = Duration::from_millis((r.expires_at_ms - now.unix_ms) as u64);
            let transport = Transport::parse(&r.transport).unwrap_or(Transport::Udp);
            let local = r.local.unwrap_or_else(|| {
                ccfg.listeners
                    .iter()
                    .find(|(t, _)| *t == transport)
                    .map(|(_, a)| *a)
                    .unwrap_or(r.source)
            });
            loc.restore(
                &r.aor,
                Binding {
                    contact: r.contact,
                    expires_at: now.mono + left,
                    expires_unix_ms: r.expires_at_ms,
                    // connection ids do not survive a restart: send to the address
                    flow: Flow {
                        transport,
                        local,
                        remote: r.source,
                        conn: None,
                    },
                    call_id: r.call_id,
                    cseq: r.cseq,
                    user_agent: r.user_agent,
                    seq: 0,
                },
                now.mono,
            );
            n += 1;
        }
        if n > 0 {
            tracing::info!(bindings = n, "registrations reloaded from the store");
        }
    }
    let health = Health::default();
    let (control, ctl_rx) = crate::control::Control::new(
        location.clone(),
        store.clone(),
        cfg.sip.domain.clone(),
        Arc::new(cfg.clone()),
        health.clone(),
    );
    let sip_ip = bound
        .first()
        .map(|l| l.addr.ip())
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    let (media, media_rx): (Box<dyn crate::media::MediaHandler>, _) = match opts.media {
        Some(m) => (m, None),
        None => match crate::media::start_relay(&cfg.media, sip_ip)? {
            Some(r) => (
                {
                    control.use_relay(&r.relay);
                    Box::new(crate::media::RelayMedia::new(r.relay, cfg.media.mode))
                },
                Some(r.events),
            ),
            None => (Box::new(crate::media::PassThrough), None),
        },
    };
    let mut core = Core::with_parts(ccfg, location.clone(), media);
    core.use_trunk_view(trunk_view.clone());
    core.use_guard_metrics(transports.guard_metrics());
    control.use_guard_metrics(transports.guard_metrics());
    let (shutdown, shutdown_rx) = watch::channel(false);
    let shell = Shell {
        core,
        transports,
        runtime: runtime.clone(),
        store: store.clone(),
        pinned: HashMap::new(),
        users: Arc::new(cfg.users.iter().map(|u| u.user.clone()).collect()),
        tz: cfg.calls.timezone_offset_minutes,
    };
    let listener_tasks = shell.transports.take_tasks();
    let core_task = tokio::spawn(shell.run(net_rx, media_rx, ctl_rx, shutdown.subscribe()));
    let task = supervise(
        "switch core".into(),
        core_task,
        shutdown_rx.clone(),
        health.clone(),
    );
    for (name, t) in listener_tasks {
        drop(supervise(name, t, shutdown_rx.clone(), health.clone()));
    }
    Ok(Running {
        listeners: bound,
        runtime,
        store,
        location,
        control,
        health,
        shutdown,
        task,
    })
}

struct Shell {
    core: Core,
    transports: Transports,
    runtime: Arc<Runtime>,
    store: Store,
    pinned: HashMap<u64, Arc<Generation>>,
    users: Arc<Vec<String>>,
    tz: i32,
}

impl Shell {
    async fn run(
        mut self,
        mut net_rx: mpsc::Receiver<NetEvent>,
        media_rx: Option<mpsc::UnboundedReceiver<strowger_media::MediaEvent>>,
        mut ctl_rx: mpsc::Receiver<crate::control::Command>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut media_rx = media_rx;
        let (dec_tx, mut dec_rx) = mpsc::unbounded_channel::<Event>();
        let mut batch: Vec<NetEvent> = Vec::with_capacity(64);
        loop {
            let deadline = self
                .core
                .next_deadline()
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                n = net_rx.recv_many(&mut batch, 64) => {
                    if n == 0 { break; }
                    let now = Now::real();
                    for ev in batch.drain(..) {
                        let ev = match ev {
                            NetEvent::Message(m) => Event::Net(m),
                            NetEvent::Closed(c) => Event::ConnClosed(c),
                        };
                        self.core.handle(now, ev);
                    }
                }
                Some(ev) = dec_rx.recv() => {
                    self.core.handle(Now::real(), ev);
                }
                Some(ev) = async { media_rx.as_mut()?.recv().await } => {
                    if let Some(ev) = crate::media::core_event(&ev) {
                        self.core.handle(Now::real(), ev);
                    }
                }
                Some(cmd) = ctl_rx.recv() => {
                    self.core.control(Now::real(), cmd);
                }
                _ = tokio::time::sleep_until(deadline) => {
                    self.core.poll_timers(Now::real());
                }
            }
            // under a steady stream of messages the (biased) select never
            // reaches the timer branch: run due timers here too
            if tokio::time::Instant::now() >= deadline {
                self.core.poll_timers(Now::real());
            }
            self.run_actions(&dec_tx);
        }
        tracing::info!("switch core stopped");
        // The relay's threads are joined when the core (its last owner)
        // drops: do that off the async workers.
        let core = self.core;
        drop(tokio::task::spawn_blocking(move || drop(core)));
    }

    fn run_actions(&mut self, dec_tx: &mpsc::UnboundedSender<Event>) {
        loop {
            let actions: Vec<Action> = self.core.drain_actions().collect();
            if actions.is_empty() {
                return;
            }
            let mut immediate = Vec::new();
            for a in actions {
                match a {
                    Action::Send { target, data } => self.transports.send(&target, data),
                    Action::Authorize { pending, facts } => {
                        let generation = self.runtime.current();
                        let trunk = match &facts.ingress {
                            Ingress::Trunk(t) => Some(t.clone()),
                            _ => None,
                        };
                        if !generation.has(Hook::Authorize, trunk.as_deref()) {
                            let verdict = AuthVerdict::default_for(&facts);
                            immediate.push(Event::AuthDecided { pending, verdict });
                            continue;
                        }
                        let tx = dec_tx.clone();
                        let tz = self.tz;
                        tokio::spawn(async move {
                            let req = auth_request(&facts, tz);
                            let id = format!("auth{pending}");
                            let verdict =
                                match generation.authorize(trunk.as_deref(), &id, &req).await {
                                    Some(d) => verdict_of(d.value),
                                    None => AuthVerdict::default_for(&facts),
                                };
                            let _ = tx.send(Event::AuthDecided { pending, verdict });
                        });
                    }
                    Action::PlanCall { call, facts } => {
                        let generation = self.runtime.generation_for_call(&facts.call_id);
                        self.pinned.insert(call, generation.clone());
                        let tx = dec_tx.clone();
                        let tz = self.tz;
                        let users = self.users.clone();
                        // shadow mode: the candidate plans the call too, in a
                        // task of its own (bounded; dropped when saturated)
                        let shadow = self.runtime.shadow().and_then(|s| {
                            let permit = self.runtime.shadow_log().try_permit()?;
                            Some((s, permit))
                        });
                        let (active_tx, active_rx) = match shadow {
                            Some(_) => {
                                let (t, r) = tokio::sync::oneshot::channel::<String>();
                                (Some(t), Some(r))
                            }
                            None => (None, None),
                        };
                        if let (Some(((sg, label), permit)), Some(active_rx)) = (shadow, active_rx)
                        {
                            let log = self.runtime.shadow_log().clone();
                            let (facts, users) = (facts.clone(), users.clone());
                            let active_generation = generation.id();
                            tokio::spawn(async move {
                                let _permit = permit;
                                let mut errors = Vec::new();
                                let theirs =
                                    plan_call_traced(&sg, &facts, tz, &users, &mut errors).await;
                                let Ok(ours) = active_rx.await else { return };
                                log.record(strowger_plugin::shadow::ShadowDiff {
                                    time_unix_ms: facts.time_unix_ms,
                                    call_id: facts.call_id.clone(),
                                    hook: "route".into(),
                                    source: "call".into(),
                                    active_generation,
                                    shadow_generation: sg.id(),
                                    shadow_version: label,
                                    active: ours,
                                    error: !errors.is_empty(),
                                    shadow: if errors.is_empty() {
                                        plan_text(&theirs)
                                    } else {
                                        errors.join("; ")
                                    },
                                });
                            });
                        }
                        tokio::spawn(async move {
                            let plan = plan_call(&generation, &facts, tz, &users).await;
                            if let Some(t) = active_tx {
                                let _ = t.send(plan_text(&plan));
                            }
                            let _ = tx.send(Event::CallPlanned { call, plan });
                        });
                    }
                    Action::CallEnded { call } => {
                        self.pinned.remove(&call);
                    }
                    // Store writes: the store logs every failure with its
                    // record, counts it, and retries temporary failures
                    // (bounded queue; what it must drop is logged and
                    // counted too), so the Acks are not awaited here.
                    Action::SaveBinding { aor, binding } => {
                        let reg = strowger_store::Registration {
                            aor,
                            contact: binding.contact,
                            expires_at_ms: binding.expires_unix_ms,
                            transport: binding.flow.transport.param_name().to_string(),
                            source: binding.flow.remote,
                            local: Some(binding.flow.local),
                            connection_id: binding.flow.conn.map(|c| c.0),
                            user_agent: binding.user_agent,
                            call_id: binding.call_id,
                            cseq: binding.cseq,
                            q: None,
                            instance_id: None,
                            reg_id: None,
                            updated_at_ms: crate::civil::now_unix_ms(),
                        };
                        drop(self.store.put_registration(reg));
                    }
                    Action::DeleteBinding { aor, contact } => {
                        drop(self.store.remove_registration(&aor, &contact));
                    }
                    Action::Cdr(cdr) => {
                        drop(self.store.insert_cdr(*cdr));
                    }
                }
            }
            let now = Now::real();
            for ev in immediate {
                self.core.handle(now, ev);
            }
        }
    }
}

fn auth_request(f: &AuthFacts, tz: i32) -> pt::AuthRequest {
    pt::AuthRequest {
        method: f.method.clone(),
        aor: f.aor.clone(),
        user: f.user.clone(),
        domain: f.domain.clone(),
        auth_user: f.auth_user.clone(),
        credentials: match f.credentials {
            Credentials::None => pt::Credentials::None,
            Credentials::Valid => pt::Credentials::Valid,
            Credentials::Invalid => pt::Credentials::Invalid,
            Credentials::Stale => pt::Credentials::Stale,
        },
        known_user: f.known_user,
        source: endpoint(&f.source),
        ingress: ingress_of(&f.ingress),
        user_agent: f.user_agent.clone(),
        contacts: f.contacts.clone(),
        expires: f.expires,
        registration: match f.registration {
            RegState::None => pt::RegistrationState::None,
            RegState::Registered => pt::RegistrationState::Registered,
            RegState::Expired => pt::RegistrationState::Expired,
        },
        contact_count: f.contact_count,
        time: strowger_plugin::datetime_from_unix_ms(f.time_unix_ms, tz),
    }
}

fn ingress_of(i: &Ingress) -> pt::Ingress {
    match i {
        Ingress::Trunk(t) => pt::Ingress::Trunk(t.clone()),
        Ingress::User(u) => pt::Ingress::User(u.clone()),
        Ingress::Unknown => pt::Ingress::Unknown,
    }
}

fn verdict_of(d: pt::AuthDecision) -> AuthVerdict {
    match d {
        pt::AuthDecision::Accept(a) => AuthVerdict::Accept {
            max_expires: a.max_expires,
            min_expires: a.min_expires,
            max_contacts: a.max_contacts,
        },
        pt::AuthDecision::Challenge(c) => AuthVerdict::Challenge {
            realm: c.realm,
            algorithms: c
                .algorithms
                .into_iter()
                .map(|a| match a {
                    pt::DigestAlgorithm::Md5 => DigestAlgorithm::Md5,
                    pt::DigestAlgorithm::Sha256 => DigestAlgorithm::Sha256,
                })
                .collect(),
        },
        pt::AuthDecision::Reject(r) => AuthVerdict::Reject(r.code, r.reason),
        pt::AuthDecision::Drop => AuthVerdict::Drop,
    }
}

fn party(p: &crate::core::Party) -> pt::Party {
    pt::Party {
        uri: p.uri.clone(),
        user: p.user.clone(),
        host: p.host.clone(),
        display_name: p.display_name.clone(),
    }
}

fn cause_of(c: &pt::Cause) -> Cause {
    match c {
        pt::Cause::Status(s) => Cause::Status(*s),
        pt::Cause::StatusClass(k) => Cause::StatusClass(*k),
        pt::Cause::NoAnswer => Cause::NoAnswer,
        pt::Cause::Unavailable => Cause::Unavailable,
        pt::Cause::LimitReached => Cause::LimitReached,
    }
}

/// A plan as compared in shadow mode: the decision and the numbers (not
/// the generation, which differs by definition).
fn plan_text(p: &Plan) -> String {
    format!(
        "a={} b={} rn={} {:?}",
        p.a_number,
        p.b_number,
        p.routing_number.as_deref().unwrap_or("-"),
        p.decision
    )
}

/// The decision pipeline of a new call in its pinned generation:
/// ingress rewrite → portability → route → egress rewrite per attempt.
async fn plan_call(g: &Generation, f: &CallFacts, tz: i32, users: &[String]) -> Plan {
    plan_call_traced(g, f, tz, users, &mut Vec::new()).await
}

/// [`plan_call`], collecting plugin errors (decisions that fell back).
async fn plan_call_traced(
    g: &Generation,
    f: &CallFacts,
    tz: i32,
    users: &[String],
    errors: &mut Vec<String>,
) -> Plan {
    let time = strowger_plugin::datetime_from_unix_ms(f.time_unix_ms, tz);
    let ingress = ingress_of(&f.ingress);
    let trunk = f.trunk.as_deref();
    let mut plugins: Vec<String> = Vec::new();
    let mut numbers = pt::Numbers {
        a_number: f.a_number.clone(),
        b_number: f.b_number.clone(),
        display_name: f.display_name.clone(),
    };
    if let Some(d) = g
        .rewrite(
            trunk,
            &f.call_id,
            &pt::RewriteRequest {
                direction: pt::Direction::Ingress,
                trunk: f.trunk.clone(),
                ingress: ingress.clone(),
                numbers: numbers.clone(),
                time,
            },
        )
        .await
    {
        plugins.push(format!("rewrite={}@{}", d.plugin.name, d.plugin.version));
        numbers = d.value;
    }
    let mut portability = None;
    if let Some(d) = g
        .portability(
            trunk,
            &f.call_id,
            &pt::PortabilityQuery {
                number: numbers.b_number.clone(),
                a_number: numbers.a_number.clone(),
                ingress: ingress.clone(),
                time,
            },
        )
        .await
    {
        plugins.push(format!(
            "portability={}@{}",
            d.plugin.name, d.plugin.version
        ));
        portability = d.value;
    }
    let call = pt::Call {
        call_id: f.call_id.clone(),
        ingress: ingress.clone(),
        source: endpoint(&f.source),
        request_uri: f.request_uri.clone(),
        a_number: numbers.a_number.clone(),
        b_number: numbers.b_number.clone(),
        display_name: numbers.display_name.clone(),
        from: party(&f.from),
        to: party(&f.to),
        pai: f.pai.as_ref().map(party),
        diversion: f.diversion.iter().map(party).collect(),
        headers: f
            .headers
            .iter()
            .map(|(n, v)| pt::Header {
                name: n.clone(),
                value: v.clone(),
            })
            .collect(),
        codecs: f.codecs.clone(),
        portability: portability.clone(),
        time,
    };
    let decision = match g.route(trunk, &call).await {
        Some(d) => {
            plugins.push(format!("route={}@{}", d.plugin.name, d.plugin.version));
            if let Some(fb) = &d.fallback {
                tracing::warn!(call = %f.call_id, fallback = ?fb, error = ?d.error, "route plugin failed; fallback applied");
                errors.push(format!(
                    "route plugin {}@{} failed ({:?}); fallback {fb:?}",
                    d.plugin.name, d.plugin.version, d.error
                ));
            }
            d.value
        }
        None => {
            // no route plugin: call configured users by number
            if users.contains(&numbers.b_number) {
                pt::RouteDecision::Forward(pt::Forward {
                    attempts: vec![pt::Attempt {
                        destination: pt::Destination::User(numbers.b_number.clone()),
                        a_number: None,
                        b_number: None,
                        display_name: None,
                        add_headers: Vec::new(),
                        remove_headers: Vec::new(),
                        ring_timeout_ms: None,
                        media: None,
                        codecs: None,
                    }],
                    retry_on: Vec::new(),
                    preferred_cause: pt::PreferredCause::Last,
                })
            } else {
                pt::RouteDecision::Reject(pt::Reject {
                    code: 404,
                    reason: "Not Found".into(),
                })
            }
        }
    };
    let decision = match decision {
        pt::RouteDecision::Reject(r) => PlanDecision::Reject(r.code, r.reason),
        pt::RouteDecision::Redirect(c) => PlanDecision::Redirect(c),
        pt::RouteDecision::Forward(fw) => {
            let mut attempts = Vec::with_capacity(fw.attempts.len());
            for a in fw.attempts {
                let (dest, group) = match a.destination {
                    pt::Destination::User(u) => (Dest::User(u), None),
                    pt::Destination::Trunk(t) => (Dest::Trunk(t), None),
                    pt::Destination::Uri(u) => (Dest::Uri(u), None),
                    pt::Destination::TrunkGroup(gname) => (Dest::Group(gname.clone()), Some(gname)),
                };
                let mut leg = pt::Numbers {
                    a_number: a.a_number.unwrap_or_else(|| numbers.a_number.clone()),
                    b_number: a.b_number.unwrap_or_else(|| numbers.b_number.clone()),
                    display_name: a.display_name.or_else(|| numbers.display_name.clone()),
                };
                if let Dest::Trunk(t) = &dest
                    && let Some(d) = g
                        .rewrite(
                            Some(t),
                            &f.call_id,
                            &pt::RewriteRequest {
                                direction: pt::Direction::Egress,
                                trunk: Some(t.clone()),
                                ingress: ingress.clone(),
                                numbers: leg.clone(),
                                time,
                            },
                        )
                        .await
                {
                    leg = d.value;
                }
                attempts.push(PlannedAttempt {
                    dest,
                    a_number: leg.a_number,
                    b_number: leg.b_number,
                    display_name: leg.display_name,
                    add_headers: a
                        .add_headers
                        .into_iter()
                        .map(|h| (h.name, h.value))
                        .collect(),
                    remove_headers: a.remove_headers,
                    ring_timeout: a.ring_timeout_ms.map(|ms| Duration::from_millis(ms as u64)),
                    relay: a.media.map(|m| matches!(m, pt::MediaMode::Relay)),
                    codecs: a.codecs,
                    group,
                });
            }
            PlanDecision::Forward {
                attempts,
                retry_on: fw.retry_on.iter().map(cause_of).collect(),
                prefer_last: matches!(fw.preferred_cause, pt::PreferredCause::Last),
            }
        }
    };
    Plan {
        a_number: numbers.a_number,
        b_number: numbers.b_number,
        display_name: numbers.display_name,
        routing_number: portability.map(|p| p.routing_number),
        decision,
        generation: format!("{} {}", g.id(), plugins.join(",")),
    }
}
