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

/// Share of a GPU's memory that recommendations leave free: 5%. Two
/// reasons, both measured: the estimate's own error against published
/// measurements (median 3-5%, see the README's validation table), and
/// run-to-run differences of the caching allocator's fragmentation, plus
/// what a desktop or a monitoring process holds on the same card (a few
/// hundred MiB on consumer cards). A workload that fits only within the
/// margin is reported as tight, not recommended.
pub const SAFETY_MARGIN: f64 = 0.05;

/// What recommendations may fill of a GPU of `capacity` bytes.
pub fn usable_capacity(capacity: u64) -> u64 {
    capacity - (capacity as f64 * SAFETY_MARGIN) as u64
}

fn fits(s: &ModelShape, w: &Workload, capacity: u64) -> bool {
    estimate(s, w).device_used_bytes <= capacity
}

/// Largest `v` in 1..=limit with `ok(v)`, for a monotone `ok`; `None` when
/// even 1 fails.
pub(crate) fn largest(limit: u64, ok: impl Fn(u64) -> bool) -> Option<u64> {
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

/// A change to a workload: the flags that, appended to the command as it
/// stands, give the changed workload.
#[derive(Debug, Clone)]
struct Change {
    flags: Vec<String>,
    workload: Workload,
}

impl Change {
    fn from(w: &Workload) -> Change {
        Change {
            flags: Vec::new(),
            workload: w.clone(),
        }
    }

    fn flag(mut self, flag: &str, apply: impl FnOnce(&mut Workload)) -> Change {
        self.flags.push(flag.to_string());
        apply(&mut self.workload);
        self
    }

    fn grad_checkpointing(self) -> Change {
        if self.workload.grad_checkpointing {
            return self;
        }
        self.flag("--grad-checkpointing", |w| {
            w.grad_checkpointing = true;
            w.checkpointing = super::Checkpointing::Full;
        })
    }

    /// Weights in bf16 where they are fp32 without autocast (adapters,
    /// quantization and inference are run on half-precision bases).
    fn half_weights(self) -> Change {
        if self.workload.dtype != Dtype::Fp32 || self.workload.amp {
            return self;
        }
        self.flag("--dtype bf16", |w| w.dtype = Dtype::Bf16)
    }

    /// LoRA rank 16 on every linear layer (PEFT's usual choice for memory),
    /// over `quant` weights when given (QLoRA).
    fn adapters(self, quant: Option<Quant>) -> Change {
        let c = match quant {
            Some(q) => self.flag(&format!("--quant {}", q.name()), |w| w.quant = Some(q)),
            None => self,
        };
        c.flag("--lora 16 --lora-targets all-linear", |w| {
            w.lora = Some(Lora {
                rank: 16,
                targets: LoraTargets::AllLinear,
            })
        })
        .half_weights()
    }

    fn text(&self) -> String {
        self.flags.join(" ")
    }
}

/// The changes applied alone, in the order a user would try them.
fn single_changes(w: &Workload) -> Vec<Change> {
    let mut out = Vec::new();
    if w.train && !w.grad_checkpointing {
        out.push(Change::from(w).grad_checkpointing());
    }
    if w.dtype == Dtype::Fp32 && w.quant.is_none() {
        if w.train && !w.amp {
            out.push(Change::from(w).flag("--amp", |w| w.amp = true));
        }
        if !w.train {
            out.push(Change::from(w).half_weights());
        }
    }
    if w.train
        && w.lora.is_none()
        && matches!(
            w.optimizer,
            Some(Optimizer::Adamw | Optimizer::AdamwForeach)
        )
    {
        out.push(Change::from(w).flag("--optimizer adamw-8bit", |w| {
            w.optimizer = Some(Optimizer::Adamw8bit)
        }));
    }
    // torchtune's `optimizer_in_bwd`: the gradients are never whole
    // (it cannot accumulate over micro-batches).
    if w.train && w.lora.is_none() && !w.optimizer_in_backward && w.grad_accum == 1 {
        out.push(Change::from(w).flag("--optimizer-in-backward", |w| {
            w.optimizer_in_backward = true
        }));
    }
    if w.train && w.lora.is_none() && w.quant.is_none() {
        out.push(Change::from(w).adapters(None));
        out.push(Change::from(w).adapters(Some(Quant::Nf4)));
    }
    if !w.train && w.quant.is_none() {
        for q in [Quant::Int8, Quant::Nf4] {
            let c = Change::from(w).flag(&format!("--quant {}", q.name()), |w| w.quant = Some(q));
            out.push(c.half_weights());
        }
    }
    out
}

/// When no single change fits one GPU, the combinations people reach for
/// on it: full fine-tuning with checkpointing, mixed precision and an 8-bit
/// optimizer; LoRA and QLoRA with checkpointing; checkpointing with the
/// adapters already there; for inference, 16-, 8- and 4-bit weights.
fn combinations(w: &Workload) -> Vec<Change> {
    let mut out = Vec::new();
    if !w.train {
        // Half-precision or quantized weights, at a smaller batch.
        return single_changes(w);
    }
    if w.lora.is_some() {
        out.push(Change::from(w).grad_checkpointing());
        return out;
    }
    let mut full = Change::from(w).grad_checkpointing();
    if w.dtype == Dtype::Fp32 && w.quant.is_none() && !w.amp {
        full = full.flag("--amp", |w| w.amp = true);
    }
    if matches!(
        w.optimizer,
        Some(Optimizer::Adamw | Optimizer::AdamwForeach)
    ) {
        full = full.flag("--optimizer adamw-8bit", |w| {
            w.optimizer = Some(Optimizer::Adamw8bit)
        });
    }
    if full.flags.len() > 1 {
        out.push(full);
    }
    if w.quant.is_none() {
        out.push(Change::from(w).adapters(None).grad_checkpointing());
        out.push(
            Change::from(w)
                .adapters(Some(Quant::Nf4))
                .grad_checkpointing(),
        );
    }
    out
}

/// The smallest catalog GPU larger than `capacity` that holds `need` with
/// the safety margin, from the user's own vendor and class first, then the
/// vendor's other classes: an RTX 4090 owner hears of an RTX 5090 or an RTX
/// 6000 Ada before a data-center card, and never of another vendor's card
/// while one of their vendor fits. Without a known GPU (a size was given),
/// NVIDIA's cards are searched, the usual case.
pub fn larger_gpu<'a>(
    need: u64,
    capacity: u64,
    catalog: &'a [GpuSpec],
    current: Option<&GpuSpec>,
) -> Option<&'a GpuSpec> {
    let vendor = current.map_or("nvidia", |g| g.vendor.as_str());
    catalog
        .iter()
        .filter(|g| g.memory_bytes > capacity && usable_capacity(g.memory_bytes) >= need)
        .filter(|g| g.vendor == vendor)
        .min_by_key(|g| {
            let other_class = current.is_some_and(|c| c.class != g.class);
            (other_class, g.memory_bytes)
        })
}

