//! SIP counters of the core and their Prometheus text exposition.
//!
//! The core counts into plain integers (it is single-threaded): a message
//! in or out costs an array increment, classified from bytes the core
//! already has (no parse, no allocation). `/metrics` asks the core task for
//! a copy ([`SwitchMetrics`]) and renders it here in the Prometheus text
//! format 0.0.4; the admin API turns the whole page into OpenMetrics when
//! the scraper asks for it.

use std::collections::HashMap;
use std::fmt::{Display, Write as _};

/// Methods counted by name; anything else is `other`.
pub const METHODS: [&str; 15] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "REGISTER",
    "OPTIONS",
    "INFO",
    "UPDATE",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "REFER",
    "MESSAGE",
    "PUBLISH",
    "other",
];

/// Index of a method token in [`METHODS`] (the last one for unknown ones).
pub fn method_index(m: &[u8]) -> usize {
    METHODS[..METHODS.len() - 1]
        .iter()
        .position(|k| k.as_bytes() == m)
        .unwrap_or(METHODS.len() - 1)
}

/// Status codes counted one by one: 100..=699.
const CODES: usize = 600;

/// What one datagram or stream message is, from its first line.
enum Kind {
    Request(usize),
    Response(u16),
    Unknown,
}

fn classify(data: &[u8]) -> Kind {
    if let Some(rest) = data.strip_prefix(b"SIP/2.0 ") {
        if rest.len() >= 3 && rest[..3].iter().all(u8::is_ascii_digit) {
            let c = (rest[0] - b'0') as u16 * 100
                + (rest[1] - b'0') as u16 * 10
                + (rest[2] - b'0') as u16;
            return Kind::Response(c);
        }
        return Kind::Unknown;
    }
    match data.iter().take(32).position(|&b| b == b' ') {
        Some(n) if n > 0 => Kind::Request(method_index(&data[..n])),
        _ => Kind::Unknown,
    }
}

/// Counters of one direction.
#[derive(Clone, Debug)]
pub struct Direction {
    /// Requests by [`METHODS`] index.
    pub requests: [u64; METHODS.len()],
    /// Responses by status code − 100 (100..=699).
    pub responses: Vec<u64>,
}

impl Default for Direction {
    fn default() -> Self {
        Direction {
            requests: [0; METHODS.len()],
            responses: vec![0; CODES],
        }
    }
}

impl Direction {
    fn response(&mut self, code: u16) {
        if (100..700).contains(&code) {
            self.responses[code as usize - 100] += 1;
        }
    }
}

/// SIP counters kept by the core.
#[derive(Clone, Debug, Default)]
pub struct SipCounters {
    /// Messages received (parsed).
    pub rx: Direction,
    /// Messages sent (retransmissions included).
    pub tx: Direction,
    /// New server transactions: requests other than ACK that were not a
    /// retransmission.
    pub server_transactions: u64,
    /// Requests we retransmitted (INVITE Timer A of call legs).
    pub request_retransmissions: u64,
    /// 2xx we retransmitted until the caller's ACK.
    pub response_retransmissions: u64,
    /// Final responses to REGISTER by code − 100.
    pub register_results: Vec<u64>,
    /// Failed authentications (wrong credentials).
    pub auth_failures: u64,
    /// Ended calls by (ingress trunk, egress trunk, cause).
    pub calls_ended: HashMap<(String, String, &'static str), u64>,
}

impl SipCounters {
    /// Counts a message received.
    pub fn received(&mut self, method: Option<&str>, status: Option<u16>) {
        match (method, status) {
            (_, Some(c)) => self.rx.response(c),
            (Some(m), None) => self.rx.requests[method_index(m.as_bytes())] += 1,
            _ => {}
        }
    }

    /// Counts a message sent (its bytes as they go out).
    pub fn sent(&mut self, data: &[u8]) {
        match classify(data) {
            Kind::Request(i) => self.tx.requests[i] += 1,
            Kind::Response(c) => self.tx.response(c),
            Kind::Unknown => {}
        }
    }

    /// Counts a final response to a REGISTER.
    pub fn register_result(&mut self, code: u16) {
        if self.register_results.is_empty() {
            self.register_results = vec![0; CODES];
        }
        if (100..700).contains(&code) {
            self.register_results[code as usize - 100] += 1;
        }
    }

