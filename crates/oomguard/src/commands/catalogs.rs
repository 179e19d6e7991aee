//! `oomguard models` and `oomguard gpus`: the built-in catalogs, with the
//! figures `plan` uses and where each comes from.

use crate::flags::ListArgs;
use oomguard_core::gpu::gpus as gpu_catalog;
use oomguard_core::model::catalog;
use oomguard_core::size::format_size;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

pub fn models(args: &ListArgs) -> anyhow::Result<ExitCode> {
    let mut out = BufWriter::new(io::stdout().lock());
    let mut rows = Vec::new();
    for m in catalog::models() {
        let s = catalog::shape(&m.id)?;
        rows.push((m, s));
    }
    if args.json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|(m, s)| {
                serde_json::json!({
                    "id": m.id, "aliases": m.aliases, "architecture": s.architecture, "params": s.params,
                    "params_exact": s.params_exact, "layers": s.layers, "hidden_size": s.hidden_size,
                    "heads": s.heads, "kv_heads": s.kv_heads, "vocab_size": s.vocab_size,
                    "max_position_embeddings": s.max_position_embeddings,
                    "dtype": s.checkpoint_dtype.map(|d| d.name()), "source": m.config_source,
                    "dtype_source": m.dtype_source, "max_length_source": m.max_length_source,
                })
            })
            .collect();
        serde_json::to_writer(&mut out, &serde_json::json!({ "models": list }))?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "{:<52} {:<12} {:>9} {:>5} {:>6} {:>6} {:>9} {:>8}",
            "model", "arch", "params", "dtype", "layers", "hidden", "heads/kv", "max len"
        )?;
        for (m, s) in &rows {
            let max_len = s
                .max_position_embeddings
                .map_or("n/a".into(), |m| m.to_string());
            writeln!(
                out,
                "{:<52} {:<12} {:>8.2}B {:>5} {:>6} {:>6} {:>9} {:>8}",
                m.id,
                s.architecture,
                s.params as f64 / 1e9,
                s.checkpoint_dtype.map_or("n/a", |d| d.name()),
                s.layers,
                s.hidden_size,
                format!("{}/{}", s.heads, s.kv_heads),
                max_len
            )?;
        }
        writeln!(
            out,
            "\n{} models; `oomguard models --json` gives each config's source.",
            rows.len()
        )?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn gpus(args: &ListArgs) -> anyhow::Result<ExitCode> {
    let mut out = BufWriter::new(io::stdout().lock());
    if args.json {
        serde_json::to_writer(&mut out, &serde_json::json!({ "gpus": gpu_catalog() }))?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "{:<18} {:<40} {:>11} {:<11} {:>5} {:>4}",
            "id", "name", "memory", "class", "bf16", "fp8"
        )?;
        for g in gpu_catalog() {
            writeln!(
                out,
                "{:<18} {:<40} {:>11} {:<11} {:>5} {:>4}",
                g.id,
                g.name,
                format_size(g.memory_bytes),
                g.class.as_str(),
                if g.bf16 { "yes" } else { "no" },
                if g.fp8 { "yes" } else { "no" }
            )?;
        }
        writeln!(out, "\n{} GPUs; memory as the driver reports it (`oomguard gpus --json` gives each source).", gpu_catalog().len())?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
