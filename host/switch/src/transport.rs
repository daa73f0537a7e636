//! Tokio transports: the thin I/O shell around the core. UDP sockets, TCP and
//! TLS listeners and connections; every received message becomes an
//! [`Inbound`] on one channel; sending picks the socket/connection for a
//! [`Target`].

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use strowger_sip::Frame;

use crate::flow::{ConnId, Flow, Target, Transport};

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

struct Conn {
    tx: mpsc::UnboundedSender<Bytes>,
    flow: Flow,
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
        use anyhow::Context;
        let (events, rx) = mpsc::channel(queue);
        let mut udp = Vec::new();
        let mut tcp_listeners = Vec::new();
        let mut bound = Vec::new();
        for l in listens {
            match l.transport {
                Transport::Udp => {
                    let s = bind_udp(l.addr).with_context(|| format!("binding udp:{}", l.addr))?;
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
                    && c.tx.send(data.clone()).is_ok()
                {
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

    fn register(&self, id: ConnId, flow: Flow, tx: mpsc::UnboundedSender<Bytes>) {
        self.inner.conns.lock().insert(id, Conn { tx, flow });
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
        loop {
            let (stream, remote) = match l.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
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

    async fn run_stream<S>(&self, stream: S, flow: Flow, mut rx: mpsc::UnboundedReceiver<Bytes>)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let id = flow.conn.expect("stream flow has a connection");
        let (mut rd, mut wr) = tokio::io::split(stream);
        let writer = tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if wr.write_all(&b).await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        });
        let mut buf = BytesMut::with_capacity(8192);
        'read: loop {
            match rd.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            loop {
                match strowger_sip::frame(&buf, MAX_STREAM_MESSAGE) {
                    Ok(Frame::Message { len }) => {
                        let msg = buf.split_to(len).freeze();
                        let ev = NetEvent::Message(Inbound { flow, data: msg });
                        if self.inner.events.send(ev).await.is_err() {
                            break 'read;
                        }
                    }
                    Ok(Frame::KeepAlive { len, ping }) => {
                        let _ = buf.split_to(len);
                        if ping && let Some(c) = self.inner.conns.lock().get(&id) {
                            // RFC 5626 pong
                            let _ = c.tx.send(Bytes::from_static(b"\r\n"));
                        }
                    }
                    Ok(Frame::Incomplete) => break,
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

fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let std = std::net::UdpSocket::bind(addr)?;
    std.set_nonblocking(true)?;
    UdpSocket::from_std(std)
}
