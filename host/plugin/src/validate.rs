//! Contract checks on plugin answers. A plugin answer that fails them is
//! treated like a failure (`invalid-answer`) and the fallback applies.

use crate::pool::Resp;
use crate::types::*;

const MAX_ATTEMPTS: usize = 32;
const MAX_CONTACTS: usize = 16;
const MAX_STR: usize = 1024;

/// Text that ends up in SIP headers: no control characters (CR/LF would
/// inject headers), bounded length.
fn text(what: &str, s: &str) -> Result<(), String> {
    if s.len() > MAX_STR {
        return Err(format!("{what} is longer than {MAX_STR} bytes"));
    }
    if let Some(c) = s.chars().find(|c| c.is_control() && *c != '\t') {
        return Err(format!("{what} contains control character {c:?}"));
    }
    Ok(())
}

fn non_empty(what: &str, s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err(format!("{what} is empty"));
    }
    text(what, s)
}

fn opt(what: &str, s: &Option<String>) -> Result<(), String> {
    s.as_deref().map_or(Ok(()), |s| text(what, s))
}

fn token(what: &str, s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!("{what} {s:?} is not a valid header name"))
    }
}

fn reject(r: &Reject) -> Result<(), String> {
    if !(400..=699).contains(&r.code) {
        return Err(format!("reject code {} is outside 400..=699", r.code));
    }
    text("reject reason", &r.reason)
}

fn uri(what: &str, s: &str) -> Result<(), String> {
    non_empty(what, s)?;
    let lower = s.to_ascii_lowercase();
    if !(lower.starts_with("sip:") || lower.starts_with("sips:") || lower.starts_with("tel:")) {
        return Err(format!("{what} {s:?} is not a sip:, sips: or tel: URI"));
    }
    if s.contains(' ') {
        return Err(format!("{what} {s:?} contains a space"));
    }
    Ok(())
}

fn route(d: &RouteDecision) -> Result<(), String> {
    match d {
        RouteDecision::Reject(r) => reject(r),
        RouteDecision::Redirect(contacts) => {
            if contacts.is_empty() || contacts.len() > MAX_CONTACTS {
                return Err(format!(
                    "redirect needs 1..={MAX_CONTACTS} contacts, got {}",
                    contacts.len()
                ));
            }
            contacts.iter().try_for_each(|c| uri("redirect contact", c))
        }
        RouteDecision::Forward(f) => {
            if f.attempts.is_empty() {
                return Err("forward with no attempts".into());
            }
            if f.attempts.len() > MAX_ATTEMPTS {
                return Err(format!("forward with more than {MAX_ATTEMPTS} attempts"));
            }
            for (i, a) in f.attempts.iter().enumerate() {
                let n = i + 1;
                match &a.destination {
                    Destination::User(u) => non_empty(&format!("attempt {n} user"), u)?,
                    Destination::Trunk(t) => non_empty(&format!("attempt {n} trunk"), t)?,
                    Destination::TrunkGroup(g) => {
                        non_empty(&format!("attempt {n} trunk group"), g)?
                    }
                    Destination::Uri(u) => uri(&format!("attempt {n} uri"), u)?,
                }
                opt("a-number", &a.a_number)?;
                if let Some(b) = &a.b_number {
                    non_empty("b-number", b)?;
                }
                opt("display-name", &a.display_name)?;
                for h in &a.add_headers {
                    token("add-headers name", &h.name)?;
                    text("add-headers value", &h.value)?;
                }
                for h in &a.remove_headers {
                    token("remove-headers name", h)?;
                }
                if let Some(c) = &a.codecs {
                    for c in c {
                        non_empty("codec", c)?;
                    }
                }
                if a.ring_timeout_ms == Some(0) {
                    return Err(format!("attempt {n} ring-timeout-ms is 0"));
                }
            }
            for c in &f.retry_on {
                match c {
                    Cause::Status(s) if !(300..=699).contains(s) => {
                        return Err(format!("retry-on status {s} is outside 300..=699"));
                    }
                    Cause::StatusClass(k) if !(3..=6).contains(k) => {
                        return Err(format!("retry-on status class {k} is outside 3..=6"));
                    }
                    _ => {}
                }
            }
            Ok(())
        }
    }
}

fn authorize(d: &AuthDecision) -> Result<(), String> {
    match d {
        AuthDecision::Reject(r) => reject(r),
        AuthDecision::Challenge(c) => opt("challenge realm", &c.realm),
        AuthDecision::Accept(a) => match (a.min_expires, a.max_expires) {
            (Some(min), Some(max)) if min > max => {
                Err(format!("accept min-expires {min} > max-expires {max}"))
            }
            _ => Ok(()),
        },
        AuthDecision::Drop => Ok(()),
    }
}

fn portability(r: &Option<PortabilityResult>) -> Result<(), String> {
    let Some(r) = r else { return Ok(()) };
    text("number", &r.number)?;
    text("carrier", &r.carrier)?;
    non_empty("routing-number", &r.routing_number)
}

fn rewrite(n: &Numbers) -> Result<(), String> {
    text("a-number", &n.a_number)?;
    non_empty("b-number", &n.b_number)?;
    opt("display-name", &n.display_name)
}

/// Checks an answer against the contract.
pub(crate) fn answer(r: &Resp) -> Result<(), String> {
    match r {
        Resp::Route(d) => route(d),
        Resp::Authorize(d) => authorize(d),
        Resp::Portability(d) => portability(d),
        Resp::Rewrite(d) => rewrite(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwd(dest: Destination) -> RouteDecision {
        RouteDecision::Forward(Forward {
            attempts: vec![Attempt {
                destination: dest,
                a_number: None,
                b_number: None,
                display_name: None,
                add_headers: vec![],
                remove_headers: vec![],
                ring_timeout_ms: None,
                media: None,
                codecs: None,
            }],
            retry_on: vec![Cause::Status(503), Cause::StatusClass(5)],
            preferred_cause: PreferredCause::First,
        })
    }

    #[test]
    fn route_answers() {
        assert!(route(&fwd(Destination::Trunk("carrier-a".into()))).is_ok());
        assert!(route(&fwd(Destination::Uri("sip:1@10.0.0.1".into()))).is_ok());
        assert!(route(&fwd(Destination::Uri("http://x".into()))).is_err());
        assert!(route(&fwd(Destination::Trunk("a\r\nVia: x".into()))).is_err());
        assert!(route(&fwd(Destination::Trunk("".into()))).is_err());
        assert!(
            route(&RouteDecision::Reject(Reject {
                code: 200,
                reason: "OK".into()
            }))
            .is_err()
        );
        assert!(
            route(&RouteDecision::Reject(Reject {
                code: 404,
                reason: "Not Found".into()
            }))
            .is_ok()
        );
        assert!(route(&RouteDecision::Redirect(vec![])).is_err());
        assert!(
            route(&RouteDecision::Forward(Forward {
                attempts: vec![],
                retry_on: vec![],
                preferred_cause: PreferredCause::Last
            }))
            .is_err()
        );
    }

    #[test]
    fn other_answers() {
        assert!(
            authorize(&AuthDecision::Accept(Accept {
                max_expires: Some(60),
                min_expires: Some(120),
                max_contacts: None
            }))
            .is_err()
        );
        assert!(authorize(&AuthDecision::Drop).is_ok());
        assert!(
            rewrite(&Numbers {
                a_number: "1".into(),
                b_number: "".into(),
                display_name: None
            })
            .is_err()
        );
        assert!(portability(&None).is_ok());
    }
}
