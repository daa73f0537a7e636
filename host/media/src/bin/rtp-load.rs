//! RTP load generator for `benches/media/run.sh`.
//!
//! `rtp-load run` drives a relay over the rtpengine ng protocol (Strowger's
//! `strowger-mediad` or rtpengine itself): for each step N it sets up N
//! calls (offer/answer), sends N bidirectional G.711 streams (172-byte RTP
//! = 160-byte payload every 20 ms each way) for `--duration` seconds, counts
//! what comes back, measures the relay's CPU from /proc/<pid>/stat, and
//! deletes the calls. All "phones" of one side share one socket (so the
//! generator itself is cheap: sendmmsg/recvmmsg over two sockets); streams
//! are told apart by the relay port they come from.
//!
//! `rtp-load report` merges the per-relay JSON files into a markdown table.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use strowger_media::ng::{Bencode, NgClient};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Step {
    streams: usize,
    duration_s: f64,
    /// Packets sent by the phones (both directions).
    sent: u64,
    /// Packets that came back through the relay.
    received: u64,
    loss_pct: f64,
    /// Streams (one direction each) that received nothing at all.
    dead_directions: usize,
    /// Relay CPU seconds (utime+stime) during the sending window.
    relay_cpu_s: f64,
    relay_cpu_pct: f64,
    /// Relay CPU per relayed packet.
    relay_us_per_packet: f64,
    /// Load generator CPU seconds during the window (for context).
    loadgen_cpu_s: f64,
    setup_s: f64,
    /// System-wide UDP receive-buffer overflows during the step (/proc/net/snmp):
    /// where loss happened, if anywhere.
    #[serde(default)]
    udp_rcvbuf_errors: u64,
    /// System-wide UDP send-buffer errors during the step.
    #[serde(default)]
    udp_sndbuf_errors: u64,
    /// Offered rate actually achieved by the generator (packets/s, both directions).
    offered_pps: f64,
    /// Nominal rate: 100 packets/s per bidirectional stream.
    nominal_pps: f64,
    /// The generator reached >= 95 % of the nominal rate (else the step did
    /// not really test N streams: the machine was too busy).
    rate_reached: bool,
    /// loss < 0.1 %, every stream carried packets, and the rate was reached.
    pass: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunResult {
    relay: String,
    version: String,
    steps: Vec<Step>,
    max_streams_under_0_1pct: usize,
}

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|s| s.as_str())
}

fn args_all<'a>(args: &'a [String], name: &str) -> Vec<&'a str> {
    args.iter()
        .enumerate()
        .filter(|(_, a)| *a == name)
        .filter_map(|(i, _)| args.get(i + 1).map(|s| s.as_str()))
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(|s| s.as_str()) {
        Some("run") => run(&args),
        Some("report") => report(&args),
        _ => {
            eprintln!(
                "rtp-load run --ng ADDR --pid PID --label NAME [--version V] [--steps 250,500] [--duration 10] --out FILE\n\
                 rtp-load report --in A.json [--in B.json] --md OUT.md --json OUT.json"
            );
            std::process::exit(2);
        }
    }
}

fn proc_cpu_s(pid: u32) -> f64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the ")" of the command name: state is field 3; utime 14, stime 15.
    let rest = &s[s.rfind(')').map(|i| i + 2).unwrap_or(0)..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ut: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let st: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ut + st) / hz
}

fn self_cpu_s() -> f64 {
    proc_cpu_s(std::process::id())
}

fn big_buffers(s: &UdpSocket) {
    let size: libc::c_int = 16 * 1024 * 1024;
    for opt in [
        libc::SO_RCVBUFFORCE,
        libc::SO_SNDBUFFORCE,
        libc::SO_RCVBUF,
        libc::SO_SNDBUF,
    ] {
        // SAFETY: setsockopt with a c_int value.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&size as *const libc::c_int).cast(),
                4,
            );
        }
    }
}

fn phone_sdp(port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=load\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )
}

fn sdp_port(sdp: &str) -> Option<u16> {
    let m = sdp.lines().find(|l| l.starts_with("m=audio "))?;
    m.split_whitespace().nth(1)?.parse().ok()
}

