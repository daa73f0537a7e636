//! Call detail records: one row per call plus one per outbound attempt.

use std::fmt::Write as _;

use rusqlite::{Connection, Row, params};
use serde::{Deserialize, Serialize};

use crate::StoreError;
pub use strowger_types::cdr::{Cdr, CdrAttempt};
pub use strowger_types::format_utc_ms;

/// Selects CDRs. Every field is optional; all given ones must match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CdrFilter {
    /// Calls that started at or after this Unix ms.
    pub from_ms: Option<i64>,
    /// Calls that started before this Unix ms.
    pub to_ms: Option<i64>,
    /// A or B number, before or after rewrite (exact match).
    pub number: Option<String>,
    /// Ingress trunk, egress trunk or the trunk of any attempt.
    pub trunk: Option<String>,
    /// One call by the host's call id.
    pub call_id: Option<String>,
    /// Only answered calls.
    pub answered_only: bool,
    /// At most this many rows (default 10,000).
    pub limit: Option<u32>,
    /// Skip this many rows first (paging).
    pub offset: Option<u32>,
}

/// Default row limit of a query.
pub const DEFAULT_LIMIT: u32 = 10_000;

pub(crate) fn insert(conn: &Connection, cdr: &Cdr) -> Result<(), StoreError> {
    let mut st = conn.prepare_cached(
        "INSERT INTO cdrs (call_id, sip_call_id, start_ms, answer_ms, end_ms, a_number, b_number, \
         a_number_out, b_number_out, ingress, ingress_trunk, source, egress, egress_trunk, final_code, \
         final_reason, cause, hangup_side, plugins, policy_generation, media) VALUES \
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
    )?;
    st.execute(params![
        cdr.call_id,
        cdr.sip_call_id,
        cdr.start_ms,
        cdr.answer_ms,
        cdr.end_ms,
        cdr.a_number,
        cdr.b_number,
        cdr.a_number_out,
        cdr.b_number_out,
        cdr.ingress,
        cdr.ingress_trunk,
        cdr.source,
        cdr.egress,
        cdr.egress_trunk,
        cdr.final_code,
        cdr.final_reason,
        cdr.cause,
        cdr.hangup_side,
        cdr.plugins,
        cdr.policy_generation.map(|g| g as i64),
        cdr.media.as_ref().map(|m| m.to_string()),
    ])?;
    let id = conn.last_insert_rowid();
    let mut st = conn.prepare_cached(
        "INSERT INTO cdr_attempts (cdr_id, seq, destination, egress_trunk, a_number, b_number, \
         start_ms, answer_ms, end_ms, final_code, cause) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for (seq, a) in cdr.attempts.iter().enumerate() {
        st.execute(params![
            id,
            seq as i64,
            a.destination,
            a.egress_trunk,
            a.a_number,
            a.b_number,
            a.start_ms,
            a.answer_ms,
            a.end_ms,
            a.final_code,
            a.cause,
        ])?;
    }
    Ok(())
}

fn cdr_from_row(row: &Row<'_>) -> rusqlite::Result<(i64, Cdr)> {
    Ok((
        row.get("id")?,
        Cdr {
            call_id: row.get("call_id")?,
            sip_call_id: row.get("sip_call_id")?,
            start_ms: row.get("start_ms")?,
            answer_ms: row.get("answer_ms")?,
            end_ms: row.get("end_ms")?,
            a_number: row.get("a_number")?,
            b_number: row.get("b_number")?,
            a_number_out: row.get("a_number_out")?,
            b_number_out: row.get("b_number_out")?,
            ingress: row.get("ingress")?,
            ingress_trunk: row.get("ingress_trunk")?,
            source: row.get("source")?,
            egress: row.get("egress")?,
            egress_trunk: row.get("egress_trunk")?,
            final_code: row.get("final_code")?,
            final_reason: row.get("final_reason")?,
            cause: row.get("cause")?,
            hangup_side: row.get("hangup_side")?,
            plugins: row.get("plugins")?,
            policy_generation: row
                .get::<_, Option<i64>>("policy_generation")?
                .map(|g| g as u64),
            attempts: Vec::new(),
            // unreadable JSON (hand-edited row) reads as no counters
            media: row
                .get::<_, Option<String>>("media")?
                .and_then(|t| serde_json::from_str(&t).ok()),
        },
    ))
}

