//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Errors returned while setting up logging, signal handling or metrics encoding.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The log file (or its parent directory) could not be created or opened.
    #[error("cannot open log file {}: {source}", path.display())]
    OpenLogFile {
        /// The path that was being opened.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },

    /// The configured level is not one of `trace`, `debug`, `info`, `warn`, `error`.
    #[error("invalid log level {level:?}: expected one of trace, debug, info, warn, error")]
    InvalidLevel {
        /// The rejected level string.
        level: String,
    },

    /// `AEGIS_LOG` or `RUST_LOG` holds a filter directive that does not parse.
    #[error("invalid filter in {variable}={value:?}: {message}")]
    InvalidFilter {
        /// The environment variable the directive came from.
        variable: &'static str,
        /// The rejected directive.
        value: String,
        /// The parser's explanation.
        message: String,
    },

    /// A global tracing subscriber was already installed in this process.
    #[error("a global tracing subscriber is already installed")]
    AlreadyInitialized,

    /// The SIGHUP handler could not be registered.
    #[error("cannot register the SIGHUP handler: {0}")]
    Signal(#[source] io::Error),

    /// The SIGHUP dispatch thread could not be started.
    #[error("cannot start the SIGHUP dispatch thread: {0}")]
    SpawnThread(#[source] io::Error),

    /// A metric failed to encode into the text exposition format.
    #[error("cannot encode metrics: {0}")]
    EncodeMetrics(#[source] std::fmt::Error),
}
