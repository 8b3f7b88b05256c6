//! What the machine and a process are using, read from `/proc` (Linux only; elsewhere the
//! figures are absent rather than wrong).

use serde::Serialize;

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

pub fn memory_total_mb() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    kilobytes_field(&meminfo, "MemTotal:").map(|kb| kb / 1024)
}

/// Resident memory of a process: now, and the peak since it started.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ProcessMemory {
    pub rss_mb: f64,
    pub peak_rss_mb: f64,
}

pub fn process_memory(pid: u32) -> Option<ProcessMemory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(ProcessMemory {
        rss_mb: kilobytes_field(&status, "VmRSS:")? as f64 / 1024.0,
        peak_rss_mb: kilobytes_field(&status, "VmHWM:")? as f64 / 1024.0,
    })
}

fn kilobytes_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
}

/// CPU time counters, in clock ticks, at one moment: the whole machine and optionally one process.
#[derive(Clone, Copy, Debug)]
pub struct CpuSnapshot {
    machine_busy: u64,
    machine_total: u64,
    process: Option<u64>,
}

/// How busy the CPUs were between two snapshots.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct CpuUse {
    /// Share of all cores' time spent not idle, 0–100.
    pub machine_busy_percent: f64,
    /// Cores' worth of CPU the process used (1.0 = one core fully busy).
    pub process_cores: Option<f64>,
}

impl CpuSnapshot {
    pub fn take(pid: Option<u32>) -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let ticks: Vec<u64> = stat
            .lines()
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .filter_map(|t| t.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal ...
        let total: u64 = ticks.iter().take(8).sum();
        let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
        Some(Self {
            machine_busy: total - idle,
            machine_total: total,
            process: pid.and_then(process_ticks),
        })
    }

    pub fn since(&self, earlier: &Self) -> CpuUse {
        let total = self
            .machine_total
            .saturating_sub(earlier.machine_total)
            .max(1) as f64;
        let busy = self.machine_busy.saturating_sub(earlier.machine_busy) as f64;
        // /proc/stat sums all cores, so one core's worth of wall time is total / cores.
        let one_core = total / cores() as f64;
        CpuUse {
            machine_busy_percent: 100.0 * busy / total,
            process_cores: match (self.process, earlier.process) {
                (Some(now), Some(then)) => Some(now.saturating_sub(then) as f64 / one_core),
                _ => None,
            },
        }
    }
}

/// utime + stime of a process, in clock ticks.
fn process_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; fields resume after the last ')'.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of proc(5); the slice starts at field 3.
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some(user + system)
}
