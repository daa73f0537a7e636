//! Digest authentication for SIP (RFC 2617, RFC 7616, RFC 8760).
//!
//! Server side: [`DigestServer`] issues `WWW-Authenticate` /
//! `Proxy-Authenticate` challenges offering SHA-256 and MD5 side by side
//! (one header each, SHA-256 first), with **stateless nonces** (timestamp +
//! salt + HMAC-SHA256 over them, the realm and a caller-chosen binding such
//! as the client's IP address, with a server secret) that expire after a
//! configurable lifetime, and verifies [`Credentials`] with qop=auth (and,
//! only when [`DigestServer::allow_no_qop`] is set, without qop for RFC 2069
//! clients: then each nonce is good for one request). [`NonceTracker`]
//! refuses replays: per nonce the highest nonce-count seen, bounded memory,
//! pruned by expiry. Comparisons of secrets are constant-time.
//!
//! Binding nonces to the client's address means a nonce obtained from one
//! address is worthless from another: a response captured on the path
//! cannot be replayed from elsewhere, and a spoofed sender that never sees
//! the challenge sent to the address it impersonates cannot present
//! credentials that count as a failed attempt of that address.
//!
//! Client side: [`Challenge::parse`] + [`answer`] build the
//! `Authorization` / `Proxy-Authorization` value.
//!
//! Time is injected as Unix seconds (`now`) so nonces survive restarts and
//! tests are deterministic.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;

use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha2::{Sha256, Sha512_256};
use subtle::ConstantTimeEq;

use crate::value::{split_list, trim_lws, unquote};

/// Digest algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// MD5 (RFC 2617; the default when `algorithm` is absent).
    Md5,
    /// MD5-sess
    Md5Sess,
    /// SHA-256 (RFC 7616 / RFC 8760)
    Sha256,
    /// SHA-256-sess
    Sha256Sess,
    /// SHA-512-256 (RFC 7616 / RFC 8760)
    Sha512_256,
    /// SHA-512-256-sess
    Sha512_256Sess,
}

impl Algorithm {
    /// Parses the `algorithm` parameter value (case-insensitive).
    pub fn parse(s: &str) -> Option<Algorithm> {
        let t = [
            ("MD5", Algorithm::Md5),
            ("MD5-sess", Algorithm::Md5Sess),
            ("SHA-256", Algorithm::Sha256),
            ("SHA-256-sess", Algorithm::Sha256Sess),
            ("SHA-512-256", Algorithm::Sha512_256),
            ("SHA-512-256-sess", Algorithm::Sha512_256Sess),
        ];
        t.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s))
            .map(|(_, a)| *a)
    }

    /// Token as written in headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
            Algorithm::Sha512_256 => "SHA-512-256",
            Algorithm::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    fn is_sess(self) -> bool {
        matches!(
            self,
            Algorithm::Md5Sess | Algorithm::Sha256Sess | Algorithm::Sha512_256Sess
        )
    }

    /// Lower-case hex hash of the concatenation of `parts`.
    pub fn hash_hex(self, parts: &[&[u8]]) -> String {
        fn run<D: md5::Digest>(parts: &[&[u8]]) -> String {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            hex::encode(d.finalize())
        }
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => run::<Md5>(parts),
            Algorithm::Sha256 | Algorithm::Sha256Sess => run::<Sha256>(parts),
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => run::<Sha512_256>(parts),
        }
    }

    /// Preference order when a client picks among challenges (higher wins).
    fn strength(self) -> u8 {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => 1,
            Algorithm::Sha256 | Algorithm::Sha256Sess => 2,
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => 3,
        }
    }
}

/// Errors parsing challenges / credentials.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Not a `Digest` scheme header.
    #[error("authentication scheme is not Digest")]
    NotDigest,
    /// A required parameter is missing.
    #[error("missing digest parameter {0}")]
    Missing(&'static str),
    /// A parameter has a bad value.
    #[error("bad digest parameter {0}")]
    Bad(&'static str),
}

/// Parses `Digest k=v, k="v", ...` into (lower-cased name, unquoted value).
fn auth_params(value: &str) -> Result<Vec<(String, Cow<'_, str>)>, DigestError> {
    let v = trim_lws(value);
    let sp = v.find([' ', '\t']).unwrap_or(v.len());
    if !v[..sp].eq_ignore_ascii_case("Digest") {
        return Err(DigestError::NotDigest);
    }
    let mut out = Vec::with_capacity(10);
    for item in split_list(&v[sp..]) {
        let Some(eq) = item.find('=') else {
            return Err(DigestError::Bad("auth-param without '='"));
        };
        let name = trim_lws(&item[..eq]).to_ascii_lowercase();
        let val = trim_lws(&item[eq + 1..]);
        if val.starts_with('"') && crate::value::quoted_len(val.as_bytes()) != Some(val.len()) {
            return Err(DigestError::Bad("unterminated quoted string"));
        }
        out.push((name, unquote(val)));
    }
    Ok(out)
}

fn take<'a>(params: &mut [(String, Cow<'a, str>)], name: &str) -> Option<Cow<'a, str>> {
    params
        .iter_mut()
        .find(|(n, _)| n == name)
        .map(|(_, v)| std::mem::take(v))
}

