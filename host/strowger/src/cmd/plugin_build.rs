//! `strowger plugin build DIR` and `strowger plugin new --lang go|rust NAME`.
//!
//! `build` turns a plugin source directory into a validated WebAssembly
//! component:
//! - Rust (`Cargo.toml`): `cargo build --release --target wasm32-wasip2`,
//!   which links a component directly;
//! - Go (`go.mod`): the world is the SDK package the plugin imports
//!   (`strowger.dev/sdk/go/route`, ...); `GOOS=wasip1 GOARCH=wasm go build
//!   -buildmode=c-shared -ldflags=-checklinkname=0` makes a wasip1 reactor
//!   module, then the `wit-component` crate embeds the world's type
//!   information and adapts the module with the WASI preview1 reactor adapter
//!   of `wasi-preview1-component-adapter-provider` (the version matching the
//!   host's wasmtime). `scripts/build-go-guest.sh` does the same with
//!   `wasm-tools`.
//!
//! Either way the result is validated (`wasmparser`, all features the host
//! enables) and its WIT world decoded: the command prints size, world and
//! exported hooks, and refuses a component that exports no hook or imports
//! anything but `strowger:plugin/host` and WASI.
//!
//! `new` writes a plugin directory (source, unit test, manifest) that builds
//! wherever it is checked out. Where its SDK comes from, first match:
//! 1. `--sdk PATH` / `$STROWGER_SDK`: a Strowger checkout or its sdk/<lang>;
//! 2. the Strowger checkout the new directory is in (walking up);
//! 3. Rust: a copy of the SDK and the WIT embedded in this binary (build.rs),
//!    written to `NAME/strowger-sdk/` as standalone crates (vendored: the
//!    plugin's repository builds on any machine, with no checkout);
//!    Go: the checkout this binary runs from, else an error asking for
//!    `--sdk` (the Go SDK is not vendored).
//!
//! A checkout's SDK is written as a path relative to the new directory when
//! both share a parent directory (a plugin repository next to a checkout,
//! or inside one), never as the path of the machine that built the binary.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, bail};

/// The plugin contract, embedded at compile time (single source of truth:
/// `wit/strowger.wit`).
const WIT: &str = include_str!("../../../../wit/strowger.wit");

/// The hook worlds, as (world, exported interface).
const WORLDS: [(&str, &str); 4] = [
    ("route", "router"),
    ("authorize", "authorizer"),
    ("portability", "portability-lookup"),
    ("rewrite", "rewriter"),
];

/// Go release the SDK's bindings need (go.bytecodealliance.org/pkg v0.4.0).
const GO_MIN: (u32, u32, u32) = (1, 27, 1);
const GO_TOOLCHAIN: &str = "go1.27.1";

/// Arguments of `strowger plugin build`.
#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// Plugin source directory (contains Cargo.toml or go.mod).
    pub dir: PathBuf,
    /// Where to write the component (default: DIR/<name>.wasm).
    #[arg(short, long)]
    pub out: Option<PathBuf>,
    /// Go only: the world to build for (default: detected from the SDK
    /// package the plugin imports).
    #[arg(long, value_parser = ["route", "authorize", "portability", "rewrite"])]
    pub world: Option<String>,
}

/// Plugin languages of `strowger plugin new`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// Standard Go with the strowger.dev/sdk/go module.
    Go,
    /// Rust with the strowger-sdk crate.
    Rust,
}

/// Arguments of `strowger plugin new`.
#[derive(clap::Args, Debug)]
pub struct NewArgs {
    /// Language of the plugin.
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// Hook world the plugin implements.
    #[arg(long, default_value = "route", value_parser = ["route", "authorize", "portability", "rewrite"])]
    pub world: String,
    /// Directory to create; its last component is the plugin's name
    /// (lower-case letters, digits and '-').
    pub name: PathBuf,
    /// The SDK to use: a Strowger checkout, or its sdk/go or sdk/rust.
    /// Default: `$STROWGER_SDK`, else the checkout the new directory is in,
    /// else (Rust) a vendored copy of the SDK embedded in this binary, (Go)
    /// the checkout this binary runs from. The scaffold refers to it by a
    /// relative path when they share a parent directory.
    #[arg(long, env = "STROWGER_SDK")]
    pub sdk: Option<PathBuf>,
}

/// What `build` produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The component file written.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// The world it was built for.
    pub world: String,
    /// Exported hooks (world names: `route`, ...), plus `lifecycle`.
    pub exports: Vec<String>,
    /// Imported interfaces (fully qualified).
    pub imports: Vec<String>,
}

/// `strowger plugin build`.
pub fn run_build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let built = build(&args.dir, args.out.as_deref(), args.world.as_deref())?;
    println!(
        "built {} ({} bytes, {:.2} MiB)\n  world:   {}\n  exports: {}\n  imports: {}",
        built.path.display(),
        built.size,
        built.size as f64 / (1024.0 * 1024.0),
        built.world,
        built.exports.join(", "),
        built.imports.join(", "),
    );
    Ok(ExitCode::SUCCESS)
}

/// Builds the plugin in `dir` into a validated component at `out` (default
/// `dir/<name>.wasm`).
pub fn build(dir: &Path, out: Option<&Path>, world: Option<&str>) -> anyhow::Result<Built> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("plugin directory {}", dir.display()))?;
    let name = dir
        .file_name()
        .and_then(OsStr::to_str)
        .unwrap_or("plugin")
        .to_string();
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join(format!("{name}.wasm")));
    let (bytes, expected_world) = if dir.join("go.mod").is_file() {
        let (bytes, w) = build_go(&dir, world)?;
        (bytes, Some(w))
    } else if dir.join("Cargo.toml").is_file() {
        if world.is_some() {
            bail!(
                "--world is for Go plugins; a Rust plugin's world is the one its SDK macro exports"
            );
        }
        (build_rust(&dir)?, None)
    } else {
        bail!(
            "{} has neither Cargo.toml (Rust plugin) nor go.mod (Go plugin)",
            dir.display()
        );
    };
    let bytes = strip_debug_info(&bytes).context("stripping debug info")?;
    let info = inspect(&bytes)?;
    if let Some(w) = expected_world
        && w != info.world
    {
        bail!("built component targets world {}, expected {w}", info.world);
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let tmp = out.with_extension("wasm.tmp");
    std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &out).with_context(|| format!("writing {}", out.display()))?;
    Ok(Built {
        path: out,
        size: bytes.len() as u64,
        world: info.world,
        exports: info.exports,
        imports: info.imports,
    })
}

fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("{what}: cannot run {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn build_rust(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
        ])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo")?;
    if !output.status.success() {
        bail!(
            "cargo build --release --target wasm32-wasip2 failed ({})",
            output.status
        );
    }
    // The cdylib artifact of the package in `dir`.
    let manifest = dir.join("Cargo.toml");
    let mut wasm = None;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let same = msg["manifest_path"]
            .as_str()
            .and_then(|p| Path::new(p).canonicalize().ok())
            .is_some_and(|p| manifest.canonicalize().is_ok_and(|m| m == p));
        if !same {
            continue;
        }
        if let Some(files) = msg["filenames"].as_array() {
            wasm = files
                .iter()
                .filter_map(|f| f.as_str())
                .find(|f| f.ends_with(".wasm"))
                .map(PathBuf::from)
                .or(wasm);
        }
    }
    let wasm = wasm.context("cargo built no .wasm for this package (is its crate-type cdylib?)")?;
    std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))
}

