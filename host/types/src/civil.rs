//! Wall-clock helpers: Unix milliseconds to broken-down local time with a
//! fixed UTC offset (plugins see local time without a time zone database).

/// Broken-down local time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    /// Milliseconds since the Unix epoch (UTC).
    pub unix_ms: i64,
    /// Offset from UTC in minutes.
    pub utc_offset_minutes: i32,
    /// Year.
    pub year: u16,
    /// Month 1..=12.
    pub month: u8,
    /// Day 1..=31.
    pub day: u8,
    /// ISO weekday: 1 = Monday .. 7 = Sunday.
    pub weekday: u8,
    /// Hour 0..=23.
    pub hour: u8,
    /// Minute 0..=59.
    pub minute: u8,
    /// Second 0..=59.
    pub second: u8,
}

/// Current Unix time in milliseconds.
pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Converts Unix milliseconds plus a UTC offset to local broken-down time.
pub fn civil(unix_ms: i64, utc_offset_minutes: i32) -> Civil {
    let local_s = unix_ms.div_euclid(1000) + utc_offset_minutes as i64 * 60;
    let days = local_s.div_euclid(86_400);
    let secs = local_s.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    // 1970-01-01 was a Thursday (ISO 4)
    let weekday = ((days + 3).rem_euclid(7) + 1) as u8;
    Civil {
        unix_ms,
        utc_offset_minutes,
        year: y.clamp(0, u16::MAX as i64) as u16,
        month: m as u8,
        day: d as u8,
        weekday,
        hour: (secs / 3600) as u8,
        minute: (secs % 3600 / 60) as u8,
        second: (secs % 60) as u8,
    }
}

/// Format Unix milliseconds as RFC 3339 UTC, e.g. `2026-11-23T09:00:00.123Z`.
pub fn format_utc_ms(ms: i64) -> String {
    let c = civil(ms, 0);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        ms.rem_euclid(1000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        // 2026-11-23T09:00:00Z is a Monday
        let c = civil(1_795_424_400_000, 0);
        assert_eq!(
            (c.year, c.month, c.day, c.weekday, c.hour),
            (2026, 11, 23, 1, 9)
        );
        // -180 minutes (Brazil): 06:00 same day
        let c = civil(1_795_424_400_000, -180);
        assert_eq!((c.day, c.hour), (23, 6));
        let c = civil(0, 0);
        assert_eq!((c.year, c.month, c.day, c.weekday), (1970, 1, 1, 4));
        assert_eq!(format_utc_ms(1_795_424_400_123), "2026-11-23T09:00:00.123Z");
        assert_eq!(format_utc_ms(-1), "1969-12-31T23:59:59.999Z");
    }
}
