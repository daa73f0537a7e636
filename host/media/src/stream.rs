//! One relayed media stream (one `m=` line): two legs, each with an RTP and
//! an RTCP socket, and the per-leg state the fast path reads and updates.
//!
//! The forwarding decision ([`StreamState::route`]) is a pure function of
//! the state, the packet and the time, so latching and counters are
//! testable without sockets.

use std::mem::ManuallyDrop;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::mpsc::UnboundedSender;

use crate::MediaEvent;
use crate::pool::PortPool;
use crate::stats::{RtpHeader, RtpStats, RtpStatsSnapshot, is_rtcp};

/// Leg of a session: A is the side that sent the first offer (the caller),
/// B the other side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Leg {
    /// The caller side (first offer).
    A = 0,
    /// The callee side.
    B = 1,
}

impl Leg {
    /// The other leg.
    pub fn other(self) -> Leg {
        match self {
            Leg::A => Leg::B,
            Leg::B => Leg::A,
        }
    }
    pub(crate) fn idx(self) -> usize {
        self as usize
    }
}

/// How a leg's media source is learned (latching), see
/// [`crate::MediaConfig::latching`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Latching {
    /// Accept media only from the IP address the leg signalled in SDP (any
    /// port). For trunks and phones with public addresses; breaks phones
    /// behind NAT (their SDP names a private address).
    Strict,
    /// Learn the source from the first packet that comes from the SDP
    /// address's IP or from the IP the leg's SIP signalling came from (a
    /// phone behind NAT sends RTP from its public address, the one its SIP
    /// came from). Never from a third address. Default.
    #[default]
    Learn,
}

/// Latching limits shared by every stream of a relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LatchPolicy {
    /// Latching mode of the relay (a session may ask for strict).
    pub mode: Latching,
    /// After the first latch, a better source (the exact SDP address,
    /// then the SDP IP, then the SIP peer's IP) may still replace the
    /// latched one for this long (rtpengine's learning period).
    pub learn_window: Duration,
    /// Re-learn (from an acceptable source only) after the latched source
    /// has been silent this long; `None` = never.
    pub relatch_after: Option<Duration>,
}

impl Default for LatchPolicy {
    fn default() -> Self {
        LatchPolicy {
            mode: Latching::Learn,
            learn_window: Duration::from_secs(3),
            relatch_after: Some(Duration::from_secs(5)),
        }
    }
}

/// Where to send to one component (RTP or RTCP) of a phone, and latching.
#[derive(Debug, Clone, Default)]
pub(crate) struct Endpoint {
    /// Address signalled in SDP.
    pub sdp: Option<SocketAddr>,
    /// IP address the leg's SIP signalling came from.
    pub peer: Option<IpAddr>,
    /// Address packets actually come from (symmetric RTP / comedia).
    pub latched: Option<SocketAddr>,
    /// When the current latch was made (start of its learning window).
    pub latched_at: Duration,
    /// Last packet accepted from the latched address.
    pub last: Duration,
    /// Number of times a new source was latched (first latch included).
    pub latches: u32,
}

impl Endpoint {
    /// How good `src` is as this endpoint's source: 3 = the SDP address,
    /// 2 = the SDP address's IP, 1 = the SIP peer's IP (learn mode only),
    /// 0 = unacceptable.
    fn rank(&self, src: SocketAddr, strict: bool) -> u8 {
        if self.sdp == Some(src) {
            3
        } else if self.sdp.is_some_and(|a| a.ip() == src.ip()) {
            2
        } else if !strict && self.peer == Some(src.ip()) {
            1
        } else {
            0
        }
    }

    fn latch(&mut self, src: SocketAddr, now: Duration) {
        self.latched = Some(src);
        self.latched_at = now;
        self.last = now;
        self.latches = self.latches.saturating_add(1);
    }