/// A parsed `WWW-Authenticate` / `Proxy-Authenticate` digest challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge<'a> {
    /// realm
    pub realm: Cow<'a, str>,
    /// nonce
    pub nonce: Cow<'a, str>,
    /// opaque (echoed back unchanged)
    pub opaque: Option<Cow<'a, str>>,
    /// algorithm (MD5 if absent)
    pub algorithm: Algorithm,
    /// qop options offered (e.g. `["auth"]`); empty for RFC 2069 style.
    pub qop: Vec<String>,
    /// stale=true: the previous nonce expired, retry without asking the user.
    pub stale: bool,
}

impl<'a> Challenge<'a> {
    /// Parses one challenge header value.
    pub fn parse(value: &'a str) -> Result<Challenge<'a>, DigestError> {
        let mut p = auth_params(value)?;
        let realm = take(&mut p, "realm").ok_or(DigestError::Missing("realm"))?;
        let nonce = take(&mut p, "nonce").ok_or(DigestError::Missing("nonce"))?;
        let algorithm = match take(&mut p, "algorithm") {
            Some(a) => Algorithm::parse(&a).ok_or(DigestError::Bad("algorithm"))?,
            None => Algorithm::Md5,
        };
        let qop = take(&mut p, "qop")
            .map(|q| {
                q.split(',')
                    .map(|s| trim_lws(s).to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let stale = take(&mut p, "stale").is_some_and(|s| s.eq_ignore_ascii_case("true"));
        Ok(Challenge {
            realm,
            nonce,
            opaque: take(&mut p, "opaque"),
            algorithm,
            qop,
            stale,
        })
    }

    /// Picks the strongest supported challenge among several header values
    /// (e.g. `msg.www_authenticate()`), ignoring ones that do not parse.
    pub fn pick_best<I: IntoIterator<Item = &'a str>>(values: I) -> Option<Challenge<'a>> {
        values
            .into_iter()
            .filter_map(|v| Challenge::parse(v).ok())
            .max_by_key(|c| c.algorithm.strength())
    }
}

/// Parsed `Authorization` / `Proxy-Authorization` digest credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// username
    pub username: Cow<'a, str>,
    /// realm
    pub realm: Cow<'a, str>,
    /// nonce
    pub nonce: Cow<'a, str>,
    /// digest-uri
    pub uri: Cow<'a, str>,
    /// response (hex)
    pub response: Cow<'a, str>,
    /// algorithm (MD5 if absent)
    pub algorithm: Algorithm,
    /// cnonce (required with qop)
    pub cnonce: Option<Cow<'a, str>>,
    /// opaque
    pub opaque: Option<Cow<'a, str>>,
    /// qop chosen by the client (`auth`, `auth-int`), or none.
    pub qop: Option<Cow<'a, str>>,
    /// nonce-count as written (8 hex digits).
    pub nc_raw: Option<Cow<'a, str>>,
    /// nonce-count value.
    pub nc: Option<u32>,
}

impl<'a> Credentials<'a> {
    /// Parses one credentials header value.
    pub fn parse(value: &'a str) -> Result<Credentials<'a>, DigestError> {
        let mut p = auth_params(value)?;
        let username = take(&mut p, "username").ok_or(DigestError::Missing("username"))?;
        let realm = take(&mut p, "realm").ok_or(DigestError::Missing("realm"))?;
        let nonce = take(&mut p, "nonce").ok_or(DigestError::Missing("nonce"))?;
        let uri = take(&mut p, "uri").ok_or(DigestError::Missing("uri"))?;
        let response = take(&mut p, "response").ok_or(DigestError::Missing("response"))?;
        let algorithm = match take(&mut p, "algorithm") {
            Some(a) => Algorithm::parse(&a).ok_or(DigestError::Bad("algorithm"))?,
            None => Algorithm::Md5,
        };
        let qop = take(&mut p, "qop");
        let cnonce = take(&mut p, "cnonce");
        let nc_raw = take(&mut p, "nc");
        let nc = match &nc_raw {
            Some(n) => {
                if n.len() != 8 || !n.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(DigestError::Bad("nc"));
                }
                Some(u32::from_str_radix(n, 16).map_err(|_| DigestError::Bad("nc"))?)
            }
            None => None,
        };
        if qop.is_some() && (cnonce.is_none() || nc.is_none()) {
            return Err(DigestError::Missing("cnonce/nc with qop"));
        }
        Ok(Credentials {
            username,
            realm,
            nonce,
            uri,
            response,
            algorithm,
            cnonce,
            opaque: take(&mut p, "opaque"),
            qop,
            nc_raw,
            nc,
        })
    }
}

impl Credentials<'_> {
    /// True if the `uri` parameter designates the request's Request-URI
    /// (equal text, or equivalent per RFC 3261 §19.1.4). Check it before
    /// [`DigestServer::verify`] so that credentials computed for one target
    /// cannot be replayed against another.
    pub fn uri_matches(&self, request_uri: &str) -> bool {
        if self.uri == request_uri {
            return true;
        }
        match (crate::Uri::parse(&self.uri), crate::Uri::parse(request_uri)) {
            (Ok(a), Ok(b)) => a.equivalent(&b),
            _ => false,
        }
    }
}

/// HA1 = H(username:realm:password) for `algo` (the non-sess part).
pub fn ha1(algo: Algorithm, username: &str, realm: &str, password: &str) -> String {
    algo.hash_hex(&[
        username.as_bytes(),
        b":",
        realm.as_bytes(),
        b":",
        password.as_bytes(),
    ])
}

/// Inputs of a digest response computation.
#[derive(Clone, Copy, Debug)]
pub struct ResponseInput<'x> {
    /// Algorithm.
    pub algorithm: Algorithm,
    /// HA1 (hex) as from [`ha1`].
    pub ha1: &'x str,
    /// nonce
    pub nonce: &'x str,
    /// cnonce (with qop or -sess)
    pub cnonce: Option<&'x str>,
    /// nc as written (with qop)
    pub nc: Option<&'x str>,
    /// qop (`auth` / `auth-int`) or None
    pub qop: Option<&'x str>,
    /// request method
    pub method: &'x str,
    /// digest-uri
    pub uri: &'x str,
    /// body (for auth-int)
    pub body: &'x [u8],
}

/// Computes the `response` value (hex).
pub fn compute_response(i: &ResponseInput<'_>) -> String {
    let a = i.algorithm;
    let cnonce = i.cnonce.unwrap_or("");
    let ha1 = if a.is_sess() {
        a.hash_hex(&[
            i.ha1.as_bytes(),
            b":",
            i.nonce.as_bytes(),
            b":",
            cnonce.as_bytes(),
        ])
    } else {
        i.ha1.to_string()
    };
    let ha2 = if i.qop.is_some_and(|q| q.eq_ignore_ascii_case("auth-int")) {
        let hb = a.hash_hex(&[i.body]);
        a.hash_hex(&[
            i.method.as_bytes(),
            b":",
            i.uri.as_bytes(),
            b":",
            hb.as_bytes(),
        ])
    } else {
        a.hash_hex(&[i.method.as_bytes(), b":", i.uri.as_bytes()])
    };
    match i.qop {
        Some(q) => a.hash_hex(&[
            ha1.as_bytes(),
            b":",
            i.nonce.as_bytes(),
            b":",
            i.nc.unwrap_or("").as_bytes(),
            b":",
            cnonce.as_bytes(),
            b":",
            q.as_bytes(),
            b":",
            ha2.as_bytes(),
        ]),
        None => a.hash_hex(&[
            ha1.as_bytes(),
            b":",
            i.nonce.as_bytes(),
            b":",
            ha2.as_bytes(),
        ]),
    }
}

/// Client side: builds the `Authorization` / `Proxy-Authorization` header
/// value answering `ch`. Uses qop=auth when offered (with `cnonce`, or a
/// random one if `None`, and nonce-count `nc`), otherwise RFC 2069 style.
pub fn answer(
    ch: &Challenge<'_>,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    cnonce: Option<&str>,
    nc: u32,
) -> String {
    let h1 = ha1(ch.algorithm, username, &ch.realm, password);
    let use_qop = ch.qop.iter().any(|q| q == "auth");
    let gen_cnonce;
    let cnonce = match cnonce {
        Some(c) => c,
        None => {
            gen_cnonce = crate::ids::tag() + &crate::ids::tag();
            &gen_cnonce
        }
    };
    let nc_s = format!("{nc:08x}");
    let resp = compute_response(&ResponseInput {
        algorithm: ch.algorithm,
        ha1: &h1,
        nonce: &ch.nonce,
        cnonce: (use_qop || ch.algorithm.is_sess()).then_some(cnonce),
        nc: use_qop.then_some(nc_s.as_str()),
        qop: use_qop.then_some("auth"),
        method,
        uri,
        body: b"",
    });
    let mut out = String::with_capacity(256);
    let _ = write!(
        out,
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\", algorithm={}",
        escape(username),
        escape(&ch.realm),
        escape(&ch.nonce),
        escape(uri),
        resp,
        ch.algorithm.as_str()
    );
    if use_qop || ch.algorithm.is_sess() {
        let _ = write!(out, ", cnonce=\"{}\"", escape(cnonce));
    }
    if use_qop {
        let _ = write!(out, ", qop=auth, nc={nc_s}");
    }
    if let Some(o) = &ch.opaque {
        let _ = write!(out, ", opaque=\"{}\"", escape(o));
    }
    out
}

fn escape(s: &str) -> Cow<'_, str> {
    if !s.contains(['"', '\\']) {
        return Cow::Borrowed(s);
    }
    let mut o = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if c == '"' || c == '\\' {
            o.push('\\');
        }
        o.push(c);
    }
    Cow::Owned(o)
}

