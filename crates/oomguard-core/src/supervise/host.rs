//! The host's memory as a memory source, for jobs without a GPU: a process
//! group's memory from `/proc`, the limits it runs under (its address-space
//! rlimit, its cgroup's limit, the machine's RAM), and the cgroup's count of
//! OOM-killer kills. Linux only; elsewhere every reading is `None`.
//!
//! Which figure counts depends on the limit: an address-space rlimit
//! (`ulimit -v`, `prlimit --as`) counts a process's virtual size (`VmSize`),
//! a cgroup or the machine count resident memory (`VmRSS`).

use serde::Serialize;
use std::path::PathBuf;

/// Which limit a process's memory meets first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostLimitKind {
    /// `RLIMIT_AS`: malloc fails with ENOMEM (error code 12) while the
    /// machine may have plenty free.
    AddressSpace,
    /// The cgroup's `memory.max` (v2) or `memory.limit_in_bytes` (v1): the
    /// kernel's OOM killer ends the process at it.
    Cgroup,
    /// The machine's RAM (`MemTotal`).
    Machine,
}

impl HostLimitKind {
    /// The limit's id, as JSON prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            HostLimitKind::AddressSpace => "address_space",
            HostLimitKind::Cgroup => "cgroup",
            HostLimitKind::Machine => "machine",
        }
    }

    /// What a user calls it.
    pub fn describe(self) -> &'static str {
        match self {
            HostLimitKind::AddressSpace => {
                "the process's address-space limit (ulimit -v / RLIMIT_AS)"
            }
            HostLimitKind::Cgroup => "the cgroup's memory limit (container or job limit)",
            HostLimitKind::Machine => "the machine's RAM",
        }
    }
}

/// The tightest limit on a process's memory, and how much it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HostLimit {
    /// Which limit.
    pub kind: HostLimitKind,
    /// How much it allows, in bytes.
    pub bytes: u64,
}

/// A field of `/proc/PID/status` in bytes (`VmRSS:  1234 kB`).
fn status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line[field.len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// `(VmSize, VmRSS)` of `pid`, in bytes.
fn process_memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some((
        status_kib(&status, "VmSize:")?,
        status_kib(&status, "VmRSS:")?,
    ))
}

/// `(VmPeak, VmHWM)` of `pid`: the kernel's high-water marks of its
/// virtual and resident size, which no sampling interval can miss.
fn process_peaks(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some((
        status_kib(&status, "VmPeak:")?,
        status_kib(&status, "VmHWM:")?,
    ))
}

/// The high-water mark of `pids` as `limit` counts memory (see
/// [`group_usage`]); the resident marks are summed, so processes that
/// peaked at different times overstate it a little.
pub fn group_peak(pids: &[u32], limit: Option<HostLimit>) -> Option<u64> {
    let marks: Vec<(u64, u64)> = pids.iter().filter_map(|p| process_peaks(*p)).collect();
    if marks.is_empty() {
        return None;
    }
    Some(match limit.map(|l| l.kind) {
        Some(HostLimitKind::AddressSpace) => marks.iter().map(|m| m.0).max()?,
        _ => marks.iter().map(|m| m.1).sum(),
    })
}

/// The soft `Max address space` of `/proc/PID/limits`; `None` when unlimited.
fn parse_address_space_limit(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))?;
    line["Max address space".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn address_space_limit(pid: u32) -> Option<u64> {
    parse_address_space_limit(&std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?)
}

/// The memory cgroup directory of `pid`: v2 (`0::/path`) or v1
/// (`N:memory:/path`), under /sys/fs/cgroup; the mount root when the path is
/// not visible there (a container's own namespace).
fn cgroup_dir(pid: u32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mut candidates = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let rel = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "memory") {
            candidates.push(PathBuf::from("/sys/fs/cgroup/memory").join(rel));
            candidates.push(PathBuf::from("/sys/fs/cgroup/memory"));
        } else if controllers.is_empty() {
            candidates.push(PathBuf::from("/sys/fs/cgroup").join(rel));
        }
    }
    candidates
        .into_iter()
        .find(|d| d.join("memory.max").is_file() || d.join("memory.limit_in_bytes").is_file())
}

