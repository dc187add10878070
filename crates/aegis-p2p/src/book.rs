//! The address book: where validators can be dialled, with redial scheduling, persisted as
//! `data/p2p/peers.json`. Deleting the file makes the node start again from
//! `bootstrap_nodes`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aegis_types::PublicKey;
use rand_core::RngCore;
use serde::{Deserialize, Serialize};

/// File name inside the P2P data directory.
pub const PEERS_FILE: &str = "peers.json";
/// Most addresses kept; peer exchange cannot grow the book past it.
pub const MAX_ADDRESSES: usize = 4096;
/// Longest backoff between redials once `max_reconnect_attempts` is exceeded.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// Longest address string accepted from a peer or from the known-peers file.
pub const MAX_ADDRESS_LEN: usize = 261;
/// Largest known-peers file read: [`MAX_ADDRESSES`] entries of the longest address, a
/// hex key and a timestamp fit well within it. A larger file is ignored, unread.
pub const MAX_PEERS_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Whether `address` is acceptable in the book: at most [`MAX_ADDRESS_LEN`] bytes and of
/// the form `host:port` with a non-empty host and a non-zero port.
pub(crate) fn valid_address(address: &str) -> bool {
    address.len() <= MAX_ADDRESS_LEN
        && address.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|port| port != 0)
        })
}

/// Reads the known-peers file: a regular file of at most [`MAX_PEERS_FILE_BYTES`], refused
/// unread otherwise (a link to `/dev/zero`, a file grown huge).
fn read_peers_file(path: &Path) -> std::io::Result<String> {
    aegis_fs::read_regular_file_to_string(path, MAX_PEERS_FILE_BYTES)
        .map_err(aegis_fs::ReadError::into_io)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Bootstrap,
    File,
    Exchange,
    Inbound,
}

