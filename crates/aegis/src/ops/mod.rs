//! What the operator tools (`aegis health`, `diagnose`, `monitor`, `logs`, `backup`,
//! `restore`, `reset`, `validators check`) share: the node configuration they are pointed at
//! ([`default_config_path`]), whether a node runs on a home and as which process
//! ([`holder`]), the machine's and the node process's figures read from `/proc`
//! ([`host`]), the node's HTTP endpoints ([`endpoints`]) and the tail of its JSON log
//! ([`logfile`]).

pub mod endpoints;
pub mod holder;
pub mod host;
pub mod logfile;

use std::path::PathBuf;

/// The guide's home when `AEGIS_HOME` is unset.
pub const DEFAULT_HOME: &str = "/opt/aegis";

/// `--config` when it is not given: `$AEGIS_HOME/config/production.yaml`, with the guide's
/// `/opt/aegis` when `AEGIS_HOME` is unset.
pub fn default_config_path() -> PathBuf {
    let home = std::env::var_os("AEGIS_HOME")
        .filter(|home| !home.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_HOME), PathBuf::from);
    home.join("config/production.yaml")
}

/// The configuration at `path` (or the default one), loaded with the node's environment;
/// the error is ready to print.
pub fn load_config(path: Option<&std::path::Path>) -> Result<aegis_config::NodeConfig, String> {
    let path = path.map_or_else(default_config_path, std::path::Path::to_path_buf);
    crate::cmd::db::load_config(&path)
}

/// A timestamp for names of files set aside (`consensus.20261205T221500Z`): sortable,
/// no characters a shell or a tar file would mind.
pub fn compact_timestamp(time: std::time::SystemTime) -> String {
    let text = aegis_telemetry::format_rfc3339_millis(time);
    // 2026-12-05T22:15:00.123Z -> 20261205T221500Z
    let (date_time, _) = text.split_once('.').unwrap_or((&text, ""));
    let mut compact: String = date_time
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    compact.push('Z');
    compact
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_timestamps_sort_and_have_no_separators() {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_795_822_200_123);
        assert_eq!(compact_timestamp(time), "20261127T233000Z");
    }
}
