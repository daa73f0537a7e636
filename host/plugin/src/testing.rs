//! Helpers for tests that use the plugins built by `scripts/build-guests.sh`.

use std::path::PathBuf;

/// Directory of built plugins: `$STROWGER_PLUGIN_DIR`, else
/// `$CARGO_TARGET_DIR/plugins`, else `<workspace>/target/plugins`.
pub fn plugin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("STROWGER_PLUGIN_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        let d = PathBuf::from(d);
        let d = if d.is_relative() {
            workspace_root().join(d)
        } else {
            d
        };
        return d.join("plugins");
    }
    workspace_root().join("target").join("plugins")
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

/// Path of the built plugin `<name>.wasm`. Panics (tests must fail, not
/// skip) with a hint to run `scripts/build-guests.sh` when it is missing.
pub fn plugin_path(name: &str) -> PathBuf {
    let p = plugin_dir().join(format!("{name}.wasm"));
    if !p.is_file() {
        panic!(
            "plugin {name} not found at {}: run scripts/build-guests.sh (with the same CARGO_TARGET_DIR / \
             STROWGER_PLUGIN_DIR) first",
            p.display()
        );
    }
    p
}

/// The bytes of the built plugin `<name>.wasm` (see [`plugin_path`]).
pub fn plugin_bytes(name: &str) -> Vec<u8> {
    let p = plugin_path(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// Names of all built plugins present in [`plugin_dir`], sorted.
pub fn built_plugins() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(plugin_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".wasm")
                .map(str::to_string)
        })
        .collect();
    v.sort();
    v
}
