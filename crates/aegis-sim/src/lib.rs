//! AEGIS deterministic cluster simulator (in progress).
