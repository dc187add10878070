//! `aegis logs analyze [FILE]` and `aegis logs tail [FILE]`: the guide's `log_analyzer.sh`
//! and `live_log_monitor.sh`, on the node's JSON log (`logging.file` of the configuration
//! when FILE is not given).
//!
//! `analyze` reads the file once, line by line (each line at most [`MAX_LINE_BYTES`]), and
//! reports errors by hour, the most frequent errors and warnings, performance lines (slow,
//! timeout, latency) and P2P connection events. A line that is not a JSON object is counted
//! as malformed and otherwise skipped. Every table is bounded ([`MAX_DISTINCT_MESSAGES`],
//! [`MAX_HOURS`]).
//!
//! `tail` prints the last lines coloured by level, then follows the file: when it is rotated
//! (renamed and recreated, or truncated) it reopens the new file from its start, as
//! `tail -F` does.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, BufReader, IsTerminal, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::ops::logfile::{self, Level};

/// Longest line read; the rest of a longer one is skipped and the line counted malformed.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
/// Distinct messages counted for "most frequent"; later new ones are counted together.
pub const MAX_DISTINCT_MESSAGES: usize = 10_000;
/// Distinct hours counted for "errors by hour".
pub const MAX_HOURS: usize = 100_000;
/// Most frequent messages shown (the guide's `head -10`).
const TOP_MESSAGES: usize = 10;
/// Performance lines shown (the guide's `tail -20`).
const PERFORMANCE_LINES: usize = 20;
/// P2P events shown (the guide's `tail -50`).
const P2P_LINES: usize = 50;
/// How often `tail` looks for new lines and rotation.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Errors by hour, most frequent errors and warnings, performance lines and P2P
    /// connection events of a JSON log (the guide's log_analyzer.sh).
    Analyze(FileArgs),
    /// Print the last lines coloured by level and follow the log across rotations (the
    /// guide's live_log_monitor.sh).
    Tail(TailArgs),
}

