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

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows of `--query-compute-apps=pid,process_name,used_memory`.
    fn apps(text: &str) -> Vec<(u32, Option<u64>)> {
        parse_rows(text, &["pid", "process_name", "used_memory"])
            .iter()
            .filter_map(|r| Some((r["pid"].parse().ok()?, mib_value(&r["used_memory"]))))
            .collect()
    }

    #[test]
    fn real_outputs_parse_with_and_without_units() {
        // query-compute-apps.csv: a header and units.
        let got = apps("pid, process_name, used_gpu_memory [MiB]\n3858903, VLLM::EngineCore, 6265 MiB\n3880364, VLLM::EngineCore, 5530 MiB\n");
        assert_eq!(
            got,
            vec![(3858903, Some(6265 << 20)), (3880364, Some(5530 << 20))]
        );
        // Windows (WDDM) gives no per-process memory.
        let got = apps("27220, ollama.exe, 12497\n3032, C:\\Windows\\System32\\dwm.exe, [N/A]\n");
        assert_eq!(got[1], (3032, None));
        let rows = parse_rows(
            "index, memory.total [MiB], memory.used [MiB]\n0, 46068 MiB, 9123 MiB\n",
            &["index", "memory.total", "memory.used"],
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(mib_value(&rows[0]["memory.used"]), Some(9123 << 20));
        assert_eq!(mib_value("[N/A]"), None);
        assert!(apps(
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
        )
        .is_empty());
    }
}

#[cfg(test)]
mod fixture_tests {
    use super::*;

    // Real outputs (tests/fixtures/nvidia-smi of this crate); see that
    // folder's README for their sources.
    const QUERY_GPU: &str = include_str!("../../tests/fixtures/nvidia-smi/query-gpu.csv");
    const QUERY_GPU_NOHEADER: &str =
        include_str!("../../tests/fixtures/nvidia-smi/query-gpu-noheader.csv");
    const APPS: &str = include_str!("../../tests/fixtures/nvidia-smi/query-compute-apps.csv");
    const APPS_EMPTY: &str =
        include_str!("../../tests/fixtures/nvidia-smi/query-compute-apps-empty.csv");
    const APPS_WDDM: &str =
        include_str!("../../tests/fixtures/nvidia-smi/query-compute-apps-noheader-nounits.csv");

    fn apps(text: &str) -> Vec<Option<u64>> {
        parse_rows(text, &["pid", "process_name", "used_memory"])
            .iter()
            .map(|r| mib_value(&r["used_memory"]))
            .collect()
    }
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
        assert_eq!(apps(APPS).len(), 2);
        assert!(apps(APPS_EMPTY).is_empty());
        let wddm = apps(APPS_WDDM);
        assert_eq!(wddm.len(), 2);
        assert_eq!(wddm[1], None);
    }
}
