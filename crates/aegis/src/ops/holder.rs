//! Whether a node runs on a home, and which process it is, without disturbing it.
//!
//! `aegis run` holds an exclusive `flock` on `<node.data_dir>/aegis.lock` for its whole life
//! ([`crate::home_lock`]). Taking that lock, even for a moment, to find out would race a node
//! that is starting; so the tools read the kernel's own table of locks, `/proc/locks`, and
//! look for the lock file's device and inode. The pid there is the holder's, whatever the
//! lock file says (it may hold a stale pid after a crash).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::home_lock::LOCK_FILE_NAME;

/// Most bytes of `/proc/locks` read: a few hundred thousand locks on the machine.
const MAX_PROC_LOCKS_BYTES: u64 = 16 * 1024 * 1024;
/// Most bytes of a process's `cmdline` read.
const MAX_CMDLINE_BYTES: u64 = 64 * 1024;

/// The process holding a home's lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// Its command line, arguments joined by spaces (empty if unreadable).
    pub cmdline: String,
}

/// The lock file of the home whose data directory is `data_dir`.
pub fn lock_path(data_dir: &Path) -> PathBuf {
    data_dir.join(LOCK_FILE_NAME)
}

/// The process that holds the lock of the home whose data directory is `data_dir`, or
/// `None` when no process does (no node runs there). An error only when the kernel's lock
/// table cannot be read.
pub fn holder(data_dir: &Path) -> Result<Option<Holder>, String> {
    let path = lock_path(data_dir);
    let metadata = match std::fs::metadata(&path) {
        Ok(metadata) => metadata,
        // No lock file: no node ever ran on this home (or it was removed): none runs.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("inspect {}: {error}", path.display())),
    };
    let table =
        aegis_fs::read_regular_file_to_string(Path::new("/proc/locks"), MAX_PROC_LOCKS_BYTES)
            .map_err(|error| format!("{error} (the kernel's table of file locks)"))?;
    let dev = metadata.dev();
    let wanted = (dev_major(dev), dev_minor(dev), metadata.ino());
    Ok(flock_holder(&table, wanted).map(|pid| Holder {
        pid,
        cmdline: cmdline(pid),
    }))
}

/// The pid holding a `FLOCK` on the file `(major, minor, inode)` in a `/proc/locks` table.
///
/// Lines look like `1: FLOCK  ADVISORY  WRITE 5244 fe:00:10305802 0 EOF`; a waiting lock has
/// `->` after the number and is not a holder.
fn flock_holder(table: &str, (major, minor, inode): (u64, u64, u64)) -> Option<u32> {
    table.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let _number = fields.next()?;
        let kind = fields.next()?;
        if kind != "FLOCK" {
            return None;
        }
        let _advisory = fields.next()?;
        let _mode = fields.next()?;
        let pid: u32 = fields.next()?.parse().ok()?;
        let mut id = fields.next()?.split(':');
        let file_major = u64::from_str_radix(id.next()?, 16).ok()?;
        let file_minor = u64::from_str_radix(id.next()?, 16).ok()?;
        let file_inode: u64 = id.next()?.parse().ok()?;
        (file_major == major && file_minor == minor && file_inode == inode).then_some(pid)
    })
}

/// glibc's `major()` of a `dev_t`.
fn dev_major(dev: u64) -> u64 {
    ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff)
}

/// glibc's `minor()` of a `dev_t`.
fn dev_minor(dev: u64) -> u64 {
    (dev & 0xff) | ((dev >> 12) & !0xff)
}

/// A process's command line, arguments joined by spaces; empty when unreadable.
pub fn cmdline(pid: u32) -> String {
    let path = PathBuf::from(format!("/proc/{pid}/cmdline"));
    // /proc files report a size of 0: read them through a bounded reader, not by their size.
    let Ok((file, _)) = aegis_fs::open_regular_file(&path, u64::MAX) else {
        return String::new();
    };
    let mut bytes = Vec::new();
    let _ = std::io::Read::read_to_end(
        &mut std::io::Read::take(file, MAX_CMDLINE_BYTES),
        &mut bytes,
    );
    String::from_utf8_lossy(&bytes)
        .split('\0')
        .filter(|arg| !arg.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_flock_on_the_file_is_found_and_others_are_not() {
        let table = "1: POSIX  ADVISORY  READ 5122 fe:00:10305802 128 128\n\
                     2: FLOCK  ADVISORY  WRITE 5244 fe:00:10305802 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 6000 fe:00:10305802 0 EOF\n\
                     3: FLOCK  ADVISORY  WRITE 77 fe:01:10305802 0 EOF\n";
        assert_eq!(flock_holder(table, (0xfe, 0, 10_305_802)), Some(5244));
        assert_eq!(flock_holder(table, (0xfe, 1, 10_305_802)), Some(77));
        assert_eq!(flock_holder(table, (0xfe, 0, 1)), None);
        assert_eq!(flock_holder("garbage\n\n1: FLOCK", (0xfe, 0, 1)), None);
    }

    #[test]
    fn device_numbers_split_as_glibc_does() {
        assert_eq!((dev_major(0xfe00), dev_minor(0xfe00)), (0xfe, 0));
        assert_eq!((dev_major(0x0803), dev_minor(0x0803)), (8, 3));
    }

    #[test]
    fn a_lock_held_by_this_process_is_found_with_its_pid() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(holder(dir.path()).unwrap(), None);
        let file = std::fs::File::create(lock_path(dir.path())).unwrap();
        assert_eq!(holder(dir.path()).unwrap(), None);
        file.lock().unwrap();
        let found = holder(dir.path()).unwrap().expect("the lock is held");
        assert_eq!(found.pid, std::process::id());
        drop(file);
        assert_eq!(holder(dir.path()).unwrap(), None);
    }
}
