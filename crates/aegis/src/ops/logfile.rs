//! The node's JSON log as the tools read it: the last lines of a file of any size (read
//! from its end, bounded), and one line as its level, time, logger and message.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Most bytes read from the end of a log file for its last lines: 100 lines of the node's
/// log are a few tens of KiB; a line longer than this share is cut.
pub const MAX_TAIL_BYTES: u64 = 4 * 1024 * 1024;

/// The last `count` lines of `path` (fewer if the file has fewer, or if they do not fit in
/// [`MAX_TAIL_BYTES`]). Invalid UTF-8 is replaced, never fatal.
pub fn last_lines(path: &Path, count: usize) -> Result<Vec<String>, aegis_fs::ReadError> {
    let (mut file, len) = aegis_fs::open_regular_file(path, u64::MAX)?;
    let start = len.saturating_sub(MAX_TAIL_BYTES);
    let io = |source| aegis_fs::ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    file.seek(SeekFrom::Start(start)).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_TAIL_BYTES)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    // Started in the middle of the file: the first line is probably a piece of one.
    if start > 0 && !lines.is_empty() {
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(count);
    Ok(lines[skip..]
        .iter()
        .map(|line| (*line).to_owned())
        .collect())
}

/// The level of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Error,
    Warning,
    Info,
    Debug,
    Trace,
}

impl Level {
    pub fn parse(text: &str) -> Option<Level> {
        Some(match text.to_ascii_uppercase().as_str() {
            "ERROR" | "CRITICAL" | "FATAL" => Level::Error,
            "WARNING" | "WARN" => Level::Warning,
            "INFO" => Level::Info,
            "DEBUG" => Level::Debug,
            "TRACE" => Level::Trace,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warning => "WARNING",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        }
    }
}

/// One log line of the node's JSON format (operations.md#logs).
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub level: Option<Level>,
    /// RFC 3339, as written.
    pub timestamp: Option<String>,
    pub logger: Option<String>,
    pub message: String,
    /// The whole object, for fields beyond the standard ones.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// Parses one line; `None` when it is not a JSON object (a malformed line).
pub fn parse(line: &str) -> Option<Entry> {
    let serde_json::Value::Object(fields) = serde_json::from_str(line.trim()).ok()? else {
        return None;
    };
    let text = |key: &str| fields.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    Some(Entry {
        level: text("level").as_deref().and_then(Level::parse),
        timestamp: text("timestamp"),
        logger: text("logger"),
        message: text("message").unwrap_or_default(),
        fields,
    })
}

/// The level of a line that may not be JSON: the JSON `level` field, else the guide's
/// rule (the words ERROR or WARNING anywhere in the line, case-insensitive).
pub fn level_of(line: &str) -> Option<Level> {
    if let Some(entry) = parse(line) {
        return entry.level;
    }
    let upper = line.to_ascii_uppercase();
    if upper.contains("ERROR") {
        Some(Level::Error)
    } else if upper.contains("WARNING") {
        Some(Level::Warning)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_last_lines_of_a_big_file_are_read_from_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aegis.log");
        let mut text = String::new();
        for i in 0..200_000 {
            text.push_str(&format!(
                "{{\"level\":\"INFO\",\"message\":\"line {i}\"}}\n"
            ));
        }
        std::fs::write(&path, &text).unwrap();
        let lines = last_lines(&path, 3).unwrap();
        assert_eq!(lines.len(), 3);
        assert!(lines[2].contains("line 199999"), "{lines:?}");
        assert!(lines[0].contains("line 199997"));
        std::fs::write(&path, "one\ntwo\n").unwrap();
        assert_eq!(last_lines(&path, 100).unwrap(), vec!["one", "two"]);
    }

    #[test]
    fn lines_parse_and_malformed_ones_are_not_fatal() {
        let entry = parse(
            r#"{"timestamp":"2026-11-27T23:28:56.609Z","level":"WARNING","logger":"aegis_p2p::network","message":"No peers available","node_id":"node0"}"#,
        )
        .unwrap();
        assert_eq!(entry.level, Some(Level::Warning));
        assert_eq!(entry.message, "No peers available");
        assert_eq!(entry.timestamp.as_deref(), Some("2026-11-27T23:28:56.609Z"));
        assert_eq!(parse("not json"), None);
        assert_eq!(parse("[1,2]"), None);
        assert_eq!(level_of("2026 ERROR something"), Some(Level::Error));
        assert_eq!(
            level_of("{\"level\":\"INFO\",\"message\":\"an ERROR word\"}"),
            Some(Level::Info)
        );
    }
}
