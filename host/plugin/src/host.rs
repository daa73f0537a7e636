//! Host side of the `host` interface: the capabilities a plugin may use,
//! the per-instance store state and the services the switch provides.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::route::strowger::plugin::{host, types as wit_types};
use crate::datasets::{Dataset, Datasets};
use crate::metrics::PluginMetrics;
use crate::types::{Contact, Datetime, Level, PrefixMatch, TrunkState};

/// A boxed future returned by [`HostServices`] methods.
pub type HostFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Services the switch provides to plugins (`location-lookup`,
/// `trunk-status`). Implementations must not block: answer from memory, or
/// await something async. The runtime bounds each call with
/// [`RuntimeConfig::host_call_timeout`](crate::RuntimeConfig) (on timeout
/// the plugin sees "not registered"/"no such trunk").
///
/// ```
/// use strowger_plugin::{HostFuture, HostServices, types::{Contact, TrunkState}};
/// struct MySwitch;
/// impl HostServices for MySwitch {
///     fn location_lookup<'a>(&'a self, _aor: &'a str) -> HostFuture<'a, Vec<Contact>> {
///         Box::pin(async { Vec::new() })
///     }
///     fn trunk_status<'a>(&'a self, _name: &'a str) -> HostFuture<'a, Option<TrunkState>> {
///         Box::pin(async { None })
///     }
/// }
/// ```
pub trait HostServices: Send + Sync + 'static {
    /// Current contacts of an address-of-record (or a bare user name in the
    /// default domain); empty when not registered.
    fn location_lookup<'a>(&'a self, aor: &'a str) -> HostFuture<'a, Vec<Contact>>;
    /// State of trunk `name`; `None` if there is no such trunk.
    fn trunk_status<'a>(&'a self, name: &'a str) -> HostFuture<'a, Option<TrunkState>>;
}

/// [`HostServices`] that knows no users and no trunks (the default).
pub struct NoHostServices;

impl HostServices for NoHostServices {
    fn location_lookup<'a>(&'a self, _aor: &'a str) -> HostFuture<'a, Vec<Contact>> {
        Box::pin(async { Vec::new() })
    }
    fn trunk_status<'a>(&'a self, _name: &'a str) -> HostFuture<'a, Option<TrunkState>> {
        Box::pin(async { None })
    }
}

/// One log line written by a plugin during a decision.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogLine {
    /// Severity.
    pub level: Level,
    /// The message (truncated to 1 KiB).
    pub message: String,
}

/// Maximum log lines kept per decision (more are counted as dropped).
pub(crate) const MAX_LOGS_PER_DECISION: usize = 32;
const MAX_LOG_BYTES: usize = 1024;

/// Everything an instance's host imports need that does not change per call.
pub(crate) struct BindingEnv {
    pub plugin_name: Arc<str>,
    pub plugin_version: Arc<str>,
    pub config: String,
    pub datasets_granted: Vec<String>,
    pub datasets: Arc<Datasets>,
    pub services: Arc<ArcSwap<Arc<dyn HostServices>>>,
    pub utc_offset_minutes: i32,
    pub host_call_timeout: Duration,
    pub metrics: Arc<PluginMetrics>,
    /// Log rate limit: (window start, lines in window).
    pub log_window: Mutex<(Instant, u32)>,
    pub log_per_second: u32,
}

/// CPU-time budget of the running decision (see `crate::deadline`).
///
/// Reading a thread's CPU clock is a system call (~0.5 µs, no vDSO), so a
/// decision's first segment starts lazily, at the first epoch tick that
/// finds guest code running: a decision that ends before the next tick
/// (nearly all do) never reads the clock. The CPU used before that first
/// tick is not counted, so a spinning guest is stopped within its budget
/// plus at most one tick, the same slack as after a thread switch.
#[derive(Default)]
pub(crate) struct CpuBudget {
    /// Budget in CPU nanoseconds.
    pub budget_ns: u64,
    /// CPU used in completed segments (between host awaits).
    pub used_ns: u64,
    /// Thread CPU clock at the start of the current segment.
    pub seg_start_ns: u64,
    /// The thread whose clock `seg_start_ns` is from; `None` while the
    /// current segment has not started counting.
    pub seg_thread: Option<u64>,
    /// Wall-clock hard limit.
    pub wall_deadline: Option<Instant>,
    /// Set when the epoch callback interrupted the guest.
    pub expired: bool,
}