/// Finds a Go toolchain new enough for the SDK: `$STROWGER_GO`, `go` on
/// PATH, then the toolchain module `GOTOOLCHAIN=go1.27.1` stores in the
/// module cache (scripts/install-go.sh puts it there).
pub fn find_go() -> anyhow::Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("STROWGER_GO") {
        candidates.push(p.into());
    }
    candidates.push("go".into());
    for base in candidates.clone() {
        if let Some(modcache) = go_output(&base, &["env", "GOMODCACHE"]) {
            let dir = Path::new(&modcache).join("golang.org");
            if let Ok(entries) = std::fs::read_dir(&dir) {
                let prefix = format!("toolchain@v0.0.1-{GO_TOOLCHAIN}.");
                for e in entries.flatten() {
                    if e.file_name().to_string_lossy().starts_with(&prefix) {
                        candidates.push(e.path().join("bin/go"));
                    }
                }
            }
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(Path::new(&home).join("go/pkg/mod/golang.org").join(format!(
            "toolchain@v0.0.1-{GO_TOOLCHAIN}.{}-{}/bin/go",
            std::env::consts::OS,
            match std::env::consts::ARCH {
                "x86_64" => "amd64",
                "aarch64" => "arm64",
                a => a,
            }
        )));
    }
    for c in &candidates {
        if let Some(v) = go_output(c, &["env", "GOVERSION"])
            && parse_go_version(&v).is_some_and(|v| v >= GO_MIN)
        {
            return Ok(c.clone());
        }
    }
    bail!(
        "no Go >= {}.{}.{} found (tried $STROWGER_GO, go on PATH, the {GO_TOOLCHAIN} toolchain module); \
         run scripts/install-go.sh or `GOTOOLCHAIN={GO_TOOLCHAIN} go version`",
        GO_MIN.0,
        GO_MIN.1,
        GO_MIN.2
    )
}

fn go_output(go: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(go)
        .args(args)
        .env("GOTOOLCHAIN", "local")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// "go1.27.1" -> (1, 27, 1); "go1.28rc1" -> (1, 28, 0).
fn parse_go_version(v: &str) -> Option<(u32, u32, u32)> {
    let v = v.trim().strip_prefix("go")?;
    let mut parts = v.split('.');
    let num = |s: Option<&str>| -> Option<u32> {
        let s = s?;
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        s[..end].parse().ok()
    };
    let major = num(parts.next())?;
    let minor = num(parts.next())?;
    let patch = num(parts.next()).unwrap_or(0);
    Some((major, minor, patch))
}

fn build_go(dir: &Path, world: Option<&str>) -> anyhow::Result<(Vec<u8>, String)> {
    let go = find_go()?;
    let go_cmd = || {
        let mut c = Command::new(&go);
        c.current_dir(dir)
            .env("GOOS", "wasip1")
            .env("GOARCH", "wasm")
            .env("GOTOOLCHAIN", "local");
        c
    };
    let world = match world {
        Some(w) => w.to_string(),
        None => {
            let out = go_cmd()
                .args(["list", "-deps", "."])
                .stderr(Stdio::inherit())
                .output()
                .context("go list")?;
            if !out.status.success() {
                bail!("go list -deps failed ({})", out.status);
            }
            let deps = String::from_utf8_lossy(&out.stdout);
            let found: Vec<&str> = WORLDS
                .iter()
                .map(|(w, _)| *w)
                .filter(|w| {
                    deps.lines()
                        .any(|l| l == format!("strowger.dev/sdk/go/{w}"))
                })
                .collect();
            match found.as_slice() {
                [w] => w.to_string(),
                [] => bail!(
                    "{} imports none of strowger.dev/sdk/go/{{route,authorize,portability,rewrite}}",
                    dir.display()
                ),
                many => bail!(
                    "{} imports several worlds ({}); one plugin = one world",
                    dir.display(),
                    many.join(", ")
                ),
            }
        }
    };
    let tmp = tempfile::tempdir().context("temporary directory")?;
    let core = tmp.path().join("core.wasm");
    run(
        go_cmd()
            .args([
                "build",
                "-trimpath",
                "-buildmode=c-shared",
                "-ldflags=-checklinkname=0",
                "-o",
            ])
            .arg(&core)
            .arg("."),
        "go build (GOOS=wasip1 GOARCH=wasm -buildmode=c-shared)",
    )?;
    let module = std::fs::read(&core).with_context(|| format!("reading {}", core.display()))?;
    Ok((componentize(module, &world)?, world))
}

/// Turns a wasip1 reactor core module into a component of `world`: embeds
/// the world's component type, then encodes with the WASI preview1 reactor
/// adapter, validating the result.
pub fn componentize(mut module: Vec<u8>, world: &str) -> anyhow::Result<Vec<u8>> {
    let mut resolve = wit_parser::Resolve::default();
    let pkg = resolve
        .push_str("strowger.wit", WIT)
        .context("parsing the embedded WIT")?;
    let world_id = resolve.select_world(&[pkg], Some(world))?;
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world_id,
        wit_component::StringEncoding::UTF8,
        false,
    )?;
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&module)?
        .adapter(
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .encode()
        .context("encoding the component")
}

/// Removes DWARF (custom sections named `.debug_*`) from a module or
/// component, nested modules included; keeps the `name` section (trap
/// backtraces) and the component type. The workspace's release profile keeps
/// line tables, which make a Rust plugin ~10x larger (4.4 MB vs 0.43 MB for
/// route-table) without changing what runs. Same effect as
/// `wasm-tools strip -d '^\.debug_'` (scripts/build-guests.sh).
pub fn strip_debug_info(input: &[u8]) -> anyhow::Result<Vec<u8>> {
    use wasmparser::{Parser, Payload};
    fn leb128(mut v: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    fn section(id: u8, data: &[u8], out: &mut Vec<u8>) {
        out.push(id);
        leb128(data.len(), out);
        out.extend_from_slice(data);
    }
    // Component section ids of nested core modules and components.
    const CORE_MODULE: u8 = 1;
    const COMPONENT: u8 = 4;
    let mut output = Vec::new();
    let mut stack: Vec<Vec<u8>> = Vec::new();
    for payload in Parser::new(0).parse_all(input) {
        let payload = payload?;
        match &payload {
            Payload::Version { range, .. } => {
                // Magic and version (or layer) as they are.
                output.extend_from_slice(&input[range.start as usize..range.end as usize]);
                continue;
            }
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => {
                stack.push(std::mem::take(&mut output));
                continue;
            }
            Payload::End(_) => {
                let Some(mut parent) = stack.pop() else {
                    break;
                };
                let nested = std::mem::take(&mut output);
                let is_component = Parser::is_component(&nested);
                section(
                    if is_component { COMPONENT } else { CORE_MODULE },
                    &nested,
                    &mut parent,
                );
                output = parent;
                continue;
            }
            Payload::CustomSection(c) if c.name().starts_with(".debug_") => continue,
            _ => {}
        }
        if let Some((id, range)) = payload.as_section() {
            section(
                id,
                &input[range.start as usize..range.end as usize],
                &mut output,
            );
        }
    }
    Ok(output)
}

/// What a component is, as decoded from its binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentInfo {
    /// The hook world it implements.
    pub world: String,
    /// Exported hooks (`lifecycle`, `route`, ...).
    pub exports: Vec<String>,
    /// Imported interfaces, fully qualified.
    pub imports: Vec<String>,
}

