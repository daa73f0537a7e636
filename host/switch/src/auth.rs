//! Digest authentication on top of `strowger_sip::digest` (RFC 7616 /
//! RFC 8760: SHA-256 and MD5 offered side by side, qop=auth, stateless
//! nonces whose expiry gives `stale=true`, nonce-count replays refused).
//!
//! Every nonce is bound to the IP address it was sent to. Credentials over
//! a nonce issued to another address count as no credentials (a fresh
//! challenge, not a failed attempt): a sender spoofing a victim's address
//! never sees the victim's challenges, so it cannot make failures count
//! against the victim, and a response captured on the path is worthless
//! from elsewhere. A replayed nonce-count gets a `stale=true` challenge
//! rather than a failure for the same reason.

use std::net::IpAddr;
use std::time::Duration;

use strowger_sip::digest::{self, Algorithm, DigestServer, NonceStatus, NonceTracker, Verdict};

use crate::core::Now;

/// Digest algorithms (RFC 8760).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestAlgorithm {
    /// MD5.
    Md5,
    /// SHA-256.
    Sha256,
}

impl DigestAlgorithm {
    fn sip(self) -> Algorithm {
        match self {
            DigestAlgorithm::Md5 => Algorithm::Md5,
            DigestAlgorithm::Sha256 => Algorithm::Sha256,
        }
    }
}

/// Result of the digest check (mirrors the WIT `credentials`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials for our realm (or over a nonce we never issued, e.g.
    /// before a restart: the client simply gets a new challenge).
    None,
    /// Correct.
    Valid,
    /// Wrong user or response, or a replayed nonce count.
    Invalid,
    /// Correct over an expired nonce, or a nonce-count already used.
    Stale,
}

/// Address text a nonce is bound to (IPv4-mapped IPv6 as IPv4, so a
/// dual-stack listener binds the same client the same way).
fn bind_of(ip: IpAddr) -> String {
    ip.to_canonical().to_string()
}

/// Server-side digest state: the nonce secret and the nonce-count tracker.
pub struct DigestAuth {
    server: DigestServer,
    tracker: NonceTracker,
}

impl DigestAuth {
    /// New state with a random secret; nonces live `ttl`; `allow_no_qop`
    /// accepts RFC 2069 responses (one use per nonce).
    pub fn new(ttl: Duration, allow_no_qop: bool) -> DigestAuth {
        let mut server = DigestServer::with_random_secret(ttl.as_secs().max(1));
        server.algorithms = vec![Algorithm::Sha256, Algorithm::Md5];
        server.allow_no_qop = allow_no_qop;
        DigestAuth {
            server,
            tracker: NonceTracker::new(200_000),
        }
    }

    /// Checks `headers` (Authorization or Proxy-Authorization values) of a
    /// `method` request from `src` for `realm`; `password` looks a user's
    /// password up. Returns the result and the username found.
    pub fn check(
        &mut self,
        now: Now,
        method: &str,
        headers: &[&str],
        realm: &str,
        src: IpAddr,
        password: impl Fn(&str) -> Option<String>,
    ) -> (Credentials, Option<String>) {
        let now_s = (now.unix_ms / 1000).max(0) as u64;
        let bind = bind_of(src);
        let mut user = None;
        for h in headers {
            let Ok(creds) = digest::Credentials::parse(h) else {
                continue;
            };
            if creds.realm != realm {
                continue;
            }
            user = Some(creds.username.to_string());
            if self.server.check_nonce(&creds.nonce, realm, now_s, &bind) == NonceStatus::Invalid {
                // never ours, from before a restart, or issued to another
                // address: a new challenge, not a failed attempt
                return (Credentials::None, user);
            }
            let Some(pw) = password(&creds.username) else {
                return (Credentials::Invalid, user);
            };
            let v = self.server.verify(
                &creds,
                method,
                realm,
                &pw,
                now_s,
                &bind,
                Some(&mut self.tracker),
            );
            let c = match v {
                Verdict::Ok => Credentials::Valid,
                Verdict::Stale | Verdict::Replay => Credentials::Stale,
                Verdict::NoQop => {
                    tracing::info!(
                        source = %src,
                        user = %creds.username,
                        "digest response without qop refused (auth.allow_no_qop is off)"
                    );
                    Credentials::Invalid
                }
                Verdict::Invalid => Credentials::Invalid,
            };
            return (c, user);
        }
        (Credentials::None, user)
    }

