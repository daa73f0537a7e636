//! Time windows (business hours, holidays) matched against the host's
//! local [`Datetime`].
//!
//! A window has four optional fields; an absent field or `*` matches all:
//! - `hours`: `08:00-18:00` (start inclusive, end exclusive, so 18:00 is
//!   closed), several with commas `08:00-12:00,13:30-18:00`, wrapping past
//!   midnight `22:00-06:00`;
//! - `weekdays`: `mon-fri`, `sat,sun`, `fri-mon`, or ISO numbers `1-5`
//!   (1 = Monday);
//! - `days`: day of month, `1-15`, `25,31`;
//! - `months`: `jan-mar`, `12`, `dec`.
//!
//! In JSON a window is an object with those keys or Asterisk's
//! `GotoIfTime` string `hours|weekdays|days|months`.
//!
//! ```
//! use strowger_sdk::time::TimeWindow;
//! use strowger_sdk::testing::datetime;
//! let office = TimeWindow::new("08:00-18:00", "mon-fri", "*", "*").unwrap();
//! assert!(office.matches(&datetime(2026, 3, 4, 3, 9, 30)));   // Wed 09:30
//! assert!(!office.matches(&datetime(2026, 3, 4, 3, 18, 0)));  // Wed 18:00
//! assert!(!office.matches(&datetime(2026, 3, 7, 6, 10, 0)));  // Sat
//! let xmas: TimeWindow = "*|*|25|dec".parse().unwrap();
//! assert!(xmas.matches(&datetime(2026, 12, 25, 5, 10, 0)));
//! ```

use std::str::FromStr;

use crate::Datetime;

/// A parsed time window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeWindow {
    /// Minute-of-day ranges `[start, end)`; start > end wraps midnight.
    minutes: Vec<(u16, u16)>,
    /// Bit n set = ISO weekday n allowed.
    weekdays: u8,
    /// Bit n set = day n allowed.
    days: u32,
    /// Bit n set = month n allowed.
    months: u16,
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

impl TimeWindow {
    /// A window from its four fields (`*` or empty = any).
    pub fn new(hours: &str, weekdays: &str, days: &str, months: &str) -> Result<Self, String> {
        Ok(TimeWindow {
            minutes: parse_hours(hours)?,
            weekdays: parse_set(weekdays, 1, 7, &WEEKDAYS)? as u8,
            days: parse_set(days, 1, 31, &[])? as u32,
            months: parse_set(months, 1, 12, &MONTHS)? as u16,
        })
    }

    /// True if `t` (local time) falls inside the window.
    pub fn matches(&self, t: &Datetime) -> bool {
        let bit = |set: u32, n: u8| n < 32 && set & (1 << n) != 0;
        if !bit(self.weekdays as u32, t.weekday)
            || !bit(self.days, t.day)
            || !bit(self.months as u32, t.month)
        {
            return false;
        }
        if self.minutes.is_empty() {
            return true;
        }
        let m = t.hour as u16 * 60 + t.minute as u16;
        self.minutes.iter().any(|&(s, e)| {
            if s <= e {
                s <= m && m < e
            } else {
                m >= s || m < e
            }
        })
    }
}

impl FromStr for TimeWindow {
    type Err = String;
    /// Asterisk form `hours|weekdays|days|months` (missing trailing fields = `*`).
    fn from_str(s: &str) -> Result<Self, String> {
        let f: Vec<&str> = s.split('|').collect();
        if f.len() > 4 {
            return Err(format!("time window `{s}` has more than 4 `|` fields"));
        }
        let get = |i: usize| f.get(i).copied().unwrap_or("*");
        Self::new(get(0), get(1), get(2), get(3))
    }
}

impl<'de> serde::Deserialize<'de> for TimeWindow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Fields {
                #[serde(default)]
                hours: Option<String>,
                #[serde(default)]
                weekdays: Option<String>,
                #[serde(default)]
                days: Option<String>,
                #[serde(default)]
                months: Option<String>,
            },
        }
        let r = match Repr::deserialize(d)? {
            Repr::Text(s) => s.parse(),
            Repr::Fields {
                hours,
                weekdays,
                days,
                months,
            } => {
                let f = |o: &Option<String>| o.clone().unwrap_or_default();
                TimeWindow::new(&f(&hours), &f(&weekdays), &f(&days), &f(&months))
            }
        };
        r.map_err(serde::de::Error::custom)
    }
}

fn parse_hours(s: &str) -> Result<Vec<(u16, u16)>, String> {
    let s = s.trim();
    if s.is_empty() || s == "*" {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|r| {
            let (a, b) = r
                .split_once('-')
                .ok_or_else(|| format!("hour range `{r}` must look like 08:00-18:00"))?;
            Ok((hhmm(a, false)?, hhmm(b, true)?))
        })
        .collect()
}

