//! `bench-prefix-rust`: the Rust twin of `benches/plugins/bench-prefix-go`,
//! the benchmark's routing policy (benches/README.md): replace a called-number
//! prefix and forward to one trunk. Same configuration, same answers, so the
//! two compare the languages, not the logic
//! (`host/plugin/benches/decisions.rs`). Config (JSON):
//!
//! ```json
//! {"from": "90", "to": "91", "trunk": "bench-uas"}
//! ```
//!
//! Numbers without the prefix are refused with 404.

use strowger_sdk::route::*;

/// The plugin configuration.
#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    from: String,
    #[serde(default)]
    to: String,
    trunk: String,
}

/// The router: the configuration, digested once per instance by `init`.
#[derive(Default)]
pub struct PrefixRouter {
    cfg: Config,
}

impl strowger_sdk::Router for PrefixRouter {
    fn init(&mut self, config: &str) -> Result<(), String> {
        let cfg: Config = strowger_sdk::config::parse(config)?;
        if cfg.from.is_empty() || cfg.trunk.is_empty() {
            return Err(r#""from" and "trunk" are required"#.into());
        }
        self.cfg = cfg;
        Ok(())
    }

    fn route(&self, call: Call) -> Result<RouteDecision, String> {
        let Some(rest) = call.b_number.strip_prefix(self.cfg.from.as_str()) else {
            return Ok(RouteDecision::reject(404, "No route"));
        };
        let mut attempt = Attempt::to(Destination::Trunk(self.cfg.trunk.clone()));
        attempt.b_number = Some(format!("{}{rest}", self.cfg.to));
        Ok(RouteDecision::forward(vec![attempt]))
    }
}

#[cfg(target_arch = "wasm32")]
strowger_sdk::export_router!(PrefixRouter);

#[cfg(test)]
mod tests {
    use super::*;
    use strowger_sdk::Router;

    fn call(b: &str) -> Call {
        let party = |u: &str| Party {
            uri: format!("sip:{u}@127.0.0.1"),
            user: u.into(),
            host: "127.0.0.1".into(),
            display_name: None,
        };
        Call {
            call_id: "t1".into(),
            ingress: Ingress::Trunk("bench-uac".into()),
            source: Endpoint {
                ip: "127.0.0.1".into(),
                port: 5070,
                transport: strowger_sdk::Transport::Udp,
            },
            request_uri: format!("sip:{b}@127.0.0.1"),
            a_number: "1000".into(),
            b_number: b.into(),
            display_name: None,
            from: party("1000"),
            to: party(b),
            pai: None,
            diversion: vec![],
            headers: vec![],
            codecs: vec![],
            portability: None,
            time: strowger_sdk::testing::datetime(2026, 11, 23, 1, 9, 0),
        }
    }

    fn router(config: &str) -> Result<PrefixRouter, String> {
        let mut r = PrefixRouter::default();
        r.init(config).map(|()| r)
    }

    #[test]
    fn rewrites_the_prefix_and_forwards() {
        let r = router(r#"{"from": "90", "to": "91", "trunk": "bench-uas"}"#).unwrap();
        let RouteDecision::Forward(f) = r.route(call("9012345")).unwrap() else {
            panic!("not forwarded");
        };
        assert_eq!(f.attempts.len(), 1);
        assert!(matches!(&f.attempts[0].destination, Destination::Trunk(t) if t == "bench-uas"));
        assert_eq!(f.attempts[0].b_number.as_deref(), Some("9112345"));
        assert!(
            matches!(r.route(call("8012345")).unwrap(), RouteDecision::Reject(j) if j.code == 404)
        );
    }

    #[test]
    fn bad_config_refused() {
        assert!(router(r#"{"from": "90", "trunk": ""}"#).is_err());
        assert!(router(r#"{"from": "90", "trunk": "t", "typo": 1}"#).is_err());
    }
}
