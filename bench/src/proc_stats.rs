//! Resource use of a process from `/proc`: resident memory (`VmRSS`, and the peak `VmHWM`) from
//! `/proc/<pid>/status`, CPU time (utime + stime, all threads) from `/proc/<pid>/stat`.
//!
//! The peak can be reset between workloads (`/proc/<pid>/clear_refs` with `5`, Linux 4.0+), so a
//! broker process that serves two workloads in a row reports each one's own peak.

use std::path::PathBuf;

/// A point-in-time reading.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcSample {
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
    pub cpu_seconds: f64,
}

/// Clock ticks per second for `/proc/<pid>/stat`: `getconf CLK_TCK`, 100 where that is missing
/// (USER_HZ is 100 on every mainstream Linux architecture). Read once; no `unsafe` sysconf call.
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

fn proc_path(pid: u32, file: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{file}"))
}

/// `VmRSS`/`VmHWM` (kB in the file) and utime+stime of `pid`.
pub fn sample(pid: u32) -> std::io::Result<ProcSample> {
    let status = std::fs::read_to_string(proc_path(pid, "status"))?;
    let stat = std::fs::read_to_string(proc_path(pid, "stat"))?;
    Ok(ProcSample {
        rss_bytes: status_kb(&status, "VmRSS:").unwrap_or(0) * 1024,
        peak_rss_bytes: status_kb(&status, "VmHWM:").unwrap_or(0) * 1024,
        cpu_seconds: stat_cpu_ticks(&stat).map(|t| t as f64 / clock_ticks()).unwrap_or(0.0),
    })
}

/// Resets `VmHWM` to the current RSS. Best effort: on failure the peak covers the process's life.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(proc_path(pid, "clear_refs"), "5").is_ok()
}

fn status_kb(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// utime + stime: fields 14 and 15, counted after the `(comm)` field, which may contain spaces.
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // after_comm starts at field 3 (state), so field N is at index N - 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_comm() {
        let stat = "1234 (my proc) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 100 0 0";
        assert_eq!(stat_cpu_ticks(stat), Some(300));
    }

    #[test]
    fn own_process_has_memory_and_cpu() {
        let s = sample(std::process::id()).expect("read /proc/self");
        assert!(s.rss_bytes > 0 && s.peak_rss_bytes >= s.rss_bytes);
        assert!(s.cpu_seconds >= 0.0);
    }
}
