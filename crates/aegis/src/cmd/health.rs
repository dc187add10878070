//! `aegis health [--config FILE] [--format json|text]`: the guide's `health_checker.py`,
//! against the node configured by FILE.
//!
//! The report keeps the script's shape: `timestamp`, `overall_status`, `checks` and
//! `summary` {`total_checks`, `healthy`, `warning`, `unhealthy`, `error`}. Each check is
//! `{status, message, details}` with a status of `healthy`, `warning`, `unhealthy` or
//! `error` (the check itself could not run); `endpoints` holds one such result per endpoint,
//! with the script's `response_time` beside `status` and `message`. `total_checks` counts
//! the results the summary counts (8: each endpoint is one), so it is the sum of the four
//! counts (the script said 5 checks and counted 6 results).
//!
//! | check | what is looked at | thresholds |
//! |---|---|---|
//! | `service` | the process holding the home's lock (`/proc/locks`), not a process-name search | none running: unhealthy |
//! | `endpoints.health`, `endpoints.metrics` | `GET /health` on the API port, `GET /metrics` on the monitoring port, with response times | not 200: unhealthy |
//! | `database` | a real query (the chain's height) on the configured SQLite file or PostgreSQL, read-only | fails: unhealthy |
//! | `resources` | machine CPU over 1 s, memory, the data directory's file system; the node's own CPU and RSS | CPU > 80 % or memory > 85 %: warning; disk > 90 %: unhealthy |
//! | `logs` | the last 100 lines of `logging.file` | > 10 errors: unhealthy; any error or > 20 warnings: warning |
//! | `consensus` | `/status`: engine running, connected validators, height moving while work waits | not running, or peers < quorum - 1: unhealthy; transactions waiting and no commit for `consensus.timeout`: warning |
//! | `sync` | `/status` `sync_status` | `syncing`: warning; `stalled`: unhealthy |
//!
//! The overall status is the worst one (`error` counts as a warning, as in the script).
//! Exit status: 0 healthy, 1 warning, 2 unhealthy (also when the configuration cannot be
//! read: nothing can be vouched for).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use aegis_config::NodeConfig;
use serde_json::{Value, json};

use crate::ops::{endpoints, holder, host, logfile};

/// Lines of the log the `logs` check reads (the guide's 100).
pub const LOG_LINES_CHECKED: usize = 100;
/// More errors than this in those lines: unhealthy (the guide's 10).
pub const LOG_ERRORS_UNHEALTHY: usize = 10;
/// More warnings than this in those lines: warning (the guide's 20).
pub const LOG_WARNINGS_WARNING: usize = 20;
/// CPU is sampled over this interval (the guide's `cpu_percent(interval=1)`).
pub const CPU_SAMPLE: Duration = Duration::from_secs(1);
/// Longest wait for the database check (its pool timeout).
pub const DATABASE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node's configuration (default: $AEGIS_HOME/config/production.yaml, /opt/aegis
    /// without AEGIS_HOME).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// `json` (the guide's report) or `text` (one line per check).
    #[arg(long, default_value = "json", value_parser = ["json", "text"])]
    pub format: String,
    /// Machine CPU use above this percentage is a warning.
    #[arg(long, value_name = "PERCENT", default_value_t = 80.0)]
    pub cpu_warning: f64,
    /// Memory use above this percentage is a warning.
    #[arg(long, value_name = "PERCENT", default_value_t = 85.0)]
    pub memory_warning: f64,
    /// Use of the data directory's file system above this percentage is unhealthy.
    #[arg(long, value_name = "PERCENT", default_value_t = 90.0)]
    pub disk_unhealthy: f64,
}

/// A check's status, worst last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Healthy,
    Warning,
    Error,
    Unhealthy,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Warning => "warning",
            Status::Error => "error",
            Status::Unhealthy => "unhealthy",
        }
    }
}

/// One check's result.
#[derive(Clone, Debug)]
pub struct CheckResult {
    pub status: Status,
    pub message: String,
    pub details: Value,
}

