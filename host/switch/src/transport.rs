//! Tokio transports: the thin I/O shell around the core. UDP sockets, TCP and
//! TLS listeners and connections; every received message becomes an
//! [`Inbound`] on one channel; sending picks the socket/connection for a
//! [`Target`].

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use strowger_sip::{Frame, StreamFramer};

use crate::flow::{ConnId, Flow, Target, Transport};
use crate::guard::{GuardMetrics, LogLimiter};

/// A message (or undecodable datagram) received on a flow.
#[derive(Debug)]
pub struct Inbound {
    /// Where it came from.
    pub flow: Flow,
    /// The raw bytes of one message.
    pub data: Bytes,
}

/// Events from the transports to the core.
#[derive(Debug)]
pub enum NetEvent {
    /// A message.
    Message(Inbound),
    /// A stream connection closed (its flow is gone).
    Closed(ConnId),
}

/// Largest message accepted on a stream before the connection is closed.
pub const MAX_STREAM_MESSAGE: usize = 64 * 1024;

/// Limits on stream (TCP/TLS) connections (`[sip] max_connections`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamLimits {
    /// Most accepted connections open at once; more are closed at accept.
    pub max_connections: usize,
    /// Most accepted connections open at once from one IP address.
    pub max_connections_per_ip: usize,
    /// A connection with no complete message (or CRLF keep-alive) for this
    /// long is closed. Zero = never.
    pub idle_timeout: Duration,
    /// A message whose first byte arrived must be complete within this
    /// long, else the connection is closed (slowloris). Zero = never.
    pub message_timeout: Duration,
    /// Most bytes queued for a peer that does not read; above, the
    /// connection is closed.
    pub max_send_queue: usize,
    /// Kernel receive buffer asked for on UDP listeners (`SO_RCVBUF`), so
    /// that a burst of datagrams while the reader is not scheduled does
    /// not make the kernel drop honest requests with the rest. 0 = the
    /// system default.
    pub udp_recv_buffer: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_connections: 4096,
            max_connections_per_ip: 256,
            idle_timeout: Duration::from_secs(300),
            message_timeout: Duration::from_secs(20),
            max_send_queue: 1024 * 1024,
            udp_recv_buffer: 0,
        }
    }
}

impl StreamLimits {
    /// The limits of a `[sip]` section. `max_connections = 0` (automatic)
    /// raises the soft descriptor limit to the hard one and takes
    /// [`auto_max_connections`] of it, so descriptors stay free for the
    /// admin API and established calls when the cap is reached.
    pub fn from_config(sip: &crate::config::SipConfig) -> StreamLimits {
        let nofile = raise_nofile_limit();
        let max_connections = match sip.max_connections {
            0 => auto_max_connections(nofile.unwrap_or(1024)),
            n => n,
        };
        tracing::info!(
            max_connections,
            max_connections_per_ip = sip.max_connections_per_ip,
            nofile = nofile.unwrap_or(0),
            "SIP stream connection limits"
        );
        if let Some(n) = nofile
            && max_connections as u64 + 64 > n
        {
            tracing::warn!(
                max_connections,
                nofile = n,
                "sip.max_connections leaves few file descriptors for anything else"
            );
        }
        StreamLimits {
            max_connections,
            max_connections_per_ip: sip.max_connections_per_ip,
            idle_timeout: Duration::from_secs(sip.tcp_idle_timeout_s),
            message_timeout: Duration::from_secs(sip.tcp_message_timeout_s),
            max_send_queue: sip.tcp_max_send_queue_bytes,
            udp_recv_buffer: sip.udp_recv_buffer_bytes,
        }
    }
}

