//! The relay: configuration, sessions (one per call), offer/answer handling
//! and the media-timeout monitor. See the crate README for the API walk-through.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::codec::{self, CodecPolicy, NoCodec};
use crate::net::{IpNet, check_media_addr};
use crate::pool::PortPool;
use crate::sdp::{Direction, Sdp, SdpError};
use crate::stream::{LatchPolicy, Latching, Leg, LegStats, Stream, StreamState};
use crate::worker::{self, Cmd, WorkerHandle};

/// Relay configuration.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MediaConfig {
    /// Address the RTP sockets bind to.
    pub bind_ip: IpAddr,
    /// Address written into SDP (`c=`/`o=`); default `bind_ip`. Set it when
    /// the switch is behind 1:1 NAT or binds a wildcard address.
    pub advertise_ip: Option<IpAddr>,
    /// Lowest port of the RTP range (inclusive).
    pub port_min: u16,
    /// Highest port of the RTP range (inclusive).
    pub port_max: u16,
    /// Media timeout: no RTP from either leg for this long on an answered,
    /// non-held session raises [`MediaEvent::Timeout`]. `None` = off.
    pub timeout: Option<Duration>,
    /// After latching, accept a new (acceptable, see `latching`) source
    /// only after the latched one has been silent this long (`None` =
    /// never).
    pub relatch_after: Option<Duration>,
    /// Which sources may be latched: [`Latching::Learn`] (default: the SDP
    /// address's IP or the IP the leg's SIP came from) or
    /// [`Latching::Strict`] (the SDP address's IP only).
    #[serde(default)]
    pub latching: Latching,
    /// After the first latch, a better source (exact SDP address > SDP IP >
    /// SIP peer IP) may replace the latched one for this long.
    #[serde(default = "default_learn_window")]
    pub learn_window: Duration,
    /// Networks media may be sent to (SDP `c=` / `a=rtcp` addresses);
    /// empty = every unicast address. Multicast, broadcast and reserved
    /// addresses are always refused (488), loopback unless the relay binds
    /// loopback or a listed network holds it.
    #[serde(default)]
    pub allowed_networks: Vec<IpNet>,
    /// Worker threads of the fast path (0 = one per CPU).
    pub workers: usize,
    /// SO_RCVBUF/SO_SNDBUF per socket in bytes (0 = system default).
    pub socket_buffer: usize,
    /// Wake-up coalescing: after handling a wake-up a worker waits this long
    /// before polling again, so each wake-up handles more packets (fewer
    /// context switches) at the price of up to this much added latency.
    /// Zero (default) = forward immediately.
    #[serde(default)]
    pub coalesce: Duration,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            bind_ip: IpAddr::from([127, 0, 0, 1]),
            advertise_ip: None,
            port_min: 30000,
            port_max: 39999,
            timeout: Some(Duration::from_secs(60)),
            relatch_after: Some(Duration::from_secs(5)),
            latching: Latching::Learn,
            learn_window: default_learn_window(),
            allowed_networks: Vec::new(),
            workers: 0,
            socket_buffer: 0,
            coalesce: Duration::ZERO,
        }
    }
}

fn default_learn_window() -> Duration {
    Duration::from_secs(3)
}

/// Errors of the media layer. [`MediaError::sip_status`] gives the SIP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// The SDP could not be parsed (→ 488).
    #[error(transparent)]
    BadSdp(#[from] SdpError),
    /// No audio codec left after the codec policy (→ 488).
    #[error("no acceptable audio codec")]
    NoCodec,
    /// An SDP connection (or `a=rtcp`) address the relay must not send to:
    /// multicast, broadcast, reserved, outside the allowed networks, or
    /// unspecified (`0.0.0.0`) outside hold (→ 488).
    #[error("media address {addr} refused: {why}")]
    AddressRefused {
        /// The address from the SDP.
        addr: IpAddr,
        /// Why (`multicast`, `broadcast`, `unspecified`, ...).
        why: &'static str,
    },
    /// The answer does not fit the pending offer (→ 488).
    #[error("answer does not match the offer: {0}")]
    Mismatch(String),
    /// No answer expected now (no offer from the other leg).
    #[error("no offer from the other leg to answer")]
    NoOffer,
    /// The port range is exhausted (→ 503).
    #[error("RTP port range exhausted")]
    NoPorts,
    /// The session was closed.
    #[error("media session closed")]
    Closed,
    /// Socket or thread setup failed.
    #[error("media I/O error: {0}")]
    Io(String),
}