pub(crate) fn query(conn: &Connection, f: &CdrFilter) -> Result<Vec<Cdr>, StoreError> {
    let mut sql = String::from("SELECT * FROM cdrs WHERE 1 = 1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    // Every `?` in `clause` becomes a new numbered parameter bound to `v`.
    let mut arg = |sql: &mut String, clause: &str, v: rusqlite::types::Value| {
        for (i, part) in clause.split('?').enumerate() {
            if i > 0 {
                args.push(v.clone());
                write!(sql, "?{}", args.len()).expect("write to String");
            }
            sql.push_str(part);
        }
    };
    use rusqlite::types::Value as V;
    if let Some(v) = f.from_ms {
        arg(&mut sql, " AND start_ms >= ?", V::Integer(v));
    }
    if let Some(v) = f.to_ms {
        arg(&mut sql, " AND start_ms < ?", V::Integer(v));
    }
    if let Some(v) = &f.number {
        arg(
            &mut sql,
            " AND ? IN (a_number, b_number, ifnull(a_number_out, ''), ifnull(b_number_out, ''))",
            V::Text(v.clone()),
        );
    }
    if let Some(v) = &f.trunk {
        arg(
            &mut sql,
            " AND (ingress_trunk = ? OR egress_trunk = ? OR id IN \
             (SELECT cdr_id FROM cdr_attempts WHERE egress_trunk = ?))",
            V::Text(v.clone()),
        );
    }
    if let Some(v) = &f.call_id {
        arg(&mut sql, " AND call_id = ?", V::Text(v.clone()));
    }
    if f.answered_only {
        sql.push_str(" AND answer_ms IS NOT NULL");
    }
    write!(
        sql,
        " ORDER BY start_ms, id LIMIT {} OFFSET {}",
        f.limit.unwrap_or(DEFAULT_LIMIT),
        f.offset.unwrap_or(0)
    )
    .expect("write to String");

    let mut st = conn.prepare(&sql)?;
    let rows = st.query_map(rusqlite::params_from_iter(args.iter()), cdr_from_row)?;
    let mut out: Vec<(i64, Cdr)> = Vec::new();
    for r in rows {
        out.push(r?);
    }
    let mut at = conn.prepare_cached(
        "SELECT destination, egress_trunk, a_number, b_number, start_ms, answer_ms, end_ms, \
         final_code, cause FROM cdr_attempts WHERE cdr_id = ?1 ORDER BY seq",
    )?;
    for (id, cdr) in &mut out {
        let attempts = at.query_map([*id], |r| {
            Ok(CdrAttempt {
                destination: r.get(0)?,
                egress_trunk: r.get(1)?,
                a_number: r.get(2)?,
                b_number: r.get(3)?,
                start_ms: r.get(4)?,
                answer_ms: r.get(5)?,
                end_ms: r.get(6)?,
                final_code: r.get(7)?,
                cause: r.get(8)?,
            })
        })?;
        for a in attempts {
            cdr.attempts.push(a?);
        }
    }
    Ok(out.into_iter().map(|(_, c)| c).collect())
}

fn csv_field(out: &mut String, v: &str) {
    if v.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(v);
    }
}

/// Column names of [`to_csv`].
pub const CSV_HEADER: &str = "call_id,sip_call_id,start,answer,end,duration_s,billsec_s,a_number,b_number,\
a_number_out,b_number_out,ingress,ingress_trunk,source,egress,egress_trunk,final_code,final_reason,\
cause,hangup_side,attempts,policy_generation,plugins";

/// Render CDRs as CSV (RFC 4180, header row, times in UTC RFC 3339,
/// durations in seconds with millisecond precision).
pub fn to_csv(cdrs: &[Cdr]) -> String {
    let mut out = String::with_capacity(64 + cdrs.len() * 200);
    out.push_str(CSV_HEADER);
    out.push_str("\r\n");
    for c in cdrs {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let fields: [String; 23] = [
            c.call_id.clone(),
            opt(&c.sip_call_id),
            format_utc_ms(c.start_ms),
            c.answer_ms.map(format_utc_ms).unwrap_or_default(),
            format_utc_ms(c.end_ms),
            format!("{:.3}", c.duration_ms() as f64 / 1000.0),
            format!("{:.3}", c.billable_ms() as f64 / 1000.0),
            c.a_number.clone(),
            c.b_number.clone(),
            opt(&c.a_number_out),
            opt(&c.b_number_out),
            c.ingress.clone(),
            opt(&c.ingress_trunk),
            opt(&c.source),
            opt(&c.egress),
            opt(&c.egress_trunk),
            c.final_code.to_string(),
            c.final_reason.clone(),
            c.cause.clone(),
            opt(&c.hangup_side),
            c.attempts.len().to_string(),
            c.policy_generation
                .map(|g| g.to_string())
                .unwrap_or_default(),
            c.plugins.clone(),
        ];
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            csv_field(&mut out, f);
        }
        out.push_str("\r\n");
    }
    out
}
