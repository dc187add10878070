//! `aegis simulate` against the real binary: arguments the simulator cannot honour are
//! refused with one error line and exit 1 (no panic, no misleading summary), and a small
//! healthy run ends with `seeds: K, violations: 0` and exit 0.

#![allow(clippy::expect_used, reason = "test code")]

use std::process::{Command, Output};

/// Runs `aegis simulate ARGS`: (exit code, stdout, stderr).
fn simulate(args: &[&str]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_aegis"))
        .arg("simulate")
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("AEGIS_LOG")
        .env_remove("RUST_LOG")
        .output()
        .expect("aegis runs");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// A refusal: exit 1, the expected words on stderr, nothing that reads as a result.
fn assert_refused(args: &[&str], expected: &[&str]) {
    let (code, stdout, stderr) = simulate(args);
    assert_eq!(code, 1, "{args:?}\nstdout: {stdout}\nstderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    assert!(!stderr.contains("backtrace"), "{args:?}: {stderr}");
    for word in expected {
        assert!(
            stderr.contains(word),
            "{args:?}: {word:?} not in {stderr:?}"
        );
    }
    assert!(stderr.starts_with("error: "), "{args:?}: {stderr:?}");
    assert!(
        !stdout.contains("seeds:"),
        "{args:?}: summary printed: {stdout:?}"
    );
}

#[test]
fn too_many_validators_is_an_error_not_a_panic() {
    assert_refused(
        &["--validators", "100000", "--seeds", "1"],
        &["--validators 100000", "maximum of 1024", "4 to 1024"],
    );
}

#[test]
fn a_seed_range_past_u64_max_is_refused() {
    assert_refused(
        &["--seeds", "2", "--start-seed", "18446744073709551615"],
        &[
            "--start-seed 18446744073709551615 with --seeds 2",
            "at most 1 seed(s)",
        ],
    );
    assert_refused(&["--seeds", "0"], &["--seeds 0 runs nothing"]);
}

#[test]
fn too_few_validators_print_only_the_error() {
    assert_refused(
        &["--validators", "2", "--seeds", "1"],
        &["--validators 2 is too few", "4 to 1024"],
    );
}

#[test]
fn a_small_healthy_run_succeeds() {
    let (code, stdout, stderr) = simulate(&["--validators", "4", "--seeds", "3"]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        stdout.lines().last(),
        Some("seeds: 3, violations: 0"),
        "{stdout}"
    );
}

#[test]
fn one_seed_replays_with_its_fault_rates_and_event_log() {
    let (code, stdout, stderr) = simulate(&["--validators", "4", "--seed", "7", "--trace"]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let first = stdout.lines().next().unwrap_or("");
    assert!(
        first.starts_with("seed 7: faults: n=4 f=1 "),
        "the seed's fault rates come first: {first}"
    );
    assert!(stdout.contains(" ms  deliver "), "no event log: {stdout}");
    assert!(stdout.contains(" ms  heal: "), "{stdout}");
    assert_eq!(stdout.lines().last(), Some("seeds: 1, violations: 0"));
    // The same seed replays exactly, event log and all.
    let (_, again, _) = simulate(&["--validators", "4", "--seed", "7", "--trace"]);
    let strip = |text: &str| -> String {
        text.lines()
            .filter(|line| !line.contains("wall time"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&stdout), strip(&again));
    // Without --trace: the fault rates and the summary only.
    let (code, quiet, _) = simulate(&["--validators", "4", "--seed", "7"]);
    assert_eq!(code, 0);
    assert!(!quiet.contains(" ms  deliver "), "{quiet}");
    assert_eq!(quiet.lines().last(), Some("seeds: 1, violations: 0"));
}

#[test]
fn trace_without_a_seed_and_seed_with_a_range_are_refused() {
    assert_refused(&["--trace"], &["--trace", "--seed S"]);
    assert_refused(&["--seed", "3", "--seeds", "2"], &["--seed S", "--seeds"]);
    assert_refused(&["--seed", "3", "--start-seed", "2"], &["--start-seed"]);
    assert_refused(
        &["--validators", "3", "--seed", "1"],
        &["--validators 3 is too few"],
    );
}

#[test]
fn raft_runs_on_three_validators_and_refuses_two() {
    let (code, stdout, stderr) =
        simulate(&["--algorithm", "raft", "--validators", "3", "--seeds", "3"]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("algorithm: raft, validators: 3, f: 1 crashed"),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().last(),
        Some("seeds: 3, violations: 0"),
        "{stdout}"
    );
    assert_refused(
        &["--algorithm", "raft", "--validators", "2", "--seeds", "1"],
        &[
            "--validators 2 is too few to tolerate a crash",
            "raft on 3 to 1024",
        ],
    );
}

#[test]
fn a_raft_seed_replays_with_its_event_log() {
    let args = [
        "--algorithm",
        "raft",
        "--validators",
        "3",
        "--seed",
        "5",
        "--trace",
    ];
    let (code, stdout, stderr) = simulate(&args);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let first = stdout.lines().next().unwrap_or("");
    assert!(
        first.starts_with("seed 5: faults: n=3 f=0 byzantine=[] "),
        "a Raft seed has no Byzantine node: {first}"
    );
    assert!(stdout.contains(" ms  deliver "), "no event log: {stdout}");
    assert!(
        stdout.contains("algorithm: raft, validators: 3, f: 1 crashed"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().last(), Some("seeds: 1, violations: 0"));
}
