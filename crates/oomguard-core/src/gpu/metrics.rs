//! Prometheus text exposition (format version 0.0.4) of what `watch` knows:
//! per-GPU memory and time to full, per-process memory with its container
//! and pod, the exporter's own health (`oomguard_up`, the time of the last
//! good sample) and build. Unknown values are left out, never written as 0,
//! and while the source is failing the GPU series are left out too: a
//! scrape must not present an old reading as a current one.
//!
//! With `dcgm_names` the GPU memory series are also written under the names
//! NVIDIA's dcgm-exporter uses (`DCGM_FI_DEV_FB_USED`, `DCGM_FI_DEV_FB_FREE`,
//! in MiB, labels `gpu`, `UUID`, `modelName`), so dashboards built for it work
//! unchanged.

use super::container::ContainerInfo;
use super::monitor::{Etas, Health};
use super::sample::{GpuSample, GpuState};
use std::collections::HashMap;
use std::fmt::Write;

/// Everything one scrape shows.
#[derive(Debug, Clone, Copy)]
pub struct Exposition<'a> {
    /// The latest successful sample.
    pub sample: &'a GpuSample,
    /// Time to full per GPU.
    pub etas: &'a Etas,
    /// Container facts per pid.
    pub containers: &'a HashMap<u32, ContainerInfo>,
    /// The source's health.
    pub health: &'a Health,
    /// The program's version, for `oomguard_build_info`.
    pub version: &'a str,
    /// Also write dcgm-exporter's names.
    pub dcgm_names: bool,
}

/// Escapes a label value: backslash, double quote and newline.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes the HELP and TYPE lines of a metric.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One per-GPU gauge: name, help text, and how to read it from a GPU.
type Gauge = (&'static str, &'static str, fn(&GpuState) -> Option<u64>);

const GAUGES: [Gauge; 3] = [
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

fn gpu_labels(g: &GpuState) -> String {
    format!(
        "gpu=\"{}\",uuid=\"{}\",name=\"{}\"",
        g.index,
        label(g.uuid.as_deref().unwrap_or("")),
        label(g.name.as_deref().unwrap_or(""))
    )
}

/// What `oomguard run` counts for one job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunCounters {
    /// Labels naming the job (`job_id`, `command`, ...), in order.
    pub labels: Vec<(String, String)>,
    /// OOM events seen in the command's output.
    pub oom_events: u64,
    /// Restarts made after an OOM.
    pub restarts: u64,
    /// The batch size of the current attempt, when the command has one.
    pub batch_size: Option<u64>,
}

/// The metric names oomguard writes, for rules and dashboards to check
/// against.
pub const METRIC_NAMES: &[&str] = &[
    "oomguard_up",
    "oomguard_last_sample_timestamp_seconds",
    "oomguard_sample_failures_total",
    "oomguard_build_info",
    "oomguard_gpu_memory_total_bytes",
    "oomguard_gpu_memory_used_bytes",
    "oomguard_gpu_memory_free_bytes",
    "oomguard_gpu_memory_time_to_full_seconds",
    "oomguard_process_gpu_memory_bytes",
    "oomguard_oom_events_total",
    "oomguard_restarts_total",
    "oomguard_batch_size",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_FB_FREE",
];

/// The Prometheus text of `run`'s counters, for its own `/metrics` or a
/// node_exporter textfile.
pub fn render_run(c: &RunCounters, version: &str) -> String {
    let labels = c
        .labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
        .collect::<Vec<_>>()
        .join(",");
    let mut out = String::new();
    let series = [
        (
            "oomguard_oom_events_total",
            "counter",
            "OOM events seen in the supervised command's output.",
            Some(c.oom_events),
        ),
        (
            "oomguard_restarts_total",
            "counter",
            "Restarts of the supervised command after an OOM.",
            Some(c.restarts),
        ),
        (
            "oomguard_batch_size",
            "gauge",
            "Batch size of the supervised command's current attempt.",
            c.batch_size,
        ),
    ];
    for (name, kind, help, value) in series {
        let Some(v) = value else { continue };
        header(&mut out, name, kind, help);
        let _ = writeln!(out, "{name}{{{labels}}} {v}");
    }
    build_info(&mut out, version);
    out
}

