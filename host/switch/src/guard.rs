//! Counters for the limits that protect the switch from strangers
//! (connection caps, stream timeouts, response-cache bounds, per-source
//! tables), shared by the transports and the core and exported on
//! `/metrics`; and a log limiter so a flood hitting a limit writes one line
//! per interval instead of one per packet.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Limit counters (all monotonic except the gauges noted).
#[derive(Debug, Default)]
pub struct GuardMetrics {
    /// Stream connections open now (gauge).
    pub conns_open: AtomicU64,
    /// Connections closed at accept: global cap reached.
    pub conns_rejected_global: AtomicU64,
    /// Connections closed at accept: per-IP cap reached.
    pub conns_rejected_per_ip: AtomicU64,
    /// Connections closed: no complete message for the idle timeout.
    pub conns_idle_timeout: AtomicU64,
    /// Connections closed: a message started but not completed in time.
    pub conns_header_timeout: AtomicU64,
    /// Connections closed: the peer did not read its responses.
    pub conns_send_queue_full: AtomicU64,
    /// accept() errors (EMFILE and the like).
    pub accept_errors: AtomicU64,
    /// Response-cache entries (gauge).
    pub cache_entries: AtomicU64,
    /// Response-cache bytes (gauge).
    pub cache_bytes: AtomicU64,
    /// Response-cache entries evicted before their time (cache full).
    pub cache_evictions: AtomicU64,
    /// Responses not cached: larger than the per-entry cap.
    pub cache_oversize: AtomicU64,
    /// Per-source protection entries (rate buckets, failures, bans) dropped
    /// because the table was full.
    pub sources_dropped: AtomicU64,
}

impl GuardMetrics {
    /// Adds one to `c`.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, lines: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in lines {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        metric(
            "strowger_sip_connections_open",
            "gauge",
            "SIP stream (TCP/TLS) connections open.",
            &[("", g(&self.conns_open))],
        );
        metric(
            "strowger_sip_connections_rejected_total",
            "counter",
            "SIP stream connections closed at accept because a cap was reached.",
            &[
                ("{cap=\"global\"}", g(&self.conns_rejected_global)),
                ("{cap=\"per_ip\"}", g(&self.conns_rejected_per_ip)),
            ],
        );
        metric(
            "strowger_sip_connections_timed_out_total",
            "counter",
            "SIP stream connections closed by a timeout.",
            &[
                ("{timeout=\"idle\"}", g(&self.conns_idle_timeout)),
                ("{timeout=\"message\"}", g(&self.conns_header_timeout)),
            ],
        );
        metric(
            "strowger_sip_connections_send_queue_full_total",
            "counter",
            "SIP stream connections closed because the peer did not read (send queue full).",
            &[("", g(&self.conns_send_queue_full))],
        );
        metric(
            "strowger_sip_accept_errors_total",
            "counter",
            "accept() failures on SIP stream listeners (e.g. out of file descriptors).",
            &[("", g(&self.accept_errors))],
        );
        metric(
            "strowger_sip_response_cache_entries",
            "gauge",
            "Entries in the response (retransmission) cache.",
            &[("", g(&self.cache_entries))],
        );
        metric(
            "strowger_sip_response_cache_bytes",
            "gauge",
            "Bytes held by the response (retransmission) cache.",
            &[("", g(&self.cache_bytes))],
        );
        metric(
            "strowger_sip_response_cache_evictions_total",
            "counter",
            "Response-cache entries evicted early because the cache was full.",
            &[("", g(&self.cache_evictions))],
        );
        metric(
            "strowger_sip_response_cache_oversize_total",
            "counter",
            "Responses not cached because they exceed the per-entry cap.",
            &[("", g(&self.cache_oversize))],
        );
        metric(
            "strowger_sip_sources_dropped_total",
            "counter",
            "Per-source protection entries dropped because the table was full.",
            &[("", g(&self.sources_dropped))],
        );
        out
    }
}

/// Lets a log line through at most once per interval; counts the rest.
#[derive(Debug)]
pub struct LogLimiter {
    every: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogLimiter {
    /// One line per `every`.
    pub fn new(every: Duration) -> LogLimiter {
        LogLimiter {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(suppressed)` if a line may be written now (with the number of
    /// occurrences suppressed since the last one), else none.
    pub fn check(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock();
        match s.0 {
            Some(last) if now.saturating_duration_since(last) < self.every => {
                s.1 += 1;
                None
            }
            _ => {
                s.0 = Some(now);
                Some(std::mem::take(&mut s.1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_limiter_lets_one_line_per_interval() {
        let l = LogLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(l.check(t0), Some(0));
        for i in 1..1000 {
            assert_eq!(l.check(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(l.check(t0 + Duration::from_secs(10)), Some(999));
    }
}
