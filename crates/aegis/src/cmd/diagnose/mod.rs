//! `aegis diagnose [--config FILE] [--out DIR] [--bundle] [--assessment]`: the guide's
//! `aegis_diagnostics.sh` as one report file (or a `.tar.gz` bundle), and with
//! `--assessment` its `disaster_assessment.sh` on one screen.
//!
//! The report has the script's sections: system, resources, service, processes, network
//! (listening ports), configuration and `.env`, logs, database (version, connections),
//! health and a metrics sample, file sizes. Secrets never reach it:
//!
//! - `.env` is shown with the value of every variable whose name holds KEY, SECRET,
//!   PASSWORD, PASS, TOKEN or DATABASE_URL replaced by `***`;
//! - passwords in connection strings are replaced by `***` wherever a URL appears;
//! - the node key file and the TLS key are listed by path, size and mode, never read;
//! - finally every secret value known (from `.env`, the environment, the configured
//!   connection string) is replaced by `***` anywhere in the report and the bundle, so a
//!   secret that a log line, a command line or a journal entry happened to carry is caught
//!   too.

use std::fmt::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use aegis_config::NodeConfig;

use crate::ops::{endpoints, holder, host, logfile};

mod secrets;
pub use secrets::{Secrets, is_secret_name, redact_urls};

/// The guide's report directory.
pub const DEFAULT_OUT: &str = "/tmp/aegis_diagnostics";
/// The guide's backup directory, looked at by `--assessment`.
pub const DEFAULT_BACKUPS: &str = "/backup/aegis";
/// Longest a system command of the report may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Most bytes kept of a system command's output.
const MAX_COMMAND_OUTPUT: usize = 256 * 1024;
/// Log lines in the report (the guide's `tail -100`), and in a bundle's log file.
const REPORT_LOG_LINES: usize = 100;
const BUNDLE_LOG_LINES: usize = 2_000;
/// Files and directories walked under the home for sizes, at most.
const MAX_WALKED_ENTRIES: usize = 100_000;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node's configuration (default: $AEGIS_HOME/config/production.yaml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where to write the report.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_OUT)]
    pub out: PathBuf,
    /// Write a .tar.gz bundle (report, redacted configuration, more log lines, /status,
    /// /metrics, /health) instead of one text file.
    #[arg(long)]
    pub bundle: bool,
    /// Print the disaster assessment (service, data present, latest backups, network, disk)
    /// on the screen instead of writing a report.
    #[arg(long)]
    pub assessment: bool,
    /// Where backups are kept, for --assessment.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_BACKUPS)]
    pub backups: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config_path = args
        .config
        .clone()
        .unwrap_or_else(crate::ops::default_config_path);
    let config = crate::cmd::db::load_config(&config_path);
    let secrets = Secrets::collect(&config_path, config.as_ref().ok());
    let runtime = crate::cmd::health::runtime()?;
    if args.assessment {
        let text = runtime.block_on(assessment(&config_path, config.as_ref(), &args.backups));
        print!("{}", secrets.scrub(&text));
        return Ok(ExitCode::SUCCESS);
    }
    let stamp = crate::ops::compact_timestamp(SystemTime::now());
    let name = format!("aegis_diagnostic_{stamp}");
    std::fs::create_dir_all(&args.out)
        .map_err(|e| anyhow::anyhow!("create {}: {e}", args.out.display()))?;
    let report = runtime.block_on(report(&config_path, config.as_ref()));
    let report = secrets.scrub(&report);
    if !args.bundle {
        let path = args.out.join(format!("{name}.txt"));
        write_private(&path, report.as_bytes())?;
        println!("Diagnostic report completed: {}", path.display());
        println!("Report size: {} bytes", report.len());
        return Ok(ExitCode::SUCCESS);
    }
    let staging = tempfile::Builder::new()
        .prefix("aegis-diagnose-")
        .tempdir()
        .map_err(|e| anyhow::anyhow!("create a staging directory: {e}"))?;
    let dir = staging.path().join(&name);
    std::fs::create_dir(&dir)?;
    write_private(&dir.join("report.txt"), report.as_bytes())?;
    let extras = runtime.block_on(bundle_extras(&config_path, config.as_ref()));
    for (file, text) in extras {
        write_private(&dir.join(file), secrets.scrub(&text).as_bytes())?;
    }
    let bundle = args.out.join(format!("{name}.tar.gz"));
    let status = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&bundle)
        .arg("-C")
        .arg(staging.path())
        .arg(&name)
        .status()
        .map_err(|e| anyhow::anyhow!("run tar: {e}"))?;
    anyhow::ensure!(
        status.success(),
        "tar failed ({status}) writing {}",
        bundle.display()
    );
    std::fs::set_permissions(&bundle, std::fs::Permissions::from_mode(0o600))?;
    println!("Diagnostic bundle completed: {}", bundle.display());
    Ok(ExitCode::SUCCESS)
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("create {}: {e}", path.display()))?;
    file.write_all(bytes)
        .map_err(|e| anyhow::anyhow!("write {}: {e}", path.display()))
}