/// Validates a component and finds which hook world it implements.
pub fn inspect(bytes: &[u8]) -> anyhow::Result<ComponentInfo> {
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(bytes)
        .context("the component does not validate")?;
    let (resolve, world) =
        match wit_component::decode(bytes).context("decoding the component's WIT")? {
            wit_parser::decoding::DecodedWasm::Component(r, w) => (r, w),
            wit_parser::decoding::DecodedWasm::WitPackage(..) => {
                bail!("this is a WIT package, not a component")
            }
        };
    let w = &resolve.worlds[world];
    let name_of = |key: &wit_parser::WorldKey| resolve.name_world_key(key);
    let mut exports = Vec::new();
    let mut hooks = Vec::new();
    for key in w.exports.keys() {
        let full = name_of(key);
        let iface = full
            .strip_prefix("strowger:plugin/")
            .map(|s| s.split('@').next().unwrap_or(s).to_string());
        match iface.as_deref() {
            Some("lifecycle") => exports.push("lifecycle".to_string()),
            Some(i) => match WORLDS.iter().find(|(_, e)| *e == i) {
                Some((world, _)) => {
                    exports.push(world.to_string());
                    hooks.push(world.to_string());
                }
                None => exports.push(full),
            },
            None => exports.push(full),
        }
    }
    let imports: Vec<String> = w.imports.keys().map(name_of).collect();
    for i in &imports {
        if !(i.starts_with("strowger:plugin/") || i.starts_with("wasi:")) {
            bail!(
                "the component imports {i}: plugins may import only strowger:plugin/host and WASI"
            );
        }
    }
    let world_name = match hooks.as_slice() {
        [h] => h.clone(),
        [] => bail!(
            "the component exports no hook (router, authorizer, portability-lookup or rewriter)"
        ),
        many => bail!(
            "the component exports several hooks ({}); one plugin = one world",
            many.join(", ")
        ),
    };
    if !exports.iter().any(|e| e == "lifecycle") {
        bail!("the component does not export strowger:plugin/lifecycle");
    }
    Ok(ComponentInfo {
        world: world_name,
        exports,
        imports,
    })
}

/// `strowger plugin new`.
pub fn run_new(args: NewArgs) -> anyhow::Result<ExitCode> {
    let files = scaffold(&args)?;
    println!("created {}:", args.name.display());
    for f in &files {
        println!("  {}", f.display());
    }
    let dir = args.name.display();
    match args.lang {
        Lang::Go => println!(
            "next:\n  cd {dir} && go test ./...   (Go >= 1.27.1; scripts/install-go.sh)\n  strowger plugin build {dir}"
        ),
        Lang::Rust => println!("next:\n  cd {dir} && cargo test\n  strowger plugin build {dir}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The Rust SDK (`sdk/rust`) and workspace manifest, embedded by build.rs.
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/rust_sdk.rs"));
}

/// Directory (inside a Rust scaffold) of the vendored SDK.
const VENDORED_SDK_DIR: &str = "strowger-sdk";

/// True if `p` is the root of a Strowger checkout.
fn is_checkout(p: &Path) -> bool {
    p.join("wit/strowger.wit").is_file()
        && p.join("sdk/rust/Cargo.toml").is_file()
        && p.join("sdk/go/go.mod").is_file()
}

fn sdk_subdir(lang: Lang) -> &'static str {
    match lang {
        Lang::Go => "sdk/go",
        Lang::Rust => "sdk/rust",
    }
}

/// Where the scaffold's SDK comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SdkSource {
    /// This SDK directory (canonical).
    Dir(PathBuf),
    /// A copy of the SDK embedded in this binary, written into the scaffold.
    Vendored,
}

/// Finds the SDK for a scaffold at `dir` (absolute, canonical parent):
/// `explicit` (`--sdk` / `$STROWGER_SDK`: a checkout or its sdk/<lang>),
/// else the checkout `dir` is in, else for Rust the embedded SDK, for Go the
/// checkout this binary runs from.
fn find_sdk(lang: Lang, explicit: Option<&Path>, dir: &Path) -> anyhow::Result<SdkSource> {
    let sub = sdk_subdir(lang);
    if let Some(p) = explicit.filter(|p| !p.as_os_str().is_empty()) {
        let p = if is_checkout(p) {
            p.join(sub)
        } else {
            p.to_path_buf()
        };
        let marker = if lang == Lang::Go {
            "go.mod"
        } else {
            "Cargo.toml"
        };
        if !p.join(marker).is_file() {
            bail!(
                "--sdk / STROWGER_SDK {}: not a Strowger checkout nor its {sub} (no {marker})",
                p.display()
            );
        }
        return Ok(SdkSource::Dir(p.canonicalize()?));
    }
    if let Some(root) = dir.ancestors().skip(1).find(|a| is_checkout(a)) {
        return Ok(SdkSource::Dir(root.join(sub).canonicalize()?));
    }
    match lang {
        Lang::Rust => Ok(SdkSource::Vendored),
        Lang::Go => {
            let exe = std::env::current_exe()
                .ok()
                .and_then(|e| e.canonicalize().ok());
            if let Some(root) = exe
                .as_deref()
                .and_then(|e| e.ancestors().skip(1).find(|a| is_checkout(a)))
            {
                return Ok(SdkSource::Dir(root.join(sub).canonicalize()?));
            }
            bail!(
                "no Go SDK: {} is not inside a Strowger checkout; pass --sdk PATH (a checkout \
                 or its sdk/go) or set STROWGER_SDK (Rust scaffolds carry a vendored SDK, Go \
                 ones need a checkout)",
                dir.display()
            )
        }
    }
}

/// `to` as seen from `from` (both absolute): relative when they share a
/// directory below the root, else `to` itself.
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let f: Vec<_> = from.components().collect();
    let t: Vec<_> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    // only the root (`/`, or a prefix and root on Windows) in common
    let roots = t
        .iter()
        .take_while(|c| {
            matches!(
                c,
                std::path::Component::RootDir | std::path::Component::Prefix(_)
            )
        })
        .count();
    if common <= roots {
        return to.to_path_buf();
    }
    let mut rel = PathBuf::new();
    for _ in common..f.len() {
        rel.push("..");
    }
    for c in &t[common..] {
        rel.push(c);
    }
    if rel.as_os_str().is_empty() {
        rel.push(".");
    }
    rel
}

/// A path for a Cargo.toml or go.mod: `/` separators, `./` in front of a
/// relative path that does not start with `..` (go.mod needs it).
fn manifest_path(p: &Path) -> String {
    let s = p.to_string_lossy().replace('\\', "/");
    if p.is_absolute() || s.starts_with("../") || s == ".." {
        s
    } else {
        format!("./{s}")
    }
}

