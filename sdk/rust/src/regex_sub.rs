//! Regular-expression match and substitution in the form used by Khomp
//! SBCs and sed: `/regex/replacement/`.
//!
//! The first character is the delimiter (usually `/`; write `\/` for a
//! literal one). In the replacement `$1`…`$9` or `\1`…`\9` insert a capture
//! group (one digit, so `$1999` is group 1 then `999`), `${12}` or
//! `${name}` any group, `$0` / `&`-free `${0}` the whole match, `$$` a `$`.
//! A trailing `i` after the last delimiter makes the match case-insensitive.
//!
//! Syntax is that of the `regex-lite` crate (Perl-style, close to POSIX
//! ERE for telephone numbers: `[0-9]{8}`, `(a|b)`, `^…$`, `[[:digit:]]`).
//!
//! ```
//! use strowger_sdk::regex_sub::Substitution;
//! let s = Substitution::parse("/^48([0-9]{8})$/$1/").unwrap();
//! assert_eq!(s.apply("4833334444").as_deref(), Some("33334444"));
//! assert_eq!(s.apply("4733334444"), None);
//! let s = Substitution::parse("/^0([1-9][0-9])([0-9]{8,9})$/+55$1$2/").unwrap();
//! assert_eq!(s.apply("011987654321").as_deref(), Some("+5511987654321"));
//! ```

use regex_lite::{Captures, Regex};

/// Compile `pattern` with a clear error message.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| format!("bad regular expression `{pattern}`: {e}"))
}

/// One replacement element.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rep {
    Lit(String),
    Group(usize),
    Named(String),
}

/// A parsed `/regex/replacement/` substitution.
#[derive(Debug, Clone)]
pub struct Substitution {
    regex: Regex,
    replacement: Vec<Rep>,
}

impl Substitution {
    /// Parse `/regex/replacement/[i]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut chars = text.chars();
        let delim = chars
            .next()
            .ok_or_else(|| "empty substitution".to_string())?;
        if delim.is_alphanumeric() || delim == '\\' || delim.is_whitespace() {
            return Err(format!(
                "substitution `{text}` must look like /regex/replacement/"
            ));
        }
        let mut fields = vec![String::new()];
        let mut escaped = false;
        for c in chars {
            if escaped {
                if c != delim {
                    fields.last_mut().unwrap().push('\\');
                }
                fields.last_mut().unwrap().push(c);
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == delim {
                fields.push(String::new());
            } else {
                fields.last_mut().unwrap().push(c);
            }
        }
        if escaped {
            fields.last_mut().unwrap().push('\\');
        }
        if fields.len() != 3 {
            return Err(format!(
                "substitution `{text}` must look like {delim}regex{delim}replacement{delim}"
            ));
        }
        let flags = fields[2].as_str();
        let pattern = match flags {
            "" => fields[0].clone(),
            "i" => format!("(?i){}", fields[0]),
            f => return Err(format!("unknown flags `{f}` in substitution `{text}`")),
        };
        let regex = compile(&pattern)?;
        let replacement = parse_replacement(&fields[1], &regex)?;
        Ok(Substitution { regex, replacement })
    }

    /// Build from a regex and a replacement string (`$1` syntax).
    pub fn new(regex: &str, replacement: &str) -> Result<Self, String> {
        let regex = compile(regex)?;
        let replacement = parse_replacement(replacement, &regex)?;
        Ok(Substitution { regex, replacement })
    }

    /// True if the regex matches somewhere in `s` (anchor with `^…$`).
    pub fn is_match(&self, s: &str) -> bool {
        self.regex.is_match(s)
    }

    /// Replace the first match: `None` if the regex does not match.
    /// Text outside the match is kept, as in sed.
    pub fn apply(&self, s: &str) -> Option<String> {
        let caps = self.regex.captures(s)?;
        let m = caps.get(0)?;
        let mut out = String::with_capacity(s.len() + 8);
        out.push_str(&s[..m.start()]);
        expand(&self.replacement, &caps, &mut out);
        out.push_str(&s[m.end()..]);
        Some(out)
    }

    /// The compiled regex.
    pub fn regex(&self) -> &Regex {
        &self.regex
    }
}

