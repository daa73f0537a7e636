//! Switch configuration (TOML).
//!
//! The agreed format and CLI (also in docs/config.md):
//!
//! ```toml
//! # strowger.toml (every section optional; defaults shown)
//! [sip]
//! listen = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]   # also "tls:127.0.0.1:5061", "udp:[::1]:5060"
//! domain = "strowger.local"          # default domain and digest realm
//! user_agent = "Strowger/0.1"
//! t1_ms = 500
//! t2_ms = 4000
//! t4_ms = 5000
//! max_udp_size = 1300                # larger requests go over TCP (RFC 3261 §18.1.1)
//! max_message_size = 32768           # larger messages get 513 (or are dropped)
//! max_connections = 0                # TCP/TLS connections; 0 = auto (half the fd limit, <= 4096)
//! max_connections_per_ip = 256
//! tcp_idle_timeout_s = 300           # no message or CRLF keep-alive this long -> close (0 = never)
//! tcp_message_timeout_s = 20         # a started message must complete this fast (0 = never)
//! tcp_max_send_queue_bytes = 1048576 # a peer that does not read is disconnected above this
//! response_cache_max_entries = 100000
//! response_cache_max_bytes = 67108864
//! response_cache_max_entry_bytes = 16384
//! max_tracked_sources = 100000       # rate-limit / auth-failure table size
//! udp_recv_buffer_bytes = 8388608    # kernel receive buffer per UDP listener (0 = system default)
//!
//! [tls]                              # needed when a tls: listener is configured
//! cert = "cert.pem"                  # paths relative to the config file's directory
//! key = "key.pem"
//!
//! [store]
//! path = "strowger.db"               # embedded store (SQLite); relative to the config file's dir
//!
//! [plugins]
//! dir = "..."                        # where <name>.wasm plugins are found; default $STROWGER_PLUGIN_DIR
//! cache_dir = "..."                  # compiled-component cache; default <store dir>/cache
//! max_deadline_ms = 2000             # largest deadline_ms a binding may ask for (1..=10000)
//! init_deadline_ms = 2000            # CPU budget of instantiation + init; twice this of wall time
//! wall_limit_ms = 500                # wall-time limit per decision: max(this, 2 x deadline_ms)
//! decision_threads = 2               # plugin threads (default: one per CPU, 2..=16)
//! decision_queue = 256               # decisions that may wait for a plugin thread; more get the fallback
//!
//! [auth]
//! algorithms = ["md5", "sha256"]     # offered side by side, in this order (docs/config.md)
//! nonce_ttl_s = 300
//! allow_no_qop = false              # RFC 2069 responses (no qop): refused
//!
//! [registrar]
//! min_expires = 60
//! max_expires = 3600
//! default_expires = 3600
//!
//! [calls]
//! ring_timeout_s = 60
//! max_forwards = 70
//! timezone_offset_minutes = 0        # local time seen by plugins
//!
//! [media]                            # built-in RTP relay (docs/config.md "[media]")
//! enabled = true
//! # ip = "203.0.113.10"              # bind + advertise; default: the first SIP listener's IP
//! # advertise_ip = "198.51.100.7"    # written into SDP when it differs (1:1 NAT)
//! port_min = 20000
//! port_max = 30000
//! timeout_s = 30                     # no RTP this long on an answered call -> BYE (0 = off)
//! mode = "relay"                     # relay | bypass, for decisions that name none
//!
//! [[users]]
//! user = "1001"
//! password = "demo1001"
//! # domain = "strowger.local"
//!
//! [[trunks]]                         # see docs/config.md "Trunks" for every field
//! name = "carrier"
//! host = "127.0.0.2"                 # IP, DNS name, or "dynamic" (the peer registers to us)
//! port = 5060
//! transport = "udp"
//! inbound = "ip"                     # ip | register | digest | none
//! ignore_source_port = true
//! # username/auth_username/secret, fromuser/fromdomain, register/did/register_expires/
//! # register_retry_s/register_attempts, qualify_s, codecs, dtmf, media, max_calls_in/
//! # max_calls_out/max_calls, caller_id, ruri_params, use_pai, b_from, proxies, proxy_timeout_ms
//!
//! [[trunk_groups]]
//! name = "carriers"
//! algorithm = "calls"                # calls (proportional to forwarded calls) | active
//! force_proportional = false
//! members = [{ trunk = "carrier", weight = 1 }]
//!
//! [protection]                       # on by default; trusted trunks are exempt
//! ban_failures = 3                   # failed authentications ...
//! ban_window_s = 60                  # ... within this window ...
//! ban_time_s = 300                   # ... ban the source address this long
//! rate_limit = 200                   # requests per second per source address (0 = off)
//! scanner_user_agents = "friendly-scanner|sipvicious|sipcli|sip-scan|sundayddr|iWar|VaxSIPUserAgent"
//!
//! [[bindings]]                       # the initial policy: hook -> plugin
//! hook = "route"                      # route | authorize | portability | rewrite
//! plugin = "route-table"              # a name in plugins.dir (route-table -> route-table.wasm) or a path to a .wasm
//! config_file = "routes.json"         # or inline: config = { ... } (a TOML table turned into JSON)
//! scope = "global"                    # or a trunk name
//! deadline_ms = 5
//! fallback = { reject = { code = 503, reason = "Routing unavailable" } }
//! datasets = ["br-ported"]
//!
//! [[datasets]]
//! name = "br-ported"
//! file = "ported.csv"                 # key,value rows
//! ```
//! CLI: `strowger serve [--config FILE] [--demo] [--plugin-dir DIR]`. `--demo` without a file = built-in demo config: listen udp+tcp 127.0.0.1:5060 only, users 1001–1010 with password `demo<ext>`, store in `./strowger-demo.db` (or a data dir), route binding `route-table` with `guest-examples/rust/route-table/demo-config.json` (embedded into the binary with `include_str!`), prints a clear warning that demo credentials are active. On start the switch logs (stderr) `listening on <transport>:<addr>` per listener; SIGTERM/SIGINT shut it down cleanly (flush the store).
//!
//! # Implementation notes
//!
//! * Every section and field has a default ([`Config::default`] is a working
//!   switch on 127.0.0.1:5060 with no users, trunks or plugins).
//! * Unknown keys are refused with their name (`deny_unknown_fields`), so a
//!   typo never silently falls back to a default.
//! * [`Config::from_file`] resolves relative paths (TLS files, store, plugin
//!   dir/cache, binding `config_file`, path-like `plugin`, data set files)
//!   against the directory of the config file, then validates the whole
//!   config and reports *every* problem found, not just the first.
//! * [`Config::demo`] is the built-in `--demo` configuration.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Environment variable naming the default plugin directory.
pub const PLUGIN_DIR_ENV: &str = "STROWGER_PLUGIN_DIR";

/// Warning the switch prints when it runs with [`Config::demo`].
pub const DEMO_WARNING: &str = "DEMO MODE: users 1001-1010 with passwords demo1001..demo1010 are active; \
     do not expose this switch to any network you do not control";

/// The route-table demo routes (`guest-examples/rust/route-table/demo-config.json`),
/// embedded into the binary and used by [`Config::demo`].
pub const DEMO_ROUTE_CONFIG: &str =
    include_str!("../../../guest-examples/rust/route-table/demo-config.json");

/// A configuration problem: unreadable file, TOML syntax/type error (with
/// line, column and the offending key) or failed validation.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file named by (or containing) the configuration could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// TOML (or JSON, for binding config files) that does not parse or does
    /// not fit the schema, e.g. an unknown key.
    #[error("{}: {message}", path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "config".into()))]
    Parse {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// The parser's message (names the key and position).
        message: String,
    },
    /// The configuration parsed but is inconsistent; every problem is listed.
    #[error("invalid configuration: {}", problems.join("; "))]
    Invalid {
        /// One human-readable sentence per problem.
        problems: Vec<String>,
    },
}

/// SIP transport of a listener or trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// UDP (RFC 3261 §18).
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP (`sips:`); needs the `[tls]` section for listeners.
    Tls,
}

impl Transport {
    /// Lower-case name as written in the config (`udp`, `tcp`, `tls`).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    /// The default port: 5061 for TLS, 5060 otherwise.
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Tls => 5061,
            _ => 5060,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "udp" => Ok(Transport::Udp),
            "tcp" => Ok(Transport::Tcp),
            "tls" => Ok(Transport::Tls),
            other => Err(format!(
                "unknown transport `{other}` (expected udp, tcp or tls)"
            )),
        }
    }
}

/// One listener: `udp:127.0.0.1:5060`, `tcp:[::1]:5060`, `tls:0.0.0.0:5061`.
/// The port may be omitted (`udp:127.0.0.1` = 5060, `tls:...` = 5061).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Listen {
    /// Transport of the socket.
    pub transport: Transport,
    /// Local address and port to bind.
    pub addr: SocketAddr,
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}

impl FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "listen \"{s}\": {why} (expected TRANSPORT:IP:PORT, e.g. \"udp:127.0.0.1:5060\" or \"tcp:[::1]:5060\")"
            )
        };
        let (transport, rest) = s.split_once(':').ok_or_else(|| bad("missing transport"))?;
        let transport: Transport = transport.parse().map_err(|e: String| bad(&e))?;
        if rest.is_empty() {
            return Err(bad("missing address"));
        }
        if let Ok(addr) = rest.parse::<SocketAddr>() {
            return Ok(Listen { transport, addr });
        }
        if rest.parse::<Ipv6Addr>().is_ok() {
            return Err(bad(
                "IPv6 addresses must be written in brackets, e.g. [::1]:5060",
            ));
        }
        let bare = rest
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(rest);
        match bare.parse::<IpAddr>() {
            Ok(ip) => Ok(Listen {
                transport,
                addr: SocketAddr::new(ip, transport.default_port()),
            }),
            Err(_) => Err(bad("not an IP address and port")),
        }
    }
}

