//! Free ports and per-test loopback addresses.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

/// A loopback address no other call of this function in this process
/// returned: 127.1.x.y, offset by the process id so that concurrent test
/// processes rarely share one. Linux routes all of 127/8 to `lo`.
pub fn unique_loopback() -> IpAddr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let base = (std::process::id() % 200) * 300;
    let v = (base + n) % (250 * 250);
    IpAddr::V4(Ipv4Addr::new(
        127,
        1 + (v / 62_500) as u8,
        (v / 250 % 250) as u8 + 1,
        (v % 250) as u8 + 1,
    ))
}

/// A UDP port free on `ip` now (bound and released; small race accepted).
pub fn free_port(ip: IpAddr) -> u16 {
    for _ in 0..200 {
        let s = UdpSocket::bind(SocketAddr::new(ip, 0)).expect("bind udp :0");
        let port = s.local_addr().unwrap().port();
        if port < 65_000 {
            return port;
        }
    }
    panic!("no free UDP port on {ip}");
}

/// A port free for both UDP and TCP on `ip` (SIP listeners use both).
pub fn free_udp_tcp_port(ip: IpAddr) -> u16 {
    for _ in 0..200 {
        let u = UdpSocket::bind(SocketAddr::new(ip, 0)).expect("bind udp :0");
        let port = u.local_addr().unwrap().port();
        if port < 65_000 && TcpListener::bind(SocketAddr::new(ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for UDP and TCP on {ip}");
}

/// An even UDP port `p` with `p..p+4` free on `ip` (SIPp media sockets).
pub fn free_media_port(ip: IpAddr) -> u16 {
    for _ in 0..500 {
        let p = free_port(ip) & !1;
        if !(1024..=64_000).contains(&p) {
            continue;
        }
        let ok = (0..4).all(|i| UdpSocket::bind(SocketAddr::new(ip, p + i)).is_ok());
        if ok {
            return p;
        }
    }
    panic!("no free media port range on {ip}");
}

/// A TCP connection to `server` from `local_ip` (any port), so tests can
/// tell clients apart by source address.
pub fn tcp_connect_from(local_ip: IpAddr, server: SocketAddr) -> std::net::TcpStream {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(server), Type::STREAM, None).expect("socket");
    sock.bind(&SocketAddr::new(local_ip, 0).into())
        .expect("bind client socket");
    sock.connect_timeout(&server.into(), std::time::Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("connect to {server}: {e}"));
    sock.into()
}
