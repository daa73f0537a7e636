//! The OpenAPI 3 document served at `GET /openapi.json` (hand-written).

use serde_json::{Value, json};

fn op(summary: &str, body: Option<&str>) -> Value {
    let mut o = json!({
        "summary": summary,
        "responses": {
            "200": {"description": "OK (JSON)"},
            "4XX": {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        }
    });
    if let Some(ct) = body {
        o["requestBody"] = json!({"required": true, "content": {ct: {"schema": {}}}});
    }
    o
}

/// The document: every operation needs the bearer token except those of
/// [`crate::api::OPEN_PATHS`].
pub(crate) fn document() -> Value {
    let mut doc = paths();
    let err = json!({"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}});
    for (path, item) in doc["paths"].as_object_mut().into_iter().flatten() {
        let open = crate::api::OPEN_PATHS.contains(&path.as_str());
        for (_, o) in item.as_object_mut().into_iter().flatten() {
            if open {
                o["security"] = json!([]);
            } else {
                o["security"] = json!([{"bearer": []}]);
                o["responses"]["401"] =
                    json!({"description": "Missing or wrong token", "content": err.clone()});
            }
            if o.get("requestBody").is_some() {
                o["responses"]["413"] = json!({"description": "Body larger than the limit of this endpoint; nothing applied", "content": err.clone()});
            }
        }
    }
    doc
}

fn paths() -> Value {
    let j = Some("application/json");
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Strowger admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every operation needs `Authorization: Bearer <token>` (reads and POST /v1/simulate included) except /healthz, /readyz and /metrics; without it: 401. Secrets (user passwords, trunk secrets) are write-only: answers carry `<key>_set: true` instead. Bodies above the limit of the endpoint get 413 ([admin] max_body_bytes, max_plugin_bytes, max_dataset_bytes). Every write is audited (without secrets). Errors are JSON {error, field, detail}."
        },
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "string"}, "field": {"type": "string", "nullable": true}, "detail": {}
                }}
            }
        },
        "paths": {
            "/healthz": {"get": op("Liveness", None)},
            "/readyz": {"get": op("Readiness (store reachable)", None)},
            "/metrics": {"get": op("Metrics in the Prometheus text format 0.0.4, or OpenMetrics 1.0.0 when the Accept header asks for application/openmetrics-text: SIP requests and responses, transactions, retransmissions, calls by trunk and cause, registrations, failed authentications, bans, trunk state and latency, media relay, store, plugins", None)},
            "/v1/log/level": {
                "get": op("The log filter in force {level} (null when the process cannot change it)", None),
                "put": op("Change the log filter at run time {level}: a level (error, warn, info, debug, trace) or tracing directives like `info,strowger_switch=debug`; 400 with the reason when it does not parse (nothing changed)", j)
            },
            "/openapi.json": {"get": op("This document", None)},
            "/v1/plugins": {
                "get": op("List stored plugin artifacts", None),
                "post": op("Upload a plugin component (raw .wasm body, ?name=); validated by loading it; 422 if bad", Some("application/wasm"))
            },
            "/v1/plugins/{sha256}": {
                "get": op("One plugin artifact and the policy versions using it", None),
                "delete": op("Delete an artifact (409 when a policy version uses it)", None)
            },
            "/v1/policies": {
                "get": op("List policy versions", None),
                "post": op("Create a policy version {comment, bindings:[{hook, plugin, config, datasets, scope, deadline_ms, fallback, memory_limit_bytes}], tests:[{name, hook, trunk, input, expect, allow_fallback}], activate}; built, initialised and tested before it is stored (422 with the diff otherwise)", j)
            },
            "/v1/policies/active": {"get": op("The active policy version", None)},
            "/v1/policies/{version}": {"get": op("One policy version", None)},
            "/v1/policies/{version}/activate": {"post": op("Activate (tests re-run; atomic swap; the running version stays on failure)", None)},
            "/v1/policies/{version}/canary": {"post": op("Send {percent} % of new calls to this version", j)},
            "/v1/policies/canary/promote": {"post": op("Make the canary the active version", None)},
            "/v1/policies/canary": {"delete": op("Stop the canary", None)},
            "/v1/policies/{version}/shadow": {
                "post": op("Run this version in shadow mode beside the active one (decisions compared, not acted on)", None),
                "delete": op("Stop shadow mode for this version", None),
            },
            "/v1/policies/shadow": {
                "get": op("Shadow version and decision counters (same, differ, error, dropped)", None),
                "delete": op("Stop shadow mode", None),
            },
            "/v1/policies/shadow/diffs": {"get": op("Recent decisions where the shadow differed (newest first; ?limit=N)", None)},
            "/v1/policies/rollback": {"post": op("Roll back to the previous active version, or to {version}", j)},
            "/v1/datasets": {"get": op("Data sets loaded in the runtime {datasets:[{name, version, rows, bytes, layout}], loading:[{name, rows, bytes, phase, elapsed_ms}]} (loads in progress)", None)},
            "/v1/datasets/{name}": {
                "get": op("Versions of a data set", None),
                "post": op("Import a new version (CSV key,value lines; # comments) and activate it atomically", Some("text/csv"))
            },
            "/v1/datasets/{name}/activate": {"post": op("Make stored version {version} of the data set the active one (atomic swap)", j)},
            "/v1/simulate": {"post": op("Run one hook {hook, input | call | register, trunk, version} and return the decision and a step trace", j)},
            "/v1/trunks": {"get": op("Trunk configurations (secrets are write-only: `secret_set`, register_string with `***`)", None)},
            "/v1/trunks/status": {"get": op("Live trunk status from the switch", None)},
            "/v1/trunks/{name}": {
                "get": op("One trunk", None),
                "put": op("Create or replace a trunk: the fields of a [[trunks]] table as a JSON object, checked with the configuration rules (400 with every problem; nothing applied) and used by the running switch at once; `secret_set: true` without `secret` keeps the stored secret", j),
                "delete": op("Delete a trunk", None)
            },
            "/v1/users": {"get": op("Users (passwords are write-only: `password_set`)", None)},
            "/v1/users/{domain}/{user}": {
                "get": op("One user", None),
                "put": op("Create or replace a user ({password, ...}; password required, or `password_set: true` to keep the stored one): it may register and call at once", j),
                "delete": op("Delete a user", None)
            },
            "/v1/registrations": {
                "get": op("Current registrations", None),
                "delete": op("Remove registrations (?aor=, optional &contact=)", None)
            },
            "/v1/calls": {"get": op("Calls in progress", None)},
            "/v1/calls/{id}": {"delete": op("Hang up a call", None)},
            "/v1/cdrs": {"get": op("CDRs (?from=&to= Unix ms, &number=, &trunk=, &call_id=, &answered=1, &limit=, &offset=, &format=csv)", None)},
            "/v1/cdrs.csv": {"get": op("CDRs as CSV (same filters)", None)},
            "/v1/audit": {"get": op("Audit log (?from=&to=&limit=)", None)}
        }
    })
}
