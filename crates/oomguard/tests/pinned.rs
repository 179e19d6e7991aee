//! Whole human output of the commands, pinned as snapshots (insta) so that a
//! change of wording, layout or figures shows in review as the real output.
//! Temporary paths and timings are filtered out; colour is off (not a
//! terminal). To accept an intended change: `INSTA_UPDATE=always cargo test
//! --test tests pinned` and read the diff of `tests/snapshots/`.

use crate::util::{oomguard, TempDir};

/// Replaces what differs from run to run: the temporary directory.
fn stable(text: &str, dir: Option<&TempDir>) -> String {
    let mut out = text.to_string();
    if let Some(d) = dir {
        out = out.replace(&d.0.display().to_string(), "[TMP]");
    }
    out
}

macro_rules! snapshot {
    ($name:expr, $args:expr) => {{
        let out = oomguard($args, None);
        let text = format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            out.code, out.stdout, out.stderr
        );
        insta::assert_snapshot!($name, stable(&text, None));
    }};
    ($name:expr, $args:expr, $dir:expr) => {{
        let out = oomguard($args, None);
        let text = format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            out.code, out.stdout, out.stderr
        );
        insta::assert_snapshot!($name, stable(&text, Some($dir)));
    }};
}

#[test]
fn watch_once_table() {
    let dir = TempDir::new();
    let sample = r#"{"time": 1700000000.0, "gpus": [{"index": 0, "uuid": "GPU-1", "name": "NVIDIA H100 80GB HBM3", "total_bytes": 85520809984, "used_bytes": 64424509440, "free_bytes": 21096300544}, {"index": 1, "uuid": "GPU-2", "name": "NVIDIA H100 80GB HBM3", "total_bytes": 85520809984, "used_bytes": null, "free_bytes": null}], "processes": [{"gpu": 0, "pid": 4242, "name": "python", "user": "alice", "used_bytes": 42949672960}, {"gpu": 0, "pid": 77, "name": "vllm", "user": "bob", "used_bytes": 10737418240}]}"#;
    let rec = dir.file("rec.jsonl", format!("{sample}\n").as_bytes());
    snapshot!(
        "watch_once_table",
        &["watch", "--replay", &rec, "--once"],
        &dir
    );
}

#[test]
fn plan_training_that_does_not_fit() {
    snapshot!(
        "plan_training_that_does_not_fit",
        &[
            "plan",
            "bert-large-uncased",
            "--train",
            "--batch",
            "64",
            "--seq",
            "512",
            "--gpu",
            "v100-16gb"
        ]
    );
}

#[test]
fn plan_vllm_start_up() {
    snapshot!(
        "plan_vllm_start_up",
        &[
            "plan",
            "meta-llama/Llama-3.1-8B-Instruct",
            "--engine",
            "vllm",
            "--gpu",
            "l40s",
            "--max-model-len",
            "32768"
        ]
    );
}

#[test]
fn plan_llama_cpp_offload() {
    snapshot!(
        "plan_llama_cpp_offload",
        &[
            "plan",
            "Qwen/Qwen2.5-7B-Instruct",
            "--engine",
            "llama.cpp",
            "--quant",
            "q4_k_m",
            "--ctx-size",
            "32768",
            "--gpu",
            "rtx-3060"
        ]
    );
}
