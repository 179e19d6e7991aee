//! `oomguard plan`: resolve the model and the workload, estimate per-GPU
//! memory, and with `--gpu` say whether it fits, the largest batch and
//! sequence, and the changes that make it fit. Exit 0 when it fits (or no
//! GPU was given), 1 when it does not, 2 on bad input.

use crate::flags::PlanArgs;
use crate::style::{proportional_cells, Style};
use anyhow::{anyhow, Context};
use oomguard_core::estimate::fit::{
    max_batch, max_seq, recommendations, usable_capacity, Recommendation, SAFETY_MARGIN,
};
use oomguard_core::estimate::{
    estimate, Attention, Lora, LoraTargets, MemoryBreakdown, Optimizer, PrecisionRegime, Quant,
    Workload, WorkloadRequest,
};
use oomguard_core::gpu::{find_gpu, gpus};
use oomguard_core::model::resolve::{resolve, HubCache, ModelSource};
use oomguard_core::model::{Dtype, ModelShape};
use oomguard_core::size::{format_size, parse_gpu_size};
use serde::Serialize;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

/// The GPU the plan is fitted to.
#[derive(Debug, Clone, Serialize)]
struct TargetGpu {
    name: String,
    memory_bytes: u64,
}

#[derive(Debug, Serialize)]
struct ModelJson<'a> {
    id: &'a str,
    architecture: &'a str,
    params: u64,
    layers: u64,
    hidden_size: u64,
    heads: u64,
    kv_heads: u64,
    head_dim: u64,
    intermediate_size: u64,
    vocab_size: u64,
    max_position_embeddings: Option<u64>,
}

#[derive(Debug, Serialize)]
struct PlanJson<'a> {
    model: ModelJson<'a>,
    workload: &'a Workload,
    per_gpu: MemoryBreakdown,
    gpu: Option<TargetGpu>,
    fits: Option<bool>,
    max_batch: Option<u64>,
    max_seq: Option<u64>,
    recommendations: Vec<Recommendation>,
}

fn request(args: &PlanArgs) -> WorkloadRequest {
    WorkloadRequest {
        train: args.train,
        batch: args.batch,
        seq: args.seq,
        dtype: args.dtype.as_deref().and_then(Dtype::from_name),
        amp: args.amp,
        quant: args.quant.as_deref().and_then(Quant::parse),
        optimizer: args.optimizer.as_deref().and_then(Optimizer::parse),
        grad_checkpointing: args.grad_checkpointing,
        lora: args.lora.map(|rank| Lora {
            rank,
            targets: match args.lora_targets.as_deref() {
                Some("all-linear") => LoraTargets::AllLinear,
                _ => LoraTargets::Qv,
            },
        }),
        attention: args.attention.as_deref().and_then(Attention::parse),
        gpus: args.gpus,
        zero: if args.fsdp { Some(3) } else { args.zero },
        tp: args.tp,
    }
}

fn target_gpu(arg: &str) -> anyhow::Result<TargetGpu> {
    if let Some(g) = find_gpu(arg) {
        return Ok(TargetGpu {
            name: g.id.clone(),
            memory_bytes: g.memory_bytes,
        });
    }
    // "24GB" is what the vendor sells as 24 GB: binary, as GPUs count.
    match parse_gpu_size(arg) {
        Ok(bytes) if bytes >= 1 << 20 => Ok(TargetGpu {
            name: arg.to_string(),
            memory_bytes: bytes,
        }),
        _ => Err(anyhow!(
            "--gpu {arg:?} is neither a GPU of the catalog (`oomguard gpus` lists them) nor a size such as 24GiB or 80g"
        )),
    }
}

