//! Handlers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::{StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use strowger_plugin::{
    Binding, DatasetBuilder, Fallback, Generation, Hook, LoadError, LoadPhase, LoadProgress,
    Policy, Scope, json as pj,
};
use strowger_store::rusqlite::{OptionalExtension, params};
use strowger_store::{AuditEntry, CdrFilter};

use crate::{AdminState, ApiError};

type ApiResult<T = Json<Value>> = Result<T, ApiError>;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(crate) fn routes(state: AdminState) -> axum::Router {
    let limits = state.inner.limits;
    axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        )
        .route(
            "/v1/plugins",
            get(list_plugins)
                .post(upload_plugin)
                .layer(DefaultBodyLimit::max(limits.max_plugin_bytes)),
        )
        .route(
            "/v1/plugins/{sha256}",
            get(get_plugin).delete(delete_plugin),
        )
        .route("/v1/policies", get(list_policies).post(create_policy))
        .route("/v1/policies/active", get(active_policy))
        .route("/v1/policies/rollback", post(rollback_policy))
        .route("/v1/policies/canary", delete(cancel_canary))
        .route("/v1/policies/canary/promote", post(promote_canary))
        .route(
            "/v1/policies/shadow",
            get(shadow_status).delete(stop_shadow),
        )
        .route("/v1/policies/shadow/diffs", get(shadow_diffs))
        .route(
            "/v1/policies/{version}/shadow",
            post(shadow_policy).delete(stop_shadow_version),
        )
        .route("/v1/policies/{version}", get(get_policy))
        .route("/v1/policies/{version}/activate", post(activate_policy))
        .route("/v1/policies/{version}/canary", post(canary_policy))
        .route("/v1/datasets", get(list_datasets))
        .route(
            "/v1/datasets/{name}",
            // streamed: `upload_dataset` counts against max_dataset_bytes
            get(dataset_versions).post(upload_dataset),
        )
        .route("/v1/datasets/{name}/activate", post(activate_dataset))
        .route("/v1/simulate", post(simulate))
        .route("/v1/trunks", get(list_trunks))
        .route("/v1/trunks/status", get(trunk_status))
        .route(
            "/v1/trunks/{name}",
            get(get_trunk).put(put_trunk).delete(delete_trunk),
        )
        .route("/v1/users", get(list_users))
        .route(
            "/v1/users/{domain}/{user}",
            get(get_user).put(put_user).delete(delete_user),
        )
        .route(
            "/v1/registrations",
            get(list_registrations).delete(remove_registration),
        )
        .route("/v1/calls", get(list_calls))
        .route("/v1/calls/{id}", delete(hangup_call))
        .route("/v1/cdrs", get(cdrs))
        .route("/v1/cdrs.csv", get(cdrs_csv))
        .route("/v1/audit", get(audit))
        .route("/v1/log/level", get(get_log_level).put(put_log_level))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        // Outermost last: the token is checked before any body is read,
        // then the size limit of the route applies.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit_body,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ))
        .with_state(state)
}

/// Routes answered without a token (probes and scraping).
pub(crate) const OPEN_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Checks `Authorization: Bearer <token>`; the token's id on success.
fn check_token(state: &AdminState, headers: &axum::http::HeaderMap) -> Result<String, ApiError> {
    let how = match &state.inner.token_hint {
        Some(h) => format!(
            "pass `--token <token>` to the strowger CLI or set STROWGER_ADMIN_TOKEN (the switch's token is in {h})"
        ),
        None => "pass `--token <token>` to the strowger CLI or set STROWGER_ADMIN_TOKEN".into(),
    };
    let unauthorized = |m: &str| {
        ApiError::new(StatusCode::UNAUTHORIZED, format!("{m}: {how}")).field("Authorization")
    };
    if state.inner.tokens.is_empty() {
        return Err(unauthorized(
            "the admin API is disabled: no admin API token is configured (set `[admin] token`, STROWGER_ADMIN_TOKEN or `[admin] token_file`)",
        ));
    }
    let h = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("this endpoint needs `Authorization: Bearer <token>`"))?;
    let token = h
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("Authorization must be `Bearer <token>`"))?;
    state
        .inner
        .tokens
        .get(token.trim())
        .cloned()
        .ok_or_else(|| unauthorized("unknown API token"))
}

/// Refuses a request without a valid token before its handler runs and
/// before its body is read (except the routes of [`OPEN_PATHS`]). A small
/// declared body (at most 64 KiB) is drained so that the client reads a
/// clean 401; a larger one is not read at all and the connection is closed
/// after the answer.
async fn require_token(
    State(st): State<AdminState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if OPEN_PATHS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    match check_token(&st, req.headers()) {
        Ok(_) => next.run(req).await,
        Err(e) => {
            st.inner
                .refused_unauthorized
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(method = %req.method(), path = %req.uri().path(), error = %e.error, "admin API request refused");
            let small = content_length(&req).is_some_and(|n| n <= 64 << 10);
            let mut resp = e.into_response();
            if small {
                let _ = axum::body::to_bytes(req.into_body(), 64 << 10).await;
            } else if req
                .headers()
                .get(header::CONTENT_LENGTH)
                .is_none_or(|v| v != "0")
                && req.method() != axum::http::Method::GET
            {
                resp.headers_mut().insert(
                    header::CONNECTION,
                    header::HeaderValue::from_static("close"),
                );
            }
            resp
        }
    }
}

fn content_length(req: &axum::extract::Request) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Which limit applies to a request: (bytes, config key).
fn body_limit(st: &AdminState, req: &axum::extract::Request) -> (u64, &'static str) {
    let l = &st.inner.limits;
    let path = req.uri().path();
    if path == "/v1/plugins" {
        (l.max_plugin_bytes as u64, "max_plugin_bytes")
    } else if path.starts_with("/v1/datasets/") && !path.ends_with("/activate") {
        (l.max_dataset_bytes, "max_dataset_bytes")
    } else {
        (l.max_body_bytes as u64, "max_body_bytes")
    }
}

fn too_large(st: &AdminState, limit: u64, key: &str, path: &str) -> ApiError {
    st.inner
        .refused_too_large
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!(
        path,
        limit,
        "admin API request body too large (`[admin] {key}`)"
    );
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "request body larger than {limit} bytes, the limit of this endpoint (`[admin] {key}`); nothing was applied"
        ),
    )
    .field("body")
    .detail(json!({"limit_bytes": limit, "config_key": format!("admin.{key}")}))
}

/// Applies the body limit of the route: a declared `Content-Length` above
/// it is refused before the body is read; a chunked body is cut by the
/// extractor (its plain 413 becomes the JSON one here).
async fn limit_body(
    State(st): State<AdminState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (limit, key) = body_limit(&st, &req);
    let path = req.uri().path().to_string();
    if content_length(&req).is_some_and(|n| n > limit) {
        let mut resp = too_large(&st, limit, key, &path).into_response();
        resp.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        return resp;
    }
    let resp = next.run(req).await;
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if resp.status() == StatusCode::PAYLOAD_TOO_LARGE && !json {
        return too_large(&st, limit, key, &path).into_response();
    }
    resp
}

// ---- secrets ------------------------------------------------------------

/// Keys whose values are secrets: never answered, never audited.
const SECRET_KEYS: [&str; 5] = ["password", "secret", "ha1", "token", "auth_password"];

pub use strowger_types::redact_register_string;

/// Removes every secret from a JSON value, at any depth: a key of
/// `password`, `secret`, `ha1`, `token`, `auth_password` is replaced by
/// `"<key>_set": true` (false when it was empty or null), and
/// `register_string` keeps its user and host with the secret as `***`.
pub fn redact(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for k in SECRET_KEYS {
                if let Some(x) = o.remove(k) {
                    let set = !(x.is_null() || x.as_str() == Some(""));
                    o.insert(format!("{k}_set"), json!(set));
                }
            }
            if let Some(x) = o.get_mut("register_string") {
                *x = match x.as_str() {
                    Some(s) => json!(redact_register_string(s)),
                    None if x.is_null() => Value::Null,
                    None => json!("***"),
                };
            }
            for (_, x) in o.iter_mut() {
                redact(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The secret strings of a configuration (values of secret keys, the
/// secret of a register string), at any depth.
fn secret_values(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    if SECRET_KEYS.contains(&k.as_str()) {
                        match x {
                            Value::String(s) => out.push(s.clone()),
                            Value::Null => {}
                            other => out.push(other.to_string()),
                        }
                    } else if k == "register_string"
                        && let Some(cred) = x.as_str().and_then(|r| r.rsplit_once('@'))
                        && let Some(sec) = cred.0.split(':').nth(1)
                    {
                        out.push(sec.to_string());
                    } else {
                        walk(x, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(v, &mut out);
    out.retain(|s| !s.is_empty());
    out
}

/// `msg` with every one of `secrets` replaced by `***` (error messages
/// that quote a bad value).
fn scrub(mut msg: String, secrets: &[String]) -> String {
    for s in secrets {
        msg = msg.replace(s.as_str(), "***");
    }
    msg
}

/// A PUT body made from a GET answer keeps the stored secrets: a
/// `"<key>_set": true` without the key takes the stored value, and a
/// register string equal to the redacted stored one is the stored one.
/// Other `<key>_set` flags are dropped.
fn keep_secrets(new: &mut Value, old: Option<&Value>) {
    let Some(o) = new.as_object_mut() else {
        return;
    };
    for k in SECRET_KEYS {
        if let Some(flag) = o.remove(&format!("{k}_set"))
            && flag == json!(true)
            && !o.contains_key(k)
            && let Some(x) = old.and_then(|old| old.get(k))
        {
            o.insert(k.to_string(), x.clone());
        }
    }
    if let (Some(n), Some(prev)) = (
        o.get("register_string").and_then(Value::as_str),
        old.and_then(|old| old["register_string"].as_str()),
    ) && n != prev
        && n == redact_register_string(prev)
    {
        o.insert("register_string".into(), json!(prev));
    }
}

// ---- auth + audit ------------------------------------------------------

/// An authenticated writer: token id and client address.
pub(crate) struct Writer {
    actor: String,
    source: Option<String>,
}

impl FromRequestParts<AdminState> for Writer {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        let actor = check_token(state, &parts.headers)?;
        let source = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.to_string());
        Ok(Writer { actor, source })
    }
}

impl Writer {
    /// Append to the audit log (waits for the commit).
    async fn audit(
        &self,
        st: &AdminState,
        action: &str,
        target: impl Into<String>,
        mut detail: Value,
    ) -> ApiResult<()> {
        // secrets are never written to the audit log
        redact(&mut detail);
        let e = AuditEntry {
            id: 0,
            at_ms: now_ms(),
            actor: self.actor.clone(),
            source: self.source.clone(),
            action: action.into(),
            target: Some(target.into()),
            detail: Some(detail.to_string()),
        };
        let ack = st.inner.store.append_audit(e);
        blocking(move || ack.wait().map_err(ApiError::from)).await?;
        Ok(())
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

/// Run a write closure in the store and wait for its commit.
async fn store_write(
    st: &AdminState,
    f: impl FnOnce(&strowger_store::rusqlite::Connection) -> strowger_store::Result<u64>
    + Send
    + 'static,
) -> ApiResult<u64> {
    let ack = st.inner.store.write(f);
    blocking(move || ack.wait().map_err(ApiError::from)).await
}

async fn store_read<T: Send + 'static>(
    st: &AdminState,
    f: impl FnOnce(&strowger_store::rusqlite::Connection) -> strowger_store::Result<T> + Send + 'static,
) -> ApiResult<T> {
    let store = st.inner.store.clone();
    blocking(move || store.read_blocking(f).map_err(ApiError::from)).await
}

fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad(format!(
            "request body is not valid JSON for this endpoint: {e}"
        ))
    })
}

// ---- health + metrics ---------------------------------------------------

/// Liveness: 503 once a switch task (core loop, listener) died; the
/// process is about to exit and should be restarted.
async fn healthz(State(st): State<AdminState>) -> Response {
    match st.inner.switch.failure() {
        None => Json(json!({"status": "ok"})).into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "failed", "error": why})),
        )
            .into_response(),
    }
}

