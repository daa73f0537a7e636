//! Run SIPp and read its results.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::net::free_media_port;

/// A SIPp invocation (builder). Every run is bounded: `-timeout` (default
/// 60 s) with `-timeout_error`, plus a hard kill a little later.
#[derive(Debug, Clone)]
pub struct Sipp {
    scenario: Vec<String>,
    name: String,
    local_ip: IpAddr,
    local_port: Option<u16>,
    remote: Option<SocketAddr>,
    args: Vec<String>,
    timeout: Duration,
    files: Vec<(String, String)>,
}

/// Final statistics of a SIPp run.
#[derive(Debug, Clone, Default)]
pub struct SippResult {
    /// Scenario name (for messages).
    pub name: String,
    /// Exit code (None when killed by a signal). 0 = all calls succeeded,
    /// 1 = some failed, 97 = exit by internal command, 99 = no call processed.
    pub exit_code: Option<i32>,
    /// Calls that reached the end of the scenario.
    pub successful: u64,
    /// Failed calls.
    pub failed: u64,
    /// Calls started.
    pub created: u64,
    /// Retransmissions sent by SIPp.
    pub retransmissions: u64,
    /// Contents of the error log (`-trace_err`).
    pub errors: String,
    /// SIPp's stdout+stderr.
    pub output: String,
    /// Message trace, when enabled with [`Sipp::trace_msg`].
    pub messages: String,
    /// True if the run was killed by the testkit's hard deadline.
    pub killed: bool,
}

impl SippResult {
    /// Panic with everything useful unless every call succeeded and at least
    /// `min_calls` did.
    pub fn assert_ok(&self, min_calls: u64) {
        assert!(
            self.exit_code == Some(0) && self.failed == 0 && self.successful >= min_calls,
            "sipp {} did not succeed: exit {:?}, successful {}, failed {}, killed {}\n--- errors ---\n{}\n--- output (tail) ---\n{}\n--- messages (tail) ---\n{}",
            self.name,
            self.exit_code,
            self.successful,
            self.failed,
            self.killed,
            tail(&self.errors, 4000),
            tail(&self.output, 3000),
            tail(&self.messages, 6000)
        );
    }
}

fn tail(s: &str, n: usize) -> &str {
    if s.len() <= n {
        s
    } else {
        let mut i = s.len() - n;
        while !s.is_char_boundary(i) {
            i += 1;
        }
        &s[i..]
    }
}

impl Sipp {
    /// A scenario file (e.g. [`crate::paths::scenario`]).
    pub fn scenario(path: impl AsRef<Path>) -> Sipp {
        let p = path.as_ref();
        let name = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".into());
        Self::with(vec!["-sf".into(), p.display().to_string()], name)
    }

    /// A built-in scenario (`uac`, `uas`, `branchc`, ...).
    pub fn builtin(name: &str) -> Sipp {
        Self::with(vec!["-sn".into(), name.into()], name.into())
    }

    fn with(scenario: Vec<String>, name: String) -> Sipp {
        Sipp {
            scenario,
            name,
            local_ip: "127.0.0.1".parse().unwrap(),
            local_port: None,
            remote: None,
            args: Vec::new(),
            timeout: Duration::from_secs(60),
            files: Vec::new(),
        }
    }

    /// Local address (`-i`) and port (`-p`; None = a free one chosen by SIPp).
    pub fn local(mut self, ip: IpAddr, port: Option<u16>) -> Sipp {
        self.local_ip = ip;
        self.local_port = port;
        self
    }

    /// Remote host (the switch) for UAC scenarios.
    pub fn remote(mut self, addr: SocketAddr) -> Sipp {
        self.remote = Some(addr);
        self
    }

    /// `-m`: stop after this many calls.
    pub fn calls(self, n: u64) -> Sipp {
        self.arg("-m").arg(n.to_string())
    }

    /// `-r`: calls per second.
    pub fn rate(self, cps: u32) -> Sipp {
        self.arg("-r").arg(cps.to_string()).arg("-rp").arg("1000")
    }

    /// `-l`: max simultaneous calls.
    pub fn limit(self, n: u32) -> Sipp {
        self.arg("-l").arg(n.to_string())
    }

