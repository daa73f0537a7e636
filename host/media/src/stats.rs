//! Per-stream receive statistics (RFC 3550 §6.4.1 / appendix A.1, A.3, A.8).
//!
//! Sans-IO: the caller passes the packet and its arrival time, so the
//! arithmetic is tested with crafted sequences and no clock.

use std::time::Duration;

const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;

/// Fixed RTP header fields the relay reads (no allocation, no copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Payload type (7 bits).
    pub pt: u8,
    /// Sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub ts: u32,
    /// Synchronization source.
    pub ssrc: u32,
}

impl RtpHeader {
    /// Parse the 12-byte fixed header; `None` if this is not RTP version 2
    /// or is RTCP (RFC 5761 payload types 64..=95 after the marker bit).
    pub fn parse(p: &[u8]) -> Option<RtpHeader> {
        if p.len() < 12 || p[0] >> 6 != 2 {
            return None;
        }
        let pt = p[1] & 0x7f;
        if (64..=95).contains(&pt) {
            return None;
        }
        Some(RtpHeader {
            pt,
            seq: u16::from_be_bytes([p[2], p[3]]),
            ts: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
            ssrc: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
        })
    }
}

/// Whether a packet is RTCP (version 2, packet type 192..=223, RFC 5761 §4).
pub fn is_rtcp(p: &[u8]) -> bool {
    p.len() >= 8 && p[0] >> 6 == 2 && (192..=223).contains(&p[1])
}

/// Receive statistics of one direction of one stream.
#[derive(Debug, Clone, Default)]
pub struct RtpStats {
    /// Valid RTP packets received.
    pub packets: u64,
    /// RTP bytes received (UDP payload).
    pub bytes: u64,
    /// Arrival time of the last RTP packet (relative to the relay's epoch).
    pub last_arrival: Option<Duration>,
    ssrc: Option<u32>,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    bad_seq: u32,
    received: u64,
    lost_before: i64,
    transit: Option<i64>,
    jitter: f64,
    clock_rate: u32,
}

/// A snapshot of [`RtpStats`] for CDRs and the API.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct RtpStatsSnapshot {
    /// Valid RTP packets received.
    pub packets: u64,
    /// RTP bytes received.
    pub bytes: u64,
    /// Packets lost (expected − received, RFC 3550 A.3), summed over SSRCs.
    pub lost: i64,
    /// Interarrival jitter in milliseconds (RFC 3550 A.8).
    pub jitter_ms: f64,
    /// Time of the last packet in milliseconds since the relay started
    /// (`LegStats::last_packet_unix_ms` has it as wall-clock time).
    pub last_packet_ms: Option<u64>,
}

impl RtpStats {
    /// Account one RTP packet of `len` bytes that arrived at `arrival`;
    /// `clock_rate` is the RTP clock of its payload type (8000 for G.711).
    pub fn on_packet(&mut self, h: &RtpHeader, len: usize, arrival: Duration, clock_rate: u32) {
        self.packets += 1;
        self.bytes += len as u64;
        self.last_arrival = Some(arrival);
        if self.ssrc != Some(h.ssrc) {
            // New source (or first packet): restart sequence tracking.
            self.lost_before += self.lost_current();
            self.ssrc = Some(h.ssrc);
            self.init_seq(h.seq);
            self.transit = None;
            self.jitter = 0.0;
        } else if !self.update_seq(h.seq) {
            return;
        }
        self.received += 1;
        // Jitter (A.8): transit time in RTP units; clock changes reset it.
        if clock_rate == 0 {
            return;
        }
        if clock_rate != self.clock_rate {
            self.clock_rate = clock_rate;
            self.transit = None;
        }
        let arrival_units = (arrival.as_nanos() * clock_rate as u128 / 1_000_000_000) as i64;
        let transit = arrival_units.wrapping_sub(h.ts as i64);
        if let Some(prev) = self.transit {
            let d = (transit - prev).unsigned_abs() as f64;
            // Ignore absurd deltas (timestamp jumps): they are not jitter.
            if d < clock_rate as f64 * 10.0 {
                self.jitter += (d - self.jitter) / 16.0;
            }
        }
        self.transit = Some(transit);
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = seq as u32;
        self.max_seq = seq;
        self.bad_seq = 1 << 17; // impossible value
        self.cycles = 0;
        self.received = 0;
    }

    /// RFC 3550 A.1 without the probation phase. Returns false for a packet
    /// that is not counted (first of a suspected restart).
    fn update_seq(&mut self, seq: u16) -> bool {
        let udelta = seq.wrapping_sub(self.max_seq);
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += 1 << 16;
            }
            self.max_seq = seq;
        } else if udelta <= u16::MAX - MAX_MISORDER {
            // A very large jump.
            if seq as u32 == self.bad_seq {
                // Two sequential packets: the source restarted.
                self.lost_before += self.lost_current();
                self.init_seq(seq);
            } else {
                self.bad_seq = (seq as u32 + 1) & 0xffff;
                return false;
            }
        }
        // else: duplicate or reordered packet, counted as received.
        true
    }

    fn lost_current(&self) -> i64 {
        if self.ssrc.is_none() {
            return 0;
        }
        let ext_max = self.cycles as i64 + self.max_seq as i64;
        let expected = ext_max - self.base_seq as i64 + 1;
        (expected - self.received as i64).max(0)
    }

    /// Cumulative packets lost.
    pub fn lost(&self) -> i64 {
        self.lost_before + self.lost_current()
    }

    /// Jitter in RTP timestamp units.
    pub fn jitter_units(&self) -> f64 {
        self.jitter
    }

    /// Jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        if self.clock_rate == 0 {
            0.0
        } else {
            self.jitter * 1000.0 / self.clock_rate as f64
        }
    }

    /// A copy for reporting.
    pub fn snapshot(&self) -> RtpStatsSnapshot {
        RtpStatsSnapshot {
            packets: self.packets,
            bytes: self.bytes,
            lost: self.lost(),
            jitter_ms: self.jitter_ms(),
            last_packet_ms: self.last_arrival.map(|d| d.as_millis() as u64),
        }
    }
}
