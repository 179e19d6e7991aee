//! What a process's GPU memory did over its run, from a sampled timeline:
//! climbing step after step (tensors kept alive: a smaller batch only delays
//! the OOM) or reaching its level at once and staying there (the first step
//! already needs it all: the batch).

use serde::Serialize;

/// The shape of a memory timeline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MemoryTrend {
    /// Still rising through the later part of the run.
    Climbing {
        from_bytes: u64,
        to_bytes: u64,
        seconds: f64,
    },
    /// At its peak level early, and flat after.
    SpikeAtStart {
        peak_bytes: u64,
        seconds_to_peak: f64,
    },
}

/// Classifies `(seconds since start, bytes)` points; `None` with too few
/// points or no clear shape.
///
/// Climbing: over the second half of the run usage grew by more than 10% of
/// its peak and more than 256 MiB, so it was still growing long after the
/// first steps. Spike: usage reached 90% of its peak within the first
/// quarter of the run and never grew 10% after.
pub fn classify(points: &[(f64, u64)]) -> Option<MemoryTrend> {
    let nonzero: Vec<(f64, u64)> = points.iter().copied().filter(|p| p.1 > 0).collect();
    if nonzero.len() < 4 {
        return None;
    }
    let (t0, t1) = (nonzero[0].0, nonzero[nonzero.len() - 1].0);
    let span = t1 - t0;
    if span <= 0.0 {
        return None;
    }
    let peak = nonzero.iter().map(|p| p.1).max()?;
    let mid = t0 + span / 2.0;
    let at_mid = nonzero.iter().filter(|p| p.0 <= mid).map(|p| p.1).max()?;
    let last = nonzero[nonzero.len() - 1].1.max(peak);
    let growth = last.saturating_sub(at_mid);
    if growth * 10 > peak && growth > 256 << 20 {
        return Some(MemoryTrend::Climbing {
            from_bytes: nonzero[0].1,
            to_bytes: last,
            seconds: span,
        });
    }
    let reached = nonzero.iter().find(|p| p.1 * 10 >= peak * 9)?;
    if reached.0 - t0 <= span / 4.0 {
        return Some(MemoryTrend::SpikeAtStart {
            peak_bytes: peak,
            seconds_to_peak: reached.0 - t0,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn a_leak_climbs_and_a_big_batch_spikes() {
        let leak: Vec<(f64, u64)> = (0..20).map(|i| (i as f64, 4 * GIB + i * GIB / 2)).collect();
        assert!(matches!(
            classify(&leak),
            Some(MemoryTrend::Climbing { .. })
        ));
        let spike: Vec<(f64, u64)> = (0..20)
            .map(|i| (i as f64, if i == 0 { 4 * GIB } else { 20 * GIB }))
            .collect();
        assert!(matches!(
            classify(&spike),
            Some(MemoryTrend::SpikeAtStart { .. })
        ));
        assert_eq!(classify(&leak[..3]), None);
    }
}