    /// `-s`: service (user part of the Request-URI).
    pub fn service(self, s: &str) -> Sipp {
        self.arg("-s").arg(s)
    }

    /// `-inf`: CSV injection file with these lines (first line `SEQUENTIAL`
    /// / `RANDOM` / `USER` is added when missing).
    pub fn inf_lines(mut self, lines: &[String]) -> Sipp {
        let mut text = String::new();
        if !lines
            .first()
            .is_some_and(|l| ["SEQUENTIAL", "RANDOM", "USER"].contains(&l.trim()))
        {
            text.push_str("SEQUENTIAL\n");
        }
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        let name = format!("inf{}.csv", self.files.len());
        self.files.push((name.clone(), text));
        self.arg("-inf").arg(name)
    }

    /// Users for an authenticating scenario: an injection file whose lines
    /// are `user;[authentication username=user password=secret]`, so the
    /// scenario uses `[field0]` as the user and `[field1]` as its
    /// authentication line. (SIPp 3.6 does not expand `[fieldN]` inside an
    /// `[authentication ...]` keyword, so the keyword travels in the field.)
    pub fn users<U: AsRef<str>, P: AsRef<str>>(self, creds: &[(U, P)]) -> Sipp {
        let lines: Vec<String> = creds
            .iter()
            .map(|(u, p)| {
                let (u, p) = (u.as_ref(), p.as_ref());
                format!("{u};[authentication username={u} password={p}]")
            })
            .collect();
        self.inf_lines(&lines)
    }

    /// A file written into SIPp's working directory before it starts (e.g.
    /// `cacert.pem`/`cakey.pem` for TLS).
    pub fn with_file(mut self, name: &str, contents: &str) -> Sipp {
        self.files.push((name.into(), contents.into()));
        self
    }

    /// `-t t1` (one TCP connection per call).
    pub fn tcp(self) -> Sipp {
        self.arg("-t").arg("t1")
    }

    /// `-t l1` (TLS).
    pub fn tls(self) -> Sipp {
        self.arg("-t").arg("l1")
    }

    /// `-timeout` (overall) with `-timeout_error`; the testkit kills SIPp
    /// 15 s after it.
    pub fn timeout(mut self, t: Duration) -> Sipp {
        self.timeout = t;
        self
    }

    /// `-recv_timeout` in milliseconds.
    pub fn recv_timeout(self, t: Duration) -> Sipp {
        self.arg("-recv_timeout").arg(t.as_millis().to_string())
    }

    /// `-set var value`.
    pub fn set(self, var: &str, value: &str) -> Sipp {
        self.arg("-set").arg(var).arg(value)
    }

    /// `-key keyword value`.
    pub fn key(self, k: &str, v: &str) -> Sipp {
        self.arg("-key").arg(k).arg(v)
    }

    /// `-au`/`-ap`: credentials for `[authentication]`.
    pub fn auth(self, user: &str, password: &str) -> Sipp {
        self.arg("-au").arg(user).arg("-ap").arg(password)
    }

    /// Log every message (`-trace_msg`), returned in [`SippResult::messages`].
    pub fn trace_msg(self) -> Sipp {
        self.arg("-trace_msg")
    }

    /// Any other argument.
    pub fn arg(mut self, a: impl Into<String>) -> Sipp {
        self.args.push(a.into());
        self
    }

