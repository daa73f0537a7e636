//! Control-plane access to a running switch (the admin API's view): calls
//! in progress and hang-up, registrations and their removal, trunk status.
//!
//! The call state belongs to the single-threaded [`Core`]: the admin side
//! holds a [`Control`] handle and sends [`Command`]s over a channel into the
//! core task, which answers on a oneshot after touching its state (a hang-up
//! produces the same BYE/CANCEL/CDR actions as any other end of a call).
//! Registrations live in the shared location service and are read and
//! removed directly (removals are persisted through the store).
//!
//! This module is a child of `b2bua` (declared there with `#[path]`) so the
//! [`Core`] methods below can read call state without widening its fields.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLock;
use strowger_store::Store;
use tokio::sync::{mpsc, oneshot};

use super::{LegPhase, Phase, trunk_of};
use crate::config::{Config, TrunkConfig};
use crate::core::{Core, Ingress, Now, TimerKind, UserCred};
use crate::flow::Transport;
use crate::location::{ContactUpdate, Location, RegisterOp, aor_key};
use crate::trunks::{ClientTx, GroupInfo, TrunkInfo, TrunkRt, TrunkTimer};

/// One call in progress.
#[derive(Clone, Debug, PartialEq)]
pub struct CallSummary {
    /// The host's call id (as in CDRs and logs).
    pub id: String,
    /// A number (after the plan's rewrites, when planned).
    pub a_number: String,
    /// B number.
    pub b_number: String,
    /// `trunk:<name>`, `user:<aor>` or `unknown`.
    pub ingress: String,
    /// Egress of the answered leg, else of the newest leg being tried.
    pub egress: Option<String>,
    /// `routing`, `trying`, `ringing` or `answered`.
    pub state: &'static str,
    /// Start (Unix ms).
    pub start_ms: i64,
    /// Policy generation that planned the call.
    pub generation: Option<u64>,
}

/// Status of one configured trunk.
#[derive(Clone, Debug, PartialEq)]
pub struct TrunkSummary {
    /// Name.
    pub name: String,
    /// `up` / `down` (OPTIONS qualify), `unknown` (not qualified) or
    /// `unresolved` (its host did not resolve at start).
    pub state: &'static str,
    /// Calls in progress from or to it.
    pub active_calls: u64,
    /// Last qualify round trip.
    pub latency_ms: Option<u32>,
    /// Our registration to it, when it registers.
    pub registration: Option<String>,
}

/// One registered contact.
#[derive(Clone, Debug, PartialEq)]
pub struct RegistrationSummary {
    /// Address of record.
    pub aor: String,
    /// Contact URI.
    pub contact: String,
    /// Seconds left.
    pub expires_in_s: u64,
    /// Source `ip:port` of the REGISTER.
    pub source: String,
    /// Transport.
    pub transport: String,
    /// User-Agent.
    pub user_agent: Option<String>,
}

/// A request to the core task.
pub(crate) enum Command {
    Calls(oneshot::Sender<Vec<CallSummary>>),
    Hangup(String, oneshot::Sender<bool>),
    Trunks(oneshot::Sender<Vec<TrunkSummary>>),
    Users(Vec<UserCred>, oneshot::Sender<usize>),
    SetTrunks(Vec<TrunkInfo>, Vec<GroupInfo>, oneshot::Sender<usize>),
    /// A round trip through the core loop (readiness probe).
    Ping(oneshot::Sender<()>),
    /// A copy of the core's counters (`/metrics`).
    Metrics(oneshot::Sender<Box<crate::metrics::SwitchMetrics>>),
}

/// Handle on a running switch for the control plane. Cheap to clone.
#[derive(Clone)]
pub struct Control {
    tx: mpsc::Sender<Command>,
    location: Arc<RwLock<Location>>,
    store: Store,
    domain: String,
    /// The configuration file (its trunks are the base stored trunks go over).
    file: Arc<Config>,
    /// What the control plane has set: users, and the configuration with
    /// the stored trunks merged in (its users and digest trunks are users
    /// of the registrar too).
    managed: Arc<parking_lot::Mutex<(Vec<UserCred>, Arc<Config>)>>,
    /// Set by the shell's supervisor when a switch task failed.
    health: crate::server::Health,
    /// Limit counters of the transports and the core.
    guard: Arc<std::sync::OnceLock<Arc<crate::guard::GuardMetrics>>>,
    /// The media relay, when it runs (its counters for `/metrics`).
    relay: Arc<std::sync::OnceLock<std::sync::Weak<strowger_media::MediaRelay>>>,
}

