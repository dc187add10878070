//! Every shell command shown in docs/operations.md and docs/troubleshooting.md, run as
//! written against a real network this test starts.
//!
//! The commands are extracted from the pages' `sh`, `bash` and `console` blocks
//! ([`common::docs::shell_commands`]): a command added to a page is run here, or fails the
//! test until it is listed in [`NEEDS`] with the reason it cannot run in a test. Each block
//! runs in one bash, command by command in order (so `cd`, `LOG=...` and `pid=...` carry
//! over), with the production layout mapped onto the test's network ([`Layout::map`]):
//! `/opt/aegis` is a node's home, `/var/log/aegis/aegis.log` its log, ports 8000, 8080 and
//! 9090 its free ports, `/tmp/devnet` the network, `/backup/` a scratch directory, the
//! files the docs install under `/etc` the repository's `deploy/` files, and `aegis` the
//! build under test; `sudo` runs its command (the test runs as the user owning the
//! network), `AEGIS_HOME` is the node's home and `DATABASE_URL` a PostgreSQL database of
//! the test's own (`AEGIS_TEST_DATABASE_URL`). Where a block needs the node stopped (a
//! restore, a reset, SQLite maintenance), it runs against node3 once the test has stopped
//! it; the PostgreSQL blocks run against a home configured for that database.
//!
//! A command passes when it exits 0 (or 1 with nothing on stderr for a `grep` that found
//! nothing), prints what [`EXPECT`] says, and prints the lines a `console` block shows
//! under it (loosely: each shown line that starts with a word starts some line of the real
//! output; JSON is compared by its keys). Commands listed in [`NEEDS`] (systemd, root-only
//! changes to the host, other hosts, a long-running foreground) are checked by `bash -n`
//! here, the `aegis` ones also by `every_aegis_command_in_the_docs_parses` (docs_commands.rs),
//! and by their own tool in the test the reason names.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;
#[path = "docs_run/tables.rs"]
mod tables;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use common::docs::{DocCommand, shell_commands};
use common::network::Network;
use tables::{EXPECT, NEEDS, REWRITES};

/// Where a block runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    /// A new, empty home (the by-hand steps that create a node's files).
    Fresh,
    /// A home configured for PostgreSQL, never started (creating, backing up, restoring
    /// the database).
    Postgres,
    /// node0 of the running network.
    Running,
    /// node3, stopped by the test (restore, reset, SQLite maintenance).
    Stopped,
}

/// The target of a block, from what its commands do.
fn target_of(commands: &[&DocCommand]) -> Target {
    let text: String = commands.iter().map(|c| c.text.as_str()).collect();
    if [
        "aegis restore",
        "aegis reset",
        "REINDEX;",
        "DELETE FROM transaction_ids",
        "\"VACUUM;\"",
        "rm -rf /opt/aegis/data/p2p",
    ]
    .iter()
    .any(|t| text.contains(t))
    {
        Target::Stopped
    } else if text.contains("createdb aegis") {
        Target::Postgres
    } else if text.contains("aegis db migrate") {
        // Before the first start: the running node holds its home.
        Target::Stopped
    } else if text.contains("cd /opt/aegis") || text.contains("openssl genrsa") {
        Target::Fresh
    } else {
        Target::Running
    }
}

/// The production layout and the test's network.
struct Layout {
    network: Network,
    scratch: PathBuf,
    fresh: PathBuf,
    postgres: PathBuf,
    no_env: PathBuf,
    database: String,
    database_url: String,
    pg: BTreeMap<&'static str, String>,
}

impl Layout {
    fn home(&self, target: Target) -> PathBuf {
        match target {
            Target::Fresh => self.fresh.clone(),
            Target::Postgres => self.postgres.clone(),
            Target::Running => self.network.home(0),
            Target::Stopped => self.network.home(3),
        }
    }

