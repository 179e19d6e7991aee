//! `run`'s decision after an attempt died of OOM: retry with a batch sized
//! from the event's figures (not blind halving), retry at the same batch with
//! an allocator setting (fragmentation), move to the CPU, or stop and say
//! why. The binary renders a [`Decision`]; it never recomputes one.
//!
//! The batch comes from the next-batch rule (`diagnose::next_batch`) with the
//! caution of a restart, and never more than that, and never more than a share of the smallest batch
//! that has failed. On the CPU the message gives only the request; the
//! process's own memory (its baseline and its size at the failure) and its
//! limit give the same bound through the memory line.

use super::trace::MemoryTrend;
use crate::diagnose::next_batch::{next_batch, share_of, Caution};
use crate::diagnose::{ExplainedEvent, FixId};
use serde::Serialize;

/// Share of its limit a host process's peak must reach for a failure
/// without an out-of-memory message to count as one: an allocation refused
/// under an address-space or cgroup limit leaves the peak below the limit by
/// the size it asked for, a few percent of it for the jobs `run` and `tune`
/// size (oneDNN's "could not create a primitive", malloc's ENOMEM).
pub const AT_LIMIT_SHARE: f64 = 0.9;

/// True when a host process's `peak` came within [`AT_LIMIT_SHARE`] of its
/// `limit`: out of memory, whatever it printed.
pub fn at_host_limit(peak: u64, limit: u64) -> bool {
    peak as f64 >= AT_LIMIT_SHARE * limit as f64
}

/// A process's memory around a failure, from a memory source (the `/proc`
/// view on the CPU): before the first step, at its last sample, and what it
/// may reach (its address-space or cgroup limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryLine {
    /// Bytes the process held before its first step.
    pub baseline_bytes: u64,
    /// Bytes the process held at its last sample before the failure.
    pub at_failure_bytes: u64,
    /// Bytes the process may reach: its address-space or cgroup limit.
    pub limit_bytes: u64,
}

/// The largest batch the memory line allows: the failing step needed at
/// least its size at the failure plus the request; what grows with the
/// batch is what lies above the baseline.
pub fn line_bound(line: &MemoryLine, requested: u64, failed_batch: u64) -> Option<u64> {
    let need = line.at_failure_bytes.checked_add(requested)?;
    let grows = need.checked_sub(line.baseline_bytes).filter(|g| *g > 0)?;
    let room = line.limit_bytes.checked_sub(line.baseline_bytes)?;
    if need <= line.limit_bytes {
        return None;
    }
    Some((failed_batch as f64 * room as f64 / grows as f64).floor() as u64)
}

/// The batch the rule's `next` (or halving, without a bound) and the
/// failures so far allow, before divisors: never more than the restart's
/// share of the smallest batch that failed.
fn share(next: Option<u64>, failed: u64, smallest_failed: u64) -> u64 {
    match next {
        Some(n) => n.min(share_of(smallest_failed, Caution::Restart)),
        None => failed / 2,
    }
}

/// The largest divisor of `global` in `min..=at_most`: the micro-batch that
/// keeps `batch × accumulation` equal to `global` exactly.
pub fn largest_divisor(global: u64, at_most: u64, min: u64) -> Option<u64> {
    (min.max(1)..=at_most.min(global))
        .rev()
        .find(|d| global % d == 0)
}

/// What a failed attempt showed, as the policy reads it.
#[derive(Debug, Clone, Copy)]
pub struct Failure<'a> {
    /// The batch size the attempt ran with.
    pub batch: u64,
    /// The OOM event; `None` when the attempt printed none but its host
    /// memory reached its limit ([`at_host_limit`]).
    pub event: Option<&'a ExplainedEvent>,
    /// The shape of the attempt's memory timeline, when it was sampled.
    pub trend: Option<MemoryTrend>,
    /// The attempt ran on the CPU (no GPU, or `--cpu-fallback`).
    pub on_cpu: bool,
    /// The process's memory line, when a source read it.
    pub line: Option<MemoryLine>,
    /// The allocator variables the attempt ran with (`PYTORCH_CUDA_ALLOC_CONF`
    /// and the like), as `(name, value)`.
    pub alloc_env: &'a [(String, String)],
}