/// Readiness: SIP is served (a round trip through the core loop) and the
/// store answers; 503 with the failing part `false` otherwise.
async fn readyz(State(st): State<AdminState>) -> Response {
    let store = store_read(&st, |c| {
        Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?)
    });
    let (store_ok, sip) = tokio::join!(store, st.inner.switch.sip_ready());
    let store_ok = store_ok.is_ok();
    let gen_id = st.inner.runtime.current().id();
    let ready = store_ok && sip;
    let body = json!({"sip": sip, "store": store_ok, "generation": gen_id, "ready": ready});
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn metrics(State(st): State<AdminState>, headers: axum::http::HeaderMap) -> Response {
    use crate::exposition as x;
    let mut e = x::Exposition::default();
    x::plugins(&mut e, &st.inner.runtime.metrics_snapshot());
    x::store(&mut e, &st.inner.store.stats());
    let sc = st.inner.runtime.shadow_log().counts();
    let name = "strowger_shadow_decisions_total";
    e.family(
        name,
        "counter",
        "Shadow-mode decisions compared with the active ones.",
    )
    .sample(name, &[("result", "same")], sc.same)
    .sample(name, &[("result", "differ")], sc.differ)
    .sample(name, &[("result", "error")], sc.error)
    .sample(name, &[("result", "dropped")], sc.dropped);
    {
        use std::sync::atomic::Ordering::Relaxed;
        let name = "strowger_admin_refused_total";
        e.family(
            name,
            "counter",
            "Admin API requests refused before their handler ran.",
        )
        .sample(
            name,
            &[("reason", "unauthorized")],
            st.inner.refused_unauthorized.load(Relaxed),
        )
        .sample(
            name,
            &[("reason", "too_large")],
            st.inner.refused_too_large.load(Relaxed),
        );
    }
    let mut text = e.finish();
    text.push_str(&st.inner.switch.metrics_text().await);
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    if x::wants_openmetrics(accept) {
        (
            [(header::CONTENT_TYPE, x::OPENMETRICS_CONTENT_TYPE)],
            x::to_openmetrics(&text),
        )
            .into_response()
    } else {
        ([(header::CONTENT_TYPE, x::TEXT_CONTENT_TYPE)], text).into_response()
    }
}

// ---- log level ----------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogLevelBody {
    level: String,
}

/// The log filter in force (`null` when this process cannot change it).
async fn get_log_level(State(st): State<AdminState>) -> ApiResult {
    Ok(Json(json!({ "level": st.inner.switch.log_filter() })))
}

async fn put_log_level(State(st): State<AdminState>, w: Writer, body: Bytes) -> ApiResult {
    let b: LogLevelBody = json_body(&body)?;
    let before = st.inner.switch.log_filter();
    let level = st
        .inner
        .switch
        .set_log_filter(&b.level)
        .map_err(|e| ApiError::bad(e).field("level"))?;
    tracing::info!(level = %level, previous = ?before, "log filter changed from the admin API");
    w.audit(
        &st,
        "log.level",
        "log",
        json!({ "level": level, "previous": before }),
    )
    .await?;
    Ok(Json(json!({ "level": level })))
}

// ---- plugins ------------------------------------------------------------

#[derive(Deserialize)]
struct NameQuery {
    name: Option<String>,
}

fn plugin_json(p: &strowger_plugin::PluginVersion) -> Value {
    json!({
        "sha256": p.sha256(),
        "name": p.name(),
        "version": p.version(),
        "hooks": p.hooks(),
        "size": p.size(),
    })
}

async fn upload_plugin(
    State(st): State<AdminState>,
    w: Writer,
    Query(q): Query<NameQuery>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let name = q
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad("`?name=` is required").field("name"))?;
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        || name.len() > 64
    {
        return Err(ApiError::bad("name: letters, digits, - _ . only, at most 64").field("name"));
    }
    if body.is_empty() {
        return Err(
            ApiError::unprocessable("empty body: send the component's .wasm bytes").field("body"),
        );
    }
    let p = st.inner.runtime.load(&name, &body).await.map_err(|e| {
        let kind = match e {
            LoadError::NotAComponent(_) => "not a WebAssembly component",
            LoadError::Contract(_) => "does not match the plugin contract (wit/strowger.wit)",
            LoadError::Other(_) => "could not be loaded",
        };
        ApiError::unprocessable(format!("plugin {kind}: {e}")).field("body")
    })?;
    let sha = p.sha256().to_string();
    let world = p
        .hooks()
        .iter()
        .map(|h| h.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let (n, v, size, wasm, actor) = (
        name.clone(),
        p.version().to_string(),
        body.len() as i64,
        body.to_vec(),
        w.actor.clone(),
    );
    let sha2 = sha.clone();
    let inserted = store_write(&st, move |c| {
        Ok(c.execute(
            "INSERT OR IGNORE INTO plugin_artifacts (sha256, name, version, world, size, wasm, created_at_ms, created_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![sha2, n, v, world, size, wasm, now_ms(), actor],
        )? as u64)
    })
    .await?;
    st.inner.plugins.lock().insert(sha.clone(), p.clone());
    w.audit(
        &st,
        "plugin.upload",
        &sha,
        json!({"name": name, "size": body.len()}),
    )
    .await?;
    let code = if inserted > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut out = plugin_json(&p);
    out["created"] = json!(inserted > 0);
    Ok((code, Json(out)))
}

