//! README.md's "Try it with SIPp" commands, run exactly as written: the
//! shell block between the `quickstart-sipp` markers is extracted from
//! README.md (so it cannot drift), `strowger serve --demo` is started as
//! `scripts/serve.sh` does (on the README's 127.0.0.1:5060), and the block
//! runs from the repository root with `bash -e`: every `sipp` must exit 0
//! (both REGISTERs got 200; the call was answered, and the BYE got 200 at
//! the caller and reached the callee). Then the switch itself must list
//! both registrations at the addresses the commands used.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use strowger_testkit::paths::{plugin_path, strowger_bin, workspace_root};
use strowger_testkit::switch::START_TIMEOUT;
use strowger_testkit::{Algorithm, SipClient, unique_loopback};

const BEGIN: &str = "<!-- quickstart-sipp:begin -->";
const END: &str = "<!-- quickstart-sipp:end -->";
/// Where `strowger serve --demo` listens (SIP) and serves its admin API.
const DEMO_SIP: &str = "127.0.0.1:5060";
const DEMO_ADMIN: &str = "127.0.0.1:8080";

/// The shell commands of README.md's SIPp quickstart (the fenced block
/// between the markers).
fn readme_commands() -> String {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let (_, rest) = readme
        .split_once(BEGIN)
        .unwrap_or_else(|| panic!("README.md has no {BEGIN}"));
    let (block, _) = rest
        .split_once(END)
        .unwrap_or_else(|| panic!("README.md has no {END} after {BEGIN}"));
    let (_, code) = block
        .split_once("```sh\n")
        .expect("a ```sh block between the quickstart markers");
    let (code, _) = code.split_once("```").expect("the ```sh block is closed");
    code.to_string()
}

/// The `-p` port of the README's `register.xml` command for `user`.
fn register_port(commands: &str, user: &str) -> u16 {
    let line = commands
        .lines()
        .find(|l| l.contains("register.xml") && l.contains(&format!("-key user {user} ")))
        .unwrap_or_else(|| panic!("no register.xml command for {user} in:\n{commands}"));
    let mut words = line.split_whitespace();
    words
        .find(|w| *w == "-p")
        .expect("-p in the register command");
    words.next().unwrap().parse().expect("-p PORT")
}

/// A child process in its own process group, killed (the whole group) on
/// drop; its stdout+stderr go to a file.
struct Proc {
    child: Child,
    log: std::path::PathBuf,
}

impl Proc {
    fn spawn(mut cmd: Command, log: &Path) -> Proc {
        let out = File::create(log).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Proc {
            child,
            log: log.to_path_buf(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Exit status within `limit`, or None (then the group is killed).
    fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal("-TERM");
            if self.wait(Duration::from_secs(10)).is_none() {
                self.signal("-KILL");
                let _ = self.child.wait();
            }
        }
    }
}

#[test]
fn readme_sipp_quickstart_registers_two_demo_users_and_calls() {
    let commands = readme_commands();
    assert!(
        commands.contains(&format!("SWITCH={DEMO_SIP}")),
        "the README commands talk to {DEMO_SIP}, where `strowger serve --demo` listens:\n{commands}"
    );
    // The demo config listens on fixed ports; say so clearly when taken.
    let sip: SocketAddr = DEMO_SIP.parse().unwrap();
    let admin: SocketAddr = DEMO_ADMIN.parse().unwrap();
    assert!(
        UdpSocket::bind(sip).is_ok() && TcpListener::bind(sip).is_ok(),
        "{DEMO_SIP} is in use (a `scripts/serve.sh` running?): the demo switch needs it"
    );
    assert!(
        TcpListener::bind(admin).is_ok(),
        "{DEMO_ADMIN} is in use: the demo switch's admin API needs it"
    );
    let plugins = plugin_path("route-table").parent().unwrap().to_path_buf();

    let dir = tempfile::tempdir().unwrap();
    // As scripts/serve.sh: `strowger serve --demo` (store in the cwd).
    let mut serve = Command::new(strowger_bin());
    serve
        .args(["serve", "--demo"])
        .current_dir(dir.path())
        .env("STROWGER_PLUGIN_DIR", &plugins);
    let mut switch = Proc::spawn(serve, &dir.path().join("strowger.log"));
    let deadline = Instant::now() + START_TIMEOUT;
    while !switch
        .log()
        .contains(&format!("listening on udp:{DEMO_SIP}"))
    {
        assert!(
            Instant::now() < deadline && matches!(switch.child.try_wait(), Ok(None)),
            "strowger serve --demo did not start:\n{}",
            switch.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let script = dir.path().join("quickstart.sh");
    std::fs::write(&script, &commands).unwrap();
    let mut sh = Command::new("bash");
    sh.args(["-e", "-x"])
        .arg(&script)
        .current_dir(workspace_root());
    let mut run = Proc::spawn(sh, &dir.path().join("quickstart.log"));
    let status = run.wait(Duration::from_secs(120));
    assert!(
        status.is_some_and(|s| s.success()),
        "README quickstart commands failed ({status:?}):\n{}\n--- switch log ---\n{}",
        run.log(),
        switch.log()
    );
    assert_eq!(
        run.log().matches("+ sipp ").count(),
        4,
        "the block runs four sipp commands:\n{}",
        run.log()
    );

    // The switch itself holds both registrations, at the commands' ports.
    for user in ["1001", "1002"] {
        let port = register_port(&commands, user);
        let mut c = SipClient::new(unique_loopback(), sip);
        let out = c.register(
            user,
            &format!("demo{user}"),
            "strowger.local",
            None,
            None,
            Algorithm::Md5,
            Duration::from_secs(10),
        );
        assert_eq!(out.response.status(), 200, "{:?}", out.response);
        let contacts = out.response.contacts();
        assert!(
            contacts
                .iter()
                .any(|k| k.contains(&format!("@127.0.0.1:{port}"))),
            "{user}: contacts {contacts:?} do not include 127.0.0.1:{port}"
        );
    }
}
