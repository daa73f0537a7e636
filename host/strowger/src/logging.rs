//! The log of `strowger serve`: text or JSON lines on stderr, a filter that
//! the admin API changes at run time (`PUT /v1/log/level`).
//!
//! Format: `[log] format` (`text` | `json`), overridden by
//! `$STROWGER_LOG_FORMAT`. Filter: `[log] level`, overridden by
//! `$STROWGER_LOG`. Text lines carry ANSI colours only when stderr is a
//! terminal and `$NO_COLOR` is not set, so a log file or a journal gets
//! plain text.

use std::io::IsTerminal;

use std::sync::Mutex;
use strowger_switch::config::{LogConfig, LogFormat};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// Environment variable overriding `[log] level`.
pub const LEVEL_ENV: &str = "STROWGER_LOG";
/// Environment variable overriding `[log] format`.
pub const FORMAT_ENV: &str = "STROWGER_LOG_FORMAT";

/// Longest filter accepted over the API.
const MAX_FILTER_LEN: usize = 1024;

/// Changes the log filter of the running process.
pub struct LogHandle {
    reload: reload::Handle<EnvFilter, Registry>,
    current: Mutex<String>,
}

impl LogHandle {
    /// The filter in force.
    pub fn filter(&self) -> String {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the filter (`tracing` directive syntax). An invalid filter
    /// is refused with the reason and changes nothing.
    pub fn set_filter(&self, filter: &str) -> Result<String, String> {
        let f = parse_filter(filter)?;
        let text = filter.trim().to_string();
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        self.reload
            .reload(f)
            .map_err(|e| format!("the log filter could not be replaced: {e}"))?;
        *cur = text.clone();
        Ok(text)
    }
}

/// Parses a filter; the error says what is wrong.
pub fn parse_filter(filter: &str) -> Result<EnvFilter, String> {
    let t = filter.trim();
    if t.is_empty() {
        return Err("the log filter is empty: give a level (error, warn, info, debug, trace) or directives like `info,strowger_switch=debug`".into());
    }
    if t.len() > MAX_FILTER_LEN {
        return Err(format!(
            "the log filter is {} bytes long (at most {MAX_FILTER_LEN})",
            t.len()
        ));
    }
    EnvFilter::builder()
        .with_regex(false)
        .parse(t)
        .map_err(|e| format!("invalid log filter `{t}`: {e}"))
}

/// Installs the process's log subscriber. `$STROWGER_LOG` and
/// `$STROWGER_LOG_FORMAT` win over `cfg`; an invalid value of either (or
/// of `cfg`) is an error that names it.
pub fn init(cfg: &LogConfig) -> anyhow::Result<std::sync::Arc<LogHandle>> {
    let format = match std::env::var(FORMAT_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        Some(v) => v
            .parse::<LogFormat>()
            .map_err(|e| anyhow::anyhow!("{FORMAT_ENV}: {e}"))?,
        None => cfg.format,
    };
    let (text, filter) = match std::env::var(LEVEL_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        Some(v) => {
            let f = parse_filter(&v).map_err(|e| anyhow::anyhow!("{LEVEL_ENV}: {e}"))?;
            (v.trim().to_string(), f)
        }
        None => {
            let f = parse_filter(&cfg.level).map_err(|e| anyhow::anyhow!("log.level: {e}"))?;
            (cfg.level.trim().to_string(), f)
        }
    };
    let (filter_layer, reload) = reload::Layer::new(filter);
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let text_layer = (format == LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
    });
    let json_layer = (format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(std::io::stderr)
    });
    // a second init (tests calling `run` twice) keeps the first subscriber
    let _ = tracing_subscriber::registry()
        .with(filter_layer)
        .with(text_layer)
        .with(json_layer)
        .try_init();
    Ok(std::sync::Arc::new(LogHandle {
        reload,
        current: Mutex::new(text),
    }))
}
