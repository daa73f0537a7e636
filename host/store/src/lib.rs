//! strowger-store: the switch's embedded store (SQLite, WAL mode).
//!
//! * **Writes** go through one dedicated writer thread doing *group commit*:
//!   every write is queued over a channel; the writer takes everything that
//!   is waiting (up to [`MAX_BATCH`]), applies it in one transaction (each
//!   write in its own savepoint, so one failing write does not undo the
//!   others) and only after `COMMIT` returns acknowledges each write through
//!   its [`Ack`]. An acknowledged write survives a process crash
//!   (`kill -9`): WAL with `synchronous=NORMAL` (see docs/decisions.md; for
//!   power-loss durability open with [`Durability::Full`]).
//! * Write methods enqueue immediately and return an [`Ack`]: `.await` it
//!   (async callers never block), [`Ack::wait`] it (sync callers), or drop
//!   it (fire and forget; the write still happens).
//! * **Reads** use a small pool of read-only connections (WAL readers never
//!   wait for the writer) and see every acknowledged write. Async read
//!   methods run on tokio's blocking pool; `*_blocking` variants run inline.
//! * The schema is migrated on open (`schema_version` table); a database from
//!   a newer build is refused.
//!
//! Times are Unix milliseconds (UTC) throughout.

mod cdr;
mod control;
mod registration;
mod schema;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::sync::oneshot;

pub use cdr::{CSV_HEADER, Cdr, CdrAttempt, CdrFilter, DEFAULT_LIMIT, format_utc_ms, to_csv};
pub use control::AuditEntry;
pub use registration::Registration;
pub use rusqlite;
pub use schema::SCHEMA_VERSION;

/// Most writes committed in one transaction.
pub const MAX_BATCH: usize = 1024;

/// A store error. Cloneable so one failed commit can fail every write of
/// its batch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("store: sqlite: {0}")]
    Sqlite(String),
    /// The schema could not be created or migrated.
    #[error("store: schema: {0}")]
    Schema(String),
    /// The database file or its directory could not be created.
    #[error("store: {0}")]
    Io(String),
    /// The store was closed (or its writer thread died) before the write
    /// was committed; the write may not have happened.
    #[error("store: closed")]
    Closed,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e.to_string())
    }
}

/// Result type of this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How hard a commit is pushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// WAL + `synchronous=NORMAL`: survives process crashes (kill -9); a
    /// power loss may lose the last commits. 36 k commits/s measured.
    #[default]
    Normal,
    /// WAL + `synchronous=FULL`: fsync on every commit, survives power loss.
    Full,
}

type WriteFn = Box<dyn FnOnce(&Connection) -> Result<u64> + Send>;

struct Job {
    run: WriteFn,
    reply: oneshot::Sender<Result<u64>>,
}

/// Acknowledgement of one queued write: resolves after the transaction that
/// contains it has committed (or with the error that prevented it).
#[must_use = "an Ack does nothing unless awaited or waited on; drop it explicitly to fire and forget"]
pub struct Ack<T = ()> {
    rx: oneshot::Receiver<Result<u64>>,
    map: fn(u64) -> T,
}

impl<T> Ack<T> {
    /// Block the current thread until the write is committed. Do not call
    /// from async code (use `.await`).
    pub fn wait(self) -> Result<T> {
        match self.rx.blocking_recv() {
            Ok(r) => r.map(self.map),
            Err(_) => Err(StoreError::Closed),
        }
    }
}

impl<T> Future for Ack<T> {
    type Output = Result<T>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let map = self.map;
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Ready(Ok(r)) => Poll::Ready(r.map(map)),
            Poll::Ready(Err(_)) => Poll::Ready(Err(StoreError::Closed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

fn unit(_: u64) {}
fn count(n: u64) -> u64 {
    n
}

/// Writer counters (for metrics and benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Transactions committed by the writer.
    pub commits: u64,
    /// Writes committed (sum over all commits).
    pub writes: u64,
    /// Writes that failed (their own error; the rest of the batch committed).
    pub failed_writes: u64,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    writes: AtomicU64,
    failed: AtomicU64,
}

struct Inner {
    path: PathBuf,
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    counters: Arc<Counters>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Close the queue; the writer commits what is queued and exits.
        self.tx.lock().map(|mut t| t.take()).ok();
        if let Some(h) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = h.join();
        }
    }
}

/// Handle to the store; cheap to clone, shareable across threads and tasks.
/// The last clone dropped (or [`Store::close`]) commits everything queued
/// and stops the writer thread.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

