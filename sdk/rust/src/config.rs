//! Typed JSON configuration.
//!
//! ```
//! #[derive(Debug, serde::Deserialize)]
//! struct Cfg { trunk: String, #[serde(default)] strip: usize }
//! let cfg: Cfg = strowger_sdk::config::parse(r#"{"trunk": "carrier"}"#).unwrap();
//! assert_eq!((cfg.trunk.as_str(), cfg.strip), ("carrier", 0));
//! let err = strowger_sdk::config::parse::<Cfg>(r#"{"strip": 2}"#).unwrap_err();
//! assert!(err.contains("trunk"), "{err}");
//! ```

use serde::de::DeserializeOwned;

pub use serde;
pub use serde_json;

/// Parse the plugin configuration into `T`. Empty or blank text counts as
/// `{}`. Errors name the problem with line and column, ready to be returned
/// from `init` (the host then refuses the plugin version with that message).
pub fn parse<T: DeserializeOwned>(json: &str) -> Result<T, String> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    serde_json::from_str(json).map_err(|e| format!("invalid configuration: {e}"))
}