/// State of a server-issued nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonceStatus {
    /// Issued by us for this realm and not expired.
    Valid,
    /// Issued by us but older than the lifetime: answer with `stale=true`.
    Stale,
    /// Not ours (forged, other realm, or garbled).
    Invalid,
}

/// Outcome of [`DigestServer::verify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Credentials correct, nonce valid, not a replay.
    Ok,
    /// Credentials correct but the nonce expired: re-challenge with
    /// `stale=true`.
    Stale,
    /// nonce-count not higher than the last one seen for this nonce (or a
    /// second use of a nonce answered without qop).
    Replay,
    /// Answered without qop while [`DigestServer::allow_no_qop`] is off.
    NoQop,
    /// Wrong password / response, unknown nonce, wrong realm, or a
    /// malformed credential.
    Invalid,
}

type HmacSha256 = Hmac<Sha256>;

/// Server-side digest: challenge generation and credential verification
/// with stateless nonces.
#[derive(Clone)]
pub struct DigestServer {
    secret: [u8; 32],
    lifetime_secs: u64,
    /// Offer qop=auth in challenges (default true).
    pub offer_qop: bool,
    /// Accept credentials without qop (RFC 2069 clients; default false).
    /// Such a response carries no nonce-count, so with a tracker each nonce
    /// is accepted once.
    pub allow_no_qop: bool,
    /// Algorithms offered, most preferred first (default SHA-256, MD5).
    pub algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for DigestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestServer")
            .field("lifetime_secs", &self.lifetime_secs)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

const NONCE_TS_HEX: usize = 16;
const NONCE_SALT_HEX: usize = 16;
const NONCE_MAC_HEX: usize = 32;

impl DigestServer {
    /// A server with the given secret (keep it stable across restarts and
    /// equal across cluster nodes) and nonce lifetime in seconds.
    pub fn new(secret: [u8; 32], lifetime_secs: u64) -> DigestServer {
        DigestServer {
            secret,
            lifetime_secs,
            offer_qop: true,
            allow_no_qop: false,
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
        }
    }