/// A report section's heading, as the script writes them.
fn section(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "\n## {title}\nGenerated at: {}\n----------------------------------------\n",
        aegis_telemetry::format_rfc3339_millis(SystemTime::now())
    );
}

/// Runs a system command (absent or failing ones are reported, not fatal), bounded in time
/// and output.
async fn command(out: &mut String, description: &str, program: &str, args: &[&str]) {
    let _ = writeln!(out, "Command: {program} {} ({description})", args.join(" "));
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(COMMAND_TIMEOUT, child).await {
        Ok(Ok(output)) => {
            let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&output.stderr));
            if text.len() > MAX_COMMAND_OUTPUT {
                let mut cut = MAX_COMMAND_OUTPUT;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
                text.push_str("\n(output cut)");
            }
            out.push_str(&text);
            if !output.status.success() {
                let _ = writeln!(out, "Command failed with {}", output.status);
            }
        }
        Ok(Err(error)) => {
            let _ = writeln!(out, "Command not available: {error}");
        }
        Err(_) => {
            let _ = writeln!(out, "Command timed out after {COMMAND_TIMEOUT:?}");
        }
    }
    out.push('\n');
}

fn read_or(path: &str) -> String {
    host::read_proc(path).unwrap_or_else(|error| format!("({error})\n"))
}

