//! Standalone Strowger media relay controlled over the rtpengine "ng"
//! protocol (subset: ping/offer/answer/delete/query). Used by
//! `benches/media/run.sh`; also lets Kamailio's rtpengine module use the relay.
//!
//! ```text
//! strowger-mediad --ng 127.0.0.1:2223 [--bind 127.0.0.1] [--port-min 30000]
//!                 [--port-max 39999] [--workers 0] [--timeout-s 60]
//!                 [--latching learn|strict] [--allowed-network CIDR]...
//! ```

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use strowger_media::{MediaConfig, MediaRelay};

fn main() {
    let mut cfg = MediaConfig::default();
    let mut ng: SocketAddr = "127.0.0.1:2223".parse().unwrap();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    let val = |i: usize| -> &str {
        args.get(i + 1).map(|s| s.as_str()).unwrap_or_else(|| {
            eprintln!("missing value for {}", args[i]);
            std::process::exit(2)
        })
    };
    fn num<T: std::str::FromStr>(s: &str) -> T {
        s.parse().unwrap_or_else(|_| {
            eprintln!("bad number {s:?}");
            std::process::exit(2)
        })
    }
    while i < args.len() {
        match args[i].as_str() {
            "--ng" => ng = num(val(i)),
            "--bind" => cfg.bind_ip = num::<IpAddr>(val(i)),
            "--advertise" => cfg.advertise_ip = Some(num::<IpAddr>(val(i))),
            "--port-min" => cfg.port_min = num(val(i)),
            "--port-max" => cfg.port_max = num(val(i)),
            "--workers" => cfg.workers = num(val(i)),
            "--coalesce-us" => cfg.coalesce = Duration::from_micros(num(val(i))),
            "--latching" => {
                cfg.latching = match val(i) {
                    "learn" => strowger_media::Latching::Learn,
                    "strict" => strowger_media::Latching::Strict,
                    v => {
                        eprintln!("--latching must be learn or strict, not {v:?}");
                        std::process::exit(2)
                    }
                }
            }
            "--allowed-network" => {
                cfg.allowed_networks
                    .push(val(i).parse().unwrap_or_else(|e: String| {
                        eprintln!("--allowed-network: {e}");
                        std::process::exit(2)
                    }))
            }
            "--timeout-s" => {
                let t: u64 = num(val(i));
                cfg.timeout = (t > 0).then(|| Duration::from_secs(t));
            }
            "-h" | "--help" => {
                eprintln!(
                    "strowger-mediad --ng ADDR [--bind IP] [--advertise IP] [--port-min N] [--port-max N] [--workers N] [--timeout-s N] [--coalesce-us N] [--latching learn|strict] [--allowed-network CIDR]..."
                );
                return;
            }
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    raise_nofile();
    let relay = match MediaRelay::start(cfg) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            eprintln!("media relay: {e}");
            std::process::exit(1);
        }
    };
    // Drain events (media timeouts) so they do not pile up; the controlling
    // proxy deletes the call when it tears the dialog down.
    if let Some(mut events) = relay.take_events() {
        std::thread::spawn(move || {
            while let Some(ev) = events.blocking_recv() {
                eprintln!("strowger-mediad: {ev:?}");
            }
        });
    }
    let sock = UdpSocket::bind(ng).unwrap_or_else(|e| {
        eprintln!("bind {ng}: {e}");
        std::process::exit(1)
    });
    eprintln!("strowger-mediad: ng listening on {ng}");
    let stop = Arc::new(AtomicBool::new(false));
    if let Err(e) = strowger_media::ng::serve(relay, sock, stop) {
        eprintln!("ng: {e}");
        std::process::exit(1);
    }
}

/// Many calls need many sockets (4 per stream): lift the soft fd limit.
fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}
