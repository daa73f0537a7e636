//! Trunks at run time, inside the sans-IO core: qualify (OPTIONS),
//! outbound registration (we are the provider's client), call limits,
//! trunk-group member selection, and the protection layer (brute-force
//! bans, per-source rate limit, scanner User-Agents).
//!
//! Client requests of our own (OPTIONS, REGISTER) run through
//! [`strowger_sip::TransactionLayer`]: retransmissions and Timer F are its
//! job; this module only reacts to its responses and timeouts.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::RwLock;
use strowger_sip::transaction::{Output, TransactionLayer, TuEvent, TxConfig, TxId};
use strowger_sip::{Message, Method, RequestBuilder};

use crate::core::{Cause, Core, Now, TimerKind};
use crate::flow::{Target, Transport};

/// How a trunk's inbound requests are recognised (mirrors the config).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TrunkInbound {
    /// Trusted by source address.
    #[default]
    Ip,
    /// The peer registers to us; trusted from its registered flow.
    Register,
    /// Digest per call with the trunk's credentials.
    Digest,
    /// Outbound only.
    None,
}

/// Member selection of a trunk group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GroupAlgorithm {
    /// Proportional to forwarded calls.
    #[default]
    Calls,
    /// Proportional to active calls.
    Active,
}

/// A trunk as the core needs it.
#[derive(Clone, Debug)]
pub struct TrunkInfo {
    /// Name.
    pub name: String,
    /// Host as configured (used in Request-URIs); `dynamic` for peers that
    /// register to us.
    pub host: String,
    /// Resolved address (resolved once at start; none = unresolvable or
    /// dynamic).
    pub addr: Option<SocketAddr>,
    /// Transport.
    pub transport: Transport,
    /// Inbound trust.
    pub inbound: TrunkInbound,
    /// Match the source by IP only.
    pub ignore_source_port: bool,
    /// User we register as / the peer authenticates as.
    pub user: String,
    /// Digest user name (default `user`).
    pub auth_user: Option<String>,
    /// Password.
    pub secret: Option<String>,
    /// From user on calls to the trunk.
    pub fromuser: Option<String>,
    /// From host on calls to the trunk.
    pub fromdomain: Option<String>,
    /// Register to the peer.
    pub register: bool,
    /// Contact user of our registration (inbound calls arrive for it).
    pub did: Option<String>,
    /// Requested registration expiry.
    pub register_expires: u32,
    /// Retry wait after a failed registration.
    pub register_retry: Duration,
    /// Failed attempts before giving up (0 = forever).
    pub register_attempts: u32,
    /// OPTIONS interval (none = off).
    pub qualify: Option<Duration>,
    /// Concurrent inbound calls.
    pub max_in: Option<u32>,
    /// Concurrent outbound calls.
    pub max_out: Option<u32>,
    /// Concurrent calls in total.
    pub max_total: Option<u32>,
    /// Unified caller number.
    pub caller_id: Option<String>,
    /// Extra Request-URI parameters (without the leading `;`).
    pub ruri_params: Option<String>,
    /// Inbound A from P-Asserted-Identity.
    pub use_pai: bool,
    /// Inbound B from To instead of the Request-URI.
    pub b_from_to: bool,
    /// Codec allow list.
    pub codecs: Option<Vec<String>>,
    /// Media relay (true) or bypass when the decision does not say.
    pub relay: Option<bool>,
    /// How the trunk carries DTMF (the relay converts RFC 2833 from the
    /// caller into SIP INFO for `info` trunks; `inband` trunks are not
    /// offered telephone-event).
    pub dtmf: crate::config::DtmfMode,
    /// Outbound proxies, in order (empty = send to `addr`).
    pub proxies: Vec<SocketAddr>,
    /// No answer at all from a proxy within this → the next proxy.
    pub proxy_timeout: Duration,
    /// Session timer offered on calls to the trunk (RFC 4028; none = off).
    pub session_expires: Option<Duration>,
}

impl TrunkInfo {
    /// A trunk with defaults: trusted by IP, no limits, no registration.
    pub fn new(name: &str, host: &str, addr: Option<SocketAddr>, transport: Transport) -> Self {
        TrunkInfo {
            name: name.into(),
            host: host.into(),
            addr,
            transport,
            inbound: TrunkInbound::Ip,
            ignore_source_port: true,
            user: name.into(),
            auth_user: None,
            secret: None,
            fromuser: None,
            fromdomain: None,
            register: false,
            did: None,
            register_expires: 3600,
            register_retry: Duration::from_secs(60),
            register_attempts: 0,
            qualify: None,
            max_in: None,
            max_out: None,
            max_total: None,
            caller_id: None,
            ruri_params: None,
            use_pai: false,
            b_from_to: false,
            codecs: None,
            relay: None,
            dtmf: crate::config::DtmfMode::Rfc2833,
            proxies: Vec::new(),
            proxy_timeout: Duration::from_secs(2),
            session_expires: None,
        }
    }

