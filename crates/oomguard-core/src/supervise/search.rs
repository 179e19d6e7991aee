//! `tune`'s search for the largest batch a command survives, in few trials.
//!
//! The search keeps a bracket: the largest batch that succeeded and the
//! smallest that failed. It learns from every trial, not only pass/fail:
//! - an OOM's figures give a proven upper bound (see `restart::upper_bound`),
//!   which can cut the bracket far below the failing batch;
//! - when the GPU's memory can be read, a successful trial's baseline (memory
//!   before the first step) and peak fit memory against batch as a line, as
//!   DeepSpeed's autotuner does; the search jumps to the batch the line
//!   predicts, then verifies it and the batch just above;
//! - otherwise it doubles until a failure, then bisects (Lightning's
//!   `binsearch`), so it never needs more trials than that rule.

use super::restart::upper_bound;
use crate::oom::OomEvent;

/// What a trial showed.
#[derive(Debug, Clone)]
pub enum TrialOutcome {
    /// Exit 0. Memory figures when a source was read: the process's memory
    /// before its first step and at its peak, and what the device allows
    /// this process (total minus other processes).
    Succeeded {
        baseline_bytes: Option<u64>,
        peak_bytes: Option<u64>,
        capacity_bytes: Option<u64>,
    },
    /// Died of OOM (the event, when one was found with figures).
    OutOfMemory { event: Option<Box<OomEvent>> },
}

/// The state of one search.
#[derive(Debug, Clone)]
pub struct BatchSearch {
    start: u64,
    min: u64,
    max: u64,
    /// Largest batch that succeeded.
    lo: Option<u64>,
    /// Smallest batch known to fail (tried, or above an OOM's bound).
    hi: Option<u64>,
    /// (batch, peak) of successes, and the latest baseline and capacity.
    peaks: Vec<(u64, u64)>,
    baseline: Option<u64>,
    capacity: Option<u64>,
    tried: Vec<u64>,
}

impl BatchSearch {
    pub fn new(start: u64, min: u64, max: u64) -> BatchSearch {
        let min = min.max(1);
        let max = max.max(min);
        BatchSearch {
            start: start.clamp(min, max),
            min,
            max,
            lo: None,
            hi: None,
            peaks: Vec::new(),
            baseline: None,
            capacity: None,
            tried: Vec::new(),
        }
    }

    /// The largest batch that succeeded so far.
    pub fn answer(&self) -> Option<u64> {
        self.lo
    }

    pub fn trials(&self) -> usize {
        self.tried.len()
    }

    /// Lowest batch still possible and highest (inclusive).
    fn bracket(&self) -> (u64, u64) {
        let low = self.lo.map_or(self.min, |l| l + 1);
        let high = self
            .hi
            .map_or(self.max, |h| h.saturating_sub(1))
            .min(self.max);
        (low, high)
    }

    /// The batch the memory line predicts as the largest that fits: a line
    /// through the two largest successes' peaks, or through one success's
    /// baseline (memory before its first step) and peak.
    pub fn predicted(&self) -> Option<u64> {
        let capacity = self.capacity?;
        let mut sorted = self.peaks.clone();
        sorted.sort();
        let (slope, intercept) = match sorted.as_slice() {
            [] => return None,
            [.., (b1, p1), (b2, p2)] if b2 > b1 && p2 > p1 => {
                let slope = (p2 - p1) as f64 / (b2 - b1) as f64;
                (slope, *p2 as f64 - slope * *b2 as f64)
            }
            [.., (b, peak)] => {
                let base = self.baseline?;
                if *peak <= base || *b == 0 {
                    return None;
                }
                ((*peak - base) as f64 / *b as f64, base as f64)
            }
        };
        if slope <= 0.0 {
            return None;
        }
        let b = ((capacity as f64 - intercept) / slope).floor();
        Some(b.clamp(0.0, u64::MAX as f64 / 2.0) as u64)
    }

    /// The next batch to try, or `None` when the answer is known.
    pub fn next(&self) -> Option<u64> {
        if self.tried.is_empty() {
            return Some(self.start);
        }
        let (low, high) = self.bracket();
        if low > high {
            return None;
        }
        // Jump to the prediction when it lies inside the bracket; when it
        // points at the largest success, verify the batch just above. A
        // prediction outside the bracket is contradicted by a trial: bisect.
        if let Some(p) = self.predicted() {
            // At or below the largest success the line says the limit is
            // reached (a peak measured at the device's capacity lands just
            // under it): verify the batch just above.
            let p = match self.lo {
                Some(lo) if p <= lo => lo + 1,
                _ => p,
            };
            if (low..=high).contains(&p) && !self.tried.contains(&p) {
                return Some(p);
            }
        }
        match self.hi {
            // No failure yet: double.
            None => Some(
                self.lo
                    .map_or(low, |l| l.saturating_mul(2))
                    .clamp(low, high),
            ),
            Some(_) => {
                let lo = self.lo.unwrap_or(self.min.saturating_sub(1));
                Some((lo + (high + 1)) / 2).map(|m| m.clamp(low, high))
            }
        }
    }

