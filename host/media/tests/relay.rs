//! The relay against real UDP sockets on 127.0.0.1 ("phones").
//!
//! Every test uses its own port range and bounded waits.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use strowger_media::sdp::Sdp;
use strowger_media::{CodecPolicy, Leg, MediaConfig, MediaEvent, MediaRelay, Session};

const WAIT: Duration = Duration::from_secs(5);

fn relay(port_min: u16, timeout: Option<Duration>) -> MediaRelay {
    MediaRelay::start(MediaConfig {
        port_min,
        port_max: port_min + 99,
        timeout,
        workers: 2,
        ..Default::default()
    })
    .unwrap()
}

fn phone() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

/// Two sockets on consecutive ports (RTP even, RTCP = RTP + 1).
fn phone_pair() -> (UdpSocket, UdpSocket) {
    for _ in 0..200 {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if !p.is_multiple_of(2) || p == u16::MAX {
            continue;
        }
        if let Ok(b) = UdpSocket::bind(("127.0.0.1", p + 1)) {
            for s in [&a, &b] {
                s.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
            }
            return (a, b);
        }
    }
    panic!("no consecutive port pair");
}

fn sdp(port: u16, extra: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n{extra}"
    )
}

fn port_of(sdp: &str) -> u16 {
    Sdp::parse(sdp).unwrap().media()[0].port()
}

/// Offer from A, answer from B; returns (relay port for A, relay port for B).
fn establish(s: &Session, a_port: u16, b_port: u16, a_extra: &str, b_extra: &str) -> (u16, u16) {
    let to_b = s
        .offer(Leg::A, &sdp(a_port, a_extra), &CodecPolicy::allow_all())
        .unwrap();
    assert!(to_b.contains("c=IN IP4 127.0.0.1\r\n"));
    let to_a = s.answer(Leg::B, &sdp(b_port, b_extra)).unwrap();
    (port_of(&to_a), port_of(&to_b))
}

fn rtp(seq: u16, ts: u32, ssrc: u32) -> [u8; 172] {
    let mut p = [0xd5u8; 172];
    p[0] = 0x80;
    p[1] = 0; // PCMU
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&ts.to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p
}

fn rtcp_sr() -> [u8; 28] {
    let mut p = [0u8; 28];
    p[0] = 0x80;
    p[1] = 200; // SR
    p[2..4].copy_from_slice(&6u16.to_be_bytes());
    p
}

/// Receive until `n` datagrams arrived or WAIT passed; returns (count, sources).
fn recv_n(s: &UdpSocket, n: usize) -> (usize, Vec<SocketAddr>) {
    let mut buf = [0u8; 2048];
    let mut got = 0;
    let mut srcs = Vec::new();
    let end = Instant::now() + WAIT;
    while got < n && Instant::now() < end {
        if let Ok((_, from)) = s.recv_from(&mut buf) {
            got += 1;
            if !srcs.contains(&from) {
                srcs.push(from);
            }
        }
    }
    (got, srcs)
}

/// Drain whatever arrives within `d`.
fn recv_for(s: &UdpSocket, d: Duration) -> usize {
    let mut buf = [0u8; 2048];
    let end = Instant::now() + d;
    let mut got = 0;
    while Instant::now() < end {
        if s.recv_from(&mut buf).is_ok() {
            got += 1;
        }
    }
    got
}

fn local(p: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], p))
}

#[test]
fn relays_rtp_both_ways_and_rtcp_on_port_plus_one() {
    let r = relay(42000, None);
    let s = r.create_session("call-1", Default::default());
    let (a, a_rtcp) = phone_pair();
    let (b, b_rtcp) = phone_pair();
    let (pa, pb) = establish(
        &s,
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
        "",
        "",
    );
    assert_ne!(pa, pb);
    assert!(pa.is_multiple_of(2) && pb.is_multiple_of(2) && (42000..42100).contains(&pa));

    for i in 0..50u16 {
        a.send_to(&rtp(i, i as u32 * 160, 0xa), local(pa)).unwrap();
    }
    let (got, srcs) = recv_n(&b, 50);
    assert_eq!(got, 50, "B hears A");
    assert_eq!(srcs, vec![local(pb)], "B hears the relay's port, not A");
    for i in 0..30u16 {
        b.send_to(&rtp(i, i as u32 * 160, 0xb), local(pb)).unwrap();
    }
    let (got, srcs) = recv_n(&a, 30);
    assert_eq!(got, 30, "A hears B");
    assert_eq!(srcs, vec![local(pa)]);

    // RTCP: phone's port+1 -> relay port+1 -> other phone's port+1.
    a_rtcp.send_to(&rtcp_sr(), local(pa + 1)).unwrap();
    let (got, srcs) = recv_n(&b_rtcp, 1);
    assert_eq!((got, srcs), (1, vec![local(pb + 1)]));
    b_rtcp.send_to(&rtcp_sr(), local(pb + 1)).unwrap();
    assert_eq!(recv_n(&a_rtcp, 1).0, 1);

    let st = s.stats();
    let [la, lb] = &st.streams[0].legs;
    assert_eq!(
        (la.rtp.packets, la.rtp.bytes, la.rtp.lost),
        (50, 50 * 172, 0)
    );
    assert_eq!((lb.rtp.packets, lb.rtp.bytes), (30, 30 * 172));
    assert_eq!((lb.sent_packets, lb.sent_bytes), (50 + 1, 50 * 172 + 28));
    assert_eq!(la.sent_packets, 30 + 1);
    assert_eq!((la.rtcp_packets, lb.rtcp_packets), (1, 1));
    assert_eq!(la.latched, Some(a.local_addr().unwrap()));
    assert!(la.rtp.last_packet_ms.is_some());
    // Relay-wide counters are published after each batch is sent.
    let end = Instant::now() + WAIT;
    while r.stats().forwarded < 82 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(r.stats().forwarded, 82);

    // Close releases the ports (asynchronously, by the worker).
    s.close();
    let end = Instant::now() + WAIT;
    while r.stats().ports_free != r.stats().ports_total && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(r.stats().ports_free, r.stats().ports_total);
}

