//! What a command's memory did over one attempt, from the samples a memory
//! source gave: the fold of samples into a baseline, a peak, the memory the
//! command could reach and a bounded timeline ([`TraceFold`]), and the shape
//! of that timeline ([`classify`]): memory climbing from step to step (tensors
//! kept alive: a smaller batch only delays the OOM) or reaching its level at
//! once (the first step already needs it all: the batch).
//!
//! A leak is only called on evidence across steps. A step leaves a mark on
//! the timeline where memory rests: it falls back between steps (live
//! tensors, a process's resident memory) or holds a level while the next step
//! reuses what the caching allocator keeps (a GPU process as the driver sees
//! it). Memory that rises within the first step and fails there never rests
//! above its start, so it is a ramp, not a leak.

use serde::Serialize;

pub use crate::diagnose::MemoryTrend;

/// The command's memory as sampled during an attempt.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MemoryTrace {
    /// Lowest usage after the first allocation: weights before a step.
    pub baseline_bytes: Option<u64>,
    /// The highest reading (or high-water mark).
    pub peak_bytes: Option<u64>,
    /// The last reading.
    pub last_bytes: Option<u64>,
    /// What the command could reach: the device's total minus the most the
    /// listed other processes held, and no more than its own memory plus the
    /// device's free memory at the baseline (that also leaves out what the
    /// driver reserves and processes NVML does not list, as in a container);
    /// on the host, its tightest limit.
    pub capacity_bytes: Option<u64>,
    /// Readings folded.
    pub samples: u32,
    /// `(seconds since start, bytes)`, thinned to stay under 1024 points.
    pub timeline: Vec<(f64, u64)>,
}

/// One reading of the command's memory and of its device.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reading {
    /// Seconds since the command started.
    pub seconds: f64,
    /// The command's own memory.
    pub mine: u64,
    /// What other listed processes hold on the device.
    pub others: u64,
    /// The device's total memory.
    pub total: Option<u64>,
    /// The device's free memory.
    pub free: Option<u64>,
    /// A limit that holds whatever the device (the host's rlimit or cgroup).
    pub limit: Option<u64>,
    /// The command's own high-water mark when the source keeps one (the
    /// kernel's VmPeak/VmHWM): a peak between two readings is not missed.
    pub peak: Option<u64>,
}

/// Folds readings into a [`MemoryTrace`] in bounded memory.
#[derive(Debug, Clone, Default)]
pub struct TraceFold {
    trace: MemoryTrace,
    others_max: u64,
    total: Option<u64>,
    limit: Option<u64>,
    /// Own memory plus the device's free memory, one per reading (at most
    /// 1024 each, thinned like the timeline). While only the command
    /// allocates, the sum holds still; but a source reads the device and the
    /// processes a moment apart, and a reading taken around an allocation
    /// strays. A reading whose own memory equals the one before it had
    /// nothing allocated around it (`stable`); the median of those is used,
    /// else the median of all.
    reach: Vec<u64>,
    stable: Vec<u64>,
    last_mine: Option<u64>,
}

/// The median of `values` (the lower middle); `None` when empty.
fn median(values: &[u64]) -> Option<u64> {
    let mut v = values.to_vec();
    v.sort_unstable();
    v.get(v.len().saturating_sub(1) / 2).copied()
}

impl TraceFold {
    /// Folds one reading in.
    pub fn add(&mut self, r: Reading) {
        let t = &mut self.trace;
        t.samples += 1;
        t.timeline.push((r.seconds, r.mine));
        if t.timeline.len() >= 1024 {
            // Keep every other point: bounded memory, whole span.
            t.timeline = t.timeline.iter().copied().step_by(2).collect();
        }
        self.limit = r.limit.or(self.limit);
        if r.mine == 0 {
            self.last_mine = None;
            return;
        }
        t.last_bytes = Some(r.mine);
        self.others_max = self.others_max.max(r.others);
        self.total = r.total.or(self.total);
        let top = r.peak.map_or(r.mine, |p| p.max(r.mine));
        t.peak_bytes = Some(t.peak_bytes.map_or(top, |p| p.max(top)));
        if t.baseline_bytes.is_none_or(|b| r.mine < b) {
            t.baseline_bytes = Some(r.mine);
        }
        if let Some(free) = r.free {
            let sum = free.saturating_add(r.mine);
            let steady = self.last_mine == Some(r.mine);
            for (list, keep) in [(&mut self.reach, true), (&mut self.stable, steady)] {
                if keep {
                    list.push(sum);
                    if list.len() >= 1024 {
                        *list = list.iter().copied().step_by(2).collect();
                    }
                }
            }
        }
        self.last_mine = Some(r.mine);
    }

