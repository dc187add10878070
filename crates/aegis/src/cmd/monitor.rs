//! `aegis monitor [--nodes URL,...] [--config FILE]`: the guide's `live_monitor.sh` as a
//! terminal screen over every node of a network: per node its status, sync state, height,
//! committed transactions per second, mean commit latency, peers, CPU and memory, and the
//! latest errors of the log; refreshed every 2 s; `q` quits.
//!
//! Each node is read at its monitoring port (`/status` and `/metrics`): rates are the
//! difference between two reads. The screen is drawn with plain ANSI sequences on the
//! terminal's alternate screen, in raw mode (so `q` needs no Enter), and the terminal is
//! restored however the monitor ends. Without a terminal, or with `--once`, frames are
//! printed one after another as plain text.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::ops::{endpoints, logfile};

/// The guide's `watch -n 2`.
pub const REFRESH: Duration = Duration::from_secs(2);
/// Most nodes shown.
pub const MAX_NODES: usize = 64;
/// Recent error and warning lines shown (the guide's last 5).
const RECENT_ERRORS: usize = 5;
/// Log lines searched for them.
const LOG_LINES_SEARCHED: usize = 500;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Monitoring URLs of the nodes (`http://host:9090`), comma-separated (default: the
    /// node of --config).
    #[arg(long, value_name = "URL,...", value_delimiter = ',')]
    pub nodes: Vec<String>,
    /// A node's configuration: its monitoring URL when --nodes is not given, and its log
    /// for the recent errors (default: $AEGIS_HOME/config/production.yaml if it exists).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print one frame as text and exit.
    #[arg(long)]
    pub once: bool,
}

/// What the last read of one node gave, to compute rates at the next.
#[derive(Clone, Debug, Default)]
struct Sample {
    at: Option<Instant>,
    committed: Option<f64>,
    latency_sum: Option<f64>,
    latency_count: Option<f64>,
    cpu_seconds: Option<f64>,
}

/// One node's row.
#[derive(Clone, Debug)]
struct Row {
    url: String,
    name: String,
    status: String,
    sync: String,
    height: Option<u64>,
    tx_per_second: Option<f64>,
    latency_ms: Option<f64>,
    peers: Option<String>,
    cpu_percent: Option<f64>,
    rss_mib: Option<f64>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config_path = args.config.clone().or_else(|| {
        let default = crate::ops::default_config_path();
        default.exists().then_some(default)
    });
    let config = match &config_path {
        Some(path) => match crate::cmd::db::load_config(path) {
            Ok(config) => Some(config),
            Err(message) => {
                eprintln!("{message}");
                return Ok(ExitCode::FAILURE);
            }
        },
        None => None,
    };
    let mut nodes: Vec<String> = args
        .nodes
        .iter()
        .map(|url| url.trim().trim_end_matches('/').to_owned())
        .filter(|url| !url.is_empty())
        .collect();
    if nodes.is_empty()
        && let Some(url) = config.as_ref().and_then(endpoints::monitoring_url)
    {
        nodes.push(url);
    }
    if nodes.is_empty() {
        eprintln!(
            "error: give --nodes http://HOST:9090,... or --config FILE of a node with monitoring enabled"
        );
        return Ok(ExitCode::FAILURE);
    }
    if nodes.len() > MAX_NODES {
        eprintln!(
            "error: {} nodes given; the monitor shows at most {MAX_NODES}",
            nodes.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    for url in &nodes {
        if !url.starts_with("http://") && !url.starts_with("https://") {
            eprintln!("error: --nodes: {url:?} is not an http:// or https:// URL");
            return Ok(ExitCode::FAILURE);
        }
    }
    let log = config.map(|c| c.logging.file);
    let runtime = crate::cmd::health::runtime()?;
    let client = endpoints::client()?;
    let mut samples = vec![Sample::default(); nodes.len()];
    if args.once || !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        let rows = runtime.block_on(read_all(&client, &nodes, &mut samples));
        print!("{}", frame(&rows, log.as_deref(), "\n"));
        return Ok(ExitCode::SUCCESS);
    }
    let _screen = Screen::enter()?;
    let keys = spawn_key_reader();
    loop {
        let rows = runtime.block_on(read_all(&client, &nodes, &mut samples));
        let mut stdout = std::io::stdout().lock();
        write!(
            stdout,
            "\x1b[H\x1b[2J{}",
            frame(&rows, log.as_deref(), "\r\n")
        )?;
        stdout.flush()?;
        drop(stdout);
        let deadline = Instant::now() + REFRESH;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match keys.recv_timeout(left) {
                // q, Q, Ctrl-C, Ctrl-D: raw mode delivers them as bytes.
                Ok(b'q' | b'Q' | 0x03 | 0x04) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Ok(ExitCode::SUCCESS);
                }
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
    }
}

/// Bytes typed on the terminal.
fn spawn_key_reader() -> mpsc::Receiver<u8> {
    let (sender, receiver) = mpsc::sync_channel(64);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut byte = [0u8; 1];
        while let Ok(1) = stdin.read(&mut byte) {
            if sender.send(byte[0]).is_err() {
                return;
            }
        }
    });
    receiver
}

