//! Stage one: the spanned YAML tree into the file structs, collecting every error.
//!
//! serde is not used for this stage on purpose: a serde `Deserialize` stops at the first
//! error, and the operator must see all of them at once, each with its line, column and
//! dotted key. The [`Decode`] trait walks the tree instead; a value that fails to decode is
//! reported and leaves the field at its default, and the walk goes on.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::env::{EnvLookup, substitute};
use crate::error::{ConfigError, Location};
use crate::yaml::{Node, NodeKind};

/// Shared state of one decoding pass.
pub(crate) struct Ctx<'a> {
    pub(crate) file: String,
    pub(crate) env: EnvLookup<'a>,
    pub(crate) errors: Vec<ConfigError>,
    /// Unset `${VAR}`s without default.
    pub(crate) missing: BTreeSet<String>,
    /// Where each key that the file sets has its value.
    pub(crate) locations: BTreeMap<String, Location>,
    /// Keys whose value was already reported; later checks on their (default) value are
    /// skipped so one mistake gives one message.
    pub(crate) failed: BTreeSet<String>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(file: String, env: EnvLookup<'a>) -> Self {
        Ctx {
            file,
            env,
            errors: Vec::new(),
            missing: BTreeSet::new(),
            locations: BTreeMap::new(),
            failed: BTreeSet::new(),
        }
    }

    pub(crate) fn error(&mut self, location: Location, key: &str, message: impl Into<String>) {
        self.failed.insert(key.to_owned());
        self.errors.push(ConfigError {
            file: self.file.clone(),
            location,
            key: key.to_owned(),
            message: message.into(),
        });
    }

    /// The scalar's text after `${VAR}` substitution, or `None` (already reported) if the
    /// node is not a scalar, a reference is malformed or a variable is missing.
    pub(crate) fn scalar(&mut self, node: &Node, key: &str, expected: &str) -> Option<String> {
        let NodeKind::Scalar { text, .. } = &node.kind else {
            self.error(
                node.location,
                key,
                format!("expected {expected}, found {}", node.describe()),
            );
            return None;
        };
        let before = self.missing.len();
        match substitute(text, self.env, &mut self.missing) {
            Ok(_) if self.missing.len() != before => {
                self.failed.insert(key.to_owned());
                None
            }
            Ok(value) => Some(value),
            Err(message) => {
                self.error(node.location, key, message);
                None
            }
        }
    }
}

/// Joins a section path and a key: `("p2p", "port")` gives `p2p.port`.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A value that can be read from a YAML node. Returns `None` after reporting an error.
/// Null values never reach `decode`: a key set to null keeps its default.
pub(crate) trait Decode: Sized {
    fn decode(node: &Node, key: &str, cx: &mut Ctx<'_>) -> Option<Self>;
}

/// The entries of a mapping whose keys are all known, reporting unknown and duplicate keys,
/// non-string keys and non-mapping values. Null counts as an empty mapping.
pub(crate) fn mapping_entries<'n>(
    node: &'n Node,
    path: &str,
    known: &'static [&'static str],
    cx: &mut Ctx<'_>,
) -> Option<Vec<(&'static str, &'n Node)>> {
    if node.is_null() {
        return Some(Vec::new());
    }
    let NodeKind::Mapping(entries) = &node.kind else {
        cx.error(
            node.location,
            path,
            format!("expected a mapping, found {}", node.describe()),
        );
        return None;
    };
    let mut seen: BTreeMap<&str, Location> = BTreeMap::new();
    let mut out = Vec::new();
    for (key_node, value) in entries {
        let NodeKind::Scalar { text: key, .. } = &key_node.kind else {
            cx.error(
                key_node.location,
                path,
                format!("keys must be strings, found {}", key_node.describe()),
            );
            continue;
        };
        let dotted = join(path, key);
        let Some(&known_key) = known.iter().find(|k| **k == key) else {
            let message = match suggest(key, known) {
                Some(best) => format!("unknown key; did you mean `{best}`?"),
                None => "unknown key".to_owned(),
            };
            cx.error(key_node.location, &dotted, message);
            continue;
        };
        if let Some(first) = seen.insert(known_key, key_node.location) {
            cx.error(
                key_node.location,
                &dotted,
                format!("duplicate key (first set at line {})", first.line),
            );
            continue;
        }
        cx.locations.insert(dotted, value.location);
        if !value.is_null() {
            out.push((known_key, value));
        }
    }
    Some(out)
}