impl From<NoCodec> for MediaError {
    fn from(_: NoCodec) -> Self {
        MediaError::NoCodec
    }
}

impl MediaError {
    /// The SIP status code the switch should answer with.
    pub fn sip_status(&self) -> u16 {
        match self {
            MediaError::BadSdp(_)
            | MediaError::NoCodec
            | MediaError::Mismatch(_)
            | MediaError::AddressRefused { .. } => 488,
            MediaError::NoOffer => 491,
            MediaError::NoPorts | MediaError::Io(_) => 503,
            MediaError::Closed => 481,
        }
    }
}

/// Events for the switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// No media for the configured timeout on an answered, non-held
    /// session: the switch should BYE both legs.
    Timeout {
        /// The session's call id (as given to `create_session`).
        call_id: String,
        /// How long the session has been silent.
        idle: Duration,
    },
    /// A DTMF digit taken out of a leg's RTP (RFC 4733 telephone-event,
    /// reported once per event when it ends) on a session whose
    /// [`SessionOptions::dtmf_events`] asks for it; those packets are not
    /// forwarded. The switch sends it on the other leg as SIP INFO.
    Dtmf {
        /// The session's call id.
        call_id: String,
        /// Leg whose RTP carried it.
        from: Leg,
        /// RFC 4733 event code (0-9, 10 = `*`, 11 = `#`, 12-15 = A-D, 16 = flash).
        event: u8,
        /// Duration in milliseconds.
        duration_ms: u32,
    },
}

pub use strowger_types::{dtmf_event, dtmf_signal};

/// Per-session options.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// Do not anchor media: SDP is only codec-filtered, no ports are
    /// allocated, no timeout (direct media / `canreinvite=yes`).
    pub bypass: bool,
    /// Strict source ("strict RTP"): accept media only from the IP address
    /// each leg signalled in SDP (any port), whatever
    /// [`MediaConfig::latching`] says. For trunks with fixed media
    /// addresses; breaks phones behind NAT. Default off.
    pub strict_source: bool,
    /// Per leg [A, B]: the IP address that leg's SIP signalling comes from.
    /// In [`Latching::Learn`] mode media from it may be latched (a phone
    /// behind NAT); `None` = only the SDP address's IP.
    pub peers: [Option<IpAddr>; 2],
    /// Per leg [A, B]: take RFC 4733 telephone-event packets out of that
    /// leg's RTP and report them as [`MediaEvent::Dtmf`] instead of
    /// forwarding them (the other leg wants SIP INFO). Anchored sessions only.
    pub dtmf_events: [bool; 2],
    /// Per leg [A, B]: offers towards that leg lose `telephone-event`
    /// (the leg does DTMF in-band).
    pub no_telephone_event: [bool; 2],
}

/// Counters of one stream (one `m=` line).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StreamStats {
    /// Index of the `m=` line.
    pub index: usize,
    /// Per leg: [A, B].
    pub legs: [LegStats; 2],
}

/// Counters of a session, for CDRs and the API.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SessionStats {
    /// The session's call id.
    pub call_id: String,
    /// Media anchored (false = bypass).
    pub anchored: bool,
    /// On hold (a leg signalled sendonly/recvonly/inactive or 0.0.0.0).
    pub held: bool,
    /// Relayed streams.
    pub streams: Vec<StreamStats>,
}