impl TryFrom<String> for Listen {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Listen> for String {
    fn from(l: Listen) -> String {
        l.to_string()
    }
}

/// The whole switch configuration (one TOML file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[sip]`: listeners, domain and protocol timers.
    pub sip: SipConfig,
    /// `[tls]`: certificate and key for `tls:` listeners.
    pub tls: Option<TlsConfig>,
    /// `[store]`: the embedded database.
    pub store: StoreConfig,
    /// `[plugins]`: where `.wasm` plugins and their compile cache live.
    pub plugins: PluginsConfig,
    /// `[auth]`: digest authentication.
    pub auth: AuthConfig,
    /// `[registrar]`: registration expiry limits.
    pub registrar: RegistrarConfig,
    /// `[calls]`: call handling defaults.
    pub calls: CallsConfig,
    /// `[media]`: the built-in RTP relay.
    pub media: crate::media::MediaSettings,
    /// `[[users]]`: SIP users (digest credentials).
    pub users: Vec<UserConfig>,
    /// `[[trunks]]`: peers (carriers, PBXs, SBCs).
    pub trunks: Vec<TrunkConfig>,
    /// `[[trunk_groups]]`: weighted groups of trunks.
    pub trunk_groups: Vec<TrunkGroupConfig>,
    /// `[protection]`: brute-force bans, flood limits, scanner filter.
    pub protection: ProtectionConfig,
    /// `[[bindings]]`: the initial policy, hook -> plugin.
    pub bindings: Vec<BindingConfig>,
    /// `[[datasets]]`: key/value tables plugins may look up.
    pub datasets: Vec<DatasetConfig>,
    /// `[admin]`: the admin HTTP API.
    pub admin: AdminConfig,
    /// `[log]`: log format and level (`strowger serve`).
    pub log: LogConfig,
    /// Directory relative paths were resolved against (the config file's
    /// directory; the working directory for [`Config::parse`] callers that
    /// pass `.`). Not part of the file.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sip: SipConfig::default(),
            tls: None,
            store: StoreConfig::default(),
            plugins: PluginsConfig::default(),
            auth: AuthConfig::default(),
            registrar: RegistrarConfig::default(),
            calls: CallsConfig::default(),
            media: crate::media::MediaSettings::default(),
            users: Vec::new(),
            trunks: Vec::new(),
            trunk_groups: Vec::new(),
            protection: ProtectionConfig::default(),
            bindings: Vec::new(),
            datasets: Vec::new(),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
            base_dir: PathBuf::from("."),
        }
    }
}

/// `[sip]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Listeners; default udp and tcp on 127.0.0.1:5060.
    pub listen: Vec<Listen>,
    /// Default domain and digest realm.
    pub domain: String,
    /// User-Agent / Server header value.
    pub user_agent: String,
    /// RFC 3261 T1 (RTT estimate), milliseconds.
    pub t1_ms: u64,
    /// RFC 3261 T2 (max retransmit interval for non-INVITE), milliseconds.
    pub t2_ms: u64,
    /// RFC 3261 T4 (max time a message stays in the network), milliseconds.
    pub t4_ms: u64,
    /// Requests larger than this go over TCP (RFC 3261 §18.1.1).
    pub max_udp_size: usize,
    /// Largest message accepted on any transport; larger requests get 513
    /// Message Too Large. 32 KiB holds any real INVITE with SDP while
    /// refusing header-stuffing floods.
    pub max_message_size: usize,
    /// Most TCP/TLS connections accepted at once (more are closed at
    /// accept). 0 = automatic: half the file-descriptor limit (raised to
    /// its hard maximum at start), at most 4096.
    pub max_connections: usize,
    /// Most TCP/TLS connections accepted at once from one IP address.
    pub max_connections_per_ip: usize,
    /// A TCP/TLS connection with no complete message or CRLF keep-alive
    /// for this long is closed (0 = never).
    pub tcp_idle_timeout_s: u64,
    /// A message started on a TCP/TLS connection must be complete within
    /// this long, else the connection is closed (slowloris; 0 = never).
    pub tcp_message_timeout_s: u64,
    /// Most bytes queued for a TCP/TLS peer that does not read its
    /// responses; above, the connection is closed.
    pub tcp_max_send_queue_bytes: usize,
    /// Response (retransmission) cache: most entries.
    pub response_cache_max_entries: usize,
    /// Response cache: most bytes.
    pub response_cache_max_bytes: usize,
    /// Response cache: a larger response is not cached.
    pub response_cache_max_entry_bytes: usize,
    /// Most source addresses tracked for the rate limit and for
    /// authentication failures.
    pub max_tracked_sources: usize,
    /// Kernel receive buffer of each UDP listener, bytes (0 = the system
    /// default, about 208 KiB on Linux).
    pub udp_recv_buffer_bytes: usize,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: vec![
                Listen {
                    transport: Transport::Udp,
                    addr: SocketAddr::from(([127, 0, 0, 1], 5060)),
                },
                Listen {
                    transport: Transport::Tcp,
                    addr: SocketAddr::from(([127, 0, 0, 1], 5060)),
                },
            ],
            domain: "strowger.local".into(),
            user_agent: "Strowger/0.1".into(),
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            max_udp_size: 1300,
            max_message_size: 32 * 1024,
            max_connections: 0,
            max_connections_per_ip: 256,
            tcp_idle_timeout_s: 300,
            tcp_message_timeout_s: 20,
            tcp_max_send_queue_bytes: 1024 * 1024,
            response_cache_max_entries: 100_000,
            response_cache_max_bytes: 64 * 1024 * 1024,
            response_cache_max_entry_bytes: 16 * 1024,
            max_tracked_sources: 100_000,
            udp_recv_buffer_bytes: 8 * 1024 * 1024,
        }
    }
}

impl SipConfig {
    /// T1 as a duration.
    pub fn t1(&self) -> Duration {
        Duration::from_millis(self.t1_ms)
    }
    /// T2 as a duration.
    pub fn t2(&self) -> Duration {
        Duration::from_millis(self.t2_ms)
    }
    /// T4 as a duration.
    pub fn t4(&self) -> Duration {
        Duration::from_millis(self.t4_ms)
    }
}

/// `[tls]`: PEM certificate chain and private key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain (leaf first).
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// SQLite database file (created if missing).
    pub path: PathBuf,
    /// Most failed writes (registrations, CDRs) held in memory for retry;
    /// beyond it each further failed write is dropped, logged and counted.
    pub retry_queue: usize,
    /// Longest wait between two retries of failed writes, ms.
    pub retry_backoff_max_ms: u32,
    /// How long a write waits for a lock held by another process before
    /// it fails (and is retried), ms.
    pub busy_timeout_ms: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: PathBuf::from("strowger.db"),
            retry_queue: 10_000,
            retry_backoff_max_ms: 5_000,
            busy_timeout_ms: 10_000,
        }
    }
}

impl StoreConfig {
    /// The store's open options.
    pub fn options(&self) -> strowger_store::StoreOptions {
        strowger_store::StoreOptions {
            busy_timeout: std::time::Duration::from_millis(self.busy_timeout_ms as u64),
            retry_queue: self.retry_queue,
            retry_backoff_max: std::time::Duration::from_millis(self.retry_backoff_max_ms as u64),
            ..strowger_store::StoreOptions::default()
        }
    }
}

/// `[plugins]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Directory of `<name>.wasm` plugins; none = `$STROWGER_PLUGIN_DIR`,
    /// else `plugins` next to the config file. See [`Config::plugin_dir`].
    pub dir: Option<PathBuf>,
    /// Compiled-component cache; none = `<store dir>/cache`. See
    /// [`Config::cache_dir`].
    pub cache_dir: Option<PathBuf>,
    /// Largest `deadline_ms` a binding may ask for (also through the admin
    /// API); none = 2000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deadline_ms: Option<u64>,
    /// CPU budget of instantiation plus `init`, ms (twice this of wall
    /// time); none = 2000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_deadline_ms: Option<u64>,
    /// Wall-time limit of a decision, ms: the larger of this and twice the
    /// binding's `deadline_ms`; none = 500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_limit_ms: Option<u64>,
    /// Threads that run plugin code; none = one per CPU, 2..=16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_threads: Option<usize>,
    /// Decisions that may wait for a plugin thread; more get the binding's
    /// fallback at once. None = 256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_queue: Option<usize>,
}

impl PluginsConfig {
    /// Default of [`PluginsConfig::max_deadline_ms`].
    pub const DEFAULT_MAX_DEADLINE_MS: u64 = 2000;

    /// The largest `deadline_ms` a binding may ask for.
    pub fn max_deadline_ms(&self) -> u64 {
        self.max_deadline_ms
            .unwrap_or(Self::DEFAULT_MAX_DEADLINE_MS)
    }

    /// Copies the limits set here into the plugin runtime's configuration.
    pub fn apply_limits(&self, rc: &mut strowger_plugin::RuntimeConfig) {
        rc.max_deadline = Duration::from_millis(self.max_deadline_ms());
        if let Some(ms) = self.init_deadline_ms {
            rc.init_deadline = Duration::from_millis(ms);
        }
        if let Some(ms) = self.wall_limit_ms {
            rc.wall_limit = Duration::from_millis(ms);
        }
        if let Some(n) = self.decision_threads {
            rc.decision_threads = n;
        }
        if let Some(n) = self.decision_queue {
            rc.decision_queue = n;
        }
    }
}

/// A digest algorithm (RFC 8760).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DigestAlgorithm {
    /// `SHA-256`.
    #[serde(
        rename = "sha256",
        alias = "SHA-256",
        alias = "sha-256",
        alias = "SHA256"
    )]
    Sha256,
    /// `MD5` (what most deployed phones speak).
    #[serde(rename = "md5", alias = "MD5")]
    Md5,
}