impl CpuBudget {
    /// Starts a decision (or instantiation) with `budget` of CPU time; the
    /// clock starts at the first epoch tick ([`CpuBudget::tick`]).
    pub fn start(&mut self, budget: Duration, wall_limit: Duration) {
        self.budget_ns = budget.as_nanos().min(u64::MAX as u128) as u64;
        self.used_ns = 0;
        self.seg_thread = None;
        self.wall_deadline = Some(Instant::now() + wall_limit);
        self.expired = false;
    }
    /// Before a host await: bank the CPU used so far.
    pub fn pause(&mut self) {
        self.used_ns = self.used();
        self.seg_thread = None;
    }
    /// After a host await: count from now (eagerly, so that a guest cannot
    /// escape counting by calling the host often).
    pub fn resume(&mut self) {
        self.seg_start_ns = crate::deadline::thread_cpu_ns();
        self.seg_thread = Some(crate::deadline::thread_id());
    }
    /// At an epoch tick: start counting if the segment has not started yet.
    pub fn tick(&mut self) {
        if self.seg_thread.is_none() {
            self.resume();
        }
    }
    /// CPU used so far. If the guest was resumed on another thread (after
    /// an async WASI or host call), the current segment restarts there: at
    /// most one epoch tick of CPU goes uncounted.
    pub fn used(&mut self) -> u64 {
        match self.seg_thread {
            None => self.used_ns,
            Some(t) => {
                if t != crate::deadline::thread_id() {
                    self.resume();
                }
                self.used_ns + crate::deadline::thread_cpu_ns().saturating_sub(self.seg_start_ns)
            }
        }
    }
}

/// Per-decision state.
#[derive(Default)]
pub(crate) struct CallState {
    pub call_id: String,
    pub logs: Vec<LogLine>,
    pub logs_dropped: u32,
    pub snapshots: Vec<(String, Option<Arc<Dataset>>)>,
    pub cpu: CpuBudget,
}

/// Memory limiter that remembers a refusal (to classify the trap).
pub(crate) struct Limiter {
    pub memory_cap: usize,
    pub memory_refused: bool,
    pub peak: usize,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.memory_refused = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }
    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The `T` of every plugin `Store<T>`.
pub(crate) struct InstanceState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: Limiter,
    pub env: Arc<BindingEnv>,
    pub call: CallState,
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl InstanceState {
    pub fn new(env: Arc<BindingEnv>, memory_cap: usize) -> Self {
        InstanceState {
            // No preopens, no env, no args, no network, stdio to sinks.
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limiter: Limiter {
                memory_cap,
                memory_refused: false,
                peak: 0,
            },
            env,
            call: CallState::default(),
        }
    }

    fn dataset(&mut self, name: &str) -> Option<Arc<Dataset>> {
        if let Some((_, d)) = self.call.snapshots.iter().find(|(n, _)| n == name) {
            return d.clone();
        }
        let d = if self.env.datasets_granted.iter().any(|g| g == name) {
            self.env.datasets.get(name)
        } else {
            None
        };
        if self.call.snapshots.len() < 16 {
            self.call.snapshots.push((name.to_string(), d.clone()));
        }
        d
    }
}

/// Converts a Unix time in milliseconds to the plugin's [`Datetime`], with
/// the broken-down fields in the zone `utc_offset_minutes` east of UTC.
pub fn datetime_from_unix_ms(unix_ms: i64, utc_offset_minutes: i32) -> Datetime {
    let c = strowger_types::civil(unix_ms, utc_offset_minutes);
    Datetime {
        unix_ms,
        utc_offset_minutes,
        year: c.year,
        month: c.month,
        day: c.day,
        weekday: c.weekday,
        hour: c.hour,
        minute: c.minute,
        second: c.second,
    }
}

/// The current time as a [`Datetime`] in the zone `utc_offset_minutes`.
pub fn datetime_now(utc_offset_minutes: i32) -> Datetime {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    datetime_from_unix_ms(ms, utc_offset_minutes)
}

fn valid_counter_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

impl wit_types::Host for InstanceState {}