/// Relay-wide counters.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RelayStats {
    /// Open sessions.
    pub sessions: usize,
    /// Free RTP port pairs.
    pub ports_free: usize,
    /// Port pairs in the range.
    pub ports_total: usize,
    /// Datagrams received by the fast path.
    pub received: u64,
    /// Datagrams forwarded.
    pub forwarded: u64,
    /// Datagrams dropped (foreign source, unknown destination, truncated).
    pub dropped: u64,
    /// Datagrams the kernel refused to send.
    pub send_errors: u64,
    /// Worker wake-ups (epoll returns).
    pub wakeups: u64,
    /// SDP bodies refused for a media address (multicast, broadcast,
    /// unspecified outside hold, outside `allowed_networks`).
    pub addresses_refused: u64,
    /// Streams (RTP port pairs) of open sessions.
    pub streams: usize,
    /// RTP packets received on streams that have ended (both legs).
    pub ended_rtp_packets: u64,
    /// RTP packets lost (RFC 3550 A.3, never negative) on streams that
    /// have ended (both legs).
    pub ended_rtp_lost: u64,
}

pub(crate) struct Shared {
    cfg: MediaConfig,
    advertise: IpAddr,
    pool: Arc<PortPool>,
    workers: Vec<Arc<WorkerHandle>>,
    next_worker: AtomicUsize,
    epoch: Instant,
    epoch_unix_ms: u64,
    sessions: Mutex<HashMap<String, Weak<SessionInner>>>,
    events: mpsc::UnboundedSender<MediaEvent>,
    stop: AtomicBool,
    latch: LatchPolicy,
    relay_on_loopback: bool,
    addresses_refused: AtomicU64,
    /// RTP received / lost on ended streams (counted when a session closes).
    ended_rtp_packets: AtomicU64,
    ended_rtp_lost: AtomicU64,
}