#[derive(Debug, clap::Args)]
pub struct FileArgs {
    /// The log file (default: logging.file of the configuration).
    pub file: Option<PathBuf>,
    /// The node's configuration, for logging.file (default:
    /// $AEGIS_HOME/config/production.yaml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Lines printed before following.
    #[arg(short = 'n', long, default_value_t = 10)]
    pub lines: usize,
    /// Print the last lines and exit instead of following.
    #[arg(long)]
    pub no_follow: bool,
    /// Colour: `auto` (when standard output is a terminal), `always` or `never`.
    #[arg(long, default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub color: String,
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Analyze(args) => {
            let path = match log_path(&args) {
                Ok(path) => path,
                Err(message) => {
                    eprintln!("{message}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let analysis = analyze_file(&path)?;
            print!("{}", analysis.render(&path));
            Ok(ExitCode::SUCCESS)
        }
        Command::Tail(args) => {
            let path = match log_path(&args.file) {
                Ok(path) => path,
                Err(message) => {
                    eprintln!("{message}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let color = match args.color.as_str() {
                "always" => true,
                "never" => false,
                _ => std::io::stdout().is_terminal(),
            };
            tail(&path, args.lines, !args.no_follow, color)
        }
    }
}

fn log_path(args: &FileArgs) -> Result<PathBuf, String> {
    match &args.file {
        Some(file) => Ok(file.clone()),
        None => crate::ops::load_config(args.config.as_deref()).map(|config| config.logging.file),
    }
}

/// What `analyze` found.
#[derive(Debug, Default)]
pub struct Analysis {
    pub lines: u64,
    pub malformed: u64,
    pub by_level: BTreeMap<Level, u64>,
    /// ERROR lines by `YYYY-MM-DDTHH`.
    pub errors_by_hour: BTreeMap<String, u64>,
    pub error_messages: BoundedCounter,
    pub warning_messages: BoundedCounter,
    pub performance: VecDeque<String>,
    pub p2p: VecDeque<String>,
}

/// Counts of distinct strings, at most [`MAX_DISTINCT_MESSAGES`] of them.
#[derive(Debug, Default)]
pub struct BoundedCounter {
    counts: HashMap<String, u64>,
    /// Occurrences of messages that came after the table was full.
    pub others: u64,
}

impl BoundedCounter {
    fn add(&mut self, message: &str) {
        if let Some(count) = self.counts.get_mut(message) {
            *count += 1;
        } else if self.counts.len() < MAX_DISTINCT_MESSAGES {
            self.counts.insert(message.to_owned(), 1);
        } else {
            self.others += 1;
        }
    }

    /// The `n` most frequent, most first (ties by message).
    pub fn top(&self, n: usize) -> Vec<(&str, u64)> {
        let mut all: Vec<(&str, u64)> = self.counts.iter().map(|(m, c)| (m.as_str(), *c)).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        all.truncate(n);
        all
    }
}

fn push_bounded(queue: &mut VecDeque<String>, line: String, bound: usize) {
    if queue.len() == bound {
        queue.pop_front();
    }
    queue.push_back(line);
}

impl Analysis {
    fn add(&mut self, line: &str) {
        self.lines += 1;
        let Some(entry) = logfile::parse(line) else {
            self.malformed += 1;
            return;
        };
        let Some(level) = entry.level else {
            self.malformed += 1;
            return;
        };
        *self.by_level.entry(level).or_default() += 1;
        let timestamp = entry.timestamp.clone().unwrap_or_default();
        let shown = format!("{timestamp} {} {}", level.as_str(), entry.message);
        match level {
            Level::Error => {
                let hour = timestamp.get(..13).unwrap_or("unknown").to_owned();
                if self.errors_by_hour.len() < MAX_HOURS || self.errors_by_hour.contains_key(&hour)
                {
                    *self.errors_by_hour.entry(hour).or_default() += 1;
                }
                self.error_messages.add(&entry.message);
            }
            Level::Warning => self.warning_messages.add(&entry.message),
            _ => {}
        }
        let lower = entry.message.to_ascii_lowercase();
        if ["slow", "timeout", "timed out", "latency"]
            .iter()
            .any(|w| lower.contains(w))
        {
            push_bounded(&mut self.performance, shown.clone(), PERFORMANCE_LINES);
        }
        let p2p_logger = entry
            .logger
            .as_deref()
            .is_some_and(|l| l.starts_with("aegis_p2p"));
        let p2p_words = ["peer", "connection", "p2p"]
            .iter()
            .any(|w| lower.contains(w));
        let event_words = [
            "connected",
            "disconnected",
            "failed",
            "cannot connect",
            "refused",
            "banned",
        ]
        .iter()
        .any(|w| lower.contains(w));
        if (p2p_logger || p2p_words) && event_words {
            push_bounded(&mut self.p2p, shown, P2P_LINES);
        }
    }

    pub fn render(&self, path: &Path) -> String {
        let mut out = format!("=== AEGIS log analysis of {} ===\n", path.display());
        out.push_str(&format!(
            "Lines: {}, malformed (not JSON log lines): {}\n",
            self.lines, self.malformed
        ));
        let levels: Vec<String> = self
            .by_level
            .iter()
            .map(|(l, c)| format!("{} {c}", l.as_str()))
            .collect();
        out.push_str(&format!(
            "By level: {}\n",
            if levels.is_empty() {
                "none".to_owned()
            } else {
                levels.join(", ")
            }
        ));
        out.push_str("\n=== Error Analysis by Hour ===\n");
        let mut hours: Vec<(&String, &u64)> = self.errors_by_hour.iter().collect();
        hours.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        if hours.is_empty() {
            out.push_str("(no errors)\n");
        }
        for (hour, count) in hours {
            out.push_str(&format!("{count:>7} {hour}:00\n"));
        }
        for (title, counter) in [
            ("Most Frequent Errors", &self.error_messages),
            ("Most Frequent Warnings", &self.warning_messages),
        ] {
            out.push_str(&format!("\n=== {title} ===\n"));
            let top = counter.top(TOP_MESSAGES);
            if top.is_empty() {
                out.push_str("(none)\n");
            }
            for (message, count) in top {
                out.push_str(&format!("{count:>7} {message}\n"));
            }
            if counter.others > 0 {
                out.push_str(&format!(
                    "{:>7} (other messages, beyond {MAX_DISTINCT_MESSAGES} distinct ones)\n",
                    counter.others
                ));
            }
        }
        out.push_str("\n=== Performance Analysis (slow, timeout, latency) ===\n");
        if self.performance.is_empty() {
            out.push_str("(none)\n");
        }
        for line in &self.performance {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str("\n=== P2P Connection Analysis ===\n");
        if self.p2p.is_empty() {
            out.push_str("(none)\n");
        }
        for line in &self.p2p {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

/// Reads one line of at most [`MAX_LINE_BYTES`] into `line` (without its newline); `false`
/// at the end of the input. A longer line is cut there and the rest skipped.
fn read_line<R: BufRead>(reader: &mut R, line: &mut Vec<u8>) -> std::io::Result<bool> {
    line.clear();
    let read = reader
        .by_ref()
        .take(MAX_LINE_BYTES as u64)
        .read_until(b'\n', line)?;
    if read == 0 {
        return Ok(false);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if read == MAX_LINE_BYTES {
        // Too long: skip to the end of it.
        let mut rest = Vec::new();
        loop {
            rest.clear();
            let more = reader
                .by_ref()
                .take(MAX_LINE_BYTES as u64)
                .read_until(b'\n', &mut rest)?;
            if more == 0 || rest.last() == Some(&b'\n') {
                break;
            }
        }
        // Cut: not a whole JSON line, so it is counted malformed.
        line.clear();
        line.extend_from_slice(b"<line longer than the limit>");
    }
    Ok(true)
}

pub fn analyze_file(path: &Path) -> anyhow::Result<Analysis> {
    let (file, _) = aegis_fs::open_regular_file(path, u64::MAX)?;
    let mut reader = BufReader::new(file);
    let mut analysis = Analysis::default();
    let mut line = Vec::new();
    while read_line(&mut reader, &mut line)
        .map_err(|error| anyhow::anyhow!("read {}: {error}", path.display()))?
    {
        analysis.add(&String::from_utf8_lossy(&line));
    }
    Ok(analysis)
}

/// One line as `tail` shows it: `[LEVEL] timestamp logger: message key=value ...`, coloured.
pub fn format_line(line: &str, color: bool) -> String {
    let Some(entry) = logfile::parse(line) else {
        return line.to_owned();
    };
    let level = entry.level.map_or("?", Level::as_str);
    let mut extra = String::new();
    for (key, value) in &entry.fields {
        if matches!(
            key.as_str(),
            "timestamp" | "level" | "logger" | "message" | "module" | "function" | "line"
        ) {
            continue;
        }
        if value.is_null() {
            continue;
        }
        let value = value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_owned);
        extra.push_str(&format!(" {key}={value}"));
    }
    let tag = format!("[{level}]");
    let tag = match (color, entry.level) {
        (true, Some(Level::Error)) => format!("\x1b[0;31m{tag}\x1b[0m"),
        (true, Some(Level::Warning)) => format!("\x1b[1;33m{tag}\x1b[0m"),
        (true, Some(Level::Info)) => format!("\x1b[0;32m{tag}\x1b[0m"),
        _ => tag,
    };
    format!(
        "{tag} {} {}: {}{extra}",
        entry.timestamp.as_deref().unwrap_or("-"),
        entry.logger.as_deref().unwrap_or("-"),
        entry.message
    )
}

fn tail(path: &Path, count: usize, follow: bool, color: bool) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let last = match logfile::last_lines(path, count) {
        Ok(lines) => lines,
        Err(error) if follow && error.is_not_found() => Vec::new(),
        Err(error) => return Err(error.into()),
    };
    for line in &last {
        writeln!(out, "{}", format_line(line, color))?;
    }
    out.flush()?;
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    // Follow from the current end, by inode: a new file at the path is a rotation.
    let mut current = open_at_end(path);
    let mut pending = Vec::new();
    loop {
        if let Some((file, inode, position)) = current.as_mut() {
            let mut chunk = Vec::new();
            let read = std::io::Read::by_ref(file)
                .take(MAX_LINE_BYTES as u64)
                .read_to_end(&mut chunk)?;
            *position += read as u64;
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                writeln!(
                    out,
                    "{}",
                    format_line(String::from_utf8_lossy(&line[..end]).as_ref(), color)
                )?;
            }
            if pending.len() > MAX_LINE_BYTES {
                pending.clear();
            }
            out.flush()?;
            if read == 0 {
                let rotated = match std::fs::metadata(path) {
                    Ok(metadata) => metadata.ino() != *inode || metadata.len() < *position,
                    Err(_) => false,
                };
                if rotated {
                    // The old file is finished (logrotate moved it); the new one is read from
                    // its start.
                    current = open_from_start(path);
                    pending.clear();
                    continue;
                }
                std::thread::sleep(FOLLOW_POLL);
            }
        } else {
            std::thread::sleep(FOLLOW_POLL);
            current = open_from_start(path);
        }
    }
}

type Followed = (std::fs::File, u64, u64);

fn open_at_end(path: &Path) -> Option<Followed> {
    let (mut file, len) = aegis_fs::open_regular_file(path, u64::MAX).ok()?;
    let inode = file.metadata().ok()?.ino();
    file.seek(SeekFrom::Start(len)).ok()?;
    Some((file, inode, len))
}

fn open_from_start(path: &Path) -> Option<Followed> {
    let (file, _) = aegis_fs::open_regular_file(path, u64::MAX).ok()?;
    let inode = file.metadata().ok()?.ino();
    Some((file, inode, 0))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn analysis_counts_by_hour_and_message_and_survives_garbage() {
        let mut analysis = Analysis::default();
        for line in [
            r#"{"timestamp":"2026-12-05T10:01:00.000Z","level":"ERROR","logger":"aegis::x","message":"disk full"}"#,
            r#"{"timestamp":"2026-12-05T10:59:00.000Z","level":"ERROR","logger":"aegis::x","message":"disk full"}"#,
            r#"{"timestamp":"2026-12-05T11:00:00.000Z","level":"ERROR","logger":"aegis::x","message":"request timed out"}"#,
            r#"{"timestamp":"2026-12-05T11:00:01.000Z","level":"INFO","logger":"aegis_p2p::network","message":"Peer connected"}"#,
            r#"{"timestamp":"2026-12-05T11:00:02.000Z","level":"WARNING","logger":"aegis_p2p::network","message":"Cannot connect to peer 127.0.0.1:8001: refused"}"#,
            "not json at all",
            "{\"level\":",
        ] {
            analysis.add(line);
        }
        assert_eq!(analysis.lines, 7);
        assert_eq!(analysis.malformed, 2);
        assert_eq!(analysis.errors_by_hour["2026-12-05T10"], 2);
        assert_eq!(analysis.error_messages.top(1), vec![("disk full", 2)]);
        assert_eq!(analysis.performance.len(), 1);
        assert_eq!(analysis.p2p.len(), 2);
        let text = analysis.render(Path::new("aegis.log"));
        assert!(text.contains("      2 2026-12-05T10:00"), "{text}");
        assert!(text.contains("malformed (not JSON log lines): 2"), "{text}");
    }

    #[test]
    fn the_message_table_is_bounded() {
        let mut counter = BoundedCounter::default();
        for i in 0..MAX_DISTINCT_MESSAGES + 5 {
            counter.add(&format!("m{i}"));
        }
        counter.add("m0");
        assert_eq!(counter.others, 5);
        assert_eq!(counter.top(1), vec![("m0", 2)]);
    }

    #[test]
    fn long_lines_are_cut_not_fatal() {
        let mut input = vec![b'x'; MAX_LINE_BYTES * 2 + 10];
        input.push(b'\n');
        input.extend_from_slice(b"next\n");
        let mut reader = std::io::Cursor::new(input);
        let mut line = Vec::new();
        assert!(read_line(&mut reader, &mut line).unwrap());
        assert_eq!(line, b"<line longer than the limit>");
        assert!(read_line(&mut reader, &mut line).unwrap());
        assert_eq!(line, b"next");
        assert!(!read_line(&mut reader, &mut line).unwrap());
    }

    #[test]
    fn lines_are_shown_with_their_level_and_colour() {
        let line = r#"{"timestamp":"t","level":"ERROR","logger":"aegis::x","message":"boom","module":"m","function":null,"line":3,"node_id":"node0"}"#;
        assert_eq!(
            format_line(line, false),
            "[ERROR] t aegis::x: boom node_id=node0"
        );
        assert!(format_line(line, true).starts_with("\x1b[0;31m[ERROR]\x1b[0m"));
        assert_eq!(format_line("plain", true), "plain");
    }
}
