//! Black-box media tests: SIPp (and, for latching, a small UAS in the
//! test) calling through the switch with the built-in RTP relay, routed by
//! the real route-table plugin. RTP is counted on real UDP sockets.

mod common;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use strowger_store::{CdrFilter, Store};
use strowger_testkit::SipMessage;

/// RTP packets in the generated pcap (20 ms apart: 2 s of G.711 A-law).
const PCAP_PACKETS: u32 = 100;

const PCMA_PCMU: (&str, &str) = ("8 0", "a=rtpmap:8 PCMA/8000\na=rtpmap:0 PCMU/8000");
const G729_PCMA_PCMU: (&str, &str) = (
    "18 8 0",
    "a=rtpmap:18 G729/8000\na=rtpmap:8 PCMA/8000\na=rtpmap:0 PCMU/8000",
);

/// A scenario with `@KEY@` placeholders substituted (values may hold
/// newlines and slashes), written to a fresh file.
fn media_scenario(name: &str, subst: &[(&str, &str)]) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!("strowger-media-scn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = std::fs::read_to_string(scenario(name)).unwrap();
    for (k, v) in subst {
        text = text.replace(&format!("@{k}@"), v);
    }
    assert!(
        !text.contains("@PTS@"),
        "unsubstituted placeholder in {name}"
    );
    let p = dir.join(format!(
        "{}-{}.xml",
        name.trim_end_matches(".xml"),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&p, text).unwrap();
    p
}

/// A pcap (Ethernet/IPv4/UDP) of `n` RTP PCMA packets of 160 bytes, 20 ms
/// apart, for SIPp's `play_pcap_audio`.
fn write_pcap(n: u32) -> PathBuf {
    let packets = (0..n).map(|i| rtp_packet(8, i as u16, i * 160, &[0xd5; 160]));
    pcap_file("strowger-media", packets.collect())
}

/// An RTP packet (version 2, no CSRC) of payload type `pt`.
fn rtp_packet(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut rtp = vec![0x80, pt];
    rtp.extend_from_slice(&seq.to_be_bytes());
    rtp.extend_from_slice(&ts.to_be_bytes());
    rtp.extend_from_slice(&0x5354_5257u32.to_be_bytes());
    rtp.extend_from_slice(payload);
    rtp
}

/// Writes `packets` (RTP, one every 20 ms) as a pcap for SIPp.
fn pcap_file(name: &str, packets: Vec<Vec<u8>>) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{name}-{}.pcap", std::process::id()));
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
    for (i, rtp) in packets.iter().enumerate() {
        let udp_len = 8 + rtp.len();
        let ip_len = 20 + udp_len;
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&(ip_len as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
        ip.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        let sum: u32 = ip
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut frame = vec![0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 6, 0x08, 0x00];
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&4000u16.to_be_bytes());
        frame.extend_from_slice(&4002u16.to_be_bytes());
        frame.extend_from_slice(&(udp_len as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(rtp);
        let t_us = i as u64 * 20_000;
        out.extend_from_slice(&((t_us / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((t_us % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&frame);
    }
    std::fs::write(&path, out).unwrap();
    path
}

/// A pcap of PCMA audio with the RFC 4733 digits `events` (PT 101) in
/// between: per digit three progress packets and the end packet three
/// times (1280 units = 160 ms), as phones send them. Returns the path and
/// the number of audio packets.
fn write_dtmf_pcap(events: &[u8]) -> (PathBuf, u32) {
    let mut packets = Vec::new();
    let (mut seq, mut ts, mut audio) = (0u16, 0u32, 0u32);
    let mut push_audio = |packets: &mut Vec<Vec<u8>>, seq: &mut u16, ts: &mut u32, n: u32| {
        for _ in 0..n {
            packets.push(rtp_packet(8, *seq, *ts, &[0xd5; 160]));
            *seq = seq.wrapping_add(1);
            *ts += 160;
            audio += 1;
        }
    };
    push_audio(&mut packets, &mut seq, &mut ts, 25);
    for &ev in events {
        for (end, dur) in [
            (false, 320u16),
            (false, 640),
            (false, 960),
            (true, 1280),
            (true, 1280),
            (true, 1280),
        ] {
            let payload = [
                ev,
                if end { 0x8a } else { 0x0a },
                (dur >> 8) as u8,
                dur as u8,
            ];
            packets.push(rtp_packet(101, seq, ts, &payload));
            seq = seq.wrapping_add(1);
        }
        ts += 1280;
        push_audio(&mut packets, &mut seq, &mut ts, 15);
    }
    (pcap_file("strowger-dtmf", packets), audio)
}

fn play_action() -> String {
    format!(
        "<nop><action><exec play_pcap_audio=\"{}\"/></action></nop>",
        write_pcap(PCAP_PACKETS).display()
    )
}

/// A UDP socket counting the RTP packets it receives (and their sources)
/// until stopped.
struct Counter {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(u64, HashSet<SocketAddr>)>,
}

impl Counter {
    fn new(ip: IpAddr) -> Counter {
        let sock = UdpSocket::bind(SocketAddr::new(ip, 0)).unwrap();
        Counter::on(sock)
    }

    fn on(sock: UdpSocket) -> Counter {
        let addr = sock.local_addr().unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut n = 0;
            let mut from = HashSet::new();
            let mut buf = [0u8; 2048];
            while !s.load(Ordering::Relaxed) {
                if let Ok((len, src)) = sock.recv_from(&mut buf)
                    && len >= 12
                    && buf[0] & 0xc0 == 0x80
                {
                    n += 1;
                    from.insert(src);
                }
            }
            (n, from)
        });
        Counter { addr, stop, thread }
    }

    fn finish(self) -> (u64, HashSet<SocketAddr>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// The messages a SIPp run received (from its `-message_file`).
fn received(messages: &str) -> Vec<String> {
    messages
        .split("----------------------------------------------- ")
        .filter_map(|block| {
            let (_, rest) = block.split_once('\n')?;
            let (kind, msg) = rest.split_once('\n')?;
            kind.contains("message received")
                .then(|| msg.trim_start().to_string())
        })
        .collect()
}

/// The messages a SIPp run sent.
fn sent(messages: &str) -> Vec<String> {
    messages
        .split("----------------------------------------------- ")
        .filter_map(|block| {
            let (_, rest) = block.split_once('\n')?;
            let (kind, msg) = rest.split_once('\n')?;
            kind.contains("message sent")
                .then(|| msg.trim_start().to_string())
        })
        .collect()
}

fn first_starting(msgs: &[String], start: &str) -> String {
    msgs.iter()
        .find(|m| m.starts_with(start))
        .unwrap_or_else(|| panic!("no message starting with {start:?} in {msgs:#?}"))
        .clone()
}

/// Body of a SIP message text (after the first empty line).
fn body(msg: &str) -> String {
    let m = msg.replace("\r\n", "\n");
    let (_, b) = m
        .split_once("\n\n")
        .unwrap_or_else(|| panic!("no body in {msg}"));
    b.trim().to_string()
}

/// (connection address, audio port, payload types) of an SDP body.
fn sdp_media(sdp: &str) -> (IpAddr, u16, Vec<String>) {
    let c = sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("c=IN IP4 "))
        .unwrap_or_else(|| panic!("no c= in {sdp}"));
    let m = sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))
        .unwrap_or_else(|| panic!("no m=audio in {sdp}"));
    let mut it = m.split_whitespace();
    let port = it.next().unwrap().parse().unwrap();
    let pts = it.skip(1).map(str::to_string).collect();
    (c.trim().parse().unwrap(), port, pts)
}

/// A switch trusting `uac_ip`, routing every number to `uas` with the
/// route's extra JSON fields (`"media": ..., "codecs": ...`) and `[media]`.
fn media_switch(uac_ip: IpAddr, uas: SocketAddr, route_extra: &str, media: &str) -> Switch {
    let routes = format!(
        r#"{{"routes": [{{"name": "to-uas", "b": ["_X."], "destination": {{"uri": "sip:${{B}}@{uas}"}}{route_extra}}}]}}"#
    );
    let cfg = format!(
        "{BASE}{}{ROUTE_BINDING}[media]\n{media}\n",
        trusted_trunk("sipp-uac", uac_ip)
    );
    Switch::builder(&cfg).file("routes.json", routes).start()
}

fn uas_with_media(counter: SocketAddr, codecs: (&str, &str)) -> RunningSipp {
    uas(
        media_scenario(
            "media_uas.xml",
            &[
                ("MEDIA_IP", &counter.ip().to_string()),
                ("MEDIA_PORT", &counter.port().to_string()),
                ("PTS", codecs.0),
                ("RTPMAPS", codecs.1),
            ],
        ),
        1,
    )
}

fn uac_with_media(codecs: (&str, &str), play: bool, pause_ms: u64) -> PathBuf {
    let play = if play { play_action() } else { String::new() };
    media_scenario(
        "media_uac.xml",
        &[
            ("PTS", codecs.0),
            ("RTPMAPS", codecs.1),
            ("PLAY", &play),
            ("PAUSE_MS", &pause_ms.to_string()),
        ],
    )
}

fn is_switch_media(ip: IpAddr, port: u16, sw: &Switch) -> bool {
    ip == sw.addr().ip() && (20000..=30001).contains(&port)
}

#[test]
fn relayed_call_sdp_points_at_the_switch_and_rtp_reaches_the_callee() {
    let counter = Counter::new(unique_loopback());
    let counter_addr = counter.addr;
    let callee = uas_with_media(counter.addr, PCMA_PCMU);
    let uac_ip = unique_loopback();
    let sw = media_switch(uac_ip, callee.addr().unwrap(), "", "");
    let r = uac(
        uac_with_media(PCMA_PCMU, true, 3000),
        uac_ip,
        &sw,
        "5511333344444",
    )
    .run();
    r.assert_ok(1);
    let callee_r = callee.wait();
    callee_r.assert_ok(1);
    let (packets, sources) = counter.finish();

    // The callee was offered the switch's media address, not the caller's.
    let invite = first_starting(&received(&callee_r.messages), "INVITE ");
    let (ip, port, pts) = sdp_media(&body(&invite));
    assert!(
        is_switch_media(ip, port, &sw),
        "callee offered {ip}:{port}\n{invite}"
    );
    assert!(
        !invite.contains(&uac_ip.to_string()),
        "caller address leaked:\n{invite}"
    );
    assert_eq!(pts, ["8", "0"], "{invite}");
    // The caller got an answer pointing at the switch, not at the counter.
    let ok = first_starting(&received(&r.messages), "SIP/2.0 200");
    let (ip, aport, _) = sdp_media(&body(&ok));
    assert!(
        is_switch_media(ip, aport, &sw),
        "caller answered with {ip}:{aport}\n{ok}"
    );
    assert_ne!(aport, port, "both legs got the same relay port");
    assert!(
        !ok.contains(&counter_addr.ip().to_string()),
        "callee address leaked:\n{ok}"
    );
    // The caller's RTP arrived at the callee's media address, from the relay.
    assert!(
        packets >= u64::from(PCAP_PACKETS) * 9 / 10,
        "callee received {packets} of {PCAP_PACKETS} RTP packets"
    );
    assert_eq!(
        sources,
        HashSet::from([SocketAddr::new(sw.addr().ip(), port)]),
        "RTP must come from the relay port offered to the callee"
    );

    // The CDR carries the relay's counters of the call.
    let mut sw = sw;
    assert!(sw.stop().is_some(), "switch did not exit on SIGTERM");
    let cdr = only_cdr(&sw, "5511333344444");
    let media = cdr
        .media
        .as_ref()
        .unwrap_or_else(|| panic!("no media in {cdr:#?}"));
    let stream = &media[0]["streams"][0];
    let from_caller = stream["caller"]["packets"].as_u64().unwrap_or(0);
    assert!(
        from_caller >= u64::from(PCAP_PACKETS) * 9 / 10,
        "CDR counts {from_caller} packets from the caller: {media}"
    );
    assert_eq!(
        stream["callee"]["sent_packets"], stream["caller"]["packets"],
        "{media}"
    );
    assert!(
        stream["caller"]["bytes"].as_u64().unwrap_or(0) >= from_caller * 172,
        "{media}"
    );
    assert_eq!(stream["caller"]["lost"], 0, "{media}");
}

/// The one CDR of a stopped switch whose A or B number is `number`.
fn only_cdr(sw: &Switch, number: &str) -> strowger_store::Cdr {
    let store = Store::open(sw.store_path()).expect("open the switch's store");
    let mut cdrs = store
        .query_cdrs_blocking(&CdrFilter {
            number: Some(number.into()),
            ..CdrFilter::default()
        })
        .unwrap();
    assert_eq!(cdrs.len(), 1, "{cdrs:#?}");
    cdrs.remove(0)
}

#[test]
fn bypassed_call_leaves_sdp_untouched_and_rtp_flows_end_to_end() {
    let counter = Counter::new(unique_loopback());
    let callee = uas_with_media(counter.addr, PCMA_PCMU);
    let uac_ip = unique_loopback();
    let sw = media_switch(uac_ip, callee.addr().unwrap(), r#", "media": "bypass""#, "");
    let r = uac(
        uac_with_media(PCMA_PCMU, true, 3000),
        uac_ip,
        &sw,
        "5511333344444",
    )
    .run();
    r.assert_ok(1);
    let callee_r = callee.wait();
    callee_r.assert_ok(1);
    let (packets, sources) = counter.finish();

    let offer_sent = body(&first_starting(&sent(&r.messages), "INVITE "));
    let offer_got = body(&first_starting(&received(&callee_r.messages), "INVITE "));
    assert_eq!(offer_got, offer_sent, "offer changed in bypass");
    let answer_sent = body(&first_starting(&sent(&callee_r.messages), "SIP/2.0 200"));
    let answer_got = body(&first_starting(&received(&r.messages), "SIP/2.0 200"));
    assert_eq!(answer_got, answer_sent, "answer changed in bypass");
    assert_eq!(sdp_media(&offer_got).0, uac_ip);
    // RTP went straight from the caller to the callee.
    assert!(
        packets >= u64::from(PCAP_PACKETS) * 9 / 10,
        "callee received {packets} of {PCAP_PACKETS} RTP packets"
    );
    assert!(
        sources.iter().all(|s| s.ip() == uac_ip),
        "RTP did not come from the caller: {sources:?}"
    );
}

#[test]
fn codec_allow_list_filters_offer_and_answer() {
    let counter = Counter::new(unique_loopback());
    // The callee answers with every codec, G729 included.
    let callee = uas_with_media(counter.addr, G729_PCMA_PCMU);
    let uac_ip = unique_loopback();
    let sw = media_switch(
        uac_ip,
        callee.addr().unwrap(),
        r#", "codecs": ["PCMU", "PCMA"]"#,
        "",
    );
    let r = uac(
        uac_with_media(G729_PCMA_PCMU, false, 200),
        uac_ip,
        &sw,
        "5511333344444",
    )
    .run();
    r.assert_ok(1);
    let callee_r = callee.wait();
    callee_r.assert_ok(1);
    drop(counter.finish());

    let offer = body(&first_starting(&received(&callee_r.messages), "INVITE "));
    let (_, _, pts) = sdp_media(&offer);
    assert_eq!(pts, ["0", "8"], "offer to the callee:\n{offer}");
    assert!(!offer.contains("G729"), "{offer}");
    let answer = body(&first_starting(&received(&r.messages), "SIP/2.0 200"));
    let (_, _, pts) = sdp_media(&answer);
    let set: HashSet<&str> = pts.iter().map(String::as_str).collect();
    assert!(
        !set.is_empty() && set.is_subset(&HashSet::from(["0", "8"])),
        "answer to the caller:\n{answer}"
    );
    assert!(!answer.contains("G729"), "{answer}");
}

#[test]
fn offer_with_no_allowed_codec_gets_488() {
    // Nothing listens at the destination: a 488 can only come from the switch.
    let nowhere = SocketAddr::new(unique_loopback(), 5060);
    let uac_ip = unique_loopback();
    let sw = media_switch(uac_ip, nowhere, r#", "codecs": ["PCMU", "PCMA"]"#, "");
    let scn = media_scenario(
        "media_uac_reject.xml",
        &[
            ("PTS", "18"),
            ("RTPMAPS", "a=rtpmap:18 G729/8000"),
            ("CODE", "488"),
        ],
    );
    uac(scn, uac_ip, &sw, "5511333344444").run().assert_ok(1);
    // Unparseable SDP: 488 as well, and the switch keeps running.
    let scn = media_scenario(
        "media_uac_reject.xml",
        &[
            ("PTS", "0 bogus"),
            ("RTPMAPS", "a=rtpmap:0 PCMU/8000\nm=audio"),
            ("CODE", "488"),
        ],
    );
    uac(scn, uac_ip, &sw, "5511333344444").run().assert_ok(1);
    assert_eq!(sw.ping(T), Some(200));
}

#[test]
fn offers_naming_addresses_rtp_must_not_go_to_get_488_with_the_reason() {
    // Nothing listens at the destination: a 488 can only come from the switch.
    let nowhere = SocketAddr::new(unique_loopback(), 5060);
    let uac_ip = unique_loopback();
    let mut sw = media_switch(
        uac_ip,
        nowhere,
        "",
        "allowed_networks = [\"127.0.0.0/8\"]\n",
    );
    let cases = [
        ("5511000000001", "224.0.0.1", "multicast"),
        ("5511000000002", "255.255.255.255", "broadcast"),
        ("5511000000003", "0.0.0.0", "unspecified"),
        ("5511000000004", "192.0.2.1", "allowed_networks"),
    ];
    for (number, c, _) in cases {
        // a media-level c= line overrides the caller's own address
        let rtpmaps = format!("c=IN IP4 {c}\na=rtpmap:8 PCMA/8000");
        let scn = media_scenario(
            "media_uac_reject.xml",
            &[("PTS", "8"), ("RTPMAPS", &rtpmaps), ("CODE", "488")],
        );
        uac(scn, uac_ip, &sw, number).run().assert_ok(1);
    }
    assert_eq!(sw.ping(T), Some(200));
    assert!(sw.stop().is_some(), "switch did not exit on SIGTERM");
    for (number, c, why) in cases {
        let cdr = only_cdr(&sw, number);
        assert_eq!(cdr.final_code, 488, "{cdr:#?}");
        assert!(
            cdr.final_reason.contains(c) && cdr.final_reason.contains(why),
            "CDR of the {c} offer: {cdr:#?}"
        );
    }
}

#[test]
fn silent_call_is_ended_by_media_timeout() {
    let counter = Counter::new(unique_loopback());
    let callee = uas_with_media(counter.addr, PCMA_PCMU);
    let uac_ip = unique_loopback();
    let mut sw = media_switch(uac_ip, callee.addr().unwrap(), "", "timeout_s = 2\n");
    let started = Instant::now();
    // The caller sends no RTP and waits for a BYE (it fails after 20 s without one).
    let r = uac(scenario("uac_wait_bye.xml"), uac_ip, &sw, "5511333344444").run();
    r.assert_ok(1);
    callee.wait().assert_ok(1);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "call lasted {took:?}");
    drop(counter.finish());

    assert!(sw.stop().is_some(), "switch did not exit on SIGTERM");
    let cdr = only_cdr(&sw, "5511333344444");
    assert_eq!(cdr.cause, "media-timeout", "{cdr:#?}");
    assert_eq!(cdr.hangup_side.as_deref(), Some("switch"));
    let billable = cdr.billable_ms();
    assert!(
        (1500..12_000).contains(&billable),
        "answered for {billable} ms before the timeout"
    );
}

/// A minimal UAS on `sock`: answers one INVITE with `sdp`, returns the
/// INVITE; [`finish_uas`] then takes the ACK and BYE.
fn answer_invite(sock: &UdpSocket, sdp: &str) -> SipMessage {
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + T;
    let (invite, from) = loop {
        assert!(Instant::now() < deadline, "no INVITE reached the test UAS");
        if let Ok((n, from)) = sock.recv_from(&mut buf)
            && let Some(m) = SipMessage::parse(&buf[..n])
            && m.method() == "INVITE"
        {
            break (m, from);
        }
    };
    let me = sock.local_addr().unwrap();
    let resp = response(
        &invite,
        200,
        Some(&format!("{};tag=uas1", invite.header("To").unwrap())),
    ) + &format!(
        "Contact: <sip:{me}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    sock.send_to(resp.as_bytes(), from).unwrap();
    invite
}

fn response(req: &SipMessage, code: u16, to: Option<&str>) -> String {
    let mut r = format!("SIP/2.0 {code} OK\r\n");
    for v in req.headers("Via") {
        r.push_str(&format!("Via: {v}\r\n"));
    }
    for h in ["From", "Call-ID", "CSeq"] {
        r.push_str(&format!("{h}: {}\r\n", req.header(h).unwrap()));
    }
    r.push_str(&format!("To: {}\r\n", to.or(req.header("To")).unwrap()));
    r
}

/// Waits for the BYE (skipping ACK and retransmissions) and answers it.
fn finish_uas(sock: &UdpSocket, within: Duration) {
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok((n, from)) = sock.recv_from(&mut buf)
            && let Some(m) = SipMessage::parse(&buf[..n])
            && m.method() == "BYE"
        {
            let resp = response(&m, 200, None) + "Content-Length: 0\r\n\r\n";
            sock.send_to(resp.as_bytes(), from).unwrap();
            return;
        }
    }
    panic!("no BYE reached the test UAS");
}

#[test]
fn latching_sends_to_where_the_callee_rtp_comes_from() {
    // The callee (this test) says its media is at port X but sends (and
    // listens) on another port Y, as a phone behind NAT would.
    let b_ip = unique_loopback();
    let sip = UdpSocket::bind(SocketAddr::new(b_ip, 0)).unwrap();
    sip.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let x = Counter::new(b_ip);
    let y_sock = UdpSocket::bind(SocketAddr::new(b_ip, 0)).unwrap();
    let y_send = y_sock.try_clone().unwrap();
    let y_addr = y_sock.local_addr().unwrap();
    assert_ne!(y_addr.port(), x.addr.port());
    let y = Counter::on(y_sock);

    let uac_ip = unique_loopback();
    let sw = media_switch(uac_ip, sip.local_addr().unwrap(), "", "");
    let caller = uac(
        uac_with_media(PCMA_PCMU, true, 3000),
        uac_ip,
        &sw,
        "5511333344444",
    )
    .spawn();

    let sdp = format!(
        "v=0\r\no=callee 1 1 IN IP4 {b_ip}\r\ns=-\r\nc=IN IP4 {b_ip}\r\nt=0 0\r\nm=audio {} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n",
        x.addr.port()
    );
    let invite = answer_invite(&sip, &sdp);
    let (ip, port, _) = sdp_media(&invite.body);
    assert!(is_switch_media(ip, port, &sw), "callee offered {ip}:{port}");
    let relay_b = SocketAddr::new(ip, port);
    // Our RTP, from Y, every 20 ms while the call lasts.
    let sender = std::thread::spawn(move || {
        for i in 0..150u16 {
            let mut p = vec![0x80, 8];
            p.extend_from_slice(&i.to_be_bytes());
            p.extend_from_slice(&(u32::from(i) * 160).to_be_bytes());
            p.extend_from_slice(&0x4c415443u32.to_be_bytes());
            p.extend(std::iter::repeat_n(0xd5u8, 160));
            let _ = y_send.send_to(&p, relay_b);
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    finish_uas(&sip, Duration::from_secs(20));
    caller.wait().assert_ok(1);
    sender.join().unwrap();
    let (at_x, _) = x.finish();
    let (at_y, from_y) = y.finish();
    assert!(
        at_y >= u64::from(PCAP_PACKETS) * 8 / 10,
        "the latched port got {at_y} of the caller's {PCAP_PACKETS} packets (SDP port got {at_x})"
    );
    assert_eq!(
        from_y,
        HashSet::from([relay_b]),
        "RTP must come from the relay"
    );
}

#[test]
fn rfc2833_digits_reach_an_info_trunk_as_sip_info() {
    const TE: (&str, &str) = (
        "8 101",
        "a=rtpmap:8 PCMA/8000\na=rtpmap:101 telephone-event/8000\na=fmtp:101 0-16",
    );
    let counter = Counter::new(unique_loopback());
    let callee = uas(
        media_scenario(
            "media_uas_info.xml",
            &[
                ("MEDIA_IP", &counter.addr.ip().to_string()),
                ("MEDIA_PORT", &counter.addr.port().to_string()),
                ("PTS", TE.0),
                ("RTPMAPS", TE.1),
            ],
        ),
        1,
    );
    let gw = callee.addr().unwrap();
    let uac_ip = unique_loopback();
    let routes = r#"{"routes": [{"name": "to-gw", "b": ["_X."], "destination": {"trunk": "gw"}}]}"#;
    let cfg = format!(
        "{BASE}{}[[trunks]]\nname = \"gw\"\nhost = \"{}\"\nport = {}\ninbound = \"none\"\ndtmf = \"info\"\n\n{ROUTE_BINDING}",
        trusted_trunk("sipp-uac", uac_ip),
        gw.ip(),
        gw.port()
    );
    let mut sw = Switch::builder(&cfg).file("routes.json", routes).start();
    let (pcap, audio) = write_dtmf_pcap(&[1, 5, 11]);
    let play = format!(
        "<nop><action><exec play_pcap_audio=\"{}\"/></action></nop>",
        pcap.display()
    );
    let scn = media_scenario(
        "media_uac.xml",
        &[
            ("PTS", TE.0),
            ("RTPMAPS", TE.1),
            ("PLAY", &play),
            ("PAUSE_MS", "3500"),
        ],
    );
    let r = uac(scn, uac_ip, &sw, "5511333344444").run();
    r.assert_ok(1);
    let callee_r = callee.wait();
    callee_r.assert_ok(1);
    let (packets, _) = counter.finish();

    // Three INFOs in the callee's dialog, one per digit, in order.
    let got = received(&callee_r.messages);
    let infos: Vec<&String> = got.iter().filter(|m| m.starts_with("INFO ")).collect();
    assert_eq!(infos.len(), 3, "{got:#?}");
    let invite = first_starting(&got, "INVITE ");
    let call_id = |m: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix("Call-ID: "))
            .map(|v| v.trim().to_string())
    };
    let signals: Vec<String> = infos
        .iter()
        .map(|m| {
            assert_eq!(
                call_id(m),
                call_id(&invite),
                "INFO outside the dialog:\n{m}"
            );
            assert!(
                m.lines()
                    .any(|l| l.eq_ignore_ascii_case("Content-Type: application/dtmf-relay")),
                "{m}"
            );
            assert!(m.contains("Duration=160"), "{m}");
            m.lines()
                .find_map(|l| l.trim().strip_prefix("Signal="))
                .unwrap_or_else(|| panic!("no Signal in {m}"))
                .to_string()
        })
        .collect();
    assert_eq!(signals, ["1", "5", "#"]);
    // The audio reached the callee; the telephone-event packets did not.
    assert!(
        packets <= u64::from(audio) && packets >= u64::from(audio) * 9 / 10,
        "callee received {packets} RTP packets for {audio} audio packets"
    );
    assert!(sw.stop().is_some(), "switch did not exit on SIGTERM");
    let cdr = only_cdr(&sw, "5511333344444");
    let media = cdr.media.expect("media counters");
    assert_eq!(
        media[0]["streams"][0]["caller"]["dtmf_packets"], 18,
        "{media}"
    );
}