/// The terminal in raw mode on its alternate screen, restored when dropped.
struct Screen {
    saved: rustix::termios::Termios,
}

impl Screen {
    fn enter() -> anyhow::Result<Screen> {
        let stdin = std::io::stdin();
        let saved = rustix::termios::tcgetattr(&stdin)
            .map_err(|error| anyhow::anyhow!("read the terminal's settings: {error}"))?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw)
            .map_err(|error| anyhow::anyhow!("put the terminal in raw mode: {error}"))?;
        let mut stdout = std::io::stdout();
        let _ = write!(stdout, "\x1b[?1049h\x1b[?25l");
        let _ = stdout.flush();
        Ok(Screen { saved })
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let mut stdout = std::io::stdout();
        let _ = write!(stdout, "\x1b[?25h\x1b[?1049l");
        let _ = stdout.flush();
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}

async fn read_all(client: &reqwest::Client, nodes: &[String], samples: &mut [Sample]) -> Vec<Row> {
    let reads = nodes.iter().map(|url| read_node(client, url));
    let results = futures_util::future::join_all(reads).await;
    results
        .into_iter()
        .zip(samples.iter_mut())
        .zip(nodes)
        .map(|((read, sample), url)| to_row(url, read, sample))
        .collect()
}

type NodeRead = Result<(Value, String), String>;

async fn read_node(client: &reqwest::Client, url: &str) -> NodeRead {
    let status = endpoints::get_json(client, &format!("{url}/status")).await?;
    let metrics = endpoints::get(client, &format!("{url}/metrics"))
        .await
        .map(|fetched| fetched.body)
        .unwrap_or_default();
    Ok((status, metrics))
}

/// The value of the first sample of `name` (no labels) in classic Prometheus text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (key, value) = line.split_once(' ')?;
            (key == name).then(|| value.trim().parse().ok()).flatten()
        })
}

fn rate(now: Option<f64>, before: Option<f64>, seconds: f64) -> Option<f64> {
    match (now, before) {
        (Some(now), Some(before)) if seconds > 0.0 && now >= before => {
            Some((now - before) / seconds)
        }
        _ => None,
    }
}

fn to_row(url: &str, read: NodeRead, sample: &mut Sample) -> Row {
    let (status, metrics) = match read {
        Ok(read) => read,
        Err(error) => {
            *sample = Sample::default();
            return Row {
                url: url.to_owned(),
                name: "?".to_owned(),
                status: format!("DOWN ({})", cut(&error, 40)),
                sync: "-".to_owned(),
                height: None,
                tx_per_second: None,
                latency_ms: None,
                peers: None,
                cpu_percent: None,
                rss_mib: None,
            };
        }
    };
    let now = Instant::now();
    let seconds = sample
        .at
        .map_or(0.0, |at| now.duration_since(at).as_secs_f64());
    let committed = metric(&metrics, "aegis_consensus_committed_transactions_total");
    let latency_sum = metric(&metrics, "aegis_consensus_commit_latency_seconds_sum");
    let latency_count = metric(&metrics, "aegis_consensus_commit_latency_seconds_count");
    let cpu_seconds = status["process"]["cpu_seconds"].as_f64();
    let latency_ms = match (
        rate(latency_sum, sample.latency_sum, 1.0),
        rate(latency_count, sample.latency_count, 1.0),
    ) {
        (Some(sum), Some(count)) if count > 0.0 => Some(sum / count * 1000.0),
        _ => None,
    };
    let row = Row {
        url: url.to_owned(),
        name: status["node_id"].as_str().unwrap_or("?").to_owned(),
        status: if status["consensus"]["running"] == true {
            "running".to_owned()
        } else {
            "no engine".to_owned()
        },
        sync: status["sync_status"].as_str().unwrap_or("?").to_owned(),
        height: status["block_height"].as_u64(),
        tx_per_second: rate(committed, sample.committed, seconds),
        latency_ms,
        peers: Some(format!(
            "{}/{}",
            status["peers"].as_u64().unwrap_or(0),
            status["validators"]
                .as_u64()
                .map_or(0, |v| v.saturating_sub(1))
        )),
        cpu_percent: rate(cpu_seconds, sample.cpu_seconds, seconds).map(|r| r * 100.0),
        rss_mib: status["process"]["rss_bytes"]
            .as_f64()
            .map(|b| b / 1_048_576.0),
    };
    *sample = Sample {
        at: Some(now),
        committed,
        latency_sum,
        latency_count,
        cpu_seconds,
    };
    row
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        format!("{}...", text.chars().take(max).collect::<String>())
    }
}

