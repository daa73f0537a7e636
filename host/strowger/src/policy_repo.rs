//! Policy repositories: a directory with `policy.toml` (plugin references,
//! bindings, data sets), plugin configs, data-set CSVs and `tests/*.json`
//! test cases. Format: `policies/README.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use strowger_admin::{PolicyDocument, PolicyTest, StoredBinding};
use strowger_plugin::{Fallback, Hook, Scope};

/// `policy.toml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RepoFile {
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    plugins: BTreeMap<String, PluginRef>,
    bindings: Vec<BindingDef>,
    #[serde(default)]
    datasets: Vec<DatasetDef>,
    /// Test-case directory (default `tests`).
    #[serde(default)]
    tests: Option<PathBuf>,
}

/// `[plugins.<key>]`: where the plugin comes from.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PluginRef {
    /// Plugin name (default: the key); `<name>.wasm` in the plugin dir.
    name: Option<String>,
    /// A `.wasm` component, relative to the repository.
    wasm: Option<PathBuf>,
    /// A plugin source directory (Rust or Go) built with `strowger plugin build`.
    source: Option<PathBuf>,
    /// Pin: the component's sha256 must be this.
    sha256: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BindingDef {
    hook: Hook,
    /// A key of `[plugins]`.
    plugin: String,
    config: Option<toml::Value>,
    config_file: Option<PathBuf>,
    #[serde(default)]
    datasets: Vec<String>,
    /// `"global"` (default) or a trunk name.
    scope: Option<String>,
    deadline_ms: Option<u64>,
    fallback: Option<toml::Value>,
    memory_limit_mb: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DatasetDef {
    name: String,
    file: PathBuf,
}

/// One test case file entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseDef {
    name: Option<String>,
    hook: Option<Hook>,
    trunk: Option<String>,
    /// JSON input (merged over the example input of the hook; merged over
    /// the input derived from `sip` when both are given).
    input: Option<Value>,
    /// A raw SIP request: INVITE → a `route` input, REGISTER → `authorize`.
    sip: Option<String>,
    expect: Value,
    #[serde(default)]
    allow_fallback: bool,
}

/// A plugin of the repository.
pub struct LocalPlugin {
    /// Key in `[plugins]`.
    pub key: String,
    /// Name (uploaded as `?name=`).
    pub name: String,
    /// sha256 of the component.
    pub sha256: String,
    /// The component, when found locally (a sha256-only reference may
    /// name a plugin that is only on the server).
    pub wasm: Option<Vec<u8>>,
    /// Where it came from.
    pub origin: String,
}

/// A data set of the repository.
pub struct LocalDataset {
    /// Name.
    pub name: String,
    /// The CSV bytes.
    pub csv: Vec<u8>,
    /// sha256 of the bytes (what the server records per version).
    pub sha256: String,
}

