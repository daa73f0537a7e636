//! REGISTER handling (RFC 3261 §10.3) and the authorization step shared
//! with initial requests.

use strowger_sip::{Contact, Message, Method, ResponseBuilder};

use crate::auth::{Credentials, DigestAlgorithm};
use crate::core::{Action, AuthFacts, AuthVerdict, Core, Ingress, Now, PendingAuth};
use crate::flow::Flow;
use crate::location::{ContactUpdate, RegisterError, RegisterOp, aor_key};

impl Core {
    /// Runs the digest check on `req` and returns the facts for the
    /// authorize step. `aor_user`/`aor_domain` come from To (REGISTER) or
    /// From (other requests).
    pub(crate) fn auth_facts(
        &mut self,
        now: Now,
        req: &Message,
        flow: Flow,
        ingress: Ingress,
    ) -> AuthFacts {
        let method = req
            .method()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        let is_register = matches!(req.method(), Some(Method::Register));
        let party = if is_register { req.to() } else { req.from() };
        let user = party
            .uri
            .user_decoded()
            .map(|u| u.into_owned())
            .unwrap_or_default();
        let domain = party.uri.host_unbracketed().to_ascii_lowercase();
        let realm = self.cfg.domain.clone();
        let headers: Vec<&str> = if is_register {
            req.headers("Authorization").collect()
        } else {
            req.headers("Proxy-Authorization").collect()
        };
        let (users, index) = (&self.cfg.users, &self.user_index);
        let (credentials, auth_user) =
            self.auth
                .check(now, &method, &headers, &realm, flow.remote.ip(), |u| {
                    index.get(u).map(|&i| users[i].password.clone())
                });
        // the credentials must be those of the AOR's user
        let credentials = match (&credentials, &auth_user) {
            (Credentials::Valid, Some(au)) if *au != user => Credentials::Invalid,
            _ => credentials,
        };
        let known_user = self.user(auth_user.as_deref().unwrap_or(&user)).is_some();
        // AORs of configured users live in their configured domain
        let aor_domain = self
            .user(&user)
            .map(|u| u.domain.clone())
            .unwrap_or(domain.clone());
        let aor = aor_key(&format!("sip:{user}@{aor_domain}"), &self.cfg.domain);
        let mut contacts = Vec::new();
        let mut expires = req.expires();
        if is_register && let Ok(cs) = req.contacts() {
            for c in &cs {
                match c {
                    Contact::Star => contacts.push("*".to_string()),
                    Contact::Addr(a) => {
                        contacts.push(a.uri.raw.to_string());
                        if expires.is_none() {
                            expires = c.expires();
                        }
                    }
                }
            }
        }
        let (registration, contact_count) = {
            let loc = self.location.read();
            (loc.state(&aor, now.mono), loc.count(&aor, now.mono) as u32)
        };
        AuthFacts {
            method,
            aor,
            user,
            domain,
            auth_user,
            credentials,
            known_user,
            source: flow,
            ingress,
            user_agent: req.user_agent().map(str::to_string),
            contacts,
            expires,
            registration,
            contact_count,
            time_unix_ms: now.unix_ms,
        }
    }

    pub(crate) fn on_register(&mut self, now: Now, req: Message, flow: Flow) {
        if let Err(e) = req.contacts() {
            self.reply(&req, flow, 400, Some(&format!("Bad Contact: {e}")));
            return;
        }
        let facts = self.auth_facts(now, &req, flow, Ingress::Unknown);
        self.ask_authorize(now, req, flow, facts);
    }

    /// Parks the request and asks the shell for the authorize decision.
    pub(crate) fn ask_authorize(&mut self, now: Now, req: Message, flow: Flow, facts: AuthFacts) {
        if facts.credentials == Credentials::Invalid {
            // fail2ban reads this line (docs/fail2ban/strowger.conf): the
            // address comes first; user-sent text only as escaped fields
            tracing::warn!(user = facts.user.as_str(), method = %facts.method, source = %flow.remote, "authentication failed from {}", flow.remote.ip());
            self.auth_failed(now, flow.remote);
        }
        let pending = self.next_id();
        // absorb retransmissions while the decision is pending
        let key = crate::core::TxKey::of(&req, req.cseq().method.as_str());
        self.cache.put(key, None);
        self.out.push(Action::Authorize {
            pending,
            facts: facts.clone(),
        });
        self.pending_auth
            .insert(pending, PendingAuth { req, flow, facts });
    }