    /// A server with a random secret.
    pub fn with_random_secret(lifetime_secs: u64) -> DigestServer {
        let mut s = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut s[..]);
        DigestServer::new(s, lifetime_secs)
    }

    /// Nonce lifetime in seconds.
    pub fn lifetime_secs(&self) -> u64 {
        self.lifetime_secs
    }

    fn mac(&self, ts_salt: &str, realm: &str, bind: &str) -> [u8; 32] {
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(&self.secret)
            .expect("HMAC accepts any key length");
        m.update(ts_salt.as_bytes());
        m.update(b":");
        m.update(realm.as_bytes());
        m.update(b"\0");
        m.update(bind.as_bytes());
        m.finalize().into_bytes().into()
    }

    /// A fresh nonce for `realm`, valid only when checked with the same
    /// `bind` (e.g. the client's IP address; `""` binds to nothing):
    /// hex(timestamp) + hex(random salt) + hex(HMAC)[..32].
    pub fn make_nonce(&self, realm: &str, now: u64, bind: &str) -> String {
        let salt: u64 = rand::random();
        let mut n = String::with_capacity(NONCE_TS_HEX + NONCE_SALT_HEX + NONCE_MAC_HEX);
        let _ = write!(n, "{now:016x}{salt:016x}");
        let mac = self.mac(&n, realm, bind);
        n.push_str(&hex::encode(&mac[..NONCE_MAC_HEX / 2]));
        n
    }

