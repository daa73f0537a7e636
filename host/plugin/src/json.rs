//! The JSON form of hook inputs, with defaults.
//!
//! Inputs for `strowger plugin test`, policy test cases and the admin API's
//! simulate endpoint may give only the fields they care about: the given
//! JSON is merged over a complete example request ([`example_call`] etc.).
//! Objects merge field by field; an object whose keys are not all fields of
//! the example (e.g. a different enum variant such as `{"User": "..."}` over
//! `{"Trunk": "..."}`) replaces the example's value wholesale, as do arrays
//! and scalars.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Hook;
use crate::host::datetime_from_unix_ms;
use crate::types::*;

/// The time used by the examples: 2026-11-23 14:30:00 UTC (a Monday), shown at UTC-3.
pub fn example_time() -> Datetime {
    datetime_from_unix_ms(1_795_444_200_000, -180)
}

fn party(uri: &str, user: &str, host: &str) -> Party {
    Party {
        uri: uri.into(),
        user: user.into(),
        host: host.into(),
        display_name: None,
    }
}

/// A complete example call: from trunk `carrier-a`, 551133334444 → 5511999990000.
pub fn example_call() -> Call {
    Call {
        call_id: "c-0001".into(),
        ingress: Ingress::Trunk("carrier-a".into()),
        source: Endpoint {
            ip: "192.0.2.10".into(),
            port: 5060,
            transport: Transport::Udp,
        },
        request_uri: "sip:5511999990000@switch.example".into(),
        a_number: "551133334444".into(),
        b_number: "5511999990000".into(),
        display_name: Some("Alice".into()),
        from: party(
            "sip:551133334444@carrier-a.example",
            "551133334444",
            "carrier-a.example",
        ),
        to: party(
            "sip:5511999990000@switch.example",
            "5511999990000",
            "switch.example",
        ),
        pai: None,
        diversion: vec![],
        headers: vec![Header {
            name: "User-Agent".into(),
            value: "carrier-a-sbc".into(),
        }],
        codecs: vec!["PCMA".into(), "PCMU".into(), "telephone-event".into()],
        portability: None,
        time: example_time(),
    }
}

/// A complete example REGISTER authorization request for `sip:1001@example.com`.
pub fn example_auth_request() -> AuthRequest {
    AuthRequest {
        method: "REGISTER".into(),
        aor: "sip:1001@example.com".into(),
        user: "1001".into(),
        domain: "example.com".into(),
        auth_user: Some("1001".into()),
        credentials: Credentials::Valid,
        known_user: true,
        source: Endpoint {
            ip: "198.51.100.7".into(),
            port: 5060,
            transport: Transport::Udp,
        },
        ingress: Ingress::Unknown,
        user_agent: Some("Yealink SIP-T46U".into()),
        contacts: vec!["sip:1001@198.51.100.7:5060".into()],
        expires: Some(3600),
        registration: RegistrationState::None,
        contact_count: 0,
        time: example_time(),
    }
}

/// A complete example portability query.
pub fn example_portability_query() -> PortabilityQuery {
    PortabilityQuery {
        number: "5511999990000".into(),
        a_number: "551133334444".into(),
        ingress: Ingress::Trunk("carrier-a".into()),
        time: example_time(),
    }
}

/// A complete example ingress rewrite request (national numbers from `carrier-a`).
pub fn example_rewrite_request() -> RewriteRequest {
    RewriteRequest {
        direction: Direction::Ingress,
        trunk: Some("carrier-a".into()),
        ingress: Ingress::Trunk("carrier-a".into()),
        numbers: Numbers {
            a_number: "1133334444".into(),
            b_number: "011999990000".into(),
            display_name: None,
        },
        time: example_time(),
    }
}

/// The example input of `hook` as JSON.
pub fn example_input(hook: Hook) -> Value {
    match hook {
        Hook::Route => serde_json::to_value(example_call()),
        Hook::Authorize => serde_json::to_value(example_auth_request()),
        Hook::Portability => serde_json::to_value(example_portability_query()),
        Hook::Rewrite => serde_json::to_value(example_rewrite_request()),
    }
    .unwrap_or(Value::Null)
}

/// Merges `over` onto `base` (see the module docs).
pub fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) if o.keys().all(|k| b.contains_key(k)) => {
            for (k, v) in o {
                if let Some(slot) = b.get_mut(&k) {
                    merge(slot, v);
                }
            }
        }
        (b, o) => *b = o,
    }
}

fn with_defaults<T: DeserializeOwned>(hook: Hook, partial: Value) -> Result<T, serde_json::Error> {
    let mut v = example_input(hook);
    merge(&mut v, partial);
    serde_json::from_value(v)
}

/// A [`Call`] from partial JSON merged over [`example_call`].
pub fn call_from_json(partial: Value) -> Result<Call, serde_json::Error> {
    with_defaults(Hook::Route, partial)
}

/// An [`AuthRequest`] from partial JSON merged over [`example_auth_request`].
pub fn auth_request_from_json(partial: Value) -> Result<AuthRequest, serde_json::Error> {
    with_defaults(Hook::Authorize, partial)
}

/// A [`PortabilityQuery`] from partial JSON merged over [`example_portability_query`].
pub fn portability_query_from_json(partial: Value) -> Result<PortabilityQuery, serde_json::Error> {
    with_defaults(Hook::Portability, partial)
}

/// A [`RewriteRequest`] from partial JSON merged over [`example_rewrite_request`].
pub fn rewrite_request_from_json(partial: Value) -> Result<RewriteRequest, serde_json::Error> {
    with_defaults(Hook::Rewrite, partial)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn partial_inputs_merge() {
        let c = call_from_json(
            json!({"b_number": "loop", "ingress": {"User": "sip:1001@example.com"}}),
        )
        .unwrap();
        assert_eq!(c.b_number, "loop");
        assert_eq!(c.ingress, Ingress::User("sip:1001@example.com".into()));
        assert_eq!(c.a_number, "551133334444");
        let c = call_from_json(json!({"source": {"port": 5080}})).unwrap();
        assert_eq!(c.source.port, 5080);
        assert_eq!(c.source.ip, "192.0.2.10");
        let r = rewrite_request_from_json(json!({"direction": "Egress", "trunk": null})).unwrap();
        assert_eq!(r.direction, Direction::Egress);
        assert_eq!(r.trunk, None);
        assert!(call_from_json(json!({"b_number": 5})).is_err());
        for h in Hook::ALL {
            assert!(example_input(h).is_object());
        }
    }
}