impl Control {
    pub(crate) fn new(
        location: Arc<RwLock<Location>>,
        store: Store,
        domain: String,
        file: Arc<Config>,
        health: crate::server::Health,
    ) -> (Control, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(64);
        (
            Control {
                health,
                tx,
                location,
                store,
                domain,
                managed: Arc::new(parking_lot::Mutex::new((Vec::new(), file.clone()))),
                guard: Arc::default(),
                relay: Arc::default(),
                file,
            },
            rx,
        )
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.ok()?;
        rx.await.ok()
    }

    /// True when the core loop answers a round trip within `timeout`: SIP
    /// is being served. False once it died (panicked), stopped, or is stuck.
    pub async fn ping(&self, timeout: std::time::Duration) -> bool {
        self.health.failure().is_none()
            && tokio::time::timeout(timeout, self.ask(Command::Ping))
                .await
                .ok()
                .flatten()
                .is_some()
    }

    /// Why the switch no longer serves SIP (a supervised task panicked or
    /// stopped), if it does not.
    pub fn failure(&self) -> Option<String> {
        self.health.failure()
    }

    /// Uses `m` for [`Control::guard_metrics_text`] (set once at start).
    pub(crate) fn use_guard_metrics(&self, m: Arc<crate::guard::GuardMetrics>) {
        let _ = self.guard.set(m);
    }

    /// Uses `r` for the relay's metrics (set once at start).
    pub(crate) fn use_relay(&self, r: &Arc<strowger_media::MediaRelay>) {
        let _ = self.relay.set(Arc::downgrade(r));
    }

    /// A copy of the core's counters; `None` once the switch stopped.
    pub async fn metrics(&self) -> Option<crate::metrics::SwitchMetrics> {
        self.ask(Command::Metrics).await.map(|b| *b)
    }

    /// Prometheus text (format 0.0.4) of the switch: SIP, registrations,
    /// authentication, protection, calls, trunks, media relay and the
    /// limit counters.
    pub async fn metrics_text(&self) -> String {
        let mut e = crate::metrics::Exposition::default();
        if let Some(m) = self.metrics().await {
            m.render(&mut e);
        }
        e.single(
            "strowger_registrations",
            "gauge",
            "Registered contacts.",
            self.location.read().len(),
        );
        if let Some(r) = self.relay.get().and_then(|w| w.upgrade()) {
            crate::metrics::render_relay(&mut e, &r.stats());
        }
        let mut out = e.finish();
        out.push_str(&self.guard_metrics_text());
        out
    }

    /// Prometheus text of the limit counters (connection caps, stream
    /// timeouts, response cache, per-source tables).
    pub fn guard_metrics_text(&self) -> String {
        self.guard.get().map(|g| g.render()).unwrap_or_default()
    }

    /// Calls in progress (empty once the switch stopped).
    pub async fn calls(&self) -> Vec<CallSummary> {
        self.ask(Command::Calls).await.unwrap_or_default()
    }

    /// Hang up call `id` (BYE to answered legs, CANCEL to ringing ones, a
    /// final response to an unanswered caller); false if no such call.
    pub async fn hangup(&self, id: &str) -> bool {
        let id = id.to_string();
        self.ask(|tx| Command::Hangup(id, tx))
            .await
            .unwrap_or(false)
    }

    /// Configured trunks with their status.
    pub async fn trunks(&self) -> Vec<TrunkSummary> {
        self.ask(Command::Trunks).await.unwrap_or_default()
    }

    /// Sets the users managed over the control plane: they may register and
    /// call like the configuration file's users; one with the same user name
    /// and domain as a configured user replaces it. Returns the number of
    /// users now known.
    pub async fn set_users(&self, managed: Vec<UserCred>) -> usize {
        let all = {
            let mut m = self.managed.lock();
            m.0 = managed;
            all_users(&m.0, &m.1)
        };
        self.ask(|tx| Command::Users(all, tx)).await.unwrap_or(0)
    }

