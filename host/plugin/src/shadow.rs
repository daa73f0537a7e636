//! Shadow mode: a candidate generation runs beside the active one on live
//! traffic; its decisions are compared with the active ones and the
//! differences kept in a bounded log. Only the active decision is acted on.
//!
//! The host runs the shadow decision off the call path: it takes a permit
//! with [`ShadowLog::try_permit`] (none when [`SHADOW_CONCURRENCY`] shadow
//! decisions are already running: the decision is dropped and counted),
//! computes both decisions and hands them to [`ShadowLog::record`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::policy::Generation;

/// Shadow decisions running at once; more are dropped (and counted).
pub const SHADOW_CONCURRENCY: usize = 64;
/// Differing decisions kept (the oldest go first).
pub const SHADOW_DIFFS_KEPT: usize = 1000;

/// One decision where the shadow generation disagreed with the active one.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShadowDiff {
    /// When (Unix ms).
    pub time_unix_ms: i64,
    /// The call (or request) id.
    pub call_id: String,
    /// Hook (`route` for a call plan).
    pub hook: String,
    /// Where the decision was made (`call` on live traffic, `simulate`).
    pub source: String,
    /// Generation that decided (and was acted on).
    pub active_generation: u64,
    /// The shadow generation.
    pub shadow_generation: u64,
    /// The shadow's label (the policy version).
    pub shadow_version: String,
    /// The active decision.
    pub active: String,
    /// The shadow decision (or its error).
    pub shadow: String,
    /// True when the shadow decision failed (plugin error, fallback).
    pub error: bool,
}

/// Counters of shadow decisions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ShadowCounts {
    /// Same decision as the active generation.
    pub same: u64,
    /// A different decision.
    pub differ: u64,
    /// The shadow decision failed.
    pub error: u64,
    /// Not run: too many shadow decisions in flight.
    pub dropped: u64,
}

/// The shadow generation in force.
pub(crate) struct ShadowGen {
    pub(crate) generation: Arc<Generation>,
    pub(crate) label: String,
}

/// Comparison results: counters and the recent differences.
pub struct ShadowLog {
    diffs: Mutex<VecDeque<ShadowDiff>>,
    permits: Arc<Semaphore>,
    same: AtomicU64,
    differ: AtomicU64,
    error: AtomicU64,
    dropped: AtomicU64,
}

impl Default for ShadowLog {
    fn default() -> Self {
        ShadowLog {
            diffs: Mutex::new(VecDeque::new()),
            permits: Arc::new(Semaphore::new(SHADOW_CONCURRENCY)),
            same: AtomicU64::new(0),
            differ: AtomicU64::new(0),
            error: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }
}

/// What a shadow comparison found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShadowResult {
    /// Same decision.
    Same,
    /// Different decision (logged).
    Differ,
    /// The shadow failed (logged).
    Error,
}

impl ShadowLog {
    /// A slot to run one shadow decision; `None` (counted as dropped) when
    /// [`SHADOW_CONCURRENCY`] are running.
    pub fn try_permit(&self) -> Option<OwnedSemaphorePermit> {
        match self.permits.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Records one comparison: `shadow` is the shadow's decision text or
    /// its error. Decisions are compared as text (the host renders both the
    /// same way). Differences and errors go to the log.
    pub fn record(&self, diff: ShadowDiff) -> ShadowResult {
        let result = if diff.error {
            self.error.fetch_add(1, Ordering::Relaxed);
            ShadowResult::Error
        } else if diff.active == diff.shadow {
            self.same.fetch_add(1, Ordering::Relaxed);
            return ShadowResult::Same;
        } else {
            self.differ.fetch_add(1, Ordering::Relaxed);
            ShadowResult::Differ
        };
        let mut d = self.diffs.lock();
        if d.len() == SHADOW_DIFFS_KEPT {
            d.pop_front();
        }
        d.push_back(diff);
        result
    }

    /// The recent differences and errors, newest last.
    pub fn diffs(&self) -> Vec<ShadowDiff> {
        self.diffs.lock().iter().cloned().collect()
    }

    /// The counters.
    pub fn counts(&self) -> ShadowCounts {
        ShadowCounts {
            same: self.same.load(Ordering::Relaxed),
            differ: self.differ.load(Ordering::Relaxed),
            error: self.error.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(active: &str, shadow: &str, error: bool) -> ShadowDiff {
        ShadowDiff {
            time_unix_ms: 0,
            call_id: "c".into(),
            hook: "route".into(),
            source: "call".into(),
            active_generation: 1,
            shadow_generation: 2,
            shadow_version: "2".into(),
            active: active.into(),
            shadow: shadow.into(),
            error,
        }
    }

    #[test]
    fn counts_and_bounded_log() {
        let log = ShadowLog::default();
        assert_eq!(log.record(diff("a", "a", false)), ShadowResult::Same);
        assert_eq!(log.record(diff("a", "b", false)), ShadowResult::Differ);
        assert_eq!(log.record(diff("a", "boom", true)), ShadowResult::Error);
        assert_eq!(log.diffs().len(), 2);
        for _ in 0..SHADOW_DIFFS_KEPT + 5 {
            log.record(diff("x", "y", false));
        }
        assert_eq!(log.diffs().len(), SHADOW_DIFFS_KEPT);
        let c = log.counts();
        assert_eq!(
            (c.same, c.differ, c.error),
            (1, SHADOW_DIFFS_KEPT as u64 + 6, 1)
        );
    }

    #[test]
    fn permits_are_bounded_and_drops_counted() {
        let log = ShadowLog::default();
        let held: Vec<_> = (0..SHADOW_CONCURRENCY)
            .map(|_| log.try_permit().unwrap())
            .collect();
        assert!(log.try_permit().is_none());
        assert_eq!(log.counts().dropped, 1);
        drop(held);
        assert!(log.try_permit().is_some());
    }
}
