//! [`CallMedia`]: the relay keyed the way the B2BUA keys calls — a numeric
//! call id and a numeric outbound-leg id. Each (call, outbound leg) gets its
//! own relay session, so forked legs (parallel ringing, early media from
//! several gateways) each have their own ports; the caller ends up using the
//! ports of the leg whose answer it received last.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::{CodecPolicy, Leg, MediaError, MediaRelay, Session, SessionOptions, SessionStats};

/// Per-call media of a B2BUA. Not thread-safe by itself (`&mut self`); the
/// switch core owns it. All methods are short and non-blocking.
pub struct CallMedia {
    relay: Arc<MediaRelay>,
    sessions: HashMap<(u64, u64), Session>,
    /// Options for sessions not created yet ([`CallMedia::set_options`]).
    options: HashMap<(u64, u64), SessionOptions>,
}

/// Session id used for (call, leg) in [`crate::MediaEvent::Timeout`].
pub fn session_key(call: u64, leg: u64) -> String {
    format!("{call}/{leg}")
}

/// Inverse of [`session_key`].
pub fn parse_session_key(s: &str) -> Option<(u64, u64)> {
    let (c, l) = s.split_once('/')?;
    Some((c.parse().ok()?, l.parse().ok()?))
}

impl CallMedia {
    /// Media for calls on `relay`.
    pub fn new(relay: Arc<MediaRelay>) -> CallMedia {
        CallMedia {
            relay,
            sessions: HashMap::new(),
            options: HashMap::new(),
        }
    }

    /// Options (DTMF conversion, strict source) for the session of (call,
    /// leg), applied when it is created by the next offer; `bypass` is
    /// always taken from that offer's `anchor`.
    pub fn set_options(&mut self, call: u64, leg: u64, mut opts: SessionOptions) {
        if opts.peers == [None, None]
            && let Some(old) = self.options.get(&(call, leg))
        {
            opts.peers = old.peers;
        }
        self.options.insert((call, leg), opts);
    }

    /// The IP addresses the SIP signalling of the caller (`peers[0]`) and
    /// of outbound leg `leg`'s callee (`peers[1]`) come from: media from
    /// them may be latched (see [`crate::Latching::Learn`]). Applies to
    /// the session of (call, leg) now or when it is created.
    pub fn set_peers(&mut self, call: u64, leg: u64, peers: [Option<IpAddr>; 2]) {
        if let Some(s) = self.sessions.get(&(call, leg)) {
            s.set_peer(Leg::A, peers[0]);
            s.set_peer(Leg::B, peers[1]);
        }
        self.options.entry((call, leg)).or_default().peers = peers;
    }

    fn session(&mut self, call: u64, leg: u64, anchor: bool) -> Session {
        let relay = &self.relay;
        let opts = &self.options;
        self.sessions
            .entry((call, leg))
            .or_insert_with(|| {
                relay.create_session(
                    &session_key(call, leg),
                    SessionOptions {
                        bypass: !anchor,
                        ..opts.get(&(call, leg)).cloned().unwrap_or_default()
                    },
                )
            })
            .clone()
    }

    /// The caller's offer (INVITE or caller re-INVITE) towards outbound leg
    /// `leg`. `anchor` = relay media (else only codec filtering);
    /// `codecs` = allow list (`None` = all). Returns the body for that leg.
    pub fn offer_to_leg(
        &mut self,
        call: u64,
        leg: u64,
        sdp: &[u8],
        anchor: bool,
        codecs: Option<&[String]>,
    ) -> Result<Vec<u8>, MediaError> {
        let text = std::str::from_utf8(sdp).map_err(|_| not_utf8())?;
        let policy = codecs.map(CodecPolicy::allow).unwrap_or_default();
        let fresh = !self.sessions.contains_key(&(call, leg));
        let s = self.session(call, leg, anchor);
        let r = s.offer(Leg::A, text, &policy).map(String::into_bytes);
        if r.is_err() && fresh {
            // Nothing half-applied: a refused first offer leaves no session.
            self.release_leg(call, leg);
        }
        r
    }

