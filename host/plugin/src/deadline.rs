//! Per-decision deadlines: epoch interruption checked against the calling
//! thread's CPU time.
//!
//! A ticker thread increments the engine's epoch every
//! [`RuntimeConfig::epoch_tick`](crate::RuntimeConfig). Every store has an
//! epoch deadline of one tick and a callback that, when the tick arrives
//! while guest code runs, compares the CPU time the decision has used
//! (`CLOCK_THREAD_CPUTIME_ID`, paused while a host import awaits) with its
//! budget. A guest that was merely descheduled on a loaded machine is not
//! killed; one that spins is stopped within budget + one tick of CPU (the
//! clock is read from the first tick on, see `CpuBudget`). A wall-clock hard
//! limit backs this up.
//!
//! The epoch callback only runs while guest code runs. A guest that waits
//! (a WASI clock subscription + `wasi:io/poll`, i.e. a sleep; a host call)
//! is stopped by a tokio timeout of the same wall limit around the call
//! (see `pool.rs`), which drops the call and its instance.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::{Engine, StoreContextMut, UpdateDeadline};

use crate::host::InstanceState;

/// CPU time consumed by the calling thread, in nanoseconds.
pub(crate) fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// An id of the calling OS thread.
pub(crate) fn thread_id() -> u64 {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() as u64 }
}

/// The epoch-deadline callback installed on every plugin store.
pub(crate) fn on_epoch(
    mut ctx: StoreContextMut<'_, InstanceState>,
) -> wasmtime::Result<UpdateDeadline> {
    let cpu = &mut ctx.data_mut().call.cpu;
    cpu.tick();
    let over_wall = cpu.wall_deadline.is_some_and(|d| Instant::now() >= d);
    if over_wall || cpu.used() >= cpu.budget_ns {
        cpu.expired = true;
        return Ok(UpdateDeadline::Interrupt);
    }
    Ok(UpdateDeadline::Continue(1))
}

/// Increments the engine epoch until dropped.
pub(crate) struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    pub fn start(engine: Engine, tick: Duration) -> std::io::Result<Ticker> {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("strowger-epoch".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })?;
        Ok(Ticker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