/// Why the next attempt runs as it does.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RetryReason {
    /// Sized from the event's figures by the next-batch rule: `need` of
    /// `usable`, so no batch above `bound` fits; the batch is `caution`'s
    /// share of it.
    Figures {
        /// The batch size that failed.
        failed: u64,
        /// Bytes the failing step needed at least: live tensors plus the request.
        need_bytes: u64,
        /// Bytes the framework could use: what it held plus what was free.
        usable_bytes: u64,
        /// The largest batch the figures allow.
        bound: u64,
        /// How much of the bound the next batch takes.
        caution: Caution,
        /// The share of the bound taken (0 to 1).
        share: f64,
    },
    /// Sized from the process's memory line and its limit (the CPU).
    MemoryLine {
        /// The batch size that failed.
        failed: u64,
        /// The process's memory around the failure.
        line: MemoryLine,
        /// Bytes the failed allocation asked for (0 when unknown).
        requested_bytes: u64,
        /// The largest batch the memory line allows.
        bound: u64,
    },
    /// The event gives no figures to size it (or figures by which the
    /// request fitted: the allocator could not place it): halved.
    Halved {
        /// The batch size that failed.
        failed: u64,
        /// The figures show the request fitted what the framework could use.
        request_fitted: bool,
    },
    /// Cached-but-free memory covered the request: the same batch once more
    /// with the allocator setting.
    Fragmentation {
        /// Bytes the allocator held cached but free; `None` when the message does not say.
        cached_free_bytes: Option<u64>,
        /// Bytes the failed allocation asked for; `None` when the message does not say.
        requested_bytes: Option<u64>,
        /// The allocator variable to set (`PYTORCH_CUDA_ALLOC_CONF`).
        var: String,
        /// The value to give it (`expandable_segments:True`).
        value: String,
    },
}

impl RetryReason {
    /// The reason as JSON spells it: `figures`, `memory_line`, `halved` or `fragmentation`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RetryReason::Figures { .. } => "figures",
            RetryReason::MemoryLine { .. } => "memory_line",
            RetryReason::Halved { .. } => "halved",
            RetryReason::Fragmentation { .. } => "fragmentation",
        }
    }
}

/// Why `run` stops restarting.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StopReason {
    /// The minimum batch failed.
    MinimumFails {
        /// The minimum batch size (`--min-batch`).
        min: u64,
    },
    /// The restarts allowed (`--max-restarts`) are used up.
    MaxRestarts {
        /// Restarts made so far.
        restarts: u32,
    },
    /// Memory climbed step after step: a smaller batch only delays the OOM.
    Leak {
        /// Bytes at the resting level where the climb started.
        from_bytes: u64,
        /// Bytes at the resting level where the climb ended.
        to_bytes: u64,
    },
    /// No divisor of `--global-batch` lies between the minimum and the batch
    /// the figures allow.
    NoDivisorFits {
        /// The global batch (`--global-batch`) each micro-batch must divide.
        global: u64,
        /// The largest batch the figures allow.
        at_most: u64,
        /// The minimum batch size (`--min-batch`).
        min: u64,
    },
    /// The attempt on the CPU failed too.
    CpuFailed,
}

impl StopReason {
    /// The reason as JSON spells it: `minimum_fails`, `max_restarts`, `leak`, `no_divisor_fits` or `cpu_failed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            StopReason::MinimumFails { .. } => "minimum_fails",
            StopReason::MaxRestarts { .. } => "max_restarts",
            StopReason::Leak { .. } => "leak",
            StopReason::NoDivisorFits { .. } => "no_divisor_fits",
            StopReason::CpuFailed => "cpu_failed",
        }
    }
}

/// What to do after an attempt died of OOM.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Run the command again with a new batch (and settings).
    Retry {
        /// The batch size for the next attempt.
        batch: u64,
        /// Gradient-accumulation steps that keep the global batch; `None` without `--global-batch`.
        accum: Option<u64>,
        /// Variables to set for the next attempt (kept for the ones after).
        env: Vec<(String, String)>,
        /// Why the attempt runs as it does.
        reason: RetryReason,
        /// This retry follows a leak the user asked to retry once.
        after_leak: bool,
    },
    /// One more run on the CPU (`--cpu-fallback`) at the minimum batch.
    Cpu {
        /// The batch size for the CPU run.
        batch: u64,
    },
    /// Stop restarting, and why.
    Stop(StopReason),
}