    pub(crate) fn on_auth_decided(&mut self, now: Now, pending: u64, verdict: AuthVerdict) {
        let Some(p) = self.pending_auth.remove(&pending) else {
            return;
        };
        let is_register = matches!(p.req.method(), Some(Method::Register));
        match verdict {
            AuthVerdict::Drop => {
                tracing::debug!(src = %p.flow.remote, method = %p.facts.method, "request dropped by authorize");
            }
            AuthVerdict::Reject(code, reason) => {
                let code = if (400..=699).contains(&code) {
                    code
                } else {
                    403
                };
                self.reply(&p.req, p.flow, code, Some(&reason));
            }
            AuthVerdict::Challenge { realm, algorithms } => {
                let realm = realm.unwrap_or_else(|| self.cfg.domain.clone());
                let algs: Vec<DigestAlgorithm> = if algorithms.is_empty() {
                    self.cfg.algorithms.clone()
                } else {
                    algorithms
                };
                let stale = p.facts.credentials == Credentials::Stale;
                let values = self
                    .auth
                    .challenges(now, &realm, &algs, stale, p.flow.remote.ip());
                let (code, name) = if is_register {
                    (401, "WWW-Authenticate")
                } else {
                    (407, "Proxy-Authenticate")
                };
                let tag = strowger_sip::ids::tag();
                let mut b = ResponseBuilder::new(&p.req, code).to_tag(&tag);
                for v in &values {
                    b = b.header(name, v);
                }
                let data = b.header("Server", &self.cfg.user_agent).build();
                self.respond(&p.req, p.flow, data);
            }
            AuthVerdict::Accept {
                max_expires,
                min_expires,
                max_contacts,
            } => {
                if is_register {
                    self.register_accepted(now, p, max_expires, min_expires, max_contacts);
                } else {
                    let ingress = if p.facts.credentials == Credentials::Valid {
                        match self.trunk_for_user(&p.facts.user) {
                            Some(ti) => {
                                if !self.trunk_accepts_inbound(ti) {
                                    self.reply(
                                        &p.req,
                                        p.flow,
                                        503,
                                        Some("Trunk Call Limit Reached"),
                                    );
                                    return;
                                }
                                Ingress::Trunk(self.cfg.trunks[ti].name.clone())
                            }
                            None => Ingress::User(p.facts.aor.clone()),
                        }
                    } else {
                        Ingress::Unknown
                    };
                    self.start_call(now, p.req, p.flow, ingress);
                }
            }
        }
    }

    fn register_accepted(
        &mut self,
        now: Now,
        p: PendingAuth,
        max_expires: Option<u32>,
        min_expires: Option<u32>,
        max_contacts: Option<u32>,
    ) {
        let req = &p.req;
        let aor = p.facts.aor.clone();
        let max_e = max_expires
            .unwrap_or(self.cfg.max_expires)
            .min(self.cfg.max_expires.max(1));
        let min_e = min_expires.unwrap_or(self.cfg.min_expires);
        let header_expires = req.expires();
        let contacts = req.contacts().unwrap_or_default();
        let wildcard = contacts.iter().any(|c| matches!(c, Contact::Star));
        if wildcard && (contacts.len() != 1 || header_expires != Some(0)) {
            self.reply(req, p.flow, 400, Some("Invalid wildcard Contact"));
            return;
        }
        let mut updates = Vec::new();
        for c in &contacts {
            let Contact::Addr(a) = c else { continue };
            let requested = c
                .expires()
                .or(header_expires)
                .unwrap_or(self.cfg.default_expires);
            if requested != 0 && requested < min_e {
                let tag = strowger_sip::ids::tag();
                let data = ResponseBuilder::new(req, 423)
                    .to_tag(&tag)
                    .header("Min-Expires", &min_e.to_string())
                    .header("Server", &self.cfg.user_agent)
                    .build();
                self.respond(req, p.flow, data);
                return;
            }
            updates.push(ContactUpdate {
                contact: a.uri.raw.to_string(),
                expires: requested.min(max_e),
            });
        }
        let op = RegisterOp {
            contacts: &updates,
            wildcard,
            call_id: req.call_id(),
            cseq: req.cseq().seq,
            flow: p.flow,
            user_agent: req.user_agent(),
            max_contacts,
        };
        let res = if contacts.is_empty() {
            Ok(Default::default()) // fetch bindings
        } else {
            self.location
                .write()
                .apply(&aor, &op, now.mono, now.unix_ms)
        };
        match res {
            Err(RegisterError::OutOfOrder) => {
                self.reply(req, p.flow, 500, Some("Out of order REGISTER"));
            }
            Ok(changes) => {
                self.stats.registers_ok += 1;
                for b in changes.upserted {
                    self.out.push(Action::SaveBinding {
                        aor: aor.clone(),
                        binding: b,
                    });
                }
                for c in changes.removed {
                    self.out.push(Action::DeleteBinding {
                        aor: aor.clone(),
                        contact: c,
                    });
                }
                let current = self.location.read().lookup(&aor, now.mono);
                let tag = strowger_sip::ids::tag();
                let mut b = ResponseBuilder::new(req, 200).to_tag(&tag);
                let values: Vec<String> = current
                    .iter()
                    .map(|c| format!("<{}>;expires={}", c.contact, c.expires_in(now.mono)))
                    .collect();
                for v in &values {
                    b = b.header("Contact", v);
                }
                let date = httpdate(now.unix_ms);
                let data = b
                    .header("Date", &date)
                    .header("Server", &self.cfg.user_agent)
                    .build();
                self.respond(req, p.flow, data);
            }
        }
    }
}

/// RFC 1123 date (`Date:` header).
fn httpdate(unix_ms: i64) -> String {
    let c = crate::civil::civil(unix_ms, 0);
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(c.weekday as usize + 6) % 7],
        c.day,
        MONTHS[(c.month as usize).saturating_sub(1) % 12],
        c.year,
        c.hour,
        c.minute,
        c.second
    )
}
