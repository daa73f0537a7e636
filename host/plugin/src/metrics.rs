//! Per-plugin-version metrics: decisions, fallbacks by reason, a latency
//! histogram and the plugin's own counters (`counter-add`).
//!
//! Read them as a [`MetricsSnapshot`] (`Runtime::metrics_snapshot`) or
//! register them in a `prometheus_client` registry
//! (`Runtime::register_metrics`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;

use crate::FallbackReason;

/// Upper bounds (µs) of the latency histogram buckets; the last bucket is +Inf.
pub const LATENCY_BUCKETS_US: [u64; 14] = [
    2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 50_000, 100_000,
];

/// Live counters of one plugin version (shared by all its bindings).
pub struct PluginMetrics {
    /// Plugin name.
    pub plugin: Arc<str>,
    /// Plugin version (short sha256).
    pub version: Arc<str>,
    decisions: AtomicU64,
    fallbacks: [AtomicU64; FallbackReason::ALL.len()],
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    latency_sum_ns: AtomicU64,
    instantiations: AtomicU64,
    init_timeouts: AtomicU64,
    pub(crate) logs_suppressed: AtomicU64,
    counters: Mutex<BTreeMap<String, u64>>,
}

impl PluginMetrics {
    pub(crate) fn new(plugin: Arc<str>, version: Arc<str>) -> Self {
        PluginMetrics {
            plugin,
            version,
            decisions: AtomicU64::new(0),
            fallbacks: Default::default(),
            buckets: Default::default(),
            latency_sum_ns: AtomicU64::new(0),
            instantiations: AtomicU64::new(0),
            init_timeouts: AtomicU64::new(0),
            logs_suppressed: AtomicU64::new(0),
            counters: Mutex::new(BTreeMap::new()),
        }
    }

    pub(crate) fn record(&self, elapsed: Duration, fallback: Option<FallbackReason>) {
        self.decisions.fetch_add(1, Ordering::Relaxed);
        if let Some(r) = fallback {
            self.fallbacks[r as usize].fetch_add(1, Ordering::Relaxed);
        }
        let us = elapsed.as_micros() as u64;
        let i = LATENCY_BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_ns
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }

    pub(crate) fn instantiated(&self) {
        self.instantiations.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn init_timed_out(&self) {
        self.init_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn counter_add(&self, name: &str, delta: u64) {
        let mut c = self.counters.lock();
        if let Some(v) = c.get_mut(name) {
            *v = v.saturating_add(delta);
        } else if c.len() < 256 {
            c.insert(name.to_string(), delta);
        }
    }

    /// A consistent-enough copy of the counters.
    pub fn snapshot(&self) -> PluginMetricsSnapshot {
        PluginMetricsSnapshot {
            plugin: self.plugin.to_string(),
            version: self.version.to_string(),
            decisions: self.decisions.load(Ordering::Relaxed),
            fallbacks: FallbackReason::ALL
                .iter()
                .map(|r| {
                    (
                        r.as_str().to_string(),
                        self.fallbacks[*r as usize].load(Ordering::Relaxed),
                    )
                })
                .filter(|(_, n)| *n > 0)
                .collect(),
            latency_buckets_us: LATENCY_BUCKETS_US
                .iter()
                .map(|b| Some(*b))
                .chain([None])
                .zip(self.buckets.iter().map(|b| b.load(Ordering::Relaxed)))
                .collect(),
            latency_sum_ns: self.latency_sum_ns.load(Ordering::Relaxed),
            instantiations: self.instantiations.load(Ordering::Relaxed),
            init_timeouts: self.init_timeouts.load(Ordering::Relaxed),
            logs_suppressed: self.logs_suppressed.load(Ordering::Relaxed),
            counters: self.counters.lock().clone(),
        }
    }

    /// Fallbacks counted for `reason`.
    pub fn fallbacks(&self, reason: FallbackReason) -> u64 {
        self.fallbacks[reason as usize].load(Ordering::Relaxed)
    }

    /// Decisions made (including fallbacks).
    pub fn decisions(&self) -> u64 {
        self.decisions.load(Ordering::Relaxed)
    }
}

/// Copy of one plugin version's metrics.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginMetricsSnapshot {
    /// Plugin name.
    pub plugin: String,
    /// Plugin version (short sha256).
    pub version: String,
    /// Decisions made, including those answered by a fallback.
    pub decisions: u64,
    /// Fallbacks by reason (only non-zero reasons).
    pub fallbacks: BTreeMap<String, u64>,
    /// Latency histogram: (upper bound in µs, None = +Inf) → count (not cumulative).
    pub latency_buckets_us: Vec<(Option<u64>, u64)>,
    /// Sum of all latencies, ns.
    pub latency_sum_ns: u64,
    /// Instances created (initial, after traps, after recycling).
    pub instantiations: u64,
    /// Instantiations whose `init` exceeded the init deadline (CPU or wall).
    pub init_timeouts: u64,
    /// Log lines not emitted because of the rate limit.
    pub logs_suppressed: u64,
    /// The plugin's own counters (`counter-add`).
    pub counters: BTreeMap<String, u64>,
}

/// Metrics of the whole runtime.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MetricsSnapshot {
    /// Per plugin version.
    pub plugins: Vec<PluginMetricsSnapshot>,
    /// Components compiled with cranelift.
    pub compilations: u64,
    /// Components loaded from the on-disk cache.
    pub cache_hits: u64,
    /// Active generation id.
    pub generation: u64,
    /// Canary generation id and share, if any.
    pub canary: Option<(u64, u8)>,
    /// Decisions in flight on the decision pool (running or queued).
    pub pool_in_flight: u64,
    /// Decisions refused because the decision pool was full.
    pub pool_rejected: u64,
}

