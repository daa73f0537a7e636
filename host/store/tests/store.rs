//! Round trips through a real SQLite file.

use std::time::Duration;

use strowger_store::{
    AuditEntry, CSV_HEADER, Cdr, CdrAttempt, CdrFilter, Registration, SCHEMA_VERSION, Store,
    StoreError, StoreOptions,
};

fn reg(aor: &str, contact: &str, expires_at_ms: i64) -> Registration {
    Registration {
        aor: aor.into(),
        contact: contact.into(),
        expires_at_ms,
        transport: "tcp".into(),
        source: "[::1]:40001".parse().unwrap(),
        local: Some("127.0.0.1:5060".parse().unwrap()),
        connection_id: Some(42),
        user_agent: Some("Linphone/5".into()),
        call_id: "abc@host".into(),
        cseq: 7,
        q: Some(0.5),
        instance_id: Some("<urn:uuid:00000000-0000-0000-0000-000000000001>".into()),
        reg_id: Some(1),
        updated_at_ms: 1000,
    }
}

fn cdr(id: &str, start_ms: i64, a: &str, b: &str) -> Cdr {
    Cdr {
        call_id: id.into(),
        sip_call_id: Some(format!("{id}@sipp")),
        start_ms,
        answer_ms: Some(start_ms + 2_000),
        end_ms: start_ms + 62_500,
        a_number: a.into(),
        b_number: b.into(),
        a_number_out: Some(format!("+55{a}")),
        b_number_out: Some(format!("+55{b}")),
        ingress: "trunk:carrier-in".into(),
        ingress_trunk: Some("carrier-in".into()),
        source: Some("127.0.0.2:5060".into()),
        egress: Some("trunk:carrier-b".into()),
        egress_trunk: Some("carrier-b".into()),
        final_code: 200,
        final_reason: "OK".into(),
        cause: "normal".into(),
        hangup_side: Some("caller".into()),
        plugins: r#"{"route":"route-table@0.1.0"}"#.into(),
        policy_generation: Some(3),
        attempts: vec![
            CdrAttempt {
                destination: "trunk:carrier-a".into(),
                egress_trunk: Some("carrier-a".into()),
                a_number: a.into(),
                b_number: b.into(),
                start_ms,
                answer_ms: None,
                end_ms: Some(start_ms + 100),
                final_code: Some(503),
                cause: Some("status".into()),
            },
            CdrAttempt {
                destination: "trunk:carrier-b".into(),
                egress_trunk: Some("carrier-b".into()),
                a_number: a.into(),
                b_number: b.into(),
                start_ms: start_ms + 100,
                answer_ms: Some(start_ms + 2_000),
                end_ms: Some(start_ms + 62_500),
                final_code: Some(200),
                cause: None,
            },
        ],
        media: Some(serde_json::json!([{"leg": 1, "streams": [{"index": 0,
            "caller": {"packets": 50, "bytes": 8600, "lost": 0, "jitter_ms": 0.25}}]}])),
    }
}

#[tokio::test]
async fn registrations_round_trip_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/dir/s.db");
    let store = Store::open(&path).unwrap();
    let a = reg("sip:1001@x", "sip:1001@10.0.0.1:5060", 10_000);
    let b = reg("sip:1001@x", "sip:1001@10.0.0.2:5060", 20_000);
    let c = reg("sip:1002@x", "sip:1002@10.0.0.3:5060", 5_000);
    store.put_registration(a.clone()).await.unwrap();
    store.put_registration(b.clone()).await.unwrap();
    store.put_registration(c.clone()).await.unwrap();
    assert_eq!(
        store.load_registrations().await.unwrap(),
        vec![a.clone(), b.clone(), c.clone()]
    );

    // Same (aor, contact) replaces.
    let mut a2 = a.clone();
    a2.cseq = 8;
    a2.expires_at_ms = 30_000;
    a2.q = None;
    a2.local = None;
    store.put_registration(a2.clone()).await.unwrap();
    assert_eq!(
        store.registrations_of_blocking("sip:1001@x").unwrap(),
        vec![a2.clone(), b.clone()]
    );
    assert!(c.is_expired(5_000) && !c.is_expired(4_999));

    // Survives close + reopen.
    store.close();
    assert!(matches!(
        store.put_registration(c.clone()).await,
        Err(StoreError::Closed)
    ));
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.load_registrations().await.unwrap(), vec![a2, b, c]);

    assert_eq!(store.purge_expired_registrations(5_000).await.unwrap(), 1);
    assert_eq!(
        store
            .remove_registration("sip:1001@x", "sip:1001@10.0.0.2:5060")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .remove_registration("sip:1001@x", "nope")
            .await
            .unwrap(),
        0
    );
    store
        .put_registration(reg("sip:1001@x", "sip:third", 1))
        .await
        .unwrap();
    assert_eq!(store.remove_aor("sip:1001@x").await.unwrap(), 2);
    assert!(store.load_registrations().await.unwrap().is_empty());
}