/// The media relay: owns the port pool, the worker threads and the
/// timeout monitor. Dropping it (or [`MediaRelay::shutdown`]) stops them.
pub struct MediaRelay {
    shared: Arc<Shared>,
    events: Mutex<Option<mpsc::UnboundedReceiver<MediaEvent>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl MediaRelay {
    /// Start the workers and the timeout monitor.
    pub fn start(cfg: MediaConfig) -> Result<MediaRelay, MediaError> {
        if cfg.port_min == 0 || cfg.port_max <= cfg.port_min {
            return Err(MediaError::Io(format!(
                "bad RTP port range {}-{}",
                cfg.port_min, cfg.port_max
            )));
        }
        let advertise = cfg.advertise_ip.unwrap_or(cfg.bind_ip);
        if advertise.is_unspecified() {
            return Err(MediaError::Io(
                "advertise_ip is required when bind_ip is a wildcard".into(),
            ));
        }
        let n = if cfg.workers == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            cfg.workers
        };
        let pool = Arc::new(PortPool::new(
            cfg.bind_ip,
            cfg.port_min,
            cfg.port_max,
            cfg.socket_buffer,
        ));
        let mut workers = Vec::new();
        for _ in 0..n {
            workers.push(WorkerHandle::new().map_err(|e| MediaError::Io(e.to_string()))?);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let latch = LatchPolicy {
            mode: cfg.latching,
            learn_window: cfg.learn_window,
            relatch_after: cfg.relatch_after,
        };
        let relay_on_loopback = cfg.bind_ip.is_loopback() || advertise.is_loopback();
        let shared = Arc::new(Shared {
            latch,
            relay_on_loopback,
            addresses_refused: AtomicU64::new(0),
            ended_rtp_packets: AtomicU64::new(0),
            ended_rtp_lost: AtomicU64::new(0),
            cfg,
            advertise,
            pool,
            workers,
            next_worker: AtomicUsize::new(0),
            epoch: Instant::now(),
            epoch_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            sessions: Mutex::new(HashMap::new()),
            events: tx,
            stop: AtomicBool::new(false),
        });
        let mut threads = Vec::new();
        for (i, w) in shared.workers.iter().enumerate() {
            let w = w.clone();
            let epoch = shared.epoch;
            let coalesce = shared.cfg.coalesce;
            let t = std::thread::Builder::new()
                .name(format!("media-{i}"))
                .spawn(move || worker::run(w, epoch, coalesce))
                .map_err(|e| MediaError::Io(e.to_string()))?;
            threads.push(t);
        }
        let weak = Arc::downgrade(&shared);
        let t = std::thread::Builder::new()
            .name("media-timeout".into())
            .spawn(move || monitor(weak))
            .map_err(|e| MediaError::Io(e.to_string()))?;
        threads.push(t);
        Ok(MediaRelay {
            shared,
            events: Mutex::new(Some(rx)),
            threads: Mutex::new(threads),
        })
    }

    /// The receiving end of the event channel (once; `None` afterwards).
    pub fn take_events(&self) -> Option<mpsc::UnboundedReceiver<MediaEvent>> {
        self.events.lock().take()
    }

    /// The address written into SDP.
    pub fn advertise_ip(&self) -> IpAddr {
        self.shared.advertise
    }

    /// Create the media session of a call. Creating a session with the id of
    /// an open one returns a new, independent session (the switch keys by
    /// its own call ids); [`MediaRelay::session`] finds the newest.
    pub fn create_session(&self, call_id: &str, opts: SessionOptions) -> Session {
        let inner = Arc::new(SessionInner {
            call_id: call_id.to_string(),
            shared: self.shared.clone(),
            bypass: opts.bypass,
            strict: opts.strict_source,
            dtmf_events: opts.dtmf_events,
            no_te: opts.no_telephone_event,
            state: Mutex::new(SessionState {
                peers: opts.peers,
                ..SessionState::default()
            }),
        });
        self.shared
            .sessions
            .lock()
            .insert(call_id.to_string(), Arc::downgrade(&inner));
        Session { inner }
    }

    /// Look up an open session by call id.
    pub fn session(&self, call_id: &str) -> Option<Session> {
        let found = self.shared.sessions.lock().get(call_id).cloned();
        found
            .and_then(|w| w.upgrade())
            .filter(|s| !s.state.lock().closed)
            .map(|inner| Session { inner })
    }

    /// Relay-wide counters.
    pub fn stats(&self) -> RelayStats {
        let mut s = RelayStats {
            sessions: self.shared.sessions.lock().len(),
            ports_free: self.shared.pool.available(),
            ports_total: self.shared.pool.capacity(),
            addresses_refused: self.shared.addresses_refused.load(Ordering::Relaxed),
            ended_rtp_packets: self.shared.ended_rtp_packets.load(Ordering::Relaxed),
            ended_rtp_lost: self.shared.ended_rtp_lost.load(Ordering::Relaxed),
            ..Default::default()
        };
        // the session list is copied first: a closing session takes its
        // own lock before the list's
        let open: Vec<_> = self.shared.sessions.lock().values().cloned().collect();
        s.streams = open
            .iter()
            .filter_map(|w| w.upgrade())
            .map(|inner| inner.state.lock().streams.iter().flatten().count())
            .sum();
        for w in &self.shared.workers {
            let c = &w.counters;
            s.received += c.received.load(Ordering::Relaxed);
            s.forwarded += c.forwarded.load(Ordering::Relaxed);
            s.dropped += c.dropped.load(Ordering::Relaxed);
            s.send_errors += c.send_errors.load(Ordering::Relaxed);
            s.wakeups += c.wakeups.load(Ordering::Relaxed);
        }
        s
    }

    /// Stop the workers and the monitor and wait for them.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::Release);
        for w in &self.shared.workers {
            w.stop();
        }
        for t in self.threads.lock().drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for MediaRelay {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn monitor(shared: Weak<Shared>) {
    loop {
        let Some(sh) = shared.upgrade() else { return };
        if sh.stop.load(Ordering::Acquire) {
            return;
        }
        let tick = sh
            .cfg
            .timeout
            .map(|t| (t / 10).clamp(Duration::from_millis(20), Duration::from_millis(500)))
            .unwrap_or(Duration::from_millis(500));
        let now = sh.epoch.elapsed();
        let sessions: Vec<Arc<SessionInner>> = {
            let mut map = sh.sessions.lock();
            map.retain(|_, w| w.strong_count() > 0);
            map.values().filter_map(|w| w.upgrade()).collect()
        };
        if let Some(timeout) = sh.cfg.timeout {
            for s in sessions {
                if let Some(idle) = s.check_timeout(now, timeout) {
                    tracing::info!(call_id = %s.call_id, ?idle, "media timeout");
                    let _ = sh.events.send(MediaEvent::Timeout {
                        call_id: s.call_id.clone(),
                        idle,
                    });
                }
            }
        }
        drop(sh);
        std::thread::sleep(tick);
    }
}

struct Pending {
    from: Leg,
    /// rtcp-mux offered, per m= line.
    mux: Vec<bool>,
    offered: Vec<Vec<String>>,
    policy: CodecPolicy,
}

#[derive(Default)]
struct SessionState {
    streams: Vec<Option<Arc<Stream>>>,
    pending: Option<Pending>,
    closed: bool,
    /// Set when an answer is applied: the media timeout runs from here.
    armed_at: Option<Duration>,
    timed_out: bool,
    /// Per leg: the IP its SIP signalling comes from.
    peers: [Option<IpAddr>; 2],
}

pub(crate) struct SessionInner {
    call_id: String,
    shared: Arc<Shared>,
    bypass: bool,
    strict: bool,
    dtmf_events: [bool; 2],
    no_te: [bool; 2],
    state: Mutex<SessionState>,
}

/// Handle of one call's media session (cheap to clone). Closed by
/// [`Session::close`] or when the last handle is dropped.
#[derive(Clone)]
pub struct Session {
    inner: Arc<SessionInner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("call_id", &self.inner.call_id)
            .finish()
    }
}

/// What one leg's SDP says about one media section.
struct Remote {
    rtp: Option<SocketAddr>,
    rtcp: Option<SocketAddr>,
    mux: bool,
    held: bool,
    disabled: bool,
    clocks: Vec<(u8, u32)>,
    te_pt: Option<u8>,
}

fn remote_of(sdp: &Sdp, i: usize) -> Remote {
    let m = &sdp.media()[i];
    let port = m.port();
    let addr = sdp.connection(i).map(|c| c.addr);
    let usable = addr.filter(|a| !a.is_unspecified() && port != 0);
    let rtp = usable.map(|a| SocketAddr::new(a, port));
    let rtcp = usable.map(|a| match m.rtcp() {
        Some((p, ad)) => SocketAddr::new(ad.unwrap_or(a), p),
        None => SocketAddr::new(a, port.wrapping_add(1)),
    });
    Remote {
        rtp,
        rtcp,
        mux: m.rtcp_mux(),
        held: sdp.direction(i) != Direction::SendRecv || addr.is_some_and(|a| a.is_unspecified()),
        disabled: port == 0,
        clocks: m
            .rtpmaps()
            .iter()
            .map(|r| (r.pt & 0x7f, r.clock_rate))
            .collect(),
        te_pt: m
            .rtpmaps()
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case("telephone-event"))
            .map(|r| r.pt & 0x7f),
    }
}

fn apply_remote(st: &mut StreamState, leg: Leg, r: &Remote) {
    let l = &mut st.legs[leg.idx()];
    if l.ep[0].sdp != r.rtp {
        // New media address (transfer, re-INVITE to another device): latch afresh.
        l.ep[0].latched = None;
        l.ep[1].latched = None;
    }
    l.ep[0].sdp = r.rtp;
    l.ep[1].sdp = r.rtcp;
    l.mux = r.mux;
    l.held = r.held;
    l.disabled = r.disabled;
    for &(pt, c) in &r.clocks {
        l.clock[pt as usize] = c;
    }
    if r.te_pt.is_some() {
        l.te_pt = r.te_pt;
    }
}

impl Session {
    /// The call id given at creation.
    pub fn call_id(&self) -> &str {
        &self.inner.call_id
    }

