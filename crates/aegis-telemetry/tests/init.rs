//! The global install: one test per process, so this binary has just one.

// Helpers outside `#[test]` functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;

use aegis_telemetry::{LogOptions, TelemetryError};
use serde_json::Value;

#[test]
fn init_installs_file_logging_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs/aegis.log");
    let options = LogOptions {
        level: "debug".into(),
        file: Some(path.clone()),
        console: true,
        ..LogOptions::new("validator-1")
    };
    let handle = aegis_telemetry::init(&options).unwrap();
    assert_eq!(handle.log_file().unwrap().path(), path);

    tracing::warn!(peer_id = "peer-2", "Peer slow");
    let line_no = line!() + 1;
    log::info!("From the log crate");

    let lines: Vec<Value> = fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    // RUST_LOG/AEGIS_LOG from the environment could filter these out; CI does not set them.
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["level"], "WARNING");
    assert_eq!(lines[0]["node_id"], "validator-1");
    assert_eq!(lines[0]["peer_id"], "peer-2");
    assert_eq!(lines[1]["message"], "From the log crate");
    assert_eq!(lines[1]["module"], "init");
    assert_eq!(lines[1]["logger"], "init");
    assert_eq!(lines[1]["line"], line_no);
    assert!(lines[1].get("log.target").is_none(), "{:?}", lines[1]);

    let second = aegis_telemetry::init(&options).unwrap_err();
    assert!(matches!(second, TelemetryError::AlreadyInitialized));
}
