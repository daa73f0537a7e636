//! Media seam of the B2BUA and its implementation on the built-in relay
//! (`strowger-media`).
//!
//! The core calls [`MediaHandler::rewrite`] for every SDP body it moves
//! between the caller (A) and an outbound leg, and [`MediaHandler::release`]
//! when a call ends. [`RelayMedia`] anchors media on the relay (or only
//! filters codecs for bypassed calls); [`PassThrough`] leaves SDP alone.
//! The relay runs on its own threads: every call here is short and
//! non-blocking (a mutex, a `bind()` per new port pair).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strowger_media::calls::parse_session_key;
use strowger_media::{
    CallMedia, IpNet, Latching, Leg, MediaConfig, MediaError, MediaEvent, MediaRelay,
    SessionOptions,
};

use crate::config::DtmfMode;

/// Which way an SDP body travels, and whether it is an offer or an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SdpDirection {
    /// An offer from the caller (A leg) towards an outbound leg (INVITE,
    /// caller re-INVITE).
    Offer,
    /// An answer from an outbound leg back to the caller (183/200).
    Answer,
    /// An offer from an outbound leg towards the caller (callee re-INVITE;
    /// the 200 OK of an INVITE without SDP is handled as one too).
    CalleeOffer,
    /// The caller's answer towards an outbound leg (200 OK to a callee
    /// re-INVITE, ACK with SDP).
    CallerAnswer,
}

/// The SDP cannot be used: the message carrying it gets this answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaRefusal {
    /// SIP status (488 for unparseable SDP or no acceptable codec, 503 when
    /// the RTP ports are exhausted).
    pub code: u16,
    /// Reason phrase.
    pub reason: String,
}

impl From<MediaError> for MediaRefusal {
    fn from(e: MediaError) -> Self {
        let code = e.sip_status();
        let reason = match code {
            488 => "Not Acceptable Here",
            503 => "Service Unavailable",
            491 => "Request Pending",
            _ => "Call/Transaction Does Not Exist",
        };
        tracing::info!(error = %e, code, "SDP refused");
        let reason = match e {
            // the reason phrase (and so the CDR's final_reason) says why
            MediaError::AddressRefused { addr, why } => {
                format!("{reason} (media address {addr}: {why})")
            }
            _ => reason.into(),
        };
        MediaRefusal { code, reason }
    }
}

/// Reason recorded (CDR `final_reason` is "OK" for answered calls; the
/// cause column says `media-timeout`) when the relay ends a silent call.
pub const TIMEOUT_REASON: &str = "Media Timeout";

/// Rewrites SDP bodies of a call (anchoring media on a relay, filtering
/// codecs). Called on the core's thread: implementations must not block.
pub trait MediaHandler: Send {
    /// Rewrites `sdp` for call `call` / outbound leg `leg` travelling in
    /// `dir`. `relay` is the route decision's media mode (`Some(true)` =
    /// anchor, `Some(false)` = bypass, `None` = the configured default);
    /// `codecs` is an allow list in preference order. Returns the body to
    /// send, or the refusal to answer with (nothing is half-applied).
    fn rewrite(
        &mut self,
        call: u64,
        leg: u64,
        dir: SdpDirection,
        sdp: &[u8],
        relay: Option<bool>,
        codecs: Option<&[String]>,
    ) -> Result<Vec<u8>, MediaRefusal>;
    /// DTMF modes of the caller's side and of outbound leg `leg` (called
    /// before the leg's first offer when either is not RFC 2833): RFC 2833
    /// events from a side whose peer wants INFO become
    /// [`crate::core::Event::MediaDtmf`]; offers to an in-band side lose
    /// telephone-event.
    fn set_leg_dtmf(&mut self, _call: u64, _leg: u64, _caller: DtmfMode, _callee: DtmfMode) {}
    /// The IP addresses the SIP signalling of the caller and of outbound
    /// leg `leg`'s callee come from (called before the leg's first offer):
    /// the relay may latch media from them (NAT), never from a third
    /// address.
    fn set_leg_peers(
        &mut self,
        _call: u64,
        _leg: u64,
        _caller: Option<IpAddr>,
        _callee: Option<IpAddr>,
    ) {
    }
    /// Send a DTMF digit (RFC 4733 event code) that came as SIP INFO as
    /// telephone-event RTP to the caller (`to_caller`) or the callee of
    /// leg `leg`. `false` = not possible (no relayed media): relay the INFO.
    fn send_dtmf(&mut self, _call: u64, _leg: u64, _to_caller: bool, _event: u8, _ms: u32) -> bool {
        false
    }
    /// Outbound leg `leg` of `call` failed or lost: free what it holds.
    fn release_leg(&mut self, _call: u64, _leg: u64) {}
    /// The call ended: release its resources.
    fn release(&mut self, call: u64);
    /// Media counters of `call` for its CDR (called before `release`);
    /// `None` when nothing was relayed.
    fn cdr_media(&self, _call: u64) -> Option<serde_json::Value> {
        None
    }
}