/// The settings of `run` that shape its decisions, and what it has tried.
#[derive(Debug, Clone, Default)]
pub struct RestartPolicy {
    /// The smallest batch size to try (`--min-batch`).
    pub min_batch: u64,
    /// Restarts allowed before giving up (`--max-restarts`).
    pub max_restarts: u32,
    /// The global batch to keep through gradient accumulation (`--global-batch`); `None` to keep none.
    pub global_batch: Option<u64>,
    /// Fall back to one run on the CPU when the minimum batch fails (`--cpu-fallback`).
    pub cpu_fallback: bool,
    /// Restart once after a leak instead of stopping.
    pub retry_leak: bool,
    restarts: u32,
    smallest_failed: Option<u64>,
    fragmentation_tried: bool,
    leak_retried: bool,
}

/// Allocator settings that fix fragmentation, as the diagnosis spells them
/// for the PyTorch version that printed the event.
fn allocator_setting(event: &ExplainedEvent) -> Option<(String, String)> {
    let fix = event
        .diagnosis
        .fixes
        .iter()
        .find(|f| f.id == FixId::AllocatorConfig)?;
    let (var, value) = fix.env.as_ref()?.iter().next()?;
    Some((var.clone(), value.clone()))
}

/// Appends `value` to the variable's current value unless its key is set.
fn appended(current: Option<&str>, value: &str) -> Option<String> {
    let key = value.split(':').next().unwrap_or(value);
    match current.map(str::trim).filter(|c| !c.is_empty()) {
        Some(c)
            if c.split(',')
                .any(|kv| kv.split(':').next().map(str::trim) == Some(key)) =>
        {
            None
        }
        Some(c) => Some(format!("{c},{value}")),
        None => Some(value.to_string()),
    }
}

impl RestartPolicy {
    /// A policy with `run`'s settings, nothing tried yet.
    pub fn new(
        min_batch: u64,
        max_restarts: u32,
        global_batch: Option<u64>,
        cpu_fallback: bool,
        retry_leak: bool,
    ) -> RestartPolicy {
        RestartPolicy {
            min_batch,
            max_restarts,
            global_batch,
            cpu_fallback,
            retry_leak,
            ..RestartPolicy::default()
        }
    }

    /// Restarts decided so far.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// The accumulation steps for `batch` (`global / batch`, exact when the
    /// batch divides it).
    pub fn accum(&self, batch: u64) -> Option<u64> {
        self.global_batch.map(|g| g.div_ceil(batch.max(1)))
    }