    /// `text` with the production paths, ports and database name replaced by the test's,
    /// in one pass (a replacement is never replaced again).
    fn map(&self, text: &str, home: &Path, node: usize) -> String {
        let home = home.display().to_string();
        let scratch = self.scratch.display().to_string();
        let deploy = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy")
            .display()
            .to_string();
        let db = &self.database;
        let pairs: Vec<(String, String)> = vec![
            (
                "/tmp/devnet-generated".into(),
                format!("{scratch}/devnet-generated"),
            ),
            (
                "/tmp/devnet-backup".into(),
                format!("{scratch}/devnet-backup"),
            ),
            (
                "/tmp/devnet-diagnostics".into(),
                format!("{scratch}/devnet-diagnostics"),
            ),
            ("/tmp/devnet".into(), self.network.out.display().to_string()),
            (
                "/tmp/aegis_diagnostics".into(),
                format!("{scratch}/aegis_diagnostics"),
            ),
            (
                "/var/log/aegis/aegis.log".into(),
                format!("{home}/logs/aegis.log"),
            ),
            ("/var/log/aegis".into(), format!("{home}/logs")),
            ("/opt/aegis".into(), home.clone()),
            ("/backup/aegis".into(), format!("{scratch}/backup-aegis")),
            ("/backup/".into(), format!("{scratch}/")),
            (
                "/etc/systemd/system/aegis.service".into(),
                format!("{scratch}/aegis.service"),
            ),
            ("/etc/prometheus/".into(), format!("{deploy}/prometheus/")),
            (
                "/etc/logrotate.d/aegis".into(),
                format!("{deploy}/logrotate/aegis"),
            ),
            ("/etc/fail2ban/".into(), format!("{deploy}/fail2ban/")),
            ("createdb aegis".into(), format!("createdb {db}")),
            ("dropdb aegis".into(), format!("dropdb {db}")),
            ("-d aegis ".into(), format!("-d {db} ")),
            ("DATABASE aegis;".into(), format!("DATABASE {db};")),
            ("datname = 'aegis'".into(), format!("datname = '{db}'")),
        ];
        let mut out = String::new();
        let mut rest = text;
        'scan: while !rest.is_empty() {
            for (from, to) in &pairs {
                if let Some(after) = rest.strip_prefix(from.as_str()) {
                    out.push_str(to);
                    rest = after;
                    continue 'scan;
                }
            }
            // A port number: a whole run of digits, not part of a word or a path.
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let word_before = out
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            if !digits.is_empty() {
                out.push_str(
                    &self
                        .port(&digits, node, word_before)
                        .unwrap_or(digits.clone()),
                );
                rest = &rest[digits.len()..];
                continue;
            }
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
        out
    }

    /// The test network's port for a documented one: 8000+i (P2P), 8080+i (API) and
    /// 9090+i (metrics) of node i; the bare defaults are the target node's.
    fn port(&self, digits: &str, node: usize, word_before: bool) -> Option<String> {
        if word_before {
            return None;
        }
        let port: u16 = digits.parse().ok()?;
        let net = &self.network;
        let of = |base: u16| usize::from(port - base);
        let node_of = |i: usize| if i == 0 { node } else { i };
        match port {
            8000..=8003 => Some(net.p2p_port(node_of(of(8000))).to_string()),
            8080..=8083 => Some(net.api_port(node_of(of(8080))).to_string()),
            9090..=9093 => Some(net.metrics_port(node_of(of(9090))).to_string()),
            _ => None,
        }
    }
}

/// What running one command gave.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs a block's commands in order in one bash; `None` for a command not run.
fn run_block(
    layout: &Layout,
    commands: &[(&DocCommand, Option<String>)],
    target: Target,
    no_env: bool,
) -> Vec<Option<Ran>> {
    let dir = tempfile::tempdir_in(&layout.scratch).unwrap();
    let out = dir.path();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut script = String::from(
        "sudo() { while [ \"${1#-}\" != \"$1\" ]; do if [ \"$1\" = -u ]; then shift; fi; shift; done; \"$@\"; }\n",
    );
    writeln!(script, "cd '{}'", repo.display()).unwrap();
    for (i, (_, run)) in commands.iter().enumerate() {
        match run {
            Some(text) => writeln!(
                script,
                "{{ {text}\n}} >'{o}/{i}.out' 2>'{o}/{i}.err' </dev/null; echo $? >'{o}/{i}.rc'",
                o = out.display()
            )
            .unwrap(),
            None => script.push_str(":\n"),
        }
    }
    let home = if no_env {
        layout.no_env.clone()
    } else {
        layout.home(target)
    };
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_aegis"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // common::aegis() removes the node's variables; bash runs with that environment.
    let node_env = common::aegis();
    let mut bash = Command::new("bash");
    for (key, value) in node_env.get_envs() {
        match value {
            Some(value) => bash.env(key, value),
            None => bash.env_remove(key),
        };
    }
    bash.arg("-c")
        .arg(&script)
        .env("PATH", path)
        .env("AEGIS_HOME", &home)
        .env("TERM", "dumb")
        .envs(&layout.pg);
    if !no_env {
        bash.env("DATABASE_URL", &layout.database_url);
    }
    let status = bash.output().expect("run bash");
    assert!(
        status.status.code().is_some(),
        "the block's bash was killed: {status:?}"
    );
    commands
        .iter()
        .enumerate()
        .map(|(i, (_, run))| {
            run.as_ref()?;
            // Lossy: openssl s_client prints the node's first (binary) frame.
            let read = |ext: &str| {
                String::from_utf8_lossy(
                    &std::fs::read(out.join(format!("{i}.{ext}"))).unwrap_or_default(),
                )
                .into_owned()
            };
            Some(Ran {
                code: read("rc").trim().parse().ok(),
                stdout: read("out"),
                stderr: read("err"),
            })
        })
        .collect()
}