async fn list_plugins(State(st): State<AdminState>) -> ApiResult {
    let rows = store_read(&st, |c| {
        let mut s = c.prepare(
            "SELECT sha256, name, version, world, size, created_at_ms, created_by FROM plugin_artifacts ORDER BY created_at_ms, name",
        )?;
        let rows = s.query_map([], |r| {
            Ok(json!({
                "sha256": r.get::<_, String>(0)?, "name": r.get::<_, String>(1)?, "version": r.get::<_, String>(2)?,
                "hooks": r.get::<_, String>(3)?.split(',').filter(|s| !s.is_empty()).collect::<Vec<_>>(),
                "size": r.get::<_, i64>(4)?, "created_at_ms": r.get::<_, i64>(5)?, "created_by": r.get::<_, Option<String>>(6)?,
            }))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    })
    .await?;
    Ok(Json(json!({ "plugins": rows })))
}

async fn get_plugin(State(st): State<AdminState>, Path(sha): Path<String>) -> ApiResult {
    let Json(all) = list_plugins(State(st.clone())).await?;
    let found = all["plugins"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["sha256"] == sha.as_str())
        .cloned();
    let mut p = found.ok_or_else(|| {
        ApiError::not_found(format!("no plugin with sha256 {sha}")).field("sha256")
    })?;
    p["used_by_policies"] = json!(policies_using(&st, &sha).await?);
    Ok(Json(p))
}

async fn policies_using(st: &AdminState, sha: &str) -> ApiResult<Vec<u64>> {
    let pat = format!("%{sha}%");
    store_read(st, move |c| {
        let mut s =
            c.prepare("SELECT id FROM policy_versions WHERE document LIKE ?1 ORDER BY id")?;
        let rows = s.query_map([pat], |r| r.get::<_, i64>(0).map(|v| v as u64))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    })
    .await
}

async fn delete_plugin(
    State(st): State<AdminState>,
    w: Writer,
    Path(sha): Path<String>,
) -> ApiResult {
    let used = policies_using(&st, &sha).await?;
    if !used.is_empty() {
        return Err(ApiError::conflict(format!(
            "plugin {sha} is used by policy versions {used:?}"
        ))
        .field("sha256")
        .detail(json!({"policies": used})));
    }
    let s = sha.clone();
    let n = store_write(&st, move |c| {
        Ok(c.execute("DELETE FROM plugin_artifacts WHERE sha256 = ?1", [s])? as u64)
    })
    .await?;
    if n == 0 {
        return Err(ApiError::not_found(format!("no plugin with sha256 {sha}")).field("sha256"));
    }
    st.inner.plugins.lock().remove(&sha);
    w.audit(&st, "plugin.delete", &sha, json!({})).await?;
    Ok(Json(json!({"deleted": sha})))
}

/// Find a loaded plugin by sha256, else the newest by name.
async fn resolve_plugin(st: &AdminState, r: &str) -> Option<Arc<strowger_plugin::PluginVersion>> {
    if let Some(p) = st.inner.plugins.lock().get(r) {
        return Some(p.clone());
    }
    let name = r.to_string();
    let sha: Option<String> = store_read(st, move |c| {
        Ok(c.query_row(
            "SELECT sha256 FROM plugin_artifacts WHERE name = ?1 ORDER BY created_at_ms DESC, rowid DESC LIMIT 1",
            [name],
            |r| r.get(0),
        )
        .optional()?)
    })
    .await
    .ok()
    .flatten();
    let sha = sha?;
    st.inner.plugins.lock().get(&sha).cloned()
}

// ---- policies -----------------------------------------------------------

/// Policy version 0: the configuration file's `[[bindings]]` as the switch
/// started with them (see [`restore`]). Never stored; activating it removes
/// the stored active version, so a restart keeps the configuration file's
/// bindings too.
pub const CONFIG_VERSION: u64 = 0;

/// The policy document of a generation built outside the API (the
/// configuration file's bindings): plugins by sha256, the same
/// configuration, data sets, deadline, fallback and memory cap.
fn document_of(g: &Generation, comment: &str) -> PolicyDocument {
    PolicyDocument {
        comment: Some(comment.to_string()),
        bindings: g
            .binding_specs()
            .into_iter()
            .map(|b| StoredBinding {
                hook: b.hook,
                plugin: b.plugin.sha256().to_string(),
                config: serde_json::from_str(&b.config_json)
                    .unwrap_or_else(|_| Value::String(b.config_json.clone())),
                datasets: b.datasets,
                scope: b.scope,
                deadline_ms: b.deadline.map(|d| (d.as_millis() as u64).max(1)),
                fallback: b.fallback,
                memory_limit_bytes: b.memory_limit_bytes,
            })
            .collect(),
        tests: Vec::new(),
    }
}

/// One binding of a policy document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredBinding {
    /// Hook: route, authorize, portability, rewrite.
    pub hook: Hook,
    /// Plugin sha256 or name (the newest upload of that name); stored as sha256.
    pub plugin: String,
    /// Plugin configuration (JSON; a string is passed as is).
    #[serde(default = "empty_object")]
    pub config: Value,
    /// Data sets the plugin may read.
    #[serde(default)]
    pub datasets: Vec<String>,
    /// `"global"` or `{"trunk": "<name>"}`.
    #[serde(default = "global")]
    pub scope: Scope,
    /// Deadline per decision, ms.
    #[serde(default)]
    pub deadline_ms: Option<u64>,
    /// What answers when the plugin fails (`{"kind": "default" | "reject" | "challenge" | "static" | "previous"}`).
    #[serde(default)]
    pub fallback: Fallback,
    /// Memory cap, bytes.
    #[serde(default)]
    pub memory_limit_bytes: Option<usize>,
}

fn empty_object() -> Value {
    json!({})
}
fn global() -> Scope {
    Scope::Global
}

/// A test case run against a candidate before it is stored or activated.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyTest {
    /// Name shown in failures.
    #[serde(default)]
    pub name: Option<String>,
    /// Hook to call.
    pub hook: Hook,
    /// Trunk scope to look the binding up in.
    #[serde(default)]
    pub trunk: Option<String>,
    /// Input (JSON form, merged over the example input of the hook).
    #[serde(default = "empty_object")]
    pub input: Value,
    /// Expected decision: every field given must match (a subset match).
    pub expect: Value,
    /// Accept a decision answered by the fallback (default: a fallback fails the test).
    #[serde(default)]
    pub allow_fallback: bool,
}

/// A policy version as posted and stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyDocument {
    /// Free text.
    #[serde(default)]
    pub comment: Option<String>,
    /// Bindings.
    pub bindings: Vec<StoredBinding>,
    /// Test cases.
    #[serde(default)]
    pub tests: Vec<PolicyTest>,
}

#[derive(Deserialize)]
struct CreatePolicy {
    #[serde(flatten)]
    doc: PolicyDocument,
    /// Activate right after a successful build.
    #[serde(default)]
    activate: bool,
}

impl StoredBinding {
    /// The runtime binding of this stored one (binding number `i`, for
    /// error messages) with its resolved plugin.
    pub fn to_binding(
        &self,
        i: usize,
        plugin: Arc<strowger_plugin::PluginVersion>,
    ) -> Result<Binding, ApiError> {
        let config = match &self.config {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        let mut nb = Binding::new(self.hook, plugin)
            .scope(self.scope.clone())
            .config_json(config)
            .datasets(self.datasets.clone())
            .fallback(self.fallback.clone());
        if let Some(ms) = self.deadline_ms {
            if ms == 0 || ms > 60_000 {
                return Err(ApiError::unprocessable(format!(
                    "binding {i}: deadline_ms must be 1..=60000"
                ))
                .field(format!("bindings[{i}].deadline_ms")));
            }
            nb = nb.deadline(Duration::from_millis(ms));
        }
        if let Some(m) = self.memory_limit_bytes {
            nb = nb.memory_limit(m);
        }
        Ok(nb)
    }
}

/// Builds a generation from runtime bindings (not activated).
pub async fn build_policy(
    runtime: &strowger_plugin::Runtime,
    bindings: Vec<Binding>,
) -> Result<Arc<Generation>, ApiError> {
    runtime.build(Policy { bindings }).await.map_err(|e| {
        let strowger_plugin::BuildError::Binding { index, .. } = &e;
        ApiError::unprocessable(format!("policy rejected: {e}")).field(format!("bindings[{index}]"))
    })
}

async fn build_generation(st: &AdminState, doc: &mut PolicyDocument) -> ApiResult<Arc<Generation>> {
    let mut bindings = Vec::new();
    for (i, b) in doc.bindings.iter_mut().enumerate() {
        let p = resolve_plugin(st, &b.plugin).await.ok_or_else(|| {
            ApiError::unprocessable(format!(
                "binding {i}: no uploaded plugin with sha256 or name `{}` (POST /v1/plugins first)",
                b.plugin
            ))
            .field(format!("bindings[{i}].plugin"))
        })?;
        b.plugin = p.sha256().to_string();
        bindings.push(b.to_binding(i, p)?);
    }
    build_policy(&st.inner.runtime, bindings).await
}

/// True if every field of `expect` is present and equal in `actual`;
/// arrays must have the same length and match element by element (each
/// element again a subset match), so a test case names only the fields it
/// cares about at any depth.
pub fn subset(expect: &Value, actual: &Value) -> bool {
    match (expect, actual) {
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| subset(v, av))),
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(e, a)| subset(e, a))
        }
        (e, a) => e == a,
    }
}

/// One hook call against `g`, as a trace step.
pub(crate) async fn run_hook(
    g: &Generation,
    hook: Hook,
    trunk: Option<&str>,
    input: Value,
) -> ApiResult<Value> {
    let bad = |e: serde_json::Error| {
        ApiError::bad(format!("input is not a valid {hook} input: {e}")).field("input")
    };
    let step = match hook {
        Hook::Route => {
            let call = pj::call_from_json(input).map_err(bad)?;
            g.route(trunk, &call).await.map(serde_json::to_value)
        }
        Hook::Authorize => {
            let req = pj::auth_request_from_json(input).map_err(bad)?;
            g.authorize(trunk, "simulate", &req)
                .await
                .map(serde_json::to_value)
        }
        Hook::Portability => {
            let q = pj::portability_query_from_json(input).map_err(bad)?;
            g.portability(trunk, "simulate", &q)
                .await
                .map(serde_json::to_value)
        }
        Hook::Rewrite => {
            let r = pj::rewrite_request_from_json(input).map_err(bad)?;
            g.rewrite(trunk, "simulate", &r)
                .await
                .map(serde_json::to_value)
        }
    };
    match step {
        None => Err(ApiError::unprocessable(format!(
            "no {hook} binding for {} in policy generation {}",
            trunk
                .map(|t| format!("trunk {t}"))
                .unwrap_or("global scope".into()),
            g.id()
        ))
        .field("hook")),
        Some(v) => {
            let mut v = v.map_err(ApiError::internal)?;
            v["hook"] = json!(hook);
            Ok(v)
        }
    }
}

/// Where `actual` differs from the subset match `expect`: one line per
/// mismatch, `path: expected X, got Y` (empty when [`subset`] holds).
pub fn mismatches(expect: &Value, actual: &Value) -> Vec<String> {
    fn walk(e: &Value, a: &Value, path: &str, out: &mut Vec<String>) {
        match (e, a) {
            (Value::Object(eo), Value::Object(ao)) => {
                for (k, v) in eo {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    match ao.get(k) {
                        Some(av) => walk(v, av, &p, out),
                        None => out.push(format!("{p}: expected {v}, field missing")),
                    }
                }
            }
            (Value::Array(ea), Value::Array(aa)) if ea.len() == aa.len() => {
                for (i, (e, a)) in ea.iter().zip(aa).enumerate() {
                    walk(e, a, &format!("{path}[{i}]"), out);
                }
            }
            (Value::Array(ea), Value::Array(aa)) => out.push(format!(
                "{path}: expected {} elements, got {}: {a}",
                ea.len(),
                aa.len()
            )),
            (e, a) if e == a => {}
            (e, a) => out.push(format!(
                "{}: expected {e}, got {a}",
                if path.is_empty() { "decision" } else { path }
            )),
        }
    }
    let mut out = Vec::new();
    walk(expect, actual, "", &mut out);
    out
}