    /// AOR key of a dynamic trunk's registration (`user@domain`).
    pub fn aor(&self, domain: &str) -> String {
        crate::location::aor_key(&self.user, domain)
    }
}

/// A trunk group.
#[derive(Clone, Debug)]
pub struct GroupInfo {
    /// Name.
    pub name: String,
    /// Algorithm.
    pub algorithm: GroupAlgorithm,
    /// Keep proportions even when members fail.
    pub force_proportional: bool,
    /// Members: trunk index and weight.
    pub members: Vec<(usize, u32)>,
}

/// Protection settings.
#[derive(Clone, Debug)]
pub struct ProtectionInfo {
    /// Failures that trigger a ban.
    pub ban_failures: u32,
    /// Window for counting failures.
    pub ban_window: Duration,
    /// Ban length (zero = off).
    pub ban_time: Duration,
    /// Requests per second per source (0 = off).
    pub rate_limit: u32,
    /// Scanner User-Agent regex (case-insensitive).
    pub scanner: Option<regex_lite::Regex>,
}

impl Default for ProtectionInfo {
    fn default() -> Self {
        ProtectionInfo {
            ban_failures: 3,
            ban_window: Duration::from_secs(60),
            ban_time: Duration::from_secs(300),
            rate_limit: 0,
            scanner: None,
        }
    }
}

/// Registration state of a trunk we register for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegStatus {
    /// Not started or between attempts.
    Unregistered,
    /// A REGISTER is in flight.
    Registering,
    /// Registered until the refresh.
    Registered,
    /// Gave up after the configured attempts.
    Failed(String),
}

/// What plugins and the API see of a trunk.
#[derive(Clone, Debug, PartialEq)]
pub struct TrunkSnapshot {
    /// Name.
    pub name: String,
    /// Reachable (qualify) and usable.
    pub up: bool,
    /// Last qualify round trip.
    pub latency_ms: Option<u32>,
    /// Active inbound calls.
    pub active_in: u32,
    /// Active outbound calls.
    pub active_out: u32,
    /// Limits.
    pub max_in: Option<u32>,
    /// Limits.
    pub max_out: Option<u32>,
    /// Limits.
    pub max_total: Option<u32>,
    /// Registration state (none when the trunk does not register).
    pub registration: Option<RegStatus>,
}

/// Shared, read-mostly view of the trunks (plugins' `trunk-status`, API).
pub type TrunkView = Arc<RwLock<Vec<TrunkSnapshot>>>;

/// Per-trunk run-time state.
#[derive(Debug)]
pub(crate) struct TrunkRt {
    pub(crate) up: bool,
    pub(crate) latency_ms: Option<u32>,
    /// Outstanding OPTIONS: transaction and send time.
    pub(crate) qualify_tx: Option<(TxId, Instant)>,
    /// Calls forwarded so far (group algorithm `calls`).
    pub(crate) forwarded: u64,
    /// Up/down changes (`/metrics`).
    pub(crate) state_changes: u64,
    pub(crate) reg: RegStatus,
    pub(crate) reg_tx: Option<TxId>,
    reg_call_id: String,
    reg_tag: String,
    reg_cseq: u32,
    /// Consecutive failed registration attempts.
    reg_failures: u32,
    /// Challenges answered in the current attempt (stop after 2).
    reg_auth_rounds: u32,
    reg_nc: u32,
}

impl TrunkRt {
    /// The state of a trunk that was just configured.
    pub(crate) fn new() -> TrunkRt {
        TrunkRt {
            up: true,
            latency_ms: None,
            qualify_tx: None,
            forwarded: 0,
            state_changes: 0,
            reg: RegStatus::Unregistered,
            reg_tx: None,
            reg_call_id: strowger_sip::ids::call_id(None),
            reg_tag: strowger_sip::ids::tag(),
            reg_cseq: 0,
            reg_failures: 0,
            reg_auth_rounds: 0,
            reg_nc: 0,
        }
    }
}

/// Which client transaction a [`TxId`] belongs to.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ClientTx {
    Qualify(usize),
    Register(usize),
}

/// Trunk timers.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TrunkTimer {
    /// Send the next OPTIONS.
    Qualify(usize),
    /// The OPTIONS sent at this instant had no answer in time.
    QualifyTimeout(usize, TxId),
    /// (Re-)register now.
    Register(usize),
    /// Refresh the shared snapshot (active call counts).
    Snapshot,
    /// Forget old protection entries.
    ProtectionSweep,
}