/// `[auth]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Challenges offered side by side, in this order. Default MD5 then
    /// SHA-256: SIPp and many deployed phones answer only the first
    /// challenge and speak only MD5; clients that implement RFC 8760 still
    /// find SHA-256 offered (docs/config.md `[auth]`).
    pub algorithms: Vec<DigestAlgorithm>,
    /// Lifetime of a nonce, seconds; older ones get `stale=true`.
    pub nonce_ttl_s: u64,
    /// Accept digest responses without `qop` (RFC 2069 clients). Off by
    /// default: such a response has no nonce-count, so when allowed each
    /// nonce is good for one request from the address it was issued to.
    pub allow_no_qop: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            algorithms: vec![DigestAlgorithm::Md5, DigestAlgorithm::Sha256],
            nonce_ttl_s: 300,
            allow_no_qop: false,
        }
    }
}

impl AuthConfig {
    /// Nonce lifetime as a duration.
    pub fn nonce_ttl(&self) -> Duration {
        Duration::from_secs(self.nonce_ttl_s)
    }
}

/// `[log]`: how `strowger serve` writes its log (stderr).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (one human-readable line per event; ANSI colours only when
    /// stderr is a terminal) or `json` (one JSON object per line).
    /// `$STROWGER_LOG_FORMAT` overrides it.
    pub format: LogFormat,
    /// Filter in `tracing` directive syntax (`info`,
    /// `warn,strowger_switch=debug`). `$STROWGER_LOG` overrides it; the
    /// admin API's `PUT /v1/log/level` changes it at run time.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "log format \"{other}\": expected \"text\" or \"json\""
            )),
        }
    }
}

/// `[admin]`: the admin HTTP API (served by `strowger serve`). Its
/// `Debug` does not show the token.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Serve the API at all (default true).
    pub enabled: bool,
    /// TCP address; default `127.0.0.1:8080` (loopback only).
    pub listen: SocketAddr,
    /// Bearer token for every request except `/healthz`, `/readyz`,
    /// `/metrics`; none = `$STROWGER_ADMIN_TOKEN`; neither = the token in
    /// [`AdminConfig::token_file`] (generated at first start).
    pub token: Option<String>,
    /// File holding the token when neither `token` nor
    /// `$STROWGER_ADMIN_TOKEN` is set: created (mode 0600) with a random
    /// token at first start. None = [`ADMIN_TOKEN_FILE`] next to the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Largest JSON request body, bytes (policies, trunks, users, simulate).
    pub max_body_bytes: usize,
    /// Largest plugin upload (`POST /v1/plugins`), bytes.
    pub max_plugin_bytes: usize,
    /// Largest data-set upload (`POST /v1/datasets/{name}`), bytes.
    pub max_dataset_bytes: u64,
}

/// File name of the generated admin API token, next to the store file
/// (`strowger` CLI commands read it from the current directory by default).
pub const ADMIN_TOKEN_FILE: &str = "strowger-admin.token";

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
            token_file: None,
            max_body_bytes: 1 << 20,
            max_plugin_bytes: 64 << 20,
            max_dataset_bytes: 256 << 20,
        }
    }
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("enabled", &self.enabled)
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("token_file", &self.token_file)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_plugin_bytes", &self.max_plugin_bytes)
            .field("max_dataset_bytes", &self.max_dataset_bytes)
            .finish()
    }
}

/// `[registrar]`: expiry limits, seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrarConfig {
    /// Shorter requested expiries get 423 Interval Too Brief (Min-Expires).
    pub min_expires: u32,
    /// Longer requested expiries are clamped to this.
    pub max_expires: u32,
    /// Granted when the REGISTER asks for none.
    pub default_expires: u32,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
        }
    }
}

/// `[calls]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallsConfig {
    /// Default per-attempt ring timeout, seconds.
    pub ring_timeout_s: u32,
    /// Max-Forwards set on requests that arrive without one (and the cap).
    pub max_forwards: u8,
    /// Offset of the local time zone from UTC as seen by plugins, minutes.
    pub timezone_offset_minutes: i32,
}

impl Default for CallsConfig {
    fn default() -> Self {
        CallsConfig {
            ring_timeout_s: 60,
            max_forwards: 70,
            timezone_offset_minutes: 0,
        }
    }
}

impl CallsConfig {
    /// Ring timeout as a duration.
    pub fn ring_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.ring_timeout_s))
    }
}

/// `[[users]]`: one SIP user with digest credentials. Its `Debug` does not
/// show the password.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// User part of the AOR and digest username, e.g. `1001`.
    pub user: String,
    /// Digest password.
    pub password: String,
    /// Domain of the AOR; none = `sip.domain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

impl std::fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserConfig")
            .field("user", &self.user)
            .field("password", &"***")
            .field("domain", &self.domain)
            .finish()
    }
}

impl UserConfig {
    /// The user's domain, falling back to `default_domain`.
    pub fn domain_or<'a>(&'a self, default_domain: &'a str) -> &'a str {
        self.domain.as_deref().unwrap_or(default_domain)
    }

    /// The address-of-record, e.g. `sip:1001@strowger.local`.
    pub fn aor(&self, default_domain: &str) -> String {
        format!("sip:{}@{}", self.user, self.domain_or(default_domain))
    }
}

/// How a trunk's inbound requests are recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Inbound {
    /// Requests from the trunk's host (IP) are trusted without digest.
    #[default]
    Ip,
    /// The peer registers to us (`host = "dynamic"`) with `username` /
    /// `secret`; requests from its registered flow are trusted and calls
    /// to the trunk go to its registered contact.
    Register,
    /// Every initial request from the trunk's host is challenged with the
    /// trunk's `username` / `secret` (digest per call).
    Digest,
    /// Outbound only: nothing is accepted from this trunk as such.
    None,
}

pub use strowger_types::DtmfMode;

/// Media handling default of a trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaMode {
    /// Anchor RTP on the switch.
    #[default]
    Relay,
    /// SDP passes end to end (Asterisk `canreinvite`, TVox "peer to peer").
    Bypass,
}

/// Where the B number of an inbound call is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BFrom {
    /// The Request-URI user part.
    #[default]
    Ruri,
    /// The To URI user part.
    To,
}

/// `[[trunks]]`: a peer the switch sends calls to and/or trusts. Its
/// `Debug` shows neither `secret` nor the secret of `register_string`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    /// Unique name, used by routing decisions and CDRs.
    pub name: String,
    /// IP address or host name of the peer.
    pub host: String,
    /// Port of the peer.
    #[serde(default = "default_sip_port")]
    pub port: u16,
    /// Transport towards the peer.
    #[serde(default = "default_transport")]
    pub transport: Transport,
    /// Inbound trust (`ip` or `none`).
    #[serde(default)]
    pub inbound: Inbound,
    /// Match inbound requests on the source IP only (the port is ignored).
    #[serde(default = "default_true")]
    pub ignore_source_port: bool,
    /// User for outbound registration and digest towards the peer; for
    /// `inbound = "register"`/`"digest"` the user the peer authenticates as
    /// (default: the trunk name).
    #[serde(default)]
    pub username: Option<String>,
    /// Digest user name when it differs from `username`.
    #[serde(default)]
    pub auth_username: Option<String>,
    /// Password for both directions.
    #[serde(default)]
    pub secret: Option<String>,
    /// User part of From on calls to the trunk (default: the A number).
    #[serde(default)]
    pub fromuser: Option<String>,
    /// Host part of From on calls to the trunk (default: our domain).
    #[serde(default)]
    pub fromdomain: Option<String>,
    /// Register to the peer (we are its client).
    #[serde(default)]
    pub register: bool,
    /// Asterisk register string `user[:secret[:authuser]]@host[:port][/did]`;
    /// sets `username`, `secret`, `auth_username`, `host`, `port`, `did`
    /// and `register = true` (applied when the file is loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register_string: Option<String>,
    /// B number given to inbound calls that arrive for our registration
    /// (the `/token` of an Asterisk register string).
    #[serde(default)]
    pub did: Option<String>,
    /// Requested registration expiry, seconds.
    #[serde(default = "default_register_expires")]
    pub register_expires: u32,
    /// Wait before retrying a failed registration, seconds.
    #[serde(default = "default_register_retry")]
    pub register_retry_s: u32,
    /// Failed attempts before giving up (0 = keep trying).
    #[serde(default)]
    pub register_attempts: u32,
    /// OPTIONS interval, seconds (0 = off).
    #[serde(default)]
    pub qualify_s: u32,
    /// Codec allow list (`None` = all).
    #[serde(default)]
    pub codecs: Option<Vec<String>>,
    /// DTMF mode.
    #[serde(default)]
    pub dtmf: DtmfMode,
    /// Media relay or bypass for calls to the trunk when the decision does
    /// not say (none = the `[media]` default).
    #[serde(default)]
    pub media: Option<MediaMode>,
    /// Concurrent inbound calls (absent = unlimited, 0 = none).
    #[serde(default)]
    pub max_calls_in: Option<u32>,
    /// Concurrent outbound calls (absent = unlimited, 0 = none).
    #[serde(default)]
    pub max_calls_out: Option<u32>,
    /// Concurrent calls in both directions (absent = unlimited).
    #[serde(default)]
    pub max_calls: Option<u32>,
    /// Unified caller number: replaces A on calls to the trunk.
    #[serde(default)]
    pub caller_id: Option<String>,
    /// Extra Request-URI parameters on calls to the trunk (`user=phone`).
    #[serde(default)]
    pub ruri_params: Option<String>,
    /// Take A from P-Asserted-Identity on inbound calls.
    #[serde(default)]
    pub use_pai: bool,
    /// Take B from the Request-URI or the To header on inbound calls.
    #[serde(default)]
    pub b_from: BFrom,
    /// Outbound proxies `host[:port]`, tried in order: a proxy that does
    /// not answer at all within `proxy_timeout_ms` is skipped for the next
    /// (no route retry). Inbound requests from them are the trunk's too.
    #[serde(default)]
    pub proxies: Vec<String>,
    /// Fallback timeout per proxy, milliseconds.
    #[serde(default = "default_proxy_timeout")]
    pub proxy_timeout_ms: u32,
    /// Session timer (RFC 4028) offered on calls to the trunk, seconds
    /// (0 = off): a call whose session is not refreshed is ended.
    #[serde(default = "default_session_expires")]
    pub session_expires_s: u32,
}

