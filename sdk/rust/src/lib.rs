//! Strowger plugin SDK for Rust (skeleton).
