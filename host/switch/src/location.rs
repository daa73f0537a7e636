//! Location service: contacts bound to addresses-of-record (RFC 3261 §10.3),
//! each remembered with the flow the REGISTER came from so that requests
//! reach devices behind NAT without any Path/Outbound support in the device.
//!
//! Pure data structure: time is passed in by the caller.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::flow::Flow;

/// One contact binding.
#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    /// The Contact URI as registered (without header parameters).
    pub contact: String,
    /// Monotonic expiry.
    pub expires_at: Instant,
    /// Wall-clock expiry (ms since the Unix epoch), for persistence.
    pub expires_unix_ms: i64,
    /// The flow the REGISTER arrived on: requests go there.
    pub flow: Flow,
    /// Call-ID of the REGISTER that created/refreshed the binding.
    pub call_id: String,
    /// CSeq of that REGISTER.
    pub cseq: u32,
    /// User-Agent header, if any.
    pub user_agent: Option<String>,
    /// Insertion order (oldest first when trimming to `max_contacts`).
    pub seq: u64,
}

impl Binding {
    /// Seconds left until expiry (0 when expired).
    pub fn expires_in(&self, now: Instant) -> u32 {
        self.expires_at
            .saturating_duration_since(now)
            .as_secs()
            .min(u32::MAX as u64) as u32
    }
}

/// Registration state of an AOR, as the `authorize` hook sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegState {
    /// Never registered, or removed.
    None,
    /// At least one current contact.
    Registered,
    /// Had contacts, all expired.
    Expired,
}

/// One requested change from a REGISTER.
#[derive(Clone, Debug)]
pub struct ContactUpdate {
    /// Contact URI.
    pub contact: String,
    /// Granted expiry in seconds (0 removes).
    pub expires: u32,
}

/// A REGISTER's changes to one AOR.
#[derive(Clone, Debug)]
pub struct RegisterOp<'a> {
    /// Contacts to add, refresh or remove.
    pub contacts: &'a [ContactUpdate],
    /// `Contact: *` with `Expires: 0`: remove everything.
    pub wildcard: bool,
    /// Call-ID of the request.
    pub call_id: &'a str,
    /// CSeq number of the request.
    pub cseq: u32,
    /// Source flow.
    pub flow: Flow,
    /// User-Agent.
    pub user_agent: Option<&'a str>,
    /// Keep at most this many contacts (oldest dropped first).
    pub max_contacts: Option<u32>,
}

/// Why a REGISTER could not be applied. Nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// Same Call-ID with a CSeq not higher than the stored one (§10.3 step 7).
    OutOfOrder,
}

/// What changed, for persistence.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changes {
    /// Bindings created or refreshed.
    pub upserted: Vec<Binding>,
    /// Contacts removed (explicitly or trimmed).
    pub removed: Vec<String>,
}

/// The location service.
#[derive(Debug, Default)]
pub struct Location {
    aors: HashMap<String, Vec<Binding>>,
    had_contacts: HashSet<String>,
    seq: u64,
}

/// Normalises an AOR key: scheme and host lower-case, user kept as is,
/// URI parameters and port-less form; `1001` alone becomes
/// `sip:1001@<default_domain>`.
pub fn aor_key(aor: &str, default_domain: &str) -> String {
    let aor = aor.trim().trim_start_matches('<').trim_end_matches('>');
    let (scheme, rest) = match aor.split_once(':') {
        Some((s, r)) if s.eq_ignore_ascii_case("sip") || s.eq_ignore_ascii_case("sips") => {
            ("sip", r)
        }
        _ => ("sip", aor),
    };
    let rest = rest.split([';', '?']).next().unwrap_or("");
    let (user, host) = match rest.rsplit_once('@') {
        Some((u, h)) => (u, h),
        None => (rest, default_domain),
    };
    let host = host.to_ascii_lowercase();
    // drop a default port
    let host = host
        .strip_suffix(":5060")
        .map(str::to_string)
        .unwrap_or(host);
    format!("{scheme}:{user}@{host}")
}

