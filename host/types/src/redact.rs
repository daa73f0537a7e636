//! Hiding secrets in text meant for logs, errors and API answers.

/// An Asterisk register string `user[:secret[:authuser]]@host...` with the
/// secret replaced by `***`. Without an `@` the whole string may be a
/// secret, so it is replaced entirely.
pub fn redact_register_string(s: &str) -> String {
    let Some((cred, rest)) = s.rsplit_once('@') else {
        return "***".into();
    };
    let mut parts: Vec<&str> = cred.splitn(3, ':').collect();
    if parts.len() >= 2 {
        parts[1] = "***";
    }
    format!("{}@{rest}", parts.join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_hidden_and_the_rest_kept() {
        assert_eq!(
            redact_register_string("bob:s3cret:auth@sip.example.com:5060/1000"),
            "bob:***:auth@sip.example.com:5060/1000"
        );
        assert_eq!(redact_register_string("bob@host"), "bob@host");
        assert_eq!(redact_register_string("s3cret"), "***");
    }
}