    /// The answer (183/200) of outbound leg `leg`; returns the body for the caller.
    pub fn answer_from_leg(
        &mut self,
        call: u64,
        leg: u64,
        sdp: &[u8],
    ) -> Result<Vec<u8>, MediaError> {
        let text = std::str::from_utf8(sdp).map_err(|_| not_utf8())?;
        let s = self.sessions.get(&(call, leg)).ok_or(MediaError::NoOffer)?;
        s.answer(Leg::B, text).map(String::into_bytes)
    }

    /// An offer from outbound leg `leg` (callee side): a re-INVITE, or the
    /// 200 OK to an INVITE that carried no SDP (late offer; the session is
    /// created then, with `anchor`). Returns the body for the caller.
    pub fn offer_from_leg(
        &mut self,
        call: u64,
        leg: u64,
        sdp: &[u8],
        anchor: bool,
        codecs: Option<&[String]>,
    ) -> Result<Vec<u8>, MediaError> {
        let text = std::str::from_utf8(sdp).map_err(|_| not_utf8())?;
        let policy = codecs.map(CodecPolicy::allow).unwrap_or_default();
        let fresh = !self.sessions.contains_key(&(call, leg));
        let s = self.session(call, leg, anchor);
        let r = s.offer(Leg::B, text, &policy).map(String::into_bytes);
        if r.is_err() && fresh {
            self.release_leg(call, leg);
        }
        r
    }

    /// Send a DTMF digit as RFC 4733 RTP to the caller (`to_caller`) or
    /// the callee of (call, leg); see [`Session::send_dtmf`].
    pub fn send_dtmf(
        &self,
        call: u64,
        leg: u64,
        to_caller: bool,
        event: u8,
        duration_ms: u32,
    ) -> bool {
        let to = if to_caller { Leg::A } else { Leg::B };
        self.sessions
            .get(&(call, leg))
            .is_some_and(|s| s.send_dtmf(to, event, duration_ms))
    }

    /// Whether (call, leg) has a session.
    pub fn has_leg(&self, call: u64, leg: u64) -> bool {
        self.sessions.contains_key(&(call, leg))
    }

    /// The caller's answer to a re-INVITE of leg `leg`; returns the body for that leg.
    pub fn answer_to_leg(
        &mut self,
        call: u64,
        leg: u64,
        sdp: &[u8],
    ) -> Result<Vec<u8>, MediaError> {
        let text = std::str::from_utf8(sdp).map_err(|_| not_utf8())?;
        let s = self.sessions.get(&(call, leg)).ok_or(MediaError::NoOffer)?;
        s.answer(Leg::A, text).map(String::into_bytes)
    }

    /// An outbound leg ended (fork lost, CANCELled, failed): free its ports.
    pub fn release_leg(&mut self, call: u64, leg: u64) {
        self.options.remove(&(call, leg));
        if let Some(s) = self.sessions.remove(&(call, leg)) {
            s.close();
        }
    }

    /// The call ended: free every leg's ports.
    pub fn release(&mut self, call: u64) {
        self.options.retain(|(c, _), _| *c != call);
        let legs: Vec<(u64, u64)> = self
            .sessions
            .keys()
            .filter(|(c, _)| *c == call)
            .copied()
            .collect();
        for k in legs {
            if let Some(s) = self.sessions.remove(&k) {
                s.close();
            }
        }
    }

    /// Counters of every leg of a call (for the CDR).
    pub fn stats(&self, call: u64) -> Vec<(u64, SessionStats)> {
        let mut v: Vec<(u64, SessionStats)> = self
            .sessions
            .iter()
            .filter(|((c, _), _)| *c == call)
            .map(|((_, l), s)| (*l, s.stats()))
            .collect();
        v.sort_by_key(|(l, _)| *l);
        v
    }

    /// Number of (call, leg) sessions open.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// No session open.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

fn not_utf8() -> MediaError {
    MediaError::BadSdp(crate::sdp::SdpError {
        line: 0,
        reason: "SDP is not UTF-8".into(),
    })
}
