//! A small client of the admin API for `strowger policy` and `strowger status`.

use anyhow::Context;
use serde_json::Value;

/// `--server` and `--token` of the remote subcommands.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// Base URL of the switch's admin API.
    #[arg(long, env = "STROWGER_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Bearer token of the admin API (every request but health and metrics
    /// needs it). None: the one in --token-file.
    #[arg(long, env = "STROWGER_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the token, read when no --token / STROWGER_ADMIN_TOKEN
    /// is given: the switch generates it next to its store when no token is
    /// configured (`strowger serve --demo` in this directory writes
    /// ./strowger-admin.token).
    #[arg(
        long,
        env = "STROWGER_ADMIN_TOKEN_FILE",
        default_value = strowger_switch::config::ADMIN_TOKEN_FILE
    )]
    pub token_file: std::path::PathBuf,
}

impl ServerArgs {
    /// The token: --token, else the first line of --token-file when it
    /// exists (a missing default file is no error: the server's 401 then
    /// says what to do).
    pub fn resolved_token(&self) -> anyhow::Result<Option<String>> {
        if let Some(t) = self
            .token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            return Ok(Some(t.to_string()));
        }
        match std::fs::read_to_string(&self.token_file) {
            Ok(text) => Ok(Some(text.trim().to_string()).filter(|t| !t.is_empty())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::anyhow!(
                "reading the admin API token file {}: {e}",
                self.token_file.display()
            )),
        }
    }
}

/// An answer: status and JSON body (a non-JSON body becomes a string).
pub struct Answer {
    pub status: reqwest::StatusCode,
    pub body: Value,
}

impl Answer {
    /// The body if 2xx, else an error quoting the server's `error`/`field`.
    pub fn ok(self, what: &str) -> anyhow::Result<Value> {
        if self.status.is_success() {
            return Ok(self.body);
        }
        let msg = self.body["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| self.body.to_string());
        match self.body["field"].as_str() {
            Some(f) => anyhow::bail!("{what}: {} {msg} (field `{f}`)", self.status),
            None => anyhow::bail!("{what}: {} {msg}", self.status),
        }
    }
}

/// Admin API client.
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(a: &ServerArgs) -> anyhow::Result<Client> {
        Ok(Client {
            base: a.server.trim_end_matches('/').to_string(),
            token: a.resolved_token()?,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(300))
                .build()?,
        })
    }

    async fn send(&self, rb: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Answer> {
        let rb = match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        };
        let resp = rb
            .send()
            .await
            .with_context(|| format!("{what}: cannot reach the admin API at {}", self.base))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        Ok(Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Answer> {
        self.send(self.http.get(format!("{}{path}", self.base)), path)
            .await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Answer> {
        self.send(
            self.http.post(format!("{}{path}", self.base)).json(body),
            path,
        )
        .await
    }

    pub async fn post_bytes(&self, path: &str, body: Vec<u8>) -> anyhow::Result<Answer> {
        self.send(
            self.http.post(format!("{}{path}", self.base)).body(body),
            path,
        )
        .await
    }
}

/// A tokio runtime for one CLI command.
pub fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(f))
}