    /// Handle an offer (INVITE or re-INVITE SDP) from leg `from`; returns
    /// the SDP to send to the other leg: codec-filtered by `policy`, with
    /// the relay's address and ports. The initial offer comes from
    /// [`Leg::A`]; a re-INVITE may come from either leg. Nothing changes
    /// when it fails.
    pub fn offer(&self, from: Leg, sdp: &str, policy: &CodecPolicy) -> Result<String, MediaError> {
        let mut s = Sdp::parse(sdp)?;
        let stripped;
        let policy = if self.inner.no_te[from.other().idx()] {
            stripped = policy.without_dtmf();
            &stripped
        } else {
            policy
        };
        let offered = codec::filter_offer(&mut s, policy)?;
        let sh = &self.inner.shared;
        let mut st = self.inner.state.lock();
        if st.closed {
            return Err(MediaError::Closed);
        }
        let mux: Vec<bool> = s.media().iter().map(|m| m.rtcp_mux()).collect();
        if self.inner.bypass {
            st.pending = Some(Pending {
                from,
                mux,
                offered,
                policy: policy.clone(),
            });
            return Ok(s.to_text());
        }
        self.inner.check_addresses(&st, from, &s)?;
        // Allocate what is missing first, so a failure changes nothing.
        let n = s.media().len();
        let mut fresh: Vec<Option<Arc<Stream>>> = Vec::with_capacity(n);
        for (i, m) in s.media().iter().enumerate() {
            let exists = st.streams.get(i).is_some_and(|x| x.is_some());
            if m.port() == 0 || exists {
                fresh.push(None);
                continue;
            }
            let a = sh.pool.allocate().ok_or(MediaError::NoPorts)?;
            let b = match sh.pool.allocate() {
                Some(b) => b,
                None => {
                    let port = a.0;
                    drop(a);
                    sh.pool.release(port);
                    return Err(MediaError::NoPorts);
                }
            };
            let w = sh.next_worker.fetch_add(1, Ordering::Relaxed) % sh.workers.len();
            let mut state = StreamState::new(m.is_rtp(), sh.latch, self.inner.strict);
            for (l, peer) in st.peers.iter().enumerate() {
                state.legs[l].ep[0].peer = *peer;
                state.legs[l].ep[1].peer = *peer;
            }
            for (l, on) in self.inner.dtmf_events.iter().enumerate() {
                state.legs[l].dtmf_report = *on;
            }
            let sink = self
                .inner
                .dtmf_events
                .contains(&true)
                .then(|| (self.inner.call_id.clone(), sh.events.clone()));
            let (a, b) = if from == Leg::A { (a, b) } else { (b, a) };
            fresh.push(Some(Arc::new(Stream::new(
                sh.pool.clone(),
                a,
                b,
                state,
                w,
                sink,
            ))));
        }
        // Apply.
        if st.streams.len() < n {
            st.streams.resize(n, None);
        }
        for (i, f) in fresh.into_iter().enumerate() {
            if let Some(stream) = f {
                sh.workers[stream.worker].send(Cmd::Add(stream.clone()));
                st.streams[i] = Some(stream);
            }
        }
        let to = from.other();
        for i in 0..n {
            let r = remote_of(&s, i);
            if let Some(stream) = &st.streams[i] {
                apply_remote(&mut stream.state.lock(), from, &r);
                let m = &mut s.media_mut()[i];
                if m.port() != 0 {
                    let port = stream.ports[to.idx()];
                    m.set_port(port);
                    m.set_rtcp(port + 1, sh.advertise);
                }
            }
        }
        s.set_address(sh.advertise);
        s.strip_ice();
        st.pending = Some(Pending {
            from,
            mux,
            offered,
            policy: policy.clone(),
        });
        Ok(s.to_text())
    }

