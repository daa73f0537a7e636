//! A deterministic timer queue driven by an injected clock: the core asks
//! for `next_deadline()`, the shell sleeps until then and calls
//! `expired(now)`. Tests advance time by passing later instants.

use std::collections::BTreeMap;
use std::time::Instant;

/// Handle of a scheduled timer (for cancellation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(u64);

/// Timer queue holding payloads of type `T`.
#[derive(Debug)]
pub struct Timers<T> {
    queue: BTreeMap<(Instant, u64), T>,
    index: std::collections::HashMap<u64, Instant>,
    next: u64,
}

impl<T> Default for Timers<T> {
    fn default() -> Self {
        Self {
            queue: BTreeMap::new(),
            index: Default::default(),
            next: 0,
        }
    }
}

impl<T> Timers<T> {
    /// Schedules `payload` at `at`.
    pub fn schedule(&mut self, at: Instant, payload: T) -> TimerId {
        self.next += 1;
        self.queue.insert((at, self.next), payload);
        self.index.insert(self.next, at);
        TimerId(self.next)
    }

    /// Cancels a timer; returns its payload if it was pending.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        let at = self.index.remove(&id.0)?;
        self.queue.remove(&(at, id.0))
    }

    /// The earliest pending deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queue.keys().next().map(|(t, _)| *t)
    }

    /// Pops one timer due at or before `now`.
    pub fn pop_expired(&mut self, now: Instant) -> Option<(TimerId, T)> {
        let key = *self.queue.keys().next()?;
        if key.0 > now {
            return None;
        }
        let v = self.queue.remove(&key)?;
        self.index.remove(&key.1);
        Some((TimerId(key.1), v))
    }

    /// Keeps the timers for which `f` returns true (it may change them).
    pub fn retain(&mut self, mut f: impl FnMut(&mut T) -> bool) {
        let index = &mut self.index;
        self.queue.retain(|(_, id), v| {
            let keep = f(v);
            if !keep {
                index.remove(id);
            }
            keep
        });
    }

    /// Number of pending timers.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn order_and_cancel() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        let a = t.schedule(t0 + Duration::from_secs(2), "a");
        t.schedule(t0 + Duration::from_secs(1), "b");
        t.schedule(t0 + Duration::from_secs(3), "c");
        assert_eq!(t.cancel(a), Some("a"));
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert!(t.pop_expired(t0).is_none());
        let now = t0 + Duration::from_secs(5);
        assert_eq!(t.pop_expired(now).unwrap().1, "b");
        assert_eq!(t.pop_expired(now).unwrap().1, "c");
        assert!(t.is_empty());
    }
}
