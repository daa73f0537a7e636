//! The switch's live state as seen by the admin API.

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// One registered contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistrationInfo {
    /// Address of record, e.g. `sip:1001@example.com`.
    pub aor: String,
    /// Contact URI.
    pub contact: String,
    /// Seconds until it expires.
    pub expires_in_s: u64,
    /// Source `ip:port`.
    pub source: String,
    /// Transport (udp, tcp, tls, ws, wss).
    pub transport: String,
    /// User-Agent header, if sent.
    pub user_agent: Option<String>,
}

/// One call in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallInfo {
    /// The host's call id.
    pub id: String,
    /// A number.
    pub a_number: String,
    /// B number.
    pub b_number: String,
    /// Ingress (`trunk:<name>`, `user:<aor>`, ...).
    pub ingress: String,
    /// Current egress, if routed.
    pub egress: Option<String>,
    /// State (`routing`, `ringing`, `answered`, ...).
    pub state: String,
    /// Start time, Unix ms.
    pub start_ms: i64,
    /// Policy generation used by the call.
    pub generation: Option<u64>,
}

/// Live status of one trunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrunkStatus {
    /// Trunk name.
    pub name: String,
    /// `up`, `down`, `unknown` (OPTIONS pings / registration state).
    pub state: String,
    /// Calls currently using it.
    pub active_calls: u64,
}

/// What the admin API needs from the running switch. Implemented by the
/// switch; [`MemorySwitch`] for tests.
pub trait SwitchControl: Send + Sync {
    /// Current registrations.
    fn registrations(&self) -> Vec<RegistrationInfo>;
    /// Remove the binding(s) of `aor` (only `contact` if given); returns how many were removed.
    fn remove_registration(&self, aor: &str, contact: Option<&str>) -> usize;
    /// Calls in progress.
    fn calls(&self) -> Vec<CallInfo>;
    /// Hang up a call (BYE/CANCEL both legs); false if no such call.
    fn hangup(&self, id: &str) -> bool;
    /// Trunk status.
    fn trunks(&self) -> Vec<TrunkStatus>;
    /// Extra Prometheus text-format metrics appended to `/metrics`.
    fn metrics_text(&self) -> String {
        String::new()
    }
}

/// An in-memory [`SwitchControl`]: tests put registrations, calls and
/// trunks in it and watch what the API removes.
#[derive(Debug, Default)]
pub struct MemorySwitch {
    /// Registrations.
    pub registrations: Mutex<Vec<RegistrationInfo>>,
    /// Calls.
    pub calls: Mutex<Vec<CallInfo>>,
    /// Trunks.
    pub trunks: Mutex<Vec<TrunkStatus>>,
}

impl SwitchControl for MemorySwitch {
    fn registrations(&self) -> Vec<RegistrationInfo> {
        self.registrations.lock().clone()
    }
    fn remove_registration(&self, aor: &str, contact: Option<&str>) -> usize {
        let mut r = self.registrations.lock();
        let before = r.len();
        r.retain(|x| !(x.aor == aor && contact.is_none_or(|c| c == x.contact)));
        before - r.len()
    }
    fn calls(&self) -> Vec<CallInfo> {
        self.calls.lock().clone()
    }
    fn hangup(&self, id: &str) -> bool {
        let mut c = self.calls.lock();
        let before = c.len();
        c.retain(|x| x.id != id);
        before != c.len()
    }
    fn trunks(&self) -> Vec<TrunkStatus> {
        self.trunks.lock().clone()
    }
    fn metrics_text(&self) -> String {
        format!(
            "# TYPE strowger_calls_active gauge\nstrowger_calls_active {}\n# TYPE strowger_registrations gauge\nstrowger_registrations {}\n",
            self.calls.lock().len(),
            self.registrations.lock().len()
        )
    }
}
