//! A subset of rtpengine's "ng" control protocol: `<cookie> <bencode dict>`
//! over UDP. Commands `ping`, `offer`, `answer`, `delete`, `query` with
//! `call-id`, `from-tag`, `to-tag`, `sdp`. This lets the benchmark drive
//! Strowger's relay and rtpengine with the same client, and lets a
//! Kamailio/OpenSIPS `rtpengine` module use Strowger's relay.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::{CodecPolicy, Leg, MediaRelay, Session, SessionOptions};

/// A bencode value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bencode {
    /// `i<n>e`
    Int(i64),
    /// `<len>:<bytes>`
    Bytes(Vec<u8>),
    /// `l...e`
    List(Vec<Bencode>),
    /// `d...e` (keys in insertion order)
    Dict(Vec<(Vec<u8>, Bencode)>),
}

impl Bencode {
    /// A byte string from text.
    pub fn str(s: &str) -> Bencode {
        Bencode::Bytes(s.as_bytes().to_vec())
    }

    /// A dictionary from (key, value) pairs.
    pub fn dict(items: &[(&str, Bencode)]) -> Bencode {
        Bencode::Dict(
            items
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
                .collect(),
        )
    }

    /// Look up a dictionary key.
    pub fn get(&self, key: &str) -> Option<&Bencode> {
        match self {
            Bencode::Dict(d) => d.iter().find(|(k, _)| k == key.as_bytes()).map(|(_, v)| v),
            _ => None,
        }
    }

    /// As text, if a UTF-8 byte string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Bencode::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// Serialize.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Bencode::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
            Bencode::Bytes(b) => {
                out.extend_from_slice(format!("{}:", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
            Bencode::List(l) => {
                out.push(b'l');
                for v in l {
                    v.encode(out);
                }
                out.push(b'e');
            }
            Bencode::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    Bencode::Bytes(k.clone()).encode(out);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    /// Parse one value; returns it and the bytes consumed.
    pub fn decode(input: &[u8]) -> Result<(Bencode, usize), String> {
        decode_at(input, 0, 0)
    }
}

fn decode_at(b: &[u8], pos: usize, depth: usize) -> Result<(Bencode, usize), String> {
    if depth > 32 {
        return Err("bencode nested too deeply".into());
    }
    match b.get(pos) {
        Some(b'i') => {
            let end = b[pos..]
                .iter()
                .position(|&c| c == b'e')
                .ok_or("unterminated int")?
                + pos;
            let s = std::str::from_utf8(&b[pos + 1..end]).map_err(|_| "bad int")?;
            Ok((Bencode::Int(s.parse().map_err(|_| "bad int")?), end + 1))
        }
        Some(b'l') => {
            let mut p = pos + 1;
            let mut items = Vec::new();
            while b.get(p) != Some(&b'e') {
                if p >= b.len() {
                    return Err("unterminated list".into());
                }
                let (v, np) = decode_at(b, p, depth + 1)?;
                items.push(v);
                p = np;
            }
            Ok((Bencode::List(items), p + 1))
        }
        Some(b'd') => {
            let mut p = pos + 1;
            let mut items = Vec::new();
            while b.get(p) != Some(&b'e') {
                if p >= b.len() {
                    return Err("unterminated dict".into());
                }
                let (k, np) = decode_at(b, p, depth + 1)?;
                let Bencode::Bytes(k) = k else {
                    return Err("dict key is not a string".into());
                };
                let (v, np) = decode_at(b, np, depth + 1)?;
                items.push((k, v));
                p = np;
            }
            Ok((Bencode::Dict(items), p + 1))
        }
        Some(c) if c.is_ascii_digit() => {
            let colon = b[pos..]
                .iter()
                .position(|&c| c == b':')
                .ok_or("bad string")?
                + pos;
            let n: usize = std::str::from_utf8(&b[pos..colon])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or("bad string length")?;
            let start = colon + 1;
            let end = start
                .checked_add(n)
                .filter(|&e| e <= b.len())
                .ok_or("string too long")?;
            Ok((Bencode::Bytes(b[start..end].to_vec()), end))
        }
        _ => Err("bad bencode".into()),
    }
}

/// A blocking ng client (for the benchmark and tests).
pub struct NgClient {
    sock: UdpSocket,
    server: SocketAddr,
    seq: u64,
}

impl NgClient {
    /// Connect to an ng server.
    pub fn new(server: SocketAddr) -> std::io::Result<NgClient> {
        let sock = UdpSocket::bind(if server.is_ipv4() {
            "127.0.0.1:0"
        } else {
            "[::1]:0"
        })?;
        sock.set_read_timeout(Some(Duration::from_millis(500)))?;
        Ok(NgClient {
            sock,
            server,
            seq: 0,
        })
    }

    /// Send a command dictionary and wait for the reply (retries 10 times).
    pub fn command(&mut self, dict: &Bencode) -> Result<Bencode, String> {
        self.seq += 1;
        let cookie = format!("{}_{}", std::process::id(), self.seq);
        let mut msg = format!("{cookie} ").into_bytes();
        dict.encode(&mut msg);
        let mut buf = vec![0u8; 65536];
        for _ in 0..10 {
            self.sock
                .send_to(&msg, self.server)
                .map_err(|e| e.to_string())?;
            // Read until our reply arrives or the socket times out (then retry).
            while let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                let r = &buf[..n];
                let Some(sp) = r.iter().position(|&c| c == b' ') else {
                    continue;
                };
                if &r[..sp] != cookie.as_bytes() {
                    continue; // late reply to an earlier retry
                }
                let (v, _) = Bencode::decode(&r[sp + 1..])?;
                if v.get("result").and_then(|r| r.as_str()) == Some("error") {
                    let reason = v
                        .get("error-reason")
                        .and_then(|r| r.as_str())
                        .unwrap_or("?");
                    return Err(format!("ng error: {reason}"));
                }
                return Ok(v);
            }
        }
        Err("ng server did not answer".into())
    }
}

struct Call {
    session: Session,
    a_tag: String,
}

/// Serve the ng protocol on `sock` until `stop` is set (checked every 200 ms).
/// Offers and answers use [`CodecPolicy::allow_all`].
pub fn serve(
    relay: Arc<MediaRelay>,
    sock: UdpSocket,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut calls: HashMap<String, Call> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Acquire) {
        let (n, peer) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(_) => continue,
        };
        let msg = &buf[..n];
        let Some(sp) = msg.iter().position(|&c| c == b' ') else {
            continue;
        };
        let cookie = &msg[..sp];
        let reply = match Bencode::decode(&msg[sp + 1..]) {
            Ok((cmd, _)) => handle(&relay, &mut calls, &cmd),
            Err(e) => err_reply(&e),
        };
        let mut out = cookie.to_vec();
        out.push(b' ');
        reply.encode(&mut out);
        let _ = sock.send_to(&out, peer);
    }
    Ok(())
}

