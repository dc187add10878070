//! The located checks every section uses: ranges, durations, sizes, hosts, paths and
//! choices, each reported as `FILE:LINE:COL: KEY: message` at the key's value.

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::decode::{ByteSize, Ctx, Seconds};
use crate::env::resolve_path;
use crate::error::Location;

/// Checks and converts with located errors. Errors on keys already reported in stage one
/// are skipped.
pub(super) struct Checker<'c, 'e> {
    pub(super) cx: &'c mut Ctx<'e>,
    pub(super) home: &'c Path,
}

impl Checker<'_, '_> {
    fn location(&self, key: &str) -> Location {
        self.cx
            .locations
            .get(key)
            .copied()
            .unwrap_or(Location::START)
    }

    pub(super) fn error(&mut self, key: &str, message: impl Into<String>) {
        if self.cx.failed.contains(key) {
            return;
        }
        let location = self.location(key);
        self.cx.error(location, key, message);
    }

    /// An integer in `range`, converted to `T`.
    pub(super) fn int<T>(&mut self, key: &str, value: u64, range: RangeInclusive<u64>) -> T
    where
        T: TryFrom<u64> + Default,
    {
        let (min, max) = (*range.start(), *range.end());
        if !range.contains(&value) {
            self.error(key, format!("{value} is out of range ({min}-{max})"));
        }
        T::try_from(value.clamp(min, max)).unwrap_or_default()
    }

    pub(super) fn port(&mut self, key: &str, value: u64) -> u16 {
        self.int(key, value, 1..=u64::from(u16::MAX))
    }

    /// A duration in `range`. Every duration must be greater than 0, which is said so on its
    /// own, as it was before durations had maxima.
    pub(super) fn duration(
        &mut self,
        key: &str,
        value: Duration,
        range: RangeInclusive<Duration>,
    ) -> Duration {
        if value.is_zero() {
            self.error(key, "must be greater than 0");
        } else if !range.contains(&value) {
            let (min, max) = (*range.start(), *range.end());
            let bounds = if min <= Duration::from_millis(1) {
                format!("greater than 0, at most {}", show_duration(max))
            } else {
                format!("{}-{}", show_duration(min), show_duration(max))
            };
            self.error(
                key,
                format!("{} is out of range ({bounds})", show_duration(value)),
            );
        }
        value
    }

    pub(super) fn seconds(
        &mut self,
        key: &str,
        value: Seconds,
        range: RangeInclusive<Duration>,
    ) -> Duration {
        self.duration(key, value.0, range)
    }

    /// A size in bytes within `range`. A size of 0 where 1 is the least is said to be so on
    /// its own, as it was before sizes had maxima.
    pub(super) fn size(&mut self, key: &str, value: ByteSize, range: RangeInclusive<u64>) -> usize {
        let (min, max) = (*range.start(), *range.end());
        if value.0 == 0 && min <= 1 {
            self.error(key, "must be greater than 0");
        } else if !range.contains(&value.0) {
            let bounds = if min <= 1 {
                format!("greater than 0, at most {}", show_size(max))
            } else {
                format!("{}-{}", show_size(min), show_size(max))
            };
            self.error(
                key,
                format!("{} is out of range ({bounds})", show_size(value.0)),
            );
        }
        match usize::try_from(value.0) {
            Ok(bytes) => bytes,
            Err(_) => {
                self.error(key, format!("{} bytes is too large", value.0));
                0
            }
        }
    }

    pub(super) fn host(&mut self, key: &str, host: String) -> String {
        if !is_valid_host(&host) {
            self.error(
                key,
                format!("{host:?} is not a valid IP address or host name"),
            );
        }
        host
    }

    pub(super) fn path(&mut self, key: &str, path: &str) -> PathBuf {
        if path.trim().is_empty() {
            self.error(key, "must not be empty");
        }
        resolve_path(self.home, Path::new(path))
    }

    pub(super) fn choice<T: Copy>(
        &mut self,
        key: &str,
        value: &str,
        choices: &[(&str, T)],
        default: T,
    ) -> T {
        let lowered = value.trim().to_ascii_lowercase();
        if let Some((_, chosen)) = choices.iter().find(|(name, _)| *name == lowered) {
            return *chosen;
        }
        let names: Vec<String> = choices
            .iter()
            .map(|(name, _)| format!("{name:?}"))
            .collect();
        self.error(
            key,
            format!("expected one of {}, found {value:?}", names.join(", ")),
        );
        default
    }
}

/// An IP address or a DNS name (letters, digits, `-`, `_`; labels of 1 to 63 characters).
pub(super) fn is_valid_host(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// `100ms`, `30s`, `5m`, `1h`: the largest unit that divides the duration.
pub(crate) fn show_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms == 0 {
        "0s".to_owned()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// `512 bytes`, `64 KiB`, `16 MiB`, `4 GiB`: the largest binary unit that divides the size,
/// written so the file accepts it back.
pub(crate) fn show_size(bytes: u64) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    match bytes {
        1 => "1 byte".to_owned(),
        _ => format!("{bytes} bytes"),
    }
}

/// Durations from 1 ms (the finest a file can write, so: greater than 0) up to `max`.
pub(super) const fn up_to(max: Duration) -> RangeInclusive<Duration> {
    Duration::from_millis(1)..=max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_display() {
        assert_eq!(show_duration(Duration::from_millis(100)), "100ms");
        assert_eq!(show_duration(Duration::from_secs(90)), "90s");
        assert_eq!(show_duration(Duration::from_secs(300)), "5m");
        assert_eq!(show_duration(Duration::from_secs(7200)), "2h");
    }

    #[test]
    fn sizes_display() {
        assert_eq!(show_size(1), "1 byte");
        assert_eq!(show_size(1500), "1500 bytes");
        assert_eq!(show_size(64 << 10), "64 KiB");
        assert_eq!(show_size(66_560), "65 KiB");
        assert_eq!(show_size(16 << 20), "16 MiB");
        assert_eq!(show_size(4 << 30), "4 GiB");
        assert_eq!(crate::decode::parse_size(&show_size(66_560)), Some(66_560));
    }
}
