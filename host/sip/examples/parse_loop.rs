//! Parses a ~1 KB INVITE N times (default 10,000); used with
//! `valgrind --tool=callgrind` to count instructions independently of
//! machine load. `cargo run --release -p strowger-sip --example parse_loop [N] [strowger|parse_only|rsip|build_response|edit]`
use std::hint::black_box;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let which = std::env::args().nth(2).unwrap_or_else(|| "strowger".into());
    let text = include_str!("invite_1k.txt").replace('\n', "\r\n");
    let body_len = text.len() - text.find("\r\n\r\n").unwrap() - 4;
    let text = text.replace("{CL}", &body_len.to_string());
    let bytes = bytes::Bytes::from(text);
    let req = strowger_sip::parse(bytes.clone()).unwrap();
    let t = std::time::Instant::now();
    for _ in 0..n {
        if which == "rsip" {
            use rsip::prelude::*;
            let r = rsip::SipMessage::try_from(black_box(&bytes[..])).unwrap();
            let via = r.via_header().unwrap().typed().unwrap();
            let from = r.from_header().unwrap().typed().unwrap();
            let to = r.to_header().unwrap().typed().unwrap();
            let cseq = r.cseq_header().unwrap().typed().unwrap();
            black_box((
                via.branch().is_some(),
                from.tag().is_some(),
                to.tag().is_some(),
                cseq.seq,
            ));
        } else if which == "build_response" {
            black_box(
                strowger_sip::ResponseBuilder::new(black_box(&req), 180)
                    .to_tag("as7d8f9g")
                    .contact("sip:gw@198.51.100.1:5060")
                    .build(),
            );
        } else if which == "edit" {
            black_box(
                strowger_sip::MessageEditor::new(black_box(&req))
                    .set_request_uri("sip:+551133334444@198.51.100.20:5060")
                    .prepend_via("SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKproxy1")
                    .replace("Max-Forwards", "69")
                    .build(),
            );
        } else if which == "parse_only" {
            black_box(strowger_sip::parse(black_box(bytes.clone())).unwrap());
        } else {
            let m = strowger_sip::parse(black_box(bytes.clone())).unwrap();
            black_box((
                m.top_via().branch().map(str::len),
                m.from().tag().map(str::len),
                m.to().tag().is_some(),
                m.cseq().seq,
                m.call_id().len(),
            ));
        }
    }
    eprintln!(
        "{which}: {} bytes, {:?} per parse (wall clock)",
        bytes.len(),
        t.elapsed() / n as u32
    );
}
