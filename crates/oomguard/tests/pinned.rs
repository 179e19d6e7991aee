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

#[test]
fn text_from_a_log_never_drives_the_terminal() {
    // An OSC title, a one-character CSI (U+009B), backspaces and a bell in
    // the failing line; and an exponent that must not be read as 400 GiB.
    let log = "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB \u{9b}2J\u{8}\u{8}\u{7} (GPU 0; 8.00 GiB total capacity; 1.00 GiB already allocated; 0 bytes free; 7.00 GiB reserved in total by PyTorch)\n\
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1e400 GiB. GPU 0 has a total capacity of 23.65 GiB of which 1.06 GiB is free.\n";
    let out = oomguard(&["explain"], Some(log.as_bytes()));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let raw = out
        .stdout
        .chars()
        .find(|c| c.is_control() && *c != '\n' && *c != '\t');
    assert_eq!(raw, None, "{}", out.stdout);
    assert!(
        out.stdout.contains("\\x9b2J\\x08\\x08\\x07"),
        "{}",
        out.stdout
    );
    let out = oomguard(&["explain", "--json"], Some(log.as_bytes()));
    let json = out.json();
    let second = &json["events"][1]["memory"]["requested_bytes"];
    assert!(second.is_null(), "1e400 GiB read as {second}");
}

#[test]
fn explain_the_bundled_example() {
    // The README's first command: one event (the page's heading that names
    // the exception is not a second one), its accounting, causes and fixes.
    snapshot!(
        "explain_the_bundled_example",
        &["explain", "../../examples/runpod-oom.txt", "--batch", "64"]
    );
}
