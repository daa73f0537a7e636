//! RFC 3261 §17 transactions (with RFC 6026's Accepted state), sans-IO.
//!
//! A [`TransactionLayer`] owns every client and server transaction. The
//! shell feeds it events — [`on_incoming`](TransactionLayer::on_incoming),
//! [`send_request`](TransactionLayer::send_request),
//! [`send_response`](TransactionLayer::send_response),
//! [`on_timer`](TransactionLayer::on_timer),
//! [`on_transport_error`](TransactionLayer::on_transport_error) — always with
//! the current time passed in (`Instant`; the layer never reads a clock), and
//! then drains [`Output`]s (datagrams/segments to transmit and events for the
//! transaction user) with [`pop_output`](TransactionLayer::pop_output), and
//! sleeps until [`poll_timeout`](TransactionLayer::poll_timeout).
//!
//! Behaviour:
//! * Retransmissions (Timers A, E, G and the 2xx retransmission of an
//!   INVITE server transaction) only on unreliable transports.
//! * INVITE client: Timer A/B; on 300-699 the layer builds and sends the ACK
//!   (and re-sends it for retransmitted finals) and waits Timer D; on 2xx it
//!   enters Accepted (Timer M) and hands 2xx retransmissions to the TU, which
//!   sends the ACK for 2xx itself (it is not part of the transaction).
//! * INVITE server: sends `100 Trying` when the TU has not answered within
//!   the configured delay (or immediately); absorbs retransmitted INVITEs by
//!   re-sending the last response; after a 2xx (Accepted, Timer L) it
//!   retransmits the 2xx until the ACK arrives (optional, default on) and
//!   reports [`TuEvent::AckTimeout`] if none comes; after 300-699 it
//!   retransmits (Timer G) until ACK (Confirmed, Timer I) or Timer H.
//! * Matching: server transactions by top-Via branch + sent-by + method
//!   (ACK matches INVITE; RFC 2543 fallback key without the magic cookie);
//!   CANCEL gets its own transaction and is linked to the INVITE it cancels;
//!   client transactions by branch + CSeq method.
//! * A request with no To tag that matches an existing server transaction's
//!   From tag + Call-ID + CSeq but has another branch is a merged request
//!   (§8.2.2.2): answered 482 statelessly, not shown to the TU.
//! * Responses that match no client transaction are reported as
//!   [`TuEvent::StrayResponse`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::builder::{RequestBuilder, ResponseBuilder};
use crate::message::Message;
use crate::method::{Method, Transport};

/// When an INVITE server transaction sends `100 Trying` by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryingPolicy {
    /// As soon as the INVITE arrives.
    Immediate,
    /// If the TU has not sent a provisional response within this delay
    /// (RFC 3261 §17.2.1 suggests 200 ms).
    After(Duration),
    /// Never (the TU sends its own provisionals).
    Never,
}

/// Timer values and options.
#[derive(Clone, Debug)]
pub struct TxConfig {
    /// RTT estimate (default 500 ms).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE
    /// responses (default 4 s).
    pub t2: Duration,
    /// Maximum duration a message remains in the network (default 5 s).
    pub t4: Duration,
    /// Timer D for unreliable transports (default 32 s).
    pub timer_d: Duration,
    /// 100 Trying policy (default after 200 ms).
    pub trying: TryingPolicy,
    /// Retransmit 2xx to INVITE on unreliable transports until the ACK
    /// (RFC 3261 §13.3.1.4, done here for the TU). Default true.
    pub retransmit_2xx: bool,
    /// Send responses to the request's source address and port (symmetric,
    /// NAT-friendly; default true). If false, UDP responses without `rport`
    /// go to the source IP and the Via sent-by port (RFC 3261 §18.2.2).
    pub symmetric_response: bool,
}

impl Default for TxConfig {
    fn default() -> Self {
        TxConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            timer_d: Duration::from_secs(32),
            trying: TryingPolicy::After(Duration::from_millis(200)),
            retransmit_2xx: true,
            symmetric_response: true,
        }
    }
}

/// Identifies a transaction inside one [`TransactionLayer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(pub u64);

