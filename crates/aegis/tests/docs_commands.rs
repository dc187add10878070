//! The `aegis` commands shown in docs/operations.md and docs/troubleshooting.md:
//!
//! - every one of them parses: its subcommand and options exist (run with `--help` appended,
//!   which clap answers only once everything before it is known);
//! - the `aegis --help` transcript of operations.md is the binary's;
//! - operations.md's Subcommands table lists every subcommand of `aegis --help`.
//!
//! Every shell command of the two pages, these included, runs against a real network in
//! `docs_run.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use common::aegis;
use common::docs::{code_blocks, doc};
use common::network::Network;

/// Shell command lines of the shell blocks (`sh`, `bash`, `console` with `$ ` prompts),
/// continuation lines joined.
fn shell_commands(text: &str) -> Vec<String> {
    let mut commands = Vec::new();
    for (info, lines) in code_blocks(text) {
        let console = info == "console";
        if !(console || info == "sh" || info == "bash") {
            continue;
        }
        let mut pending = String::new();
        let mut in_heredoc: Option<String> = None;
        for line in lines {
            if let Some(end) = &in_heredoc {
                if line.trim() == end {
                    in_heredoc = None;
                }
                continue;
            }
            let line = if console {
                match line.strip_prefix("$ ") {
                    Some(command) => command.to_owned(),
                    None if !pending.is_empty() => line.clone(),
                    None => continue,
                }
            } else {
                line.clone()
            };
            if let Some(start) = line.find("<< '").or_else(|| line.find("<<'")) {
                let rest = &line[start..];
                let end: String = rest.split('\'').nth(1).unwrap_or_default().to_owned();
                in_heredoc = Some(end);
            }
            if let Some(continued) = line.strip_suffix('\\') {
                pending.push_str(continued);
                pending.push(' ');
                continue;
            }
            pending.push_str(&line);
            commands.push(std::mem::take(&mut pending));
        }
    }
    commands
}

/// The `aegis ...` invocation in a shell line, as argument words: after `sudo -u aegis env
/// AEGIS_HOME=...` or `sudo`, up to a pipe, redirection, `;`, `&&`, `&` or `#` comment.
fn aegis_invocation(line: &str) -> Option<Vec<String>> {
    let mut words = line.split_whitespace();
    // The wrappers: sudo and its options (-u takes a user), env and its assignments.
    let program = loop {
        let word = words.next()?;
        match word {
            "sudo" | "env" => {}
            "-u" => {
                words.next()?;
            }
            _ if word.starts_with('-') || word.contains('=') => {}
            _ => break word,
        }
    };
    if program != "aegis" {
        return None;
    }
    let mut args = Vec::new();
    for word in words {
        if ["|", "||", "&&", ";", "&", "<"].contains(&word)
            || word.starts_with('#')
            || word.starts_with('>')
            || word.starts_with("2>")
        {
            break;
        }
        args.push(word.to_owned());
    }
    Some(args)
}

/// Runs a bash command line with a command's environment.
trait BashOutput {
    fn output_of_bash(&mut self, line: &str) -> std::process::Output;
}

impl BashOutput for std::process::Command {
    fn output_of_bash(&mut self, line: &str) -> std::process::Output {
        let mut bash = std::process::Command::new("bash");
        bash.arg("-c").arg(line);
        for (key, value) in self.get_envs() {
            match value {
                Some(value) => bash.env(key, value),
                None => bash.env_remove(key),
            };
        }
        bash.output().expect("run bash")
    }
}

fn doc_invocations() -> Vec<(String, Vec<String>)> {
    let mut all = Vec::new();
    for name in ["operations.md", "troubleshooting.md"] {
        for line in shell_commands(&doc(name)) {
            if let Some(words) = aegis_invocation(&line) {
                all.push((format!("{name}: {line}"), words));
            }
        }
    }
    all
}