/// A loaded repository.
pub struct Repo {
    /// Plugins, by key order.
    pub plugins: Vec<LocalPlugin>,
    /// Data sets.
    pub datasets: Vec<LocalDataset>,
    /// The policy document (bindings refer to plugins by sha256).
    pub document: PolicyDocument,
    /// Where each test case came from (`file#index`), parallel to
    /// `document.tests`.
    pub test_origins: Vec<String>,
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn toml_to_json(v: toml::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Loads `dir/policy.toml` and everything it refers to. `plugin_dir` is
/// searched for `<name>.wasm` (and for a pinned sha256).
pub fn load(dir: &Path, plugin_dir: Option<&Path>) -> anyhow::Result<Repo> {
    let file = dir.join("policy.toml");
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("reading {} (a policy repository needs one)", file.display()))?;
    let rf: RepoFile =
        toml::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;

    let mut plugins = Vec::new();
    let mut sha_of = BTreeMap::new();
    let mut keys: Vec<String> = rf.plugins.keys().cloned().collect();
    // bindings may name a plugin without a [plugins] entry: same as an empty one
    for b in &rf.bindings {
        if !keys.contains(&b.plugin) {
            keys.push(b.plugin.clone());
        }
    }
    for key in keys {
        let r = rf.plugins.get(&key);
        let default = PluginRef::default();
        let r = r.unwrap_or(&default);
        let p = resolve_plugin(dir, &key, r, plugin_dir)
            .with_context(|| format!("plugin `{key}` of {}", file.display()))?;
        sha_of.insert(key.clone(), p.sha256.clone());
        plugins.push(p);
    }

    let mut bindings = Vec::new();
    for (i, b) in rf.bindings.into_iter().enumerate() {
        let at = || format!("bindings[{i}] of {}", file.display());
        let config = match (b.config, &b.config_file) {
            (Some(_), Some(_)) => bail!("{}: give `config` or `config_file`, not both", at()),
            (Some(c), None) => toml_to_json(c),
            (None, Some(f)) => {
                let p = dir.join(f);
                let t = std::fs::read_to_string(&p)
                    .with_context(|| format!("{}: reading {}", at(), p.display()))?;
                serde_json::from_str::<Value>(&t)
                    .with_context(|| format!("{}: {} is not valid JSON", at(), p.display()))?
            }
            (None, None) => json!({}),
        };
        let fallback: Fallback = match b.fallback {
            None => Fallback::Default,
            Some(f) => serde_json::from_value(toml_to_json(f)).with_context(|| {
                format!(
                    "{}: fallback must be {{ kind = \"default\" | \"reject\" (code, reason) | \"challenge\" | \"static\" (decision) | \"previous\" }}",
                    at()
                )
            })?,
        };
        let scope = match b.scope.as_deref() {
            None | Some("global") => Scope::Global,
            Some(t) => Scope::Trunk(t.to_string()),
        };
        bindings.push(StoredBinding {
            hook: b.hook,
            plugin: sha_of[&b.plugin].clone(),
            config,
            datasets: b.datasets,
            scope,
            deadline_ms: b.deadline_ms,
            fallback,
            memory_limit_bytes: b.memory_limit_mb.map(|m| m * 1024 * 1024),
        });
    }

    let mut datasets = Vec::new();
    for d in rf.datasets {
        let p = dir.join(&d.file);
        let csv = std::fs::read(&p)
            .with_context(|| format!("data set `{}`: reading {}", d.name, p.display()))?;
        // the server's parser: refuse here what it would refuse
        strowger_admin::parse_dataset_csv(&csv, "local")
            .map_err(|e| anyhow::anyhow!("data set `{}` ({}): {e}", d.name, p.display()))?;
        datasets.push(LocalDataset {
            name: d.name,
            sha256: sha256_hex(&csv),
            csv,
        });
    }

    let tests_dir = dir.join(rf.tests.unwrap_or_else(|| PathBuf::from("tests")));
    let (tests, test_origins) = load_tests(&tests_dir)?;
    Ok(Repo {
        plugins,
        datasets,
        document: PolicyDocument {
            comment: rf.comment,
            bindings,
            tests,
        },
        test_origins,
    })
}

fn resolve_plugin(
    dir: &Path,
    key: &str,
    r: &PluginRef,
    plugin_dir: Option<&Path>,
) -> anyhow::Result<LocalPlugin> {
    let name = r.name.clone().unwrap_or_else(|| key.to_string());
    let (wasm, origin) = if let Some(w) = &r.wasm {
        let p = dir.join(w);
        let b = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        (Some(b), p.display().to_string())
    } else if let Some(s) = &r.source {
        let src = dir.join(s);
        let out = tempfile::tempdir()?;
        let target = out.path().join(format!("{name}.wasm"));
        let built = crate::cmd::plugin_build::build(&src, Some(&target), None)
            .with_context(|| format!("building {}", src.display()))?;
        let b = std::fs::read(&built.path)?;
        (Some(b), format!("built from {}", src.display()))
    } else {
        let by_name = plugin_dir.map(|d| d.join(format!("{name}.wasm")));
        match by_name.filter(|p| p.is_file()) {
            Some(p) => (Some(std::fs::read(&p)?), p.display().to_string()),
            None => match (&r.sha256, plugin_dir) {
                (Some(pin), Some(d)) => match find_by_sha(d, pin)? {
                    Some(p) => (Some(std::fs::read(&p)?), p.display().to_string()),
                    None => (None, "server (sha256 pin)".to_string()),
                },
                (Some(_), None) => (None, "server (sha256 pin)".to_string()),
                (None, _) => bail!(
                    "no `{name}.wasm` in {} (set --plugin-dir or $STROWGER_PLUGIN_DIR, or give `wasm`, `source` or `sha256`)",
                    plugin_dir
                        .map(|d| d.display().to_string())
                        .unwrap_or_else(|| "the plugin dir".into())
                ),
            },
        }
    };
    let sha = match (&wasm, &r.sha256) {
        (Some(b), pin) => {
            let got = sha256_hex(b);
            if let Some(pin) = pin
                && !pin.eq_ignore_ascii_case(&got)
            {
                bail!("{origin} has sha256 {got} but the repository pins {pin}");
            }
            got
        }
        (None, Some(pin)) => pin.to_ascii_lowercase(),
        (None, None) => unreachable!("resolved above"),
    };
    Ok(LocalPlugin {
        key: key.to_string(),
        name,
        sha256: sha,
        wasm,
        origin,
    })
}

fn find_by_sha(dir: &Path, sha: &str) -> anyhow::Result<Option<PathBuf>> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(None);
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "wasm")
            && sha256_hex(&std::fs::read(&p)?).eq_ignore_ascii_case(sha)
        {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

fn load_tests(dir: &Path) -> anyhow::Result<(Vec<PolicyTest>, Vec<String>)> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect(),
        Err(_) => return Ok((Vec::new(), Vec::new())),
    };
    files.sort();
    let mut tests = Vec::new();
    let mut origins = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        let v: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", f.display()))?;
        let items = match v {
            Value::Array(a) => a,
            o => vec![o],
        };
        let fname = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        for (i, item) in items.into_iter().enumerate() {
            let origin = format!("{fname}#{i}");
            let c: CaseDef =
                serde_json::from_value(item).with_context(|| format!("test case {origin}"))?;
            tests.push(case_to_test(c, &origin)?);
            origins.push(origin);
        }
    }
    Ok((tests, origins))
}

