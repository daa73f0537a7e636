//! E.164 ↔ national number conversion for a numbering plan, with the
//! Brazilian plan (national prefix `0`, carrier selection codes, 10/11-digit
//! national numbers, mobile ninth digit) as the worked example.
//!
//! ```
//! use strowger_sdk::e164::{Plan, Format};
//! let br = Plan::brazil("11");
//! assert_eq!(br.to_e164("0 21 11 3333-4444").as_deref(), Some("551133334444")); // 0 + CSP 21
//! assert_eq!(br.to_e164("33334444").as_deref(), Some("551133334444"));          // local
//! assert_eq!(br.to_e164("87654321").as_deref(), Some("5511987654321"));         // ninth digit
//! assert_eq!(br.to_e164("+1 212 555 1234").as_deref(), Some("12125551234"));
//! assert_eq!(br.to_e164("190"), None);                                           // short code
//! assert_eq!(br.format("5511987654321", Format::National), "11987654321");
//! assert_eq!(br.format("12125551234", Format::National), "0012125551234");
//! ```

use serde::Deserialize;

/// How numbers are written towards a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// E.164 digits without `+`: `5511987654321`.
    #[default]
    E164,
    /// E.164 with `+`: `+5511987654321`.
    #[serde(alias = "+e164")]
    E164Plus,
    /// National significant number for domestic numbers (`11987654321`),
    /// international prefix + E.164 otherwise (`0012125551234`).
    National,
    /// National prefix (+ carrier code) + national number for domestic
    /// numbers (`0 21 11987654321` → `02111987654321`), international
    /// prefix (+ carrier code) + E.164 otherwise.
    Prefixed,
    /// Like `national`, but numbers in the plan's own area code lose it
    /// (`987654321`).
    Local,
}

/// A numbering plan.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Country calling code, e.g. `55`.
    pub country_code: String,
    /// National (trunk) prefix, e.g. `0`; empty for none.
    #[serde(default = "default_national_prefix")]
    pub national_prefix: String,
    /// International prefix, e.g. `00`.
    #[serde(default = "default_international_prefix")]
    pub international_prefix: String,
    /// Area code assumed for local numbers (8/9 digits in Brazil).
    #[serde(default)]
    pub area_code: Option<String>,
    /// Digits of the area code (2 in Brazil).
    #[serde(default = "default_area_len")]
    pub area_code_len: usize,
    /// Lengths of a national significant number (area + subscriber).
    #[serde(default = "default_national_lengths")]
    pub national_lengths: Vec<usize>,
    /// Lengths of a local (subscriber) number.
    #[serde(default = "default_local_lengths")]
    pub local_lengths: Vec<usize>,
    /// The national and international prefixes are followed by a 2-digit
    /// carrier selection code (Brazil: `0 21 11…`, `00 21 1…`) that is
    /// removed on the way in.
    #[serde(default)]
    pub carrier_selection: bool,
    /// Carrier selection code written after the prefix on the way out
    /// (formats `prefixed`, and the international fallback).
    #[serde(default)]
    pub carrier_code: Option<String>,
    /// Brazilian mobile ninth digit: an 8-digit subscriber number starting
    /// with 6–9 gets a leading `9`.
    #[serde(default)]
    pub ninth_digit: bool,
}

fn default_national_prefix() -> String {
    "0".into()
}
fn default_international_prefix() -> String {
    "00".into()
}
fn default_area_len() -> usize {
    2
}
fn default_national_lengths() -> Vec<usize> {
    vec![10, 11]
}
fn default_local_lengths() -> Vec<usize> {
    vec![8, 9]
}

