//! Asterisk import: chan_sip `sip.conf` peers and register strings become
//! Strowger `[[trunks]]`; simple `extensions.conf` `Dial` lines become a
//! `route-table` plugin configuration. Pure functions over text; every line
//! that is not translated (or is translated with a caveat) is recorded in a
//! [`Report`] with its file and line.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::Serialize;
use strowger_sdk::pattern::Pattern;
use strowger_sdk::template::Template;

// ------------------------------------------------------------------ report

/// How serious a report line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Translated, or nothing to do, but worth knowing.
    Info,
    /// The line (or part of it) was not translated.
    Untranslated,
}

/// One report line: `file:line: level: text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub file: String,
    pub line: usize,
    pub level: Level,
    pub text: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Info => "info",
            Level::Untranslated => "not translated",
        };
        write!(f, "{}:{}: {level}: {}", self.file, self.line, self.text)
    }
}

/// Everything the importer has to say about its input.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub notes: Vec<Note>,
}

impl Report {
    fn push(&mut self, file: &str, line: usize, level: Level, text: impl Into<String>) {
        self.notes.push(Note {
            file: file.to_string(),
            line,
            level,
            text: text.into(),
        });
    }
    fn info(&mut self, file: &str, line: usize, text: impl Into<String>) {
        self.push(file, line, Level::Info, text);
    }
    fn skip(&mut self, file: &str, line: usize, text: impl Into<String>) {
        self.push(file, line, Level::Untranslated, text);
    }
    /// Number of notes at `level`.
    pub fn count(&self, level: Level) -> usize {
        self.notes.iter().filter(|n| n.level == level).count()
    }
}

// ------------------------------------------------------------------ output schema

/// One `[[trunks]]` entry (the schema of `host/switch/src/config.rs` after
/// the trunks issue). `None` fields are left out so the switch defaults apply.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Trunk {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub transport: String,
    pub inbound: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore_source_port: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fromuser: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fromdomain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub register: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub did: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub register_expires: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub register_retry_s: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub register_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qualify_s: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codecs: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtmf: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_calls_in: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_calls_out: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_calls: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ruri_params: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_pai: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b_from: Option<String>,
}

#[derive(Serialize)]
struct TrunksFile<'a> {
    trunks: &'a [Trunk],
}

/// `trunks.toml`: the `[[trunks]]` array, serialized by the `toml` crate.
pub fn trunks_toml(trunks: &[Trunk]) -> Result<String, String> {
    // `trunks = []` would clash with `[[trunks]]` already in strowger.toml
    let body = if trunks.is_empty() {
        "# (no trunks imported)\n".to_string()
    } else {
        toml::to_string(&TrunksFile { trunks }).map_err(|e| e.to_string())?
    };
    Ok(format!(
        "# Generated by `strowger import asterisk`: paste into strowger.toml.\n\
         # Contains secrets: keep this file private.\n\n{body}"
    ))
}

/// A route-table B (or A) filter, always typed so that a literal extension
/// is never read as a FreePBX pattern.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    Asterisk(String),
    Exact(String),
}

/// A route-table destination.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Destination {
    Trunk(String),
    User(String),
}

/// One route of the route-table configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    pub name: String,
    pub priority: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source: Vec<String>,
    pub b: Vec<Filter>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub a: Vec<Filter>,
    pub destination: Destination,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b_rewrite: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub a_rewrite: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring_timeout_s: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retry_on: Vec<String>,
}

#[derive(Serialize)]
struct NoRoute {
    code: u16,
    reason: &'static str,
}

#[derive(Serialize)]
struct RoutesFile<'a> {
    no_route: NoRoute,
    routes: &'a [Route],
}

/// `routes.json`: the route-table plugin configuration.
pub fn routes_json(routes: &[Route]) -> String {
    let file = RoutesFile {
        // Asterisk answers a number with no extension with 404
        no_route: NoRoute {
            code: 404,
            reason: "No route",
        },
        routes,
    };
    serde_json::to_string_pretty(&file).expect("plain data serializes") + "\n"
}

/// The result of an import.
#[derive(Debug, Default)]
pub struct Import {
    pub trunks: Vec<Trunk>,
    /// `None` when no extensions.conf was given.
    pub routes: Option<Vec<Route>>,
    pub report: Report,
}

/// Translate `sip.conf` (and optionally `extensions.conf`), each given as
/// `(file name for the report, text)`.
pub fn import(sip: (&str, &str), extensions: Option<(&str, &str)>) -> Import {
    let mut report = Report::default();
    let conf = parse_sip_conf(sip.0, sip.1, &mut report);
    let (trunks, contexts) = build_trunks(sip.0, &conf, &mut report);
    let routes = extensions.map(|(f, text)| {
        let dialplan = parse_extensions(f, text, &mut report);
        build_routes(f, &dialplan, &trunks, &contexts, &mut report)
    });
    // file order (sip.conf first), then line order
    report.notes.sort_by_key(|n| (n.file != sip.0, n.line));
    Import {
        trunks,
        routes,
        report,
    }
}

// ------------------------------------------------------------------ conf lexing

/// One meaningful line of an Asterisk config file.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    /// `[name]`, `[name](tpl1,tpl2)`, `[name](!)`, `[name](+)`.
    Section {
        name: String,
        templates: Vec<String>,
        is_template: bool,
        append: bool,
    },
    /// `#include`, `#exec`, `#tryinclude`.
    Directive(String),
    /// `key = value` / `key => value`; `comment` is what followed `;`.
    Kv {
        key: String,
        value: String,
        comment: String,
    },
    Junk(String),
}

/// Lines without comments (`;` to end of line, `;-- ... --;` blocks; `\;`
/// is a literal `;`), trimmed, numbered from 1, empty lines dropped.
fn lex(text: &str) -> Vec<(usize, Item)> {
    let mut out = Vec::new();
    let mut in_block = false;
    for (i, raw) in text.lines().enumerate() {
        let mut content = String::new();
        let mut comment = String::new();
        let mut rest = raw;
        loop {
            if in_block {
                match rest.find("--;") {
                    Some(e) => {
                        rest = &rest[e + 3..];
                        in_block = false;
                    }
                    None => break,
                }
            }
            let mut chars = rest.char_indices().peekable();
            let mut stop = None;
            while let Some((j, c)) = chars.next() {
                if c == '\\' && rest[j + 1..].starts_with(';') {
                    content.push(';');
                    chars.next();
                } else if c == ';' {
                    stop = Some(j);
                    break;
                } else {
                    content.push(c);
                }
            }
            match stop {
                None => break,
                Some(j) if rest[j..].starts_with(";--") => {
                    in_block = true;
                    rest = &rest[j + 3..];
                }
                Some(j) => {
                    comment = rest[j + 1..].trim().to_string();
                    break;
                }
            }
        }
        let line = content.trim();
        if line.is_empty() {
            continue;
        }
        out.push((i + 1, item(line, comment)));
    }
    out
}

fn item(line: &str, comment: String) -> Item {
    if let Some(body) = line.strip_prefix('[') {
        let Some(end) = body.find(']') else {
            return Item::Junk(line.to_string());
        };
        let name = body[..end].trim().to_string();
        let mut templates = Vec::new();
        let (mut is_template, mut append) = (false, false);
        let after = body[end + 1..].trim();
        if let Some(opts) = after.strip_prefix('(').and_then(|a| a.strip_suffix(')')) {
            for o in opts.split(',').map(str::trim).filter(|o| !o.is_empty()) {
                match o {
                    "!" => is_template = true,
                    "+" => append = true,
                    t => templates.push(t.to_string()),
                }
            }
        } else if !after.is_empty() {
            return Item::Junk(line.to_string());
        }
        return Item::Section {
            name,
            templates,
            is_template,
            append,
        };
    }
    if line.starts_with('#') {
        return Item::Directive(line.to_string());
    }
    match line.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Item::Kv {
            key: k.trim().to_string(),
            value: v.strip_prefix('>').unwrap_or(v).trim().to_string(),
            comment,
        },
        _ => Item::Junk(line.to_string()),
    }
}

// ------------------------------------------------------------------ sip.conf

#[derive(Debug, Clone)]
struct Kv {
    key: String,
    value: String,
    comment: String,
    line: usize,
}

#[derive(Debug, Clone)]
struct Section {
    name: String,
    line: usize,
    templates: Vec<String>,
    is_template: bool,
    kvs: Vec<Kv>,
}

#[derive(Debug, Default)]
struct SipConf {
    general: Vec<Kv>,
    sections: Vec<Section>,
}