fn default_session_expires() -> u32 {
    1800
}

fn default_proxy_timeout() -> u32 {
    2000
}

fn default_register_expires() -> u32 {
    3600
}
fn default_register_retry() -> u32 {
    60
}

/// Member selection of a trunk group (the two Khomp algorithms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupAlgorithm {
    /// Proportional to the calls forwarded so far.
    #[default]
    Calls,
    /// Proportional to the calls active now.
    Active,
}

/// One member of a trunk group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupMember {
    /// Trunk name.
    pub trunk: String,
    /// Share of calls; 0 = only used when retrying after another member failed.
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

/// `[[trunk_groups]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkGroupConfig {
    /// Name used by routing decisions.
    pub name: String,
    /// Selection algorithm.
    #[serde(default)]
    pub algorithm: GroupAlgorithm,
    /// Keep the proportion even when a member is busy or down (the call
    /// fails over inside the group instead of the share drifting).
    #[serde(default)]
    pub force_proportional: bool,
    /// Members.
    pub members: Vec<GroupMember>,
}

/// `[protection]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProtectionConfig {
    /// Failed authentications from one address ...
    pub ban_failures: u32,
    /// ... within this many seconds ...
    pub ban_window_s: u32,
    /// ... ban the address for this many seconds (0 = bans off).
    pub ban_time_s: u32,
    /// Requests per second accepted per source address (0 = no limit).
    pub rate_limit: u32,
    /// User-Agent regex whose requests are dropped silently.
    pub scanner_user_agents: String,
}

impl Default for ProtectionConfig {
    fn default() -> Self {
        ProtectionConfig {
            ban_failures: 3,
            ban_window_s: 60,
            ban_time_s: 300,
            rate_limit: 200,
            scanner_user_agents:
                "friendly-scanner|sipvicious|sipcli|sip-scan|sundayddr|iWar|VaxSIPUserAgent".into(),
        }
    }
}

impl std::fmt::Debug for TrunkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // every field, by its serialized form, with the secrets masked
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            if let Some(x) = o.get_mut("secret")
                && !x.is_null()
            {
                *x = "***".into();
            }
            if let Some(x) = o.get_mut("register_string")
                && let Some(r) = x.as_str()
            {
                *x = redact_register_string(r).into();
            }
        }
        write!(f, "TrunkConfig {v}")
    }
}

/// Keys whose values are secrets (matched case-insensitively as a part of
/// the key): their values never appear in error messages or logs.
const SECRET_KEY_PARTS: [&str; 5] = ["password", "secret", "token", "register", "ha1"];

fn is_secret_key(key: &str) -> bool {
    let k = key.trim().trim_matches('"').to_ascii_lowercase();
    SECRET_KEY_PARTS.iter().any(|p| k.contains(p))
}

/// A parser message for `text` with the value of every secret key in
/// `text` replaced by `***` (the TOML parser quotes the offending line and
/// sometimes the value itself).
fn scrub_secrets(message: &str, text: &str) -> String {
    let mut out = message.to_string();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if !is_secret_key(key) {
            continue;
        }
        let v = value.trim();
        // the value as written, and without its quotes
        let bare = v.trim_matches(|c| c == '"' || c == '\'');
        for needle in [v, bare] {
            if needle.len() >= 2 {
                out = out.replace(needle, "***");
            }
        }
    }
    out
}

pub use strowger_types::redact_register_string;

impl TrunkConfig {
    /// True for `host = "dynamic"`.
    pub fn is_dynamic(&self) -> bool {
        self.host.eq_ignore_ascii_case("dynamic")
    }

    /// The user the peer authenticates as / we register as.
    pub fn user(&self) -> &str {
        self.username.as_deref().unwrap_or(&self.name)
    }

    /// Applies an Asterisk-style register string
    /// `user[:secret[:authuser]]@host[:port][/did]`.
    pub fn apply_register_string(&mut self, s: &str) -> Result<(), String> {
        // errors quote the string without its secret
        let shown = redact_register_string(s);
        let (cred, rest) = s
            .rsplit_once('@')
            .ok_or_else(|| format!("register string \"{shown}\" has no '@'"))?;
        let (hostport, did) = match rest.split_once('/') {
            Some((h, d)) => (h, Some(d)),
            None => (rest, None),
        };
        let mut c = cred.splitn(3, ':');
        let user = c.next().unwrap_or_default();
        if user.is_empty() {
            return Err(format!("register string \"{shown}\" has no user"));
        }
        self.username = Some(user.to_string());
        if let Some(sec) = c.next() {
            self.secret = Some(sec.to_string());
        }
        if let Some(a) = c.next() {
            self.auth_username = Some(a.to_string());
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || h.ends_with(']') => (
                h,
                Some(
                    p.parse::<u16>()
                        .map_err(|_| format!("register string \"{shown}\": bad port"))?,
                ),
            ),
            _ => (hostport, None),
        };
        if host.is_empty() {
            return Err(format!("register string \"{shown}\" has no host"));
        }
        self.host = host.to_string();
        if let Some(p) = port {
            self.port = p;
        }
        if let Some(d) = did.filter(|d| !d.is_empty()) {
            self.did = Some(d.to_string());
        }
        self.register = true;
        Ok(())
    }

    /// The host as an IP address, when it is one (brackets allowed for IPv6).
    pub fn host_ip(&self) -> Option<IpAddr> {
        let h = self.host.trim_start_matches('[').trim_end_matches(']');
        h.parse().ok()
    }

    /// The peer's socket address, when `host` is an IP address.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.host_ip().map(|ip| SocketAddr::new(ip, self.port))
    }
}

fn default_sip_port() -> u16 {
    5060
}
fn default_transport() -> Transport {
    Transport::Udp
}
fn default_true() -> bool {
    true
}

/// A policy hook (a world of `wit/strowger.wit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hook {
    /// `route` world: where a call goes.
    Route,
    /// `authorize` world: REGISTER and untrusted initial requests.
    Authorize,
    /// `portability` world: number portability lookup.
    Portability,
    /// `rewrite` world: ingress/egress number normalisation.
    Rewrite,
}

impl Hook {
    /// Name as written in the config and in the WIT world.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Route => "route",
            Hook::Authorize => "authorize",
            Hook::Portability => "portability",
            Hook::Rewrite => "rewrite",
        }
    }

    /// The fallback applied when a binding names none: routing and
    /// authorization fail closed with 503; portability and rewrite go on
    /// without the plugin's answer.
    pub fn default_fallback(self) -> Fallback {
        match self {
            Hook::Route => Fallback::Reject(RejectConfig {
                code: 503,
                reason: "Routing unavailable".into(),
            }),
            Hook::Authorize => Fallback::Reject(RejectConfig {
                code: 503,
                reason: "Authorization unavailable".into(),
            }),
            Hook::Portability | Hook::Rewrite => Fallback::Continue,
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SIP final response used as a rejection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectConfig {
    /// Status code, 400..=699.
    pub code: u16,
    /// Reason phrase; default = the standard phrase for `code`.
    #[serde(default)]
    pub reason: String,
}

/// What the switch does when a plugin traps, times out, errors or answers
/// nonsense. TOML: `fallback = { reject = { code = 503, reason = "..." } }`,
/// `fallback = "continue"`, `fallback = "accept"`, `fallback = "drop"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    /// Answer the request with this final response (any hook).
    Reject(RejectConfig),
    /// Go on as if the hook had no plugin: no portability result, numbers
    /// unchanged (`portability` and `rewrite` only).
    Continue,
    /// Accept the request without authentication (`authorize` only; fail-open).
    Accept,
    /// Send nothing (`authorize` only).
    Drop,
}

/// `[[bindings]]`: which plugin decides a hook, for which scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingConfig {
    /// The hook.
    pub hook: Hook,
    /// Plugin name (`route-table` -> `<plugins.dir>/route-table.wasm`) or a
    /// path to a `.wasm` file. See [`Config::plugin_path`].
    pub plugin: String,
    /// JSON file with the plugin's configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_file: Option<PathBuf>,
    /// Inline configuration (a TOML table, handed to the plugin as JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    /// `global` or a trunk name (calls entering by that trunk).
    #[serde(default = "default_scope")]
    pub scope: String,
    /// Per-decision deadline, milliseconds.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    /// Linear-memory cap of one instance, MiB; none = the runtime default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory_mb: Option<u32>,
    /// Fallback; none = [`Hook::default_fallback`]. See
    /// [`BindingConfig::effective_fallback`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
    /// Data sets the plugin may read (names from `[[datasets]]`).
    #[serde(default)]
    pub datasets: Vec<String>,
}

fn default_scope() -> String {
    "global".into()
}
fn default_deadline_ms() -> u64 {
    5
}

impl BindingConfig {
    /// The scope keyword for bindings that apply to every call.
    pub const GLOBAL: &'static str = "global";

    /// True when the binding applies to every call.
    pub fn is_global(&self) -> bool {
        self.scope == Self::GLOBAL
    }

    /// The deadline as a duration.
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    /// The configured fallback, or the hook's default.
    pub fn effective_fallback(&self) -> Fallback {
        self.fallback
            .clone()
            .unwrap_or_else(|| self.hook.default_fallback())
    }

    /// The plugin configuration as JSON text (what `init` receives): the
    /// inline table, else the contents of `config_file` (checked to be JSON),
    /// else `{}`.
    pub fn config_json(&self) -> Result<String, ConfigError> {
        if let Some(v) = &self.config {
            return Ok(v.to_string());
        }
        let Some(path) = &self.config_file else {
            return Ok("{}".into());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.clone(),
            source,
        })?;
        serde_json::from_str::<serde_json::Value>(&text).map_err(|e| ConfigError::Parse {
            path: Some(path.clone()),
            message: format!("plugin config is not valid JSON: {e}"),
        })?;
        Ok(text)
    }
}

