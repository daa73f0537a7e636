//! B2BUA calls: an inbound leg (A) and outbound legs (B) per attempt, each
//! with its own dialog identifiers (topology hiding), serial failover across
//! attempts and parallel forking to a user's contacts.

use std::time::Duration;

use bytes::Bytes;
use strowger_sip::{Message, Method, NameAddr, RequestBuilder, ResponseBuilder};

use strowger_store::{Cdr, CdrAttempt};

use crate::config::DtmfMode;
use crate::core::{
    Action, CallFacts, Cause, Core, Dest, Ingress, Now, Party, Plan, PlanDecision, PlannedAttempt,
    TimerKind, TxKey,
};
use crate::flow::{Flow, Target, Transport};
use crate::location::aor_key;
use crate::media::{MediaRefusal, SdpDirection};
use crate::timers::TimerId;

/// Which leg of a call a message belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// The caller's leg.
    A,
    /// Outbound leg `n`.
    B(u32),
}

/// A SIP Call-ID's call and leg.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LegRef {
    pub(crate) call: u64,
    pub(crate) side: Side,
}

/// Per-call timers.
#[derive(Clone, Debug)]
pub(crate) enum CallTimer {
    /// Ring timeout of attempt `n`.
    Ring(u32),
    /// INVITE retransmission to leg (Timer A), with the current interval.
    InviteRetrans(u32, Duration),
    /// No provisional from leg within 64*T1 (Timer B).
    InviteTimeout(u32),
    /// No answer at all from the trunk proxy the leg was sent to: try
    /// proxy number `.1` of the trunk.
    ProxyFallback(u32, usize),
    /// Retransmit our 2xx to A until it ACKs (RFC 3261 §13.3.1.4).
    OkRetrans(Duration),
    /// Give up waiting for A's ACK.
    AckTimeout,
    /// Remove a finished call (late messages absorbed until then).
    Reap,
    /// Send our session refresh (UPDATE) on the answered B leg (epoch).
    SessionRefresh(u32),
    /// The A side (true) or the B side did not refresh in time (epoch).
    SessionExpire(bool, u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LegPhase {
    Calling,
    Proceeding,
    Answered,
    Failed,
    Cancelled,
    Terminated,
}

pub(crate) struct BLeg {
    attempt: u32,
    call_id: String,
    from_addr: String,
    from_tag: String,
    to_addr: String,
    to_tag: Option<String>,
    branch: String,
    invite: Bytes,
    ruri: String,
    target: Target,
    transport: Transport,
    local_cseq: u32,
    /// CSeq of the current INVITE (2+ after answering a trunk's challenge).
    invite_cseq: u32,
    /// Trunk challenges answered on this leg.
    auth_rounds: u8,
    /// Any response to the current INVITE arrived (proxy fallback).
    responded: bool,
    remote_target: String,
    route_set: Vec<String>,
    phase: LegPhase,
    cancel_pending: bool,
    got_provisional: bool,
    retrans: Option<TimerId>,
    timeout: Option<TimerId>,
    ack: Option<Bytes>,
    egress: String,
    a_out: String,
    b_out: String,
    start_ms: i64,
    answer_ms: Option<i64>,
    status: u16,
    reason: String,
    relay_media: Option<bool>,
    codecs: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Routing,
    Trying,
    Answered,
    Ended,
}

struct Relay {
    from: Side,
    to: Side,
    req: Message,
    flow: Flow,
    out_cseq: u32,
    method: Method,
    done: bool,
}

struct Failure {
    code: u16,
    reason: String,
}

pub(crate) struct CallState {
    id: u64,
    host_id: String,
    invite: Message,
    a_flow: Flow,
    a_tag: String,
    a_local_cseq: u32,
    a_remote_target: String,
    a_route_set: Vec<String>,
    a_from_addr: String,
    a_to_addr: String,
    facts: CallFacts,
    plan: Option<Plan>,
    attempt: usize,
    bs: Vec<BLeg>,
    winner: Option<u32>,
    phase: Phase,
    failures: Vec<Failure>,
    ok_to_a: Option<Bytes>,
    ok_timer: Option<TimerId>,
    ack_timer: Option<TimerId>,
    ring_timer: Option<TimerId>,
    answer_ms: Option<i64>,
    final_status: u16,
    final_reason: String,
    hangup_by: &'static str,
    relays: Vec<Relay>,
    unresolved: Vec<(u32, CdrAttempt)>,
    reaped: bool,
    /// Group members tried in the current attempt (trunk indexes).
    group_tried: Vec<usize>,
    /// The attempt index `group_tried` belongs to.
    attempt_started: Option<usize>,
    /// Session interval the caller asked for (it supports timers).
    a_se_request: Option<u32>,
    /// Negotiated session timers of the A and the answered B leg.
    a_timer: Option<crate::session_timer::LegTimer>,
    b_timer: Option<crate::session_timer::LegTimer>,
}

impl CallState {
    /// How this call uses trunk `name`: (inbound from it, outbound legs to
    /// it still holding a channel).
    pub(crate) fn trunk_use(&self, name: &str) -> (bool, u32) {
        if self.phase == Phase::Ended {
            return (false, 0);
        }
        let inbound = self.facts.trunk.as_deref() == Some(name);
        let out = self
            .bs
            .iter()
            .filter(|l| {
                matches!(
                    l.phase,
                    LegPhase::Calling | LegPhase::Proceeding | LegPhase::Answered
                ) && l.egress.strip_prefix("trunk:") == Some(name)
            })
            .count() as u32;
        (inbound, out)
    }
}

/// Header names copied from the caller's INVITE to outbound legs (besides
/// every `X-` header). Everything else is dropped (topology hiding).
const COPY_HEADERS: &[&str] = &[
    "Subject",
    "Priority",
    "Alert-Info",
    "Accept-Language",
    "Organization",
    "Diversion",
];

/// Headers copied on relayed in-dialog requests and their responses.
const COPY_IN_DIALOG: &[&str] = &[
    "Event",
    "Subscription-State",
    "Info-Package",
    "Refer-To",
    "Referred-By",
    "Allow-Events",
];

fn addr_of(na: &NameAddr<'_>) -> String {
    match na.display_name {
        Some(d) => format!("{d} <{}>", na.uri.raw),
        None => format!("<{}>", na.uri.raw),
    }
}

fn party_of(na: &NameAddr<'_>) -> Party {
    Party {
        uri: na.uri.raw.to_string(),
        user: na
            .uri
            .user_decoded()
            .map(|u| u.into_owned())
            .unwrap_or_default(),
        host: na.uri.host_unbracketed().to_string(),
        display_name: na.display_name_unquoted().map(|d| d.into_owned()),
    }
}

pub(crate) fn sip_transport(t: Transport) -> strowger_sip::Transport {
    match t {
        Transport::Udp => strowger_sip::Transport::Udp,
        Transport::Tcp => strowger_sip::Transport::Tcp,
        Transport::Tls => strowger_sip::Transport::Tls,
    }
}

fn quote_display(d: &str) -> String {
    let mut s = String::with_capacity(d.len() + 2);
    s.push('"');
    for c in d.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        if !c.is_control() {
            s.push(c);
        }
    }
    s.push('"');
    s
}

fn cause_text(c: &Cause) -> &'static str {
    match c {
        Cause::NoAnswer => "no-answer",
        Cause::Unavailable => "unavailable",
        Cause::LimitReached => "limit-reached",
        _ => "status",
    }
}

fn cause_matches(rule: &Cause, got: &Cause) -> bool {
    match (rule, got) {
        (Cause::Status(a), Cause::Status(b)) => a == b,
        (Cause::StatusClass(c), Cause::Status(b)) => (*b / 100) as u8 == *c,
        (a, b) => a == b,
    }
}

fn ingress_text(i: &Ingress) -> String {
    match i {
        Ingress::Trunk(t) => format!("trunk:{t}"),
        Ingress::User(u) => format!("user:{u}"),
        Ingress::Unknown => "unknown".into(),
    }
}

impl Core {
    fn schedule_call(&mut self, at: std::time::Instant, call: u64, t: CallTimer) -> TimerId {
        self.timers.schedule(at, TimerKind::Call(call, t))
    }

    pub(crate) fn on_invite(&mut self, now: Now, req: Message, flow: Flow) {
        if req.max_forwards() == Some(0) {
            self.reply(&req, flow, 483, None);
            return;
        }
        if req.vias().skip(1).any(|v| self.is_local(v.host, v.port))
            || self.is_local(req.top_via().host, req.top_via().port)
        {
            self.reply(&req, flow, 482, None);
            return;
        }
        if self.legs.contains_key(req.call_id()) {
            // merged request (RFC 3261 §8.2.2.2) or a loop back to us
            self.reply(&req, flow, 482, Some("Loop Detected"));
            return;
        }
        if req.contact().is_none() {
            self.reply(&req, flow, 400, Some("Missing Contact"));
            return;
        }
        if let Some(ti) = self.trunk_index_by_source(now, flow.remote) {
            if !self.trunk_accepts_inbound(ti) {
                tracing::info!(trunk = %self.cfg.trunks[ti].name, "inbound call refused: trunk at its call limit");
                self.reply(&req, flow, 503, Some("Trunk Call Limit Reached"));
                return;
            }
            let name = self.cfg.trunks[ti].name.clone();
            self.start_call(now, req, flow, Ingress::Trunk(name));
            return;
        }
        let facts = self.auth_facts(now, &req, flow, Ingress::Unknown);
        self.ask_authorize(now, req, flow, facts);
    }

