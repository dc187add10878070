//! Garbage in, `Ok` or `Err` out: the loader never panics.

// Helpers outside `#[test]` functions unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use aegis_config::parse_str;
use proptest::prelude::*;

fn env(name: &str) -> Option<String> {
    name.len().is_multiple_of(2).then(|| "${X}:-1".to_owned())
}

const FRAGMENTS: &[&str] = &[
    "p2p:",
    "storage:",
    "consensus:",
    "monitoring:",
    "  metrics:",
    "    - name: x",
    "  port: ",
    "  bootstrap_nodes:",
    "    - ",
    "&a ",
    "*a",
    "[",
    "]",
    "{",
    "}",
    "${",
    "${A}",
    "${B:-1}",
    "\"",
    "'",
    ": ",
    "- ",
    "\n",
    "\n  ",
    "#",
    "!!str ",
    "!tag ",
    "|",
    ">",
    "---",
    "...",
    "?",
    "70000",
    "64KB",
    "5m",
    "~",
    "\t",
    "%YAML 1.2",
    "<<: *a",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = parse_str(&text, Path::new("fuzz.yaml"), &env);
    }

    #[test]
    fn yaml_like_text_never_panics(parts in proptest::collection::vec(0..FRAGMENTS.len(), 0..60)) {
        let text: String = parts.iter().map(|&i| FRAGMENTS[i]).collect();
        let _ = parse_str(&text, Path::new("fuzz.yaml"), &env);
    }
}
