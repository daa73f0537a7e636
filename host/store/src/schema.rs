//! Schema and migrations. `schema_version` holds one row: the number of
//! migrations applied. Migrations only ever get appended.

use rusqlite::{Connection, OptionalExtension};

use crate::StoreError;

/// Migrations in order; `MIGRATIONS[i]` takes the schema from version `i`
/// to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: registrations, CDRs, and the control-plane tables.
    r#"
CREATE TABLE registrations (
    aor            TEXT    NOT NULL,
    contact        TEXT    NOT NULL,
    expires_at_ms  INTEGER NOT NULL,
    transport      TEXT    NOT NULL,
    source_ip      TEXT    NOT NULL,
    source_port    INTEGER NOT NULL,
    local_addr     TEXT,
    connection_id  INTEGER,
    user_agent     TEXT,
    call_id        TEXT    NOT NULL,
    cseq           INTEGER NOT NULL,
    q              REAL,
    instance_id    TEXT,
    reg_id         INTEGER,
    updated_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (aor, contact)
) WITHOUT ROWID;
CREATE INDEX registrations_expires ON registrations (expires_at_ms);

CREATE TABLE cdrs (
    id              INTEGER PRIMARY KEY,
    call_id         TEXT    NOT NULL UNIQUE,
    sip_call_id     TEXT,
    start_ms        INTEGER NOT NULL,
    answer_ms       INTEGER,
    end_ms          INTEGER NOT NULL,
    a_number        TEXT    NOT NULL,
    b_number        TEXT    NOT NULL,
    a_number_out    TEXT,
    b_number_out    TEXT,
    ingress         TEXT    NOT NULL,
    ingress_trunk   TEXT,
    source          TEXT,
    egress          TEXT,
    egress_trunk    TEXT,
    final_code      INTEGER NOT NULL,
    final_reason    TEXT    NOT NULL,
    cause           TEXT    NOT NULL,
    hangup_side     TEXT,
    plugins         TEXT    NOT NULL,
    policy_generation INTEGER
);
CREATE INDEX cdrs_start ON cdrs (start_ms);
CREATE INDEX cdrs_a ON cdrs (a_number);
CREATE INDEX cdrs_b ON cdrs (b_number);
CREATE INDEX cdrs_ingress_trunk ON cdrs (ingress_trunk) WHERE ingress_trunk IS NOT NULL;
CREATE INDEX cdrs_egress_trunk ON cdrs (egress_trunk) WHERE egress_trunk IS NOT NULL;

CREATE TABLE cdr_attempts (
    cdr_id        INTEGER NOT NULL REFERENCES cdrs (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    destination   TEXT    NOT NULL,
    egress_trunk  TEXT,
    a_number      TEXT    NOT NULL,
    b_number      TEXT    NOT NULL,
    start_ms      INTEGER NOT NULL,
    answer_ms     INTEGER,
    end_ms        INTEGER,
    final_code    INTEGER,
    cause         TEXT,
    PRIMARY KEY (cdr_id, seq)
) WITHOUT ROWID;
CREATE INDEX cdr_attempts_trunk ON cdr_attempts (egress_trunk) WHERE egress_trunk IS NOT NULL;

-- control plane (used by the admin API issue)
CREATE TABLE plugin_artifacts (
    sha256        TEXT    PRIMARY KEY,
    name          TEXT    NOT NULL,
    version       TEXT    NOT NULL,
    world         TEXT    NOT NULL,
    size          INTEGER NOT NULL,
    wasm          BLOB    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    created_by    TEXT
);
CREATE INDEX plugin_artifacts_name ON plugin_artifacts (name, version);

CREATE TABLE policy_versions (
    id            INTEGER PRIMARY KEY,
    document      TEXT    NOT NULL,
    comment       TEXT,
    created_at_ms INTEGER NOT NULL,
    created_by    TEXT
);
CREATE TABLE policy_active (
    singleton     INTEGER PRIMARY KEY CHECK (singleton = 1),
    version_id    INTEGER NOT NULL REFERENCES policy_versions (id),
    generation    INTEGER NOT NULL,
    activated_at_ms INTEGER NOT NULL,
    activated_by  TEXT
);

CREATE TABLE datasets (
    name          TEXT    PRIMARY KEY,
    active_version INTEGER,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE dataset_versions (
    id            INTEGER PRIMARY KEY,
    dataset       TEXT    NOT NULL REFERENCES datasets (name) ON DELETE CASCADE,
    sha256        TEXT    NOT NULL,
    row_count     INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    created_by    TEXT
);
CREATE TABLE dataset_rows (
    version_id    INTEGER NOT NULL REFERENCES dataset_versions (id) ON DELETE CASCADE,
    key           TEXT    NOT NULL,
    value         TEXT    NOT NULL,
    PRIMARY KEY (version_id, key)
) WITHOUT ROWID;

CREATE TABLE trunks (
    name          TEXT    PRIMARY KEY,
    config        TEXT    NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
CREATE TABLE users (
    user          TEXT    NOT NULL,
    domain        TEXT    NOT NULL,
    config        TEXT    NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (user, domain)
) WITHOUT ROWID;

CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY,
    at_ms         INTEGER NOT NULL,
    actor         TEXT    NOT NULL,
    source        TEXT,
    action        TEXT    NOT NULL,
    target        TEXT,
    detail        TEXT
);
CREATE INDEX audit_log_at ON audit_log (at_ms);
"#,
    // 2: per-call media counters (JSON text) on CDRs.
    "ALTER TABLE cdrs ADD COLUMN media TEXT;",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Bring `conn` up to [`SCHEMA_VERSION`], in one transaction. Refuses a
/// database written by a newer build.
pub(crate) fn migrate(conn: &mut Connection) -> Result<u32, StoreError> {
    let tx = conn.transaction()?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);")?;
    let current: Option<u32> = tx
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .optional()?;
    let current = match current {
        Some(v) => v,
        None => {
            tx.execute("INSERT INTO schema_version (version) VALUES (0)", [])?;
            0
        }
    };
    if current > SCHEMA_VERSION {
        return Err(StoreError::Schema(format!(
            "database schema version {current} is newer than this build's {SCHEMA_VERSION}; \
             refusing to open it (upgrade strowger)"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql)
            .map_err(|e| StoreError::Schema(format!("migration {} failed: {e}", i + 1)))?;
    }
    tx.execute("UPDATE schema_version SET version = ?1", [SCHEMA_VERSION])?;
    tx.commit()?;
    Ok(SCHEMA_VERSION)
}