#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub key: Option<PublicKey>,
    pub source: Source,
    /// Failed dials since the last success.
    pub attempts: u32,
    pub next_dial: Instant,
    pub dialing: bool,
    /// The address turned out to be this node itself.
    pub is_self: bool,
    pub last_seen_ms: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct FileEntry {
    address: String,
    public_key: String,
    last_seen_ms: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct PeersFile {
    version: u32,
    peers: Vec<FileEntry>,
}

#[derive(Debug)]
pub(crate) struct AddressBook {
    pub entries: HashMap<String, Entry>,
    path: Option<PathBuf>,
    dirty: bool,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl AddressBook {
    /// Loads `dir/peers.json` if present (a damaged file is logged and ignored) and adds
    /// the bootstrap addresses.
    pub fn load(dir: Option<&Path>, bootstrap: &[String], now: Instant) -> AddressBook {
        let mut book = AddressBook {
            entries: HashMap::new(),
            path: dir.map(|dir| dir.join(PEERS_FILE)),
            dirty: false,
        };
        if let Some(path) = &book.path {
            match read_peers_file(path) {
                Ok(text) => match serde_json::from_str::<PeersFile>(&text) {
                    Ok(file) => {
                        let mut ignored = 0usize;
                        for entry in file.peers.into_iter().take(MAX_ADDRESSES) {
                            let Ok(key) = PublicKey::from_hex(&entry.public_key) else {
                                ignored += 1;
                                continue;
                            };
                            if !valid_address(&entry.address) {
                                ignored += 1;
                                continue;
                            }
                            book.entries.insert(
                                entry.address,
                                Entry {
                                    key: Some(key),
                                    source: Source::File,
                                    attempts: 0,
                                    next_dial: now,
                                    dialing: false,
                                    is_self: false,
                                    last_seen_ms: entry.last_seen_ms,
                                },
                            );
                        }
                        if ignored > 0 {
                            aegis_telemetry::warn!(
                                path = %path.display(),
                                ignored,
                                "Ignored {ignored} invalid entries of the known-peers file"
                            );
                        }
                        aegis_telemetry::info!(
                            path = %path.display(),
                            peers = book.entries.len(),
                            "Loaded known peers"
                        );
                    }
                    Err(error) => aegis_telemetry::warn!(
                        path = %path.display(),
                        %error,
                        "Ignoring unreadable known-peers file; re-learning peers from bootstrap nodes"
                    ),
                },
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => aegis_telemetry::warn!(
                    path = %path.display(),
                    %error,
                    "Ignoring unreadable known-peers file; re-learning peers from bootstrap nodes"
                ),
            }
        }
        for address in bootstrap {
            book.entries.entry(address.clone()).or_insert(Entry {
                key: None,
                source: Source::Bootstrap,
                attempts: 0,
                next_dial: now,
                dialing: false,
                is_self: false,
                last_seen_ms: 0,
            });
        }
        book
    }

    /// Adds an address learned from a peer or from an inbound Hello. Returns whether it
    /// was new.
    pub fn learn(&mut self, address: String, key: PublicKey, source: Source, now: Instant) -> bool {
        if !valid_address(&address) {
            return false;
        }
        if let Some(entry) = self.entries.get_mut(&address) {
            if entry.key != Some(key) && !entry.is_self {
                entry.key = Some(key);
                self.dirty = true;
            }
            return false;
        }
        if self.entries.len() >= MAX_ADDRESSES {
            return false;
        }
        self.entries.insert(
            address,
            Entry {
                key: Some(key),
                source,
                attempts: 0,
                next_dial: now,
                dialing: false,
                is_self: false,
                last_seen_ms: now_ms(),
            },
        );
        self.dirty = true;
        true
    }

    pub fn dial_succeeded(&mut self, address: &str, key: PublicKey) {
        if let Some(entry) = self.entries.get_mut(address) {
            entry.dialing = false;
            entry.attempts = 0;
            entry.key = Some(key);
            entry.last_seen_ms = now_ms();
            self.dirty = true;
        }
    }

    pub fn dial_found_self(&mut self, address: &str) {
        if let Some(entry) = self.entries.get_mut(address) {
            entry.dialing = false;
            entry.is_self = true;
            entry.key = None;
            self.dirty = true;
        }
    }

    /// Schedules the next dial after a failure: every `interval` for the first
    /// `max_attempts` attempts, then doubling (capped at [`MAX_BACKOFF`]) with ±50 % jitter.
    pub fn dial_failed(
        &mut self,
        address: &str,
        interval: Duration,
        max_attempts: u32,
        now: Instant,
    ) {
        if let Some(entry) = self.entries.get_mut(address) {
            entry.dialing = false;
            entry.attempts = entry.attempts.saturating_add(1);
            entry.next_dial = now + backoff(entry.attempts, interval, max_attempts);
        }
    }

    /// A connection to `key` ended: dial it again at once, unless it was short-lived (the
    /// peer refused us after authenticating, e.g. it is full): then it counts as a failed
    /// attempt, so a refusing peer is not redialled in a tight loop.
    pub fn disconnected(
        &mut self,
        key: &PublicKey,
        short_lived: bool,
        interval: Duration,
        max_attempts: u32,
        now: Instant,
    ) {
        for entry in self.entries.values_mut() {
            if entry.key.as_ref() == Some(key) {
                if short_lived {
                    entry.attempts = entry.attempts.saturating_add(1);
                    entry.next_dial = now + backoff(entry.attempts, interval, max_attempts);
                } else {
                    entry.attempts = 0;
                    entry.next_dial = now;
                }
                entry.last_seen_ms = now_ms();
            }
        }
        self.dirty = true;
    }

    /// Writes the file if something changed (atomically: temp file, then rename).
    pub fn save_if_dirty(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let Some(path) = &self.path else {
            return;
        };
        let mut peers: Vec<FileEntry> = self
            .entries
            .iter()
            .filter(|(_, entry)| !entry.is_self)
            .filter_map(|(address, entry)| {
                Some(FileEntry {
                    address: address.clone(),
                    public_key: entry.key?.to_hex(),
                    last_seen_ms: entry.last_seen_ms,
                })
            })
            .collect();
        peers.sort_by(|a, b| a.address.cmp(&b.address));
        let file = PeersFile { version: 1, peers };
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension("json.tmp");
            let text = serde_json::to_string_pretty(&file).map_err(std::io::Error::other)?;
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, path)
        };
        if let Err(error) = write() {
            aegis_telemetry::warn!(path = %path.display(), %error, "Cannot write known-peers file");
        }
    }

    /// Addresses with a known validator key, for peer exchange.
    pub fn known(&self) -> Vec<(String, PublicKey)> {
        self.entries
            .iter()
            .filter(|(_, entry)| !entry.is_self)
            .filter_map(|(address, entry)| Some((address.clone(), entry.key?)))
            .collect()
    }
}

