//! SDP round trip and rewrite tests on real-world SDPs, and codec filtering.

use std::net::IpAddr;

use strowger_media::CodecPolicy;
use strowger_media::codec::{filter_answer, filter_offer};
use strowger_media::sdp::{Direction, Sdp};

const ASTERISK: &str = "v=0\r\n\
o=- 1402906447 1402906447 IN IP4 192.168.1.10\r\n\
s=Asterisk\r\n\
c=IN IP4 192.168.1.10\r\n\
t=0 0\r\n\
m=audio 17054 RTP/AVP 0 8 3 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:3 GSM/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=maxptime:150\r\n\
a=sendrecv\r\n";

const SOFTPHONE_SRTP: &str = "v=0\r\n\
o=Zoiper 0 36589112 IN IP4 10.0.0.23\r\n\
s=Z\r\n\
c=IN IP4 10.0.0.23\r\n\
t=0 0\r\n\
m=audio 8000 RTP/SAVP 106 9 98 101 0 8 18 3\r\n\
a=rtpmap:106 opus/48000/2\r\n\
a=fmtp:106 minptime=20; cbr=1; maxaveragebitrate=40000; useinbandfec=1\r\n\
a=rtpmap:98 iLBC/8000\r\n\
a=fmtp:98 mode=20\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=sendrecv\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4\r\n\
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:4\r\n";

const T38: &str = "v=0\r\n\
o=AudiocodesGW 1757 1343 IN IP4 172.16.3.5\r\n\
s=Phone-Call\r\n\
c=IN IP4 172.16.3.5\r\n\
t=0 0\r\n\
m=image 6010 udptl t38\r\n\
a=T38FaxVersion:0\r\n\
a=T38MaxBitRate:14400\r\n\
a=T38FaxMaxBuffer:1024\r\n\
a=T38FaxMaxDatagram:238\r\n\
a=T38FaxRateManagement:transferredTCF\r\n\
a=T38FaxUdpEC:t38UDPRedundancy\r\n";

const RTCP_MUX_WEBRTCISH: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0\r\n\
a=msid-semantic: WMS\r\n\
m=audio 54400 RTP/AVP 111 0 8 126\r\n\
c=IN IP4 203.0.113.7\r\n\
a=rtcp:54401 IN IP4 203.0.113.7\r\n\
a=candidate:1 1 udp 2122260223 192.168.0.5 54400 typ host\r\n\
a=candidate:2 1 udp 1686052607 203.0.113.7 54400 typ srflx raddr 192.168.0.5 rport 54400\r\n\
a=ice-ufrag:Kf3a\r\n\
a=ice-pwd:Ye2w0bDjgPqYq5hXkSm3pFOx\r\n\
a=mid:0\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtcp-fb:111 transport-cc\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:126 telephone-event/8000\r\n\
a=ssrc:1234567 cname:abc\r\n";

const IPV6: &str = "v=0\n\
o=linphone 123 456 IN IP6 2001:db8::10\n\
s=Talk\n\
c=IN IP6 2001:db8::10\n\
t=0 0\n\
a=x-unknown-session-thing:42\n\
m=audio 7078 RTP/AVP 96 0 8 101\n\
a=rtpmap:96 opus/48000/2\n\
a=rtpmap:101 telephone-event/8000\n\
a=recvonly\n\
m=video 9078 RTP/AVP 97\n\
a=rtpmap:97 H264/90000\n\
a=fmtp:97 profile-level-id=42801F\n";

fn relay_ip() -> IpAddr {
    "198.51.100.1".parse().unwrap()
}

#[test]
fn round_trip_is_byte_exact() {
    for sdp in [ASTERISK, SOFTPHONE_SRTP, T38, RTCP_MUX_WEBRTCISH, IPV6] {
        let p = Sdp::parse(sdp).unwrap();
        assert_eq!(p.to_text(), sdp);
    }
    // No final newline, stray blank line at the end.
    let odd = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n\r\n";
    assert_eq!(Sdp::parse(odd).unwrap().to_text(), odd);
    let noeol = "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 1.2.3.4\nt=0 0\nm=audio 4000 RTP/AVP 0";
    assert_eq!(Sdp::parse(noeol).unwrap().to_text(), noeol);
}