fn case_to_test(c: CaseDef, origin: &str) -> anyhow::Result<PolicyTest> {
    let (hook, mut input) = match &c.sip {
        Some(raw) => {
            let (h, i) = sip_input(raw).with_context(|| format!("test case {origin}: `sip`"))?;
            if c.hook.is_some_and(|x| x != h) {
                bail!(
                    "test case {origin}: `hook` {} does not fit the SIP request ({h})",
                    c.hook.unwrap()
                );
            }
            (h, i)
        }
        None => (
            c.hook.with_context(|| {
                format!("test case {origin}: give `hook` (or a raw `sip` request)")
            })?,
            json!({}),
        ),
    };
    // the case's fields replace those derived from the SIP request
    match c.input {
        Some(Value::Object(o)) => {
            for (k, v) in o {
                input[k] = v;
            }
        }
        Some(Value::Null) | None => {}
        Some(other) => bail!("test case {origin}: `input` must be a JSON object, got {other}"),
    }
    Ok(PolicyTest {
        name: Some(c.name.unwrap_or_else(|| origin.to_string())),
        hook,
        trunk: c.trunk,
        input,
        expect: c.expect,
        allow_fallback: c.allow_fallback,
    })
}

fn party(na: &strowger_sip::NameAddr<'_>) -> Value {
    json!({
        "uri": na.uri.raw,
        "user": na.uri.user_decoded().map(|u| u.into_owned()).unwrap_or_default(),
        "host": na.uri.host_unbracketed(),
        "display_name": na.display_name_unquoted().map(|d| d.into_owned()),
    })
}

/// The hook input a raw SIP request stands for: INVITE → a `route` call,
/// REGISTER → an `authorize` request (credentials as given by the case's
/// `input`, default the example's).
fn sip_input(raw: &str) -> anyhow::Result<(Hook, Value)> {
    // test files hold LF line ends; SIP wants CRLF
    let mut text = raw.replace("\r\n", "\n").replace('\n', "\r\n");
    if !text.contains("\r\n\r\n") {
        text.push_str("\r\n");
    }
    let msg = strowger_sip::parse(bytes::Bytes::from(text))
        .map_err(|e| anyhow::anyhow!("not a SIP message: {}", e.reason()))?;
    let method = msg
        .method()
        .map(|m| m.as_str().to_string())
        .context("a SIP request is needed, not a response")?;
    let from = msg.from();
    let to = msg.to();
    let ua = msg.user_agent().map(str::to_string);
    match method.as_str() {
        "INVITE" => {
            let ruri = msg.request_uri().context("request URI")?;
            let b = ruri
                .user_decoded()
                .map(|u| u.into_owned())
                .unwrap_or_default();
            let headers: Vec<Value> = msg
                .headers_iter()
                .map(|h| json!({"name": h.name, "value": h.value}))
                .collect();
            Ok((
                Hook::Route,
                json!({
                    "call_id": msg.call_id(),
                    "request_uri": ruri.raw,
                    "a_number": from.uri.user_decoded().map(|u| u.into_owned()).unwrap_or_default(),
                    "b_number": b,
                    "display_name": from.display_name_unquoted().map(|d| d.into_owned()),
                    "from": party(&from),
                    "to": party(&to),
                    "headers": headers,
                }),
            ))
        }
        "REGISTER" => {
            let user = to
                .uri
                .user_decoded()
                .map(|u| u.into_owned())
                .unwrap_or_default();
            let domain = to.uri.host_unbracketed().to_string();
            let contacts: Vec<String> = msg
                .contacts()
                .map_err(|e| anyhow::anyhow!("Contact: {e:?}"))?
                .iter()
                .map(|c| match c {
                    strowger_sip::Contact::Star => "*".to_string(),
                    strowger_sip::Contact::Addr(a) => a.uri.raw.to_string(),
                })
                .collect();
            Ok((
                Hook::Authorize,
                json!({
                    "method": "REGISTER",
                    "aor": format!("sip:{user}@{domain}"),
                    "user": user,
                    "domain": domain,
                    "user_agent": ua,
                    "contacts": contacts,
                    "expires": msg.expires(),
                }),
            ))
        }
        m => bail!("{m}: only INVITE (route) and REGISTER (authorize) requests can be test cases"),
    }
}
