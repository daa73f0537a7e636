//! Registrations (location service bindings).

use std::net::SocketAddr;

use rusqlite::{Connection, Row, params};
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// One binding of an address-of-record to a contact, with the flow it
/// arrived on (where requests to it are sent back).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    /// Address-of-record, normalised by the caller (e.g. `sip:1001@strowger.local`).
    pub aor: String,
    /// The Contact URI as registered.
    pub contact: String,
    /// Expiry, Unix milliseconds (UTC).
    pub expires_at_ms: i64,
    /// Transport of the flow (`udp`, `tcp`, `tls`, ...).
    pub transport: String,
    /// Packet source of the REGISTER (the far end of the flow).
    pub source: SocketAddr,
    /// Local listener address the REGISTER arrived on, if known.
    pub local: Option<SocketAddr>,
    /// Connection id of a connection-oriented flow (meaningful only while
    /// the process that issued it lives).
    pub connection_id: Option<u64>,
    /// User-Agent header of the registering device.
    pub user_agent: Option<String>,
    /// Call-ID of the REGISTER (RFC 3261 §10.3 ordering).
    pub call_id: String,
    /// CSeq number of the REGISTER.
    pub cseq: u32,
    /// Contact `q` parameter.
    pub q: Option<f32>,
    /// `+sip.instance` (RFC 5626), if any.
    pub instance_id: Option<String>,
    /// `reg-id` (RFC 5626), if any.
    pub reg_id: Option<u32>,
    /// When this binding was last written, Unix milliseconds.
    pub updated_at_ms: i64,
}

impl Registration {
    /// True when the binding has expired at `now_ms`.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expires_at_ms <= now_ms
    }
}

pub(crate) fn put(conn: &Connection, r: &Registration) -> Result<(), StoreError> {
    let mut st = conn.prepare_cached(
        "INSERT OR REPLACE INTO registrations (aor, contact, expires_at_ms, transport, source_ip, \
         source_port, local_addr, connection_id, user_agent, call_id, cseq, q, instance_id, reg_id, \
         updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?;
    st.execute(params![
        r.aor,
        r.contact,
        r.expires_at_ms,
        r.transport,
        r.source.ip().to_string(),
        r.source.port(),
        r.local.map(|a| a.to_string()),
        r.connection_id.map(|c| c as i64),
        r.user_agent,
        r.call_id,
        r.cseq,
        r.q.map(f64::from),
        r.instance_id,
        r.reg_id,
        r.updated_at_ms,
    ])?;
    Ok(())
}

pub(crate) fn remove(conn: &Connection, aor: &str, contact: &str) -> Result<usize, StoreError> {
    let mut st =
        conn.prepare_cached("DELETE FROM registrations WHERE aor = ?1 AND contact = ?2")?;
    Ok(st.execute(params![aor, contact])?)
}

pub(crate) fn remove_aor(conn: &Connection, aor: &str) -> Result<usize, StoreError> {
    let mut st = conn.prepare_cached("DELETE FROM registrations WHERE aor = ?1")?;
    Ok(st.execute(params![aor])?)
}

pub(crate) fn purge_expired(conn: &Connection, now_ms: i64) -> Result<usize, StoreError> {
    let mut st = conn.prepare_cached("DELETE FROM registrations WHERE expires_at_ms <= ?1")?;
    Ok(st.execute(params![now_ms])?)
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Registration> {
    let ip: String = row.get("source_ip")?;
    let port: u16 = row.get("source_port")?;
    let bad = |what: &str, v: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("bad {what} {v:?}").into(),
        )
    };
    let ip: std::net::IpAddr = ip.parse().map_err(|_| bad("source_ip", &ip))?;
    let local: Option<String> = row.get("local_addr")?;
    let local = match local {
        Some(l) => Some(l.parse().map_err(|_| bad("local_addr", &l))?),
        None => None,
    };
    Ok(Registration {
        aor: row.get("aor")?,
        contact: row.get("contact")?,
        expires_at_ms: row.get("expires_at_ms")?,
        transport: row.get("transport")?,
        source: SocketAddr::new(ip, port),
        local,
        connection_id: row
            .get::<_, Option<i64>>("connection_id")?
            .map(|c| c as u64),
        user_agent: row.get("user_agent")?,
        call_id: row.get("call_id")?,
        cseq: row.get("cseq")?,
        q: row.get::<_, Option<f64>>("q")?.map(|q| q as f32),
        instance_id: row.get("instance_id")?,
        reg_id: row.get("reg_id")?,
        updated_at_ms: row.get("updated_at_ms")?,
    })
}

pub(crate) fn load(conn: &Connection, aor: Option<&str>) -> Result<Vec<Registration>, StoreError> {
    let mut out = Vec::new();
    match aor {
        Some(aor) => {
            let mut st =
                conn.prepare_cached("SELECT * FROM registrations WHERE aor = ?1 ORDER BY contact")?;
            for r in st.query_map([aor], from_row)? {
                out.push(r?);
            }
        }
        None => {
            let mut st =
                conn.prepare_cached("SELECT * FROM registrations ORDER BY aor, contact")?;
            for r in st.query_map([], from_row)? {
                out.push(r?);
            }
        }
    }
    Ok(out)
}
