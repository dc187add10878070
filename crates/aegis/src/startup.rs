//! `aegis run` up to a running logger, and what happens to start-up errors.
//!
//! Order: every preflight check (reads only), then the home lock (so a second process on a
//! running node's home is refused before it writes anything: not its log, not its data),
//! then logging. A problem found before logging starts is printed on stderr and, when the
//! configuration could be read and this process may write the home, also written to the
//! node's log file, where an operator following `logs/aegis.log` or journald looks for it.
//! An error that ends the node later is logged as well as printed.

use std::path::Path;
use std::process::ExitCode;

use aegis_config::NodeConfig;
use aegis_telemetry::{LogHandle, LogOptions};

use crate::home_lock::HomeLock;
use crate::preflight::{Preflight, preflight};

/// The logger of start-up lines.
const LOG_TARGET: &str = "aegis::startup";

/// A node that passed its checks, holds its home and logs.
#[derive(Debug)]
pub struct Started {
    pub node: Preflight,
    pub log: LogHandle,
    /// Held until the process ends: dropping it lets another process take the home.
    pub home_lock: HomeLock,
}

/// Runs the checks, takes the home lock and starts logging. On failure everything has
/// been reported (stderr, and the log file when possible); the caller exits with the code.
pub fn prepare(config_path: &Path) -> Result<Started, ExitCode> {
    let node = match preflight(config_path) {
        Ok(node) => node,
        Err(failure) => {
            eprintln!("{failure}");
            if let Some(config) = &failure.config {
                log_to_file(config, &failure.error.lines());
            }
            return Err(ExitCode::FAILURE);
        }
    };
    let home_lock = match HomeLock::acquire(&node.config) {
        Ok(lock) => lock,
        Err(error) => {
            // Not logged to the file: it is the running node's log, not ours.
            eprintln!("error: {error}");
            return Err(ExitCode::FAILURE);
        }
    };
    let logging = &node.config.logging;
    let log = match aegis_telemetry::init(&LogOptions {
        node_id: node.node_id.clone(),
        level: logging.level.as_str().to_owned(),
        file: Some(logging.file.clone()),
        console: logging.console,
    }) {
        Ok(log) => log,
        Err(error) => {
            eprintln!("error: start logging: {error}");
            return Err(ExitCode::FAILURE);
        }
    };
    Ok(Started {
        node,
        log,
        home_lock,
    })
}

/// Writes start-up problems to the node's log file as ERROR lines, if this process can
/// take the home lock (no other node runs there) and open the file. Best effort: stderr
/// already has them.
fn log_to_file(config: &NodeConfig, lines: &[String]) {
    let Ok(_lock) = HomeLock::acquire(config) else {
        return;
    };
    let node_id = config
        .node
        .id
        .clone()
        .or_else(|| std::env::var("AEGIS_NODE_ID").ok())
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    let options = LogOptions {
        node_id,
        level: "error".to_owned(),
        file: Some(config.logging.file.clone()),
        // stderr already has every line.
        console: false,
    };
    if aegis_telemetry::init(&options).is_err() {
        return;
    }
    for line in lines {
        aegis_telemetry::error!(target: LOG_TARGET, "AEGIS node cannot start: {line}");
    }
}

/// Reports an error that ends the running node once: as an ERROR line of the log (which
/// the console shows too when `logging.console` is on) and, with the console off, on
/// stderr as `error: …`.
pub fn report_failure(console: bool, error: &anyhow::Error) {
    aegis_telemetry::error!(target: LOG_TARGET, "AEGIS node failed: {error:#}");
    if !console {
        eprintln!("error: {error:#}");
    }
}

/// Reports an error that ends the node ([`report_failure`]) and turns it into the exit
/// code, so that it is not printed a second time by `main`.
pub fn logged(console: bool, result: anyhow::Result<ExitCode>) -> anyhow::Result<ExitCode> {
    match result {
        Ok(code) => Ok(code),
        Err(error) => {
            report_failure(console, &error);
            Ok(ExitCode::FAILURE)
        }
    }
}