fn hhmm(s: &str, end: bool) -> Result<u16, String> {
    let s = s.trim();
    let (h, m) = s.split_once(':').unwrap_or((s, "0"));
    let h: u16 = h.parse().map_err(|_| format!("bad time `{s}`"))?;
    let m: u16 = m.parse().map_err(|_| format!("bad time `{s}`"))?;
    if m > 59 || h > 24 || (h == 24 && (m != 0 || !end)) {
        return Err(format!("bad time `{s}`"));
    }
    Ok(h * 60 + m)
}

fn parse_set(s: &str, min: u32, max: u32, names: &[&str]) -> Result<u64, String> {
    let s = s.trim();
    if s.is_empty() || s == "*" {
        return Ok(((1u64 << (max + 1)) - 1) & !((1u64 << min) - 1));
    }
    let item = |t: &str| -> Result<u32, String> {
        let t = t.trim().to_ascii_lowercase();
        if let Some(i) = names.iter().position(|n| t.starts_with(n) && t.len() >= 3) {
            return Ok(i as u32 + 1);
        }
        t.parse::<u32>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| format!("`{t}` is not in {min}..={max} in `{s}`"))
    };
    let mut bits = 0u64;
    for part in s.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (item(a)?, item(b)?),
            None => (item(part)?, item(part)?),
        };
        let mut n = a;
        loop {
            bits |= 1 << n;
            if n == b {
                break;
            }
            n = if n == max { min } else { n + 1 };
        }
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::datetime;

    #[test]
    fn hours_weekdays_wrap() {
        let w = TimeWindow::new("08:00-12:00,13:30-18:00", "1-5", "", "").unwrap();
        assert!(w.matches(&datetime(2026, 3, 2, 1, 8, 0)));
        assert!(!w.matches(&datetime(2026, 3, 2, 1, 12, 30)));
        assert!(w.matches(&datetime(2026, 3, 2, 1, 13, 30)));
        assert!(!w.matches(&datetime(2026, 3, 2, 1, 7, 59)));
        let night = TimeWindow::new("22:00-06:00", "fri-mon", "*", "*").unwrap();
        assert!(night.matches(&datetime(2026, 3, 6, 5, 23, 0)));
        assert!(night.matches(&datetime(2026, 3, 8, 7, 5, 59)));
        assert!(!night.matches(&datetime(2026, 3, 8, 7, 6, 0)));
        assert!(!night.matches(&datetime(2026, 3, 4, 3, 23, 0)));
        let all_day = TimeWindow::new("00:00-24:00", "sat", "", "").unwrap();
        assert!(all_day.matches(&datetime(2026, 3, 7, 6, 23, 59)));
    }

    #[test]
    fn days_months_and_text() {
        let w: TimeWindow = "*|*|1-15|jan-mar".parse().unwrap();
        assert!(w.matches(&datetime(2026, 2, 10, 2, 1, 0)));
        assert!(!w.matches(&datetime(2026, 2, 16, 1, 1, 0)));
        assert!(!w.matches(&datetime(2026, 4, 1, 3, 1, 0)));
        let w: TimeWindow = "*|*|*|nov-feb".parse().unwrap();
        assert!(w.matches(&datetime(2026, 1, 10, 6, 1, 0)));
        assert!(w.matches(&datetime(2026, 12, 10, 4, 1, 0)));
        assert!(!w.matches(&datetime(2026, 6, 10, 3, 1, 0)));
        let w: TimeWindow =
            serde_json::from_str(r#"{"hours":"09:00-10:00","weekdays":"sat,sun"}"#).unwrap();
        assert!(w.matches(&datetime(2026, 3, 8, 7, 9, 15)));
        assert!(!w.matches(&datetime(2026, 3, 9, 1, 9, 15)));
    }

    #[test]
    fn errors() {
        assert!("25:00-26:00".parse::<TimeWindow>().is_err());
        assert!("08:00".parse::<TimeWindow>().is_err());
        assert!("*|mon-xyz".parse::<TimeWindow>().is_err());
        assert!("*|*|0".parse::<TimeWindow>().is_err());
        assert!("*|*|*|13".parse::<TimeWindow>().is_err());
        assert!("*|*|*|*|*".parse::<TimeWindow>().is_err());
        assert!("24:00-10:00".parse::<TimeWindow>().is_err());
        assert!(serde_json::from_str::<TimeWindow>(r#""08:61-09:00""#).is_err());
    }
}