    /// Latching with hijack protection. Only an acceptable source (see
    /// [`Endpoint::rank`]) may ever be latched. The first one latches; a
    /// better one replaces it within `learn_window` of that; afterwards the
    /// latch holds while media flows and moves (to an acceptable source
    /// again) only after `relatch_after` of silence. `strict`: only the
    /// SDP-signalled IP address is acceptable.
    pub fn accept(
        &mut self,
        src: SocketAddr,
        now: Duration,
        pol: &LatchPolicy,
        strict: bool,
    ) -> bool {
        let strict = strict || pol.mode == Latching::Strict;
        if self.latched == Some(src) {
            self.last = now;
            return true;
        }
        let rank = self.rank(src, strict);
        if rank == 0 {
            return false;
        }
        let Some(cur) = self.latched else {
            self.latch(src, now);
            return true;
        };
        let learning = now.saturating_sub(self.latched_at) < pol.learn_window;
        let silent = pol
            .relatch_after
            .is_some_and(|r| now.saturating_sub(self.last) >= r);
        if silent || (learning && rank > self.rank(cur, strict)) {
            self.latch(src, now);
            true
        } else {
            false
        }
    }

    fn dest(&self) -> Option<SocketAddr> {
        self.latched.or(self.sdp)
    }
}

/// State of one leg of a stream.
#[derive(Debug, Clone)]
pub(crate) struct LegState {
    /// [RTP, RTCP] endpoints of the phone.
    pub ep: [Endpoint; 2],
    /// The phone multiplexes RTCP on the RTP port (RFC 5761).
    pub mux: bool,
    /// Direction/hold from this leg's last SDP.
    pub held: bool,
    /// Stream disabled on this leg (port 0).
    pub disabled: bool,
    /// RTP clock rate by payload type.
    pub clock: [u32; 128],
    /// Received from the phone.
    pub rtp: RtpStats,
    pub rtcp_packets: u64,
    pub rtcp_bytes: u64,
    pub other_packets: u64,
    /// Packets from a foreign source after latching (dropped).
    pub foreign: u64,
    /// Forwarded to the phone.
    pub sent_packets: u64,
    pub sent_bytes: u64,
    /// Packets that could not be forwarded to this phone (no address yet).
    pub undeliverable: u64,
    /// Payload type of `telephone-event` in this leg's SDP.
    pub te_pt: Option<u8>,
    /// RFC 4733 telephone-event packets from this phone are reported as
    /// DTMF digits (see [`StreamState::dtmf_out`]) instead of forwarded.
    pub dtmf_report: bool,
    /// RTP timestamp of the last event reported (the end packet is sent
    /// three times with the same timestamp: one report).
    pub dtmf_last_ts: Option<u32>,
    /// Telephone-event packets received from this phone and not forwarded.
    pub dtmf_packets: u64,
}

/// One DTMF digit taken out of a leg's RTP (RFC 4733 event with the end bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DtmfDigit {
    /// Leg that sent it.
    pub leg: usize,
    /// Event code (0-9, 10 = `*`, 11 = `#`, 12-15 = A-D, 16 = flash).
    pub event: u8,
    /// Duration in milliseconds.
    pub duration_ms: u32,
}

/// The RFC 4733 payload of an RTP packet: (event, end bit, duration in
/// timestamp units). `None` if the packet is too short.
pub(crate) fn telephone_event(pkt: &[u8]) -> Option<(u8, bool, u16)> {
    let cc = usize::from(pkt.first()? & 0x0f);
    let mut off = 12 + 4 * cc;
    if pkt[0] & 0x10 != 0 {
        let words = u16::from_be_bytes([*pkt.get(off + 2)?, *pkt.get(off + 3)?]);
        off += 4 + 4 * usize::from(words);
    }
    let p = pkt.get(off..off + 4)?;
    Some((p[0], p[1] & 0x80 != 0, u16::from_be_bytes([p[2], p[3]])))
}

