//! This crate's own test helpers: the node's real JSON log captured in a file, and a wait on
//! its lines. Nodes on loopback, certificates and waits come from `aegis_testkit`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use aegis_testkit::wait_async::wait_until;

/// Installs (once per test binary) a global subscriber writing the node's real JSON log
/// (aegis-telemetry's `JsonLayer` into a `LogFile`, as `aegis run` does) and returns the
/// file's path. Tests of one binary share it, so each looks only at lines naming its own
/// addresses (every test has its own `127.0.<net>.*`).
pub fn capture_log() -> &'static Path {
    use tracing_subscriber::layer::SubscriberExt;
    static LOG: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "aegis-p2p-test-{}-{}.log",
            std::env::args()
                .next()
                .and_then(|arg| Path::new(&arg)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned()))
                .unwrap_or_default(),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let file = aegis_telemetry::LogFile::open(&path).unwrap();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::INFO)
            .with(aegis_telemetry::JsonLayer::new("test", file));
        tracing::subscriber::set_global_default(subscriber).unwrap();
        path
    })
}

/// The JSON lines of the log file at `path`.
pub fn log_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Whether `line` is a WARNING whose message contains `text`.
pub fn is_warning_with(line: &serde_json::Value, text: &str) -> bool {
    line["level"] == "WARNING" && line["message"].as_str().is_some_and(|m| m.contains(text))
}

/// Polls the log at `path` until a WARNING line's message contains every one of `texts`.
pub async fn wait_for_warning(path: &Path, texts: &[&str]) {
    let found = || {
        log_lines(path)
            .iter()
            .any(|line| texts.iter().all(|text| is_warning_with(line, text)))
    };
    let what = || {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        format!(
            "a WARNING log line containing {texts:?} in {}:\n{log}",
            path.display()
        )
    };
    wait_until(Duration::from_secs(15), what, found).await;
}