    /// The trace so far, for a process on the host: there memory climbs
    /// while libraries load and the model is built, so the baseline is the
    /// level it last rested at before its peak (the model, before the first
    /// step), not its lowest reading. Unknown when memory never rested
    /// before its peak (a first step that began while the samples still saw
    /// libraries loading): the lowest reading is then the process at its
    /// start, and a line from it would count the libraries as batch.
    pub fn host_trace(&self) -> MemoryTrace {
        let mut t = self.trace();
        t.baseline_bytes = rest_before_peak(&t.timeline);
        t
    }

    /// The trace so far.
    pub fn trace(&self) -> MemoryTrace {
        let mut t = self.trace.clone();
        let listed = self.total.map(|x| x.saturating_sub(self.others_max));
        let reach = median(&self.stable).or_else(|| median(&self.reach));
        let device = match (listed, reach) {
            (Some(l), Some(r)) => Some(l.min(r)),
            (l, r) => l.or(r),
        };
        t.capacity_bytes = match (device, self.limit) {
            (Some(d), Some(l)) => Some(d.min(l)),
            (d, l) => d.or(l),
        };
        t
    }
}

/// Samples closer than this (or 0.5% of the peak, when larger) are one level.
const LEVEL_TOLERANCE: u64 = 1 << 20;
/// A leak must have added more than this (and a tenth of the peak) between
/// the first and the last rest after the first step: below it, caching
/// allocators' own growth over the first steps explains the rise.
const LEAK_MIN_GROWTH: u64 = 256 << 20;

/// Where memory rested, as `(seconds, bytes)` in time order with neighbours
/// at one level merged: the troughs (a low after a fall) when memory ever
/// falls, since those mark the steps; otherwise the plateaus, three samples
/// or more at one level (a layer of a slow first step holds one or two).
pub fn rests(points: &[(f64, u64)]) -> Vec<(f64, u64)> {
    rests_of(points, true)
}

/// [`rests`], with plateaus counted only when `plateaus` (a source whose
/// memory may hold between steps, a GPU's caching allocator); on the host a
/// process's memory falls between steps, and a plateau is as likely a pause
/// while libraries load.
fn rests_of(points: &[(f64, u64)], plateaus: bool) -> Vec<(f64, u64)> {
    let peak = points.iter().map(|p| p.1).max().unwrap_or(0);
    let tol = LEVEL_TOLERANCE.max(peak / 200);
    let near = |a: u64, b: u64| a.abs_diff(b) <= tol;
    let troughs: Vec<(f64, u64)> = (1..points.len())
        .filter(|&i| {
            let v = points[i].1;
            points[i - 1].1 > v + tol && points.get(i + 1).is_none_or(|n| n.1 + tol >= v)
        })
        .map(|i| points[i])
        .collect();
    let candidates = if troughs.is_empty() && !plateaus {
        Vec::new()
    } else if troughs.is_empty() {
        (0..points.len().saturating_sub(2))
            .filter(|&i| near(points[i + 1].1, points[i].1) && near(points[i + 2].1, points[i].1))
            .map(|i| points[i])
            .collect()
    } else {
        // The level before the first fall is where the job started.
        let mut t = vec![points[0]];
        t.extend(troughs);
        t
    };
    let mut out: Vec<(f64, u64)> = Vec::new();
    for p in candidates {
        match out.last_mut() {
            Some(last) if near(last.1, p.1) => last.1 = last.1.min(p.1),
            _ => out.push(p),
        }
    }
    out
}

/// The last level memory rested at before it first reached its peak.
pub fn rest_before_peak(points: &[(f64, u64)]) -> Option<u64> {
    let nonzero: Vec<(f64, u64)> = points.iter().copied().filter(|p| p.1 > 0).collect();
    let peak = nonzero.iter().map(|p| p.1).max()?;
    let peak_at = nonzero.iter().find(|p| p.1 == peak)?.0;
    let before: Vec<(f64, u64)> = nonzero.into_iter().filter(|p| p.0 < peak_at).collect();
    rests(&before).last().map(|r| r.1).filter(|r| *r < peak)
}

/// Classifies `(seconds since start, bytes)` points; `None` with too few
/// points or no clear shape.
///
/// Climbing: after the first rise from the baseline (the first step), the
/// level memory rests at rose at least twice more and by more than 256 MiB
/// and a tenth of the peak, never falling back. Spike: usage reached 90% of
/// its peak within the first quarter of the run and stayed there.
pub fn classify(points: &[(f64, u64)]) -> Option<MemoryTrend> {
    classify_of(points, true)
}