/// Failed authentications and bans per source address, and a token
/// bucket per source for the rate limit.
#[derive(Default)]
pub(crate) struct Protection {
    failures: HashMap<IpAddr, Vec<Instant>>,
    banned: HashMap<IpAddr, Instant>,
    buckets: HashMap<IpAddr, (f64, Instant)>,
    /// Last time the full bucket table was pruned.
    buckets_pruned: Option<Instant>,
    /// Last time "table full" was logged.
    sources_full_logged: Option<Instant>,
    /// Last time a rate-limit drop was logged, and drops since.
    rate_logged: Option<Instant>,
    rate_suppressed: u64,
    /// Requests dropped because the source is banned.
    pub(crate) banned_drops: u64,
    /// Requests dropped by the rate limit.
    pub(crate) rate_drops: u64,
    /// Requests dropped for a scanner User-Agent.
    pub(crate) scanner_drops: u64,
    /// Bans issued.
    pub(crate) bans: u64,
}

impl Protection {
    /// Sources banned at `now`.
    pub(crate) fn banned_count(&self, now: Instant) -> usize {
        self.banned.values().filter(|until| **until > now).count()
    }

    /// Sources tracked (rate buckets, failure lists, bans).
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> (usize, usize, usize) {
        (self.buckets.len(), self.failures.len(), self.banned.len())
    }
}

/// Trunk and protection state of the core.
pub(crate) struct Trunks {
    pub(crate) rt: Vec<TrunkRt>,
    pub(crate) uac: TransactionLayer,
    pub(crate) client: HashMap<TxId, ClientTx>,
    pub(crate) protection: Protection,
    pub(crate) view: TrunkView,
}

/// How long an OPTIONS may go unanswered before the trunk is down.
pub const QUALIFY_TIMEOUT: Duration = Duration::from_secs(2);

impl Trunks {
    pub(crate) fn new(n: usize, t1: Duration, t2: Duration, t4: Duration) -> Trunks {
        let cfg = TxConfig {
            t1,
            t2,
            t4,
            ..Default::default()
        };
        Trunks {
            rt: (0..n).map(|_| TrunkRt::new()).collect(),
            uac: TransactionLayer::new(cfg),
            client: HashMap::new(),
            protection: Protection::default(),
            view: Arc::new(RwLock::new(Vec::new())),
        }
    }
}

fn our_tp(t: strowger_sip::Transport) -> Transport {
    match t {
        strowger_sip::Transport::Tcp => Transport::Tcp,
        strowger_sip::Transport::Tls => Transport::Tls,
        _ => Transport::Udp,
    }
}

impl Core {
    /// Schedules the first qualify and registration of every trunk.
    pub(crate) fn start_trunks(&mut self, now: Now) {
        for i in 0..self.cfg.trunks.len() {
            self.start_trunk(now, i);
        }
        self.timers
            .schedule(now.mono, TimerKind::Trunk(TrunkTimer::Snapshot));
        self.timers.schedule(
            now.mono + Duration::from_secs(30),
            TimerKind::Trunk(TrunkTimer::ProtectionSweep),
        );
    }

    /// Schedules the first qualify and registration of trunk `i`.
    pub(crate) fn start_trunk(&mut self, now: Now, i: usize) {
        let t = &self.cfg.trunks[i];
        if t.qualify.is_some() && t.addr.is_some() {
            self.timers
                .schedule(now.mono, TimerKind::Trunk(TrunkTimer::Qualify(i)));
        }
        if t.register && t.addr.is_some() {
            self.timers
                .schedule(now.mono, TimerKind::Trunk(TrunkTimer::Register(i)));
        }
    }

    pub(crate) fn on_trunk_timer(&mut self, now: Now, t: TrunkTimer) {
        match t {
            TrunkTimer::Qualify(i) => self.send_qualify(now, i),
            TrunkTimer::QualifyTimeout(i, tx) => {
                if self.trunks.rt[i].qualify_tx.is_some_and(|(t, _)| t == tx) {
                    self.trunks.rt[i].qualify_tx = None;
                    self.set_trunk_up(i, false, None);
                }
            }
            TrunkTimer::Register(i) => self.send_register(now, i, None),
            TrunkTimer::Snapshot => {
                self.refresh_trunk_view();
                self.timers.schedule(
                    now.mono + Duration::from_secs(1),
                    TimerKind::Trunk(TrunkTimer::Snapshot),
                );
            }
            TrunkTimer::ProtectionSweep => {
                let p = &mut self.trunks.protection;
                let window = self.cfg.protection.ban_window;
                p.failures.retain(|_, v| {
                    v.retain(|t| now.mono.saturating_duration_since(*t) < window);
                    !v.is_empty()
                });
                p.banned.retain(|_, until| *until > now.mono);
                p.buckets
                    .retain(|_, (_, last)| now.mono.saturating_duration_since(*last) < window);
                self.timers.schedule(
                    now.mono + Duration::from_secs(30),
                    TimerKind::Trunk(TrunkTimer::ProtectionSweep),
                );
            }
        }
    }