#[test]
fn rtcp_mux_session() {
    let r = relay(42200, None);
    let s = r.create_session("mux", Default::default());
    let a = phone();
    let b = phone();
    let mux = "a=rtcp-mux\r\n";
    let (pa, pb) = establish(
        &s,
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
        mux,
        mux,
    );
    a.send_to(&rtp(1, 160, 1), local(pa)).unwrap();
    a.send_to(&rtcp_sr(), local(pa)).unwrap();
    let (got, srcs) = recv_n(&b, 2);
    assert_eq!(
        (got, srcs),
        (2, vec![local(pb)]),
        "RTP and RTCP on one port"
    );
    let st = s.stats();
    assert!(st.streams[0].legs[0].rtcp_mux && st.streams[0].legs[1].rtcp_mux);
    assert_eq!(st.streams[0].legs[0].rtcp_packets, 1);
    assert_eq!(st.streams[0].legs[0].rtp.packets, 1);

    // Only one side supports mux: RTCP from the mux side goes to the other's port+1.
    let s2 = r.create_session("halfmux", Default::default());
    let c = phone();
    let (d, d_rtcp) = phone_pair();
    let to_d = s2
        .offer(
            Leg::A,
            &sdp(c.local_addr().unwrap().port(), mux),
            &CodecPolicy::allow_all(),
        )
        .unwrap();
    assert!(to_d.contains("a=rtcp-mux"), "mux offer passed through");
    let to_c = s2
        .answer(Leg::B, &sdp(d.local_addr().unwrap().port(), ""))
        .unwrap();
    assert!(!to_c.contains("a=rtcp-mux"));
    c.send_to(&rtcp_sr(), local(port_of(&to_c) + 1)).unwrap();
    assert_eq!(recv_n(&d_rtcp, 1).0, 1);
}

#[test]
fn latching_follows_real_source_and_ignores_hijackers() {
    let r = relay(42400, None);
    let s = r.create_session("nat", Default::default());
    let advertised = phone(); // what A's SDP claims (never sends)
    let a = phone(); // where A's packets really come from (NAT)
    let b = phone();
    let (pa, pb) = establish(
        &s,
        advertised.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
        "",
        "",
    );

    for i in 0..5u16 {
        a.send_to(&rtp(i, 0, 7), local(pa)).unwrap();
    }
    assert_eq!(recv_n(&b, 5).0, 5);
    for i in 0..5u16 {
        b.send_to(&rtp(i, 0, 8), local(pb)).unwrap();
    }
    assert_eq!(
        recv_n(&a, 5).0,
        5,
        "A hears B at its real (latched) address"
    );
    assert_eq!(recv_for(&advertised, Duration::from_millis(100)), 0);

    // A hijacker sprays the relay port.
    let evil = phone();
    for i in 0..20u16 {
        evil.send_to(&rtp(1000 + i, 0, 666), local(pa)).unwrap();
    }
    // A keeps talking; B hears only A.
    for i in 5..10u16 {
        a.send_to(&rtp(i, 0, 7), local(pa)).unwrap();
    }
    let (got, _) = recv_n(&b, 5);
    assert_eq!(got, 5);
    assert_eq!(
        recv_for(&b, Duration::from_millis(200)),
        0,
        "nothing from the hijacker"
    );
    // B's packets still go to A, not to the hijacker.
    b.send_to(&rtp(5, 0, 8), local(pb)).unwrap();
    assert_eq!(recv_n(&a, 1).0, 1);
    assert_eq!(recv_for(&evil, Duration::from_millis(100)), 0);
    let st = s.stats();
    let la = &st.streams[0].legs[0];
    assert_eq!(la.foreign_dropped, 20);
    assert_eq!(la.rtp.packets, 10);
    assert_eq!(la.latched, Some(a.local_addr().unwrap()));
}

