//! `/metrics`: the Prometheus text format 0.0.4 (what `promtool check
//! metrics` and Prometheus' text parser read), or OpenMetrics 1.0.0 when
//! the scraper's `Accept` header asks for `application/openmetrics-text`.
//!
//! Every producer writes 0.0.4 text with counters named `<name>_total` in
//! `# HELP`/`# TYPE` and samples; [`to_openmetrics`] derives the
//! OpenMetrics page from it (family names without `_total`, `# EOF`).

use std::fmt::{Display, Write as _};

use strowger_plugin::MetricsSnapshot;
use strowger_store::StoreStats;

/// Content type of the Prometheus text format.
pub(crate) const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of OpenMetrics text.
pub(crate) const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether the `Accept` header prefers OpenMetrics (1.0.0 or no version)
/// over the text format (a q-value of 0 refuses a type).
pub(crate) fn wants_openmetrics(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let mut om: Option<f32> = None;
    let mut text: Option<f32> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let ty = parts.next().unwrap_or("").to_ascii_lowercase();
        let mut q = 1.0f32;
        let mut version = None;
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "q" => q = v.trim().parse().unwrap_or(0.0),
                    "version" => version = Some(v.trim().to_string()),
                    _ => {}
                }
            }
        }
        match ty.as_str() {
            "application/openmetrics-text" if version.as_deref().is_none_or(|v| v == "1.0.0") => {
                om = Some(om.unwrap_or(0.0).max(q))
            }
            "text/plain" | "*/*" | "text/*" => text = Some(text.unwrap_or(0.0).max(q)),
            _ => {}
        }
    }
    match (om, text) {
        (Some(o), Some(t)) => o > 0.0 && o >= t,
        (Some(o), None) => o > 0.0,
        _ => false,
    }
}

/// Converts 0.0.4 text to OpenMetrics: a counter family `x_total` is
/// announced as `x` (its samples keep `x_total`), and the page ends with
/// `# EOF`.
pub(crate) fn to_openmetrics(text: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ")
            && let Some((name, "counter")) = rest.split_once(' ')
        {
            counters.insert(name.to_string());
        }
    }
    let mut out = String::with_capacity(text.len() + 8);
    for l in text.lines() {
        let meta = l
            .strip_prefix("# TYPE ")
            .map(|r| ("# TYPE ", r))
            .or_else(|| l.strip_prefix("# HELP ").map(|r| ("# HELP ", r)));
        match meta {
            Some((kw, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let name = if counters.contains(name) {
                    name.strip_suffix("_total").unwrap_or(name)
                } else {
                    name
                };
                let _ = writeln!(out, "{kw}{name} {tail}");
            }
            None if l.starts_with('#') || l.trim().is_empty() => {}
            None => {
                out.push_str(l);
                out.push('\n');
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

/// Prometheus text format 0.0.4 writer.
#[derive(Default)]
pub(crate) struct Exposition {
    out: String,
}

impl Exposition {
    pub(crate) fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(
            self.out,
            "# HELP {name} {}",
            help.replace('\\', "\\\\").replace('\n', "\\n")
        );
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        self
    }

    pub(crate) fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        v: impl Display,
    ) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let val = val
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.out, "{k}=\"{val}\"");
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {v}");
        self
    }

    pub(crate) fn single(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        v: impl Display,
    ) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], v)
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }
}