impl CheckResult {
    fn new(status: Status, message: impl Into<String>, details: Value) -> CheckResult {
        CheckResult {
            status,
            message: message.into(),
            details,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "status": self.status.as_str(),
            "message": self.message,
            "details": self.details,
        })
    }
}

/// Every check of one run, in report order.
#[derive(Debug)]
pub struct Report {
    pub timestamp: String,
    pub service: CheckResult,
    pub endpoints: Vec<(&'static str, CheckResult)>,
    pub database: CheckResult,
    pub resources: CheckResult,
    pub logs: CheckResult,
    pub consensus: CheckResult,
    pub sync: CheckResult,
}

impl Report {
    /// Every leaf result with its name (`endpoints.health`, ...).
    pub fn results(&self) -> Vec<(String, &CheckResult)> {
        let mut all = vec![("service".to_owned(), &self.service)];
        for (name, result) in &self.endpoints {
            all.push((format!("endpoints.{name}"), result));
        }
        all.push(("database".to_owned(), &self.database));
        all.push(("resources".to_owned(), &self.resources));
        all.push(("logs".to_owned(), &self.logs));
        all.push(("consensus".to_owned(), &self.consensus));
        all.push(("sync".to_owned(), &self.sync));
        all
    }

    /// The guide's rule: any unhealthy result makes the node unhealthy; a warning or an
    /// error makes it a warning.
    pub fn overall(&self) -> Status {
        let worst = self
            .results()
            .iter()
            .map(|(_, r)| r.status)
            .max()
            .unwrap_or(Status::Healthy);
        match worst {
            Status::Error => Status::Warning,
            other => other,
        }
    }

    pub fn to_json(&self) -> Value {
        let results = self.results();
        let count = |status: Status| results.iter().filter(|(_, r)| r.status == status).count();
        let endpoints: serde_json::Map<String, Value> = self
            .endpoints
            .iter()
            .map(|(name, result)| {
                // The guide's script puts `response_time` beside `status` and `message`.
                let mut json = result.to_json();
                if let Some(time) = result.details.get("response_time") {
                    json["response_time"] = time.clone();
                }
                ((*name).to_owned(), json)
            })
            .collect();
        json!({
            "timestamp": self.timestamp,
            "overall_status": self.overall().as_str(),
            "checks": {
                "service": self.service.to_json(),
                "endpoints": endpoints,
                "database": self.database.to_json(),
                "resources": self.resources.to_json(),
                "logs": self.logs.to_json(),
                "consensus": self.consensus.to_json(),
                "sync": self.sync.to_json(),
            },
            "summary": {
                "total_checks": results.len(),
                "healthy": count(Status::Healthy),
                "warning": count(Status::Warning),
                "unhealthy": count(Status::Unhealthy),
                "error": count(Status::Error),
            },
        })
    }

    pub fn to_text(&self) -> String {
        let mut out = format!(
            "AEGIS health at {}: {}\n",
            self.timestamp,
            self.overall().as_str().to_uppercase()
        );
        for (name, result) in self.results() {
            out.push_str(&format!(
                "  {name:<18} {:<10} {}\n",
                result.status.as_str(),
                result.message
            ));
        }
        out
    }
}

/// The thresholds of one run.
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    pub cpu_warning: f64,
    pub memory_warning: f64,
    pub disk_unhealthy: f64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = match crate::ops::load_config(args.config.as_deref()) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{message}");
            eprintln!("error: cannot check the node's health without its configuration");
            return Ok(ExitCode::from(2));
        }
    };
    let thresholds = Thresholds {
        cpu_warning: args.cpu_warning,
        memory_warning: args.memory_warning,
        disk_unhealthy: args.disk_unhealthy,
    };
    let report = runtime()?.block_on(check(&config, thresholds))?;
    if args.format == "text" {
        print!("{}", report.to_text());
    } else {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    }
    Ok(ExitCode::from(match report.overall() {
        Status::Healthy => 0,
        Status::Warning | Status::Error => 1,
        Status::Unhealthy => 2,
    }))
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| anyhow::anyhow!("start the async runtime: {error}"))
}

