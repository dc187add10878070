//! The ban list on disk, `data/p2p/bans.txt`, so bans survive a restart (a node restarted
//! by its supervisor must not give a banned address a fresh set of attempts).
//!
//! One ban a line, `<IP address> <banned until, Unix time in milliseconds>`, after comment
//! lines starting with `#`; an operator may read it, or delete a line while the node is
//! stopped to lift that ban early. The node writes it atomically (a temporary file, synced,
//! then renamed over the old one, and the directory synced) at most once per maintenance
//! sweep (every second) when the bans changed, and at shutdown.
//!
//! Reading is bounded ([`MAX_BANS_FILE_BYTES`], at most [`crate::limits::MAX_TRACKED_IPS`]
//! bans) and never fails the start: a file that cannot be read is reported with its path and
//! the reason and the node starts with no bans; a line that does not parse is reported with
//! the path, the line number and the field, and skipped.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::limits::MAX_TRACKED_IPS;

/// File name inside the P2P data directory.
pub const BANS_FILE: &str = "bans.txt";
/// Largest ban file read: [`MAX_TRACKED_IPS`] lines of the longest IPv6 address and a
/// 20-digit time fit in well under it. A larger file is reported and ignored, unread.
pub const MAX_BANS_FILE_BYTES: u64 = 8 << 20;
/// Bad lines reported one by one; past this, only their count is.
pub const MAX_REPORTED_BAD_LINES: usize = 10;

const HEADER: &str = "# AEGIS P2P bans, written by the node (docs/p2p.md, \"Bans\").\n\
# One ban a line: <IP address> <banned until, Unix time in milliseconds>.\n\
# Delete a line while the node is stopped to lift that ban early.\n";

/// One ban as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredBan {
    pub ip: IpAddr,
    pub until_ms: u64,
}

/// What reading the file found: the bans, and what was wrong with it (each naming the file,
/// and the line and field for a bad line), for the caller to log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    pub bans: Vec<StoredBan>,
    pub problems: Vec<String>,
}

/// The ban file of the P2P data directory `dir`.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(BANS_FILE)
}

/// Reads the bans of `path`; a missing file is no bans and no problem.
pub fn load(path: &Path) -> Loaded {
    let text = match aegis_fs::read_regular_file_to_string(path, MAX_BANS_FILE_BYTES) {
        Ok(text) => text,
        Err(error) if error.is_not_found() => return Loaded::default(),
        Err(error) => {
            return Loaded {
                bans: Vec::new(),
                problems: vec![format!("{error}; starting with no bans")],
            };
        }
    };
    parse(path, &text)
}

fn parse(path: &Path, text: &str) -> Loaded {
    let mut loaded = Loaded::default();
    let mut bad = 0usize;
    let mut report = |loaded: &mut Loaded, message: String| {
        bad += 1;
        if bad <= MAX_REPORTED_BAD_LINES {
            loaded.problems.push(message);
        }
    };
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if loaded.bans.len() >= MAX_TRACKED_IPS {
            loaded.problems.push(format!(
                "{}: more than {MAX_TRACKED_IPS} bans; line {number} and the rest ignored",
                path.display()
            ));
            return loaded;
        }
        let mut fields = line.split_whitespace();
        let (Some(ip), Some(until)) = (fields.next(), fields.next()) else {
            report(
                &mut loaded,
                format!(
                    "{} line {number}: expected `<IP address> <banned until, Unix ms>`, found {line:?}; line ignored",
                    path.display()
                ),
            );
            continue;
        };
        if let Some(extra) = fields.next() {
            report(
                &mut loaded,
                format!(
                    "{} line {number}: field 3: unexpected {extra:?} after the two fields; line ignored",
                    path.display()
                ),
            );
            continue;
        }
        let ip = match ip.parse::<IpAddr>() {
            Ok(ip) => ip.to_canonical(),
            Err(_) => {
                report(
                    &mut loaded,
                    format!(
                        "{} line {number}: field 1 (IP address): {ip:?} is not an IP address; line ignored",
                        path.display()
                    ),
                );
                continue;
            }
        };
        let Ok(until_ms) = until.parse::<u64>() else {
            report(
                &mut loaded,
                format!(
                    "{} line {number}: field 2 (banned until, Unix ms): {until:?} is not a whole number of milliseconds; line ignored",
                    path.display()
                ),
            );
            continue;
        };
        loaded.bans.push(StoredBan { ip, until_ms });
    }
    if bad > MAX_REPORTED_BAD_LINES {
        loaded.problems.push(format!(
            "{}: {} more bad lines ignored",
            path.display(),
            bad - MAX_REPORTED_BAD_LINES
        ));
    }
    loaded
}