    /// Records what trying `batch` showed.
    pub fn record(&mut self, batch: u64, outcome: &TrialOutcome) {
        self.tried.push(batch);
        match outcome {
            TrialOutcome::Succeeded {
                baseline_bytes,
                peak_bytes,
                capacity_bytes,
            } => {
                self.lo = Some(self.lo.map_or(batch, |l| l.max(batch)));
                if let Some(p) = peak_bytes {
                    self.peaks.push((batch, *p));
                }
                if baseline_bytes.is_some() {
                    self.baseline = *baseline_bytes;
                }
                if capacity_bytes.is_some() {
                    self.capacity = *capacity_bytes;
                }
            }
            TrialOutcome::OutOfMemory { event } => {
                let mut fail = batch;
                if let Some(bound) = event.as_deref().and_then(|e| upper_bound(e, batch)) {
                    // Every batch above the bound fails too. The figures are
                    // printed to two decimals: widen the bound by 1% so a
                    // rounding error cannot cut off the true limit.
                    let widened = (bound as f64 * 1.01).ceil() as u64;
                    fail = fail.min(widened.saturating_add(1));
                }
                // A bound below a verified success is wrong for this command
                // (its memory is not linear in the batch): trust the trial.
                if self.lo.is_some_and(|l| fail <= l) {
                    fail = batch;
                }
                self.hi = Some(self.hi.map_or(fail, |h| h.min(fail)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against a command whose limit is `limit`, optionally
    /// reporting memory `base + per × batch` of a `capacity` device.
    fn search(limit: u64, memory: Option<(u64, u64, u64)>) -> (Option<u64>, usize) {
        let mut s = BatchSearch::new(8, 1, 65536);
        while let Some(b) = s.next() {
            assert!(s.trials() < 64, "runaway search");
            let outcome = if b <= limit {
                TrialOutcome::Succeeded {
                    baseline_bytes: memory.map(|m| m.0),
                    peak_bytes: memory.map(|m| m.0 + m.1 * b),
                    capacity_bytes: memory.map(|m| m.2),
                }
            } else {
                TrialOutcome::OutOfMemory { event: None }
            };
            s.record(b, &outcome);
        }
        (s.answer(), s.trials())
    }

    /// Lightning's binsearch, replayed: double from the start until a
    /// failure, then bisect; one trial per size tried.
    fn lightning_trials(limit: u64, start: u64) -> usize {
        let (mut low, mut high, mut size, mut trials) = (1u64, None::<u64>, start, 0);
        loop {
            trials += 1;
            if size <= limit {
                low = size;
                match high {
                    Some(h) if h - low <= 1 => break,
                    Some(h) => size = (h + low) / 2,
                    None => size *= 2,
                }
            } else {
                high = Some(size);
                size = (size + low) / 2;
                if size - low < 1 || high.unwrap() - low <= 1 {
                    break;
                }
            }
        }
        trials
    }

    #[test]
    fn finds_the_exact_limit_without_more_trials_than_lightning() {
        // Lightning's rule stops at batch 1 without trying it, so limit 1 is
        // compared on the answer only.
        assert_eq!(search(1, None).0, Some(1));
        for limit in [2, 7, 8, 37, 100, 1000, 3000, 65536] {
            let (answer, trials) = search(limit, None);
            assert_eq!(answer, Some(limit), "limit {limit}");
            assert!(
                trials <= lightning_trials(limit, 8),
                "limit {limit}: {trials} trials vs {}",
                lightning_trials(limit, 8)
            );
        }
    }

    #[test]
    fn a_memory_line_finds_it_in_three_trials() {
        for limit in [7u64, 37, 100, 1000, 3000] {
            // 4 GiB fixed, 10 MiB per sample, capacity just above the limit.
            let per = 10u64 << 20;
            let base = 4u64 << 30;
            let capacity = base + per * limit + per / 2;
            let (answer, trials) = search(limit, Some((base, per, capacity)));
            assert_eq!(answer, Some(limit));
            assert!(trials <= 3, "limit {limit}: {trials} trials");
        }
    }

    #[test]
    fn nothing_fits() {
        assert_eq!(search(0, None).0, None);
    }
}
