//! Where things are: workspace, target dir, the `strowger` binary, plugins.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root. Found from the running test's `CARGO_MANIFEST_DIR`
/// (cargo sets it at run time; every crate sits two levels below the root),
/// falling back to this crate's compile-time location. The run-time value
/// matters: a shared target dir may hold this crate compiled from another
/// checkout of the same workspace (cargo reuses artifacts across checkouts).
pub fn workspace_root() -> PathBuf {
    let candidates = [
        std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR"))),
    ];
    candidates
        .into_iter()
        .flatten()
        .filter_map(|d| d.join("../..").canonicalize().ok())
        .find(|root| root.join("Cargo.toml").is_file() && root.join("wit").is_dir())
        .expect("workspace root: run the tests through cargo from the Strowger checkout")
}

/// The cargo profile dir the running test executable was built into
/// (`<target>/debug` or `<target>/release`), derived from the executable's
/// own path (`<target>/<profile>/deps/<test>-<hash>`), so the switch binary
/// is built with the same target dir and profile as the test.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("exe dir");
    let dir = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().expect("profile dir")
    } else {
        deps
    };
    dir.to_path_buf()
}

/// The cargo target dir (`$CARGO_TARGET_DIR` as seen by the build that made
/// this test executable).
pub fn target_dir() -> PathBuf {
    profile_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Path of the `strowger` binary: `$STROWGER_BIN` if set, else built once
/// per test process with `cargo build -p strowger` into [`target_dir`]
/// (same profile as the test). Panics with cargo's output if the build fails.
pub fn strowger_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("STROWGER_BIN") {
            return PathBuf::from(p);
        }
        let profile = profile_dir();
        let release = profile.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace_root())
            .env("CARGO_TARGET_DIR", target_dir())
            .args(["build", "--workspace", "--bins"]);
        if release {
            cmd.arg("--release");
        }
        let out = cmd.output().expect("run cargo build -p strowger");
        assert!(
            out.status.success(),
            "cargo build -p strowger failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = profile.join("strowger");
        assert!(bin.is_file(), "{} missing after cargo build", bin.display());
        bin
    })
    .clone()
}

/// The directory of built plugins: `$STROWGER_PLUGIN_DIR`, else
/// `<target_dir>/plugins`.
pub fn plugin_dir() -> PathBuf {
    match std::env::var_os("STROWGER_PLUGIN_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => target_dir().join("plugins"),
    }
}

/// The `.wasm` of plugin `name` (e.g. `route-table`). Panics (the test
/// fails, it is not skipped) when it has not been built.
pub fn plugin_path(name: &str) -> PathBuf {
    let p = plugin_dir().join(format!("{name}.wasm"));
    assert!(
        p.is_file(),
        "plugin {} not found: run scripts/build-guests.sh (with the same CARGO_TARGET_DIR={}) first",
        p.display(),
        target_dir().display()
    );
    p
}

/// A file under `host/switch/tests/scenarios/`.
pub fn scenario(name: &str) -> PathBuf {
    let p = workspace_root()
        .join("host/switch/tests/scenarios")
        .join(name);
    assert!(p.is_file(), "scenario {} missing", p.display());
    p
}
