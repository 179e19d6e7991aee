//! The next-batch rule: the one place `explain`'s fix, `run`'s restart and
//! `tune`'s search size a batch from an OOM's figures.
//!
//! At the failure the framework held `allocated` for live tensors and asked
//! for `requested` more, while what it could use in all was what it had
//! reserved plus what was free (the accounting's framework budget). Memory
//! grows at most in proportion to the batch (weights do not grow at all), so
//! any batch above `failed × usable / (allocated + requested)` fails too: a
//! proven upper bound. Where the step stood when it failed is not in the
//! message (more layers may still have been to come, and the weights do not
//! shrink with the batch), so the next batch takes a share of that bound;
//! how large a share is the caution, a named parameter.

use super::Accounting;
use crate::oom::OomEvent;
use serde::Serialize;

/// How much of the proven bound the next batch may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Caution {
    /// One more run by hand (`explain`'s fix): 85% of the bound. The failing
    /// allocation is not always the last before the step's peak, and the
    /// fixed part (weights) does not shrink with the batch, so a straight
    /// proportion overshoots; 85% leaves the rest of a step's growth room.
    OneMoreRun,
    /// An automatic restart (`run`): 60% of the bound, the extra caution of a
    /// restart that costs a whole start-up when it fails again. With the
    /// bound proven and the rest of the step unknown, 60% lands within one or
    /// two restarts when the first attempt is up to 6x too large, and above
    /// where halving lands.
    Restart,
}

impl Caution {
    /// The share of the bound this caution takes.
    pub fn share(self) -> f64 {
        match self {
            Caution::OneMoreRun => 0.85,
            Caution::Restart => 0.6,
        }
    }

    /// The caution as JSON spells it: `one_more_run` or `restart`.
    pub fn as_str(self) -> &'static str {
        match self {
            Caution::OneMoreRun => "one_more_run",
            Caution::Restart => "restart",
        }
    }
}

/// What the failing run needed at least and what it could use, from the
/// event's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BatchFigures {
    /// Live tensors plus the failed request.
    pub need_bytes: u64,
    /// What the framework held plus what was free.
    pub usable_bytes: u64,
}

impl BatchFigures {
    /// The figures of `event`, when it states the live tensors, the request
    /// and enough to know what the framework could use; `None` otherwise.
    pub fn of(event: &OomEvent, acc: &Accounting) -> Option<BatchFigures> {
        let m = &event.memory;
        let need_bytes = m.allocated_bytes?.checked_add(m.requested_bytes?)?;
        let usable_bytes = acc.framework_budget?;
        (need_bytes > 0).then_some(BatchFigures {
            need_bytes,
            usable_bytes,
        })
    }

    /// True when the request fitted what the framework could use: the batch
    /// does not explain the failure (fragmentation, a cap) and gives no bound.
    pub fn request_fitted(&self) -> bool {
        self.usable_bytes >= self.need_bytes
    }

    /// The largest batch the figures allow, `failed × usable / need`, when
    /// the request did not fit.
    pub fn upper_bound(&self, failed: u64) -> Option<u64> {
        if self.request_fitted() {
            return None;
        }
        Some((failed as f64 * self.usable_bytes as f64 / self.need_bytes as f64).floor() as u64)
    }
}

/// The next batch after a failure at `failed`, with the figures behind it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NextBatch {
    /// The batch size that failed.
    pub failed: u64,
    /// The memory figures the next batch is sized from.
    pub figures: BatchFigures,
    /// No batch above this fits; `None` when the request fitted what the
    /// framework could use (then the figures prove nothing about the batch).
    pub bound: Option<u64>,
    /// How much of the bound the next batch takes.
    pub caution: Caution,
    /// The batch: `caution.share()` of `failed × usable / need`, at least 1,
    /// below `failed`.
    pub batch: u64,
}

