//! The ng control protocol server (what `strowger-mediad` runs) driven by the
//! ng client, with RTP through the resulting session; bencode edge cases.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use strowger_media::ng::{Bencode, NgClient};
use strowger_media::{MediaConfig, MediaRelay};

fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n"
    )
}

fn port(sdp: &str) -> u16 {
    strowger_media::sdp::Sdp::parse(sdp).unwrap().media()[0].port()
}

#[test]
fn ng_offer_answer_relay_delete() {
    let relay = Arc::new(
        MediaRelay::start(MediaConfig {
            port_min: 43600,
            port_max: 43699,
            workers: 1,
            timeout: None,
            ..Default::default()
        })
        .unwrap(),
    );
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let (relay, stop) = (relay.clone(), stop.clone());
        std::thread::spawn(move || strowger_media::ng::serve(relay, sock, stop))
    };
    let mut c = NgClient::new(addr).unwrap();
    let pong = c
        .command(&Bencode::dict(&[("command", Bencode::str("ping"))]))
        .unwrap();
    assert_eq!(pong.get("result").unwrap().as_str(), Some("pong"));

    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let r = c
        .command(&Bencode::dict(&[
            ("command", Bencode::str("offer")),
            ("call-id", Bencode::str("ng-1")),
            ("from-tag", Bencode::str("ta")),
            ("sdp", Bencode::str(&sdp(a.local_addr().unwrap().port()))),
        ]))
        .unwrap();
    let pb = port(r.get("sdp").unwrap().as_str().unwrap());
    let r = c
        .command(&Bencode::dict(&[
            ("command", Bencode::str("answer")),
            ("call-id", Bencode::str("ng-1")),
            ("from-tag", Bencode::str("ta")),
            ("to-tag", Bencode::str("tb")),
            ("sdp", Bencode::str(&sdp(b.local_addr().unwrap().port()))),
        ]))
        .unwrap();
    let pa = port(r.get("sdp").unwrap().as_str().unwrap());
    assert!((43600..43700).contains(&pa) && (43600..43700).contains(&pb));
    let mut pkt = [0u8; 172];
    pkt[0] = 0x80;
    a.send_to(&pkt, ("127.0.0.1", pa)).unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = b.recv_from(&mut buf).unwrap();
    assert_eq!((n, from.port()), (172, pb));

    let q = c
        .command(&Bencode::dict(&[
            ("command", Bencode::str("query")),
            ("call-id", Bencode::str("ng-1")),
        ]))
        .unwrap();
    assert!(
        q.get("strowger-stats")
            .unwrap()
            .as_str()
            .unwrap()
            .contains("\"packets\":1")
    );

    // Errors are ng errors, not crashes.
    let e = c
        .command(&Bencode::dict(&[
            ("command", Bencode::str("offer")),
            ("call-id", Bencode::str("ng-2")),
            ("from-tag", Bencode::str("x")),
            ("sdp", Bencode::str("not sdp")),
        ]))
        .unwrap_err();
    assert!(e.contains("invalid SDP"), "{e}");
    assert!(
        c.command(&Bencode::dict(&[("command", Bencode::str("bogus"))]))
            .is_err()
    );

    let d = c
        .command(&Bencode::dict(&[
            ("command", Bencode::str("delete")),
            ("call-id", Bencode::str("ng-1")),
        ]))
        .unwrap();
    assert_eq!(d.get("result").unwrap().as_str(), Some("ok"));
    stop.store(true, Ordering::Release);
    server.join().unwrap().unwrap();
}

#[test]
fn bencode_round_trip_and_garbage() {
    let v = Bencode::dict(&[
        ("a", Bencode::Int(-42)),
        ("l", Bencode::List(vec![Bencode::str("x"), Bencode::Int(0)])),
        ("s", Bencode::Bytes(b"with\r\nbytes:e".to_vec())),
    ]);
    let mut out = Vec::new();
    v.encode(&mut out);
    let (back, used) = Bencode::decode(&out).unwrap();
    assert_eq!((back, used), (v, out.len()));
    for bad in [
        &b""[..],
        b"d",
        b"i12",
        b"5:abc",
        b"d1:a",
        b"li1e",
        b"x",
        b"99999999999999999999:a",
        b"di1ei2ee",
    ] {
        assert!(
            Bencode::decode(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let deep = "l".repeat(100);
    assert!(Bencode::decode(deep.as_bytes()).is_err());
}