/// Lines of `out` that differ from `inp` (by position in the unchanged set).
fn changed(inp: &str, out: &str) -> Vec<String> {
    let inl: Vec<&str> = inp.split("\r\n").collect();
    out.split("\r\n")
        .filter(|l| !inl.contains(l))
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn rewrite_address_and_ports_keeps_everything_else() {
    let mut p = Sdp::parse(SOFTPHONE_SRTP).unwrap();
    p.set_address(relay_ip());
    p.media_mut()[0].set_port(40000);
    let out = p.to_text();
    assert_eq!(
        changed(SOFTPHONE_SRTP, &out),
        vec![
            "o=Zoiper 0 36589112 IN IP4 198.51.100.1",
            "c=IN IP4 198.51.100.1",
            "m=audio 40000 RTP/SAVP 106 9 98 101 0 8 18 3",
        ]
    );
    // Every crypto line survives byte-exact.
    assert!(out.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4\r\n"));
    assert_eq!(out.matches("a=crypto:").count(), 2);
}

#[test]
fn rewrite_t38_udptl() {
    let mut p = Sdp::parse(T38).unwrap();
    assert_eq!(p.media()[0].media_type(), "image");
    assert_eq!(p.media()[0].proto(), "udptl");
    assert!(!p.media()[0].is_rtp());
    p.set_address(relay_ip());
    p.media_mut()[0].set_port(40010);
    let out = p.to_text();
    assert_eq!(
        changed(T38, &out),
        vec![
            "o=AudiocodesGW 1757 1343 IN IP4 198.51.100.1",
            "c=IN IP4 198.51.100.1",
            "m=image 40010 udptl t38",
        ]
    );
}

#[test]
fn rewrite_rtcp_attribute_mux_and_strip_ice() {
    let mut p = Sdp::parse(RTCP_MUX_WEBRTCISH).unwrap();
    let m = &p.media()[0];
    assert!(m.rtcp_mux());
    assert_eq!(
        m.rtcp(),
        Some((54401, Some("203.0.113.7".parse().unwrap())))
    );
    assert_eq!(
        p.connection(0).unwrap().addr,
        "203.0.113.7".parse::<IpAddr>().unwrap()
    );
    p.set_address(relay_ip());
    p.media_mut()[0].set_port(40020);
    p.media_mut()[0].set_rtcp(40021, relay_ip());
    p.strip_ice();
    let out = p.to_text();
    assert!(out.contains("a=rtcp:40021 IN IP4 198.51.100.1\r\n"));
    assert!(out.contains("m=audio 40020 RTP/AVP 111 0 8 126\r\n"));
    assert!(!out.contains("candidate") && !out.contains("ice-"));
    assert!(!out.contains("203.0.113.7") && !out.contains("192.168.0.5"));
    for keep in [
        "a=rtcp-mux\r\n",
        "a=group:BUNDLE 0\r\n",
        "a=ssrc:1234567 cname:abc\r\n",
        "a=rtcp-fb:111 transport-cc\r\n",
    ] {
        assert!(out.contains(keep), "{keep}");
    }
}

#[test]
fn ipv6_and_lf_endings() {
    let mut p = Sdp::parse(IPV6).unwrap();
    assert_eq!(p.direction(0), Direction::RecvOnly);
    assert_eq!(p.direction(1), Direction::SendRecv);
    assert_eq!(p.media()[1].rtpmap(97).unwrap().clock_rate, 90000);
    p.set_address("2001:db8::1".parse().unwrap());
    p.media_mut()[0].set_port(40030);
    let out = p.to_text();
    assert!(!out.contains('\r'), "keeps LF endings");
    assert!(out.contains("o=linphone 123 456 IN IP6 2001:db8::1\n"));
    assert!(out.contains("c=IN IP6 2001:db8::1\n"));
    assert!(out.contains("m=audio 40030 RTP/AVP 96 0 8 101\n"));
    assert!(out.contains("a=x-unknown-session-thing:42\n"));
    // IPv4 relay address into an IPv6 SDP switches the address type.
    p.set_address(relay_ip());
    assert!(p.to_text().contains("c=IN IP4 198.51.100.1\n"));
}

#[test]
fn hold_address_is_kept() {
    let held = ASTERISK.replace("c=IN IP4 192.168.1.10", "c=IN IP4 0.0.0.0");
    let mut p = Sdp::parse(&held).unwrap();
    p.set_address(relay_ip());
    assert!(p.to_text().contains("c=IN IP4 0.0.0.0\r\n"));
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let bad = [
        "",
        "hello",
        "v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\n",
        "v=0\r\ns=-\r\n",                                              // no o=
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio x RTP/AVP 0\r\n",    // bad port
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\n", // no c=
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 999.1.1.1\r\nm=audio 4000 RTP/AVP 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP6 1.1.1.1\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nthis is not sdp\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 1.1.1.1\r\nm=audio 4000\r\n",
    ];
    for b in bad {
        assert!(Sdp::parse(b).is_err(), "accepted {b:?}");
    }
    assert!(Sdp::parse_bytes(&[b'v', b'=', b'0', b'\n', 0xff, 0xfe]).is_err());
    // Truncations and byte flips of a real SDP never panic.
    for cut in 0..ASTERISK.len() {
        let _ = Sdp::parse(&ASTERISK[..cut]);
    }
    let mut bytes = SOFTPHONE_SRTP.as_bytes().to_vec();
    for i in 0..bytes.len() {
        let orig = bytes[i];
        for v in [b' ', b'=', b'/', b':', b'\n', b'9', 0x80] {
            bytes[i] = v;
            if let Ok(p) = Sdp::parse_bytes(&bytes) {
                let _ = p.to_text();
                for (k, m) in p.media().iter().enumerate() {
                    let _ = (m.port(), m.formats(), m.rtpmaps(), m.rtcp(), p.direction(k));
                }
            }
        }
        bytes[i] = orig;
    }
}

const G729_FIRST: &str = "v=0\r\n\
o=- 7 7 IN IP4 10.1.1.1\r\n\
s=-\r\n\
c=IN IP4 10.1.1.1\r\n\
t=0 0\r\n\
m=audio 5004 RTP/AVP 18 8 0 101\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n";

#[test]
fn codec_filter_keeps_allowed_and_dtmf_in_allow_list_order() {
    let mut p = Sdp::parse(G729_FIRST).unwrap();
    let kept = filter_offer(&mut p, &CodecPolicy::allow(&["pcmu", "PCMA"])).unwrap();
    // Allow-list order (WIT: "in this order of preference"), DTMF last.
    assert_eq!(kept, vec![vec!["0".to_string(), "8".into(), "101".into()]]);
    let out = p.to_text();
    assert!(out.contains("m=audio 5004 RTP/AVP 0 8 101\r\n"));
    // Lines other than the m= line keep their original order.
    let i8 = out.find("a=rtpmap:8 PCMA").unwrap();
    let i0 = out.find("a=rtpmap:0 PCMU").unwrap();
    assert!(i8 < i0);

    let mut p = Sdp::parse(G729_FIRST).unwrap();
    filter_offer(&mut p, &CodecPolicy::allow(&["PCMA", "PCMU"])).unwrap();
    assert!(p.to_text().contains("m=audio 5004 RTP/AVP 8 0 101\r\n"));
    // Empty allow list: nothing removed, order untouched.
    let mut p = Sdp::parse(G729_FIRST).unwrap();
    filter_offer(&mut p, &CodecPolicy::allow_all()).unwrap();
    assert_eq!(p.to_text(), G729_FIRST);
    assert!(!out.contains("G729") && !out.contains("annexb"));
    assert!(out.contains("a=fmtp:101 0-15\r\n") && out.contains("a=ptime:20\r\n"));

    // Without DTMF.
    let mut p = Sdp::parse(G729_FIRST).unwrap();
    let pol = CodecPolicy {
        allow: vec!["PCMU".into()],
        dtmf: false,
    };
    filter_offer(&mut p, &pol).unwrap();
    assert!(p.to_text().contains("m=audio 5004 RTP/AVP 0\r\n"));
    assert!(!p.to_text().contains("telephone-event"));

    // Static payload types without rtpmap lines are recognised.
    let bare = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18 0 8\r\n";
    let mut p = Sdp::parse(bare).unwrap();
    filter_offer(&mut p, &CodecPolicy::allow(&["PCMA"])).unwrap();
    assert!(p.to_text().contains("m=audio 4000 RTP/AVP 8\r\n"));
}

#[test]
fn codec_filter_only_g729_is_488() {
    let only = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18 101\r\na=rtpmap:18 G729/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
    let mut p = Sdp::parse(only).unwrap();
    assert!(filter_offer(&mut p, &CodecPolicy::allow(&["PCMU", "PCMA"])).is_err());
    // Through the relay API it maps to 488.
    let relay = strowger_media::MediaRelay::start(strowger_media::MediaConfig {
        port_min: 41000,
        port_max: 41100,
        workers: 1,
        ..Default::default()
    })
    .unwrap();
    let s = relay.create_session("c1", Default::default());
    let e = s
        .offer(
            strowger_media::Leg::A,
            only,
            &CodecPolicy::allow(&["PCMU", "PCMA"]),
        )
        .unwrap_err();
    assert_eq!(e.sip_status(), 488);
    let e = s
        .offer(strowger_media::Leg::A, "garbage", &CodecPolicy::allow_all())
        .unwrap_err();
    assert_eq!(e.sip_status(), 488);
    // Nothing was allocated by the failed offers.
    assert_eq!(relay.stats().ports_free, relay.stats().ports_total);
}

#[test]
fn answer_filter_is_consistent_with_offer() {
    let mut offer = Sdp::parse(G729_FIRST).unwrap();
    let pol = CodecPolicy::allow(&["PCMU", "PCMA"]);
    let kept = filter_offer(&mut offer, &pol).unwrap();
    // A misbehaving answerer answers with G729 and PCMU.
    let ans = "v=0\r\no=- 9 9 IN IP4 10.2.2.2\r\ns=-\r\nc=IN IP4 10.2.2.2\r\nt=0 0\r\nm=audio 6000 RTP/AVP 18 0 101\r\na=rtpmap:18 G729/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
    let mut a = Sdp::parse(ans).unwrap();
    filter_answer(&mut a, &kept, &pol).unwrap();
    assert!(a.to_text().contains("m=audio 6000 RTP/AVP 0 101\r\n"));
    assert!(!a.to_text().contains("G729"));
    // An answer with only G729 is refused.
    let only = ans.replace("RTP/AVP 18 0 101", "RTP/AVP 18");
    let mut a = Sdp::parse(&only).unwrap();
    assert!(filter_answer(&mut a, &kept, &pol).is_err());
}

#[test]
fn non_audio_streams_are_not_filtered() {
    let mut p = Sdp::parse(IPV6).unwrap();
    filter_offer(&mut p, &CodecPolicy::allow(&["PCMU"])).unwrap();
    let out = p.to_text();
    assert!(out.contains("m=audio 7078 RTP/AVP 0 101\n"));
    assert!(out.contains("m=video 9078 RTP/AVP 97\n"));
    let mut t = Sdp::parse(T38).unwrap();
    filter_offer(&mut t, &CodecPolicy::allow(&["PCMU"])).unwrap();
    assert_eq!(t.to_text(), T38);
}