impl Default for LegState {
    fn default() -> Self {
        let mut clock = [8000u32; 128];
        for (pt, c) in clock.iter_mut().enumerate() {
            if let Some(r) = crate::sdp::static_rtpmap(pt as u8) {
                *c = r.clock_rate;
            }
        }
        LegState {
            ep: Default::default(),
            mux: false,
            held: false,
            disabled: false,
            clock,
            rtp: RtpStats::default(),
            rtcp_packets: 0,
            rtcp_bytes: 0,
            other_packets: 0,
            foreign: 0,
            sent_packets: 0,
            sent_bytes: 0,
            undeliverable: 0,
            te_pt: None,
            dtmf_report: false,
            dtmf_last_ts: None,
            dtmf_packets: 0,
        }
    }
}

impl LegState {
    fn dest(&self, comp: usize) -> Option<SocketAddr> {
        if self.disabled {
            return None;
        }
        if self.mux || comp == 0 {
            self.ep[0].dest()
        } else {
            self.ep[1].dest()
        }
    }
}

/// Both legs of a stream.
#[derive(Debug, Clone)]
pub(crate) struct StreamState {
    pub legs: [LegState; 2],
    /// RTP-based (stats and RTCP demultiplexing); false for T.38 udptl etc.
    pub rtp: bool,
    /// Latching limits (hijack protection).
    pub latch: LatchPolicy,
    /// Strict source for this session: accept only the SDP-signalled IP.
    pub strict: bool,
    /// DTMF digits taken out of the RTP since the worker last looked
    /// (legs with `dtmf_report`); the worker drains it into events.
    pub dtmf_out: Vec<DtmfDigit>,
    /// Sequence number of the next synthesized telephone-event packet per
    /// leg (digits that came as SIP INFO), and the SSRC they use.
    pub dtmf_tx_seq: [u16; 2],
    pub dtmf_tx_ssrc: u32,
}

impl StreamState {
    pub fn new(rtp: bool, latch: LatchPolicy, strict: bool) -> StreamState {
        StreamState {
            legs: Default::default(),
            rtp,
            latch,
            strict,
            dtmf_out: Vec::new(),
            dtmf_tx_seq: [0; 2],
            dtmf_tx_ssrc: 0,
        }
    }

    /// Decide what to do with a packet that arrived on `leg`'s socket
    /// `comp` (0 = RTP port, 1 = RTCP port) from `src`. Returns the output
    /// (leg, component socket, destination) or `None` to drop it.
    pub fn route(
        &mut self,
        leg: usize,
        comp: usize,
        src: SocketAddr,
        pkt: &[u8],
        now: Duration,
    ) -> Option<(usize, usize, SocketAddr)> {
        let latch = self.latch;
        let strict = self.strict;
        let rtp_stream = self.rtp;
        let other_te = self.legs[1 - leg].te_pt;
        let l = &mut self.legs[leg];
        if !l.ep[comp].accept(src, now, &latch, strict) {
            l.foreign += 1;
            return None;
        }
        let rtcp = rtp_stream && (comp == 1 || is_rtcp(pkt));
        if rtcp {
            l.rtcp_packets += 1;
            l.rtcp_bytes += pkt.len() as u64;
        } else if let Some(h) = rtp_stream.then(|| RtpHeader::parse(pkt)).flatten() {
            let rate = l.clock[h.pt as usize];
            l.rtp.on_packet(&h, pkt.len(), now, rate);
            if l.dtmf_report && (l.te_pt == Some(h.pt) || other_te == Some(h.pt)) {
                // RFC 4733 event: reported once per event (end bit, first
                // of the repeated end packets), never forwarded.
                l.dtmf_packets += 1;
                if let Some((event, true, dur)) = telephone_event(pkt)
                    && l.dtmf_last_ts != Some(h.ts)
                {
                    l.dtmf_last_ts = Some(h.ts);
                    let duration_ms = u32::from(dur) * 1000 / rate.max(1);
                    self.dtmf_out.push(DtmfDigit {
                        leg,
                        event,
                        duration_ms,
                    });
                }
                return None;
            }
        } else {
            // STUN keepalives, DTLS, udptl: forwarded, not RTP-counted; they
            // still count as media activity for the timeout.
            l.other_packets += 1;
            l.rtp.last_arrival = Some(now);
        }
        let o = &mut self.legs[1 - leg];
        let out_comp = if rtcp && !o.mux { 1 } else { 0 };
        match o.dest(out_comp) {
            Some(d) => {
                o.sent_packets += 1;
                o.sent_bytes += pkt.len() as u64;
                Some((1 - leg, out_comp, d))
            }
            None => {
                o.undeliverable += 1;
                None
            }
        }
    }
}

