//! RFC 3550 loss and jitter arithmetic on crafted sequences (no clock, no sockets).

use std::time::Duration;

use strowger_media::stats::{RtpHeader, RtpStats, is_rtcp};

fn h(seq: u16, ts: u32) -> RtpHeader {
    RtpHeader {
        pt: 0,
        seq,
        ts,
        ssrc: 1,
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn no_loss_no_jitter_on_a_perfect_stream() {
    let mut s = RtpStats::default();
    for i in 0..100u16 {
        s.on_packet(&h(i, i as u32 * 160), 172, ms(1000 + i as u64 * 20), 8000);
    }
    assert_eq!(s.packets, 100);
    assert_eq!(s.bytes, 17200);
    assert_eq!(s.lost(), 0);
    assert!(s.jitter_units() < 1e-9);
    assert_eq!(s.last_arrival, Some(ms(1000 + 99 * 20)));
}

#[test]
fn gaps_count_as_loss_and_reordering_does_not() {
    let mut s = RtpStats::default();
    let seqs = [10u16, 11, 13, 12, 14, 18, 19, 20];
    for (k, &q) in seqs.iter().enumerate() {
        s.on_packet(&h(q, q as u32 * 160), 172, ms(k as u64 * 20), 8000);
    }
    // 10..=20 expected 11, received 8 -> 3 lost (15, 16, 17)
    assert_eq!(s.lost(), 3);
}

#[test]
fn sequence_wrap_around() {
    let mut s = RtpStats::default();
    let mut t = 0;
    for q in [65530u16, 65531, 65533, 65534, 65535, 0, 1, 3, 4] {
        s.on_packet(&h(q, 0), 172, ms(t), 8000);
        t += 20;
    }
    // 65530..=4 is 11 packets, 9 received
    assert_eq!(s.lost(), 2);
}

#[test]
fn jitter_matches_rfc3550_formula() {
    // Arrivals alternate 10 ms early/late around the 20 ms grid: |D| = 20 ms = 160
    // units after the first pair; J converges to 160 units = 20 ms.
    let mut s = RtpStats::default();
    let mut expect = 0.0f64;
    let mut prev_transit: Option<i64> = None;
    for i in 0..200u64 {
        let arrival = 1000 + i * 20 + if i % 2 == 0 { 0 } else { 20 };
        let ts = (i * 160) as u32;
        s.on_packet(&h(i as u16, ts), 172, ms(arrival), 8000);
        let transit = (arrival * 8) as i64 - ts as i64;
        if let Some(p) = prev_transit {
            expect += (((transit - p).abs() as f64) - expect) / 16.0;
        }
        prev_transit = Some(transit);
    }
    assert!(
        (s.jitter_units() - expect).abs() < 1e-6,
        "{} vs {}",
        s.jitter_units(),
        expect
    );
    assert!((s.jitter_ms() - 20.0).abs() < 1.0, "{}", s.jitter_ms());
}

#[test]
fn ssrc_change_restarts_sequence_but_keeps_loss() {
    let mut s = RtpStats::default();
    for q in [1u16, 2, 4] {
        s.on_packet(&h(q, 0), 172, ms(0), 8000);
    }
    assert_eq!(s.lost(), 1);
    let other = RtpHeader {
        pt: 0,
        seq: 50000,
        ts: 0,
        ssrc: 2,
    };
    s.on_packet(&other, 172, ms(20), 8000);
    let next = RtpHeader {
        seq: 50002,
        ..other
    };
    s.on_packet(&next, 172, ms(40), 8000);
    assert_eq!(s.lost(), 2);
}

#[test]
fn header_parsing() {
    let mut p = [0u8; 12];
    p[0] = 0x80;
    p[1] = 0x80 | 8; // marker + PCMA
    p[2] = 1;
    assert_eq!(RtpHeader::parse(&p).unwrap().pt, 8);
    assert_eq!(RtpHeader::parse(&p).unwrap().seq, 256);
    assert!(RtpHeader::parse(&p[..11]).is_none());
    p[0] = 0x40; // version 1
    assert!(RtpHeader::parse(&p).is_none());
    p[0] = 0x80;
    p[1] = 200; // RTCP SR
    assert!(RtpHeader::parse(&p).is_none());
    assert!(is_rtcp(&p));
}