    /// Handle the answer (183/200 OK or ACK SDP) from leg `from` to the last
    /// offer of the other leg; returns the SDP for the offering leg. An
    /// offer may be answered more than once (early media in a 183, then the
    /// 200 OK; forked answers): each answer updates the answering leg.
    pub fn answer(&self, from: Leg, sdp: &str) -> Result<String, MediaError> {
        let mut s = Sdp::parse(sdp)?;
        let sh = &self.inner.shared;
        let mut st = self.inner.state.lock();
        if st.closed {
            return Err(MediaError::Closed);
        }
        let Some(p) = st.pending.as_ref() else {
            return Err(MediaError::NoOffer);
        };
        if p.from == from {
            return Err(MediaError::NoOffer);
        }
        if s.media().len() != p.offered.len() {
            return Err(MediaError::Mismatch(format!(
                "{} m= lines in the answer, {} in the offer",
                s.media().len(),
                p.offered.len()
            )));
        }
        codec::filter_answer(&mut s, &p.offered, &p.policy)?;
        let offerer = p.from;
        let offered_mux = p.mux.clone();
        if !self.inner.bypass {
            self.inner.check_addresses(&st, from, &s)?;
            for i in 0..s.media().len() {
                let r = remote_of(&s, i);
                let Some(stream) = st.streams.get(i).cloned().flatten() else {
                    // Offer had port 0 here: keep it rejected.
                    s.media_mut()[i].set_port(0);
                    continue;
                };
                {
                    let mut ss = stream.state.lock();
                    apply_remote(&mut ss, from, &r);
                    // RTCP mux is in effect only if both sides agreed.
                    let both = offered_mux.get(i).copied().unwrap_or(false) && r.mux;
                    ss.legs[offerer.idx()].mux = both;
                    ss.legs[from.idx()].mux = both;
                    if r.disabled {
                        ss.legs[offerer.idx()].disabled = true;
                    }
                }
                let m = &mut s.media_mut()[i];
                if m.port() != 0 {
                    let port = stream.ports[offerer.idx()];
                    m.set_port(port);
                    m.set_rtcp(port + 1, sh.advertise);
                }
            }
            s.set_address(sh.advertise);
            s.strip_ice();
        }
        st.armed_at = Some(sh.epoch.elapsed());
        st.timed_out = false;
        Ok(s.to_text())
    }

