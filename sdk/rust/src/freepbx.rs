//! FreePBX outbound-route dial patterns: `prepend+prefix|match/callerid`.
//!
//! The called number must start with `prefix` (removed) and the rest must
//! match `match` (Asterisk pattern syntax without the `_`); `prepend` is
//! then put in front. An optional `/callerid` pattern must match the A
//! number.
//!
//! ```
//! use strowger_sdk::freepbx::DialPattern;
//! let p = DialPattern::parse("012|.").unwrap();
//! assert_eq!(p.apply("0121133334444", "").as_deref(), Some("1133334444"));
//! assert_eq!(p.apply("0151133334444", ""), None);
//! let p = DialPattern::parse("0+9|NXXXXXXX").unwrap();
//! assert_eq!(p.apply("933334444", "").as_deref(), Some("033334444"));
//! assert_eq!(p.apply("833334444", ""), None);
//! ```

use crate::pattern::Pattern;

/// A parsed FreePBX dial pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialPattern {
    prepend: String,
    prefix: String,
    pattern: Pattern,
    callerid: Option<Pattern>,
}

impl DialPattern {
    /// Parse `prepend+prefix|match/callerid`; every part is optional
    /// except that something must be given. A missing `|` means the whole
    /// text (after `prepend+`) is the match pattern; an empty match pattern
    /// means `.` (anything non-empty).
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("empty dial pattern".to_string());
        }
        let (t, callerid) = match t.split_once('/') {
            Some((a, c)) if !c.is_empty() => (a, Some(Pattern::from_body(c)?)),
            Some((a, _)) => (a, None),
            None => (t, None),
        };
        let (prepend, t) = match t.split_once('+') {
            Some((p, rest)) => (p, rest),
            None => ("", t),
        };
        let (prefix, m) = match t.split_once('|') {
            Some((p, m)) => (p, m),
            None => ("", t),
        };
        let valid = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "*#+".contains(c))
        };
        if !valid(prepend) || !valid(prefix) {
            return Err(format!("bad prepend/prefix in dial pattern `{text}`"));
        }
        let pattern = Pattern::from_body(if m.is_empty() { "." } else { m })?;
        Ok(DialPattern {
            prepend: prepend.to_string(),
            prefix: prefix.to_string(),
            pattern,
            callerid,
        })
    }

    /// True if `number` (and `a_number` when a caller-id pattern is given) match.
    pub fn matches(&self, number: &str, a_number: &str) -> bool {
        self.apply(number, a_number).is_some()
    }

    /// The number to dial: `None` if the pattern does not match, else the
    /// number with `prefix` removed and `prepend` added.
    pub fn apply(&self, number: &str, a_number: &str) -> Option<String> {
        let rest = number.strip_prefix(self.prefix.as_str())?;
        if !self.pattern.matches(rest) {
            return None;
        }
        if let Some(c) = &self.callerid
            && !c.matches(a_number)
        {
            return None;
        }
        Some(format!("{}{}", self.prepend, rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freepbx_examples() {
        let p = DialPattern::parse("9|NXXNXXXXXX").unwrap();
        assert_eq!(p.apply("92125551234", "").as_deref(), Some("2125551234"));
        assert_eq!(p.apply("2125551234", ""), None);
        let p = DialPattern::parse("1+NXXNXXXXXX").unwrap();
        assert_eq!(p.apply("2125551234", "").as_deref(), Some("12125551234"));
        let p = DialPattern::parse("011|.").unwrap();
        assert_eq!(p.apply("011", ""), None);
        let p = DialPattern::parse("|0800XXXXXXX/1XXX").unwrap();
        assert_eq!(
            p.apply("08001234567", "1001").as_deref(),
            Some("08001234567")
        );
        assert_eq!(p.apply("08001234567", "2001"), None);
        let p = DialPattern::parse("55+0|[1-9]XXXXXXXXX").unwrap();
        assert_eq!(p.apply("01133334444", "").as_deref(), Some("551133334444"));
        assert!(DialPattern::parse("").is_err());
        assert!(DialPattern::parse("9|[12").is_err());
        assert!(DialPattern::parse("a b|.").is_err());
    }
}
