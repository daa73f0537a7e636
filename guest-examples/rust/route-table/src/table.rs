//! Route table configuration and matching (pure logic, natively testable).

use serde::Deserialize;
use strowger_sdk::freepbx::DialPattern;
use strowger_sdk::pattern::Pattern;
use strowger_sdk::regex_sub::{Substitution, compile};
use strowger_sdk::route::*;
use strowger_sdk::template::Template;
use strowger_sdk::time::TimeWindow;
use strowger_sdk::{Router, config};

/// The plugin: routes sorted by priority.
pub struct RouteTable {
    routes: Vec<Route>,
    no_route: Reject,
    retry_on: Vec<Cause>,
    preferred_cause: PreferredCause,
}

impl Default for RouteTable {
    fn default() -> Self {
        RouteTable {
            routes: Vec::new(),
            no_route: Reject::new(404, "No route"),
            retry_on: Vec::new(),
            preferred_cause: PreferredCause::First,
        }
    }
}

// ---------------------------------------------------------------- config

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    #[serde(default)]
    routes: Vec<RawRoute>,
    #[serde(default)]
    no_route: Option<RawReject>,
    #[serde(default)]
    retry_on: Vec<String>,
    #[serde(default)]
    preferred_cause: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReject {
    code: u16,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    #[serde(default)]
    name: Option<String>,
    #[serde(default = "default_priority")]
    priority: u32,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    source: Vec<String>,
    #[serde(default)]
    b: Vec<RawFilter>,
    #[serde(default)]
    a: Vec<RawFilter>,
    #[serde(default)]
    time: Vec<TimeWindow>,
    #[serde(default)]
    carriers: Vec<String>,
    #[serde(default)]
    ported: Option<bool>,
    destination: RawDestination,
    #[serde(default)]
    b_rewrite: Option<RawRewrite>,
    #[serde(default)]
    a_rewrite: Option<RawRewrite>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    headers: RawHeaders,
    #[serde(default)]
    ring_timeout_s: Option<u32>,
    #[serde(default)]
    media: Option<String>,
    #[serde(default)]
    codecs: Option<Vec<String>>,
    #[serde(default)]
    retry_on: Vec<String>,
}