#[tokio::test]
async fn cdrs_round_trip_and_queries() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("cdr.db")).unwrap();
    let c1 = cdr("call-1", 1_000_000, "1133334444", "1144445555");
    let mut c2 = cdr("call-2", 2_000_000, "1001", "1002");
    c2.ingress = "user:sip:1001@x".into();
    c2.ingress_trunk = None;
    c2.egress_trunk = None;
    c2.egress = Some("user:1002".into());
    c2.attempts = vec![];
    c2.answer_ms = None;
    c2.final_code = 480;
    c2.final_reason = "Temporarily Unavailable, \"really\"".into();
    c2.cause = "unavailable".into();
    c2.hangup_side = None;
    let c3 = cdr("call-3", 3_000_000, "1001", "1144445555");
    store.insert_cdr(c1.clone()).await.unwrap();
    store
        .insert_cdrs(vec![c2.clone(), c3.clone()])
        .await
        .unwrap();

    let q = |f: CdrFilter| {
        store
            .query_cdrs_blocking(&f)
            .unwrap()
            .into_iter()
            .map(|c| c.call_id)
            .collect::<Vec<_>>()
    };
    let all = store.query_cdrs(CdrFilter::default()).await.unwrap();
    assert_eq!(all, vec![c1.clone(), c2.clone(), c3.clone()]);
    assert_eq!(
        q(CdrFilter {
            from_ms: Some(1_500_000),
            to_ms: Some(3_000_000),
            ..Default::default()
        }),
        ["call-2"]
    );
    // number: before or after rewrite
    assert_eq!(
        q(CdrFilter {
            number: Some("1144445555".into()),
            ..Default::default()
        }),
        ["call-1", "call-3"]
    );
    assert_eq!(
        q(CdrFilter {
            number: Some("+551001".into()),
            ..Default::default()
        }),
        ["call-2", "call-3"]
    );
    // trunk: ingress, egress, or only as a failed attempt
    assert_eq!(
        q(CdrFilter {
            trunk: Some("carrier-a".into()),
            ..Default::default()
        }),
        ["call-1", "call-3"]
    );
    assert_eq!(
        q(CdrFilter {
            trunk: Some("carrier-in".into()),
            number: Some("1001".into()),
            ..Default::default()
        }),
        ["call-3"]
    );
    assert_eq!(
        q(CdrFilter {
            answered_only: true,
            ..Default::default()
        }),
        ["call-1", "call-3"]
    );
    assert_eq!(
        q(CdrFilter {
            call_id: Some("call-2".into()),
            ..Default::default()
        }),
        ["call-2"]
    );
    assert_eq!(
        q(CdrFilter {
            limit: Some(1),
            offset: Some(1),
            ..Default::default()
        }),
        ["call-2"]
    );

    // Duplicate call id: that write fails, the rest of its batch commits.
    let dup = store.insert_cdr(c1.clone());
    let ok = store.insert_cdr(cdr("call-4", 4_000_000, "1", "2"));
    assert!(matches!(dup.await, Err(StoreError::Sqlite(_))));
    ok.await.unwrap();
    // insert_cdrs is all or nothing.
    let err = store
        .insert_cdrs(vec![cdr("call-5", 5, "1", "2"), c2.clone()])
        .await;
    assert!(err.is_err());
    assert!(
        q(CdrFilter {
            call_id: Some("call-5".into()),
            ..Default::default()
        })
        .is_empty()
    );

    let csv = store
        .cdrs_csv(CdrFilter {
            to_ms: Some(2_500_000),
            ..Default::default()
        })
        .await
        .unwrap();
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(lines[0], CSV_HEADER);
    assert_eq!(lines.len(), 4, "{csv}"); // header, 2 rows, trailing empty
    assert!(
        lines[1].starts_with(
            "call-1,call-1@sipp,1970-01-01T00:16:40.000Z,1970-01-01T00:16:42.000Z,1970-01-01T00:17:42.500Z,62.500,60.500,1133334444,1144445555,+551133334444,"
        ),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].contains(",200,OK,normal,caller,2,3,"),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].ends_with(r#","{""route"":""route-table@0.1.0""}""#),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains(r#",480,"Temporarily Unavailable, ""really""",unavailable,,0,"#),
        "{}",
        lines[2]
    );
}