/// The embedded Rust SDK as files of a standalone package tree rooted at
/// `strowger-sdk/`: manifests without workspace inheritance, the bindings'
/// WIT path pointing at `strowger-sdk/wit`.
fn vendored_rust_sdk() -> anyhow::Result<Vec<(String, String)>> {
    let ws: toml::Table =
        toml::from_str(embedded::WORKSPACE_MANIFEST).context("the embedded workspace manifest")?;
    let mut files = Vec::new();
    for (rel, text) in embedded::RUST_SDK_FILES {
        let content = if rel.ends_with("Cargo.toml") {
            deworkspace(text, &ws).with_context(|| format!("vendoring sdk/rust/{rel}"))?
        } else if rel.starts_with("bindings/") && rel.ends_with(".rs") {
            // bindings/<world>/src/lib.rs: the WIT is at strowger-sdk/wit
            text.replace("\"../../../../wit\"", "\"../../wit\"")
        } else {
            text.to_string()
        };
        files.push((format!("{VENDORED_SDK_DIR}/{rel}"), content));
    }
    files.push((
        format!("{VENDORED_SDK_DIR}/wit/strowger.wit"),
        WIT.to_string(),
    ));
    files.push((
        format!("{VENDORED_SDK_DIR}/README.md"),
        format!(
            "Vendored copy of the Strowger Rust plugin SDK and its WIT contract,\n\
             written by `strowger plugin new` (strowger {}) because no Strowger\n\
             checkout was found. Keep it in version control with the plugin, or\n\
             point `strowger-sdk` in ../Cargo.toml at a checkout's sdk/rust\n\
             (`strowger plugin new --sdk PATH` does that).\n",
            env!("CARGO_PKG_VERSION")
        ),
    ));
    Ok(files)
}

/// A manifest of the SDK with `x.workspace = true` replaced by the
/// workspace's values.
fn deworkspace(text: &str, ws: &toml::Table) -> anyhow::Result<String> {
    let mut m: toml::Table = toml::from_str(text)?;
    let inherits = |v: &toml::Value| {
        v.as_table()
            .and_then(|t| t.get("workspace"))
            .and_then(toml::Value::as_bool)
            == Some(true)
    };
    let wpkg = ws
        .get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(toml::Value::as_table);
    let wdeps = ws
        .get("workspace")
        .and_then(|w| w.get("dependencies"))
        .and_then(toml::Value::as_table);
    if let Some(pkg) = m.get_mut("package").and_then(toml::Value::as_table_mut) {
        for (k, v) in pkg.iter_mut() {
            if inherits(v) {
                *v = wpkg
                    .and_then(|p| p.get(k))
                    .cloned()
                    .with_context(|| format!("workspace.package.{k} missing"))?;
            }
        }
    }
    for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
        let Some(deps) = m.get_mut(section).and_then(toml::Value::as_table_mut) else {
            continue;
        };
        for (k, v) in deps.iter_mut() {
            if !inherits(v) {
                continue;
            }
            let base = wdeps
                .and_then(|d| d.get(k))
                .cloned()
                .with_context(|| format!("workspace.dependencies.{k} missing"))?;
            let mut t = match base {
                toml::Value::String(version) => {
                    let mut t = toml::Table::new();
                    t.insert("version".into(), toml::Value::String(version));
                    t
                }
                toml::Value::Table(t) => t,
                other => bail!("workspace.dependencies.{k}: unexpected {other}"),
            };
            if t.contains_key("path") {
                bail!("dependency {k} is a path in the workspace: cannot vendor");
            }
            for (ek, ev) in v.as_table().into_iter().flatten() {
                match ek.as_str() {
                    "workspace" => {}
                    "features" => {
                        let mut all = t
                            .get("features")
                            .and_then(toml::Value::as_array)
                            .cloned()
                            .unwrap_or_default();
                        all.extend(ev.as_array().cloned().unwrap_or_default());
                        t.insert("features".into(), toml::Value::Array(all));
                    }
                    _ => {
                        t.insert(ek.clone(), ev.clone());
                    }
                }
            }
            *v = toml::Value::Table(t);
        }
    }
    Ok(toml::to_string(&m)?)
}

