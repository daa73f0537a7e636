//! Configuration and decision logic (pure, natively testable).

use std::collections::HashMap;

use serde::Deserialize;
use strowger_sdk::authorize::*;
use strowger_sdk::net::Cidr;
use strowger_sdk::regex_sub::compile;
use strowger_sdk::{Authorizer, config};

/// Default scanner User-Agent regex.
pub const DEFAULT_DENY_UA: &str = "friendly-scanner|sipvicious|sipcli|VaxSIPUserAgent";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    deny_user_agents: Option<String>,
    #[serde(default)]
    scanner_action: Option<RawAction>,
    #[serde(default)]
    allow: RawAllow,
    #[serde(default)]
    outside_allowed: Option<RawAction>,
    #[serde(default)]
    trusted: Vec<Cidr>,
    #[serde(default)]
    realm: Option<String>,
    #[serde(default)]
    algorithms: Option<Vec<String>>,
    #[serde(default)]
    min_expires: Option<u32>,
    #[serde(default)]
    max_expires: Option<u32>,
    #[serde(default)]
    max_contacts: Option<u32>,
    #[serde(default)]
    invalid: Option<RawAction>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAllow {
    #[serde(default)]
    users: HashMap<String, Vec<Cidr>>,
    #[serde(default)]
    domains: HashMap<String, Vec<Cidr>>,
}

/// `"drop"`, `"challenge"`, or `{"code": 403, "reason": "..."}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawAction {
    Word(String),
    Reject {
        code: u16,
        #[serde(default)]
        reason: Option<String>,
    },
}

#[derive(Clone, Debug)]
enum Action {
    Drop,
    Challenge,
    Reject(u16, String),
}

fn action(raw: Option<RawAction>, default: Action, what: &str) -> Result<Action, String> {
    match raw {
        None => Ok(default),
        Some(RawAction::Word(w)) if w == "drop" => Ok(Action::Drop),
        Some(RawAction::Word(w)) if w == "challenge" => Ok(Action::Challenge),
        Some(RawAction::Word(w)) if w == "reject" => Ok(Action::Reject(403, "Forbidden".into())),
        Some(RawAction::Reject { code, reason }) if (400..=699).contains(&code) => Ok(
            Action::Reject(code, reason.unwrap_or_else(|| "Forbidden".into())),
        ),
        Some(RawAction::Reject { code, .. }) => {
            Err(format!("{what}: code {code} must be 400..=699"))
        }
        Some(RawAction::Word(w)) => Err(format!(
            "{what}: `{w}` must be drop, challenge, reject or {{\"code\": 403, \"reason\": \"...\"}}"
        )),
    }
}

/// The compiled policy.
pub struct Policy {
    deny_ua: Option<strowger_sdk::regex_sub::Substitution>,
    scanner_action: Action,
    users: HashMap<String, Vec<Cidr>>,
    domains: HashMap<String, Vec<Cidr>>,
    outside: Action,
    trusted: Vec<Cidr>,
    realm: Option<String>,
    algorithms: Vec<DigestAlgorithm>,
    accept: Accept,
    invalid: Action,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::from_config("{}").expect("default policy")
    }
}

impl Policy {
    /// Build from JSON configuration.
    pub fn from_config(json: &str) -> Result<Self, String> {
        let raw: Raw = config::parse(json)?;
        let ua = raw
            .deny_user_agents
            .unwrap_or_else(|| DEFAULT_DENY_UA.to_string());
        let deny_ua = if ua.is_empty() {
            None
        } else {
            compile(&format!("(?i){ua}"))?;
            Some(strowger_sdk::regex_sub::Substitution::new(
                &format!("(?i){ua}"),
                "",
            )?)
        };
        let algorithms = match raw.algorithms {
            None => vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5],
            Some(list) => list
                .iter()
                .map(|a| match a.to_ascii_lowercase().as_str() {
                    "sha256" | "sha-256" => Ok(DigestAlgorithm::Sha256),
                    "md5" => Ok(DigestAlgorithm::Md5),
                    o => Err(format!("unknown digest algorithm `{o}` (sha256, md5)")),
                })
                .collect::<Result<_, _>>()?,
        };
        if let (Some(min), Some(max)) = (raw.min_expires, raw.max_expires)
            && min > max
        {
            return Err(format!("min_expires {min} is above max_expires {max}"));
        }
        if raw.max_contacts == Some(0) {
            return Err("max_contacts must be at least 1".into());
        }
        Ok(Policy {
            deny_ua,
            scanner_action: action(raw.scanner_action, Action::Drop, "scanner_action")?,
            users: raw.allow.users,
            domains: raw.allow.domains,
            outside: action(
                raw.outside_allowed,
                Action::Reject(403, "Forbidden".into()),
                "outside_allowed",
            )?,
            trusted: raw.trusted,
            realm: raw.realm,
            algorithms,
            accept: Accept {
                max_expires: raw.max_expires,
                min_expires: raw.min_expires,
                max_contacts: raw.max_contacts,
            },
            invalid: action(
                raw.invalid,
                Action::Reject(403, "Forbidden".into()),
                "invalid",
            )?,
        })
    }

    fn act(&self, a: &Action) -> AuthDecision {
        match a {
            Action::Drop => AuthDecision::Drop,
            Action::Challenge => AuthDecision::Challenge(Challenge {
                realm: self.realm.clone(),
                algorithms: self.algorithms.clone(),
            }),
            Action::Reject(code, reason) => AuthDecision::reject(*code, reason.clone()),
        }
    }

    /// The decision and a short label (for counters).
    pub fn decide(&self, r: &AuthRequest) -> (AuthDecision, &'static str) {
        if let (Some(re), Some(ua)) = (&self.deny_ua, &r.user_agent)
            && re.is_match(ua)
        {
            return (self.act(&self.scanner_action), "scanner");
        }
        let allow = self
            .users
            .get(&r.user)
            .or_else(|| self.users.get(&r.aor))
            .or_else(|| self.domains.get(&r.domain));
        if let Some(nets) = allow
            && !nets.iter().any(|n| n.contains_str(&r.source.ip))
        {
            return (self.act(&self.outside), "outside_allowed");
        }
        if self.trusted.iter().any(|n| n.contains_str(&r.source.ip)) {
            return (AuthDecision::Accept(self.accept), "trusted");
        }
        match r.credentials {
            Credentials::Valid => (AuthDecision::Accept(self.accept), "accepted"),
            Credentials::None | Credentials::Stale => (self.act(&Action::Challenge), "challenged"),
            Credentials::Invalid => (self.act(&self.invalid), "invalid"),
        }
    }
}

impl Authorizer for Policy {
    fn init(&mut self, config: &str) -> Result<(), String> {
        *self = Policy::from_config(config)?;
        Ok(())
    }

    fn authorize(&self, request: AuthRequest) -> Result<AuthDecision, String> {
        let (d, label) = self.decide(&request);
        strowger_sdk::host::counter_add(label, 1);
        if matches!(label, "scanner" | "outside_allowed" | "invalid") {
            strowger_sdk::info!(
                "{} {} from {}: {label}",
                request.method,
                request.aor,
                request.source.ip
            );
        }
        Ok(d)
    }
}
