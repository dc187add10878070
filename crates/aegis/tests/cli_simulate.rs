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
