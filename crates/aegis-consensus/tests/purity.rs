//! This crate is pure: no async runtime, randomness, database or TLS in its dependency tree,
//! and no clock, file system, network, thread or hash-ordered collection in its source
//! (ARCHITECTURE.md; the simulator replays a seed only if that holds). The checks are
//! `aegis_testkit::purity`'s, shared by the pure crates.

#[test]
fn no_runtime_randomness_io_or_unordered_collections() {
    aegis_testkit::purity::assert_pure(env!("CARGO_MANIFEST_DIR"));
}