    /// Challenge header values for a client at `dst`, one per algorithm
    /// in `algs` order, sharing one fresh nonce bound to `dst`.
    pub fn challenges(
        &mut self,
        now: Now,
        realm: &str,
        algs: &[DigestAlgorithm],
        stale: bool,
        dst: IpAddr,
    ) -> Vec<String> {
        let now_s = (now.unix_ms / 1000).max(0) as u64;
        let mut s = self.server.clone();
        s.algorithms = algs.iter().map(|a| a.sip()).collect();
        s.challenges(realm, now_s, stale, &bind_of(dst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(ch: &str, user: &str, pw: &str, nc: &str, method: &str) -> String {
        let c = digest::Challenge::parse(ch).unwrap();
        digest::answer(
            &c,
            method,
            "sip:test.local",
            user,
            pw,
            Some("cn0nce"),
            nc_num(nc),
        )
    }
    fn nc_num(nc: &str) -> u32 {
        u32::from_str_radix(nc, 16).unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn pw(u: &str) -> Option<String> {
        (u == "1001").then(|| "pw".to_string())
    }

    #[test]
    fn sha256_md5_stale_replay() {
        let now = Now::real();
        let src = ip("192.0.2.10");
        let mut a = DigestAuth::new(Duration::from_secs(300), false);
        let ch = a.challenges(
            now,
            "test.local",
            &[DigestAlgorithm::Sha256, DigestAlgorithm::Md5],
            false,
            src,
        );
        assert_eq!(ch.len(), 2);
        // both challenges share one nonce: counts go up across them
        for (i, c) in ch.iter().enumerate() {
            let nc = format!("{:08x}", i * 10 + 1);
            let h = creds(c, "1001", "pw", &nc, "REGISTER");
            assert_eq!(
                a.check(now, "REGISTER", &[&h], "test.local", src, pw).0,
                Credentials::Valid
            );
            // replayed nonce count: re-challenged (stale), not a failure
            assert_eq!(
                a.check(now, "REGISTER", &[&h], "test.local", src, pw).0,
                Credentials::Stale
            );
            let nc = format!("{:08x}", i * 10 + 2);
            let h2 = creds(c, "1001", "wrong", &nc, "REGISTER");
            assert_eq!(
                a.check(now, "REGISTER", &[&h2], "test.local", src, pw).0,
                Credentials::Invalid
            );
        }
        let h = creds(&ch[0], "1001", "pw", "00000030", "REGISTER");
        let later = now.after(Duration::from_secs(400));
        assert_eq!(
            a.check(later, "REGISTER", &[&h], "test.local", src, pw).0,
            Credentials::Stale
        );
        assert_eq!(
            a.check(now, "REGISTER", &[], "test.local", src, pw).0,
            Credentials::None
        );
    }

    #[test]
    fn nonce_from_another_address_is_no_credentials() {
        let now = Now::real();
        let mut a = DigestAuth::new(Duration::from_secs(300), false);
        let attacker = ip("198.51.100.66");
        let victim = ip("192.0.2.10");
        let ch = a.challenges(now, "test.local", &[DigestAlgorithm::Md5], false, attacker);
        // wrong password over the attacker's nonce, sent as the victim: no
        // credentials at all (so nothing counts against the victim)
        let bad = creds(&ch[0], "1001", "guess", "00000001", "REGISTER");
        assert_eq!(
            a.check(now, "REGISTER", &[&bad], "test.local", victim, pw)
                .0,
            Credentials::None
        );
        // a correct response captured from one address is no good from another
        let good = creds(&ch[0], "1001", "pw", "00000002", "REGISTER");
        assert_eq!(
            a.check(now, "REGISTER", &[&good], "test.local", victim, pw)
                .0,
            Credentials::None
        );
        assert_eq!(
            a.check(now, "REGISTER", &[&good], "test.local", attacker, pw)
                .0,
            Credentials::Valid
        );
        // IPv4-mapped IPv6 is the same client
        let mapped = ip("::ffff:198.51.100.66");
        let good3 = creds(&ch[0], "1001", "pw", "00000003", "REGISTER");
        assert_eq!(
            a.check(now, "REGISTER", &[&good3], "test.local", mapped, pw)
                .0,
            Credentials::Valid
        );
    }

    fn no_qop(ch: &str, user: &str, pw: &str) -> String {
        let mut c = digest::Challenge::parse(ch).unwrap();
        c.qop.clear();
        digest::answer(&c, "REGISTER", "sip:test.local", user, pw, None, 1)
    }

    #[test]
    fn no_qop_refused_by_default_and_single_use_when_allowed() {
        let now = Now::real();
        let src = ip("192.0.2.10");
        let mut strict = DigestAuth::new(Duration::from_secs(300), false);
        let ch = strict.challenges(now, "test.local", &[DigestAlgorithm::Md5], false, src);
        let h = no_qop(&ch[0], "1001", "pw");
        assert!(!h.contains("qop"));
        assert_eq!(
            strict
                .check(now, "REGISTER", &[&h], "test.local", src, pw)
                .0,
            Credentials::Invalid
        );

        let mut legacy = DigestAuth::new(Duration::from_secs(300), true);
        let ch = legacy.challenges(now, "test.local", &[DigestAlgorithm::Md5], false, src);
        let h = no_qop(&ch[0], "1001", "pw");
        assert_eq!(
            legacy
                .check(now, "REGISTER", &[&h], "test.local", src, pw)
                .0,
            Credentials::Valid
        );
        // the same response again, from the same or another address
        for from in [src, ip("198.51.100.66"), ip("192.0.2.11")] {
            assert_ne!(
                legacy
                    .check(now, "REGISTER", &[&h], "test.local", from, pw)
                    .0,
                Credentials::Valid,
                "no-qop response replayed from {from}"
            );
        }
    }
}
