//! The log file's JSON line shape, written to real files through a scoped subscriber.

// Helpers outside `#[test]` functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use aegis_telemetry::{JsonLayer, LogFile, TelemetryError};
use serde_json::{Map, Value};
use tracing_subscriber::layer::SubscriberExt;

fn subscriber(file: &LogFile) -> impl tracing::Subscriber + Send + Sync + 'static {
    tracing_subscriber::registry().with(JsonLayer::new("validator-1", file.clone()))
}

fn read_lines(path: &Path) -> Vec<Map<String, Value>> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| match serde_json::from_str(line).unwrap() {
            Value::Object(map) => map,
            other => panic!("line is not an object: {other}"),
        })
        .collect()
}

fn keys(line: &Map<String, Value>) -> BTreeSet<&str> {
    line.keys().map(String::as_str).collect()
}

fn is_rfc3339_millis_utc(text: &str) -> bool {
    let bytes = text.as_bytes();
    text.len() == 24
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            10 => *b == b'T',
            13 | 16 => *b == b':',
            19 => *b == b'.',
            23 => *b == b'Z',
            _ => b.is_ascii_digit(),
        })
}

#[test]
fn event_in_span_without_peer_or_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aegis.log");
    let file = LogFile::open(&path).unwrap();
    let line_no = tracing::subscriber::with_default(subscriber(&file), || {
        let span = tracing::info_span!("commit_block", height = 42u64);
        let _entered = span.enter();
        let line_no = line!() + 1;
        tracing::info!(txs = 3, "Block committed");
        line_no
    });

    let lines = read_lines(&path);
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    let expected: BTreeSet<&str> = [
        "timestamp",
        "level",
        "logger",
        "message",
        "module",
        "function",
        "line",
        "node_id",
        "height",
        "txs",
    ]
    .into();
    assert_eq!(keys(line), expected);
    assert!(
        is_rfc3339_millis_utc(line["timestamp"].as_str().unwrap()),
        "{line:?}"
    );
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["logger"], "json_lines");
    assert_eq!(line["message"], "Block committed");
    assert_eq!(line["module"], "json_lines");
    assert_eq!(line["function"], "commit_block");
    assert_eq!(line["line"], line_no);
    assert_eq!(line["node_id"], "validator-1");
    assert_eq!(line["height"], 42);
    assert_eq!(line["txs"], 3);
}

#[test]
fn peer_id_from_span_and_transaction_id_from_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aegis.log");
    let file = LogFile::open(&path).unwrap();
    tracing::subscriber::with_default(subscriber(&file), || {
        let outer = tracing::info_span!("peer", peer_id = "peer-7");
        let _outer = outer.enter();
        let inner = tracing::debug_span!("handle_message", kind = "tx");
        let _inner = inner.enter();
        tracing::warn!(transaction_id = "ab12", "Transaction rejected");
        // No transaction here: only peer_id from the span.
        tracing::error!(remote = %"203.0.113.45", "Authentication failed for peer from 203.0.113.45: bad certificate");
    });

    let lines = read_lines(&path);
    assert_eq!(lines.len(), 2);
    let standard = [
        "timestamp",
        "level",
        "logger",
        "message",
        "module",
        "function",
        "line",
        "node_id",
    ];

    let mut expected: BTreeSet<&str> = standard.into();
    expected.extend(["peer_id", "transaction_id", "kind"]);
    assert_eq!(keys(&lines[0]), expected);
    assert_eq!(lines[0]["level"], "WARNING");
    assert_eq!(lines[0]["peer_id"], "peer-7");
    assert_eq!(lines[0]["transaction_id"], "ab12");
    assert_eq!(lines[0]["function"], "handle_message");
    assert_eq!(lines[0]["kind"], "tx");

    let mut expected: BTreeSet<&str> = standard.into();
    expected.extend(["peer_id", "kind", "remote"]);
    assert_eq!(keys(&lines[1]), expected);
    assert_eq!(lines[1]["level"], "ERROR");
    assert_eq!(lines[1]["remote"], "203.0.113.45");

    // The guide's fail2ban regex `.*Authentication failed.*<HOST>.*` matches the raw line.
    let raw = fs::read_to_string(&path).unwrap();
    let auth_line = raw.lines().nth(1).unwrap();
    assert!(
        auth_line.contains("Authentication failed for peer from 203.0.113.45: bad certificate")
    );
}