/// Pass-through: SDP is relayed as is, media flows end to end.
#[derive(Debug, Default)]
pub struct PassThrough;

impl MediaHandler for PassThrough {
    fn rewrite(
        &mut self,
        _call: u64,
        _leg: u64,
        _dir: SdpDirection,
        sdp: &[u8],
        _relay: Option<bool>,
        _codecs: Option<&[String]>,
    ) -> Result<Vec<u8>, MediaRefusal> {
        Ok(sdp.to_vec())
    }
    fn release(&mut self, _call: u64) {}
}

/// Default media mode of calls whose route decision names none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Anchor RTP on the switch.
    #[default]
    Relay,
    /// SDP passes end to end.
    Bypass,
}

/// `[media]`: the built-in RTP relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaSettings {
    /// Run the relay (false = every call bypasses, SDP untouched).
    pub enabled: bool,
    /// Address the RTP sockets bind to and that SDP advertises (default:
    /// the first SIP listener's address).
    pub ip: Option<IpAddr>,
    /// Address written into SDP when it differs from `ip` (1:1 NAT, or
    /// `ip` is a wildcard).
    pub advertise_ip: Option<IpAddr>,
    /// Lowest RTP port (even; RTCP = RTP + 1).
    pub port_min: u16,
    /// Highest port of the range.
    pub port_max: u16,
    /// No RTP for this long on an answered, non-held, relayed call: BYE
    /// both legs (0 = off).
    pub timeout_s: u32,
    /// Mode of calls whose route decision does not say.
    pub mode: Mode,
    /// Relay worker threads (0 = one per CPU).
    pub workers: usize,
    /// Which sources media is accepted from: `learn` (the SDP address's IP
    /// or the IP the leg's SIP came from, so phones behind NAT work) or
    /// `strict` (the SDP address's IP only).
    pub latching: Latching,
    /// After the first packet latched a leg's source, a better one (the
    /// exact SDP address, then its IP, then the SIP peer's IP) may still
    /// replace it for this long; then the source is fixed while media flows.
    pub learn_window_ms: u32,
    /// A latched source silent this long may be replaced (by an acceptable
    /// source only: NAT rebinding). 0 = never.
    pub relatch_after_ms: u32,
    /// Networks (CIDR) media may be sent to; an SDP address outside them
    /// gets 488. Empty = every unicast address. Multicast, broadcast and
    /// reserved addresses are always refused.
    pub allowed_networks: Vec<IpNet>,
}

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings {
            enabled: true,
            ip: None,
            advertise_ip: None,
            port_min: 20000,
            port_max: 30000,
            timeout_s: 30,
            mode: Mode::Relay,
            workers: 0,
            latching: Latching::Learn,
            learn_window_ms: 3000,
            relatch_after_ms: 5000,
            allowed_networks: Vec::new(),
        }
    }
}

