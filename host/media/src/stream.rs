//! One relayed media stream (one `m=` line): two legs, each with an RTP and
//! an RTCP socket, and the per-leg state the fast path reads and updates.
//!
//! The forwarding decision ([`StreamState::route`]) is a pure function of
//! the state, the packet and the time, so latching and counters are
//! testable without sockets.

use std::mem::ManuallyDrop;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

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

/// Where to send to one component (RTP or RTCP) of a phone, and latching.
#[derive(Debug, Clone, Default)]
pub(crate) struct Endpoint {
    /// Address signalled in SDP.
    pub sdp: Option<SocketAddr>,
    /// Address packets actually come from (symmetric RTP / comedia).
    pub latched: Option<SocketAddr>,
    /// Last packet accepted from the latched address.
    pub last: Duration,
}

impl Endpoint {
    /// Latching with hijack protection. Accepts the first source; then only
    /// the latched source, or the SDP-signalled address (authoritative: it
    /// came through authenticated signalling), or any source once the
    /// latched one has been silent for `relatch_after`. `strict`: only the
    /// SDP-signalled IP address may send at all (any port).
    pub fn accept(
        &mut self,
        src: SocketAddr,
        now: Duration,
        relatch_after: Option<Duration>,
        strict: bool,
    ) -> bool {
        if strict && self.sdp.map(|a| a.ip()) != Some(src.ip()) {
            return false;
        }
        match self.latched {
            Some(a) if a == src => {
                self.last = now;
                true
            }
            Some(_) => {
                let silent = relatch_after.is_some_and(|r| now.saturating_sub(self.last) >= r);
                if silent || self.sdp == Some(src) {
                    self.latched = Some(src);
                    self.last = now;
                    true
                } else {
                    false
                }
            }
            None => {
                self.latched = Some(src);
                self.last = now;
                true
            }
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
    /// Hijack protection: re-latch only after this much silence.
    pub relatch_after: Option<Duration>,
    /// Strict source: accept only the SDP-signalled IP address.
    pub strict: bool,
}

impl StreamState {
    pub fn new(rtp: bool, relatch_after: Option<Duration>, strict: bool) -> StreamState {
        StreamState {
            legs: Default::default(),
            rtp,
            relatch_after,
            strict,
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
        let relatch = self.relatch_after;
        let strict = self.strict;
        let rtp_stream = self.rtp;
        let l = &mut self.legs[leg];
        if !l.ep[comp].accept(src, now, relatch, strict) {
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
}

impl Stream {
    pub fn new(
        pool: Arc<PortPool>,
        a: (u16, UdpSocket, UdpSocket),
        b: (u16, UdpSocket, UdpSocket),
        state: StreamState,
        worker: usize,
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
    /// Packets forwarded to the phone.
    pub sent_packets: u64,
    /// Bytes forwarded to the phone.
    pub sent_bytes: u64,
    /// Packets for this phone dropped because its address was unknown.
    pub undeliverable: u64,
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
            sent_packets: l.sent_packets,
            sent_bytes: l.sent_bytes,
            undeliverable: l.undeliverable,
            last_packet_unix_ms: None,
            idle_ms: None,
        }
    }
}