#[test]
fn event_without_span_has_null_function_and_standard_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aegis.log");
    let file = LogFile::open(&path).unwrap();
    tracing::subscriber::with_default(subscriber(&file), || {
        tracing::info!(target: "aegis::storage", "Database opened");
    });
    let raw = fs::read_to_string(&path).unwrap();
    let line: Map<String, Value> = serde_json::from_str(raw.trim_end()).unwrap();
    assert_eq!(line["function"], Value::Null);
    assert_eq!(line["logger"], "aegis::storage");
    assert_eq!(line["module"], "json_lines");
    // Standard keys come first, in the documented order.
    let order = [
        "\"timestamp\"",
        "\"level\"",
        "\"logger\"",
        "\"message\"",
        "\"module\"",
        "\"function\"",
        "\"line\"",
        "\"node_id\"",
    ];
    let positions: Vec<usize> = order.iter().map(|key| raw.find(key).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{raw}");
    assert!(raw.starts_with("{\"timestamp\":"));
}

/// The crate's own macros name the function they are called from, with no span: every line
/// the node writes through them has `function`.
#[test]
fn the_crates_macros_name_the_calling_function() {
    fn open_database() {
        aegis_telemetry::info!(target: "aegis::storage", "Database opened");
    }
    fn refuse(peer: &str) {
        let closure = || aegis_telemetry::warn!(peer_id = %peer, "Refused {}", 3);
        closure();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aegis.log");
    let file = LogFile::open(&path).unwrap();
    tracing::subscriber::with_default(subscriber(&file), || {
        open_database();
        refuse("node2");
    });
    let lines = read_lines(&path);
    assert_eq!(lines[0]["function"], "open_database");
    assert_eq!(lines[0]["logger"], "aegis::storage");
    assert_eq!(lines[1]["function"], "refuse");
    assert_eq!(lines[1]["message"], "Refused 3");
    assert_eq!(lines[1]["peer_id"], "node2");
    assert_eq!(lines[1]["level"], "WARNING");
}

#[test]
fn function_field_and_instrumented_function() {
    #[tracing::instrument(fields(peer_id = %peer))]
    fn verify_signature(peer: &str) {
        tracing::debug!("Verifying");
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aegis.log");
    let file = LogFile::open(&path).unwrap();
    tracing::subscriber::with_default(subscriber(&file), || {
        verify_signature("peer-3");
        let span = tracing::info_span!("outer");
        let _entered = span.enter();
        tracing::info!(function = "apply_block", "Applying");
    });
    let lines = read_lines(&path);
    assert_eq!(lines[0]["function"], "verify_signature");
    assert_eq!(lines[0]["peer_id"], "peer-3");
    // `#[instrument]` records the argument too.
    assert_eq!(lines[0]["peer"], "peer-3");
    assert_eq!(lines[0]["level"], "DEBUG");
    assert_eq!(lines[1]["function"], "apply_block");
}

#[test]
fn fields_named_like_standard_keys_do_not_clobber() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aegis.log");
    let file = LogFile::open(&path).unwrap();
    tracing::subscriber::with_default(subscriber(&file), || {
        let span = tracing::info_span!("vote", node_id = "validator-9", message = "span text");
        let _entered = span.enter();
        tracing::info!(level = 5, line = "x", timestamp = 1, "Vote received");
    });
    let line = &read_lines(&path)[0];
    assert_eq!(line["node_id"], "validator-1");
    assert_eq!(line["field_node_id"], "validator-9");
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["field_level"], 5);
    assert_eq!(line["field_line"], "x");
    assert_eq!(line["field_timestamp"], 1);
    assert_eq!(line["message"], "Vote received");
    assert!(line["line"].is_u64());
}

#[test]
fn level_names_follow_python_logging() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aegis.log");
    let file = LogFile::open(&path).unwrap();
    tracing::subscriber::with_default(subscriber(&file), || {
        tracing::error!("e");
        tracing::warn!("w");
        tracing::info!("i");
        tracing::debug!("d");
        tracing::trace!("t");
    });
    let levels: Vec<Value> = read_lines(&path)
        .into_iter()
        .map(|line| line["level"].clone())
        .collect();
    assert_eq!(levels, ["ERROR", "WARNING", "INFO", "DEBUG", "TRACE"]);
    // `grep WARNING` finds the warning line and only it.
    let raw = fs::read_to_string(&path).unwrap();
    assert_eq!(raw.lines().filter(|l| l.contains("WARNING")).count(), 1);
}

