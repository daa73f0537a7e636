//! Asterisk dial-plan patterns.
//!
//! A pattern starts with `_`; otherwise the text is matched literally.
//! In a pattern: `X` = any digit, `Z` = 1–9, `N` = 2–9, `[15-7]` = one
//! of the listed characters or ranges, `.` = one or more of anything,
//! `!` = zero or more of anything; `-` outside brackets is ignored
//! (`_1-800-NXX-XXXX`); everything else matches itself.
//!
//! ```
//! use strowger_sdk::pattern::Pattern;
//! let p = Pattern::parse("_90.").unwrap();
//! assert!(p.matches("901133334444"));
//! assert!(!p.matches("90"));            // `.` needs at least one character
//! assert!(Pattern::parse("_NXXXXXX").unwrap().matches("3333444"));
//! assert!(!Pattern::parse("_NXXXXXX").unwrap().matches("1333444"));
//! assert!(Pattern::parse("_[15-7]X").unwrap().matches("62"));
//! assert!(Pattern::parse("1001").unwrap().matches("1001"));
//! ```

/// One element of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// One character from these inclusive ranges.
    Set(Vec<(char, char)>),
    /// `.`: one or more characters.
    OneOrMore,
    /// `!`: zero or more characters.
    ZeroOrMore,
}

/// A compiled Asterisk extension pattern (or literal extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    toks: Vec<Tok>,
}

impl Pattern {
    /// Parse `text` (`_` prefix = pattern, else literal). Errors on an
    /// empty pattern or an unterminated/empty `[...]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.strip_prefix('_') {
            Some(p) => Self::parse_body(p).map(|toks| Pattern {
                source: text.to_string(),
                toks,
            }),
            None if text.is_empty() => Err("empty extension".to_string()),
            None => Ok(Pattern {
                source: text.to_string(),
                toks: text.chars().map(|c| Tok::Set(vec![(c, c)])).collect(),
            }),
        }
    }

    /// Parse a pattern body without the leading `_` (as FreePBX writes its
    /// match patterns). An empty body matches only the empty string.
    fn parse_body(body: &str) -> Result<Vec<Tok>, String> {
        let mut toks = Vec::new();
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            toks.push(match c {
                'X' | 'x' => Tok::Set(vec![('0', '9')]),
                'Z' | 'z' => Tok::Set(vec![('1', '9')]),
                'N' | 'n' => Tok::Set(vec![('2', '9')]),
                '.' => Tok::OneOrMore,
                '!' => Tok::ZeroOrMore,
                '-' => continue,
                '[' => {
                    let mut set = Vec::new();
                    let mut items: Vec<char> = Vec::new();
                    loop {
                        match chars.next() {
                            None => return Err(format!("unterminated `[` in pattern `{body}`")),
                            Some(']') => break,
                            Some(c) => items.push(c),
                        }
                    }
                    let mut i = 0;
                    while i < items.len() {
                        if i + 2 < items.len() && items[i + 1] == '-' {
                            let (a, b) = (items[i], items[i + 2]);
                            if a > b {
                                return Err(format!("bad range `{a}-{b}` in pattern `{body}`"));
                            }
                            set.push((a, b));
                            i += 3;
                        } else {
                            set.push((items[i], items[i]));
                            i += 1;
                        }
                    }
                    if set.is_empty() {
                        return Err(format!("empty `[]` in pattern `{body}`"));
                    }
                    Tok::Set(set)
                }
                c => Tok::Set(vec![(c, c)]),
            });
        }
        Ok(toks)
    }

    /// Parse a pattern body written without the leading `_` (FreePBX).
    pub fn from_body(body: &str) -> Result<Self, String> {
        Ok(Pattern {
            source: format!("_{body}"),
            toks: Self::parse_body(body)?,
        })
    }

    /// The text the pattern was parsed from.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True if the whole of `number` matches.
    pub fn matches(&self, number: &str) -> bool {
        let chars: Vec<char> = number.chars().collect();
        match_toks(&self.toks, &chars)
    }
}

fn match_toks(toks: &[Tok], s: &[char]) -> bool {
    match toks.split_first() {
        None => s.is_empty(),
        Some((Tok::Set(set), rest)) => s.split_first().is_some_and(|(c, tail)| {
            set.iter().any(|&(a, b)| a <= *c && *c <= b) && match_toks(rest, tail)
        }),
        Some((Tok::OneOrMore, rest)) => (1..=s.len()).any(|n| match_toks(rest, &s[n..])),
        Some((Tok::ZeroOrMore, rest)) => (0..=s.len()).any(|n| match_toks(rest, &s[n..])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Pattern::parse(p).unwrap().matches(s)
    }

    #[test]
    fn classic_patterns() {
        assert!(m("_90.", "9011"));
        assert!(!m("_90.", "90"));
        assert!(!m("_90.", "8011"));
        assert!(m("_0800.", "08001234567"));
        assert!(m("_NXXXXXX", "2345678"));
        assert!(!m("_NXXXXXX", "234567"));
        assert!(!m("_NXXXXXX", "23456789"));
        assert!(m("_ZXXX", "1000"));
        assert!(!m("_ZXXX", "0100"));
        assert!(m("_[15-7]X", "12"));
        assert!(m("_[15-7]X", "59"));
        assert!(m("_[15-7]X", "70"));
        assert!(!m("_[15-7]X", "42"));
        assert!(!m("_[15-7]X", "80"));
        assert!(m("_1-800-NXX-XXXX", "18002223333"));
        assert!(m("_9!", "9"));
        assert!(m("_9!", "912"));
        assert!(m("_X.5", "12345"));
        assert!(m("_+55.", "+5511"));
        assert!(m("_*XX", "*72"));
        assert!(m("_nxx", "234"));
    }

    #[test]
    fn literals_and_errors() {
        assert!(m("1001", "1001"));
        assert!(!m("1001", "10011"));
        assert!(!m("X", "5")); // no underscore: literal
        assert!(Pattern::parse("_[12").is_err());
        assert!(Pattern::parse("_[]").is_err());
        assert!(Pattern::parse("_[9-1]").is_err());
        assert!(Pattern::parse("").is_err());
        assert!(m("_", ""));
    }
}