    /// Checks trunks stored over the control plane (each a JSON object with
    /// the fields of a `[[trunks]]` table; `name` is taken from the key)
    /// and merges them over the configuration file's trunks (same name:
    /// the stored one wins). The result is validated with the rules of the
    /// configuration file; every problem is returned, nothing applied.
    pub fn merged_trunks(&self, stored: &[(String, serde_json::Value)]) -> Result<Config, String> {
        let mut cfg = (*self.file).clone();
        let mut problems = Vec::new();
        for (name, v) in stored {
            let mut v = v.clone();
            let Some(o) = v.as_object_mut() else {
                problems.push(format!("trunk \"{name}\": must be a JSON object"));
                continue;
            };
            o.insert("name".into(), serde_json::Value::String(name.clone()));
            let mut t: TrunkConfig = match serde_json::from_value(v) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(format!("trunk \"{name}\": {e}"));
                    continue;
                }
            };
            if let Some(s) = t.register_string.take()
                && let Err(e) = t.apply_register_string(&s)
            {
                problems.push(format!("trunk \"{name}\": {e}"));
                continue;
            }
            match cfg.trunks.iter_mut().find(|x| x.name == t.name) {
                Some(x) => *x = t,
                None => cfg.trunks.push(t),
            }
        }
        if problems.is_empty()
            && let Err(e) = cfg.validate()
        {
            problems.push(e.to_string());
        }
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(problems.join("; "))
        }
    }

    /// Sets the trunks stored over the control plane (see
    /// [`Control::merged_trunks`]): on success the running switch uses the
    /// merged list (host names resolved now); returns the number of trunks.
    /// Trunks whose name stays keep their run-time state (qualify,
    /// registration, counters); new ones are qualified and registered.
    pub async fn set_trunks(
        &self,
        stored: &[(String, serde_json::Value)],
    ) -> Result<usize, String> {
        let cfg = self.merged_trunks(stored)?;
        let mut infos = Vec::with_capacity(cfg.trunks.len());
        for t in &cfg.trunks {
            infos.push(crate::server::resolve_trunk(t).await);
        }
        let groups = crate::server::group_infos(&cfg);
        let n = self
            .ask(|tx| Command::SetTrunks(infos, groups, tx))
            .await
            .ok_or_else(|| "the switch is stopping".to_string())?;
        // peers of register / digest trunks authenticate as users
        let all = {
            let mut m = self.managed.lock();
            m.1 = Arc::new(cfg);
            all_users(&m.0, &m.1)
        };
        self.ask(|tx| Command::Users(all, tx)).await;
        Ok(n)
    }

    /// Current registrations, sorted by AOR.
    pub fn registrations(&self) -> Vec<RegistrationSummary> {
        let now = Instant::now();
        let loc = self.location.read();
        let mut out: Vec<RegistrationSummary> = loc
            .iter()
            .flat_map(|(aor, list)| {
                list.iter()
                    .filter(|b| b.expires_at > now)
                    .map(|b| RegistrationSummary {
                        aor: aor.clone(),
                        contact: b.contact.clone(),
                        expires_in_s: b.expires_in(now) as u64,
                        source: b.flow.remote.to_string(),
                        transport: match b.flow.transport {
                            Transport::Udp => "udp",
                            Transport::Tcp => "tcp",
                            Transport::Tls => "tls",
                        }
                        .to_string(),
                        user_agent: b.user_agent.clone(),
                    })
            })
            .collect();
        out.sort_by(|a, b| (&a.aor, &a.contact).cmp(&(&b.aor, &b.contact)));
        out
    }

    /// Remove the bindings of `aor` (only `contact` if given), in memory and
    /// in the store; returns how many were removed.
    pub fn remove_registration(&self, aor: &str, contact: Option<&str>) -> usize {
        let key = aor_key(aor, &self.domain);
        let now = Instant::now();
        let removed = {
            let mut loc = self.location.write();
            let Some(flow) = loc.lookup(&key, now).first().map(|b| b.flow) else {
                return 0;
            };
            let updates: Vec<ContactUpdate> = contact
                .map(|c| ContactUpdate {
                    contact: c.to_string(),
                    expires: 0,
                })
                .into_iter()
                .collect();
            let op = RegisterOp {
                contacts: &updates,
                wildcard: contact.is_none(),
                // a Call-ID of its own: never "out of order" against a device's REGISTERs
                call_id: "strowger-admin-removal",
                cseq: u32::MAX,
                flow,
                user_agent: None,
                max_contacts: None,
            };
            match loc.apply(&key, &op, now, crate::civil::now_unix_ms()) {
                Ok(ch) => ch.removed,
                Err(_) => Vec::new(),
            }
        };
        for c in &removed {
            drop(self.store.remove_registration(&key, c));
        }
        removed.len()
    }
}