    /// Decides what follows the failure `f`.
    pub fn decide(&mut self, f: &Failure<'_>) -> Decision {
        if f.on_cpu && self.restarts > 0 && self.cpu_fallback && f.batch <= self.min_batch {
            return Decision::Stop(StopReason::CpuFailed);
        }
        if self.restarts >= self.max_restarts {
            return Decision::Stop(StopReason::MaxRestarts {
                restarts: self.restarts,
            });
        }
        let mut after_leak = false;
        if let Some(MemoryTrend::Climbing {
            from_bytes,
            to_bytes,
            ..
        }) = f.trend
        {
            if !self.retry_leak || self.leak_retried {
                return Decision::Stop(StopReason::Leak {
                    from_bytes,
                    to_bytes,
                });
            }
            self.leak_retried = true;
            after_leak = true;
        }
        // Fragmentation: what the cache held free (with what the device had
        // free, which the allocator reaches after releasing its cache) covered
        // the request, and still it failed: the memory was there, in pieces.
        let cached_covers = f.event.is_some_and(|e| {
            let m = &e.event.memory;
            matches!(
                (m.reserved_unallocated_bytes, m.requested_bytes),
                (Some(c), Some(q)) if q > 0 && c.saturating_add(m.free_bytes.unwrap_or(0)) >= q
            )
        });
        if cached_covers && !self.fragmentation_tried && !f.on_cpu {
            self.fragmentation_tried = true;
            if let Some((var, value)) = f.event.and_then(allocator_setting) {
                let current = f
                    .alloc_env
                    .iter()
                    .find(|(k, _)| *k == var)
                    .map(|(_, v)| v.as_str());
                if let Some(v) = appended(current, &value) {
                    self.restarts += 1;
                    return Decision::Retry {
                        batch: f.batch,
                        accum: self.accum(f.batch),
                        env: vec![(var.clone(), v)],
                        reason: RetryReason::Fragmentation {
                            cached_free_bytes: f
                                .event
                                .and_then(|e| e.event.memory.reserved_unallocated_bytes),
                            requested_bytes: f.event.and_then(|e| e.event.memory.requested_bytes),
                            var,
                            value,
                        },
                        after_leak,
                    };
                }
            }
        }
        if f.batch <= self.min_batch {
            if self.cpu_fallback && !f.on_cpu {
                self.restarts += 1;
                return Decision::Cpu {
                    batch: self.min_batch,
                };
            }
            return Decision::Stop(StopReason::MinimumFails {
                min: self.min_batch,
            });
        }
        let smallest = self.smallest_failed.map_or(f.batch, |s| s.min(f.batch));
        self.smallest_failed = Some(smallest);
        let (next, reason) = match self.sized(f) {
            Some((n, r)) => (Some(n), r),
            None => (
                None,
                RetryReason::Halved {
                    failed: f.batch,
                    request_fitted: cached_covers,
                },
            ),
        };
        let wanted = share(next, f.batch, smallest).clamp(self.min_batch, f.batch - 1);
        let batch = match self.global_batch {
            Some(g) => match largest_divisor(g, wanted, self.min_batch) {
                Some(d) => d,
                None => {
                    return Decision::Stop(StopReason::NoDivisorFits {
                        global: g,
                        at_most: wanted,
                        min: self.min_batch,
                    })
                }
            },
            None => wanted,
        };
        self.restarts += 1;
        Decision::Retry {
            batch,
            accum: self.accum(batch),
            env: Vec::new(),
            reason,
            after_leak,
        }
    }

