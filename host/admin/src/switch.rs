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
    /// `up`, `down` (qualify), `unknown` (not qualified), `unresolved`.
    pub state: String,
    /// Calls currently using it.
    pub active_calls: u64,
    /// Last qualify round trip, ms.
    #[serde(default)]
    pub latency_ms: Option<u32>,
    /// Our registration to it: `registered`, `registering`,
    /// `unregistered`, `failed: <why>` (none: it does not register).
    #[serde(default)]
    pub registration: Option<String>,
}

/// A SIP user managed over the API (`PUT /v1/users/{domain}/{user}`).
/// Its `Debug` does not show the password.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct UserAccount {
    /// User name (digest username, AOR user part).
    pub user: String,
    /// Domain (realm).
    pub domain: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for UserAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserAccount")
            .field("user", &self.user)
            .field("domain", &self.domain)
            .field("password", &"***")
            .finish()
    }
}

/// A boxed future answered by a [`SwitchControl`].
pub type SwitchFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// What the admin API needs from the running switch. Implemented over the
/// switch's control handle by `strowger serve`; [`MemorySwitch`] for tests.
/// Calls and trunks are answered by the switch's core task, hence futures.
pub trait SwitchControl: Send + Sync {
    /// Current registrations.
    fn registrations(&self) -> Vec<RegistrationInfo>;
    /// Remove the binding(s) of `aor` (only `contact` if given); returns how many were removed.
    fn remove_registration(&self, aor: &str, contact: Option<&str>) -> usize;
    /// Calls in progress.
    fn calls(&self) -> SwitchFuture<'_, Vec<CallInfo>>;
    /// Hang up a call (BYE/CANCEL both legs); false if no such call.
    fn hangup<'a>(&'a self, id: &'a str) -> SwitchFuture<'a, bool>;
    /// Trunk status.
    fn trunks(&self) -> SwitchFuture<'_, Vec<TrunkStatus>>;
    /// The trunks stored over the API (name, `[[trunks]]` fields as JSON),
    /// every time they change (and after a restart): the switch checks them
    /// with its configuration rules and, if all are good, uses them (merged
    /// over its configuration file's trunks). An error says what to fix;
    /// nothing is applied then.
    fn set_trunks(
        &self,
        trunks: Vec<(String, serde_json::Value)>,
    ) -> SwitchFuture<'_, Result<(), String>> {
        let _ = trunks;
        Box::pin(async { Ok(()) })
    }
    /// Whether the switch serves SIP now: its core loop answered a round
    /// trip within a short timeout (`/readyz`).
    fn sip_ready(&self) -> SwitchFuture<'_, bool> {
        Box::pin(async { true })
    }
    /// Why the switch no longer serves SIP (its core loop or a listener
    /// task panicked or stopped), if so (`/healthz` answers 503 then).
    fn failure(&self) -> Option<String> {
        None
    }
    /// Extra metrics appended to `/metrics`, in the Prometheus text format
    /// 0.0.4 (`# HELP` and `# TYPE` for each family; counters named
    /// `<name>_total` there too); the API derives OpenMetrics from it.
    fn metrics_text(&self) -> SwitchFuture<'_, String> {
        Box::pin(async { String::new() })
    }
    /// The log filter in force (`GET /v1/log/level`); `None` when this
    /// process cannot change its log filter.
    fn log_filter(&self) -> Option<String> {
        None
    }
    /// Replaces the log filter (`PUT /v1/log/level`); the error says what
    /// is wrong with it, and nothing changed then.
    fn set_log_filter(&self, filter: &str) -> Result<String, String> {
        let _ = filter;
        Err("this process cannot change its log filter".into())
    }
    /// The users stored over the API, every time they change (and after a
    /// restart): the switch lets them register and call.
    fn set_users(&self, users: Vec<UserAccount>) -> SwitchFuture<'_, ()> {
        let _ = users;
        Box::pin(async {})
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
    /// Users last given to [`SwitchControl::set_users`].
    pub users: Mutex<Vec<UserAccount>>,
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
    fn calls(&self) -> SwitchFuture<'_, Vec<CallInfo>> {
        let c = self.calls.lock().clone();
        Box::pin(async move { c })
    }
    fn hangup<'a>(&'a self, id: &'a str) -> SwitchFuture<'a, bool> {
        let mut c = self.calls.lock();
        let before = c.len();
        c.retain(|x| x.id != id);
        let found = before != c.len();
        Box::pin(async move { found })
    }
    fn trunks(&self) -> SwitchFuture<'_, Vec<TrunkStatus>> {
        let t = self.trunks.lock().clone();
        Box::pin(async move { t })
    }
    fn set_users(&self, users: Vec<UserAccount>) -> SwitchFuture<'_, ()> {
        *self.users.lock() = users;
        Box::pin(async {})
    }
    fn metrics_text(&self) -> SwitchFuture<'_, String> {
        let text = format!(
            "# HELP strowger_calls_active Calls in progress.\n# TYPE strowger_calls_active gauge\nstrowger_calls_active {}\n\
             # HELP strowger_registrations Registered contacts.\n# TYPE strowger_registrations gauge\nstrowger_registrations {}\n",
            self.calls.lock().len(),
            self.registrations.lock().len()
        );
        Box::pin(async move { text })
    }
}
