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
//! * **Failed writes are never lost silently.** A write that fails is
//!   logged with its record (`cdr <call id>`, `registration <aor> <contact>`)
//!   and counted (`strowger_store_write_errors_total`). The switch's writes
//!   (registrations, CDRs) are *retried* when the failure is temporary (the
//!   database busy or locked by another process, an I/O error, a full disk):
//!   they wait in a bounded in-memory queue ([`StoreOptions::retry_queue`])
//!   and are tried again with exponential backoff (50 ms doubling to
//!   [`StoreOptions::retry_backoff_max`]), before any newer write, until
//!   they commit; their [`Ack`] resolves then. A write that cannot succeed
//!   (a constraint violation, a panic while writing), one that does not fit
//!   in the full queue, and one still waiting when the store closes is
//!   dropped: logged at error with its record and counted
//!   (`strowger_store_writes_dropped_total`). One failing write never
//!   undoes the others of its batch (each runs in its own savepoint; a
//!   panic in one is caught).
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

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    /// SQLite reported a temporary failure (database busy or locked by
    /// another connection, I/O error, disk full): worth retrying.
    #[error("store: sqlite (temporary): {0}")]
    Temporary(String),
    /// The write panicked (a bug); the rest of its batch was committed.
    #[error("store: write panicked: {0}")]
    Panicked(String),
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
        use rusqlite::ErrorCode as C;
        match e.sqlite_error_code() {
            Some(
                C::DatabaseBusy
                | C::DatabaseLocked
                | C::SystemIoFailure
                | C::DiskFull
                | C::CannotOpen
                | C::OutOfMemory,
            ) => StoreError::Temporary(e.to_string()),
            _ => StoreError::Sqlite(e.to_string()),
        }
    }
}

impl StoreError {
    /// True for failures a later attempt may not see (see
    /// [`StoreError::Temporary`]).
    pub fn is_temporary(&self) -> bool {
        matches!(self, StoreError::Temporary(_))
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

/// Options of [`Store::open_with_options`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Commit durability.
    pub durability: Durability,
    /// How long a write waits for a lock held by another connection before
    /// it fails as [`StoreError::Temporary`] (and is retried). Default 10 s.
    pub busy_timeout: Duration,
    /// Most failed writes held for retry; beyond it each further failed
    /// write is dropped (logged and counted). Default 10,000.
    pub retry_queue: usize,
    /// Longest wait between two retries. Default 5 s.
    pub retry_backoff_max: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            durability: Durability::Normal,
            busy_timeout: Duration::from_secs(10),
            retry_queue: 10_000,
            retry_backoff_max: Duration::from_secs(5),
        }
    }
}

/// First wait before retrying failed writes (doubles on each failure).
const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(50);

type WriteFn = Box<dyn FnOnce(&Connection) -> Result<u64> + Send>;
type RetryFn = Arc<dyn Fn(&Connection) -> Result<u64> + Send + Sync>;

enum Run {
    /// Runs once; its error goes to the caller.
    Once(Option<WriteFn>),
    /// Can run again: retried on temporary failures. `what` names the
    /// record in logs (`cdr <call id>`).
    Retry { f: RetryFn, what: String },
}

struct Job {
    run: Run,
    reply: oneshot::Sender<Result<u64>>,
}

impl Job {
    fn what(&self) -> &str {
        match &self.run {
            Run::Once(_) => "write",
            Run::Retry { what, .. } => what,
        }
    }

    /// Runs the write on `conn`; a panic becomes [`StoreError::Panicked`].
    fn run(&mut self, conn: &Connection) -> Result<u64> {
        let out = match &mut self.run {
            Run::Once(f) => match f.take() {
                Some(f) => catch_unwind(AssertUnwindSafe(|| f(conn))),
                None => Ok(Err(StoreError::Closed)),
            },
            Run::Retry { f, .. } => catch_unwind(AssertUnwindSafe(|| f(conn))),
        };
        out.unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(StoreError::Panicked(msg))
        })
    }
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
    /// Write attempts that failed (each retry that fails counts again).
    pub failed_writes: u64,
    /// Failed writes queued for another attempt.
    pub retried_writes: u64,
    /// Writes given up (logged each): permanent error, retry queue full, or
    /// still failing when the store closed.
    pub dropped_writes: u64,
    /// Writes waiting for a retry now.
    pub retry_queue: u64,
    /// Writes queued for the writer and not yet taken into a transaction.
    pub write_queue: u64,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    writes: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    dropped: AtomicU64,
    queued: AtomicU64,
    /// Writes sent to the writer and not yet taken by it.
    pending: AtomicU64,
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

