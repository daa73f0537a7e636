//! `net-probe`: a route plugin that asks a routing service over TCP
//! (`std::net`), so its component imports `wasi:sockets`. Plugins get no
//! network: the runtime refuses this component at load, naming the import.
//! It exists for that test; do not deploy it.

wit_bindgen::generate!({
    world: "route",
    path: "../../../wit",
    generate_all,
});

use std::io::{Read, Write};

use exports::strowger::plugin::lifecycle::Guest as Lifecycle;
use exports::strowger::plugin::router::Guest as Router;
use strowger::plugin::routing_types::{Call, RouteDecision};
use strowger::plugin::types::Reject;

struct NetProbe;

impl Lifecycle for NetProbe {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }
}

impl Router for NetProbe {
    fn route(call: Call) -> Result<RouteDecision, String> {
        let mut s = std::net::TcpStream::connect("127.0.0.1:9").map_err(|e| e.to_string())?;
        s.write_all(call.b_number.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).map_err(|e| e.to_string())?;
        Ok(RouteDecision::Reject(Reject {
            code: 404,
            reason: answer,
        }))
    }
}

export!(NetProbe);
