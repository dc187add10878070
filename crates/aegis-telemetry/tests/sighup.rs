//! A real SIGHUP, raised in this process, reopens the log file through the hub.
//!
//! This test binary installs a SIGHUP handler, so it has its own file: other test
//! binaries keep SIGHUP's default action.

// Helpers outside `#[test]` functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aegis_telemetry::{JsonLayer, LogFile, SighupHub, reopen_on_sighup};
use aegis_testkit::wait::wait_until;
use serde_json::Value;
use signal_hook::consts::SIGHUP;
use tracing_subscriber::layer::SubscriberExt;

const WAIT: Duration = Duration::from_secs(5);

fn messages(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line).unwrap();
            value["message"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn sighup_reopens_log_file_and_reaches_every_subscriber() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aegis.log");
    let rotated = dir.path().join("aegis.log.1");
    let file = LogFile::open(&path).unwrap();
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry().with(JsonLayer::new("validator-1", file.clone())),
    );

    let hub = SighupHub::start().unwrap();
    let tls_reloads = Arc::new(AtomicUsize::new(0));
    tracing::dispatcher::with_default(&dispatch, || {
        reopen_on_sighup(&hub, file.clone());
        let tls_reloads = Arc::clone(&tls_reloads);
        hub.subscribe("tls reload", move || {
            tls_reloads.fetch_add(1, Ordering::SeqCst);
        });
        hub.subscribe("panicking", || panic!("subscriber bug"));
        tracing::info!("before rotation");
    });

    fs::rename(&path, &rotated).unwrap();
    signal_hook::low_level::raise(SIGHUP).unwrap();
    wait_until(WAIT, "the SIGHUP dispatched", || hub.rounds() >= 1);

    tracing::dispatcher::with_default(&dispatch, || tracing::info!("after rotation"));
    assert_eq!(messages(&rotated), ["before rotation"]);
    assert_eq!(messages(&path), ["Log file reopened", "after rotation"]);
    // The panicking subscriber did not stop the one after it... nor the hub.
    assert_eq!(tls_reloads.load(Ordering::SeqCst), 1);

    signal_hook::low_level::raise(SIGHUP).unwrap();
    wait_until(WAIT, "the second SIGHUP dispatched", || hub.rounds() >= 2);
    assert_eq!(tls_reloads.load(Ordering::SeqCst), 2);
    drop(hub);
}
