//! `run`'s choice of the next batch after an OOM, from the event's figures
//! rather than blind halving.
//!
//! At the failure the framework held `allocated` for live tensors and asked
//! for `requested` more, while what it could use in all was what it had
//! reserved plus what was free. Memory grows at most in proportion to the
//! batch (weights do not grow at all), so any batch above
//! `failed × usable / (allocated + requested)` fails too: that is a proven
//! upper bound. Where the step stood when it failed is not in the message —
//! more layers may still have been to come — so the next batch takes a share
//! of that bound, and never more than a share of the smallest batch that has
//! failed.

use crate::diagnose::{Accounting, SegmentKind};
use crate::oom::OomEvent;

/// Share of the bound the next attempt uses. With the bound proven and the
/// rest of the step unknown, 0.6 lands within one or two restarts when the
/// first attempt is up to 6x too large, and above where halving lands.
pub const BOUND_SHARE: f64 = 0.6;

/// The largest batch the event's figures allow: `failed × usable / need`.
/// `None` when the message does not give the figures.
pub fn upper_bound(event: &OomEvent, failed_batch: u64) -> Option<u64> {
    let m = &event.memory;
    let need = m.allocated_bytes?.checked_add(m.requested_bytes?)?;
    let acc = Accounting::of(event);
    let usable = acc.framework_budget.or_else(|| {
        let free = acc.bytes(SegmentKind::Free)?;
        Some(m.reserved_bytes.unwrap_or(m.allocated_bytes?) + free)
    })?;
    if need == 0 || usable >= need {
        // The request fitted the memory left: not a capacity problem the
        // batch explains (fragmentation, a cap); no bound.
        return None;
    }
    Some((failed_batch as f64 * usable as f64 / need as f64).floor() as u64)
}

/// The batch for the attempt after `failed_batch` died with `event`, or
/// `None` when `min_batch` has already failed. `smallest_failed` is the
/// smallest batch that has failed so far (`failed_batch` included).
pub fn next_batch(
    event: Option<&OomEvent>,
    failed_batch: u64,
    smallest_failed: u64,
    min_batch: u64,
) -> Option<u64> {
    if failed_batch <= min_batch {
        return None;
    }
    let bound = event.and_then(|e| upper_bound(e, failed_batch));
    let next = match bound {
        Some(b) => {
            let from_bound = (b as f64 * BOUND_SHARE).floor() as u64;
            let from_failures = (smallest_failed as f64 * BOUND_SHARE).floor() as u64;
            from_bound.min(from_failures)
        }
        // No figures: halve.
        None => failed_batch / 2,
    };
    Some(next.clamp(min_batch, failed_batch - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oom::scan_reader;

    fn event(text: &str) -> OomEvent {
        let mut events = Vec::new();
        scan_reader("-", text.as_bytes(), &Default::default(), |e| {
            events.push(e)
        })
        .unwrap();
        events.remove(0)
    }

    #[test]
    fn the_bound_comes_from_the_figures() {
        // Need 6.50 + 0.50 = 7.00 GiB, usable 6.70 + 0.25 = 6.95 GiB.
        let e = event("RuntimeError: CUDA out of memory. Tried to allocate 512.00 MiB (GPU 0; 8.00 GiB total capacity; 6.50 GiB already allocated; 256.00 MiB free; 6.70 GiB reserved in total by PyTorch)");
        assert_eq!(upper_bound(&e, 64), Some(63));
        assert_eq!(next_batch(Some(&e), 64, 64, 1), Some(37));
    }

    #[test]
    fn without_figures_it_halves_and_stops_at_the_minimum() {
        let e = event("RuntimeError: CUDA error: out of memory");
        assert_eq!(next_batch(Some(&e), 64, 64, 1), Some(32));
        assert_eq!(next_batch(None, 5, 5, 4), Some(4));
        assert_eq!(next_batch(None, 4, 4, 4), None);
    }

    #[test]
    fn a_request_that_fitted_gives_no_bound() {
        let e = event("torch.OutOfMemoryError: XPU out of memory. Tried to allocate 4.66 GiB. GPU 0 has a total capacity of 5.65 GiB of which 5.65 GiB is free. Of the allocated memory 195.50 KiB is allocated by PyTorch, and 1.81 MiB is reserved by PyTorch but unallocated.");
        assert_eq!(upper_bound(&e, 8), None);
    }
}
