//! The host's capabilities, as plain functions.
//!
//! Inside a component these call the switch. Natively (unit tests) they use
//! the fakes in [`crate::testing`]: logs go to stderr, counters, data sets,
//! registrations, trunks and the clock are whatever the test set up.

use crate::{Contact, Datetime, Level, PrefixMatch, TrunkState};

#[cfg(target_arch = "wasm32")]
use crate::bindings::route::strowger::plugin::host as imp;
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::fake as imp;

/// Write a log line at `level` (the host tags it with plugin and call id).
pub fn log(level: Level, message: &str) {
    imp::log(level, message)
}

/// Add `delta` to the plugin counter `name` (`[a-z0-9_]`, ≤ 64 chars).
pub fn counter_add(name: &str, delta: u64) {
    imp::counter_add(name, delta)
}

/// The plugin's configuration JSON as given at load time (`{}` when none).
pub fn config() -> String {
    imp::config()
}

/// The current time in the switch's local time zone.
pub fn now() -> Datetime {
    imp::now()
}

/// Exact lookup of `key` in data set `dataset`.
pub fn dataset_get(dataset: &str, key: &str) -> Option<String> {
    imp::dataset_get(dataset, key)
}

/// The longest key of `dataset` that is a prefix of `key`, with its value.
pub fn dataset_longest_prefix(dataset: &str, key: &str) -> Option<PrefixMatch> {
    imp::dataset_longest_prefix(dataset, key)
}

/// Current contacts of an address-of-record (or a bare user name).
pub fn location_lookup(aor: &str) -> Vec<Contact> {
    imp::location_lookup(aor)
}

/// State of the trunk `name`, or `None` if there is no such trunk.
pub fn trunk_status(name: &str) -> Option<TrunkState> {
    imp::trunk_status(name)
}

/// Log with `format!` arguments at an explicit [`Level`].
#[macro_export]
macro_rules! log {
    ($level:expr, $($arg:tt)+) => {
        $crate::host::log($level, &::std::format!($($arg)+))
    };
}

/// Log at trace level: `strowger_sdk::trace!("x = {}", x)`.
#[macro_export]
macro_rules! trace { ($($arg:tt)+) => { $crate::log!($crate::Level::Trace, $($arg)+) }; }
/// Log at debug level.
#[macro_export]
macro_rules! debug { ($($arg:tt)+) => { $crate::log!($crate::Level::Debug, $($arg)+) }; }
/// Log at info level.
#[macro_export]
macro_rules! info { ($($arg:tt)+) => { $crate::log!($crate::Level::Info, $($arg)+) }; }
/// Log at warn level.
#[macro_export]
macro_rules! warn { ($($arg:tt)+) => { $crate::log!($crate::Level::Warn, $($arg)+) }; }
/// Log at error level.
#[macro_export]
macro_rules! error { ($($arg:tt)+) => { $crate::log!($crate::Level::Error, $($arg)+) }; }
