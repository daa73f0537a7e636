//! The switch core: a single-threaded, sans-IO state machine. It is driven
//! by [`Event`]s (received messages, connection loss, plugin decisions) and
//! by timer expiries at instants the caller passes in, and it answers with
//! [`Action`]s (send bytes, ask a plugin, persist, write a CDR). It never
//! blocks, sleeps or touches a socket; the tokio shell in [`crate::server`]
//! does that. Unit tests drive it with a fake clock.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::RwLock;
use strowger_sip::{Message, Method, ParseOptions, ResponseBuilder, Scheme, Via};

use crate::auth::{Credentials, DigestAlgorithm, DigestAuth};
use crate::b2bua::{CallState, LegRef};
use crate::flow::{ConnId, Flow, Target, Transport};
use crate::location::{Binding, Location};
use crate::media::{MediaHandler, PassThrough};
use crate::timers::Timers;
use crate::transport::Inbound;

/// Current time as the core sees it: monotonic for timers, wall clock for
/// records.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    /// Monotonic instant.
    pub mono: Instant,
    /// Milliseconds since the Unix epoch.
    pub unix_ms: i64,
}

impl Now {
    /// The real current time.
    pub fn real() -> Now {
        Now {
            mono: Instant::now(),
            unix_ms: crate::civil::now_unix_ms(),
        }
    }
    /// `self` advanced by `d` (tests).
    pub fn after(self, d: Duration) -> Now {
        Now {
            mono: self.mono + d,
            unix_ms: self.unix_ms + d.as_millis() as i64,
        }
    }
}

/// A user allowed to register and call. Its `Debug` does not show the
/// password.
#[derive(Clone)]
pub struct UserCred {
    /// User name (digest username and AOR user part).
    pub user: String,
    /// Password (digest HA1 is computed from it).
    pub password: String,
    /// Domain (realm) of the user.
    pub domain: String,
}

impl std::fmt::Debug for UserCred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserCred")
            .field("user", &self.user)
            .field("password", &"***")
            .field("domain", &self.domain)
            .finish()
    }
}

pub use crate::trunks::{
    GroupAlgorithm, GroupInfo, ProtectionInfo, RegStatus, TrunkInbound, TrunkInfo, TrunkSnapshot,
    TrunkView,
};

/// Core settings (derived from the configuration file).
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// Default domain and digest realm.
    pub domain: String,
    /// User-Agent / Server header value.
    pub user_agent: String,
    /// Our listeners (for Via, Contact and loop detection).
    pub listeners: Vec<(Transport, SocketAddr)>,
    /// Users.
    pub users: Vec<UserCred>,
    /// Trunks.
    pub trunks: Vec<TrunkInfo>,
    /// Trunk groups.
    pub groups: Vec<GroupInfo>,
    /// Protection (bans, rate limit, scanners).
    pub protection: ProtectionInfo,
    /// Digest algorithms offered, in order.
    pub algorithms: Vec<DigestAlgorithm>,
    /// Nonce lifetime.
    pub nonce_ttl: Duration,
    /// Accept digest responses without qop (one use per nonce).
    pub allow_no_qop: bool,
    /// Registrar limits (seconds).
    pub min_expires: u32,
    /// Largest granted expiry.
    pub max_expires: u32,
    /// Expiry when the REGISTER names none.
    pub default_expires: u32,
    /// Default ring timeout.
    pub ring_timeout: Duration,
    /// Max-Forwards for new requests and the cap for relayed ones.
    pub max_forwards: u8,
    /// RFC 3261 T1.
    pub t1: Duration,
    /// RFC 3261 T2.
    pub t2: Duration,
    /// RFC 3261 T4.
    pub t4: Duration,
    /// Requests larger than this go over TCP (RFC 3261 §18.1.1).
    pub max_udp_size: usize,
    /// Largest accepted message (513 above it).
    pub max_message_size: usize,
    /// Local time offset seen by plugins.
    pub tz_offset_minutes: i32,
    /// Seed of the call id generator's random bits (the shell passes OS
    /// randomness; tests a constant, for repeatable ids).
    pub id_seed: u64,
    /// Bounds of the response (retransmission) cache.
    pub response_cache: CacheLimits,
    /// Most source addresses tracked by the protection tables (rate-limit
    /// buckets, authentication failures, bans).
    pub max_tracked_sources: usize,
}

impl CoreConfig {
    /// A config for tests: one UDP listener, domain `test.local`.
    pub fn for_tests(listen: SocketAddr) -> CoreConfig {
        CoreConfig {
            domain: "test.local".into(),
            user_agent: "Strowger-test".into(),
            listeners: vec![(Transport::Udp, listen)],
            users: Vec::new(),
            trunks: Vec::new(),
            groups: Vec::new(),
            protection: ProtectionInfo::default(),
            algorithms: vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5],
            nonce_ttl: Duration::from_secs(300),
            allow_no_qop: false,
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            ring_timeout: Duration::from_secs(60),
            max_forwards: 70,
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            max_udp_size: 1300,
            max_message_size: 32 * 1024,
            tz_offset_minutes: 0,
            id_seed: 1,
            response_cache: CacheLimits::default(),
            max_tracked_sources: 100_000,
        }
    }
}