/// The file's text for `bans`, sorted by address so the file changes only when bans do.
fn render(bans: &[StoredBan]) -> String {
    let mut bans = bans.to_vec();
    bans.sort_by_key(|ban| (ban.ip, ban.until_ms));
    let mut text = String::with_capacity(HEADER.len() + bans.len() * 40);
    text.push_str(HEADER);
    for ban in bans {
        text.push_str(&format!("{} {}\n", ban.ip, ban.until_ms));
    }
    text
}

/// Writes `bans` to `path` atomically: `path.tmp` written and synced, renamed over `path`,
/// then the directory synced, so a crash leaves the old file or the new one, whole.
pub fn save(path: &Path, bans: &[StoredBan]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("txt.tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(render(bans).as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(ip: [u8; 4], until_ms: u64) -> StoredBan {
        StoredBan {
            ip: IpAddr::from(ip),
            until_ms,
        }
    }

    #[test]
    fn saved_bans_load_back_and_a_missing_file_is_no_bans() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        assert_eq!(load(&path), Loaded::default());
        let bans = vec![ban([203, 0, 113, 9], 2_000), ban([198, 51, 100, 7], 1_000)];
        save(&path, &bans).unwrap();
        let loaded = load(&path);
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        assert_eq!(loaded.bans, vec![bans[1], bans[0]]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# AEGIS P2P bans"), "{text}");
        assert!(
            text.contains("\n198.51.100.7 1000\n203.0.113.9 2000\n"),
            "{text}"
        );
        assert!(!path.with_extension("txt.tmp").exists());
    }

    #[test]
    fn a_bad_line_is_reported_with_the_file_line_and_field_and_skipped() {
        let path = Path::new("/var/lib/aegis/data/p2p/bans.txt");
        let text = "# comment\n\
                    203.0.113.9 5000\n\
                    not-an-ip 5000\n\
                    198.51.100.7 soon\n\
                    192.0.2.1\n\
                    192.0.2.2 1 extra\n\
                    ::ffff:192.0.2.3 7000\n";
        let loaded = parse(path, text);
        assert_eq!(
            loaded.bans,
            vec![ban([203, 0, 113, 9], 5000), ban([192, 0, 2, 3], 7000)]
        );
        assert_eq!(loaded.problems.len(), 4, "{:?}", loaded.problems);
        assert_eq!(
            loaded.problems[0],
            "/var/lib/aegis/data/p2p/bans.txt line 3: field 1 (IP address): \"not-an-ip\" is not an IP address; line ignored"
        );
        assert!(
            loaded.problems[1].starts_with(
                "/var/lib/aegis/data/p2p/bans.txt line 4: field 2 (banned until, Unix ms): \"soon\""
            ),
            "{}",
            loaded.problems[1]
        );
        assert!(loaded.problems[2].contains("line 5: expected"));
        assert!(loaded.problems[3].contains("line 6: field 3"));
    }

    #[test]
    fn bad_lines_past_the_reported_few_are_counted_and_binary_or_huge_files_are_refused() {
        let path = Path::new("bans.txt");
        let text = "x 1\n".repeat(MAX_REPORTED_BAD_LINES + 5);
        let loaded = parse(path, &text);
        assert!(loaded.bans.is_empty());
        assert_eq!(loaded.problems.len(), MAX_REPORTED_BAD_LINES + 1);
        assert_eq!(
            loaded.problems.last().unwrap(),
            "bans.txt: 5 more bad lines ignored"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        std::fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
        let loaded = load(&path);
        assert!(loaded.bans.is_empty());
        assert!(
            loaded.problems[0].contains("bans.txt"),
            "{:?}",
            loaded.problems
        );
        assert!(
            loaded.problems[0].contains("not UTF-8"),
            "{:?}",
            loaded.problems
        );
        std::fs::write(&path, " ".repeat(MAX_BANS_FILE_BYTES as usize + 1)).unwrap();
        let loaded = load(&path);
        assert!(
            loaded.problems[0].contains("larger than the limit"),
            "{:?}",
            loaded.problems
        );
    }
}