fn parse_sip_conf(file: &str, text: &str, report: &mut Report) -> SipConf {
    let mut conf = SipConf::default();
    // index into conf.sections of the section being filled; None = [general]
    // or an ignored section
    enum Cur {
        None,
        General,
        Ignored,
        Section(usize),
    }
    let mut cur = Cur::None;
    for (line, it) in lex(text) {
        match it {
            Item::Section {
                name,
                templates,
                is_template,
                append,
            } => {
                if name.eq_ignore_ascii_case("general") {
                    cur = Cur::General;
                } else if name.eq_ignore_ascii_case("authentication") {
                    report.skip(
                        file,
                        line,
                        "[authentication] (realm credentials) has no equivalent; put credentials on each trunk",
                    );
                    cur = Cur::Ignored;
                } else if append {
                    match conf.sections.iter().position(|s| s.name == name) {
                        Some(i) => cur = Cur::Section(i),
                        None => {
                            report.skip(
                                file,
                                line,
                                format!(
                                    "[{name}](+) adds to a section that was not defined before"
                                ),
                            );
                            cur = Cur::Ignored;
                        }
                    }
                } else if conf.sections.iter().any(|s| s.name == name) {
                    report.skip(
                        file,
                        line,
                        format!("duplicate section [{name}]: only the first is imported"),
                    );
                    cur = Cur::Ignored;
                } else {
                    conf.sections.push(Section {
                        name,
                        line,
                        templates,
                        is_template,
                        kvs: Vec::new(),
                    });
                    cur = Cur::Section(conf.sections.len() - 1);
                }
            }
            Item::Directive(d) => report.skip(
                file,
                line,
                format!("`{d}`: included files are not followed; import them separately"),
            ),
            Item::Junk(j) => report.skip(file, line, format!("cannot parse `{j}`")),
            Item::Kv {
                key,
                value,
                comment,
            } => {
                let kv = Kv {
                    key: key.to_ascii_lowercase(),
                    value,
                    comment,
                    line,
                };
                match cur {
                    Cur::None => report.skip(file, line, "setting outside any [section]"),
                    Cur::General => conf.general.push(kv),
                    Cur::Ignored => {}
                    Cur::Section(i) => conf.sections[i].kvs.push(kv),
                }
            }
        }
    }
    conf
}

/// The settings of `section` with its templates' settings first (recursively).
fn resolve(
    file: &str,
    conf: &SipConf,
    section: &Section,
    report: &mut Report,
    depth: usize,
) -> Vec<Kv> {
    let mut out = Vec::new();
    for t in &section.templates {
        match conf.sections.iter().find(|s| &s.name == t) {
            Some(tpl) if depth < 8 => {
                if depth == 0 {
                    report.info(
                        file,
                        section.line,
                        format!("[{}] takes the settings of template [{t}]", section.name),
                    );
                }
                out.extend(resolve(file, conf, tpl, report, depth + 1))
            }
            Some(_) => report.skip(file, section.line, "templates nested too deeply"),
            None => report.skip(
                file,
                section.line,
                format!(
                    "[{}] uses template `{t}`, which is not defined",
                    section.name
                ),
            ),
        }
    }
    out.extend(section.kvs.iter().cloned());
    out
}

/// `register => [transport://][peer?]user[@domain][:secret[:authuser]]@host[:port][/extension][~expiry]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Register {
    pub transport: Option<String>,
    pub peer: Option<String>,
    pub user: String,
    pub domain: Option<String>,
    pub secret: Option<String>,
    pub authuser: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub extension: Option<String>,
    pub expiry: Option<u32>,
}

/// Parse an Asterisk register string (the value after `register =>`).
pub fn parse_register(s: &str) -> Result<Register, String> {
    let mut r = Register::default();
    let mut rest = s.trim();
    if let Some((t, after)) = rest.split_once("://") {
        let t = t.to_ascii_lowercase();
        if !matches!(t.as_str(), "udp" | "tcp" | "tls") {
            return Err(format!("transport `{t}` is not udp, tcp or tls"));
        }
        r.transport = Some(t);
        rest = after;
    }
    if let Some((p, after)) = rest.split_once('?')
        && !p.is_empty()
        && !p.contains(['@', ':', '/'])
    {
        r.peer = Some(p.to_string());
        rest = after;
    }
    let (creds, hostpart) = rest
        .rsplit_once('@')
        .ok_or_else(|| "missing `@host`".to_string())?;
    let mut hostpart = hostpart;
    if let Some((h, exp)) = hostpart.rsplit_once('~') {
        r.expiry = Some(
            exp.parse()
                .map_err(|_| format!("bad expiry `~{exp}` (seconds)"))?,
        );
        hostpart = h;
    }
    if let Some((h, ext)) = hostpart.split_once('/') {
        if !ext.is_empty() {
            r.extension = Some(ext.to_string());
        }
        hostpart = h;
    }
    let (host, port) = split_host_port(hostpart)?;
    if host.is_empty() {
        return Err("empty host".into());
    }
    r.host = host;
    r.port = port;
    let mut parts = creds.split(':');
    let user = parts.next().unwrap_or("");
    match user.split_once('@') {
        Some((u, d)) => {
            r.user = u.to_string();
            r.domain = Some(d.to_string()).filter(|d| !d.is_empty());
        }
        None => r.user = user.to_string(),
    }
    if r.user.is_empty() {
        return Err("empty user".into());
    }
    r.secret = parts.next().map(str::to_string);
    r.authuser = parts.next().map(str::to_string).filter(|a| !a.is_empty());
    if parts.next().is_some() {
        return Err("too many `:` before `@host` (user:secret:authuser)".into());
    }
    Ok(r)
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_host_port(s: &str) -> Result<(String, Option<u16>), String> {
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("bad port `{p}`"))
    };
    if let Some(v6) = s.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("unterminated `[` in `{s}`"))?;
        let p = match after.strip_prefix(':') {
            Some(p) => Some(port(p)?),
            None if after.is_empty() => None,
            None => return Err(format!("bad host `{s}`")),
        };
        return Ok((h.to_string(), p));
    }
    if s.matches(':').count() > 1 {
        return Ok((s.to_string(), None)); // bare IPv6
    }
    match s.split_once(':') {
        Some((h, p)) => Ok((h.to_string(), Some(port(p)?))),
        None => Ok((s.to_string(), None)),
    }
}

fn yes(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "yes" | "true" | "y" | "t" | "1" | "on"
    )
}

fn no(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "no" | "false" | "n" | "f" | "0" | "off"
    )
}

/// Asterisk codec name to SDP encoding name.
pub fn codec(name: &str) -> Option<&'static str> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "ulaw" | "mulaw" | "pcmu" | "g711u" => "PCMU",
        "alaw" | "pcma" | "g711a" => "PCMA",
        "g729" | "g729a" => "G729",
        "gsm" => "GSM",
        "g722" => "G722",
        "g723" | "g723.1" => "G723",
        "g726" => "G726-32",
        "ilbc" => "iLBC",
        "speex" => "speex",
        "opus" => "opus",
        _ => return None,
    })
}

fn codec_list(s: &str) -> impl Iterator<Item = &str> {
    s.split([',', '&', '|', ';'])
        .map(str::trim)
        .filter(|c| !c.is_empty())
}

/// `allow=ulaw;alaw`: Asterisk reads `;alaw` as a comment, but the
/// reference configurations write codec lists that way; accept a comment
/// made only of codec names.
fn codec_comment(comment: &str) -> bool {
    !comment.is_empty()
        && !comment.contains(char::is_whitespace)
        && codec_list(comment).all(|c| codec(c).is_some() || c.eq_ignore_ascii_case("all"))
}

/// Global `[general]` settings that feed trunk fields.
#[derive(Default)]
struct General {
    register_attempts: Option<u32>,
    register_retry_s: Option<u32>,
    register_expires: Option<u32>,
    qualify_s: Option<u32>,
    registers: Vec<(usize, String)>,
}

fn parse_general(file: &str, kvs: &[Kv], report: &mut Report) -> General {
    let mut g = General::default();
    for kv in kvs {
        let num = |report: &mut Report| match kv.value.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                report.skip(
                    file,
                    kv.line,
                    format!("`{}`: `{}` is not a number", kv.key, kv.value),
                );
                None
            }
        };
        match kv.key.as_str() {
            "register" => g.registers.push((kv.line, kv.value.clone())),
            "registerattempts" => g.register_attempts = num(report),
            "registertimeout" => g.register_retry_s = num(report),
            "defaultexpiry" => g.register_expires = num(report),
            "qualifyfreq" => g.qualify_s = num(report),
            "allowguest" => report.info(
                file,
                kv.line,
                "allowguest: Strowger refuses calls from unknown sources unless a trunk or user matches",
            ),
            "bindport" | "bindaddr" | "udpbindaddr" | "tcpbindaddr" | "tlsbindaddr" | "tcpenable"
            | "tlsenable" => report.skip(
                file,
                kv.line,
                format!("`{}`: set the listeners in [sip] listen of strowger.toml", kv.key),
            ),
            k => report.skip(
                file,
                kv.line,
                format!("global setting `{k}` is not imported"),
            ),
        }
    }
    g
}

