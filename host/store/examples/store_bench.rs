//! Store throughput: `cargo run --release -p strowger-store --example store_bench`.
//! Prints acknowledged writes/s for 1 and 64 concurrent writers (each waits
//! for its Ack before the next write), and queued writes/s (fire and forget,
//! then one flush), with the writer's average batch size.

use std::time::{Duration, Instant};

use strowger_store::{Registration, Store};

fn reg(i: u64) -> Registration {
    Registration {
        aor: format!("sip:{i}@bench"),
        contact: format!("sip:{i}@10.0.0.1:5060"),
        expires_at_ms: 1 << 40,
        transport: "udp".into(),
        source: "10.0.0.1:5060".parse().unwrap(),
        local: None,
        connection_id: None,
        user_agent: Some("bench".into()),
        call_id: format!("{i}@bench"),
        cseq: 1,
        q: None,
        instance_id: None,
        reg_id: None,
        updated_at_ms: 0,
    }
}

fn run(store: &Store, threads: u64, dur: Duration) {
    let before = store.stats();
    let t0 = Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            let s = store.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while t0.elapsed() < dur {
                    s.put_registration(reg(t * 1_000_000_000 + n))
                        .wait()
                        .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
    let el = t0.elapsed().as_secs_f64();
    let s = store.stats();
    let commits = s.commits - before.commits;
    println!(
        "{threads:>3} writers: {:>8.0} acknowledged writes/s, {:>7.0} commits/s, {:.1} writes/commit",
        total as f64 / el,
        commits as f64 / el,
        total as f64 / commits.max(1) as f64
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("bench.db")).unwrap();
    let dur = Duration::from_secs(3);
    run(&store, 1, dur);
    run(&store, 8, dur);
    run(&store, 64, dur);
    let n = 200_000u64;
    let before = store.stats();
    let t0 = Instant::now();
    for i in 0..n {
        drop(store.put_registration(reg(5_000_000_000_000 + i)));
    }
    store.flush().wait().unwrap();
    let el = t0.elapsed().as_secs_f64();
    let commits = store.stats().commits - before.commits;
    println!(
        "queued:     {:>8.0} writes/s ({n} writes, {commits} commits, {:.0} writes/commit)",
        n as f64 / el,
        n as f64 / commits.max(1) as f64
    );
}