/// What the core received or learnt.
#[derive(Debug)]
pub enum Event {
    /// A message from the network.
    Net(Inbound),
    /// A stream connection closed.
    ConnClosed(ConnId),
    /// Answer to [`Action::Authorize`].
    AuthDecided {
        /// The pending request.
        pending: u64,
        /// The decision.
        verdict: AuthVerdict,
    },
    /// Answer to [`Action::PlanCall`].
    CallPlanned {
        /// The call.
        call: u64,
        /// The plan.
        plan: Plan,
    },
    /// The media relay saw no RTP on outbound leg `leg` of `call` for the
    /// configured media timeout.
    MediaTimeout {
        /// The call.
        call: u64,
        /// The outbound leg.
        leg: u64,
    },
    /// The relay took a DTMF digit (RFC 4733) out of the RTP of one side
    /// of outbound leg `leg` because the other side wants SIP INFO.
    MediaDtmf {
        /// The call.
        call: u64,
        /// The outbound leg.
        leg: u64,
        /// The digit came from the caller (else from the callee).
        from_caller: bool,
        /// `application/dtmf-relay` signal (`0`-`9`, `*`, `#`, `A`-`D`, `!`).
        signal: char,
        /// Duration in milliseconds.
        duration_ms: u32,
    },
}

/// Source classification of a request (mirrors the WIT `ingress`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ingress {
    /// From a trusted trunk.
    Trunk(String),
    /// From an authenticated user (AOR).
    User(String),
    /// Neither.
    Unknown,
}

/// Registration state of an AOR (for the authorize hook).
pub use crate::location::RegState;

/// What the authorize hook (or the built-in default) is asked.
#[derive(Clone, Debug)]
pub struct AuthFacts {
    /// Method.
    pub method: String,
    /// AOR `sip:user@domain`.
    pub aor: String,
    /// User part.
    pub user: String,
    /// Domain part.
    pub domain: String,
    /// Digest username, if credentials were sent.
    pub auth_user: Option<String>,
    /// Digest check result.
    pub credentials: Credentials,
    /// True if the user is configured.
    pub known_user: bool,
    /// Packet source.
    pub source: Flow,
    /// Source classification.
    pub ingress: Ingress,
    /// User-Agent.
    pub user_agent: Option<String>,
    /// REGISTER Contact URIs (`*` for wildcard).
    pub contacts: Vec<String>,
    /// Requested expiry.
    pub expires: Option<u32>,
    /// Registration state of `aor`.
    pub registration: RegState,
    /// Current contact count.
    pub contact_count: u32,
    /// Arrival time (Unix ms).
    pub time_unix_ms: i64,
}

/// An authorization decision (mirrors the WIT `auth-decision`).
#[derive(Clone, Debug, PartialEq)]
pub enum AuthVerdict {
    /// Let it through, with registration limits.
    Accept {
        /// Clamp expiry.
        max_expires: Option<u32>,
        /// 423 below this.
        min_expires: Option<u32>,
        /// Keep at most this many contacts.
        max_contacts: Option<u32>,
    },
    /// 401/407 with challenges.
    Challenge {
        /// Realm (none = our domain).
        realm: Option<String>,
        /// Algorithms (empty = configured default).
        algorithms: Vec<DigestAlgorithm>,
    },
    /// Final response.
    Reject(u16, String),
    /// Silence.
    Drop,
}

impl AuthVerdict {
    /// The built-in policy used when no `authorize` plugin is bound:
    /// valid → accept, none/stale → challenge, invalid → 403.
    pub fn default_for(facts: &AuthFacts) -> AuthVerdict {
        match facts.credentials {
            Credentials::Valid => AuthVerdict::Accept {
                max_expires: None,
                min_expires: None,
                max_contacts: None,
            },
            Credentials::None | Credentials::Stale => AuthVerdict::Challenge {
                realm: None,
                algorithms: Vec::new(),
            },
            Credentials::Invalid => AuthVerdict::Reject(403, "Forbidden".into()),
        }
    }
}

/// Why an attempt failed (mirrors the WIT `cause`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    /// Exactly this status.
    Status(u16),
    /// Any status of this class (4, 5, 6).
    StatusClass(u8),
    /// Ring timeout / Timer B.
    NoAnswer,
    /// Could not be tried.
    Unavailable,
    /// At its call limit.
    LimitReached,
}