/// A trunk with the context it was bound to (for dial-plan sources).
type Contexts = BTreeMap<String, Vec<String>>;

fn build_trunks(file: &str, conf: &SipConf, report: &mut Report) -> (Vec<Trunk>, Contexts) {
    let general = parse_general(file, &conf.general, report);
    let mut trunks = Vec::new();
    let mut contexts: Contexts = BTreeMap::new();
    let mut attempts_line: HashMap<String, usize> = HashMap::new();
    for s in conf.sections.iter().filter(|s| !s.is_template) {
        let kvs = resolve(file, conf, s, report, 0);
        if let Some((t, ctx, peer_attempts)) = peer_to_trunk(file, s, &kvs, &general, report) {
            if let Some(c) = ctx {
                contexts.entry(c).or_default().push(t.name.clone());
            }
            if let Some(l) = peer_attempts {
                attempts_line.insert(t.name.clone(), l);
            }
            trunks.push(t);
        }
    }
    for (line, value) in &general.registers {
        match parse_register(value) {
            Ok(r) => apply_register(file, *line, &r, &general, &mut trunks, report),
            Err(e) => report.skip(file, *line, format!("register `{value}`: {e}")),
        }
    }
    for t in &trunks {
        if t.register != Some(true)
            && let Some(l) = attempts_line.get(&t.name)
        {
            report.info(
                file,
                *l,
                format!(
                    "[{}] registerattempts has no effect: no register => line registers this peer",
                    t.name
                ),
            );
        }
    }
    (trunks, contexts)
}

/// Returns the trunk, its `context=` and the line of a peer-level
/// `registerattempts` (applied only if a register line uses the trunk).
fn peer_to_trunk(
    file: &str,
    s: &Section,
    kvs: &[Kv],
    general: &General,
    report: &mut Report,
) -> Option<(Trunk, Option<String>, Option<usize>)> {
    let name = &s.name;
    let get = |k: &str| kvs.iter().rev().find(|kv| kv.key == k);
    let Some(ty) = get("type") else {
        report.skip(
            file,
            s.line,
            format!("[{name}] has no `type=` (Asterisk ignores such sections)"),
        );
        return None;
    };
    match ty.value.to_ascii_lowercase().as_str() {
        "peer" | "friend" => {}
        "user" => {
            report.skip(
                file,
                ty.line,
                format!(
                    "[{name}] type=user (inbound-only, matched by From user): not a trunk; use [[users]] or a trunk with inbound = \"digest\""
                ),
            );
            return None;
        }
        other => {
            report.skip(file, ty.line, format!("[{name}] unknown type `{other}`"));
            return None;
        }
    }
    if name.eq_ignore_ascii_case("global") {
        report.skip(
            file,
            s.line,
            "a trunk cannot be named `global` (reserved for the global policy scope)",
        );
        return None;
    }
    let Some(host) = get("host") else {
        report.skip(file, s.line, format!("[{name}] has no `host=`: skipped"));
        return None;
    };
    let mut t = Trunk {
        name: name.clone(),
        transport: "udp".into(),
        ..Trunk::default()
    };
    let dynamic = host.value.eq_ignore_ascii_case("dynamic");
    let mut port_in_host = None;
    if dynamic {
        t.host = "dynamic".into();
    } else {
        match split_host_port(&host.value) {
            Ok((h, p)) => {
                t.host = h;
                port_in_host = p;
            }
            Err(e) => {
                report.skip(file, host.line, format!("[{name}] host: {e}"));
                return None;
            }
        }
    }
    let mut port = port_in_host;
    let mut secret = None;
    let mut remotesecret = None;
    let mut insecure_port = false;
    let mut insecure_invite = false;
    let mut qualify = false;
    let mut qualify_freq = None;
    // None = all codecs (no disallow=all seen)
    let mut codecs: Option<Vec<String>> = None;
    let mut context = None;
    let mut peer_attempts = None;
    let mut context_reported = false;
    for kv in kvs {
        let (k, v, line) = (kv.key.as_str(), kv.value.as_str(), kv.line);
        let num = |report: &mut Report| match v.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                report.skip(file, line, format!("[{name}] `{k}`: `{v}` is not a number"));
                None
            }
        };
        match k {
            "type" | "host" => {}
            "port" => match v.parse::<u16>() {
                Ok(p) if p != 0 => port = Some(p),
                _ => report.skip(file, line, format!("[{name}] bad port `{v}`")),
            },
            "transport" => {
                let list: Vec<String> = v
                    .split(',')
                    .map(|x| x.trim().to_ascii_lowercase())
                    .filter(|x| !x.is_empty())
                    .collect();
                match list.first().map(String::as_str) {
                    Some(x @ ("udp" | "tcp" | "tls")) => t.transport = x.to_string(),
                    _ => report.skip(
                        file,
                        line,
                        format!("[{name}] transport `{v}`: only udp, tcp and tls"),
                    ),
                }
                if list.len() > 1 {
                    report.info(
                        file,
                        line,
                        format!(
                            "[{name}] transport list `{v}`: the first ({}) is used",
                            t.transport
                        ),
                    );
                }
            }
            "username" | "defaultuser" => t.username = Some(v.to_string()),
            "secret" => secret = Some(v.to_string()),
            "remotesecret" => remotesecret = Some(v.to_string()),
            "md5secret" => report.skip(
                file,
                line,
                format!("[{name}] md5secret cannot be converted to a password; set `secret`"),
            ),
            "fromuser" => t.fromuser = Some(v.to_string()),
            "fromdomain" => t.fromdomain = Some(v.to_string()),
            "insecure" => {
                for w in v.split(',').map(|w| w.trim().to_ascii_lowercase()) {
                    match w.as_str() {
                        "very" => (insecure_port, insecure_invite) = (true, true),
                        "port" => insecure_port = true,
                        "invite" => insecure_invite = true,
                        "no" | "" => {}
                        other => report.skip(
                            file,
                            line,
                            format!("[{name}] insecure `{other}` is not known"),
                        ),
                    }
                }
            }
            "qualify" => {
                if yes(v) {
                    qualify = true;
                } else if no(v) {
                    qualify = false;
                } else if let Ok(ms) = v.parse::<u32>() {
                    qualify = ms > 0;
                    if ms > 0 {
                        report.info(
                            file,
                            line,
                            format!(
                                "[{name}] qualify={ms}: the {ms} ms latency threshold has no equivalent; the trunk is down only when OPTIONS get no answer"
                            ),
                        );
                    }
                } else {
                    report.skip(file, line, format!("[{name}] qualify `{v}` is not yes/no/ms"));
                }
            }
            "qualifyfreq" => qualify_freq = num(report),
            "registerattempts" => {
                t.register_attempts = num(report);
                peer_attempts = Some(line);
            }
            "dtmfmode" => match v.to_ascii_lowercase().as_str() {
                "rfc2833" | "rfc4733" => t.dtmf = Some("rfc2833".into()),
                "info" | "shortinfo" => t.dtmf = Some("info".into()),
                "inband" => t.dtmf = Some("inband".into()),
                "auto" => {
                    t.dtmf = Some("rfc2833".into());
                    report.info(
                        file,
                        line,
                        format!("[{name}] dtmfmode=auto: imported as rfc2833 (in-band fallback is not automatic)"),
                    );
                }
                _ => report.skip(file, line, format!("[{name}] dtmfmode `{v}` is not known")),
            },
            "disallow" | "allow" => {
                let mut names: Vec<&str> = codec_list(v).collect();
                if codec_comment(&kv.comment) {
                    names.extend(codec_list(&kv.comment));
                    report.info(
                        file,
                        line,
                        format!(
                            "[{name}] `{k}={v};{}`: Asterisk would read `;{}` as a comment; imported as a codec list",
                            kv.comment, kv.comment
                        ),
                    );
                }
                for c in names {
                    let all = c.eq_ignore_ascii_case("all");
                    match (k, all, codec(c)) {
                        ("disallow", true, _) => codecs = Some(Vec::new()),
                        (_, true, _) => codecs = None,
                        (_, false, None) => report.skip(
                            file,
                            line,
                            format!("[{name}] codec `{c}` is not known (audio codecs only)"),
                        ),
                        ("allow", false, Some(sdp)) => match &mut codecs {
                            Some(list) => {
                                if !list.iter().any(|x| x == sdp) {
                                    list.push(sdp.to_string());
                                }
                            }
                            None => report.info(
                                file,
                                line,
                                format!(
                                    "[{name}] allow={c} without disallow=all: all codecs stay allowed"
                                ),
                            ),
                        },
                        (_, false, Some(sdp)) => match &mut codecs {
                            Some(list) => list.retain(|x| x != sdp),
                            None => report.skip(
                                file,
                                line,
                                format!(
                                    "[{name}] disallow={c} without disallow=all: \"all but {c}\" cannot be expressed; list the allowed codecs"
                                ),
                            ),
                        },
                    }
                }
            }
            "context" => {
                context = Some(v.to_string());
                if !context_reported {
                    context_reported = true;
                    report.info(
                        file,
                        line,
                        format!(
                            "[{name}] context={v}: trunks have no context; routing comes from the route policy (the routes imported from that context get source trunk:{name})"
                        ),
                    );
                }
            }
            "canreinvite" | "directmedia" => {
                let lv = v.to_ascii_lowercase();
                if no(&lv) {
                    t.media = Some("relay".into());
                } else if yes(&lv) || matches!(lv.as_str(), "nonat" | "update" | "outgoing") {
                    t.media = Some("bypass".into());
                    if !yes(&lv) {
                        report.info(
                            file,
                            line,
                            format!("[{name}] {k}={v}: imported as media = \"bypass\""),
                        );
                    }
                } else {
                    report.skip(file, line, format!("[{name}] {k} `{v}` is not known"));
                }
            }
            "nat" => report.info(
                file,
                line,
                format!(
                    "[{name}] nat={v}: nothing to do, Strowger always uses rport and media latching"
                ),
            ),
            "call-limit" => t.max_calls = num(report),
            "incominglimit" => t.max_calls_in = num(report),
            "outgoinglimit" => t.max_calls_out = num(report),
            "usereqphone" => {
                if yes(v) {
                    t.ruri_params = Some("user=phone".into());
                }
            }
            "trustrpid" => {
                if yes(v) {
                    t.use_pai = Some(true);
                }
            }
            "callerid" => report.skip(
                file,
                line,
                format!(
                    "[{name}] callerid sets A for calls *from* this peer in Asterisk; Strowger's caller_id overrides A on calls *to* the trunk: not imported"
                ),
            ),
            "outboundproxy" => report.skip(
                file,
                line,
                format!("[{name}] outboundproxy: proxy lists are not imported"),
            ),
            "permit" | "deny" | "acl" => report.skip(
                file,
                line,
                format!(
                    "[{name}] {k}: address ACLs are not imported (the trunk trusts its host only)"
                ),
            ),
            "description" => report.info(file, line, format!("[{name}] description: not kept")),
            _ => report.skip(
                file,
                line,
                format!("[{name}] `{k}` has no Strowger trunk equivalent"),
            ),
        }
    }
    t.port = port.unwrap_or(if t.transport == "tls" { 5061 } else { 5060 });
    if port_in_host.is_some() {
        report.info(
            file,
            host.line,
            format!("[{name}] host with a port: imported as host + port"),
        );
    }
    t.secret = match (secret, remotesecret) {
        (Some(s), Some(r)) if s != r => {
            report.skip(
                file,
                s_line(kvs, "remotesecret"),
                format!(
                    "[{name}] secret and remotesecret differ: one secret per trunk, `secret` kept"
                ),
            );
            Some(s)
        }
        (s, r) => s.or(r),
    };
    if let Some(list) = &codecs {
        if list.is_empty() {
            report.skip(
                file,
                s_line(kvs, "disallow"),
                format!("[{name}] disallow=all with no allow: no codec left; codecs not imported"),
            );
        } else {
            t.codecs = codecs.clone();
        }
    }
    if qualify {
        t.qualify_s = Some(qualify_freq.or(general.qualify_s).unwrap_or(60));
    } else if qualify_freq.is_some() {
        report.info(
            file,
            s_line(kvs, "qualifyfreq"),
            format!("[{name}] qualifyfreq without qualify=yes: qualify stays off"),
        );
    }
    if dynamic {
        t.inbound = "register".into();
        if t.username.is_none() {
            t.username = Some(name.clone());
        }
        if t.secret.is_none() {
            report.info(
                file,
                s.line,
                format!(
                    "[{name}] host=dynamic without secret: the peer registers without a password"
                ),
            );
        }
    } else {
        // chan_sip matches a static peer by IP and port unless insecure=port,
        // and challenges its INVITEs (when it has a secret) unless insecure=invite
        t.ignore_source_port = Some(insecure_port);
        t.inbound = if insecure_invite || t.secret.is_none() {
            "ip".into()
        } else {
            report.info(
                file,
                s.line,
                format!(
                    "[{name}] inbound = \"digest\": Asterisk challenges INVITEs from this peer (secret set, no insecure=invite)"
                ),
            );
            "digest".into()
        };
    }
    Some((t, context, peer_attempts))
}

