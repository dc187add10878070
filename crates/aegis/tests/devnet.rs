//! `aegis devnet` in a terminal, as a newcomer runs it: driven through tmux, it starts the
//! validators, shows progress with committed transactions, and on Ctrl-C stops every node
//! cleanly and exits 0.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::process::Command;
use std::time::Duration;

use aegis_testkit::wait::wait_until;
use common::network::base_port;

/// The devnet may take this long to start four nodes and commit on a loaded machine.
const PROGRESS_WAIT: Duration = Duration::from_secs(120);

/// A tmux session killed when the test ends, however it ends.
struct Session(String);

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

fn tmux(args: &[&str]) -> String {
    let output = Command::new("tmux")
        .args(args)
        .output()
        .expect("tmux is installed");
    assert!(output.status.success(), "tmux {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn screen(session: &str) -> String {
    tmux(&["capture-pane", "-p", "-S", "-200", "-t", session])
}

/// The highest committed-transaction rate and height shown so far.
fn committed(screen: &str) -> Option<(u64, f64)> {
    screen
        .lines()
        .filter(|line| line.contains("tx/s committed"))
        .filter_map(|line| {
            let height: u64 = line
                .strip_prefix("height ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            let rate: f64 = line
                .split(" | ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some((height, rate))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
}

#[test]
fn devnet_starts_shows_progress_and_stops_cleanly_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_port(4);
    let session = Session(format!("aegis-devnet-{}", std::process::id()));
    // The shell (which lets Ctrl-C reach only its child) records the devnet's exit status in a file: tmux reports a pane's status
    // only once it reaps the process, which some tmux servers do late.
    let exit_file = dir.path().join("devnet.exit");
    let command = format!(
        "sh -c 'trap : INT; {} devnet --dir {} --base-port {base} --rate 20; echo $? > {}'",
        env!("CARGO_BIN_EXE_aegis"),
        dir.path().join("devnet").display(),
        exit_file.display()
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &session.0,
        "-x",
        "220",
        "-y",
        "60",
        &command,
    ]);
    tmux(&["set-option", "-t", &session.0, "remain-on-exit", "on"]);
    wait_until(
        PROGRESS_WAIT,
        || {
            format!(
                "progress with committed transactions:\n{}",
                screen(&session.0)
            )
        },
        || committed(&screen(&session.0)).is_some_and(|(height, rate)| height >= 2 && rate > 0.0),
    );
    let shown = screen(&session.0);
    assert!(shown.contains("devnet is up"), "{shown}");
    assert!(shown.contains("latency p50"), "{shown}");
    assert!(shown.contains("peers [3 3 3 3]"), "{shown}");
    tmux(&["send-keys", "-t", &session.0, "C-c"]);
    wait_until(
        Duration::from_secs(60),
        || format!("the devnet to stop:\n{}", screen(&session.0)),
        || tmux(&["display-message", "-p", "-t", &session.0, "#{pane_dead}"]).trim() == "1",
    );
    let last = screen(&session.0);
    for i in 0..4 {
        assert!(
            last.contains(&format!("stopped node{i} (exit status: 0)")),
            "{last}"
        );
    }
    let status = aegis_testkit::wait::wait_for(
        Duration::from_secs(10),
        || format!("the devnet's exit status in {}", exit_file.display()),
        || {
            std::fs::read_to_string(&exit_file)
                .ok()
                .map(|text| text.trim().to_owned())
                .filter(|text| !text.is_empty())
        },
    );
    assert_eq!(status, "0", "{last}");
    // The nodes' logs say they stopped on the signal, not on a failure.
    for i in 0..4 {
        let log =
            std::fs::read_to_string(dir.path().join(format!("devnet/node{i}/logs/aegis.log")))
                .unwrap();
        assert!(log.contains("AEGIS node stopped"), "node{i}: {log}");
    }
}
