//! In-process: the shell's supervisor. A media handler that panics (a bug
//! in a part the core calls) kills the core task; the supervisor must
//! report it (so `strowger serve` exits for its supervisor to restart it)
//! and the health state must say that SIP is no longer served.

use std::net::IpAddr;
use std::time::Duration;

use strowger_switch::config::Config;
use strowger_switch::media::{MediaHandler, MediaRefusal, SdpDirection};
use strowger_switch::server::{StartOptions, start_with};
use strowger_testkit::{Algorithm, SipClient, free_port, unique_loopback};

const T: Duration = Duration::from_secs(10);

/// A media handler with a bug: it panics on the first SDP it is given.
struct PanickingMedia;

impl MediaHandler for PanickingMedia {
    fn rewrite(
        &mut self,
        _call: u64,
        _leg: u64,
        _dir: SdpDirection,
        _sdp: &[u8],
        _relay: Option<bool>,
        _codecs: Option<&[String]>,
    ) -> Result<Vec<u8>, MediaRefusal> {
        panic!("media handler bug (test)");
    }
    fn release(&mut self, _call: u64) {}
}

#[test]
fn a_core_panic_is_reported_and_health_says_sip_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    let port = free_port(ip);
    let caller_ip = unique_loopback();
    let cfg = Config::parse(
        &format!(
            "[sip]\nlisten = [\"udp:{ip}:{port}\"]\n\n[admin]\nenabled = false\n\n\
             [auth]\nalgorithms = [\"sha256\"]\n\n\
             [[users]]\nuser = \"1001\"\npassword = \"pw1001\"\n\n\
             [[trunks]]\nname = \"caller\"\nhost = \"{caller_ip}\"\ninbound = \"ip\"\n"
        ),
        dir.path(),
    )
    .expect("config");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let running = rt
        .block_on(start_with(
            cfg,
            StartOptions {
                media: Some(Box::new(PanickingMedia)),
            },
        ))
        .expect("start");
    let sw = running.addr(strowger_switch::flow::Transport::Udp).unwrap();
    assert!(rt.block_on(running.control.ping(T)), "core answers a ping");
    assert_eq!(running.health.failure(), None);

    // 1001 registers (REGISTER does not touch media: the core lives on)
    let mut phone = SipClient::new(unique_loopback(), sw);
    let contact = format!("sip:1001@{}", phone.local);
    let r = phone.register(
        "1001",
        "pw1001",
        "strowger.local",
        Some(&contact),
        Some(300),
        Algorithm::Sha256,
        T,
    );
    assert_eq!(r.response.status(), 200, "{:?}", r.response);

    // a call to 1001 with SDP: forwarding it asks the media handler
    let mut caller = SipClient::new(caller_ip, sw);
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 {caller_ip}\r\ns=-\r\nc=IN IP4 {caller_ip}\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"
    );
    let cseq = caller.next_cseq();
    let (invite, _) = caller.build_request(
        "INVITE",
        &format!("sip:1001@{sw}"),
        &format!("<sip:5511@{caller_ip}>;tag=sup1"),
        "<sip:1001@strowger.local>",
        "supervise-1@test",
        cseq,
        &[
            format!("Contact: <sip:5511@{}>", caller.local),
            "Content-Type: application/sdp".to_string(),
        ],
        &sdp,
    );
    caller.send_raw(invite.as_bytes());

    let why = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(60), running.failed()).await })
        .expect("the supervisor reports the dead core");
    assert!(why.contains("switch core panicked"), "{why}");
    assert!(why.contains("media handler bug (test)"), "{why}");
    assert_eq!(running.health.failure().as_deref(), Some(why.as_str()));
    assert_eq!(running.control.failure().as_deref(), Some(why.as_str()));
    assert!(
        !rt.block_on(running.control.ping(T)),
        "a dead core must not look ready"
    );
    // the store is still there to flush; shutting down works
    rt.block_on(running.shutdown())
        .expect("shutdown after a failure");
}
