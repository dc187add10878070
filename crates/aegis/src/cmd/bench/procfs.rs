//! What `/proc` tells about a process: CPU time used and peak resident memory; and which
//! local process listens on a TCP port (to find the nodes given with `--nodes`).

use std::path::Path;
use std::time::Duration;

/// CPU time (user + system) a process has used so far, or `None` once it is gone.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    cpu_time_at(&format!("/proc/{pid}/stat"))
}

/// CPU time of this process (every thread).
pub fn own_cpu_time() -> Option<Duration> {
    cpu_time_at("/proc/self/stat")
}

fn cpu_time_at(path: &str) -> Option<Duration> {
    let text = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime) of proc(5); `rest` starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = rustix::param::clock_ticks_per_second().max(1);
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / ticks as f64,
    ))
}

/// Peak resident set size (`VmHWM`) of a process in bytes, or `None` once it is gone.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:").map(|kib| kib * 1024)
}

/// Resident set size now (`VmRSS`) of a process in bytes, or `None` once it is gone.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:").map(|kib| kib * 1024)
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|line| line.starts_with(field))?;
    line.trim_start_matches(field)
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The process on this machine listening on TCP `port` (IPv4 or IPv6), if this user may see
/// it: the socket's inode from `/proc/net/tcp{,6}`, then the process holding that socket.
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .find_map(|table| listening_inode(table, port))?;
    let target = format!("socket:[{inode}]");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if holds_socket(&entry.path(), &target) {
            return Some(pid);
        }
    }
    None
}

fn listening_inode(table: &str, port: u16) -> Option<u64> {
    let text = std::fs::read_to_string(table).ok()?;
    let wanted = format!("{port:04X}");
    text.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local = fields.get(1)?;
        // State 0A is LISTEN.
        let listening = fields.get(3) == Some(&"0A");
        let (_, local_port) = local.rsplit_once(':')?;
        (listening && local_port == wanted)
            .then(|| fields.get(9)?.parse().ok())
            .flatten()
    })
}

fn holds_socket(proc_dir: &Path, target: &str) -> bool {
    let Ok(fds) = std::fs::read_dir(proc_dir.join("fd")) else {
        return false;
    };
    fds.flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|link| link.as_os_str() == target))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(cpu_time(pid).is_some());
        assert!(own_cpu_time().is_some());
        assert!(peak_rss_bytes(pid).unwrap() > 0);
        assert!(rss_bytes(pid).unwrap() > 0);
    }

    #[test]
    fn finds_the_listener_of_a_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(pid_listening_on(port), Some(std::process::id()));
    }
}