    /// Counts an ended call.
    pub fn call_ended(&mut self, ingress: Option<&str>, egress: Option<&str>, cause: &'static str) {
        let key = (
            ingress.unwrap_or("").to_string(),
            egress.unwrap_or("").to_string(),
            cause,
        );
        *self.calls_ended.entry(key).or_default() += 1;
    }
}

/// Static protection counters (copied from the core on scrape).
#[derive(Clone, Debug, Default)]
pub struct ProtectionCounters {
    /// Requests dropped: banned source.
    pub banned_drops: u64,
    /// Requests dropped: rate limit.
    pub rate_drops: u64,
    /// Requests dropped: scanner User-Agent.
    pub scanner_drops: u64,
    /// Bans issued.
    pub bans: u64,
    /// Sources banned now.
    pub banned_now: u64,
}

/// A copy of the core's counters, taken on scrape.
#[derive(Clone, Debug, Default)]
pub struct SwitchMetrics {
    /// General counters.
    pub stats: crate::core::Stats,
    /// SIP counters.
    pub sip: SipCounters,
    /// Protection counters.
    pub protection: ProtectionCounters,
    /// Trunk client transactions (OPTIONS, REGISTER to trunks): retransmissions.
    pub uac_retransmissions: u64,
    /// Trunk client transactions: timeouts.
    pub uac_timeouts: u64,
    /// Calls in progress.
    pub calls_active: u64,
    /// Trunks: (name, state, up, latency ms, calls, state changes).
    pub trunks: Vec<TrunkMetrics>,
}

/// One trunk's metrics.
#[derive(Clone, Debug, Default)]
pub struct TrunkMetrics {
    /// Name.
    pub name: String,
    /// `up`, `down`, `unknown`, `unresolved`.
    pub state: &'static str,
    /// Last qualify round trip, ms.
    pub latency_ms: Option<u32>,
    /// Calls in progress.
    pub active_calls: u64,
    /// Up/down changes so far.
    pub state_changes: u64,
}

/// Prometheus text format 0.0.4 writer: `# HELP`/`# TYPE` per family,
/// escaped label values.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// Starts a family. Counters are named with their `_total` suffix.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        self
    }

    /// One sample.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: impl Display) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(val));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {v}");
        self
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, v: impl Display) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], v)
    }

    /// The text so far.
    pub fn finish(self) -> String {
        self.out
    }
}

fn escape_label(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return v.into();
    }
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .into()
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