fn run(args: &[String]) {
    let ng: SocketAddr = arg(args, "--ng").expect("--ng").parse().expect("--ng addr");
    let pid: u32 = arg(args, "--pid").expect("--pid").parse().expect("--pid");
    let label = arg(args, "--label").unwrap_or("relay").to_string();
    let version = arg(args, "--version").unwrap_or("").to_string();
    let out = arg(args, "--out").expect("--out").to_string();
    let duration: f64 = arg(args, "--duration").unwrap_or("10").parse().unwrap();
    let steps: Vec<usize> = arg(args, "--steps")
        .unwrap_or("250,500,1000,2000,3000")
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let mut client = NgClient::new(ng).expect("ng client");
    let pong = client.command(&Bencode::dict(&[("command", Bencode::str("ping"))]));
    if pong.is_err() {
        eprintln!("{label}: ng server at {ng} does not answer ping");
        std::process::exit(1);
    }
    let mut results = Vec::new();
    for (k, &n) in steps.iter().enumerate() {
        let step = match run_step(&mut client, pid, &format!("{label}-{k}"), n, duration) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{label}: {n} streams: setup failed: {e}");
                break;
            }
        };
        eprintln!(
            "{label}: {n} streams: offered {:.0}/{:.0} pps, sent {} recv {} loss {:.4}% (udp rcvbuf errors {}) dead {} relay cpu {:.1}% ({:.2} us/pkt), loadgen cpu {:.2}s",
            step.offered_pps,
            step.nominal_pps,
            step.sent,
            step.received,
            step.loss_pct,
            step.udp_rcvbuf_errors,
            step.dead_directions,
            step.relay_cpu_pct,
            step.relay_us_per_packet,
            step.loadgen_cpu_s
        );
        let pass = step.pass;
        results.push(step);
        if !pass {
            break; // larger steps would fail too; save the machine
        }
    }
    let max = results
        .iter()
        .filter(|s| s.pass)
        .map(|s| s.streams)
        .max()
        .unwrap_or(0);
    let r = RunResult {
        relay: label,
        version,
        steps: results,
        max_streams_under_0_1pct: max,
    };
    std::fs::write(&out, serde_json::to_string_pretty(&r).unwrap()).expect("write --out");
}

struct Side {
    sock: UdpSocket,
    /// relay source port -> stream index (u32::MAX = unknown)
    by_port: Vec<u32>,
    /// per-stream received counters
    counts: Vec<AtomicU64>,
}