/// The next-batch rule: `caution`'s share of `failed × usable / need`, at
/// least 1 and below the failed batch. `None` when the event lacks the
/// figures.
pub fn next_batch(
    event: &OomEvent,
    acc: &Accounting,
    failed: u64,
    caution: Caution,
) -> Option<NextBatch> {
    let figures = BatchFigures::of(event, acc)?;
    let scaled = failed as f64 * figures.usable_bytes as f64 / figures.need_bytes as f64;
    let batch = (scaled * caution.share()).floor() as u64;
    Some(NextBatch {
        failed,
        figures,
        bound: figures.upper_bound(failed),
        caution,
        batch: batch.clamp(1, failed.saturating_sub(1).max(1)),
    })
}

/// The proven bound alone (for a search that brackets the batch itself):
/// `None` without the figures or when the request fitted.
pub fn upper_bound(event: &OomEvent, failed: u64) -> Option<u64> {
    BatchFigures::of(event, &Accounting::of(event))?.upper_bound(failed)
}

/// `caution`'s share of `batch`, rounded down.
pub fn share_of(batch: u64, caution: Caution) -> u64 {
    (batch as f64 * caution.share()).floor() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oom::{Device, DeviceKind, EventFacts, Framework, MemoryFigures, Phase};

    const GIB: u64 = 1 << 30;

    /// A PyTorch event: `allocated` live, `requested` asked, `reserved`
    /// held, `free` free on a 24 GiB device.
    fn event(allocated: u64, requested: u64, reserved: u64, free: u64) -> OomEvent {
        OomEvent {
            source: "-".into(),
            line: 1,
            framework: Framework::PyTorch,
            device: Device {
                kind: DeviceKind::Cuda,
                index: Some(0),
            },
            message: String::new(),
            memory: MemoryFigures {
                total_bytes: Some(24 * GIB),
                allocated_bytes: Some(allocated),
                requested_bytes: Some(requested),
                reserved_bytes: Some(reserved),
                free_bytes: Some(free),
                ..MemoryFigures::default()
            },
            phase: Phase::Forward,
            ranks: None,
            facts: EventFacts::default(),
        }
    }

    fn next(e: &OomEvent, failed: u64, caution: Caution) -> Option<NextBatch> {
        next_batch(e, &Accounting::of(e), failed, caution)
    }

    #[test]
    fn the_bound_is_the_batch_scaled_by_usable_over_need() {
        // Needed 20 + 4 = 24 GiB, could use 20 + 0 = 20 GiB: 64 x 20/24.
        let e = event(20 * GIB, 4 * GIB, 20 * GIB, 0);
        let n = next(&e, 64, Caution::OneMoreRun).unwrap();
        assert_eq!(n.bound, Some(53));
        assert_eq!(n.figures.need_bytes, 24 * GIB);
        assert_eq!(n.figures.usable_bytes, 20 * GIB);
        assert_eq!(n.batch, 45); // 53.3 x 0.85
        assert_eq!(next(&e, 64, Caution::Restart).unwrap().batch, 32); // 53.3 x 0.6
    }

    #[test]
    fn a_request_that_fitted_proves_no_bound_and_missing_figures_give_nothing() {
        // Needed 3 GiB of 14 GiB usable: scaled, but no bound.
        let fitted = event(2 * GIB, GIB, 4 * GIB, 10 * GIB);
        let n = next(&fitted, 64, Caution::OneMoreRun).unwrap();
        assert_eq!(n.bound, None);
        assert_eq!(n.batch, 63);
        let mut bare = event(0, 0, 0, 0);
        bare.memory = MemoryFigures::default();
        assert_eq!(next(&bare, 64, Caution::Restart), None);
    }

    #[test]
    fn the_next_batch_stays_between_one_and_the_failed_batch() {
        let far = event(20 * GIB, 200 * GIB, 20 * GIB, 0);
        assert_eq!(next(&far, 4, Caution::Restart).unwrap().batch, 1);
        let near = event(20 * GIB, 10 << 20, 20 * GIB, 0);
        assert_eq!(next(&near, 1, Caution::OneMoreRun).unwrap().batch, 1);
    }

    #[test]
    fn cautions_are_named_for_users() {
        assert_eq!(Caution::Restart.as_str(), "restart");
        assert!(Caution::Restart.share() < Caution::OneMoreRun.share());
    }
}
