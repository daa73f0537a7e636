//! The admin API inside `strowger serve`: the switch's control handle seen
//! through [`strowger_admin::SwitchControl`], and the start-up of the API
//! (restore the stored control plane, bind `[admin] listen`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use strowger_admin::{
    AdminState, CallInfo, Limits, RegistrationInfo, SwitchControl, SwitchFuture, TrunkStatus,
    UserAccount,
};
use strowger_switch::config::AdminConfig;
use strowger_switch::control::Control;
use strowger_switch::server::Running;

/// Environment variable read when `[admin] token` is not set.
pub const TOKEN_ENV: &str = "STROWGER_ADMIN_TOKEN";

/// How long `/readyz` waits for the core loop's answer.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// [`SwitchControl`] over a running switch, and the process's log filter.
pub struct SwitchHandle(pub Control, pub Option<Arc<crate::logging::LogHandle>>);

impl SwitchControl for SwitchHandle {
    fn registrations(&self) -> Vec<RegistrationInfo> {
        self.0
            .registrations()
            .into_iter()
            .map(|r| RegistrationInfo {
                aor: r.aor,
                contact: r.contact,
                expires_in_s: r.expires_in_s,
                source: r.source,
                transport: r.transport,
                user_agent: r.user_agent,
            })
            .collect()
    }
    fn remove_registration(&self, aor: &str, contact: Option<&str>) -> usize {
        self.0.remove_registration(aor, contact)
    }
    fn calls(&self) -> SwitchFuture<'_, Vec<CallInfo>> {
        Box::pin(async move {
            self.0
                .calls()
                .await
                .into_iter()
                .map(|c| CallInfo {
                    id: c.id,
                    a_number: c.a_number,
                    b_number: c.b_number,
                    ingress: c.ingress,
                    egress: c.egress,
                    state: c.state.to_string(),
                    start_ms: c.start_ms,
                    generation: c.generation,
                })
                .collect()
        })
    }
    fn hangup<'a>(&'a self, id: &'a str) -> SwitchFuture<'a, bool> {
        Box::pin(self.0.hangup(id))
    }
    fn sip_ready(&self) -> SwitchFuture<'_, bool> {
        Box::pin(self.0.ping(READY_TIMEOUT))
    }
    fn failure(&self) -> Option<String> {
        self.0.failure()
    }
    fn trunks(&self) -> SwitchFuture<'_, Vec<TrunkStatus>> {
        Box::pin(async move {
            self.0
                .trunks()
                .await
                .into_iter()
                .map(|t| TrunkStatus {
                    name: t.name,
                    state: t.state.to_string(),
                    active_calls: t.active_calls,
                    latency_ms: t.latency_ms,
                    registration: t.registration,
                })
                .collect()
        })
    }
    fn set_users(&self, users: Vec<UserAccount>) -> SwitchFuture<'_, ()> {
        Box::pin(async move {
            let creds = users
                .into_iter()
                .map(|u| strowger_switch::core::UserCred {
                    user: u.user,
                    password: u.password,
                    domain: u.domain,
                })
                .collect();
            let n = self.0.set_users(creds).await;
            tracing::info!(users = n, "users updated from the admin API");
        })
    }
    fn set_trunks(
        &self,
        trunks: Vec<(String, serde_json::Value)>,
    ) -> SwitchFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let n = self.0.set_trunks(&trunks).await?;
            tracing::info!(
                trunks = n,
                stored = trunks.len(),
                "trunks updated from the admin API"
            );
            Ok(())
        })
    }
    fn log_filter(&self) -> Option<String> {
        self.1.as_ref().map(|l| l.filter())
    }
    fn set_log_filter(&self, filter: &str) -> Result<String, String> {
        match &self.1 {
            Some(l) => l.set_filter(filter),
            None => Err("this process cannot change its log filter".into()),
        }
    }
    fn metrics_text(&self) -> SwitchFuture<'_, String> {
        Box::pin(self.0.metrics_text())
    }
}