fn default_priority() -> u32 {
    100
}
fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawFilter {
    Text(String),
    Typed(TypedFilter),
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum TypedFilter {
    Asterisk(String),
    Freepbx(String),
    Regex(String),
    Sub(String),
    Exact(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum RawDestination {
    Trunk(String),
    TrunkGroup(String),
    User(String),
    Uri(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRewrite {
    Template(String),
    Steps {
        #[serde(default)]
        template: Option<String>,
        #[serde(default)]
        strip: usize,
        #[serde(default)]
        prefix: String,
        #[serde(default)]
        sub: Option<String>,
    },
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHeaders {
    #[serde(default)]
    add: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    remove: Vec<String>,
}

// ---------------------------------------------------------------- compiled

enum Source {
    Any,
    Registered,
    User(String),
    Trunk(String),
    Unknown,
}

enum Filter {
    Asterisk(Pattern),
    FreePbx(DialPattern),
    Regex(strowger_sdk::regex_sub::Substitution),
    Sub(Substitution),
}

enum Dest {
    Trunk(Template),
    TrunkGroup(Template),
    User(Template),
    Uri(Template),
}

struct Rewrite {
    template: Option<Template>,
    strip: usize,
    prefix: String,
    sub: Option<Substitution>,
}

struct Route {
    name: String,
    priority: u32,
    sources: Vec<Source>,
    b: Vec<Filter>,
    a: Vec<Filter>,
    time: Vec<TimeWindow>,
    carriers: Vec<String>,
    ported: Option<bool>,
    destination: Dest,
    b_rewrite: Option<Rewrite>,
    a_rewrite: Option<Rewrite>,
    display_name: Option<Template>,
    add_headers: Vec<(String, Template)>,
    remove_headers: Vec<String>,
    ring_timeout_ms: Option<u32>,
    media: Option<MediaMode>,
    codecs: Option<Vec<String>>,
    retry_on: Vec<Cause>,
}

const VARS: [&str; 9] = [
    "EXTEN", "B", "A", "CALLERID", "ROUTE", "TRUNK", "CARRIER", "RN", "USER",
];

fn template(text: &str, what: &str) -> Result<Template, String> {
    let t = Template::parse(text).map_err(|e| format!("{what}: {e}"))?;
    if let Some(v) = t.vars().find(|v| !VARS.contains(v)) {
        return Err(format!(
            "{what}: unknown variable `{v}` (known: {})",
            VARS.join(", ")
        ));
    }
    Ok(t)
}

fn filter(raw: RawFilter) -> Result<Filter, String> {
    let typed = match raw {
        RawFilter::Typed(t) => t,
        RawFilter::Text(s) if s.starts_with('_') => TypedFilter::Asterisk(s),
        RawFilter::Text(s) if s.starts_with('/') => TypedFilter::Sub(s),
        RawFilter::Text(s) if s.contains('|') || (s.contains('+') && !s.starts_with('+')) => {
            TypedFilter::Freepbx(s)
        }
        RawFilter::Text(s) => TypedFilter::Exact(s),
    };
    Ok(match typed {
        TypedFilter::Asterisk(s) => {
            let s = if s.starts_with('_') {
                s
            } else {
                format!("_{s}")
            };
            Filter::Asterisk(Pattern::parse(&s)?)
        }
        TypedFilter::Exact(s) => Filter::Asterisk(Pattern::parse(&s)?),
        TypedFilter::Freepbx(s) => Filter::FreePbx(DialPattern::parse(&s)?),
        TypedFilter::Regex(s) => {
            compile(&s)?;
            Filter::Regex(Substitution::new(&s, "$0")?)
        }
        TypedFilter::Sub(s) => Filter::Sub(Substitution::parse(&s)?),
    })
}

/// Parse a retry cause: `503`, `5xx`, `no-answer`, `unavailable`, `limit-reached`.
pub fn cause(s: &str) -> Result<Cause, String> {
    let t = s.trim().to_ascii_lowercase();
    Ok(match t.as_str() {
        "no-answer" | "noanswer" | "no_answer" | "timeout" => Cause::NoAnswer,
        "unavailable" => Cause::Unavailable,
        "limit-reached" | "limit_reached" | "limit" => Cause::LimitReached,
        _ if t.len() == 3 && t.ends_with("xx") && matches!(&t[..1], "4" | "5" | "6") => {
            Cause::StatusClass(t.as_bytes()[0] - b'0')
        }
        _ => match t.parse::<u16>() {
            Ok(c) if (300..=699).contains(&c) => Cause::Status(c),
            _ => {
                return Err(format!(
                    "unknown retry cause `{s}` (use 503, 5xx, no-answer, unavailable or limit-reached)"
                ));
            }
        },
    })
}

fn rewrite(raw: RawRewrite, what: &str) -> Result<Rewrite, String> {
    Ok(match raw {
        RawRewrite::Template(t) => Rewrite {
            template: Some(template(&t, what)?),
            strip: 0,
            prefix: String::new(),
            sub: None,
        },
        RawRewrite::Steps {
            template: t,
            strip,
            prefix,
            sub,
        } => Rewrite {
            template: t.map(|t| template(&t, what)).transpose()?,
            strip,
            prefix,
            sub: sub
                .map(|s| Substitution::parse(&s).map_err(|e| format!("{what}: {e}")))
                .transpose()?,
        },
    })
}

impl Route {
    fn compile(raw: RawRoute, index: usize) -> Result<Route, String> {
        let name = raw.name.unwrap_or_else(|| format!("route-{}", index + 1));
        let ctx = |e: String| format!("route `{name}`: {e}");
        let sources = raw
            .source
            .iter()
            .map(|s| {
                Ok(match s.split_once(':') {
                    _ if s == "any" => Source::Any,
                    _ if s == "registered" => Source::Registered,
                    _ if s == "unknown" => Source::Unknown,
                    Some(("trunk", t)) if !t.is_empty() => Source::Trunk(t.to_string()),
                    Some(("user", u)) if !u.is_empty() => Source::User(u.to_string()),
                    _ => {
                        return Err(format!(
                            "unknown source `{s}` (use any, registered, unknown, trunk:<name>, user:<name>)"
                        ));
                    }
                })
            })
            .collect::<Result<Vec<_>, String>>()
            .map_err(ctx)?;
        let b = raw
            .b
            .into_iter()
            .map(filter)
            .collect::<Result<_, _>>()
            .map_err(ctx)?;
        let a = raw
            .a
            .into_iter()
            .map(filter)
            .collect::<Result<_, _>>()
            .map_err(ctx)?;
        let destination = match raw.destination {
            RawDestination::Trunk(t) => Dest::Trunk(template(&t, "destination").map_err(ctx)?),
            RawDestination::TrunkGroup(t) => {
                Dest::TrunkGroup(template(&t, "destination").map_err(ctx)?)
            }
            RawDestination::User(t) => Dest::User(template(&t, "destination").map_err(ctx)?),
            RawDestination::Uri(t) => Dest::Uri(template(&t, "destination").map_err(ctx)?),
        };
        let media = match raw.media.as_deref() {
            None => None,
            Some("relay") => Some(MediaMode::Relay),
            Some("bypass") => Some(MediaMode::Bypass),
            Some(m) => return Err(ctx(format!("media `{m}` must be relay or bypass"))),
        };
        let add_headers = raw
            .headers
            .add
            .into_iter()
            .map(|(n, v)| Ok((n, template(&v, "header")?)))
            .collect::<Result<_, String>>()
            .map_err(ctx)?;
        let retry_on = raw
            .retry_on
            .iter()
            .map(|c| cause(c))
            .collect::<Result<_, _>>()
            .map_err(ctx)?;
        if raw.ring_timeout_s == Some(0) {
            return Err(ctx("ring_timeout_s must be at least 1".into()));
        }
        Ok(Route {
            priority: raw.priority,
            sources,
            b,
            a,
            time: raw.time,
            carriers: raw.carriers,
            ported: raw.ported,
            destination,
            b_rewrite: raw
                .b_rewrite
                .map(|r| rewrite(r, "b_rewrite"))
                .transpose()
                .map_err(ctx)?,
            a_rewrite: raw
                .a_rewrite
                .map(|r| rewrite(r, "a_rewrite"))
                .transpose()
                .map_err(ctx)?,
            display_name: raw
                .display_name
                .map(|t| template(&t, "display_name"))
                .transpose()
                .map_err(ctx)?,
            add_headers,
            remove_headers: raw.headers.remove,
            ring_timeout_ms: raw.ring_timeout_s.map(|s| s.saturating_mul(1000)),
            media,
            codecs: raw.codecs,
            retry_on,
            name,
        })
    }
}

// ---------------------------------------------------------------- matching

/// Variables visible to templates for one call and route.
struct Vars<'a> {
    call: &'a Call,
    route: &'a str,
}

impl<'a> Vars<'a> {
    fn get(&self, name: &str) -> Option<&'a str> {
        let c = self.call;
        Some(match name {
            "EXTEN" | "B" => &c.b_number,
            "A" | "CALLERID" => &c.a_number,
            "ROUTE" => self.route,
            "TRUNK" => c.ingress.trunk()?,
            "USER" => c.ingress.user()?,
            "CARRIER" => &c.portability.as_ref()?.carrier,
            "RN" => &c.portability.as_ref()?.routing_number,
            _ => return None,
        })
    }
}

fn aor_user(aor: &str) -> &str {
    let s = aor.split_once(':').map_or(aor, |(_, r)| r);
    s.split(['@', ';']).next().unwrap_or(s)
}

impl Source {
    fn matches(&self, ingress: &Ingress) -> bool {
        match (self, ingress) {
            (Source::Any, _) => true,
            (Source::Registered, Ingress::User(_)) => true,
            (Source::User(u), Ingress::User(aor)) => u == aor || aor_user(aor) == u,
            (Source::Trunk(t), Ingress::Trunk(n)) => t == n,
            (Source::Unknown, Ingress::Unknown) => true,
            _ => false,
        }
    }
}

impl Filter {
    /// `None` = no match; `Some(Some(n))` = match with rewritten number.
    fn apply(&self, number: &str, a_number: &str) -> Option<Option<String>> {
        match self {
            Filter::Asterisk(p) => p.matches(number).then_some(None),
            Filter::Regex(r) => r.is_match(number).then_some(None),
            Filter::FreePbx(p) => p.apply(number, a_number).map(Some),
            Filter::Sub(s) => s.apply(number).map(Some),
        }
    }
}

impl Rewrite {
    fn apply(&self, number: &str, vars: &Vars<'_>) -> String {
        let mut n = match &self.template {
            Some(t) => t.expand(|v| vars.get(v)),
            None => number.to_string(),
        };
        if self.strip > 0 {
            n = n.chars().skip(self.strip).collect();
        }
        if !self.prefix.is_empty() {
            n.insert_str(0, &self.prefix);
        }
        if let Some(s) = &self.sub
            && let Some(r) = s.apply(&n)
        {
            n = r;
        }
        n
    }
}

impl Route {
    /// The attempt this route makes for `call`, or `None` if it does not match.
    fn attempt(&self, call: &Call) -> Option<Attempt> {
        if !self.sources.is_empty() && !self.sources.iter().any(|s| s.matches(&call.ingress)) {
            return None;
        }
        if !self.time.is_empty() && !self.time.iter().any(|w| w.matches(&call.time)) {
            return None;
        }
        if !self.carriers.is_empty() || self.ported.is_some() {
            let p = call.portability.as_ref()?;
            if !self.carriers.is_empty() && !self.carriers.contains(&p.carrier) {
                return None;
            }
            if self.ported.is_some_and(|want| want != p.ported) {
                return None;
            }
        }
        let mut filter_b = None;
        if !self.b.is_empty() {
            filter_b = self
                .b
                .iter()
                .find_map(|f| f.apply(&call.b_number, &call.a_number))?;
        }
        if !self.a.is_empty() {
            self.a
                .iter()
                .find_map(|f| f.apply(&call.a_number, &call.a_number))?;
        }
        let vars = Vars {
            call,
            route: &self.name,
        };
        let b_number = match &self.b_rewrite {
            Some(r) => Some(r.apply(&call.b_number, &vars)),
            None => filter_b,
        };
        let a_number = self
            .a_rewrite
            .as_ref()
            .map(|r| r.apply(&call.a_number, &vars));
        let expand = |t: &Template| t.expand(|v| vars.get(v));
        let destination = match &self.destination {
            Dest::Trunk(t) => Destination::Trunk(expand(t)),
            Dest::TrunkGroup(t) => Destination::TrunkGroup(expand(t)),
            Dest::User(t) => Destination::User(expand(t)),
            Dest::Uri(t) => Destination::Uri(expand(t)),
        };
        Some(Attempt {
            destination,
            a_number,
            b_number: b_number.filter(|b| *b != call.b_number),
            display_name: self.display_name.as_ref().map(expand),
            add_headers: self
                .add_headers
                .iter()
                .map(|(n, t)| strowger_sdk::Header::new(n.clone(), expand(t)))
                .collect(),
            remove_headers: self.remove_headers.clone(),
            ring_timeout_ms: self.ring_timeout_ms,
            media: self.media,
            codecs: self.codecs.clone(),
        })
    }
}

impl RouteTable {
    /// Build from the JSON configuration.
    pub fn from_config(json: &str) -> Result<Self, String> {
        let raw: RawTable = config::parse(json)?;
        let mut routes = raw
            .routes
            .into_iter()
            .enumerate()
            .filter(|(_, r)| r.enabled)
            .map(|(i, r)| Route::compile(r, i))
            .collect::<Result<Vec<_>, _>>()?;
        // stable: equal priority keeps file order
        routes.sort_by_key(|r| r.priority);
        let no_route = match raw.no_route {
            Some(r) if (400..=699).contains(&r.code) => {
                Reject::new(r.code, r.reason.unwrap_or_else(|| "No route".into()))
            }
            Some(r) => return Err(format!("no_route code {} must be 400..=699", r.code)),
            None => Reject::new(404, "No route"),
        };
        let preferred_cause = match raw.preferred_cause.as_deref() {
            None | Some("first") => PreferredCause::First,
            Some("last") => PreferredCause::Last,
            Some(o) => return Err(format!("preferred_cause `{o}` must be first or last")),
        };
        let retry_on = raw
            .retry_on
            .iter()
            .map(|c| cause(c))
            .collect::<Result<_, _>>()?;
        Ok(RouteTable {
            routes,
            no_route,
            retry_on,
            preferred_cause,
        })
    }

    /// The decision for `call`.
    pub fn decide(&self, call: &Call) -> RouteDecision {
        let mut attempts = Vec::new();
        let mut retry_on: Vec<Cause> = self.retry_on.clone();
        let mut last_causes: &[Cause] = &[];
        for route in &self.routes {
            if let Some(a) = route.attempt(call) {
                for c in last_causes {
                    if !retry_on.contains(c) {
                        retry_on.push(*c);
                    }
                }
                last_causes = &route.retry_on;
                attempts.push(a);
            }
        }
        if attempts.is_empty() {
            return RouteDecision::Reject(self.no_route.clone());
        }
        RouteDecision::Forward(Forward {
            attempts,
            retry_on,
            preferred_cause: self.preferred_cause,
        })
    }

    /// Names of the routes that match `call`, in attempt order (for logs and tests).
    pub fn matching_routes(&self, call: &Call) -> Vec<&str> {
        self.routes
            .iter()
            .filter(|r| r.attempt(call).is_some())
            .map(|r| r.name.as_str())
            .collect()
    }
}

impl Router for RouteTable {
    fn init(&mut self, config: &str) -> Result<(), String> {
        *self = RouteTable::from_config(config)?;
        Ok(())
    }

    fn route(&self, call: Call) -> Result<RouteDecision, String> {
        let d = self.decide(&call);
        match &d {
            RouteDecision::Forward(f) => {
                strowger_sdk::host::counter_add("routed", 1);
                strowger_sdk::debug!("{} -> {} attempt(s)", call.b_number, f.attempts.len());
            }
            _ => strowger_sdk::host::counter_add("no_route", 1),
        }
        Ok(d)
    }
}