    /// Creates the call (after classification/authorization), answers 100
    /// and asks for the routing plan.
    pub(crate) fn start_call(&mut self, now: Now, req: Message, flow: Flow, ingress: Ingress) {
        let a_se_request = a_se_request(&req);
        let id = self.next_id();
        let host_id = self.call_ids.next(now.unix_ms);
        self.stats.calls += 1;
        let trying = ResponseBuilder::new(&req, 100)
            .header("Server", &self.cfg.user_agent)
            .build();
        self.cache.put(
            TxKey::of(&req, "INVITE"),
            Some((Target::Flow(flow), trying.clone())),
        );
        self.send(Target::Flow(flow), trying);

        let from = req.from();
        let to = req.to();
        let ruri = req.request_uri();
        let from_p = party_of(&from);
        let to_p = party_of(&to);
        let ingress_trunk = match &ingress {
            Ingress::Trunk(t) => self.cfg.trunks.iter().find(|x| x.name == *t),
            _ => None,
        };
        let b_from_to = ingress_trunk.is_some_and(|t| t.b_from_to);
        let use_pai = ingress_trunk.is_some_and(|t| t.use_pai);
        let b_number = ruri
            .as_ref()
            .and_then(|u| u.user_decoded().map(|u| u.into_owned()))
            .filter(|u| !u.is_empty() && !b_from_to)
            .unwrap_or_else(|| to_p.user.clone());
        let pai = req
            .header("P-Asserted-Identity")
            .and_then(|v| {
                strowger_sip::split_list(v)
                    .next()
                    .and_then(|v| NameAddr::parse(v).ok())
            })
            .map(|na| party_of(&na));
        let diversion: Vec<Party> = req
            .header_values("Diversion")
            .filter_map(|v| NameAddr::parse(v).ok().map(|na| party_of(&na)))
            .collect();
        let mut headers = Vec::new();
        for h in req.headers_iter() {
            let n = h.name;
            if n.eq_ignore_ascii_case("User-Agent")
                || n.eq_ignore_ascii_case("Subject")
                || n.eq_ignore_ascii_case("Priority")
                || n.len() > 2 && n[..2].eq_ignore_ascii_case("x-")
            {
                headers.push((n.to_string(), h.value.to_string()));
            }
        }
        let codecs = if req
            .content_type()
            .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/sdp"))
        {
            crate::media::offered_codecs(req.body())
        } else {
            Vec::new()
        };
        let trunk = match &ingress {
            Ingress::Trunk(t) => Some(t.clone()),
            _ => None,
        };
        let facts = CallFacts {
            call_id: host_id.clone(),
            ingress,
            source: flow,
            request_uri: req.request_uri_str().unwrap_or("").to_string(),
            a_number: match (&pai, use_pai) {
                (Some(p), true) if !p.user.is_empty() => p.user.clone(),
                _ => from_p.user.clone(),
            },
            b_number,
            display_name: from_p.display_name.clone(),
            from: from_p,
            to: to_p,
            pai,
            diversion,
            headers,
            codecs,
            trunk,
            time_unix_ms: now.unix_ms,
        };
        let a_remote_target = req
            .contact()
            .and_then(|c| c.ok())
            .and_then(|c| c.addr().map(|a| a.uri.raw.to_string()))
            .unwrap_or_default();
        let a_route_set = req
            .record_routes()
            .map(|v| v.iter().map(|n| n.to_string()).collect())
            .unwrap_or_default();
        let a_from_addr = req.from_str_raw().to_string();
        let a_to_addr = addr_of(&req.to());
        self.legs.insert(
            req.call_id().into(),
            LegRef {
                call: id,
                side: Side::A,
            },
        );
        tracing::info!(
            call = %host_id,
            ingress = ingress_text(&facts.ingress).as_str(),
            source = %flow.remote,
            a = facts.a_number.as_str(),
            b = facts.b_number.as_str(),
            "call started"
        );
        self.out.push(Action::PlanCall {
            call: id,
            facts: Box::new(facts.clone()),
        });
        self.stats.active_calls += 1;
        self.calls.insert(
            id,
            CallState {
                id,
                host_id,
                invite: req,
                a_flow: flow,
                a_tag: strowger_sip::ids::tag(),
                a_local_cseq: 0,
                a_remote_target,
                a_route_set,
                a_from_addr,
                a_to_addr,
                facts,
                plan: None,
                attempt: 0,
                bs: Vec::new(),
                winner: None,
                phase: Phase::Routing,
                failures: Vec::new(),
                ok_to_a: None,
                ok_timer: None,
                ack_timer: None,
                ring_timer: None,
                answer_ms: None,
                final_status: 0,
                final_reason: String::new(),
                hangup_by: "",
                relays: Vec::new(),
                unresolved: Vec::new(),
                reaped: false,
                group_tried: Vec::new(),
                attempt_started: None,
                a_se_request,
                a_timer: None,
                b_timer: None,
            },
        );
    }