/// Users managed over the control plane, then those of `cfg` (its users and
/// digest trunk peers) not replaced by one with the same user and domain.
fn all_users(managed: &[UserCred], cfg: &Config) -> Vec<UserCred> {
    let mut all = managed.to_vec();
    for b in crate::server::user_creds(cfg) {
        if !all.iter().any(|u| u.user == b.user && u.domain == b.domain) {
            all.push(b);
        }
    }
    all
}

fn ingress_text(i: &Ingress) -> String {
    super::ingress_text(i)
}

impl Core {
    /// Answers a control-plane command (called by the shell's core task).
    pub(crate) fn control(&mut self, now: Now, cmd: Command) {
        match cmd {
            Command::Calls(tx) => {
                let _ = tx.send(self.call_summaries());
            }
            Command::Hangup(id, tx) => {
                let ok = self.hangup_call(now, &id);
                let _ = tx.send(ok);
            }
            Command::Trunks(tx) => {
                let _ = tx.send(self.trunk_summaries());
            }
            Command::Users(users, tx) => {
                self.set_users(users);
                let _ = tx.send(self.cfg.users.len());
            }
            Command::SetTrunks(trunks, groups, tx) => {
                self.replace_trunks(now, trunks, groups);
                let _ = tx.send(self.cfg.trunks.len());
            }
            Command::Ping(tx) => {
                let _ = tx.send(());
            }
            Command::Metrics(tx) => {
                let _ = tx.send(Box::new(self.metrics_snapshot(now)));
            }
        }
    }

    /// Replaces the configured trunks and groups. A trunk whose name stays
    /// keeps its run-time state and timers (re-indexed); if its qualify or
    /// registration target changed it starts those over. New trunks are
    /// started (qualify, registration); removed ones lose their timers and
    /// client transactions.
    pub(crate) fn replace_trunks(
        &mut self,
        now: Now,
        trunks: Vec<TrunkInfo>,
        groups: Vec<GroupInfo>,
    ) {
        let old = std::mem::replace(&mut self.cfg.trunks, trunks);
        let mut old_rt: Vec<Option<TrunkRt>> = std::mem::take(&mut self.trunks.rt)
            .into_iter()
            .map(Some)
            .collect();
        let new = &self.cfg.trunks;
        // old index -> new index, None when removed or restarted
        let keep: Vec<Option<usize>> = old
            .iter()
            .map(|o| {
                let j = new.iter().position(|n| n.name == o.name)?;
                let n = &new[j];
                let same = n.addr == o.addr
                    && n.host == o.host
                    && n.transport == o.transport
                    && n.qualify == o.qualify
                    && n.register == o.register
                    && n.register_expires == o.register_expires
                    && n.user == o.user
                    && n.auth_user == o.auth_user
                    && n.secret == o.secret;
                same.then_some(j)
            })
            .collect();
        let mut started = Vec::new();
        self.trunks.rt = new
            .iter()
            .enumerate()
            .map(|(j, n)| match old.iter().position(|o| o.name == n.name) {
                Some(i) => {
                    let mut rt = old_rt[i].take().unwrap_or_else(TrunkRt::new);
                    if keep[i].is_none() {
                        rt.qualify_tx = None;
                        rt.reg_tx = None;
                        started.push(j);
                    }
                    rt
                }
                None => {
                    started.push(j);
                    TrunkRt::new()
                }
            })
            .collect();
        let remap = |i: &mut usize| match keep.get(*i).copied().flatten() {
            Some(j) => {
                *i = j;
                true
            }
            None => false,
        };
        self.timers.retain(|k| match k {
            TimerKind::Trunk(
                TrunkTimer::Qualify(i) | TrunkTimer::QualifyTimeout(i, _) | TrunkTimer::Register(i),
            ) => remap(i),
            _ => true,
        });
        self.trunks.client.retain(|_, c| match c {
            ClientTx::Qualify(i) | ClientTx::Register(i) => remap(i),
        });
        self.cfg.groups = groups;
        if self.started {
            for j in started {
                self.start_trunk(now, j);
            }
        }
        self.refresh_trunk_view();
        tracing::info!(
            trunks = self.cfg.trunks.len(),
            "trunks replaced over the control plane"
        );
    }