    /// Counters of every stream.
    pub fn stats(&self) -> SessionStats {
        let st = self.inner.state.lock();
        let mut streams = Vec::new();
        let mut held = false;
        for (i, s) in st.streams.iter().enumerate() {
            if let Some(s) = s {
                let ss = s.state.lock();
                held |= ss.legs.iter().any(|l| l.held);
                let now_ms = self.inner.shared.epoch.elapsed().as_millis() as u64;
                let mut legs = [ss.leg_stats(0, s.ports[0]), ss.leg_stats(1, s.ports[1])];
                for l in &mut legs {
                    if let Some(t) = l.rtp.last_packet_ms {
                        l.last_packet_unix_ms = Some(self.inner.shared.epoch_unix_ms + t);
                        l.idle_ms = Some(now_ms.saturating_sub(t));
                    }
                }
                streams.push(StreamStats { index: i, legs });
            }
        }
        SessionStats {
            call_id: self.inner.call_id.clone(),
            anchored: !self.inner.bypass,
            held,
            streams,
        }
    }

    /// Send DTMF `event` (RFC 4733 code) of `duration_ms` to leg `to` as
    /// telephone-event RTP from the relay port that leg receives media
    /// from (the digit came as SIP INFO from the other leg). Uses the
    /// telephone-event payload type of `to`'s SDP (else the other leg's)
    /// and a source of its own (SSRC, sequence); the start packet (marker
    /// bit) and the end packet three times go out at once. `false` when
    /// nothing could be sent (bypass, no RTP stream, no telephone-event
    /// negotiated, address of `to` unknown).
    pub fn send_dtmf(&self, to: Leg, event: u8, duration_ms: u32) -> bool {
        if self.inner.bypass {
            return false;
        }
        let st = self.inner.state.lock();
        if st.closed {
            return false;
        }
        let now = self.inner.shared.epoch.elapsed();
        st.streams
            .iter()
            .flatten()
            .find(|s| s.state.lock().rtp)
            .is_some_and(|s| s.send_dtmf(to.idx(), event, duration_ms, now))
    }

    /// Sets the IP address leg `leg`'s SIP signalling comes from (see
    /// [`SessionOptions::peers`]); applies to existing streams too.
    pub fn set_peer(&self, leg: Leg, ip: Option<IpAddr>) {
        self.inner.set_peer(leg, ip);
    }

    /// Whether a leg has signalled hold (timeout is off while held).
    pub fn is_held(&self) -> bool {
        self.stats().held
    }