fn s_line(kvs: &[Kv], key: &str) -> usize {
    kvs.iter()
        .rev()
        .find(|kv| kv.key == key)
        .map_or(0, |kv| kv.line)
}

fn apply_register(
    file: &str,
    line: usize,
    r: &Register,
    general: &General,
    trunks: &mut Vec<Trunk>,
    report: &mut Report,
) {
    let by_peer = r
        .peer
        .as_ref()
        .and_then(|p| trunks.iter().position(|t| &t.name == p));
    if let (Some(p), None) = (&r.peer, by_peer) {
        report.info(
            file,
            line,
            format!("register names peer `{p}`, which is not imported: a new trunk is created"),
        );
    }
    let idx = by_peer.or_else(|| {
        trunks.iter().position(|t| {
            t.register != Some(true)
                && (t.host.eq_ignore_ascii_case(&r.host) || t.name == r.host)
                && r.port.is_none_or(|p| p == t.port)
        })
    });
    let idx = match idx {
        Some(i) => {
            report.info(
                file,
                line,
                format!(
                    "register {}@{}: registration added to trunk `{}`",
                    r.user, r.host, trunks[i].name
                ),
            );
            i
        }
        None => {
            let base = r.peer.clone().unwrap_or_else(|| r.host.clone());
            let name = if trunks.iter().any(|t| t.name == base) {
                format!("{base}-{}", r.user)
            } else {
                base
            };
            let transport = r.transport.clone().unwrap_or_else(|| "udp".into());
            let port = r
                .port
                .unwrap_or(if transport == "tls" { 5061 } else { 5060 });
            report.info(
                file,
                line,
                format!(
                    "register {}@{}: no peer with that host, new trunk `{name}` (inbound = \"ip\": the provider's calls come from its host)",
                    r.user, r.host
                ),
            );
            trunks.push(Trunk {
                name,
                host: r.host.clone(),
                port,
                transport,
                inbound: "ip".into(),
                ignore_source_port: Some(true),
                ..Trunk::default()
            });
            trunks.len() - 1
        }
    };
    let t = &mut trunks[idx];
    if t.host == "dynamic" {
        report.skip(
            file,
            line,
            format!(
                "register to `{}`: trunk `{}` is host=dynamic (it registers to us); not both",
                r.host, t.name
            ),
        );
        return;
    }
    if let Some(u) = &t.username
        && u != &r.user
    {
        report.info(
            file,
            line,
            format!(
                "trunk `{}`: username `{u}` replaced by the register user `{}`",
                t.name, r.user
            ),
        );
    }
    t.register = Some(true);
    t.username = Some(r.user.clone());
    if let Some(s) = &r.secret {
        t.secret = Some(s.clone());
    }
    if let Some(a) = &r.authuser
        && a != &r.user
    {
        t.auth_username = Some(a.clone());
    }
    if let Some(d) = &r.domain
        && t.fromdomain.is_none()
    {
        t.fromdomain = Some(d.clone());
    }
    if let Some(tr) = &r.transport
        && tr != &t.transport
    {
        report.info(
            file,
            line,
            format!(
                "trunk `{}`: transport {} from the register string replaces {}",
                t.name, tr, t.transport
            ),
        );
        t.transport = tr.clone();
    }
    t.did = r.extension.clone();
    if r.extension.is_none() {
        report.info(
            file,
            line,
            "register without /extension: Asterisk sends inbound calls to `s`; no DID set, calls keep their Request-URI number",
        );
    }
    t.register_expires = r.expiry.or(general.register_expires);
    t.register_retry_s = general.register_retry_s;
    if t.register_attempts.is_none() {
        t.register_attempts = general.register_attempts;
    }
}

// ------------------------------------------------------------------ extensions.conf

#[derive(Debug, Clone)]
struct Step {
    line: usize,
    app: String,
    args: String,
}

#[derive(Debug, Clone)]
struct Ext {
    pattern: String,
    callerid: Option<String>,
    line: usize,
    steps: Vec<Step>,
}