/// `[[datasets]]`: a key/value table (CSV `key,value` rows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// Unique name, used by bindings and by `dataset-get`.
    pub name: String,
    /// CSV file: one `key,value` per line; blank lines and lines starting
    /// with `#` are ignored; the value may be empty or quoted.
    pub file: PathBuf,
}

impl DatasetConfig {
    /// Read and parse the file into `(key, value)` rows, in file order.
    pub fn load_rows(&self) -> Result<Vec<(String, String)>, ConfigError> {
        let mut rows = Vec::new();
        self.read_rows(|k, v| {
            rows.push((k.to_string(), v.to_string()));
            Ok(())
        })?;
        Ok(rows)
    }

    /// Read the file line by line, calling `row` with each `(key, value)`
    /// in file order (nothing else is kept in memory); `row`'s error stops
    /// the read and names the line. Returns the bytes read.
    pub fn read_rows(
        &self,
        mut row: impl FnMut(&str, &str) -> Result<(), String>,
    ) -> Result<u64, ConfigError> {
        use std::io::BufRead;
        let io = |source| ConfigError::Io {
            path: self.file.clone(),
            source,
        };
        let parse = |message| ConfigError::Parse {
            path: Some(self.file.clone()),
            message,
        };
        let f = std::fs::File::open(&self.file).map_err(io)?;
        let mut r = std::io::BufReader::with_capacity(1 << 16, f);
        let mut line = String::new();
        let (mut n, mut bytes) = (0u64, 0u64);
        loop {
            line.clear();
            let got = r.read_line(&mut line).map_err(io)?;
            if got == 0 {
                return Ok(bytes);
            }
            n += 1;
            bytes += got as u64;
            if let Some((k, v)) =
                parse_dataset_line(&line).map_err(|e| parse(format!("line {n}: {e}")))?
            {
                row(&k, &v).map_err(|e| parse(format!("line {n}: {e}")))?;
            }
        }
    }
}

/// One line of a `[[datasets]]` CSV file: None for blank lines and comments.
fn parse_dataset_line(line: &str) -> Result<Option<(String, String)>, &'static str> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (k, v) = match line.split_once(',') {
        Some((k, v)) => (unquote(k), unquote(v)),
        None => (unquote(line), String::new()),
    };
    if k.is_empty() {
        return Err("empty key");
    }
    Ok(Some((k, v)))
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    match s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => s.to_string(),
    }
}

/// Parse `key,value` CSV rows (see [`DatasetConfig::file`]).
pub fn parse_dataset_csv(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if let Some(kv) = parse_dataset_line(line).map_err(|e| format!("line {}: {e}", n + 1))? {
            rows.push(kv);
        }
    }
    Ok(rows)
}

/// Standard reason phrase of a SIP status code (used when a reject omits one).
pub fn default_reason(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        _ => match code / 100 {
            4 => "Request Failure",
            5 => "Server Failure",
            _ => "Global Failure",
        },
    }
}

fn resolve(base: &Path, p: &mut PathBuf) {
    if p.is_relative() {
        *p = base.join(&*p);
    }
}

/// True when a binding's `plugin` names a file rather than a plugin name.
fn plugin_is_path(plugin: &str) -> bool {
    plugin.ends_with(".wasm") || plugin.contains('/') || plugin.contains('\\')
}

