//! Flows: where a message came from or goes to (transport, addresses and,
//! for connection-oriented transports, the connection).

use std::fmt;
use std::net::SocketAddr;

/// SIP transport of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP datagrams.
    Udp,
    /// TCP stream.
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl Transport {
    /// Upper-case name as written in Via (`UDP`, `TCP`, `TLS`).
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// Lower-case name as written in URI `transport=` parameters.
    pub fn param_name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    /// Parses `udp`/`tcp`/`tls` in any case.
    pub fn parse(s: &str) -> Option<Transport> {
        if s.eq_ignore_ascii_case("udp") {
            Some(Transport::Udp)
        } else if s.eq_ignore_ascii_case("tcp") {
            Some(Transport::Tcp)
        } else if s.eq_ignore_ascii_case("tls") {
            Some(Transport::Tls)
        } else {
            None
        }
    }

    /// True for stream transports (TCP, TLS).
    pub fn is_stream(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// Default port of the transport (5060, or 5061 for TLS).
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Tls => 5061,
            _ => 5060,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.param_name())
    }
}

/// Identifier of one accepted or opened stream connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// A flow: a message's transport, our local address, the peer's address
/// and, for TCP/TLS, the connection it arrived on (RFC 5626 terminology).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Transport.
    pub transport: Transport,
    /// Our listening (UDP) or connection-local address.
    pub local: SocketAddr,
    /// The peer's address (packet source).
    pub remote: SocketAddr,
    /// The stream connection, if any.
    pub conn: Option<ConnId>,
}

/// Where the shell should send a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Back on an existing flow (responses, requests to a registered
    /// contact): for a stream, the same connection if it is still open,
    /// otherwise a new connection to `remote`.
    Flow(Flow),
    /// To an address with a transport; for streams, reuse a connection to
    /// that address if one is open, otherwise connect.
    Addr {
        /// Transport to use.
        transport: Transport,
        /// Destination.
        addr: SocketAddr,
    },
}

impl Target {
    /// Transport used for this target.
    pub fn transport(&self) -> Transport {
        match self {
            Target::Flow(f) => f.transport,
            Target::Addr { transport, .. } => *transport,
        }
    }
    /// Destination address.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Target::Flow(f) => f.remote,
            Target::Addr { addr, .. } => *addr,
        }
    }
}
