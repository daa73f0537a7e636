//! Native stand-ins for the host, for unit tests of plugin logic.
//!
//! Everything is thread-local (each `#[test]` runs on its own thread), so
//! tests do not see each other's data.
//!
//! ```
//! use strowger_sdk::{host, testing};
//! testing::set_dataset("ranges", [("1199", "55321"), ("11", "55100")]);
//! let m = host::dataset_longest_prefix("ranges", "11998765432").unwrap();
//! assert_eq!((m.prefix.as_str(), m.value.as_str()), ("1199", "55321"));
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use crate::{Contact, Datetime, TrunkState};

#[derive(Default)]
struct Fake {
    config: Option<String>,
    now: Option<Datetime>,
    datasets: HashMap<String, BTreeMap<String, String>>,
    locations: HashMap<String, Vec<Contact>>,
    trunks: HashMap<String, TrunkState>,
    counters: HashMap<String, u64>,
    logs: Vec<(crate::Level, String)>,
}

thread_local! {
    static FAKE: RefCell<Fake> = RefCell::new(Fake::default());
}

/// Set the text returned by [`crate::host::config`].
pub fn set_config(json: &str) {
    FAKE.with_borrow_mut(|f| f.config = Some(json.to_string()));
}

/// Set the time returned by [`crate::host::now`] (default: 2026-01-05, a
/// Monday, 12:00:00 UTC).
pub fn set_now(now: Datetime) {
    FAKE.with_borrow_mut(|f| f.now = Some(now));
}

/// Replace data set `name` with `rows`.
pub fn set_dataset<K: Into<String>, V: Into<String>>(
    name: &str,
    rows: impl IntoIterator<Item = (K, V)>,
) {
    let rows = rows
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    FAKE.with_borrow_mut(|f| {
        f.datasets.insert(name.to_string(), rows);
    });
}

/// Load data set `name` from `key,value` CSV text (blank lines and lines
/// starting with `#` are skipped; a first line `key,value` is a header).
pub fn set_dataset_csv(name: &str, csv: &str) {
    let rows = csv
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && *l != "key,value")
        .filter_map(|l| l.split_once(','))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()));
    set_dataset(name, rows);
}

/// Set the contacts returned by [`crate::host::location_lookup`] for `aor`.
pub fn set_location(aor: &str, contacts: Vec<Contact>) {
    FAKE.with_borrow_mut(|f| {
        f.locations.insert(aor.to_string(), contacts);
    });
}

/// Set the state returned by [`crate::host::trunk_status`] for `state.name`.
pub fn set_trunk(state: TrunkState) {
    FAKE.with_borrow_mut(|f| {
        f.trunks.insert(state.name.clone(), state);
    });
}

/// Current value of counter `name` as added by the plugin.
pub fn counter(name: &str) -> u64 {
    FAKE.with_borrow(|f| f.counters.get(name).copied().unwrap_or(0))
}

/// Log messages written so far.
pub fn logs() -> Vec<String> {
    FAKE.with_borrow(|f| f.logs.iter().map(|(_, m)| m.clone()).collect())
}

/// A [`Datetime`] from local fields (UTC offset 0); `weekday` is ISO
/// (1 = Monday). `unix_ms` is computed from the date.
pub fn datetime(year: u16, month: u8, day: u8, weekday: u8, hour: u8, minute: u8) -> Datetime {
    // days from civil (Howard Hinnant's algorithm)
    let (y, m) = if month <= 2 {
        (year as i64 - 1, month as i64 + 9)
    } else {
        (year as i64, month as i64 - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Datetime {
        unix_ms: (days * 86400 + hour as i64 * 3600 + minute as i64 * 60) * 1000,
        utc_offset_minutes: 0,
        year,
        month,
        day,
        weekday,
        hour,
        minute,
        second: 0,
    }
}

/// The fake host functions used natively by [`crate::host`].
#[doc(hidden)]
pub mod fake {
    use super::*;
    use crate::{Level, PrefixMatch};

    pub fn log(level: Level, message: &str) {
        eprintln!("[plugin {level:?}] {message}");
        FAKE.with_borrow_mut(|f| f.logs.push((level, message.to_string())));
    }

    pub fn counter_add(name: &str, delta: u64) {
        FAKE.with_borrow_mut(|f| *f.counters.entry(name.to_string()).or_default() += delta);
    }

    pub fn config() -> String {
        FAKE.with_borrow(|f| f.config.clone().unwrap_or_else(|| "{}".to_string()))
    }

    pub fn now() -> Datetime {
        FAKE.with_borrow(|f| f.now)
            .unwrap_or_else(|| datetime(2026, 1, 5, 1, 12, 0))
    }

    pub fn dataset_get(dataset: &str, key: &str) -> Option<String> {
        FAKE.with_borrow(|f| f.datasets.get(dataset)?.get(key).cloned())
    }

    pub fn dataset_longest_prefix(dataset: &str, key: &str) -> Option<PrefixMatch> {
        FAKE.with_borrow(|f| {
            let rows = f.datasets.get(dataset)?;
            (0..=key.len())
                .rev()
                .filter(|&n| key.is_char_boundary(n))
                .find_map(|n| {
                    rows.get(&key[..n]).map(|v| PrefixMatch {
                        prefix: key[..n].to_string(),
                        value: v.clone(),
                    })
                })
        })
    }

    pub fn location_lookup(aor: &str) -> Vec<Contact> {
        FAKE.with_borrow(|f| f.locations.get(aor).cloned().unwrap_or_default())
    }

    pub fn trunk_status(name: &str) -> Option<TrunkState> {
        FAKE.with_borrow(|f| f.trunks.get(name).cloned())
    }
}