/// Loose comparison of the output a console block shows with the real output: each shown
/// line that starts with a letter (or is a JSON object) has a counterpart.
fn shown_output_problem(shown: &[String], stdout: &str) -> Option<String> {
    for line in shown {
        let line = line.trim();
        if line.starts_with('{') {
            let Ok(serde_json::Value::Object(want)) = serde_json::from_str(line) else {
                continue;
            };
            let found = stdout.lines().any(|l| {
                matches!(serde_json::from_str(l.trim()), Ok(serde_json::Value::Object(got))
                    if want.keys().all(|k| got.contains_key(k)))
            }) || stdout.contains(&format!(
                "\"{}\"",
                want.keys().next().cloned().unwrap_or_default()
            ));
            if !found {
                return Some(format!("no JSON object with the keys of `{line}`"));
            }
            continue;
        }
        let lead: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "_-/.".contains(*c))
            .collect();
        if !lead.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
            continue;
        }
        if !stdout.lines().any(|l| l.trim_start().starts_with(&lead)) {
            return Some(format!("no line starting `{lead}` (shown: `{line}`)"));
        }
    }
    None
}

fn setup() -> Layout {
    // The PostgreSQL test server, or when it is not set or does not answer, a throwaway
    // cluster of this test process.
    let base_url = std::env::var("AEGIS_TEST_DATABASE_URL")
        .ok()
        .filter(|url| {
            Command::new("pg_isready")
                .args(["-d", url])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .unwrap_or_else(|| {
            aegis_storage::testing::shared_cluster()
                .expect("a throwaway PostgreSQL cluster")
                .url("postgres")
        });
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let database = format!(
        "aegis_docs_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000
    );
    let (scheme, rest) = base_url.split_once("://").unwrap();
    let (user_part, host_part) = rest.split_once('@').unwrap();
    let user = user_part.split(':').next().unwrap();
    let (host_port, _) = host_part.split_once('/').unwrap();
    let database_url = format!("{scheme}://{user_part}@{host_port}/{database}");
    let (host, port) = host_port.rsplit_once(':').unwrap_or((host_port, "5432"));
    let pg = BTreeMap::from([
        ("PGHOST", host.to_owned()),
        ("PGPORT", port.to_owned()),
        ("PGUSER", user.to_owned()),
        ("PGDATABASE", "postgres".to_owned()),
    ]);

    let network = Network::start(4);
    let scratch = network.dir.path().join("scratch");
    std::fs::create_dir_all(scratch.join("backup-aegis")).unwrap();
    // A new home, laid out as the docs' install step makes it.
    let fresh = scratch.join("fresh");
    std::fs::create_dir_all(fresh.join("config/tls")).unwrap();
    // node3's files, configured for PostgreSQL; and the same without its .env.
    let postgres = scratch.join("postgres");
    let copied = Command::new("cp")
        .arg("-r")
        .arg(network.home(3))
        .arg(&postgres)
        .status()
        .unwrap();
    assert!(copied.success());
    let _ = std::fs::remove_dir_all(postgres.join("data"));
    std::fs::create_dir_all(postgres.join("data")).unwrap();
    let config = postgres.join("config/production.yaml");
    let yaml = std::fs::read_to_string(&config).unwrap().replace(
        "storage:\n  type: sqlite\n  path: data/blockchain.db\n",
        "storage:\n  type: postgresql\n  connection_string: \"${DATABASE_URL}\"\n",
    );
    assert!(yaml.contains("${DATABASE_URL}"));
    std::fs::write(&config, yaml).unwrap();
    let no_env = scratch.join("no-env");
    let copied = Command::new("cp")
        .arg("-r")
        .arg(&postgres)
        .arg(&no_env)
        .status()
        .unwrap();
    assert!(copied.success());
    std::fs::remove_file(no_env.join(".env")).unwrap();
    let mut env = std::fs::read_to_string(postgres.join(".env")).unwrap();
    writeln!(env, "DATABASE_URL={database_url}").unwrap();
    std::fs::write(postgres.join(".env"), env).unwrap();
    // The unit as installed, for systemd-analyze verify: this machine has the test build.
    let unit = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/systemd/aegis.service"),
    )
    .unwrap()
    .replace("/usr/local/bin/aegis", env!("CARGO_BIN_EXE_aegis"));
    std::fs::write(scratch.join("aegis.service"), unit).unwrap();
    Layout {
        network,
        scratch,
        fresh,
        postgres,
        no_env,
        database,
        database_url,
        pg,
    }
}

/// Drops the test's PostgreSQL database, however the test ends.
struct DropDatabase(BTreeMap<&'static str, String>, String);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let _ = Command::new("dropdb")
            .args(["--if-exists", &self.1])
            .envs(&self.0)
            .output();
    }
}