impl Config {
    /// Read, parse, resolve and validate a config file. Relative paths are
    /// resolved against the file's directory; referenced files (TLS cert and
    /// key, binding config files, data set files) must exist.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let base = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let cfg = Self::parse_inner(&text, &base).map_err(|e| match e {
            ConfigError::Parse {
                path: None,
                message,
            } => ConfigError::Parse {
                path: Some(path.to_path_buf()),
                message,
            },
            other => other,
        })?;
        cfg.check_files()?;
        Ok(cfg)
    }

    /// Parse and validate TOML text; relative paths are resolved against
    /// `base_dir`. Referenced files are not checked (see
    /// [`Config::check_files`]).
    pub fn parse(text: &str, base_dir: impl AsRef<Path>) -> Result<Config, ConfigError> {
        Self::parse_inner(text, base_dir.as_ref())
    }

    fn parse_inner(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: None,
            message: scrub_secrets(e.to_string().trim_end(), text),
        })?;
        cfg.resolve_paths(base);
        let mut problems = Vec::new();
        for t in &mut cfg.trunks {
            if let Some(s) = t.register_string.take()
                && let Err(e) = t.apply_register_string(&s)
            {
                problems.push(format!("trunks: trunk \"{}\": {e}", t.name));
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError::Invalid { problems });
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn resolve_paths(&mut self, base: &Path) {
        self.base_dir = base.to_path_buf();
        if let Some(tls) = &mut self.tls {
            resolve(base, &mut tls.cert);
            resolve(base, &mut tls.key);
        }
        resolve(base, &mut self.store.path);
        if let Some(f) = &mut self.admin.token_file {
            resolve(base, f);
        }
        if let Some(d) = &mut self.plugins.dir {
            resolve(base, d);
        }
        if let Some(d) = &mut self.plugins.cache_dir {
            resolve(base, d);
        }
        for b in &mut self.bindings {
            if let Some(f) = &mut b.config_file {
                resolve(base, f);
            }
            if plugin_is_path(&b.plugin) {
                let mut p = PathBuf::from(&b.plugin);
                resolve(base, &mut p);
                b.plugin = p.to_string_lossy().into_owned();
            }
        }
        for d in &mut self.datasets {
            resolve(base, &mut d.file);
        }
    }

    /// Check consistency; returns every problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p: Vec<String> = Vec::new();

        // [sip]
        if self.sip.listen.is_empty() {
            p.push("sip.listen: at least one listener is required".into());
        }
        let mut seen = HashSet::new();
        for l in &self.sip.listen {
            // udp and tcp may share a port; the same transport twice may not.
            if !seen.insert((l.transport, l.addr)) {
                p.push(format!("sip.listen: \"{l}\" is listed twice"));
            }
            if l.addr.port() == 0 {
                p.push(format!("sip.listen: \"{l}\" needs a non-zero port"));
            }
        }
        if self
            .sip
            .listen
            .iter()
            .any(|l| l.transport == Transport::Tls)
            && self.tls.is_none()
        {
            p.push(
                "sip.listen has a tls: listener but there is no [tls] section with cert and key"
                    .into(),
            );
        }
        if self.sip.domain.trim().is_empty() {
            p.push("sip.domain must not be empty".into());
        }
        if self.sip.t1_ms == 0 {
            p.push("sip.t1_ms must be > 0".into());
        }
        if self.sip.t2_ms < self.sip.t1_ms {
            p.push(format!(
                "sip.t2_ms ({}) must be >= sip.t1_ms ({})",
                self.sip.t2_ms, self.sip.t1_ms
            ));
        }
        if self.sip.t4_ms == 0 {
            p.push("sip.t4_ms must be > 0".into());
        }
        if self.sip.max_message_size < 1024 || self.sip.max_message_size > 1024 * 1024 {
            p.push(format!(
                "sip.max_message_size ({}) must be between 1024 and 1048576",
                self.sip.max_message_size
            ));
        }
        if self.sip.tcp_max_send_queue_bytes < 65_536 {
            p.push(format!(
                "sip.tcp_max_send_queue_bytes ({}) must be >= 65536",
                self.sip.tcp_max_send_queue_bytes
            ));
        }
        if self.sip.max_connections_per_ip == 0 {
            p.push("sip.max_connections_per_ip must be > 0".into());
        }
        if self.sip.response_cache_max_entries == 0 {
            p.push("sip.response_cache_max_entries must be > 0".into());
        }
        if self.sip.response_cache_max_bytes < self.sip.response_cache_max_entry_bytes {
            p.push(format!(
                "sip.response_cache_max_bytes ({}) must be >= sip.response_cache_max_entry_bytes ({})",
                self.sip.response_cache_max_bytes, self.sip.response_cache_max_entry_bytes
            ));
        }
        if self.sip.udp_recv_buffer_bytes > 1 << 30 {
            p.push(format!(
                "sip.udp_recv_buffer_bytes ({}) must be at most 1073741824",
                self.sip.udp_recv_buffer_bytes
            ));
        }
        if self.sip.max_tracked_sources == 0 {
            p.push("sip.max_tracked_sources must be > 0".into());
        }
        if self.sip.max_udp_size < 200 || self.sip.max_udp_size > 65_507 {
            p.push(format!(
                "sip.max_udp_size ({}) must be between 200 and 65507",
                self.sip.max_udp_size
            ));
        }

        // [admin]
        if self.admin.enabled
            && self
                .admin
                .token
                .as_deref()
                .is_some_and(|t| t.trim().len() < 8)
        {
            p.push("admin.token must be at least 8 characters".into());
        }
        if self.admin.max_body_bytes < 1024
            || self.admin.max_plugin_bytes < 1024
            || self.admin.max_dataset_bytes < 1024
        {
            p.push(
                "admin.max_body_bytes, max_plugin_bytes and max_dataset_bytes must be at least 1024"
                    .into(),
            );
        }

        // [auth]
        if self.auth.algorithms.is_empty() {
            p.push("auth.algorithms must name at least one of \"sha256\", \"md5\"".into());
        }
        let mut algs = HashSet::new();
        for a in &self.auth.algorithms {
            if !algs.insert(*a) {
                p.push(format!("auth.algorithms lists {a:?} twice"));
            }
        }
        if self.auth.nonce_ttl_s == 0 {
            p.push("auth.nonce_ttl_s must be > 0".into());
        }

        // [registrar]
        let r = &self.registrar;
        if r.min_expires > r.max_expires {
            p.push(format!(
                "registrar.min_expires ({}) must be <= registrar.max_expires ({})",
                r.min_expires, r.max_expires
            ));
        }
        if r.default_expires < r.min_expires || r.default_expires > r.max_expires {
            p.push(format!(
                "registrar.default_expires ({}) must be between min_expires ({}) and max_expires ({})",
                r.default_expires, r.min_expires, r.max_expires
            ));
        }

        // [calls]
        if self.calls.ring_timeout_s == 0 {
            p.push("calls.ring_timeout_s must be > 0".into());
        }
        if self.calls.max_forwards == 0 {
            p.push("calls.max_forwards must be > 0".into());
        }
        if !(-14 * 60..=14 * 60).contains(&self.calls.timezone_offset_minutes) {
            p.push(format!(
                "calls.timezone_offset_minutes ({}) must be within -840..=840",
                self.calls.timezone_offset_minutes
            ));
        }

        // [media]
        p.extend(self.media.problems());

        // [[users]]
        let mut users = HashSet::new();
        for u in &self.users {
            if u.user.is_empty() {
                p.push("users: a user has an empty `user`".into());
                continue;
            }
            if u.user.contains(['@', ':', ' ', ';', '<', '>']) {
                p.push(format!(
                    "users: user \"{}\" must be the user part only (no @, :, ;, spaces)",
                    u.user
                ));
            }
            if u.password.is_empty() {
                p.push(format!("users: user \"{}\" has an empty password", u.user));
            }
            let domain = u.domain_or(&self.sip.domain).to_ascii_lowercase();
            if !users.insert((u.user.clone(), domain.clone())) {
                p.push(format!("users: duplicate user \"{}@{}\"", u.user, domain));
            }
        }

        // [[trunks]]
        let mut trunks = HashSet::new();
        for t in &self.trunks {
            if t.name.is_empty() {
                p.push("trunks: a trunk has an empty `name`".into());
            } else if t.name == BindingConfig::GLOBAL {
                p.push("trunks: \"global\" is reserved and cannot be a trunk name".into());
            }
            if !trunks.insert(t.name.as_str()) {
                p.push(format!("trunks: duplicate trunk name \"{}\"", t.name));
            }
            if t.host.trim().is_empty() {
                p.push(format!("trunks: trunk \"{}\" has an empty host", t.name));
            }
            if t.port == 0 {
                p.push(format!(
                    "trunks: trunk \"{}\" needs a non-zero port",
                    t.name
                ));
            }
            let needs_secret =
                t.register || matches!(t.inbound, Inbound::Register | Inbound::Digest);
            if needs_secret && t.secret.as_deref().is_none_or(str::is_empty) {
                p.push(format!(
                    "trunks: trunk \"{}\" needs a `secret` (it registers or authenticates)",
                    t.name
                ));
            }
            if t.is_dynamic() && t.inbound != Inbound::Register {
                p.push(format!(
                    "trunks: trunk \"{}\" has host = \"dynamic\": set inbound = \"register\"",
                    t.name
                ));
            }
            if t.inbound == Inbound::Register && !t.is_dynamic() {
                p.push(format!(
                    "trunks: trunk \"{}\": inbound = \"register\" needs host = \"dynamic\"",
                    t.name
                ));
            }
            if t.register && t.is_dynamic() {
                p.push(format!(
                    "trunks: trunk \"{}\" cannot register to a dynamic host",
                    t.name
                ));
            }
            if t.register && t.register_expires < 60 {
                p.push(format!(
                    "trunks: trunk \"{}\": register_expires must be >= 60",
                    t.name
                ));
            }
            if t.register && t.register_retry_s == 0 {
                p.push(format!(
                    "trunks: trunk \"{}\": register_retry_s must be > 0",
                    t.name
                ));
            }
            if let Some(params) = &t.ruri_params
                && (params.starts_with(';') || params.contains(['>', ' ', '?']))
            {
                p.push(format!(
                    "trunks: trunk \"{}\": ruri_params \"{params}\" must look like `user=phone;x=y`",
                    t.name
                ));
            }
            if t.host.parse::<Ipv6Addr>().is_ok() {
                // accepted as is; brackets are optional in `host`
            } else if t.host.contains(':') && t.host_ip().is_none() {
                p.push(format!(
                    "trunks: trunk \"{}\": host \"{}\" must not contain a port (use `port`)",
                    t.name, t.host
                ));
            }
        }

        // [[trunk_groups]]
        let mut groups = HashSet::new();
        for g in &self.trunk_groups {
            if g.name.is_empty() {
                p.push("trunk_groups: a group has an empty `name`".into());
            }
            if !groups.insert(g.name.as_str()) || trunks.contains(g.name.as_str()) {
                p.push(format!(
                    "trunk_groups: \"{}\" is already a trunk or group name",
                    g.name
                ));
            }
            if g.members.is_empty() {
                p.push(format!("trunk_groups: group \"{}\" has no members", g.name));
            }
            if !g.members.is_empty() && g.members.iter().all(|m| m.weight == 0) {
                p.push(format!(
                    "trunk_groups: group \"{}\" needs a member with weight > 0",
                    g.name
                ));
            }
            for m in &g.members {
                if !trunks.contains(m.trunk.as_str()) {
                    p.push(format!(
                        "trunk_groups: group \"{}\": member \"{}\" is not a configured trunk",
                        g.name, m.trunk
                    ));
                }
            }
        }

        // [protection]
        if let Err(e) = regex_lite::Regex::new(&self.protection.scanner_user_agents) {
            p.push(format!("protection.scanner_user_agents: {e}"));
        }
        if self.protection.ban_time_s > 0
            && (self.protection.ban_failures == 0 || self.protection.ban_window_s == 0)
        {
            p.push(
                "protection: ban_failures and ban_window_s must be > 0 when ban_time_s is".into(),
            );
        }

        // [[datasets]]
        let mut datasets = HashSet::new();
        for d in &self.datasets {
            if d.name.is_empty() {
                p.push("datasets: a data set has an empty `name`".into());
            }
            if !datasets.insert(d.name.as_str()) {
                p.push(format!("datasets: duplicate data set name \"{}\"", d.name));
            }
        }

        // [plugins] limits
        let pl = &self.plugins;
        if !(1..=10_000).contains(&pl.max_deadline_ms()) {
            p.push(format!(
                "plugins.max_deadline_ms ({}) must be between 1 and 10000",
                pl.max_deadline_ms()
            ));
        }
        if pl
            .init_deadline_ms
            .is_some_and(|ms| !(1..=60_000).contains(&ms))
        {
            p.push("plugins.init_deadline_ms must be between 1 and 60000".into());
        }
        if pl
            .wall_limit_ms
            .is_some_and(|ms| !(1..=60_000).contains(&ms))
        {
            p.push("plugins.wall_limit_ms must be between 1 and 60000".into());
        }
        if pl.decision_threads.is_some_and(|n| !(1..=256).contains(&n)) {
            p.push("plugins.decision_threads must be between 1 and 256".into());
        }
        if pl.decision_queue.is_some_and(|n| n > 1_000_000) {
            p.push("plugins.decision_queue must be at most 1000000".into());
        }

        // [[bindings]]
        let mut bound = HashSet::new();
        for b in &self.bindings {
            let what = format!("bindings: {} binding \"{}\"", b.hook, b.plugin);
            if b.plugin.trim().is_empty() {
                p.push(format!(
                    "bindings: a {} binding has an empty `plugin`",
                    b.hook
                ));
            }
            if b.config.is_some() && b.config_file.is_some() {
                p.push(format!(
                    "{what}: give either `config` or `config_file`, not both"
                ));
            }
            if !b.is_global() && !trunks.contains(b.scope.as_str()) {
                p.push(format!(
                    "{what}: scope \"{}\" is neither \"global\" nor a configured trunk",
                    b.scope
                ));
            }
            if !bound.insert((b.hook, b.scope.as_str())) {
                p.push(format!(
                    "bindings: hook {} has two bindings for scope \"{}\"",
                    b.hook, b.scope
                ));
            }
            if b.deadline_ms == 0 || b.deadline_ms > pl.max_deadline_ms() {
                p.push(format!(
                    "{what}: deadline_ms ({}) must be between 1 and {} (plugins.max_deadline_ms)",
                    b.deadline_ms,
                    pl.max_deadline_ms()
                ));
            }
            if b.max_memory_mb == Some(0) {
                p.push(format!("{what}: max_memory_mb must be > 0"));
            }
            for d in &b.datasets {
                if !datasets.contains(d.as_str()) {
                    p.push(format!(
                        "{what}: data set \"{d}\" is not defined in [[datasets]]"
                    ));
                }
            }
            match &b.fallback {
                Some(Fallback::Reject(r)) if !(400..=699).contains(&r.code) => {
                    p.push(format!(
                        "{what}: fallback reject code {} must be 400..=699",
                        r.code
                    ));
                }
                Some(Fallback::Continue) if matches!(b.hook, Hook::Route | Hook::Authorize) => {
                    p.push(format!(
                        "{what}: fallback \"continue\" is only for portability and rewrite hooks"
                    ));
                }
                Some(Fallback::Accept | Fallback::Drop) if b.hook != Hook::Authorize => {
                    p.push(format!(
                        "{what}: fallback \"accept\"/\"drop\" is only for the authorize hook"
                    ));
                }
                _ => {}
            }
        }

        if p.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid { problems: p })
        }
    }

    /// Check that referenced files exist: TLS cert/key, binding config
    /// files, data set files and path-like plugins. ([`Config::from_file`]
    /// calls this.)
    pub fn check_files(&self) -> Result<(), ConfigError> {
        let mut p = Vec::new();
        let mut need = |what: String, path: &Path| {
            if !path.is_file() {
                p.push(format!("{what}: file {} does not exist", path.display()));
            }
        };
        if let Some(tls) = &self.tls {
            need("tls.cert".into(), &tls.cert);
            need("tls.key".into(), &tls.key);
        }
        for b in &self.bindings {
            if let Some(f) = &b.config_file {
                need(format!("bindings: {} config_file", b.hook), f);
            }
            if plugin_is_path(&b.plugin) {
                need(format!("bindings: {} plugin", b.hook), Path::new(&b.plugin));
            }
        }
        for d in &self.datasets {
            need(format!("datasets: \"{}\"", d.name), &d.file);
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid { problems: p })
        }
    }

    /// The built-in `--demo` configuration: udp+tcp on 127.0.0.1:5060, users
    /// 1001..=1010 with password `demo<ext>`, store `./strowger-demo.db`, and
    /// a global `route` binding to `route-table` with its demo routes
    /// ([`DEMO_ROUTE_CONFIG`], embedded). Print [`DEMO_WARNING`] when using it.
    pub fn demo() -> Config {
        let mut cfg = Config {
            store: StoreConfig {
                path: PathBuf::from("strowger-demo.db"),
                ..StoreConfig::default()
            },
            ..Config::default()
        };
        cfg.users = (1001..=1010)
            .map(|ext| UserConfig {
                user: ext.to_string(),
                password: format!("demo{ext}"),
                domain: None,
            })
            .collect();
        cfg.bindings = vec![BindingConfig {
            hook: Hook::Route,
            plugin: "route-table".into(),
            config_file: None,
            config: Some(
                serde_json::from_str(DEMO_ROUTE_CONFIG).expect("demo-config.json is valid JSON"),
            ),
            scope: default_scope(),
            deadline_ms: default_deadline_ms(),
            max_memory_mb: None,
            fallback: None,
            datasets: Vec::new(),
        }];
        cfg
    }

    /// Directory of `<name>.wasm` plugins: `plugins.dir`, else
    /// `$STROWGER_PLUGIN_DIR`, else `plugins` in the config's directory.
    pub fn plugin_dir(&self) -> PathBuf {
        if let Some(d) = &self.plugins.dir {
            return d.clone();
        }
        match std::env::var_os(PLUGIN_DIR_ENV) {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => self.base_dir.join("plugins"),
        }
    }

    /// The admin API token file: `admin.token_file`, else
    /// [`ADMIN_TOKEN_FILE`] next to the store file.
    pub fn admin_token_file(&self) -> PathBuf {
        if let Some(f) = &self.admin.token_file {
            return f.clone();
        }
        match self.store.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.join(ADMIN_TOKEN_FILE),
            _ => PathBuf::from(ADMIN_TOKEN_FILE),
        }
    }

    /// Compiled-component cache: `plugins.cache_dir`, else `cache` next to
    /// the store file.
    pub fn cache_dir(&self) -> PathBuf {
        if let Some(d) = &self.plugins.cache_dir {
            return d.clone();
        }
        match self.store.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.join("cache"),
            _ => PathBuf::from("cache"),
        }
    }

    /// The `.wasm` file of a binding's `plugin`: the path itself when it
    /// looks like one (ends in `.wasm` or contains `/`), else
    /// `<plugin_dir>/<plugin>.wasm`.
    pub fn plugin_path(&self, plugin: &str) -> PathBuf {
        if plugin_is_path(plugin) {
            PathBuf::from(plugin)
        } else {
            self.plugin_dir().join(format!("{plugin}.wasm"))
        }
    }

    /// The user with this name in `domain` (case-insensitive domain; a
    /// `None` domain means `sip.domain`).
    pub fn find_user(&self, user: &str, domain: Option<&str>) -> Option<&UserConfig> {
        let domain = domain.unwrap_or(&self.sip.domain);
        self.users
            .iter()
            .find(|u| u.user == user && u.domain_or(&self.sip.domain).eq_ignore_ascii_case(domain))
    }

    /// The trunk with this name.
    pub fn find_trunk(&self, name: &str) -> Option<&TrunkConfig> {
        self.trunks.iter().find(|t| t.name == name)
    }

    /// The trunk trusting requests from `source` (`inbound = "ip"`, host IP
    /// equal to the source IP, and the port equal unless
    /// `ignore_source_port`).
    pub fn trunk_for_source(&self, source: SocketAddr) -> Option<&TrunkConfig> {
        self.trunks.iter().find(|t| {
            t.inbound == Inbound::Ip
                && t.host_ip() == Some(source.ip())
                && (t.ignore_source_port || t.port == source.port())
        })
    }

    /// Serialize back to TOML (paths as resolved).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("config serializes to TOML")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match Config::parse(text, "/etc/strowger") {
            Err(ConfigError::Invalid { problems }) => problems,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn parse_errors_never_quote_a_secret() {
        for text in [
            "[[users]]\nuser = \"1001\"\npassword = \"hunter2-secret\" x\n",
            "[[users]]\nuser = \"1001\"\npassword = hunter2-secret\n",
            "[[trunks]]\nname = \"p\"\nhost = \"h\"\nsecret = \"hunter2-secret\nx = 1\n",
            "[admin]\ntoken = \"hunter2-secret\" ,\n",
            "[[trunks]]\nname = \"p\"\nregister = \"u:hunter2-secret@h\" x\n",
        ] {
            let m = parse_err(text);
            assert!(!m.contains("hunter2"), "{m}");
            assert!(m.contains("line"), "still says where: {m}");
        }
    }

    fn parse_err(text: &str) -> String {
        match Config::parse(text, "/etc/strowger") {
            Err(ConfigError::Parse { message, .. }) => message,
            other => panic!("expected Parse error, got {other:?}"),
        }
    }

    #[test]
    fn empty_file_gives_documented_defaults() {
        let c = Config::parse("", "/etc/strowger").unwrap();
        assert_eq!(
            c.sip
                .listen
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>(),
            ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]
        );
        assert_eq!(c.sip.domain, "strowger.local");
        assert_eq!(c.sip.user_agent, "Strowger/0.1");
        assert_eq!((c.sip.t1_ms, c.sip.t2_ms, c.sip.t4_ms), (500, 4000, 5000));
        assert_eq!(c.sip.max_udp_size, 1300);
        assert!(c.tls.is_none());
        assert_eq!(c.store.path, PathBuf::from("/etc/strowger/strowger.db"));
        // MD5 first: SIPp and many phones answer only the first challenge.
        assert_eq!(
            c.auth.algorithms,
            [DigestAlgorithm::Md5, DigestAlgorithm::Sha256]
        );
        assert_eq!(c.auth.nonce_ttl_s, 300);
        assert_eq!(
            (
                c.registrar.min_expires,
                c.registrar.max_expires,
                c.registrar.default_expires
            ),
            (60, 3600, 3600)
        );
        assert_eq!(c.calls.ring_timeout_s, 60);
        assert_eq!(c.calls.max_forwards, 70);
        assert_eq!(c.cache_dir(), PathBuf::from("/etc/strowger/cache"));
    }

    #[test]
    fn the_documented_example_parses() {
        let docs = include_str!("config.rs");
        let example: String = docs
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.strip_prefix("//! ").unwrap_or("").to_string() + "\n")
            .collect();
        assert!(example.contains("[[bindings]]"));
        let c = Config::parse(&example, "/etc/strowger").unwrap();
        assert_eq!(
            c.tls.as_ref().unwrap().cert,
            PathBuf::from("/etc/strowger/cert.pem")
        );
        assert_eq!(c.users[0].aor(&c.sip.domain), "sip:1001@strowger.local");
        let t = c.find_trunk("carrier").unwrap();
        assert_eq!(t.socket_addr(), Some("127.0.0.2:5060".parse().unwrap()));
        assert_eq!(t.inbound, Inbound::Ip);
        let b = &c.bindings[0];
        assert_eq!(b.hook, Hook::Route);
        assert_eq!(
            b.config_file.as_deref(),
            Some(Path::new("/etc/strowger/routes.json"))
        );
        assert_eq!(
            b.effective_fallback(),
            Fallback::Reject(RejectConfig {
                code: 503,
                reason: "Routing unavailable".into()
            })
        );
        assert_eq!(b.datasets, ["br-ported"]);
        assert_eq!(
            c.datasets[0].file,
            PathBuf::from("/etc/strowger/ported.csv")
        );
        assert_eq!(c.plugins.dir, Some(PathBuf::from("/etc/strowger/...")));
        // serializes back and re-parses to the same config
        let again = Config::parse(&c.to_toml(), "/etc/strowger").unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        assert!(parse_err("[sip]\nlisten_on = []\n").contains("listen_on"));
        assert!(parse_err("[sipp]\n").contains("sipp"));
        let m = parse_err("[[users]]\nuser='1'\npassword='x'\npasswd='y'\n");
        assert!(m.contains("passwd"), "{m}");
        let m = parse_err(
            "[[bindings]]\nhook='route'\nplugin='p'\nfallback={reject={code=503, text='x'}}\n",
        );
        assert!(m.contains("text"), "{m}");
        assert!(parse_err("[[bindings]]\nhook='routing'\nplugin='p'\n").contains("routing"));
    }

    #[test]
    fn listen_strings() {
        let ok = |s: &str| s.parse::<Listen>().unwrap();
        assert_eq!(
            ok("udp:127.0.0.1:5070").addr,
            "127.0.0.1:5070".parse().unwrap()
        );
        assert_eq!(ok("TCP:0.0.0.0:5060").transport, Transport::Tcp);
        assert_eq!(ok("udp:[::1]:5062").addr, "[::1]:5062".parse().unwrap());
        assert_eq!(ok("tls:127.0.0.1").addr.port(), 5061);
        assert_eq!(ok("udp:[::1]").addr, "[::1]:5060".parse().unwrap());
        assert_eq!(ok("udp:[::1]:5062").to_string(), "udp:[::1]:5062");
        for bad in [
            "127.0.0.1:5060",
            "sctp:127.0.0.1:5060",
            "udp:",
            "udp:::1:5060",
            "udp:localhost:5060",
            "udp:127.0.0.1:99999",
        ] {
            let e = bad.parse::<Listen>().unwrap_err();
            assert!(e.contains(bad), "{bad}: {e}");
        }
        let m = parse_err("[sip]\nlisten=['udp:::1:5060']\n");
        assert!(m.contains("brackets"), "{m}");
    }

    #[test]
    fn tls_listener_needs_cert_and_key() {
        let p = problems("[sip]\nlisten=['tls:127.0.0.1:5061']\n");
        assert!(p.iter().any(|m| m.contains("[tls]")), "{p:?}");
        let m = parse_err("[sip]\nlisten=['tls:127.0.0.1:5061']\n[tls]\ncert='c.pem'\n");
        assert!(m.contains("key"), "{m}");
        Config::parse(
            "[sip]\nlisten=['tls:127.0.0.1:5061']\n[tls]\ncert='c.pem'\nkey='k.pem'\n",
            ".",
        )
        .unwrap();
    }

    #[test]
    fn duplicates_are_refused() {
        let p = problems(
            "[[users]]\nuser='1001'\npassword='a'\n[[users]]\nuser='1001'\npassword='b'\n\
             [[trunks]]\nname='c'\nhost='127.0.0.2'\n[[trunks]]\nname='c'\nhost='127.0.0.3'\n\
             [sip]\nlisten=['udp:127.0.0.1:5060','udp:127.0.0.1:5060']\n",
        );
        assert!(
            p.iter()
                .any(|m| m.contains("duplicate user \"1001@strowger.local\"")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|m| m.contains("duplicate trunk name \"c\"")),
            "{p:?}"
        );
        assert!(p.iter().any(|m| m.contains("listed twice")), "{p:?}");
        // same user in another domain is fine
        Config::parse(
            "[[users]]\nuser='1001'\npassword='a'\n[[users]]\nuser='1001'\npassword='b'\ndomain='other.example'\n",
            ".",
        )
        .unwrap();
    }

    #[test]
    fn binding_checks() {
        let p = problems(
            "[[bindings]]\nhook='route'\nplugin='rt'\nscope='nosuch'\ndeadline_ms=0\ndatasets=['x']\n\
             config={a=1}\nconfig_file='r.json'\nfallback='continue'\n\
             [[bindings]]\nhook='authorize'\nplugin='a'\nfallback={reject={code=200}}\n\
             [[bindings]]\nhook='rewrite'\nplugin='w'\nfallback='accept'\n\
             [[bindings]]\nhook='rewrite'\nplugin='w2'\n",
        );
        let has = |s: &str| assert!(p.iter().any(|m| m.contains(s)), "{s} not in {p:?}");
        has("scope \"nosuch\"");
        has("deadline_ms (0)");
        has("data set \"x\"");
        has("not both");
        has("\"continue\" is only");
        has("code 200");
        has("\"accept\"/\"drop\"");
        has("two bindings for scope \"global\"");
    }

    #[test]
    fn fallbacks_and_inline_config() {
        let c = Config::parse(
            "[[trunks]]\nname='carrier'\nhost='10.0.0.1'\n\
             [[bindings]]\nhook='rewrite'\nplugin='norm'\nscope='carrier'\nconfig={country='55', list=[1,2]}\n\
             [[bindings]]\nhook='authorize'\nplugin='/opt/p/auth.wasm'\nfallback='accept'\n\
             [[bindings]]\nhook='route'\nplugin='rt'\nfallback={reject={code=480}}\n",
            "/cfg",
        )
        .unwrap();
        let rw = &c.bindings[0];
        assert_eq!(rw.effective_fallback(), Fallback::Continue);
        let json: serde_json::Value = serde_json::from_str(&rw.config_json().unwrap()).unwrap();
        assert_eq!(json, serde_json::json!({"country": "55", "list": [1, 2]}));
        assert_eq!(c.bindings[1].effective_fallback(), Fallback::Accept);
        assert_eq!(
            c.plugin_path(&c.bindings[1].plugin),
            PathBuf::from("/opt/p/auth.wasm")
        );
        match c.bindings[2].effective_fallback() {
            Fallback::Reject(r) => assert_eq!((r.code, r.reason.as_str()), (480, "")),
            other => panic!("{other:?}"),
        }
        assert_eq!(default_reason(480), "Temporarily Unavailable");
        assert_eq!(c.bindings[2].config_json().unwrap(), "{}");
    }

    #[test]
    fn trunk_for_source_matches_ip_and_port_rules() {
        let c = Config::parse(
            "[[trunks]]\nname='a'\nhost='127.0.0.2'\n\
             [[trunks]]\nname='b'\nhost='127.0.0.3'\nport=5080\nignore_source_port=false\n\
             [[trunks]]\nname='c'\nhost='127.0.0.4'\ninbound='none'\n",
            ".",
        )
        .unwrap();
        let name = |s: &str| {
            c.trunk_for_source(s.parse().unwrap())
                .map(|t| t.name.as_str())
        };
        assert_eq!(name("127.0.0.2:40000"), Some("a"));
        assert_eq!(name("127.0.0.3:40000"), None);
        assert_eq!(name("127.0.0.3:5080"), Some("b"));
        assert_eq!(name("127.0.0.4:5060"), None);
        assert_eq!(name("127.0.0.1:5060"), None);
    }

    #[test]
    fn other_range_checks() {
        let p = problems(
            "[registrar]\nmin_expires=100\nmax_expires=50\n[auth]\nalgorithms=[]\n\
             [calls]\ntimezone_offset_minutes=2000\n[sip]\nt1_ms=500\nt2_ms=100\n",
        );
        assert!(p.len() >= 4, "{p:?}");
        let m = parse_err("[auth]\nalgorithms=['sha1']\n");
        assert!(m.contains("sha1"), "{m}");
        let c = Config::parse("[auth]\nalgorithms=['MD5','SHA-256']\n", ".").unwrap();
        assert_eq!(
            c.auth.algorithms,
            [DigestAlgorithm::Md5, DigestAlgorithm::Sha256]
        );
    }

    #[test]
    fn from_file_resolves_relative_to_the_file_and_checks_files() {
        let dir = std::env::temp_dir().join(format!("strowger-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg_path = dir.join("strowger.toml");
        std::fs::write(
            &cfg_path,
            "[store]\npath='data/s.db'\n[[bindings]]\nhook='route'\nplugin='route-table'\nconfig_file='routes.json'\n\
             [[datasets]]\nname='p'\nfile='p.csv'\n",
        )
        .unwrap();
        let err = Config::from_file(&cfg_path).unwrap_err().to_string();
        assert!(
            err.contains("routes.json") && err.contains("p.csv"),
            "{err}"
        );
        std::fs::write(dir.join("routes.json"), "{\"routes\": []}").unwrap();
        std::fs::write(
            dir.join("p.csv"),
            "# key,value\n5511,55321\n\"5512\",\"x,y\"\n\n5513\n",
        )
        .unwrap();
        let c = Config::from_file(&cfg_path).unwrap();
        assert_eq!(c.store.path, dir.join("data/s.db"));
        assert_eq!(c.cache_dir(), dir.join("data/cache"));
        assert_eq!(c.bindings[0].config_json().unwrap(), "{\"routes\": []}");
        let rows = c.datasets[0].load_rows().unwrap();
        let row = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            rows,
            [row("5511", "55321"), row("5512", "x,y"), row("5513", "")]
        );
        std::fs::write(dir.join("routes.json"), "{not json").unwrap();
        let err = c.bindings[0].config_json().unwrap_err().to_string();
        assert!(err.contains("not valid JSON"), "{err}");
        let err = Config::from_file(dir.join("missing.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.toml"), "{err}");
        std::fs::write(&cfg_path, "[sip]\ndomian='x'\n").unwrap();
        let err = Config::from_file(&cfg_path).unwrap_err().to_string();
        assert!(
            err.contains("strowger.toml") && err.contains("domian"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn demo_config() {
        let c = Config::demo();
        c.validate().unwrap();
        assert_eq!(c.users.len(), 10);
        assert_eq!(c.find_user("1007", None).unwrap().password, "demo1007");
        assert_eq!(c.users[0].aor(&c.sip.domain), "sip:1001@strowger.local");
        assert!(c.find_user("1011", None).is_none());
        assert_eq!(c.bindings[0].hook, Hook::Route);
        assert_eq!(c.bindings[0].plugin, "route-table");
        let json: serde_json::Value =
            serde_json::from_str(&c.bindings[0].config_json().unwrap()).unwrap();
        assert!(json["routes"].is_array(), "{json}");
        assert_eq!(c.store.path, PathBuf::from("strowger-demo.db"));
        assert!(c.sip.listen.iter().all(|l| l.addr.ip().is_loopback()));
    }

    #[test]
    fn debug_output_and_errors_show_no_secret() {
        let c = Config::parse(
            "[admin]\ntoken='adminTOKEN-1234'\n\
             [[users]]\nuser='1001'\npassword='userPW-9876'\n\
             [[trunks]]\nname='a'\nhost='192.0.2.1'\nsecret='trunkSECRET-55'\ninbound='digest'\n",
            "/",
        )
        .unwrap();
        let mut t = c.trunks[0].clone();
        t.register_string = Some("acct:regSECRET-77:auth@192.0.2.2/100".into());
        let dbg = format!("{c:?} {t:?}");
        for s in [
            "adminTOKEN-1234",
            "userPW-9876",
            "trunkSECRET-55",
            "regSECRET-77",
        ] {
            assert!(!dbg.contains(s), "{s} in {dbg}");
        }
        assert!(dbg.contains("acct:***:auth@192.0.2.2/100"), "{dbg}");
        assert!(dbg.contains("192.0.2.1") && dbg.contains("1001"), "{dbg}");
        // a register string error quotes it without its secret
        let e = t
            .apply_register_string("acct:regSECRET-77@192.0.2.2:notaport")
            .unwrap_err();
        assert!(
            !e.contains("regSECRET-77") && e.contains("acct:***@"),
            "{e}"
        );
        assert_eq!(redact_register_string("u:s:a@h:5060/d"), "u:***:a@h:5060/d");
        assert_eq!(redact_register_string("u@h"), "u@h");
    }
}
