//! `e164-normalize`: number normalisation per trunk and direction.
//!
//! Each trunk (and `users`, for registered users; `default` for anything
//! else) has a numbering plan (`strowger_sdk::e164::Plan`: country code,
//! national prefix, international prefix, default area code for 8/9-digit
//! local numbers, carrier selection codes, Brazilian ninth digit) and:
//! - on **ingress**, numbers as received are normalised to E.164
//!   (`internal` format: `e164`, default, or `e164-plus`); numbers that
//!   are not full telephone numbers (extensions, short codes) are kept;
//! - on **egress**, E.164 numbers are written in the trunk's `egress_format`
//!   (`e164`, `e164-plus`, `national`, `prefixed`, `local`).
//!
//! `numbers` selects which of `a` and `b` are touched (default both).
//! A profile with `"ingress": false` or `"egress": false` leaves that
//! direction alone. Calls on trunks without a profile use `default`, or are
//! left unchanged if there is none.

pub mod normalize;

#[cfg(target_arch = "wasm32")]
strowger_sdk::export_rewriter!(normalize::Normalizer);
