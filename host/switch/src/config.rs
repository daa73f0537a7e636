//! Switch configuration (TOML). Being written; see the config engineer's section.