#[test]
fn relatch_after_silence() {
    let r = MediaRelay::start(MediaConfig {
        port_min: 42600,
        port_max: 42699,
        relatch_after: Some(Duration::from_millis(300)),
        timeout: None,
        workers: 1,
        ..Default::default()
    })
    .unwrap();
    let s = r.create_session("relatch", Default::default());
    let a1 = phone();
    let a2 = phone(); // same phone after a NAT rebinding
    let b = phone();
    let (pa, pb) = establish(
        &s,
        a1.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
        "",
        "",
    );
    a1.send_to(&rtp(1, 0, 1), local(pa)).unwrap();
    assert_eq!(recv_n(&b, 1).0, 1);
    std::thread::sleep(Duration::from_millis(600));
    a2.send_to(&rtp(2, 0, 1), local(pa)).unwrap();
    assert_eq!(recv_n(&b, 1).0, 1, "new source accepted after silence");
    b.send_to(&rtp(1, 0, 2), local(pb)).unwrap();
    assert_eq!(recv_n(&a2, 1).0, 1);
}

#[test]
fn media_timeout_event_and_hold() {
    let r = relay(42800, Some(Duration::from_secs(1)));
    let mut events = r.take_events().unwrap();
    let start = Instant::now();
    let silent = r.create_session("silent", Default::default());
    establish(&silent, 40002, 40004, "", "");
    let held = r.create_session("held", Default::default());
    establish(&held, 40006, 40008, "a=sendonly\r\n", "a=recvonly\r\n");
    assert!(held.is_held());
    let talking = r.create_session("talking", Default::default());
    let a = phone();
    let b = phone();
    let (pa, _) = establish(
        &talking,
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
        "",
        "",
    );
    // Not answered yet: no timeout while ringing.
    let ringing = r.create_session("ringing", Default::default());
    ringing
        .offer(Leg::A, &sdp(40010, ""), &CodecPolicy::allow_all())
        .unwrap();

    let mut got = Vec::new();
    let mut seq = 0u16;
    while start.elapsed() < Duration::from_millis(3000) {
        seq += 1;
        a.send_to(&rtp(seq, seq as u32 * 160, 3), local(pa))
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        while let Ok(MediaEvent::Timeout { call_id, idle }) = events.try_recv() {
            got.push((call_id, idle, start.elapsed()));
        }
    }
    assert_eq!(got.len(), 1, "only the silent session times out: {got:?}");
    let (id, idle, at) = &got[0];
    assert_eq!(id, "silent");
    assert!(*idle >= Duration::from_secs(1));
    assert!(
        *at >= Duration::from_millis(950) && *at < Duration::from_millis(2500),
        "{at:?}"
    );

    // Taking the held session off hold (re-INVITE) arms its timeout again.
    held.offer(Leg::A, &sdp(40006, ""), &CodecPolicy::allow_all())
        .unwrap();
    held.answer(Leg::B, &sdp(40008, "")).unwrap();
    assert!(!held.is_held());
    let end = Instant::now() + Duration::from_secs(4);
    let mut fired = false;
    while Instant::now() < end && !fired {
        if let Ok(MediaEvent::Timeout { call_id, .. }) = events.try_recv() {
            fired = call_id == "held";
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(fired, "resumed session times out");
}

#[test]
fn reinvite_moves_a_leg_without_dropping_the_session() {
    let r = relay(43000, None);
    let s = r.create_session("move", Default::default());
    let a = phone();
    let b = phone();
    let (pa, pb) = establish(
        &s,
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
        "",
        "",
    );
    b.send_to(&rtp(1, 0, 2), local(pb)).unwrap();
    assert_eq!(recv_n(&a, 1).0, 1);

    // B re-INVITEs (transfer to another device): B is the offerer now.
    let b2 = phone();
    let to_a = s
        .offer(
            Leg::B,
            &sdp(b2.local_addr().unwrap().port(), ""),
            &CodecPolicy::allow_all(),
        )
        .unwrap();
    assert_eq!(port_of(&to_a), pa, "ports stay the same across re-INVITE");
    let to_b = s
        .answer(Leg::A, &sdp(a.local_addr().unwrap().port(), ""))
        .unwrap();
    assert_eq!(port_of(&to_b), pb);
    // A's packets go to the new device (latch reset by the new SDP address).
    a.send_to(&rtp(1, 0, 1), local(pa)).unwrap();
    assert_eq!(recv_n(&b2, 1).0, 1);
    assert_eq!(recv_for(&b, Duration::from_millis(100)), 0);
    b2.send_to(&rtp(1, 0, 9), local(pb)).unwrap();
    assert_eq!(recv_n(&a, 1).0, 1);
    // Answer without an offer is refused (491), nothing changes.
    assert_eq!(
        s.answer(Leg::B, &sdp(1234, "")).unwrap_err().sip_status(),
        491
    );
}

#[test]
fn loss_and_jitter_through_the_relay() {
    let r = relay(43200, None);
    let s = r.create_session("loss", Default::default());
    let a = phone();
    let b = phone();
    let (pa, _) = establish(
        &s,
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
        "",
        "",
    );
    // 20 packets with 3 gaps (4 packets missing), one reordered.
    let seqs: Vec<u16> = vec![
        100, 101, 102, 104, 105, 106, 108, 107, 109, 112, 113, 114, 115, 116, 117, 118, 119, 120,
    ];
    for &q in &seqs {
        a.send_to(&rtp(q, q as u32 * 160, 42), local(pa)).unwrap();
    }
    assert_eq!(recv_n(&b, seqs.len()).0, seqs.len());
    let st = s.stats();
    let la = &st.streams[0].legs[0];
    assert_eq!(la.rtp.packets, seqs.len() as u64);
    // expected 100..=120 = 21, received 18 -> 3 lost (103, 110, 111).
    assert_eq!(la.rtp.lost, 3);
    // Sent back-to-back while timestamps advance 20 ms: jitter is visible.
    assert!(la.rtp.jitter_ms > 0.5, "{}", la.rtp.jitter_ms);
}

#[test]
fn port_exhaustion_is_503_and_changes_nothing() {
    let r = MediaRelay::start(MediaConfig {
        port_min: 43400,
        port_max: 43407, // 4 pairs = 2 sessions
        workers: 1,
        timeout: None,
        ..Default::default()
    })
    .unwrap();
    let s1 = r.create_session("x1", Default::default());
    let s2 = r.create_session("x2", Default::default());
    let s3 = r.create_session("x3", Default::default());
    let pol = CodecPolicy::allow_all();
    s1.offer(Leg::A, &sdp(5000, ""), &pol).unwrap();
    s2.offer(Leg::A, &sdp(5002, ""), &pol).unwrap();
    let e = s3.offer(Leg::A, &sdp(5004, ""), &pol).unwrap_err();
    assert_eq!(e.sip_status(), 503);
    drop(s1);
    let end = Instant::now() + WAIT;
    while r.stats().ports_free < 2 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    s3.offer(Leg::A, &sdp(5004, ""), &pol).unwrap();
}

#[test]
fn bypass_session_only_filters_codecs() {
    let r = relay(43800, Some(Duration::from_millis(200)));
    let mut events = r.take_events().unwrap();
    let s = r.create_session(
        "direct",
        strowger_media::SessionOptions {
            bypass: true,
            ..Default::default()
        },
    );
    let offer = sdp(5000, "");
    let to_b = s
        .offer(Leg::A, &offer, &CodecPolicy::allow(&["PCMA"]))
        .unwrap();
    assert_eq!(
        to_b,
        offer
            .replace("RTP/AVP 0 8 101", "RTP/AVP 8 101")
            .replace("a=rtpmap:0 PCMU/8000\r\n", "")
    );
    let to_a = s.answer(Leg::B, &sdp(6000, "")).unwrap();
    assert_eq!(port_of(&to_a), 6000, "addresses untouched");
    assert!(!to_a.contains("PCMU"), "answer filtered to the offer");
    assert_eq!(r.stats().ports_free, r.stats().ports_total);
    assert!(!s.stats().anchored);
    std::thread::sleep(Duration::from_millis(600));
    assert!(events.try_recv().is_err(), "no media timeout in bypass");
}

#[test]
fn ipv6_relay() {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback; skipped");
        return;
    }
    let r = MediaRelay::start(MediaConfig {
        bind_ip: "::1".parse().unwrap(),
        port_min: 44000,
        port_max: 44099,
        workers: 1,
        timeout: None,
        ..Default::default()
    })
    .unwrap();
    let s = r.create_session("v6", Default::default());
    let a = UdpSocket::bind("[::1]:0").unwrap();
    let b = UdpSocket::bind("[::1]:0").unwrap();
    b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let v6 = |p: u16| {
        format!(
            "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=audio {p} RTP/AVP 0\r\n"
        )
    };
    let to_b = s
        .offer(
            Leg::A,
            &v6(a.local_addr().unwrap().port()),
            &CodecPolicy::allow_all(),
        )
        .unwrap();
    assert!(to_b.contains("c=IN IP6 ::1\r\n"));
    let to_a = s
        .answer(Leg::B, &v6(b.local_addr().unwrap().port()))
        .unwrap();
    a.send_to(&rtp(1, 0, 1), ("::1", port_of(&to_a))).unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = b.recv_from(&mut buf).unwrap();
    assert_eq!(n, 172);
    assert_eq!(
        from,
        SocketAddr::new("::1".parse().unwrap(), port_of(&to_b))
    );
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<MediaRelay>();
    check::<Session>();
    check::<strowger_media::SessionStats>();
}

#[test]
fn stats_have_wall_clock_times() {
    let r = relay(44200, None);
    let s = r.create_session("clock", Default::default());
    let a = phone();
    let b = phone();
    let (pa, _) = establish(
        &s,
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
        "",
        "",
    );
    a.send_to(&rtp(1, 0, 1), local(pa)).unwrap();
    assert_eq!(recv_n(&b, 1).0, 1);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let st = s.stats();
    let la = &st.streams[0].legs[0];
    let t = la.last_packet_unix_ms.unwrap();
    assert!(t <= now + 5 && now - t < 10_000, "{t} vs {now}");
    assert!(la.idle_ms.unwrap() < 10_000);
    // Serializable for CDRs / the admin API.
    let json = serde_json::to_value(&st).unwrap();
    assert_eq!(json["streams"][0]["legs"][0]["rtp"]["packets"], 1);
}

#[test]
fn early_media_then_final_answer_from_another_device() {
    let r = relay(44400, None);
    let s = r.create_session("early", Default::default());
    let a = phone();
    let gw = phone(); // 183 early media from a gateway
    let b = phone(); // 200 OK from the phone that answered
    let pol = CodecPolicy::allow_all();
    let to_b = s
        .offer(Leg::A, &sdp(a.local_addr().unwrap().port(), ""), &pol)
        .unwrap();
    let pb = port_of(&to_b);
    let to_a_183 = s
        .answer(Leg::B, &sdp(gw.local_addr().unwrap().port(), ""))
        .unwrap();
    let pa = port_of(&to_a_183);
    gw.send_to(&rtp(1, 0, 5), local(pb)).unwrap();
    assert_eq!(recv_n(&a, 1).0, 1, "early media reaches the caller");
    let to_a_200 = s
        .answer(Leg::B, &sdp(b.local_addr().unwrap().port(), ""))
        .unwrap();
    assert_eq!(
        port_of(&to_a_200),
        pa,
        "same relay port for the final answer"
    );
    a.send_to(&rtp(1, 0, 1), local(pa)).unwrap();
    assert_eq!(
        recv_n(&b, 1).0,
        1,
        "after the 200 OK the caller reaches the answering phone"
    );
    assert_eq!(recv_for(&gw, Duration::from_millis(100)), 0);
}

#[test]
fn call_media_forked_legs_and_release() {
    use std::sync::Arc;
    use strowger_media::CallMedia;
    let r = Arc::new(relay(44600, Some(Duration::from_secs(30))));
    let mut cm = CallMedia::new(r.clone());
    let a = phone();
    let b1 = phone();
    let b2 = phone();
    let offer = sdp(a.local_addr().unwrap().port(), "");
    let allow = vec!["PCMA".to_string()];
    // The INVITE forks to two phones.
    let to1 = String::from_utf8(
        cm.offer_to_leg(7, 1, offer.as_bytes(), true, Some(&allow))
            .unwrap(),
    )
    .unwrap();
    let to2 = String::from_utf8(
        cm.offer_to_leg(7, 2, offer.as_bytes(), true, Some(&allow))
            .unwrap(),
    )
    .unwrap();
    assert!(to1.contains("m=audio") && !to1.contains("PCMU"));
    assert_ne!(port_of(&to1), port_of(&to2), "each fork has its own ports");
    // Phone 2 answers.
    let ans = String::from_utf8(
        cm.answer_from_leg(7, 2, sdp(b2.local_addr().unwrap().port(), "").as_bytes())
            .unwrap(),
    )
    .unwrap();
    cm.release_leg(7, 1);
    a.send_to(&rtp(1, 0, 1), local(port_of(&ans))).unwrap();
    assert_eq!(recv_n(&b2, 1).0, 1);
    assert_eq!(recv_for(&b1, Duration::from_millis(100)), 0);
    assert_eq!(cm.stats(7).len(), 1);
    // Unparseable / non-UTF-8 SDP is a 488, not a panic.
    assert_eq!(
        cm.offer_to_leg(8, 1, &[0xff, 0xfe], true, None)
            .unwrap_err()
            .sip_status(),
        488
    );
    assert_eq!(cm.len(), 1, "a refused first offer leaves no session");
    cm.release(7);
    assert!(cm.is_empty());
    let end = Instant::now() + WAIT;
    while r.stats().ports_free != r.stats().ports_total && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(r.stats().ports_free, r.stats().ports_total);
    assert_eq!(
        strowger_media::calls::parse_session_key(&strowger_media::calls::session_key(7, 2)),
        Some((7, 2))
    );
}

#[test]
fn strict_source_accepts_only_the_signalled_ip() {
    let r = relay(45000, None);
    let s = r.create_session(
        "strict",
        strowger_media::SessionOptions {
            strict_source: true,
            ..Default::default()
        },
    );
    let a = phone();
    let b = phone();
    // A's SDP claims 127.0.0.2: packets from 127.0.0.1 are refused.
    let a_sdp =
        sdp(a.local_addr().unwrap().port(), "").replace("c=IN IP4 127.0.0.1", "c=IN IP4 127.0.0.2");
    s.offer(Leg::A, &a_sdp, &CodecPolicy::allow_all()).unwrap();
    let to_a = s
        .answer(Leg::B, &sdp(b.local_addr().unwrap().port(), ""))
        .unwrap();
    let pa = port_of(&to_a);
    a.send_to(&rtp(1, 0, 1), local(pa)).unwrap();
    assert_eq!(recv_for(&b, Duration::from_millis(300)), 0);
    // From the signalled IP (another port is fine) it flows.
    let Ok(a2) = UdpSocket::bind("127.0.0.2:0") else {
        eprintln!("127.0.0.2 not bindable; rest skipped");
        return;
    };
    a2.send_to(&rtp(2, 0, 1), local(pa)).unwrap();
    assert_eq!(recv_n(&b, 1).0, 1);
    assert_eq!(s.stats().streams[0].legs[0].foreign_dropped, 1);
}

/// RFC 4733 packet: PT 101, `event`, end bit, duration (8 kHz units).
fn telephone_event(seq: u16, ts: u32, event: u8, end: bool, dur: u16) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0] = 0x80;
    p[1] = 101;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&ts.to_be_bytes());
    p[8..12].copy_from_slice(&0x4444u32.to_be_bytes());
    p[12] = event;
    p[13] = if end { 0x8a } else { 0x0a };
    p[14..16].copy_from_slice(&dur.to_be_bytes());
    p
}

