//! Crash test (harness = false): a child process (this executable re-run with
//! `STROWGER_STORE_CRASH_CHILD=<db>`) writes registrations and CDRs from
//! several threads and prints the id of every write after its Ack; the parent
//! SIGKILLs it mid-stream, reopens the database and asserts that every
//! acknowledged write is there, complete (CDR attempts included).

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strowger_store::{Cdr, CdrAttempt, CdrFilter, Registration, Store};

const CHILD_ENV: &str = "STROWGER_STORE_CRASH_CHILD";
const ROUNDS: usize = 5;
const THREADS: usize = 8;

fn reg(id: &str) -> Registration {
    Registration {
        aor: format!("sip:{id}@crash.test"),
        contact: format!("sip:{id}@127.0.0.1:5070"),
        expires_at_ms: i64::MAX / 2,
        transport: "udp".into(),
        source: "127.0.0.1:5070".parse().unwrap(),
        local: None,
        connection_id: None,
        user_agent: Some("crash".into()),
        call_id: id.into(),
        cseq: 1,
        q: None,
        instance_id: None,
        reg_id: None,
        updated_at_ms: 0,
    }
}

fn cdr(id: &str) -> Cdr {
    let attempt = |n: i64| CdrAttempt {
        destination: format!("trunk:t{n}"),
        egress_trunk: Some(format!("t{n}")),
        a_number: "1".into(),
        b_number: "2".into(),
        start_ms: n,
        ..CdrAttempt::default()
    };
    Cdr {
        call_id: id.into(),
        start_ms: 1,
        end_ms: 2,
        a_number: "1".into(),
        b_number: "2".into(),
        ingress: "unknown".into(),
        final_code: 200,
        final_reason: "OK".into(),
        cause: "normal".into(),
        plugins: "{}".into(),
        attempts: vec![attempt(1), attempt(2), attempt(3)],
        ..Cdr::default()
    }
}

fn child(path: &str) {
    let store = Store::open(path).expect("open");
    let prefix = std::env::var("STROWGER_STORE_CRASH_PREFIX").unwrap();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            let prefix = prefix.clone();
            std::thread::spawn(move || {
                for n in 0.. {
                    let id = format!("{prefix}-{t}-{n}");
                    if n % 2 == 0 {
                        store.put_registration(reg(&id)).wait().expect("ack");
                        println!("R {id}");
                    } else {
                        store.insert_cdr(cdr(&id)).wait().expect("ack");
                        println!("C {id}");
                    }
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

fn main() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        child(&path);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let exe = std::env::current_exe().unwrap();
    let mut total_acked = 0usize;
    for round in 0..ROUNDS {
        let prefix = format!("round{round}");
        let mut child = Command::new(&exe)
            .env(CHILD_ENV, &db)
            .env("STROWGER_STORE_CRASH_PREFIX", &prefix)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut acked: Vec<String> = Vec::new();
        // Kill at a different point each round.
        let kill_after = 500 + round * 700;
        let deadline = Instant::now() + Duration::from_secs(120);
        while acked.len() < kill_after {
            assert!(
                Instant::now() < deadline,
                "child too slow: {} acks",
                acked.len()
            );
            match lines.next() {
                Some(Ok(l)) => acked.push(l),
                other => panic!("child stopped early: {other:?}"),
            }
        }
        child.kill().expect("SIGKILL"); // SIGKILL on Unix
        // Lines already in the pipe were acknowledged before the kill.
        for l in lines.map_while(Result::ok) {
            acked.push(l);
        }
        let status = child.wait().unwrap();
        assert!(!status.success(), "child must have been killed");

        let store = Store::open(&db).expect("reopen after kill -9");
        let regs: HashSet<String> = store
            .load_registrations_blocking()
            .unwrap()
            .into_iter()
            .map(|r| r.call_id)
            .collect();
        let cdrs = store
            .query_cdrs_blocking(&CdrFilter {
                limit: Some(u32::MAX),
                ..CdrFilter::default()
            })
            .unwrap();
        for c in &cdrs {
            assert_eq!(c.attempts.len(), 3, "CDR {} stored partially", c.call_id);
        }
        let cdr_ids: HashSet<String> = cdrs.into_iter().map(|c| c.call_id).collect();
        let mut lost = Vec::new();
        for l in &acked {
            let (kind, id) = l.split_once(' ').expect("line format");
            let present = match kind {
                "R" => regs.contains(id),
                "C" => cdr_ids.contains(id),
                _ => panic!("bad line {l}"),
            };
            if !present {
                lost.push(l.clone());
            }
        }
        println!(
            "round {round}: {} acknowledged writes, {} lost ({} registrations, {} CDRs in the store)",
            acked.len(),
            lost.len(),
            regs.len(),
            cdr_ids.len()
        );
        std::io::stdout().flush().ok();
        assert!(
            lost.is_empty(),
            "lost acknowledged writes: {:?}",
            &lost[..lost.len().min(10)]
        );
        total_acked += acked.len();
        drop(store);
    }
    println!("crash test ok: {ROUNDS} kill -9 rounds, {total_acked} acknowledged writes, 0 lost");
}