/// Runs every check of the node configured by `config` (concurrently: the run takes about
/// [`CPU_SAMPLE`]).
pub async fn check(config: &NodeConfig, thresholds: Thresholds) -> anyhow::Result<Report> {
    let client = endpoints::client()?;
    let service = check_service(config);
    let pid = service.details["pid"]
        .as_u64()
        .and_then(|pid| u32::try_from(pid).ok());
    let (health, metrics, database, resources, status) = tokio::join!(
        check_health_endpoint(&client, config),
        check_metrics_endpoint(&client, config),
        check_database(config),
        check_resources(config, thresholds, pid),
        fetch_status(&client, config),
    );
    let (consensus, sync) = check_consensus_and_sync(config, status);
    Ok(Report {
        timestamp: aegis_telemetry::format_rfc3339_millis(SystemTime::now()),
        service,
        endpoints: vec![("health", health), ("metrics", metrics)],
        database,
        resources,
        logs: check_logs(config),
        consensus,
        sync,
    })
}

fn check_service(config: &NodeConfig) -> CheckResult {
    let lock = holder::lock_path(&config.node.data_dir);
    match holder::holder(&config.node.data_dir) {
        Ok(Some(found)) => CheckResult::new(
            Status::Healthy,
            format!("Process running (PID: {})", found.pid),
            json!({ "pid": found.pid, "cmdline": found.cmdline, "lock_file": lock }),
        ),
        Ok(None) => CheckResult::new(
            Status::Unhealthy,
            format!(
                "AEGIS process not found: no process holds {} (the node of this home is not running)",
                lock.display()
            ),
            json!({ "lock_file": lock }),
        ),
        Err(error) => CheckResult::new(
            Status::Error,
            format!("Check failed: {error}"),
            json!({ "error": error }),
        ),
    }
}

fn endpoint_result(url: &str, fetched: &Result<endpoints::Fetched, String>) -> CheckResult {
    match fetched {
        Ok(fetched) => {
            let response_time = fetched
                .response_time_header
                .clone()
                .unwrap_or_else(|| "N/A".to_owned());
            let elapsed_ms = host::round2(fetched.elapsed.as_secs_f64() * 1000.0);
            if fetched.status == 200 {
                CheckResult::new(
                    Status::Healthy,
                    format!("Endpoint responding (HTTP {})", fetched.status),
                    json!({
                        "url": url,
                        "status_code": fetched.status,
                        "response_time": response_time,
                        "response_time_ms": elapsed_ms,
                    }),
                )
            } else {
                let reason = serde_json::from_str::<Value>(&fetched.body)
                    .ok()
                    .and_then(|body| body["status"].as_str().map(str::to_owned));
                CheckResult::new(
                    Status::Unhealthy,
                    match reason {
                        Some(reason) => format!("HTTP {} ({reason})", fetched.status),
                        None => format!("HTTP {}", fetched.status),
                    },
                    json!({
                        "url": url,
                        "status_code": fetched.status,
                        "response_time": response_time,
                        "response_time_ms": elapsed_ms,
                    }),
                )
            }
        }
        Err(error) => CheckResult::new(
            Status::Unhealthy,
            format!("Connection failed: {error}"),
            json!({ "url": url, "error": error }),
        ),
    }
}

async fn check_health_endpoint(client: &reqwest::Client, config: &NodeConfig) -> CheckResult {
    let url = format!("{}/health", endpoints::api_url(config));
    let fetched = endpoints::get(client, &url).await;
    let mut result = endpoint_result(&url, &fetched);
    // /health answers 200 when degraded: say so.
    if let Ok(fetched) = &fetched
        && let Ok(body) = serde_json::from_str::<Value>(&fetched.body)
    {
        let node_status = body["status"].as_str().unwrap_or("unknown").to_owned();
        result.details["node_status"] = json!(node_status);
        if fetched.status != 200 {
            result.message = format!("HTTP {} ({node_status})", fetched.status);
        } else if node_status == "degraded" {
            result.status = Status::Warning;
            result.message = format!(
                "Endpoint responding (HTTP 200), node degraded: {}",
                degraded_reasons(&body)
            );
        }
    }
    result
}