/// The outcome of one policy test case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// Case name (or `tests[i]`).
    pub test: String,
    /// Index in the document.
    pub index: usize,
    /// Passed?
    pub passed: bool,
    /// What the case expected.
    pub expected: Value,
    /// The decision (null when the hook could not run).
    pub actual: Value,
    /// Where they differ (see [`mismatches`]).
    pub mismatches: Vec<String>,
    /// The fallback that answered, if the plugin failed.
    pub fallback: Value,
    /// The plugin's error, or why the hook could not run.
    pub error: Value,
    /// Decision time, microseconds.
    pub elapsed_us: Value,
}

/// Runs every test case against `g` (the same code path as `POST
/// /v1/simulate`): a case passes when the decision matches `expect` (see
/// [`subset`]) and no fallback answered (unless `allow_fallback`).
pub async fn run_cases(g: &Generation, tests: &[PolicyTest]) -> Vec<CaseResult> {
    let mut out = Vec::with_capacity(tests.len());
    for (i, t) in tests.iter().enumerate() {
        let name = t.name.clone().unwrap_or_else(|| format!("tests[{i}]"));
        out.push(
            match run_hook(g, t.hook, t.trunk.as_deref(), t.input.clone()).await {
                Err(e) => CaseResult {
                    test: name,
                    index: i,
                    passed: false,
                    expected: t.expect.clone(),
                    actual: Value::Null,
                    mismatches: vec![e.error.clone()],
                    fallback: Value::Null,
                    error: json!(e.error),
                    elapsed_us: Value::Null,
                },
                Ok(step) => {
                    let fell_back = !step["fallback"].is_null();
                    let mut m = mismatches(&t.expect, &step["value"]);
                    if fell_back && !t.allow_fallback {
                        m.push(format!(
                            "the plugin failed and the fallback answered ({}): {}",
                            step["fallback"], step["error"]
                        ));
                    }
                    CaseResult {
                        test: name,
                        index: i,
                        passed: m.is_empty(),
                        expected: t.expect.clone(),
                        actual: step["value"].clone(),
                        mismatches: m,
                        fallback: step["fallback"].clone(),
                        error: step["error"].clone(),
                        elapsed_us: step["elapsed_us"].clone(),
                    }
                }
            },
        );
    }
    out
}

async fn run_tests(g: &Generation, tests: &[PolicyTest]) -> ApiResult<()> {
    let results = run_cases(g, tests).await;
    let failures: Vec<&CaseResult> = results.iter().filter(|r| !r.passed).collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(ApiError::unprocessable(format!(
            "{} of {} test cases failed",
            failures.len(),
            tests.len()
        ))
        .field("tests")
        .detail(json!({"failures": failures})))
    }
}

fn version_json(version: u64, g: &Generation, doc: &PolicyDocument) -> Value {
    json!({
        "version": version,
        "generation": g.id(),
        "comment": doc.comment,
        "bindings": doc.bindings,
        "tests": doc.tests.len(),
    })
}

async fn create_policy(
    State(st): State<AdminState>,
    w: Writer,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let CreatePolicy { mut doc, activate } = json_body(&body)?;
    if doc.bindings.is_empty() {
        return Err(
            ApiError::unprocessable("a policy needs at least one binding").field("bindings"),
        );
    }
    let g = build_generation(&st, &mut doc).await?;
    run_tests(&g, &doc.tests).await?;
    let mut book = st.inner.book.lock().await;
    let text = serde_json::to_string(&doc).map_err(ApiError::internal)?;
    let (comment, actor) = (doc.comment.clone(), w.actor.clone());
    let version = store_write(&st, move |c| {
        c.execute(
            "INSERT INTO policy_versions (document, comment, created_at_ms, created_by) VALUES (?1, ?2, ?3, ?4)",
            params![text, comment, now_ms(), actor],
        )?;
        Ok(c.last_insert_rowid() as u64)
    })
    .await?;
    book.generations.insert(version, g.clone());
    book.documents.insert(version, doc.clone());
    w.audit(
        &st,
        "policy.create",
        version.to_string(),
        json!({"generation": g.id()}),
    )
    .await?;
    let mut out = version_json(version, &g, &doc);
    if activate {
        do_activate(&st, &w, &mut book, version).await?;
        out["active"] = json!(true);
    }
    Ok((StatusCode::CREATED, Json(out)))
}

async fn do_activate(
    st: &AdminState,
    w: &Writer,
    book: &mut crate::PolicyBook,
    version: u64,
) -> ApiResult<()> {
    let g = book.generations.get(&version).cloned().ok_or_else(|| {
        ApiError::not_found(format!("no policy version {version}")).field("version")
    })?;
    // Data sets may have changed since the build: the tests run again.
    if let Some(doc) = book.documents.get(&version) {
        run_tests(&g, &doc.tests).await?;
    }
    let (gid, actor) = (g.id(), w.actor.clone());
    store_write(st, move |c| {
        if version == CONFIG_VERSION {
            // No stored version active = the configuration file's
            // [[bindings]], also after a restart.
            return Ok(c.execute("DELETE FROM policy_active", [])? as u64);
        }
        Ok(c.execute(
            "INSERT INTO policy_active (singleton, version_id, generation, activated_at_ms, activated_by) \
             VALUES (1, ?1, ?2, ?3, ?4) ON CONFLICT(singleton) DO UPDATE SET version_id = ?1, generation = ?2, \
             activated_at_ms = ?3, activated_by = ?4",
            params![version as i64, gid as i64, now_ms(), actor],
        )? as u64)
    })
    .await?;
    st.inner.runtime.activate(g.clone());
    if book.canary.is_some_and(|(v, _)| v == version) {
        book.canary = None;
    }
    // the shadow became the active version: nothing left to compare
    if st
        .inner
        .runtime
        .shadow()
        .is_some_and(|(_, label)| label == version.to_string())
    {
        st.inner.runtime.clear_shadow();
    }
    book.history.retain(|v| *v != version);
    book.history.push(version);
    w.audit(
        st,
        "policy.activate",
        version.to_string(),
        json!({"generation": gid}),
    )
    .await?;
    Ok(())
}

fn parse_version(s: &str) -> ApiResult<u64> {
    s.parse().map_err(|_| {
        ApiError::bad(format!("policy version must be a number, got `{s}`")).field("version")
    })
}

async fn activate_policy(
    State(st): State<AdminState>,
    w: Writer,
    Path(v): Path<String>,
) -> ApiResult {
    let version = parse_version(&v)?;
    let mut book = st.inner.book.lock().await;
    do_activate(&st, &w, &mut book, version).await?;
    Ok(Json(
        json!({"active": version, "generation": st.inner.runtime.current().id()}),
    ))
}

#[derive(Deserialize, Default)]
struct RollbackBody {
    version: Option<u64>,
}

async fn rollback_policy(State(st): State<AdminState>, w: Writer, body: Bytes) -> ApiResult {
    let req: RollbackBody = if body.is_empty() {
        RollbackBody::default()
    } else {
        json_body(&body)?
    };
    let mut book = st.inner.book.lock().await;
    let target = match req.version {
        Some(v) => v,
        None => {
            let n = book.history.len();
            if n < 2 {
                return Err(
                    ApiError::conflict("no previous policy version to roll back to")
                        .field("version"),
                );
            }
            book.history[n - 2]
        }
    };
    let from = book.history.last().copied();
    do_activate(&st, &w, &mut book, target).await?;
    if req.version.is_none() {
        // A plain rollback drops the version rolled back from from the history.
        if let Some(f) = from {
            let n = book.history.len();
            if n >= 2 && book.history[n - 2] == f {
                book.history.remove(n - 2);
            }
        }
    }
    w.audit(
        &st,
        "policy.rollback",
        target.to_string(),
        json!({"from": from}),
    )
    .await?;
    Ok(Json(
        json!({"active": target, "from": from, "generation": st.inner.runtime.current().id()}),
    ))
}

#[derive(Deserialize)]
struct CanaryBody {
    percent: u8,
}

async fn canary_policy(
    State(st): State<AdminState>,
    w: Writer,
    Path(v): Path<String>,
    body: Bytes,
) -> ApiResult {
    let version = parse_version(&v)?;
    let CanaryBody { percent } = json_body(&body)?;
    if percent == 0 || percent > 100 {
        return Err(ApiError::unprocessable("percent must be 1..=100").field("percent"));
    }
    let mut book = st.inner.book.lock().await;
    let g = book.generations.get(&version).cloned().ok_or_else(|| {
        ApiError::not_found(format!("no policy version {version}")).field("version")
    })?;
    if let Some(doc) = book.documents.get(&version) {
        run_tests(&g, &doc.tests).await?;
    }
    st.inner.runtime.activate_canary(g.clone(), percent);
    book.canary = Some((version, percent));
    w.audit(
        &st,
        "policy.canary",
        version.to_string(),
        json!({"percent": percent}),
    )
    .await?;
    Ok(Json(
        json!({"canary": version, "percent": percent, "generation": g.id()}),
    ))
}

async fn promote_canary(State(st): State<AdminState>, w: Writer) -> ApiResult {
    let mut book = st.inner.book.lock().await;
    let (version, _) = book
        .canary
        .ok_or_else(|| ApiError::conflict("no canary is running"))?;
    do_activate(&st, &w, &mut book, version).await?;
    Ok(Json(json!({"active": version})))
}

