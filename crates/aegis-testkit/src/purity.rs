//! The purity check of the pure crates (types, consensus, mempool): ARCHITECTURE.md says they
//! never depend on an async runtime, randomness, a database or TLS, and the simulator replays a
//! seed only if nothing in them reads a clock, the file system, the network, a thread RNG, or
//! iterates a hash map whose order depends on random keys.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Crates no pure crate may have in its (normal) dependency tree.
pub const FORBIDDEN_CRATES: &[&str] = &[
    "tokio",
    "rand",
    "rand_chacha",
    "sqlx",
    "rustls",
    "mio",
    "hyper",
    "axum",
];

/// Words no pure crate's source may contain.
pub const FORBIDDEN_WORDS: &[&str] = &[
    "std::time",
    "SystemTime",
    "Instant",
    "std::fs",
    "std::net",
    "std::thread",
    "thread_rng",
    "OsRng",
    "tokio",
    "HashMap",
    "HashSet",
];

/// Checks the crate whose manifest directory is `manifest_dir` (pass
/// `env!("CARGO_MANIFEST_DIR")`): its dependency tree and every file under `src/`. Panics
/// naming the crate or the file and the word.
pub fn assert_pure(manifest_dir: &str) {
    let dir = Path::new(manifest_dir);
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("?")
        .to_owned();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
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
        .arg(dir.join("Cargo.toml"))
        .output()
        .expect("run cargo tree");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8_lossy(&output.stdout);
    assert!(
        tree.contains(&name),
        "{name} is not in its own tree:\n{tree}"
    );
    for line in tree.lines() {
        let dependency = line.split_whitespace().next().unwrap_or("");
        assert!(
            !FORBIDDEN_CRATES.contains(&dependency),
            "{name} depends on {dependency}:\n{tree}"
        );
    }
    let mut files: Vec<PathBuf> = vec![dir.join("src")];
    let mut checked = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read the source directory") {
                files.push(entry.expect("read a directory entry").path());
            }
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read a source file");
        for word in FORBIDDEN_WORDS {
            assert!(!text.contains(word), "{} mentions {word}", path.display());
        }
        checked += 1;
    }
    assert!(checked > 0, "{name} has no source files");
}