/// Where an attempt goes, resolved by the shell.
#[derive(Clone, Debug, PartialEq)]
pub enum Dest {
    /// A registered user (AOR or user name).
    User(String),
    /// A configured trunk by name.
    Trunk(String),
    /// A configured trunk group: a member is picked per attempt (and
    /// another one on a retryable failure).
    Group(String),
    /// An explicit SIP URI.
    Uri(String),
    /// Could not be resolved (unknown trunk/group, no member available).
    Unavailable(String),
}

/// One planned attempt, with egress rewrite applied.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedAttempt {
    /// Destination.
    pub dest: Dest,
    /// A number on this leg.
    pub a_number: String,
    /// B number on this leg.
    pub b_number: String,
    /// Display name on this leg.
    pub display_name: Option<String>,
    /// Headers to add.
    pub add_headers: Vec<(String, String)>,
    /// Header names not to copy.
    pub remove_headers: Vec<String>,
    /// Ring timeout for this attempt.
    pub ring_timeout: Option<Duration>,
    /// Media relay (true) or bypass; none = default.
    pub relay: Option<bool>,
    /// Codec allow list.
    pub codecs: Option<Vec<String>>,
    /// Trunk group the trunk was picked from (for CDRs).
    pub group: Option<String>,
}

/// The outcome of the call's decision pipeline (rewrite → portability →
/// route → egress rewrite), computed by the shell in the call's pinned
/// generation.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// A number after the ingress rewrite.
    pub a_number: String,
    /// B number after the ingress rewrite.
    pub b_number: String,
    /// Display name after the ingress rewrite.
    pub display_name: Option<String>,
    /// Routing number from the portability lookup, if any.
    pub routing_number: Option<String>,
    /// The decision.
    pub decision: PlanDecision,
    /// Policy generation the call is pinned to, and plugin versions (for CDRs).
    pub generation: String,
}

/// The routing decision.
#[derive(Clone, Debug, PartialEq)]
pub enum PlanDecision {
    /// Try these attempts in order.
    Forward {
        /// Attempts.
        attempts: Vec<PlannedAttempt>,
        /// Causes that move on.
        retry_on: Vec<Cause>,
        /// Report the last failure (true) or the first (false).
        prefer_last: bool,
    },
    /// Refuse.
    Reject(u16, String),
    /// 302 with these contacts.
    Redirect(Vec<String>),
}

/// Everything the decision pipeline needs about a new call (the WIT `call`
/// record before rewrite/portability).
#[derive(Clone, Debug)]
pub struct CallFacts {
    /// Host call id (CDR key), e.g. `c42`.
    pub call_id: String,
    /// Ingress.
    pub ingress: Ingress,
    /// Packet source.
    pub source: Flow,
    /// Request-URI as received.
    pub request_uri: String,
    /// A number before rewrite.
    pub a_number: String,
    /// B number before rewrite.
    pub b_number: String,
    /// Display name.
    pub display_name: Option<String>,
    /// From party (uri, user, host, display).
    pub from: Party,
    /// To party.
    pub to: Party,
    /// P-Asserted-Identity.
    pub pai: Option<Party>,
    /// Diversion entries, most recent first.
    pub diversion: Vec<Party>,
    /// Selected headers.
    pub headers: Vec<(String, String)>,
    /// Offered codecs.
    pub codecs: Vec<String>,
    /// Ingress trunk name (for the ingress rewrite's scope).
    pub trunk: Option<String>,
    /// Arrival (Unix ms).
    pub time_unix_ms: i64,
}

/// A party of the call.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Party {
    /// Full URI.
    pub uri: String,
    /// User part (decoded).
    pub user: String,
    /// Host part.
    pub host: String,
    /// Display name.
    pub display_name: Option<String>,
}

/// What the core asks the shell to do.
#[derive(Debug)]
pub enum Action {
    /// Send bytes.
    Send {
        /// Where.
        target: Target,
        /// What.
        data: Bytes,
    },
    /// Run the authorize hook (or the default) and answer with
    /// [`Event::AuthDecided`].
    Authorize {
        /// Correlation id.
        pending: u64,
        /// Facts.
        facts: AuthFacts,
    },
    /// Run rewrite → portability → route → egress rewrite for a new call
    /// in a generation pinned to `call`, answer with [`Event::CallPlanned`].
    PlanCall {
        /// Call.
        call: u64,
        /// Facts.
        facts: Box<CallFacts>,
    },
    /// The call is over: unpin its generation.
    CallEnded {
        /// Call.
        call: u64,
    },
    /// Persist a binding.
    SaveBinding {
        /// AOR.
        aor: String,
        /// Binding.
        binding: Binding,
    },
    /// Delete a binding.
    DeleteBinding {
        /// AOR.
        aor: String,
        /// Contact URI.
        contact: String,
    },
    /// Write a CDR (one per call, attempts inside).
    Cdr(Box<strowger_store::Cdr>),
}