impl SwitchMetrics {
    /// Prometheus text (format 0.0.4) of these counters.
    pub fn render(&self, e: &mut Exposition) {
        let s = &self.sip;
        for (name, dir, what) in [
            ("strowger_sip_requests_received_total", &s.rx, "received"),
            (
                "strowger_sip_requests_sent_total",
                &s.tx,
                "sent (retransmissions included)",
            ),
        ] {
            e.family(name, "counter", &format!("SIP requests {what}, by method."));
            for (i, m) in METHODS.iter().enumerate() {
                e.sample(name, &[("method", m)], dir.requests[i]);
            }
        }
        for (name, dir, what) in [
            ("strowger_sip_responses_received_total", &s.rx, "received"),
            (
                "strowger_sip_responses_sent_total",
                &s.tx,
                "sent (retransmissions included)",
            ),
        ] {
            e.family(
                name,
                "counter",
                &format!("SIP responses {what}, by status code."),
            );
            for (i, n) in dir.responses.iter().enumerate() {
                if *n > 0 {
                    e.sample(name, &[("code", &(i + 100).to_string())], n);
                }
            }
        }
        e.single(
            "strowger_sip_messages_received_total",
            "counter",
            "SIP messages read from the network (parsed or not).",
            self.stats.rx,
        );
        e.single(
            "strowger_sip_messages_malformed_total",
            "counter",
            "SIP messages that did not parse (answered 400 or dropped).",
            self.stats.malformed,
        );
        let client_requests: u64 =
            s.tx.requests
                .iter()
                .enumerate()
                .filter(|(i, _)| METHODS[*i] != "ACK")
                .map(|(_, n)| n)
                .sum();
        let req_retrans = s.request_retransmissions + self.uac_retransmissions;
        e.family(
            "strowger_sip_transactions_total",
            "counter",
            "SIP transactions started: server (requests other than ACK that were not retransmissions), client (requests other than ACK we sent, less our retransmissions).",
        )
        .sample("strowger_sip_transactions_total", &[("role", "server")], s.server_transactions)
        .sample(
            "strowger_sip_transactions_total",
            &[("role", "client")],
            client_requests.saturating_sub(req_retrans),
        );
        e.family(
            "strowger_sip_retransmissions_total",
            "counter",
            "SIP retransmissions: received (absorbed by the response cache) and sent (requests by Timer A/E, 2xx until ACK).",
        )
        .sample(
            "strowger_sip_retransmissions_total",
            &[("direction", "received")],
            self.stats.retransmissions,
        )
        .sample(
            "strowger_sip_retransmissions_total",
            &[("direction", "sent"), ("kind", "request")],
            req_retrans,
        )
        .sample(
            "strowger_sip_retransmissions_total",
            &[("direction", "sent"), ("kind", "response")],
            s.response_retransmissions,
        );
        e.single(
            "strowger_sip_transaction_timeouts_total",
            "counter",
            "Client transactions to trunks (OPTIONS, REGISTER) that timed out.",
            self.uac_timeouts,
        );
        // registrations
        let name = "strowger_register_results_total";
        e.family(
            name,
            "counter",
            "Final responses to REGISTER requests, by status code (401 = challenge).",
        );
        for (i, n) in s.register_results.iter().enumerate() {
            if *n > 0 {
                e.sample(name, &[("code", &(i + 100).to_string())], n);
            }
        }
        e.single(
            "strowger_registers_accepted_total",
            "counter",
            "REGISTER requests accepted (200).",
            self.stats.registers_ok,
        );
        e.single(
            "strowger_auth_failures_total",
            "counter",
            "Failed digest authentications (wrong credentials, unknown user), each logged with its source IP.",
            s.auth_failures,
        );
        let p = &self.protection;
        e.single(
            "strowger_protection_bans_total",
            "counter",
            "Source IPs banned after repeated failed authentications ([protection] ban_failures).",
            p.bans,
        );
        e.single(
            "strowger_protection_banned_sources",
            "gauge",
            "Source IPs banned now.",
            p.banned_now,
        );
        e.family(
            "strowger_protection_dropped_total",
            "counter",
            "Requests dropped without an answer by the protection, by reason.",
        )
        .sample(
            "strowger_protection_dropped_total",
            &[("reason", "banned")],
            p.banned_drops,
        )
        .sample(
            "strowger_protection_dropped_total",
            &[("reason", "rate_limit")],
            p.rate_drops,
        )
        .sample(
            "strowger_protection_dropped_total",
            &[("reason", "scanner")],
            p.scanner_drops,
        );
        // calls
        e.single(
            "strowger_calls_started_total",
            "counter",
            "Calls started (INVITEs accepted for routing).",
            self.stats.calls,
        );
        e.single(
            "strowger_calls_answered_total",
            "counter",
            "Calls answered.",
            self.stats.answered,
        );
        e.single(
            "strowger_calls_active",
            "gauge",
            "Calls in progress.",
            self.calls_active,
        );
        let name = "strowger_calls_ended_total";
        e.family(
            name,
            "counter",
            "Calls ended, by ingress trunk, egress trunk (empty: not a trunk) and cause (normal, media-timeout, session-timer, cancelled, busy, no-answer, unavailable, rejected, failed).",
        );
        let mut ended: Vec<_> = s.calls_ended.iter().collect();
        ended.sort();
        for ((i, o, c), n) in ended {
            e.sample(
                name,
                &[("ingress_trunk", i), ("egress_trunk", o), ("cause", c)],
                n,
            );
        }
        // trunks
        e.family(
            "strowger_trunk_up",
            "gauge",
            "1 when the trunk is up (answers OPTIONS, or is not qualified), 0 when down or unresolved.",
        );
        for t in &self.trunks {
            let up = u8::from(matches!(t.state, "up" | "unknown"));
            e.sample("strowger_trunk_up", &[("trunk", &t.name)], up);
        }
        e.family(
            "strowger_trunk_latency_seconds",
            "gauge",
            "Last OPTIONS qualify round trip of the trunk.",
        );
        for t in &self.trunks {
            if let Some(ms) = t.latency_ms {
                e.sample(
                    "strowger_trunk_latency_seconds",
                    &[("trunk", &t.name)],
                    ms as f64 / 1000.0,
                );
            }
        }
        e.family(
            "strowger_trunk_state_changes_total",
            "counter",
            "Times the trunk went up or down (each logged).",
        );
        for t in &self.trunks {
            e.sample(
                "strowger_trunk_state_changes_total",
                &[("trunk", &t.name)],
                t.state_changes,
            );
        }
        e.family(
            "strowger_trunk_calls_active",
            "gauge",
            "Calls in progress per trunk.",
        );
        for t in &self.trunks {
            e.sample(
                "strowger_trunk_calls_active",
                &[("trunk", &t.name)],
                t.active_calls,
            );
        }
    }
}