    pub(crate) fn on_call_planned(&mut self, now: Now, call: u64, plan: Plan) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.phase != Phase::Routing {
            return;
        }
        c.plan = Some(plan.clone());
        match plan.decision {
            PlanDecision::Reject(code, reason) => {
                let code = if (300..=699).contains(&code) {
                    code
                } else {
                    500
                };
                self.fail_call(now, call, code, &reason, "switch");
            }
            PlanDecision::Redirect(contacts) => {
                let c = &self.calls[&call];
                let tag = c.a_tag.clone();
                let mut b = ResponseBuilder::new(&c.invite, 302).to_tag(&tag);
                for ct in &contacts {
                    b = b.contact(ct);
                }
                let data = b.header("Server", &self.cfg.user_agent).build();
                let (inv, flow) = (c.invite.clone(), c.a_flow);
                self.respond(&inv, flow, data);
                self.end_call(now, call, 302, "Moved Temporarily", "switch");
            }
            PlanDecision::Forward { attempts, .. } => {
                if attempts.is_empty() {
                    self.fail_call(now, call, 404, "No Route", "switch");
                    return;
                }
                if let Some(c) = self.calls.get_mut(&call) {
                    c.phase = Phase::Trying;
                }
                self.start_attempt(now, call, 0);
            }
        }
    }

    fn resolve(
        &self,
        now: Now,
        att: &PlannedAttempt,
    ) -> Result<Vec<(String, Target, String, String)>, Cause> {
        // (request-uri, target, egress label, to-uri)
        match &att.dest {
            Dest::Unavailable(_) => Err(Cause::Unavailable),
            Dest::User(u) => {
                let aor = aor_key(u, &self.cfg.domain);
                let bindings = self.location.read().lookup(&aor, now.mono);
                if bindings.is_empty() {
                    return Err(Cause::Unavailable);
                }
                let to = format!("sip:{}@{}", att.b_number, self.cfg.domain);
                Ok(bindings
                    .into_iter()
                    .map(|b| {
                        (
                            b.contact.clone(),
                            Target::Flow(b.flow),
                            format!("user:{aor}"),
                            to.clone(),
                        )
                    })
                    .collect())
            }
            // groups are resolved to a member by start_attempt
            Dest::Group(_) => Err(Cause::Unavailable),
            Dest::Trunk(name) => {
                let ti = self
                    .cfg
                    .trunks
                    .iter()
                    .position(|t| t.name == *name)
                    .ok_or(Cause::Unavailable)?;
                if let Some(cause) = self.trunk_unusable(ti) {
                    return Err(cause);
                }
                let t = &self.cfg.trunks[ti];
                let params = t
                    .ruri_params
                    .as_deref()
                    .map(|p| format!(";{p}"))
                    .unwrap_or_default();
                if t.inbound == crate::trunks::TrunkInbound::Register {
                    // the peer registered to us: call its contacts
                    let aor = t.aor(&self.cfg.domain);
                    let bindings = self.location.read().lookup(&aor, now.mono);
                    if bindings.is_empty() {
                        return Err(Cause::Unavailable);
                    }
                    return Ok(bindings
                        .into_iter()
                        .map(|b| {
                            let ruri = match strowger_sip::Uri::parse(&b.contact) {
                                Ok(u) => format!(
                                    "sip:{}@{}{}{params}",
                                    att.b_number,
                                    fmt_host_port(u.host, u.port),
                                    if u.params.is_empty() {
                                        String::new()
                                    } else {
                                        format!(";{}", u.params.as_str())
                                    }
                                ),
                                Err(_) => b.contact.clone(),
                            };
                            (
                                ruri,
                                Target::Flow(b.flow),
                                format!("trunk:{name}"),
                                format!("sip:{}@{}", att.b_number, self.cfg.domain),
                            )
                        })
                        .collect());
                }
                let addr = t.addr.ok_or(Cause::Unavailable)?;
                let hostport = if addr.port() == t.transport.default_port() {
                    t.host.clone()
                } else {
                    format!("{}:{}", t.host, addr.port())
                };
                // with a proxy list the request goes to the first proxy
                let addr = t.proxies.first().copied().unwrap_or(addr);
                let tp = if t.transport == Transport::Udp {
                    String::new()
                } else {
                    format!(";transport={}", t.transport)
                };
                let ruri = format!("sip:{}@{hostport}{tp}{params}", att.b_number);
                let to = format!("sip:{}@{}", att.b_number, t.host);
                Ok(vec![(
                    ruri,
                    Target::Addr {
                        transport: t.transport,
                        addr,
                    },
                    format!("trunk:{name}"),
                    to,
                )])
            }
            Dest::Uri(u) => {
                let uri = strowger_sip::Uri::parse(u).map_err(|_| Cause::Unavailable)?;
                let ip = uri.host_ip().ok_or(Cause::Unavailable)?;
                let transport = match uri.transport_param() {
                    Some(strowger_sip::Transport::Tcp) => Transport::Tcp,
                    Some(strowger_sip::Transport::Tls) => Transport::Tls,
                    Some(strowger_sip::Transport::Udp) | None => {
                        if matches!(uri.scheme, strowger_sip::Scheme::Sips) {
                            Transport::Tls
                        } else {
                            Transport::Udp
                        }
                    }
                    _ => return Err(Cause::Unavailable),
                };
                let addr =
                    std::net::SocketAddr::new(ip, uri.port.unwrap_or(transport.default_port()));
                let to = format!("sip:{}@{}", att.b_number, uri.host);
                Ok(vec![(
                    u.clone(),
                    Target::Addr { transport, addr },
                    format!("uri:{u}"),
                    to,
                )])
            }
        }
    }

    fn start_attempt(&mut self, now: Now, call: u64, idx: usize) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.attempt = idx;
        let Some(PlanDecision::Forward { attempts, .. }) = c.plan.as_ref().map(|p| &p.decision)
        else {
            return;
        };
        let Some(mut att) = attempts.get(idx).cloned() else {
            return;
        };
        if c.attempt_started != Some(idx) {
            c.attempt_started = Some(idx);
            c.group_tried.clear();
        }
        if let Dest::Group(gname) = &att.dest {
            let gname = gname.clone();
            let picked = match self.cfg.groups.iter().position(|g| g.name == gname) {
                Some(g) => {
                    let tried = self
                        .calls
                        .get(&call)
                        .map(|c| c.group_tried.clone())
                        .unwrap_or_default();
                    self.pick_member(g, &tried)
                }
                None => Err(Cause::Unavailable),
            };
            match picked {
                Ok(ti) => {
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.group_tried.push(ti);
                    }
                    att.dest = Dest::Trunk(self.cfg.trunks[ti].name.clone());
                    att.group = Some(gname);
                }
                Err(cause) => {
                    let (code, reason) = cause_status(&cause);
                    let label = format!("group:{gname}");
                    self.attempt_record(now, call, &label, &att, code, &cause);
                    self.attempt_failed(now, call, cause, code, reason.to_string());
                    return;
                }
            }
        }
        let targets = match self.resolve(now, &att) {
            Ok(t) => t,
            Err(cause) => {
                let (code, reason) = cause_status(&cause);
                let label = match &att.dest {
                    Dest::User(u) => format!("user:{u}"),
                    Dest::Trunk(t) => format!("trunk:{t}"),
                    Dest::Group(g) => format!("group:{g}"),
                    Dest::Uri(u) => format!("uri:{u}"),
                    Dest::Unavailable(r) => format!("unavailable:{r}"),
                };
                self.attempt_record(now, call, &label, &att, code, &cause);
                self.attempt_failed(now, call, cause, code, reason.to_string());
                return;
            }
        };
        if let Dest::Trunk(name) = &att.dest
            && let Some(ti) = self.cfg.trunks.iter().position(|t| t.name == *name)
        {
            self.trunks.rt[ti].forwarded += 1;
        }
        let ring = att.ring_timeout.unwrap_or(self.cfg.ring_timeout);
        let at = now.mono + ring;
        let t = self.schedule_call(at, call, CallTimer::Ring(idx as u32));
        if let Some(c) = self.calls.get_mut(&call)
            && let Some(old) = c.ring_timer.replace(t)
        {
            self.timers.cancel(old);
        }
        let mut sent = 0;
        for (ruri, target, egress, to) in targets {
            let label = egress.clone();
            match self.send_b_invite(now, call, idx as u32, &att, ruri, target, egress, to) {
                Ok(()) => sent += 1,
                // the offer was refused (no codec left, bad SDP, no ports):
                // the attempt fails with that status unless a fork is out
                Err(e) if sent == 0 => {
                    let cause = Cause::Status(e.code);
                    self.attempt_record(now, call, &label, &att, e.code, &cause);
                    if let Some(t) = self.calls.get_mut(&call).and_then(|c| c.ring_timer.take()) {
                        self.timers.cancel(t);
                    }
                    self.attempt_failed(now, call, cause, e.code, e.reason);
                    return;
                }
                Err(e) => tracing::warn!(call, code = e.code, "fork not sent: SDP refused"),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn send_b_invite(
        &mut self,
        now: Now,
        call: u64,
        attempt: u32,
        att: &PlannedAttempt,
        ruri: String,
        mut target: Target,
        egress: String,
        to: String,
    ) -> Result<(), MediaRefusal> {
        let Some(c) = self.calls.get(&call) else {
            return Ok(());
        };
        let leg_no = c.bs.len() as u32;
        let inv = &c.invite;
        let mf = inv
            .max_forwards()
            .map(|m| m.saturating_sub(1))
            .unwrap_or(self.cfg.max_forwards)
            .min(self.cfg.max_forwards);
        let call_id = strowger_sip::ids::call_id(None);
        let from_tag = strowger_sip::ids::tag();
        let trunk = egress
            .strip_prefix("trunk:")
            .and_then(|n| self.cfg.trunks.iter().find(|t| t.name == n));
        let proxy_fallback_at = trunk
            .filter(|t| t.proxies.len() > 1)
            .map(|t| now.mono + t.proxy_timeout);
        let from_user = trunk
            .and_then(|t| t.caller_id.as_deref().or(t.fromuser.as_deref()))
            .unwrap_or(&att.a_number);
        let from_host = trunk
            .and_then(|t| t.fromdomain.as_deref())
            .unwrap_or(&self.cfg.domain);
        let from_uri = format!("sip:{from_user}@{from_host}");
        let from_addr = match &att.display_name {
            Some(d) if !d.is_empty() => format!("{} <{from_uri}>", quote_display(d)),
            _ => format!("<{from_uri}>"),
        };
        let to_addr = format!("<{to}>");
        // the decision's media mode and codecs, else the trunk's
        let relay = att.relay.or(trunk.and_then(|t| t.relay));
        let codecs = att
            .codecs
            .clone()
            .or_else(|| trunk.and_then(|t| t.codecs.clone()));
        let caller_dtmf = c
            .facts
            .trunk
            .as_deref()
            .and_then(|n| self.cfg.trunks.iter().find(|t| t.name == n))
            .map_or(DtmfMode::Rfc2833, |t| t.dtmf);
        let callee_dtmf = trunk.map_or(DtmfMode::Rfc2833, |t| t.dtmf);
        if (caller_dtmf, callee_dtmf) != (DtmfMode::Rfc2833, DtmfMode::Rfc2833) {
            let leg = u64::from(leg_no);
            self.media.set_leg_dtmf(call, leg, caller_dtmf, callee_dtmf);
        }
        // media may be latched from where each side's SIP comes from (NAT)
        self.media.set_leg_peers(
            call,
            u64::from(leg_no),
            Some(c.facts.source.remote.ip()),
            Some(target.addr().ip()),
        );
        let body = crate::media::body_for(
            &mut *self.media,
            call,
            leg_no,
            SdpDirection::Offer,
            inv.body(),
            inv.content_type(),
            relay,
            codecs.as_deref(),
        )?;
        let ct = inv.content_type().unwrap_or("application/sdp").to_string();
        let mut extra: Vec<(String, String)> = Vec::new();
        for h in inv.headers_iter() {
            let n = h.name;
            let copy = COPY_HEADERS.iter().any(|c| c.eq_ignore_ascii_case(n))
                || (n.len() > 2 && n[..2].eq_ignore_ascii_case("x-"));
            if copy && !att.remove_headers.iter().any(|r| r.eq_ignore_ascii_case(n)) {
                extra.push((n.to_string(), h.value.to_string()));
            }
        }
        if inv.has_header("P-Asserted-Identity")
            && !att
                .remove_headers
                .iter()
                .any(|r| r.eq_ignore_ascii_case("P-Asserted-Identity"))
        {
            extra.push(("P-Asserted-Identity".into(), format!("<{from_uri}>")));
        }
        if let Some(se) = trunk.and_then(|t| t.session_expires) {
            extra.push(("Supported".into(), "timer".into()));
            extra.push((
                "Session-Expires".into(),
                format!("{};refresher=uac", se.as_secs()),
            ));
        }
        for (n, v) in &att.add_headers {
            extra.push((n.clone(), v.clone()));
        }
        let mut branch = strowger_sip::ids::branch();
        let dst_v6 = target.addr().is_ipv6();
        let build = |core: &Core, transport: Transport, branch: &str| -> Bytes {
            let local = core.local_for(transport, dst_v6);
            let contact = format!(
                "<sip:strowger@{}{}>",
                fmt_hostport(local),
                transport_param(transport)
            );
            let mut b = RequestBuilder::new(&Method::Invite, &ruri)
                .via(sip_transport(transport), &fmt_hostport(local), branch, true)
                .max_forwards(mf)
                .from(&from_addr, &from_tag)
                .to(&to_addr, None)
                .call_id(&call_id)
                .cseq(1)
                .contact(&contact)
                .header("Allow", crate::core::ALLOW)
                .header("User-Agent", &core.cfg.user_agent);
            for (n, v) in &extra {
                b = b.header(n, v);
            }
            if !body.is_empty() {
                b = b.body(&ct, &body);
            }
            b.build()
        };
        let mut transport = target.transport();
        let mut data = build(self, transport, &branch);
        if transport == Transport::Udp
            && data.len() > self.cfg.max_udp_size
            && matches!(target, Target::Addr { .. })
            && self.cfg.listeners.iter().any(|(t, _)| *t == Transport::Tcp)
        {
            transport = Transport::Tcp;
            target = Target::Addr {
                transport,
                addr: target.addr(),
            };
            branch = strowger_sip::ids::branch();
            data = build(self, transport, &branch);
        }
        let leg = BLeg {
            attempt,
            call_id: call_id.clone(),
            from_addr,
            from_tag,
            to_addr,
            to_tag: None,
            branch,
            invite: data.clone(),
            ruri: ruri.clone(),
            target: target.clone(),
            transport,
            local_cseq: 1,
            invite_cseq: 1,
            auth_rounds: 0,
            responded: false,
            remote_target: ruri,
            route_set: Vec::new(),
            phase: LegPhase::Calling,
            cancel_pending: false,
            got_provisional: false,
            retrans: None,
            timeout: None,
            ack: None,
            egress,
            a_out: att.a_number.clone(),
            b_out: att.b_number.clone(),
            start_ms: now.unix_ms,
            answer_ms: None,
            status: 0,
            reason: String::new(),
            relay_media: relay,
            codecs,
        };
        self.legs.insert(
            call_id.into(),
            LegRef {
                call,
                side: Side::B(leg_no),
            },
        );
        let t1 = self.cfg.t1;
        let retrans = (transport == Transport::Udp)
            .then(|| self.schedule_call(now.mono + t1, call, CallTimer::InviteRetrans(leg_no, t1)));
        let timeout =
            Some(self.schedule_call(now.mono + t1 * 64, call, CallTimer::InviteTimeout(leg_no)));
        if let Some(at) = proxy_fallback_at {
            self.schedule_call(at, call, CallTimer::ProxyFallback(leg_no, 1));
        }
        if let Some(c) = self.calls.get_mut(&call) {
            let mut leg = leg;
            leg.retrans = retrans;
            leg.timeout = timeout;
            c.bs.push(leg);
        }
        self.send(target, data);
        Ok(())
    }

    pub(crate) fn on_call_timer(&mut self, now: Now, id: TimerId, call: u64, t: CallTimer) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        match t {
            CallTimer::Ring(att) => {
                if c.ring_timer == Some(id) {
                    c.ring_timer = None;
                }
                if c.phase != Phase::Trying || c.attempt as u32 != att {
                    return;
                }
                let legs: Vec<u32> = (0..c.bs.len() as u32)
                    .filter(|i| {
                        let l = &c.bs[*i as usize];
                        l.attempt == att
                            && matches!(l.phase, LegPhase::Calling | LegPhase::Proceeding)
                    })
                    .collect();
                for l in legs {
                    self.cancel_leg(call, l, "no-answer");
                }
                self.attempt_failed(now, call, Cause::NoAnswer, 408, "No Answer".into());
            }
            CallTimer::InviteRetrans(leg, interval) => {
                let Some(l) = c.bs.get_mut(leg as usize) else {
                    return;
                };
                if l.retrans != Some(id) || l.got_provisional || l.phase != LegPhase::Calling {
                    return;
                }
                let (target, data) = (l.target.clone(), l.invite.clone());
                let next = interval * 2;
                let nt =
                    self.schedule_call(now.mono + next, call, CallTimer::InviteRetrans(leg, next));
                if let Some(l) = self
                    .calls
                    .get_mut(&call)
                    .and_then(|c| c.bs.get_mut(leg as usize))
                {
                    l.retrans = Some(nt);
                }
                self.sip.request_retransmissions += 1;
                self.send(target, data);
            }
            CallTimer::ProxyFallback(leg, next) => {
                let Some(l) = c.bs.get(leg as usize) else {
                    return;
                };
                if l.responded || l.phase != LegPhase::Calling {
                    return;
                }
                let Some((addr, timeout, more)) = l
                    .egress
                    .strip_prefix("trunk:")
                    .and_then(|n| self.cfg.trunks.iter().find(|t| t.name == n))
                    .and_then(|t| {
                        t.proxies
                            .get(next)
                            .map(|a| (*a, t.proxy_timeout, next + 1 < t.proxies.len()))
                    })
                else {
                    return;
                };
                let target = Target::Addr {
                    transport: l.transport,
                    addr,
                };
                tracing::info!(call, leg, proxy = %addr, "no answer from the trunk proxy; next proxy");
                if self.resend_invite(now, call, leg, target, None) && more {
                    self.schedule_call(
                        now.mono + timeout,
                        call,
                        CallTimer::ProxyFallback(leg, next + 1),
                    );
                }
            }
            CallTimer::InviteTimeout(leg) => {
                let Some(l) = c.bs.get_mut(leg as usize) else {
                    return;
                };
                if l.got_provisional || !matches!(l.phase, LegPhase::Calling | LegPhase::Cancelled)
                {
                    return;
                }
                let was_cancelled = l.phase == LegPhase::Cancelled;
                self.media.release_leg(call, u64::from(leg));
                l.phase = LegPhase::Failed;
                l.status = 408;
                l.reason = "Request Timeout".into();
                if let Some(r) = l.retrans.take() {
                    self.timers.cancel(r);
                }
                if !was_cancelled {
                    self.leg_failed_check_attempt(
                        now,
                        call,
                        leg,
                        Cause::NoAnswer,
                        408,
                        "Request Timeout",
                    );
                }
                self.maybe_reap(now, call);
            }
            CallTimer::OkRetrans(interval) => {
                if c.ok_timer != Some(id) {
                    return;
                }
                let Some(data) = c.ok_to_a.clone() else {
                    return;
                };
                let flow = c.a_flow;
                let next = (interval * 2).min(self.cfg.t2);
                let nt = self.schedule_call(now.mono + next, call, CallTimer::OkRetrans(next));
                if let Some(c) = self.calls.get_mut(&call) {
                    c.ok_timer = Some(nt);
                }
                self.sip.response_retransmissions += 1;
                self.send(Target::Flow(flow), data);
            }
            CallTimer::AckTimeout => {
                if c.ack_timer != Some(id) || c.ok_to_a.is_none() {
                    return;
                }
                tracing::info!(call = %c.host_id, "no ACK for 2xx: ending the call");
                c.ok_to_a = None;
                if let Some(t) = c.ok_timer.take() {
                    self.timers.cancel(t);
                }
                self.hangup_both(now, call, None, "switch", 408, "ACK Timeout");
            }
            CallTimer::Reap => {
                self.remove_call(call);
            }
            CallTimer::SessionRefresh(epoch) => self.session_refresh(now, call, epoch),
            CallTimer::SessionExpire(a_side, epoch) => {
                let Some(c) = self.calls.get(&call) else {
                    return;
                };
                let t = if a_side { &c.a_timer } else { &c.b_timer };
                if c.phase == Phase::Answered && t.as_ref().is_some_and(|t| t.epoch == epoch) {
                    self.session_expired(now, call);
                }
            }
        }
    }

    pub(crate) fn on_response(&mut self, now: Now, msg: Message, _flow: Flow) {
        let Some(lr) = self.legs.get(msg.call_id()).copied() else {
            return;
        };
        let Side::B(leg) = lr.side else {
            // a response on the A leg: to our BYE or a relayed request
            self.on_a_response(now, lr.call, msg);
            return;
        };
        let call = lr.call;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let cseq = msg.cseq().clone();
        let code = msg.status().unwrap_or(500);
        // relayed in-dialog request?
        if let Some(ri) = c.relays.iter().position(|r| {
            r.to == Side::B(leg) && r.out_cseq == cseq.seq && r.method == cseq.method && !r.done
        }) {
            self.relay_response(now, call, ri, msg);
            return;
        }
        let invite_cseq = c.bs.get(leg as usize).map_or(1, |l| l.invite_cseq);
        if cseq.method == Method::Update
            && code >= 200
            && c.winner == Some(leg)
            && let Some(t) = c.b_timer.as_mut()
            && t.pending == Some(cseq.seq)
        {
            t.pending = None;
            if code < 300 {
                t.epoch += 1;
                let (epoch, half) = (t.epoch, t.interval / 2);
                self.schedule_call(now.mono + half, call, CallTimer::SessionRefresh(epoch));
            } else {
                tracing::info!(call, code, "session refresh refused");
                self.session_expired(now, call);
            }
            return;
        }
        if cseq.method != Method::Invite || cseq.seq != invite_cseq {
            // response to our BYE/CANCEL etc.
            if cseq.method == Method::Bye
                && let Some(l) = c.bs.get_mut(leg as usize)
                && code >= 200
            {
                l.phase = LegPhase::Terminated;
                self.maybe_reap(now, call);
            }
            return;
        }
        let Some(l) = c.bs.get_mut(leg as usize) else {
            return;
        };
        l.responded = true;
        if let Some(r) = l.retrans.take() {
            self.timers.cancel(r);
        }
        if code < 200 {
            if code > 100 {
                l.got_provisional = true;
                if let Some(t) = l.timeout.take() {
                    self.timers.cancel(t);
                }
            }
            if l.phase == LegPhase::Calling {
                l.phase = LegPhase::Proceeding;
            }
            if l.cancel_pending {
                l.cancel_pending = false;
                let data = build_cancel(l);
                let target = l.target.clone();
                self.send(target, data);
                return;
            }
            if code == 100 || l.phase != LegPhase::Proceeding {
                return;
            }
            if l.to_tag.is_none() {
                l.to_tag = msg.to_tag().map(str::to_string);
            }
            if c.phase != Phase::Trying {
                return;
            }
            // relay the provisional to A
            // early media SDP the relay refuses: the provisional goes without it
            let body = crate::media::body_for(
                &mut *self.media,
                call,
                leg,
                SdpDirection::Answer,
                msg.body(),
                msg.content_type(),
                l.relay_media,
                l.codecs.as_deref(),
            )
            .unwrap_or_default();
            let reason = msg.reason().unwrap_or("").to_string();
            self.send_a_response(call, code, &reason, &body, msg.content_type(), false);
            return;
        }
        if let Some(t) = l.timeout.take() {
            self.timers.cancel(t);
        }
        if code < 300 {
            self.on_b_2xx(now, call, leg, msg);
            return;
        }
        // 3xx-6xx: ACK it (same transaction), then decide
        let ack = build_non2xx_ack(l, msg.to_tag());
        let target = l.target.clone();
        let retransmitted = matches!(
            l.phase,
            LegPhase::Failed | LegPhase::Terminated | LegPhase::Answered
        );
        let was_cancelled = l.phase == LegPhase::Cancelled;
        if !retransmitted {
            l.phase = LegPhase::Failed;
            l.status = code;
            l.reason = msg.reason().unwrap_or("").to_string();
            self.media.release_leg(call, u64::from(leg));
        }
        self.send(target, ack);
        if retransmitted {
            return;
        }
        if matches!(code, 401 | 407)
            && !was_cancelled
            && self.answer_trunk_challenge(now, call, leg, &msg)
        {
            return;
        }
        if !was_cancelled {
            let reason = msg.reason().unwrap_or("").to_string();
            self.leg_failed_check_attempt(now, call, leg, Cause::Status(code), code, &reason);
        }
        self.maybe_reap(now, call);
    }

    fn on_b_2xx(&mut self, now: Now, call: u64, leg: u32, msg: Message) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let l = &mut c.bs[leg as usize];
        if l.phase == LegPhase::Answered {
            // retransmitted 2xx: repeat our ACK if A already acknowledged
            if let Some(ack) = l.ack.clone() {
                let t = l.target.clone();
                self.send(t, ack);
            }
            return;
        }
        l.to_tag = msg.to_tag().map(str::to_string);
        if let Some(Ok(ct)) = msg.contact()
            && let Some(a) = ct.addr()
        {
            l.remote_target = a.uri.raw.to_string();
        }
        l.route_set = msg
            .record_routes()
            .map(|v| v.iter().rev().map(|n| n.to_string()).collect())
            .unwrap_or_default();
        let lost = c.winner.is_some()
            || c.phase != Phase::Trying
            || l.phase == LegPhase::Cancelled
            || l.attempt as usize != c.attempt;
        l.phase = LegPhase::Answered;
        l.answer_ms = Some(now.unix_ms);
        // the answer's own status (200, or another 2xx) for the CDR attempt
        l.status = msg.status().unwrap_or(200);
        l.reason = msg.reason().unwrap_or("OK").to_string();
        let body = if lost {
            Ok(Vec::new())
        } else {
            crate::media::body_for(
                &mut *self.media,
                call,
                leg,
                SdpDirection::Answer,
                msg.body(),
                msg.content_type(),
                l.relay_media,
                l.codecs.as_deref(),
            )
        };
        let refused = body.as_ref().err().cloned();
        if lost || refused.is_some() {
            // a late or losing answer: ACK and hang up that leg
            let ack = build_in_dialog(
                &self.cfg.user_agent,
                l,
                Method::Ack,
                Some(l.invite_cseq),
                &self.cfg,
                None,
            );
            let bye = {
                l.local_cseq += 1;
                build_in_dialog(&self.cfg.user_agent, l, Method::Bye, None, &self.cfg, None)
            };
            l.phase = LegPhase::Terminated;
            l.status = 200;
            if let Some(e) = &refused {
                // an answer the relay cannot use: that leg fails with it
                l.status = e.code;
                l.reason = e.reason.clone();
                l.answer_ms = None;
            }
            let t = l.target.clone();
            self.media.release_leg(call, u64::from(leg));
            self.send(t.clone(), ack);
            self.send(t, bye);
            if let Some(e) = refused {
                let cause = Cause::Status(e.code);
                self.leg_failed_check_attempt(now, call, leg, cause, e.code, &e.reason);
            }
            self.maybe_reap(now, call);
            return;
        }
        let body = body.unwrap_or_default();
        c.winner = Some(leg);
        c.phase = Phase::Answered;
        c.answer_ms = Some(now.unix_ms);
        self.stats.answered += 1;
        if let Some(t) = c.ring_timer.take() {
            self.timers.cancel(t);
        }
        // cancel the other forks
        let others: Vec<u32> = (0..c.bs.len() as u32)
            .filter(|i| {
                *i != leg
                    && matches!(
                        c.bs[*i as usize].phase,
                        LegPhase::Calling | LegPhase::Proceeding
                    )
            })
            .collect();
        for o in others {
            self.cancel_leg(call, o, "answered elsewhere");
        }
        let reason = msg.reason().unwrap_or("OK").to_string();
        let data = self.send_a_response(
            call,
            msg.status().unwrap_or(200),
            &reason,
            &body,
            msg.content_type(),
            true,
        );
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.ok_to_a = Some(data);
        self.arm_session_timers(now, call, leg, &msg);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let t1 = self.cfg.t1;
        if c.a_flow.transport == Transport::Udp {
            let t = self.timers.schedule(
                now.mono + t1,
                TimerKind::Call(call, CallTimer::OkRetrans(t1)),
            );
            if let Some(c) = self.calls.get_mut(&call) {
                c.ok_timer = Some(t);
            }
        }
        let t = self.timers.schedule(
            now.mono + t1 * 64,
            TimerKind::Call(call, CallTimer::AckTimeout),
        );
        if let Some(c) = self.calls.get_mut(&call) {
            c.ack_timer = Some(t);
        }
    }

    /// Sends a response to A's INVITE (provisional or final) with our tag
    /// and Contact; returns the bytes.
    fn send_a_response(
        &mut self,
        call: u64,
        code: u16,
        reason: &str,
        body: &[u8],
        content_type: Option<&str>,
        contact: bool,
    ) -> Bytes {
        let c = &self.calls[&call];
        let local = self.local_for(c.a_flow.transport, c.a_flow.remote.is_ipv6());
        let ct_uri = format!(
            "<sip:strowger@{}{}>",
            fmt_hostport(local),
            transport_param(c.a_flow.transport)
        );
        let reason = if reason.is_empty() {
            strowger_sip::reason_phrase(code)
        } else {
            reason
        };
        let mut b = ResponseBuilder::with_reason(&c.invite, code, reason).to_tag(&c.a_tag);
        if contact || code < 200 {
            b = b.contact(&ct_uri);
        }
        if (200..300).contains(&code) {
            b = b.header("Allow", crate::core::ALLOW);
        }
        let se = (200..300)
            .contains(&code)
            .then_some(c.a_se_request)
            .flatten()
            .map(|n| format!("{n};refresher=uac"));
        if let Some(se) = &se {
            b = b.header("Require", "timer").header("Session-Expires", se);
        }
        b = b.header("Server", &self.cfg.user_agent);
        let ct = content_type.unwrap_or("application/sdp");
        if !body.is_empty() {
            b = b.body(ct, body);
        }
        let data = b.build();
        let (inv, flow) = (c.invite.clone(), c.a_flow);
        if code < 200 {
            self.cache.put(
                TxKey::of(&inv, "INVITE"),
                Some((Target::Flow(flow), data.clone())),
            );
            self.send(Target::Flow(flow), data.clone());
        } else {
            self.respond(&inv, flow, data.clone());
        }
        data
    }

    fn cancel_leg(&mut self, call: u64, leg: u32, why: &str) {
        let Some(l) = self
            .calls
            .get_mut(&call)
            .and_then(|c| c.bs.get_mut(leg as usize))
        else {
            return;
        };
        if !matches!(l.phase, LegPhase::Calling | LegPhase::Proceeding) {
            return;
        }
        tracing::debug!(leg = %l.call_id, why, "cancelling leg");
        l.phase = LegPhase::Cancelled;
        l.status = 487;
        l.reason = why.to_string();
        if let Some(r) = l.retrans.take() {
            self.timers.cancel(r);
        }
        if l.got_provisional {
            let data = build_cancel(l);
            let t = l.target.clone();
            self.send(t, data);
        } else {
            // RFC 3261 §9.1: wait for a provisional before sending CANCEL
            l.cancel_pending = true;
        }
    }

    fn leg_failed_check_attempt(
        &mut self,
        now: Now,
        call: u64,
        leg: u32,
        cause: Cause,
        code: u16,
        reason: &str,
    ) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.phase != Phase::Trying {
            return;
        }
        let att = c.bs[leg as usize].attempt;
        if att as usize != c.attempt {
            return;
        }
        let pending = c.bs.iter().any(|l| {
            l.attempt == att && matches!(l.phase, LegPhase::Calling | LegPhase::Proceeding)
        });
        if pending {
            return;
        }
        // all forks of this attempt failed: the best failure (6xx wins, else the first)
        let best =
            c.bs.iter()
                .filter(|l| l.attempt == att && l.phase == LegPhase::Failed && l.status >= 300)
                .max_by_key(|l| (l.status >= 600, std::cmp::Reverse(l.start_ms)))
                .map(|l| (l.status, l.reason.clone()));
        let (code, reason, cause) = match best {
            Some((s, r)) if s != code => (s, r, Cause::Status(s)),
            _ => (code, reason.to_string(), cause),
        };
        if let Some(t) = self.calls.get_mut(&call).and_then(|c| c.ring_timer.take()) {
            self.timers.cancel(t);
        }
        self.attempt_failed(now, call, cause, code, reason);
    }

    fn attempt_failed(&mut self, now: Now, call: u64, cause: Cause, code: u16, reason: String) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.phase != Phase::Trying && c.phase != Phase::Routing {
            return;
        }
        c.failures.push(Failure {
            code,
            reason: reason.clone(),
        });
        let Some(PlanDecision::Forward {
            attempts, retry_on, ..
        }) = c.plan.as_ref().map(|p| &p.decision)
        else {
            return;
        };
        let moves_on = matches!(cause, Cause::Unavailable | Cause::LimitReached)
            || retry_on.iter().any(|r| cause_matches(r, &cause));
        // a group attempt first tries its other members
        let group = match attempts.get(c.attempt).map(|a| &a.dest) {
            Some(Dest::Group(gname)) if moves_on => self
                .cfg
                .groups
                .iter()
                .position(|g| g.name == *gname)
                .map(|g| (g, c.group_tried.clone(), c.attempt)),
            _ => None,
        };
        if let Some((g, tried, idx)) = group
            && self.pick_member(g, &tried).is_ok()
        {
            tracing::debug!(call, group = %self.cfg.groups[g].name, cause = cause_text(&cause), code, "failover inside group");
            self.start_attempt(now, call, idx);
            return;
        }
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(PlanDecision::Forward {
            attempts,
            prefer_last,
            ..
        }) = c.plan.as_ref().map(|p| &p.decision)
        else {
            return;
        };
        let next = c.attempt + 1;
        if moves_on && next < attempts.len() {
            tracing::debug!(call = %c.host_id, attempt = next + 1, cause = cause_text(&cause), code, "failover");
            self.start_attempt(now, call, next);
            return;
        }
        let (code, reason) = if moves_on {
            let f = if *prefer_last {
                c.failures.last()
            } else {
                c.failures.first()
            };
            f.map(|f| (f.code, f.reason.clone()))
                .unwrap_or((code, reason))
        } else {
            (code, reason)
        };
        // never hand a far end's authentication challenge to the caller
        let (code, reason) = match code {
            401 | 407 => (403, "Forbidden".to_string()),
            _ => (code, reason),
        };
        self.fail_call(now, call, code, &reason, "callee");
    }

    /// Sends a final failure to A and ends the call.
    fn fail_call(&mut self, now: Now, call: u64, code: u16, reason: &str, by: &'static str) {
        self.send_a_response(call, code, reason, &[], None, false);
        self.end_call(now, call, code, reason, by);
    }

    fn end_call(&mut self, now: Now, call: u64, code: u16, reason: &str, by: &'static str) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.phase == Phase::Ended {
            return;
        }
        c.phase = Phase::Ended;
        c.final_status = code;
        c.final_reason = reason.to_string();
        c.hangup_by = by;
        for t in [c.ring_timer.take(), c.ok_timer.take(), c.ack_timer.take()]
            .into_iter()
            .flatten()
        {
            self.timers.cancel(t);
        }
        self.stats.active_calls = self.stats.active_calls.saturating_sub(1);
        let c = &self.calls[&call];
        let mut cdr = build_cdr(c, now, code, reason, by);
        cdr.media = self.media.cdr_media(call);
        let cause = crate::metrics::cause_label(&cdr.cause);
        self.sip.call_ended(
            cdr.ingress_trunk.as_deref(),
            cdr.egress_trunk.as_deref(),
            cause,
        );
        tracing::info!(
            call = %cdr.call_id,
            cause,
            code,
            reason,
            hangup = by,
            ingress = cdr.ingress.as_str(),
            egress = cdr.egress.as_deref(),
            duration_s = cdr.answer_ms.map(|a| (cdr.end_ms - a).max(0) as f64 / 1000.0),
            "call ended"
        );
        self.out.push(Action::Cdr(Box::new(cdr)));
        self.out.push(Action::CallEnded { call });
        self.media.release(call);
        // linger to absorb late messages, unless nothing is left in flight
        let t = self.cfg.t1 * 64;
        self.schedule_call(now.mono + t, call, CallTimer::Reap);
        self.maybe_reap(now, call);
    }

    /// Removes an ended call early when no leg can still send us anything
    /// that needs an answer (over UDP the A side may still retransmit, which
    /// the response cache handles).
    fn maybe_reap(&mut self, _now: Now, call: u64) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.phase != Phase::Ended || c.ok_to_a.is_some() {
            return;
        }
        let busy = c.bs.iter().any(|l| {
            matches!(
                l.phase,
                LegPhase::Calling | LegPhase::Proceeding | LegPhase::Cancelled | LegPhase::Answered
            )
        });
        if !busy {
            self.remove_call(call);
        }
    }

    fn remove_call(&mut self, call: u64) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.reaped {
            return;
        }
        c.reaped = true;
        let c = self.calls.remove(&call).expect("present");
        if self
            .legs
            .get(c.invite.call_id())
            .is_some_and(|l| l.call == call)
        {
            self.legs.remove(c.invite.call_id());
        }
        for l in &c.bs {
            self.legs.remove(l.call_id.as_str());
        }
        if c.phase != Phase::Ended {
            self.stats.active_calls = self.stats.active_calls.saturating_sub(1);
            self.out.push(Action::CallEnded { call });
        }
        let _ = c.id;
    }

    pub(crate) fn on_cancel(&mut self, now: Now, req: Message, flow: Flow) {
        let lr = self.legs.get(req.call_id()).copied();
        let Some(LegRef {
            call,
            side: Side::A,
        }) = lr
        else {
            // maybe a CANCEL for a request still waiting for authorize
            let key = TxKey::of(&req, "INVITE");
            let pend = self
                .pending_auth
                .iter()
                .find(|(_, p)| TxKey::of(&p.req, "INVITE") == key)
                .map(|(k, _)| *k);
            if let Some(k) = pend {
                let p = self.pending_auth.remove(&k).expect("present");
                self.reply(&req, flow, 200, None);
                self.reply(&p.req, p.flow, 487, None);
                return;
            }
            self.reply(&req, flow, 481, None);
            return;
        };
        let Some(c) = self.calls.get(&call) else {
            self.reply(&req, flow, 481, None);
            return;
        };
        if c.invite.cseq().seq != req.cseq().seq
            || c.invite.top_via().branch() != req.top_via().branch()
        {
            self.reply(&req, flow, 481, None);
            return;
        }
        let tag = c.a_tag.clone();
        let data = ResponseBuilder::new(&req, 200)
            .to_tag(&tag)
            .header("Server", &self.cfg.user_agent)
            .build();
        self.respond(&req, flow, data);
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if !matches!(c.phase, Phase::Routing | Phase::Trying) {
            return;
        }
        let legs: Vec<u32> = (0..c.bs.len() as u32).collect();
        for l in legs {
            self.cancel_leg(call, l, "caller cancelled");
        }
        self.fail_call(now, call, 487, "Request Terminated", "caller");
    }

    pub(crate) fn on_ack(&mut self, now: Now, req: Message, _flow: Flow) {
        let Some(lr) = self.legs.get(req.call_id()).copied() else {
            return;
        };
        let call = lr.call;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        // ACK for a relayed re-INVITE's 2xx?
        if let Some(ri) = c.relays.iter().position(|r| {
            r.from == lr.side
                && r.method == Method::Invite
                && r.done
                && r.req.cseq().seq == req.cseq().seq
        }) {
            let r = c.relays.remove(ri);
            let ct = req.content_type().map(str::to_string);
            let body = self
                .dialog_sdp(call, r.from, r.to, false, req.body(), ct.as_deref())
                .unwrap_or_else(|_| req.body().to_vec());
            self.send_in_dialog(
                call,
                r.to,
                Method::Ack,
                Some(r.out_cseq),
                &body,
                ct.as_deref(),
                &[],
            );
            return;
        }
        if lr.side != Side::A {
            return;
        }
        if req.cseq().seq != c.invite.cseq().seq {
            return;
        }
        if c.ok_to_a.take().is_some() {
            for t in [c.ok_timer.take(), c.ack_timer.take()]
                .into_iter()
                .flatten()
            {
                self.timers.cancel(t);
            }
            let Some(w) = c.winner else { return };
            let ct = req.content_type().map(str::to_string);
            let body = self
                .dialog_sdp(call, Side::A, Side::B(w), false, req.body(), ct.as_deref())
                .unwrap_or_else(|_| req.body().to_vec());
            let Some(c) = self.calls.get_mut(&call) else {
                return;
            };
            let l = &mut c.bs[w as usize];
            let ack = build_in_dialog(
                &self.cfg.user_agent,
                l,
                Method::Ack,
                Some(l.invite_cseq),
                &self.cfg,
                (!body.is_empty()).then(|| (ct.as_deref().unwrap_or("application/sdp"), &body[..])),
            );
            l.ack = Some(ack.clone());
            let t = l.target.clone();
            let ended = c.phase == Phase::Ended;
            self.send(t, ack);
            if ended {
                self.maybe_reap(now, call);
            }
        }
    }

    pub(crate) fn on_in_dialog(&mut self, now: Now, req: Message, flow: Flow) {
        let method = req.method().cloned().unwrap_or(Method::Other("".into()));
        let Some(lr) = self.legs.get(req.call_id()).copied() else {
            self.reply(&req, flow, 481, None);
            return;
        };
        let call = lr.call;
        let Some(c) = self.calls.get_mut(&call) else {
            self.reply(&req, flow, 481, None);
            return;
        };
        // the dialog must be ours: our tag is the request's To tag
        let our_tag_ok = match lr.side {
            Side::A => req.to_tag() == Some(c.a_tag.as_str()),
            Side::B(l) => req.to_tag() == Some(c.bs[l as usize].from_tag.as_str()),
        };
        if !our_tag_ok || c.phase == Phase::Ended {
            self.reply(&req, flow, 481, None);
            return;
        }
        let other = match (lr.side, c.winner) {
            (Side::A, Some(w)) => Some(Side::B(w)),
            (Side::B(l), Some(w)) if l == w => Some(Side::A),
            _ => None,
        };
        if method == Method::Bye {
            let tag = match lr.side {
                Side::A => c.a_tag.clone(),
                Side::B(l) => c.bs[l as usize].from_tag.clone(),
            };
            let data = ResponseBuilder::new(&req, 200)
                .to_tag(&tag)
                .header("Server", &self.cfg.user_agent)
                .build();
            let phase = c.phase;
            let n_legs = c.bs.len() as u32;
            self.respond(&req, flow, data);
            match lr.side {
                Side::A => {
                    if phase == Phase::Answered {
                        self.hangup_both(now, call, Some(Side::A), "caller", 200, "Caller hung up");
                    } else {
                        for l in 0..n_legs {
                            self.cancel_leg(call, l, "caller hung up");
                        }
                        self.fail_call(now, call, 487, "Request Terminated", "caller");
                    }
                }
                Side::B(l) => {
                    if other.is_some() {
                        self.hangup_both(
                            now,
                            call,
                            Some(Side::B(l)),
                            "callee",
                            200,
                            "Callee hung up",
                        );
                    } else if let Some(leg) = self
                        .calls
                        .get_mut(&call)
                        .and_then(|c| c.bs.get_mut(l as usize))
                    {
                        leg.phase = LegPhase::Terminated;
                    }
                }
            }
            return;
        }
        let Some(other) = other else {
            self.reply(&req, flow, 481, None);
            return;
        };
        if matches!(method, Method::Invite | Method::Update) {
            self.session_refreshed(now, call, lr.side == Side::A);
        }
        if method == Method::Info && self.info_dtmf_to_rtp(call, lr.side, other, &req, flow) {
            return;
        }
        // relay across
        let ct = req.content_type().map(str::to_string);
        let body = if matches!(method, Method::Invite | Method::Update) {
            match self.dialog_sdp(call, lr.side, other, true, req.body(), ct.as_deref()) {
                Ok(b) => b,
                Err(e) => {
                    self.reply(&req, flow, e.code, Some(&e.reason));
                    return;
                }
            }
        } else {
            req.body().to_vec()
        };
        let mut extra = Vec::new();
        for h in req.headers_iter() {
            if COPY_IN_DIALOG
                .iter()
                .any(|n| n.eq_ignore_ascii_case(h.name))
                || (h.name.len() > 2 && h.name[..2].eq_ignore_ascii_case("x-"))
            {
                extra.push((h.name.to_string(), h.value.to_string()));
            }
        }
        let out_cseq = self.send_in_dialog(
            call,
            other,
            method.clone(),
            None,
            &body,
            ct.as_deref(),
            &extra,
        );
        let key = TxKey::of(&req, method.as_str());
        self.cache.put(key, None);
        if let Some(c) = self.calls.get_mut(&call) {
            c.relays.push(Relay {
                from: lr.side,
                to: other,
                req,
                flow,
                out_cseq,
                method,
                done: false,
            });
        }
    }

    fn on_a_response(&mut self, now: Now, call: u64, msg: Message) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let cseq = msg.cseq().clone();
        if let Some(ri) = c.relays.iter().position(|r| {
            r.to == Side::A && r.out_cseq == cseq.seq && r.method == cseq.method && !r.done
        }) {
            self.relay_response(now, call, ri, msg);
        }
    }

    fn relay_response(&mut self, _now: Now, call: u64, ri: usize, msg: Message) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let code = msg.status().unwrap_or(500);
        if code == 100 {
            return;
        }
        let r = &c.relays[ri];
        let body = if matches!(r.method, Method::Invite | Method::Update) && code < 300 {
            let (from, to) = (r.from, r.to);
            self.dialog_sdp(call, to, from, false, msg.body(), msg.content_type())
                .unwrap_or_else(|e| {
                    tracing::warn!(
                        call,
                        code = e.code,
                        "in-dialog SDP answer refused by the relay; relayed as is"
                    );
                    msg.body().to_vec()
                })
        } else {
            msg.body().to_vec()
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let a_se = c.a_timer.as_ref().map(|t| t.interval.as_secs());
        let r = &mut c.relays[ri];
        let tag = match r.from {
            Side::A => c.a_tag.clone(),
            Side::B(l) => c.bs[l as usize].from_tag.clone(),
        };
        let local = self.cfg.listeners.first().map(|x| x.1);
        let flow = r.flow;
        let local = local.map(|_| {
            let l = self_local_for(&self.cfg, flow.transport, flow.remote.is_ipv6());
            format!(
                "<sip:strowger@{}{}>",
                fmt_hostport(l),
                transport_param(flow.transport)
            )
        });
        let mut b =
            ResponseBuilder::with_reason(&r.req, code, msg.reason().unwrap_or("")).to_tag(&tag);
        if matches!(
            r.method,
            Method::Invite | Method::Update | Method::Subscribe | Method::Notify | Method::Refer
        ) && let Some(ct) = &local
        {
            b = b.contact(ct);
        }
        for h in msg.headers_iter() {
            if COPY_IN_DIALOG
                .iter()
                .any(|n| n.eq_ignore_ascii_case(h.name))
            {
                b = b.header(h.name, h.value);
            }
        }
        if r.from == Side::A
            && (200..300).contains(&code)
            && matches!(r.method, Method::Invite | Method::Update)
            && let Some(n) = a_se
        {
            b = b
                .header("Require", "timer")
                .header("Session-Expires", &format!("{n};refresher=uac"));
        }
        b = b.header("Server", &self.cfg.user_agent);
        let ct = msg.content_type().unwrap_or("application/sdp").to_string();
        if !body.is_empty() {
            b = b.body(&ct, &body);
        }
        let data = b.build();
        let req = r.req.clone();
        let to = r.to;
        let method = r.method.clone();
        let out_cseq = r.out_cseq;
        if code >= 200 {
            r.done = true;
        }
        if code >= 200 && !(method == Method::Invite && code < 300) {
            c.relays.remove(ri);
        }
        if method == Method::Invite && code >= 300 {
            // ACK the far side's non-2xx ourselves
            self.send_in_dialog(call, to, Method::Ack, Some(out_cseq), &[], None, &[]);
        }
        if code < 200 {
            self.send(Target::Flow(flow), data);
        } else {
            self.respond(&req, flow, data);
        }
    }

    /// An in-dialog SDP body from `from` to `to` through the media handler
    /// (`offer` or answer), with the leg's media mode and codecs.
    fn dialog_sdp(
        &mut self,
        call: u64,
        from: Side,
        to: Side,
        offer: bool,
        body: &[u8],
        ct: Option<&str>,
    ) -> Result<Vec<u8>, MediaRefusal> {
        let (leg, dir) = match (from, to, offer) {
            (Side::A, Side::B(l), true) => (l, SdpDirection::Offer),
            (Side::A, Side::B(l), false) => (l, SdpDirection::CallerAnswer),
            (Side::B(l), _, true) => (l, SdpDirection::CalleeOffer),
            (Side::B(l), _, false) => (l, SdpDirection::Answer),
            _ => return Ok(body.to_vec()),
        };
        let (relay, codecs) = self
            .calls
            .get(&call)
            .and_then(|c| c.bs.get(leg as usize))
            .map(|l| (l.relay_media, l.codecs.clone()))
            .unwrap_or_default();
        let m = &mut *self.media;
        crate::media::body_for(m, call, leg, dir, body, ct, relay, codecs.as_deref())
    }

    /// The relay saw no media on the answered leg `leg` for the configured
    /// time: BYE both legs (the CDR cause is `media-timeout`).
    pub(crate) fn on_media_timeout(&mut self, now: Now, call: u64, leg: u64) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.phase != Phase::Answered || c.winner.map(u64::from) != Some(leg) {
            return;
        }
        tracing::info!(call = %c.host_id, "media timeout: ending the call");
        let reason = crate::media::TIMEOUT_REASON;
        self.hangup_both(now, call, None, "switch", 200, reason);
    }

    /// Ends an answered call from the switch's side: BYE both legs, `reason`
    /// recorded (its CDR cause).
    pub(crate) fn hangup_with_cause(&mut self, now: Now, call: u64, reason: &str) {
        self.hangup_both(now, call, None, "switch", 200, reason);
    }

    /// Starts the negotiated session timers of a call just answered on `leg`.
    fn arm_session_timers(&mut self, now: Now, call: u64, leg: u32, ok: &Message) {
        use crate::session_timer::{LegTimer, expiry_after, session_expires};
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let offered = c.bs[leg as usize]
            .egress
            .strip_prefix("trunk:")
            .and_then(|n| self.cfg.trunks.iter().find(|t| t.name == n))
            .and_then(|t| t.session_expires)
            .is_some();
        if offered && let Some((n, refresher_uac)) = session_expires(ok) {
            let interval = Duration::from_secs(n as u64);
            let we_refresh = refresher_uac.unwrap_or(true);
            c.b_timer = Some(LegTimer {
                interval,
                we_refresh,
                pending: None,
                epoch: 0,
            });
            let t = if we_refresh {
                CallTimer::SessionRefresh(0)
            } else {
                CallTimer::SessionExpire(false, 0)
            };
            let at = if we_refresh {
                interval / 2
            } else {
                expiry_after(interval)
            };
            self.schedule_call(now.mono + at, call, t);
        }
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if let Some(n) = c.a_se_request {
            let interval = Duration::from_secs(n as u64);
            c.a_timer = Some(LegTimer {
                interval,
                we_refresh: false,
                pending: None,
                epoch: 0,
            });
            self.schedule_call(
                now.mono + expiry_after(interval),
                call,
                CallTimer::SessionExpire(true, 0),
            );
        }
    }

    /// A refresh (re-INVITE/UPDATE) arrived from the A side (or the B side).
    fn session_refreshed(&mut self, now: Now, call: u64, a_side: bool) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let t = if a_side {
            &mut c.a_timer
        } else {
            &mut c.b_timer
        };
        let Some(t) = t.as_mut().filter(|t| !t.we_refresh) else {
            return;
        };
        t.epoch += 1;
        let (epoch, at) = (t.epoch, crate::session_timer::expiry_after(t.interval));
        self.schedule_call(now.mono + at, call, CallTimer::SessionExpire(a_side, epoch));
    }

    /// Our turn to refresh the B leg's session: UPDATE without a body; if
    /// no answer arrives before the session would expire, it is over.
    fn session_refresh(&mut self, now: Now, call: u64, epoch: u32) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let Some(w) = c.winner else { return };
        let Some(t) = c.b_timer.as_ref().filter(|t| t.epoch == epoch) else {
            return;
        };
        if c.phase != Phase::Answered {
            return;
        }
        let n = t.interval.as_secs();
        let extra = vec![
            ("Supported".to_string(), "timer".to_string()),
            ("Session-Expires".to_string(), format!("{n};refresher=uac")),
        ];
        let seq = self.send_in_dialog(call, Side::B(w), Method::Update, None, &[], None, &extra);
        let Some(t) = self.calls.get_mut(&call).and_then(|c| c.b_timer.as_mut()) else {
            return;
        };
        t.pending = Some(seq);
        let half = t.interval / 2;
        // unanswered until the session ends: expire (same epoch)
        self.schedule_call(
            now.mono + half,
            call,
            CallTimer::SessionExpire(false, epoch),
        );
    }

    /// The relay took a DTMF digit out of the RTP of one side of leg `leg`
    /// (RFC 4733): send it to the other side as SIP INFO
    /// (`application/dtmf-relay`). Only on the answered leg of a call.
    pub(crate) fn on_media_dtmf(
        &mut self,
        call: u64,
        leg: u64,
        from_caller: bool,
        signal: char,
        duration_ms: u32,
    ) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let Some(w) = c.winner.filter(|w| u64::from(*w) == leg) else {
            return;
        };
        if c.phase != Phase::Answered {
            return;
        }
        let to = if from_caller { Side::B(w) } else { Side::A };
        tracing::debug!(call = %c.host_id, %signal, duration_ms, "DTMF: RFC 2833 -> INFO");
        let body = crate::media::dtmf_relay_body(signal, duration_ms);
        self.send_in_dialog(
            call,
            to,
            Method::Info,
            None,
            body.as_bytes(),
            Some("application/dtmf-relay"),
            &[],
        );
    }

    /// DTMF mode of a side of `call`: the ingress trunk's for the caller,
    /// the egress trunk's for an outbound leg (RFC 2833 otherwise).
    fn side_dtmf(&self, call: u64, side: Side) -> DtmfMode {
        let Some(c) = self.calls.get(&call) else {
            return DtmfMode::Rfc2833;
        };
        let name = match side {
            Side::A => c.facts.trunk.as_deref(),
            Side::B(l) => {
                c.bs.get(l as usize)
                    .and_then(|l| l.egress.strip_prefix("trunk:"))
            }
        };
        name.and_then(|n| self.cfg.trunks.iter().find(|t| t.name == n))
            .map_or(DtmfMode::Rfc2833, |t| t.dtmf)
    }

    /// An INFO with `application/dtmf-relay` from an `info` side towards a
    /// side that is not: answer it 200 here and send the digit as RFC 4733
    /// RTP through the relay. `false` = not converted (relay the INFO).
    fn info_dtmf_to_rtp(
        &mut self,
        call: u64,
        from: Side,
        to: Side,
        req: &Message,
        flow: Flow,
    ) -> bool {
        let dtmf_relay = req
            .content_type()
            .is_some_and(|c| c.trim().eq_ignore_ascii_case("application/dtmf-relay"));
        if !dtmf_relay
            || self.side_dtmf(call, from) != DtmfMode::Info
            || self.side_dtmf(call, to) == DtmfMode::Info
        {
            return false;
        }
        let Some((event, ms)) = crate::media::parse_dtmf_relay(req.body()) else {
            return false;
        };
        let Some(leg) = self.calls.get(&call).and_then(|c| c.winner) else {
            return false;
        };
        let to_caller = to == Side::A;
        if !self
            .media
            .send_dtmf(call, u64::from(leg), to_caller, event, ms)
        {
            return false;
        }
        let tag = req.to_tag().unwrap_or_default().to_string();
        let data = ResponseBuilder::new(req, 200)
            .to_tag(&tag)
            .header("Server", &self.cfg.user_agent)
            .build();
        self.respond(req, flow, data);
        true
    }

    /// Sends BYE to every answered side except `except` and ends the call.
    fn hangup_both(
        &mut self,
        now: Now,
        call: u64,
        except: Option<Side>,
        by: &'static str,
        code: u16,
        reason: &str,
    ) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if except != Some(Side::A) && c.phase == Phase::Answered {
            self.send_in_dialog(call, Side::A, Method::Bye, None, &[], None, &[]);
        }
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if let Some(w) = c.winner {
            if except != Some(Side::B(w)) {
                self.send_in_dialog(call, Side::B(w), Method::Bye, None, &[], None, &[]);
            } else if let Some(l) = c.bs.get_mut(w as usize) {
                l.phase = LegPhase::Terminated;
            }
        }
        self.end_call(now, call, code, reason, by);
    }

    /// Builds and sends an in-dialog request on `side`; returns its CSeq.
    #[allow(clippy::too_many_arguments)]
    fn send_in_dialog(
        &mut self,
        call: u64,
        side: Side,
        method: Method,
        cseq: Option<u32>,
        body: &[u8],
        content_type: Option<&str>,
        extra: &[(String, String)],
    ) -> u32 {
        let cfg = &self.cfg;
        let Some(c) = self.calls.get_mut(&call) else {
            return 0;
        };
        let body_opt =
            (!body.is_empty()).then(|| (content_type.unwrap_or("application/sdp"), body));
        match side {
            Side::A => {
                let seq = match cseq {
                    Some(s) => s,
                    None => {
                        c.a_local_cseq += 1;
                        c.a_local_cseq
                    }
                };
                let flow = c.a_flow;
                let local = self_local_for(cfg, flow.transport, flow.remote.is_ipv6());
                let branch = strowger_sip::ids::branch();
                let mut b = RequestBuilder::new(&method, &c.a_remote_target)
                    .via(
                        sip_transport(flow.transport),
                        &fmt_hostport(local),
                        &branch,
                        true,
                    )
                    .max_forwards(cfg.max_forwards)
                    .from(&c.a_to_addr, &c.a_tag)
                    .to(&c.a_from_addr, None)
                    .call_id(c.invite.call_id())
                    .cseq(seq);
                for r in &c.a_route_set {
                    b = b.route(r);
                }
                if matches!(
                    method,
                    Method::Invite
                        | Method::Update
                        | Method::Subscribe
                        | Method::Refer
                        | Method::Notify
                ) {
                    b = b.contact(&format!(
                        "<sip:strowger@{}{}>",
                        fmt_hostport(local),
                        transport_param(flow.transport)
                    ));
                }
                for (n, v) in extra {
                    b = b.header(n, v);
                }
                b = b.header("User-Agent", &cfg.user_agent);
                if let Some((ct, bd)) = body_opt {
                    b = b.body(ct, bd);
                }
                let data = b.build();
                self.send(Target::Flow(flow), data);
                seq
            }
            Side::B(l) => {
                let Some(leg) = c.bs.get_mut(l as usize) else {
                    return 0;
                };
                let seq = match cseq {
                    Some(s) => s,
                    None => {
                        leg.local_cseq += 1;
                        leg.local_cseq
                    }
                };
                let mut data = build_in_dialog(
                    &cfg.user_agent,
                    leg,
                    method.clone(),
                    Some(seq),
                    cfg,
                    body_opt,
                );
                if !extra.is_empty() {
                    // re-build with the extra headers
                    let msg = strowger_sip::parse(data.clone()).ok();
                    if let Some(m) = msg {
                        let mut ed = strowger_sip::MessageEditor::new(&m);
                        for (n, v) in extra {
                            ed = ed.add(n, v);
                        }
                        data = ed.build();
                    }
                }
                if method == Method::Ack {
                    leg.ack = Some(data.clone());
                }
                let t = leg.target.clone();
                self.send(t, data);
                seq
            }
        }
    }

    fn attempt_record(
        &mut self,
        now: Now,
        call: u64,
        egress: &str,
        att: &PlannedAttempt,
        code: u16,
        cause: &Cause,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.unresolved.push((
            c.attempt as u32,
            CdrAttempt {
                destination: egress.to_string(),
                egress_trunk: trunk_of(egress),
                a_number: att.a_number.clone(),
                b_number: att.b_number.clone(),
                start_ms: now.unix_ms,
                answer_ms: None,
                end_ms: Some(now.unix_ms),
                final_code: Some(code),
                cause: Some(cause_text(cause).to_string()),
            },
        ));
    }
}