#[test]
fn every_aegis_command_in_the_docs_parses() {
    let invocations = doc_invocations();
    let subcommands: std::collections::BTreeSet<&str> = invocations
        .iter()
        .filter_map(|(_, words)| words.first().map(String::as_str))
        .collect();
    // The docs show the operator tools, not only the node.
    for expected in [
        "run",
        "testnet",
        "keygen",
        "config",
        "db",
        "verify",
        "health",
        "validators",
        "backup",
        "restore",
        "reset",
        "logs",
        "diagnose",
        "monitor",
    ] {
        assert!(
            subcommands.contains(expected),
            "no `aegis {expected}` in the docs: {subcommands:?}"
        );
    }
    let mut failures = Vec::new();
    for (source, words) in &invocations {
        // Through bash, as an operator types it ($(date ...), quotes, variables).
        let mut command = aegis();
        let program = command.get_program().to_owned();
        // A shell variable set by an earlier line of the page (`"$latest"`) stands for a
        // value here.
        for word in words {
            if let Some(name) = word.trim_matches('"').strip_prefix('$')
                && !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                command.env(name, "VALUE");
            }
        }
        let output = command
            .env("AEGIS_BIN", program)
            .env_remove("AEGIS_HOME")
            .output_of_bash(&format!("exec \"$AEGIS_BIN\" {} --help", words.join(" ")));
        if !output.status.success() {
            failures.push(format!(
                "{source}\n  aegis {} --help: exit {:?}: {}",
                words.join(" "),
                output.status.code(),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} documented aegis commands do not parse:\n{}",
        failures.len(),
        invocations.len(),
        failures.join("\n")
    );
}

#[test]
fn the_help_transcript_in_operations_md_is_the_binarys() {
    let text = doc("operations.md");
    let block = code_blocks(&text)
        .into_iter()
        .find(|(info, lines)| {
            info == "console" && lines.first().is_some_and(|l| l == "$ aegis --help")
        })
        .expect("operations.md shows `$ aegis --help`");
    let shown = block.1[1..].join("\n");
    let output = aegis().arg("--help").output().unwrap();
    let actual = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        shown.trim_end(),
        actual.trim_end(),
        "operations.md's `aegis --help` transcript"
    );
}

/// The subcommands listed in `aegis --help`, `help` aside.
fn help_subcommands() -> std::collections::BTreeSet<String> {
    let output = aegis().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout).into_owned();
    let commands = help
        .split("Commands:\n")
        .nth(1)
        .expect("`aegis --help` lists its commands");
    commands
        .lines()
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// operations.md's Subcommands table has a row for every subcommand of `aegis --help`, and
/// none for a subcommand the binary does not have.
#[test]
fn the_subcommands_table_of_operations_md_lists_every_subcommand() {
    let text = doc("operations.md");
    let section = text
        .split("\n## Subcommands\n")
        .nth(1)
        .expect("operations.md has ## Subcommands")
        .split("\n## ")
        .next()
        .unwrap_or_default();
    let mut table = std::collections::BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| `aegis")) {
        let command = row.trim_start_matches("| `aegis").trim_start();
        // `aegis --config FILE` is `aegis run`'s short form, not a subcommand.
        if let Some(name) = command
            .split([' ', '`'])
            .next()
            .filter(|n| !n.starts_with('-'))
        {
            table.insert(name.to_owned());
        }
    }
    let help = help_subcommands();
    assert!(
        help.len() >= 19,
        "aegis --help lists its commands: {help:?}"
    );
    let missing: Vec<_> = help.difference(&table).collect();
    let unknown: Vec<_> = table.difference(&help).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "operations.md's Subcommands table: no row for {missing:?}; rows for commands `aegis --help` \
         does not list: {unknown:?}"
    );
}

/// The guide's `yamllint config/production.yaml` passes, with yamllint's default rules, on
/// every configuration `aegis testnet` writes (yamllint must be installed: Debian's
/// `yamllint` package).
#[test]
fn the_guides_yamllint_passes_on_what_aegis_testnet_writes() {
    let network = Network::generate(4);
    for i in 0..4 {
        let output = std::process::Command::new("yamllint")
            .arg("config/production.yaml")
            .current_dir(network.home(i))
            .output()
            .expect("yamllint is installed (apt install yamllint)");
        assert!(
            output.status.success() && output.stdout.is_empty(),
            "yamllint on node{i}'s configuration: exit {:?}\n{}{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
