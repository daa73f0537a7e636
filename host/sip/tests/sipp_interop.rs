//! Interop against a real peer: SIPp's built-in `uac` and `uas` scenarios
//! over UDP on loopback, with a minimal test-only shell (std UdpSocket, wall
//! clock passed in) around the sans-IO parser, builders and transaction
//! layer. The crate itself has no sockets; only this test does.
//!
//! Needs `sipp` on PATH (installed by scripts/install-deps.sh); set
//! STROWGER_SKIP_SIPP=1 to skip on a machine without it.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strowger_sip::transaction::{Output, TransactionLayer, TuEvent, TxConfig, TxId};
use strowger_sip::{Method, RequestBuilder, ResponseBuilder, Transport, ids, parse};

fn sipp_available() -> bool {
    if std::env::var_os("STROWGER_SKIP_SIPP").is_some() {
        eprintln!("STROWGER_SKIP_SIPP set: skipping SIPp interop");
        return false;
    }
    true
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_sipp(args: &[&str]) -> Child {
    Command::new("sipp")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sipp on PATH (or set STROWGER_SKIP_SIPP=1)")
}

struct Shell {
    sock: UdpSocket,
    layer: TransactionLayer,
}

impl Shell {
    fn new() -> Shell {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        Shell {
            sock,
            layer: TransactionLayer::new(TxConfig::default()),
        }
    }

    fn port(&self) -> u16 {
        self.sock.local_addr().unwrap().port()
    }

    /// Receives (if anything arrives), runs timers, returns TU events and
    /// transmits everything queued.
    fn step(&mut self, buf: &mut [u8]) -> Vec<TuEvent> {
        if let Ok((n, from)) = self.sock.recv_from(buf) {
            match parse(Bytes::copy_from_slice(&buf[..n])) {
                Ok(m) => self
                    .layer
                    .on_incoming(m, from, Transport::Udp, Instant::now()),
                Err(e) => panic!("SIPp sent something we reject: {e}"),
            }
        }
        self.layer.on_timer(Instant::now());
        self.flush()
    }

    fn flush(&mut self) -> Vec<TuEvent> {
        let mut events = Vec::new();
        while let Some(o) = self.layer.pop_output() {
            match o {
                Output::Transmit { bytes, dest, .. } => {
                    self.sock.send_to(&bytes, dest).unwrap();
                }
                Output::Event(e) => events.push(e),
            }
        }
        events
    }
}

fn wait_sipp(mut child: Child, mut tick: impl FnMut(), limit: Duration) -> (bool, String) {
    let deadline = Instant::now() + limit;
    loop {
        tick();
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return (status.success(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return (false, "timed out".into());
        }
    }
}

#[test]
fn sipp_uac_against_our_server_transactions() {
    if !sipp_available() {
        return;
    }
    const CALLS: u32 = 20;
    let mut shell = Shell::new();
    let target = format!("127.0.0.1:{}", shell.port());
    let sipp_port = free_udp_port().to_string();
    let child = spawn_sipp(&[
        "-sn",
        "uac",
        &target,
        "-i",
        "127.0.0.1",
        "-p",
        &sipp_port,
        "-m",
        &CALLS.to_string(),
        "-r",
        "10",
        "-l",
        "5",
        "-d",
        "200",
        "-nostdin",
        "-timeout",
        "60s",
        "-timeout_error",
    ]);
    let mut buf = vec![0u8; 65536];
    let (mut invites, mut acks, mut byes) = (0u32, 0u32, 0u32);
    let (ok, err) = wait_sipp(
        child,
        || {
            for ev in shell.step(&mut buf) {
                match ev {
                    TuEvent::Request { tx, msg, .. } => {
                        let now = Instant::now();
                        match msg.method() {
                            Some(Method::Invite) => {
                                invites += 1;
                                let tag = ids::tag();
                                let r180 = ResponseBuilder::new(&msg, 180).to_tag(&tag).build();
                                shell.layer.send_response(tx, r180, now).unwrap();
                                let ok = ResponseBuilder::new(&msg, 200)
                                    .to_tag(&tag)
                                    .contact(&format!("sip:uas@{target}"))
                                    .body("application/sdp", b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n")
                                    .build();
                                shell.layer.send_response(tx, ok, now).unwrap();
                            }
                            Some(Method::Bye) => {
                                byes += 1;
                                let ok = ResponseBuilder::new(&msg, 200).build();
                                shell.layer.send_response(tx, ok, now).unwrap();
                            }
                            _ => {
                                let r = ResponseBuilder::new(&msg, 501).to_tag("x").build();
                                shell.layer.send_response(tx, r, now).unwrap();
                            }
                        }
                        shell.flush();
                    }
                    TuEvent::Ack { .. } => acks += 1,
                    TuEvent::AckTimeout { .. } => panic!("ACK for 2xx not matched"),
                    _ => {}
                }
            }
        },
        Duration::from_secs(90),
    );
    assert!(ok, "sipp uac failed: {err}");
    assert_eq!(invites, CALLS);
    assert!(acks >= CALLS, "acks {acks}");
    assert_eq!(byes, CALLS);
}

#[test]
fn our_client_transactions_against_sipp_uas() {
    if !sipp_available() {
        return;
    }
    const CALLS: u32 = 10;
    let sipp_port = free_udp_port();
    let child = spawn_sipp(&[
        "-sn",
        "uas",
        "-i",
        "127.0.0.1",
        "-p",
        &sipp_port.to_string(),
        "-m",
        &CALLS.to_string(),
        "-nostdin",
        "-timeout",
        "60s",
        "-timeout_error",
    ]);
    let sipp: SocketAddr = format!("127.0.0.1:{sipp_port}").parse().unwrap();
    let mut shell = Shell::new();
    let me = format!("127.0.0.1:{}", shell.port());
    let mut buf = vec![0u8; 65536];
    // Give SIPp a moment to bind; our INVITE is retransmitted anyway.
    std::thread::sleep(Duration::from_millis(300));

    struct Call {
        call_id: String,
        from_tag: String,
        invite: TxId,
        acked: Option<Bytes>,
        bye: Option<TxId>,
        done: bool,
    }
    let mut calls: Vec<Call> = Vec::new();
    let mut next_call = 0u32;
    let mut completed = 0u32;
    let mut timeouts = 0u32;
    let (ok, err) = wait_sipp(
        child,
        || {
            let now = Instant::now();
            // One call at a time keeps SIPp's uas scenario simple.
            if next_call < CALLS && calls.iter().all(|c| c.done) {
                next_call += 1;
                let call_id = ids::call_id(Some("127.0.0.1"));
                let from_tag = ids::tag();
                let inv = RequestBuilder::new(&Method::Invite, &format!("sip:service@{sipp}"))
                    .via(Transport::Udp, &me, &ids::branch(), true)
                    .max_forwards(70)
                    .from(&format!("sip:strowger@{me}"), &from_tag)
                    .to(&format!("sip:service@{sipp}"), None)
                    .call_id(&call_id)
                    .cseq(1)
                    .contact(&format!("sip:strowger@{me}"))
                    .body("application/sdp", b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6002 RTP/AVP 0\r\n")
                    .build();
                let invite = shell
                    .layer
                    .send_request(parse(inv).unwrap(), sipp, Transport::Udp, now)
                    .unwrap();
                calls.push(Call {
                    call_id,
                    from_tag,
                    invite,
                    acked: None,
                    bye: None,
                    done: false,
                });
                shell.flush();
            }
            for ev in shell.step(&mut buf) {
                match ev {
                    TuEvent::Response { tx, msg } => {
                        let status = msg.status().unwrap();
                        if let Some(c) = calls.iter_mut().find(|c| c.invite == tx) {
                            if (200..300).contains(&status) {
                                if let Some(ack) = &c.acked {
                                    // 2xx retransmission: ACK again.
                                    shell
                                        .layer
                                        .send_stateless(ack.clone(), sipp, Transport::Udp);
                                    continue;
                                }
                                let to = msg.to_str_raw().to_string();
                                let target = match msg.contact() {
                                    Some(Ok(ct)) => ct.addr().unwrap().uri.to_string(),
                                    _ => format!("sip:service@{sipp}"),
                                };
                                let ack = RequestBuilder::new(&Method::Ack, &target)
                                    .via(Transport::Udp, &me, &ids::branch(), true)
                                    .max_forwards(70)
                                    .from(&format!("sip:strowger@{me}"), &c.from_tag)
                                    .header("To", &to)
                                    .call_id(&c.call_id)
                                    .cseq(1)
                                    .build();
                                shell
                                    .layer
                                    .send_stateless(ack.clone(), sipp, Transport::Udp);
                                c.acked = Some(ack);
                                let bye = RequestBuilder::new(&Method::Bye, &target)
                                    .via(Transport::Udp, &me, &ids::branch(), true)
                                    .max_forwards(70)
                                    .from(&format!("sip:strowger@{me}"), &c.from_tag)
                                    .header("To", &to)
                                    .call_id(&c.call_id)
                                    .cseq(2)
                                    .build();
                                c.bye = Some(
                                    shell
                                        .layer
                                        .send_request(
                                            parse(bye).unwrap(),
                                            sipp,
                                            Transport::Udp,
                                            now,
                                        )
                                        .unwrap(),
                                );
                            } else if status >= 300 {
                                panic!("INVITE failed: {status}");
                            }
                        } else if let Some(c) = calls.iter_mut().find(|c| c.bye == Some(tx))
                            && status >= 200
                        {
                            assert_eq!(status, 200);
                            c.done = true;
                            completed += 1;
                        }
                    }
                    TuEvent::Timeout { .. } => timeouts += 1,
                    TuEvent::Request { tx, msg, .. } => {
                        let r = ResponseBuilder::new(&msg, 501).to_tag("x").build();
                        shell.layer.send_response(tx, r, now).unwrap();
                    }
                    _ => {}
                }
            }
            shell.flush();
        },
        Duration::from_secs(90),
    );
    assert!(ok, "sipp uas failed: {err}");
    assert_eq!(timeouts, 0);
    assert_eq!(completed, CALLS);
}
