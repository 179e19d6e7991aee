//! Prometheus text exposition of a sample (format version 0.0.4): the
//! metric names SPEC.md fixes, with HELP and TYPE lines, one series per GPU
//! and per process. Unknown values are left out, not written as 0.

use super::sample::{GpuSample, GpuState};
use std::fmt::Write;

/// Escapes a label value: backslash, double quote and newline.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One per-GPU gauge: name, help text, and how to read it from a GPU.
type Gauge = (&'static str, &'static str, fn(&GpuState) -> Option<u64>);

/// The `/metrics` body for `sample`.
pub fn render(sample: &GpuSample) -> String {
    let mut out = String::new();
    let gauges: [Gauge; 3] = [
        (
            "oomguard_gpu_memory_total_bytes",
            "Total GPU memory as the driver reports it.",
            |g| g.total_bytes,
        ),
        (
            "oomguard_gpu_memory_used_bytes",
            "GPU memory in use.",
            |g| g.used_bytes,
        ),
        ("oomguard_gpu_memory_free_bytes", "GPU memory free.", |g| {
            g.free_bytes
        }),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for g in &sample.gpus {
            if let Some(v) = value(g) {
                let _ = writeln!(
                    out,
                    "{name}{{gpu=\"{}\",uuid=\"{}\",name=\"{}\"}} {v}",
                    g.index,
                    label(g.uuid.as_deref().unwrap_or("")),
                    label(g.name.as_deref().unwrap_or(""))
                );
            }
        }
    }
    let name = "oomguard_process_gpu_memory_bytes";
    let _ = writeln!(out, "# HELP {name} GPU memory held by a process.");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for p in &sample.processes {
        if let Some(v) = p.used_bytes {
            let _ = writeln!(
                out,
                "{name}{{gpu=\"{}\",pid=\"{}\",name=\"{}\"}} {v}",
                p.gpu,
                p.pid,
                label(p.name.as_deref().unwrap_or(""))
            );
        }
    }
    out
}