/// [`classify`] for a process's memory on the host: only falls between
/// steps mark them.
pub fn classify_host(points: &[(f64, u64)]) -> Option<MemoryTrend> {
    classify_of(points, false)
}

fn classify_of(points: &[(f64, u64)], plateaus: bool) -> Option<MemoryTrend> {
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
    if let Some(climb) = climbing(&nonzero, peak, plateaus) {
        return Some(climb);
    }
    let reached = nonzero.iter().find(|p| p.1 * 10 >= peak * 9)?;
    let later_low = nonzero
        .iter()
        .filter(|p| p.0 > reached.0)
        .map(|p| p.1)
        .min()
        .unwrap_or(peak);
    if reached.0 - t0 <= span / 4.0 && later_low * 10 >= peak * 9 {
        return Some(MemoryTrend::SpikeAtStart {
            peak_bytes: peak,
            seconds_to_peak: reached.0 - t0,
        });
    }
    None
}

/// A leak: rest levels after the first step that rise at least twice.
fn climbing(points: &[(f64, u64)], peak: u64, plateaus: bool) -> Option<MemoryTrend> {
    let levels = rests_of(points, plateaus);
    let tol = LEVEL_TOLERANCE.max(peak / 200);
    // The first rest is the baseline or the first step's level; the first
    // rise from it is the first step. Steps after it are the evidence.
    let first_rise = levels.windows(2).position(|w| w[1].1 > w[0].1 + tol)? + 1;
    let after = &levels[first_rise..];
    let rises = after.windows(2).filter(|w| w[1].1 > w[0].1 + tol).count();
    let falls = after.windows(2).any(|w| w[1].1 + tol < w[0].1);
    let (first, last) = (after.first()?, after.last()?);
    let growth = last.1.saturating_sub(first.1);
    if rises >= 2 && !falls && growth > LEAK_MIN_GROWTH && growth * 10 > peak {
        Some(MemoryTrend::Climbing {
            from_bytes: first.1,
            to_bytes: points.last()?.1.max(last.1),
            seconds: points.last()?.0 - first.0,
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    /// Samples every 0.25 s of a job: `load` s at `base`, then `steps` steps
    /// of `step` s that ramp to `base + act` and (when `falls`) return to
    /// the rest level, which grows by `leak` a step.
    fn job(base: u64, act: u64, leak: u64, steps: u32, step: f64, falls: bool) -> Vec<(f64, u64)> {
        let mut out = Vec::new();
        let mut t = 0.0;
        for _ in 0..4 {
            out.push((t, base));
            t += 0.25;
        }
        let per_step = (step / 0.25) as u32;
        for s in 0..steps {
            let rest = base + leak * u64::from(s);
            for k in 0..per_step {
                let in_step = if k < per_step / 2 {
                    rest + act * u64::from(k + 1) / u64::from(per_step / 2)
                } else if falls {
                    rest + leak
                } else {
                    // The caching allocator keeps what it reserved.
                    base + act + leak * u64::from(s + 1)
                };
                out.push((t, in_step));
                t += 0.25;
            }
        }
        out
    }

    #[test]
    fn a_leak_climbs_across_steps_whether_memory_falls_or_is_kept() {
        for falls in [true, false] {
            let leak = job(4 * GIB, 6 * GIB, GIB / 2, 8, 1.0, falls);
            assert!(
                matches!(classify(&leak), Some(MemoryTrend::Climbing { .. })),
                "falls {falls}: {:?}",
                rests(&leak)
            );
        }
    }

    #[test]
    fn steady_steps_do_not_climb() {
        for falls in [true, false] {
            let steady = job(4 * GIB, 6 * GIB, 0, 8, 1.0, falls);
            assert!(
                !matches!(classify(&steady), Some(MemoryTrend::Climbing { .. })),
                "falls {falls}"
            );
        }
    }

    #[test]
    fn a_ramp_within_the_first_step_is_not_a_leak() {
        // Weights load for 3 s, then the first step allocates layer after
        // layer until it fails: memory rises through the whole second half.
        let mut ramp: Vec<(f64, u64)> = (0..12).map(|i| (i as f64 * 0.25, 4 * GIB)).collect();
        ramp.extend((0..12).map(|i| (3.0 + i as f64 * 0.25, 4 * GIB + (i + 1) * GIB)));
        assert_eq!(classify(&ramp), None);
        // A slow first step whose layers each hold for two samples.
        let stairs: Vec<(f64, u64)> = (0..8u64)
            .flat_map(|i| {
                let v = 4 * GIB + i * 300 * MIB;
                [(i as f64, v), (i as f64 + 0.25, v)]
            })
            .collect();
        assert!(
            !matches!(classify(&stairs), Some(MemoryTrend::Climbing { .. })),
            "{:?}",
            rests(&stairs)
        );
    }

    #[test]
    fn the_fold_keeps_baseline_peak_and_what_the_command_can_reach() {
        let mut f = TraceFold::default();
        let r = |s: f64, mine: u64, free: u64| Reading {
            seconds: s,
            mine,
            others: GIB,
            total: Some(24 * GIB),
            free: Some(free),
            limit: None,
            peak: None,
        };
        f.add(r(0.0, 0, 23 * GIB));
        f.add(r(0.1, 4 * GIB, 17 * GIB));
        f.add(r(0.2, 4 * GIB, 18 * GIB));
        f.add(r(0.3, 9 * GIB, 12 * GIB));
        f.add(r(0.4, 9 * GIB, 12 * GIB));
        let t = f.trace();
        assert_eq!(t.baseline_bytes, Some(4 * GIB));
        assert_eq!(t.peak_bytes, Some(9 * GIB));
        assert_eq!(t.last_bytes, Some(9 * GIB));
        // 24 - 1 listed = 23, but own + free is only 21 (22 once, in a
        // reading taken around an allocation, which the steady ones outvote).
        assert_eq!(t.capacity_bytes, Some(21 * GIB));
        for i in 0..3000 {
            f.add(r(1.0 + i as f64, 9 * GIB, 12 * GIB));
        }
        assert!(f.trace().timeline.len() < 1024);
    }

    #[test]
    fn on_the_host_the_baseline_is_the_rest_before_the_peak() {
        // Libraries load (rising, with pauses), the model rests at 3.4 GiB,
        // the first step climbs to 3.6 GiB.
        let mut points: Vec<(f64, u64)> = vec![(0.0, 20 * MIB), (0.25, 20 * MIB), (0.5, 20 * MIB)];
        points.extend((0..4).map(|i| (1.0 + i as f64 * 0.25, GIB)));
        points.extend((0..4).map(|i| (2.0 + i as f64 * 0.25, 3400 * MIB)));
        points.extend([(3.0, 3500 * MIB), (3.25, 3600 * MIB)]);
        assert_eq!(rest_before_peak(&points), Some(3400 * MIB));
        let mut f = TraceFold::default();
        for (s, b) in &points {
            f.add(Reading {
                seconds: *s,
                mine: *b,
                ..Reading::default()
            });
        }
        assert_eq!(f.host_trace().baseline_bytes, Some(3400 * MIB));
        assert_eq!(f.trace().baseline_bytes, Some(20 * MIB));
    }

    #[test]
    fn on_the_host_memory_that_never_rested_has_no_baseline() {
        // A real trial under `prlimit --as` sampled every 0.26 s: torch
        // loads (rising by less each sample), the first step jumps and
        // fails. No level held before the peak.
        let mib = [
            1, 2794, 2944, 3003, 3025, 3043, 3075, 3283, 3295, 3334, 3320, 3320,
        ];
        let mut f = TraceFold::default();
        for (i, m) in mib.iter().enumerate() {
            f.add(Reading {
                seconds: i as f64 * 0.26,
                mine: m * MIB,
                ..Reading::default()
            });
        }
        assert_eq!(f.host_trace().baseline_bytes, None);
        assert_eq!(f.trace().baseline_bytes, Some(MIB));
    }

    #[test]
    fn on_the_host_loading_libraries_is_not_a_leak() {
        // VmSize grows in pauses while torch loads, then the first step fails.
        let points: Vec<(f64, u64)> = (0..10u64)
            .flat_map(|i| {
                let v = 2900 * MIB + i * 40 * MIB;
                (0..3).map(move |k| ((i * 3 + k) as f64 * 0.25, v))
            })
            .collect();
        assert!(!matches!(
            classify_host(&points),
            Some(MemoryTrend::Climbing { .. })
        ));
        // A real leak on the host falls back between steps, each time higher.
        let leak = job(3 * GIB, GIB, GIB / 2, 8, 1.0, true);
        assert!(matches!(
            classify_host(&leak),
            Some(MemoryTrend::Climbing { .. })
        ));
    }

    #[test]
    fn a_big_batch_spikes_at_the_start() {
        let spike: Vec<(f64, u64)> = (0..20)
            .map(|i| (i as f64, if i == 0 { 4 * GIB } else { 20 * GIB }))
            .collect();
        assert!(matches!(
            classify(&spike),
            Some(MemoryTrend::SpikeAtStart { .. })
        ));
        assert_eq!(classify(&spike[..3]), None);
    }
}