/// Counters.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Messages received.
    pub rx: u64,
    /// Unparseable messages.
    pub malformed: u64,
    /// Retransmissions absorbed.
    pub retransmissions: u64,
    /// REGISTERs accepted.
    pub registers_ok: u64,
    /// Calls created.
    pub calls: u64,
    /// Calls answered.
    pub answered: u64,
    /// Calls currently in progress.
    pub active_calls: u64,
}

/// Timer payloads.
#[derive(Debug, Clone)]
pub(crate) enum TimerKind {
    /// Rotate the response cache.
    CacheRotate,
    /// Sweep expired registrations.
    Sweep,
    /// Per-call timers.
    Call(u64, crate::b2bua::CallTimer),
    /// Trunk timers (qualify, registration, snapshots, protection).
    Trunk(crate::trunks::TrunkTimer),
}

/// Bounds of the [`ResponseCache`] (`[sip] response_cache_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheLimits {
    /// Most entries held; the oldest is evicted beyond.
    pub max_entries: usize,
    /// Most bytes held (responses plus keys); the oldest is evicted beyond.
    pub max_bytes: usize,
    /// A response larger than this is not cached: a retransmission of its
    /// request is absorbed without an answer.
    pub max_entry_bytes: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            max_entries: 100_000,
            max_bytes: 64 * 1024 * 1024,
            max_entry_bytes: 16 * 1024,
        }
    }
}

/// Bookkeeping bytes charged per entry on top of its key and response.
const CACHE_ENTRY_OVERHEAD: usize = 128;

struct CacheEntry {
    seq: u64,
    size: usize,
    val: Option<(Target, Bytes)>,
}

/// Cached final responses of server transactions (retransmission
/// absorption). Entries expire by generation: the generation advances every
/// 64*T1, and an entry lives until two rotations passed (between 32 and
/// 64 s: Timer J / Timer H territory). The cache is bounded by entries and
/// by bytes: beyond either the oldest entries are evicted first (insertion
/// order kept in a queue; O(1) amortized per operation, never a scan).
#[derive(Default)]
pub(crate) struct ResponseCache {
    map: HashMap<Arc<TxKey>, CacheEntry>,
    /// Insertion order: (sequence, generation, key). An item whose sequence
    /// no longer matches the map's entry is stale (the key was re-put).
    order: std::collections::VecDeque<(u64, u64, Arc<TxKey>)>,
    next_seq: u64,
    generation: u64,
    bytes: usize,
    limits: CacheLimits,
    metrics: Arc<crate::guard::GuardMetrics>,
    /// Evictions and oversize responses since the last rotation (logged
    /// once per rotation).
    evicted_since_log: u64,
    oversize_since_log: u64,
}

/// Server transaction key: top Via branch, sent-by and CSeq method
/// (ACK and CANCEL map to INVITE's transaction separately).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TxKey {
    branch: Box<str>,
    method: Box<str>,
    call_id: Box<str>,
}

impl TxKey {
    pub(crate) fn of(req: &Message, method: &str) -> TxKey {
        TxKey {
            branch: req.top_via().branch().unwrap_or("").into(),
            method: method.into(),
            call_id: req.call_id().into(),
        }
    }
}

impl TxKey {
    fn heap_size(&self) -> usize {
        self.branch.len() + self.method.len() + self.call_id.len()
    }
}

impl ResponseCache {
    pub(crate) fn new(limits: CacheLimits, metrics: Arc<crate::guard::GuardMetrics>) -> Self {
        ResponseCache {
            limits,
            metrics,
            ..ResponseCache::default()
        }
    }

    fn get(&self, k: &TxKey) -> Option<&Option<(Target, Bytes)>> {
        self.map.get(k).map(|e| &e.val)
    }

    /// Entries held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Bytes held (responses, keys and bookkeeping).
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn put(&mut self, k: TxKey, mut v: Option<(Target, Bytes)>) {
        if v.as_ref()
            .is_some_and(|(_, d)| d.len() > self.limits.max_entry_bytes)
        {
            // too big to keep: absorb retransmissions without an answer
            v = None;
            self.metrics.cache_oversize.fetch_add(1, Relaxed);
            self.oversize_since_log += 1;
        }
        let size =
            CACHE_ENTRY_OVERHEAD + k.heap_size() + v.as_ref().map(|(_, d)| d.len()).unwrap_or(0);
        let k = Arc::new(k);
        self.next_seq += 1;
        let seq = self.next_seq;
        if let Some(old) = self.map.insert(k.clone(), CacheEntry { seq, size, val: v }) {
            self.bytes -= old.size;
        }
        self.bytes += size;
        self.order.push_back((seq, self.generation, k));
        while self.map.len() > self.limits.max_entries || self.bytes > self.limits.max_bytes {
            if !self.pop_oldest() {
                break;
            }
            self.metrics.cache_evictions.fetch_add(1, Relaxed);
            self.evicted_since_log += 1;
        }
        // stale queue items (re-put keys) are dropped when they reach the
        // front; compact if they ever outnumber the live ones (amortized
        // O(1): at least max_entries puts between two compactions)
        if self.order.len() > 2 * self.limits.max_entries.max(self.map.len()) + 16 {
            let map = &self.map;
            self.order
                .retain(|(seq, _, k)| map.get(k).is_some_and(|e| e.seq == *seq));
        }
        self.publish();
    }

