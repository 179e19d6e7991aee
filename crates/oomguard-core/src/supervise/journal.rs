//! One journal line per attempt of `run` (docs/reference.md): what ran, how it ended,
//! and the OOM event that ended it.

use crate::diagnose::ExplainedEvent;
use crate::supervise::trace::MemoryTrend;
use serde::Serialize;

/// An attempt as the journal records it.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRecord {
    /// The attempt's number, from 1.
    pub attempt: u32,
    /// The batch the command ran with, when it has one.
    pub batch: Option<u64>,
    /// The accumulation steps, when the command has them.
    pub accum: Option<u64>,
    /// "cuda", or "cpu" for the `--cpu-fallback` attempt.
    pub device: &'static str,
    /// RFC 3339 UTC time the attempt started.
    pub started_at: String,
    /// How long the attempt ran, in seconds.
    pub duration_s: f64,
    /// The exit code, when the command exited.
    pub exit_code: Option<i32>,
    /// The signal that ended the command, when one did.
    pub signal: Option<i32>,
    /// The OOM event that ended the attempt, explained.
    pub oom: Option<ExplainedEvent>,
    /// The command's GPU memory during the attempt, when a source could be
    /// read (an addition to the reference's (docs/reference.md) fields).
    pub memory: Option<AttemptMemory>,
}

/// The command's GPU memory over one attempt.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptMemory {
    /// The command's memory before its first step.
    pub baseline_bytes: Option<u64>,
    /// The command's peak memory.
    pub peak_bytes: Option<u64>,
    /// `[seconds since start, bytes]`, at most 200 points.
    pub timeline: Vec<(f64, u64)>,
    /// How memory moved over the attempt, when the timeline shows it.
    pub trend: Option<MemoryTrend>,
}

/// Formats a UNIX time as RFC 3339 UTC (`2026-11-23T18:40:00.123Z`).
pub fn rfc3339(unix_secs: f64) -> String {
    let secs = unix_secs.floor() as i64;
    let millis = ((unix_secs - secs as f64) * 1000.0).round().min(999.0) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_times() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_392_000.25), "2026-11-23T00:00:00.250Z");
        assert_eq!(rfc3339(951_782_400.0), "2000-02-29T00:00:00.000Z");
    }
}