/// File descriptors kept free for everything that is not a SIP stream
/// connection (admin API, store, plugins, media sockets of calls): the
/// automatic connection cap is at most half the descriptor limit.
pub fn auto_max_connections(nofile: u64) -> usize {
    (nofile / 2).clamp(16, 4096) as usize
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (once per process)
/// and returns the resulting soft limit (none if it cannot be read).
pub fn raise_nofile_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
        unsafe {
            let mut rl = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
                return None;
            }
            if rl.rlim_cur < rl.rlim_max {
                let want = libc::rlimit {
                    rlim_cur: rl.rlim_max,
                    rlim_max: rl.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                    rl.rlim_cur = rl.rlim_max;
                }
            }
            Some(rl.rlim_cur)
        }
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Accounting of one accepted connection: released on drop.
struct Slot {
    inner: Arc<Inner>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.inner.guard.conns_open.fetch_sub(1, Ordering::Relaxed);
        let mut per_ip = self.inner.per_ip.lock();
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

struct Conn {
    tx: mpsc::UnboundedSender<Bytes>,
    flow: Flow,
    /// Bytes queued for the writer and not yet written.
    queued: Arc<std::sync::atomic::AtomicUsize>,
    /// Asks the connection's reader to close it.
    kill: Arc<tokio::sync::Notify>,
}

/// The transports of one switch instance. Cheap to clone.
#[derive(Clone)]
pub struct Transports {
    inner: Arc<Inner>,
}

struct Inner {
    udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
    stream_listen: Vec<(Transport, SocketAddr)>,
    conns: Mutex<HashMap<ConnId, Conn>>,
    by_remote: Mutex<HashMap<(Transport, SocketAddr), ConnId>>,
    next_conn: AtomicU64,
    events: mpsc::Sender<NetEvent>,
    tls_acceptor: Option<tokio_rustls::TlsAcceptor>,
    tls_connector: Option<(tokio_rustls::TlsConnector, String)>,
    /// Counters.
    pub dropped_inbound: AtomicU64,
    /// Listener tasks until the shell's supervisor takes them.
    tasks: Mutex<Vec<(String, tokio::task::JoinHandle<()>)>>,
    limits: StreamLimits,
    guard: Arc<GuardMetrics>,
    /// Accepted connections open per source IP.
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Log limiters: one line per interval for floods.
    log_cap: LogLimiter,
    log_accept: LogLimiter,
    log_timeout: LogLimiter,
}

/// A listener specification: transport and address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listen {
    /// Transport.
    pub transport: Transport,
    /// Bind address (port 0 = pick a free one).
    pub addr: SocketAddr,
}

impl Listen {
    /// Parses `udp:127.0.0.1:5060`, `tcp:[::1]:5060`, `tls:0.0.0.0:5061`.
    pub fn parse(s: &str) -> Result<Listen, String> {
        let (t, a) = s
            .split_once(':')
            .ok_or_else(|| format!("listen `{s}`: expected transport:address:port"))?;
        let transport =
            Transport::parse(t).ok_or_else(|| format!("listen `{s}`: unknown transport `{t}`"))?;
        let addr = a
            .parse()
            .map_err(|e| format!("listen `{s}`: bad address `{a}`: {e}"))?;
        Ok(Listen { transport, addr })
    }
}

/// TLS material for listeners (and, optionally, client connections).
pub struct TlsSetup {
    /// Server configuration (certificate and key).
    pub server: Arc<rustls::ServerConfig>,
    /// Client configuration for outbound TLS connections, with the server
    /// name to present; none = outbound TLS only on existing connections.
    pub client: Option<(Arc<rustls::ClientConfig>, String)>,
}