fn trunk_of(egress: &str) -> Option<String> {
    egress.strip_prefix("trunk:").map(str::to_string)
}

fn build_cdr(c: &CallState, now: Now, code: u16, reason: &str, by: &str) -> Cdr {
    let mut attempts: Vec<(u32, CdrAttempt)> =
        c.bs.iter()
            .map(|l| {
                (
                    l.attempt,
                    CdrAttempt {
                        destination: l.egress.clone(),
                        egress_trunk: trunk_of(&l.egress),
                        a_number: l.a_out.clone(),
                        b_number: l.b_out.clone(),
                        start_ms: l.start_ms,
                        answer_ms: l.answer_ms,
                        end_ms: Some(now.unix_ms),
                        final_code: (l.status != 0).then_some(l.status),
                        cause: Some(match l.phase {
                            LegPhase::Answered | LegPhase::Terminated if l.answer_ms.is_some() => {
                                "answered".to_string()
                            }
                            LegPhase::Cancelled => "cancelled".to_string(),
                            _ if l.status == 408 => "no-answer".to_string(),
                            _ if l.status == 487 => "cancelled".to_string(),
                            _ => "status".to_string(),
                        }),
                    },
                )
            })
            .collect();
    attempts.extend(c.unresolved.iter().cloned());
    attempts.sort_by_key(|(a, x)| (*a, x.start_ms));
    let w = c.winner.map(|w| &c.bs[w as usize]);
    let last = w.or(c.bs.last());
    let answered = c.answer_ms.is_some();
    let cause = if answered {
        match reason {
            crate::media::TIMEOUT_REASON => "media-timeout",
            crate::session_timer::SESSION_TIMER_REASON => "session-timer",
            _ => "normal",
        }
        .to_string()
    } else {
        match code {
            487 => "cancelled",
            486 | 600 => "busy",
            408 => "no-answer",
            480 => "unavailable",
            _ if by == "switch" => "rejected",
            _ => "failed",
        }
        .to_string()
    };
    let generation = c
        .plan
        .as_ref()
        .map(|p| p.generation.clone())
        .unwrap_or_default();
    let (gen_no, plugins) = match generation.split_once(' ') {
        Some((g, p)) => (g.parse().ok(), p.to_string()),
        None => (generation.parse().ok(), String::new()),
    };
    Cdr {
        call_id: c.host_id.clone(),
        sip_call_id: Some(c.invite.call_id().to_string()),
        start_ms: c.facts.time_unix_ms,
        answer_ms: c.answer_ms,
        end_ms: now.unix_ms,
        a_number: c.facts.a_number.clone(),
        b_number: c.facts.b_number.clone(),
        a_number_out: last.map(|l| l.a_out.clone()),
        b_number_out: last.map(|l| l.b_out.clone()),
        ingress: ingress_text(&c.facts.ingress),
        ingress_trunk: c.facts.trunk.clone(),
        source: Some(format!(
            "{}:{}",
            c.facts.source.transport, c.facts.source.remote
        )),
        egress: last.map(|l| l.egress.clone()),
        egress_trunk: last.and_then(|l| trunk_of(&l.egress)),
        final_code: if answered { 200 } else { code },
        final_reason: if answered {
            "OK".into()
        } else {
            reason.to_string()
        },
        cause,
        hangup_side: answered.then(|| by.to_string()),
        plugins,
        policy_generation: gen_no,
        attempts: attempts.into_iter().map(|(_, a)| a).collect(),
        media: None,
    }
}