#[derive(Debug, Clone)]
struct Context {
    name: String,
    includes: Vec<(usize, String)>,
    exts: Vec<Ext>,
}

#[derive(Debug, Default)]
struct Dialplan {
    globals: HashMap<String, String>,
    contexts: Vec<Context>,
}

/// `App(args)` -> (`App`, `args`); old `App,args` too.
fn split_app(s: &str) -> (String, String) {
    let s = s.trim();
    match s.find('(') {
        Some(i) => {
            let args = s[i + 1..].strip_suffix(')').unwrap_or(&s[i + 1..]);
            (s[..i].trim().to_string(), args.to_string())
        }
        None => match s.split_once(',') {
            Some((a, rest)) => (a.trim().to_string(), rest.to_string()),
            None => (s.to_string(), String::new()),
        },
    }
}

fn parse_extensions(file: &str, text: &str, report: &mut Report) -> Dialplan {
    let mut plan = Dialplan::default();
    #[derive(PartialEq)]
    enum Cur {
        None,
        Globals,
        General,
        Context(usize),
    }
    let mut cur = Cur::None;
    // (context, ext index) of the last `exten =>`, for `same =>`
    let mut last: Option<(usize, usize)> = None;
    for (line, it) in lex(text) {
        match it {
            Item::Section { name, .. } => {
                last = None;
                cur = match name.to_ascii_lowercase().as_str() {
                    "globals" => Cur::Globals,
                    "general" => Cur::General,
                    _ => match plan.contexts.iter().position(|c| c.name == name) {
                        Some(i) => Cur::Context(i),
                        None => {
                            plan.contexts.push(Context {
                                name,
                                includes: Vec::new(),
                                exts: Vec::new(),
                            });
                            Cur::Context(plan.contexts.len() - 1)
                        }
                    },
                };
            }
            Item::Directive(d) => report.skip(
                file,
                line,
                format!("`{d}`: included files are not followed; import them separately"),
            ),
            Item::Junk(j) => report.skip(file, line, format!("cannot parse `{j}`")),
            Item::Kv { key, value, .. } => {
                let key = key.to_ascii_lowercase();
                match (&cur, key.as_str()) {
                    (Cur::Globals, _) => {
                        plan.globals.insert(key.to_ascii_uppercase(), value);
                        // globals keep their case in Asterisk; look up both
                    }
                    (Cur::General, _) => report.info(
                        file,
                        line,
                        format!("[general] `{key}`: dial-plan option, nothing to import"),
                    ),
                    (Cur::None, _) => report.skip(file, line, "line outside any [context]"),
                    (Cur::Context(c), "include") => plan.contexts[*c]
                        .includes
                        .push((line, value.trim().to_string())),
                    (Cur::Context(c), "exten") => {
                        let mut parts = value.splitn(3, ',');
                        let ext = parts.next().unwrap_or("").trim();
                        let prio = parts.next().unwrap_or("").trim();
                        let Some(app) = parts.next() else {
                            report.skip(file, line, format!("cannot parse `exten => {value}`"));
                            continue;
                        };
                        if prio.eq_ignore_ascii_case("hint") {
                            report.info(file, line, "hint: presence is not imported");
                            continue;
                        }
                        let (pattern, callerid) = match ext.split_once('/') {
                            Some((p, cid)) => (p.trim(), Some(cid.trim().to_string())),
                            None => (ext, None),
                        };
                        let (app, args) = split_app(app);
                        let step = Step { line, app, args };
                        let ctx = &mut plan.contexts[*c];
                        let idx = match ctx
                            .exts
                            .iter()
                            .position(|e| e.pattern == pattern && e.callerid == callerid)
                        {
                            Some(i) => i,
                            None => {
                                ctx.exts.push(Ext {
                                    pattern: pattern.to_string(),
                                    callerid,
                                    line,
                                    steps: Vec::new(),
                                });
                                ctx.exts.len() - 1
                            }
                        };
                        ctx.exts[idx].steps.push(step);
                        last = Some((*c, idx));
                    }
                    (Cur::Context(c), "same") => match last {
                        Some((lc, li)) if lc == *c => {
                            let app = value.split_once(',').map_or("", |(_, a)| a);
                            let (app, args) = split_app(app);
                            plan.contexts[lc].exts[li]
                                .steps
                                .push(Step { line, app, args });
                        }
                        _ => report.skip(file, line, "`same =>` without a preceding `exten =>`"),
                    },
                    (Cur::Context(_), k) => report.skip(
                        file,
                        line,
                        format!("`{k} =>` is not imported (only exten, same and include)"),
                    ),
                }
            }
        }
    }
    plan
}

/// Asterisk extension sort key per position: literal extensions first,
/// then patterns ordered position by position by how many characters each
/// position matches (as Asterisk's `ext_cmp` does), shorter first.
fn specificity(pattern: &str) -> (bool, Vec<(u32, char)>) {
    let Some(body) = pattern.strip_prefix('_') else {
        return (false, pattern.chars().map(|c| (1, c)).collect());
    };
    let mut key = Vec::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        key.push(match c {
            'X' | 'x' => (10, '0'),
            'Z' | 'z' => (9, '1'),
            'N' | 'n' => (8, '2'),
            '.' => (u32::MAX - 1, '.'),
            '!' => (u32::MAX, '!'),
            '-' => continue,
            '[' => {
                let inner: String = chars.by_ref().take_while(|&c| c != ']').collect();
                let set: BTreeSet<char> = {
                    let v: Vec<char> = inner.chars().collect();
                    let mut s = BTreeSet::new();
                    let mut i = 0;
                    while i < v.len() {
                        if i + 2 < v.len() && v[i + 1] == '-' {
                            s.extend(v[i]..=v[i + 2]);
                            i += 3;
                        } else {
                            s.insert(v[i]);
                            i += 1;
                        }
                    }
                    s
                };
                (set.len() as u32, set.iter().next().copied().unwrap_or('\0'))
            }
            c => (1, c),
        });
    }
    (true, key)
}

/// Every cause: Asterisk goes on to the next priority whatever made `Dial` fail.
const ANY_FAILURE: [&str; 6] = [
    "4xx",
    "5xx",
    "6xx",
    "no-answer",
    "unavailable",
    "limit-reached",
];

/// Which callers reach each context: `Some(sources)` or `None` = anyone.
fn context_sources(plan: &Dialplan, peers: &Contexts) -> HashMap<String, Option<Vec<String>>> {
    fn walk(
        name: &str,
        plan: &Dialplan,
        peers: &Contexts,
        seen: &mut BTreeSet<String>,
    ) -> Option<BTreeSet<String>> {
        if !seen.insert(name.to_string()) {
            return Some(BTreeSet::new());
        }
        let includers: Vec<&str> = plan
            .contexts
            .iter()
            .filter(|c| c.includes.iter().any(|(_, i)| i == name))
            .map(|c| c.name.as_str())
            .collect();
        let own = peers.get(name);
        if own.is_none() && includers.is_empty() {
            return None; // a root nobody is bound to: phones and other callers
        }
        let mut out: BTreeSet<String> = own
            .into_iter()
            .flatten()
            .map(|t| format!("trunk:{t}"))
            .collect();
        for i in includers {
            out.extend(walk(i, plan, peers, seen)?);
        }
        Some(out)
    }
    plan.contexts
        .iter()
        .map(|c| {
            let s = walk(&c.name, plan, peers, &mut BTreeSet::new());
            (c.name.clone(), s.map(|s| s.into_iter().collect()))
        })
        .collect()
}

/// Include depth, so that a context's routes come before those of the
/// contexts it includes (Asterisk searches its own extensions first).
fn depth(name: &str, plan: &Dialplan, seen: &mut BTreeSet<String>) -> usize {
    if !seen.insert(name.to_string()) {
        return 0;
    }
    plan.contexts
        .iter()
        .filter(|c| c.includes.iter().any(|(_, i)| i == name))
        .map(|c| depth(&c.name, plan, seen) + 1)
        .max()
        .unwrap_or(0)
}

