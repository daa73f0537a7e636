//! RTP port pool: even RTP ports with RTCP on port + 1 (RFC 3550 §11).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, UdpSocket};

use parking_lot::Mutex;
use socket2::{Domain, Protocol, Socket, Type};

/// Hands out bound (RTP, RTCP) socket pairs from a port range.
///
/// Freed ports go to the back of the queue so a port is not reused while
/// late packets of the previous call may still arrive. A port that cannot
/// be bound (used by another program) is skipped and retried later.
#[derive(Debug)]
pub struct PortPool {
    ip: IpAddr,
    free: Mutex<VecDeque<u16>>,
    socket_buffer: usize,
    total: usize,
}

impl PortPool {
    /// A pool over the even ports in `[min, max]` (RTCP uses port + 1 ≤ max).
    pub fn new(ip: IpAddr, min: u16, max: u16, socket_buffer: usize) -> PortPool {
        let first = min + (min & 1);
        let free: VecDeque<u16> = (first as u32..max as u32)
            .step_by(2)
            .map(|p| p as u16)
            .collect();
        PortPool {
            ip,
            total: free.len(),
            free: Mutex::new(free),
            socket_buffer,
        }
    }

    /// Number of pairs in the range.
    pub fn capacity(&self) -> usize {
        self.total
    }

    /// Number of pairs currently free.
    pub fn available(&self) -> usize {
        self.free.lock().len()
    }

    /// Bind the next free pair. Returns (port, rtp socket, rtcp socket).
    pub fn allocate(&self) -> Option<(u16, UdpSocket, UdpSocket)> {
        let mut free = self.free.lock();
        let tries = free.len();
        for _ in 0..tries {
            let port = free.pop_front()?;
            match (self.bind(port), self.bind(port + 1)) {
                (Ok(a), Ok(b)) => return Some((port, a, b)),
                _ => free.push_back(port),
            }
        }
        None
    }

    /// Return a pair (after its sockets are closed).
    pub fn release(&self, port: u16) {
        self.free.lock().push_back(port);
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
