//! Asterisk-style variable substitution: `${EXTEN}`, `${EXTEN:n}`,
//! `${EXTEN:n:m}`.
//!
//! ```
//! use strowger_sdk::template::{Template, substr};
//! let t = Template::parse("91${EXTEN:2}").unwrap();
//! assert_eq!(t.expand(|v| (v == "EXTEN").then_some("9011987654321")), "9111987654321");
//! // negative offset counts from the end, negative length drops from the end
//! assert_eq!(substr("5511987654321", -9, None), "987654321");
//! assert_eq!(substr("5511987654321", 2, Some(-9)), "11");
//! ```

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var {
        name: String,
        offset: i32,
        length: Option<i32>,
    },
}

/// A parsed template: literal text with `${NAME[:offset[:length]]}`
/// references. `$$` writes a single `$`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parse `text`; errors on an unterminated `${`, an empty name or a
    /// non-numeric offset/length.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(i) = rest.find('$') {
            lit.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(a) = after.strip_prefix('$') {
                lit.push('$');
                rest = a;
            } else if let Some(a) = after.strip_prefix('{') {
                let end = a
                    .find('}')
                    .ok_or_else(|| format!("unterminated `${{` in template `{text}`"))?;
                let inner = &a[..end];
                let mut it = inner.split(':');
                let name = it.next().unwrap_or("").trim();
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(format!("bad variable name `{name}` in template `{text}`"));
                }
                let num = |s: Option<&str>| -> Result<Option<i32>, String> {
                    s.map(|s| {
                        s.trim()
                            .parse::<i32>()
                            .map_err(|_| format!("bad number `{s}` in template `{text}`"))
                    })
                    .transpose()
                };
                let offset = num(it.next())?.unwrap_or(0);
                let length = num(it.next())?;
                if it.next().is_some() {
                    return Err(format!("too many `:` in template `{text}`"));
                }
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                parts.push(Part::Var {
                    name: name.to_string(),
                    offset,
                    length,
                });
                rest = &a[end + 1..];
            } else {
                lit.push('$');
                rest = after;
            }
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template { parts })
    }

    /// Names of the variables the template refers to.
    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var { name, .. } => Some(name.as_str()),
            Part::Lit(_) => None,
        })
    }

    /// True if the template has no variables.
    pub fn is_literal(&self) -> bool {
        self.vars().next().is_none()
    }

    /// Expand with `lookup` giving each variable's value (unknown → empty,
    /// as in Asterisk).
    pub fn expand<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var {
                    name,
                    offset,
                    length,
                } => out.push_str(substr(lookup(name).unwrap_or(""), *offset, *length)),
            }
        }
        out
    }
}

/// Asterisk substring `${VAR:offset:length}` on characters: a negative
/// `offset` counts from the end; a negative `length` leaves that many
/// characters off the end; `None` takes the rest. Out-of-range values clamp.
pub fn substr(s: &str, offset: i32, length: Option<i32>) -> &str {
    let idx: Vec<usize> = s
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(s.len()))
        .collect();
    let n = idx.len() as i64 - 1;
    let start = if offset < 0 {
        (n + offset as i64).max(0)
    } else {
        (offset as i64).min(n)
    };
    let end = match length {
        None => n,
        Some(l) if l < 0 => (n + l as i64).max(start),
        Some(l) => (start + l as i64).min(n),
    };
    &s[idx[start as usize]..idx[end as usize]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(t: &str, v: &str) -> String {
        Template::parse(t)
            .unwrap()
            .expand(|n| (n == "EXTEN").then_some(v))
    }

    #[test]
    fn asterisk_substrings() {
        assert_eq!(ex("${EXTEN}", "1234"), "1234");
        assert_eq!(ex("${EXTEN:1}", "91234"), "1234");
        assert_eq!(ex("${EXTEN:1:2}", "91234"), "12");
        assert_eq!(ex("${EXTEN:-4}", "91234"), "1234");
        assert_eq!(ex("${EXTEN:-4:2}", "91234"), "12");
        assert_eq!(ex("${EXTEN:0:-1}", "91234"), "9123");
        assert_eq!(ex("${EXTEN:10}", "91234"), "");
        assert_eq!(ex("${EXTEN:-10}", "91234"), "91234");
        assert_eq!(ex("0${EXTEN:2}@$$", "551133334444"), "01133334444@$");
        assert_eq!(ex("${OTHER}x", "1"), "x");
        assert_eq!(ex("cost $5", "1"), "cost $5");
    }

    #[test]
    fn parse_errors() {
        assert!(Template::parse("${EXTEN").is_err());
        assert!(Template::parse("${}").is_err());
        assert!(Template::parse("${EXTEN:a}").is_err());
        assert!(Template::parse("${EXTEN:1:2:3}").is_err());
        let t = Template::parse("${A}-${EXTEN:2}").unwrap();
        assert_eq!(t.vars().collect::<Vec<_>>(), ["A", "EXTEN"]);
        assert!(Template::parse("abc").unwrap().is_literal());
    }
}