async fn cancel_canary(State(st): State<AdminState>, w: Writer) -> ApiResult {
    let mut book = st.inner.book.lock().await;
    let (version, _) = book
        .canary
        .take()
        .ok_or_else(|| ApiError::conflict("no canary is running"))?;
    st.inner.runtime.cancel_canary();
    w.audit(&st, "policy.canary.cancel", version.to_string(), json!({}))
        .await?;
    Ok(Json(json!({"cancelled": version})))
}

// ---- shadow mode --------------------------------------------------------

fn shadow_json(st: &AdminState) -> Value {
    let log = st.inner.runtime.shadow_log();
    let shadow = st.inner.runtime.shadow();
    json!({
        "shadow": shadow.as_ref().map(|(_, label)| label.parse::<u64>().map(Value::from).unwrap_or(json!(label))),
        "generation": shadow.as_ref().map(|(g, _)| g.id()),
        "counts": log.counts(),
    })
}

async fn shadow_policy(
    State(st): State<AdminState>,
    w: Writer,
    Path(v): Path<String>,
) -> ApiResult {
    let version = parse_version(&v)?;
    let book = st.inner.book.lock().await;
    let g = book.generations.get(&version).cloned().ok_or_else(|| {
        ApiError::not_found(format!("no policy version {version}")).field("version")
    })?;
    if book.history.last() == Some(&version) {
        return Err(ApiError::conflict(format!(
            "policy version {version} is the active one: shadow a candidate version"
        ))
        .field("version"));
    }
    st.inner.runtime.set_shadow(g.clone(), version.to_string());
    drop(book);
    w.audit(
        &st,
        "policy.shadow",
        version.to_string(),
        json!({"generation": g.id()}),
    )
    .await?;
    Ok(Json(shadow_json(&st)))
}

async fn stop_shadow(State(st): State<AdminState>, w: Writer) -> ApiResult {
    let (_, label) = st
        .inner
        .runtime
        .clear_shadow()
        .ok_or_else(|| ApiError::conflict("shadow mode is not on"))?;
    w.audit(&st, "policy.shadow.stop", label.clone(), json!({}))
        .await?;
    let mut out = shadow_json(&st);
    out["stopped"] = label
        .parse::<u64>()
        .map(Value::from)
        .unwrap_or(json!(label));
    Ok(Json(out))
}

async fn stop_shadow_version(
    State(st): State<AdminState>,
    w: Writer,
    Path(v): Path<String>,
) -> ApiResult {
    let version = parse_version(&v)?;
    match st.inner.runtime.shadow() {
        Some((_, label)) if label == version.to_string() => stop_shadow(State(st), w).await,
        _ => Err(ApiError::conflict(format!(
            "policy version {version} is not running in shadow mode"
        ))
        .field("version")),
    }
}

async fn shadow_status(State(st): State<AdminState>) -> ApiResult {
    Ok(Json(shadow_json(&st)))
}

async fn shadow_diffs(
    State(st): State<AdminState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let limit = match q.get("limit") {
        None => 100,
        Some(l) => l.parse::<usize>().map_err(|_| {
            ApiError::bad(format!("limit must be a number, not `{l}`")).field("limit")
        })?,
    };
    let mut diffs = st.inner.runtime.shadow_log().diffs();
    let skip = diffs.len().saturating_sub(limit);
    diffs.drain(..skip);
    diffs.reverse();
    let mut out = shadow_json(&st);
    out["diffs"] = json!(diffs);
    Ok(Json(out))
}

async fn list_policies(State(st): State<AdminState>) -> ApiResult {
    let created: HashMap<u64, (i64, Option<String>)> = store_read(&st, |c| {
        let mut s = c.prepare("SELECT id, created_at_ms, created_by FROM policy_versions")?;
        let rows = s.query_map([], |r| {
            Ok((r.get::<_, i64>(0)? as u64, (r.get(1)?, r.get(2)?)))
        })?;
        Ok(rows.collect::<Result<HashMap<_, _>, _>>()?)
    })
    .await?;
    let shadow = st.inner.runtime.shadow().map(|(_, label)| label);
    let book = st.inner.book.lock().await;
    let active = book.history.last().copied();
    let versions: Vec<Value> = book
        .generations
        .iter()
        .map(|(v, g)| {
            let mut j = version_json(*v, g, &book.documents[v]);
            j["active"] = json!(Some(*v) == active);
            j["state"] = json!(if Some(*v) == active {
                "active"
            } else if book.canary.is_some_and(|(c, _)| c == *v) {
                "canary"
            } else if shadow.as_deref() == Some(v.to_string().as_str()) {
                "shadow"
            } else {
                "inactive"
            });
            if *v == CONFIG_VERSION {
                j["source"] = json!("config");
                j["created_at_ms"] = json!(book.config_loaded_at_ms);
                j["created_by"] = Value::Null;
            } else {
                let (at, by) = created.get(v).cloned().unwrap_or_default();
                j["source"] = json!("api");
                j["created_at_ms"] = json!(at);
                j["created_by"] = json!(by);
            }
            j
        })
        .collect();
    Ok(Json(
        json!({"versions": versions, "active": active, "canary": book.canary.map(|(v, p)| json!({"version": v, "percent": p}))}),
    ))
}

async fn get_policy(State(st): State<AdminState>, Path(v): Path<String>) -> ApiResult {
    let version = parse_version(&v)?;
    let book = st.inner.book.lock().await;
    let g = book
        .generations
        .get(&version)
        .ok_or_else(|| ApiError::not_found(format!("no policy version {version}")))?;
    let mut j = version_json(version, g, &book.documents[&version]);
    j["document"] = json!(book.documents[&version]);
    Ok(Json(j))
}

async fn active_policy(State(st): State<AdminState>) -> ApiResult {
    let book = st.inner.book.lock().await;
    let current = st.inner.runtime.current();
    let Some(version) = book.history.last().copied() else {
        return Ok(Json(
            json!({"version": null, "generation": current.id(), "bindings": []}),
        ));
    };
    let mut j = version_json(
        version,
        &book.generations[&version],
        &book.documents[&version],
    );
    j["canary"] = json!(
        book.canary
            .map(|(v, p)| json!({"version": v, "percent": p}))
    );
    Ok(Json(j))
}

// ---- data sets ----------------------------------------------------------

