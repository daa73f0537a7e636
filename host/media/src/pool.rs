//! RTP port pool: even RTP ports with RTCP on port + 1 (RFC 3550 §11).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::Rng;
use socket2::{Domain, Protocol, Socket, Type};

/// A released pair is not handed out again for this long (late packets of
/// the previous call), unless nothing else is free.
const REUSE_DELAY: Duration = Duration::from_secs(30);

/// Hands out bound (RTP, RTCP) socket pairs from a port range.
///
/// Pairs are picked at random among the free ones (O(1): swap-remove from
/// a vector), so the next call's port cannot be guessed from the previous
/// one. Freed pairs cool down first (FIFO, [`REUSE_DELAY`]) so a port is
/// not reused while late packets of the previous call may still arrive;
/// when nothing else is free the coolest one is used. A port that cannot
/// be bound (used by another program) is skipped and retried later.
#[derive(Debug)]
pub struct PortPool {
    ip: IpAddr,
    state: Mutex<Free>,
    socket_buffer: usize,
    total: usize,
}

#[derive(Debug)]
struct Free {
    /// Free RTP ports, in no particular order.
    ready: Vec<u16>,
    /// Released ports with the time of release, oldest first.
    cooling: VecDeque<(u16, Instant)>,
}

impl Free {
    fn len(&self) -> usize {
        self.ready.len() + self.cooling.len()
    }
}

impl PortPool {
    /// A pool over the even ports in `[min, max]` (RTCP uses port + 1 ≤ max).
    pub fn new(ip: IpAddr, min: u16, max: u16, socket_buffer: usize) -> PortPool {
        let first = min + (min & 1);
        let ready: Vec<u16> = (first as u32..max as u32)
            .step_by(2)
            .map(|p| p as u16)
            .collect();
        PortPool {
            ip,
            total: ready.len(),
            state: Mutex::new(Free {
                ready,
                cooling: VecDeque::new(),
            }),
            socket_buffer,
        }
    }

    /// Number of pairs in the range.
    pub fn capacity(&self) -> usize {
        self.total
    }

    /// Number of pairs currently free (cooling ones included).
    pub fn available(&self) -> usize {
        self.state.lock().len()
    }

    /// Bind a free pair picked at random. Returns (port, rtp socket, rtcp
    /// socket).
    pub fn allocate(&self) -> Option<(u16, UdpSocket, UdpSocket)> {
        let mut st = self.state.lock();
        let now = Instant::now();
        while let Some(&(p, t)) = st.cooling.front() {
            if now.duration_since(t) < REUSE_DELAY {
                break;
            }
            st.cooling.pop_front();
            st.ready.push(p);
        }
        let mut rng = rand::rng();
        let tries = st.len();
        for _ in 0..tries {
            let port = if st.ready.is_empty() {
                st.cooling.pop_front()?.0
            } else {
                let i = rng.random_range(0..st.ready.len());
                st.ready.swap_remove(i)
            };
            match (self.bind(port), self.bind(port + 1)) {
                (Ok(a), Ok(b)) => return Some((port, a, b)),
                _ => st.cooling.push_back((port, now)),
            }
        }
        None
    }

    /// Return a pair (after its sockets are closed).
    pub fn release(&self, port: u16) {
        self.state.lock().cooling.push_back((port, Instant::now()));
    }

    fn bind(&self, port: u16) -> std::io::Result<UdpSocket> {
        let addr = SocketAddr::new(self.ip, port);
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if self.socket_buffer > 0 {
            let _ = s.set_recv_buffer_size(self.socket_buffer);
            let _ = s.set_send_buffer_size(self.socket_buffer);
        }
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        Ok(s.into())
    }
}