/// A cgroup limit file's value; `max` and v1's "no limit" sentinel (near
/// 2^63) are `None`.
fn limit_value(text: &str) -> Option<u64> {
    let v: u64 = text.trim().parse().ok()?;
    (v < 1 << 62).then_some(v)
}

fn cgroup_limit(pid: u32) -> Option<u64> {
    let dir = cgroup_dir(pid)?;
    let text = std::fs::read_to_string(dir.join("memory.max"))
        .or_else(|_| std::fs::read_to_string(dir.join("memory.limit_in_bytes")))
        .ok()?;
    limit_value(&text)
}

/// `oom_kill N` of a `memory.events` (v2) or `memory.oom_control` (v1) file.
fn parse_oom_kills(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
}

/// How many processes the kernel's OOM killer has ended in `pid`'s cgroup.
pub fn oom_kills(pid: u32) -> Option<u64> {
    let dir = cgroup_dir(pid)?;
    let text = std::fs::read_to_string(dir.join("memory.events"))
        .or_else(|_| std::fs::read_to_string(dir.join("memory.oom_control")))
        .ok()?;
    parse_oom_kills(&text)
}

fn machine_total() -> Option<u64> {
    status_kib(&std::fs::read_to_string("/proc/meminfo").ok()?, "MemTotal:")
}

/// The limit a process meets first: its address-space rlimit, its cgroup's
/// limit, the machine's RAM, whichever is smallest.
pub fn limit(pid: u32) -> Option<HostLimit> {
    [
        (HostLimitKind::AddressSpace, address_space_limit(pid)),
        (HostLimitKind::Cgroup, cgroup_limit(pid)),
        (HostLimitKind::Machine, machine_total()),
    ]
    .into_iter()
    .filter_map(|(kind, b)| Some(HostLimit { kind, bytes: b? }))
    .min_by_key(|l| l.bytes)
}

/// The memory of `pids` as `limit` counts it: the largest virtual size for
/// an address-space limit (it is per process), the summed resident memory
/// otherwise.
pub fn group_usage(pids: &[u32], limit: Option<HostLimit>) -> Option<u64> {
    let readings: Vec<(u64, u64)> = pids.iter().filter_map(|p| process_memory(*p)).collect();
    if readings.is_empty() {
        return None;
    }
    Some(match limit.map(|l| l.kind) {
        Some(HostLimitKind::AddressSpace) => readings.iter().map(|r| r.0).max()?,
        _ => readings.iter().map(|r| r.1).sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_events_parse() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \nMax address space         4294967296           unlimited            bytes     \n";
        assert_eq!(parse_address_space_limit(limits), Some(4 << 30));
        assert_eq!(
            parse_address_space_limit(
                "Max address space         unlimited            unlimited            bytes"
            ),
            None
        );
        assert_eq!(
            parse_oom_kills("low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\n"),
            Some(2)
        );
        assert_eq!(
            parse_oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 5\n"),
            Some(5)
        );
        assert_eq!(limit_value("max\n"), None);
        assert_eq!(limit_value("9223372036854771712\n"), None);
        assert_eq!(limit_value("1073741824\n"), Some(1 << 30));
    }

    #[test]
    fn this_process_has_memory_and_a_limit() {
        let me = std::process::id();
        let (vm, rss) = process_memory(me).unwrap();
        assert!(vm >= rss && rss > 0);
        assert!(limit(me).is_some());
        assert!(group_usage(&[me], None).unwrap() > 0);
        let (vm_peak, hwm) = process_peaks(me).unwrap();
        assert!(vm_peak > 0 && hwm > 0);
    }

    #[test]
    fn the_marks_hold_within_one_reading() {
        // Read apart, the marks may fall below an earlier size: other threads
        // free memory with madvise, which does not move the kernel's resident
        // mark until it is read again. Within one reading they hold.
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let mark = |f| status_kib(&status, f).unwrap();
        assert!(mark("VmPeak:") >= mark("VmSize:"));
        assert!(mark("VmHWM:") >= mark("VmRSS:"));
    }
}
