//! The decision pool: plugin code runs on threads of its own.
//!
//! A slow or spinning plugin must never hold up the caller (the switch's SIP
//! shell, the admin API): every decision and every `init` runs as a task on
//! a separate multi-threaded tokio runtime with
//! [`RuntimeConfig::decision_threads`](crate::RuntimeConfig) workers. At
//! most `decision_threads + decision_queue` decisions are in flight; one
//! more is refused at once (the caller applies the binding's fallback with
//! reason `overloaded`) instead of queueing without bound.
//!
//! A guest that spins occupies one pool thread until its CPU budget or wall
//! limit stops it (epoch interruption); a guest that waits (a WASI sleep or
//! poll, a host call) is stopped by a tokio timeout on the pool's runtime.
//! The caller waits for the task with a backstop timeout of its own and
//! aborts the task if it gives up (or is itself dropped).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

pub(crate) struct Executor {
    rt: Option<tokio::runtime::Runtime>,
    handle: Handle,
    slots: Arc<Semaphore>,
    pub threads: usize,
    pub capacity: usize,
    rejected: AtomicU64,
}

/// Aborts the task when dropped (a caller that gives up frees the slot).
pub(crate) struct AbortOnDrop<T>(pub JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Executor {
    /// Starts `threads` worker threads (`strowger-plugin`); `queue` more
    /// decisions may wait for one.
    pub fn new(threads: usize, queue: usize) -> std::io::Result<Executor> {
        let threads = threads.max(1);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .max_blocking_threads(threads)
            .thread_name("strowger-plugin")
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        let capacity = threads.saturating_add(queue);
        Ok(Executor {
            rt: Some(rt),
            handle,
            slots: Arc::new(Semaphore::new(capacity)),
            threads,
            capacity,
            rejected: AtomicU64::new(0),
        })
    }

    /// Runs `f` on the pool if fewer than `threads + queue` decisions are in
    /// flight; `None` (counted) when the pool is full.
    pub fn try_spawn<F>(&self, f: F) -> Option<AbortOnDrop<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        Some(AbortOnDrop(self.handle.spawn(async move {
            let _slot = permit;
            f.await
        })))
    }

    /// Runs `f` on the pool whatever its load (generation builds: `init`
    /// of a first instance).
    pub fn spawn<F>(&self, f: F) -> AbortOnDrop<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        AbortOnDrop(self.handle.spawn(f))
    }

    /// Decisions refused because the pool was full.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Decisions in flight (running or waiting for a thread).
    pub fn in_flight(&self) -> usize {
        self.capacity - self.slots.available_permits()
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // Never blocks (the runtime may be dropped from async code); tasks
        // still running are cancelled at their next await and their
        // threads exit when the guest returns or is interrupted.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