/// Writes the scaffold of a new plugin; returns the files written.
pub fn scaffold(args: &NewArgs) -> anyhow::Result<Vec<PathBuf>> {
    let dir = &args.name;
    let name = dir
        .file_name()
        .and_then(OsStr::to_str)
        .context("the plugin name must be a directory name")?
        .to_string();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || name.starts_with('-')
        || name.starts_with(|c: char| c.is_ascii_digit())
    {
        bail!(
            "plugin name {name:?}: use lower-case letters, digits and '-', starting with a letter"
        );
    }
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    // The nearest existing ancestor, canonical, plus what does not exist yet.
    let abs = std::path::absolute(dir).with_context(|| format!("{}", dir.display()))?;
    let existing = abs
        .ancestors()
        .find(|a| a.exists())
        .context("no existing parent directory")?;
    let canonical = existing
        .canonicalize()?
        .join(abs.strip_prefix(existing).unwrap_or(Path::new("")));
    let sdk = find_sdk(args.lang, args.sdk.as_deref(), &canonical)?;
    let files = match (args.lang, &sdk) {
        (Lang::Go, SdkSource::Dir(sdk)) => scaffold_go(&name, &args.world, sdk, &canonical)?,
        (Lang::Go, SdkSource::Vendored) => bail!("internal: no vendored Go SDK"),
        (Lang::Rust, sdk) => scaffold_rust(&name, &args.world, sdk, &canonical)?,
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for (rel, content) in files {
        let path = dir.join(&rel);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p)?;
        }
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

fn scaffold_go(
    name: &str,
    world: &str,
    sdk_dir: &Path,
    dir: &Path,
) -> anyhow::Result<Vec<(String, String)>> {
    let sdk = manifest_path(&relative_path(dir, sdk_dir));
    let go_mod = format!(
        "module example.com/strowger-plugins/{name}\n\n\
         // Go >= 1.27.1 (the SDK's bindings need it). An older go fetches go1.27.1\n\
         // for this line when GOTOOLCHAIN=auto (the upstream default); under\n\
         // GOTOOLCHAIN=local run `GOTOOLCHAIN=auto go test` (or put the go1.27.1\n\
         // that `strowger plugin build` found first in PATH).\n\
         go 1.27.1\n\nrequire strowger.dev/sdk/go v0.0.0\n\n\
         require go.bytecodealliance.org/pkg v0.4.0 // indirect\n\n\
         replace strowger.dev/sdk/go => {sdk}\n\n\
         // From the crates.io package wit-bindgen-go (see sdk/go/tools/gopkg.sh).\n\
         replace go.bytecodealliance.org/pkg => {sdk}/third_party/go-pkg\n"
    );
    let (main, test) = match world {
        "route" => (GO_ROUTE_MAIN, GO_ROUTE_TEST),
        "authorize" => (GO_AUTHORIZE_MAIN, GO_AUTHORIZE_TEST),
        "portability" => (GO_PORTABILITY_MAIN, GO_PORTABILITY_TEST),
        _ => (GO_REWRITE_MAIN, GO_REWRITE_TEST),
    };
    let sub = |s: &str| s.replace("{{NAME}}", name);
    let mut files = vec![("go.mod".to_string(), go_mod)];
    if let Ok(sum) = std::fs::read_to_string(sdk_dir.join("go.sum")) {
        files.push(("go.sum".into(), sum));
    }
    files.extend([
        ("main.go".into(), sub(main)),
        ("main_test.go".into(), sub(test)),
        (".gitignore".into(), "*.wasm\n".into()),
    ]);
    Ok(files)
}

fn scaffold_rust(
    name: &str,
    world: &str,
    sdk: &SdkSource,
    dir: &Path,
) -> anyhow::Result<Vec<(String, String)>> {
    // Inside a Cargo workspace whose members glob covers the new directory
    // (e.g. guest-examples/rust/ of a Strowger checkout) the package joins
    // it; anywhere else it is its own workspace.
    let in_workspace = sdk != &SdkSource::Vendored
        && dir
            .parent()
            .and_then(|p| p.canonicalize().ok())
            .is_some_and(|p| p.ends_with("guest-examples/rust") && is_checkout(&p.join("../..")));
    let (sdk_path, vendored) = match sdk {
        SdkSource::Dir(d) => (manifest_path(&relative_path(dir, d)), Vec::new()),
        SdkSource::Vendored => (VENDORED_SDK_DIR.to_string(), vendored_rust_sdk()?),
    };
    let mut cargo = String::new();
    writeln!(
        cargo,
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n[lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n[dependencies]{}\nstrowger-sdk = {{ path = \"{sdk_path}\" }}",
        if vendored.is_empty() {
            ""
        } else {
            "\n# A copy of the Strowger Rust SDK (strowger-sdk/README.md)."
        }
    )?;
    if !in_workspace {
        cargo.push_str("\n[workspace]\n");
    }
    let (trait_name, macro_name, body, test) = match world {
        "route" => ("Router", "export_router", RUST_ROUTE_BODY, RUST_ROUTE_TEST),
        "authorize" => (
            "Authorizer",
            "export_authorizer",
            RUST_AUTHORIZE_BODY,
            RUST_AUTHORIZE_TEST,
        ),
        "portability" => (
            "Portability",
            "export_portability",
            RUST_PORTABILITY_BODY,
            RUST_PORTABILITY_TEST,
        ),
        _ => (
            "Rewriter",
            "export_rewriter",
            RUST_REWRITE_BODY,
            RUST_REWRITE_TEST,
        ),
    };
    let lib = format!(
        "//! `{name}`: a Strowger {world} plugin.\n\nuse strowger_sdk::{world}::*;\n\n/// The plugin (built once per instance with `Default`, then `init`).\n#[derive(Default)]\npub struct Plugin;\n\nimpl strowger_sdk::{trait_name} for Plugin {{\n{body}}}\n\n// Natively (cargo test) there is nothing to export: the component exports\n// exist only in the wasm32-wasip2 build.\n#[cfg(target_arch = \"wasm32\")]\nstrowger_sdk::{macro_name}!(Plugin);\n\n#[cfg(test)]\nmod tests {{\n    use super::*;\n    use strowger_sdk::{trait_name};\n\n{test}}}\n"
    );
    let mut files = vec![
        ("Cargo.toml".into(), cargo),
        ("src/lib.rs".into(), lib),
        (".gitignore".into(), "/target\n*.wasm\n".into()),
    ];
    files.extend(vendored);
    Ok(files)
}

const GO_ROUTE_MAIN: &str = r#"// Command {{NAME}} is a Strowger route plugin.
package main

import (
	strowger "strowger.dev/sdk/go"
	"strowger.dev/sdk/go/route"
)

// Config is the plugin's JSON configuration.
type Config struct {
	// Trunk for numbers that are not extensions.
	Trunk string `json:"trunk"`
}

type router struct {
	cfg        Config
	extensions *strowger.Pattern
}

// Init validates the configuration once per instance; an error refuses the
// plugin version at load time.
func (r *router) Init(config string) error {
	r.cfg = Config{Trunk: "carrier"}
	if err := strowger.DecodeConfig(config, &r.cfg); err != nil {
		return err
	}
	r.extensions = strowger.MustCompilePattern("_1XXX")
	return nil
}

// Route decides where a call goes: extensions to the registered user,
// everything else out through the trunk.
func (r *router) Route(call *strowger.Call) (strowger.RouteDecision, error) {
	if r.extensions.Match(call.BNumber) {
		return strowger.ForwardTo(strowger.Try(strowger.ToUser(call.BNumber))), nil
	}
	if call.BNumber == "" {
		return strowger.RejectWith(404, ""), nil
	}
	return strowger.ForwardTo(strowger.Try(strowger.ToTrunk(r.cfg.Trunk))), nil
}

func init() { route.Register(&router{}) }

func main() {}
"#;

const GO_ROUTE_TEST: &str = r#"package main

import (
	"testing"

	strowger "strowger.dev/sdk/go"
)

func TestRoute(t *testing.T) {
	r := &router{}
	if err := r.Init(`{"trunk":"pstn"}`); err != nil {
		t.Fatal(err)
	}
	d, err := r.Route(&strowger.Call{BNumber: "1001"})
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := d.(strowger.Forward); !ok || f.Attempts[0].Destination != strowger.ToUser("1001") {
		t.Fatalf("extension: %#v", d)
	}
	d, _ = r.Route(&strowger.Call{BNumber: "551133334444"})
	if f, ok := d.(strowger.Forward); !ok || f.Attempts[0].Destination != strowger.ToTrunk("pstn") {
		t.Fatalf("external: %#v", d)
	}
	if err := (&router{}).Init(`{"trunk":"x","typo":1}`); err == nil {
		t.Fatal("bad config accepted")
	}
}
"#;

const GO_AUTHORIZE_MAIN: &str = r#"// Command {{NAME}} is a Strowger authorize plugin.
package main

import (
	strowger "strowger.dev/sdk/go"
	"strowger.dev/sdk/go/authorize"
)

type authorizer struct{}

// Authorize accepts valid credentials, challenges known users and drops
// the rest (scanners).
func (authorizer) Authorize(req *strowger.AuthRequest) (strowger.AuthDecision, error) {
	switch {
	case req.Credentials == strowger.CredentialsValid:
		return strowger.Accept{MaxExpires: strowger.Ptr(uint32(3600))}, nil
	case req.KnownUser:
		return strowger.Challenge{}, nil
	}
	return strowger.Drop{}, nil
}

func init() { authorize.Register(authorizer{}) }

func main() {}
"#;

const GO_AUTHORIZE_TEST: &str = r#"package main

import (
	"testing"

	strowger "strowger.dev/sdk/go"
)

func TestAuthorize(t *testing.T) {
	a := authorizer{}
	if d, _ := a.Authorize(&strowger.AuthRequest{Credentials: strowger.CredentialsValid}); d == nil {
		t.Fatal("nil")
	} else if _, ok := d.(strowger.Accept); !ok {
		t.Fatalf("valid: %#v", d)
	}
	if d, _ := a.Authorize(&strowger.AuthRequest{KnownUser: true}); d == nil {
		t.Fatal("nil")
	} else if _, ok := d.(strowger.Challenge); !ok {
		t.Fatalf("known: %#v", d)
	}
	if d, _ := a.Authorize(&strowger.AuthRequest{}); d != (strowger.Drop{}) {
		t.Fatalf("unknown: %#v", d)
	}
}
"#;

const GO_PORTABILITY_MAIN: &str = r#"// Command {{NAME}} is a Strowger portability plugin.
package main

import (
	strowger "strowger.dev/sdk/go"
	"strowger.dev/sdk/go/portability"
)

type lookup struct{}

// Lookup finds the carrier of a number in the data set "ported" (exact
// match, then longest prefix).
func (lookup) Lookup(q *strowger.PortabilityQuery) (*strowger.PortabilityResult, error) {
	carrier, matched, ok := strowger.DatasetLookup("ported", q.Number)
	if !ok {
		return nil, nil
	}
	return &strowger.PortabilityResult{
		Number:        q.Number,
		Carrier:       carrier,
		RoutingNumber: carrier + q.Number,
		Ported:        matched == q.Number,
	}, nil
}

func init() { portability.Register(lookup{}) }

func main() {}
"#;

const GO_PORTABILITY_TEST: &str = r#"package main

import (
	"testing"

	strowger "strowger.dev/sdk/go"
	"strowger.dev/sdk/go/strowgertest"
)

func TestLookup(t *testing.T) {
	strowgertest.Install(t, &strowgertest.Host{Datasets: map[string]map[string]string{
		"ported": {"1133334444": "55321", "11": "55341"},
	}})
	r, err := lookup{}.Lookup(&strowger.PortabilityQuery{Number: "1133334444"})
	if err != nil || r == nil || r.Carrier != "55321" || !r.Ported {
		t.Fatalf("%+v %v", r, err)
	}
	r, _ = lookup{}.Lookup(&strowger.PortabilityQuery{Number: "1155556666"})
	if r == nil || r.Carrier != "55341" || r.Ported {
		t.Fatalf("%+v", r)
	}
	if r, _ = (lookup{}).Lookup(&strowger.PortabilityQuery{Number: "2133334444"}); r != nil {
		t.Fatalf("%+v", r)
	}
}
"#;

const GO_REWRITE_MAIN: &str = r#"// Command {{NAME}} is a Strowger rewrite plugin.
package main

import (
	strowger "strowger.dev/sdk/go"
	"strowger.dev/sdk/go/rewrite"
)

var national = strowger.MustParseSubst(`/^0([1-9][0-9].*)$/+55$1/`)

type rewriter struct{}

// Rewrite normalises national numbers to E.164 on the way in and back on
// the way out.
func (rewriter) Rewrite(req *strowger.RewriteRequest) (strowger.Numbers, error) {
	n := req.Numbers
	if req.Direction == strowger.Inbound {
		n.BNumber, _ = national.Apply(n.BNumber)
	} else {
		n.BNumber, _ = strowger.ReplacePrefix(n.BNumber, "+55", "0")
	}
	return n, nil
}

func init() { rewrite.Register(rewriter{}) }

func main() {}
"#;

const GO_REWRITE_TEST: &str = r#"package main

import (
	"testing"

	strowger "strowger.dev/sdk/go"
)

func TestRewrite(t *testing.T) {
	in := &strowger.RewriteRequest{Direction: strowger.Inbound, Numbers: strowger.Numbers{BNumber: "01133334444"}}
	if n, _ := (rewriter{}).Rewrite(in); n.BNumber != "+551133334444" {
		t.Fatal(n.BNumber)
	}
	out := &strowger.RewriteRequest{Direction: strowger.Outbound, Numbers: strowger.Numbers{BNumber: "+551133334444"}}
	if n, _ := (rewriter{}).Rewrite(out); n.BNumber != "01133334444" {
		t.Fatal(n.BNumber)
	}
}
"#;

const RUST_ROUTE_BODY: &str = r#"    fn route(&self, call: Call) -> Result<RouteDecision, String> {
        if call.b_number.starts_with('1') && call.b_number.len() == 4 {
            Ok(RouteDecision::forward(vec![Attempt::to(Destination::User(call.b_number))]))
        } else {
            Ok(RouteDecision::reject(404, "No route"))
        }
    }
"#;

const RUST_ROUTE_TEST: &str = r#"    fn call(b: &str) -> Call {
        let party = |u: &str| Party {
            uri: format!("sip:{u}@example.com"),
            user: u.into(),
            host: "example.com".into(),
            display_name: None,
        };
        Call {
            call_id: "test-1".into(),
            ingress: Ingress::Unknown,
            source: Endpoint { ip: "127.0.0.1".into(), port: 5060, transport: strowger_sdk::Transport::Udp },
            request_uri: format!("sip:{b}@example.com"),
            a_number: "1001".into(),
            b_number: b.into(),
            display_name: None,
            from: party("1001"),
            to: party(b),
            pai: None,
            diversion: vec![],
            headers: vec![],
            codecs: vec![],
            portability: None,
            time: strowger_sdk::testing::datetime(2026, 11, 23, 1, 9, 0),
        }
    }

    #[test]
    fn extensions_go_to_users() {
        match Plugin.route(call("1002")).unwrap() {
            RouteDecision::Forward(f) => {
                assert!(matches!(&f.attempts[0].destination, Destination::User(u) if u == "1002"))
            }
            _ => panic!("not forwarded"),
        }
        assert!(matches!(Plugin.route(call("999")).unwrap(), RouteDecision::Reject(r) if r.code == 404));
    }
"#;

const RUST_AUTHORIZE_BODY: &str = r#"    fn authorize(&self, request: AuthRequest) -> Result<AuthDecision, String> {
        Ok(match request.credentials {
            Credentials::Valid => AuthDecision::Accept(Accept { max_expires: Some(3600), min_expires: None, max_contacts: None }),
            _ if request.known_user => AuthDecision::Challenge(Challenge { realm: None, algorithms: vec![] }),
            _ => AuthDecision::Drop,
        })
    }
"#;

const RUST_AUTHORIZE_TEST: &str = r#"    fn request(credentials: Credentials, known_user: bool) -> AuthRequest {
        AuthRequest {
            method: "REGISTER".into(),
            aor: "sip:1001@example.com".into(),
            user: "1001".into(),
            domain: "example.com".into(),
            auth_user: Some("1001".into()),
            credentials,
            known_user,
            source: Endpoint { ip: "127.0.0.1".into(), port: 5062, transport: strowger_sdk::Transport::Udp },
            ingress: Ingress::Unknown,
            user_agent: Some("test-phone".into()),
            contacts: vec!["sip:1001@127.0.0.1:5062".into()],
            expires: Some(600),
            registration: RegistrationState::None,
            contact_count: 0,
            time: strowger_sdk::testing::datetime(2026, 11, 23, 1, 9, 0),
        }
    }

    #[test]
    fn accepts_challenges_and_drops() {
        let d = Plugin.authorize(request(Credentials::Valid, true)).unwrap();
        assert!(matches!(d, AuthDecision::Accept(a) if a.max_expires == Some(3600)));
        let d = Plugin.authorize(request(Credentials::None, true)).unwrap();
        assert!(matches!(d, AuthDecision::Challenge(_)));
        let d = Plugin.authorize(request(Credentials::None, false)).unwrap();
        assert!(matches!(d, AuthDecision::Drop));
    }
