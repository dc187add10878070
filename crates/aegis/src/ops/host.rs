//! The machine's and a process's figures, read from `/proc` and `statvfs(2)`: what the
//! guide's scripts got from psutil, `free`, `df` and `ps`.

use std::path::Path;
use std::time::Duration;

/// Most bytes read of one `/proc` file (`/proc/stat` on a machine with many CPUs is the
/// largest read here).
const MAX_PROC_FILE_BYTES: u64 = 1024 * 1024;

/// Reads a `/proc` file (whose reported size is 0) through a bounded reader.
pub fn read_proc(path: &str) -> Result<String, String> {
    let (file, _) = aegis_fs::open_regular_file(Path::new(path), u64::MAX)
        .map_err(|error| error.to_string())?;
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(file, MAX_PROC_FILE_BYTES),
        &mut text,
    )
    .map_err(|error| format!("read {path}: {error}"))?;
    Ok(text)
}

/// CPU time counters of the whole machine, in clock ticks: (busy, total).
fn cpu_ticks() -> Result<(u64, u64), String> {
    let stat = read_proc("/proc/stat")?;
    let line = stat
        .lines()
        .find(|line| line.starts_with("cpu "))
        .ok_or("/proc/stat has no cpu line")?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().sum();
    // idle + iowait are not busy.
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    Ok((total.saturating_sub(idle), total))
}

/// CPU time of one process so far (user + system), in clock ticks.
fn process_ticks(pid: u32) -> Result<u64, String> {
    let stat = read_proc(&format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or("malformed stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let stime: u64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(utime + stime)
}

/// Machine-wide CPU use (0-100 %, all CPUs together, as psutil reports it) and, when `pid`
/// is given, that process's CPU use (100 % = one CPU busy), measured over `interval`.
pub async fn cpu_percent(
    interval: Duration,
    pid: Option<u32>,
) -> Result<(f64, Option<f64>), String> {
    let (busy0, total0) = cpu_ticks()?;
    let proc0 = pid.and_then(|pid| process_ticks(pid).ok());
    tokio::time::sleep(interval).await;
    let (busy1, total1) = cpu_ticks()?;
    let proc1 = pid.and_then(|pid| process_ticks(pid).ok());
    let total = total1.saturating_sub(total0);
    let machine = if total == 0 {
        0.0
    } else {
        busy1.saturating_sub(busy0) as f64 * 100.0 / total as f64
    };
    let cpus = cpu_count().max(1) as f64;
    let process = match (proc0, proc1) {
        (Some(a), Some(b)) if total > 0 => {
            // Ticks of all CPUs in the interval divided by the CPU count: the interval in ticks.
            Some(b.saturating_sub(a) as f64 * 100.0 * cpus / total as f64)
        }
        _ => None,
    };
    Ok((round1(machine), process.map(round1)))
}

/// Online CPUs, from `/proc/stat`.
pub fn cpu_count() -> usize {
    read_proc("/proc/stat")
        .map(|stat| {
            stat.lines()
                .filter(|line| {
                    line.starts_with("cpu")
                        && line.as_bytes().get(3).is_some_and(u8::is_ascii_digit)
                })
                .count()
        })
        .unwrap_or(1)
}

/// The machine's memory.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    pub total_bytes: u64,
    pub available_bytes: u64,
}

impl Memory {
    /// Used share, as psutil's `virtual_memory().percent`: (total - available) / total.
    pub fn percent(&self) -> f64 {
        if self.total_bytes == 0 {
            return 0.0;
        }
        round1(
            self.total_bytes.saturating_sub(self.available_bytes) as f64 * 100.0
                / self.total_bytes as f64,
        )
    }
}

pub fn memory() -> Result<Memory, String> {
    let text = read_proc("/proc/meminfo")?;
    let field = |name: &str| {
        text.lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Ok(Memory {
        total_bytes: field("MemTotal:").ok_or("/proc/meminfo has no MemTotal")?,
        available_bytes: field("MemAvailable:").unwrap_or(0),
    })
}

/// The file system holding a path.
#[derive(Clone, Copy, Debug)]
pub struct Disk {
    pub total_bytes: u64,
    pub free_bytes: u64,
    /// Free to unprivileged users (what `df` counts as available).
    pub available_bytes: u64,
}

impl Disk {
    /// Used share as `df` shows it: used / (used + available).
    pub fn percent(&self) -> f64 {
        let used = self.total_bytes.saturating_sub(self.free_bytes);
        let base = used + self.available_bytes;
        if base == 0 {
            return 0.0;
        }
        round1(used as f64 * 100.0 / base as f64)
    }
}

/// The file system of `path`, or of its nearest existing ancestor.
pub fn disk(path: &Path) -> Result<Disk, String> {
    let mut probe = path;
    while !probe.exists() {
        probe = probe.parent().unwrap_or(Path::new("/"));
    }
    let stat = rustix::fs::statvfs(probe)
        .map_err(|error| format!("statvfs {}: {error}", probe.display()))?;
    let block = stat.f_frsize.max(1);
    Ok(Disk {
        total_bytes: stat.f_blocks.saturating_mul(block),
        free_bytes: stat.f_bfree.saturating_mul(block),
        available_bytes: stat.f_bavail.saturating_mul(block),
    })
}

/// A process's resident memory, from `/proc/PID/status`.
pub fn process_rss_bytes(pid: u32) -> Option<u64> {
    let status = read_proc(&format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// A process's thread count, from `/proc/PID/status`.
pub fn process_threads(pid: u32) -> Option<u64> {
    let status = read_proc(&format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|line| line.starts_with("Threads:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
}

pub fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

pub fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Bytes as GiB with two decimals, as the guide's `*_gb` fields.
pub fn gib(bytes: u64) -> f64 {
    round2(bytes as f64 / (1024.0 * 1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[tokio::test]
    async fn this_machine_and_this_process_have_figures() {
        let (machine, process) = cpu_percent(Duration::from_millis(100), Some(std::process::id()))
            .await
            .unwrap();
        assert!((0.0..=100.0).contains(&machine), "{machine}");
        assert!(process.is_some());
        let memory = memory().unwrap();
        assert!(memory.total_bytes > 0 && memory.percent() <= 100.0);
        let disk = disk(Path::new("/nonexistent/dir/below")).unwrap();
        assert!(disk.total_bytes > 0 && disk.percent() <= 100.0);
        assert!(process_rss_bytes(std::process::id()).unwrap() > 0);
        assert!(cpu_count() >= 1);
    }
}
