//! Black-box: TCP connection caps and stream timeouts against the real
//! binary, with real sockets on loopback (127.0.0.0/8 sources).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use strowger_testkit::net::tcp_connect_from;

fn options_request(s: &TcpStream, branch: &str) -> Vec<u8> {
    let local = s.local_addr().unwrap();
    format!(
        "OPTIONS sip:{peer} SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK{branch}\r\n\
         From: <sip:probe@{local}>;tag={branch}\r\nTo: <sip:{peer}>\r\nCall-ID: {branch}@{local}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        peer = s.peer_addr().unwrap()
    )
    .into_bytes()
}

/// Sends OPTIONS on `s` and returns the status of the response, none if
/// the connection closed or nothing came within `T`.
fn options_on(s: &mut TcpStream) -> Option<u16> {
    let req = options_request(s, &strowger_testkit::sip::token());
    s.write_all(&req).ok()?;
    s.set_read_timeout(Some(T)).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf);
    line.split_whitespace().nth(1)?.parse().ok()
}

/// True if the server closed `s` (EOF or reset) within `polls` reads of
/// `every` each; `tick` runs before each poll (e.g. to write a byte).
fn closed_within(
    s: &mut TcpStream,
    polls: u32,
    every: Duration,
    mut tick: impl FnMut(&mut TcpStream),
) -> bool {
    s.set_read_timeout(Some(every)).unwrap();
    let mut b = [0u8; 256];
    for _ in 0..polls {
        tick(s);
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true, // reset
        }
    }
    false
}

fn switch_with(sip: &str) -> (Switch, SocketAddr) {
    let sw = Switch::builder(&format!("[sip]\n{sip}\n")).start();
    let addr = sw.addr();
    (sw, addr)
}

#[test]
fn per_ip_connection_cap_closes_the_extra_connections_only() {
    let (sw, addr) = switch_with("max_connections_per_ip = 4");
    let attacker: IpAddr = unique_loopback();
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = tcp_connect_from(attacker, addr);
        // each admitted connection works
        assert_eq!(options_on(&mut s), Some(200));
        held.push(s);
    }
    for i in 0..6 {
        let mut extra = tcp_connect_from(attacker, addr);
        assert!(
            closed_within(&mut extra, 100, Duration::from_millis(100), |_| {}),
            "connection {} above the per-IP cap stayed open",
            5 + i
        );
    }
    // an honest client from another address is served
    let mut honest = tcp_connect_from(unique_loopback(), addr);
    assert_eq!(options_on(&mut honest), Some(200));
    // the admitted ones still work; closing one frees a slot
    assert_eq!(options_on(&mut held[0]), Some(200));
    drop(held.pop());
    let mut again = None;
    for _ in 0..50 {
        let mut s = tcp_connect_from(attacker, addr);
        if options_on(&mut s) == Some(200) {
            again = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(again.is_some(), "a freed per-IP slot is not reused");
    let log = sw.log();
    assert!(
        log.contains("sip.max_connections_per_ip reached"),
        "no log line for the cap:\n{log}"
    );
    assert!(
        log.matches("sip.max_connections_per_ip reached").count() <= 2,
        "the cap's log line is not rate-limited:\n{log}"
    );
}

#[test]
fn global_connection_cap_keeps_udp_and_admitted_connections_working() {
    let (sw, addr) = switch_with("max_connections = 3\nmax_connections_per_ip = 100");
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = tcp_connect_from(unique_loopback(), addr);
            assert_eq!(options_on(&mut s), Some(200));
            s
        })
        .collect();
    let mut extra = tcp_connect_from(unique_loopback(), addr);
    assert!(
        closed_within(&mut extra, 100, Duration::from_millis(100), |_| {}),
        "connection above the global cap stayed open"
    );
    assert_eq!(options_on(&mut held[2]), Some(200));
    assert_eq!(sw.ping(T), Some(200), "UDP still answered at the cap");
    assert!(sw.log().contains("sip.max_connections reached"));
}