#[test]
fn dtmf_events_from_a_are_reported_once_and_not_forwarded() {
    let r = relay(45200, None);
    let mut events = r.take_events().unwrap();
    let s = r.create_session(
        "dtmf",
        strowger_media::SessionOptions {
            dtmf_events: [true, false],
            ..Default::default()
        },
    );
    let (a, b) = (phone(), phone());
    let (a_port, b_port) = (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    );
    let (to_a, to_b) = establish(&s, a_port, b_port, "", "");
    // Audio from A, then digits 1 and # (each: 2 progress + 3 end packets).
    a.send_to(&rtp(1, 0, 0x4444), local(to_a)).unwrap();
    let mut seq = 2;
    for (ts, ev) in [(160u32, 1u8), (2000, 11)] {
        for (end, dur) in [
            (false, 160),
            (false, 320),
            (true, 800),
            (true, 800),
            (true, 800),
        ] {
            a.send_to(&telephone_event(seq, ts, ev, end, dur), local(to_a))
                .unwrap();
            seq += 1;
        }
    }
    a.send_to(&rtp(seq, 4000, 0x4444), local(to_a)).unwrap();
    // B gets the two audio packets only.
    let (got, _) = recv_n(&b, 2);
    assert_eq!(got, 2);
    assert_eq!(
        recv_for(&b, Duration::from_millis(300)),
        0,
        "events leaked to B"
    );
    let mut digits = Vec::new();
    let end = Instant::now() + WAIT;
    while digits.len() < 2 && Instant::now() < end {
        match events.try_recv() {
            Ok(MediaEvent::Dtmf {
                call_id,
                from,
                event,
                duration_ms,
            }) => {
                assert_eq!((call_id.as_str(), from), ("dtmf", Leg::A));
                digits.push((strowger_media::dtmf_signal(event).unwrap(), duration_ms));
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    assert_eq!(digits, [('1', 100), ('#', 100)]);
    assert!(events.try_recv().is_err(), "one event per digit");
    // B's telephone-events still reach A (no conversion that way).
    b.send_to(&telephone_event(1, 160, 5, true, 800), local(to_b))
        .unwrap();
    assert_eq!(recv_n(&a, 1).0, 1);
    let st = s.stats();
    assert_eq!(st.streams[0].legs[0].dtmf_packets, 10);
    assert_eq!(st.streams[0].legs[0].rtp.packets, 12);
    assert_eq!(st.streams[0].legs[1].sent_packets, 2);
}

#[test]
fn offers_to_an_inband_leg_lose_telephone_event() {
    let r = relay(45400, None);
    let s = r.create_session(
        "inband",
        strowger_media::SessionOptions {
            no_telephone_event: [false, true],
            ..Default::default()
        },
    );
    let to_b = s
        .offer(Leg::A, &sdp(5000, ""), &CodecPolicy::allow_all())
        .unwrap();
    assert!(to_b.contains("RTP/AVP 0 8\r\n"), "{to_b}");
    assert!(
        !to_b.contains("telephone-event") && !to_b.contains("fmtp:101"),
        "{to_b}"
    );
    // The callee's own offer towards the caller keeps it.
    let to_a = s
        .offer(Leg::B, &sdp(6000, ""), &CodecPolicy::allow(&["PCMU"]))
        .unwrap();
    assert!(to_a.contains("RTP/AVP 0 101\r\n"), "{to_a}");
}

#[test]
fn dtmf_sent_by_the_relay_uses_the_legs_payload_type() {
    let r = relay(45600, None);
    let s = r.create_session("info", Default::default());
    let (a, b) = (phone(), phone());
    establish(
        &s,
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
        "",
        "",
    );
    assert!(s.send_dtmf(Leg::B, 11, 100));
    assert!(s.send_dtmf(Leg::B, 4, 100));
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    while let Ok((n, _)) = b.recv_from(&mut buf) {
        got.push(buf[..n].to_vec());
    }
    assert_eq!(got.len(), 8, "{got:?}");
    let seqs: Vec<u16> = got
        .iter()
        .map(|p| u16::from_be_bytes([p[2], p[3]]))
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "{seqs:?}"
    );
    assert_eq!((got[0][1], got[0][12]), (0x80 | 101, 11));
    assert_eq!((got[4][1], got[4][12]), (0x80 | 101, 4));
    assert_eq!(u16::from_be_bytes([got[3][14], got[3][15]]), 800);
    assert_eq!(recv_for(&a, Duration::from_millis(100)), 0);
    // No telephone-event negotiated: nothing to send.
    let plain = r.create_session("plain", Default::default());
    let to_b = plain
        .offer(
            Leg::A,
            &sdp(5000, ""),
            &CodecPolicy::allow(&["PCMU"]).without_dtmf(),
        )
        .unwrap();
    assert!(!to_b.contains("telephone-event"));
    plain
        .answer(
            Leg::B,
            &sdp(6000, "").replace(" 101\r\n", "\r\n").replace(
                "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n",
                "",
            ),
        )
        .unwrap();
    assert!(!plain.send_dtmf(Leg::B, 1, 100));
    assert!(!plain.send_dtmf(Leg::A, 1, 100));
}

// ---- hijack protection: latching only from the SIP peer or the SDP IP ----

/// A socket on `ip` (any 127/8 address works on Linux).
fn phone_on(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

/// A session whose caller is behind NAT: A's SIP comes from 127.0.0.1 (the
/// SIP peer), its SDP names 127.0.0.4 (the private address nothing listens
/// on); B is at 127.0.0.1. Returns (session, relay port for A, for B).
fn nat_call(r: &MediaRelay, id: &str, b: &UdpSocket) -> (Session, u16, u16) {
    let s = r.create_session(
        id,
        strowger_media::SessionOptions {
            peers: [Some("127.0.0.1".parse().unwrap()), None],
            ..Default::default()
        },
    );
    let a_sdp = sdp(40000, "").replace("c=IN IP4 127.0.0.1", "c=IN IP4 127.0.0.4");
    let to_b = s.offer(Leg::A, &a_sdp, &CodecPolicy::allow_all()).unwrap();
    let to_a = s
        .answer(Leg::B, &sdp(b.local_addr().unwrap().port(), ""))
        .unwrap();
    (s, port_of(&to_a), port_of(&to_b))
}

#[test]
fn attacker_sending_first_from_another_ip_is_not_latched() {
    let r = relay(47000, None);
    let b = phone();
    let (s, pa, pb) = nat_call(&r, "first", &b);
    // The attacker knows the relay port and sends before the caller.
    let evil = phone_on("127.0.0.2");
    for i in 0..10u16 {
        evil.send_to(&rtp(900 + i, 0, 666), local(pa)).unwrap();
    }
    // The caller (behind NAT: from its SIP address, not its SDP address).
    let a = phone_on("127.0.0.1");
    for i in 0..5u16 {
        a.send_to(&rtp(i, 0, 7), local(pa)).unwrap();
    }
    let (got, srcs) = recv_n(&b, 5);
    assert_eq!(got, 5, "B hears the caller");
    assert_eq!(srcs, vec![local(pb)]);
    assert_eq!(
        recv_for(&b, Duration::from_millis(200)),
        0,
        "nothing from the attacker reached B"
    );
    // B's media goes to the caller, not to the attacker.
    for i in 0..3u16 {
        b.send_to(&rtp(i, 0, 8), local(pb)).unwrap();
    }
    assert_eq!(recv_n(&a, 3).0, 3);
    assert_eq!(recv_for(&evil, Duration::from_millis(200)), 0);
    let st = s.stats();
    let la = &st.streams[0].legs[0];
    assert_eq!(la.latched, Some(a.local_addr().unwrap()));
    assert_eq!(la.foreign_dropped, 10);
    assert_eq!(la.latches, 1);
}

#[test]
fn attacker_after_silence_does_not_take_over() {
    // Re-learning after 200 ms of silence (6 s in production terms).
    let r = MediaRelay::start(MediaConfig {
        port_min: 47200,
        port_max: 47299,
        relatch_after: Some(Duration::from_millis(200)),
        learn_window: Duration::ZERO,
        timeout: None,
        workers: 1,
        ..Default::default()
    })
    .unwrap();
    let b = phone();
    let (s, pa, pb) = nat_call(&r, "silence", &b);
    let a = phone_on("127.0.0.1");
    a.send_to(&rtp(1, 0, 7), local(pa)).unwrap();
    assert_eq!(recv_n(&b, 1).0, 1);
    // The caller goes silent for longer than relatch_after.
    std::thread::sleep(Duration::from_millis(500));
    let evil = phone_on("127.0.0.3");
    for i in 0..5u16 {
        evil.send_to(&rtp(900 + i, 0, 666), local(pa)).unwrap();
    }
    assert_eq!(
        recv_for(&b, Duration::from_millis(300)),
        0,
        "the attacker did not take over the silent stream"
    );
    b.send_to(&rtp(1, 0, 8), local(pb)).unwrap();
    assert_eq!(recv_n(&a, 1).0, 1, "B's media still goes to the caller");
    assert_eq!(recv_for(&evil, Duration::from_millis(200)), 0);
    // The caller's NAT binding changed (same public IP, new port): that is
    // re-learned after the silence.
    let a2 = phone_on("127.0.0.1");
    a2.send_to(&rtp(2, 0, 7), local(pa)).unwrap();
    assert_eq!(recv_n(&b, 1).0, 1);
    b.send_to(&rtp(2, 0, 8), local(pb)).unwrap();
    assert_eq!(recv_n(&a2, 1).0, 1);
    let la = &s.stats().streams[0].legs[0];
    assert_eq!(la.latched, Some(a2.local_addr().unwrap()));
    assert_eq!(la.foreign_dropped, 5);
    assert_eq!(la.latches, 2);
}

#[test]
fn strict_latching_mode_refuses_the_sip_peer_when_sdp_says_otherwise() {
    let r = MediaRelay::start(MediaConfig {
        port_min: 47400,
        port_max: 47499,
        latching: strowger_media::Latching::Strict,
        timeout: None,
        workers: 1,
        ..Default::default()
    })
    .unwrap();
    let b = phone();
    let (_s, pa, _) = nat_call(&r, "strict-mode", &b);
    phone_on("127.0.0.1")
        .send_to(&rtp(1, 0, 7), local(pa))
        .unwrap();
    assert_eq!(recv_for(&b, Duration::from_millis(300)), 0);
    phone_on("127.0.0.4")
        .send_to(&rtp(2, 0, 7), local(pa))
        .unwrap();
    assert_eq!(recv_n(&b, 1).0, 1, "the SDP address's IP may send");
}

#[test]
fn ports_are_not_handed_out_in_sequence() {
    let pool = strowger_media::PortPool::new("127.0.0.1".parse().unwrap(), 48000, 48999, 0);
    let held: Vec<_> = (0..20).map(|_| pool.allocate().unwrap()).collect();
    let ports: Vec<u16> = held.iter().map(|h| h.0).collect();
    assert!(
        ports
            .iter()
            .all(|p| p % 2 == 0 && (48000..48999).contains(p))
    );
    // Sequential allocation gives p, p+2, p+4, ...: random picks out of
    // 500 pairs do that 19 times in a row with probability 500^-19.
    assert!(
        ports.windows(2).any(|w| w[1] != w[0] + 2),
        "ports handed out in sequence: {ports:?}"
    );
    // A released pair cools down: not handed out again while others are free.
    let gone = ports[0];
    drop(held);
    pool.release(gone);
    let next: Vec<_> = (0..10).map(|_| pool.allocate().unwrap()).collect();
    assert!(next.iter().all(|n| n.0 != gone), "{gone} reused at once");
}

// ---- media addresses the relay must not send to ----

fn offer_with_c(s: &Session, c: &str, extra: &str) -> Result<String, strowger_media::MediaError> {
    let text = sdp(40000, extra).replace("c=IN IP4 127.0.0.1", &format!("c=IN IP4 {c}"));
    s.offer(Leg::A, &text, &CodecPolicy::allow_all())
}

#[test]
fn multicast_broadcast_unspecified_and_foreign_addresses_get_488() {
    let r = MediaRelay::start(MediaConfig {
        port_min: 47600,
        port_max: 47699,
        timeout: None,
        workers: 1,
        allowed_networks: vec!["127.0.0.0/8".parse().unwrap()],
        ..Default::default()
    })
    .unwrap();
    for (c, extra, why) in [
        ("224.0.0.1", "", "multicast"),
        ("239.255.255.250", "", "multicast"),
        ("255.255.255.255", "", "broadcast"),
        ("0.0.0.0", "", "unspecified"),
        ("0.0.0.0", "a=sendrecv\r\n", "unspecified"),
        ("192.0.2.1", "", "allowed_networks"),
        // the RTCP address counts too
        (
            "127.0.0.1",
            "a=rtcp:40001 IN IP4 224.0.0.251\r\n",
            "multicast",
        ),
    ] {
        let s = r.create_session("bad", Default::default());
        let e = offer_with_c(&s, c, extra).unwrap_err();
        assert_eq!(e.sip_status(), 488, "{c} {extra}: {e}");
        assert!(e.to_string().contains(why), "{c}: {e}");
        s.close();
    }
    assert_eq!(
        r.stats().ports_free,
        r.stats().ports_total,
        "nothing allocated"
    );
    assert_eq!(r.stats().addresses_refused, 7);
    // An answer naming a multicast address is refused as well.
    let s = r.create_session("answer", Default::default());
    offer_with_c(&s, "127.0.0.1", "").unwrap();
    let e = s
        .answer(
            Leg::B,
            &sdp(6000, "").replace("c=IN IP4 127.0.0.1", "c=IN IP4 224.0.0.1"),
        )
        .unwrap_err();
    assert_eq!(e.sip_status(), 488);
}

#[test]
fn hold_with_unspecified_address_still_works() {
    let r = relay(47800, None);
    // A call that starts on hold (the direction says so).
    let s = r.create_session("held-start", Default::default());
    offer_with_c(&s, "0.0.0.0", "a=sendonly\r\n").unwrap();
    s.answer(Leg::B, &sdp(6000, "a=recvonly\r\n")).unwrap();
    assert!(s.is_held());
    // RFC 2543 hold: a re-INVITE with c=0.0.0.0 (sendrecv), then resume.
    let s = r.create_session("rfc2543", Default::default());
    establish(&s, 40000, 6000, "", "");
    assert!(!s.is_held());
    let to_b = offer_with_c(&s, "0.0.0.0", "").unwrap();
    assert!(
        to_b.contains("c=IN IP4 0.0.0.0\r\n"),
        "hold passed on: {to_b}"
    );
    s.answer(Leg::B, &sdp(6000, "")).unwrap();
    assert!(s.is_held());
    // a refresh while held, then resume
    offer_with_c(&s, "0.0.0.0", "").unwrap();
    s.answer(Leg::B, &sdp(6000, "")).unwrap();
    offer_with_c(&s, "127.0.0.1", "").unwrap();
    s.answer(Leg::B, &sdp(6000, "")).unwrap();
    assert!(!s.is_held());
}