fn build_routes(
    file: &str,
    plan: &Dialplan,
    trunks: &[Trunk],
    peers: &Contexts,
    report: &mut Report,
) -> Vec<Route> {
    let sources = context_sources(plan, peers);
    for c in &plan.contexts {
        for (line, inc) in &c.includes {
            if plan.contexts.iter().any(|x| &x.name == inc) {
                report.info(
                    file,
                    *line,
                    format!(
                        "include => {inc}: its routes also serve the callers of [{}]",
                        c.name
                    ),
                );
            } else {
                report.skip(
                    file,
                    *line,
                    format!("include => {inc}: context not defined in this file"),
                );
            }
        }
        if peers.contains_key(&c.name) {
            continue;
        }
        let included = plan
            .contexts
            .iter()
            .any(|x| x.includes.iter().any(|(_, i)| i == &c.name));
        if !included && sources.get(&c.name).is_some_and(Option::is_none) && !c.exts.is_empty() {
            report.info(
                file,
                c.exts[0].line,
                format!(
                    "[{}]: no imported peer has context={}; its routes accept any caller (add a `source` to restrict them)",
                    c.name, c.name
                ),
            );
        }
    }
    let mut order: Vec<&Context> = plan.contexts.iter().collect();
    order.sort_by_key(|c| depth(&c.name, plan, &mut BTreeSet::new()));
    let mut routes = Vec::new();
    let mut priority = 0u32;
    for ctx in order {
        let src = sources
            .get(&ctx.name)
            .cloned()
            .flatten()
            .unwrap_or_default();
        let mut exts: Vec<&Ext> = ctx.exts.iter().collect();
        exts.sort_by_key(|e| specificity(&e.pattern));
        for ext in exts {
            let before = routes.len();
            ext_routes(
                file,
                ctx,
                ext,
                &src,
                trunks,
                plan,
                &mut priority,
                &mut routes,
                report,
            );
            // Dial after Dial: the earlier ones fail over to the later ones
            let n = routes.len() - before;
            for r in routes[before..].iter_mut().take(n.saturating_sub(1)) {
                r.retry_on = ANY_FAILURE.iter().map(|s| s.to_string()).collect();
            }
            if n > 1 {
                report.info(
                    file,
                    ext.line,
                    format!(
                        "[{}] {}: {n} Dial steps become failover attempts; Asterisk moves on after any failure (busy too), so retry_on lists every cause",
                        ctx.name, ext.pattern
                    ),
                );
            }
        }
    }
    routes
}

#[allow(clippy::too_many_arguments)]
fn ext_routes(
    file: &str,
    ctx: &Context,
    ext: &Ext,
    source: &[String],
    trunks: &[Trunk],
    plan: &Dialplan,
    priority: &mut u32,
    routes: &mut Vec<Route>,
    report: &mut Report,
) {
    let p = ext.pattern.as_str();
    if matches!(p, "s" | "h" | "i" | "t" | "T" | "e" | "o" | "a" | "fax") {
        report.skip(
            file,
            ext.line,
            format!(
                "[{}] special extension `{p}` is not a dialled number: skipped",
                ctx.name
            ),
        );
        return;
    }
    let filter = |p: &str| -> Result<Filter, String> {
        Pattern::parse(p)?;
        Ok(if p.starts_with('_') {
            Filter::Asterisk(p.to_string())
        } else {
            Filter::Exact(p.to_string())
        })
    };
    let b = match filter(p) {
        Ok(f) => f,
        Err(e) => {
            report.skip(file, ext.line, format!("[{}] pattern `{p}`: {e}", ctx.name));
            return;
        }
    };
    let a = match &ext.callerid {
        None => Vec::new(),
        Some(cid) => match filter(cid) {
            Ok(f) => vec![f],
            Err(e) => {
                report.skip(
                    file,
                    ext.line,
                    format!("[{}] caller-ID match `{cid}`: {e}", ctx.name),
                );
                return;
            }
        },
    };
    let mut a_rewrite: Option<String> = None;
    let mut display: Option<String> = None;
    let mut n = 0;
    for step in &ext.steps {
        let app = step.app.to_ascii_lowercase();
        match app.as_str() {
            "dial" => {
                n += 1;
                match dial(&step.args, trunks, plan) {
                    Ok(d) => {
                        for note in &d.notes {
                            report.info(file, step.line, note.clone());
                        }
                        *priority += 10;
                        routes.push(Route {
                            name: format!("{}/{}/{n}", ctx.name, ext.pattern),
                            priority: *priority,
                            source: source.to_vec(),
                            b: vec![b.clone()],
                            a: a.clone(),
                            destination: d.destination,
                            b_rewrite: d.b_rewrite,
                            a_rewrite: a_rewrite.clone(),
                            display_name: display.clone(),
                            ring_timeout_s: d.timeout,
                            retry_on: Vec::new(),
                        });
                    }
                    Err(e) => report.skip(file, step.line, format!("Dial({}): {e}", step.args)),
                }
            }
            "set" => match set_callerid(&step.args, plan) {
                Ok((num, name)) => {
                    if num.is_some() {
                        a_rewrite = num;
                    }
                    if name.is_some() {
                        display = name;
                    }
                }
                Err(e) => report.skip(file, step.line, format!("Set({}): {e}", step.args)),
            },
            "noop" | "answer" | "hangup" | "wait" | "ringing" | "progress" | "verbose" | "log"
            | "return" => report.info(
                file,
                step.line,
                format!("{}(): no effect on routing, ignored", step.app),
            ),
            _ => report.skip(
                file,
                step.line,
                format!(
                    "{}({}): only Dial and Set(CALLERID(...)) are translated",
                    step.app, step.args
                ),
            ),
        }
    }
}

/// `Set(CALLERID(num)=...)` / `CALLERID(name)` / `CALLERID(all)="Name" <num>`.
fn set_callerid(args: &str, plan: &Dialplan) -> Result<(Option<String>, Option<String>), String> {
    let (lhs, rhs) = args
        .split_once('=')
        .ok_or_else(|| "not `VAR=value`".to_string())?;
    let lhs = lhs.trim().to_ascii_lowercase().replace(' ', "");
    let rhs = rhs.trim();
    match lhs.as_str() {
        "callerid(num)" | "callerid(number)" => Ok((Some(vars(rhs, plan)?), None)),
        "callerid(name)" => Ok((None, Some(vars(rhs.trim_matches('"'), plan)?))),
        "callerid(all)" => {
            let (name, num) = match rhs.rsplit_once('<') {
                Some((n, rest)) => (
                    Some(n.trim().trim_matches('"').to_string()).filter(|n| !n.is_empty()),
                    rest.trim_end_matches('>').trim().to_string(),
                ),
                None => (None, rhs.to_string()),
            };
            Ok((
                Some(vars(&num, plan)?),
                name.map(|n| vars(&n, plan)).transpose()?,
            ))
        }
        _ => Err("only CALLERID(num|name|all) is translated".into()),
    }
}