    /// Removes the oldest live entry; false if empty.
    fn pop_oldest(&mut self) -> bool {
        while let Some((seq, _, k)) = self.order.pop_front() {
            if self.map.get(&k).is_some_and(|e| e.seq == seq) {
                let e = self.map.remove(&k).expect("checked");
                self.bytes -= e.size;
                return true;
            }
        }
        false
    }

    /// Advances the generation and drops the entries two generations old.
    /// Returns (evicted, oversize) counts since the previous rotation.
    fn rotate(&mut self) -> (u64, u64) {
        self.generation += 1;
        while let Some((_, g, _)) = self.order.front() {
            if g + 2 > self.generation {
                break;
            }
            let (seq, _, k) = self.order.pop_front().expect("front exists");
            if self.map.get(&k).is_some_and(|e| e.seq == seq) {
                let e = self.map.remove(&k).expect("checked");
                self.bytes -= e.size;
            }
        }
        self.publish();
        (
            std::mem::take(&mut self.evicted_since_log),
            std::mem::take(&mut self.oversize_since_log),
        )
    }

    fn publish(&self) {
        self.metrics
            .cache_entries
            .store(self.map.len() as u64, Relaxed);
        self.metrics.cache_bytes.store(self.bytes as u64, Relaxed);
    }
}

/// A REGISTER or initial request waiting for the authorize decision.
pub(crate) struct PendingAuth {
    pub(crate) req: Message,
    pub(crate) flow: Flow,
    pub(crate) facts: AuthFacts,
}

/// The switch core.
pub struct Core {
    pub(crate) cfg: CoreConfig,
    pub(crate) location: Arc<RwLock<Location>>,
    pub(crate) auth: DigestAuth,
    pub(crate) timers: Timers<TimerKind>,
    pub(crate) out: Vec<Action>,
    pub(crate) cache: ResponseCache,
    /// Limit counters (shared with the transports for `/metrics`).
    pub(crate) guard: Arc<crate::guard::GuardMetrics>,
    pub(crate) pending_auth: HashMap<u64, PendingAuth>,
    pub(crate) calls: HashMap<u64, CallState>,
    /// SIP Call-ID → call and leg.
    pub(crate) legs: HashMap<Box<str>, LegRef>,
    pub(crate) media: Box<dyn MediaHandler>,
    pub(crate) next_id: u64,
    /// Host call ids (ULIDs from the injected time and a seeded RNG).
    pub(crate) call_ids: crate::call_id::CallIds,
    pub(crate) stats: Stats,
    /// SIP counters for `/metrics`.
    pub(crate) sip: crate::metrics::SipCounters,
    pub(crate) started: bool,
    pub(crate) trunks: crate::trunks::Trunks,
    /// `cfg.users` by user name (the registrar looks users up per request;
    /// a linear scan over 10,000 users was 40 % of a REGISTER's CPU).
    pub(crate) user_index: HashMap<String, usize>,
}

impl Core {
    /// A core with the pass-through media handler and a fresh location
    /// service.
    pub fn new(cfg: CoreConfig) -> Core {
        Core::with_parts(
            cfg,
            Arc::new(RwLock::new(Location::new())),
            Box::new(PassThrough),
        )
    }

    /// A core sharing `location` (read by plugins through host services)
    /// and using `media` for SDP.
    pub fn with_parts(
        cfg: CoreConfig,
        location: Arc<RwLock<Location>>,
        media: Box<dyn MediaHandler>,
    ) -> Core {
        let auth = DigestAuth::new(cfg.nonce_ttl, cfg.allow_no_qop);
        let trunks = crate::trunks::Trunks::new(cfg.trunks.len(), cfg.t1, cfg.t2, cfg.t4);
        let user_index = index_users(&cfg.users);
        let guard = Arc::new(crate::guard::GuardMetrics::default());
        let cache = ResponseCache::new(cfg.response_cache, guard.clone());
        Core {
            call_ids: crate::call_id::CallIds::new(cfg.id_seed),
            user_index,
            trunks,
            cfg,
            location,
            auth,
            timers: Timers::default(),
            out: Vec::new(),
            cache,
            guard,
            pending_auth: HashMap::new(),
            calls: HashMap::new(),
            legs: HashMap::new(),
            media,
            next_id: 0,
            stats: Stats::default(),
            sip: crate::metrics::SipCounters::default(),
            started: false,
        }
    }

