//! Causes and fixes decided from a snapshot's blocks, with the ids `explain`
//! uses: `fragmentation` (the free memory existed, in holes too small),
//! `leftover_tensors` (sites that grow from one iteration to the next),
//! `batch_too_large` (memory that comes and goes each iteration dominates),
//! `model_too_large` (memory never freed, weights and optimizer states,
//! fills the device by itself).
//!
//! "What PyTorch could use" at an OOM is what it held (reserved) plus what
//! CUDA reported free (`device_free` of the OOM entry). Without an OOM entry
//! that ceiling is unknown, so only the causes that need no ceiling
//! (growth, holes) are judged.

use super::analysis::{DeviceFigures, Moment};
use crate::diagnose::{CauseId, Fix, FixId};
use crate::size::format_size as fs;
use serde::Serialize;
use std::collections::BTreeMap;

/// Share of the measured room a suggested batch may fill: the weights do
/// not shrink with the batch and the failing request was not the last one.
const BATCH_SAFETY: f64 = 0.85;
/// The environment variable PyTorch's CUDA caching allocator reads.
const ALLOC_CONF: &str = "PYTORCH_CUDA_ALLOC_CONF";

/// One cause, with the numbers behind it and how to confirm it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotCause {
    /// The cause, with `explain`'s ids.
    pub id: CauseId,
    /// How strongly the figures point at it, 0 to 1.
    pub score: f64,
    /// The figures behind it, in a sentence.
    pub evidence: String,
    /// How the user can confirm it.
    pub check: Option<String>,
}

/// What the snapshot says about allocator settings.
#[derive(Debug, Clone, Default)]
pub struct AllocatorContext {
    /// Expandable segments were on (settings or segments say so).
    pub expandable_segments: bool,
    /// The PYTORCH_CUDA_ALLOC_CONF in force, when recorded.
    pub alloc_conf: Option<String>,
}

fn cause(id: CauseId, score: f64, evidence: String, check: &str) -> SnapshotCause {
    SnapshotCause {
        id,
        score: (score.clamp(0.0, 1.0) * 100.0).round() / 100.0,
        evidence,
        check: Some(check.to_string()),
    }
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "n/a".into();
    }
    format!("{:.0}%", part as f64 * 100.0 / whole as f64)
}