fn err_reply(reason: &str) -> Bencode {
    Bencode::dict(&[
        ("result", Bencode::str("error")),
        ("error-reason", Bencode::str(reason)),
    ])
}

fn handle(relay: &MediaRelay, calls: &mut HashMap<String, Call>, cmd: &Bencode) -> Bencode {
    let s = |k: &str| {
        cmd.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let command = s("command");
    let call_id = s("call-id");
    let from_tag = s("from-tag");
    let ok_sdp = |sdp: String| {
        Bencode::dict(&[
            ("result", Bencode::str("ok")),
            ("sdp", Bencode::Bytes(sdp.into_bytes())),
        ])
    };
    // rtpengine's `received-from`: ["IP4", "192.0.2.1"], the SIP source of
    // the message carrying the SDP (lets NAT callers' media latch).
    let received_from = match cmd.get("received-from") {
        Some(Bencode::List(l)) => l.get(1).and_then(|v| v.as_str()?.parse().ok()),
        _ => None,
    };
    match command.as_str() {
        "ping" => Bencode::dict(&[("result", Bencode::str("pong"))]),
        "offer" => {
            let call = calls.entry(call_id.clone()).or_insert_with(|| Call {
                session: relay.create_session(&call_id, SessionOptions::default()),
                a_tag: from_tag.clone(),
            });
            let leg = if call.a_tag == from_tag {
                Leg::A
            } else {
                Leg::B
            };
            if received_from.is_some() {
                call.session.set_peer(leg, received_from);
            }
            match call
                .session
                .offer(leg, &s("sdp"), &CodecPolicy::allow_all())
            {
                Ok(sdp) => ok_sdp(sdp),
                Err(e) => err_reply(&e.to_string()),
            }
        }
        "answer" => {
            let Some(call) = calls.get(&call_id) else {
                return err_reply("Unknown call-id");
            };
            // The answer comes from the leg that did not send the offer.
            let leg = if call.a_tag == from_tag {
                Leg::B
            } else {
                Leg::A
            };
            if received_from.is_some() {
                call.session.set_peer(leg, received_from);
            }
            match call.session.answer(leg, &s("sdp")) {
                Ok(sdp) => ok_sdp(sdp),
                Err(e) => err_reply(&e.to_string()),
            }
        }
        "delete" => match calls.remove(&call_id) {
            Some(c) => {
                c.session.close();
                Bencode::dict(&[("result", Bencode::str("ok"))])
            }
            None => err_reply("Unknown call-id"),
        },
        "query" => match calls.get(&call_id) {
            Some(c) => {
                let json = serde_json::to_string(&c.session.stats()).unwrap_or_default();
                Bencode::dict(&[
                    ("result", Bencode::str("ok")),
                    ("strowger-stats", Bencode::str(&json)),
                ])
            }
            None => err_reply("Unknown call-id"),
        },
        _ => err_reply("Unrecognized command"),
    }
}
