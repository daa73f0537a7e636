//! Embeds the Rust plugin SDK (`sdk/rust`) and the workspace manifest it
//! inherits from, so that `strowger plugin new --lang rust` can write a
//! vendored copy of the SDK into a scaffold when no Strowger checkout is
//! at hand (a binary installed or copied to another machine).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                walk(base, &path, out);
            }
        } else if name.ends_with(".rs") || name.ends_with(".toml") || name.ends_with(".md") {
            out.push(path.strip_prefix(base).unwrap().to_path_buf());
        }
    }
}

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.join("../..");
    let sdk = root.join("sdk/rust");
    let mut files = Vec::new();
    walk(&sdk, &sdk, &mut files);
    let mut code = String::from(
        "/// The files of `sdk/rust` (path relative to it, contents).\n\
         pub const RUST_SDK_FILES: &[(&str, &str)] = &[\n",
    );
    for f in &files {
        let abs = sdk.join(f).canonicalize().unwrap();
        writeln!(
            code,
            "    ({:?}, include_str!({:?})),",
            f.to_string_lossy().replace('\\', "/"),
            abs.to_string_lossy()
        )
        .unwrap();
    }
    code.push_str("];\n");
    let ws = root.join("Cargo.toml").canonicalize().unwrap();
    writeln!(
        code,
        "/// The workspace manifest (`version.workspace = true`, ... of the SDK).\n\
         pub const WORKSPACE_MANIFEST: &str = include_str!({:?});",
        ws.to_string_lossy()
    )
    .unwrap();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("rust_sdk.rs");
    std::fs::write(out, code).unwrap();
    println!("cargo:rerun-if-changed=../../sdk/rust");
    println!("cargo:rerun-if-changed=../../Cargo.toml");
    println!("cargo:rerun-if-changed=build.rs");
}