/// The `/metrics` body.
pub fn render(e: &Exposition<'_>) -> String {
    let mut out = String::new();
    health(&mut out, e);
    if e.health.is_stale() {
        return out;
    }
    for (name, help, value) in GAUGES {
        header(&mut out, name, "gauge", help);
        for g in &e.sample.gpus {
            if let Some(v) = value(g) {
                let _ = writeln!(out, "{name}{{{}}} {v}", gpu_labels(g));
            }
        }
    }
    let name = "oomguard_gpu_memory_time_to_full_seconds";
    header(
        &mut out,
        name,
        "gauge",
        "Forecast seconds until the GPU's memory is full, while usage rises.",
    );
    for g in &e.sample.gpus {
        if let Some(Some(s)) = e.etas.get(&g.index) {
            let _ = writeln!(out, "{name}{{{}}} {s:.1}", gpu_labels(g));
        }
    }
    processes(&mut out, e);
    if e.dcgm_names {
        dcgm(&mut out, e.sample);
    }
    out
}

fn health(out: &mut String, e: &Exposition<'_>) {
    header(
        out,
        "oomguard_up",
        "gauge",
        "1 when the last sample of the GPUs succeeded, 0 while sampling fails.",
    );
    let _ = writeln!(out, "oomguard_up {}", u8::from(!e.health.is_stale()));
    if let Some(t) = e.health.last_success {
        let name = "oomguard_last_sample_timestamp_seconds";
        header(
            out,
            name,
            "gauge",
            "UNIX time of the last successful sample.",
        );
        let _ = writeln!(out, "{name} {t:.3}");
    }
    let name = "oomguard_sample_failures_total";
    header(
        out,
        name,
        "counter",
        "Samples that failed or timed out since start.",
    );
    let _ = writeln!(out, "{name} {}", e.health.failures);
    build_info(out, e.version);
}

/// `oomguard_build_info{version}`, always 1.
fn build_info(out: &mut String, version: &str) {
    header(
        out,
        "oomguard_build_info",
        "gauge",
        "The running oomguard's version; always 1.",
    );
    let _ = writeln!(
        out,
        "oomguard_build_info{{version=\"{}\"}} 1",
        label(version)
    );
}

fn processes(out: &mut String, e: &Exposition<'_>) {
    let name = "oomguard_process_gpu_memory_bytes";
    header(out, name, "gauge", "GPU memory held by a process.");
    let known: std::collections::BTreeSet<u32> = e.sample.gpus.iter().map(|g| g.index).collect();
    for p in &e.sample.processes {
        let Some(v) = p.used_bytes else { continue };
        if !known.contains(&p.gpu) {
            continue;
        }
        let mut labels = format!(
            "gpu=\"{}\",pid=\"{}\",name=\"{}\"",
            p.gpu,
            p.pid,
            label(p.name.as_deref().unwrap_or(""))
        );
        if let Some(c) = e.containers.get(&p.pid) {
            for (key, value) in [
                ("pod", c.pod.as_deref()),
                ("namespace", c.namespace.as_deref()),
                ("container", c.short_id()),
            ] {
                if let Some(v) = value {
                    let _ = write!(labels, ",{key}=\"{}\"", label(v));
                }
            }
        }
        let _ = writeln!(out, "{name}{{{labels}}} {v}");
    }
}