    /// Checks that `nonce` was issued by this server for `realm` and `bind`
    /// and is not older than the lifetime (nonces from the future beyond
    /// 5 s are invalid).
    pub fn check_nonce(&self, nonce: &str, realm: &str, now: u64, bind: &str) -> NonceStatus {
        if nonce.len() != NONCE_TS_HEX + NONCE_SALT_HEX + NONCE_MAC_HEX || !nonce.is_ascii() {
            return NonceStatus::Invalid;
        }
        let (ts_salt, mac_hex) = nonce.split_at(NONCE_TS_HEX + NONCE_SALT_HEX);
        let Ok(given) = hex::decode(mac_hex) else {
            return NonceStatus::Invalid;
        };
        let mac = self.mac(ts_salt, realm, bind);
        if !bool::from(given.ct_eq(&mac[..NONCE_MAC_HEX / 2])) {
            return NonceStatus::Invalid;
        }
        let Ok(ts) = u64::from_str_radix(&ts_salt[..NONCE_TS_HEX], 16) else {
            return NonceStatus::Invalid;
        };
        if ts > now.saturating_add(5) {
            return NonceStatus::Invalid;
        }
        if now - ts.min(now) > self.lifetime_secs {
            NonceStatus::Stale
        } else {
            NonceStatus::Valid
        }
    }

    /// Unix time at which `nonce` expires (undefined for invalid nonces).
    pub fn nonce_expiry(&self, nonce: &str) -> u64 {
        nonce
            .get(..NONCE_TS_HEX)
            .and_then(|t| u64::from_str_radix(t, 16).ok())
            .unwrap_or(0)
            .saturating_add(self.lifetime_secs)
    }

    /// Challenge header values (one per offered algorithm, most preferred
    /// first), all sharing one fresh nonce bound to `bind`. Put each in its
    /// own `WWW-Authenticate` (401) or `Proxy-Authenticate` (407) line.
    pub fn challenges(&self, realm: &str, now: u64, stale: bool, bind: &str) -> Vec<String> {
        let nonce = self.make_nonce(realm, now, bind);
        self.algorithms
            .iter()
            .map(|a| {
                let mut s = String::with_capacity(160);
                let _ = write!(
                    s,
                    "Digest realm=\"{}\", nonce=\"{}\", algorithm={}",
                    escape(realm),
                    nonce,
                    a.as_str()
                );
                if self.offer_qop {
                    s.push_str(", qop=\"auth\"");
                }
                if stale {
                    s.push_str(", stale=true");
                }
                s
            })
            .collect()
    }

    /// Verifies credentials against a plaintext password; `bind` is what
    /// the nonce was bound to (see [`DigestServer::make_nonce`]).
    #[allow(clippy::too_many_arguments)]
    pub fn verify(
        &self,
        creds: &Credentials<'_>,
        method: &str,
        realm: &str,
        password: &str,
        now: u64,
        bind: &str,
        tracker: Option<&mut NonceTracker>,
    ) -> Verdict {
        let h = ha1(creds.algorithm, &creds.username, realm, password);
        self.verify_ha1(creds, method, realm, &h, now, bind, tracker)
    }