    /// Calls in progress (ended calls lingering for late messages are not listed).
    pub fn call_summaries(&self) -> Vec<CallSummary> {
        let mut out: Vec<CallSummary> = self
            .calls
            .values()
            .filter(|c| c.phase != Phase::Ended)
            .map(|c| {
                let leg = c
                    .winner
                    .and_then(|w| c.bs.get(w as usize))
                    .or_else(|| c.bs.last());
                let state = match c.phase {
                    Phase::Routing => "routing",
                    Phase::Answered => "answered",
                    _ if c.bs.iter().any(|l| l.got_provisional) => "ringing",
                    _ => "trying",
                };
                let (a, b) = match &c.plan {
                    Some(p) => (p.a_number.clone(), p.b_number.clone()),
                    None => (c.facts.a_number.clone(), c.facts.b_number.clone()),
                };
                CallSummary {
                    id: c.host_id.clone(),
                    a_number: a,
                    b_number: b,
                    ingress: ingress_text(&c.facts.ingress),
                    egress: leg.map(|l| l.egress.clone()),
                    state,
                    start_ms: c.facts.time_unix_ms,
                    generation: c
                        .plan
                        .as_ref()
                        .and_then(|p| p.generation.split_whitespace().next()?.parse().ok()),
                }
            })
            .collect();
        out.sort_by_key(|c| c.start_ms);
        out
    }

    /// Hangs up call `id` (the host call id); false if no such call in progress.
    pub fn hangup_call(&mut self, now: Now, id: &str) -> bool {
        let Some((&call, c)) = self.calls.iter().find(|(_, c)| c.host_id == id) else {
            return false;
        };
        match c.phase {
            Phase::Ended => false,
            Phase::Answered => {
                self.hangup_both(now, call, None, "admin", 200, "Hung up by operator");
                true
            }
            Phase::Routing | Phase::Trying => {
                let legs = c.bs.len() as u32;
                for l in 0..legs {
                    self.cancel_leg(call, l, "hung up by operator");
                }
                self.fail_call(now, call, 480, "Hung up by operator", "admin");
                true
            }
        }
    }

    /// A copy of the counters (`/metrics`).
    pub fn metrics_snapshot(&self, now: Now) -> crate::metrics::SwitchMetrics {
        let p = &self.trunks.protection;
        let uac = self.trunks.uac.stats();
        let trunks = self
            .trunk_summaries()
            .into_iter()
            .zip(&self.trunks.rt)
            .map(|(t, rt)| crate::metrics::TrunkMetrics {
                name: t.name,
                state: t.state,
                latency_ms: t.latency_ms,
                active_calls: t.active_calls,
                state_changes: rt.state_changes,
            })
            .collect();
        crate::metrics::SwitchMetrics {
            stats: self.stats.clone(),
            sip: self.sip.clone(),
            protection: crate::metrics::ProtectionCounters {
                banned_drops: p.banned_drops,
                rate_drops: p.rate_drops,
                scanner_drops: p.scanner_drops,
                bans: p.bans,
                banned_now: p.banned_count(now.mono) as u64,
            },
            uac_retransmissions: uac.retransmissions,
            uac_timeouts: uac.timeouts,
            calls_active: self.stats.active_calls,
            trunks,
        }
    }

    /// Configured trunks with their call counts.
    pub fn trunk_summaries(&self) -> Vec<TrunkSummary> {
        self.cfg
            .trunks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let active = self
                    .calls
                    .values()
                    .filter(|c| c.phase != Phase::Ended)
                    .filter(|c| {
                        c.facts.trunk.as_deref() == Some(t.name.as_str())
                            || c.bs.iter().any(|l| {
                                !matches!(l.phase, LegPhase::Failed | LegPhase::Terminated)
                                    && trunk_of(&l.egress).as_deref() == Some(t.name.as_str())
                            })
                    })
                    .count() as u64;
                let rt = &self.trunks.rt[i];
                TrunkSummary {
                    name: t.name.clone(),
                    state: if t.addr.is_none() && t.host != "dynamic" {
                        "unresolved"
                    } else if !rt.up {
                        "down"
                    } else if t.qualify.is_some() && rt.latency_ms.is_some() {
                        "up"
                    } else {
                        "unknown"
                    },
                    active_calls: active,
                    latency_ms: rt.latency_ms,
                    registration: t.register.then(|| match &rt.reg {
                        crate::trunks::RegStatus::Registered => "registered".to_string(),
                        crate::trunks::RegStatus::Registering => "registering".to_string(),
                        crate::trunks::RegStatus::Unregistered => "unregistered".to_string(),
                        crate::trunks::RegStatus::Failed(why) => format!("failed: {why}"),
                    }),
                }
            })
            .collect()
    }
}
