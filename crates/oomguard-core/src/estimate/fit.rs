//! Fitting a workload to a GPU: whether it fits, the largest batch and the
//! largest sequence that do, and when it does not fit, the changes that make
//! it fit, cheapest first, each with its new total.
//!
//! Memory grows monotonically with batch and sequence, so both searches are
//! a doubling bracket and a bisection: about 2·log2(limit) estimates, each a
//! few arithmetic operations.

use super::workload::{LoraTargets, Optimizer, Quant, Workload};
use super::{estimate, Lora};
use crate::gpu::GpuSpec;
use crate::model::{Dtype, ModelKind, ModelShape};
use serde::Serialize;

/// The largest value accepted by the searches.
pub const SEARCH_LIMIT: u64 = 1 << 24;

fn fits(s: &ModelShape, w: &Workload, capacity: u64) -> bool {
    estimate(s, w).device_used_bytes <= capacity
}

/// Largest `v` in 1..=limit with `ok(v)`, for a monotone `ok`; `None` when
/// even 1 fails.
fn largest(limit: u64, ok: impl Fn(u64) -> bool) -> Option<u64> {
    if limit == 0 || !ok(1) {
        return None;
    }
    let mut lo = 1;
    let mut hi = 2;
    while hi <= limit && ok(hi) {
        lo = hi;
        hi = hi.saturating_mul(2);
    }
    let mut hi = hi.min(limit + 1);
    // ok(lo) holds, ok(hi) fails or hi is past the limit.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if ok(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(lo)
}

/// The largest batch that fits `capacity` bytes.
pub fn max_batch(s: &ModelShape, w: &Workload, capacity: u64) -> Option<u64> {
    largest(SEARCH_LIMIT, |b| {
        fits(
            s,
            &Workload {
                batch: b,
                ..w.clone()
            },
            capacity,
        )
    })
}

/// The largest sequence length that fits, up to the model's maximum; `None`
/// for models whose sequence is fixed (ViT) or when even one token fails.
pub fn max_seq(s: &ModelShape, w: &Workload, capacity: u64) -> Option<u64> {
    if s.kind == ModelKind::Vision {
        return None;
    }
    let limit = s
        .max_position_embeddings
        .unwrap_or(SEARCH_LIMIT)
        .min(SEARCH_LIMIT);
    largest(limit, |q| {
        fits(
            s,
            &Workload {
                seq: q,
                ..w.clone()
            },
            capacity,
        )
    })
}

/// One change to a workload and where it lands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    pub change: String,
    pub device_used_bytes: u64,
    pub fits: bool,
}

/// The changes that make `w` fit a GPU of `capacity`, in the order a user
/// would try them: smaller batch, gradient checkpointing, mixed precision,
/// 8-bit optimizer, LoRA, QLoRA, ZeRO-3 over more GPUs, a larger GPU. Only
/// changes that apply to the workload are listed; each is applied alone.
pub fn recommendations(
    s: &ModelShape,
    w: &Workload,
    capacity: u64,
    catalog: &[GpuSpec],
) -> Vec<Recommendation> {
    let mut out = Vec::new();
    let mut push = |change: String, nw: Workload| {
        let used = estimate(s, &nw).device_used_bytes;
        out.push(Recommendation {
            change,
            device_used_bytes: used,
            fits: used <= capacity,
        });
    };
    if w.batch > 1 {
        if let Some(b) = max_batch(s, w, capacity).filter(|b| *b < w.batch) {
            push(
                format!("--batch {b}"),
                Workload {
                    batch: b,
                    ..w.clone()
                },
            );
        }
    }
    if w.train && !w.grad_checkpointing {
        push(
            "--grad-checkpointing".into(),
            Workload {
                grad_checkpointing: true,
                ..w.clone()
            },
        );
    }
    if w.dtype == Dtype::Fp32 && w.quant.is_none() {
        if w.train && !w.amp {
            push(
                "--amp".into(),
                Workload {
                    amp: true,
                    ..w.clone()
                },
            );
        }
        if !w.train {
            push(
                "--dtype bf16".into(),
                Workload {
                    dtype: Dtype::Bf16,
                    ..w.clone()
                },
            );
        }
    }
    if w.train && w.lora.is_none() && w.optimizer == Some(Optimizer::Adamw) {
        push(
            "--optimizer adamw-8bit".into(),
            Workload {
                optimizer: Some(Optimizer::Adamw8bit),
                ..w.clone()
            },
        );
    }
    let half = if w.dtype == Dtype::Fp32 {
        Dtype::Bf16
    } else {
        w.dtype
    };
    if w.train && w.lora.is_none() {
        let lora = Some(Lora {
            rank: 16,
            targets: LoraTargets::AllLinear,
        });
        push(
            "--lora 16 --lora-targets all-linear".into(),
            Workload {
                lora,
                dtype: half,
                amp: false,
                ..w.clone()
            },
        );
        push(
            "--quant nf4 --lora 16 --lora-targets all-linear (QLoRA)".into(),
            Workload {
                lora,
                quant: Some(Quant::Nf4),
                dtype: half,
                amp: false,
                ..w.clone()
            },
        );
    }
    if !w.train && w.quant.is_none() {
        push(
            "--quant int8".into(),
            Workload {
                quant: Some(Quant::Int8),
                dtype: half,
                ..w.clone()
            },
        );
        push(
            "--quant nf4".into(),
            Workload {
                quant: Some(Quant::Nf4),
                dtype: half,
                ..w.clone()
            },
        );
    }
    // Sharding: the fewest GPUs (of 2, 4, 8) that fit.
    for n in [2u64, 4, 8] {
        if n <= w.gpus {
            continue;
        }
        let nw = if w.train {
            Workload {
                gpus: n,
                zero: 3,
                ..w.clone()
            }
        } else {
            Workload {
                gpus: n,
                tp: n,
                ..w.clone()
            }
        };
        if fits(s, &nw, capacity) || n == 8 {
            let change = if w.train {
                format!("--gpus {n} --zero 3")
            } else {
                format!("--gpus {n} --tp {n}")
            };
            push(change, nw);
            break;
        }
    }
    // The smallest catalog GPU that fits the workload as it is.
    let need = estimate(s, w).device_used_bytes;
    if let Some(g) = catalog
        .iter()
        .filter(|g| g.memory_bytes >= need && g.memory_bytes > capacity)
        .min_by_key(|g| g.memory_bytes)
    {
        out.push(Recommendation {
            change: format!("--gpu {}", g.id),
            device_used_bytes: need,
            fits: true,
        });
    }
    out.sort_by_key(|r| !r.fits);
    out
}