/// The messages of the checks of a `/health` body that did not pass.
fn degraded_reasons(body: &Value) -> String {
    let reasons: Vec<String> = body["checks"]
        .as_object()
        .map(|checks| {
            checks
                .iter()
                .filter(|(_, check)| check["status"] != "pass")
                .map(|(name, check)| match check["message"].as_str() {
                    Some(message) => format!("{name}: {message}"),
                    None => format!("{name}: {}", check["status"].as_str().unwrap_or("?")),
                })
                .collect()
        })
        .unwrap_or_default();
    if reasons.is_empty() {
        "no reason given".to_owned()
    } else {
        reasons.join("; ")
    }
}

async fn check_metrics_endpoint(client: &reqwest::Client, config: &NodeConfig) -> CheckResult {
    let Some(base) = endpoints::monitoring_url(config) else {
        return CheckResult::new(
            Status::Warning,
            "monitoring.enabled is false: no /metrics to check",
            json!({}),
        );
    };
    let url = format!("{base}{}", endpoints::metrics_path(config));
    let fetched = endpoints::get(client, &url).await;
    let series = fetched
        .as_ref()
        .map(|f| f.body.lines().filter(|l| l.starts_with("aegis_")).count())
        .unwrap_or(0);
    let mut result = endpoint_result(&url, &fetched);
    if result.status == Status::Healthy {
        result.details["aegis_series"] = json!(series);
    }
    result
}

async fn check_database(config: &NodeConfig) -> CheckResult {
    use aegis_storage::Ledger as _;
    let mut store = crate::cmd::db::store_config(config);
    store.pool_size = 1;
    store.max_overflow = 0;
    store.pool_timeout = DATABASE_TIMEOUT;
    let location = store.backend.location();
    let kind = store.backend.kind();
    let started = Instant::now();
    let queried = tokio::time::timeout(DATABASE_TIMEOUT * 2, async {
        let opened = aegis_storage::SqlStore::open_read_only(&store).await?;
        let height = opened.height().await;
        opened.close().await;
        height
    })
    .await;
    let elapsed_ms = host::round2(started.elapsed().as_secs_f64() * 1000.0);
    match queried {
        Ok(Ok(height)) => CheckResult::new(
            Status::Healthy,
            "Database connection successful",
            json!({
                "backend": kind,
                "location": location,
                "query": "the chain's height",
                "query_result": height,
                "response_time_ms": elapsed_ms,
            }),
        ),
        Ok(Err(error)) => CheckResult::new(
            Status::Unhealthy,
            format!("Database connection failed: {error}"),
            json!({ "backend": kind, "location": location, "error": error.to_string() }),
        ),
        Err(_) => CheckResult::new(
            Status::Unhealthy,
            format!(
                "Database connection failed: no answer within {} s",
                (DATABASE_TIMEOUT * 2).as_secs()
            ),
            json!({ "backend": kind, "location": location }),
        ),
    }
}

