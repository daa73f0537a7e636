//! The admin API inside `strowger serve`: the switch's control handle seen
//! through [`strowger_admin::SwitchControl`], and the start-up of the API
//! (restore the stored control plane, bind `[admin] listen`).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use strowger_admin::{
    AdminState, CallInfo, RegistrationInfo, SwitchControl, SwitchFuture, TrunkStatus, UserAccount,
};
use strowger_switch::config::AdminConfig;
use strowger_switch::control::Control;
use strowger_switch::server::Running;

/// Environment variable read when `[admin] token` is not set.
pub const TOKEN_ENV: &str = "STROWGER_ADMIN_TOKEN";

/// [`SwitchControl`] over a running switch.
pub struct SwitchHandle(pub Control);

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
    fn metrics_text(&self) -> SwitchFuture<'_, String> {
        Box::pin(async move {
            let calls = self.0.calls().await;
            let trunks = self.0.trunks().await;
            let mut out = format!(
                "# HELP strowger_calls_active Calls in progress.\n# TYPE strowger_calls_active gauge\nstrowger_calls_active {}\n\
                 # HELP strowger_registrations Registered contacts.\n# TYPE strowger_registrations gauge\nstrowger_registrations {}\n",
                calls.len(),
                self.0.registrations().len()
            );
            out.push_str("# HELP strowger_trunk_calls_active Calls in progress per trunk.\n# TYPE strowger_trunk_calls_active gauge\n");
            for t in &trunks {
                out.push_str(&format!(
                    "strowger_trunk_calls_active{{trunk=\"{}\",state=\"{}\"}} {}\n",
                    t.name, t.state, t.active_calls
                ));
            }
            out.push_str(&self.0.guard_metrics_text());
            out
        })
    }
}

/// Starts the admin API for `running` if `[admin] enabled`: restores the
/// stored plugins, data sets and active policy into the switch's runtime
/// (the stored active policy replaces `[[bindings]]`), then binds the
/// listener. Returns the bound address.
pub async fn start(cfg: &AdminConfig, running: &Running) -> anyhow::Result<Option<SocketAddr>> {
    if !cfg.enabled {
        return Ok(None);
    }
    let token = cfg
        .token
        .clone()
        .or_else(|| std::env::var(TOKEN_ENV).ok())
        .filter(|t| !t.trim().is_empty());
    let mut state = AdminState::new(
        (*running.runtime).clone(),
        running.store.clone(),
        Arc::new(SwitchHandle(running.control.clone())),
    );
    match &token {
        Some(t) => state = state.with_token("admin", t.trim()),
        None => eprintln!(
            "WARNING: no admin API token ([admin] token or {TOKEN_ENV}): the admin API is read-only"
        ),
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