pub fn run(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let gpu = args.gpu.as_deref().map(target_gpu).transpose()?;
    let (shape, source) =
        resolve(&args.model, &HubCache::from_env()).map_err(|e| anyhow!("{e}"))?;
    let workload = Workload::resolve(&request(args), &shape).map_err(|e| anyhow!("{e}"))?;
    let per_gpu = estimate(&shape, &workload);
    let (fits, mb, ms, recs) = match &gpu {
        Some(g) => {
            let fits = per_gpu.device_used_bytes <= g.memory_bytes;
            // Searches and changes keep the safety margin free.
            let usable = usable_capacity(g.memory_bytes);
            let recs = if per_gpu.device_used_bytes <= usable {
                Vec::new()
            } else {
                recommendations(&shape, &workload, g.memory_bytes, gpus(), find_gpu(&g.name))
            };
            (
                Some(fits),
                max_batch(&shape, &workload, usable),
                max_seq(&shape, &workload, usable),
                recs,
            )
        }
        None => (None, None, None, Vec::new()),
    };
    let plan = PlanJson {
        model: ModelJson {
            id: &shape.id,
            architecture: &shape.architecture,
            params: shape.params,
            layers: shape.layers,
            hidden_size: shape.hidden_size,
            heads: shape.heads,
            kv_heads: shape.kv_heads,
            head_dim: shape.head_dim,
            intermediate_size: shape.intermediate_size,
            vocab_size: shape.vocab_size,
            max_position_embeddings: shape.max_position_embeddings,
        },
        workload: &workload,
        per_gpu,
        gpu,
        fits,
        max_batch: mb,
        max_seq: ms,
        recommendations: recs,
    };
    let mut out = BufWriter::new(io::stdout().lock());
    if args.json {
        serde_json::to_writer(&mut out, &plan).context("cannot write JSON")?;
        writeln!(out)?;
    } else {
        render(&mut out, &plan, &shape, &source, &Style::detect())?;
    }
    out.flush()?;
    Ok(match plan.fits {
        Some(false) => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}

fn describe_workload(w: &Workload) -> String {
    let mut parts = vec![
        if w.train { "training" } else { "inference" }.to_string(),
        format!("batch {}", w.batch),
        format!(
            "seq {}{}",
            w.seq,
            if w.seq_capped {
                " (the model's maximum)"
            } else {
                ""
            }
        ),
        w.dtype.name().to_string(),
    ];
    if w.amp {
        parts.push("AMP".into());
    }
    if let Some(q) = w.quant {
        parts.push(format!("{q:?} weights").to_lowercase());
    }
    if let Some(o) = w.optimizer {
        if let Some(name) = serde_json::to_value(o)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
        {
            parts.push(name);
        }
    }
    if w.grad_checkpointing {
        parts.push("gradient checkpointing".into());
    }
    if let Some(l) = w.lora {
        parts.push(format!(
            "LoRA r{} {}",
            l.rank,
            if l.targets == LoraTargets::Qv {
                "q,v"
            } else {
                "all linear"
            }
        ));
    }
    parts.push(format!("{:?} attention", w.attention).to_lowercase());
    if w.gpus > 1 {
        parts.push(format!("{} GPUs (ZeRO {}, TP {})", w.gpus, w.zero, w.tp));
    }
    parts.join(", ")
}

/// The precision regime in words, with its bytes per trainable parameter.
fn describe_precision(w: &Workload) -> Option<String> {
    let p = &w.precision;
    let per = format!(
        "{} B/param (weights {}, gradients {}, optimizer states {})",
        p.weight_bytes_per_param + p.gradient_bytes_per_param + p.optimizer_bytes_per_param,
        p.weight_bytes_per_param,
        p.gradient_bytes_per_param,
        p.optimizer_bytes_per_param
    );
    let trained = if w.lora.is_some() {
        "adapters"
    } else {
        "all weights"
    };
    Some(match p.regime {
        PrecisionRegime::Inference => return None,
        PrecisionRegime::Fp32 => format!("precision: fp32 training of {trained}, {per}"),
        PrecisionRegime::Amp => format!(
            "precision: mixed (AMP) training of {trained}: fp32 masters, half-precision compute, {per}{}",
            if w.lora.is_none() { " plus a 2 B/param half copy for autocast" } else { "" }
        ),
        PrecisionRegime::PureHalf => format!(
            "precision: pure {} training (no fp32 masters), {per}{}",
            w.dtype.name(),
            if p.autocast_only { "; --amp adds autocast only" } else { "" }
        ),
    })
}

fn render(
    out: &mut impl Write,
    plan: &PlanJson<'_>,
    shape: &ModelShape,
    source: &ModelSource,
    s: &Style,
) -> io::Result<()> {
    let m = &plan.model;
    let from = match source {
        ModelSource::Path(p) => format!("from {}", p.display()),
        ModelSource::HubCache(p) => format!("from the Hugging Face cache ({})", p.display()),
        ModelSource::Catalog => "from the built-in catalog".to_string(),
    };
    writeln!(out, "{} {}", s.bold(m.id), s.dim(&format!("({from})")))?;
    writeln!(
        out,
        "  {} · {:.2}B parameters{} · {} layers · hidden {} · {} heads ({} KV, dim {}) · MLP {} · vocab {} · max length {}",
        m.architecture,
        m.params as f64 / 1e9,
        if shape.params_exact { " (from the checkpoint)" } else { "" },
        m.layers,
        m.hidden_size,
        m.heads,
        m.kv_heads,
        m.head_dim,
        m.intermediate_size,
        m.vocab_size,
        m.max_position_embeddings.map_or("n/a".into(), |v| v.to_string())
    )?;
    if let Some(local) = shape.local_attention {
        writeln!(
            out,
            "  attention: {} of {} layers {} ({} tokens), the other {} global; the KV cache is counted per layer type",
            local.layers,
            shape.layers,
            local.kind.as_str(),
            local.window,
            shape.layers.saturating_sub(local.layers)
        )?;
    }
    for note in &shape.notes {
        writeln!(out, "  {}", s.yellow(&format!("note: {note}")))?;
    }
    writeln!(out, "  {}", describe_workload(plan.workload))?;
    if let Some(line) = describe_precision(plan.workload) {
        writeln!(out, "  {line}")?;
    }
    writeln!(out)?;
    let b = &plan.per_gpu;
    let parts: [(&str, char, u64); 7] = [
        ("weights", '█', b.weights_bytes),
        ("gradients", '▓', b.gradients_bytes),
        ("optimizer states", '▒', b.optimizer_bytes),
        ("activations", '░', b.activations_bytes),
        ("KV cache", '≡', b.kv_cache_bytes),
        ("temporaries", ':', b.temporary_bytes),
        ("CUDA context", '·', b.cuda_context_bytes),
    ];
    let extent = plan.gpu.as_ref().map_or(b.device_used_bytes, |g| {
        g.memory_bytes.max(b.device_used_bytes)
    });
    let values: Vec<u64> = parts
        .iter()
        .map(|p| p.2)
        .chain([extent.saturating_sub(b.allocated_peak_bytes.saturating_add(b.cuda_context_bytes))])
        .collect();
    let cells = proportional_cells(&values, 50);
    let mut bar: String = parts
        .iter()
        .zip(&cells)
        .map(|(p, &c)| p.1.to_string().repeat(c))
        .collect();
    bar.push_str(&" ".repeat(cells[7]));
    writeln!(out, "{}", s.bold("Per GPU"))?;
    writeln!(out, "  [{bar}]")?;
    for (label, glyph, bytes) in parts {
        if bytes > 0 {
            writeln!(out, "   {glyph} {label:<18} {:>12}", format_size(bytes))?;
        }
    }
    writeln!(
        out,
        "   allocated peak     {:>12}  {}",
        format_size(b.allocated_peak_bytes),
        s.dim("torch.cuda.max_memory_allocated")
    )?;
    writeln!(
        out,
        "   reserved peak      {:>12}  {}",
        format_size(b.reserved_peak_bytes),
        s.dim("torch.cuda.max_memory_reserved")
    )?;
    writeln!(
        out,
        "   device used        {:>12}  {}",
        format_size(b.device_used_bytes),
        s.dim("as nvidia-smi shows the process")
    )?;
    let Some(g) = &plan.gpu else {
        writeln!(
            out,
            "\n  {}",
            s.dim("add --gpu NAME (see `oomguard gpus`) or --gpu SIZE to check the fit")
        )?;
        return Ok(());
    };
    writeln!(out)?;
    let tight = plan.fits == Some(true) && b.device_used_bytes > usable_capacity(g.memory_bytes);
    let verdict = if tight {
        s.yellow(&format!(
            "Fits {} ({}) only within the {:.0}% safety margin: {} to spare; a longer prompt, allocator fragmentation or another process can tip it over.",
            g.name,
            format_size(g.memory_bytes),
            SAFETY_MARGIN * 100.0,
            format_size(g.memory_bytes - b.device_used_bytes)
        ))
    } else if plan.fits == Some(true) {
        s.green(&format!(
            "Fits {} ({}): {} to spare.",
            g.name,
            format_size(g.memory_bytes),
            format_size(g.memory_bytes - b.device_used_bytes)
        ))
    } else {
        s.red(&format!(
            "Does not fit {} ({}): {} over.",
            g.name,
            format_size(g.memory_bytes),
            format_size(b.device_used_bytes - g.memory_bytes)
        ))
    };
    writeln!(out, "{}", s.bold(&verdict))?;
    let none = "none (even 1 does not fit)".to_string();
    writeln!(
        out,
        "  {}",
        s.dim(&format!(
            "largest batch and sequence keep {:.0}% of the card free (the estimate's error and allocator fragmentation)",
            SAFETY_MARGIN * 100.0
        ))
    )?;
    writeln!(
        out,
        "  largest batch that fits: {}",
        plan.max_batch.map_or(none.clone(), |v| v.to_string())
    )?;
    if shape.image_tokens.is_none() {
        writeln!(
            out,
            "  longest sequence that fits: {}",
            plan.max_seq.map_or(none, |v| format!("{v} tokens"))
        )?;
    }
    if !plan.recommendations.is_empty() {
        writeln!(out, "\n{}", s.bold("Changes that make it fit"))?;
        let width = plan
            .recommendations
            .iter()
            .map(|r| r.change.chars().count())
            .max()
            .unwrap_or(0);
        for r in &plan.recommendations {
            let mark = if r.fits {
                s.green("fits")
            } else {
                s.red("still over")
            };
            writeln!(
                out,
                "  {:<width$} {:>12}  {}",
                r.change,
                format_size(r.device_used_bytes),
                mark
            )?;
        }
    }
    Ok(())
}