"#;

const RUST_PORTABILITY_BODY: &str = r#"    /// The carrier of a number from the data set "ported": exact match
    /// (ported), else longest prefix (number range).
    fn lookup(&self, query: PortabilityQuery) -> Result<Option<PortabilityResult>, String> {
        let n = query.number;
        let (carrier, ported) = match strowger_sdk::host::dataset_get("ported", &n) {
            Some(c) => (c, true),
            None => match strowger_sdk::host::dataset_longest_prefix("ported", &n) {
                Some(m) => (m.value, false),
                None => return Ok(None),
            },
        };
        Ok(Some(PortabilityResult { routing_number: format!("{carrier}{n}"), number: n, carrier, ported }))
    }
"#;

const RUST_PORTABILITY_TEST: &str = r#"    fn query(n: &str) -> PortabilityQuery {
        PortabilityQuery {
            number: n.into(),
            a_number: "2122223333".into(),
            ingress: Ingress::Unknown,
            time: strowger_sdk::testing::datetime(2026, 11, 23, 1, 9, 0),
        }
    }

    #[test]
    fn exact_then_prefix() {
        strowger_sdk::testing::set_dataset("ported", [("1133334444", "55321"), ("11", "55341")]);
        let r = Plugin.lookup(query("1133334444")).unwrap().unwrap();
        assert_eq!((r.carrier.as_str(), r.ported), ("55321", true));
        let r = Plugin.lookup(query("1155556666")).unwrap().unwrap();
        assert_eq!((r.carrier.as_str(), r.ported), ("55341", false));
        assert_eq!(r.routing_number, "553411155556666");
        assert!(Plugin.lookup(query("2133334444")).unwrap().is_none());
    }