/// The known key closest to `key`, if it is close enough to be a plausible typo.
pub(crate) fn suggest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let lowered = key.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(&lowered, k), *k))
        .filter(|(distance, k)| {
            let bound = match k.len().max(key.len()) {
                0..=3 => 1,
                4..=7 => 2,
                _ => 3,
            };
            *distance <= bound
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

impl Decode for String {
    fn decode(node: &Node, key: &str, cx: &mut Ctx<'_>) -> Option<Self> {
        cx.scalar(node, key, "a string")
    }
}

impl Decode for bool {
    fn decode(node: &Node, key: &str, cx: &mut Ctx<'_>) -> Option<Self> {
        const EXPECTED: &str = "a boolean (true or false)";
        let text = cx.scalar(node, key, EXPECTED)?;
        match text.trim() {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            _ => {
                cx.error(
                    node.location,
                    key,
                    format!("expected {EXPECTED}, found {text:?}"),
                );
                None
            }
        }
    }
}

impl Decode for u64 {
    fn decode(node: &Node, key: &str, cx: &mut Ctx<'_>) -> Option<Self> {
        let text = cx.scalar(node, key, "an integer")?;
        match parse_u64(text.trim()) {
            Ok(value) => Some(value),
            Err(message) => {
                cx.error(node.location, key, format!("{message}, found {text:?}"));
                None
            }
        }
    }
}

fn parse_u64(text: &str) -> Result<u64, String> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return digits
            .parse::<u64>()
            .map_err(|_| format!("expected an integer no larger than {}", u64::MAX));
    }
    if let Some(negative) = text.strip_prefix('-')
        && !negative.is_empty()
        && negative.bytes().all(|b| b.is_ascii_digit())
    {
        return Err("expected a non-negative integer".to_owned());
    }
    Err("expected an integer".to_owned())
}

impl Decode for f64 {
    fn decode(node: &Node, key: &str, cx: &mut Ctx<'_>) -> Option<Self> {
        let text = cx.scalar(node, key, "a number")?;
        match text.trim().parse::<f64>() {
            Ok(value) if value.is_finite() => Some(value),
            _ => {
                cx.error(
                    node.location,
                    key,
                    format!("expected a number, found {text:?}"),
                );
                None
            }
        }
    }
}

impl<T: Decode> Decode for Option<T> {
    fn decode(node: &Node, key: &str, cx: &mut Ctx<'_>) -> Option<Self> {
        T::decode(node, key, cx).map(Some)
    }
}

impl<T: Decode> Decode for Vec<T> {
    fn decode(node: &Node, key: &str, cx: &mut Ctx<'_>) -> Option<Self> {
        let NodeKind::Sequence(items) = &node.kind else {
            cx.error(
                node.location,
                key,
                format!("expected a sequence, found {}", node.describe()),
            );
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{i}]");
            cx.locations.insert(item_key.clone(), item.location);
            if item.is_null() {
                cx.error(item.location, &item_key, "empty list item");
                ok = false;
                continue;
            }
            match T::decode(item, &item_key, cx) {
                Some(value) => out.push(value),
                None => ok = false,
            }
        }
        if !ok {
            cx.failed.insert(key.to_owned());
        }
        Some(out)
    }
}

/// A duration whose bare integers are seconds: `30`, `"100ms"`, `"30s"`, `"5m"`, `"1h"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Seconds(pub(crate) Duration);

/// A duration whose bare integers are milliseconds (only `p2p.flush_interval`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Millis(pub(crate) Duration);

impl Decode for Seconds {
    fn decode(node: &Node, key: &str, cx: &mut Ctx<'_>) -> Option<Self> {
        decode_duration(node, key, cx, 1000).map(Seconds)
    }
}

impl Decode for Millis {
    fn decode(node: &Node, key: &str, cx: &mut Ctx<'_>) -> Option<Self> {
        decode_duration(node, key, cx, 1).map(Millis)
    }
}

fn decode_duration(
    node: &Node,
    key: &str,
    cx: &mut Ctx<'_>,
    bare_unit_ms: u64,
) -> Option<Duration> {
    let expected = if bare_unit_ms == 1 {
        "a duration such as 100 (milliseconds), \"100ms\", \"30s\", \"5m\" or \"1h\""
    } else {
        "a duration such as 30 (seconds), \"100ms\", \"30s\", \"5m\" or \"1h\""
    };
    let text = cx.scalar(node, key, expected)?;
    match parse_duration(&text, bare_unit_ms) {
        Some(duration) => Some(duration),
        None => {
            cx.error(
                node.location,
                key,
                format!("expected {expected}, found {text:?}"),
            );
            None
        }
    }
}