#[test]
fn message_with_newlines_and_quotes_stays_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aegis.log");
    let file = LogFile::open(&path).unwrap();
    let error = std::io::Error::other("checksum mismatch");
    tracing::subscriber::with_default(subscriber(&file), || {
        tracing::error!(
            error = &error as &dyn std::error::Error,
            "Integrity \"check\"\nfailed"
        );
    });
    let raw = fs::read_to_string(&path).unwrap();
    assert_eq!(raw.lines().count(), 1);
    let line = &read_lines(&path)[0];
    assert_eq!(line["message"], "Integrity \"check\"\nfailed");
    assert_eq!(line["error"], "checksum mismatch");
}

#[test]
fn concurrent_threads_never_interleave_lines() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aegis.log");
    let file = LogFile::open(&path).unwrap();
    let dispatch = tracing::Dispatch::new(subscriber(&file));
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let dispatch = dispatch.clone();
            scope.spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for i in 0..PER_THREAD {
                        tracing::info!(thread, i, padding = "x".repeat(300), "Concurrent line");
                    }
                });
            });
        }
    });
    let lines = read_lines(&path);
    assert_eq!(lines.len(), THREADS * PER_THREAD);
    let distinct: BTreeSet<(u64, u64)> = lines
        .iter()
        .map(|l| (l["thread"].as_u64().unwrap(), l["i"].as_u64().unwrap()))
        .collect();
    assert_eq!(distinct.len(), THREADS * PER_THREAD);
}

#[test]
fn reopen_after_rename_writes_to_the_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aegis.log");
    let rotated = dir.path().join("aegis.log.1");
    let file = LogFile::open(&path).unwrap();
    tracing::subscriber::with_default(subscriber(&file), || {
        tracing::info!("before rotation");
        // What logrotate does before it sends SIGHUP.
        fs::rename(&path, &rotated).unwrap();
        tracing::info!("after rename, before reopen");
        file.reopen().unwrap();
        tracing::info!("after reopen");
    });
    let old: Vec<Value> = read_lines(&rotated)
        .into_iter()
        .map(|l| l["message"].clone())
        .collect();
    let new: Vec<Value> = read_lines(&path)
        .into_iter()
        .map(|l| l["message"].clone())
        .collect();
    assert_eq!(old, ["before rotation", "after rename, before reopen"]);
    assert_eq!(new, ["after reopen"]);
}

#[test]
fn open_creates_missing_parent_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("var/log/aegis/aegis.log");
    let file = LogFile::open(&path).unwrap();
    assert_eq!(file.path(), path);
    assert!(path.is_file());
}

#[test]
fn unopenable_path_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where a directory should be: fails even when the tests run as root.
    let blocker = dir.path().join("blocker");
    fs::write(&blocker, b"").unwrap();
    let path = blocker.join("aegis.log");
    let error = LogFile::open(&path).unwrap_err();
    assert!(matches!(error, TelemetryError::OpenLogFile { .. }));
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("cannot open log file {}: ", path.display())),
        "{message}"
    );

    // A directory at the file's path.
    let error = LogFile::open(dir.path()).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot open log file {}: ", dir.path().display())),
        "{error}"
    );
}

#[test]
fn failed_reopen_keeps_logging_to_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("logs");
    let path = log_dir.join("aegis.log");
    let rotated = dir.path().join("aegis.log.1");
    let file = LogFile::open(&path).unwrap();
    fs::rename(&path, &rotated).unwrap();
    fs::remove_dir(&log_dir).unwrap();
    // The parent is now a file, so reopening must fail.
    fs::write(&log_dir, b"").unwrap();
    let error = file.reopen().unwrap_err();
    assert!(error.to_string().contains(&path.display().to_string()));
    tracing::subscriber::with_default(subscriber(&file), || {
        tracing::info!("still logging");
    });
    assert_eq!(read_lines(&rotated)[0]["message"], "still logging");
}
