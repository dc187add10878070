//! Installing the process-wide subscriber: log file, console and level filter.

use std::io::IsTerminal;
use std::path::PathBuf;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::{JsonLayer, LogFile, TelemetryError};

/// Where the log file goes unless the configuration says otherwise (SPEC.md, "Logs").
pub const DEFAULT_LOG_FILE: &str = "/var/log/aegis/aegis.log";

/// Environment variable that overrides the configured level; wins over `RUST_LOG`.
pub const AEGIS_LOG_ENV: &str = "AEGIS_LOG";

/// The conventional override, used when `AEGIS_LOG` is unset or empty.
pub const RUST_LOG_ENV: &str = "RUST_LOG";

/// How to set up logging. Built by the binary from the validated node configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// Written as `node_id` on every JSON line.
    pub node_id: String,
    /// `trace`, `debug`, `info`, `warn` (or `warning`) or `error`, case-insensitive.
    pub level: String,
    /// The JSON log file; `None` logs to the console only (development, tests).
    pub file: Option<PathBuf>,
    /// Whether to also write human-readable lines to stderr.
    pub console: bool,
}

impl LogOptions {
    /// Level `info`, file [`DEFAULT_LOG_FILE`], console on.
    pub fn new(node_id: impl Into<String>) -> Self {
        Self {
            node_id: node_id.into(),
            level: "info".into(),
            file: Some(PathBuf::from(DEFAULT_LOG_FILE)),
            console: true,
        }
    }
}

/// What [`init`] returns: the open log file, for reopening on SIGHUP.
///
/// There is nothing to flush on shutdown (writes are synchronous), so dropping this
/// handle does not stop logging.
#[derive(Debug, Clone)]
pub struct LogHandle {
    file: Option<LogFile>,
}

impl LogHandle {
    /// The log file, if one was configured. Pass a clone to [`crate::reopen_on_sighup`].
    pub fn log_file(&self) -> Option<&LogFile> {
        self.file.as_ref()
    }

    /// Reopens the log file (no-op without one).
    ///
    /// # Errors
    ///
    /// [`TelemetryError::OpenLogFile`] if the path cannot be opened.
    pub fn reopen(&self) -> Result<(), TelemetryError> {
        self.file.as_ref().map_or(Ok(()), LogFile::reopen)
    }
}

/// Installs the global subscriber: JSON lines to the log file, readable lines to stderr.
///
/// The level comes from `options.level` unless `AEGIS_LOG` or `RUST_LOG` is set (see
/// [`level_filter`]). Events from the `log` crate are forwarded too.
///
/// Call once, early in `main`. To reopen the file on SIGHUP, pass
/// `handle.log_file()` to [`crate::reopen_on_sighup`] or [`crate::spawn_sighup_reopen`].
///
/// # Errors
///
/// An invalid level or filter, an unopenable log file, or a subscriber already installed.
pub fn init(options: &LogOptions) -> Result<LogHandle, TelemetryError> {
    let filter = level_filter(
        &options.level,
        std::env::var(AEGIS_LOG_ENV).ok().as_deref(),
        std::env::var(RUST_LOG_ENV).ok().as_deref(),
    )?;
    let file = options.file.as_ref().map(LogFile::open).transpose()?;
    let json = file
        .clone()
        .map(|file| JsonLayer::new(options.node_id.clone(), file));
    let console = options.console.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            // `function` is for the JSON lines; on the console it would repeat on every line.
            .fmt_fields(tracing_subscriber::fmt::format::debug_fn(
                |writer, field, value| match field.name() {
                    "function" => Ok(()),
                    "message" => write!(writer, "{value:?}"),
                    name => write!(writer, " {name}={value:?}"),
                },
            ))
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(json)
        .with(console)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInitialized)?;
    Ok(LogHandle { file })
}

/// Builds the level filter: `aegis_log` if set and non-empty, else `rust_log`, else the
/// configured `level`.
///
/// The overrides take full `EnvFilter` directives (`info,aegis_consensus=debug`); the
/// configured level must be a plain level name so a typo in the config file is caught.
///
/// # Errors
///
/// [`TelemetryError::InvalidLevel`] or [`TelemetryError::InvalidFilter`].
pub fn level_filter(
    level: &str,
    aegis_log: Option<&str>,
    rust_log: Option<&str>,
) -> Result<EnvFilter, TelemetryError> {
    let configured = match level.trim().to_ascii_lowercase().as_str() {
        level @ ("trace" | "debug" | "info" | "warn" | "error") => level.to_string(),
        "warning" => "warn".to_string(),
        _ => {
            return Err(TelemetryError::InvalidLevel {
                level: level.to_string(),
            });
        }
    };
    let from_env = [(AEGIS_LOG_ENV, aegis_log), (RUST_LOG_ENV, rust_log)]
        .into_iter()
        .find_map(|(variable, value)| {
            value
                .filter(|value| !value.trim().is_empty())
                .map(|value| (variable, value))
        });
    match from_env {
        Some((variable, value)) => {
            EnvFilter::builder()
                .parse(value)
                .map_err(|error| TelemetryError::InvalidFilter {
                    variable,
                    value: value.to_string(),
                    message: error.to_string(),
                })
        }
        None => Ok(EnvFilter::new(configured)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_level_used_without_overrides() {
        let filter = level_filter("debug", None, None).unwrap();
        assert_eq!(filter.to_string(), "debug");
        let filter = level_filter("WARNING", None, Some("")).unwrap();
        assert_eq!(filter.to_string(), "warn");
    }

    #[test]
    fn aegis_log_wins_over_rust_log() {
        let filter = level_filter("info", Some("aegis_consensus=trace"), Some("error")).unwrap();
        assert_eq!(filter.to_string(), "aegis_consensus=trace");
        let filter = level_filter("info", Some("  "), Some("error")).unwrap();
        assert_eq!(filter.to_string(), "error");
    }

    #[test]
    fn bad_level_and_bad_directive_are_errors() {
        let err = level_filter("verbose", None, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid log level \"verbose\": expected one of trace, debug, info, warn, error"
        );
        let err = level_filter("info", Some("aegis=loud"), None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid filter in AEGIS_LOG=\"aegis=loud\"")
        );
    }
}