async fn check_resources(
    config: &NodeConfig,
    thresholds: Thresholds,
    pid: Option<u32>,
) -> CheckResult {
    let cpu = host::cpu_percent(CPU_SAMPLE, pid).await;
    let memory = host::memory();
    let disk = host::disk(&config.node.data_dir);
    let (cpu, node_cpu, memory, disk) = match (cpu, memory, disk) {
        (Ok((cpu, node_cpu)), Ok(memory), Ok(disk)) => (cpu, node_cpu, memory, disk),
        (cpu, memory, disk) => {
            let error = [cpu.err(), memory.err(), disk.err()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("; ");
            return CheckResult::new(
                Status::Error,
                format!("Check failed: {error}"),
                json!({ "error": error }),
            );
        }
    };
    let (status, warnings) = resource_verdict(
        thresholds,
        cpu,
        memory.percent(),
        disk.percent(),
        &config.node.data_dir,
    );
    CheckResult::new(
        status,
        if warnings.is_empty() {
            "System resources normal".to_owned()
        } else {
            warnings.join("; ")
        },
        json!({
            "cpu_percent": cpu,
            "memory_percent": memory.percent(),
            "disk_percent": disk.percent(),
            "memory_available_gb": host::gib(memory.available_bytes),
            "disk_free_gb": host::gib(disk.available_bytes),
            "disk_path": config.node.data_dir,
            "node_cpu_percent": node_cpu,
            "node_rss_mb": pid.and_then(host::process_rss_bytes).map(|b| host::round1(b as f64 / 1_048_576.0)),
            "thresholds": {
                "cpu_warning_percent": thresholds.cpu_warning,
                "memory_warning_percent": thresholds.memory_warning,
                "disk_unhealthy_percent": thresholds.disk_unhealthy,
            },
        }),
    )
}

/// The guide's rule on resources: CPU or memory above its threshold is a warning, the
/// disk above its threshold is unhealthy; with the reasons.
fn resource_verdict(
    thresholds: Thresholds,
    cpu: f64,
    memory: f64,
    disk: f64,
    data_dir: &std::path::Path,
) -> (Status, Vec<String>) {
    let mut status = Status::Healthy;
    let mut warnings = Vec::new();
    if cpu > thresholds.cpu_warning {
        status = Status::Warning;
        warnings.push(format!("High CPU usage: {cpu}%"));
    }
    if memory > thresholds.memory_warning {
        status = Status::Warning;
        warnings.push(format!("High memory usage: {memory}%"));
    }
    if disk > thresholds.disk_unhealthy {
        status = Status::Unhealthy;
        warnings.push(format!(
            "High disk usage: {disk}% of the file system of {}",
            data_dir.display()
        ));
    }
    (status, warnings)
}

/// The guide's rule on the last log lines: more than [`LOG_ERRORS_UNHEALTHY`] errors is
/// unhealthy; any error or more than [`LOG_WARNINGS_WARNING`] warnings is a warning.
fn log_verdict(errors: usize, warnings: usize) -> (Status, String) {
    if errors > LOG_ERRORS_UNHEALTHY {
        (
            Status::Unhealthy,
            format!("High error count in logs: {errors} errors"),
        )
    } else if errors > 0 || warnings > LOG_WARNINGS_WARNING {
        (
            Status::Warning,
            format!("Errors/warnings in logs: {errors} errors, {warnings} warnings"),
        )
    } else {
        (Status::Healthy, "Log files normal".to_owned())
    }
}

fn check_logs(config: &NodeConfig) -> CheckResult {
    let path = &config.logging.file;
    let lines = match logfile::last_lines(path, LOG_LINES_CHECKED) {
        Ok(lines) => lines,
        Err(error) if error.is_not_found() => {
            return CheckResult::new(
                Status::Warning,
                "No log files found",
                json!({ "searched_paths": [path] }),
            );
        }
        Err(error) => {
            return CheckResult::new(
                Status::Warning,
                format!("Could not read log file: {error}"),
                json!({ "log_file": path, "error": error.to_string() }),
            );
        }
    };
    let mut errors = 0;
    let mut warnings = 0;
    let mut last_error = None;
    for line in &lines {
        match logfile::level_of(line) {
            Some(logfile::Level::Error) => {
                errors += 1;
                last_error =
                    Some(logfile::parse(line).map_or_else(|| line.clone(), |entry| entry.message));
            }
            Some(logfile::Level::Warning) => warnings += 1,
            _ => {}
        }
    }
    let (status, message) = log_verdict(errors, warnings);
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    CheckResult::new(
        status,
        message,
        json!({
            "log_file": path,
            "lines_checked": lines.len(),
            "error_count": errors,
            "warning_count": warnings,
            "last_error": last_error,
            "file_size_mb": host::round2(size as f64 / 1_048_576.0),
        }),
    )
}

/// `/status`, sampled twice about [`CPU_SAMPLE`] apart (the height must be seen to move
/// while transactions wait).
async fn fetch_status(
    client: &reqwest::Client,
    config: &NodeConfig,
) -> Result<(Value, Value), String> {
    let Some(base) = endpoints::monitoring_url(config) else {
        return Err("monitoring.enabled is false: /status is not served".to_owned());
    };
    let url = format!("{base}/status");
    let first = endpoints::get_json(client, &url).await?;
    tokio::time::sleep(CPU_SAMPLE).await;
    let second = endpoints::get_json(client, &url)
        .await
        .unwrap_or_else(|_| first.clone());
    Ok((first, second))
}

fn check_consensus_and_sync(
    config: &NodeConfig,
    status: Result<(Value, Value), String>,
) -> (CheckResult, CheckResult) {
    let (first, now) = match status {
        Ok(pair) => pair,
        Err(error) => {
            let failed = |what: &str| {
                CheckResult::new(
                    Status::Unhealthy,
                    format!("Cannot read the node's {what}: /status: {error}"),
                    json!({ "error": error }),
                )
            };
            return (failed("consensus state"), failed("sync state"));
        }
    };
    let quorum = crate::preflight::load_genesis(&config.node.genesis_file)
        .ok()
        .and_then(|genesis| genesis.validator_set().ok())
        .map(|set| set.quorum());
    let running = now["consensus"]["running"] == true;
    let peers = now["peers"].as_u64().unwrap_or(0);
    let validators = now["validators"].as_u64().unwrap_or(0);
    let height_before = first["block_height"].as_u64().unwrap_or(0);
    let height = now["block_height"].as_u64().unwrap_or(0);
    let mempool = now["mempool"]["size"].as_u64().unwrap_or(0);
    let now_ms = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let since_commit_s = now["consensus"]["last_commit_ms"]
        .as_u64()
        .map(|ms| now_ms.saturating_sub(ms) as f64 / 1000.0);
    let needed_peers = quorum.map(|q| q.saturating_sub(1) as u64);
    let stalled_after = config.consensus.timeout.as_secs_f64();
    let details = json!({
        "running": running,
        "algorithm": now["algorithm"],
        "block_height": height,
        "height_moved_by": height.saturating_sub(height_before),
        "view": now["view"],
        "primary": now["primary"],
        "peers": peers,
        "validators": validators,
        "quorum": quorum,
        "mempool_transactions": mempool,
        "seconds_since_last_commit": since_commit_s.map(host::round1),
    });
    let consensus = if !running {
        CheckResult::new(
            Status::Unhealthy,
            "The consensus engine is not running",
            details,
        )
    } else if needed_peers.is_some_and(|needed| peers < needed) {
        CheckResult::new(
            Status::Unhealthy,
            format!(
                "{peers} validators connected, fewer than the {} needed for a quorum of {}: nothing can commit",
                needed_peers.unwrap_or(0),
                quorum.unwrap_or(0)
            ),
            details,
        )
    } else if height > height_before {
        CheckResult::new(
            Status::Healthy,
            format!("Committing: height {height_before} -> {height}, {peers} peers"),
            details,
        )
    } else if mempool > 0 && since_commit_s.is_none_or(|s| s > stalled_after) {
        CheckResult::new(
            Status::Warning,
            format!(
                "Height {height} not moving: {mempool} transactions wait and nothing was committed for {} s (consensus.timeout)",
                stalled_after
            ),
            details,
        )
    } else {
        CheckResult::new(
            Status::Healthy,
            format!("Running at height {height}, {peers} peers, nothing waiting to commit"),
            details,
        )
    };
    let sync_status = now["sync_status"].as_str().unwrap_or("unknown").to_owned();
    let network_height = now["network_height"].as_u64();
    let behind = network_height.map(|network| network.saturating_sub(height));
    let details = json!({
        "sync_status": sync_status,
        "block_height": height,
        "network_height": network_height,
        "blocks_behind": behind,
        "sync_target_height": now["sync_target_height"],
    });
    let sync = match sync_status.as_str() {
        "synced" => CheckResult::new(Status::Healthy, "Synced with the network", details),
        "syncing" => CheckResult::new(
            Status::Warning,
            format!("Syncing: {} blocks behind", behind.unwrap_or(0)),
            details,
        ),
        "stalled" => CheckResult::new(
            Status::Unhealthy,
            format!(
                "Sync stalled: {} blocks behind and nothing arrived for 30 s",
                behind.unwrap_or(0)
            ),
            details,
        ),
        other => CheckResult::new(Status::Warning, format!("sync_status {other:?}"), details),
    };
    (consensus, sync)
}

#[cfg(test)]
mod tests;
