//! `logging:`: the JSON log file, its level and the console copy.

use std::path::PathBuf;

use crate::file::LoggingFile;

use super::checker::Checker;

/// `logging:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggingConfig {
    pub file: PathBuf,
    pub level: LogLevel,
    pub console: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

pub(super) fn build_logging(ck: &mut Checker<'_, '_>, file: LoggingFile) -> LoggingConfig {
    let LoggingFile {
        file,
        level,
        console,
    } = file;
    let level = ck.choice(
        "logging.level",
        &level,
        &[
            ("trace", LogLevel::Trace),
            ("debug", LogLevel::Debug),
            ("info", LogLevel::Info),
            ("warn", LogLevel::Warn),
            ("warning", LogLevel::Warn),
            ("error", LogLevel::Error),
        ],
        LogLevel::Info,
    );
    LoggingConfig {
        file: ck.path("logging.file", &file),
        level,
        console,
    }
}