/// Blocking reader over body chunks received from the async side.
struct ChunkReader {
    rx: std::sync::mpsc::Receiver<Result<Bytes, String>>,
    cur: Bytes,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.recv() {
                Ok(Ok(b)) => self.cur = b,
                Ok(Err(e)) => return Err(std::io::Error::other(e)),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

struct Parsed {
    dataset: strowger_plugin::Dataset,
    /// Data rows read (duplicates included).
    lines: u64,
    sha256: String,
}

/// Parses a data-set CSV (`key,value` lines; blank lines and `#` comments
/// skipped) exactly as `POST /v1/datasets/{name}` does; returns the data
/// set and the sha256 of the bytes, or the error with its line number.
pub fn parse_dataset_csv(
    bytes: &[u8],
    version: impl Into<String>,
) -> Result<(strowger_plugin::Dataset, String), String> {
    let mut p = parse_csv(bytes, None, &LoadProgress::default()).map_err(|(e, _)| e)?;
    p.dataset.set_version(version);
    Ok((p.dataset, p.sha256))
}

/// Reads the CSV line by line into a data set (no copy of the input is
/// kept in memory); every byte read is also written to `copy` when given.
fn parse_csv(
    reader: impl std::io::Read,
    mut copy: Option<&mut dyn std::io::Write>,
    progress: &LoadProgress,
) -> Result<Parsed, (String, Option<u64>)> {
    use std::io::BufRead;
    let mut r = std::io::BufReader::with_capacity(1 << 16, reader);
    let mut builder = DatasetBuilder::new();
    let mut hash = Sha256::new();
    let mut line = String::new();
    let mut n = 0u64;
    let mut lines = 0u64;
    loop {
        line.clear();
        let got = r
            .read_line(&mut line)
            .map_err(|e| (format!("reading body: {e}"), None))?;
        if got == 0 {
            break;
        }
        n += 1;
        progress.add_bytes(got as u64);
        hash.update(line.as_bytes());
        if let Some(w) = copy.as_mut() {
            w.write_all(line.as_bytes())
                .map_err(|e| (format!("saving the data set: {e}"), None))?;
        }
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let (k, v) = t
            .split_once(',')
            .ok_or_else(|| (format!("line {n}: expected `key,value`"), Some(n)))?;
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() {
            return Err((format!("line {n}: empty key"), Some(n)));
        }
        builder
            .insert(k, v)
            .map_err(|e| (format!("line {n}: {e}"), Some(n)))?;
        lines += 1;
        progress.add_row();
    }
    progress.set_phase(LoadPhase::Indexing);
    Ok(Parsed {
        dataset: builder.finish(""),
        lines,
        sha256: hex::encode(hash.finalize()),
    })
}

/// Where uploaded data-set versions are kept: one CSV file per content
/// (`<sha256>.csv`) in a directory beside the store's database.
fn dataset_dir(st: &AdminState) -> std::path::PathBuf {
    st.inner.store.path().with_extension("datasets")
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Removes the temporary upload file unless it was kept.
struct TempFile(Option<std::path::PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Upload a data-set version. The body is streamed: a blocking thread
/// parses it line by line into the compact in-memory layout while writing
/// it to a file in the data-set directory (its sha256 names it); then the
/// version is recorded in the store and swapped in atomically. Calls keep
/// flowing meanwhile (nothing of this runs on the async workers), and
/// `GET /v1/datasets` lists the load and its progress.
async fn upload_dataset(
    State(st): State<AdminState>,
    w: Writer,
    Path(name): Path<String>,
    body: Body,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if !valid_name(&name) {
        return Err(
            ApiError::bad("data set name: letters, digits, - _ . only, at most 64").field("name"),
        );
    }
    let dir = dataset_dir(&st);
    static UPLOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".upload-{}-{}.tmp",
        std::process::id(),
        UPLOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let file = {
        let (dir, tmp) = (dir.clone(), tmp.clone());
        blocking(move || {
            std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::File::create(&tmp))
                .map_err(|e| {
                    ApiError::internal(format!("data set directory {}: {e}", dir.display()))
                })
        })
        .await?
    };
    let tmp = TempFile(Some(tmp));
    let load = st.inner.runtime.datasets().begin_load(&name);
    let progress = load.progress().clone();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Bytes, String>>(16);
    let parse = tokio::task::spawn_blocking(move || {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let parsed = parse_csv(
            ChunkReader {
                rx,
                cur: Bytes::new(),
            },
            Some(&mut out),
            &progress,
        )?;
        let file = out
            .into_inner()
            .map_err(|e| (format!("saving the data set: {e}"), None))?;
        file.sync_all()
            .map_err(|e| (format!("saving the data set: {e}"), None))?;
        progress.set_phase(LoadPhase::Storing);
        Ok(parsed)
    });
    let limit = st.inner.limits.max_dataset_bytes;
    let mut received = 0u64;
    let mut over = false;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        if let Ok(b) = &chunk {
            received += b.len() as u64;
            if received > limit {
                over = true;
                break;
            }
        }
        let item = chunk.map_err(|e| e.to_string());
        let failed = item.is_err();
        let tx2 = tx.clone();
        // The channel is bounded: send from a blocking thread so the runtime never blocks.
        let sent = tokio::task::spawn_blocking(move || tx2.send(item).is_ok())
            .await
            .unwrap_or(false);
        if !sent || failed {
            break;
        }
    }
    drop(tx);
    if over {
        // the parser sees a cut body: its answer is not used, nothing is stored
        let _ = parse.await;
        return Err(too_large(
            &st,
            limit,
            "max_dataset_bytes",
            &format!("/v1/datasets/{name}"),
        ));
    }
    let parsed = parse
        .await
        .map_err(ApiError::internal)?
        .map_err(|(e, line)| {
            let mut err =
                ApiError::unprocessable(format!("data set not imported: {e}")).field("body");
            if let Some(l) = line {
                err = err.detail(json!({"line": l}));
            }
            err
        })?;
    let Parsed {
        mut dataset,
        lines,
        sha256,
    } = parsed;
    // Keep the file under its content's name (the same content is kept once).
    let kept = dir.join(format!("{sha256}.csv"));
    let mut tmp = tmp;
    let from = tmp.0.take().expect("temporary file");
    blocking(move || {
        if kept.exists() {
            std::fs::remove_file(&from)
        } else {
            std::fs::rename(&from, &kept)
        }
        .map_err(|e| ApiError::internal(format!("saving the data set: {e}")))
    })
    .await?;
    let (n, sha, actor) = (name.clone(), sha256.clone(), w.actor.clone());
    let version = store_write(&st, move |c| {
        let now = now_ms();
        c.execute(
            "INSERT INTO datasets (name, active_version, created_at_ms) VALUES (?1, NULL, ?2) ON CONFLICT(name) DO NOTHING",
            params![n, now],
        )?;
        c.execute(
            "INSERT INTO dataset_versions (dataset, sha256, row_count, created_at_ms, created_by) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![n, sha, lines as i64, now, actor],
        )?;
        let id = c.last_insert_rowid();
        c.execute("UPDATE datasets SET active_version = ?1 WHERE name = ?2", params![id, n])?;
        Ok(id as u64)
    })
    .await?;
    dataset.set_version(version.to_string());
    let distinct = dataset.len();
    let layout = dataset.layout_name();
    let bytes = dataset.heap_bytes();
    st.inner
        .runtime
        .datasets()
        .put_dataset(&name, Arc::new(dataset));
    drop(load);
    w.audit(
        &st,
        "dataset.import",
        &name,
        json!({"version": version, "rows": lines, "sha256": sha256}),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"name": name, "version": version, "rows": distinct, "lines": lines, "sha256": sha256, "active": true, "layout": layout, "bytes": bytes}),
        ),
    ))
}

