//! Configuration and rewrite logic.

use std::collections::HashMap;

use serde::Deserialize;
use strowger_sdk::e164::{Format, Plan};
use strowger_sdk::rewrite::*;
use strowger_sdk::{Rewriter, config};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    trunks: HashMap<String, RawProfile>,
    #[serde(default)]
    users: Option<RawProfile>,
    #[serde(default)]
    default: Option<RawProfile>,
    #[serde(default)]
    internal: Format,
}

/// A profile: the `Plan` keys plus the keys below (split by hand, since
/// serde's `flatten` would silently accept unknown keys).
struct RawProfile {
    plan: Plan,
    egress_format: Format,
    ingress: bool,
    egress: bool,
    numbers: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfileOwn {
    #[serde(default)]
    egress_format: Format,
    #[serde(default = "yes")]
    ingress: bool,
    #[serde(default = "yes")]
    egress: bool,
    #[serde(default = "both")]
    numbers: Vec<String>,
}

impl<'de> Deserialize<'de> for RawProfile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        use strowger_sdk::config::serde_json::{Map, Value, from_value};
        let mut all = Map::<String, Value>::deserialize(d)?;
        let mut own = Map::new();
        for k in ["egress_format", "ingress", "egress", "numbers"] {
            if let Some(v) = all.remove(k) {
                own.insert(k.to_string(), v);
            }
        }
        let own: RawProfileOwn = from_value(Value::Object(own)).map_err(D::Error::custom)?;
        let plan: Plan = from_value(Value::Object(all)).map_err(D::Error::custom)?;
        Ok(RawProfile {
            plan,
            egress_format: own.egress_format,
            ingress: own.ingress,
            egress: own.egress,
            numbers: own.numbers,
        })
    }
}

fn yes() -> bool {
    true
}
fn both() -> Vec<String> {
    vec!["a".into(), "b".into()]
}

struct Profile {
    plan: Plan,
    egress_format: Format,
    ingress: bool,
    egress: bool,
    a: bool,
    b: bool,
}

/// The plugin.
#[derive(Default)]
pub struct Normalizer {
    trunks: HashMap<String, Profile>,
    users: Option<Profile>,
    default: Option<Profile>,
    internal: Format,
}

fn profile(raw: RawProfile, what: &str) -> Result<Profile, String> {
    raw.plan.validate().map_err(|e| format!("{what}: {e}"))?;
    let mut p = Profile {
        plan: raw.plan,
        egress_format: raw.egress_format,
        ingress: raw.ingress,
        egress: raw.egress,
        a: false,
        b: false,
    };
    for n in &raw.numbers {
        match n.as_str() {
            "a" => p.a = true,
            "b" => p.b = true,
            o => return Err(format!("{what}: numbers entry `{o}` must be a or b")),
        }
    }
    Ok(p)
}

impl Normalizer {
    /// Build from JSON configuration.
    pub fn from_config(json: &str) -> Result<Self, String> {
        let raw: Raw = config::parse(json)?;
        if !matches!(raw.internal, Format::E164 | Format::E164Plus) {
            return Err("internal must be e164 or e164-plus".into());
        }
        Ok(Normalizer {
            trunks: raw
                .trunks
                .into_iter()
                .map(|(name, p)| {
                    let what = format!("trunk `{name}`");
                    Ok((name, profile(p, &what)?))
                })
                .collect::<Result<_, String>>()?,
            users: raw.users.map(|p| profile(p, "users")).transpose()?,
            default: raw.default.map(|p| profile(p, "default")).transpose()?,
            internal: raw.internal,
        })
    }

    fn profile_for(&self, trunk: Option<&str>, ingress: &Ingress) -> Option<&Profile> {
        match trunk {
            Some(t) => self.trunks.get(t).or(self.default.as_ref()),
            None if matches!(ingress, Ingress::User(_)) => {
                self.users.as_ref().or(self.default.as_ref())
            }
            None => self.default.as_ref(),
        }
    }

    /// Rewrite one number.
    fn one(&self, p: &Profile, direction: Direction, number: &str) -> String {
        match direction {
            Direction::Ingress => match p.plan.to_e164(number) {
                Some(e) => p.plan.format(&e, self.internal),
                None => number.to_string(),
            },
            Direction::Egress => {
                // internal numbers are E.164: `+` and digits, or (internal
                // format `e164`) 11 to 15 digits not starting with 0;
                // anything else (extensions, short codes) passes through
                let plain = self.internal == Format::E164
                    && (11..=15).contains(&number.len())
                    && !number.starts_with('0')
                    && number.bytes().all(|b| b.is_ascii_digit());
                let e164 = if let Some(d) = number.strip_prefix('+') {
                    p.plan.to_e164(&format!("+{d}"))
                } else if plain {
                    p.plan.to_e164(&format!("+{number}"))
                } else {
                    None
                };
                match e164 {
                    Some(e) => p.plan.format(&e, p.egress_format),
                    None => number.to_string(),
                }
            }
        }
    }

    /// The rewritten numbers for `req`.
    pub fn apply(&self, req: &RewriteRequest) -> Numbers {
        let mut n = req.numbers.clone();
        let Some(p) = self.profile_for(req.trunk.as_deref(), &req.ingress) else {
            return n;
        };
        let on = match req.direction {
            Direction::Ingress => p.ingress,
            Direction::Egress => p.egress,
        };
        if !on {
            return n;
        }
        if p.a {
            n.a_number = self.one(p, req.direction, &n.a_number);
        }
        if p.b {
            n.b_number = self.one(p, req.direction, &n.b_number);
        }
        n
    }
}

impl Rewriter for Normalizer {
    fn init(&mut self, config: &str) -> Result<(), String> {
        *self = Normalizer::from_config(config)?;
        Ok(())
    }

    fn rewrite(&self, request: RewriteRequest) -> Result<Numbers, String> {
        let out = self.apply(&request);
        if out != request.numbers {
            strowger_sdk::host::counter_add("rewritten", 1);
        }
        Ok(out)
    }
}