    /// Verifies credentials against a stored HA1 (hex, computed with the
    /// algorithm the client used: see [`ha1`]).
    #[allow(clippy::too_many_arguments)]
    pub fn verify_ha1(
        &self,
        creds: &Credentials<'_>,
        method: &str,
        realm: &str,
        ha1_hex: &str,
        now: u64,
        bind: &str,
        tracker: Option<&mut NonceTracker>,
    ) -> Verdict {
        if creds.realm != realm || !self.algorithms.contains(&creds.algorithm) {
            return Verdict::Invalid;
        }
        if creds
            .qop
            .as_deref()
            .is_some_and(|q| !q.eq_ignore_ascii_case("auth"))
        {
            return Verdict::Invalid;
        }
        let status = self.check_nonce(&creds.nonce, realm, now, bind);
        if status == NonceStatus::Invalid {
            return Verdict::Invalid;
        }
        if creds.qop.is_none() && !self.allow_no_qop {
            return Verdict::NoQop;
        }
        let expected = compute_response(&ResponseInput {
            algorithm: creds.algorithm,
            ha1: ha1_hex,
            nonce: &creds.nonce,
            cnonce: creds.cnonce.as_deref(),
            nc: creds.nc_raw.as_deref(),
            qop: creds.qop.as_deref(),
            method,
            uri: &creds.uri,
            body: b"",
        });
        let given = creds.response.to_ascii_lowercase();
        if !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
            return Verdict::Invalid;
        }
        if status == NonceStatus::Stale {
            return Verdict::Stale;
        }
        // without qop there is no nonce-count: the nonce is good once
        let nc = if creds.qop.is_none() {
            Some(1)
        } else {
            creds.nc
        };
        if let (Some(t), Some(nc)) = (tracker, nc)
            && !t.check(&creds.nonce, nc, self.nonce_expiry(&creds.nonce), now)
        {
            return Verdict::Replay;
        }
        Verdict::Ok
    }
}

/// Replay protection: per nonce, the highest nonce-count accepted. Bounded
/// to `capacity` nonces (oldest dropped first) and pruned by expiry.
#[derive(Debug)]
pub struct NonceTracker {
    seen: HashMap<String, u32>,
    order: VecDeque<(u64, String)>,
    capacity: usize,
}