/// Loads a PEM certificate chain and private key into a rustls server config.
pub fn load_tls_server(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use anyhow::Context;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs = rustls_pemfile::certs(&mut io::BufReader::new(
        std::fs::File::open(cert)
            .with_context(|| format!("opening TLS certificate {}", cert.display()))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .with_context(|| format!("reading TLS certificate {}", cert.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "no certificate found in {}",
        cert.display()
    );
    let key = rustls_pemfile::private_key(&mut io::BufReader::new(
        std::fs::File::open(key).with_context(|| format!("opening TLS key {}", key.display()))?,
    ))
    .with_context(|| format!("reading TLS key {}", key.display()))?
    .ok_or_else(|| anyhow::anyhow!("no private key found in {}", key.display()))?;
    let cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("TLS certificate/key do not match")?;
    Ok(Arc::new(cfg))
}

impl Transports {
    /// Binds every listener. Returns the transports (with the actual bound
    /// addresses, useful with port 0) and the event receiver for the core.
    pub async fn bind(
        listens: &[Listen],
        tls: Option<TlsSetup>,
        queue: usize,
    ) -> anyhow::Result<(Transports, mpsc::Receiver<NetEvent>, Vec<Listen>)> {
        Self::bind_with(listens, tls, queue, StreamLimits::default()).await
    }

    /// [`Transports::bind`] with stream connection limits.
    pub async fn bind_with(
        listens: &[Listen],
        tls: Option<TlsSetup>,
        queue: usize,
        limits: StreamLimits,
    ) -> anyhow::Result<(Transports, mpsc::Receiver<NetEvent>, Vec<Listen>)> {
        use anyhow::Context;
        let (events, rx) = mpsc::channel(queue);
        let mut udp = Vec::new();
        let mut tcp_listeners = Vec::new();
        let mut bound = Vec::new();
        for l in listens {
            match l.transport {
                Transport::Udp => {
                    let s = bind_udp(l.addr, limits.udp_recv_buffer)
                        .with_context(|| format!("binding udp:{}", l.addr))?;
                    let a = s.local_addr()?;
                    bound.push(Listen {
                        transport: Transport::Udp,
                        addr: a,
                    });
                    udp.push((a, Arc::new(s)));
                }
                Transport::Tcp | Transport::Tls => {
                    if l.transport == Transport::Tls && tls.is_none() {
                        anyhow::bail!("tls:{} needs a [tls] certificate and key", l.addr);
                    }
                    let s = TcpListener::bind(l.addr)
                        .await
                        .with_context(|| format!("binding {}:{}", l.transport, l.addr))?;
                    let a = s.local_addr()?;
                    bound.push(Listen {
                        transport: l.transport,
                        addr: a,
                    });
                    tcp_listeners.push((l.transport, a, s));
                }
            }
        }
        let inner = Arc::new(Inner {
            udp,
            stream_listen: tcp_listeners.iter().map(|(t, a, _)| (*t, *a)).collect(),
            conns: Mutex::new(HashMap::new()),
            by_remote: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            events,
            tls_acceptor: tls
                .as_ref()
                .map(|t| tokio_rustls::TlsAcceptor::from(t.server.clone())),
            tls_connector: tls.and_then(|t| {
                t.client
                    .map(|(c, name)| (tokio_rustls::TlsConnector::from(c), name))
            }),
            dropped_inbound: AtomicU64::new(0),
            tasks: Mutex::new(Vec::new()),
            limits,
            guard: Arc::new(GuardMetrics::default()),
            per_ip: Mutex::new(HashMap::new()),
            log_cap: LogLimiter::new(Duration::from_secs(10)),
            log_accept: LogLimiter::new(Duration::from_secs(10)),
            log_timeout: LogLimiter::new(Duration::from_secs(10)),
        });
        let t = Transports { inner };
        let mut tasks = t.inner.tasks.lock();
        for (addr, sock) in &t.inner.udp {
            let t2 = t.clone();
            let sock = sock.clone();
            let local = *addr;
            tasks.push((
                format!("udp:{local} reader"),
                tokio::spawn(async move { t2.udp_loop(local, sock).await }),
            ));
        }
        for (transport, addr, l) in tcp_listeners {
            let t2 = t.clone();
            tasks.push((
                format!("{transport}:{addr} acceptor"),
                tokio::spawn(async move { t2.accept_loop(transport, addr, l).await }),
            ));
        }
        drop(tasks);
        Ok((t, rx, bound))
    }

    /// The listener tasks (UDP readers, TCP/TLS acceptors) with their
    /// names, for the shell's supervisor; empty after the first call.
    pub fn take_tasks(&self) -> Vec<(String, tokio::task::JoinHandle<()>)> {
        std::mem::take(&mut *self.inner.tasks.lock())
    }

    /// Local address to advertise (Via sent-by, Contact) for `transport`
    /// towards a destination of the given address family.
    pub fn local_addr(&self, transport: Transport, v6: bool) -> Option<SocketAddr> {
        match transport {
            Transport::Udp => self
                .inner
                .udp
                .iter()
                .find(|(a, _)| a.is_ipv6() == v6)
                .or_else(|| self.inner.udp.first())
                .map(|(a, _)| *a),
            t => self
                .inner
                .stream_listen
                .iter()
                .find(|(tt, a)| *tt == t && a.is_ipv6() == v6)
                .or_else(|| self.inner.stream_listen.iter().find(|(tt, _)| *tt == t))
                .map(|(_, a)| *a),
        }
    }

    /// True if a listener exists for `transport`.
    pub fn has(&self, transport: Transport) -> bool {
        self.local_addr(transport, false).is_some()
    }

    /// Limit counters (connections, timeouts; the core adds its own).
    pub fn guard_metrics(&self) -> Arc<GuardMetrics> {
        self.inner.guard.clone()
    }

    /// Inbound messages dropped because the core's queue was full.
    pub fn dropped_inbound(&self) -> u64 {
        self.inner.dropped_inbound.load(Ordering::Relaxed)
    }

    /// Sends `data` to `target` without blocking. Errors are logged; the
    /// transaction layer handles the lack of an answer.
    pub fn send(&self, target: &Target, data: Bytes) {
        match target.transport() {
            Transport::Udp => {
                let dst = target.addr();
                let local = match target {
                    Target::Flow(f) => Some(f.local),
                    _ => None,
                };
                let sock = self
                    .inner
                    .udp
                    .iter()
                    .find(|(a, _)| Some(*a) == local)
                    .or_else(|| {
                        self.inner
                            .udp
                            .iter()
                            .find(|(a, _)| a.is_ipv6() == dst.is_ipv6())
                    })
                    .map(|(_, s)| s.clone());
                let Some(sock) = sock else {
                    tracing::warn!(%dst, "no UDP listener for this address family");
                    return;
                };
                match sock.try_send_to(&data, dst) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        tokio::spawn(async move {
                            let _ = sock.send_to(&data, dst).await;
                        });
                    }
                    Err(e) => tracing::debug!(%dst, error = %e, "UDP send failed"),
                }
            }
            transport => {
                // existing connection: the flow's own, else any to that address
                let conn_id = match target {
                    Target::Flow(f) => f.conn,
                    _ => None,
                }
                .filter(|c| self.inner.conns.lock().contains_key(c))
                .or_else(|| {
                    self.inner
                        .by_remote
                        .lock()
                        .get(&(transport, target.addr()))
                        .copied()
                });
                if let Some(id) = conn_id
                    && let Some(c) = self.inner.conns.lock().get(&id)
                    && !c.tx.is_closed()
                {
                    self.queue(c, data);
                    return;
                }
                self.connect(transport, target.addr(), data);
            }
        }
    }

    fn connect(&self, transport: Transport, addr: SocketAddr, first: Bytes) {
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(first);
        let id = ConnId(self.inner.next_conn.fetch_add(1, Ordering::Relaxed));
        let local = self
            .local_addr(transport, addr.is_ipv6())
            .unwrap_or(if addr.is_ipv6() {
                "[::]:0".parse().unwrap()
            } else {
                "0.0.0.0:0".parse().unwrap()
            });
        let flow = Flow {
            transport,
            local,
            remote: addr,
            conn: Some(id),
        };
        self.register(id, flow, tx);
        let t = self.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(
                std::time::Duration::from_secs(10),
                TcpStream::connect(addr),
            )
            .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%addr, error = %e, "connect failed");
                    t.closed(id).await;
                    return;
                }
                Err(_) => {
                    tracing::debug!(%addr, "connect timed out");
                    t.closed(id).await;
                    return;
                }
            };
            let _ = stream.set_nodelay(true);
            let mut flow = flow;
            if let Ok(l) = stream.local_addr() {
                flow.local = l;
            }
            if transport == Transport::Tls {
                let Some((conn, name)) = t.inner.tls_connector.clone() else {
                    tracing::warn!(%addr, "outbound TLS needs a client configuration");
                    t.closed(id).await;
                    return;
                };
                let Ok(sn) = rustls::pki_types::ServerName::try_from(name) else {
                    t.closed(id).await;
                    return;
                };
                match conn.connect(sn, stream).await {
                    Ok(s) => t.run_stream(s, flow, rx).await,
                    Err(e) => {
                        tracing::debug!(%addr, error = %e, "TLS handshake failed");
                        t.closed(id).await;
                    }
                }
            } else {
                t.run_stream(stream, flow, rx).await;
            }
        });
    }

    /// Queues `data` on a connection's writer; a peer that does not read
    /// (its send queue above `sip.tcp_max_send_queue_bytes`) is
    /// disconnected instead of growing the queue.
    fn queue(&self, c: &Conn, data: Bytes) {
        let limit = self.inner.limits.max_send_queue;
        let len = data.len();
        let q = c.queued.fetch_add(len, Ordering::Relaxed) + len;
        if q > limit {
            c.queued.fetch_sub(len, Ordering::Relaxed);
            c.kill.notify_one();
            self.inner
                .guard
                .conns_send_queue_full
                .fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = self.inner.log_cap.check(Instant::now()) {
                tracing::warn!(
                    remote = %c.flow.remote,
                    limit,
                    suppressed,
                    "peer does not read its responses: closing (sip.tcp_max_send_queue_bytes reached)"
                );
            }
            return;
        }
        if c.tx.send(data).is_err() {
            c.queued.fetch_sub(len, Ordering::Relaxed);
        }
    }

    fn register(&self, id: ConnId, flow: Flow, tx: mpsc::UnboundedSender<Bytes>) {
        self.inner.conns.lock().insert(
            id,
            Conn {
                tx,
                flow,
                queued: Arc::default(),
                kill: Arc::default(),
            },
        );
        self.inner
            .by_remote
            .lock()
            .insert((flow.transport, flow.remote), id);
    }

    async fn closed(&self, id: ConnId) {
        if let Some(c) = self.inner.conns.lock().remove(&id) {
            let mut br = self.inner.by_remote.lock();
            if br.get(&(c.flow.transport, c.flow.remote)) == Some(&id) {
                br.remove(&(c.flow.transport, c.flow.remote));
            }
        }
        let _ = self.inner.events.send(NetEvent::Closed(id)).await;
    }

    async fn udp_loop(self, local: SocketAddr, sock: Arc<UdpSocket>) {
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, src) = match sock.recv_from(&mut buf).await {
                Ok(x) => x,
                Err(e) => {
                    // ICMP port unreachable etc. on some platforms: keep going
                    tracing::trace!(error = %e, "UDP recv error");
                    continue;
                }
            };
            if n == 0 || buf[..n].iter().all(|b| b.is_ascii_whitespace()) {
                continue; // keep-alive
            }
            let ev = NetEvent::Message(Inbound {
                flow: Flow {
                    transport: Transport::Udp,
                    local,
                    remote: src,
                    conn: None,
                },
                data: Bytes::copy_from_slice(&buf[..n]),
            });
            if self.inner.events.try_send(ev).is_err() {
                // overload: drop like a lost datagram (the peer retransmits)
                self.inner.dropped_inbound.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    async fn accept_loop(self, transport: Transport, local: SocketAddr, l: TcpListener) {
        let mut backoff = Duration::from_millis(10);
        loop {
            let (stream, remote) = match l.accept().await {
                Ok(x) => {
                    backoff = Duration::from_millis(10);
                    x
                }
                Err(e) => {
                    // out of descriptors (EMFILE/ENFILE) and the like: back
                    // off instead of spinning, one log line per interval
                    self.inner
                        .guard
                        .accept_errors
                        .fetch_add(1, Ordering::Relaxed);
                    if let Some(suppressed) = self.inner.log_accept.check(Instant::now()) {
                        tracing::warn!(
                            error = %e,
                            suppressed,
                            open = self.inner.guard.conns_open.load(Ordering::Relaxed),
                            "accept failed; backing off (sip.max_connections may exceed the descriptor limit)"
                        );
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            let Some(slot) = self.admit(remote.ip()) else {
                drop(stream); // closed at once
                continue;
            };
            let _ = stream.set_nodelay(true);
            let id = ConnId(self.inner.next_conn.fetch_add(1, Ordering::Relaxed));
            let flow = Flow {
                transport,
                local,
                remote,
                conn: Some(id),
            };
            let (tx, rx) = mpsc::unbounded_channel();
            self.register(id, flow, tx);
            let t = self.clone();
            tokio::spawn(async move {
                let _slot = slot;
                if transport == Transport::Tls {
                    let acc = t
                        .inner
                        .tls_acceptor
                        .clone()
                        .expect("TLS listener without acceptor");
                    match tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        acc.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(s)) => t.run_stream(s, flow, rx).await,
                        _ => {
                            tracing::debug!(%remote, "TLS handshake failed");
                            t.closed(id).await;
                        }
                    }
                } else {
                    t.run_stream(stream, flow, rx).await;
                }
            });
        }
    }

    /// Takes a connection slot for a new connection from `ip`, or none if
    /// the global or the per-IP cap is reached (counted, logged once per
    /// interval).
    fn admit(&self, ip: IpAddr) -> Option<Slot> {
        let lim = &self.inner.limits;
        let g = &self.inner.guard;
        let open = g.conns_open.load(Ordering::Relaxed) as usize;
        let cap = if open >= lim.max_connections {
            g.conns_rejected_global.fetch_add(1, Ordering::Relaxed);
            Some(("sip.max_connections", lim.max_connections))
        } else {
            let mut per_ip = self.inner.per_ip.lock();
            let n = per_ip.entry(ip).or_insert(0);
            if *n >= lim.max_connections_per_ip {
                g.conns_rejected_per_ip.fetch_add(1, Ordering::Relaxed);
                Some(("sip.max_connections_per_ip", lim.max_connections_per_ip))
            } else {
                *n += 1;
                g.conns_open.fetch_add(1, Ordering::Relaxed);
                None
            }
        };
        match cap {
            None => Some(Slot {
                inner: self.inner.clone(),
                ip,
            }),
            Some((key, limit)) => {
                if let Some(suppressed) = self.inner.log_cap.check(Instant::now()) {
                    tracing::warn!(
                        source = %ip,
                        limit,
                        suppressed,
                        "connection refused: {key} reached"
                    );
                }
                None
            }
        }
    }

    async fn run_stream<S>(&self, stream: S, flow: Flow, mut rx: mpsc::UnboundedReceiver<Bytes>)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let id = flow.conn.expect("stream flow has a connection");
        let (queued, kill) = self
            .inner
            .conns
            .lock()
            .get(&id)
            .map(|c| (c.queued.clone(), c.kill.clone()))
            .unwrap_or_default();
        let (mut rd, mut wr) = tokio::io::split(stream);
        let wq = queued.clone();
        let writer = tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if wr.write_all(&b).await.is_err() {
                    break;
                }
                wq.fetch_sub(b.len(), Ordering::Relaxed);
            }
            let _ = wr.shutdown().await;
        });
        let mut buf = BytesMut::with_capacity(8192);
        let mut framer = StreamFramer::default();
        let lim = self.inner.limits;
        // idle: no complete message or keep-alive since; message: the
        // first byte of an incomplete message arrived then
        let mut last_complete = tokio::time::Instant::now();
        let mut started: Option<tokio::time::Instant> = None;
        'read: loop {
            let idle = (!lim.idle_timeout.is_zero()).then(|| last_complete + lim.idle_timeout);
            let msg = started
                .filter(|_| !lim.message_timeout.is_zero())
                .map(|t| t + lim.message_timeout);
            let deadline = match (idle, msg) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let expiry = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let read = tokio::select! {
                r = rd.read_buf(&mut buf) => r,
                _ = kill.notified() => break 'read,
                _ = expiry => {
                    let which = if deadline.is_some() && msg == deadline { "message" } else { "idle" };
                    let c = if which == "message" {
                        &self.inner.guard.conns_header_timeout
                    } else {
                        &self.inner.guard.conns_idle_timeout
                    };
                    c.fetch_add(1, Ordering::Relaxed);
                    if let Some(suppressed) = self.inner.log_timeout.check(Instant::now()) {
                        tracing::info!(
                            remote = %flow.remote,
                            timeout = which,
                            suppressed,
                            "stream connection timed out: closing \
                             (sip.tcp_idle_timeout_s / sip.tcp_message_timeout_s)"
                        );
                    }
                    break 'read;
                }
            };
            match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            loop {
                match framer.frame(&buf, MAX_STREAM_MESSAGE) {
                    Ok(Frame::Message { len }) => {
                        last_complete = tokio::time::Instant::now();
                        started = None;
                        let msg = buf.split_to(len).freeze();
                        let ev = NetEvent::Message(Inbound { flow, data: msg });
                        if self.inner.events.send(ev).await.is_err() {
                            break 'read;
                        }
                    }
                    Ok(Frame::KeepAlive { len, ping }) => {
                        last_complete = tokio::time::Instant::now();
                        started = None;
                        let _ = buf.split_to(len);
                        if ping && let Some(c) = self.inner.conns.lock().get(&id) {
                            // RFC 5626 pong
                            self.queue(c, Bytes::from_static(b"\r\n"));
                        }
                    }
                    Ok(Frame::Incomplete) => {
                        if buf.is_empty() {
                            started = None;
                        } else if started.is_none() {
                            started = Some(tokio::time::Instant::now());
                        }
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(remote = %flow.remote, error = %e, "unframeable stream data: closing");
                        break 'read;
                    }
                }
            }
        }
        writer.abort();
        self.closed(id).await;
    }
}