#[test]
fn utc_formatting() {
    assert_eq!(strowger_store::format_utc_ms(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(
        strowger_store::format_utc_ms(1_795_424_400_123),
        "2026-11-23T09:00:00.123Z"
    );
    assert_eq!(
        strowger_store::format_utc_ms(951_782_400_000),
        "2000-02-29T00:00:00.000Z"
    );
    assert_eq!(
        strowger_store::format_utc_ms(-1),
        "1969-12-31T23:59:59.999Z"
    );
}

#[test]
fn group_commit_batches_concurrent_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("g.db")).unwrap();
    let before = store.stats();
    // Queue 2,000 writes without waiting, then wait for all of them.
    let acks: Vec<_> = (0..2000)
        .map(|i| store.put_registration(reg(&format!("sip:{i}@x"), "sip:c", 1)))
        .collect();
    for a in acks {
        a.wait().unwrap();
    }
    store.flush().wait().unwrap();
    let s = store.stats();
    let writes = s.writes - before.writes;
    let commits = s.commits - before.commits;
    assert_eq!(writes, 2001);
    assert!(
        commits < writes / 4,
        "expected group commit: {commits} commits for {writes} writes"
    );
    assert_eq!(store.load_registrations_blocking().unwrap().len(), 2000);
}

#[test]
fn version_1_database_gets_the_media_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    {
        // Make a schema-1 database: no media column, one CDR in it.
        let store = Store::open(&path).unwrap();
        store
            .write(|c| {
                c.execute_batch(
                    "ALTER TABLE cdrs DROP COLUMN media; UPDATE schema_version SET version = 1; \
                     INSERT INTO cdrs (call_id, start_ms, end_ms, a_number, b_number, ingress, \
                     final_code, final_reason, cause, plugins) \
                     VALUES ('old', 1, 2, '1', '2', 'unknown', 200, 'OK', 'normal', '{}')",
                )?;
                Ok(1)
            })
            .wait()
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let c = cdr("new", 5, "1", "2");
    assert!(c.media.is_some());
    store.insert_cdr(c.clone()).wait().unwrap();
    let all = store.query_cdrs_blocking(&CdrFilter::default()).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!((all[0].call_id.as_str(), &all[0].media), ("old", &None));
    assert_eq!(all[1], c);
    let v: u32 = store
        .read_blocking(|c| Ok(c.query_row("SELECT version FROM schema_version", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
}

#[test]
fn newer_schema_is_refused_and_audit_log_works() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    {
        let store = Store::open(&path).unwrap();
        let id = store
            .append_audit(AuditEntry {
                at_ms: 10,
                actor: "admin".into(),
                source: Some("10.0.0.9".into()),
                action: "policy.activate".into(),
                target: Some("7".into()),
                detail: None,
                ..AuditEntry::default()
            })
            .wait()
            .unwrap();
        let log = store.audit_log_blocking(0, 100, 10).unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!((log[0].id, log[0].actor.as_str()), (id, "admin"));
        // The control-plane tables exist.
        let n = store
            .read_blocking(|c| {
                Ok(c.query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN \
                     ('plugin_artifacts','policy_versions','policy_active','datasets',\
                     'dataset_versions','dataset_rows','trunks','users','audit_log')",
                    [],
                    |r| r.get::<_, i64>(0),
                )?)
            })
            .unwrap();
        assert_eq!(n, 9);
        let v: u32 = store
            .read_blocking(|c| {
                Ok(c.query_row("SELECT version FROM schema_version", [], |r| r.get(0))?)
            })
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        store
            .write(|c| Ok(c.execute("UPDATE schema_version SET version = 999", [])? as u64))
            .wait()
            .unwrap();
    }
    let err = Store::open(&path).unwrap_err().to_string();
    assert!(err.contains("999") && err.contains("newer"), "{err}");
}

/// Another process's write lock on the database (as `sqlite3` holding a
/// write transaction would): our writes fail with "database is locked"
/// until it is released.
fn lock_database(path: &std::path::Path) -> rusqlite_conn::Connection {
    let c = rusqlite_conn::Connection::open(path).unwrap();
    c.execute_batch("BEGIN IMMEDIATE").unwrap();
    c
}
use strowger_store::rusqlite as rusqlite_conn;

fn opts_short_busy(retry_queue: usize) -> StoreOptions {
    StoreOptions {
        busy_timeout: Duration::from_millis(20),
        retry_queue,
        retry_backoff_max: Duration::from_millis(200),
        ..StoreOptions::default()
    }
}

/// Waits (bounded) until `f` holds for the store's stats.
fn wait_stats(store: &Store, what: &str, f: impl Fn(&strowger_store::StoreStats) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !f(&store.stats()) {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: {:?}",
            store.stats()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn failed_writes_are_retried_until_the_database_is_free() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let store = Store::open_with_options(&path, opts_short_busy(100)).unwrap();
    let lock = lock_database(&path);
    let ack_cdr = store.insert_cdr(cdr("locked-1", 1_000, "1", "2"));
    let ack_reg = store.put_registration(reg("sip:1001@x", "sip:1001@10.0.0.9", 9_000));
    // both fail (database locked) and wait for a retry
    wait_stats(&store, "writes queued for retry", |s| s.retry_queue == 2);
    assert_eq!(store.stats().dropped_writes, 0);
    lock.execute_batch("COMMIT").unwrap();
    drop(lock);
    ack_cdr
        .wait()
        .expect("the CDR commits once the lock is gone");
    ack_reg.wait().expect("the registration commits too");
    let cdrs = store.query_cdrs_blocking(&CdrFilter::default()).unwrap();
    assert_eq!(cdrs.len(), 1);
    assert_eq!(cdrs[0].call_id, "locked-1");
    assert_eq!(store.load_registrations_blocking().unwrap().len(), 1);
    let s = store.stats();
    assert!(s.failed_writes >= 2 && s.retried_writes >= 2, "{s:?}");
    assert_eq!((s.retry_queue, s.dropped_writes), (0, 0), "{s:?}");
}

#[test]
fn a_full_retry_queue_drops_newer_writes_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let store = Store::open_with_options(&path, opts_short_busy(1)).unwrap();
    let lock = lock_database(&path);
    let first = store.insert_cdr(cdr("q-1", 1_000, "1", "2"));
    wait_stats(&store, "first write queued", |s| s.retry_queue == 1);
    let second = store.insert_cdr(cdr("q-2", 2_000, "1", "2"));
    let third = store.insert_cdr(cdr("q-3", 3_000, "1", "2"));
    // the queue holds one: the newer writes are dropped (and say so)
    assert!(matches!(second.wait(), Err(StoreError::Temporary(_))));
    assert!(matches!(third.wait(), Err(StoreError::Temporary(_))));
    lock.execute_batch("COMMIT").unwrap();
    drop(lock);
    first.wait().expect("the oldest write survives");
    let ids: Vec<String> = store
        .query_cdrs_blocking(&CdrFilter::default())
        .unwrap()
        .into_iter()
        .map(|c| c.call_id)
        .collect();
    assert_eq!(ids, ["q-1"]);
    assert_eq!(store.stats().dropped_writes, 2);
    let mut reg = prometheus_client::registry::Registry::default();
    store.register_metrics(&mut reg);
    let mut text = String::new();
    prometheus_client::encoding::text::encode_registry(&mut text, &reg).unwrap();
    assert!(
        text.contains("strowger_store_writes_dropped_total 2"),
        "{text}"
    );
    assert!(
        text.contains("strowger_store_write_errors_total "),
        "{text}"
    );
    assert!(text.contains("strowger_store_retry_queue 0"), "{text}");
}

#[test]
fn one_bad_write_does_not_lose_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("b.db")).unwrap();
    // hold the writer so that everything below lands in one batch
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let gate = store.write(move |_| {
        let _ = wait.recv();
        Ok(0)
    });
    let good1 = store.insert_cdr(cdr("b-1", 1_000, "1", "2"));
    let bad = store.write(|_| panic!("a bug while writing"));
    let dup = store.insert_cdr(cdr("b-1", 1_500, "1", "2"));
    let good2 = store.insert_cdr(cdr("b-2", 2_000, "1", "2"));
    go.send(()).unwrap();
    gate.wait().unwrap();
    good1.wait().expect("a good write before the bad ones");
    assert!(matches!(bad.wait(), Err(StoreError::Panicked(m)) if m.contains("a bug")));
    assert!(matches!(dup.wait(), Err(StoreError::Sqlite(_))));
    good2.wait().expect("a good write after the bad ones");
    // the writer lives on
    store
        .insert_cdr(cdr("b-3", 3_000, "1", "2"))
        .wait()
        .expect("a later write");
    let ids: Vec<String> = store
        .query_cdrs_blocking(&CdrFilter::default())
        .unwrap()
        .into_iter()
        .map(|c| c.call_id)
        .collect();
    assert_eq!(ids, ["b-1", "b-2", "b-3"]);
    // the duplicate could never succeed: dropped (logged), not retried
    let s = store.stats();
    assert_eq!((s.dropped_writes, s.retry_queue), (1, 0), "{s:?}");
}
