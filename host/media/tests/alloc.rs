//! The fast path does not allocate per packet: count every heap allocation
//! in the process while 4,000 packets are relayed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use strowger_media::{CodecPolicy, Leg, MediaConfig, MediaRelay};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n"
    )
}

#[test]
fn relaying_does_not_allocate_per_packet() {
    let r = MediaRelay::start(MediaConfig {
        port_min: 45200,
        port_max: 45299,
        workers: 2,
        timeout: None,
        ..Default::default()
    })
    .unwrap();
    let s = r.create_session("alloc", Default::default());
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    b.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let to_b = s
        .offer(
            Leg::A,
            &sdp(a.local_addr().unwrap().port()),
            &CodecPolicy::allow_all(),
        )
        .unwrap();
    let to_a = s
        .answer(Leg::B, &sdp(b.local_addr().unwrap().port()))
        .unwrap();
    let port = |t: &str| strowger_media::sdp::Sdp::parse(t).unwrap().media()[0].port();
    let pa = SocketAddr::from(([127, 0, 0, 1], port(&to_a)));
    let _ = port(&to_b);
    let mut pkt = [0u8; 172];
    pkt[0] = 0x80;
    let mut buf = [0u8; 2048];
    // Warm up (first packet latches; worker registered the sockets).
    a.send_to(&pkt, pa).unwrap();
    b.recv_from(&mut buf).unwrap();

    const N: u64 = 4000;
    let before = ALLOCS.load(Ordering::Relaxed);
    let mut got = 0u64;
    let end = Instant::now() + Duration::from_secs(20);
    for i in 0..N {
        pkt[2..4].copy_from_slice(&(i as u16).to_be_bytes());
        a.send_to(&pkt, pa).unwrap();
        if i % 16 == 15 {
            while got < i + 1 && Instant::now() < end {
                if b.recv_from(&mut buf).is_ok() {
                    got += 1;
                }
            }
        }
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    eprintln!("{allocs} heap allocations in the process while relaying {N} packets");
    assert_eq!(got, N, "all packets relayed");
    // The timeout monitor and the odd lazy init may allocate a little; a
    // per-packet allocation would show up as thousands.
    assert!(
        allocs < 100,
        "{allocs} allocations while relaying {N} packets"
    );
}