/// Ranks the causes, most likely first.
pub fn causes(f: &DeviceFigures) -> Vec<SnapshotCause> {
    let mut out = Vec::new();
    let ceiling = match (f.at, f.device_free_bytes) {
        (Moment::Oom, Some(free)) => Some(f.reserved_bytes.saturating_add(free)),
        _ => None,
    };
    let request = f.requested_bytes.unwrap_or(0);
    if let Some(c) = growth(f, ceiling, request) {
        out.push(c);
    }
    if let Some(c) = fragmentation(f) {
        out.push(c);
    }
    if let Some(ceiling) = ceiling {
        out.extend(size_causes(f, ceiling, request));
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

fn growth(f: &DeviceFigures, ceiling: Option<u64>, request: u64) -> Option<SnapshotCause> {
    let top = f.growing_sites.first()?;
    let total: u64 = f
        .growing_sites
        .iter()
        .fold(0u64, |t, g| t.saturating_add(g.last_bytes - g.first_bytes));
    let big = total >= request.max(1) || ceiling.is_some_and(|c| total >= c / 10);
    let score = if big { 0.9 } else { 0.55 };
    let others = match f.growing_sites.len() {
        1 => String::new(),
        n => format!(" ({} sites grew by {} in all)", n, fs(total)),
    };
    Some(cause(
        CauseId::LeftoverTensors,
        score,
        format!(
            "live memory allocated at {} grew from {} to {} over {} iterations{others}: tensors from earlier steps stay referenced",
            top.frame,
            fs(top.first_bytes),
            fs(top.last_bytes),
            f.iteration_boundaries.saturating_sub(1)
        ),
        "look at what the code at that line keeps across steps (a list of outputs or losses, a cache); log torch.cuda.memory_allocated() after each step: it should return to the same value",
    ))
}

fn fragmentation(f: &DeviceFigures) -> Option<SnapshotCause> {
    let free = f.cached_free_bytes;
    match (f.at, f.requested_bytes, f.device_free_bytes) {
        (Moment::Oom, Some(req), Some(dev_free)) => {
            if f.largest_free_block_bytes >= req {
                return None;
            }
            let score = if free.saturating_add(dev_free) < req {
                if free.saturating_mul(4) >= f.reserved_bytes && free > 0 {
                    0.3
                } else {
                    return None;
                }
            } else if free.saturating_add(dev_free).saturating_mul(4) < f.split.transient_bytes {
                // Enough for this request, but a small part of what the
                // iteration's activations take: a defragmented cache would
                // only move the OOM a few allocations later.
                0.45
            } else if free >= req {
                0.85
            } else {
                0.7
            };
            Some(cause(
                CauseId::Fragmentation,
                score,
                format!(
                    "{} was cached but free in {} holes, the largest {}, against a request of {}; CUDA had {} free outside the cache",
                    fs(free),
                    f.free_holes,
                    fs(f.largest_free_block_bytes),
                    fs(req),
                    fs(dev_free)
                ),
                "compare torch.cuda.memory_reserved() - torch.cuda.memory_allocated() with the failed request; torch.cuda.memory_stats()['inactive_split_bytes.all.current'] is the memory lost in split blocks",
            ))
        }
        _ => {
            // At the peak: holes only matter when they are a large share
            // and no single one could take a large part of them.
            if f.reserved_bytes == 0 || free.saturating_mul(10) < f.reserved_bytes.saturating_mul(3)
            {
                return None;
            }
            if f.largest_free_block_bytes.saturating_mul(2) >= free {
                return None;
            }
            Some(cause(
                CauseId::Fragmentation,
                0.4,
                format!(
                    "at the peak {} of the {} reserved ({}) was cached but free, split in {} holes, the largest {}",
                    fs(free),
                    fs(f.reserved_bytes),
                    pct(free, f.reserved_bytes),
                    f.free_holes,
                    fs(f.largest_free_block_bytes)
                ),
                "watch torch.cuda.memory_reserved() against torch.cuda.memory_allocated() over a run",
            ))
        }
    }
}

fn size_causes(f: &DeviceFigures, ceiling: u64, request: u64) -> Vec<SnapshotCause> {
    let mut out = Vec::new();
    let s = f.split;
    let fixed = s.persistent_bytes;
    if fixed.saturating_add(request) > ceiling
        || fixed.saturating_mul(10) >= ceiling.saturating_mul(9)
    {
        out.push(cause(
            CauseId::ModelTooLarge,
            0.85,
            format!(
                "allocations never freed in the trace (weights, gradients, optimizer states) hold {} of the {} PyTorch could use ({}); with the request of {} they exceed it",
                fs(fixed),
                fs(ceiling),
                pct(fixed, ceiling),
                fs(request)
            ),
            "print sum(p.numel() * p.element_size() for p in model.parameters()) and compare with the GPU's memory",
        ));
    } else if s.transient_bytes.saturating_add(request).saturating_mul(4) >= ceiling {
        out.push(cause(
            CauseId::BatchTooLarge,
            0.75,
            format!(
                "allocations that come and go each iteration (activations, temporaries) held {} at the OOM and asked for {} more, on top of {} that stays; PyTorch could use {}",
                fs(s.transient_bytes),
                fs(request),
                fs(fixed.saturating_add(s.growing_bytes)),
                fs(ceiling)
            ),
            "rerun with half the batch size: activations scale with it",
        ));
    } else if fixed.saturating_mul(2) >= ceiling {
        out.push(cause(
            CauseId::ModelTooLarge,
            0.5,
            format!(
                "allocations never freed in the trace hold {} of the {} PyTorch could use ({})",
                fs(fixed),
                fs(ceiling),
                pct(fixed, ceiling)
            ),
            "print sum(p.numel() * p.element_size() for p in model.parameters()) and compare with the GPU's memory",
        ));
    }
    out
}

/// The fraction of the current batch that fits, when activations decide.
pub fn batch_fraction(f: &DeviceFigures) -> Option<f64> {
    let free = f.device_free_bytes?;
    let ceiling = f.reserved_bytes.saturating_add(free);
    let s = f.split;
    let need = s.transient_bytes.saturating_add(f.requested_bytes?);
    let room = ceiling.checked_sub(s.persistent_bytes.saturating_add(s.growing_bytes))?;
    if need == 0 {
        return None;
    }
    Some((room as f64 / need as f64 * BATCH_SAFETY).min(1.0))
}

fn fix(id: FixId, title: String, detail: String, code: Option<&str>) -> Fix {
    Fix {
        id,
        title,
        detail,
        code: code.map(str::to_string),
        env: None,
    }
}

/// Fixes for the causes, best first.
pub fn fixes(f: &DeviceFigures, causes: &[SnapshotCause], ctx: &AllocatorContext) -> Vec<Fix> {
    let mut out: Vec<Fix> = Vec::new();
    for c in causes {
        let new = match c.id {
            CauseId::Fragmentation => vec![fragmentation_fix(ctx)],
            CauseId::LeftoverTensors => {
                let site = f
                    .growing_sites
                    .first()
                    .map(|g| g.frame.as_str())
                    .unwrap_or("the growing site");
                vec![fix(
                    FixId::FreeLeftoverTensors,
                    format!("Stop keeping tensors alive across steps at {site}"),
                    "Keep numbers, not tensors, of what you log (loss.item()); detach what you store; do not append outputs to lists that live across steps; evaluate under torch.no_grad().".into(),
                    Some("total_loss += loss.item()          # not: total_loss += loss\nhistory.append(out.detach().cpu())  # not: history.append(out)\nwith torch.no_grad():\n    val_out = model(val_batch)"),
                )]
            }
            CauseId::BatchTooLarge => {
                let mut v = Vec::new();
                let detail = match batch_fraction(f) {
                    Some(x) => format!(
                        "The activations live at the OOM and the request need {} while {} is left beside what stays: a batch of at most about {:.0}% of the current one (what the step had yet to allocate is not counted, so aim lower). Keep the effective batch with gradient accumulation.",
                        fs(f.split.transient_bytes.saturating_add(f.requested_bytes.unwrap_or(0))),
                        fs(f.reserved_bytes.saturating_add(f.device_free_bytes.unwrap_or(0)).saturating_sub(f.split.persistent_bytes.saturating_add(f.split.growing_bytes))),
                        x * 100.0
                    ),
                    None => "Activations scale with the batch (and sequence length): halve it and keep the effective batch with gradient accumulation.".into(),
                };
                v.push(fix(
                    FixId::ReduceBatch,
                    "Lower the batch size, accumulate gradients".into(),
                    detail,
                    Some("TrainingArguments(per_device_train_batch_size=..., gradient_accumulation_steps=...)\n# or: loss = loss / accum; loss.backward(); step every `accum` batches"),
                ));
                v.push(fix(
                    FixId::MixedPrecisionCheckpointing,
                    "Use bf16/fp16 autocast and activation checkpointing".into(),
                    "Half-precision activations take half the memory; checkpointing recomputes them in backward instead of keeping them.".into(),
                    Some("with torch.autocast('cuda', dtype=torch.bfloat16):\n    loss = model(batch)\nmodel.gradient_checkpointing_enable()  # Hugging Face models"),
                ));
                v
            }
            CauseId::ModelTooLarge => vec![
                fix(
                    FixId::ShardOrQuantize,
                    "Load in half precision or quantized, or shard the model".into(),
                    "bf16 halves fp32 weights, 8-bit quarters them, 4-bit takes an eighth; FSDP/ZeRO split weights, gradients and optimizer states across GPUs.".into(),
                    Some("model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16, device_map='auto')"),
                ),
                fix(
                    FixId::LighterOptimizer,
                    "Use an 8-bit optimizer or LoRA".into(),
                    "AdamW keeps 8 bytes of state per parameter; 8-bit AdamW keeps 2; LoRA trains a small fraction of the parameters.".into(),
                    Some("TrainingArguments(optim='adamw_bnb_8bit')"),
                ),
            ],
            _ => Vec::new(),
        };
        for x in new {
            if !out.iter().any(|g| g.id == x.id) {
                out.push(x);
            }
        }
    }
    out
}

fn fragmentation_fix(ctx: &AllocatorContext) -> Fix {
    let setting = if ctx.expandable_segments {
        "garbage_collection_threshold:0.8"
    } else {
        "expandable_segments:True"
    };
    let value = match &ctx.alloc_conf {
        Some(conf) if !conf.contains(setting.split(':').next().unwrap_or(setting)) => {
            format!("{conf},{setting}")
        }
        _ => setting.to_string(),
    };
    let detail = if ctx.expandable_segments {
        "Expandable segments are already on; a garbage-collection threshold makes the allocator return unused cached blocks before it reaches the limit (PyTorch 2.0+)."
    } else {
        "Segments then grow in place instead of leaving holes between fixed-size blocks (PyTorch 2.1+); set it before the first CUDA allocation."
    };
    Fix {
        id: FixId::AllocatorConfig,
        title: format!("Set {ALLOC_CONF}={value}"),
        detail: detail.to_string(),
        code: Some(format!("export {ALLOC_CONF}={value}")),
        env: Some(BTreeMap::from([(ALLOC_CONF.to_string(), value)])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::analysis::{GrowingSite, LiveSplit, Timeline};

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn oom(
        request: u64,
        device_free: u64,
        allocated: u64,
        reserved: u64,
        split: LiveSplit,
    ) -> DeviceFigures {
        DeviceFigures {
            device: 0,
            at: Moment::Oom,
            requested_bytes: Some(request),
            device_free_bytes: Some(device_free),
            allocated_bytes: allocated,
            reserved_bytes: reserved,
            cached_free_bytes: reserved - allocated,
            largest_free_block_bytes: 0,
            segments: 1,
            top_sites: Vec::new(),
            growing_sites: Vec::new(),
            trace_entries: 10,
            oom_entries: 1,
            free_holes: 0,
            iteration_boundaries: 0,
            split,
            pools: Vec::new(),
            timeline: Timeline::default(),
            segment_map: Vec::new(),
        }
    }

    fn ids(f: &DeviceFigures) -> Vec<CauseId> {
        causes(f).into_iter().map(|c| c.id).collect()
    }

    #[test]
    fn holes_too_small_for_a_request_the_cache_could_hold_are_fragmentation() {
        let split = LiveSplit {
            transient_bytes: 800 * MIB,
            persistent_bytes: 0,
            growing_bytes: 0,
        };
        let mut f = oom(64 * MIB, 8 * MIB, 800 * MIB, 1760 * MIB, split);
        f.largest_free_block_bytes = 8 * MIB;
        f.free_holes = 120;
        assert_eq!(ids(&f)[0], CauseId::Fragmentation);
        f.largest_free_block_bytes = 64 * MIB;
        assert!(!ids(&f).contains(&CauseId::Fragmentation));
    }

    #[test]
    fn memory_never_freed_that_fills_the_device_is_the_model() {
        let split = LiveSplit {
            transient_bytes: 0,
            persistent_bytes: 7 * GIB,
            growing_bytes: 0,
        };
        let f = oom(100 * MIB, 50 * MIB, 7 * GIB, 7 * GIB, split);
        assert_eq!(ids(&f), vec![CauseId::ModelTooLarge]);
    }

    #[test]
    fn activations_that_dominate_are_the_batch() {
        let split = LiveSplit {
            transient_bytes: 6 * GIB,
            persistent_bytes: 4 * GIB,
            growing_bytes: 0,
        };
        let f = oom(512 * MIB, 100 * MIB, 10 * GIB, 10 * GIB, split);
        assert_eq!(ids(&f), vec![CauseId::BatchTooLarge]);
        let x = batch_fraction(&f).unwrap();
        assert!(x > 0.5 && x < 1.0, "{x}");
        let fixes = fixes(&f, &causes(&f), &AllocatorContext::default());
        assert_eq!(fixes[0].id, "reduce_batch");
    }

    #[test]
    fn growth_is_judged_without_an_oom_and_sizes_are_not() {
        let mut f = oom(0, 0, 4 * GIB, 4 * GIB, LiveSplit::default());
        f.at = Moment::Peak;
        f.requested_bytes = None;
        f.device_free_bytes = None;
        assert!(ids(&f).is_empty());
        f.growing_sites = vec![GrowingSite {
            frame: "train.py:9 (step)".into(),
            first_bytes: 0,
            last_bytes: GIB,
        }];
        assert_eq!(ids(&f), vec![CauseId::LeftoverTensors]);
    }

    #[test]
    fn allocator_fix_keeps_the_settings_in_force() {
        let ctx = AllocatorContext {
            expandable_segments: false,
            alloc_conf: Some("max_split_size_mb:128".into()),
        };
        let f = fragmentation_fix(&ctx);
        assert_eq!(
            f.env.unwrap()[ALLOC_CONF],
            "max_split_size_mb:128,expandable_segments:True"
        );
        let on = AllocatorContext {
            expandable_segments: true,
            alloc_conf: Some("expandable_segments:True".into()),
        };
        assert_eq!(
            fragmentation_fix(&on).env.unwrap()[ALLOC_CONF],
            "expandable_segments:True,garbage_collection_threshold:0.8"
        );
    }
}
