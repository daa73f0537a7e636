//! The OpenAPI 3 document served at `GET /openapi.json` (hand-written).

use serde_json::{Value, json};

fn op(summary: &str, write: bool, body: Option<&str>) -> Value {
    let mut o = json!({
        "summary": summary,
        "responses": {
            "200": {"description": "OK (JSON)"},
            "4XX": {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        }
    });
    if write {
        o["security"] = json!([{"bearer": []}]);
        o["responses"]["401"] = json!({"description": "Missing or wrong token", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    }
    if let Some(ct) = body {
        o["requestBody"] = json!({"required": true, "content": {ct: {"schema": {}}}});
    }
    o
}

/// The document.
pub(crate) fn document() -> Value {
    let j = Some("application/json");
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Strowger admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Writes need `Authorization: Bearer <token>`; reads are open (bind to 127.0.0.1). Every write is audited. Errors are JSON {error, field, detail}."
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "string"}, "field": {"type": "string", "nullable": true}, "detail": {}
                }}
            }
        },
        "paths": {
            "/healthz": {"get": op("Liveness", false, None)},
            "/readyz": {"get": op("Readiness (store reachable)", false, None)},
            "/metrics": {"get": op("Prometheus/OpenMetrics: plugin decisions, fallbacks, latency per plugin version; switch gauges", false, None)},
            "/openapi.json": {"get": op("This document", false, None)},
            "/v1/plugins": {
                "get": op("List stored plugin artifacts", false, None),
                "post": op("Upload a plugin component (raw .wasm body, ?name=); validated by loading it; 422 if bad", true, Some("application/wasm"))
            },
            "/v1/plugins/{sha256}": {
                "get": op("One plugin artifact and the policy versions using it", false, None),
                "delete": op("Delete an artifact (409 when a policy version uses it)", true, None)
            },
            "/v1/policies": {
                "get": op("List policy versions", false, None),
                "post": op("Create a policy version {comment, bindings:[{hook, plugin, config, datasets, scope, deadline_ms, fallback, memory_limit_bytes}], tests:[{name, hook, trunk, input, expect, allow_fallback}], activate}; built, initialised and tested before it is stored (422 with the diff otherwise)", true, j)
            },
            "/v1/policies/active": {"get": op("The active policy version", false, None)},
            "/v1/policies/{version}": {"get": op("One policy version", false, None)},
            "/v1/policies/{version}/activate": {"post": op("Activate (tests re-run; atomic swap; the running version stays on failure)", true, None)},
            "/v1/policies/{version}/canary": {"post": op("Send {percent} % of new calls to this version", true, j)},
            "/v1/policies/canary/promote": {"post": op("Make the canary the active version", true, None)},
            "/v1/policies/canary": {"delete": op("Stop the canary", true, None)},
            "/v1/policies/{version}/shadow": {
                "post": op("Run this version in shadow mode beside the active one (decisions compared, not acted on)", true, None),
                "delete": op("Stop shadow mode for this version", true, None),
            },
            "/v1/policies/shadow": {
                "get": op("Shadow version and decision counters (same, differ, error, dropped)", false, None),
                "delete": op("Stop shadow mode", true, None),
            },
            "/v1/policies/shadow/diffs": {"get": op("Recent decisions where the shadow differed (newest first; ?limit=N)", false, None)},
            "/v1/policies/rollback": {"post": op("Roll back to the previous active version, or to {version}", true, j)},
            "/v1/datasets": {"get": op("Data sets loaded in the runtime", false, None)},
            "/v1/datasets/{name}": {
                "get": op("Versions of a data set", false, None),
                "post": op("Import a new version (CSV key,value lines; # comments) and activate it atomically", true, Some("text/csv"))
            },
            "/v1/datasets/{name}/activate": {"post": op("Make stored version {version} of the data set the active one (atomic swap)", true, j)},
            "/v1/simulate": {"post": op("Run one hook {hook, input | call | register, trunk, version} and return the decision and a step trace", false, j)},
            "/v1/trunks": {"get": op("Trunk configurations", false, None)},
            "/v1/trunks/status": {"get": op("Live trunk status from the switch", false, None)},
            "/v1/trunks/{name}": {
                "get": op("One trunk", false, None),
                "put": op("Create or replace a trunk: the fields of a [[trunks]] table as a JSON object, checked with the configuration rules (400 with every problem; nothing applied) and used by the running switch at once", true, j),
                "delete": op("Delete a trunk", true, None)
            },
            "/v1/users": {"get": op("Users", false, None)},
            "/v1/users/{domain}/{user}": {
                "get": op("One user", false, None),
                "put": op("Create or replace a user ({password, ...}; password required): it may register and call at once", true, j),
                "delete": op("Delete a user", true, None)
            },
            "/v1/registrations": {
                "get": op("Current registrations", false, None),
                "delete": op("Remove registrations (?aor=, optional &contact=)", true, None)
            },
            "/v1/calls": {"get": op("Calls in progress", false, None)},
            "/v1/calls/{id}": {"delete": op("Hang up a call", true, None)},
            "/v1/cdrs": {"get": op("CDRs (?from=&to= Unix ms, &number=, &trunk=, &call_id=, &answered=1, &limit=, &offset=, &format=csv)", false, None)},
            "/v1/cdrs.csv": {"get": op("CDRs as CSV (same filters)", false, None)},
            "/v1/audit": {"get": op("Audit log (?from=&to=&limit=)", false, None)}
        }
    })
}