/// Something for the transaction user (B2BUA, registrar, ...).
#[derive(Clone, Debug)]
pub enum TuEvent {
    /// A new request created a server transaction. Answer it with
    /// [`TransactionLayer::send_response`]. For CANCEL, `cancels` names
    /// the INVITE server transaction it matches (None: answer 481).
    Request {
        /// The new server transaction.
        tx: TxId,
        /// The request.
        msg: Message,
        /// Where it came from.
        source: SocketAddr,
        /// Transport it came over.
        transport: Transport,
        /// For CANCEL: the matching INVITE server transaction.
        cancels: Option<TxId>,
    },
    /// An ACK that is not part of a transaction (ACK for a 2xx), or the
    /// ACK that ended the 2xx retransmissions of INVITE server
    /// transaction `tx`.
    Ack {
        /// The INVITE server transaction whose 2xx this acknowledges, if
        /// known.
        tx: Option<TxId>,
        /// The ACK.
        msg: Message,
        /// Where it came from.
        source: SocketAddr,
        /// Transport.
        transport: Transport,
    },
    /// A response for a client transaction (provisional or final; in the
    /// Accepted state also 2xx retransmissions, which the TU must ACK
    /// again).
    Response {
        /// The client transaction.
        tx: TxId,
        /// The response.
        msg: Message,
    },
    /// Timer B / F (client: no final response), or Timer H (INVITE server:
    /// no ACK for a 300-699).
    Timeout {
        /// The transaction.
        tx: TxId,
    },
    /// An INVITE server transaction sent a 2xx but no ACK arrived within
    /// 64*T1: the TU should end the dialog (BYE).
    AckTimeout {
        /// The INVITE server transaction.
        tx: TxId,
    },
    /// The transport reported a failure for this transaction.
    TransportError {
        /// The transaction.
        tx: TxId,
    },
    /// A response that matches no client transaction.
    StrayResponse {
        /// The response.
        msg: Message,
        /// Where it came from.
        source: SocketAddr,
    },
    /// The transaction ended and was forgotten.
    Terminated {
        /// The transaction.
        tx: TxId,
    },
}

/// An action for the shell.
#[derive(Clone, Debug)]
pub enum Output {
    /// Send these bytes.
    Transmit {
        /// Message bytes.
        bytes: Bytes,
        /// Destination.
        dest: SocketAddr,
        /// Transport to use (for reliable transports: the connection to
        /// `dest`).
        transport: Transport,
    },
    /// Hand an event to the TU.
    Event(TuEvent),
}

/// Errors from TU-initiated operations.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The message is not a request (send_request) / response (send_response).
    #[error("wrong message kind: {0}")]
    WrongKind(&'static str),
    /// Unknown or already terminated transaction.
    #[error("no such transaction")]
    NoSuchTransaction,
    /// A client transaction with this branch and method already exists.
    #[error("duplicate transaction (branch reused)")]
    Duplicate,
    /// The transaction cannot take this response in its current state
    /// (e.g. a second final response).
    #[error("response not allowed in the transaction's state")]
    InvalidState,
    /// The request has no usable branch.
    #[error("request has no Via branch")]
    NoBranch,
}

