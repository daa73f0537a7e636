//! Call detail records as the engine writes them and the store keeps them:
//! one per call, with one entry per outbound attempt.

use serde::{Deserialize, Serialize};

/// One call as the switch saw it, written when the call ends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cdr {
    /// The host's call id (unique; what plugins and logs see).
    pub call_id: String,
    /// SIP Call-ID of the inbound leg.
    pub sip_call_id: Option<String>,
    /// INVITE received, Unix ms.
    pub start_ms: i64,
    /// Answered (200 OK relayed to the caller), Unix ms.
    pub answer_ms: Option<i64>,
    /// Call over (final failure sent, or BYE/CANCEL handled), Unix ms.
    pub end_ms: i64,
    /// Caller number as received (before rewrite).
    pub a_number: String,
    /// Called number as received (before rewrite).
    pub b_number: String,
    /// Caller number sent on the answering (or last) attempt, after rewrite.
    pub a_number_out: Option<String>,
    /// Called number sent on the answering (or last) attempt, after rewrite.
    pub b_number_out: Option<String>,
    /// Ingress as text: `trunk:<name>`, `user:<aor>` or `unknown`.
    pub ingress: String,
    /// Ingress trunk name, when the call came from a trunk.
    pub ingress_trunk: Option<String>,
    /// Packet source of the INVITE (`ip:port`, transport optional).
    pub source: Option<String>,
    /// Destination of the answering (or last) attempt as text
    /// (`user:1002`, `trunk:carrier`, `uri:sip:...`).
    pub egress: Option<String>,
    /// Egress trunk of the answering (or last) attempt.
    pub egress_trunk: Option<String>,
    /// Final status seen by the caller (200 for answered calls).
    pub final_code: u16,
    /// Its reason phrase.
    pub final_reason: String,
    /// Why the call ended: `normal`, `no-answer`, `busy`, `cancelled`,
    /// `rejected`, `unavailable`, `plugin-fallback`, ... (free text).
    pub cause: String,
    /// Who hung up an answered call: `caller`, `callee` or `switch`.
    pub hangup_side: Option<String>,
    /// Plugins that decided the call and their versions, as text (JSON
    /// recommended, e.g. `{"route":"route-table@0.1.0#sha256"}`).
    pub plugins: String,
    /// Policy generation active when the call was decided.
    pub policy_generation: Option<u64>,
    /// Outbound attempts in the order they were tried.
    pub attempts: Vec<CdrAttempt>,
    /// Media counters of the call's relayed streams (JSON, stored as text):
    /// per outbound leg and stream, packets/bytes/loss/jitter received
    /// from each side. `None` for bypassed calls or without the relay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<serde_json::Value>,
}

impl Cdr {
    /// Seconds from start to end.
    pub fn duration_ms(&self) -> i64 {
        (self.end_ms - self.start_ms).max(0)
    }
    /// Milliseconds from answer to end (0 when not answered).
    pub fn billable_ms(&self) -> i64 {
        self.answer_ms
            .map(|a| (self.end_ms - a).max(0))
            .unwrap_or(0)
    }
}

/// One outbound attempt of a call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CdrAttempt {
    /// Destination as text (`user:1002`, `trunk:carrier`, `uri:sip:...`).
    pub destination: String,
    /// Egress trunk, when the destination was (or resolved to) a trunk.
    pub egress_trunk: Option<String>,
    /// A number sent on this leg.
    pub a_number: String,
    /// B number sent on this leg.
    pub b_number: String,
    /// INVITE sent, Unix ms.
    pub start_ms: i64,
    /// Answered, Unix ms.
    pub answer_ms: Option<i64>,
    /// Leg over, Unix ms.
    pub end_ms: Option<i64>,
    /// Final status of the leg, if one was received.
    pub final_code: Option<u16>,
    /// Failure cause (`status`, `no-answer`, `unavailable`, `limit-reached`, ...).
    pub cause: Option<String>,
}