fn configure(conn: &Connection, durability: Durability) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Sqlite(format!(
            "could not switch to WAL journal mode (got {mode})"
        )));
    }
    conn.execute_batch(match durability {
        Durability::Normal => "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        Durability::Full => "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
    })?;
    Ok(())
}

impl Store {
    /// Open (creating if needed, with parent directories) the database at
    /// `path`, migrate it and start the writer thread.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Self::open_with(path, Durability::Normal)
    }

    /// [`Store::open`] with an explicit durability.
    pub fn open_with(path: impl AsRef<Path>, durability: Durability) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut conn = Connection::open(&path)
            .map_err(|e| StoreError::Io(format!("cannot open {}: {e}", path.display())))?;
        configure(&conn, durability)?;
        schema::migrate(&mut conn)?;

        let (tx, rx) = mpsc::channel::<Job>();
        let counters = Arc::new(Counters::default());
        let c2 = counters.clone();
        let writer = std::thread::Builder::new()
            .name("strowger-store".into())
            .spawn(move || writer_loop(conn, rx, &c2))
            .map_err(|e| StoreError::Io(format!("cannot start the store writer: {e}")))?;
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                tx: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(writer)),
                readers: Mutex::new(Vec::new()),
                counters,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Writer counters so far.
    pub fn stats(&self) -> StoreStats {
        let c = &self.inner.counters;
        StoreStats {
            commits: c.commits.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            failed_writes: c.failed.load(Ordering::Relaxed),
        }
    }

    fn submit<T>(&self, map: fn(u64) -> T, run: WriteFn) -> Ack<T> {
        let (reply, rx) = oneshot::channel();
        let job = Job { run, reply };
        let sent = match self.inner.tx.lock() {
            Ok(guard) => match guard.as_ref() {
                Some(tx) => tx.send(job).is_ok(),
                None => false,
            },
            Err(_) => false,
        };
        // When not sent, `job` (and its reply sender) is dropped: the Ack
        // resolves to `Closed`.
        let _ = sent;
        Ack { rx, map }
    }

    /// Run arbitrary SQL in the writer (group-committed like every write);
    /// the closure's number is passed through the [`Ack`]. For the control
    /// plane's tables; keep it short, it runs inside the shared transaction.
    pub fn write<F>(&self, f: F) -> Ack<u64>
    where
        F: FnOnce(&Connection) -> Result<u64> + Send + 'static,
    {
        self.submit(count, Box::new(f))
    }

    /// Resolves when every write queued before it has committed.
    pub fn flush(&self) -> Ack {
        self.submit(unit, Box::new(|_| Ok(0)))
    }

    /// Commit everything queued, stop the writer and wait for it. Later
    /// writes on any clone resolve to [`StoreError::Closed`].
    pub fn close(&self) {
        self.inner.tx.lock().map(|mut t| t.take()).ok();
        let handle = self.inner.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    // ---- registrations -------------------------------------------------

    /// Insert or replace the binding `(reg.aor, reg.contact)`.
    pub fn put_registration(&self, reg: Registration) -> Ack {
        self.submit(
            unit,
            Box::new(move |c| registration::put(c, &reg).map(|_| 1)),
        )
    }

    /// Remove one binding; the Ack yields how many rows went (0 or 1).
    pub fn remove_registration(&self, aor: &str, contact: &str) -> Ack<u64> {
        let (aor, contact) = (aor.to_string(), contact.to_string());
        self.submit(
            count,
            Box::new(move |c| registration::remove(c, &aor, &contact).map(|n| n as u64)),
        )
    }

    /// Remove every binding of `aor` (`Contact: *`); yields the count.
    pub fn remove_aor(&self, aor: &str) -> Ack<u64> {
        let aor = aor.to_string();
        self.submit(
            count,
            Box::new(move |c| registration::remove_aor(c, &aor).map(|n| n as u64)),
        )
    }

    /// Remove every binding expired at `now_ms`; yields the count.
    pub fn purge_expired_registrations(&self, now_ms: i64) -> Ack<u64> {
        self.submit(
            count,
            Box::new(move |c| registration::purge_expired(c, now_ms).map(|n| n as u64)),
        )
    }

    /// Every stored binding (expired ones included; filter with
    /// [`Registration::is_expired`]), ordered by AOR and contact.
    pub fn load_registrations_blocking(&self) -> Result<Vec<Registration>> {
        self.read_blocking(|c| registration::load(c, None))
    }

    /// Async [`Store::load_registrations_blocking`].
    pub async fn load_registrations(&self) -> Result<Vec<Registration>> {
        self.read(|c| registration::load(c, None)).await
    }

    /// The bindings of one AOR.
    pub fn registrations_of_blocking(&self, aor: &str) -> Result<Vec<Registration>> {
        self.read_blocking(|c| registration::load(c, Some(aor)))
    }

    // ---- CDRs ----------------------------------------------------------

    /// Store one CDR with its attempts. A duplicate `call_id` fails this
    /// write only.
    pub fn insert_cdr(&self, cdr: Cdr) -> Ack {
        self.submit(unit, Box::new(move |c| cdr::insert(c, &cdr).map(|_| 1)))
    }

    /// Store several CDRs atomically (all or none).
    pub fn insert_cdrs(&self, cdrs: Vec<Cdr>) -> Ack {
        self.submit(
            unit,
            Box::new(move |c| {
                for r in &cdrs {
                    cdr::insert(c, r)?;
                }
                Ok(cdrs.len() as u64)
            }),
        )
    }

    /// CDRs matching `filter`, oldest first, with their attempts.
    pub fn query_cdrs_blocking(&self, filter: &CdrFilter) -> Result<Vec<Cdr>> {
        self.read_blocking(|c| cdr::query(c, filter))
    }

    /// Async [`Store::query_cdrs_blocking`].
    pub async fn query_cdrs(&self, filter: CdrFilter) -> Result<Vec<Cdr>> {
        self.read(move |c| cdr::query(c, &filter)).await
    }

    /// CDRs matching `filter` as CSV (see [`CSV_HEADER`]).
    pub fn cdrs_csv_blocking(&self, filter: &CdrFilter) -> Result<String> {
        Ok(to_csv(&self.query_cdrs_blocking(filter)?))
    }

    /// Async [`Store::cdrs_csv_blocking`].
    pub async fn cdrs_csv(&self, filter: CdrFilter) -> Result<String> {
        Ok(to_csv(&self.query_cdrs(filter).await?))
    }

    // ---- audit log -----------------------------------------------------

    /// Append to the audit log; yields the entry's id.
    pub fn append_audit(&self, entry: AuditEntry) -> Ack<u64> {
        self.submit(count, Box::new(move |c| control::append_audit(c, &entry)))
    }

    /// Audit entries with `from_ms <= at_ms < to_ms`, oldest first.
    pub fn audit_log_blocking(
        &self,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        self.read_blocking(|c| control::audit_log(c, from_ms, to_ms, limit))
    }

    // ---- reads ---------------------------------------------------------

    /// Run `f` on a read-only connection from the pool (blocking).
    pub fn read_blocking<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.inner.readers.lock().ok().and_then(|mut p| p.pop());
        let conn = match conn {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.inner.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(std::time::Duration::from_secs(10))?;
                c
            }
        };
        let out = f(&conn);
        if let Ok(mut pool) = self.inner.readers.lock()
            && pool.len() < 8
        {
            pool.push(conn);
        }
        out
    }

    /// Run `f` on a read-only connection on tokio's blocking pool.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let s = self.clone();
        tokio::task::spawn_blocking(move || s.read_blocking(f))
            .await
            .map_err(|e| StoreError::Io(format!("read task failed: {e}")))?
    }
}

fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<Job>, counters: &Counters) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut results: Vec<Result<u64>> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let outcome = commit_batch(&mut conn, &mut batch, &mut results);
        match outcome {
            Ok(()) => {
                counters.commits.fetch_add(1, Ordering::Relaxed);
                for (job, r) in batch.drain(..).zip(results.drain(..)) {
                    match &r {
                        Ok(_) => counters.writes.fetch_add(1, Ordering::Relaxed),
                        Err(_) => counters.failed.fetch_add(1, Ordering::Relaxed),
                    };
                    let _ = job.reply.send(r);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, writes = batch.len(), "store commit failed");
                counters
                    .failed
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                results.clear();
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
    // Queue closed: checkpoint so the WAL does not linger.
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
}

fn commit_batch(
    conn: &mut Connection,
    batch: &mut [Job],
    results: &mut Vec<Result<u64>>,
) -> Result<()> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for job in batch.iter_mut() {
        let run = std::mem::replace(&mut job.run, Box::new(|_| Ok(0)));
        let sp = tx.savepoint()?;
        let r = run(&sp);
        if r.is_ok() {
            sp.commit()?;
        } else {
            // Dropping a savepoint rolls it back and releases it: this write
            // leaves no trace, the rest of the batch goes on.
            drop(sp);
        }
        results.push(r);
    }
    tx.commit()?;
    Ok(())
}