/// The nftables drill's rules, checked by nft itself without applying them (`nft -c`: the
/// kernel validates the whole batch, nothing changes). The shell resolves the quoting: an
/// `nft` function collects each command's arguments into one batch file.
fn nft_drill_problem(all: &[DocCommand], scratch: &Path) -> Option<String> {
    let drill: Vec<&DocCommand> = all.iter().filter(|c| c.text.starts_with("nft ")).collect();
    assert!(
        !drill.is_empty(),
        "troubleshooting.md shows the nftables drill"
    );
    if Command::new("nft").arg("--version").output().is_err() {
        eprintln!("nft is not installed: the drill's rules are checked by bash -n only");
        return None;
    }
    let batch = scratch.join("nft-drill.nft");
    let mut script = format!(
        "nft() {{ printf '%s\\n' \"$*\" >> '{}'; }}\n",
        batch.display()
    );
    for command in &drill {
        script.push_str(&command.text);
        script.push('\n');
    }
    let collected = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert!(collected.status.success(), "{collected:?}");
    let check = Command::new("nft")
        .arg("-c")
        .arg("-f")
        .arg(&batch)
        .output()
        .unwrap();
    (!check.status.success()).then(|| {
        format!(
            "troubleshooting.md's nftables drill: nft -c -f on its {} commands: {}{}",
            drill.len(),
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        )
    })
}

fn needs(command: &str) -> Option<&'static (&'static str, &'static str)> {
    NEEDS.iter().find(|(text, _)| command.contains(text))
}