#[test]
fn slowloris_connection_is_closed_after_the_message_timeout() {
    // idle timeout far away: only the message timeout can close it
    let (_sw, addr) = switch_with("tcp_message_timeout_s = 2\ntcp_idle_timeout_s = 3600");
    let mut s = tcp_connect_from(unique_loopback(), addr);
    let header = b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKslow\r\nX-Slow: ";
    let mut sent = 0usize;
    // one byte every 100 ms, never finishing the headers: closed within
    // 30 s (bounded), long before the idle timeout
    let closed = closed_within(&mut s, 300, Duration::from_millis(100), |s| {
        let b = if sent < header.len() {
            header[sent]
        } else {
            b'a'
        };
        sent += 1;
        let _ = s.write_all(&[b]);
    });
    assert!(closed, "slowloris connection still open after {sent} bytes");
    // a fresh honest connection is served
    let mut honest = tcp_connect_from(unique_loopback(), addr);
    assert_eq!(options_on(&mut honest), Some(200));
}

#[test]
fn idle_connection_is_closed_and_keepalive_flow_stays() {
    let (_sw, addr) = switch_with("tcp_idle_timeout_s = 3\ntcp_message_timeout_s = 3600");
    let mut idle = tcp_connect_from(unique_loopback(), addr);
    assert_eq!(options_on(&mut idle), Some(200));
    let mut kept = tcp_connect_from(unique_loopback(), addr);
    assert_eq!(options_on(&mut kept), Some(200));
    // the keep-alive flow pings (CRLFCRLF) every 300 ms; the other says
    // nothing: it is closed (bounded: 40 polls of 300 ms = 12 s)
    let mut idle_closed = false;
    kept.set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    for _ in 0..40 {
        kept.write_all(b"\r\n\r\n").unwrap();
        let mut pong = [0u8; 64];
        let _ = kept.read(&mut pong);
        if closed_within(&mut idle, 1, Duration::from_millis(300), |_| {}) {
            idle_closed = true;
            break;
        }
    }
    assert!(
        idle_closed,
        "idle connection not closed by the idle timeout"
    );
    // keep pinging past another idle period, then the flow still works
    for _ in 0..15 {
        kept.write_all(b"\r\n\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    let mut pong = [0u8; 256];
    kept.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while matches!(kept.read(&mut pong), Ok(n) if n > 0) {}
    assert_eq!(
        options_on(&mut kept),
        Some(200),
        "keep-alive flow was closed"
    );
}

#[test]
fn peer_that_does_not_read_is_disconnected_at_the_send_queue_cap() {
    let (sw, addr) = switch_with("tcp_max_send_queue_bytes = 65536");
    let mut s = tcp_connect_from(unique_loopback(), addr);
    let local = s.local_addr().unwrap();
    // ~25 kB requests whose responses echo the Via headers; never read:
    // 600 of them (15 MB of responses) exceed the socket buffers and the cap
    let stuffing: String = (0..400)
        .map(|j| {
            format!(
                "Via: SIP/2.0/TCP 192.0.2.{}:5060;branch=z9hG4bKst{j:08}\r\n",
                j % 250
            )
        })
        .collect();
    let mut write_failed = false;
    for i in 0..600 {
        let req = format!(
            "OPTIONS sip:{addr} SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bKnr{i}\r\n{stuffing}\
             From: <sip:p@{local}>;tag=t{i}\r\nTo: <sip:{addr}>\r\nCall-ID: nr{i}@x\r\n\
             CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        if s.write_all(req.as_bytes()).is_err() {
            write_failed = true;
            break;
        }
    }
    // what was queued before the close drains, then EOF (or a reset)
    s.set_read_timeout(Some(T)).unwrap();
    let mut b = vec![0u8; 65536];
    let mut total = 0usize;
    let closed = loop {
        match s.read(&mut b) {
            Ok(0) => break true,
            Ok(n) => total += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break false;
            }
            Err(_) => break true,
        }
    };
    assert!(
        closed,
        "connection of a non-reading peer stayed open (write failed: {write_failed}, read {total} bytes)"
    );
    assert!(
        total < 600 * 25_000,
        "every response was delivered: {total}"
    );
    assert!(sw.log().contains("sip.tcp_max_send_queue_bytes reached"));
    assert_eq!(sw.ping(T), Some(200));
}