fn run_step(
    client: &mut NgClient,
    pid: u32,
    tag: &str,
    n: usize,
    duration: f64,
) -> Result<Step, String> {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    big_buffers(&a);
    big_buffers(&b);
    let pa_own = a.local_addr().unwrap().port();
    let pb_own = b.local_addr().unwrap().port();
    // Setup: relay port that A sends to (pa) and that B sends to (pb).
    let t0 = Instant::now();
    let mut pa = vec![0u16; n];
    let mut pb = vec![0u16; n];
    for i in 0..n {
        let call = format!("{tag}-{i}");
        let offer = Bencode::dict(&[
            ("command", Bencode::str("offer")),
            ("call-id", Bencode::str(&call)),
            ("from-tag", Bencode::str("a")),
            ("sdp", Bencode::str(&phone_sdp(pa_own))),
        ]);
        let r = client
            .command(&offer)
            .map_err(|e| format!("offer {i}: {e}"));
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                delete_calls(client, tag, i + 1);
                return Err(e);
            }
        };
        pb[i] = sdp_port(r.get("sdp").and_then(|s| s.as_str()).unwrap_or(""))
            .ok_or("offer without sdp")?;
        let answer = Bencode::dict(&[
            ("command", Bencode::str("answer")),
            ("call-id", Bencode::str(&call)),
            ("from-tag", Bencode::str("a")),
            ("to-tag", Bencode::str("b")),
            ("sdp", Bencode::str(&phone_sdp(pb_own))),
        ]);
        let r = client
            .command(&answer)
            .map_err(|e| format!("answer {i}: {e}"));
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                delete_calls(client, tag, i + 1);
                return Err(e);
            }
        };
        pa[i] = sdp_port(r.get("sdp").and_then(|s| s.as_str()).unwrap_or(""))
            .ok_or("answer without sdp")?;
    }
    let setup_s = t0.elapsed().as_secs_f64();
    let mk_side = |sock: UdpSocket, ports: &[u16]| {
        let mut by_port = vec![u32::MAX; 65536];
        for (i, &p) in ports.iter().enumerate() {
            by_port[p as usize] = i as u32;
        }
        Arc::new(Side {
            sock,
            by_port,
            counts: (0..ports.len()).map(|_| AtomicU64::new(0)).collect(),
        })
    };
    // B receives from the relay's B-side port (pb), A from pa.
    let side_a = mk_side(a, &pa);
    let side_b = mk_side(b, &pb);
    let stop = Arc::new(AtomicBool::new(false));
    let rx: Vec<_> = [side_a.clone(), side_b.clone()]
        .into_iter()
        .map(|s| {
            let stop = stop.clone();
            std::thread::spawn(move || receiver(s, stop))
        })
        .collect();

    let snmp0 = udp_snmp();
    let cpu0 = proc_cpu_s(pid);
    let me0 = self_cpu_s();
    let start = Instant::now();
    let sent = sender(&side_a.sock, &side_b.sock, &pa, &pb, duration);
    let window = start.elapsed().as_secs_f64();
    let cpu1 = proc_cpu_s(pid);
    let me1 = self_cpu_s();
    std::thread::sleep(Duration::from_millis(1000)); // drain
    stop.store(true, Ordering::Release);
    for t in rx {
        let _ = t.join();
    }
    let mut received = 0;
    let mut dead = 0;
    for s in [&side_a, &side_b] {
        for c in &s.counts {
            let v = c.load(Ordering::Relaxed);
            received += v;
            if v == 0 {
                dead += 1;
            }
        }
    }
    let snmp1 = udp_snmp();
    delete_calls(client, tag, n);
    let loss_pct = if sent == 0 {
        100.0
    } else {
        100.0 * (sent.saturating_sub(received)) as f64 / sent as f64
    };
    let relay_cpu_s = cpu1 - cpu0;
    let offered_pps = sent as f64 / window;
    let nominal_pps = n as f64 * 100.0;
    let rate_reached = offered_pps >= 0.95 * nominal_pps;
    Ok(Step {
        streams: n,
        duration_s: window,
        sent,
        received,
        loss_pct,
        dead_directions: dead,
        relay_cpu_s,
        relay_cpu_pct: 100.0 * relay_cpu_s / window,
        relay_us_per_packet: if received > 0 {
            relay_cpu_s * 1e6 / received as f64
        } else {
            0.0
        },
        loadgen_cpu_s: me1 - me0,
        setup_s,
        udp_rcvbuf_errors: snmp1.0.saturating_sub(snmp0.0),
        udp_sndbuf_errors: snmp1.1.saturating_sub(snmp0.1),
        offered_pps,
        nominal_pps,
        rate_reached,
        pass: loss_pct < 0.1 && dead == 0 && rate_reached,
    })
}

/// (RcvbufErrors, SndbufErrors) of the `Udp:` line of /proc/net/snmp.
fn udp_snmp() -> (u64, u64) {
    let Ok(t) = std::fs::read_to_string("/proc/net/snmp") else {
        return (0, 0);
    };
    let mut udp = t.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(h), Some(v)) = (udp.next(), udp.next()) else {
        return (0, 0);
    };
    let get = |name: &str| {
        h.split_whitespace()
            .position(|x| x == name)
            .and_then(|i| v.split_whitespace().nth(i))
            .and_then(|x| x.parse().ok())
            .unwrap_or(0)
    };
    (get("RcvbufErrors"), get("SndbufErrors"))
}

fn delete_calls(client: &mut NgClient, tag: &str, n: usize) {
    for i in 0..n {
        let del = Bencode::dict(&[
            ("command", Bencode::str("delete")),
            ("call-id", Bencode::str(&format!("{tag}-{i}"))),
            ("from-tag", Bencode::str("a")),
        ]);
        let _ = client.command(&del);
    }
}

