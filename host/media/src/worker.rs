//! The fast path: one OS thread per worker, each with its own epoll set and
//! the streams assigned to it. Per wake-up it reads every readable socket
//! with one `recvmmsg` (up to [`BATCH`] datagrams into preallocated
//! buffers) and forwards them with one `sendmmsg` per destination run.
//! Nothing is allocated per packet; the stream state lock is taken once
//! per batch (uncontended: only the control plane touches it otherwise).

use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

use crate::stream::Stream;

/// Datagrams read per `recvmmsg` call.
pub const BATCH: usize = 32;
/// Receive buffer per datagram (larger datagrams are dropped as truncated).
pub const BUF_SIZE: usize = 2048;
const WAKE: u64 = u64::MAX;

pub(crate) enum Cmd {
    Add(Arc<Stream>),
    Remove(Arc<Stream>),
}

/// Counters of one worker (relaxed atomics, updated once per batch).
#[derive(Debug, Default)]
pub(crate) struct WorkerCounters {
    pub received: AtomicU64,
    pub forwarded: AtomicU64,
    pub dropped: AtomicU64,
    pub send_errors: AtomicU64,
    pub wakeups: AtomicU64,
}

/// Control-side handle of a worker thread.
pub(crate) struct WorkerHandle {
    epfd: OwnedFd,
    evfd: OwnedFd,
    cmds: Mutex<Vec<Cmd>>,
    stop: AtomicBool,
    pub counters: WorkerCounters,
}

impl WorkerHandle {
    pub fn new() -> std::io::Result<Arc<WorkerHandle>> {
        // SAFETY: plain syscalls; results checked.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epfd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let epfd = unsafe { OwnedFd::from_raw_fd(epfd) };
        let evfd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if evfd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let evfd = unsafe { OwnedFd::from_raw_fd(evfd) };
        epoll_add(epfd.as_raw_fd(), evfd.as_raw_fd(), WAKE)?;
        Ok(Arc::new(WorkerHandle {
            epfd,
            evfd,
            cmds: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            counters: WorkerCounters::default(),
        }))
    }

    pub fn send(&self, cmd: Cmd) {
        self.cmds.lock().push(cmd);
        self.wake();
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake();
    }

    fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our eventfd.
        unsafe {
            libc::write(self.evfd.as_raw_fd(), (&one as *const u64).cast(), 8);
        }
    }
}

fn epoll_add(epfd: RawFd, fd: RawFd, token: u64) -> std::io::Result<()> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    // SAFETY: valid fds and event struct.
    if unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn epoll_del(epfd: RawFd, fd: RawFd) {
    // SAFETY: valid fds; a null event is allowed for DEL.
    unsafe {
        libc::epoll_ctl(epfd, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut());
    }
}

/// Decode a kernel socket address.
pub(crate) fn from_sockaddr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match ss.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: family says this storage holds a sockaddr_in.
            let a: &libc::sockaddr_in = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: family says this storage holds a sockaddr_in6.
            let a: &libc::sockaddr_in6 = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Encode a socket address for the kernel; returns its length.