/// Prometheus text of the media relay's counters.
pub fn render_relay(e: &mut Exposition, s: &strowger_media::RelayStats) {
    e.single(
        "strowger_relay_sessions",
        "gauge",
        "Media relay sessions (calls with relayed media) open.",
        s.sessions,
    );
    e.single(
        "strowger_relay_streams",
        "gauge",
        "Media relay streams (RTP port pairs in use by sessions) open.",
        s.streams,
    );
    e.single(
        "strowger_relay_ports_free",
        "gauge",
        "Free RTP port pairs of the relay's range.",
        s.ports_free,
    );
    e.single(
        "strowger_relay_ports",
        "gauge",
        "RTP port pairs in the relay's range.",
        s.ports_total,
    );
    e.family(
        "strowger_relay_packets_total",
        "counter",
        "Datagrams of the relay's fast path: received, forwarded, dropped (foreign source, no destination, truncated), send_error.",
    )
    .sample("strowger_relay_packets_total", &[("result", "received")], s.received)
    .sample("strowger_relay_packets_total", &[("result", "forwarded")], s.forwarded)
    .sample("strowger_relay_packets_total", &[("result", "dropped")], s.dropped)
    .sample("strowger_relay_packets_total", &[("result", "send_error")], s.send_errors);
    e.single(
        "strowger_relay_rtp_packets_total",
        "counter",
        "RTP packets received on relay streams that have ended.",
        s.ended_rtp_packets,
    );
    e.single(
        "strowger_relay_rtp_lost_packets_total",
        "counter",
        "RTP packets lost (RFC 3550 expected − received) on relay streams that have ended; loss ratio = lost / (lost + packets).",
        s.ended_rtp_lost,
    );
    e.single(
        "strowger_relay_addresses_refused_total",
        "counter",
        "SDP bodies refused for their media address ([media] allowed_networks, multicast, broadcast).",
        s.addresses_refused,
    );
}

/// The CDR cause as a label value (a fixed set).
pub fn cause_label(cause: &str) -> &'static str {
    const CAUSES: [&str; 9] = [
        "normal",
        "media-timeout",
        "session-timer",
        "cancelled",
        "busy",
        "no-answer",
        "unavailable",
        "rejected",
        "failed",
    ];
    CAUSES
        .iter()
        .find(|c| **c == cause)
        .copied()
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_counted_from_their_first_line() {
        let mut c = SipCounters::default();
        c.sent(b"INVITE sip:1@x SIP/2.0\r\n");
        c.sent(b"SIP/2.0 486 Busy Here\r\n");
        c.sent(b"FOO sip:1@x SIP/2.0\r\n");
        c.sent(b"SIP/2.0 99x\r\n");
        c.sent(b"");
        c.received(Some("REGISTER"), None);
        c.received(None, Some(200));
        c.received(None, Some(700));
        assert_eq!(c.tx.requests[method_index(b"INVITE")], 1);
        assert_eq!(c.tx.requests[METHODS.len() - 1], 1);
        assert_eq!(c.tx.responses[486 - 100], 1);
        assert_eq!(c.tx.responses.iter().sum::<u64>(), 1);
        assert_eq!(c.rx.requests[method_index(b"REGISTER")], 1);
        assert_eq!(c.rx.responses.iter().sum::<u64>(), 1);
    }

    #[test]
    fn rendering_escapes_labels_and_names_every_family() {
        let mut m = SwitchMetrics::default();
        m.sip.call_ended(Some("a\"b"), None, cause_label("busy"));
        m.sip.call_ended(None, None, cause_label("made-up"));
        m.sip.register_result(401);
        let mut e = Exposition::default();
        m.render(&mut e);
        let t = e.finish();
        assert!(
            t.contains(
                "strowger_calls_ended_total{ingress_trunk=\"a\\\"b\",egress_trunk=\"\",cause=\"busy\"} 1"
            ),
            "{t}"
        );
        assert!(t.contains("cause=\"other\"} 1"), "{t}");
        assert!(
            t.contains("strowger_register_results_total{code=\"401\"} 1"),
            "{t}"
        );
        // every sample belongs to a family announced with HELP and TYPE
        let mut family = "";
        for l in t.lines() {
            if let Some(r) = l.strip_prefix("# TYPE ") {
                family = r.split(' ').next().unwrap();
                assert!(t.contains(&format!("# HELP {family} ")), "{family}");
            } else if !l.starts_with("# HELP ") {
                let name = l.split(['{', ' ']).next().unwrap();
                assert_eq!(name, family, "{l}");
            }
        }
    }
}
