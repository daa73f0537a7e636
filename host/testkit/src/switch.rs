//! Run the real `strowger` binary.

use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::net::free_udp_tcp_port;
use crate::paths::{plugin_dir, strowger_bin};
use crate::sip::SipClient;

/// How long a starting switch may take to answer OPTIONS (plugin
/// compilation on a loaded 2-core machine included).
pub const START_TIMEOUT: Duration = Duration::from_secs(90);

/// Builder for [`Switch`].
pub struct SwitchBuilder {
    config: String,
    files: Vec<(String, Vec<u8>)>,
    tls: bool,
    ip: IpAddr,
    env: Vec<(String, String)>,
}

/// A running `strowger serve --config` in its own temp dir, on free ports
/// of 127.0.0.1. Its stdout+stderr go to `strowger.log` in that dir, which is
/// printed when the test panics. Stopped (SIGTERM, then SIGKILL) on drop.
pub struct Switch {
    dir: tempfile::TempDir,
    config_path: PathBuf,
    log_path: PathBuf,
    ip: IpAddr,
    port: u16,
    tls_port: Option<u16>,
    admin: Option<SocketAddr>,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl SwitchBuilder {
    /// Extra file written into the switch's dir before start (e.g.
    /// `routes.json` referenced by `config_file = "routes.json"`).
    pub fn file(mut self, name: &str, contents: impl Into<Vec<u8>>) -> Self {
        self.files.push((name.into(), contents.into()));
        self
    }

    /// Also listen on TLS with a self-signed certificate for 127.0.0.1
    /// (generated with `openssl`).
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Listen on this address instead of 127.0.0.1 (e.g. a
    /// [`crate::unique_loopback`] address, so that peers can tell two
    /// switches apart by source IP).
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ip = ip;
        self
    }

    /// Environment variable for the switch process.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Write the config and start.
    pub fn start(self) -> Switch {
        let dir = tempfile::Builder::new()
            .prefix("strowger-test-")
            .tempdir()
            .expect("temp dir");
        for (name, data) in &self.files {
            std::fs::write(dir.path().join(name), data).expect("write file");
        }
        let mut table: toml::Table = toml::from_str(&self.config)
            .unwrap_or_else(|e| panic!("test config is not valid TOML: {e}\n{}", self.config));
        let port = free_udp_tcp_port(self.ip);
        let sip = table
            .entry("sip")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .expect("[sip] is a table");
        let mut tls_port = None;
        if !sip.contains_key("listen") {
            let mut listen = vec![
                toml::Value::String(format!("udp:{}:{port}", self.ip)),
                toml::Value::String(format!("tcp:{}:{port}", self.ip)),
            ];
            if self.tls {
                let p = free_udp_tcp_port(self.ip);
                listen.push(toml::Value::String(format!("tls:{}:{p}", self.ip)));
                tls_port = Some(p);
            }
            sip.insert("listen".into(), toml::Value::Array(listen));
        }
        if self.tls && !table.contains_key("tls") {
            make_cert(dir.path());
            let mut t = toml::Table::new();
            t.insert("cert".into(), "cert.pem".into());
            t.insert("key".into(), "key.pem".into());
            table.insert("tls".into(), toml::Value::Table(t));
        }
        let plugins = table
            .entry("plugins")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .expect("[plugins] is a table");
        if !plugins.contains_key("dir") {
            plugins.insert(
                "dir".into(),
                toml::Value::String(plugin_dir().display().to_string()),
            );
        }
        // The admin API listens on a free port of 127.0.0.1 unless the test
        // set `[admin] listen` (or `enabled = false`): parallel switches
        // must not all claim the default 127.0.0.1:8080.
        let admin_t = table
            .entry("admin")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .expect("[admin] is a table");
        let admin = if admin_t.get("enabled").and_then(toml::Value::as_bool) == Some(false) {
            None
        } else {
            let addr = match admin_t.get("listen").and_then(toml::Value::as_str) {
                Some(a) => a.parse().expect("[admin] listen is ip:port"),
                None => {
                    let ip: IpAddr = "127.0.0.1".parse().unwrap();
                    SocketAddr::new(ip, free_udp_tcp_port(ip))
                }
            };
            admin_t.insert("listen".into(), toml::Value::String(addr.to_string()));
            Some(addr)
        };
        let config_path = dir.path().join("strowger.toml");
        std::fs::write(&config_path, toml::to_string(&table).unwrap()).expect("write config");
        let mut sw = Switch {
            log_path: dir.path().join("strowger.log"),
            dir,
            config_path,
            ip: self.ip,
            port,
            tls_port,
            admin,
            env: self.env,
            child: None,
        };
        sw.spawn();
        sw
    }
}

/// Write a self-signed P-256 certificate for 127.0.0.1 (`cert.pem`,
/// `key.pem`) into `dir` with the `openssl` command.
pub fn make_cert(dir: &Path) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ])
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Switch {
    /// Start a switch with this TOML (see [`Switch::builder`]).
    pub fn start(config_toml: &str) -> Switch {
        Self::builder(config_toml).start()
    }

    /// A builder. The TOML is the switch config without listeners: the
    /// testkit adds `sip.listen` (udp+tcp on a free port of 127.0.0.1, plus
    /// tls with [`SwitchBuilder::tls`]) and `plugins.dir` unless given.
    /// Relative paths (store, `config_file`, data sets) are in the temp dir.
    pub fn builder(config_toml: &str) -> SwitchBuilder {
        SwitchBuilder {
            config: config_toml.into(),
            files: Vec::new(),
            tls: false,
            ip: "127.0.0.1".parse().unwrap(),
            env: Vec::new(),
        }
    }

    fn spawn(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("log file");
        let mut cmd = Command::new(strowger_bin());
        cmd.current_dir(self.dir.path())
            .arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .env(
                "STROWGER_LOG",
                std::env::var("STROWGER_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("spawn strowger"));
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut client = SipClient::new(self.ip, self.addr());
        loop {
            if let Some(c) = &mut self.child
                && let Ok(Some(st)) = c.try_wait()
            {
                panic!(
                    "strowger exited during start-up ({st})\n--- config ---\n{}\n--- log ---\n{}",
                    std::fs::read_to_string(&self.config_path).unwrap_or_default(),
                    self.log()
                );
            }
            if client.options(Duration::from_millis(300)).is_some() {
                return;
            }
            if Instant::now() > deadline {
                let log = self.log();
                self.kill();
                panic!(
                    "strowger did not answer OPTIONS on {} within {START_TIMEOUT:?}\n--- log ---\n{log}",
                    self.addr()
                );
            }
        }
    }

    /// UDP (and TCP) address of the switch.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }

    /// TLS address, when started with [`SwitchBuilder::tls`].
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_port.map(|p| SocketAddr::new(self.ip, p))
    }

    /// Base URL of the admin API (`http://127.0.0.1:<port>`), unless the
    /// test disabled it.
    pub fn admin_url(&self) -> Option<String> {
        self.admin.map(|a| format!("http://{a}"))
    }

    /// The switch's working dir (config, store, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Default store file (`strowger.db` in [`Switch::dir`]).
    pub fn store_path(&self) -> PathBuf {
        self.dir.path().join("strowger.db")
    }

    /// Path of the written config file.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Everything the switch logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Graceful stop: SIGTERM, wait up to 15 s, then SIGKILL. Returns the
    /// exit code if it exited by itself.
    pub fn stop(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match c.try_wait() {
                Ok(Some(st)) => return st.code(),
                Ok(None) if Instant::now() > deadline => {
                    let _ = c.kill();
                    let _ = c.wait();
                    return None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(_) => return None,
            }
        }
    }

    /// SIGKILL (crash simulation).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stop gracefully and start again with the same config, ports and store.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Send OPTIONS from a fresh socket; the status if answered in `timeout`.
    pub fn ping(&self, timeout: Duration) -> Option<u16> {
        SipClient::new(self.ip, self.addr()).options(timeout)
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            let log = self.log();
            let n = log.len();
            let start = n.saturating_sub(20_000);
            let start = (start..n).find(|i| log.is_char_boundary(*i)).unwrap_or(n);
            eprintln!(
                "--- strowger log ({}, last {} bytes) ---\n{}\n--- end of strowger log ---",
                self.log_path.display(),
                n - start,
                &log[start..]
            );
        }
    }
}