/// Counters, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxStats {
    /// Retransmissions sent (requests and responses).
    pub retransmissions: u64,
    /// Retransmitted requests absorbed by server transactions.
    pub absorbed: u64,
    /// Stray responses reported.
    pub stray_responses: u64,
    /// Merged requests answered 482.
    pub merged: u64,
    /// Timer B/F/H timeouts.
    pub timeouts: u64,
    /// 100 Trying sent by the layer.
    pub trying_sent: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ServerKey {
    branch: String,
    sent_by: String,
    method: Method,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ClientKey {
    branch: String,
    method: Method,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct MergeKey {
    from_tag: String,
    call_id: String,
    seq: u32,
    method: Method,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct AckKey {
    call_id: String,
    from_tag: String,
    seq: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    InviteClient,
    NonInviteClient,
    InviteServer,
    NonInviteServer,
}

/// Transaction state (RFC 3261 §17 names; Accepted from RFC 6026).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxState {
    /// INVITE client: request sent, nothing received.
    Calling,
    /// Non-INVITE client / server: initial state.
    Trying,
    /// A provisional response was received / sent.
    Proceeding,
    /// A final (non-2xx for INVITE) response was received / sent.
    Completed,
    /// INVITE server: ACK received for a 300-699.
    Confirmed,
    /// INVITE: 2xx sent / received (RFC 6026).
    Accepted,
    /// Finished.
    Terminated,
}

struct Tx {
    kind: Kind,
    state: TxState,
    request: Message,
    dest: SocketAddr,
    transport: Transport,
    last_response: Option<Bytes>,
    ack: Option<Bytes>,
    retrans_at: Option<Instant>,
    retrans_iv: Duration,
    timeout_at: Option<Instant>,
    end_at: Option<Instant>,
    trying_at: Option<Instant>,
    awaiting_ack: bool,
    cancel_pending: bool,
    server_key: Option<ServerKey>,
    client_key: Option<ClientKey>,
    merge_key: Option<MergeKey>,
    ack_key: Option<AckKey>,
}

impl Tx {
    fn reliable(&self) -> bool {
        self.transport.is_reliable()
    }
}

/// All transactions of one SIP endpoint. See the module documentation.
pub struct TransactionLayer {
    cfg: TxConfig,
    next_id: u64,
    txs: HashMap<TxId, Tx>,
    server_index: HashMap<ServerKey, TxId>,
    client_index: HashMap<ClientKey, TxId>,
    merge_index: HashMap<MergeKey, TxId>,
    ack_index: HashMap<AckKey, TxId>,
    timers: BinaryHeap<Reverse<(Instant, TxId)>>,
    out: VecDeque<Output>,
    stats: TxStats,
}

fn sent_by_of(msg: &Message, transport: Transport) -> String {
    let v = msg.top_via();
    let port = v
        .port
        .unwrap_or_else(|| v.transport().unwrap_or(transport).default_port());
    format!("{}:{}", v.host.to_ascii_lowercase(), port)
}

fn server_key(msg: &Message, transport: Transport, method: Method) -> ServerKey {
    let v = msg.top_via();
    let branch = match v.branch() {
        Some(b) if b.starts_with(crate::ids::BRANCH_COOKIE) => b.to_string(),
        // RFC 2543 fallback (§17.2.3): build a key from the identifying
        // fields (To tag excluded so that ACK matches the INVITE).
        _ => format!(
            "2543|{}|{}|{}|{}|{}",
            msg.request_uri_str().unwrap_or(""),
            msg.from_tag().unwrap_or(""),
            msg.call_id(),
            msg.cseq().seq,
            msg.top_via_str()
        ),
    };
    ServerKey {
        branch,
        sent_by: sent_by_of(msg, transport),
        method,
    }
}

impl TransactionLayer {
    /// A layer with the given timer configuration.
    pub fn new(cfg: TxConfig) -> TransactionLayer {
        TransactionLayer {
            cfg,
            next_id: 1,
            txs: HashMap::new(),
            server_index: HashMap::new(),
            client_index: HashMap::new(),
            merge_index: HashMap::new(),
            ack_index: HashMap::new(),
            timers: BinaryHeap::new(),
            out: VecDeque::new(),
            stats: TxStats::default(),
        }
    }

    /// Configuration in use.
    pub fn config(&self) -> &TxConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> TxStats {
        self.stats
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// True if no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// State of a transaction (None once terminated and forgotten).
    pub fn state(&self, tx: TxId) -> Option<TxState> {
        self.txs.get(&tx).map(|t| t.state)
    }

    /// The request that created a transaction.
    pub fn request(&self, tx: TxId) -> Option<&Message> {
        self.txs.get(&tx).map(|t| &t.request)
    }

    /// Next output, if any.
    pub fn pop_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Drains all pending outputs.
    pub fn drain_outputs(&mut self) -> impl Iterator<Item = Output> + '_ {
        self.out.drain(..)
    }

    /// The earliest instant at which [`on_timer`](Self::on_timer) must be
    /// called (may be early: a wake-up with nothing due is harmless).
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((_, id))) = self.timers.peek() {
            if self.txs.contains_key(id) {
                break;
            }
            self.timers.pop();
        }
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    fn alloc_id(&mut self) -> TxId {
        let id = TxId(self.next_id);
        self.next_id += 1;
        id
    }

    fn arm(&mut self, id: TxId, at: Instant) {
        self.timers.push(Reverse((at, id)));
    }

    fn emit(&mut self, ev: TuEvent) {
        self.out.push_back(Output::Event(ev));
    }

    fn transmit(&mut self, bytes: Bytes, dest: SocketAddr, transport: Transport) {
        self.out.push_back(Output::Transmit {
            bytes,
            dest,
            transport,
        });
    }

    /// Sends bytes outside any transaction (e.g. an ACK for a 2xx, or a
    /// stateless response).
    pub fn send_stateless(&mut self, bytes: Bytes, dest: SocketAddr, transport: Transport) {
        self.transmit(bytes, dest, transport);
    }

    fn terminate(&mut self, id: TxId) {
        if let Some(tx) = self.txs.remove(&id) {
            if let Some(k) = tx.server_key
                && self.server_index.get(&k) == Some(&id)
            {
                self.server_index.remove(&k);
            }
            if let Some(k) = tx.client_key
                && self.client_index.get(&k) == Some(&id)
            {
                self.client_index.remove(&k);
            }
            if let Some(k) = tx.merge_key
                && self.merge_index.get(&k) == Some(&id)
            {
                self.merge_index.remove(&k);
            }
            if let Some(k) = tx.ack_key
                && self.ack_index.get(&k) == Some(&id)
            {
                self.ack_index.remove(&k);
            }
            self.emit(TuEvent::Terminated { tx: id });
        }
    }

    // ----------------------------------------------------------------
    // Client side

    /// Starts a client transaction for `req` (any method but ACK; send ACKs
    /// for 2xx with [`send_stateless`](Self::send_stateless)). The top Via
    /// must carry a unique branch.
    pub fn send_request(
        &mut self,
        req: Message,
        dest: SocketAddr,
        transport: Transport,
        now: Instant,
    ) -> Result<TxId, TxError> {
        let Some(method) = req.method().cloned() else {
            return Err(TxError::WrongKind("send_request needs a request"));
        };
        if method == Method::Ack {
            return Err(TxError::WrongKind("ACK is sent with send_stateless"));
        }
        let branch = req.top_via().branch().ok_or(TxError::NoBranch)?.to_string();
        if branch.is_empty() {
            return Err(TxError::NoBranch);
        }
        let key = ClientKey {
            branch,
            method: method.clone(),
        };
        if self.client_index.contains_key(&key) {
            return Err(TxError::Duplicate);
        }
        let id = self.alloc_id();
        let invite = method == Method::Invite;
        let t1 = self.cfg.t1;
        let mut tx = Tx {
            kind: if invite {
                Kind::InviteClient
            } else {
                Kind::NonInviteClient
            },
            state: if invite {
                TxState::Calling
            } else {
                TxState::Trying
            },
            request: req,
            dest,
            transport,
            last_response: None,
            ack: None,
            retrans_at: None,
            retrans_iv: t1,
            timeout_at: Some(now + 64 * t1), // Timer B / F
            end_at: None,
            trying_at: None,
            awaiting_ack: false,
            cancel_pending: false,
            server_key: None,
            client_key: Some(key.clone()),
            merge_key: None,
            ack_key: None,
        };
        if !transport.is_reliable() {
            tx.retrans_at = Some(now + t1); // Timer A / E
            self.arm(id, now + t1);
        }
        self.arm(id, now + 64 * t1);
        let bytes = tx.request.as_bytes().clone();
        self.txs.insert(id, tx);
        self.client_index.insert(key, id);
        self.transmit(bytes, dest, transport);
        Ok(id)
    }

    fn on_response(&mut self, msg: Message, source: SocketAddr, now: Instant) {
        let Some(branch) = msg.top_via().branch() else {
            self.stats.stray_responses += 1;
            self.emit(TuEvent::StrayResponse { msg, source });
            return;
        };
        let key = ClientKey {
            branch: branch.to_string(),
            method: msg.cseq().method.clone(),
        };
        let Some(&id) = self.client_index.get(&key) else {
            self.stats.stray_responses += 1;
            self.emit(TuEvent::StrayResponse { msg, source });
            return;
        };
        let status = msg.status().unwrap_or(0);
        let cfg = self.cfg.clone();
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        match tx.kind {
            Kind::InviteClient => match (tx.state, status) {
                (TxState::Calling | TxState::Proceeding, 100..=199) => {
                    tx.state = TxState::Proceeding;
                    tx.retrans_at = None;
                    tx.timeout_at = None; // Timer B only runs in Calling
                    let pending = std::mem::take(&mut tx.cancel_pending);
                    self.emit(TuEvent::Response { tx: id, msg });
                    if pending {
                        let _ = self.start_cancel(id, now);
                    }
                }
                (TxState::Calling | TxState::Proceeding, 200..=299) => {
                    tx.state = TxState::Accepted;
                    tx.retrans_at = None;
                    tx.timeout_at = None;
                    let m = now + 64 * cfg.t1; // Timer M
                    tx.end_at = Some(m);
                    self.arm(id, m);
                    self.emit(TuEvent::Response { tx: id, msg });
                }
                (TxState::Accepted, 200..=299) => {
                    self.emit(TuEvent::Response { tx: id, msg });
                }
                (TxState::Calling | TxState::Proceeding, 300..=699) => {
                    tx.state = TxState::Completed;
                    tx.retrans_at = None;
                    tx.timeout_at = None;
                    let ack = build_ack(&tx.request, &msg);
                    tx.ack = Some(ack.clone());
                    let (dest, transport) = (tx.dest, tx.transport);
                    let d = if transport.is_reliable() {
                        Duration::ZERO
                    } else {
                        cfg.timer_d
                    };
                    tx.end_at = Some(now + d);
                    self.transmit(ack, dest, transport);
                    self.emit(TuEvent::Response { tx: id, msg });
                    if d.is_zero() {
                        self.terminate(id);
                    } else {
                        self.arm(id, now + d);
                    }
                }
                (TxState::Completed, 300..=699) => {
                    // Retransmitted final: re-send the ACK, absorb.
                    if let Some(ack) = tx.ack.clone() {
                        let (dest, transport) = (tx.dest, tx.transport);
                        self.stats.retransmissions += 1;
                        self.transmit(ack, dest, transport);
                    }
                }
                _ => {}
            },
            Kind::NonInviteClient => match (tx.state, status) {
                (TxState::Trying | TxState::Proceeding, 100..=199) => {
                    tx.state = TxState::Proceeding;
                    self.emit(TuEvent::Response { tx: id, msg });
                }
                (TxState::Trying | TxState::Proceeding, 200..=699) => {
                    tx.state = TxState::Completed;
                    tx.retrans_at = None;
                    tx.timeout_at = None;
                    let k = if tx.reliable() {
                        Duration::ZERO
                    } else {
                        cfg.t4
                    };
                    tx.end_at = Some(now + k);
                    self.emit(TuEvent::Response { tx: id, msg });
                    if k.is_zero() {
                        self.terminate(id);
                    } else {
                        self.arm(id, now + k);
                    }
                }
                _ => {} // Completed: absorb retransmissions
            },
            _ => {}
        }
    }

    /// Cancels the INVITE client transaction `invite` (RFC 3261 §9.1):
    /// builds the CANCEL from the INVITE and sends it in its own client
    /// transaction to the same destination. If no provisional response has
    /// arrived yet, the CANCEL is held and sent when one does (`Ok(None)`);
    /// if the INVITE already got a final response, nothing is sent
    /// (`Err(InvalidState)`). The CANCEL's responses arrive as
    /// [`TuEvent::Response`] for the returned id; the INVITE then normally
    /// completes with 487.
    pub fn cancel(&mut self, invite: TxId, now: Instant) -> Result<Option<TxId>, TxError> {
        let tx = self
            .txs
            .get_mut(&invite)
            .ok_or(TxError::NoSuchTransaction)?;
        if tx.kind != Kind::InviteClient {
            return Err(TxError::WrongKind(
                "cancel needs an INVITE client transaction",
            ));
        }
        match tx.state {
            TxState::Calling => {
                tx.cancel_pending = true;
                Ok(None)
            }
            TxState::Proceeding => self.start_cancel(invite, now).map(Some),
            _ => Err(TxError::InvalidState),
        }
    }

    fn start_cancel(&mut self, invite: TxId, now: Instant) -> Result<TxId, TxError> {
        let tx = self.txs.get(&invite).ok_or(TxError::NoSuchTransaction)?;
        let (dest, transport) = (tx.dest, tx.transport);
        let cancel = crate::message::parse(build_cancel(&tx.request))
            .map_err(|_| TxError::WrongKind("INVITE cannot be cancelled"))?;
        self.send_request(cancel, dest, transport, now)
    }

    // ----------------------------------------------------------------
    // Server side

    /// Feeds a received message (request or response).
    pub fn on_incoming(
        &mut self,
        msg: Message,
        source: SocketAddr,
        transport: Transport,
        now: Instant,
    ) {
        if msg.is_response() {
            self.on_response(msg, source, now);
            return;
        }
        let method = msg.method().cloned().unwrap_or(Method::Ack);
        let match_method = if method == Method::Ack {
            Method::Invite
        } else {
            method.clone()
        };
        let key = server_key(&msg, transport, match_method);
        if let Some(&id) = self.server_index.get(&key) {
            self.on_server_retransmission(id, msg, source, transport, now);
            return;
        }
        if method == Method::Ack {
            // ACK for a 2xx: not part of a transaction. If an INVITE server
            // transaction is retransmitting its 2xx, stop.
            let ack_tx = msg.from_tag().and_then(|ft| {
                self.ack_index
                    .get(&AckKey {
                        call_id: msg.call_id().to_string(),
                        from_tag: ft.to_string(),
                        seq: msg.cseq().seq,
                    })
                    .copied()
            });
            if let Some(id) = ack_tx
                && let Some(tx) = self.txs.get_mut(&id)
            {
                tx.retrans_at = None;
                tx.awaiting_ack = false;
            }
            self.emit(TuEvent::Ack {
                tx: ack_tx,
                msg,
                source,
                transport,
            });
            return;
        }
        // Merged request (§8.2.2.2).
        let merge_key = if msg.to_tag().is_none() {
            msg.from_tag().map(|ft| MergeKey {
                from_tag: ft.to_string(),
                call_id: msg.call_id().to_string(),
                seq: msg.cseq().seq,
                method: method.clone(),
            })
        } else {
            None
        };
        if let Some(mk) = &merge_key
            && self.merge_index.contains_key(mk)
        {
            self.stats.merged += 1;
            let tag = crate::ids::tag();
            let resp = ResponseBuilder::new(&msg, 482).to_tag(&tag).build();
            let dest = self.response_dest(&msg, source, transport);
            self.transmit(resp, dest, transport);
            return;
        }
        let cancels = if method == Method::Cancel {
            let ik = ServerKey {
                method: Method::Invite,
                ..key.clone()
            };
            self.server_index.get(&ik).copied()
        } else {
            None
        };
        let id = self.alloc_id();
        let invite = method == Method::Invite;
        let dest = self.response_dest(&msg, source, transport);
        let mut tx = Tx {
            kind: if invite {
                Kind::InviteServer
            } else {
                Kind::NonInviteServer
            },
            state: if invite {
                TxState::Proceeding
            } else {
                TxState::Trying
            },
            request: msg.clone(),
            dest,
            transport,
            last_response: None,
            ack: None,
            retrans_at: None,
            retrans_iv: self.cfg.t1,
            timeout_at: None,
            end_at: None,
            trying_at: None,
            awaiting_ack: false,
            cancel_pending: false,
            server_key: Some(key.clone()),
            client_key: None,
            merge_key: merge_key.clone(),
            ack_key: None,
        };
        let mut send_trying = false;
        if invite {
            match self.cfg.trying {
                TryingPolicy::Immediate => send_trying = true,
                TryingPolicy::After(d) => {
                    tx.trying_at = Some(now + d);
                    self.arm(id, now + d);
                }
                TryingPolicy::Never => {}
            }
        }
        self.txs.insert(id, tx);
        self.server_index.insert(key, id);
        if let Some(mk) = merge_key {
            self.merge_index.insert(mk, id);
        }
        if send_trying {
            self.send_trying(id);
        }
        self.emit(TuEvent::Request {
            tx: id,
            msg,
            source,
            transport,
            cancels,
        });
    }

    fn response_dest(&self, msg: &Message, source: SocketAddr, transport: Transport) -> SocketAddr {
        if self.cfg.symmetric_response || transport.is_reliable() {
            return source;
        }
        let v = msg.top_via();
        if v.rport().is_some() {
            return source;
        }
        let port = v.port.unwrap_or(transport.default_port());
        SocketAddr::new(source.ip(), port)
    }

    fn send_trying(&mut self, id: TxId) {
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        tx.trying_at = None;
        if tx.last_response.is_some() || tx.state != TxState::Proceeding {
            return;
        }
        let resp = ResponseBuilder::new(&tx.request, 100).build();
        tx.last_response = Some(resp.clone());
        let (dest, transport) = (tx.dest, tx.transport);
        self.stats.trying_sent += 1;
        self.transmit(resp, dest, transport);
    }

    fn on_server_retransmission(
        &mut self,
        id: TxId,
        msg: Message,
        source: SocketAddr,
        transport: Transport,
        now: Instant,
    ) {
        let is_ack = msg.method() == Some(&Method::Ack);
        let t4 = self.cfg.t4;
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        match (tx.kind, tx.state, is_ack) {
            (Kind::InviteServer, TxState::Completed, true) => {
                tx.state = TxState::Confirmed;
                tx.retrans_at = None;
                tx.timeout_at = None;
                let i = if tx.reliable() { Duration::ZERO } else { t4 };
                if i.is_zero() {
                    self.terminate(id);
                } else {
                    tx.end_at = Some(now + i);
                    self.arm(id, now + i);
                }
            }
            (Kind::InviteServer, TxState::Accepted, true) => {
                // RFC 6026: an ACK matching the transaction in Accepted goes
                // to the TU.
                tx.retrans_at = None;
                tx.awaiting_ack = false;
                self.emit(TuEvent::Ack {
                    tx: Some(id),
                    msg,
                    source,
                    transport,
                });
            }
            (_, _, true) => {
                self.stats.absorbed += 1;
            }
            (_, TxState::Proceeding | TxState::Completed, false) => {
                self.stats.absorbed += 1;
                if let Some(r) = tx.last_response.clone() {
                    let (dest, transport) = (tx.dest, tx.transport);
                    self.stats.retransmissions += 1;
                    self.transmit(r, dest, transport);
                }
            }
            _ => {
                // Trying (no response yet), Accepted, Confirmed: absorb.
                self.stats.absorbed += 1;
            }
        }
    }

    /// Sends a response through server transaction `tx` (built with
    /// [`ResponseBuilder`] from the request).
    pub fn send_response(&mut self, id: TxId, resp: Bytes, now: Instant) -> Result<(), TxError> {
        let status = status_of(&resp).ok_or(TxError::WrongKind("not a SIP response"))?;
        let cfg = self.cfg.clone();
        let tx = self.txs.get_mut(&id).ok_or(TxError::NoSuchTransaction)?;
        match tx.kind {
            Kind::InviteServer => match (tx.state, status) {
                (TxState::Proceeding, 100..=199) => {
                    tx.trying_at = None;
                    tx.last_response = Some(resp.clone());
                }
                (TxState::Proceeding, 200..=299) => {
                    tx.trying_at = None;
                    tx.state = TxState::Accepted;
                    tx.last_response = Some(resp.clone());
                    let l = now + 64 * cfg.t1; // Timer L
                    tx.end_at = Some(l);
                    self.timers.push(Reverse((l, id)));
                    if cfg.retransmit_2xx {
                        tx.awaiting_ack = true;
                        if !tx.reliable() {
                            tx.retrans_iv = cfg.t1;
                            tx.retrans_at = Some(now + cfg.t1);
                            self.timers.push(Reverse((now + cfg.t1, id)));
                        }
                        let req = &tx.request;
                        if let Some(ft) = req.from_tag() {
                            let k = AckKey {
                                call_id: req.call_id().to_string(),
                                from_tag: ft.to_string(),
                                seq: req.cseq().seq,
                            };
                            tx.ack_key = Some(k.clone());
                            self.ack_index.insert(k, id);
                        }
                    }
                }
                (TxState::Accepted, 200..=299) => {
                    // TU retransmission or a 2xx with another To tag: pass.
                    tx.last_response = Some(resp.clone());
                }
                (TxState::Proceeding, 300..=699) => {
                    tx.trying_at = None;
                    tx.state = TxState::Completed;
                    tx.last_response = Some(resp.clone());
                    if !tx.reliable() {
                        tx.retrans_iv = cfg.t1;
                        tx.retrans_at = Some(now + cfg.t1); // Timer G
                        self.timers.push(Reverse((now + cfg.t1, id)));
                    }
                    let h = now + 64 * cfg.t1; // Timer H
                    tx.timeout_at = Some(h);
                    self.timers.push(Reverse((h, id)));
                }
                _ => return Err(TxError::InvalidState),
            },
            Kind::NonInviteServer => match (tx.state, status) {
                (TxState::Trying | TxState::Proceeding, 100..=199) => {
                    tx.state = TxState::Proceeding;
                    tx.last_response = Some(resp.clone());
                }
                (TxState::Trying | TxState::Proceeding, 200..=699) => {
                    tx.state = TxState::Completed;
                    tx.last_response = Some(resp.clone());
                    let j = if tx.reliable() {
                        Duration::ZERO
                    } else {
                        64 * cfg.t1
                    };
                    let (dest, transport) = (tx.dest, tx.transport);
                    self.transmit(resp, dest, transport);
                    if j.is_zero() {
                        self.terminate(id);
                    } else {
                        if let Some(t) = self.txs.get_mut(&id) {
                            t.end_at = Some(now + j);
                        }
                        self.timers.push(Reverse((now + j, id)));
                    }
                    return Ok(());
                }
                _ => return Err(TxError::InvalidState),
            },
            _ => return Err(TxError::WrongKind("client transaction")),
        }
        let (dest, transport) = (tx.dest, tx.transport);
        self.transmit(resp, dest, transport);
        Ok(())
    }

    // ----------------------------------------------------------------
    // Timers and errors

    /// Processes every timer due at or before `now`.
    pub fn on_timer(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            self.fire(id, now);
        }
    }

    fn fire(&mut self, id: TxId, now: Instant) {
        let t2 = self.cfg.t2;
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        // 100 Trying
        if tx.trying_at.is_some_and(|t| t <= now) {
            self.send_trying(id);
        }
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        // Cleanup timers D, K, I, J, L, M.
        if tx.end_at.is_some_and(|t| t <= now) {
            let ack_timeout =
                tx.kind == Kind::InviteServer && tx.state == TxState::Accepted && tx.awaiting_ack;
            if ack_timeout {
                self.emit(TuEvent::AckTimeout { tx: id });
            }
            self.terminate(id);
            return;
        }
        // Timeouts B, F, H.
        if tx.timeout_at.is_some_and(|t| t <= now) {
            self.stats.timeouts += 1;
            self.emit(TuEvent::Timeout { tx: id });
            self.terminate(id);
            return;
        }
        // Retransmissions A, E, G, 2xx.
        if let Some(at) = tx.retrans_at
            && at <= now
        {
            let bytes = match tx.kind {
                Kind::InviteClient | Kind::NonInviteClient => tx.request.as_bytes().clone(),
                _ => match &tx.last_response {
                    Some(r) => r.clone(),
                    None => return,
                },
            };
            let next_iv = match (tx.kind, tx.state) {
                (Kind::InviteClient, _) => tx.retrans_iv * 2, // Timer A: no cap
                (Kind::NonInviteClient, TxState::Proceeding) => t2, // E in Proceeding
                _ => (tx.retrans_iv * 2).min(t2),             // E, G, 2xx
            };
            tx.retrans_iv = next_iv;
            let next = at + next_iv;
            tx.retrans_at = Some(next);
            let (dest, transport) = (tx.dest, tx.transport);
            self.arm(id, next);
            self.stats.retransmissions += 1;
            self.transmit(bytes, dest, transport);
        }
    }

    /// The shell could not deliver to `dest` over `transport` (ICMP error,
    /// connection refused/reset): every transaction sending there fails.
    pub fn on_transport_error(&mut self, dest: SocketAddr, transport: Transport) {
        let ids: Vec<TxId> = self
            .txs
            .iter()
            .filter(|(_, t)| t.dest == dest && t.transport == transport)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.emit(TuEvent::TransportError { tx: id });
            self.terminate(id);
        }
    }
}