/// Rewrite Asterisk variable references into route-table template
/// variables: `${EXTEN...}` (any case), `${CALLERID(num)}` -> `${A}`, and
/// `[globals]` values. Anything else is an error.
pub fn vars_with(text: &str, globals: &HashMap<String, String>) -> Result<String, String> {
    if text.contains("$[") {
        return Err("expressions `$[...]` are not translated".into());
    }
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated `${{` in `{text}`"))?;
        let inner = &after[..end];
        let (name, sub) = match inner.find(':') {
            Some(j) => (&inner[..j], &inner[j..]),
            None => (inner, ""),
        };
        let upper = name.to_ascii_uppercase();
        if upper == "EXTEN" {
            out.push_str(&format!("${{EXTEN{sub}}}"));
        } else if matches!(upper.as_str(), "CALLERID(NUM)" | "CALLERID(NUMBER)") {
            out.push_str(&format!("${{A{sub}}}"));
        } else if let Some(v) = globals.get(&upper).filter(|_| sub.is_empty()) {
            out.push_str(v);
        } else {
            return Err(format!("variable `${{{inner}}}` has no equivalent"));
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Template::parse(&out)?;
    Ok(out)
}

fn vars(text: &str, plan: &Dialplan) -> Result<String, String> {
    vars_with(text, &plan.globals)
}

struct Dial {
    destination: Destination,
    b_rewrite: Option<String>,
    timeout: Option<u32>,
    notes: Vec<String>,
}

/// `Dial(SIP/peer/NUMBER[,timeout[,options]])`, `SIP/NUMBER@peer`,
/// `PJSIP/NUMBER@endpoint`, `SIP/name` (a trunk or a registered user).
fn dial(args: &str, trunks: &[Trunk], plan: &Dialplan) -> Result<Dial, String> {
    let mut parts = args.splitn(3, [',', '|']);
    let target = parts.next().unwrap_or("").trim();
    let timeout = parts.next().map(str::trim).filter(|t| !t.is_empty());
    let options = parts.next().map(str::trim).filter(|o| !o.is_empty());
    let mut notes = Vec::new();
    if target.contains('&') {
        return Err(
            "`&` rings several channels in parallel; Strowger tries attempts one after the other"
                .into(),
        );
    }
    let target = vars(target, plan)?;
    let (tech, rest) = target
        .split_once('/')
        .ok_or_else(|| format!("`{target}` is not TECH/resource"))?;
    let tech_u = tech.to_ascii_uppercase();
    if tech_u != "SIP" && tech_u != "PJSIP" {
        return Err(format!(
            "technology `{tech}` is not imported (SIP and PJSIP only)"
        ));
    }
    let known = |n: &str| trunks.iter().any(|t| t.name == n);
    let (destination, number) = if let Some((num, peer)) = rest.rsplit_once('@') {
        (Destination::Trunk(peer.to_string()), Some(num.to_string()))
    } else if let Some((peer, num)) = rest.split_once('/') {
        if tech_u == "PJSIP" || num.to_ascii_lowercase().starts_with("sip") {
            return Err(format!(
                "`{rest}`: a URI after the endpoint is not translated"
            ));
        }
        (Destination::Trunk(peer.to_string()), Some(num.to_string()))
    } else if known(rest) {
        (Destination::Trunk(rest.to_string()), None)
    } else {
        notes.push(format!(
            "{tech}/{rest}: `{rest}` is not an imported trunk: sent to the registered user `{rest}`"
        ));
        (Destination::User(rest.to_string()), None)
    };
    if let Destination::Trunk(t) = &destination {
        if t.contains('$') {
            return Err(format!("trunk name `{t}` depends on a variable"));
        }
        if !known(t) {
            notes.push(format!(
                "trunk `{t}` is not defined in the imported sip.conf: define it in strowger.toml"
            ));
        }
    }
    let b_rewrite = number.filter(|n| n != "${EXTEN}");
    if let Some(b) = &b_rewrite
        && b.is_empty()
    {
        return Err("empty number".into());
    }
    let timeout = match timeout {
        None => None,
        Some(t) => match t.parse::<u32>() {
            Ok(0) => None,
            Ok(s) => Some(s),
            Err(_) => {
                notes.push(format!("Dial timeout `{t}` is not a number: not imported"));
                None
            }
        },
    };
    if let Some(o) = options {
        notes.push(format!(
            "Dial options `{o}` are not imported (e.g. m(class) ringback music, t/T transfers)"
        ));
    }
    Ok(Dial {
        destination,
        b_rewrite,
        timeout,
        notes,
    })
}

// ------------------------------------------------------------------ tests

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sip: &str, ext: Option<&str>) -> Import {
        import(("sip.conf", sip), ext.map(|e| ("extensions.conf", e)))
    }

    fn trunk<'a>(i: &'a Import, name: &str) -> &'a Trunk {
        i.trunks
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no trunk {name} in {:?}", i.trunks))
    }

    fn has_note(i: &Import, line: usize, level: Level, needle: &str) -> bool {
        i.report
            .notes
            .iter()
            .any(|n| n.line == line && n.level == level && n.text.contains(needle))
    }

    #[test]
    fn register_strings_from_the_reference() {
        let r = parse_register("199:199pass@192.168.1.1/ast_provider_reg").unwrap();
        assert_eq!(
            r,
            Register {
                user: "199".into(),
                secret: Some("199pass".into()),
                host: "192.168.1.1".into(),
                extension: Some("ast_provider_reg".into()),
                ..Register::default()
            }
        );
        let r = parse_register("AST22:123456@192.168.1.22").unwrap();
        assert_eq!(r.user, "AST22");
        assert_eq!(r.secret.as_deref(), Some("123456"));
        assert_eq!(r.host, "192.168.1.22");
        assert_eq!((r.port, r.extension, r.authuser), (None, None, None));

        let r =
            parse_register("tls://prov?alice@example.com:s3:authA@sip.example.com:5071/did1~600")
                .unwrap();
        assert_eq!(r.transport.as_deref(), Some("tls"));
        assert_eq!(r.peer.as_deref(), Some("prov"));
        assert_eq!(r.user, "alice");
        assert_eq!(r.domain.as_deref(), Some("example.com"));
        assert_eq!(r.secret.as_deref(), Some("s3"));
        assert_eq!(r.authuser.as_deref(), Some("authA"));
        assert_eq!(r.host, "sip.example.com");
        assert_eq!(r.port, Some(5071));
        assert_eq!(r.extension.as_deref(), Some("did1"));
        assert_eq!(r.expiry, Some(600));

        assert!(parse_register("nohost").is_err());
        assert!(parse_register(":x@h").is_err());
        assert!(parse_register("u:s@h:99999").is_err());
        assert!(parse_register("ws://u@h").is_err());
        assert!(parse_register("u:s:a:b@h").is_err());
    }

    #[test]
    fn register_lines_become_registering_trunks() {
        let i = run(
            "[general]\n\
             register => 199:199pass@192.168.1.1/ast_provider_reg\n\
             register=>AST22:123456@192.168.1.22\n\
             registerattempts=5\n\
             [ast_provider]\n\
             type=peer\n\
             host=192.168.1.1\n\
             insecure=very\n",
            None,
        );
        // matched to the peer with that host
        let t = trunk(&i, "ast_provider");
        assert_eq!(t.register, Some(true));
        assert_eq!(t.username.as_deref(), Some("199"));
        assert_eq!(t.secret.as_deref(), Some("199pass"));
        assert_eq!(t.did.as_deref(), Some("ast_provider_reg"));
        assert_eq!(t.register_attempts, Some(5));
        assert_eq!(t.inbound, "ip");
        assert_eq!(t.ignore_source_port, Some(true));
        // no peer for 192.168.1.22: a new trunk
        let t = trunk(&i, "192.168.1.22");
        assert_eq!(t.host, "192.168.1.22");
        assert_eq!(t.port, 5060);
        assert_eq!(t.register, Some(true));
        assert_eq!(t.username.as_deref(), Some("AST22"));
        assert_eq!(t.secret.as_deref(), Some("123456"));
        assert_eq!(t.did, None);
        assert!(has_note(&i, 3, Level::Info, "no DID"));
        assert_eq!(i.trunks.len(), 2);
    }

    #[test]
    fn dynamic_peer_registers_to_us() {
        let i = run(
            "[AST21]\ntype=friend\nhost=dynamic\nusername=AST21\nsecret=bsmofeng\nfromuser=AST21\ncontext=FROMSIP\n\
             [gw]\ntype=peer\nhost=dynamic\n",
            None,
        );
        let t = trunk(&i, "AST21");
        assert_eq!(t.host, "dynamic");
        assert_eq!(t.inbound, "register");
        assert_eq!(t.username.as_deref(), Some("AST21"));
        assert_eq!(t.secret.as_deref(), Some("bsmofeng"));
        assert_eq!(t.fromuser.as_deref(), Some("AST21"));
        assert_eq!(t.ignore_source_port, None);
        assert!(has_note(
            &i,
            7,
            Level::Info,
            "routing comes from the route policy"
        ));
        // username defaults to the section name
        let g = trunk(&i, "gw");
        assert_eq!(g.username.as_deref(), Some("gw"));
        assert!(has_note(&i, 8, Level::Info, "without secret"));
    }

    #[test]
    fn codecs_dtmf_qualify_insecure_media_limits() {
        let i = run(
            "[general]\nqualifyfreq=30\n\
             [carrier]\ntype=peer\nhost=sip.carrier.example\nport=5080\n\
             disallow=all\nallow=ulaw;alaw\nallow=g729\ndtmfmode=rfc2833\nqualify=yes\n\
             insecure=port,invite\ncanreinvite=yes\ncall-limit=20\nnat=force_rport,comedia\n\
             usereqphone=yes\ntrustrpid=yes\nfromdomain=carrier.example\n",
            None,
        );
        let t = trunk(&i, "carrier");
        assert_eq!(t.host, "sip.carrier.example");
        assert_eq!(t.port, 5080);
        assert_eq!(
            t.codecs.as_deref(),
            Some(&["PCMU".to_string(), "PCMA".into(), "G729".into()][..])
        );
        assert_eq!(t.dtmf.as_deref(), Some("rfc2833"));
        assert_eq!(t.qualify_s, Some(30)); // general qualifyfreq
        assert_eq!(t.inbound, "ip");
        assert_eq!(t.ignore_source_port, Some(true));
        assert_eq!(t.media.as_deref(), Some("bypass"));
        assert_eq!(t.max_calls, Some(20));
        assert_eq!(t.ruri_params.as_deref(), Some("user=phone"));
        assert_eq!(t.use_pai, Some(true));
        assert_eq!(t.fromdomain.as_deref(), Some("carrier.example"));
        // `;alaw` is a comment for Asterisk: said so
        assert!(has_note(&i, 8, Level::Info, "comment"));
        // nat: info, not a failure
        assert!(has_note(&i, 15, Level::Info, "rport"));
        assert_eq!(i.report.count(Level::Untranslated), 0, "{:?}", i.report);

        // static peer with a secret and no insecure=invite: digest, port matched
        let i = run(
            "[AST22]\ntype=friend\nhost=192.168.1.22\nsecret=123456\nqualify=2000\ndtmfmode=info\ncanreinvite=no\n",
            None,
        );
        let t = trunk(&i, "AST22");
        assert_eq!(t.inbound, "digest");
        assert_eq!(t.ignore_source_port, Some(false));
        assert_eq!(t.qualify_s, Some(60));
        assert_eq!(t.dtmf.as_deref(), Some("info"));
        assert_eq!(t.media.as_deref(), Some("relay"));
        assert!(has_note(&i, 5, Level::Info, "2000 ms"));
    }

    #[test]
    fn unknown_keys_templates_and_includes_are_reported() {
        let i = run(
            "#include sip_custom.conf\n\
             [base](!)\ntype=peer\ndtmfmode=info\nqualify=yes\n\
             [p1](base)\nhost=10.0.0.1\nfrobnicate=yes\nmd5secret=abc\ndisallow=all\nallow=h264\n\
             [p2](missing)\ntype=peer\nhost=10.0.0.2\n\
             [nop]\nhost=10.0.0.3\n",
            None,
        );
        assert!(has_note(&i, 1, Level::Untranslated, "not followed"));
        let t = trunk(&i, "p1");
        assert_eq!(t.dtmf.as_deref(), Some("info")); // from the template
        assert_eq!(t.qualify_s, Some(60));
        assert_eq!(t.codecs, None); // nothing left
        assert!(has_note(
            &i,
            8,
            Level::Untranslated,
            "`frobnicate` has no Strowger trunk equivalent"
        ));
        assert!(has_note(&i, 9, Level::Untranslated, "md5secret"));
        assert!(has_note(&i, 11, Level::Untranslated, "h264"));
        assert!(has_note(&i, 10, Level::Untranslated, "no codec left"));
        assert!(has_note(&i, 12, Level::Untranslated, "template `missing`"));
        assert!(has_note(
            &i,
            6,
            Level::Info,
            "[p1] takes the settings of template [base]"
        ));
        assert!(trunk(&i, "p2").host == "10.0.0.2");
        assert!(has_note(&i, 15, Level::Untranslated, "no `type=`"));
        assert!(!i.trunks.iter().any(|t| t.name == "base" || t.name == "nop"));
    }

    #[test]
    fn toml_output_quotes_and_parses() {
        let t = Trunk {
            name: "we\"ird".into(),
            host: "10.0.0.1".into(),
            port: 5060,
            transport: "udp".into(),
            inbound: "ip".into(),
            secret: Some("p#ss\"word\\".into()),
            codecs: Some(vec!["PCMU".into()]),
            ..Trunk::default()
        };
        let text = trunks_toml(std::slice::from_ref(&t)).unwrap();
        let v: toml::Table = toml::from_str(&text).unwrap();
        let t0 = &v["trunks"].as_array().unwrap()[0];
        assert_eq!(t0["name"].as_str(), Some("we\"ird"));
        assert_eq!(t0["secret"].as_str(), Some("p#ss\"word\\"));
        assert!(t0.get("username").is_none());
        // nothing imported: no `trunks = []` to clash with the user's file
        let empty = trunks_toml(&[]).unwrap();
        assert!(toml::from_str::<toml::Table>(&empty).unwrap().is_empty());
    }

    #[test]
    fn dial_plan_lines_become_routes() {
        let i = run(
            "[22TRUNK]\ntype=friend\nhost=127.0.0.2\ninsecure=very\ncontext=FROMSIP\n\
             [prov]\ntype=peer\nhost=192.0.2.10\ninsecure=very\n",
            Some(
                "[globals]\nPROV=prov\n\
                 [from-internal]\n\
                 exten => _90.,1,Dial(SIP/22TRUNK/91${EXTEN:2},40,m(default))\n\
                 exten => _0X.,1,Set(CALLERID(num)=1133334444)\n\
                 same => n,Dial(SIP/${EXTEN:1}@${PROV})\n\
                 same => n,Dial(PJSIP/${exten:-8}@22TRUNK)\n\
                 same => n,Hangup()\n\
                 exten => 1001,1,Dial(SIP/1001)\n\
                 exten => _2XXX,1,Dial(SIP/a&SIP/b)\n\
                 exten => _3XXX,1,Dial(DAHDI/g1/${EXTEN})\n\
                 exten => _4XXX,1,Goto(other,s,1)\n\
                 include => outbound\n\
                 [outbound]\n\
                 exten => _9.,1,Dial(SIP/prov/${EXTEN:1})\n\
                 [FROMSIP]\n\
                 exten => _91.,1,Dial(SIP/${EXTEN:2})\n\
                 exten => s,1,Dial(SIP/1001)\n",
            ),
        );
        let routes = i.routes.as_ref().unwrap();
        let by = |n: &str| {
            routes
                .iter()
                .find(|r| r.name == n)
                .unwrap_or_else(|| panic!("no route {n} in {routes:#?}"))
        };
        // literal extensions first, then by specificity
        let names: Vec<&str> = routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "from-internal/1001/1",
                "from-internal/_0X./1",
                "from-internal/_0X./2",
                "from-internal/_90./1",
                "FROMSIP/_91./1",
                "outbound/_9./1",
            ]
        );
        let r = by("from-internal/_90./1");
        assert_eq!(r.b, [Filter::Asterisk("_90.".into())]);
        assert_eq!(r.destination, Destination::Trunk("22TRUNK".into()));
        assert_eq!(r.b_rewrite.as_deref(), Some("91${EXTEN:2}"));
        assert_eq!(r.ring_timeout_s, Some(40));
        assert!(r.source.is_empty());
        assert!(r.retry_on.is_empty());
        let r = by("from-internal/_0X./1");
        assert_eq!(r.destination, Destination::Trunk("prov".into()));
        assert_eq!(r.b_rewrite.as_deref(), Some("${EXTEN:1}"));
        assert_eq!(r.a_rewrite.as_deref(), Some("1133334444"));
        assert!(r.retry_on.contains(&"5xx".to_string()));
        let r = by("from-internal/_0X./2");
        assert_eq!(r.b_rewrite.as_deref(), Some("${EXTEN:-8}"));
        assert_eq!(r.destination, Destination::Trunk("22TRUNK".into()));
        assert!(r.retry_on.is_empty());
        let r = by("from-internal/1001/1");
        assert_eq!(r.b, [Filter::Exact("1001".into())]);
        assert_eq!(r.destination, Destination::User("1001".into()));
        // FROMSIP is 22TRUNK's context
        let r = by("FROMSIP/_91./1");
        assert_eq!(r.source, ["trunk:22TRUNK"]);
        assert_eq!(r.destination, Destination::User("${EXTEN:2}".into()));
        // outbound is included only by an unbound context: anyone
        assert!(by("outbound/_9./1").source.is_empty());

        let json = routes_json(routes);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["routes"][3]["b"][0]["asterisk"], "_90.");
        assert_eq!(v["no_route"]["code"], 404);

        // reported
        assert!(has_note(&i, 4, Level::Info, "m(default)"));
        assert!(has_note(&i, 8, Level::Info, "Hangup"));
        assert!(has_note(&i, 10, Level::Untranslated, "parallel"));
        assert!(has_note(&i, 11, Level::Untranslated, "DAHDI"));
        assert!(has_note(&i, 12, Level::Untranslated, "Goto"));
        assert!(has_note(
            &i,
            18,
            Level::Untranslated,
            "special extension `s`"
        ));
    }

    #[test]
    fn variables_translate_or_fail() {
        let g = HashMap::from([("TRUNK".to_string(), "prov".to_string())]);
        assert_eq!(vars_with("91${exten:2}", &g).unwrap(), "91${EXTEN:2}");
        assert_eq!(vars_with("${CALLERID(num)}", &g).unwrap(), "${A}");
        assert_eq!(vars_with("SIP/${TRUNK}/x", &g).unwrap(), "SIP/prov/x");
        assert!(vars_with("${FOO}", &g).is_err());
        assert!(vars_with("$[${EXTEN}+1]", &g).is_err());
        assert!(vars_with("${EXTEN:a}", &g).is_err());
    }

    #[test]
    fn lexer_comments() {
        let items = lex("; c\n[a] ; x\nk = v\\;w ; c\n;-- block\nk2=v2\n--; k3 => v3\n");
        assert_eq!(items.len(), 3);
        assert_eq!(items[1].0, 3);
        assert_eq!(
            items[1].1,
            Item::Kv {
                key: "k".into(),
                value: "v;w".into(),
                comment: "c".into()
            }
        );
        assert_eq!(items[2].0, 6);
        assert!(matches!(&items[2].1, Item::Kv { key, value, .. } if key == "k3" && value == "v3"));
    }
}