    /// The next batch and its reason: the next-batch rule on the event's
    /// figures, else the memory line; `None` when neither sizes it.
    fn sized(&self, f: &Failure<'_>) -> Option<(u64, RetryReason)> {
        // A request that fitted proves no bound: the restart halves then.
        let sized = f
            .event
            .and_then(|e| next_batch(&e.event, &e.diagnosis.accounting, f.batch, Caution::Restart));
        if let Some((n, bound)) = sized.and_then(|n| Some((n, n.bound?))) {
            return Some((
                n.batch,
                RetryReason::Figures {
                    failed: f.batch,
                    need_bytes: n.figures.need_bytes,
                    usable_bytes: n.figures.usable_bytes,
                    bound,
                    caution: n.caution,
                    share: n.caution.share(),
                },
            ));
        }
        let line = f.line?;
        let requested = f
            .event
            .and_then(|e| e.event.memory.requested_bytes)
            .unwrap_or(0);
        let bound = line_bound(&line, requested, f.batch)?;
        Some((
            share_of(bound, Caution::Restart),
            RetryReason::MemoryLine {
                failed: f.batch,
                line,
                requested_bytes: requested,
                bound,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::next_batch::upper_bound;
    use crate::diagnose::DiagnoseContext;
    use crate::oom::{scan_reader, OomEvent};

    fn event(text: &str) -> OomEvent {
        let mut events = Vec::new();
        scan_reader("-", text.as_bytes(), &Default::default(), |e| {
            events.push(e)
        })
        .unwrap();
        events.remove(0)
    }

    fn explained(text: &str) -> ExplainedEvent {
        ExplainedEvent::new(event(text), &DiagnoseContext::default())
    }

    fn failure(e: &ExplainedEvent, batch: u64) -> Failure<'_> {
        Failure {
            batch,
            event: Some(e),
            trend: None,
            on_cpu: false,
            line: None,
            alloc_env: &[],
        }
    }

    /// The batch and reason of a fresh policy's retry after `f`.
    fn retried(f: &Failure<'_>) -> (u64, &'static str) {
        match RestartPolicy::new(1, 8, None, false, false).decide(f) {
            Decision::Retry { batch, reason, .. } => (batch, reason.as_str()),
            d => panic!("{d:?}"),
        }
    }

    const FIGURES: &str = "RuntimeError: CUDA out of memory. Tried to allocate 512.00 MiB (GPU 0; 8.00 GiB total capacity; 6.50 GiB already allocated; 256.00 MiB free; 6.70 GiB reserved in total by PyTorch)";

    #[test]
    fn the_bound_comes_from_the_figures() {
        // Need 6.50 + 0.50 = 7.00 GiB, usable 6.70 + 0.25 = 6.95 GiB.
        assert_eq!(upper_bound(&event(FIGURES), 64), Some(63));
        let e = explained(FIGURES);
        let mut p = RestartPolicy::new(1, 8, None, false, false);
        match p.decide(&failure(&e, 64)) {
            Decision::Retry { batch, reason, .. } => {
                // 64 x 6.95 / 7.00 x 0.6 = 38.1
                assert_eq!(batch, 38);
                assert_eq!(reason.as_str(), "figures");
            }
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn without_figures_it_halves_and_stops_at_the_minimum() {
        let e = explained("RuntimeError: CUDA error: out of memory");
        let mut p = RestartPolicy::new(4, 8, None, false, false);
        assert!(matches!(
            p.decide(&failure(&e, 64)),
            Decision::Retry {
                batch: 32,
                reason: RetryReason::Halved { .. },
                ..
            }
        ));
        assert!(matches!(
            p.decide(&failure(&e, 5)),
            Decision::Retry { batch: 4, .. }
        ));
        assert_eq!(
            p.decide(&failure(&e, 4)),
            Decision::Stop(StopReason::MinimumFails { min: 4 })
        );
        let mut p = RestartPolicy::new(4, 8, None, true, false);
        assert_eq!(p.decide(&failure(&e, 4)), Decision::Cpu { batch: 4 });
    }

    #[test]
    fn a_request_that_fitted_gives_no_bound() {
        let e = event("torch.OutOfMemoryError: XPU out of memory. Tried to allocate 4.66 GiB. GPU 0 has a total capacity of 5.65 GiB of which 5.65 GiB is free. Of the allocated memory 195.50 KiB is allocated by PyTorch, and 1.81 MiB is reserved by PyTorch but unallocated.");
        assert_eq!(upper_bound(&e, 8), None);
    }

    #[test]
    fn the_global_batch_stays_exact() {
        // 256 at batch 139 needs 139 x 2 = 278 with a ceiling; divisors keep 256.
        let e = explained(FIGURES);
        let mut p = RestartPolicy::new(1, 8, Some(256), false, false);
        match p.decide(&failure(&e, 256)) {
            Decision::Retry { batch, accum, .. } => {
                assert_eq!(256 % batch, 0);
                assert_eq!(batch * accum.unwrap(), 256);
                assert_eq!(batch, 128);
            }
            d => panic!("{d:?}"),
        }
        assert_eq!(largest_divisor(96, 40, 1), Some(32));
        assert_eq!(largest_divisor(97, 40, 2), None);
        let mut p = RestartPolicy::new(2, 8, Some(97), false, false);
        assert!(matches!(
            p.decide(&failure(&e, 97)),
            Decision::Stop(StopReason::NoDivisorFits { global: 97, .. })
        ));
    }

    const FRAGMENTED: &str = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.99 GiB of which 1.20 GiB is free. Including non-PyTorch memory, this process has 22.78 GiB memory in use. Of the allocated memory 17.10 GiB is allocated by PyTorch, and 5.18 GiB is reserved by PyTorch but unallocated. If reserved but unallocated memory is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.";

    #[test]
    fn fragmentation_retries_once_at_the_same_batch_keeping_the_users_setting() {
        let e = explained(FRAGMENTED);
        let mut p = RestartPolicy::new(1, 8, None, false, false);
        let env = vec![(
            "PYTORCH_CUDA_ALLOC_CONF".to_string(),
            "garbage_collection_threshold:0.6".to_string(),
        )];
        let mut f = failure(&e, 32);
        f.alloc_env = &env;
        match p.decide(&f) {
            Decision::Retry {
                batch, env, reason, ..
            } => {
                assert_eq!(batch, 32);
                assert_eq!(reason.as_str(), "fragmentation");
                assert_eq!(
                    env,
                    [(
                        "PYTORCH_CUDA_ALLOC_CONF".to_string(),
                        "garbage_collection_threshold:0.6,expandable_segments:True".to_string()
                    )]
                );
            }
            d => panic!("{d:?}"),
        }
        // Again: now the batch is cut.
        assert!(matches!(p.decide(&f), Decision::Retry { batch, .. } if batch < 32));
        // A user who already set it gets a cut at once.
        let set = vec![(
            "PYTORCH_CUDA_ALLOC_CONF".to_string(),
            "expandable_segments:True".to_string(),
        )];
        let mut p = RestartPolicy::new(1, 8, None, false, false);
        f.alloc_env = &set;
        assert!(matches!(p.decide(&f), Decision::Retry { batch, .. } if batch < 32));
    }

    #[test]
    fn a_leak_stops_unless_asked_to_retry_once() {
        let e = explained(FIGURES);
        let mut f = failure(&e, 64);
        f.trend = Some(MemoryTrend::Climbing {
            from_bytes: 1 << 30,
            to_bytes: 6 << 30,
            seconds: 20.0,
        });
        let mut p = RestartPolicy::new(1, 8, None, false, false);
        assert!(matches!(
            p.decide(&f),
            Decision::Stop(StopReason::Leak { .. })
        ));
        let mut p = RestartPolicy::new(1, 8, None, false, true);
        assert!(matches!(
            p.decide(&f),
            Decision::Retry {
                after_leak: true,
                ..
            }
        ));
        assert!(matches!(
            p.decide(&f),
            Decision::Stop(StopReason::Leak { .. })
        ));
    }

    #[test]
    fn on_the_cpu_the_memory_line_sizes_the_batch() {
        let e = explained("RuntimeError: [enforce fail at alloc_cpu.cpp:114] data. DefaultCPUAllocator: not enough memory: you tried to allocate 1073741824 bytes.");
        let line = MemoryLine {
            baseline_bytes: 1 << 30,
            at_failure_bytes: 3 << 30,
            limit_bytes: 3 << 30,
        };
        // Needed 3 + 1 GiB, 3 GiB above the baseline, with 2 GiB of room: 64 x 2/3.
        assert_eq!(line_bound(&line, 1 << 30, 64), Some(42));
        let mut f = failure(&e, 64);
        f.on_cpu = true;
        f.line = Some(line);
        assert_eq!(retried(&f), (25, "memory_line"));
    }

    #[test]
    fn a_host_peak_at_nine_tenths_of_its_limit_is_out_of_memory() {
        assert!(at_host_limit(9 << 30, 10 << 30));
        assert!(!at_host_limit(8 << 30, 10 << 30));
    }

    #[test]
    fn without_an_event_the_memory_line_sizes_the_batch() {
        // A failure at the host limit that printed no OOM: no request known.
        let line = MemoryLine {
            baseline_bytes: 1 << 30,
            at_failure_bytes: 4 << 30,
            limit_bytes: 3 << 30,
        };
        let f = Failure {
            batch: 64,
            event: None,
            trend: None,
            on_cpu: true,
            line: Some(line),
            alloc_env: &[],
        };
        // 64 x 2/3 = 42, x 0.6.
        assert_eq!(retried(&f), (25, "memory_line"));
    }

    #[test]
    fn figures_name_the_restart_caution_of_the_shared_rule() {
        let e = explained(FIGURES);
        let mut p = RestartPolicy::new(1, 8, None, false, false);
        match p.decide(&failure(&e, 64)) {
            Decision::Retry {
                reason: RetryReason::Figures { caution, share, .. },
                ..
            } => {
                assert_eq!(caution, Caution::Restart);
                assert_eq!(share, Caution::Restart.share());
            }
            d => panic!("{d:?}"),
        }
    }
}
