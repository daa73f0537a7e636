//! Random identifiers: tags, branches, Call-IDs.
//!
//! Drawn from the thread-local CSPRNG (`rand::rng()`), encoded in a
//! URL/SIP-token-safe alphabet. No allocation beyond the returned `String`.

use rand::Rng;

const ALPHABET: &[u8; 64] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.";

fn random_token(prefix: &str, n: usize) -> String {
    let mut s = String::with_capacity(prefix.len() + n);
    s.push_str(prefix);
    let mut rng = rand::rng();
    let mut left = n;
    while left > 0 {
        let mut r: u64 = rng.random();
        for _ in 0..left.min(10) {
            s.push(ALPHABET[(r & 63) as usize] as char);
            r >>= 6;
        }
        left -= left.min(10);
    }
    s
}

/// The RFC 3261 branch magic cookie.
pub const BRANCH_COOKIE: &str = "z9hG4bK";

/// A new Via branch: `z9hG4bK` + 20 random characters (120 bits).
pub fn branch() -> String {
    random_token(BRANCH_COOKIE, 20)
}

/// A new From/To tag (10 characters, 60 bits).
pub fn tag() -> String {
    random_token("", 10)
}

/// A new Call-ID (22 random characters, 132 bits), optionally `@host`.
pub fn call_id(host: Option<&str>) -> String {
    let mut s = random_token("", 22);
    if let Some(h) = host {
        s.push('@');
        s.push_str(h);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let b = branch();
        assert!(b.starts_with("z9hG4bK") && b.len() == 27);
        assert_ne!(branch(), branch());
        assert_eq!(tag().len(), 10);
        assert!(call_id(Some("h")).ends_with("@h"));
        assert!(crate::Method::is_token(&tag()));
    }
}