#[test]
fn every_shell_command_of_the_operations_and_troubleshooting_pages_runs() {
    let mut all: Vec<DocCommand> = Vec::new();
    for page in ["operations.md", "troubleshooting.md"] {
        all.extend(shell_commands(page));
    }
    assert!(all.len() > 150, "the pages' commands: {}", all.len());

    // Classified entries that match nothing are stale.
    for (text, _) in NEEDS {
        assert!(
            all.iter().any(|c| c.text.contains(text)),
            "NEEDS lists `{text}`, which no command of the docs contains"
        );
    }
    for (text, ..) in REWRITES {
        assert!(
            all.iter().any(|c| c.text.contains(text)),
            "REWRITES lists `{text}`, which no command of the docs contains"
        );
    }

    // Every listed command still parses.
    let mut failures = Vec::new();
    for command in &all {
        let output = Command::new("bash")
            .args(["-n", "-c", &command.text])
            .output()
            .unwrap();
        if !output.status.success() {
            failures.push(format!(
                "{}: `{}`: bash -n: {}",
                command.page,
                command.text,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }

    let layout = setup();
    let _drop = DropDatabase(layout.pg.clone(), layout.database.clone());
    let mut layout = layout;

    // Blocks by target, in the order: new homes, PostgreSQL's creation, the running
    // network, then the stopped node.
    let mut by_block: BTreeMap<(String, usize), Vec<&DocCommand>> = BTreeMap::new();
    for command in &all {
        by_block
            .entry((command.page.clone(), command.block))
            .or_default()
            .push(command);
    }
    let mut plan: Vec<(Target, Vec<&DocCommand>)> = by_block
        .into_values()
        .map(|commands| (target_of(&commands), commands))
        .collect();
    plan.sort_by_key(|(target, _)| match target {
        Target::Fresh => 0,
        Target::Postgres => 1,
        Target::Running => 2,
        Target::Stopped => 3,
    });
    // The PostgreSQL restore runs last, on the database the earlier blocks filled.
    plan.sort_by_key(|(_, commands)| commands.iter().any(|c| c.text.contains("pg_restore")));

    let mut ran = 0;
    let mut skipped = 0;
    let mut stopped = false;
    for (target, commands) in &plan {
        let target = *target;
        if target == Target::Stopped && !stopped {
            layout.network.stop_node(3);
            stopped = true;
        }
        let home = layout.home(target);
        let node = if target == Target::Stopped { 3 } else { 0 };
        // The console example of missing variables runs where they are missing.
        let no_env = commands.iter().any(|c| {
            c.shown
                .iter()
                .any(|l| l.contains("Missing environment variables"))
        });
        let runs: Vec<(&DocCommand, Option<String>)> = commands
            .iter()
            .map(|c| {
                let rewritten = REWRITES
                    .iter()
                    .any(|(contains, ..)| c.text.contains(contains));
                if !rewritten && needs(&c.text).is_some() {
                    return (*c, None);
                }
                let mut text = c.text.clone();
                for (contains, from, to, _) in REWRITES {
                    if c.text.contains(contains) {
                        text = text.replace(from, to);
                    }
                }
                (*c, Some(layout.map(&text, &home, node)))
            })
            .collect();
        let results = run_block(&layout, &runs, target, no_env);
        for ((command, run), result) in runs.iter().zip(results) {
            let (Some(run), Some(result)) = (run, result) else {
                skipped += 1;
                if let Some((_, why)) = needs(&command.text) {
                    eprintln!("not run: {}: `{}`: {why}", command.page, command.text);
                }
                continue;
            };
            ran += 1;
            let where_ = format!(
                "{} (under \"{}\"): `{}`\n  ran as: `{run}`",
                command.page, command.heading, command.text
            );
            let grep_found_nothing =
                result.code == Some(1) && result.stderr.trim().is_empty() && run.contains("grep");
            // aegis health's verdict includes this shared machine's CPU, memory and disk.
            let health_verdict = run.contains("aegis health") && matches!(result.code, Some(1 | 2));
            let timed_out = run.contains("timeout 3 ") && result.code == Some(124);
            let expected_failure = no_env && result.code == Some(1);
            if !(result.code == Some(0)
                || grep_found_nothing
                || health_verdict
                || timed_out
                || expected_failure)
            {
                failures.push(format!(
                    "{where_}\n  exit {:?}\n  stdout: {}\n  stderr: {}",
                    result.code,
                    result.stdout.trim(),
                    result.stderr.trim()
                ));
                continue;
            }
            for (contains, want) in EXPECT {
                if command.text.contains(contains) && !no_env && !result.stdout.contains(want) {
                    failures.push(format!(
                        "{where_}\n  does not print `{want}`:\n{}{}",
                        result.stdout, result.stderr
                    ));
                }
            }
            if let Some(problem) = shown_output_problem(
                &command.shown,
                &format!("{}{}", result.stdout, result.stderr),
            ) {
                failures.push(format!(
                    "{where_}\n  output unlike the page's: {problem}\n{}",
                    result.stdout
                ));
            }
        }
    }
    failures.extend(nft_drill_problem(&all, &layout.scratch));
    assert!(
        failures.is_empty(),
        "{} of {} documented commands fail ({ran} run, {skipped} needing a system service):\n\n{}",
        failures.len(),
        all.len(),
        failures.join("\n\n")
    );
    assert!(ran > 100, "{ran} commands run");
}