/// A float as Prometheus writes it (`+Inf` for infinity).
fn float(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// The plugin runtime's metrics.
pub(crate) fn plugins(e: &mut Exposition, m: &MetricsSnapshot) {
    let lv = |p: &strowger_plugin::PluginMetricsSnapshot| (p.plugin.clone(), p.version.clone());
    let name = "strowger_plugin_decisions_total";
    e.family(name, "counter", "Plugin decisions, including fallbacks.");
    for p in &m.plugins {
        let (pl, v) = lv(p);
        e.sample(name, &[("plugin", &pl), ("version", &v)], p.decisions);
    }
    let name = "strowger_plugin_fallbacks_total";
    e.family(
        name,
        "counter",
        "Decisions answered by the binding's fallback, by reason.",
    );
    for p in &m.plugins {
        let (pl, v) = lv(p);
        for (reason, n) in &p.fallbacks {
            e.sample(
                name,
                &[("plugin", &pl), ("version", &v), ("reason", reason)],
                n,
            );
        }
    }
    let name = "strowger_plugin_decision_seconds";
    e.family(
        name,
        "histogram",
        "Plugin decision latency (instance checkout, call, validation).",
    );
    for p in &m.plugins {
        let (pl, v) = lv(p);
        let mut cum = 0u64;
        for (bound, n) in &p.latency_buckets_us {
            cum += n;
            let le = match bound {
                Some(us) => float(*us as f64 / 1e6),
                None => float(f64::INFINITY),
            };
            e.sample(
                "strowger_plugin_decision_seconds_bucket",
                &[("plugin", &pl), ("version", &v), ("le", &le)],
                cum,
            );
        }
        e.sample(
            "strowger_plugin_decision_seconds_sum",
            &[("plugin", &pl), ("version", &v)],
            p.latency_sum_ns as f64 / 1e9,
        );
        e.sample(
            "strowger_plugin_decision_seconds_count",
            &[("plugin", &pl), ("version", &v)],
            cum,
        );
    }
    let name = "strowger_plugin_instantiations_total";
    e.family(
        name,
        "counter",
        "Plugin instances created (initial, after traps, after recycling).",
    );
    for p in &m.plugins {
        let (pl, v) = lv(p);
        e.sample(name, &[("plugin", &pl), ("version", &v)], p.instantiations);
    }
    let name = "strowger_plugin_init_timeouts_total";
    e.family(
        name,
        "counter",
        "Instantiations whose init exceeded the init deadline.",
    );
    for p in &m.plugins {
        let (pl, v) = lv(p);
        e.sample(name, &[("plugin", &pl), ("version", &v)], p.init_timeouts);
    }
    let name = "strowger_plugin_logs_suppressed_total";
    e.family(
        name,
        "counter",
        "Plugin log lines not written because of the rate limit.",
    );
    for p in &m.plugins {
        let (pl, v) = lv(p);
        e.sample(name, &[("plugin", &pl), ("version", &v)], p.logs_suppressed);
    }
    let name = "strowger_plugin_events_total";
    e.family(
        name,
        "counter",
        "Counters incremented by plugins (counter-add).",
    );
    for p in &m.plugins {
        let (pl, v) = lv(p);
        for (c, n) in &p.counters {
            e.sample(name, &[("plugin", &pl), ("version", &v), ("name", c)], n);
        }
    }
    e.single(
        "strowger_plugin_pool_rejected_total",
        "counter",
        "Decisions refused at once because the plugin decision pool was full.",
        m.pool_rejected,
    );
    e.single(
        "strowger_plugin_pool_in_flight",
        "gauge",
        "Decisions in flight on the plugin decision pool (running or queued).",
        m.pool_in_flight,
    );
    e.single(
        "strowger_plugin_compilations_total",
        "counter",
        "Plugin components compiled.",
        m.compilations,
    );
    e.single(
        "strowger_plugin_cache_hits_total",
        "counter",
        "Plugin components loaded from the compile cache.",
        m.cache_hits,
    );
    e.single(
        "strowger_policy_generation",
        "gauge",
        "Active policy generation id.",
        m.generation,
    );
}

/// The store's writer counters.
pub(crate) fn store(e: &mut Exposition, s: &StoreStats) {
    e.single(
        "strowger_store_commits_total",
        "counter",
        "Store transactions committed.",
        s.commits,
    );
    e.single(
        "strowger_store_writes_total",
        "counter",
        "Store writes committed.",
        s.writes,
    );
    e.single(
        "strowger_store_write_errors_total",
        "counter",
        "Store write attempts that failed (each logged with its record).",
        s.failed_writes,
    );
    e.single(
        "strowger_store_write_retries_total",
        "counter",
        "Failed store writes queued for another attempt.",
        s.retried_writes,
    );
    e.single(
        "strowger_store_writes_dropped_total",
        "counter",
        "Store writes given up (permanent error, retry queue full, or closing); each logged.",
        s.dropped_writes,
    );
    e.single(
        "strowger_store_retry_queue",
        "gauge",
        "Failed store writes waiting for a retry.",
        s.retry_queue,
    );
    e.single(
        "strowger_store_write_queue",
        "gauge",
        "Store writes queued for the writer and not yet in a transaction.",
        s.write_queue,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert!(!wants_openmetrics(None));
        assert!(!wants_openmetrics(Some("text/plain")));
        assert!(!wants_openmetrics(Some("*/*")));
        // what Prometheus 2.x sends
        assert!(wants_openmetrics(Some(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        )));
        assert!(wants_openmetrics(Some("application/openmetrics-text")));
        assert!(!wants_openmetrics(Some(
            "application/openmetrics-text;version=0.0.1"
        )));
        assert!(!wants_openmetrics(Some("application/openmetrics-text;q=0")));
        assert!(!wants_openmetrics(Some(
            "application/openmetrics-text;q=0.2,text/plain;q=0.9"
        )));
    }

    #[test]
    fn openmetrics_names_counter_families_without_total() {
        let mut e = Exposition::default();
        e.single("a_total", "counter", "A.", 1)
            .single("b", "gauge", "B.", 2);
        let om = to_openmetrics(&e.finish());
        assert_eq!(
            om,
            "# HELP a A.\n# TYPE a counter\na_total 1\n# HELP b B.\n# TYPE b gauge\nb 2\n# EOF\n"
        );
    }
}