/// Status code of a serialized response (`SIP/2.0 NNN ...`).
fn status_of(b: &[u8]) -> Option<u16> {
    if b.len() < 12 || !b[..8].eq_ignore_ascii_case(b"SIP/2.0 ") {
        return None;
    }
    let d = &b[8..11];
    if !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let s = (d[0] - b'0') as u16 * 100 + (d[1] - b'0') as u16 * 10 + (d[2] - b'0') as u16;
    (100..=699).contains(&s).then_some(s)
}

/// Builds the ACK for a non-2xx final response to `invite` (RFC 3261
/// §17.1.1.3): same Request-URI, Call-ID, From, CSeq number and top Via as
/// the INVITE, To from the response, Route headers copied.
pub fn build_ack(invite: &Message, resp: &Message) -> Bytes {
    let mut b = RequestBuilder::new(&Method::Ack, invite.request_uri_str().unwrap_or(""))
        .via_raw(invite.top_via_str())
        .max_forwards(70)
        .header("From", invite.from_str_raw())
        .header("To", resp.to_str_raw())
        .call_id(invite.call_id())
        .cseq(invite.cseq().seq);
    for r in invite.headers("Route") {
        b = b.header("Route", r);
    }
    b.build()
}

/// Builds a CANCEL for `invite` (RFC 3261 §9.1): same Request-URI, top Via
/// (branch), From, To, Call-ID, CSeq number and Route headers.
pub fn build_cancel(invite: &Message) -> Bytes {
    let mut b = RequestBuilder::new(&Method::Cancel, invite.request_uri_str().unwrap_or(""))
        .via_raw(invite.top_via_str())
        .max_forwards(70)
        .header("From", invite.from_str_raw())
        .header("To", invite.to_str_raw())
        .call_id(invite.call_id())
        .cseq(invite.cseq().seq);
    for r in invite.headers("Route") {
        b = b.header("Route", r);
    }
    b.build()
}
