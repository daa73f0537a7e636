//! `route-table`: the no-code default router.
//!
//! Configured by JSON (see `example-config.json` and `README` below):
//! routes in priority order (0 highest; equal priority keeps file order).
//! Every enabled route whose filters all match the call becomes one
//! attempt, in that order; the host tries them serially and moves on to the
//! next one when a failure is in the retry causes ("retry resumes at the
//! next priority"). A route outside its time windows is skipped, so the
//! next matching route takes over ("transbordo"/overflow). When no route
//! matches, the call is rejected with `no_route` (default 404 "No route").
//!
//! Route fields (all optional except `destination`):
//! - `name`, `priority` (default 100), `enabled` (default true)
//! - `source`: list of `any`, `registered` (any registered user),
//!   `user:<name or AOR>`, `trunk:<name>`, `unknown`
//! - `b`, `a`: lists of number filters; a filter is `{"asterisk": "_90."}`,
//!   `{"freepbx": "012|."}`, `{"regex": "^48[0-9]{8}$"}`,
//!   `{"sub": "/^48([0-9]{8})$/$1/"}`, `{"exact": "1001"}` or a string
//!   (`_…` Asterisk, `/…/…/` substitution, containing `|` or `+` FreePBX,
//!   otherwise exact). The first matching `b` filter of type `freepbx` or
//!   `sub` also rewrites B (unless `b_rewrite` is given).
//! - `time`: list of time windows (any must match), see
//!   `strowger_sdk::time`
//! - `carriers`: portability carrier codes (RN1) the B number must belong
//!   to; `ported`: true/false to require a ported/non-ported number
//! - `destination`: `{"trunk": "x"}`, `{"trunk_group": "g"}`,
//!   `{"user": "${EXTEN}"}` (templates allowed), `{"uri": "sip:${EXTEN}@10.0.0.1"}`
//! - `b_rewrite` / `a_rewrite`: a template string (`91${EXTEN:2}`) or
//!   `{"strip": n, "prefix": "…", "sub": "/re/rep/", "template": "…"}`
//!   (applied in the order template, strip, prefix, sub);
//!   `display_name`: template
//! - `headers`: `{"add": {"X-Route": "${ROUTE}"}, "remove": ["X-Secret"]}`
//! - `ring_timeout_s`, `media` (`relay`|`bypass`), `codecs` (allow list)
//! - `retry_on`: causes that move on to the next route: status codes
//!   (`"503"`), classes (`"5xx"`), `"no-answer"`, `"unavailable"`,
//!   `"limit-reached"`
//!
//! Template variables: `EXTEN`/`B` (called number as received), `A`/
//! `CALLERID` (caller number), `ROUTE` (route name), `TRUNK` (ingress trunk),
//! `CARRIER` and `RN` (portability carrier / routing number).
//!
//! The WIT `forward` decision carries one retry list: it is the union of the
//! `retry_on` causes of every attempt but the last (the last one's causes
//! have nowhere to go), plus the top-level `retry_on`.

pub mod table;

#[cfg(target_arch = "wasm32")]
strowger_sdk::export_router!(table::RouteTable);
