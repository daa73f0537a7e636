//! Control-plane tables. The schema (plugin artifacts by sha256, policy
//! versions + active pointer, data sets + versions, trunks, users, audit log)
//! is created by migration 1; the admin API issue adds their accessors (or
//! uses [`crate::Store::write`] / [`crate::Store::read_blocking`]). The audit
//! log is usable now.

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// One audit log entry: who did what, when, from where.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Row id (ignored when appending).
    pub id: u64,
    /// When, Unix ms.
    pub at_ms: i64,
    /// Who (API token name, user, `cli`, `system`).
    pub actor: String,
    /// From where (client address), if known.
    pub source: Option<String>,
    /// What, e.g. `policy.activate`, `plugin.upload`, `dataset.import`.
    pub action: String,
    /// On what, e.g. a policy version id or a plugin sha256.
    pub target: Option<String>,
    /// Details (JSON recommended).
    pub detail: Option<String>,
}

pub(crate) fn append_audit(conn: &Connection, e: &AuditEntry) -> Result<u64, StoreError> {
    let mut st = conn.prepare_cached(
        "INSERT INTO audit_log (at_ms, actor, source, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    st.execute(params![
        e.at_ms, e.actor, e.source, e.action, e.target, e.detail
    ])?;
    Ok(conn.last_insert_rowid() as u64)
}

pub(crate) fn audit_log(
    conn: &Connection,
    from_ms: i64,
    to_ms: i64,
    limit: u32,
) -> Result<Vec<AuditEntry>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT id, at_ms, actor, source, action, target, detail FROM audit_log \
         WHERE at_ms >= ?1 AND at_ms < ?2 ORDER BY at_ms, id LIMIT ?3",
    )?;
    let rows = st.query_map(params![from_ms, to_ms, limit], |r| {
        Ok(AuditEntry {
            id: r.get::<_, i64>(0)? as u64,
            at_ms: r.get(1)?,
            actor: r.get(2)?,
            source: r.get(3)?,
            action: r.get(4)?,
            target: r.get(5)?,
            detail: r.get(6)?,
        })
    })?;
    let mut out = Vec::new();
    for r in rows {
        out.push(r?);
    }
    Ok(out)
}