/// Compares two contact URIs loosely (case-insensitive scheme/host,
/// parameters in any order are not normalised: devices resend the same text).
fn same_contact(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

impl Location {
    /// Empty location service.
    pub fn new() -> Self {
        Self::default()
    }

    /// Current (unexpired) bindings of `aor` (a normalised key).
    pub fn lookup(&self, aor: &str, now: Instant) -> Vec<Binding> {
        self.aors
            .get(aor)
            .map(|v| v.iter().filter(|b| b.expires_at > now).cloned().collect())
            .unwrap_or_default()
    }

    /// Number of current contacts of `aor`.
    pub fn count(&self, aor: &str, now: Instant) -> usize {
        self.aors
            .get(aor)
            .map(|v| v.iter().filter(|b| b.expires_at > now).count())
            .unwrap_or(0)
    }

    /// Registration state of `aor`.
    pub fn state(&self, aor: &str, now: Instant) -> RegState {
        if self.count(aor, now) > 0 {
            RegState::Registered
        } else if self.had_contacts.contains(aor) {
            RegState::Expired
        } else {
            RegState::None
        }
    }

    /// Total number of current bindings.
    pub fn len(&self) -> usize {
        self.aors.values().map(Vec::len).sum()
    }

    /// True if there are no bindings at all.
    pub fn is_empty(&self) -> bool {
        self.aors.is_empty()
    }

    /// Every AOR with its bindings (for status and persistence).
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Vec<Binding>)> {
        self.aors.iter()
    }

    /// Restores a persisted binding (on start). Expired ones are ignored.
    pub fn restore(&mut self, aor: &str, mut b: Binding, now: Instant) {
        if b.expires_at <= now {
            return;
        }
        self.seq += 1;
        b.seq = self.seq;
        self.had_contacts.insert(aor.to_string());
        self.aors.entry(aor.to_string()).or_default().push(b);
    }

    /// Applies a REGISTER (RFC 3261 §10.3 steps 6-7) atomically: on error
    /// nothing changes.
    pub fn apply(
        &mut self,
        aor: &str,
        op: &RegisterOp<'_>,
        now: Instant,
        now_unix_ms: i64,
    ) -> Result<Changes, RegisterError> {
        let mut changes = Changes::default();
        let list = self.aors.entry(aor.to_string()).or_default();
        list.retain(|b| b.expires_at > now);
        if op.wildcard {
            for b in list.iter() {
                if b.call_id == op.call_id && op.cseq <= b.cseq {
                    return Err(RegisterError::OutOfOrder);
                }
            }
            changes.removed = list.drain(..).map(|b| b.contact).collect();
            self.aors.remove(aor);
            self.had_contacts.remove(aor);
            return Ok(changes);
        }
        // validate first (all or nothing)
        for c in op.contacts {
            if let Some(b) = list.iter().find(|b| same_contact(&b.contact, &c.contact))
                && b.call_id == op.call_id
                && op.cseq <= b.cseq
            {
                return Err(RegisterError::OutOfOrder);
            }
        }
        for c in op.contacts {
            let pos = list
                .iter()
                .position(|b| same_contact(&b.contact, &c.contact));
            if c.expires == 0 {
                if let Some(p) = pos {
                    changes.removed.push(list.remove(p).contact);
                }
                continue;
            }
            self.seq += 1;
            let b = Binding {
                contact: c.contact.clone(),
                expires_at: now + Duration::from_secs(c.expires as u64),
                expires_unix_ms: now_unix_ms + c.expires as i64 * 1000,
                flow: op.flow,
                call_id: op.call_id.to_string(),
                cseq: op.cseq,
                user_agent: op.user_agent.map(str::to_string),
                seq: pos.map(|p| list[p].seq).unwrap_or(self.seq),
            };
            changes.upserted.push(b.clone());
            match pos {
                Some(p) => list[p] = b,
                None => list.push(b),
            }
        }
        if let Some(max) = op.max_contacts {
            let max = max.max(1) as usize;
            while list.len() > max {
                let oldest = list
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, b)| b.seq)
                    .map(|(i, _)| i)
                    .unwrap_or(0);
                let b = list.remove(oldest);
                changes
                    .upserted
                    .retain(|u| !same_contact(&u.contact, &b.contact));
                changes.removed.push(b.contact);
            }
        }
        if list.is_empty() {
            self.aors.remove(aor);
            if !changes.removed.is_empty() {
                self.had_contacts.remove(aor);
            }
        } else {
            self.had_contacts.insert(aor.to_string());
        }
        Ok(changes)
    }

    /// Removes expired bindings; returns (aor, contact) pairs removed.
    pub fn sweep(&mut self, now: Instant) -> Vec<(String, String)> {
        let mut gone = Vec::new();
        self.aors.retain(|aor, list| {
            list.retain(|b| {
                if b.expires_at <= now {
                    gone.push((aor.clone(), b.contact.clone()));
                    false
                } else {
                    true
                }
            });
            !list.is_empty()
        });
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Transport;

    fn flow(port: u16) -> Flow {
        Flow {
            transport: Transport::Udp,
            local: "127.0.0.1:5060".parse().unwrap(),
            remote: format!("127.0.0.1:{port}").parse().unwrap(),
            conn: None,
        }
    }

    fn op<'a>(contacts: &'a [ContactUpdate], call_id: &'a str, cseq: u32) -> RegisterOp<'a> {
        RegisterOp {
            contacts,
            wildcard: false,
            call_id,
            cseq,
            flow: flow(7000),
            user_agent: Some("test"),
            max_contacts: None,
        }
    }

    fn cu(c: &str, e: u32) -> ContactUpdate {
        ContactUpdate {
            contact: c.into(),
            expires: e,
        }
    }

    #[test]
    fn aor_keys_normalise() {
        assert_eq!(aor_key("1001", "Ex.com"), "sip:1001@ex.com");
        assert_eq!(
            aor_key("<sip:1001@EX.com;transport=tcp>", "x"),
            "sip:1001@ex.com"
        );
        assert_eq!(aor_key("sips:1001@ex.com:5060", "x"), "sip:1001@ex.com");
    }

    #[test]
    fn several_contacts_expire_and_state() {
        let t0 = Instant::now();
        let mut l = Location::new();
        let a = "sip:1001@d";
        assert_eq!(l.state(a, t0), RegState::None);
        let c = [cu("sip:1001@10.0.0.1", 60), cu("sip:1001@10.0.0.2", 120)];
        let ch = l.apply(a, &op(&c, "x", 1), t0, 0).unwrap();
        assert_eq!(ch.upserted.len(), 2);
        assert_eq!(l.lookup(a, t0).len(), 2);
        assert_eq!(l.state(a, t0), RegState::Registered);
        let t1 = t0 + Duration::from_secs(61);
        assert_eq!(l.lookup(a, t1).len(), 1);
        assert_eq!(l.lookup(a, t1)[0].expires_in(t1), 59);
        let t2 = t0 + Duration::from_secs(121);
        assert_eq!(l.state(a, t2), RegState::Expired);
        assert_eq!(l.sweep(t2).len(), 2);
        assert_eq!(l.state(a, t2), RegState::Expired);
    }

    #[test]
    fn unregister_and_wildcard() {
        let t0 = Instant::now();
        let mut l = Location::new();
        let a = "sip:1001@d";
        let c = [cu("sip:1001@10.0.0.1", 60), cu("sip:1001@10.0.0.2", 60)];
        l.apply(a, &op(&c, "x", 1), t0, 0).unwrap();
        let ch = l
            .apply(a, &op(&[cu("sip:1001@10.0.0.1", 0)], "x", 2), t0, 0)
            .unwrap();
        assert_eq!(ch.removed, vec!["sip:1001@10.0.0.1".to_string()]);
        assert_eq!(l.count(a, t0), 1);
        let mut w = op(&[], "y", 1);
        w.wildcard = true;
        let ch = l.apply(a, &w, t0, 0).unwrap();
        assert_eq!(ch.removed.len(), 1);
        assert_eq!(l.state(a, t0), RegState::None);
    }

    #[test]
    fn out_of_order_cseq_is_refused_atomically() {
        let t0 = Instant::now();
        let mut l = Location::new();
        let a = "sip:1001@d";
        l.apply(a, &op(&[cu("sip:1001@h1", 60)], "x", 5), t0, 0)
            .unwrap();
        let c = [cu("sip:1001@h2", 60), cu("sip:1001@h1", 60)];
        assert_eq!(
            l.apply(a, &op(&c, "x", 5), t0, 0),
            Err(RegisterError::OutOfOrder)
        );
        assert_eq!(l.count(a, t0), 1);
        // another Call-ID may refresh
        l.apply(a, &op(&c, "z", 1), t0, 0).unwrap();
        assert_eq!(l.count(a, t0), 2);
    }

    #[test]
    fn max_contacts_drops_oldest() {
        let t0 = Instant::now();
        let mut l = Location::new();
        let a = "sip:1001@d";
        l.apply(a, &op(&[cu("sip:a@1", 60)], "1", 1), t0, 0)
            .unwrap();
        l.apply(a, &op(&[cu("sip:a@2", 60)], "2", 1), t0, 0)
            .unwrap();
        let c3 = [cu("sip:a@3", 60)];
        let mut o = op(&c3, "3", 1);
        o.max_contacts = Some(2);
        let ch = l.apply(a, &o, t0, 0).unwrap();
        assert_eq!(ch.removed, vec!["sip:a@1".to_string()]);
        let mut got: Vec<_> = l.lookup(a, t0).into_iter().map(|b| b.contact).collect();
        got.sort();
        assert_eq!(got, vec!["sip:a@2", "sip:a@3"]);
    }
}