/// The admin API token: `[admin] token`, else `$STROWGER_ADMIN_TOKEN`,
/// else the one in `file`, which is created with a random token (mode 0600)
/// when it does not exist. Returns the token and, when it came from the
/// file, the file's path (named in 401 answers).
pub fn resolve_token(cfg: &AdminConfig, file: &Path) -> anyhow::Result<(String, Option<String>)> {
    if let Some(t) = cfg
        .token
        .clone()
        .or_else(|| std::env::var(TOKEN_ENV).ok())
        .filter(|t| !t.trim().is_empty())
    {
        return Ok((t.trim().to_string(), None));
    }
    let shown = file.display().to_string();
    match std::fs::read_to_string(file) {
        Ok(text) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(file)?.permissions().mode();
                if mode & 0o077 != 0 {
                    anyhow::bail!(
                        "the admin API token file {shown} may be read by other users (mode {:o}): `chmod 600 {shown}`",
                        mode & 0o777
                    );
                }
            }
            let t = text.trim().to_string();
            if t.len() < 8 {
                anyhow::bail!(
                    "the admin API token file {shown} holds no token of at least 8 characters (delete it to get a new one)"
                );
            }
            tracing::info!("admin API token read from {shown}");
            Ok((t, Some(shown)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let t: String = rand::random::<[u8; 32]>()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let mut o = std::fs::OpenOptions::new();
            o.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                o.mode(0o600);
            }
            let mut f = o
                .open(file)
                .with_context(|| format!("creating the admin API token file {shown}"))?;
            std::io::Write::write_all(&mut f, format!("{t}\n").as_bytes())
                .with_context(|| format!("writing {shown}"))?;
            tracing::info!(
                "admin API token generated into {shown} (mode 0600; `strowger` commands run from that directory read it, \
                 or pass --token-file {shown}; set [admin] token or {TOKEN_ENV} to choose one)"
            );
            Ok((t, Some(shown)))
        }
        Err(e) => Err(anyhow::anyhow!(
            "reading the admin API token file {shown}: {e}"
        )),
    }
}

/// Starts the admin API for `running` if `[admin] enabled`: restores the
/// stored plugins, data sets and active policy into the switch's runtime
/// (the stored active policy replaces `[[bindings]]`), then binds the
/// listener. Every request except `/healthz`, `/readyz`, `/metrics` needs
/// the token of [`resolve_token`] (`token_file` is its file). Returns the
/// bound address.
pub async fn start(
    cfg: &AdminConfig,
    token_file: &Path,
    running: &Running,
    log: Arc<crate::logging::LogHandle>,
) -> anyhow::Result<Option<SocketAddr>> {
    if !cfg.enabled {
        return Ok(None);
    }
    let (token, hint) = resolve_token(cfg, token_file)?;
    let mut state = AdminState::new(
        (*running.runtime).clone(),
        running.store.clone(),
        Arc::new(SwitchHandle(running.control.clone(), Some(log))),
    )
    .with_token("admin", token)
    .with_limits(Limits {
        max_body_bytes: cfg.max_body_bytes,
        max_plugin_bytes: cfg.max_plugin_bytes,
        max_dataset_bytes: cfg.max_dataset_bytes,
    });
    if let Some(h) = hint {
        state = state.with_token_hint(h);
    }
    match state
        .restore()
        .await
        .map_err(|e| anyhow::anyhow!("restoring the control plane from the store: {e}"))?
    {
        Some(v) => tracing::info!(
            version = v,
            generation = running.runtime.current().id(),
            "stored active policy version restored (it replaces [[bindings]])"
        ),
        None => tracing::info!("no stored policy version is active: [[bindings]] stay in force"),
    }
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| {
            format!(
                "binding the admin API to {} (set [admin] listen, or enabled = false)",
                cfg.listen
            )
        })?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = strowger_admin::serve(listener, state).await {
            tracing::error!(error = %e, "admin API stopped");
        }
    });
    Ok(Some(addr))
}
