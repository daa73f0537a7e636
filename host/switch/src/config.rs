//! Switch configuration (TOML), being implemented by the config engineer.
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
//!
//! [auth]
//! algorithms = ["sha256", "md5"]     # offered side by side, in this order
//! nonce_ttl_s = 300
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
//! [[users]]
//! user = "1001"
//! password = "demo1001"
//! # domain = "strowger.local"
//!
//! [[trunks]]                         # basic trunks now; the trunks issue extends this
//! name = "carrier"
//! host = "127.0.0.2"
//! port = 5060
//! transport = "udp"
//! inbound = "ip"                     # "ip" = trusted by source address, "none" = outbound only
//! ignore_source_port = true
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