const SEND_BATCH: usize = 64;

/// Send one packet per stream per direction every 20 ms, spread over 1 ms
/// ticks; returns the number of packets sent.
fn sender(a: &UdpSocket, b: &UdpSocket, pa: &[u16], pb: &[u16], duration: f64) -> u64 {
    let n = pa.len();
    let mut seq = vec![0u16; n];
    let mut pkt = [[0u8; 172]; SEND_BATCH];
    // SAFETY: plain C structs, zero is valid.
    let mut iov: [libc::iovec; SEND_BATCH] = unsafe { std::mem::zeroed() };
    let mut names: [libc::sockaddr_in; SEND_BATCH] = unsafe { std::mem::zeroed() };
    let mut hdrs: [libc::mmsghdr; SEND_BATCH] = unsafe { std::mem::zeroed() };
    let start = Instant::now();
    let total_ticks = (duration * 1000.0) as u64;
    let mut sent = 0u64;
    let mut tick = 0u64;
    let deadline = Duration::from_secs_f64(duration * 1.5);
    while tick < total_ticks && start.elapsed() < deadline {
        let due = start + Duration::from_millis(tick);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let phase = (tick % 20) as usize;
        for (sock, ports, ssrc_base) in [(a, pa, 0x1000_0000u32), (b, pb, 0x2000_0000u32)] {
            let mut k = 0;
            let mut i = phase;
            loop {
                if i < n {
                    let p = &mut pkt[k];
                    p[0] = 0x80;
                    p[1] = 0;
                    let s = seq[i];
                    p[2..4].copy_from_slice(&s.to_be_bytes());
                    p[4..8].copy_from_slice(&(s as u32 * 160).to_be_bytes());
                    p[8..12].copy_from_slice(&(ssrc_base + i as u32).to_be_bytes());
                    names[k].sin_family = libc::AF_INET as libc::sa_family_t;
                    names[k].sin_port = ports[i].to_be();
                    names[k].sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
                    iov[k].iov_base = p.as_mut_ptr().cast();
                    iov[k].iov_len = 172;
                    hdrs[k].msg_hdr.msg_iov = &mut iov[k];
                    hdrs[k].msg_hdr.msg_iovlen = 1;
                    hdrs[k].msg_hdr.msg_name = (&mut names[k] as *mut libc::sockaddr_in).cast();
                    hdrs[k].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
                    k += 1;
                    i += 20;
                }
                if k == SEND_BATCH || (i >= n && k > 0) {
                    let mut off = 0;
                    while off < k {
                        // SAFETY: hdrs[off..k] are initialised above.
                        let r = unsafe {
                            libc::sendmmsg(
                                sock.as_raw_fd(),
                                hdrs.as_mut_ptr().add(off),
                                (k - off) as u32,
                                0,
                            )
                        };
                        if r <= 0 {
                            break;
                        }
                        off += r as usize;
                    }
                    sent += off as u64;
                    k = 0;
                }
                if i >= n {
                    break;
                }
            }
        }
        // advance sequence numbers of the streams that sent this tick
        let mut i = phase;
        while i < n {
            seq[i] = seq[i].wrapping_add(1);
            i += 20;
        }
        tick += 1;
    }
    // Each stream sent in both directions: the seq counter advanced once per pair.
    sent
}