/// SIP status for a cause that has none of its own.
pub(crate) fn cause_status(c: &Cause) -> (u16, &'static str) {
    match c {
        Cause::Status(s) => (*s, ""),
        Cause::StatusClass(k) => (*k as u16 * 100, ""),
        Cause::NoAnswer => (408, "No Answer"),
        Cause::Unavailable => (480, "Temporarily Unavailable"),
        Cause::LimitReached => (503, "Limit Reached"),
    }
}

fn self_local_for(
    cfg: &crate::core::CoreConfig,
    transport: Transport,
    v6: bool,
) -> std::net::SocketAddr {
    cfg.listeners
        .iter()
        .find(|(t, a)| *t == transport && a.is_ipv6() == v6)
        .or_else(|| cfg.listeners.iter().find(|(t, _)| *t == transport))
        .or_else(|| cfg.listeners.first())
        .map(|(_, a)| *a)
        .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 5060)))
}

/// `host:port` with IPv6 brackets.
/// The session interval a caller's INVITE asks for, if it supports timers.
fn a_se_request(req: &Message) -> Option<u32> {
    if !crate::session_timer::supports_timer(req) {
        return None;
    }
    crate::session_timer::session_expires(req).map(|(n, _)| n)
}

/// `host[:port]` for a URI (IPv6 hosts keep the brackets they came with).
fn fmt_host_port(host: &str, port: Option<u16>) -> String {
    match port {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

pub(crate) fn fmt_hostport(a: std::net::SocketAddr) -> String {
    a.to_string()
}

fn transport_param(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "",
        Transport::Tcp => ";transport=tcp",
        Transport::Tls => ";transport=tls",
    }
}

/// CANCEL for a leg's INVITE (same Via branch, RFC 3261 §9.1).
fn build_cancel(l: &BLeg) -> Bytes {
    let local = via_sent_by(&l.invite);
    RequestBuilder::new(&Method::Cancel, &l.ruri)
        .via(sip_transport(l.transport), &local, &l.branch, true)
        .max_forwards(70)
        .from(&l.from_addr, &l.from_tag)
        .to(&l.to_addr, None)
        .call_id(&l.call_id)
        .cseq(l.invite_cseq)
        .build()
}

impl Core {
    /// A trunk with credentials challenged our INVITE: send it again on
    /// the same leg (same Call-ID and From tag, next CSeq, new branch) with
    /// the digest answer. False when there is nothing to answer with.
    fn answer_trunk_challenge(&mut self, now: Now, call: u64, leg: u32, resp: &Message) -> bool {
        let Some(c) = self.calls.get(&call) else {
            return false;
        };
        let Some(l) = c.bs.get(leg as usize) else {
            return false;
        };
        let Some(t) = l
            .egress
            .strip_prefix("trunk:")
            .and_then(|n| self.cfg.trunks.iter().find(|t| t.name == n))
        else {
            return false;
        };
        let Some(secret) = t.secret.clone() else {
            return false;
        };
        if l.auth_rounds >= 2 {
            return false;
        }
        let Some((aname, ch)) = crate::trunks::pick_challenge(resp) else {
            return false;
        };
        let user = t.auth_user.clone().unwrap_or_else(|| t.user.clone());
        let value = strowger_sip::digest::answer(&ch, "INVITE", &l.ruri, &user, &secret, None, 1);
        let target = l.target.clone();
        tracing::debug!(call, leg, "answering the trunk's digest challenge");
        self.resend_invite(now, call, leg, target, Some((aname, &value)))
    }

    /// Sends the leg's INVITE again as a new transaction (new branch, next
    /// CSeq) to `target`, optionally with an authorization header; late
    /// answers to the old CSeq are then ignored.
    fn resend_invite(
        &mut self,
        now: Now,
        call: u64,
        leg: u32,
        target: Target,
        auth: Option<(&str, &str)>,
    ) -> bool {
        let Some(l) = self.calls.get(&call).and_then(|c| c.bs.get(leg as usize)) else {
            return false;
        };
        let Ok(old) = strowger_sip::parse(l.invite.clone()) else {
            return false;
        };
        let cseq = l.invite_cseq + 1;
        let branch = strowger_sip::ids::branch();
        let top = old.top_via();
        let via = format!(
            "SIP/2.0/{} {};branch={branch};rport",
            top.transport,
            via_sent_by(&l.invite)
        );
        let cseq_v = format!("{cseq} INVITE");
        let mut ed = strowger_sip::MessageEditor::new(&old)
            .pop_via()
            .prepend_via(&via)
            .replace("CSeq", &cseq_v);
        if let Some((name, value)) = auth {
            ed = ed
                .remove("Authorization")
                .remove("Proxy-Authorization")
                .add(name, value);
        }
        let data = ed.build();
        let transport = l.transport;
        let (old_retrans, old_timeout) = (l.retrans, l.timeout);
        for t in [old_retrans, old_timeout].into_iter().flatten() {
            self.timers.cancel(t);
        }
        let t1 = self.cfg.t1;
        let retrans = (transport == Transport::Udp)
            .then(|| self.schedule_call(now.mono + t1, call, CallTimer::InviteRetrans(leg, t1)));
        let timeout = self.schedule_call(now.mono + t1 * 64, call, CallTimer::InviteTimeout(leg));
        let Some(l) = self
            .calls
            .get_mut(&call)
            .and_then(|c| c.bs.get_mut(leg as usize))
        else {
            return false;
        };
        l.invite = data.clone();
        l.branch = branch;
        l.invite_cseq = cseq;
        l.local_cseq = l.local_cseq.max(cseq);
        if auth.is_some() {
            l.auth_rounds += 1;
        }
        l.target = target.clone();
        l.responded = false;
        l.phase = LegPhase::Calling;
        l.status = 0;
        l.got_provisional = false;
        l.retrans = retrans;
        l.timeout = Some(timeout);
        self.send(target, data);
        true
    }
}

/// ACK for a non-2xx final response (same transaction, RFC 3261 §17.1.1.3).
fn build_non2xx_ack(l: &BLeg, to_tag: Option<&str>) -> Bytes {
    let local = via_sent_by(&l.invite);
    RequestBuilder::new(&Method::Ack, &l.ruri)
        .via(sip_transport(l.transport), &local, &l.branch, true)
        .max_forwards(70)
        .from(&l.from_addr, &l.from_tag)
        .to(&l.to_addr, to_tag)
        .call_id(&l.call_id)
        .cseq(l.invite_cseq)
        .build()
}

fn via_sent_by(invite: &Bytes) -> String {
    strowger_sip::parse(invite.clone())
        .map(|m| {
            let v = m.top_via();
            match v.port {
                Some(p) => format!("{}:{p}", v.host),
                None => v.host.to_string(),
            }
        })
        .unwrap_or_default()
}

/// A request inside a B leg's dialog (ACK for 2xx, BYE, relayed requests).
fn build_in_dialog(
    ua: &str,
    l: &BLeg,
    method: Method,
    cseq: Option<u32>,
    cfg: &crate::core::CoreConfig,
    body: Option<(&str, &[u8])>,
) -> Bytes {
    let local = self_local_for(cfg, l.transport, l.target.addr().is_ipv6());
    let branch = strowger_sip::ids::branch();
    let mut b = RequestBuilder::new(&method, &l.remote_target)
        .via(
            sip_transport(l.transport),
            &fmt_hostport(local),
            &branch,
            true,
        )
        .max_forwards(cfg.max_forwards)
        .from(&l.from_addr, &l.from_tag)
        .to(&l.to_addr, l.to_tag.as_deref())
        .call_id(&l.call_id)
        .cseq(cseq.unwrap_or(l.local_cseq));
    for r in &l.route_set {
        b = b.route(r);
    }
    if matches!(
        method,
        Method::Invite | Method::Update | Method::Subscribe | Method::Refer | Method::Notify
    ) {
        b = b.contact(&format!(
            "<sip:strowger@{}{}>",
            fmt_hostport(local),
            transport_param(l.transport)
        ));
    }
    b = b.header("User-Agent", ua);
    if let Some((ct, bd)) = body {
        b = b.body(ct, bd);
    }
    b.build()
}

// Control plane (calls list, hang-up): a child module so that it reads call
// state without widening the fields above.
#[path = "control.rs"]
pub mod control;
