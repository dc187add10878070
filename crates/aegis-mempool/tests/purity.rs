//! The mempool is pure: no async runtime, no randomness, no database or TLS in its dependency
//! tree, and no clock, file system, network, thread or unordered collection in its source
//! (ARCHITECTURE.md: "the pure crates never depend on tokio, sqlx or rustls"; the simulator
//! replays a seed only if iteration order never depends on a hasher's random keys).

use std::path::Path;
use std::process::Command;

#[test]
fn dependency_tree_has_no_runtime_randomness_or_io_crates() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let output = Command::new(cargo)
        .args([
            "tree",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8_lossy(&output.stdout);
    assert!(tree.contains("aegis-mempool"), "{tree}");
    for line in tree.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        for forbidden in [
            "tokio",
            "rand",
            "rand_chacha",
            "sqlx",
            "rustls",
            "mio",
            "hyper",
        ] {
            assert_ne!(
                name, forbidden,
                "aegis-mempool depends on {forbidden}:\n{tree}"
            );
        }
    }
}

#[test]
fn source_never_touches_clocks_files_sockets_threads_or_hashed_collections() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src];
    let mut checked = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                files.push(entry.unwrap().path());
            }
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for forbidden in [
            "std::time",
            "SystemTime",
            "Instant",
            "std::fs",
            "std::net",
            "std::thread",
            "std::io",
            "thread_rng",
            "OsRng",
            "tokio",
            "HashMap",
            "HashSet",
        ] {
            assert!(
                !text.contains(forbidden),
                "{} mentions {forbidden}",
                path.display()
            );
        }
        checked += 1;
    }
    // lib, config, drain, pool, recent, size.
    assert!(checked >= 6, "only {checked} source files found");
}