async fn report(config_path: &Path, config: Result<&NodeConfig, &String>) -> String {
    let mut out = String::new();
    let hostname = read_or("/proc/sys/kernel/hostname");
    let _ = writeln!(
        out,
        "AEGIS Comprehensive Diagnostic Report\nGenerated: {}\nHost: {}\nUser: uid {}\naegis {}\nConfiguration: {}\n=========================================",
        aegis_telemetry::format_rfc3339_millis(SystemTime::now()),
        hostname.trim(),
        std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(0),
        env!("CARGO_PKG_VERSION"),
        config_path.display()
    );

    section(&mut out, "System Information");
    let _ = writeln!(
        out,
        "Kernel: {} {} {}",
        read_or("/proc/sys/kernel/ostype").trim(),
        read_or("/proc/sys/kernel/osrelease").trim(),
        read_or("/proc/sys/kernel/version").trim()
    );
    if let Ok(release) =
        aegis_fs::read_regular_file_to_string(Path::new("/etc/os-release"), 64 * 1024)
    {
        out.push_str(&release);
    }
    let _ = writeln!(
        out,
        "Uptime (s, idle s): {}",
        read_or("/proc/uptime").trim()
    );
    command(
        &mut out,
        "Time synchronization status",
        "timedatectl",
        &["status"],
    )
    .await;

    section(&mut out, "System Resources");
    match host::memory() {
        Ok(memory) => {
            let _ = writeln!(
                out,
                "Memory: {:.2} GiB total, {:.2} GiB available ({}% used)",
                host::gib(memory.total_bytes),
                host::gib(memory.available_bytes),
                memory.percent()
            );
        }
        Err(error) => {
            let _ = writeln!(out, "Memory: {error}");
        }
    }
    let _ = writeln!(
        out,
        "CPUs: {}; load average: {}",
        host::cpu_count(),
        read_or("/proc/loadavg").trim()
    );
    if let Ok((cpu, _)) = host::cpu_percent(Duration::from_millis(500), None).await {
        let _ = writeln!(out, "CPU use over 0.5 s: {cpu}%");
    }
    let mut disks = vec![PathBuf::from("/")];
    if let Ok(config) = config {
        disks.push(config.home.clone());
        disks.push(config.node.data_dir.clone());
        if let Some(parent) = config.logging.file.parent() {
            disks.push(parent.to_path_buf());
        }
    }
    for path in disks {
        match host::disk(&path) {
            Ok(disk) => {
                let _ = writeln!(
                    out,
                    "Disk of {}: {:.2} GiB total, {:.2} GiB available ({}% used)",
                    path.display(),
                    host::gib(disk.total_bytes),
                    host::gib(disk.available_bytes),
                    disk.percent()
                );
            }
            Err(error) => {
                let _ = writeln!(out, "Disk of {}: {error}", path.display());
            }
        }
    }

    section(&mut out, "AEGIS Service Status");
    command(
        &mut out,
        "Systemd service status",
        "systemctl",
        &["status", "aegis", "--no-pager"],
    )
    .await;
    command(
        &mut out,
        "Recent service logs",
        "journalctl",
        &["-u", "aegis", "--no-pager", "-n", "50"],
    )
    .await;
    if let Ok(config) = config {
        match holder::holder(&config.node.data_dir) {
            Ok(Some(found)) => {
                let _ = writeln!(
                    out,
                    "The node of this home runs: pid {}, RSS {} MiB, {} threads: {}",
                    found.pid,
                    host::process_rss_bytes(found.pid).map_or(0, |b| b / 1_048_576),
                    host::process_threads(found.pid).unwrap_or(0),
                    found.cmdline
                );
            }
            Ok(None) => {
                let _ = writeln!(
                    out,
                    "The node of this home is NOT running (nobody holds {})",
                    holder::lock_path(&config.node.data_dir).display()
                );
            }
            Err(error) => {
                let _ = writeln!(out, "Whether the node runs: {error}");
            }
        }
    }

    section(&mut out, "AEGIS Processes");
    for (pid, cmdline) in aegis_processes() {
        let _ = writeln!(
            out,
            "pid {pid}: RSS {} MiB, {} threads: {cmdline}",
            host::process_rss_bytes(pid).map_or(0, |b| b / 1_048_576),
            host::process_threads(pid).unwrap_or(0)
        );
    }

    section(&mut out, "Network Connectivity");
    if let Ok(config) = config {
        let monitoring_port = config
            .monitoring
            .enabled
            .then_some(config.monitoring.metrics_port);
        for (what, host_name, port) in [
            ("p2p", config.p2p.host.as_str(), Some(config.p2p.port)),
            ("api", config.api.host.as_str(), Some(config.api.port)),
            (
                "monitoring",
                config.monitoring.host.as_str(),
                monitoring_port,
            ),
        ] {
            let Some(port) = port else { continue };
            let address = endpoints::reachable(host_name, port);
            let open = tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::TcpStream::connect(&address),
            )
            .await
            .is_ok_and(|r| r.is_ok());
            let _ = writeln!(
                out,
                "{what} port {address}: {}",
                if open { "listening" } else { "NOT listening" }
            );
        }
    }
    command(&mut out, "Listening sockets", "ss", &["-tlnp"]).await;

    section(&mut out, "AEGIS Configuration");
    match config {
        Ok(config) => {
            match aegis_fs::read_regular_file_to_string(
                &config.source,
                aegis_config::MAX_CONFIG_FILE_BYTES as u64,
            ) {
                Ok(text) => {
                    let _ = writeln!(out, "--- {}", config.source.display());
                    out.push_str(&redact_urls(&text));
                }
                Err(error) => {
                    let _ = writeln!(out, "{error}");
                }
            }
            let _ = writeln!(
                out,
                "\nStorage: {} at {}",
                crate::cmd::db::store_config(config).backend.kind(),
                crate::cmd::db::store_config(config).backend.location()
            );
            for (what, path) in [
                ("node key (encrypted; not read)", &config.node.key_file),
                ("TLS certificate", &config.security.tls.cert_file),
                ("TLS key (not read)", &config.security.tls.key_file),
            ] {
                let _ = writeln!(out, "{what}: {}", describe_file(path));
            }
        }
        Err(message) => {
            let _ = writeln!(out, "The configuration cannot be used:\n{message}");
        }
    }
    let home = aegis_config::resolve_home(config_path, &aegis_config::process_env);
    let dotenv = home.join(".env");
    let _ = writeln!(
        out,
        "\n--- {} (values of secret variables hidden)",
        dotenv.display()
    );
    match aegis_config::load_dotenv(&dotenv) {
        Ok(pairs) => {
            for (name, value) in pairs {
                let shown = if is_secret_name(&name) {
                    "***".to_owned()
                } else {
                    value
                };
                let _ = writeln!(out, "{name}={shown}");
            }
            let _ = writeln!(out, "(mode {})", describe_file(&dotenv));
        }
        Err(error) => {
            let _ = writeln!(out, "{error}");
        }
    }

    section(&mut out, "AEGIS Logs");
    if let Ok(config) = config {
        let path = &config.logging.file;
        match logfile::last_lines(path, REPORT_LOG_LINES) {
            Ok(lines) => {
                let _ = writeln!(out, "--- last {} lines of {}", lines.len(), path.display());
                for line in lines {
                    out.push_str(&line);
                    out.push('\n');
                }
            }
            Err(error) => {
                let _ = writeln!(out, "{error}");
            }
        }
        if let Some(dir) = path.parent() {
            let _ = writeln!(out, "--- {}", dir.display());
            if let Ok(entries) = std::fs::read_dir(dir) {
                for entry in entries.flatten().take(1_000) {
                    let _ = writeln!(out, "{}", describe_file(&entry.path()));
                }
            }
        }
    }

    section(&mut out, "Database Connectivity");
    if let Ok(config) = config {
        out.push_str(&database_facts(config).await);
    }

    section(&mut out, "Health and Metrics");
    if let Ok(config) = config
        && let Ok(client) = endpoints::client()
    {
        let url = format!("{}/health", endpoints::api_url(config));
        let _ = writeln!(out, "GET {url}");
        match endpoints::get(&client, &url).await {
            Ok(fetched) => {
                let _ = writeln!(
                    out,
                    "HTTP {} in {:?}: {}",
                    fetched.status, fetched.elapsed, fetched.body
                );
            }
            Err(error) => {
                let _ = writeln!(out, "failed: {error}");
            }
        }
        if let Some(base) = endpoints::monitoring_url(config) {
            let url = format!("{base}{}", endpoints::metrics_path(config));
            let _ = writeln!(out, "GET {url} (aegis_ series, first 20)");
            match endpoints::get(&client, &url).await {
                Ok(fetched) => {
                    for line in fetched
                        .body
                        .lines()
                        .filter(|l| l.starts_with("aegis_"))
                        .take(20)
                    {
                        out.push_str(line);
                        out.push('\n');
                    }
                }
                Err(error) => {
                    let _ = writeln!(out, "failed: {error}");
                }
            }
        }
    }

    section(&mut out, "File System");
    if let Ok(config) = config {
        let _ = writeln!(out, "Sizes under {}:", config.home.display());
        for (path, bytes) in sizes(&config.home) {
            let _ = writeln!(out, "{:>12} {}", bytes, path.display());
        }
    }
    out
}