impl MediaSettings {
    /// Configuration problems (for `Config::validate`).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.port_min < 1024 {
            p.push(format!(
                "media.port_min ({}) must be >= 1024",
                self.port_min
            ));
        }
        if u32::from(self.port_max) < u32::from(self.port_min) + 3 {
            p.push(format!(
                "media.port_max ({}) must leave room for at least two port pairs above media.port_min ({})",
                self.port_max, self.port_min
            ));
        }
        if self.learn_window_ms > 60_000 {
            p.push(format!(
                "media.learn_window_ms ({}) must be <= 60000",
                self.learn_window_ms
            ));
        }
        if self.advertise_ip.is_some_and(|a| a.is_unspecified()) {
            p.push("media.advertise_ip must not be a wildcard address".into());
        }
        p
    }

    /// The relay configuration; `sip_ip` is the first SIP listener's
    /// address (the default for `ip`). A wildcard bind address is advertised
    /// as the host's primary address (the one routing to the Internet).
    pub fn relay_config(&self, sip_ip: IpAddr) -> MediaConfig {
        let bind = self.ip.unwrap_or(sip_ip);
        let advertise = self
            .advertise_ip
            .or_else(|| bind.is_unspecified().then(|| primary_ip(bind)).flatten());
        MediaConfig {
            bind_ip: bind,
            advertise_ip: advertise,
            port_min: self.port_min,
            port_max: self.port_max,
            timeout: (self.timeout_s > 0).then(|| Duration::from_secs(self.timeout_s.into())),
            workers: self.workers,
            latching: self.latching,
            learn_window: Duration::from_millis(self.learn_window_ms.into()),
            relatch_after: (self.relatch_after_ms > 0)
                .then(|| Duration::from_millis(self.relatch_after_ms.into())),
            allowed_networks: self.allowed_networks.clone(),
            ..MediaConfig::default()
        }
    }
}