    /// Start SIPp in the background (UAS side); see [`RunningSipp::wait`].
    pub fn spawn(self) -> RunningSipp {
        let dir = tempfile::Builder::new()
            .prefix("sipp-")
            .tempdir()
            .expect("sipp temp dir");
        for (name, text) in &self.files {
            std::fs::write(dir.path().join(name), text).expect("write inf file");
        }
        let mut cmd = Command::new("sipp");
        cmd.current_dir(dir.path());
        cmd.args(&self.scenario);
        if let Some(r) = self.remote {
            cmd.arg(r.to_string());
        }
        cmd.arg("-i").arg(self.local_ip.to_string());
        if let Some(p) = self.local_port {
            cmd.arg("-p").arg(p.to_string());
        }
        let media = free_media_port(self.local_ip);
        cmd.arg("-mi").arg(self.local_ip.to_string());
        cmd.arg("-mp").arg(media.to_string());
        cmd.args(["-nostdin", "-trace_err", "-error_file", "errors.log"]);
        cmd.args(["-trace_stat", "-stf", "stats.csv", "-fd", "1"]);
        cmd.args(["-message_file", "messages.log"]);
        cmd.arg("-timeout")
            .arg(format!("{}", self.timeout.as_secs().max(1)));
        cmd.arg("-timeout_error");
        cmd.args(&self.args);
        let out = std::fs::File::create(dir.path().join("output.log")).expect("output log");
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run sipp (is /usr/bin/sipp installed?): {e}"));
        let mut running = RunningSipp {
            child: Some(child),
            dir,
            name: self.name,
            deadline: Instant::now() + self.timeout + Duration::from_secs(15),
            local: self.local_ip,
            local_port: self.local_port,
        };
        if self.remote.is_none() {
            // A UAS: return once it can receive.
            running.wait_listening();
        }
        running
    }

    /// Run to completion and return the result.
    pub fn run(self) -> SippResult {
        self.spawn().wait()
    }
}

/// A SIPp process started with [`Sipp::spawn`]; killed on drop.
pub struct RunningSipp {
    child: Option<Child>,
    dir: tempfile::TempDir,
    name: String,
    deadline: Instant,
    local: IpAddr,
    local_port: Option<u16>,
}

impl RunningSipp {
    /// The address SIPp listens on (when a port was given).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.local_port.map(|p| SocketAddr::new(self.local, p))
    }

    /// The working directory (logs, stats).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Block until SIPp's UDP socket on [`RunningSipp::addr`] is bound
    /// (bounded: panics after 15 s with SIPp's output).
    pub fn wait_listening(&mut self) {
        let Some(addr) = self.addr() else { return };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::UdpSocket::bind(addr).is_ok() {
            if !self.is_running() || Instant::now() > deadline {
                let out =
                    std::fs::read_to_string(self.dir.path().join("output.log")).unwrap_or_default();
                panic!("sipp {} is not listening on {addr}:\n{out}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True while SIPp runs.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Wait until SIPp exits (or the hard deadline: then SIGKILL) and
    /// collect its result.
    pub fn wait(mut self) -> SippResult {
        let mut killed = false;
        let mut code = None;
        if let Some(mut c) = self.child.take() {
            loop {
                match c.try_wait() {
                    Ok(Some(st)) => {
                        code = st.code();
                        break;
                    }
                    Ok(None) if Instant::now() > self.deadline => {
                        let _ = c.kill();
                        let _ = c.wait();
                        killed = true;
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                    Err(_) => break,
                }
            }
        }
        self.collect(code, killed)
    }

    /// Stop SIPp now (SIGUSR1 is not reliable without a terminal: SIGKILL)
    /// and collect what it wrote.
    pub fn stop(mut self) -> SippResult {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.collect(None, true)
    }

    fn collect(&self, exit_code: Option<i32>, killed: bool) -> SippResult {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        let stats = read("stats.csv");
        let mut r = SippResult {
            name: self.name.clone(),
            exit_code,
            errors: read("errors.log"),
            output: read("output.log"),
            messages: read("messages.log"),
            killed,
            ..SippResult::default()
        };
        parse_stats(&stats, &mut r);
        r
    }
}

impl Drop for RunningSipp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Read the cumulative counters from the last row of a `-trace_stat` CSV.
fn parse_stats(csv: &str, r: &mut SippResult) {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else { return };
    let Some(last) = lines.next_back() else {
        return;
    };
    let cols: Vec<&str> = header.split(';').collect();
    let vals: Vec<&str> = last.split(';').collect();
    let get = |name: &str| -> u64 {
        cols.iter()
            .position(|c| *c == name)
            .and_then(|i| vals.get(i))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    r.successful = get("SuccessfulCall(C)");
    r.failed = get("FailedCall(C)");
    r.created = get("TotalCallCreated");
    r.retransmissions = get("Retransmissions(C)");
}