"#;

const RUST_REWRITE_BODY: &str = r#"    /// National numbers to E.164 on ingress (`0XX...` -> `+55XX...`), back
    /// on egress.
    fn rewrite(&self, request: RewriteRequest) -> Result<Numbers, String> {
        let mut n = request.numbers;
        n.b_number = match request.direction {
            Direction::Ingress => match n.b_number.strip_prefix('0') {
                Some(rest) if rest.len() >= 10 => format!("+55{rest}"),
                _ => n.b_number,
            },
            Direction::Egress => match n.b_number.strip_prefix("+55") {
                Some(rest) => format!("0{rest}"),
                None => n.b_number,
            },
        };
        Ok(n)
    }
"#;

const RUST_REWRITE_TEST: &str = r#"    fn request(direction: Direction, b: &str) -> RewriteRequest {
        RewriteRequest {
            direction,
            trunk: Some("pstn".into()),
            ingress: Ingress::Unknown,
            numbers: Numbers { a_number: "1001".into(), b_number: b.into(), display_name: None },
            time: strowger_sdk::testing::datetime(2026, 11, 23, 1, 9, 0),
        }
    }

    #[test]
    fn national_and_e164() {
        let n = Plugin.rewrite(request(Direction::Ingress, "01133334444")).unwrap();
        assert_eq!(n.b_number, "+551133334444");
        let n = Plugin.rewrite(request(Direction::Egress, "+551133334444")).unwrap();
        assert_eq!(n.b_number, "01133334444");
        let n = Plugin.rewrite(request(Direction::Ingress, "1001")).unwrap();
        assert_eq!(n.b_number, "1001");
    }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// The checkout these tests run in.
    fn checkout() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .canonicalize()
            .unwrap()
    }

    #[test]
    fn relative_paths() {
        let r = |a: &str, b: &str| relative_path(Path::new(a), Path::new(b));
        assert_eq!(
            r("/src/me/plugins/x", "/src/strowger/sdk/rust"),
            Path::new("../../../strowger/sdk/rust")
        );
        assert_eq!(
            r("/c/guest-examples/rust/x", "/c/sdk/rust"),
            Path::new("../../../sdk/rust")
        );
        // only the root in common: absolute
        assert_eq!(
            r("/home/me/x", "/opt/strowger/sdk/go"),
            Path::new("/opt/strowger/sdk/go")
        );
        assert_eq!(manifest_path(Path::new("../sdk/go")), "../sdk/go");
        assert_eq!(manifest_path(Path::new("sdk/go")), "./sdk/go");
        assert_eq!(manifest_path(Path::new("/opt/sdk/go")), "/opt/sdk/go");
    }

    /// A scaffold inside a Strowger checkout (found by walking up) refers to
    /// its SDK by a relative path; `--sdk` with a checkout too; the Go
    /// scaffold outside any checkout, without --sdk, is refused with advice.
    #[test]
    fn scaffold_in_a_checkout_uses_a_relative_sdk_path() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = tmp.path().join("fork");
        for f in ["wit/strowger.wit", "sdk/rust/Cargo.toml", "sdk/go/go.mod"] {
            std::fs::create_dir_all(fake.join(f).parent().unwrap()).unwrap();
            std::fs::write(fake.join(f), "").unwrap();
        }
        let dir = fake.join("plugins/mine/my-router");
        scaffold(&NewArgs {
            lang: Lang::Rust,
            world: "route".into(),
            name: dir.clone(),
            sdk: None,
        })
        .unwrap();
        let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(
            cargo.contains("strowger-sdk = { path = \"../../../sdk/rust\" }"),
            "{cargo}"
        );
        assert!(!dir.join(VENDORED_SDK_DIR).exists());
        let dir = fake.join("plugins/my-go");
        scaffold(&NewArgs {
            lang: Lang::Go,
            world: "route".into(),
            name: dir.clone(),
            sdk: None,
        })
        .unwrap();
        let gomod = std::fs::read_to_string(dir.join("go.mod")).unwrap();
        assert!(
            gomod.contains("replace strowger.dev/sdk/go => ../../sdk/go\n"),
            "{gomod}"
        );
        // an explicit checkout next to the plugin repository
        let mine = tmp.path().join("mine/my-rewriter");
        scaffold(&NewArgs {
            lang: Lang::Go,
            world: "rewrite".into(),
            name: mine.clone(),
            sdk: Some(fake.clone()),
        })
        .unwrap();
        let gomod = std::fs::read_to_string(mine.join("go.mod")).unwrap();
        assert!(
            gomod.contains("=> ../../fork/sdk/go/third_party/go-pkg"),
            "{gomod}"
        );
        // a path that is no SDK
        let err = scaffold(&NewArgs {
            lang: Lang::Rust,
            world: "route".into(),
            name: tmp.path().join("x"),
            sdk: Some(tmp.path().join("mine")),
        })
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("not a Strowger checkout"),
            "{err:#}"
        );
        assert!(!tmp.path().join("x").exists());
    }

    /// The vendored SDK's manifests inherit nothing from a workspace.
    #[test]
    fn vendored_sdk_is_standalone() {
        let files = vendored_rust_sdk().unwrap();
        let get = |p: &str| {
            &files
                .iter()
                .find(|(n, _)| n == p)
                .unwrap_or_else(|| panic!("{p}"))
                .1
        };
        for (name, text) in &files {
            if name.ends_with("Cargo.toml") {
                assert!(!text.contains("workspace"), "{name}:\n{text}");
            }
        }
        let sdk: toml::Table = toml::from_str(get("strowger-sdk/Cargo.toml")).unwrap();
        assert_eq!(sdk["package"]["edition"].as_str(), Some("2024"));
        assert_eq!(
            sdk["dependencies"]["wit-bindgen"]["default-features"].as_bool(),
            Some(false)
        );
        assert!(get("strowger-sdk/bindings/route/src/lib.rs").contains("path: \"../../wit\""));
        assert_eq!(get("strowger-sdk/wit/strowger.wit"), WIT);
        assert!(files.iter().any(|(n, _)| n == "strowger-sdk/src/lib.rs"));
    }

    #[test]
    fn go_versions() {
        assert_eq!(parse_go_version("go1.27.1"), Some((1, 27, 1)));
        assert_eq!(parse_go_version("go1.28rc1"), Some((1, 28, 0)));
        assert_eq!(parse_go_version("go1.26.8"), Some((1, 26, 8)));
        assert!(parse_go_version("go1.26.8").unwrap() < GO_MIN);
        assert_eq!(parse_go_version("devel"), None);
    }

    #[test]
    fn embedded_wit_has_every_world() {
        let mut resolve = wit_parser::Resolve::default();
        let pkg = resolve.push_str("strowger.wit", WIT).unwrap();
        for (w, _) in WORLDS {
            resolve.select_world(&[pkg], Some(w)).unwrap();
        }
    }

    #[test]
    fn inspect_refuses_garbage() {
        assert!(inspect(b"not wasm").is_err());
        // An empty core module is valid wasm but no component.
        assert!(inspect(&[0, b'a', b's', b'm', 1, 0, 0, 0]).is_err());
    }

    /// Builds the real tod-router example (needs Go >= 1.27.1 and the
    /// go.bytecodealliance.org/pkg link: scripts/install-go.sh).
    #[test]
    fn builds_the_go_example_into_a_route_component() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = tempfile::tempdir().unwrap();
        let path = out.path().join("tod-router.wasm");
        let built = build(
            &root.join("guest-examples/go/tod-router"),
            Some(&path),
            None,
        )
        .expect("build");
        assert_eq!(built.world, "route");
        assert_eq!(built.exports, ["lifecycle", "route"]);
        assert!(
            built
                .imports
                .iter()
                .any(|i| i.starts_with("strowger:plugin/host"))
        );
        assert!(
            built.size > 1 << 20,
            "a Go component is MiBs: {}",
            built.size
        );
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(inspect(&bytes).unwrap().world, "route");
        // Asking for another world than the plugin implements fails.
        assert!(
            build(
                &root.join("guest-examples/go/tod-router"),
                Some(&path),
                Some("rewrite")
            )
            .is_err()
        );
    }

    /// `plugin new --lang go` scaffolds a plugin whose own test passes and
    /// which builds into a component of the requested world.
    #[test]
    fn scaffolded_go_plugin_tests_and_builds() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("my-rewriter");
        let files = scaffold(&NewArgs {
            lang: Lang::Go,
            world: "rewrite".into(),
            name: dir.clone(),
            sdk: Some(checkout()),
        })
        .unwrap();
        assert!(files.iter().any(|f| f.ends_with("main_test.go")));
        let go = find_go().expect("Go >= 1.27.1 (scripts/install-go.sh)");
        let status = Command::new(&go)
            .args(["test", "./..."])
            .current_dir(&dir)
            .env("GOTOOLCHAIN", "local")
            .status()
            .unwrap();
        assert!(status.success(), "go test of the scaffold failed");
        let built = build(&dir, None, None).expect("build scaffold");
        assert_eq!(built.world, "rewrite");
        assert_eq!(
            built.path,
            dir.canonicalize().unwrap().join("my-rewriter.wasm")
        );
    }

    /// `plugin new --lang rust` scaffolds, for every world, a plugin whose
    /// own `cargo test` passes and which builds into a component of that
    /// world. Each scaffold is its own Cargo workspace; with a shared
    /// CARGO_TARGET_DIR (CI, scripts/env.sh) only the first run compiles the
    /// SDK's dependencies (~1.5 min on 2 cores), later runs take seconds.
    #[test]
    fn scaffolded_rust_plugins_test_and_build() {
        let tmp = tempfile::tempdir().unwrap();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        for (world, _) in WORLDS {
            let dir = tmp.path().join(format!("my-{world}"));
            scaffold(&NewArgs {
                lang: Lang::Rust,
                world: world.into(),
                name: dir.clone(),
                sdk: None,
            })
            .unwrap();
            // no checkout around the temp dir: a vendored SDK, no path of
            // the machine that built this binary
            let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
            assert!(
                manifest.contains("strowger-sdk = { path = \"strowger-sdk\" }"),
                "{manifest}"
            );
            assert!(!manifest.contains(env!("CARGO_MANIFEST_DIR")), "{manifest}");
            assert!(!manifest.contains("path = \"/"), "{manifest}");
            assert!(dir.join("strowger-sdk/wit/strowger.wit").is_file());
            let out = Command::new(&cargo)
                .args(["test", "--quiet"])
                .current_dir(&dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "cargo test of the {world} scaffold failed:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let passed = String::from_utf8_lossy(&out.stdout).contains("1 passed");
            assert!(passed, "{world}: the scaffold's test did not run");
            let built = build(&dir, None, None).expect("build scaffold");
            assert_eq!(built.world, world);
            assert_eq!(built.exports, ["lifecycle", world]);
        }
    }

    fn debug_sections(bytes: &[u8]) -> usize {
        wasmparser::Parser::new(0)
            .parse_all(bytes)
            .filter(|p| {
                matches!(p, Ok(wasmparser::Payload::CustomSection(c)) if c.name().starts_with(".debug_"))
            })
            .count()
    }

    #[test]
    fn strip_removes_dwarf_only() {
        let custom = |name: &str, data: &[u8]| {
            let mut body = vec![name.len() as u8];
            body.extend_from_slice(name.as_bytes());
            body.extend_from_slice(data);
            let mut s = vec![0, body.len() as u8];
            s.extend(body);
            s
        };
        let header = [0, b'a', b's', b'm', 1, 0, 0, 0];
        let mut module = header.to_vec();
        module.extend(custom(".debug_info", &[1, 2, 3]));
        module.extend(custom("name", &[]));
        module.extend(custom(".debug_line", &[4; 100]));
        let mut want = header.to_vec();
        want.extend(custom("name", &[]));
        assert_eq!(strip_debug_info(&module).unwrap(), want);
        assert!(strip_debug_info(b"garbage").is_err());
    }

    /// `plugin build` on a Rust standard plugin: a validated rewrite
    /// component without DWARF, exporting what the cargo artifact exports.
    #[test]
    fn builds_a_rust_example_stripped() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = tempfile::tempdir().unwrap();
        let path = out.path().join("e164.wasm");
        let built = build(
            &root.join("guest-examples/rust/e164-normalize"),
            Some(&path),
            None,
        )
        .expect("build");
        assert_eq!(built.world, "rewrite");
        assert_eq!(built.exports, ["lifecycle", "rewrite"]);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, built.size);
        assert_eq!(debug_sections(&bytes), 0);
        let unstripped = build_rust(&root.join("guest-examples/rust/e164-normalize")).unwrap();
        // While the workspace profile keeps line tables there is DWARF to
        // strip, and it is most of the file.
        if debug_sections(&unstripped) > 0 {
            assert!(
                built.size * 4 < unstripped.len() as u64,
                "stripped {} vs {} bytes",
                built.size,
                unstripped.len()
            );
        }
        assert_eq!(inspect(&unstripped).unwrap(), inspect(&bytes).unwrap());
    }

    /// Names that are not lower-case letters, digits and '-' starting with a
    /// letter are refused before anything is written.
    #[test]
    fn bad_plugin_names_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mut paths: Vec<PathBuf> = ["Bad", "1abc", "-x", "a_b", "b.c", "..", "ü"]
            .iter()
            .map(|n| tmp.path().join(n))
            .collect();
        // No last component at all.
        paths.extend([PathBuf::from(""), PathBuf::from("/")]);
        for name in paths {
            let args = NewArgs {
                lang: Lang::Go,
                world: "route".into(),
                name: name.clone(),
                sdk: None,
            };
            let err = scaffold(&args).expect_err(&format!("{name:?} accepted"));
            let msg = format!("{err:#}");
            assert!(
                msg.contains("plugin name") || msg.contains("directory name"),
                "{name:?}: {msg}"
            );
        }
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "a refused name must not create anything"
        );
        // A good name is accepted (control: the loop above is not vacuous).
        let ok = tmp.path().join("good-name2");
        scaffold(&NewArgs {
            lang: Lang::Go,
            world: "route".into(),
            name: ok.clone(),
            sdk: Some(checkout()),
        })
        .unwrap();
        assert!(ok.join("main.go").is_file());
    }
}