/// A stored data-set version, built for the runtime: from its file (see
/// [`upload_dataset`]) or, for versions stored row by row by older builds,
/// from the store's rows.
async fn stored_dataset(
    st: &AdminState,
    name: &str,
    version: i64,
) -> ApiResult<strowger_plugin::Dataset> {
    let store = st.inner.store.clone();
    let found: Option<(String, i64)> = store_read(st, move |c| {
        Ok(c.query_row(
            "SELECT sha256, row_count FROM dataset_versions WHERE id = ?1",
            [version],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
    })
    .await?;
    let (sha, row_count) = found.unzip();
    let file = sha
        .as_ref()
        .map(|s| dataset_dir(st).join(format!("{s}.csv")));
    if let (Some(file), Some(sha)) = (file.clone().filter(|f| f.exists()), sha) {
        let load = st.inner.runtime.datasets().begin_load(name);
        return blocking(move || {
            let f = std::fs::File::open(&file).map_err(|e| {
                ApiError::internal(format!("data set file {}: {e}", file.display()))
            })?;
            let mut p = parse_csv(f, None, load.progress()).map_err(|(e, _)| {
                ApiError::internal(format!("data set file {}: {e}", file.display()))
            })?;
            if p.sha256 != sha {
                return Err(ApiError::internal(format!(
                    "data set file {} does not match its sha256",
                    file.display()
                )));
            }
            p.dataset.set_version(version.to_string());
            Ok(p.dataset)
        })
        .await;
    }
    blocking(move || {
        store
            .read_blocking(|c| {
                let mut b = DatasetBuilder::new();
                let mut s =
                    c.prepare("SELECT key, value FROM dataset_rows WHERE version_id = ?1")?;
                let mut rows = s.query([version])?;
                while let Some(r) = rows.next()? {
                    let (k, v): (String, String) = (r.get(0)?, r.get(1)?);
                    let _ = b.insert(&k, &v);
                }
                Ok(b.finish(version.to_string()))
            })
            .map_err(ApiError::from)
            .and_then(|d| match (d.is_empty(), row_count, file) {
                // stored as a file that is gone: say so instead of an empty table
                (true, Some(n), Some(f)) if n > 0 => Err(ApiError::internal(format!(
                    "data set version {version}: file {} is missing",
                    f.display()
                ))),
                _ => Ok(d),
            })
    })
    .await
}

#[derive(Deserialize)]
struct VersionBody {
    version: i64,
}

/// Make a stored version of a data set the active one (e.g. back to the
/// previous version): loaded from the store, then swapped in atomically.
async fn activate_dataset(
    State(st): State<AdminState>,
    w: Writer,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let VersionBody { version } = json_body(&body)?;
    let n = name.clone();
    let known: Option<i64> = store_read(&st, move |c| {
        Ok(c.query_row(
            "SELECT row_count FROM dataset_versions WHERE id = ?1 AND dataset = ?2",
            params![version, n],
            |r| r.get(0),
        )
        .optional()?)
    })
    .await?;
    if known.is_none() {
        return Err(
            ApiError::not_found(format!("data set `{name}` has no version {version}"))
                .field("version"),
        );
    }
    let ds = stored_dataset(&st, &name, version).await?;
    let rows = ds.len();
    let n = name.clone();
    store_write(&st, move |c| {
        Ok(c.execute(
            "UPDATE datasets SET active_version = ?1 WHERE name = ?2",
            params![version, n],
        )? as u64)
    })
    .await?;
    st.inner.runtime.datasets().put_dataset(&name, Arc::new(ds));
    w.audit(&st, "dataset.activate", &name, json!({"version": version}))
        .await?;
    Ok(Json(
        json!({"name": name, "active_version": version, "rows": rows}),
    ))
}

async fn dataset_versions(State(st): State<AdminState>, Path(name): Path<String>) -> ApiResult {
    let n = name.clone();
    let (active, versions) = store_read(&st, move |c| {
        let active: Option<Option<i64>> =
            c.query_row("SELECT active_version FROM datasets WHERE name = ?1", [&n], |r| r.get(0)).optional()?;
        let mut s = c.prepare(
            "SELECT id, sha256, row_count, created_at_ms, created_by FROM dataset_versions WHERE dataset = ?1 ORDER BY id",
        )?;
        let rows = s.query_map([&n], |r| {
            Ok(json!({"version": r.get::<_, i64>(0)?, "sha256": r.get::<_, String>(1)?, "rows": r.get::<_, i64>(2)?,
                "created_at_ms": r.get::<_, i64>(3)?, "created_by": r.get::<_, Option<String>>(4)?}))
        })?;
        Ok((active, rows.collect::<Result<Vec<_>, _>>()?))
    })
    .await?;
    let Some(active) = active else {
        return Err(ApiError::not_found(format!("no data set `{name}`")).field("name"));
    };
    let loaded = st
        .inner
        .runtime
        .datasets()
        .get(&name)
        .map(|d| json!({"version": d.version(), "rows": d.len()}));
    Ok(Json(
        json!({"name": name, "active_version": active, "loaded": loaded, "versions": versions}),
    ))
}

async fn list_datasets(State(st): State<AdminState>) -> ApiResult {
    Ok(Json(
        json!({"datasets": st.inner.runtime.datasets().list(), "loading": st.inner.runtime.datasets().loading()}),
    ))
}

// ---- simulate -----------------------------------------------------------

#[derive(Deserialize)]
struct SimulateBody {
    /// Hook to run; default `route` (or `authorize` when `register` is given).
    hook: Option<Hook>,
    /// Input of the hook (JSON form, merged over the example).
    #[serde(default)]
    input: Option<Value>,
    /// Shorthand for `hook: route, input: call`.
    #[serde(default)]
    call: Option<Value>,
    /// Shorthand for `hook: authorize, input: register`.
    #[serde(default)]
    register: Option<Value>,
    /// Trunk scope.
    #[serde(default)]
    trunk: Option<String>,
    /// A stored policy version (default: the active generation).
    #[serde(default)]
    version: Option<u64>,
}

async fn simulate(State(st): State<AdminState>, body: Bytes) -> ApiResult {
    let b: SimulateBody = json_body(&body)?;
    let (hook, input) = match (b.hook, b.input, b.call, b.register) {
        (h, Some(i), None, None) => (h.unwrap_or(Hook::Route), i),
        (None | Some(Hook::Route), None, Some(c), None) => (Hook::Route, c),
        (None | Some(Hook::Authorize), None, None, Some(r)) => (Hook::Authorize, r),
        (Some(h), None, None, None) => (h, json!({})),
        _ => {
            return Err(
                ApiError::bad("give one of `input` (with `hook`), `call` or `register`")
                    .field("input"),
            );
        }
    };
    let g = match b.version {
        None => st.inner.runtime.current(),
        Some(v) => st
            .inner
            .book
            .lock()
            .await
            .generations
            .get(&v)
            .cloned()
            .ok_or_else(|| {
                ApiError::not_found(format!("no policy version {v}")).field("version")
            })?,
    };
    let shadow_input = (b.version.is_none()).then(|| input.clone());
    let step = run_hook(&g, hook, b.trunk.as_deref(), input).await?;
    let decision = step["value"].clone();
    let mut out = json!({"generation": g.id(), "decision": decision, "trace": [step]});
    // shadow mode: the shadow decides too and a difference is logged
    if let (Some(input), Some((sg, label))) = (shadow_input, st.inner.runtime.shadow())
        && let Some(_permit) = st.inner.runtime.shadow_log().try_permit()
    {
        let call_id = input["call_id"].as_str().unwrap_or("simulate").to_string();
        let theirs = run_hook(&sg, hook, b.trunk.as_deref(), input).await;
        let (text, error) = match &theirs {
            Ok(step) if step["error"].is_null() => (step["value"].to_string(), false),
            Ok(step) => (step["error"].to_string(), true),
            Err(e) => (e.to_string(), true),
        };
        let r = st
            .inner
            .runtime
            .shadow_log()
            .record(strowger_plugin::shadow::ShadowDiff {
                time_unix_ms: now_ms(),
                call_id,
                hook: hook.to_string(),
                source: "simulate".into(),
                active_generation: g.id(),
                shadow_generation: sg.id(),
                shadow_version: label.clone(),
                active: decision.to_string(),
                shadow: text.clone(),
                error,
            });
        out["shadow"] = json!({
            "version": label,
            "generation": sg.id(),
            "decision": theirs.ok().map(|s| s["value"].clone()),
            "result": format!("{r:?}").to_lowercase(),
        });
    }
    Ok(Json(out))
}

// ---- trunks + users -----------------------------------------------------

async fn kv_list(st: &AdminState, sql: &'static str) -> ApiResult<Vec<Value>> {
    store_read(st, move |c| {
        let mut s = c.prepare(sql)?;
        let n = s.column_count();
        let rows = s.query_map([], |r| {
            let mut o = serde_json::Map::new();
            for i in 0..n {
                let name = r
                    .as_ref()
                    .column_name(i)
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                let v: Value = match r.get_ref(i)? {
                    strowger_store::rusqlite::types::ValueRef::Integer(x) => json!(x),
                    strowger_store::rusqlite::types::ValueRef::Text(t) => {
                        let t = String::from_utf8_lossy(t).to_string();
                        if name == "config" {
                            serde_json::from_str(&t).unwrap_or(Value::String(t))
                        } else {
                            Value::String(t)
                        }
                    }
                    _ => Value::Null,
                };
                o.insert(name, v);
            }
            Ok(Value::Object(o))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    })
    .await
}

/// The stored trunks: name and configuration.
async fn stored_trunks(st: &AdminState) -> ApiResult<Vec<(String, Value)>> {
    Ok(kv_list(st, "SELECT name, config FROM trunks ORDER BY name")
        .await?
        .into_iter()
        .filter_map(|t| Some((t["name"].as_str()?.to_string(), t["config"].clone())))
        .collect())
}

async fn list_trunks(State(st): State<AdminState>) -> ApiResult {
    let mut v = json!({"trunks": kv_list(&st, "SELECT name, config, updated_at_ms FROM trunks ORDER BY name").await?});
    redact(&mut v);
    Ok(Json(v))
}

async fn trunk_status(State(st): State<AdminState>) -> ApiResult {
    Ok(Json(json!({"trunks": st.inner.switch.trunks().await})))
}

async fn get_trunk(State(st): State<AdminState>, Path(name): Path<String>) -> ApiResult {
    let all = kv_list(
        &st,
        "SELECT name, config, updated_at_ms FROM trunks ORDER BY name",
    )
    .await?;
    let mut t = all
        .into_iter()
        .find(|t| t["name"] == name.as_str())
        .ok_or_else(|| ApiError::not_found(format!("no trunk `{name}`")).field("name"))?;
    redact(&mut t);
    Ok(Json(t))
}

fn check_config(body: &Bytes) -> ApiResult<String> {
    let v: Value = json_body(body)?;
    if !v.is_object() {
        return Err(ApiError::bad("body must be a JSON object (the configuration)").field("body"));
    }
    Ok(v.to_string())
}

async fn put_trunk(
    State(st): State<AdminState>,
    w: Writer,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    if !valid_name(&name) {
        return Err(
            ApiError::bad("trunk name: letters, digits, - _ . only, at most 64").field("name"),
        );
    }
    let serial = st.inner.trunk_writes.lock().await;
    // the switch checks the new set first: a bad trunk changes nothing
    let mut all = stored_trunks(&st).await?;
    let mut config: Value = serde_json::from_str(&check_config(&body)?).unwrap_or_default();
    keep_secrets(
        &mut config,
        all.iter().find(|(n, _)| *n == name).map(|(_, c)| c),
    );
    let config = config.to_string();
    all.retain(|(n, _)| *n != name);
    all.push((
        name.clone(),
        serde_json::from_str(&config).unwrap_or_default(),
    ));
    let secrets = secret_values(&serde_json::from_str(&config).unwrap_or_default());
    st.inner
        .switch
        .set_trunks(all)
        .await
        .map_err(|e| ApiError::bad(scrub(e, &secrets)).field("body"))?;
    let (n, c2) = (name.clone(), config.clone());
    store_write(&st, move |c| {
        Ok(c.execute(
            "INSERT INTO trunks (name, config, updated_at_ms) VALUES (?1, ?2, ?3) \
             ON CONFLICT(name) DO UPDATE SET config = ?2, updated_at_ms = ?3",
            params![n, c2, now_ms()],
        )? as u64)
    })
    .await?;
    w.audit(
        &st,
        "trunk.put",
        &name,
        serde_json::from_str(&config).unwrap_or_default(),
    )
    .await?;
    drop(serial);
    get_trunk(State(st), Path(name)).await
}

async fn delete_trunk(
    State(st): State<AdminState>,
    w: Writer,
    Path(name): Path<String>,
) -> ApiResult {
    let _serial = st.inner.trunk_writes.lock().await;
    let mut all = stored_trunks(&st).await?;
    let before = all.len();
    all.retain(|(n, _)| *n != name);
    if all.len() == before {
        return Err(ApiError::not_found(format!("no trunk `{name}`")).field("name"));
    }
    // e.g. a trunk group still naming it: refused, nothing changes
    st.inner
        .switch
        .set_trunks(all)
        .await
        .map_err(|e| ApiError::bad(e).field("name"))?;
    let n = name.clone();
    store_write(&st, move |c| {
        Ok(c.execute("DELETE FROM trunks WHERE name = ?1", [n])? as u64)
    })
    .await?;
    w.audit(&st, "trunk.delete", &name, json!({})).await?;
    Ok(Json(json!({"deleted": name})))
}

const USERS_SQL: &str =
    "SELECT user, domain, config, updated_at_ms FROM users ORDER BY domain, user";

async fn list_users(State(st): State<AdminState>) -> ApiResult {
    let mut v = json!({"users": kv_list(&st, USERS_SQL).await?});
    redact(&mut v);
    Ok(Json(v))
}

async fn get_user(
    State(st): State<AdminState>,
    Path((domain, user)): Path<(String, String)>,
) -> ApiResult {
    let mut u = stored_user(&st, &domain, &user)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user {user}@{domain}")).field("user"))?;
    redact(&mut u);
    Ok(Json(u))
}

/// One stored user row (with its secrets).
async fn stored_user(st: &AdminState, domain: &str, user: &str) -> ApiResult<Option<Value>> {
    Ok(kv_list(st, USERS_SQL)
        .await?
        .into_iter()
        .find(|u| u["user"] == user && u["domain"] == domain))
}

/// Gives the switch every user stored over the API (after each change and
/// on restore).
async fn sync_users(st: &AdminState) -> ApiResult<()> {
    let rows = kv_list(st, USERS_SQL).await?;
    let users = rows
        .iter()
        .filter_map(|u| {
            Some(crate::UserAccount {
                user: u["user"].as_str()?.to_string(),
                domain: u["domain"].as_str()?.to_string(),
                password: u["config"]["password"].as_str()?.to_string(),
            })
        })
        .collect();
    st.inner.switch.set_users(users).await;
    Ok(())
}

async fn put_user(
    State(st): State<AdminState>,
    w: Writer,
    Path((domain, user)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    if user.is_empty() || domain.is_empty() || user.len() > 128 || domain.len() > 255 {
        return Err(
            ApiError::bad("user and domain must be 1..128 / 1..255 characters").field("user"),
        );
    }
    let mut config: Value = serde_json::from_str(&check_config(&body)?).unwrap_or_default();
    let old = stored_user(&st, &domain, &user).await?;
    keep_secrets(&mut config, old.as_ref().map(|u| &u["config"]));
    let has_password = config["password"].as_str().is_some_and(|p| !p.is_empty());
    let config = config.to_string();
    if !has_password {
        return Err(ApiError::bad(
            "a user needs `password` (a non-empty string): the switch authenticates it with digest",
        )
        .field("password"));
    }
    let (u, d, c2) = (user.clone(), domain.clone(), config.clone());
    store_write(&st, move |c| {
        Ok(c.execute(
            "INSERT INTO users (user, domain, config, updated_at_ms) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT(user, domain) DO UPDATE SET config = ?3, updated_at_ms = ?4",
            params![u, d, c2, now_ms()],
        )? as u64)
    })
    .await?;
    // Secrets are not written to the audit log (`Writer::audit` redacts).
    let detail: Value = serde_json::from_str(&config).unwrap_or_default();
    sync_users(&st).await?;
    w.audit(&st, "user.put", format!("{user}@{domain}"), detail)
        .await?;
    get_user(State(st), Path((domain, user))).await
}

async fn delete_user(
    State(st): State<AdminState>,
    w: Writer,
    Path((domain, user)): Path<(String, String)>,
) -> ApiResult {
    let (u, d) = (user.clone(), domain.clone());
    let k = store_write(&st, move |c| {
        Ok(c.execute("DELETE FROM users WHERE user = ?1 AND domain = ?2", [u, d])? as u64)
    })
    .await?;
    if k == 0 {
        return Err(ApiError::not_found(format!("no user {user}@{domain}")).field("user"));
    }
    sync_users(&st).await?;
    w.audit(&st, "user.delete", format!("{user}@{domain}"), json!({}))
        .await?;
    Ok(Json(json!({"deleted": format!("{user}@{domain}")})))
}

// ---- registrations + calls ----------------------------------------------

async fn list_registrations(State(st): State<AdminState>) -> ApiResult {
    Ok(Json(
        json!({"registrations": st.inner.switch.registrations()}),
    ))
}

#[derive(Deserialize)]
struct RegQuery {
    aor: Option<String>,
    contact: Option<String>,
}

async fn remove_registration(
    State(st): State<AdminState>,
    w: Writer,
    Query(q): Query<RegQuery>,
) -> ApiResult {
    let aor = q
        .aor
        .filter(|a| !a.is_empty())
        .ok_or_else(|| ApiError::bad("`?aor=` is required").field("aor"))?;
    let n = st
        .inner
        .switch
        .remove_registration(&aor, q.contact.as_deref());
    if n == 0 {
        return Err(ApiError::not_found(format!("no registration for {aor}")).field("aor"));
    }
    w.audit(
        &st,
        "registration.remove",
        &aor,
        json!({"contact": q.contact, "removed": n}),
    )
    .await?;
    Ok(Json(json!({"removed": n})))
}

async fn list_calls(State(st): State<AdminState>) -> ApiResult {
    Ok(Json(json!({"calls": st.inner.switch.calls().await})))
}

async fn hangup_call(State(st): State<AdminState>, w: Writer, Path(id): Path<String>) -> ApiResult {
    if !st.inner.switch.hangup(&id).await {
        return Err(ApiError::not_found(format!("no call `{id}`")).field("id"));
    }
    w.audit(&st, "call.hangup", &id, json!({})).await?;
    Ok(Json(json!({"hung_up": id})))
}

// ---- CDRs + audit -------------------------------------------------------

fn cdr_filter(q: &HashMap<String, String>) -> ApiResult<CdrFilter> {
    let num = |k: &str| -> ApiResult<Option<i64>> {
        q.get(k)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::bad(format!("`{k}` must be Unix milliseconds")).field(k))
            })
            .transpose()
    };
    let small = |k: &str| -> ApiResult<Option<u32>> {
        q.get(k)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse::<u32>().map_err(|_| {
                    ApiError::bad(format!("`{k}` must be a non-negative number")).field(k)
                })
            })
            .transpose()
    };
    Ok(CdrFilter {
        from_ms: num("from")?,
        to_ms: num("to")?,
        number: q.get("number").filter(|v| !v.is_empty()).cloned(),
        trunk: q.get("trunk").filter(|v| !v.is_empty()).cloned(),
        call_id: q.get("call_id").filter(|v| !v.is_empty()).cloned(),
        answered_only: q.get("answered").is_some_and(|v| v == "true" || v == "1"),
        limit: small("limit")?,
        offset: small("offset")?,
    })
}