fn bind_udp(addr: SocketAddr, recv_buffer: usize) -> io::Result<UdpSocket> {
    let std = std::net::UdpSocket::bind(addr)?;
    std.set_nonblocking(true)?;
    if recv_buffer > 0 {
        set_recv_buffer(&std, addr, recv_buffer);
    }
    UdpSocket::from_std(std)
}

/// Asks for a `want`-byte kernel receive buffer: `SO_RCVBUF` (capped by
/// `net.core.rmem_max`), then `SO_RCVBUFFORCE` when that fell short (allowed
/// with `CAP_NET_ADMIN`). Logs what the kernel granted.
fn set_recv_buffer(sock: &std::net::UdpSocket, addr: SocketAddr, want: usize) {
    use std::os::fd::AsRawFd;
    let fd = sock.as_raw_fd();
    let val = want.min(i32::MAX as usize / 2) as libc::c_int;
    let set = |opt: libc::c_int| {
        // SAFETY: fd is a valid socket owned by `sock`; the option value
        // is a c_int of the size passed.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&val as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    let get = || recv_buffer_len(fd);
    set(libc::SO_RCVBUF);
    if get() < want {
        set(libc::SO_RCVBUFFORCE);
    }
    let got = get();
    if got < want {
        tracing::warn!(
            listener = %addr,
            asked = want,
            granted = got,
            "UDP receive buffer smaller than sip.udp_recv_buffer_bytes: raise \
             net.core.rmem_max (or run with CAP_NET_ADMIN)"
        );
    } else {
        tracing::info!(listener = %addr, bytes = got, "UDP receive buffer");
    }
}

/// The usable kernel receive buffer of socket `fd`, bytes (0 if unknown).
fn recv_buffer_len(fd: std::os::fd::RawFd) -> usize {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: fd is a socket the caller owns; v and len are valid for
    // writes of their size.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    // Linux reports twice the size asked for (bookkeeping overhead)
    if r == 0 { v.max(0) as usize / 2 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn rcvbuf(s: &UdpSocket) -> usize {
        recv_buffer_len(s.as_raw_fd())
    }

    fn sysctl(name: &str) -> usize {
        std::fs::read_to_string(format!("/proc/sys/net/core/{name}"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn udp_listeners_get_the_receive_buffer_asked_for() {
        let want = 4 * 1024 * 1024;
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let default = bind_udp(addr, 0).unwrap();
        let big = bind_udp(addr, want).unwrap();
        assert!(rcvbuf(&default) > 0, "SO_RCVBUF unreadable");
        assert!(
            rcvbuf(&default) < want,
            "the system default is already large"
        );
        // root (CAP_NET_ADMIN) gets it all; others up to net.core.rmem_max
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let floor = if root {
            want
        } else {
            want.min(sysctl("rmem_max"))
        };
        assert!(
            rcvbuf(&big) >= floor,
            "granted {} < {floor} (root: {root})",
            rcvbuf(&big)
        );
    }
}