impl host::Host for InstanceState {
    async fn log(&mut self, level: Level, message: String) {
        let message = truncate(message, MAX_LOG_BYTES);
        let allowed = {
            let mut w = self.env.log_window.lock();
            let now = Instant::now();
            if now.duration_since(w.0) >= Duration::from_secs(1) {
                *w = (now, 0);
            }
            w.1 += 1;
            w.1 <= self.env.log_per_second
        };
        if allowed {
            let (p, v, c) = (
                &*self.env.plugin_name,
                &*self.env.plugin_version,
                &self.call.call_id,
            );
            match level {
                Level::Trace => tracing::trace!(plugin = p, version = v, call_id = %c, "{message}"),
                Level::Debug => tracing::debug!(plugin = p, version = v, call_id = %c, "{message}"),
                Level::Info => tracing::info!(plugin = p, version = v, call_id = %c, "{message}"),
                Level::Warn => tracing::warn!(plugin = p, version = v, call_id = %c, "{message}"),
                Level::Error => tracing::error!(plugin = p, version = v, call_id = %c, "{message}"),
            }
        } else {
            self.env
                .metrics
                .logs_suppressed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if self.call.logs.len() < MAX_LOGS_PER_DECISION {
            self.call.logs.push(LogLine { level, message });
        } else {
            self.call.logs_dropped += 1;
        }
    }

    async fn counter_add(&mut self, name: String, delta: u64) {
        if valid_counter_name(&name) {
            self.env.metrics.counter_add(&name, delta);
        }
    }

    async fn config(&mut self) -> String {
        self.env.config.clone()
    }

    async fn now(&mut self) -> Datetime {
        datetime_now(self.env.utc_offset_minutes)
    }

    async fn dataset_get(&mut self, dataset: String, key: String) -> Option<String> {
        self.dataset(&dataset)?.get(&key).map(str::to_string)
    }

    async fn dataset_longest_prefix(
        &mut self,
        dataset: String,
        key: String,
    ) -> Option<PrefixMatch> {
        let d = self.dataset(&dataset)?;
        d.longest_prefix(&key).map(|(p, v)| PrefixMatch {
            prefix: p.to_string(),
            value: v.to_string(),
        })
    }

    async fn location_lookup(&mut self, aor: String) -> Vec<Contact> {
        let services = self.env.services.load_full();
        let timeout = self.env.host_call_timeout;
        self.call.cpu.pause();
        let r = tokio::time::timeout(timeout, services.location_lookup(&aor)).await;
        self.call.cpu.resume();
        r.unwrap_or_else(|_| {
            tracing::warn!(plugin = &*self.env.plugin_name, call_id = %self.call.call_id, "location-lookup timed out");
            Vec::new()
        })
    }

    async fn trunk_status(&mut self, name: String) -> Option<TrunkState> {
        let services = self.env.services.load_full();
        let timeout = self.env.host_call_timeout;
        self.call.cpu.pause();
        let r = tokio::time::timeout(timeout, services.trunk_status(&name)).await;
        self.call.cpu.resume();
        r.unwrap_or_else(|_| {
            tracing::warn!(plugin = &*self.env.plugin_name, call_id = %self.call.call_id, "trunk-status timed out");
            None
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_conversion() {
        // 2026-11-23T09:15:00Z is a Monday.
        let ms = 1_795_425_300_000;
        let d = datetime_from_unix_ms(ms, 0);
        assert_eq!(
            (
                d.year, d.month, d.day, d.weekday, d.hour, d.minute, d.second
            ),
            (2026, 11, 23, 1, 9, 15, 0)
        );
        // São Paulo, UTC-3: 06:15 the same day.
        let d = datetime_from_unix_ms(ms, -180);
        assert_eq!((d.day, d.hour, d.utc_offset_minutes), (23, 6, -180));
        // Crossing midnight backwards into Sunday.
        let d = datetime_from_unix_ms(ms, -600);
        assert_eq!((d.month, d.day, d.weekday, d.hour), (11, 22, 7, 23));
        let e = datetime_from_unix_ms(0, 0);
        assert_eq!((e.year, e.month, e.day, e.weekday), (1970, 1, 1, 4));
        let leap = datetime_from_unix_ms(951_782_400_000, 0); // 2000-02-29
        assert_eq!((leap.year, leap.month, leap.day), (2000, 2, 29));
    }

    #[test]
    fn counter_names() {
        assert!(valid_counter_name("calls_ok_2"));
        assert!(!valid_counter_name("Calls"));
        assert!(!valid_counter_name(""));
        assert!(!valid_counter_name(&"a".repeat(65)));
    }
}
