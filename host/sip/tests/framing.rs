//! Stream (TCP/TLS) framing: message boundaries, keep-alives, partial data.

use bytes::{Buf, BytesMut};
use strowger_sip::{Frame, ParseErrorKind, ParseOptions, frame, parse_with};

fn msg(body: &str, call_id: &str) -> String {
    format!(
        "MESSAGE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK{call_id}\r\n\
From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: {call_id}\r\n\
CSeq: 1 MESSAGE\r\nl: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn pipelined_messages_and_keepalives_split_at_every_byte() {
    let stream = format!(
        "\r\n\r\n{}\r\n{}{}",
        msg("hello", "c1"),
        msg("", "c2"),
        msg("x\r\n\r\ny", "c3")
    );
    let opts = ParseOptions {
        stream: true,
        ..ParseOptions::default()
    };
    // Feed the stream in chunks of every size from 1 to 64 bytes.
    for chunk in 1..=64 {
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut pings = 0;
        for piece in stream.as_bytes().chunks(chunk) {
            buf.extend_from_slice(piece);
            loop {
                match frame(&buf, 65536).unwrap() {
                    Frame::Incomplete => break,
                    Frame::KeepAlive { len, ping } => {
                        pings += ping as usize;
                        buf.advance(len);
                    }
                    Frame::Message { len } => {
                        let m = parse_with(buf.split_to(len).freeze(), &opts).unwrap();
                        got.push((m.call_id().to_string(), m.body().to_vec()));
                    }
                }
            }
        }
        assert!(buf.is_empty(), "chunk {chunk}: leftover {buf:?}");
        assert_eq!(
            got,
            [
                ("c1".to_string(), b"hello".to_vec()),
                ("c2".to_string(), b"".to_vec()),
                ("c3".to_string(), b"x\r\n\r\ny".to_vec())
            ],
            "chunk size {chunk}"
        );
        // The leading CRLFCRLF is a ping when it arrives whole.
        if chunk >= 4 {
            assert_eq!(pings, 1, "chunk {chunk}");
        }
    }
}

#[test]
fn framing_errors() {
    let bad = "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n";
    assert_eq!(
        frame(bad.as_bytes(), 65536).unwrap_err().kind(),
        ParseErrorKind::ContentLength
    );
    let huge = "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 100000\r\n\r\n";
    assert_eq!(
        frame(huge.as_bytes(), 65536).unwrap_err().kind(),
        ParseErrorKind::TooLarge
    );
    let endless = format!("OPTIONS sip:a@b SIP/2.0\r\nX: {}", "a".repeat(70_000));
    assert_eq!(
        frame(endless.as_bytes(), 65536).unwrap_err().kind(),
        ParseErrorKind::TooLarge
    );
    // Missing Content-Length on a stream: empty body.
    let nocl = "OPTIONS sip:a@b SIP/2.0\r\nX: 1\r\n\r\nNEXT";
    assert_eq!(
        frame(nocl.as_bytes(), 65536).unwrap(),
        Frame::Message {
            len: nocl.len() - 4
        }
    );
    assert_eq!(frame(b"", 10).unwrap(), Frame::Incomplete);
    assert_eq!(
        frame(b"\r\n", 10).unwrap(),
        Frame::KeepAlive {
            len: 2,
            ping: false
        }
    );
}

/// The incremental framer finds the same boundaries as the stateless one
/// whatever the chunking, and resumes: a message delivered one byte at a
/// time costs work linear in its size (a re-scan from the start at every
/// read is quadratic: ~n²/2 bytes for n bytes).
#[test]
fn stream_framer_resumes_and_does_linear_work() {
    let stream = format!(
        "\r\n\r\n{}\r\n{}{}",
        msg("hello", "c1"),
        msg("", "c2"),
        msg("x\r\n\r\ny", "c3")
    );
    for chunk in 1..=64 {
        let mut buf = BytesMut::new();
        let mut fr = strowger_sip::StreamFramer::default();
        let mut got = Vec::new();
        for piece in stream.as_bytes().chunks(chunk) {
            buf.extend_from_slice(piece);
            loop {
                let want = frame(&buf, 65536).unwrap();
                let f = fr.frame(&buf, 65536).unwrap();
                assert_eq!(f, want, "chunk {chunk}");
                match f {
                    Frame::Incomplete => break,
                    Frame::KeepAlive { len, .. } => buf.advance(len),
                    Frame::Message { len } => got.push(buf.split_to(len)),
                }
            }
        }
        assert_eq!(got.len(), 3, "chunk {chunk}");
        assert!(buf.is_empty());
    }

    // 20 kB of headers (many Via lines) then a body, one byte per read.
    let mut m = String::from("OPTIONS sip:b@example.com SIP/2.0\r\n");
    for i in 0..400 {
        m.push_str(&format!(
            "Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK{i:08}\r\n"
        ));
    }
    m.push_str("Call-ID: lin\r\nCSeq: 1 OPTIONS\r\nContent-Length: 2000\r\n\r\n");
    m.push_str(&"b".repeat(2000));
    let n = m.len();
    let mut buf = BytesMut::new();
    let mut fr = strowger_sip::StreamFramer::default();
    let mut done = 0;
    for b in m.as_bytes() {
        buf.extend_from_slice(&[*b]);
        if let Frame::Message { len } = fr.frame(&buf, 65536).unwrap() {
            assert_eq!(len, n);
            done += 1;
        }
    }
    assert_eq!(done, 1);
    assert!(
        fr.bytes_scanned() <= 4 * n as u64,
        "framing {n} bytes delivered one at a time scanned {} bytes (quadratic)",
        fr.bytes_scanned()
    );
}