pub(crate) fn to_sockaddr(addr: &SocketAddr, ss: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large enough and aligned for sockaddr_in.
            let s: &mut libc::sockaddr_in =
                unsafe { &mut *(ss as *mut _ as *mut libc::sockaddr_in) };
            s.sin_family = libc::AF_INET as libc::sa_family_t;
            s.sin_port = a.port().to_be();
            s.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            s.sin_zero = [0; 8];
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above for sockaddr_in6.
            let s: &mut libc::sockaddr_in6 =
                unsafe { &mut *(ss as *mut _ as *mut libc::sockaddr_in6) };
            s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            s.sin6_port = a.port().to_be();
            s.sin6_flowinfo = a.flowinfo();
            s.sin6_addr.s6_addr = a.ip().octets();
            s.sin6_scope_id = a.scope_id();
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Preallocated buffers for one worker: receive and send `mmsghdr` arrays
/// pointing into fixed packet buffers. Boxed so the self-pointers stay valid.
struct Buffers {
    riov: [libc::iovec; BATCH],
    rname: [libc::sockaddr_storage; BATCH],
    rhdr: [libc::mmsghdr; BATCH],
    siov: [libc::iovec; BATCH],
    sname: [libc::sockaddr_storage; BATCH],
    shdr: [libc::mmsghdr; BATCH],
}

impl Buffers {
    #[allow(clippy::needless_range_loop)] // parallel arrays, self-referencing pointers
    fn new(bufs: &mut [[u8; BUF_SIZE]; BATCH]) -> Box<Buffers> {
        // SAFETY: all fields are plain C data for which zero is valid.
        let mut b: Box<Buffers> = Box::new(unsafe { zeroed() });
        for i in 0..BATCH {
            b.riov[i].iov_base = bufs[i].as_mut_ptr().cast();
            b.riov[i].iov_len = BUF_SIZE;
            b.rhdr[i].msg_hdr.msg_iov = &mut b.riov[i];
            b.rhdr[i].msg_hdr.msg_iovlen = 1;
            b.rhdr[i].msg_hdr.msg_name = (&mut b.rname[i] as *mut libc::sockaddr_storage).cast();
            b.shdr[i].msg_hdr.msg_iov = &mut b.siov[i];
            b.shdr[i].msg_hdr.msg_iovlen = 1;
            b.shdr[i].msg_hdr.msg_name = (&mut b.sname[i] as *mut libc::sockaddr_storage).cast();
        }
        b
    }
}

/// Run a worker until stopped. `epoch` is the relay's time origin.
pub(crate) fn run(h: Arc<WorkerHandle>, epoch: Instant, coalesce: std::time::Duration) {
    let epfd = h.epfd.as_raw_fd();
    let mut slots: Vec<Option<Arc<Stream>>> = Vec::with_capacity(1024);
    let mut free: Vec<usize> = Vec::new();
    let mut bufs: Box<[[u8; BUF_SIZE]; BATCH]> = Box::new([[0u8; BUF_SIZE]; BATCH]);
    let mut b = Buffers::new(&mut bufs);
    // Per received packet: (output fd, destination); None = drop.
    let mut out: [(RawFd, Option<SocketAddr>); BATCH] = [(-1, None); BATCH];
    // SAFETY: epoll_event is plain data.
    let mut events: Vec<libc::epoll_event> = vec![unsafe { zeroed() }; 512];
    while !h.stop.load(Ordering::Acquire) {
        // SAFETY: events buffer is valid for its length.
        let n = unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), events.len() as i32, 250) };
        if n < 0 {
            continue; // EINTR
        }
        let now = epoch.elapsed();
        h.counters.wakeups.fetch_add(1, Ordering::Relaxed);
        let (mut rx, mut fwd, mut drop_, mut serr) = (0u64, 0u64, 0u64, 0u64);
        for ev in &events[..n as usize] {
            let tok = ev.u64;
            if tok == WAKE {
                let mut v = 0u64;
                // SAFETY: reads 8 bytes into a u64.
                unsafe { libc::read(h.evfd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
                let cmds = std::mem::take(&mut *h.cmds.lock());
                for c in cmds {
                    match c {
                        Cmd::Add(s) => {
                            let slot = free.pop().unwrap_or_else(|| {
                                slots.push(None);
                                slots.len() - 1
                            });
                            s.slot.store(slot, Ordering::Release);
                            for leg in 0..2 {
                                for comp in 0..2 {
                                    let token =
                                        ((slot as u64) << 2) | ((leg as u64) << 1) | comp as u64;
                                    if let Err(e) = epoll_add(epfd, s.fd(leg, comp), token) {
                                        tracing::error!("media worker: epoll add failed: {e}");
                                    }
                                }
                            }
                            slots[slot] = Some(s);
                        }
                        Cmd::Remove(s) => {
                            let slot = s.slot();
                            if let Some(Some(cur)) = slots.get(slot)
                                && Arc::ptr_eq(cur, &s)
                            {
                                for leg in 0..2 {
                                    for comp in 0..2 {
                                        epoll_del(epfd, s.fd(leg, comp));
                                    }
                                }
                                slots[slot] = None;
                                free.push(slot);
                            }
                        }
                    }
                }
                continue;
            }
            let slot = (tok >> 2) as usize;
            let leg = ((tok >> 1) & 1) as usize;
            let comp = (tok & 1) as usize;
            let Some(Some(stream)) = slots.get(slot) else {
                continue;
            };
            let fd = stream.fd(leg, comp);
            for i in 0..BATCH {
                b.rhdr[i].msg_hdr.msg_namelen =
                    size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                b.rhdr[i].msg_hdr.msg_flags = 0;
            }
            // SAFETY: rhdr entries point into our boxed buffers.
            let got = unsafe {
                libc::recvmmsg(
                    fd,
                    b.rhdr.as_mut_ptr(),
                    BATCH as u32,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if got <= 0 {
                continue;
            }
            let got = got as usize;
            rx += got as u64;
            {
                let mut st = stream.state.lock();
                for i in 0..got {
                    out[i] = (-1, None);
                    let len = b.rhdr[i].msg_len as usize;
                    if b.rhdr[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                        continue;
                    }
                    let Some(src) = from_sockaddr(&b.rname[i]) else {
                        continue;
                    };
                    if let Some((ol, oc, dst)) = st.route(leg, comp, src, &bufs[i][..len], now) {
                        out[i] = (stream.fd(ol, oc), Some(dst));
                    }
                }
                if !st.dtmf_out.is_empty() {
                    stream.report_dtmf(&mut st);
                }
            }
            // Send runs of packets with the same socket and destination.
            let mut i = 0;
            while i < got {
                let (ofd, dst) = out[i];
                let Some(dst) = dst else {
                    drop_ += 1;
                    i += 1;
                    continue;
                };
                let salen = to_sockaddr(&dst, &mut b.sname[0]);
                let mut k = 0;
                while i + k < got && out[i + k].0 == ofd && out[i + k].1 == Some(dst) {
                    let p = i + k;
                    b.siov[k].iov_base = bufs[p].as_mut_ptr().cast();
                    b.siov[k].iov_len = b.rhdr[p].msg_len as usize;
                    b.shdr[k].msg_hdr.msg_name =
                        (&mut b.sname[0] as *mut libc::sockaddr_storage).cast();
                    b.shdr[k].msg_hdr.msg_namelen = salen;
                    k += 1;
                }
                // SAFETY: shdr[..k] point to valid buffers and address.
                let sent = unsafe {
                    libc::sendmmsg(ofd, b.shdr.as_mut_ptr(), k as u32, libc::MSG_DONTWAIT)
                };
                let sent = if sent < 0 { 0 } else { sent as usize };
                fwd += sent as u64;
                serr += (k - sent) as u64;
                i += k;
            }
        }
        if !coalesce.is_zero() && rx > 0 {
            std::thread::sleep(coalesce);
        }
        if rx > 0 {
            let c = &h.counters;
            c.received.fetch_add(rx, Ordering::Relaxed);
            c.forwarded.fetch_add(fwd, Ordering::Relaxed);
            c.dropped.fetch_add(drop_, Ordering::Relaxed);
            c.send_errors.fetch_add(serr, Ordering::Relaxed);
        }
    }
}
