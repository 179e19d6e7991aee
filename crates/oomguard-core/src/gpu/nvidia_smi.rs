//! Reading `nvidia-smi --query-gpu=... --format=csv` and
//! `--query-compute-apps=...` output: one row per GPU or process, fields
//! separated by a comma and a space, with or without a header and units
//! (`46068 MiB` or `46068`). `[N/A]` and `[Not Supported]` are unknown
//! (`None`), never 0. The table layout changes between driver versions, so
//! only the CSV queries are read.

use std::collections::BTreeMap;

/// One CSV row: field name (as queried) to raw value.
pub type Row = BTreeMap<String, String>;

/// Splits CSV output into rows named by `fields` (the query's order). A
/// header line, when present, is skipped. Lines with the wrong field count
/// are skipped too: nvidia-smi prints errors on stdout at times.
pub fn parse_rows(text: &str, fields: &[&str]) -> Vec<Row> {
    let mut rows = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let values: Vec<&str> = line.split(',').map(str::trim).collect();
        if values.len() != fields.len() {
            continue;
        }
        // A header repeats the field names (with units): skip it.
        if values.first().is_some_and(|v| v.starts_with(fields[0])) {
            continue;
        }
        rows.push(
            fields
                .iter()
                .map(|f| f.to_string())
                .zip(values.iter().map(|v| v.to_string()))
                .collect(),
        );
    }
    rows
}

/// A memory value in MiB (`46068`, `46068 MiB`) as bytes; `None` for
/// `[N/A]`, `[Not Supported]` or anything else that is not a number.
pub fn mib_value(raw: &str) -> Option<u64> {
    let number = raw.trim().trim_end_matches("MiB").trim();
    number.parse::<u64>().ok().map(|m| m << 20)
}

/// A process's GPU memory as `--query-compute-apps=pid,used_memory` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessUsage {
    pub pid: u32,
    pub used_bytes: Option<u64>,
}

/// Parses `--query-compute-apps=pid,process_name,used_memory` (any format).
pub fn compute_apps(text: &str) -> Vec<ProcessUsage> {
    parse_rows(text, &["pid", "process_name", "used_memory"])
        .into_iter()
        .filter_map(|r| {
            Some(ProcessUsage {
                pid: r["pid"].parse().ok()?,
                used_bytes: mib_value(&r["used_memory"]),
            })
        })
        .collect()
}

/// One GPU's memory as `--query-gpu=index,memory.total,memory.used` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuMemory {
    pub index: u32,
    pub total_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
}

/// Parses `--query-gpu=index,memory.total,memory.used` (any format).
pub fn gpu_memory(text: &str) -> Vec<GpuMemory> {
    parse_rows(text, &["index", "memory.total", "memory.used"])
        .into_iter()
        .filter_map(|r| {
            Some(GpuMemory {
                index: r["index"].parse().ok()?,
                total_bytes: mib_value(&r["memory.total"]),
                used_bytes: mib_value(&r["memory.used"]),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_outputs_parse_with_and_without_units() {
        // Shared fixture query-compute-apps.csv (a header and units).
        let apps = compute_apps("pid, process_name, used_gpu_memory [MiB]\n3858903, VLLM::EngineCore, 6265 MiB\n3880364, VLLM::EngineCore, 5530 MiB\n");
        assert_eq!(
            apps,
            vec![
                ProcessUsage {
                    pid: 3858903,
                    used_bytes: Some(6265 << 20)
                },
                ProcessUsage {
                    pid: 3880364,
                    used_bytes: Some(5530 << 20)
                },
            ]
        );
        // Windows (WDDM) gives no per-process memory.
        let apps =
            compute_apps("27220, ollama.exe, 12497\n3032, C:\\Windows\\System32\\dwm.exe, [N/A]\n");
        assert_eq!(
            apps[1],
            ProcessUsage {
                pid: 3032,
                used_bytes: None
            }
        );
        let gpus =
            gpu_memory("index, memory.total [MiB], memory.used [MiB]\n0, 46068 MiB, 9123 MiB\n");
        assert_eq!(
            gpus,
            vec![GpuMemory {
                index: 0,
                total_bytes: Some(46068 << 20),
                used_bytes: Some(9123 << 20)
            }]
        );
        assert!(gpu_memory("0, [N/A], [N/A]")[0].total_bytes.is_none());
        assert!(compute_apps(
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
        )
        .is_empty());
    }
}

#[cfg(test)]
mod fixture_tests {
    use super::*;

    // Real outputs from shared/fixtures/nvidia-smi (copied into the binary's
    // test fixtures); see that folder's README for their sources.
    const QUERY_GPU: &str =
        include_str!("../../../oomguard/tests/fixtures/nvidia-smi/query-gpu.csv");
    const QUERY_GPU_NOHEADER: &str =
        include_str!("../../../oomguard/tests/fixtures/nvidia-smi/query-gpu-noheader.csv");
    const APPS: &str =
        include_str!("../../../oomguard/tests/fixtures/nvidia-smi/query-compute-apps.csv");
    const APPS_EMPTY: &str =
        include_str!("../../../oomguard/tests/fixtures/nvidia-smi/query-compute-apps-empty.csv");
    const APPS_WDDM: &str = include_str!(
        "../../../oomguard/tests/fixtures/nvidia-smi/query-compute-apps-noheader-nounits.csv"
    );

    #[test]
    fn the_shared_fixtures_parse() {
        let rows = parse_rows(
            QUERY_GPU,
            &[
                "index",
                "name",
                "memory.total",
                "memory.used",
                "memory.free",
            ],
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["name"], "NVIDIA L40S");
        assert_eq!(mib_value(&rows[0]["memory.total"]), Some(46068 << 20));
        let rows = parse_rows(
            QUERY_GPU_NOHEADER,
            &[
                "utilization.gpu",
                "temperature.gpu",
                "memory.total",
                "memory.used",
            ],
        );
        assert!(!rows.is_empty());
        assert!(mib_value(&rows[0]["memory.total"]).is_some());
        assert_eq!(compute_apps(APPS).len(), 2);
        assert!(compute_apps(APPS_EMPTY).is_empty());
        let wddm = compute_apps(APPS_WDDM);
        assert_eq!(wddm.len(), 2);
        assert_eq!(wddm[1].used_bytes, None);
    }
}