    /// Uses `metrics` for the limit counters (shared with the transports,
    /// exported on `/metrics`).
    pub fn use_guard_metrics(&mut self, metrics: Arc<crate::guard::GuardMetrics>) {
        self.cache.metrics = metrics.clone();
        self.guard = metrics;
    }

    /// The limit counters.
    pub fn guard_metrics(&self) -> &Arc<crate::guard::GuardMetrics> {
        &self.guard
    }

    /// Settings.
    pub fn config(&self) -> &CoreConfig {
        &self.cfg
    }

    /// The shared location service.
    pub fn location(&self) -> Arc<RwLock<Location>> {
        self.location.clone()
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Number of calls in progress.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// Actions produced so far (the shell drains them after every call
    /// into the core).
    pub fn drain_actions(&mut self) -> std::vec::Drain<'_, Action> {
        self.out.drain(..)
    }

    /// The earliest instant at which [`Core::poll_timers`] has work.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        match (self.timers.next_deadline(), self.trunks.uac.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(crate) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn ensure_started(&mut self, now: Now) {
        if !self.started {
            self.started = true;
            self.timers
                .schedule(now.mono + self.cfg.t1 * 64, TimerKind::CacheRotate);
            self.timers
                .schedule(now.mono + Duration::from_secs(10), TimerKind::Sweep);
            self.start_trunks(now);
        }
    }

    /// Runs every timer due at `now`.
    pub fn poll_timers(&mut self, now: Now) {
        self.ensure_started(now);
        while let Some((id, kind)) = self.timers.pop_expired(now.mono) {
            match kind {
                TimerKind::CacheRotate => {
                    let (evicted, oversize) = self.cache.rotate();
                    if evicted > 0 {
                        let l = self.cfg.response_cache;
                        tracing::warn!(
                            evicted,
                            max_entries = l.max_entries,
                            max_bytes = l.max_bytes,
                            "response cache full: oldest entries evicted early \
                             (sip.response_cache_max_entries / _max_bytes)"
                        );
                    }
                    if oversize > 0 {
                        tracing::warn!(
                            responses = oversize,
                            max_entry_bytes = self.cfg.response_cache.max_entry_bytes,
                            "responses too large to cache for retransmissions \
                             (sip.response_cache_max_entry_bytes)"
                        );
                    }
                    self.timers
                        .schedule(now.mono + self.cfg.t1 * 64, TimerKind::CacheRotate);
                }
                TimerKind::Sweep => {
                    let gone = self.location.write().sweep(now.mono);
                    for (aor, contact) in gone {
                        self.out.push(Action::DeleteBinding { aor, contact });
                    }
                    self.timers
                        .schedule(now.mono + Duration::from_secs(10), TimerKind::Sweep);
                }
                TimerKind::Call(call, t) => self.on_call_timer(now, id, call, t),
                TimerKind::Trunk(t) => self.on_trunk_timer(now, t),
            }
        }
        self.poll_uac(now);
    }

    /// Feeds one event.
    pub fn handle(&mut self, now: Now, ev: Event) {
        self.ensure_started(now);
        match ev {
            Event::Net(inb) => self.on_net(now, inb),
            Event::ConnClosed(_) => {}
            Event::AuthDecided { pending, verdict } => self.on_auth_decided(now, pending, verdict),
            Event::CallPlanned { call, plan } => self.on_call_planned(now, call, plan),
            Event::MediaTimeout { call, leg } => self.on_media_timeout(now, call, leg),
            Event::MediaDtmf {
                call,
                leg,
                from_caller,
                signal,
                duration_ms,
            } => self.on_media_dtmf(call, leg, from_caller, signal, duration_ms),
        }
    }

    pub(crate) fn send(&mut self, target: Target, data: Bytes) {
        self.sip.sent(&data);
        self.out.push(Action::Send { target, data });
    }

    /// Sends a response to `req` on `flow` and, if `cache`, remembers it for
    /// retransmissions of the request.
    pub(crate) fn respond(&mut self, req: &Message, flow: Flow, data: Bytes) {
        let method = req.cseq().method.as_str().to_string();
        if req.status().is_none() && !matches!(req.method(), Some(Method::Ack)) {
            let status = strowger_sip::parse(data.clone())
                .ok()
                .and_then(|m| m.status());
            if status.is_some_and(|s| s >= 200) {
                self.cache.put(
                    TxKey::of(req, &method),
                    Some((Target::Flow(flow), data.clone())),
                );
            }
            if let Some(code) = status.filter(|s| *s >= 200)
                && matches!(req.method(), Some(Method::Register))
            {
                self.register_result(req, flow, code);
            }
        }
        self.send(Target::Flow(flow), data);
    }

    /// Counts and logs the final response to a REGISTER: one line per
    /// result (a challenge at debug: it is a step, not a result).
    fn register_result(&mut self, req: &Message, flow: Flow, code: u16) {
        self.sip.register_result(code);
        let aor = req.to_str_raw();
        match code {
            200..=299 => tracing::info!(
                aor,
                source = %flow.remote,
                transport = %flow.transport,
                code,
                expires = req.expires(),
                "REGISTER accepted"
            ),
            401 | 407 => {
                tracing::debug!(aor, source = %flow.remote, code, "REGISTER challenged")
            }
            _ => tracing::info!(aor, source = %flow.remote, code, "REGISTER refused"),
        }
    }

    /// Builds and sends a simple response.
    pub(crate) fn reply(&mut self, req: &Message, flow: Flow, code: u16, reason: Option<&str>) {
        let tag = strowger_sip::ids::tag();
        let b = match reason {
            Some(r) => ResponseBuilder::with_reason(req, code, r),
            None => ResponseBuilder::new(req, code),
        };
        let data = b
            .to_tag(&tag)
            .header("Server", &self.cfg.user_agent)
            .build();
        self.respond(req, flow, data);
    }

    fn on_net(&mut self, now: Now, inb: Inbound) {
        self.stats.rx += 1;
        let opts = ParseOptions {
            max_size: self.cfg.max_message_size,
            stream: inb.flow.transport.is_stream(),
        };
        let msg = match strowger_sip::parse_with(inb.data, &opts) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed += 1;
                tracing::debug!(src = %inb.flow.remote, error = %e, "malformed SIP message");
                // a banned or flooding source gets silence here too
                if self.protection_drops(now, inb.flow.remote, None) {
                    return;
                }
                if let Some(resp) = e.bad_request_response(Some(&strowger_sip::ids::tag())) {
                    self.send(Target::Flow(inb.flow), resp);
                }
                return;
            }
        };
        self.sip
            .received(msg.method().map(|m| m.as_str()), msg.status());
        if msg.is_response() {
            if matches!(msg.cseq().method, Method::Options | Method::Register)
                && self.uac_response(now, &msg, inb.flow.remote, inb.flow.transport)
            {
                return;
            }
            self.on_response(now, msg, inb.flow);
            return;
        }
        if self.protection_drops(now, inb.flow.remote, msg.user_agent()) {
            return;
        }
        let msg = match fix_via(&msg, inb.flow.remote) {
            Some(fixed) => match strowger_sip::parse_with(fixed, &opts) {
                Ok(m) => m,
                Err(_) => msg,
            },
            None => msg,
        };
        let method = msg.method().cloned().unwrap_or(Method::Other("".into()));
        // retransmission of a request whose transaction we know
        if method != Method::Ack {
            let key = TxKey::of(&msg, method.as_str());
            if let Some(entry) = self.cache.get(&key) {
                self.stats.retransmissions += 1;
                if let Some((target, data)) = entry.clone() {
                    self.send(target, data);
                }
                return;
            }
        }
        if method != Method::Ack {
            self.sip.server_transactions += 1;
        }
        // RFC 3261 §8.2.2.1: a Request-URI scheme we do not understand gets
        // 416 (an ACK gets no response).
        if method != Method::Ack
            && msg
                .request_uri()
                .is_some_and(|u| matches!(u.scheme, Scheme::Other(_)))
        {
            self.reply(&msg, inb.flow, 416, None);
            return;
        }
        match method {
            Method::Ack => self.on_ack(now, msg, inb.flow),
            Method::Cancel => self.on_cancel(now, msg, inb.flow),
            _ if msg.to_tag().is_some() => self.on_in_dialog(now, msg, inb.flow),
            Method::Register => self.on_register(now, msg, inb.flow),
            Method::Invite => self.on_invite(now, msg, inb.flow),
            Method::Options => {
                let tag = strowger_sip::ids::tag();
                let data = ResponseBuilder::new(&msg, 200)
                    .to_tag(&tag)
                    .header("Allow", ALLOW)
                    .header("Accept", "application/sdp")
                    .header("Server", &self.cfg.user_agent)
                    .build();
                self.respond(&msg, inb.flow, data);
            }
            _ => {
                let tag = strowger_sip::ids::tag();
                let data = ResponseBuilder::new(&msg, 405)
                    .to_tag(&tag)
                    .header("Allow", ALLOW)
                    .header("Server", &self.cfg.user_agent)
                    .build();
                self.respond(&msg, inb.flow, data);
            }
        }
    }

    /// Our advertised address for a transport towards a destination family.
    pub(crate) fn local_for(&self, transport: Transport, v6: bool) -> SocketAddr {
        self.cfg
            .listeners
            .iter()
            .find(|(t, a)| *t == transport && a.is_ipv6() == v6)
            .or_else(|| self.cfg.listeners.iter().find(|(t, _)| *t == transport))
            .or_else(|| self.cfg.listeners.first())
            .map(|(_, a)| *a)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5060)))
    }

    /// True if `host:port` is one of our listeners (loop detection).
    pub(crate) fn is_local(&self, host: &str, port: Option<u16>) -> bool {
        let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        else {
            return false;
        };
        self.cfg
            .listeners
            .iter()
            .any(|(t, a)| a.ip() == ip && a.port() == port.unwrap_or_else(|| t.default_port()))
    }

    /// Finds a trusted trunk by packet source: an IP trunk's address, or
    /// the registered flow of a dynamic trunk.
    pub(crate) fn trunk_by_source(&self, now: Now, src: SocketAddr) -> Option<&TrunkInfo> {
        self.trunk_index_by_source(now, src)
            .map(|i| &self.cfg.trunks[i])
    }

    /// Index of the trusted trunk `src` belongs to.
    pub(crate) fn trunk_index_by_source(&self, now: Now, src: SocketAddr) -> Option<usize> {
        if let Some(i) = self.cfg.trunks.iter().position(|t| {
            t.inbound == TrunkInbound::Ip
                && t.addr
                    .iter()
                    .chain(t.proxies.iter())
                    .any(|a| a.ip() == src.ip() && (t.ignore_source_port || a.port() == src.port()))
        }) {
            return Some(i);
        }
        if self
            .cfg
            .trunks
            .iter()
            .any(|t| t.inbound == TrunkInbound::Register)
        {
            let loc = self.location.read();
            let now = now.mono;
            return self.cfg.trunks.iter().position(|t| {
                t.inbound == TrunkInbound::Register
                    && loc
                        .lookup(&t.aor(&self.cfg.domain), now)
                        .iter()
                        .any(|b| b.flow.remote == src)
            });
        }
        None
    }

    /// The trunk whose credentials `user` are (digest and dynamic trunks).
    pub(crate) fn trunk_for_user(&self, user: &str) -> Option<usize> {
        self.cfg.trunks.iter().position(|t| {
            matches!(t.inbound, TrunkInbound::Digest | TrunkInbound::Register) && t.user == user
        })
    }

    /// Finds a configured user by name (and domain when it is ours or the
    /// user's own).
    pub(crate) fn user(&self, user: &str) -> Option<&UserCred> {
        self.user_index.get(user).map(|&i| &self.cfg.users[i])
    }

    /// Replaces the configured users (admin API).
    pub(crate) fn set_users(&mut self, users: Vec<UserCred>) {
        self.cfg.users = users;
        self.user_index = index_users(&self.cfg.users);
    }
}