/// A stream with its four sockets. Dropping it closes the sockets and
/// returns both port pairs to the pool.
pub(crate) struct Stream {
    sockets: ManuallyDrop<[[UdpSocket; 2]; 2]>,
    fds: [[RawFd; 2]; 2],
    /// Local RTP port per leg (the port that leg's phone sends to).
    pub ports: [u16; 2],
    pub state: Mutex<StreamState>,
    pool: Arc<PortPool>,
    /// Index of the worker that polls it.
    pub worker: usize,
    /// Slot in the worker's table (set by the worker).
    pub slot: AtomicUsize,
    /// Where DTMF digits taken out of the RTP go: (session id, events).
    pub dtmf_sink: Option<(String, UnboundedSender<MediaEvent>)>,
}

impl Stream {
    pub fn new(
        pool: Arc<PortPool>,
        a: (u16, UdpSocket, UdpSocket),
        b: (u16, UdpSocket, UdpSocket),
        state: StreamState,
        worker: usize,
        dtmf_sink: Option<(String, UnboundedSender<MediaEvent>)>,
    ) -> Stream {
        let fds = [
            [a.1.as_raw_fd(), a.2.as_raw_fd()],
            [b.1.as_raw_fd(), b.2.as_raw_fd()],
        ];
        Stream {
            sockets: ManuallyDrop::new([[a.1, a.2], [b.1, b.2]]),
            fds,
            ports: [a.0, b.0],
            state: Mutex::new(state),
            pool,
            worker,
            slot: AtomicUsize::new(usize::MAX),
            dtmf_sink,
        }
    }

    /// Raw fd of `leg`'s socket `comp`.
    #[inline]
    pub fn fd(&self, leg: usize, comp: usize) -> RawFd {
        self.fds[leg][comp]
    }

    pub fn slot(&self) -> usize {
        self.slot.load(Ordering::Acquire)
    }

    /// See [`crate::Session::send_dtmf`]; `now` is relay time.
    pub fn send_dtmf(&self, to: usize, event: u8, duration_ms: u32, now: Duration) -> bool {
        let mut st = self.state.lock();
        let Some(dest) = st.legs[to].dest(0) else {
            return false;
        };
        let Some(pt) = st.legs[to].te_pt.or(st.legs[1 - to].te_pt) else {
            return false;
        };
        let rate = st.legs[to].clock[pt as usize].max(1);
        if st.dtmf_tx_ssrc == 0 {
            // distinct from the forwarded stream's SSRC, stable per stream
            st.dtmf_tx_ssrc = 0x5354_0000 | u32::from(self.ports[to]);
        }
        let ssrc = st.dtmf_tx_ssrc;
        let ts = (now.as_millis() as u64 * u64::from(rate) / 1000) as u32;
        let total = (u64::from(duration_ms) * u64::from(rate) / 1000).min(0xffff) as u16;
        let start = total.min((rate / 50) as u16); // 20 ms so far
        let mut sent = 0u64;
        for (marker, end, dur) in [
            (true, false, start),
            (false, true, total),
            (false, true, total),
            (false, true, total),
        ] {
            let seq = st.dtmf_tx_seq[to];
            st.dtmf_tx_seq[to] = seq.wrapping_add(1);
            let mut p = [0u8; 16];
            p[0] = 0x80;
            p[1] = pt | if marker { 0x80 } else { 0 };
            p[2..4].copy_from_slice(&seq.to_be_bytes());
            p[4..8].copy_from_slice(&ts.to_be_bytes());
            p[8..12].copy_from_slice(&ssrc.to_be_bytes());
            p[12] = event;
            p[13] = if end { 0x80 | 10 } else { 10 };
            p[14..16].copy_from_slice(&dur.to_be_bytes());
            if self.sockets[to][0].send_to(&p, dest).is_ok() {
                sent += 1;
            }
        }
        let l = &mut st.legs[to];
        l.sent_packets += sent;
        l.sent_bytes += sent * 16;
        sent > 0
    }