/// Adapter exposing all plugin metrics to a `prometheus_client` registry.
pub(crate) struct Collector {
    pub(crate) plugins: Arc<Mutex<Vec<Arc<PluginMetrics>>>>,
    pub(crate) executor: Arc<crate::executor::Executor>,
}

impl std::fmt::Debug for PluginMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PluginMetrics({}@{})", self.plugin, self.version)
    }
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("strowger_plugin::Collector")
    }
}

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let plugins: Vec<_> = self.plugins.lock().clone();
        let snaps: Vec<_> = plugins.iter().map(|p| p.snapshot()).collect();
        {
            let mut e = encoder.encode_descriptor(
                "strowger_plugin_decisions",
                "Plugin decisions, including fallbacks",
                None,
                MetricType::Counter,
            )?;
            for s in &snaps {
                let labels = [("plugin", s.plugin.clone()), ("version", s.version.clone())];
                ConstCounter::new(s.decisions).encode(e.encode_family(&labels)?)?;
            }
        }
        {
            let mut e = encoder.encode_descriptor(
                "strowger_plugin_fallbacks",
                "Decisions answered by the binding's fallback, by reason",
                None,
                MetricType::Counter,
            )?;
            for s in &snaps {
                for (reason, n) in &s.fallbacks {
                    let labels = [
                        ("plugin", s.plugin.clone()),
                        ("version", s.version.clone()),
                        ("reason", reason.clone()),
                    ];
                    ConstCounter::new(*n).encode(e.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut e = encoder.encode_descriptor(
                "strowger_plugin_decision_seconds",
                "Decision latency (instance checkout, call, validation)",
                None,
                MetricType::Histogram,
            )?;
            for s in &snaps {
                let buckets: Vec<(f64, u64)> = s
                    .latency_buckets_us
                    .iter()
                    .map(|(b, n)| (b.map(|b| b as f64 / 1e6).unwrap_or(f64::INFINITY), *n))
                    .collect();
                let labels = [("plugin", s.plugin.clone()), ("version", s.version.clone())];
                e.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                    s.latency_sum_ns as f64 / 1e9,
                    s.decisions,
                    &buckets,
                    None,
                )?;
            }
        }
        {
            let mut e = encoder.encode_descriptor(
                "strowger_plugin_init_timeouts",
                "Instantiations whose init exceeded the init deadline",
                None,
                MetricType::Counter,
            )?;
            for s in &snaps {
                let labels = [("plugin", s.plugin.clone()), ("version", s.version.clone())];
                ConstCounter::new(s.init_timeouts).encode(e.encode_family(&labels)?)?;
            }
        }
        {
            let e = encoder.encode_descriptor(
                "strowger_plugin_pool_rejected",
                "Decisions refused at once because the plugin decision pool was full",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(self.executor.rejected()).encode(e)?;
        }
        {
            let e = encoder.encode_descriptor(
                "strowger_plugin_pool_in_flight",
                "Decisions in flight on the plugin decision pool (running or queued)",
                None,
                MetricType::Gauge,
            )?;
            prometheus_client::metrics::gauge::ConstGauge::new(self.executor.in_flight() as i64)
                .encode(e)?;
        }
        {
            let mut e = encoder.encode_descriptor(
                "strowger_plugin_counter",
                "Counters incremented by plugins (counter-add)",
                None,
                MetricType::Counter,
            )?;
            for s in &snaps {
                for (name, n) in &s.counters {
                    let labels = [
                        ("plugin", s.plugin.clone()),
                        ("version", s.version.clone()),
                        ("name", name.clone()),
                    ];
                    ConstCounter::new(*n).encode(e.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}
