//! `br-portability`: Brazilian number portability from host data sets.
//!
//! 1. The B number is reduced to its national significant number (area
//!    code + subscriber, 10 or 11 digits) by the `normalize` regexes, tried
//!    in order; the first that matches gives the number in its capture
//!    group 1 (defaults remove `+55`/`55`, the national prefix `0` and a
//!    carrier selection code `0xx`). No regex matches → no lookup
//!    (`Ok(None)`: short codes, international numbers).
//! 2. The ported-numbers data set (`ported_dataset`, default `br-ported`,
//!    rows `number,RN1`) is looked up by exact key → `ported = true`.
//! 3. Otherwise the number-range data set (`ranges_dataset`, default
//!    `br-ranges`, rows `prefix,RN1`) by longest prefix → `ported = false`.
//! 4. `routing-number` = `routing_format` expanded with `${RN1}` and
//!    `${NUMBER}`; default `${RN1}${NUMBER}`, i.e. `55` + the 3-digit
//!    carrier code + national number for 5-digit RN1 values like `55321`
//!    (set `55${RN1}${NUMBER}` if your data holds 3-digit codes).
//!
//! A value may carry more columns after the RN1 (`55321;VIVO`): only the
//! part before the first `;` or `,` or space is used.

pub mod lookup;

#[cfg(target_arch = "wasm32")]
strowger_sdk::export_portability!(lookup::BrPortability);