    fn set_trunk_up(&mut self, i: usize, up: bool, latency_ms: Option<u32>) {
        let rt = &mut self.trunks.rt[i];
        if rt.up != up {
            rt.state_changes += 1;
            let state = if up { "up" } else { "down" };
            if up {
                tracing::info!(trunk = %self.cfg.trunks[i].name, state, latency_ms = ?latency_ms, "trunk state changed");
            } else {
                tracing::warn!(trunk = %self.cfg.trunks[i].name, state, "trunk state changed");
            }
        }
        rt.up = up;
        if latency_ms.is_some() {
            rt.latency_ms = latency_ms;
        }
        self.refresh_trunk_view();
    }

    /// A fresh client request to trunk `i` from us.
    #[allow(clippy::too_many_arguments)]
    fn trunk_request(
        &self,
        i: usize,
        method: &Method,
        ruri: &str,
        from_user: &str,
        call_id: &str,
        tag: &str,
        cseq: u32,
    ) -> (RequestBuilder<'_>, SocketAddr, Transport) {
        let t = &self.cfg.trunks[i];
        let addr = t.addr.expect("trunk with an address");
        let local = self.local_for(t.transport, addr.is_ipv6());
        let branch = strowger_sip::ids::branch();
        let from = format!("<sip:{from_user}@{}>", t.host);
        let b = RequestBuilder::new(method, ruri)
            .via(
                crate::b2bua::sip_transport(t.transport),
                &crate::b2bua::fmt_hostport(local),
                &branch,
                true,
            )
            .max_forwards(70)
            .from(&from, tag)
            .call_id(call_id)
            .cseq(cseq)
            .header("User-Agent", &self.cfg.user_agent);
        (b, addr, t.transport)
    }

    fn start_client_tx(
        &mut self,
        now: Now,
        data: Bytes,
        addr: SocketAddr,
        transport: Transport,
        what: ClientTx,
    ) -> Option<TxId> {
        let msg = strowger_sip::parse(data).ok()?;
        match self.trunks.uac.send_request(
            msg,
            addr,
            crate::b2bua::sip_transport(transport),
            now.mono,
        ) {
            Ok(tx) => {
                self.trunks.client.insert(tx, what);
                self.pump_uac(now);
                Some(tx)
            }
            Err(e) => {
                tracing::warn!(error = %e, "trunk client request not sent");
                None
            }
        }
    }

    fn send_qualify(&mut self, now: Now, i: usize) {
        let Some(interval) = self.cfg.trunks[i].qualify else {
            return;
        };
        self.timers.schedule(
            now.mono + interval,
            TimerKind::Trunk(TrunkTimer::Qualify(i)),
        );
        if self.trunks.rt[i].qualify_tx.is_some() {
            return; // the previous one is still out (its timeout decides)
        }
        let t = &self.cfg.trunks[i];
        let hostport = match t.addr {
            Some(a) if a.port() != t.transport.default_port() => format!("{}:{}", t.host, a.port()),
            _ => t.host.clone(),
        };
        let ruri = format!("sip:{hostport}");
        let call_id = strowger_sip::ids::call_id(None);
        let tag = strowger_sip::ids::tag();
        let (b, addr, tp) =
            self.trunk_request(i, &Method::Options, &ruri, "ping", &call_id, &tag, 1);
        let data = b
            .to(&format!("<{ruri}>"), None)
            .header("Accept", "application/sdp")
            .build();
        if let Some(tx) = self.start_client_tx(now, data, addr, tp, ClientTx::Qualify(i)) {
            self.trunks.rt[i].qualify_tx = Some((tx, now.mono));
            let timeout =
                QUALIFY_TIMEOUT.min(self.cfg.trunks[i].qualify.unwrap_or(QUALIFY_TIMEOUT));
            self.timers.schedule(
                now.mono + timeout,
                TimerKind::Trunk(TrunkTimer::QualifyTimeout(i, tx)),
            );
        }
    }