/// `path: N bytes, mode 0600`, or why it cannot be looked at.
fn describe_file(path: &Path) -> String {
    match std::fs::symlink_metadata(path) {
        Ok(metadata) => format!(
            "{}: {} bytes, mode {:o}",
            path.display(),
            metadata.len(),
            metadata.permissions().mode() & 0o7777
        ),
        Err(error) => format!("{}: {error}", path.display()),
    }
}

/// Processes whose name is `aegis`: pid and command line.
fn aegis_processes() -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if host::read_proc(&format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == "aegis") {
            found.push((pid, holder::cmdline(pid)));
        }
    }
    found.sort();
    found
}

/// Total bytes of each entry directly under `home` (directories summed, symlinks not
/// followed), walking at most [`MAX_WALKED_ENTRIES`] entries.
fn sizes(home: &Path) -> Vec<(PathBuf, u64)> {
    let mut walked = 0usize;
    let mut result = Vec::new();
    let Ok(entries) = std::fs::read_dir(home) else {
        return result;
    };
    let mut top: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    top.sort();
    for path in top {
        let mut total = 0u64;
        let mut stack = vec![path.clone()];
        while let Some(next) = stack.pop() {
            walked += 1;
            if walked > MAX_WALKED_ENTRIES {
                break;
            }
            let Ok(metadata) = std::fs::symlink_metadata(&next) else {
                continue;
            };
            if metadata.is_dir() {
                if let Ok(children) = std::fs::read_dir(&next) {
                    stack.extend(children.flatten().map(|e| e.path()));
                }
            } else {
                total += metadata.len();
            }
        }
        result.push((path, total));
    }
    result
}

