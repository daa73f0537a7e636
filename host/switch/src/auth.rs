//! Digest authentication on top of `strowger_sip::digest` (RFC 7616 /
//! RFC 8760: SHA-256 and MD5 offered side by side, qop=auth, stateless
//! nonces whose expiry gives `stale=true`, nonce-count replays refused).

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
    /// Correct over an expired nonce.
    Stale,
}

/// Server-side digest state: the nonce secret and the nonce-count tracker.
pub struct DigestAuth {
    server: DigestServer,
    tracker: NonceTracker,
}

impl DigestAuth {
    /// New state with a random secret; nonces live `ttl`.
    pub fn new(ttl: Duration) -> DigestAuth {
        let mut server = DigestServer::with_random_secret(ttl.as_secs().max(1));
        server.algorithms = vec![Algorithm::Sha256, Algorithm::Md5];
        DigestAuth {
            server,
            tracker: NonceTracker::new(200_000),
        }
    }

    /// Checks `headers` (Authorization or Proxy-Authorization values) of a
    /// `method` request for `realm`; `password` looks a user's password up.
    /// Returns the result and the username found.
    pub fn check(
        &mut self,
        now: Now,
        method: &str,
        headers: &[&str],
        realm: &str,
        password: impl Fn(&str) -> Option<String>,
    ) -> (Credentials, Option<String>) {
        let now_s = (now.unix_ms / 1000).max(0) as u64;
        let mut user = None;
        for h in headers {
            let Ok(creds) = digest::Credentials::parse(h) else {
                continue;
            };
            if creds.realm != realm {
                continue;
            }
            user = Some(creds.username.to_string());
            if self.server.check_nonce(&creds.nonce, realm, now_s) == NonceStatus::Invalid {
                return (Credentials::None, user);
            }
            let Some(pw) = password(&creds.username) else {
                return (Credentials::Invalid, user);
            };
            let v = self
                .server
                .verify(&creds, method, realm, &pw, now_s, Some(&mut self.tracker));
            let c = match v {
                Verdict::Ok => Credentials::Valid,
                Verdict::Stale => Credentials::Stale,
                Verdict::Replay | Verdict::Invalid => Credentials::Invalid,
            };
            return (c, user);
        }
        (Credentials::None, user)
    }

    /// Challenge header values, one per algorithm in `algs` order, sharing
    /// one fresh nonce.
    pub fn challenges(
        &mut self,
        now: Now,
        realm: &str,
        algs: &[DigestAlgorithm],
        stale: bool,
    ) -> Vec<String> {
        let now_s = (now.unix_ms / 1000).max(0) as u64;
        let mut s = self.server.clone();
        s.algorithms = algs.iter().map(|a| a.sip()).collect();
        s.challenges(realm, now_s, stale)
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

    #[test]
    fn sha256_md5_stale_replay() {
        let now = Now::real();
        let mut a = DigestAuth::new(Duration::from_secs(300));
        let ch = a.challenges(
            now,
            "test.local",
            &[DigestAlgorithm::Sha256, DigestAlgorithm::Md5],
            false,
        );
        assert_eq!(ch.len(), 2);
        let pw = |u: &str| (u == "1001").then(|| "pw".to_string());
        // both challenges share one nonce: counts go up across them
        for (i, c) in ch.iter().enumerate() {
            let nc = format!("{:08x}", i * 10 + 1);
            let h = creds(c, "1001", "pw", &nc, "REGISTER");
            assert_eq!(
                a.check(now, "REGISTER", &[&h], "test.local", pw).0,
                Credentials::Valid
            );
            // replayed nonce count
            assert_eq!(
                a.check(now, "REGISTER", &[&h], "test.local", pw).0,
                Credentials::Invalid
            );
            let nc = format!("{:08x}", i * 10 + 2);
            let h2 = creds(c, "1001", "wrong", &nc, "REGISTER");
            assert_eq!(
                a.check(now, "REGISTER", &[&h2], "test.local", pw).0,
                Credentials::Invalid
            );
        }
        let h = creds(&ch[0], "1001", "pw", "00000030", "REGISTER");
        let later = now.after(Duration::from_secs(400));
        assert_eq!(
            a.check(later, "REGISTER", &[&h], "test.local", pw).0,
            Credentials::Stale
        );
        assert_eq!(
            a.check(now, "REGISTER", &[], "test.local", pw).0,
            Credentials::None
        );
    }
}