    /// Hand the digits collected in `st` to the switch (called by the
    /// worker after a batch; digits are rare, so this allocates).
    pub fn report_dtmf(&self, st: &mut StreamState) {
        let Some((id, tx)) = &self.dtmf_sink else {
            st.dtmf_out.clear();
            return;
        };
        for d in st.dtmf_out.drain(..) {
            let _ = tx.send(MediaEvent::Dtmf {
                call_id: id.clone(),
                from: if d.leg == 0 { Leg::A } else { Leg::B },
                event: d.event,
                duration_ms: d.duration_ms,
            });
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: dropped exactly once, here; never used afterwards.
        unsafe { ManuallyDrop::drop(&mut self.sockets) };
        self.pool.release(self.ports[0]);
        self.pool.release(self.ports[1]);
    }
}

/// Counters of one leg of one stream (what the relay received from that
/// phone and sent to it).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LegStats {
    /// Local RTP port this leg's phone sends to.
    pub local_port: u16,
    /// Where RTP to this phone goes (latched address, else SDP address).
    pub remote: Option<SocketAddr>,
    /// Address latched from the phone's actual RTP packets.
    pub latched: Option<SocketAddr>,
    /// RTCP multiplexed on the RTP port.
    pub rtcp_mux: bool,
    /// RTP received from the phone (packets, bytes, loss, jitter, last time).
    pub rtp: RtpStatsSnapshot,
    /// RTCP packets received from the phone.
    pub rtcp_packets: u64,
    /// RTCP bytes received from the phone.
    pub rtcp_bytes: u64,
    /// Non-RTP packets (STUN, DTLS, udptl) received from the phone.
    pub other_packets: u64,
    /// Packets from foreign sources dropped by latching (hijack protection).
    pub foreign_dropped: u64,
    /// Sources latched for RTP (1 normally; more after learning a better
    /// source or re-learning after silence).
    pub latches: u32,
    /// Packets forwarded to the phone.
    pub sent_packets: u64,
    /// Bytes forwarded to the phone.
    pub sent_bytes: u64,
    /// Packets for this phone dropped because its address was unknown.
    pub undeliverable: u64,
    /// RFC 4733 telephone-event packets from the phone turned into DTMF
    /// events (SIP INFO on the other leg) instead of forwarded.
    pub dtmf_packets: u64,
    /// Wall-clock time of the last RTP (or other media) packet from the
    /// phone, Unix milliseconds.
    pub last_packet_unix_ms: Option<u64>,
    /// Milliseconds since that packet (at the time of the snapshot).
    pub idle_ms: Option<u64>,
}