/// User name → index (the first entry wins, as the linear lookup did).
fn index_users(users: &[UserCred]) -> HashMap<String, usize> {
    let mut m = HashMap::with_capacity(users.len());
    for (i, u) in users.iter().enumerate() {
        m.entry(u.user.clone()).or_insert(i);
    }
    m
}

/// Methods we accept.
pub const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, UPDATE, INFO, NOTIFY, REFER, MESSAGE";

/// Adds `received` / fills `rport` in the top Via (RFC 3261 §18.2.1,
/// RFC 3581). Returns the rewritten message, or none when nothing changes.
fn fix_via(msg: &Message, src: SocketAddr) -> Option<Bytes> {
    let top = msg.top_via();
    let wants_rport = matches!(top.rport(), Some(None));
    let host_ip = top.host_unbracketed().parse::<IpAddr>().ok();
    let needs_received = host_ip != Some(src.ip());
    if !wants_rport && !needs_received {
        return None;
    }
    let new = rewrite_top_via(&top, src, wants_rport);
    Some(
        strowger_sip::MessageEditor::new(msg)
            .pop_via()
            .prepend_via(&new)
            .build(),
    )
}

fn rewrite_top_via(v: &Via<'_>, src: SocketAddr, rport: bool) -> String {
    let mut s = format!("SIP/2.0/{} {}", v.transport, v.host);
    if let Some(p) = v.port {
        s.push(':');
        s.push_str(&p.to_string());
    }
    for (k, val) in v.params.iter() {
        if k.eq_ignore_ascii_case("received") || k.eq_ignore_ascii_case("rport") {
            continue;
        }
        s.push(';');
        s.push_str(k);
        if let Some(val) = val {
            s.push('=');
            s.push_str(val);
        }
    }
    s.push_str(";received=");
    s.push_str(&src.ip().to_string());
    if rport {
        s.push_str(";rport=");
        s.push_str(&src.port().to_string());
    }
    s
}
