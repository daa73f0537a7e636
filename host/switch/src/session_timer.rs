//! Session timers (RFC 4028), per leg of a B2BUA call.
//!
//! * Towards a trunk with `session_expires_s` set, our INVITE offers
//!   `Session-Expires: N;refresher=uac` with `Supported: timer`. If the
//!   answer confirms a timer, we either refresh (UPDATE every N/2) or, when
//!   the trunk is the refresher, watch for its refreshes.
//! * Towards the caller, a timer the caller asked for (`Session-Expires` +
//!   `Supported: timer`) is accepted with the caller as refresher; its
//!   re-INVITE/UPDATE refreshes are watched.
//!
//! A session that is not refreshed in time is ended: BYE to both legs, CDR
//! cause `session-timer`. Without a negotiated timer nothing happens
//! (RFC 4028: no `Session-Expires` in the 2xx means no expiry).

use std::time::Duration;

use strowger_sip::Message;

use crate::core::{Core, Now};

/// Reason given when the session timer ends a call.
pub const SESSION_TIMER_REASON: &str = "Session Timer Expired";

/// Negotiated timer of one leg.
#[derive(Clone, Debug, Default)]
pub(crate) struct LegTimer {
    /// Session interval.
    pub(crate) interval: Duration,
    /// We send the refreshes (else the peer does).
    pub(crate) we_refresh: bool,
    /// CSeq of our outstanding UPDATE refresh.
    pub(crate) pending: Option<u32>,
    /// Bumped on every refresh; timers carry the value they were set for.
    pub(crate) epoch: u32,
}

/// Parses `Session-Expires: N[;refresher=uac|uas]` (compact form `x`).
pub(crate) fn session_expires(msg: &Message) -> Option<(u32, Option<bool>)> {
    let v = msg.header("Session-Expires").or_else(|| msg.header("x"))?;
    let mut parts = v.split(';');
    let n: u32 = parts.next()?.trim().parse().ok()?;
    let mut refresher_uac = None;
    for p in parts {
        if let Some((k, val)) = p.split_once('=')
            && k.trim().eq_ignore_ascii_case("refresher")
        {
            refresher_uac = Some(val.trim().eq_ignore_ascii_case("uac"));
        }
    }
    (n > 0).then_some((n, refresher_uac))
}

/// True if the request lists `timer` in Supported or Require.
pub(crate) fn supports_timer(msg: &Message) -> bool {
    msg.supported().any(|o| o.eq_ignore_ascii_case("timer"))
        || msg
            .headers("Require")
            .flat_map(strowger_sip::split_list)
            .any(|o| o.trim().eq_ignore_ascii_case("timer"))
}

/// When the side that does not refresh gives up: before the session
/// expires by min(32 s, interval/3) (RFC 4028 §10).
pub(crate) fn expiry_after(interval: Duration) -> Duration {
    interval - (interval / 3).min(Duration::from_secs(32))
}

impl Core {
    /// Ends an answered call whose session was not refreshed.
    pub(crate) fn session_expired(&mut self, now: Now, call: u64) {
        tracing::info!(call, "session timer expired: ending the call");
        self.hangup_with_cause(now, call, SESSION_TIMER_REASON);
    }
}