/// The local address the kernel would use towards the Internet (no packet
/// is sent: connect() on UDP only picks a route).
fn primary_ip(family: IpAddr) -> Option<IpAddr> {
    let (bind, probe): (SocketAddr, SocketAddr) = if family.is_ipv4() {
        ("0.0.0.0:0".parse().ok()?, "192.0.2.1:9".parse().ok()?)
    } else {
        ("[::]:0".parse().ok()?, "[2001:db8::1]:9".parse().ok()?)
    };
    let s = UdpSocket::bind(bind).ok()?;
    s.connect(probe).ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// A running relay as the switch uses it.
pub struct Relay {
    /// The relay (threads stop when the last handle is dropped).
    pub relay: Arc<MediaRelay>,
    /// Media-timeout events; [`timeout_target`] turns one into the
    /// [`crate::core::Event::MediaTimeout`] to feed into the core.
    pub events: tokio::sync::mpsc::UnboundedReceiver<MediaEvent>,
}

/// Starts the relay of `[media]` (None when disabled).
pub fn start_relay(settings: &MediaSettings, sip_ip: IpAddr) -> anyhow::Result<Option<Relay>> {
    if !settings.enabled {
        return Ok(None);
    }
    let cfg = settings.relay_config(sip_ip);
    let relay = MediaRelay::start(cfg.clone())
        .map_err(|e| anyhow::anyhow!("starting the media relay ([media]): {e}"))?;
    let events = relay
        .take_events()
        .ok_or_else(|| anyhow::anyhow!("media relay events already taken"))?;
    tracing::info!(
        "media relay on {} ports {}-{} (advertised {}, random allocation), timeout {:?}, \
         latching {:?} (learn window {:?}, re-learn after {:?} of silence), media to {}",
        cfg.bind_ip,
        cfg.port_min,
        cfg.port_max,
        relay.advertise_ip(),
        cfg.timeout,
        cfg.latching,
        cfg.learn_window,
        cfg.relatch_after,
        if cfg.allowed_networks.is_empty() {
            "any unicast address".to_string()
        } else {
            cfg.allowed_networks
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    Ok(Some(Relay {
        relay: Arc::new(relay),
        events,
    }))
}

/// The core event for a relay event (None for events of unknown sessions
/// and for DTMF events that have no `application/dtmf-relay` signal).
pub fn core_event(ev: &MediaEvent) -> Option<crate::core::Event> {
    match ev {
        MediaEvent::Timeout { call_id, .. } => {
            let (call, leg) = parse_session_key(call_id)?;
            Some(crate::core::Event::MediaTimeout { call, leg })
        }
        MediaEvent::Dtmf {
            call_id,
            from,
            event,
            duration_ms,
        } => {
            let (call, leg) = parse_session_key(call_id)?;
            Some(crate::core::Event::MediaDtmf {
                call,
                leg,
                from_caller: *from == Leg::A,
                signal: strowger_media::dtmf_signal(*event)?,
                duration_ms: *duration_ms,
            })
        }
    }
}

/// (RFC 4733 event code, duration in ms) of an `application/dtmf-relay`
/// body (`Signal=5`, `Duration=160`; keys in any case, duration 250 ms when
/// absent). `None` without a usable `Signal`.
pub fn parse_dtmf_relay(body: &[u8]) -> Option<(u8, u32)> {
    let text = std::str::from_utf8(body).ok()?;
    let mut event = None;
    let mut ms = 250;
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "signal" => {
                let mut ch = v.chars();
                event = match (ch.next(), ch.next()) {
                    (Some(c), None) => strowger_media::dtmf_event(c),
                    _ => None,
                };
            }
            "duration" => {
                ms = v
                    .parse()
                    .ok()
                    .filter(|d| *d > 0 && *d <= 10_000)
                    .unwrap_or(ms)
            }
            _ => {}
        }
    }
    Some((event?, ms))
}

/// `application/dtmf-relay` body of a digit (SIP INFO).
pub fn dtmf_relay_body(signal: char, duration_ms: u32) -> String {
    format!("Signal={signal}\r\nDuration={duration_ms}\r\n")
}

/// [`MediaHandler`] on the built-in relay: one relay session per (call,
/// outbound leg). Bypassed legs get codec filtering only (and SDP passes
/// byte for byte when there is no allow list).
pub struct RelayMedia {
    calls: CallMedia,
    default_relay: bool,
}

impl RelayMedia {
    /// Media on `relay`; `default_mode` applies when a decision names none.
    pub fn new(relay: Arc<MediaRelay>, default_mode: Mode) -> RelayMedia {
        RelayMedia {
            calls: CallMedia::new(relay),
            default_relay: default_mode == Mode::Relay,
        }
    }

    /// Sessions open (tests, metrics).
    pub fn sessions(&self) -> usize {
        self.calls.len()
    }
}

impl MediaHandler for RelayMedia {
    fn rewrite(
        &mut self,
        call: u64,
        leg: u64,
        dir: SdpDirection,
        sdp: &[u8],
        relay: Option<bool>,
        codecs: Option<&[String]>,
    ) -> Result<Vec<u8>, MediaRefusal> {
        let anchor = relay.unwrap_or(self.default_relay);
        let codecs = codecs.filter(|c| !c.is_empty());
        if !anchor && codecs.is_none() {
            // Bypass without a codec policy: SDP end to end, untouched.
            return Ok(sdp.to_vec());
        }
        let m = &mut self.calls;
        let r = match dir {
            SdpDirection::Offer => m.offer_to_leg(call, leg, sdp, anchor, codecs),
            SdpDirection::CalleeOffer => m.offer_from_leg(call, leg, sdp, anchor, codecs),
            SdpDirection::Answer => match m.answer_from_leg(call, leg, sdp) {
                // No offer to answer: the leg offers (late offer, offerless
                // re-INVITE).
                Err(MediaError::NoOffer) => m.offer_from_leg(call, leg, sdp, anchor, codecs),
                r => r,
            },
            SdpDirection::CallerAnswer => match m.answer_to_leg(call, leg, sdp) {
                Err(MediaError::NoOffer) => m.offer_to_leg(call, leg, sdp, anchor, codecs),
                r => r,
            },
        };
        Ok(r?)
    }

    fn release_leg(&mut self, call: u64, leg: u64) {
        self.calls.release_leg(call, leg);
    }

    fn send_dtmf(&mut self, call: u64, leg: u64, to_caller: bool, event: u8, ms: u32) -> bool {
        self.calls.send_dtmf(call, leg, to_caller, event, ms)
    }

    fn set_leg_dtmf(&mut self, call: u64, leg: u64, caller: DtmfMode, callee: DtmfMode) {
        self.calls.set_options(
            call,
            leg,
            SessionOptions {
                // RFC 2833 from one side becomes INFO towards an `info` side
                dtmf_events: [callee == DtmfMode::Info, caller == DtmfMode::Info],
                no_telephone_event: [caller == DtmfMode::Inband, callee == DtmfMode::Inband],
                ..Default::default()
            },
        );
    }

    fn set_leg_peers(
        &mut self,
        call: u64,
        leg: u64,
        caller: Option<IpAddr>,
        callee: Option<IpAddr>,
    ) {
        self.calls.set_peers(call, leg, [caller, callee]);
    }

    fn cdr_media(&self, call: u64) -> Option<serde_json::Value> {
        let legs: Vec<serde_json::Value> = self
            .calls
            .stats(call)
            .into_iter()
            .filter(|(_, s)| s.anchored && !s.streams.is_empty())
            .map(|(leg, s)| {
                let streams: Vec<serde_json::Value> = s
                    .streams
                    .iter()
                    .map(|st| {
                        serde_json::json!({
                            "index": st.index,
                            "caller": side_counters(&st.legs[0]),
                            "callee": side_counters(&st.legs[1]),
                        })
                    })
                    .collect();
                serde_json::json!({"leg": leg, "streams": streams})
            })
            .collect();
        (!legs.is_empty()).then_some(serde_json::Value::Array(legs))
    }

    fn release(&mut self, call: u64) {
        for (leg, s) in self.calls.stats(call) {
            for st in &s.streams {
                let [a, b] = &st.legs;
                tracing::info!(
                    call,
                    leg,
                    stream = st.index,
                    a_rx = a.rtp.packets,
                    a_lost = a.rtp.lost,
                    b_rx = b.rtp.packets,
                    b_lost = b.rtp.lost,
                    "media stream closed"
                );
            }
        }
        self.calls.release(call);
    }
}

/// CDR counters of one side of a stream: what the relay received from that
/// phone (`packets`, `bytes`, `lost` from sequence gaps, `jitter_ms`) and
/// forwarded to it (`sent_packets`, `sent_bytes`).
fn side_counters(l: &strowger_media::LegStats) -> serde_json::Value {
    serde_json::json!({
        "packets": l.rtp.packets,
        "bytes": l.rtp.bytes,
        "lost": l.rtp.lost,
        "jitter_ms": (l.rtp.jitter_ms * 1000.0).round() / 1000.0,
        "rtcp_packets": l.rtcp_packets,
        "sent_packets": l.sent_packets,
        "sent_bytes": l.sent_bytes,
        "foreign_dropped": l.foreign_dropped,
        "latches": l.latches,
        "dtmf_packets": l.dtmf_packets,
        "remote": l.remote.map(|a| a.to_string()),
    })
}

/// Body for `dir`: SDP bodies (`application/sdp`, or no content type) go
/// through the media handler `m`, other bodies pass as they are.
#[allow(clippy::too_many_arguments)]
pub(crate) fn body_for(
    m: &mut dyn MediaHandler,
    call: u64,
    leg: u32,
    dir: SdpDirection,
    body: &[u8],
    content_type: Option<&str>,
    relay: Option<bool>,
    codecs: Option<&[String]>,
) -> Result<Vec<u8>, MediaRefusal> {
    let is_sdp = content_type
        .map(|c| c.trim().to_ascii_lowercase().starts_with("application/sdp"))
        .unwrap_or(true);
    if body.is_empty() || !is_sdp {
        return Ok(body.to_vec());
    }
    m.rewrite(call, u64::from(leg), dir, body, relay, codecs)
}

/// Codec names offered in an SDP body (rtpmap encoding names, upper-cased,
/// in offer order; static payload types 0/8/9/18 named when no rtpmap).
pub fn offered_codecs(sdp: &[u8]) -> Vec<String> {
    let Ok(text) = std::str::from_utf8(sdp) else {
        return Vec::new();
    };
    let mut pts: Vec<String> = Vec::new();
    let mut maps: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(m) = line.strip_prefix("m=audio ") {
            pts.extend(m.split_whitespace().skip(2).map(str::to_string));
        } else if let Some(r) = line.strip_prefix("a=rtpmap:")
            && let Some((pt, enc)) = r.split_once(' ')
        {
            let name = enc.split('/').next().unwrap_or("").to_ascii_uppercase();
            maps.push((pt.to_string(), name));
        }
    }
    pts.iter()
        .filter_map(|pt| {
            maps.iter()
                .find(|(p, _)| p == pt)
                .map(|(_, n)| n.clone())
                .or_else(|| match pt.as_str() {
                    "0" => Some("PCMU".into()),
                    "8" => Some("PCMA".into()),
                    "9" => Some("G722".into()),
                    "18" => Some("G729".into()),
                    _ => None,
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_in_offer_order() {
        let sdp = b"v=0\r\nm=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";
        assert_eq!(
            super::offered_codecs(sdp),
            vec!["PCMA", "PCMU", "TELEPHONE-EVENT"]
        );
    }

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.9\r\ns=-\r\nc=IN IP4 127.0.0.9\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18 8 0\r\na=rtpmap:18 G729/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n";

    fn relay() -> Arc<MediaRelay> {
        let s = MediaSettings {
            port_min: 41000,
            port_max: 41100,
            workers: 1,
            ..Default::default()
        };
        Arc::new(MediaRelay::start(s.relay_config("127.0.0.1".parse().unwrap())).unwrap())
    }

    #[test]
    fn relay_rewrites_filters_and_refuses() {
        let mut m = RelayMedia::new(relay(), Mode::Relay);
        let allow = vec!["PCMU".to_string(), "PCMA".to_string()];
        let out = m
            .rewrite(
                1,
                0,
                SdpDirection::Offer,
                OFFER.as_bytes(),
                None,
                Some(&allow),
            )
            .unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("c=IN IP4 127.0.0.1\r\n"), "{out}");
        assert!(!out.contains("G729"), "{out}");
        assert!(!out.contains("m=audio 4000 "), "{out}");
        assert_eq!(m.sessions(), 1);
        // Only G729 offered: 488, nothing left behind.
        let g729 = OFFER.replace("18 8 0", "18");
        let e = m
            .rewrite(
                2,
                0,
                SdpDirection::Offer,
                g729.as_bytes(),
                None,
                Some(&allow),
            )
            .unwrap_err();
        assert_eq!(e.code, 488);
        // Garbage: 488, no panic.
        let e = m
            .rewrite(
                3,
                0,
                SdpDirection::Offer,
                b"v=0\r\nm=audio x\r\n",
                None,
                None,
            )
            .unwrap_err();
        assert_eq!(e.code, 488);
        assert_eq!(m.sessions(), 1);
        m.release(1);
        assert_eq!(m.sessions(), 0);
    }

    #[test]
    fn media_addresses_not_to_send_to_are_refused_with_the_reason() {
        let s = MediaSettings {
            port_min: 41200,
            port_max: 41300,
            workers: 1,
            allowed_networks: vec!["127.0.0.0/8".parse().unwrap()],
            ..Default::default()
        };
        let relay =
            Arc::new(MediaRelay::start(s.relay_config("127.0.0.1".parse().unwrap())).unwrap());
        let mut m = RelayMedia::new(relay.clone(), Mode::Relay);
        for (i, (c, why)) in [
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("0.0.0.0", "unspecified"),
            ("192.0.2.10", "allowed_networks"),
        ]
        .into_iter()
        .enumerate()
        {
            let offer = OFFER.replace("c=IN IP4 127.0.0.9", &format!("c=IN IP4 {c}"));
            let e = m
                .rewrite(
                    i as u64,
                    0,
                    SdpDirection::Offer,
                    offer.as_bytes(),
                    None,
                    None,
                )
                .unwrap_err();
            assert_eq!(e.code, 488, "{c}");
            assert!(
                e.reason.starts_with("Not Acceptable Here (media address ")
                    && e.reason.contains(why),
                "{c}: {}",
                e.reason
            );
        }
        assert_eq!(m.sessions(), 0);
        assert_eq!(relay.stats().addresses_refused, 4);
        // An address of an allowed network passes.
        m.rewrite(9, 0, SdpDirection::Offer, OFFER.as_bytes(), None, None)
            .unwrap();
    }

    #[test]
    fn bypass_leaves_sdp_untouched() {
        let mut m = RelayMedia::new(relay(), Mode::Relay);
        let out = m
            .rewrite(
                1,
                0,
                SdpDirection::Offer,
                OFFER.as_bytes(),
                Some(false),
                None,
            )
            .unwrap();
        assert_eq!(out, OFFER.as_bytes());
        let mut m = RelayMedia::new(relay(), Mode::Bypass);
        let out = m
            .rewrite(1, 0, SdpDirection::Offer, OFFER.as_bytes(), None, None)
            .unwrap();
        assert_eq!(out, OFFER.as_bytes());
    }

    #[test]
    fn late_offer_from_callee_is_anchored() {
        let mut m = RelayMedia::new(relay(), Mode::Relay);
        let out = m
            .rewrite(1, 0, SdpDirection::Answer, OFFER.as_bytes(), None, None)
            .unwrap();
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("c=IN IP4 127.0.0.1")
        );
        let ans = OFFER
            .replace("127.0.0.9", "127.0.0.8")
            .replace("18 8 0", "0");
        let out = m
            .rewrite(1, 0, SdpDirection::CallerAnswer, ans.as_bytes(), None, None)
            .unwrap();
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("c=IN IP4 127.0.0.1")
        );
    }

    #[test]
    fn dtmf_relay_bodies() {
        assert_eq!(
            parse_dtmf_relay(b"Signal=5\r\nDuration=160\r\n"),
            Some((5, 160))
        );
        assert_eq!(parse_dtmf_relay(b"signal= #\nduration=90"), Some((11, 90)));
        assert_eq!(parse_dtmf_relay(b"Signal=b"), Some((13, 250)));
        assert_eq!(parse_dtmf_relay(b"Signal=*\r\nDuration=x"), Some((10, 250)));
        assert_eq!(parse_dtmf_relay(b"Signal=12\r\n"), None);
        assert_eq!(parse_dtmf_relay(b"Duration=160"), None);
        assert_eq!(parse_dtmf_relay(&[0xff, 0xfe]), None);
        let body = dtmf_relay_body('#', 160);
        assert_eq!(parse_dtmf_relay(body.as_bytes()), Some((11, 160)));
    }

    #[test]
    fn settings_validation() {
        assert!(MediaSettings::default().problems().is_empty());
        let bad = MediaSettings {
            port_min: 100,
            port_max: 101,
            ..Default::default()
        };
        assert_eq!(bad.problems().len(), 2);
    }
}