fn frame(rows: &[Row], log: Option<&std::path::Path>, newline: &str) -> String {
    let number = |value: Option<f64>, decimals: usize| {
        value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
    };
    let mut lines = vec![
        format!(
            "=== AEGIS Live Monitor === {}   (every {} s, q quits)",
            aegis_telemetry::format_rfc3339_millis(SystemTime::now()),
            REFRESH.as_secs()
        ),
        String::new(),
        format!(
            "{:<10} {:<22} {:<10} {:>8} {:>8} {:>11} {:>6} {:>6} {:>8}  {}",
            "NODE",
            "STATUS",
            "SYNC",
            "HEIGHT",
            "TX/S",
            "LATENCY_MS",
            "PEERS",
            "CPU%",
            "RSS_MIB",
            "URL"
        ),
    ];
    for row in rows {
        lines.push(format!(
            "{:<10} {:<22} {:<10} {:>8} {:>8} {:>11} {:>6} {:>6} {:>8}  {}",
            cut(&row.name, 10),
            cut(&row.status, 22),
            cut(&row.sync, 10),
            row.height.map_or_else(|| "-".to_owned(), |h| h.to_string()),
            number(row.tx_per_second, 1),
            number(row.latency_ms, 1),
            row.peers.clone().unwrap_or_else(|| "-".to_owned()),
            number(row.cpu_percent, 1),
            number(row.rss_mib, 1),
            row.url
        ));
    }
    if let Some(log) = log {
        lines.push(String::new());
        lines.push(format!("Recent errors ({}):", log.display()));
        let recent: Vec<String> = logfile::last_lines(log, LOG_LINES_SEARCHED)
            .map(|all| {
                all.iter()
                    .filter(|line| {
                        matches!(
                            logfile::level_of(line),
                            Some(logfile::Level::Error | logfile::Level::Warning)
                        )
                    })
                    .map(|line| match logfile::parse(line) {
                        Some(entry) => format!(
                            "{} {} {}",
                            entry.timestamp.unwrap_or_default(),
                            entry.level.map_or("?", logfile::Level::as_str),
                            cut(&entry.message, 160)
                        ),
                        None => cut(line, 160),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let skip = recent.len().saturating_sub(RECENT_ERRORS);
        if recent.is_empty() {
            lines.push("No recent errors".to_owned());
        }
        lines.extend(recent.into_iter().skip(skip));
    }
    let mut out = lines.join(newline);
    out.push_str(newline);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_read_without_help_and_type_lines() {
        let text = "# HELP aegis_consensus_committed_transactions_total x\n# TYPE aegis_consensus_committed_transactions_total counter\naegis_consensus_committed_transactions_total 42\n";
        assert_eq!(
            metric(text, "aegis_consensus_committed_transactions_total"),
            Some(42.0)
        );
        assert_eq!(metric(text, "aegis_other"), None);
        assert_eq!(rate(Some(30.0), Some(10.0), 2.0), Some(10.0));
        assert_eq!(rate(Some(5.0), Some(10.0), 2.0), None);
    }

    #[test]
    fn rows_show_rates_between_two_reads() {
        let mut sample = Sample::default();
        let status = serde_json::json!({
            "node_id": "node1", "consensus": {"running": true}, "sync_status": "synced",
            "block_height": 7, "peers": 3, "validators": 4, "process": {"cpu_seconds": 1.0, "rss_bytes": 10485760}
        });
        let row = to_row(
            "http://x",
            Ok((
                status.clone(),
                "aegis_consensus_committed_transactions_total 10\n".into(),
            )),
            &mut sample,
        );
        assert_eq!(row.height, Some(7));
        assert_eq!(row.peers.as_deref(), Some("3/3"));
        assert_eq!(row.tx_per_second, None);
        sample.at = sample.at.map(|at| at - Duration::from_secs(2));
        let row = to_row(
            "http://x",
            Ok((
                status,
                "aegis_consensus_committed_transactions_total 30\n".into(),
            )),
            &mut sample,
        );
        let tps = row.tx_per_second.unwrap();
        assert!((9.0..=10.1).contains(&tps), "{tps}");
        let shown = frame(&[row], None, "\n");
        assert!(
            shown.contains("node1") && shown.contains("running"),
            "{shown}"
        );
        let down = to_row("http://y", Err("connection refused".into()), &mut sample);
        assert!(down.status.starts_with("DOWN"));
    }
}