pub(crate) fn backoff(attempts: u32, interval: Duration, max_attempts: u32) -> Duration {
    if attempts <= max_attempts {
        return interval;
    }
    let exponent = (attempts - max_attempts).min(16);
    let base = interval
        .saturating_mul(1u32 << exponent)
        .min(MAX_BACKOFF.max(interval));
    // Jitter in [0.5, 1.5) so nodes that failed together do not redial in lockstep.
    let jitter = 0.5 + (rand_core::OsRng.next_u32() as f64 / u32::MAX as f64);
    base.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_flat_then_grows_with_jitter_and_a_cap() {
        let interval = Duration::from_secs(30);
        assert_eq!(backoff(1, interval, 10), interval);
        assert_eq!(backoff(10, interval, 10), interval);
        let d = backoff(11, interval, 10);
        assert!(
            d >= Duration::from_secs(30) && d < Duration::from_secs(90),
            "{d:?}"
        );
        let d = backoff(40, interval, 10);
        assert!(d <= MAX_BACKOFF.mul_f64(1.5), "{d:?}");
    }

    #[test]
    fn file_roundtrip_and_missing_file_falls_back_to_bootstrap() {
        let dir = tempfile::tempdir().unwrap();
        let now = Instant::now();
        let key = PublicKey([3; 32]);
        let mut book = AddressBook::load(Some(dir.path()), &["boot:1".into()], now);
        book.learn("10.0.0.1:8000".into(), key, Source::Exchange, now);
        book.save_if_dirty();
        let again = AddressBook::load(Some(dir.path()), &[], now);
        assert_eq!(again.known(), vec![("10.0.0.1:8000".to_string(), key)]);
        std::fs::remove_file(dir.path().join(PEERS_FILE)).unwrap();
        let fresh = AddressBook::load(Some(dir.path()), &["boot:1".into()], now);
        assert_eq!(fresh.entries.len(), 1);
        assert!(fresh.entries.contains_key("boot:1"));
    }

    fn file_with(addresses: &[&str], key: PublicKey) -> String {
        let peers: Vec<FileEntry> = addresses
            .iter()
            .map(|address| FileEntry {
                address: (*address).to_string(),
                public_key: key.to_hex(),
                last_seen_ms: 1,
            })
            .collect();
        serde_json::to_string(&PeersFile { version: 1, peers }).unwrap()
    }

    #[test]
    fn loaded_addresses_are_validated_like_learned_ones() {
        let dir = tempfile::tempdir().unwrap();
        let key = PublicKey([4; 32]);
        let long = format!("{}:8000", "h".repeat(MAX_ADDRESS_LEN));
        let text = file_with(&["10.0.0.1:8000", &long, "no-port", "10.0.0.2:0"], key);
        std::fs::write(dir.path().join(PEERS_FILE), text).unwrap();
        let book = AddressBook::load(Some(dir.path()), &["boot:1".into()], Instant::now());
        let mut addresses: Vec<&String> = book.entries.keys().collect();
        addresses.sort();
        assert_eq!(addresses, ["10.0.0.1:8000", "boot:1"]);
        // The same rule as for addresses learned from peers.
        let mut book = book;
        assert!(!book.learn(long, key, Source::Exchange, Instant::now()));
        assert!(!book.learn("no-port".into(), key, Source::Exchange, Instant::now()));
    }

    #[test]
    fn an_oversized_peers_file_is_ignored_unread() {
        let dir = tempfile::tempdir().unwrap();
        let key = PublicKey([5; 32]);
        let mut text = file_with(&["10.0.0.1:8000"], key);
        // Valid JSON, just too large: trailing whitespace past the cap.
        text.push_str(&" ".repeat(MAX_PEERS_FILE_BYTES as usize));
        assert!(serde_json::from_str::<PeersFile>(&text).is_ok());
        std::fs::write(dir.path().join(PEERS_FILE), text).unwrap();
        let book = AddressBook::load(Some(dir.path()), &["boot:1".into()], Instant::now());
        let addresses: Vec<&String> = book.entries.keys().collect();
        assert_eq!(addresses, ["boot:1"]);
        assert!(read_peers_file(&dir.path().join(PEERS_FILE)).is_err());
    }
}