fn configure(conn: &Connection, durability: Durability, busy: Duration) -> Result<()> {
    conn.busy_timeout(busy)?;
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
        Self::open_with_options(
            path,
            StoreOptions {
                durability,
                ..StoreOptions::default()
            },
        )
    }

    /// [`Store::open`] with explicit options.
    pub fn open_with_options(path: impl AsRef<Path>, opts: StoreOptions) -> Result<Store> {
        let durability = opts.durability;
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut conn = Connection::open(&path)
            .map_err(|e| StoreError::Io(format!("cannot open {}: {e}", path.display())))?;
        configure(&conn, durability, opts.busy_timeout)?;
        schema::migrate(&mut conn)?;

        let (tx, rx) = mpsc::channel::<Job>();
        let counters = Arc::new(Counters::default());
        let c2 = counters.clone();
        let writer = std::thread::Builder::new()
            .name("strowger-store".into())
            .spawn(move || writer_loop(conn, rx, &c2, opts))
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
            retried_writes: c.retried.load(Ordering::Relaxed),
            dropped_writes: c.dropped.load(Ordering::Relaxed),
            retry_queue: c.queued.load(Ordering::Relaxed),
            write_queue: c.pending.load(Ordering::Relaxed),
        }
    }

    /// Register the store's counters (commits, writes, write errors,
    /// retries, drops, retry queue) with a Prometheus registry.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register_collector(Box::new(Collector {
            counters: self.inner.counters.clone(),
        }));
    }

    fn submit<T>(&self, map: fn(u64) -> T, run: WriteFn) -> Ack<T> {
        self.enqueue(map, Run::Once(Some(run)))
    }

    /// A write retried on temporary failures; `what` names its record in
    /// logs.
    fn submit_retry<T>(
        &self,
        map: fn(u64) -> T,
        what: String,
        f: impl Fn(&Connection) -> Result<u64> + Send + Sync + 'static,
    ) -> Ack<T> {
        self.enqueue(
            map,
            Run::Retry {
                f: Arc::new(f),
                what,
            },
        )
    }

    fn enqueue<T>(&self, map: fn(u64) -> T, run: Run) -> Ack<T> {
        let (reply, rx) = oneshot::channel();
        let job = Job { run, reply };
        let what = job.what().to_string();
        let pending = &self.inner.counters.pending;
        pending.fetch_add(1, Ordering::Relaxed);
        let sent = match self.inner.tx.lock() {
            Ok(guard) => match guard.as_ref() {
                Some(tx) => tx.send(job).is_ok(),
                None => false,
            },
            Err(_) => false,
        };
        if !sent {
            pending.fetch_sub(1, Ordering::Relaxed);
        }
        // When not sent, `job` (and its reply sender) is dropped: the Ack
        // resolves to `Closed`. A record is never dropped unseen.
        if !sent {
            self.inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!(record = %what, "store closed: write dropped");
        }
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

    /// Resolves when every write queued before it has been tried (and
    /// committed, unless it failed: a write waiting for a retry may still
    /// be waiting; [`Store::close`] gives those a last attempt).
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
        let what = format!("registration {} {}", reg.aor, reg.contact);
        self.submit_retry(unit, what, move |c| registration::put(c, &reg).map(|_| 1))
    }

    /// Remove one binding; the Ack yields how many rows went (0 or 1).
    pub fn remove_registration(&self, aor: &str, contact: &str) -> Ack<u64> {
        let (aor, contact) = (aor.to_string(), contact.to_string());
        let what = format!("registration removal {aor} {contact}");
        self.submit_retry(count, what, move |c| {
            registration::remove(c, &aor, &contact).map(|n| n as u64)
        })
    }

    /// Remove every binding of `aor` (`Contact: *`); yields the count.
    pub fn remove_aor(&self, aor: &str) -> Ack<u64> {
        let aor = aor.to_string();
        let what = format!("registration removal {aor} *");
        self.submit_retry(count, what, move |c| {
            registration::remove_aor(c, &aor).map(|n| n as u64)
        })
    }

    /// Remove every binding expired at `now_ms`; yields the count.
    pub fn purge_expired_registrations(&self, now_ms: i64) -> Ack<u64> {
        let what = format!("registration purge <= {now_ms}");
        self.submit_retry(count, what, move |c| {
            registration::purge_expired(c, now_ms).map(|n| n as u64)
        })
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

    /// Store one CDR with its attempts (retried on temporary failures). A
    /// duplicate `call_id` fails this write only (logged, counted, dropped).
    pub fn insert_cdr(&self, cdr: Cdr) -> Ack {
        let what = format!("cdr {}", cdr.call_id);
        self.submit_retry(unit, what, move |c| cdr::insert(c, &cdr).map(|_| 1))
    }

    /// Store several CDRs atomically (all or none).
    pub fn insert_cdrs(&self, cdrs: Vec<Cdr>) -> Ack {
        let what = match (cdrs.first(), cdrs.len()) {
            (Some(c), n) => format!("cdrs {}.. ({n})", c.call_id),
            (None, _) => "cdrs (none)".to_string(),
        };
        self.submit_retry(unit, what, move |c| {
            for r in &cdrs {
                cdr::insert(c, r)?;
            }
            Ok(cdrs.len() as u64)
        })
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

fn reply_failed(counters: &Counters, job: Job, e: StoreError) {
    if let Run::Retry { what, .. } = &job.run {
        counters.dropped.fetch_add(1, Ordering::Relaxed);
        tracing::error!(record = %what, error = %e, "store write failed: record dropped");
    } else {
        tracing::warn!(error = %e, "store write failed");
    }
    let _ = job.reply.send(Err(e));
}

/// The writer's queue of failed writes waiting for another attempt.
struct Retries {
    jobs: VecDeque<Job>,
    cap: usize,
    backoff: Duration,
    max_backoff: Duration,
    due: Option<Instant>,
}

impl Retries {
    /// Queue `job` (failed with temporary `e`) or drop it if the queue is
    /// full.
    fn push(&mut self, counters: &Counters, job: Job, e: StoreError) {
        if self.jobs.len() >= self.cap {
            tracing::error!(
                record = %job.what(),
                limit = self.cap,
                "store retry queue full ([store] retry_queue): write dropped"
            );
            reply_failed(counters, job, e);
            return;
        }
        tracing::warn!(record = %job.what(), error = %e, "store write failed: will retry");
        counters.retried.fetch_add(1, Ordering::Relaxed);
        self.jobs.push_back(job);
    }

    /// After a batch: schedule the next attempt (backoff doubles while
    /// writes keep failing) or reset once the queue is empty.
    fn schedule(&mut self, counters: &Counters, failed: bool) {
        counters
            .queued
            .store(self.jobs.len() as u64, Ordering::Relaxed);
        if self.jobs.is_empty() {
            self.backoff = RETRY_BACKOFF_MIN;
            self.due = None;
        } else if failed || self.due.is_none() {
            self.due = Some(Instant::now() + self.backoff);
            self.backoff = (self.backoff * 2).min(self.max_backoff);
        }
    }
}

fn writer_loop(
    mut conn: Connection,
    rx: mpsc::Receiver<Job>,
    counters: &Counters,
    opts: StoreOptions,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut results: Vec<Result<u64>> = Vec::with_capacity(MAX_BATCH);
    let mut retries = Retries {
        jobs: VecDeque::new(),
        cap: opts.retry_queue,
        backoff: RETRY_BACKOFF_MIN,
        max_backoff: opts.retry_backoff_max.max(RETRY_BACKOFF_MIN),
        due: None,
    };
    let mut open = true;
    while open || !retries.jobs.is_empty() {
        // Wait for a new write, or for the retry queue's turn.
        let first = match retries.due {
            None => match rx.recv() {
                Ok(j) => Some(j),
                Err(_) => break,
            },
            Some(_) if !open => None, // closing: one last attempt now
            Some(due) => match rx.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(j) => Some(j),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    open = false;
                    None
                }
            },
        };
        let closing = !open;
        // Retries go first: a write never overtakes an older one that failed.
        let retried = retries.jobs.len();
        batch.extend(retries.jobs.drain(..));
        batch.extend(first);
        while open && batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        counters
            .pending
            .fetch_sub((batch.len() - retried) as u64, Ordering::Relaxed);
        let outcome = commit_batch(&mut conn, &mut batch, &mut results);
        let mut failed = false;
        match outcome {
            Ok(()) => {
                counters.commits.fetch_add(1, Ordering::Relaxed);
                for (job, r) in batch.drain(..).zip(results.drain(..)) {
                    match r {
                        Ok(n) => {
                            counters.writes.fetch_add(1, Ordering::Relaxed);
                            let _ = job.reply.send(Ok(n));
                        }
                        Err(e) => {
                            counters.failed.fetch_add(1, Ordering::Relaxed);
                            if e.is_temporary() && matches!(job.run, Run::Retry { .. }) && !closing
                            {
                                failed = true;
                                retries.push(counters, job, e);
                            } else {
                                reply_failed(counters, job, e);
                            }
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, writes = batch.len(), "store commit failed");
                failed = true;
                results.clear();
                for job in batch.drain(..) {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    if matches!(job.run, Run::Retry { .. }) && !closing {
                        retries.push(counters, job, e.clone());
                    } else {
                        reply_failed(counters, job, e.clone());
                    }
                }
            }
        }
        retries.schedule(counters, failed);
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
        let sp = tx.savepoint()?;
        let r = job.run(&sp);
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

struct Collector {
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("strowger_store::Collector")
    }
}

impl prometheus_client::collector::Collector for Collector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> std::result::Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::MetricType;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        let c = &self.counters;
        let counters = [
            (
                "strowger_store_commits",
                "Store transactions committed",
                &c.commits,
            ),
            ("strowger_store_writes", "Store writes committed", &c.writes),
            (
                "strowger_store_write_errors",
                "Store write attempts that failed (each logged with its record)",
                &c.failed,
            ),
            (
                "strowger_store_write_retries",
                "Failed store writes queued for another attempt",
                &c.retried,
            ),
            (
                "strowger_store_writes_dropped",
                "Store writes given up (permanent error, retry queue full, or closing); each logged",
                &c.dropped,
            ),
        ];
        for (name, help, v) in counters {
            let e = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(v.load(Ordering::Relaxed)).encode(e)?;
        }
        let e = encoder.encode_descriptor(
            "strowger_store_retry_queue",
            "Failed store writes waiting for a retry",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(c.queued.load(Ordering::Relaxed) as i64).encode(e)?;
        Ok(())
    }
}