    /// Sends a REGISTER for trunk `i`, answering `challenge` (the 401/407
    /// that refused the previous one) if given.
    fn send_register(&mut self, now: Now, i: usize, challenge: Option<&Message>) {
        if self.trunks.rt[i].reg_tx.is_some() && challenge.is_none() {
            return;
        }
        let t = self.cfg.trunks[i].clone();
        let Some(addr) = t.addr else { return };
        let hostport = if addr.port() != t.transport.default_port() {
            format!("{}:{}", t.host, addr.port())
        } else {
            t.host.clone()
        };
        let ruri = format!("sip:{hostport}");
        let aor = format!("sip:{}@{}", t.user, t.host);
        let local = self.local_for(t.transport, addr.is_ipv6());
        let contact_user = t.did.clone().unwrap_or_else(|| t.user.clone());
        let contact = format!(
            "<sip:{contact_user}@{}{}>",
            crate::b2bua::fmt_hostport(local),
            match t.transport {
                Transport::Udp => "",
                Transport::Tcp => ";transport=tcp",
                Transport::Tls => ";transport=tls",
            }
        );
        let (call_id, tag) = {
            let rt = &mut self.trunks.rt[i];
            rt.reg_cseq += 1;
            (rt.reg_call_id.clone(), rt.reg_tag.clone())
        };
        let cseq = self.trunks.rt[i].reg_cseq;
        let mut auth: Option<(&'static str, String)> = None;
        if let Some(ch_msg) = challenge {
            let ch = pick_challenge(ch_msg);
            let Some((aname, ch)) = ch else {
                self.register_failed(now, i, "challenge without a usable digest".into());
                return;
            };
            self.trunks.rt[i].reg_nc += 1;
            let user = t.auth_user.as_deref().unwrap_or(&t.user);
            let value = strowger_sip::digest::answer(
                &ch,
                "REGISTER",
                &ruri,
                user,
                t.secret.as_deref().unwrap_or(""),
                None,
                self.trunks.rt[i].reg_nc,
            );
            auth = Some((aname, value));
        }
        let (b, addr, tp) =
            self.trunk_request(i, &Method::Register, &ruri, &t.user, &call_id, &tag, cseq);
        let mut b = b
            .to(&format!("<{aor}>"), None)
            .contact(&contact)
            .header("Expires", &t.register_expires.to_string());
        if let Some((name, value)) = &auth {
            b = b.header(name, value);
        }
        let data = b.build();
        self.trunks.rt[i].reg = RegStatus::Registering;
        let tx = self.start_client_tx(now, data, addr, tp, ClientTx::Register(i));
        self.trunks.rt[i].reg_tx = tx;
        if tx.is_none() {
            self.register_failed(now, i, "REGISTER could not be sent".into());
        }
    }

    fn register_failed(&mut self, now: Now, i: usize, why: String) {
        let t = &self.cfg.trunks[i];
        let rt = &mut self.trunks.rt[i];
        rt.reg_tx = None;
        rt.reg_auth_rounds = 0;
        rt.reg_failures += 1;
        if t.register_attempts > 0 && rt.reg_failures >= t.register_attempts {
            tracing::warn!(trunk = %t.name, attempts = rt.reg_failures, reason = %why, "registration failed; giving up");
            rt.reg = RegStatus::Failed(why);
        } else {
            tracing::warn!(trunk = %t.name, attempt = rt.reg_failures, reason = %why, retry_s = t.register_retry.as_secs(), "registration failed; will retry");
            rt.reg = RegStatus::Unregistered;
            self.timers.schedule(
                now.mono + t.register_retry,
                TimerKind::Trunk(TrunkTimer::Register(i)),
            );
        }
        self.refresh_trunk_view();
    }

    /// Runs the client transaction layer's timers.
    pub(crate) fn poll_uac(&mut self, now: Now) {
        self.trunks.uac.on_timer(now.mono);
        self.pump_uac(now);
    }

    /// True (and handled) if `msg` is a response to one of our own client
    /// requests.
    pub(crate) fn uac_response(
        &mut self,
        now: Now,
        msg: &Message,
        src: SocketAddr,
        tp: Transport,
    ) -> bool {
        if self.trunks.client.is_empty() {
            return false;
        }
        let before = self.trunks.uac.stats();
        self.trunks
            .uac
            .on_incoming(msg.clone(), src, crate::b2bua::sip_transport(tp), now.mono);
        let _ = before;
        let mut mine = false;
        let outs: Vec<_> = self.trunks.uac.drain_outputs().collect();
        for o in outs {
            match o {
                Output::Event(TuEvent::StrayResponse { .. }) => {}
                Output::Event(TuEvent::Response { .. }) => {
                    mine = true;
                    self.on_uac_output(now, o);
                }
                other => self.on_uac_output(now, other),
            }
        }
        mine
    }

    fn pump_uac(&mut self, now: Now) {
        let outs: Vec<_> = self.trunks.uac.drain_outputs().collect();
        for o in outs {
            self.on_uac_output(now, o);
        }
    }

    fn on_uac_output(&mut self, now: Now, o: Output) {
        match o {
            Output::Transmit {
                bytes,
                dest,
                transport,
            } => self.send(
                Target::Addr {
                    transport: our_tp(transport),
                    addr: dest,
                },
                bytes,
            ),
            Output::Event(ev) => match ev {
                TuEvent::Response { tx, msg } => self.on_client_response(now, tx, msg),
                TuEvent::Timeout { tx } | TuEvent::TransportError { tx } => {
                    self.on_client_timeout(now, tx)
                }
                TuEvent::Terminated { tx } => {
                    self.trunks.client.remove(&tx);
                }
                _ => {}
            },
        }
    }

    fn on_client_response(&mut self, now: Now, tx: TxId, msg: Message) {
        let code = msg.status().unwrap_or(0);
        if code < 200 {
            return;
        }
        match self.trunks.client.get(&tx).copied() {
            Some(ClientTx::Qualify(i)) => {
                if let Some((t, sent)) = self.trunks.rt[i].qualify_tx
                    && t == tx
                {
                    self.trunks.rt[i].qualify_tx = None;
                    let ms = now.mono.saturating_duration_since(sent).as_millis() as u32;
                    // any answer means the peer is alive (Asterisk qualify)
                    self.set_trunk_up(i, true, Some(ms));
                }
            }
            Some(ClientTx::Register(i)) => {
                if self.trunks.rt[i].reg_tx != Some(tx) {
                    return;
                }
                self.trunks.rt[i].reg_tx = None;
                match code {
                    200..=299 => {
                        let t = &self.cfg.trunks[i];
                        let granted = granted_expires(&msg, t.did.as_deref().unwrap_or(&t.user))
                            .unwrap_or(t.register_expires)
                            .max(1);
                        // refresh ahead of expiry (80 %, at least 2 s ahead)
                        let refresh = if granted > 10 {
                            (granted * 4 / 5).min(granted - 2)
                        } else {
                            granted.saturating_sub(1).max(1)
                        };
                        tracing::info!(trunk = %t.name, expires = granted, refresh_s = refresh, "registered to trunk");
                        let rt = &mut self.trunks.rt[i];
                        rt.reg = RegStatus::Registered;
                        rt.reg_failures = 0;
                        rt.reg_auth_rounds = 0;
                        self.timers.schedule(
                            now.mono + Duration::from_secs(refresh as u64),
                            TimerKind::Trunk(TrunkTimer::Register(i)),
                        );
                        self.refresh_trunk_view();
                    }
                    401 | 407
                        if self.cfg.trunks[i].secret.is_some()
                            && (self.trunks.rt[i].reg_auth_rounds == 0
                                || (self.trunks.rt[i].reg_auth_rounds < 2
                                    && challenge_is_stale(&msg))) =>
                    {
                        // a challenge to our credentials means they are
                        // wrong (RFC 3261 22.2: do not retry them) unless it
                        // says stale=true (the nonce expired: one more round)
                        self.trunks.rt[i].reg_auth_rounds += 1;
                        self.send_register(now, i, Some(&msg));
                    }
                    _ => {
                        let reason = format!("{code} {}", msg.reason().unwrap_or(""));
                        self.register_failed(now, i, reason.trim().to_string());
                    }
                }
            }
            None => {}
        }
    }

    fn on_client_timeout(&mut self, now: Now, tx: TxId) {
        match self.trunks.client.remove(&tx) {
            Some(ClientTx::Qualify(i))
                if self.trunks.rt[i].qualify_tx.is_some_and(|(t, _)| t == tx) =>
            {
                self.trunks.rt[i].qualify_tx = None;
                self.set_trunk_up(i, false, None);
            }
            Some(ClientTx::Register(i)) if self.trunks.rt[i].reg_tx == Some(tx) => {
                self.register_failed(now, i, "no answer".into());
            }
            _ => {}
        }
    }

    /// Active calls per trunk: (inbound, outbound).
    pub(crate) fn trunk_usage(&self, i: usize) -> (u32, u32) {
        let name = &self.cfg.trunks[i].name;
        let mut inb = 0;
        let mut out = 0;
        for c in self.calls.values() {
            let (i_in, i_out) = c.trunk_use(name);
            inb += i_in as u32;
            out += i_out;
        }
        (inb, out)
    }

    /// Why trunk `i` cannot take one more outbound call now, if it cannot.
    pub(crate) fn trunk_unusable(&self, i: usize) -> Option<Cause> {
        let t = &self.cfg.trunks[i];
        if !self.trunks.rt[i].up {
            return Some(Cause::Unavailable);
        }
        if t.max_out.is_some() || t.max_total.is_some() {
            let (inb, out) = self.trunk_usage(i);
            if t.max_out.is_some_and(|m| out >= m) || t.max_total.is_some_and(|m| inb + out >= m) {
                return Some(Cause::LimitReached);
            }
        }
        None
    }

    /// True if trunk `i` may take one more inbound call.
    pub(crate) fn trunk_accepts_inbound(&self, i: usize) -> bool {
        let t = &self.cfg.trunks[i];
        if t.max_in.is_none() && t.max_total.is_none() {
            return true;
        }
        let (inb, out) = self.trunk_usage(i);
        !(t.max_in.is_some_and(|m| inb >= m) || t.max_total.is_some_and(|m| inb + out >= m))
    }

    /// Picks a member of group `g` for a new attempt, skipping `tried`
    /// members. Weight-0 members are only used once another member was
    /// tried (retry). Returns the trunk index, or the cause when none can
    /// take the call.
    pub(crate) fn pick_member(&self, g: usize, tried: &[usize]) -> Result<usize, Cause> {
        let grp = &self.cfg.groups[g];
        let mut cause = Cause::Unavailable;
        let mut best: Option<(f64, usize)> = None;
        let retrying = !tried.is_empty();
        let load_of = |ti: usize| match grp.algorithm {
            GroupAlgorithm::Calls => self.trunks.rt[ti].forwarded as f64,
            GroupAlgorithm::Active => self.trunk_usage(ti).1 as f64,
        };
        // "force proportional distribution" (Khomp): a member never goes
        // above its share 100*w/sum(w), not even on retry; when none may
        // take the call the group gives up and the decision moves on
        let weights: u32 = grp.members.iter().map(|&(_, w)| w).sum();
        let total: f64 = grp.members.iter().map(|&(ti, _)| load_of(ti)).sum();
        let within_share = |ti: usize, w: u32| {
            !grp.force_proportional
                || (weights > 0 && load_of(ti) < (w as f64 / weights as f64 * (total + 1.0)).ceil())
        };
        for pass in 0..2 {
            for &(ti, w) in &grp.members {
                let zero_pass = pass == 1;
                if (w == 0) != zero_pass || tried.contains(&ti) {
                    continue;
                }
                if zero_pass && !retrying {
                    continue;
                }
                if let Some(c) = self.trunk_unusable(ti) {
                    if c == Cause::LimitReached {
                        cause = c;
                    }
                    continue;
                }
                if !within_share(ti, w) {
                    continue;
                }
                let load = load_of(ti);
                let score = if w == 0 {
                    load
                } else {
                    (load + 1.0) / w as f64
                };
                if best.is_none_or(|(s, _)| score < s) {
                    best = Some((score, ti));
                }
            }
            if best.is_some() {
                break;
            }
        }
        best.map(|(_, ti)| ti).ok_or(cause)
    }

    /// Publishes the trunks' state for plugins and the API.
    pub(crate) fn refresh_trunk_view(&mut self) {
        let snap: Vec<TrunkSnapshot> = (0..self.cfg.trunks.len())
            .map(|i| {
                let t = &self.cfg.trunks[i];
                let rt = &self.trunks.rt[i];
                let (active_in, active_out) = self.trunk_usage(i);
                TrunkSnapshot {
                    name: t.name.clone(),
                    up: rt.up,
                    latency_ms: rt.latency_ms,
                    active_in,
                    active_out,
                    max_in: t.max_in,
                    max_out: t.max_out,
                    max_total: t.max_total,
                    registration: t.register.then(|| rt.reg.clone()),
                }
            })
            .collect();
        *self.trunks.view.write() = snap;
    }

    /// The shared trunk view.
    pub fn trunk_view(&self) -> TrunkView {
        self.trunks.view.clone()
    }

    /// Publish the trunk state into `view` (shared with plugins and the API).
    pub fn use_trunk_view(&mut self, view: TrunkView) {
        self.trunks.view = view;
        self.refresh_trunk_view();
    }

    // ---------------------------------------------------------------
    // Protection

    /// Drop decision for a request from `src` before anything else runs:
    /// banned sources, flooding sources and scanners get no answer.
    /// Trusted trunk sources are exempt.
    pub(crate) fn protection_drops(&mut self, now: Now, src: SocketAddr, ua: Option<&str>) -> bool {
        if let (Some(re), Some(ua)) = (&self.cfg.protection.scanner, ua)
            && re.is_match(ua)
        {
            self.trunks.protection.scanner_drops += 1;
            return true;
        }
        if self.trunk_by_source(now, src).is_some() {
            return false;
        }
        let ip = src.ip();
        let p = &mut self.trunks.protection;
        if let Some(until) = p.banned.get(&ip) {
            if *until > now.mono {
                p.banned_drops += 1;
                return true;
            }
            p.banned.remove(&ip);
        }
        let rate = self.cfg.protection.rate_limit;
        if rate > 0 {
            let cap = self.cfg.max_tracked_sources;
            if p.buckets.len() >= cap && !p.buckets.contains_key(&ip) {
                // table full: forget the sources whose bucket refilled (idle
                // for a second: same as untracked), at most once a second
                if p.buckets_pruned
                    .is_none_or(|t| now.mono >= t + Duration::from_secs(1))
                {
                    p.buckets_pruned = Some(now.mono);
                    let full = Duration::from_secs(1);
                    p.buckets
                        .retain(|_, (_, last)| now.mono.saturating_duration_since(*last) < full);
                }
                if p.buckets.len() >= cap {
                    // still full (a flood from many sources): this source
                    // goes unmetered rather than growing the table
                    self.guard.sources_dropped.fetch_add(1, Ordering::Relaxed);
                    if p.sources_full_logged
                        .is_none_or(|t| now.mono >= t + Duration::from_secs(10))
                    {
                        p.sources_full_logged = Some(now.mono);
                        tracing::warn!(
                            max_tracked_sources = cap,
                            "rate-limit table full: new sources are not metered \
                             (sip.max_tracked_sources)"
                        );
                    }
                    return false;
                }
            }
            let (tokens, last) = p.buckets.entry(ip).or_insert((rate as f64, now.mono));
            let refill = now.mono.saturating_duration_since(*last).as_secs_f64() * rate as f64;
            *tokens = (*tokens + refill).min(rate as f64);
            *last = now.mono;
            if *tokens < 1.0 {
                p.rate_drops += 1;
                p.rate_suppressed += 1;
                // one line per 10 s for a flood, with the count since
                if p.rate_logged
                    .is_none_or(|t| now.mono >= t + Duration::from_secs(10))
                {
                    p.rate_logged = Some(now.mono);
                    tracing::warn!(
                        source = %ip,
                        rate_limit = rate,
                        dropped = std::mem::take(&mut p.rate_suppressed),
                        "requests dropped: protection.rate_limit reached"
                    );
                }
                return true;
            }
            *tokens -= 1.0;
        }
        false
    }

    /// Records a failed authentication (wrong credentials) from `src`;
    /// bans the address when it reaches the threshold.
    pub(crate) fn auth_failed(&mut self, now: Now, src: SocketAddr) {
        self.sip.auth_failures += 1;
        let cfg = &self.cfg.protection;
        if cfg.ban_time.is_zero() || self.trunk_by_source(now, src).is_some() {
            return;
        }
        let p = &mut self.trunks.protection;
        if p.failures.len() >= self.cfg.max_tracked_sources && !p.failures.contains_key(&src.ip()) {
            // table full: this failure is not counted (the periodic sweep
            // frees entries whose window passed)
            self.guard.sources_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let v = p.failures.entry(src.ip()).or_default();
        v.retain(|t| now.mono.saturating_duration_since(*t) < cfg.ban_window);
        v.push(now.mono);
        if v.len() as u32 >= cfg.ban_failures {
            tracing::warn!(source = %src.ip(), failures = v.len(), ban_s = cfg.ban_time.as_secs(), "authentication failures: source banned");
            v.clear();
            p.banned.insert(src.ip(), now.mono + cfg.ban_time);
            p.bans += 1;
        }
    }
}

/// The digest challenge of a 401/407 to answer (SHA-256 preferred) and the
/// header name the answer goes in (`Authorization` / `Proxy-Authorization`).
pub(crate) fn pick_challenge(
    resp: &Message,
) -> Option<(&'static str, strowger_sip::digest::Challenge<'_>)> {
    let (hname, aname) = if resp.status() == Some(407) {
        ("Proxy-Authenticate", "Proxy-Authorization")
    } else {
        ("WWW-Authenticate", "Authorization")
    };
    resp.headers(hname)
        .filter_map(|v| strowger_sip::digest::Challenge::parse(v).ok())
        .min_by_key(|c| match c.algorithm {
            strowger_sip::digest::Algorithm::Sha256 => 0,
            _ => 1,
        })
        .map(|c| (aname, c))
}

/// Expiry granted for our contact in a 2xx to REGISTER: the Contact's
/// `expires` parameter for the contact with our user, else `Expires`.
fn granted_expires(msg: &Message, contact_user: &str) -> Option<u32> {
    let from_contact = msg.contacts().ok().and_then(|cs| {
        cs.iter().find_map(|c| match c {
            strowger_sip::Contact::Addr(na) if na.uri.user == Some(contact_user) => {
                na.params.get("expires").and_then(|v| v.parse().ok())
            }
            _ => None,
        })
    });
    from_contact.or_else(|| msg.expires())
}

/// True when a 401/407 carries a digest challenge with `stale=true`.
fn challenge_is_stale(msg: &Message) -> bool {
    ["WWW-Authenticate", "Proxy-Authenticate"].iter().any(|h| {
        msg.headers(h)
            .filter_map(|v| strowger_sip::digest::Challenge::parse(v).ok())
            .any(|c| c.stale)
    })
}
