//! SIP digest client (RFC 3261 §22, RFC 7616 / RFC 8760 SHA-256), written
//! independently of the switch's server side so tests cross-check it.

use md5::Md5;
use sha2::{Digest, Sha256};

/// Digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `MD5`.
    Md5,
    /// `SHA-256`.
    Sha256,
}

impl Algorithm {
    /// Name as written in the `algorithm=` parameter.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Lower-case hex hash of `data`.
    pub fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => hex::encode(Md5::digest(data.as_bytes())),
            Algorithm::Sha256 => hex::encode(Sha256::digest(data.as_bytes())),
        }
    }
}

/// A parsed `WWW-Authenticate` / `Proxy-Authenticate` digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// realm
    pub realm: String,
    /// nonce
    pub nonce: String,
    /// opaque, if any
    pub opaque: Option<String>,
    /// algorithm (MD5 when absent)
    pub algorithm: Algorithm,
    /// qop options offered (e.g. `["auth"]`)
    pub qop: Vec<String>,
    /// stale=true
    pub stale: bool,
    /// The algorithm token as written (for unknown algorithms).
    pub algorithm_raw: String,
}

/// Split `a=b, c="d, e"` into (name, value) pairs, unquoting values.
pub fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b' ' || b[i] == b',' || b[i] == b'\t') {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' {
            i += 1;
        }
        let name = s[start..i].trim().to_ascii_lowercase();
        if i >= b.len() || b[i] == b',' {
            if !name.is_empty() {
                out.push((name, String::new()));
            }
            continue;
        }
        i += 1; // '='
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let value = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut v = String::new();
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                v.push(b[i] as char);
                i += 1;
            }
            i += 1;
            v
        } else {
            let st = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            s[st..i].trim().to_string()
        };
        out.push((name, value));
    }
    out
}

impl Challenge {
    /// Parse a header value (`Digest realm="...", nonce="...", ...`).
    pub fn parse(value: &str) -> Option<Challenge> {
        let v = value.trim();
        let (scheme, rest) = v.split_once(char::is_whitespace)?;
        if !scheme.eq_ignore_ascii_case("digest") {
            return None;
        }
        let mut c = Challenge {
            realm: String::new(),
            nonce: String::new(),
            opaque: None,
            algorithm: Algorithm::Md5,
            qop: Vec::new(),
            stale: false,
            algorithm_raw: "MD5".into(),
        };
        for (k, val) in parse_params(rest) {
            match k.as_str() {
                "realm" => c.realm = val,
                "nonce" => c.nonce = val,
                "opaque" => c.opaque = Some(val),
                "algorithm" => {
                    c.algorithm_raw = val.clone();
                    c.algorithm = if val.eq_ignore_ascii_case("sha-256") {
                        Algorithm::Sha256
                    } else {
                        Algorithm::Md5
                    };
                }
                "qop" => c.qop = val.split(',').map(|q| q.trim().to_string()).collect(),
                "stale" => c.stale = val.eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        (!c.nonce.is_empty()).then_some(c)
    }

    /// The `Authorization` header value answering this challenge.
    /// `nc` is the nonce count (1 for the first use of a nonce); `qop=auth`
    /// is used when offered.
    pub fn authorization(
        &self,
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> String {
        let alg = self.algorithm;
        let ha1 = alg.hash(&format!("{user}:{}:{password}", self.realm));
        let ha2 = alg.hash(&format!("{method}:{uri}"));
        let use_qop = self.qop.iter().any(|q| q == "auth");
        let nc_s = format!("{nc:08x}");
        let response = if use_qop {
            alg.hash(&format!("{ha1}:{}:{nc_s}:{cnonce}:auth:{ha2}", self.nonce))
        } else {
            alg.hash(&format!("{ha1}:{}:{ha2}", self.nonce))
        };
        let mut h = format!(
            "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{response}\", algorithm={}",
            self.realm, self.nonce, self.algorithm_raw
        );
        if use_qop {
            h.push_str(&format!(", qop=auth, nc={nc_s}, cnonce=\"{cnonce}\""));
        }
        if let Some(o) = &self.opaque {
            h.push_str(&format!(", opaque=\"{o}\""));
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_md5_example_shape() {
        // RFC 2617 §3.5 example (HTTP, but the computation is identical).
        let c = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert_eq!(c.qop, ["auth", "auth-int"]);
        let h = c.authorization(
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            1,
            "0a4f113b",
        );
        assert!(
            h.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{h}"
        );
    }

    #[test]
    fn rfc7616_sha256_example() {
        // RFC 7616 §3.9.1.
        let c = Challenge::parse(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm=SHA-256, \
             nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
        )
        .unwrap();
        assert_eq!(c.algorithm, Algorithm::Sha256);
        let h = c.authorization(
            "Mufasa",
            "Circle of Life",
            "GET",
            "/dir/index.html",
            1,
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        );
        assert!(
            h.contains(
                "response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\""
            ),
            "{h}"
        );
    }
}