async fn cdrs(
    State(st): State<AdminState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let f = cdr_filter(&q)?;
    if q.get("format").is_some_and(|f| f == "csv") {
        return cdrs_csv(State(st), Query(q)).await;
    }
    let store = st.inner.store.clone();
    let rows = blocking(move || store.query_cdrs_blocking(&f).map_err(ApiError::from)).await?;
    Ok(Json(json!({"cdrs": rows, "count": rows.len()})).into_response())
}

async fn cdrs_csv(
    State(st): State<AdminState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let f = cdr_filter(&q)?;
    let store = st.inner.store.clone();
    let csv = blocking(move || store.cdrs_csv_blocking(&f).map_err(ApiError::from)).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"cdrs.csv\"",
            ),
        ],
        csv,
    )
        .into_response())
}

async fn audit(
    State(st): State<AdminState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let f = cdr_filter(&q)?;
    let store = st.inner.store.clone();
    let rows = blocking(move || {
        store
            .audit_log_blocking(
                f.from_ms.unwrap_or(0),
                f.to_ms.unwrap_or(i64::MAX),
                f.limit.unwrap_or(1000),
            )
            .map_err(ApiError::from)
    })
    .await?;
    // entries written before secrets were redacted on write are scrubbed here
    let mut rows = serde_json::to_value(rows).map_err(ApiError::internal)?;
    for e in rows.as_array_mut().into_iter().flatten() {
        if let Some(d) = e.get("detail").and_then(Value::as_str) {
            let clean = match serde_json::from_str::<Value>(d) {
                Ok(mut v) => {
                    redact(&mut v);
                    v.to_string()
                }
                Err(_) => "(detail withheld: not JSON)".to_string(),
            };
            e["detail"] = json!(clean);
        }
    }
    Ok(Json(json!({"entries": rows})))
}

// ---- restore ------------------------------------------------------------

pub(crate) async fn restore(st: &AdminState) -> ApiResult<Option<u64>> {
    // What runs now was built from the configuration file: policy version 0.
    let config_generation = st.inner.runtime.current();
    {
        // its plugins can be named (by sha256) in new policy versions
        let mut plugins = st.inner.plugins.lock();
        for (_, _, p) in config_generation.bindings() {
            plugins.entry(p.sha256().to_string()).or_insert(p);
        }
    }
    {
        let mut book = st.inner.book.lock().await;
        let doc = document_of(&config_generation, "the configuration file's [[bindings]]");
        book.generations.insert(CONFIG_VERSION, config_generation);
        book.documents.insert(CONFIG_VERSION, doc);
        book.config_loaded_at_ms = Some(now_ms());
        book.history.retain(|v| *v != CONFIG_VERSION);
        book.history.insert(0, CONFIG_VERSION);
    }
    sync_users(st).await?;
    let trunks = stored_trunks(st).await?;
    if !trunks.is_empty()
        && let Err(e) = st.inner.switch.set_trunks(trunks).await
    {
        // the configuration file changed under the stored trunks: keep running on the file's
        tracing::error!(error = %e, "stored trunks not applied");
    }
    let artifacts: Vec<(String, String, Vec<u8>)> = store_read(st, |c| {
        let mut s = c.prepare("SELECT sha256, name, wasm FROM plugin_artifacts")?;
        let rows = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    })
    .await?;
    for (sha, name, wasm) in artifacts {
        match st.inner.runtime.load(&name, &wasm).await {
            Ok(p) => {
                st.inner.plugins.lock().insert(sha, p);
            }
            Err(e) => tracing::warn!(%sha, %name, error = %e, "stored plugin no longer loads"),
        }
    }
    let sets: Vec<(String, i64)> = store_read(st, |c| {
        let mut s = c.prepare(
            "SELECT name, active_version FROM datasets WHERE active_version IS NOT NULL",
        )?;
        let rows = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    })
    .await?;
    for (name, version) in sets {
        let ds = stored_dataset(st, &name, version).await?;
        st.inner.runtime.datasets().put_dataset(&name, Arc::new(ds));
    }
    let docs: Vec<(u64, String)> = store_read(st, |c| {
        let mut s = c.prepare("SELECT id, document FROM policy_versions ORDER BY id")?;
        let rows = s.query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    })
    .await?;
    let active: Option<u64> = store_read(st, |c| {
        Ok(c.query_row(
            "SELECT version_id FROM policy_active WHERE singleton = 1",
            [],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
        .map(|v| v as u64))
    })
    .await?;
    let mut book = st.inner.book.lock().await;
    for (id, text) in docs {
        let Ok(mut doc) = serde_json::from_str::<PolicyDocument>(&text) else {
            continue;
        };
        match build_generation(st, &mut doc).await {
            Ok(g) => {
                book.generations.insert(id, g);
                book.documents.insert(id, doc);
            }
            Err(e) => {
                tracing::warn!(version = id, error = %e, "stored policy version no longer builds")
            }
        }
    }
    if let Some(v) = active
        && let Some(g) = book.generations.get(&v).cloned()
    {
        st.inner.runtime.activate(g);
        book.history.push(v);
        return Ok(Some(v));
    }
    Ok(None)
}