    /// Release the ports and stop relaying. Idempotent.
    pub fn close(&self) {
        self.inner.close();
    }
}

impl SessionInner {
    /// Refuses SDP naming an address the relay must not send media to (see
    /// [`check_media_addr`]). An unspecified address (`0.0.0.0`, `::`) is
    /// hold, accepted when the direction says hold or when the leg already
    /// had media on that stream (RFC 2543 hold in a re-INVITE); otherwise
    /// (a first offer or answer saying "send to nowhere") it is refused.
    fn check_addresses(&self, st: &SessionState, leg: Leg, s: &Sdp) -> Result<(), MediaError> {
        let sh = &self.shared;
        for (i, m) in s.media().iter().enumerate() {
            if m.port() == 0 {
                continue;
            }
            let Some(c) = s.connection(i) else { continue };
            let rtcp = m.rtcp().and_then(|(_, a)| a);
            for addr in std::iter::once(c.addr).chain(rtcp) {
                let why = if addr.to_canonical().is_unspecified() {
                    let known = st.streams.get(i).and_then(|x| x.as_ref()).is_some_and(|x| {
                        let ss = x.state.lock();
                        let l = &ss.legs[leg.idx()];
                        l.ep[0].sdp.is_some() || l.held
                    });
                    let hold = known || s.direction(i) != Direction::SendRecv;
                    (!hold).then_some("unspecified outside hold")
                } else {
                    check_media_addr(addr, &sh.cfg.allowed_networks, sh.relay_on_loopback)
                };
                if let Some(why) = why {
                    sh.addresses_refused.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        call_id = %self.call_id,
                        ?leg,
                        %addr,
                        why,
                        "SDP refused: media address not allowed"
                    );
                    return Err(MediaError::AddressRefused { addr, why });
                }
            }
        }
        Ok(())
    }

    /// Sets the IP leg `leg`'s SIP comes from, on every stream.
    fn set_peer(&self, leg: Leg, ip: Option<IpAddr>) {
        let mut st = self.state.lock();
        st.peers[leg.idx()] = ip;
        for s in st.streams.iter().flatten() {
            let mut ss = s.state.lock();
            for ep in &mut ss.legs[leg.idx()].ep {
                ep.peer = ip;
            }
        }
    }

    fn close(&self) {
        let mut st = self.state.lock();
        if st.closed {
            return;
        }
        st.closed = true;
        for s in st.streams.drain(..).flatten() {
            {
                let ss = s.state.lock();
                let (mut packets, mut lost) = (0u64, 0u64);
                for l in &ss.legs {
                    packets += l.rtp.packets;
                    lost += l.rtp.lost().max(0) as u64;
                }
                self.shared
                    .ended_rtp_packets
                    .fetch_add(packets, Ordering::Relaxed);
                self.shared
                    .ended_rtp_lost
                    .fetch_add(lost, Ordering::Relaxed);
            }
            self.shared.workers[s.worker].send(Cmd::Remove(s));
        }
        let mut map = self.shared.sessions.lock();
        if map
            .get(&self.call_id)
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), self))
        {
            map.remove(&self.call_id);
        }
    }

    /// Sans-IO timeout check: returns the idle time if the session should
    /// time out now (once; re-armed when media resumes).
    fn check_timeout(&self, now: Duration, timeout: Duration) -> Option<Duration> {
        if self.bypass {
            return None;
        }
        let mut st = self.state.lock();
        let armed = st.armed_at?;
        if st.closed {
            return None;
        }
        let mut last = armed;
        let mut held = false;
        let mut any = false;
        for s in st.streams.iter().flatten() {
            let ss = s.state.lock();
            for l in &ss.legs {
                held |= l.held;
                any = true;
                if let Some(t) = l.rtp.last_arrival {
                    last = last.max(t);
                }
            }
        }
        if held || !any {
            return None;
        }
        let idle = now.saturating_sub(last);
        if idle >= timeout {
            if st.timed_out {
                return None;
            }
            st.timed_out = true;
            Some(idle)
        } else {
            st.timed_out = false;
            None
        }
    }
}

impl Drop for SessionInner {
    fn drop(&mut self) {
        self.close();
    }
}