impl NonceTracker {
    /// A tracker remembering at most `capacity` nonces.
    pub fn new(capacity: usize) -> NonceTracker {
        NonceTracker {
            seen: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Number of nonces currently tracked.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True if nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Drops nonces whose expiry is at or before `now`.
    pub fn prune(&mut self, now: u64) {
        while let Some((exp, _)) = self.order.front() {
            if *exp > now {
                break;
            }
            let (_, n) = self.order.pop_front().expect("front exists");
            self.seen.remove(&n);
        }
    }

    /// Accepts `nc` for `nonce` if it is higher than any seen before
    /// (recording it); refuses a repeated or lower count. `expires` is the
    /// nonce's expiry time (Unix seconds).
    pub fn check(&mut self, nonce: &str, nc: u32, expires: u64, now: u64) -> bool {
        self.prune(now);
        if let Some(last) = self.seen.get_mut(nonce) {
            if nc <= *last {
                return false;
            }
            *last = nc;
            return true;
        }
        if nc == 0 {
            return false;
        }
        while self.seen.len() >= self.capacity {
            match self.order.pop_front() {
                Some((_, n)) => {
                    self.seen.remove(&n);
                }
                None => break,
            }
        }
        self.seen.insert(nonce.to_string(), nc);
        self.order.push_back((expires, nonce.to_string()));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_vector() {
        // RFC 2617 §3.5.
        let h1 = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        let r = compute_response(&ResponseInput {
            algorithm: Algorithm::Md5,
            ha1: &h1,
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            cnonce: Some("0a4f113b"),
            nc: Some("00000001"),
            qop: Some("auth"),
            method: "GET",
            uri: "/dir/index.html",
            body: b"",
        });
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn rfc7616_vectors() {
        // RFC 7616 §3.9.1 (MD5 and SHA-256 with the same inputs).
        let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        for (algo, want) in [
            (Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
            (
                Algorithm::Sha256,
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let h1 = ha1(algo, "Mufasa", "http-auth@example.org", "Circle of Life");
            let r = compute_response(&ResponseInput {
                algorithm: algo,
                ha1: &h1,
                nonce,
                cnonce: Some(cnonce),
                nc: Some("00000001"),
                qop: Some("auth"),
                method: "GET",
                uri: "/dir/index.html",
                body: b"",
            });
            assert_eq!(r, want, "{algo:?}");
        }
    }

    #[test]
    fn rfc2069_no_qop_vector() {
        // Hand-computed: MD5(HA1:nonce:HA2) with
        // HA1 = MD5("bob:example.com:secret"), HA2 = MD5("REGISTER:sip:example.com").
        let h1 = ha1(Algorithm::Md5, "bob", "example.com", "secret");
        let h2 = Algorithm::Md5.hash_hex(&[b"REGISTER:sip:example.com"]);
        let want = Algorithm::Md5.hash_hex(&[format!("{h1}:abc:{h2}").as_bytes()]);
        let r = compute_response(&ResponseInput {
            algorithm: Algorithm::Md5,
            ha1: &h1,
            nonce: "abc",
            cnonce: None,
            nc: None,
            qop: None,
            method: "REGISTER",
            uri: "sip:example.com",
            body: b"",
        });
        assert_eq!(r, want);
        // Same values computed independently (Python hashlib).
        assert_eq!(h1, "2664cba6663a734ef3a6fefc0c0d0821");
        assert_eq!(r, "e6920cba7ca6211e8cb0ad5a0e159dba");
    }

    #[test]
    fn parse_challenge_and_credentials() {
        let c = Challenge::parse(
            "Digest realm=\"atlanta.com\", domain=\"sip:ss1.carrier.com\", qop=\"auth,auth-int\", nonce=\"f84f1cec41e6cbe5aea9c8e88d359\", opaque=\"\", stale=FALSE, algorithm=MD5",
        )
        .unwrap();
        assert_eq!(c.realm, "atlanta.com");
        assert_eq!(c.qop, ["auth", "auth-int"]);
        assert_eq!(c.opaque.as_deref(), Some(""));
        assert!(!c.stale);
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert_eq!(
            Challenge::parse("Basic realm=\"x\""),
            Err(DigestError::NotDigest)
        );
        let cr = Credentials::parse(
            "Digest username=\"bob\",realm=\"biloxi.com\",nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",uri=\"sip:bob@biloxi.com\",qop=auth,nc=00000001,cnonce=\"0a4f113b\",response=\"6629fae49393a05397450978507c4ef1\",opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert_eq!(cr.username, "bob");
        assert_eq!(cr.nc, Some(1));
        assert_eq!(cr.qop.as_deref(), Some("auth"));
        assert!(cr.uri_matches("sip:bob@biloxi.com"));
        assert!(cr.uri_matches("sip:bob@BILOXI.com"));
        assert!(!cr.uri_matches("sip:alice@biloxi.com"));
        assert!(Credentials::parse("Digest username=\"bob\", realm=\"x\"").is_err());
        assert!(Credentials::parse("Digest username=\"bob").is_err());
    }

    #[test]
    fn server_roundtrip_both_algorithms() {
        let srv = DigestServer::new([7u8; 32], 300);
        let now = 1_800_000_000;
        let chs = srv.challenges("example.com", now, false, "192.0.2.1");
        assert_eq!(chs.len(), 2);
        assert!(chs[0].contains("algorithm=SHA-256"));
        assert!(chs[1].contains("algorithm=MD5"));
        for ch in &chs {
            // Both challenges share one nonce: a client answers one of them.
            let mut tr = NonceTracker::new(100);
            let c = Challenge::parse(ch).unwrap();
            for nc in 1..=2 {
                let a = answer(
                    &c,
                    "REGISTER",
                    "sip:example.com",
                    "100",
                    "pw",
                    Some("cn"),
                    nc,
                );
                let cr = Credentials::parse(&a).unwrap();
                assert_eq!(cr.algorithm, c.algorithm);
                assert_eq!(
                    srv.verify(
                        &cr,
                        "REGISTER",
                        "example.com",
                        "pw",
                        now + 1,
                        "192.0.2.1",
                        Some(&mut tr)
                    ),
                    Verdict::Ok
                );
                // replay of the same nc
                assert_eq!(
                    srv.verify(
                        &cr,
                        "REGISTER",
                        "example.com",
                        "pw",
                        now + 1,
                        "192.0.2.1",
                        Some(&mut tr)
                    ),
                    Verdict::Replay
                );
                assert_eq!(
                    srv.verify(
                        &cr,
                        "REGISTER",
                        "example.com",
                        "bad",
                        now + 1,
                        "192.0.2.1",
                        Some(&mut tr)
                    ),
                    Verdict::Invalid
                );
                assert_eq!(
                    srv.verify(
                        &cr,
                        "INVITE",
                        "example.com",
                        "pw",
                        now + 1,
                        "192.0.2.1",
                        None
                    ),
                    Verdict::Invalid
                );
                assert_eq!(
                    srv.verify(
                        &cr,
                        "REGISTER",
                        "example.com",
                        "pw",
                        now + 301,
                        "192.0.2.1",
                        None
                    ),
                    Verdict::Stale
                );
                assert_eq!(
                    srv.verify(
                        &cr,
                        "REGISTER",
                        "other.com",
                        "pw",
                        now + 1,
                        "192.0.2.1",
                        None
                    ),
                    Verdict::Invalid
                );
            }
        }
        // Old client without qop: refused unless allowed, then good once.
        let mut tr = NonceTracker::new(100);
        let mut c = Challenge::parse(&chs[1]).unwrap();
        c.qop.clear();
        let a = answer(&c, "INVITE", "sip:x@example.com", "100", "pw", None, 1);
        assert!(!a.contains("qop"));
        let cr = Credentials::parse(&a).unwrap();
        let b = "192.0.2.1";
        assert_eq!(
            srv.verify(&cr, "INVITE", "example.com", "pw", now, b, Some(&mut tr)),
            Verdict::NoQop
        );
        let mut legacy = srv.clone();
        legacy.allow_no_qop = true;
        // HA1 storage (no tracker: stateless check).
        let h = ha1(Algorithm::Md5, "100", "example.com", "pw");
        assert_eq!(
            legacy.verify_ha1(&cr, "INVITE", "example.com", &h, now, b, None),
            Verdict::Ok
        );
        assert_eq!(
            legacy.verify(&cr, "INVITE", "example.com", "pw", now, b, Some(&mut tr)),
            Verdict::Ok
        );
        // the same response again: a replay, from anywhere
        assert_eq!(
            legacy.verify(&cr, "INVITE", "example.com", "pw", now, b, Some(&mut tr)),
            Verdict::Replay
        );
        // and from another address the nonce is not ours at all
        let mut tr2 = NonceTracker::new(100);
        assert_eq!(
            legacy.verify(
                &cr,
                "INVITE",
                "example.com",
                "pw",
                now,
                "198.51.100.7",
                Some(&mut tr2)
            ),
            Verdict::Invalid
        );
    }

    #[test]
    fn nonce_forgery_and_expiry() {
        let srv = DigestServer::new([1u8; 32], 60);
        let n = srv.make_nonce("r", 1000, "10.0.0.1");
        assert_eq!(
            srv.check_nonce(&n, "r", 1000, "10.0.0.1"),
            NonceStatus::Valid
        );
        assert_eq!(
            srv.check_nonce(&n, "r", 1060, "10.0.0.1"),
            NonceStatus::Valid
        );
        assert_eq!(
            srv.check_nonce(&n, "r", 1061, "10.0.0.1"),
            NonceStatus::Stale
        );
        assert_eq!(
            srv.check_nonce(&n, "other", 1000, "10.0.0.1"),
            NonceStatus::Invalid
        );
        // bound to the address it was issued to
        assert_eq!(
            srv.check_nonce(&n, "r", 1000, "10.0.0.2"),
            NonceStatus::Invalid
        );
        assert_eq!(srv.check_nonce(&n, "r", 1000, ""), NonceStatus::Invalid);
        let other = DigestServer::new([2u8; 32], 60);
        assert_eq!(
            other.check_nonce(&n, "r", 1000, "10.0.0.1"),
            NonceStatus::Invalid
        );
        // tamper with the timestamp
        let mut t = n.clone().into_bytes();
        t[15] = if t[15] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            srv.check_nonce(std::str::from_utf8(&t).unwrap(), "r", 1000, "10.0.0.1"),
            NonceStatus::Invalid
        );
        assert_eq!(
            srv.check_nonce("short", "r", 1000, ""),
            NonceStatus::Invalid
        );
        // from the future
        let f = srv.make_nonce("r", 2000, "");
        assert_eq!(srv.check_nonce(&f, "r", 1000, ""), NonceStatus::Invalid);
        assert_ne!(
            srv.make_nonce("r", 1000, "10.0.0.1"),
            n,
            "salted: unique per challenge"
        );
    }

    #[test]
    fn tracker_bounds_and_prunes() {
        let mut t = NonceTracker::new(3);
        assert!(t.check("a", 1, 100, 0));
        assert!(!t.check("a", 1, 100, 0));
        assert!(t.check("a", 5, 100, 0));
        assert!(!t.check("a", 3, 100, 0));
        assert!(t.check("b", 1, 50, 0));
        assert!(t.check("c", 1, 200, 0));
        assert!(t.check("d", 1, 200, 0)); // evicts the oldest ("a")
        assert_eq!(t.len(), 3);
        t.prune(60); // "b" expired
        assert_eq!(t.len(), 2);
        assert!(!t.check("c", 1, 200, 60));
    }

    #[test]
    fn pick_best_prefers_sha256() {
        let srv = DigestServer::new([3u8; 32], 60);
        let chs = srv.challenges("r", 10, true, "");
        let mut rev: Vec<&str> = chs.iter().map(String::as_str).collect();
        rev.reverse();
        let best = Challenge::pick_best(rev).unwrap();
        assert_eq!(best.algorithm, Algorithm::Sha256);
        assert!(best.stale);
    }
}