/// Keep digits, a leading `+`, and `*`/`#`; drop spaces, dashes, dots and
/// brackets.
pub fn clean(number: &str) -> String {
    let t = number.trim();
    let mut out = String::with_capacity(t.len());
    for (i, c) in t.chars().enumerate() {
        if c.is_ascii_digit() || c == '*' || c == '#' || (c == '+' && i == 0) {
            out.push(c);
        }
    }
    out
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

impl Plan {
    /// The Brazilian plan: `+55`, prefixes `0`/`00` with carrier selection,
    /// ninth digit on, local numbers in `area_code`.
    pub fn brazil(area_code: &str) -> Self {
        Plan {
            country_code: "55".into(),
            national_prefix: "0".into(),
            international_prefix: "00".into(),
            area_code: Some(area_code.into()),
            area_code_len: 2,
            national_lengths: vec![10, 11],
            local_lengths: vec![8, 9],
            carrier_selection: true,
            carrier_code: None,
            ninth_digit: true,
        }
    }

    /// Check the plan for nonsense (non-digit codes, empty country code).
    pub fn validate(&self) -> Result<(), String> {
        let digits = |s: &str| s.is_empty() || all_digits(s);
        if !all_digits(&self.country_code)
            || !digits(&self.national_prefix)
            || !digits(&self.international_prefix)
            || !self.area_code.as_deref().is_none_or(all_digits)
            || !self.carrier_code.as_deref().is_none_or(all_digits)
        {
            return Err("numbering plan codes must be digits (country_code required)".into());
        }
        if self.international_prefix.is_empty() {
            return Err("international_prefix must not be empty".into());
        }
        Ok(())
    }

    /// National significant number → same with the ninth digit applied.
    fn nsn_fixup(&self, nsn: &str) -> String {
        if self.ninth_digit && nsn.len() == self.area_code_len + 8 {
            let (area, sub) = nsn.split_at(self.area_code_len);
            if matches!(sub.as_bytes()[0], b'6'..=b'9') {
                return format!("{area}9{sub}");
            }
        }
        nsn.to_string()
    }

    fn e164_of_nsn(&self, nsn: &str) -> Option<String> {
        self.national_lengths
            .contains(&nsn.len())
            .then(|| format!("{}{}", self.country_code, self.nsn_fixup(nsn)))
    }

    fn e164_of_international(&self, digits: &str) -> Option<String> {
        if !all_digits(digits) || digits.len() < 7 || digits.len() > 15 {
            return None;
        }
        match digits.strip_prefix(self.country_code.as_str()) {
            Some(nsn) if self.national_lengths.contains(&nsn.len()) => self.e164_of_nsn(nsn),
            _ => Some(digits.to_string()),
        }
    }

    /// Normalise a number as dialled/received in this plan to E.164 digits
    /// (no `+`). `None` when it is not a full telephone number (extensions,
    /// short codes, service numbers): leave those as they are.
    pub fn to_e164(&self, number: &str) -> Option<String> {
        let n = clean(number);
        if let Some(rest) = n.strip_prefix('+') {
            return self.e164_of_international(rest);
        }
        if !all_digits(&n) {
            return None;
        }
        let csp = |rest: &str, lens: &[usize]| -> Option<String> {
            if lens.contains(&rest.len()) {
                return Some(rest.to_string());
            }
            if self.carrier_selection && rest.len() > 2 {
                return Some(rest[2..].to_string());
            }
            None
        };
        if let Some(rest) = n.strip_prefix(self.international_prefix.as_str()) {
            // Brazil dials 00 + carrier code + country code
            let rest = if self.carrier_selection && rest.len() > 2 {
                &rest[2..]
            } else {
                rest
            };
            return self.e164_of_international(rest);
        }
        if !self.national_prefix.is_empty()
            && let Some(rest) = n.strip_prefix(self.national_prefix.as_str())
        {
            let nsn = csp(rest, &self.national_lengths)?;
            return self.e164_of_nsn(&nsn);
        }
        if self.national_lengths.contains(&n.len()) {
            return self.e164_of_nsn(&n);
        }
        if self.local_lengths.contains(&n.len()) {
            let area = self.area_code.as_deref()?;
            return self.e164_of_nsn(&format!("{area}{n}"));
        }
        if let Some(nsn) = n.strip_prefix(self.country_code.as_str())
            && self.national_lengths.contains(&nsn.len())
        {
            return self.e164_of_nsn(nsn);
        }
        None
    }

    /// Write E.164 digits (with or without `+`) in `format`. Numbers that
    /// are not E.164 (non-digits or fewer than 7 digits: short codes,
    /// extensions) are returned unchanged.
    pub fn format(&self, e164: &str, format: Format) -> String {
        let digits = e164.strip_prefix('+').unwrap_or(e164);
        // short codes, extensions: not E.164, leave alone
        if !all_digits(digits) || digits.len() < 7 {
            return e164.to_string();
        }
        let csp = self.carrier_code.as_deref().unwrap_or("");
        let domestic = digits
            .strip_prefix(self.country_code.as_str())
            .filter(|nsn| self.national_lengths.contains(&nsn.len()));
        match (format, domestic) {
            (Format::E164, _) => digits.to_string(),
            (Format::E164Plus, _) => format!("+{digits}"),
            (Format::National, Some(nsn)) => nsn.to_string(),
            (Format::Local, Some(nsn)) => match &self.area_code {
                Some(a) if nsn.starts_with(a.as_str()) && nsn.len() > a.len() => {
                    nsn[a.len()..].to_string()
                }
                _ => nsn.to_string(),
            },
            (Format::Prefixed, Some(nsn)) => format!("{}{csp}{nsn}", self.national_prefix),
            (Format::National | Format::Local, None) => {
                format!("{}{digits}", self.international_prefix)
            }
            (Format::Prefixed, None) => format!("{}{csp}{digits}", self.international_prefix),
        }
    }
}

/// Brazilian numbering helpers.
pub mod br {
    /// Reduce a Brazilian number as dialled to its national significant
    /// number (area code + subscriber, 10 or 11 digits): removes `+55`/`55`,
    /// the national prefix `0` and a carrier selection code (`0 21 11…`).
    /// `None` if it is not a full Brazilian number.
    ///
    /// ```
    /// use strowger_sdk::e164::br;
    /// assert_eq!(br::national("+55 11 98765-4321").as_deref(), Some("11987654321"));
    /// assert_eq!(br::national("0151133334444").as_deref(), Some("1133334444"));
    /// assert_eq!(br::national("1133334444").as_deref(), Some("1133334444"));
    /// assert_eq!(br::national("190"), None);
    /// ```
    pub fn national(number: &str) -> Option<String> {
        let n = super::clean(number);
        let n = n.strip_prefix('+').unwrap_or(&n);
        let ok = |s: &str| {
            (s.len() == 10 || s.len() == 11)
                && super::all_digits(s)
                && !s.starts_with('0')
                && s.as_bytes()[1] != b'0'
        };
        let candidates = [
            n.strip_prefix("55"),
            n.strip_prefix('0').and_then(|r| r.get(2..)),
            n.strip_prefix('0'),
            Some(n),
        ];
        candidates
            .into_iter()
            .flatten()
            .find(|c| ok(c))
            .map(str::to_string)
    }

    /// True for a mobile national number (11 digits, subscriber starts with 9).
    pub fn is_mobile(nsn: &str) -> bool {
        nsn.len() == 11 && nsn.as_bytes()[2] == b'9'
    }

    /// Insert the ninth digit into a 10-digit national number whose
    /// subscriber part starts with 6–9 (an old-format mobile).
    ///
    /// ```
    /// assert_eq!(strowger_sdk::e164::br::ninth_digit("1187654321"), "11987654321");
    /// assert_eq!(strowger_sdk::e164::br::ninth_digit("1133334444"), "1133334444");
    /// ```
    pub fn ninth_digit(nsn: &str) -> String {
        if nsn.len() == 10 && matches!(nsn.as_bytes()[2], b'6'..=b'9') {
            format!("{}9{}", &nsn[..2], &nsn[2..])
        } else {
            nsn.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brazil_ingress() {
        let p = Plan::brazil("11");
        for (input, want) in [
            ("+5511987654321", Some("5511987654321")),
            ("5511987654321", Some("5511987654321")),
            ("551187654321", Some("5511987654321")),
            ("011987654321", Some("5511987654321")),
            ("01187654321", Some("5511987654321")),
            ("02111987654321", Some("5511987654321")),
            ("0211133334444", Some("551133334444")),
            ("2133334444", Some("552133334444")),
            ("987654321", Some("5511987654321")),
            ("33334444", Some("551133334444")),
            ("00211212555123", Some("1212555123")),
            ("0021442079460000", Some("442079460000")),
            ("+442079460000", Some("442079460000")),
            ("190", None),
            ("1001", None),
            ("*72", None),
            ("", None),
            ("0800", None),
        ] {
            assert_eq!(p.to_e164(input).as_deref(), want, "{input}");
        }
    }

    #[test]
    fn egress_formats() {
        let mut p = Plan::brazil("11");
        p.carrier_code = Some("21".into());
        let m = "5511987654321";
        assert_eq!(p.format(m, Format::E164), m);
        assert_eq!(p.format(m, Format::E164Plus), "+5511987654321");
        assert_eq!(p.format(m, Format::National), "11987654321");
        assert_eq!(p.format(m, Format::Prefixed), "02111987654321");
        assert_eq!(p.format(m, Format::Local), "987654321");
        assert_eq!(p.format("552133334444", Format::Local), "2133334444");
        assert_eq!(
            p.format("+442079460000", Format::Prefixed),
            "0021442079460000"
        );
        assert_eq!(p.format("442079460000", Format::National), "00442079460000");
        assert_eq!(p.format("190", Format::National), "190");
        let no_ninth = Plan {
            ninth_digit: false,
            ..Plan::brazil("11")
        };
        assert_eq!(
            no_ninth.to_e164("87654321").as_deref(),
            Some("551187654321")
        );
        assert!(Plan::brazil("1x").validate().is_err());
        assert!(Plan::brazil("11").validate().is_ok());
    }
}