/// Backend, version, connections, schema and height, read-only.
async fn database_facts(config: &NodeConfig) -> String {
    let store = crate::cmd::db::store_config(config);
    let mut out = format!(
        "Backend: {} at {}\n",
        store.backend.kind(),
        store.backend.location()
    );
    match aegis_storage::admin::database_facts(&store).await {
        Ok(facts) => {
            for (name, value) in facts {
                let _ = writeln!(out, "{name}: {value}");
            }
        }
        Err(error) => {
            let _ = writeln!(out, "Database check failed: {error}");
        }
    }
    out
}

/// The bundle's files beside the report.
async fn bundle_extras(
    config_path: &Path,
    config: Result<&NodeConfig, &String>,
) -> Vec<(&'static str, String)> {
    let mut files = Vec::new();
    let Ok(config) = config else {
        files.push((
            "configuration-errors.txt",
            format!(
                "{}: {}",
                config_path.display(),
                config.err().map_or("", |e| e.as_str())
            ),
        ));
        return files;
    };
    if let Ok(text) = aegis_fs::read_regular_file_to_string(
        &config.source,
        aegis_config::MAX_CONFIG_FILE_BYTES as u64,
    ) {
        files.push(("production.yaml", redact_urls(&text)));
    }
    if let Ok(text) = aegis_fs::read_regular_file_to_string(
        &config.node.genesis_file,
        crate::preflight::MAX_GENESIS_FILE_BYTES,
    ) {
        files.push(("genesis.json", text));
    }
    if let Ok(lines) = logfile::last_lines(&config.logging.file, BUNDLE_LOG_LINES) {
        files.push(("aegis.log", lines.join("\n") + "\n"));
    }
    if let Ok(client) = endpoints::client() {
        let api = endpoints::api_url(config);
        if let Ok(fetched) = endpoints::get(&client, &format!("{api}/health")).await {
            files.push(("health.json", fetched.body));
        }
        if let Some(base) = endpoints::monitoring_url(config) {
            if let Ok(fetched) = endpoints::get(&client, &format!("{base}/status")).await {
                files.push(("status.json", fetched.body));
            }
            if let Ok(fetched) = endpoints::get(
                &client,
                &format!("{base}{}", endpoints::metrics_path(config)),
            )
            .await
            {
                files.push(("metrics.txt", fetched.body));
            }
        }
    }
    files
}