impl StreamState {
    pub fn leg_stats(&self, leg: usize, local_port: u16) -> LegStats {
        let l = &self.legs[leg];
        LegStats {
            local_port,
            remote: l.dest(0),
            latched: l.ep[0].latched,
            rtcp_mux: l.mux,
            rtp: l.rtp.snapshot(),
            rtcp_packets: l.rtcp_packets,
            rtcp_bytes: l.rtcp_bytes,
            other_packets: l.other_packets,
            foreign_dropped: l.foreign,
            latches: l.ep[0].latches,
            sent_packets: l.sent_packets,
            sent_bytes: l.sent_bytes,
            undeliverable: l.undeliverable,
            dtmf_packets: l.dtmf_packets,
            last_packet_unix_ms: None,
            idle_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn te(seq: u16, ts: u32, event: u8, end: bool, dur: u16) -> Vec<u8> {
        let mut p = vec![0x80, 101];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&7u32.to_be_bytes());
        p.extend_from_slice(&[event, if end { 0x8a } else { 0x0a }]);
        p.extend_from_slice(&dur.to_be_bytes());
        p
    }

    fn audio(seq: u16, ts: u32) -> Vec<u8> {
        let mut p = te(seq, ts, 0, false, 0);
        p[1] = 8;
        p.resize(172, 0xd5);
        p
    }

    fn state(report: bool) -> (StreamState, SocketAddr, SocketAddr) {
        let a: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:6000".parse().unwrap();
        let mut st = StreamState::new(true, LatchPolicy::default(), false);
        st.legs[0].ep[0].sdp = Some(a);
        st.legs[1].ep[0].sdp = Some(b);
        st.legs[0].te_pt = Some(101);
        st.legs[0].dtmf_report = report;
        (st, a, b)
    }

    #[test]
    fn telephone_events_become_one_digit_each_and_are_not_forwarded() {
        let (mut st, a, b) = state(true);
        let t = |ms: u64| Duration::from_millis(ms);
        // Audio passes.
        assert_eq!(st.route(0, 0, a, &audio(1, 0), t(0)), Some((1, 0, b)));
        // Digit 5: three progress packets, three end packets (one timestamp).
        let mut seq = 2;
        for (i, (end, dur)) in [
            (false, 160),
            (false, 320),
            (false, 480),
            (true, 1280),
            (true, 1280),
            (true, 1280),
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(
                st.route(0, 0, a, &te(seq, 160, 5, end, dur), t(20 + i as u64 * 20)),
                None
            );
            seq += 1;
        }
        // '#' (11) right after, new timestamp.
        for _ in 0..3 {
            assert_eq!(
                st.route(0, 0, a, &te(seq, 1600, 11, true, 800), t(200)),
                None
            );
            seq += 1;
        }
        assert_eq!(
            st.dtmf_out,
            vec![
                DtmfDigit {
                    leg: 0,
                    event: 5,
                    duration_ms: 160
                },
                DtmfDigit {
                    leg: 0,
                    event: 11,
                    duration_ms: 100
                },
            ]
        );
        assert_eq!(st.legs[0].dtmf_packets, 9);
        assert_eq!(
            st.legs[1].sent_packets, 1,
            "only the audio packet was forwarded"
        );
        assert_eq!(
            st.legs[0].rtp.packets, 10,
            "events still count as received RTP"
        );
        // The other direction is untouched: B's events are forwarded.
        let mut from_b = te(1, 0, 1, true, 800);
        from_b[8..12].copy_from_slice(&9u32.to_be_bytes());
        assert_eq!(st.route(1, 0, b, &from_b, t(300)), Some((0, 0, a)));
    }

    #[test]
    fn without_conversion_events_are_forwarded() {
        let (mut st, a, b) = state(false);
        assert_eq!(
            st.route(0, 0, a, &te(1, 160, 5, true, 1280), Duration::ZERO),
            Some((1, 0, b))
        );
        assert!(st.dtmf_out.is_empty());
    }

    #[test]
    fn event_payload_after_csrcs_and_extension() {
        let mut p = vec![0x91, 101, 0, 1, 0, 0, 0, 160, 0, 0, 0, 7];
        p.extend_from_slice(&[1, 2, 3, 4]); // one CSRC
        p.extend_from_slice(&[0xbe, 0xde, 0, 1, 9, 9, 9, 9]); // extension, 1 word
        p.extend_from_slice(&[10, 0x80, 0x03, 0x20]);
        assert_eq!(telephone_event(&p), Some((10, true, 800)));
        assert_eq!(telephone_event(&p[..p.len() - 1]), None);
    }

    fn ep(sdp: &str, peer: &str) -> Endpoint {
        Endpoint {
            sdp: Some(sdp.parse().unwrap()),
            peer: Some(peer.parse().unwrap()),
            ..Default::default()
        }
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_the_sip_peer_or_the_sdp_ip_is_latched() {
        let pol = LatchPolicy::default();
        let t = Duration::from_secs;
        // NAT caller: SDP names a private address, SIP came from 198.51.100.7.
        let mut e = ep("10.0.0.5:4000", "198.51.100.7");
        assert!(
            !e.accept(sa("203.0.113.66:4000"), t(0), &pol, false),
            "attacker first"
        );
        assert_eq!(e.latched, None);
        assert!(e.accept(sa("198.51.100.7:61000"), t(1), &pol, false));
        // Media flows; the attacker never gets in, not even after 6 s of
        // silence of the caller (default re-learning after 5 s).
        assert!(e.accept(sa("198.51.100.7:61000"), t(2), &pol, false));
        assert!(!e.accept(sa("203.0.113.66:4000"), t(2), &pol, false));
        assert!(!e.accept(sa("203.0.113.66:4000"), t(9), &pol, false));
        assert_eq!(e.latched, Some(sa("198.51.100.7:61000")));
        // After the silence the caller's new NAT port is learned.
        assert!(e.accept(sa("198.51.100.7:62000"), t(10), &pol, false));
        assert_eq!(e.latches, 2);
        // Strict: the SIP peer is not enough.
        let mut e = ep("10.0.0.5:4000", "198.51.100.7");
        assert!(!e.accept(sa("198.51.100.7:61000"), t(0), &pol, true));
        let strict = LatchPolicy {
            mode: Latching::Strict,
            ..pol
        };
        assert!(!e.accept(sa("198.51.100.7:61000"), t(0), &strict, false));
        assert!(e.accept(sa("10.0.0.5:4002"), t(0), &strict, false));
        // No peer known: only the SDP IP.
        let mut e = Endpoint {
            sdp: Some(sa("192.0.2.1:4000")),
            ..Default::default()
        };
        assert!(!e.accept(sa("198.51.100.7:4000"), t(0), &pol, false));
        assert!(e.accept(sa("192.0.2.1:5000"), t(0), &pol, false));
    }

    #[test]
    fn a_better_source_wins_only_while_learning() {
        let pol = LatchPolicy {
            learn_window: Duration::from_secs(3),
            relatch_after: Some(Duration::from_secs(5)),
            mode: Latching::Learn,
        };
        let ms = Duration::from_millis;
        let mut e = ep("198.51.100.7:4000", "198.51.100.7");
        // Another port of the peer's IP latches first ...
        assert!(e.accept(sa("198.51.100.7:9999"), ms(0), &pol, false));
        // ... the exact SDP address replaces it within the learning window,
        assert!(e.accept(sa("198.51.100.7:4000"), ms(1000), &pol, false));
        // after which the latch holds while media flows.
        for i in 1..=50 {
            assert!(e.accept(sa("198.51.100.7:4000"), ms(1000 + i * 100), &pol, false));
        }
        assert!(!e.accept(sa("198.51.100.7:9999"), ms(6100), &pol, false));
        assert_eq!(e.latched, Some(sa("198.51.100.7:4000")));
        // Not a worse source within the window either.
        let mut e = ep("198.51.100.7:4000", "198.51.100.7");
        assert!(e.accept(sa("198.51.100.7:4000"), ms(0), &pol, false));
        assert!(!e.accept(sa("198.51.100.7:9999"), ms(10), &pol, false));
    }
}