fn expand(rep: &[Rep], caps: &Captures<'_>, out: &mut String) {
    for r in rep {
        match r {
            Rep::Lit(s) => out.push_str(s),
            Rep::Group(i) => out.push_str(caps.get(*i).map_or("", |m| m.as_str())),
            Rep::Named(n) => out.push_str(caps.name(n).map_or("", |m| m.as_str())),
        }
    }
}

fn parse_replacement(text: &str, regex: &Regex) -> Result<Vec<Rep>, String> {
    let groups = regex.captures_len();
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut chars = text.chars().peekable();
    let push_group = |lit: &mut String, out: &mut Vec<Rep>, rep: Rep| -> Result<(), String> {
        if let Rep::Group(i) = rep
            && i >= groups
        {
            return Err(format!(
                "replacement `{text}` refers to group {i} but the regex has {}",
                groups - 1
            ));
        }
        if let Rep::Named(n) = &rep
            && !regex.capture_names().flatten().any(|c| c == n)
        {
            return Err(format!(
                "replacement `{text}` refers to unknown group `{n}`"
            ));
        }
        if !lit.is_empty() {
            out.push(Rep::Lit(std::mem::take(lit)));
        }
        out.push(rep);
        Ok(())
    };
    while let Some(c) = chars.next() {
        match (c, chars.peek().copied()) {
            ('$', Some('$')) => {
                chars.next();
                lit.push('$');
            }
            ('$' | '\\', Some(d)) if d.is_ascii_digit() => {
                chars.next();
                push_group(&mut lit, &mut out, Rep::Group(d as usize - '0' as usize))?;
            }
            ('$', Some('{')) => {
                chars.next();
                let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                let rep = match name.parse::<usize>() {
                    Ok(i) => Rep::Group(i),
                    Err(_) if !name.is_empty() => Rep::Named(name),
                    Err(_) => return Err(format!("empty `${{}}` in replacement `{text}`")),
                };
                push_group(&mut lit, &mut out, rep)?;
            }
            (c, _) => lit.push(c),
        }
    }
    if !lit.is_empty() {
        out.push(Rep::Lit(lit));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(s: &str, input: &str) -> Option<String> {
        Substitution::parse(s).unwrap().apply(input)
    }

    #[test]
    fn khomp_forms() {
        assert_eq!(
            sub("/^48([0-9]{8})$/$1/", "4833334444").as_deref(),
            Some("33334444")
        );
        assert_eq!(sub("/^48([0-9]{8})$/$1/", "48333344445"), None);
        assert_eq!(
            sub("/^([0-9]{4})$/$1999/", "1234").as_deref(),
            Some("1234999")
        );
        assert_eq!(
            sub("/^([0-9]{4})$/${1}0/", "1234").as_deref(),
            Some("12340")
        );
        assert_eq!(sub("/^(?P<n>[0-9]+)$/x${n}/", "12").as_deref(), Some("x12"));
        assert_eq!(sub("/^0+//", "0011").as_deref(), Some("11"));
        assert_eq!(sub("|^(1)(2)$|\\2\\1|", "12").as_deref(), Some("21"));
        assert_eq!(sub("/^a\\/b$/ok/", "a/b").as_deref(), Some("ok"));
        assert_eq!(sub("/^sip$/SIP/i", "SiP").as_deref(), Some("SIP"));
        assert_eq!(sub("/9/$$/", "191").as_deref(), Some("1$1"));
        assert_eq!(
            sub("/^[[:digit:]]{3}$/$0$0/", "190").as_deref(),
            Some("190190")
        );
    }

    #[test]
    fn errors() {
        assert!(Substitution::parse("").is_err());
        assert!(Substitution::parse("abc").is_err());
        assert!(Substitution::parse("/a/b").is_err());
        assert!(Substitution::parse("/a/b/c/").is_err());
        assert!(Substitution::parse("/(a/b/").is_err());
        assert!(Substitution::parse("/(a)/$2/").is_err());
        assert!(Substitution::parse("/(a)/${x}/").is_err());
        assert!(Substitution::parse("/a/b/g/").is_err());
    }
}
