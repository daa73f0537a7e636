//! Parser / serializer benches: a realistic ~1 KB INVITE.
//!
//! `cargo bench -p strowger-sip --bench parse`
//!
//! * `parse_invite_1k/strowger`: parse + read Via branch, From/To tags,
//!   CSeq, Call-ID (same work as the rsip row and as the measurements in
//!   shared/notes/dependency-facts.md).
//! * `parse_invite_1k/rsip`: rsip 0.4 on the same bytes, same reads.
//! * `build_response_180`: `ResponseBuilder` for a 180 with To tag.
//! * `build_request_invite`: `RequestBuilder` for a new INVITE with SDP.
//! * `edit_proxy`: `MessageEditor` (R-URI change, Via prepend, header swap).
//! * `transaction_server_invite`: one INVITE through the transaction layer
//!   (new server transaction, 180, 200).

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use strowger_sip::transaction::{Output, TransactionLayer, TuEvent, TxConfig};
use strowger_sip::{MessageEditor, Method, RequestBuilder, ResponseBuilder, Transport, parse};

const INVITE: &str = "INVITE sip:+551133334444@trunk.example.net:5060;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-524287-1---4c9a8d8f0c1e7a3b;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:1001@192.0.2.10:5060;transport=udp>\r\n\
To: <sip:+551133334444@trunk.example.net;user=phone>\r\n\
From: \"Reception 1001\" <sip:1001@pbx.example.com>;tag=8d2f6c1a\r\n\
Call-ID: 5a3bd0e2c7f84d61a9e2b0c3d4e5f607@192.0.2.10\r\n\
CSeq: 2 INVITE\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE, UPDATE, PRACK\r\n\
Content-Type: application/sdp\r\n\
Supported: replaces, timer, 100rel\r\n\
User-Agent: Yealink SIP-T46S 66.86.0.15\r\n\
Session-Expires: 1800;refresher=uac\r\n\
P-Asserted-Identity: \"Reception 1001\" <sip:1001@pbx.example.com>\r\n\
Content-Length: 437\r\n\
\r\n\
v=0\r\n\
o=- 20018 20018 IN IP4 192.0.2.10\r\n\
s=SDP data\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 11780 RTP/AVP 8 0 18 9 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=rtpmap:9 G722/8000\r\n\
a=fmtp:101 0-15\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n\
a=rtcp:11781 IN IP4 192.0.2.10\r\n\
a=ssrc:1234567890 cname:abcdefghijklmnop\r\n";

fn invite_bytes() -> Bytes {
    let s = INVITE;
    let body = &s[s.find("\r\n\r\n").unwrap() + 4..];
    let fixed = s.replace(
        "Content-Length: 437",
        &format!("Content-Length: {}", body.len()),
    );
    Bytes::from(fixed)
}

fn bench(c: &mut Criterion) {
    let bytes = invite_bytes();
    eprintln!("INVITE size: {} bytes", bytes.len());
    let mut g = c.benchmark_group("parse_invite_1k");
    g.bench_function("strowger", |b| {
        b.iter(|| {
            let m = parse(black_box(bytes.clone())).unwrap();
            black_box((
                m.top_via().branch().map(str::len),
                m.from().tag().map(str::len),
                m.to().tag().is_some(),
                m.cseq().seq,
                m.call_id().len(),
            ));
        })
    });
    g.bench_function("strowger_parse_only", |b| {
        b.iter(|| black_box(parse(black_box(bytes.clone())).unwrap()))
    });
    g.bench_function("rsip", |b| {
        use rsip::prelude::*;
        b.iter(|| {
            let r = rsip::SipMessage::try_from(black_box(&bytes[..])).unwrap();
            let via = r.via_header().unwrap().typed().unwrap();
            let from = r.from_header().unwrap().typed().unwrap();
            let to = r.to_header().unwrap().typed().unwrap();
            let cseq = r.cseq_header().unwrap().typed().unwrap();
            let cid = r.call_id_header().unwrap().value().len();
            black_box((
                via.branch().map(|b| b.to_string().len()),
                from.tag().map(|t| t.value().len()),
                to.tag().is_some(),
                cseq.seq,
                cid,
            ));
        })
    });
    g.finish();

    let req = parse(bytes.clone()).unwrap();
    c.bench_function("build_response_180", |b| {
        b.iter(|| {
            black_box(
                ResponseBuilder::new(black_box(&req), 180)
                    .to_tag("as7d8f9g")
                    .contact("sip:gw@198.51.100.1:5060")
                    .build(),
            )
        })
    });
    let sdp = req.body_bytes();
    c.bench_function("build_request_invite", |b| {
        b.iter(|| {
            black_box(
                RequestBuilder::new(&Method::Invite, "sip:+551133334444@198.51.100.20:5060")
                    .via(
                        Transport::Udp,
                        "198.51.100.1:5060",
                        "z9hG4bKabcdefghijklmnopqrst",
                        true,
                    )
                    .max_forwards(69)
                    .from(
                        "\"Reception 1001\" <sip:1001@pbx.example.com>",
                        "a1b2c3d4e5",
                    )
                    .to("sip:+551133334444@trunk.example.net", None)
                    .call_id("Zk3j4h5g6f7d8s9a0q1w2e3r4t@198.51.100.1")
                    .cseq(1)
                    .contact("sip:gw@198.51.100.1:5060")
                    .header("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS")
                    .body("application/sdp", black_box(&sdp))
                    .build(),
            )
        })
    });
    c.bench_function("edit_proxy", |b| {
        b.iter(|| {
            black_box(
                MessageEditor::new(black_box(&req))
                    .set_request_uri("sip:+551133334444@198.51.100.20:5060")
                    .prepend_via("SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKproxy1")
                    .replace("Max-Forwards", "69")
                    .remove("P-Asserted-Identity")
                    .build(),
            )
        })
    });
    let src: SocketAddr = "192.0.2.10:5060".parse().unwrap();
    let ok = ResponseBuilder::new(&req, 200).to_tag("t").build();
    let ringing = ResponseBuilder::new(&req, 180).to_tag("t").build();
    c.bench_function("transaction_server_invite", |b| {
        let mut layer = TransactionLayer::new(TxConfig::default());
        let t0 = Instant::now();
        let mut n = 0u64;
        b.iter(|| {
            // Unique branch per iteration so each creates a transaction.
            n += 1;
            let now = t0 + std::time::Duration::from_micros(n);
            let msg = req.clone();
            layer.on_incoming(msg, src, Transport::Udp, now);
            let mut id = None;
            while let Some(o) = layer.pop_output() {
                if let Output::Event(TuEvent::Request { tx, .. }) = o {
                    id = Some(tx);
                }
            }
            if let Some(id) = id {
                layer.send_response(id, ringing.clone(), now).unwrap();
                layer.send_response(id, ok.clone(), now).unwrap();
            }
            // Let all of them expire (Timer L) so the table stays small.
            layer.on_timer(now + std::time::Duration::from_secs(64));
            layer.drain_outputs().for_each(drop);
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