/// One change to a workload and where it lands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// The flags to append to the command, as a user would type them.
    pub change: String,
    /// Bytes the GPU would show in use with the change.
    pub device_used_bytes: u64,
    /// True when that fits the GPU's usable capacity.
    pub fits: bool,
}

/// The changes that make `w` fit a GPU of `capacity`, in the order a user
/// would try them: smaller batch, shorter sequence, gradient checkpointing, mixed precision,
/// 8-bit optimizer, LoRA, QLoRA, ZeRO-3 over more GPUs, a larger GPU. Only
/// changes that apply to the workload are listed; each is applied alone,
/// and when none of those fits this GPU but a smaller batch or a shorter
/// sequence, `combinations` follow (at the largest batch, else the longest
/// sequence, that fits when the asked one does not).
/// Each change is flags to append to the command as it stands.
pub fn recommendations(
    s: &ModelShape,
    w: &Workload,
    capacity: u64,
    catalog: &[GpuSpec],
    current: Option<&GpuSpec>,
) -> Vec<Recommendation> {
    let gpu_capacity = capacity;
    let capacity = usable_capacity(capacity);
    let rec = |c: &Change| {
        let used = estimate(s, &c.workload).device_used_bytes;
        Recommendation {
            change: c.text(),
            device_used_bytes: used,
            fits: used <= capacity,
        }
    };
    let mut out = Vec::new();
    if w.batch > 1 {
        if let Some(b) = max_batch(s, w, capacity).filter(|b| *b < w.batch) {
            out.push(rec(
                &Change::from(w).flag(&format!("--batch {b}"), |w| w.batch = b)
            ));
        }
    }
    if let Some(q) = max_seq(s, w, capacity).filter(|q| *q < w.seq) {
        out.push(rec(
            &Change::from(w).flag(&format!("--seq {q}"), |w| w.seq = q)
        ));
    }
    // A smaller batch or a shorter sequence does less per step: when they are
    // the only changes that fit, combinations that keep more of both follow,
    // each at the largest batch (else the longest sequence) that fits.
    let from_shrink = out.len();
    // A change that does not lower the total is no advice (the optimizer
    // step in backward, when activations rather than gradients set the peak).
    let now = estimate(s, w).device_used_bytes;
    out.extend(
        single_changes(w)
            .iter()
            .map(rec)
            .filter(|r| r.device_used_bytes < now),
    );
    if !out[from_shrink..].iter().any(|r| r.fits) {
        for c in combinations(w) {
            let c = if fits(s, &c.workload, capacity) {
                c
            } else if let Some(b) = max_batch(s, &c.workload, capacity).filter(|b| *b < w.batch) {
                c.flag(&format!("--batch {b}"), |w| w.batch = b)
            } else if let Some(q) = max_seq(s, &c.workload, capacity).filter(|q| *q < w.seq) {
                c.flag(&format!("--seq {q}"), |w| w.seq = q)
            } else {
                continue;
            };
            let r = rec(&c);
            if !out.iter().any(|o| o.change == r.change) {
                out.push(r);
            }
        }
    }
    // Sharding: the fewest GPUs (of 2, 4, 8) that fit.
    for n in [2u64, 4, 8] {
        if n <= w.gpus {
            continue;
        }
        let c = if w.train {
            Change::from(w).flag(&format!("--gpus {n} --zero 3"), |w| {
                w.gpus = n;
                w.zero = 3;
            })
        } else {
            Change::from(w).flag(&format!("--gpus {n} --tp {n}"), |w| {
                w.gpus = n;
                w.tp = n;
            })
        };
        if fits(s, &c.workload, capacity) || n == 8 {
            out.push(rec(&c));
            break;
        }
    }
    let need = estimate(s, w).device_used_bytes;
    if let Some(g) = larger_gpu(need, gpu_capacity, catalog, current) {
        out.push(Recommendation {
            change: format!("--gpu {}", g.id),
            device_used_bytes: need,
            fits: true,
        });
    }
    out.sort_by_key(|r| !r.fits);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::{find_gpu, gpus};

    fn llama_8b_full(batch: u64, checkpointing: bool) -> (ModelShape, Workload) {
        let s = crate::model::catalog::shape("meta-llama/Llama-3.1-8B").unwrap();
        let req = super::super::WorkloadRequest {
            train: true,
            dtype: Some(Dtype::Bf16),
            batch: Some(batch),
            seq: Some(4096),
            grad_checkpointing: checkpointing,
            ..Default::default()
        };
        let w = Workload::resolve(&req, &s).unwrap();
        (s, w)
    }

    #[test]
    fn the_optimizer_step_in_backward_is_advised_only_where_it_lowers_the_total() {
        let advised = |batch, checkpointing| {
            let (s, w) = llama_8b_full(batch, checkpointing);
            let g = find_gpu("a100-40gb").unwrap();
            recommendations(&s, &w, g.memory_bytes, gpus(), Some(g))
                .into_iter()
                .any(|r| r.change == "--optimizer-in-backward")
        };
        // One checkpointed sequence: the gradients set the peak, and go.
        assert!(advised(1, true));
        // Eight sequences without checkpointing: the activations set the
        // peak; one more gradient beside them would raise it.
        assert!(!advised(8, false));
    }

    #[test]
    fn a_larger_gpu_is_of_the_users_vendor_and_class_first() {
        let g = find_gpu("rtx-4090").unwrap();
        let up = larger_gpu(28 << 30, g.memory_bytes, gpus(), Some(g)).unwrap();
        assert_eq!(up.id, "rtx-5090");
        let up = larger_gpu(40 << 30, g.memory_bytes, gpus(), Some(g)).unwrap();
        assert_eq!(up.vendor, "nvidia");
        let mi = find_gpu("mi250x").unwrap();
        assert_eq!(
            larger_gpu(100 << 30, mi.memory_bytes, gpus(), Some(mi))
                .unwrap()
                .vendor,
            "amd"
        );
    }

    #[test]
    fn the_margin_keeps_a_full_card_from_fitting() {
        assert_eq!(usable_capacity(100 << 30), 95 << 30);
        let g = find_gpu("rtx-4090").unwrap();
        // 24 GiB of need does not "fit" a 23.99 GiB card, nor one that
        // holds it only without the margin.
        let up = larger_gpu(g.memory_bytes - (1 << 20), g.memory_bytes, gpus(), Some(g)).unwrap();
        assert!(usable_capacity(up.memory_bytes) >= g.memory_bytes - (1 << 20));
    }
}