/// Parses `<integer>[unit]` with unit `ms`, `s`, `m` or `h`; a bare integer is in
/// `bare_unit_ms` milliseconds. `None` if malformed or overflowing.
pub(crate) fn parse_duration(text: &str, bare_unit_ms: u64) -> Option<Duration> {
    let (number, unit) = split_number(text.trim())?;
    let unit_ms = match unit {
        "" => bare_unit_ms,
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    number.checked_mul(unit_ms).map(Duration::from_millis)
}

/// A size in bytes: an integer, or `"64KB"`, `"1MB"`, `"512KiB"`, `"1GB"` where
/// KB = KiB = 1024 bytes, MB = MiB = 1024², GB = GiB = 1024³ (units are case-insensitive;
/// `B`, `K`, `M` and `G` are accepted too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ByteSize(pub(crate) u64);

impl Decode for ByteSize {
    fn decode(node: &Node, key: &str, cx: &mut Ctx<'_>) -> Option<Self> {
        const EXPECTED: &str =
            "a size such as 65536 (bytes), \"64KB\", \"1MB\", \"512KiB\" or \"1GB\"";
        let text = cx.scalar(node, key, EXPECTED)?;
        match parse_size(&text) {
            Some(bytes) => Some(ByteSize(bytes)),
            None => {
                cx.error(
                    node.location,
                    key,
                    format!("expected {EXPECTED}, found {text:?}"),
                );
                None
            }
        }
    }
}

/// Parses a size (see [`ByteSize`]); `None` if malformed or overflowing.
pub(crate) fn parse_size(text: &str) -> Option<u64> {
    let (number, unit) = split_number(text.trim())?;
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(multiplier)
}

/// Splits `"64 KB"` into `(64, "KB")`.
fn split_number(text: &str) -> Option<(u64, &str)> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    if digits_end == 0 {
        return None;
    }
    let number = text[..digits_end].parse::<u64>().ok()?;
    Some((number, text[digits_end..].trim_start()))
}

/// Declares a file section: the struct, its defaults, its known keys and its [`Decode`].
/// A field may name its YAML key explicitly (`kind as "type"`).
macro_rules! file_section {
    (
        $(#[$meta:meta])*
        struct $name:ident {
            $(
                $(#[$field_meta:meta])*
                $field:ident $(as $key:literal)? : $ty:ty = $default:expr
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq)]
        pub(crate) struct $name {
            $( $(#[$field_meta])* pub(crate) $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                $name { $( $field: $default, )* }
            }
        }

        impl $name {
            /// The YAML keys of this section, in declaration order.
            pub(crate) const KEYS: &'static [&'static str] =
                &[ $( file_section!(@key $field $($key)?) ),* ];
        }

        impl $crate::decode::Decode for $name {
            fn decode(
                node: &$crate::yaml::Node,
                path: &str,
                cx: &mut $crate::decode::Ctx<'_>,
            ) -> Option<Self> {
                let entries = $crate::decode::mapping_entries(node, path, Self::KEYS, cx)?;
                let mut out = Self::default();
                for (key, value) in entries {
                    let dotted = $crate::decode::join(path, key);
                    $(
                        if key == file_section!(@key $field $($key)?) {
                            if let Some(decoded) =
                                <$ty as $crate::decode::Decode>::decode(value, &dotted, cx)
                            {
                                out.$field = decoded;
                            }
                            continue;
                        }
                    )*
                }
                Some(out)
            }
        }
    };
    (@key $field:ident $key:literal) => { $key };
    (@key $field:ident) => { stringify!($field) };
}

pub(crate) use file_section;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30", 1000), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("100", 1), Some(Duration::from_millis(100)));
        assert_eq!(
            parse_duration("100ms", 1000),
            Some(Duration::from_millis(100))
        );
        assert_eq!(parse_duration("30s", 1), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m", 1), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h", 1), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration(" 2 s ", 1), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1d", 1), None);
        assert_eq!(parse_duration("-1s", 1), None);
        assert_eq!(parse_duration("s", 1), None);
        assert_eq!(parse_duration("1.5s", 1), None);
        assert_eq!(parse_duration("99999999999999999999h", 1), None);
        assert_eq!(parse_duration("18446744073709551615h", 1), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Some(65536));
        assert_eq!(parse_size("64KB"), Some(64 * 1024));
        assert_eq!(parse_size("512KiB"), Some(512 * 1024));
        assert_eq!(parse_size("1MB"), Some(1 << 20));
        assert_eq!(parse_size("16mb"), Some(16 << 20));
        assert_eq!(parse_size("1GB"), Some(1 << 30));
        assert_eq!(parse_size("1 GiB"), Some(1 << 30));
        assert_eq!(parse_size("1TB"), None);
        assert_eq!(parse_size("KB"), None);
        assert_eq!(parse_size("18446744073709551615GB"), None);
    }

    #[test]
    fn suggestions() {
        let known = ["port", "host", "max_peers", "bootstrap_nodes"];
        assert_eq!(suggest("prot", &known), Some("port"));
        assert_eq!(suggest("max_peer", &known), Some("max_peers"));
        assert_eq!(suggest("bootstrap_node", &known), Some("bootstrap_nodes"));
        assert_eq!(suggest("completely_else", &known), None);
        assert_eq!(suggest("PORT", &known), Some("port"));
    }
}