/// The guide's disaster_assessment.sh: service, data, backups, network, disk.
async fn assessment(
    config_path: &Path,
    config: Result<&NodeConfig, &String>,
    backups: &Path,
) -> String {
    let mut out = format!(
        "=== AEGIS Disaster Recovery Assessment ===\nTimestamp: {}\nConfiguration: {}\n",
        aegis_telemetry::format_rfc3339_millis(SystemTime::now()),
        config_path.display()
    );
    let config = match config {
        Ok(config) => config,
        Err(message) => {
            let _ = writeln!(out, "\nThe configuration cannot be used:\n{message}");
            return out;
        }
    };
    out.push_str("\n1. Service Status:\n");
    match holder::holder(&config.node.data_dir) {
        Ok(Some(found)) => {
            let _ = writeln!(out, "AEGIS node is running (pid {})", found.pid);
        }
        Ok(None) => out.push_str("AEGIS service is DOWN (no process holds this home)\n"),
        Err(error) => {
            let _ = writeln!(out, "AEGIS service: unknown ({error})");
        }
    }
    let store = crate::cmd::db::store_config(config);
    if let aegis_storage::Backend::Postgres { .. } = &store.backend {
        match aegis_storage::admin::database_facts(&store).await {
            Ok(_) => out.push_str("PostgreSQL is UP\n"),
            Err(error) => {
                let _ = writeln!(out, "PostgreSQL is DOWN: {error}");
            }
        }
    }
    out.push_str("\n2. Data Integrity:\n");
    match &store.backend {
        aegis_storage::Backend::Sqlite { path } => {
            if path.is_file() {
                let _ = writeln!(out, "Blockchain data exists: {}", describe_file(path));
            } else {
                let _ = writeln!(out, "WARNING: Blockchain data missing ({})", path.display());
            }
        }
        aegis_storage::Backend::Postgres { .. } => {}
    }
    match aegis_storage::admin::database_facts(&store).await {
        Ok(facts) => {
            for (name, value) in facts.into_iter().filter(|(n, _)| n.starts_with("chain")) {
                let _ = writeln!(out, "{name}: {value}");
            }
        }
        Err(error) => {
            let _ = writeln!(out, "WARNING: the ledger cannot be read: {error}");
        }
    }
    let consensus = config.node.data_dir.join("consensus");
    let entries = std::fs::read_dir(&consensus)
        .map(|e| e.count())
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "Consensus state: {} ({entries} files)",
        consensus.display()
    );
    let _ = writeln!(
        out,
        "Run `aegis verify --config {}` for a full check of the chain",
        config.source.display()
    );

    out.push_str("\n3. Available Backups:\n");
    match std::fs::read_dir(backups) {
        Ok(entries) => {
            let mut found: Vec<(SystemTime, PathBuf)> = entries
                .flatten()
                .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
                .collect();
            found.sort();
            if found.is_empty() {
                let _ = writeln!(out, "WARNING: no backups in {}", backups.display());
            }
            for (_, path) in found.iter().rev().take(5).rev() {
                let manifest =
                    aegis_fs::read_regular_file_to_string(&path.join("manifest.json"), 1024 * 1024)
                        .ok()
                        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok());
                match manifest {
                    Some(m) => {
                        let _ = writeln!(
                            out,
                            "{}: height {}, taken {}, {}",
                            path.display(),
                            m["height"],
                            m["created_at"].as_str().unwrap_or("?"),
                            m["backend"].as_str().unwrap_or("?")
                        );
                    }
                    None => {
                        let _ = writeln!(out, "{} (no aegis manifest)", path.display());
                    }
                }
            }
        }
        Err(error) => {
            let _ = writeln!(out, "WARNING: cannot list {}: {error}", backups.display());
        }
    }

    out.push_str("\n4. Network Connectivity:\n");
    for address in config
        .p2p
        .bootstrap_nodes
        .iter()
        .map(ToString::to_string)
        .take(16)
    {
        let reachable = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect(&address),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        let _ = writeln!(
            out,
            "Peer {address}: {}",
            if reachable { "OK" } else { "FAILED" }
        );
    }
    if config.p2p.bootstrap_nodes.is_empty() {
        out.push_str("No bootstrap_nodes configured\n");
    }
    out.push_str("\n5. Disk Space:\n");
    let mut paths = vec![PathBuf::from("/"), config.node.data_dir.clone()];
    if let Some(parent) = config.logging.file.parent() {
        paths.push(parent.to_path_buf());
    }
    for path in paths {
        if let Ok(disk) = host::disk(&path) {
            let _ = writeln!(
                out,
                "{}: {}% used, {:.2} GiB available",
                path.display(),
                disk.percent(),
                host::gib(disk.available_bytes)
            );
        }
    }
    out
}
