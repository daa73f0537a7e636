//! Interop with a real peer: Kamailio's `rtpengine` module controls
//! `strowger-mediad` over the ng protocol. A raw-UDP caller sends an INVITE
//! through Kamailio to a raw-UDP callee; both SDPs must come out rewritten to
//! the relay, and RTP must flow through the ports Kamailio obtained.
//! Skipped (with a message) when kamailio is not installed.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MODULES: &str = "/usr/lib/x86_64-linux-gnu/kamailio/modules";

/// Stops a child on drop: SIGTERM first (Kamailio's main process then stops
/// its forked workers), SIGKILL if it has not exited within 5 s.
struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn body(msg: &str) -> &str {
    msg.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")
}

fn audio_port(msg: &str) -> u16 {
    body(msg)
        .lines()
        .find(|l| l.starts_with("m=audio "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )
}

fn recv_text(s: &UdpSocket, want: &str, until: Instant) -> Option<String> {
    let mut buf = vec![0u8; 65536];
    while Instant::now() < until {
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            let t = String::from_utf8_lossy(&buf[..n]).to_string();
            if t.starts_with(want) {
                return Some(t);
            }
        }
    }
    None
}

#[test]
fn kamailio_rtpengine_module_drives_strowger_relay() {
    let kamailio = ["/usr/sbin/kamailio", "/usr/local/sbin/kamailio"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(kamailio) = kamailio else {
        eprintln!("kamailio not installed; skipped");
        return;
    };
    if !Path::new(MODULES).join("rtpengine.so").exists() {
        eprintln!("kamailio rtpengine module not installed; skipped");
        return;
    }
    let ng = free_udp_port();
    let relay = Kill(
        Command::new(env!("CARGO_BIN_EXE_strowger-mediad"))
            .args([
                "--ng",
                &format!("127.0.0.1:{ng}"),
                "--port-min",
                "44800",
                "--port-max",
                "44899",
            ])
            .args(["--workers", "1", "--timeout-s", "0"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    let callee = UdpSocket::bind("127.0.0.1:0").unwrap();
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let callee_rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    for s in [&caller, &callee, &caller_rtp, &callee_rtp] {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
    }
    let kport = free_udp_port();
    let dir =
        std::env::temp_dir().join(format!("strowger-media-kam-{}-{kport}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
children=1
disable_tcp=yes
listen=udp:127.0.0.1:{kport}
loadpath "{MODULES}/"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "maxfwd.so"
loadmodule "rtpengine.so"
modparam("rtpengine", "rtpengine_sock", "udp:127.0.0.1:{ng}")
request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (is_method("INVITE") && has_body("application/sdp")) {{
        if (!rtpengine_offer()) {{ sl_send_reply("503", "No media relay"); exit; }}
    }}
    if (is_method("BYE")) {{ rtpengine_delete(); }}
    $du = "sip:127.0.0.1:{callee_port}";
    t_on_reply("MEDIA");
    if (!t_relay()) {{ sl_reply_error(); }}
    exit;
}}
onreply_route[MEDIA] {{
    if (status =~ "^(183|200)" && has_body("application/sdp")) {{ rtpengine_answer(); }}
}}
"#,
        callee_port = callee.local_addr().unwrap().port()
    );
    let cfg_path = dir.join("kamailio.cfg");
    std::fs::write(&cfg_path, cfg).unwrap();
    let _kam = Kill(
        Command::new(kamailio)
            .arg("-f")
            .arg(&cfg_path)
            .args(["-DD", "-E", "-Y"])
            .arg(&dir)
            .args(["-m", "32", "-M", "8"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let caller_port = caller.local_addr().unwrap().port();
    let offer = sdp(caller_rtp.local_addr().unwrap().port());
    let invite = format!(
        "INVITE sip:2000@127.0.0.1:{kport} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{caller_port};branch=z9hG4bK-media-kam-1;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:1000@127.0.0.1>;tag=caller1\r\n\
         To: <sip:2000@127.0.0.1>\r\n\
         Call-ID: media-kam-1@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:1000@127.0.0.1:{caller_port}>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{offer}",
        offer.len()
    );
    // Kamailio needs a moment to start: retransmit the INVITE (same branch) until it is forwarded.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut forwarded = None;
    while forwarded.is_none() && Instant::now() < deadline {
        caller
            .send_to(invite.as_bytes(), ("127.0.0.1", kport))
            .unwrap();
        forwarded = recv_text(
            &callee,
            "INVITE ",
            Instant::now() + Duration::from_millis(500),
        );
    }
    let forwarded = forwarded.expect("Kamailio forwarded the INVITE");
    let to_callee_port = audio_port(&forwarded);
    assert!(
        (44800..44900).contains(&to_callee_port),
        "callee sees the relay: {forwarded}"
    );

    // Callee answers 200 OK (headers copied from the forwarded INVITE).
    let answer = sdp(callee_rtp.local_addr().unwrap().port());
    let mut resp = String::from("SIP/2.0 200 OK\r\n");
    for line in forwarded.split("\r\n\r\n").next().unwrap().lines().skip(1) {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("via:")
            || lower.starts_with("from:")
            || lower.starts_with("call-id:")
            || lower.starts_with("cseq:")
        {
            resp.push_str(line);
            resp.push_str("\r\n");
        } else if lower.starts_with("to:") {
            resp.push_str(line);
            resp.push_str(";tag=callee1\r\n");
        }
    }
    resp.push_str(&format!(
        "Contact: <sip:2000@127.0.0.1:{}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{answer}",
        callee.local_addr().unwrap().port(),
        answer.len()
    ));
    callee
        .send_to(resp.as_bytes(), ("127.0.0.1", kport))
        .unwrap();
    let ok = recv_text(
        &caller,
        "SIP/2.0 200",
        Instant::now() + Duration::from_secs(10),
    )
    .expect("caller gets 200 OK");
    let to_caller_port = audio_port(&ok);
    assert!(
        (44800..44900).contains(&to_caller_port),
        "caller sees the relay: {ok}"
    );
    assert_ne!(to_caller_port, to_callee_port);

    // RTP both ways through the ports Kamailio negotiated.
    let mut rtp = [0u8; 172];
    rtp[0] = 0x80;
    let mut buf = [0u8; 2048];
    caller_rtp
        .send_to(&rtp, ("127.0.0.1", to_caller_port))
        .unwrap();
    let (n, from) = callee_rtp
        .recv_from(&mut buf)
        .expect("callee hears the caller");
    assert_eq!((n, from.port()), (172, to_callee_port));
    callee_rtp
        .send_to(&rtp, ("127.0.0.1", to_callee_port))
        .unwrap();
    let (n, from) = caller_rtp
        .recv_from(&mut buf)
        .expect("caller hears the callee");
    assert_eq!((n, from.port()), (172, to_caller_port));
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);
}