fn receiver(side: Arc<Side>, stop: Arc<AtomicBool>) {
    const B: usize = 64;
    let mut bufs = vec![[0u8; 256]; B];
    // SAFETY: plain C structs.
    let mut iov: [libc::iovec; B] = unsafe { std::mem::zeroed() };
    let mut names: [libc::sockaddr_in; B] = unsafe { std::mem::zeroed() };
    let mut hdrs: [libc::mmsghdr; B] = unsafe { std::mem::zeroed() };
    side.sock
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    while !stop.load(Ordering::Acquire) {
        for k in 0..B {
            iov[k].iov_base = bufs[k].as_mut_ptr().cast();
            iov[k].iov_len = 256;
            hdrs[k].msg_hdr.msg_iov = &mut iov[k];
            hdrs[k].msg_hdr.msg_iovlen = 1;
            hdrs[k].msg_hdr.msg_name = (&mut names[k] as *mut libc::sockaddr_in).cast();
            hdrs[k].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
        }
        // SAFETY: buffers above are valid; MSG_WAITFORONE returns after the first datagram.
        let r = unsafe {
            libc::recvmmsg(
                side.sock.as_raw_fd(),
                hdrs.as_mut_ptr(),
                B as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if r <= 0 {
            continue;
        }
        for name in names.iter().take(r as usize) {
            let port = u16::from_be(name.sin_port) as usize;
            let idx = side.by_port[port];
            if idx != u32::MAX {
                side.counts[idx as usize].fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn report(args: &[String]) {
    let ins = args_all(args, "--in");
    let md = arg(args, "--md").expect("--md");
    let json = arg(args, "--json").expect("--json");
    let runs: Vec<RunResult> = ins
        .iter()
        .map(|p| {
            serde_json::from_str(&std::fs::read_to_string(p).expect("read --in"))
                .expect("parse --in")
        })
        .collect();
    let mut t = String::new();
    t.push_str("| relay | streams | offered pkt/s (nominal) | relayed pkt/s | loss % | relay CPU % | µs CPU/pkt | pass |\n");
    t.push_str("|---|---|---|---|---|---|---|---|\n");
    for r in &runs {
        for s in &r.steps {
            t.push_str(&format!(
                "| {} | {} | {:.0} ({:.0}) | {:.0} | {:.4} | {:.1} | {:.2} | {} |\n",
                r.relay,
                s.streams,
                s.offered_pps,
                s.nominal_pps,
                s.received as f64 / s.duration_s,
                s.loss_pct,
                s.relay_cpu_pct,
                s.relay_us_per_packet,
                if s.pass {
                    "yes"
                } else if !s.rate_reached {
                    "no (generator below rate)"
                } else {
                    "no"
                }
            ));
        }
    }
    t.push_str("\n| relay | largest N with < 0.1 % loss | µs CPU/pkt at that N |\n|---|---|---|\n");
    let us_at = |r: &RunResult| {
        r.steps
            .iter()
            .find(|s| s.streams == r.max_streams_under_0_1pct)
            .map(|s| s.relay_us_per_packet)
            .unwrap_or(0.0)
    };
    for r in &runs {
        t.push_str(&format!(
            "| {} {} | {} | {:.2} |\n",
            r.relay,
            r.version,
            r.max_streams_under_0_1pct,
            us_at(r)
        ));
    }
    let mut summary = serde_json::json!({ "runs": runs });
    if runs.len() == 2 {
        let (s, e) = (&runs[0], &runs[1]);
        let ratio_n = s.max_streams_under_0_1pct as f64 / e.max_streams_under_0_1pct.max(1) as f64;
        // CPU per packet at the largest N both passed.
        let common = s.steps.iter().rev().filter(|x| x.pass).find_map(|x| {
            e.steps
                .iter()
                .find(|y| y.pass && y.streams == x.streams)
                .map(|y| (x, y))
        });
        t.push_str(&format!(
            "\nRatio {} / {}: capacity {:.2}x",
            s.relay, e.relay, ratio_n
        ));
        if let Some((x, y)) = common {
            let r = y.relay_us_per_packet / x.relay_us_per_packet.max(1e-9);
            t.push_str(&format!(
                "; at {} streams CPU per packet {:.2} µs vs {:.2} µs ({:.2}x less CPU)",
                x.streams, x.relay_us_per_packet, y.relay_us_per_packet, r
            ));
            summary["cpu_ratio_at_common_n"] = serde_json::json!(r);
            summary["common_n"] = serde_json::json!(x.streams);
        }
        t.push('\n');
        summary["capacity_ratio"] = serde_json::json!(ratio_n);
    }
    std::fs::write(md, &t).expect("write --md");
    std::fs::write(json, serde_json::to_string_pretty(&summary).unwrap()).expect("write --json");
    print!("{t}");
}