/// dcgm-exporter's framebuffer gauges, in MiB as it writes them.
fn dcgm(out: &mut String, sample: &GpuSample) {
    type Fb = (&'static str, fn(&GpuState) -> Option<u64>);
    let fields: [Fb; 2] = [
        ("DCGM_FI_DEV_FB_USED", |g| g.used_bytes),
        ("DCGM_FI_DEV_FB_FREE", |g| g.free_bytes),
    ];
    for (name, value) in fields {
        header(out, name, "gauge", "Framebuffer memory (in MiB).");
        for g in &sample.gpus {
            if let Some(v) = value(g) {
                let _ = writeln!(
                    out,
                    "{name}{{gpu=\"{}\",UUID=\"{}\",modelName=\"{}\"}} {}",
                    g.index,
                    label(g.uuid.as_deref().unwrap_or("")),
                    label(g.name.as_deref().unwrap_or("")),
                    v >> 20
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::sample::ProcessState;

    fn sample() -> GpuSample {
        GpuSample {
            time: 10.0,
            gpus: vec![GpuState {
                index: 0,
                uuid: Some("GPU-1".into()),
                name: Some("NVIDIA \"A100\"".into()),
                total_bytes: Some(80 << 30),
                used_bytes: Some(40 << 30),
                free_bytes: None,
            }],
            processes: vec![
                ProcessState {
                    gpu: 0,
                    pid: 7,
                    name: Some("python".into()),
                    user: None,
                    used_bytes: Some(30 << 30),
                },
                ProcessState {
                    gpu: 3,
                    pid: 8,
                    name: None,
                    user: None,
                    used_bytes: Some(1 << 30),
                },
            ],
        }
    }

    fn body(health: &Health, dcgm: bool) -> String {
        let s = sample();
        let etas = Etas::from([(0, Some(95.25))]);
        let containers = HashMap::from([(
            7,
            ContainerInfo {
                container_id: Some("ab".repeat(32)),
                pod: Some("train-0".into()),
                namespace: Some("ml".into()),
                ..ContainerInfo::default()
            },
        )]);
        render(&Exposition {
            sample: &s,
            etas: &etas,
            containers: &containers,
            health,
            version: "0.1.0",
            dcgm_names: dcgm,
        })
    }

    #[test]
    fn fresh_sample_shows_every_series_and_leaves_unknowns_out() {
        let health = Health {
            last_success: Some(10.0),
            samples: 1,
            ..Health::default()
        };
        let text = body(&health, false);
        assert!(text.contains("oomguard_up 1\n"), "{text}");
        assert!(text.contains("oomguard_build_info{version=\"0.1.0\"} 1\n"));
        assert!(text.contains(
            "oomguard_gpu_memory_used_bytes{gpu=\"0\",uuid=\"GPU-1\",name=\"NVIDIA \\\"A100\\\"\"} 42949672960\n"
        ));
        assert!(!text.contains("oomguard_gpu_memory_free_bytes{"), "{text}");
        assert!(text.contains("oomguard_gpu_memory_time_to_full_seconds{gpu=\"0\""));
        assert!(text.contains("} 95.2\n") || text.contains("} 95.3\n"));
        assert!(text.contains(
            "oomguard_process_gpu_memory_bytes{gpu=\"0\",pid=\"7\",name=\"python\",pod=\"train-0\",namespace=\"ml\",container=\"abababababab\"} 32212254720\n"
        ));
        // A process on a GPU the sample does not list is not put on GPU 0.
        assert!(!text.contains("pid=\"8\""), "{text}");
        assert!(!text.contains("DCGM_"));
    }

    #[test]
    fn a_failing_source_serves_health_only() {
        let health = Health {
            last_success: Some(10.0),
            consecutive_failures: 2,
            failures: 2,
            samples: 1,
            last_error: Some("timed out".into()),
        };
        let text = body(&health, true);
        assert!(text.contains("oomguard_up 0\n"));
        assert!(text.contains("oomguard_last_sample_timestamp_seconds 10.000\n"));
        assert!(text.contains("oomguard_sample_failures_total 2\n"));
        assert!(!text.contains("oomguard_gpu_memory"), "{text}");
        assert!(!text.contains("oomguard_process"), "{text}");
    }

    #[test]
    fn run_counters_with_the_jobs_labels() {
        let c = RunCounters {
            labels: vec![("job_id".into(), "slurm-42".into())],
            oom_events: 2,
            restarts: 1,
            batch_size: None,
        };
        let text = render_run(&c, "0.1.0");
        assert!(text.contains("# TYPE oomguard_oom_events_total counter\n"));
        assert!(text.contains("oomguard_oom_events_total{job_id=\"slurm-42\"} 2\n"));
        assert!(text.contains("oomguard_restarts_total{job_id=\"slurm-42\"} 1\n"));
        // No batch known: no series, not a 0.
        assert!(!text.contains("oomguard_batch_size"), "{text}");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split('{').next().unwrap();
            assert!(METRIC_NAMES.contains(&name), "{line}");
        }
    }

    #[test]
    fn dcgm_names_in_mib() {
        let health = Health {
            last_success: Some(10.0),
            ..Health::default()
        };
        let text = body(&health, true);
        assert!(text.contains(
            "DCGM_FI_DEV_FB_USED{gpu=\"0\",UUID=\"GPU-1\",modelName=\"NVIDIA \\\"A100\\\"\"} 40960\n"
        ));
    }

    #[test]
    fn every_sample_line_is_well_formed() {
        let health = Health::default();
        for line in body(&health, true).lines() {
            if line.starts_with('#') {
                assert!(line.starts_with("# HELP ") || line.starts_with("# TYPE "));
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            let name = series.split('{').next().unwrap();
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{line}"
            );
        }
    }
}
