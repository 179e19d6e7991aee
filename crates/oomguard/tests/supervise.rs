//! `oomguard run` and `oomguard tune` end to end, on the simulated trainer
//! of `examples/fake-trainer/` (a PyTorch-like job against a simulated GPU
//! that fails with PyTorch 2.x's exact message).

use crate::util::{oomguard, oomguard_env, TempDir};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn trainer_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/fake-trainer")
}

fn trainer() -> String {
    trainer_dir()
        .join("fake_trainer.py")
        .to_string_lossy()
        .into_owned()
}

/// The trainer's true largest batch for these options.
fn true_limit(opts: &[&str]) -> u64 {
    let out = Command::new("python3")
        .arg(trainer())
        .args(opts)
        .arg("--print-max-batch")
        .output()
        .expect("python3 runs the trainer");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a batch size")
}

fn run_json(args: &[&str]) -> Value {
    let out = oomguard(args, None);
    out.json()
}

#[test]
fn run_recovers_from_too_large_starts_better_than_halving() {
    let limit = true_limit(&[]);
    let (mut restarts, mut landed, mut halving_landed) = (0u64, 0u64, 0u64);
    for factor in [1.3f64, 3.0, 6.0] {
        let start = (limit as f64 * factor) as u64;
        let start_s = start.to_string();
        let summary = run_json(&[
            "run",
            "--json",
            "--batch",
            &start_s,
            "--",
            "python3",
            &trainer(),
            "--batch",
            "{batch}",
        ]);
        assert_eq!(summary["exit_code"], 0, "{summary}");
        let batch = summary["batch"].as_u64().unwrap();
        assert!(batch <= limit, "landed on {batch} above the limit {limit}");
        restarts += summary["restarts"].as_u64().unwrap();
        landed += batch;
        let mut b = start;
        while b > limit {
            b /= 2;
        }
        halving_landed += b;
    }
    assert!(restarts <= 9, "{restarts} restarts for 3 runs");
    assert!(
        landed >= halving_landed,
        "landed on {landed} in all, halving {halving_landed}"
    );
}

#[test]
fn run_keeps_the_global_batch_and_journals_each_attempt() {
    let dir = TempDir::new();
    let journal = dir.0.join("journal.jsonl");
    let j = journal.to_str().unwrap();
    let summary = run_json(&[
        "run",
        "--json",
        "--batch",
        "256",
        "--global-batch",
        "512",
        "--journal",
        j,
        "--",
        "python3",
        &trainer(),
        "--batch",
        "{batch}",
        "--steps",
        "{accum}",
    ]);
    assert_eq!(summary["exit_code"], 0);
    let lines: Vec<Value> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 2);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["attempt"], i as u64 + 1);
        let (b, k) = (l["batch"].as_u64().unwrap(), l["accum"].as_u64().unwrap());
        // Exactly the global batch: the micro-batch divides it.
        assert_eq!(b * k, 512, "{l}");
        assert!(l["started_at"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(lines[0]["oom"]["framework"], "pytorch");
    assert_eq!(lines[0]["oom"]["memory"]["total_bytes"], 25759066358u64);
    assert!(lines.last().unwrap()["oom"].is_null());
}

#[test]
fn run_does_not_retry_other_failures_and_reports_exit_codes() {
    let out = oomguard(
        &[
            "run",
            "--batch",
            "8",
            "--",
            "python3",
            &trainer(),
            "--batch",
            "{batch}",
            "--crash-at-step",
            "1",
        ],
        None,
    );
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("not retried"), "{}", out.stderr);
    let out = oomguard(&["run", "--", "no-such-command-xyz"], None);
    assert_eq!(out.code, 127);
    assert!(out.stderr.contains("command not found"), "{}", out.stderr);
    let out = oomguard(&["run", "--", "sh", "-c", "kill -TERM $$"], None);
    assert_eq!(out.code, 128 + 15);
}

#[test]
fn run_refuses_bad_flags_before_starting() {
    let dir = TempDir::new();
    let marker = dir.0.join("started");
    let touch = format!("touch {}", marker.display());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["run", "--", "sh", "-c", &touch, "{batch}"], "--batch"),
        (
            vec![
                "run",
                "--batch",
                "4",
                "--min-batch",
                "8",
                "--",
                "sh",
                "-c",
                &touch,
            ],
            "--min-batch",
        ),
        (
            vec![
                "run",
                "--batch",
                "4",
                "--journal",
                "/nonexistent-dir/j.jsonl",
                "--",
                "sh",
                "-c",
                &touch,
            ],
            "journal",
        ),
        (vec!["run", "--batch", "4"], "no command"),
    ];
    for (args, needle) in cases {
        let out = oomguard(&args, None);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
    }
    assert!(!marker.exists(), "a command ran despite bad flags");
}

#[test]
fn run_passes_output_through_byte_for_byte() {
    // Every byte value, carriage returns and an unterminated last line.
    let script = "import sys\nsys.stdout.buffer.write(bytes(range(256)) * 64 + b'50%|##\\r100%|####\\r\\nend')\nsys.stderr.write('warn\\n')";
    let out = Command::new(env!("CARGO_BIN_EXE_oomguard"))
        .args(["run", "--", "python3", "-c", script])
        .output()
        .unwrap();
    let mut want = Vec::new();
    for _ in 0..64 {
        want.extend(0u8..=255);
    }
    want.extend_from_slice(b"50%|##\r100%|####\r\nend");
    assert_eq!(out.stdout, want);
    assert_eq!(out.stderr, b"warn\n");
}

#[test]
fn run_falls_back_to_the_cpu_after_the_minimum_fails() {
    let limit = true_limit(&[]);
    let min = (limit + 10).to_string();
    let start = (limit + 40).to_string();
    let summary = run_json(&[
        "run",
        "--json",
        "--batch",
        &start,
        "--min-batch",
        &min,
        "--cpu-fallback",
        "--",
        "python3",
        &trainer(),
        "--batch",
        "{batch}",
    ]);
    assert_eq!(summary["exit_code"], 0, "{summary}");
    let attempts = summary["attempts"].as_array().unwrap();
    assert_eq!(attempts.last().unwrap()["device"], "cpu");
    assert_eq!(attempts[attempts.len() - 2]["batch"], limit + 10);
}

#[test]
fn ranks_printing_one_oom_restart_once() {
    // Two ranks print the same failure, interleaved with progress.
    let script = r#"
import sys, os
b = int(os.environ["OOMGUARD_BATCH"])
if b > 20:
    for r in (0, 1):
        sys.stderr.write(f"[rank{r}]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU {r} has a total capacity of 23.65 GiB of which 1.06 GiB is free. Including non-PyTorch memory, this process has 22.58 GiB memory in use. Of the allocated memory 20.12 GiB is allocated by PyTorch, and 1.95 GiB is reserved by PyTorch but unallocated.\n")
        sys.stderr.write(f"[rank{r}]: step 3\n")
    sys.exit(1)
"#;
    let summary = run_json(&[
        "run", "--json", "--batch", "32", "--", "python3", "-c", script,
    ]);
    assert_eq!(summary["exit_code"], 0, "{summary}");
    let attempts = summary["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{summary}");
    assert!(attempts[1]["batch"].as_u64().unwrap() <= 20);
}

/// Lightning's binsearch from 8 against `limit`: trials it takes, from the
/// one reference copy the benchmark uses too (scripts/lightning_binsearch.py).
fn lightning_trials(limit: u64) -> u64 {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/lightning_binsearch.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(limit.to_string())
        .output()
        .expect("python3 runs the reference search");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|t| t.parse().ok())
        .expect("trials")
}

#[test]
fn tune_finds_exact_limits_in_no_more_trials_than_lightning() {
    for want in [7u64, 37, 100, 1000, 3000] {
        // Activations sized so that about `want` samples fill what is left;
        // the trainer's 2 MiB rounding decides the exact limit.
        let per_sample = format!("{:.4}", 20064.0 / (want as f64 + 0.5));
        let opts = ["--per-sample-mib", per_sample.as_str()];
        let want = true_limit(&opts);
        let out = oomguard(
            &[
                "tune",
                "--json",
                "--source",
                "none",
                "--",
                "python3",
                &trainer(),
                "--batch",
                "{batch}",
                opts[0],
                opts[1],
            ],
            None,
        );
        let json = out.json();
        assert_eq!(json["batch"], want, "{}", out.stderr);
        let trials = json["trials"].as_array().unwrap().len() as u64;
        assert!(
            trials <= lightning_trials(want),
            "limit {want}: {trials} trials, Lightning {}",
            lightning_trials(want)
        );
    }
}

/// `tune --json` of the fake trainer (3 steps of 0.6 s after a 2 s load)
/// with the stand-in nvidia-smi on PATH reporting its memory file `name` in
/// `dir`; `env` is added to both. The trainer holds its baseline and each
/// step's peak until the stand-in has answered three process queries, so
/// the sampler reads both even when the machine is loaded and a stand-in
/// call takes most of a second.
fn tune_with_stand_in(dir: &TempDir, name: &str, opts: &[&str], env: &[(&str, &str)]) -> Value {
    let path = crate::util::trainer_path(dir, &trainer_dir());
    let gpu_dir = dir.0.to_string_lossy().into_owned();
    let mem = dir.0.join(name).to_string_lossy().into_owned();
    let trainer = trainer();
    let mut args = vec![
        "tune",
        "--json",
        "--source",
        "nvidia-smi",
        "--",
        "python3",
        &trainer,
    ];
    args.extend(["--batch", "{batch}", "--memory-file", &mem]);
    args.extend(["--load-time", "2", "--step-time", "0.6", "--steps", "3"]);
    // The baseline and each step's peak wait for three samples of the
    // stand-in: what the search reads does not hang on the machine's load.
    args.extend(["--hold-samples", "3"]);
    args.extend(opts);
    let mut vars = vec![("PATH", path.as_str()), ("FAKE_GPU_DIR", gpu_dir.as_str())];
    vars.extend(env);
    let out = oomguard_env(&args, None, &vars);
    let json = out.json();
    assert!(json["batch"].is_u64(), "{}", out.stderr);
    json
}

fn batches_tried(json: &Value) -> Vec<(u64, bool)> {
    json["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["batch"].as_u64().unwrap(), t["ok"].as_bool().unwrap()))
        .collect()
}

/// A limit set after the job started (`prlimit --as` exec'd by a shell a
/// moment later) still decides how memory is counted: the trial's peak is its
/// address space (a 600 MB mapping it never touches), not its resident memory.
#[test]
fn a_limit_set_after_the_first_sample_is_the_one_counted() {
    let job = "sleep 0.3; exec prlimit --as=4000000000 python3 -c \
        'import mmap, time; m = mmap.mmap(-1, 600_000_000); time.sleep(0.5)'";
    let out = oomguard(
        &[
            "tune", "--json", "--source", "proc", "--start", "1", "--max", "1", "--", "sh", "-c",
            job,
        ],
        None,
    );
    let json = out.json();
    let peak = json["trials"][0]["peak_bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("{json}"));
    assert!(peak > 600_000_000, "peak {peak}: {json}");
}

#[test]
fn tune_with_a_memory_source_jumps_to_the_limit() {
    let dir = TempDir::new();
    let mut total = 0;
    let limits = [7u64, 37, 100, 1000];
    for want in limits {
        let per_sample = format!("{:.4}", 20064.0 / (want as f64 + 0.5));
        let opts = ["--per-sample-mib", per_sample.as_str()];
        let json = tune_with_stand_in(&dir, &format!("trial-{want}.json"), &opts, &[]);
        let want = true_limit(&opts);
        assert_eq!(json["batch"], want, "{json}");
        assert!(json["trials"][0]["peak_bytes"].as_u64().is_some(), "{json}");
        eprintln!("limit {want}: {:?}", batches_tried(&json));
        total += batches_tried(&json).len();
    }
    // Measured: 2, 3, 4 and 4 (8 fails and its figures point at 7; the
    // others profile at 8, jump, and verify the limit and the batch above).
    // The first profile is inflated by the allocator's 2 MiB rounding, so
    // for 100 and 1000 the first jump lands just short: see
    // `supervise::search`'s staircase test for why 4 is the least there.
    let lightning: u64 = limits.iter().map(|l| lightning_trials(*l)).sum();
    assert!(total <= 13, "{total} trials for {} limits", limits.len());
    assert!(
        (total as u64) * 2 < lightning,
        "{total} trials, Lightning's rule {lightning}"
    );
}

#[test]
fn tune_leaves_out_what_another_process_holds() {
    // Another process holds 3000 MiB: listed by the stand-in nvidia-smi, or,
    // as NVML shows it inside a container, counted in the GPU's used and free
    // memory only. Either way the memory line aims at what is left to this
    // command, not at the device's total.
    let opts = ["--other-process-mib", "3000"];
    let want = true_limit(&opts);
    assert_eq!(want, 113);
    for hide in ["", "1"] {
        // A directory each: no record of the first search is read by the second.
        let dir = TempDir::new();
        let env = [("FAKE_GPU_HIDE_OTHERS", hide)];
        let json = tune_with_stand_in(&dir, "trial.json", &opts, &env);
        assert_eq!(json["batch"], want, "{json}");
        // Measured: 8, 113, 114 both ways. Aiming at the device's total, the
        // first jump lands on 133 and the search takes 6 to 8 trials.
        let tried = batches_tried(&json);
        assert!(tried.len() <= 3, "hidden {hide:?}: {tried:?}");
    }
}

#[test]
fn tune_with_state_created_in_the_first_step_stays_exact() {
    // Gradients and optimizer states created in the first step, after the
    // memory before it was read, make the first line aim low; the line
    // through two peaks corrects it.
    let dir = TempDir::new();
    let opts = ["--fixed-mib", "1000", "--state-mib", "3000"];
    let want = true_limit(&opts);
    assert_eq!(want, 133);
    let json = tune_with_stand_in(&dir, "trial.json", &opts, &[]);
    assert_eq!(json["batch"], want, "{json}");
    let tried = batches_tried(&json);
    // Measured: 8, 43, 133, 134.
    assert!(tried.len() <= 5, "{tried:?}");
    assert!(
        tried.len() as u64 * 2 <= lightning_trials(want),
        "{tried:?}"
    );
}

#[test]
fn tune_stops_on_a_failure_that_is_not_memory() {
    let out = oomguard(
        &[
            "tune",
            "--source",
            "none",
            "--",
            "python3",
            &trainer(),
            "--batch",
            "{batch}",
            "--crash-at-step",
            "1",
        ],
        None,
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("no out-of-memory error") && out.stderr.contains("ValueError"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_command_without_the_placeholder_is_told_where_its_batch_goes() {
    // The trainer reads OOMGUARD_BATCH when no --batch is given: the search
    // still works, and the user is told the batch is not in the arguments.
    let out = oomguard(
        &["tune", "--source", "none", "--", "python3", &trainer()],
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("largest batch: 133"), "{}", out.stdout);
    assert!(
        out.stderr.contains("only as OOMGUARD_BATCH"),
        "{}",
        out.stderr
    );
    let out = oomguard(
        &[
            "tune",
            "--source",
            "none",
            "--max",
            "16",
            "--",
            "python3",
            &trainer(),
            "--batch",
            "{batch}",
        ],
        None,
    );
    assert!(!out.stderr.contains("OOMGUARD_BATCH"), "{}", out.stderr);
}

#[test]
fn tune_margin_and_timeout() {
    let out = oomguard(
        &[
            "tune",
            "--json",
            "--source",
            "none",
            "--margin",
            "0.1",
            "--",
            "python3",
            &trainer(),
            "--batch",
            "{batch}",
        ],
        None,
    );
    let limit = true_limit(&[]);
    assert_eq!(out.json()["batch"], (limit as f64 * 0.9).floor() as u64);
    // A trial that outlives the timeout without an OOM counts as survived; its
    // process group is killed.
    let dir = TempDir::new();
    let pids = dir.0.join("pids");
    let script = format!(
        "sleep 30 & echo $! >> {}; sleep 30; echo {{batch}}",
        pids.display()
    );
    let out = oomguard(
        &[
            "tune",
            "--json",
            "--source",
            "none",
            "--max",
            "16",
            "--trial-timeout",
            "0.5",
            "--",
            "sh",
            "-c",
            &script,
        ],
        None,
    );
    let json = out.json();
    assert_eq!(json["batch"], 16, "{}", out.stderr);
    for pid in std::fs::read_to_string(&pids).unwrap().lines() {
        let pid: u32 = pid.parse().unwrap();
        wait_for(|| !alive(pid), "timed-out trials' processes to end");
    }
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

fn wait_for(mut ready: impl FnMut() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn sigterm_reaches_the_whole_group_and_leaves_nothing_behind() {
    let dir = TempDir::new();
    let pids = dir.0.join("pids");
    let script = format!(
        "sleep 60 & echo $! > {p}; echo $$ >> {p}; wait",
        p = pids.display()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_oomguard"))
        .args(["run", "--", "sh", "-c", &script])
        .spawn()
        .unwrap();
    wait_for(
        || std::fs::read_to_string(&pids).is_ok_and(|s| s.lines().count() == 2),
        "the command to start",
    );
    let listed: Vec<u32> = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + 15));
    for pid in listed {
        wait_for(|| !alive(pid), "the command's processes to end");
    }
}

#[test]
fn the_journal_survives_kill_9_of_oomguard() {
    let dir = TempDir::new();
    let journal = dir.0.join("journal.jsonl");
    let mem = dir.0.join("mem.json");
    let limit = true_limit(&[]);
    let start = (limit * 6).to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_oomguard"))
        .args([
            "run",
            "--batch",
            &start,
            "--journal",
            journal.to_str().unwrap(),
            "--",
            "python3",
            &trainer(),
        ])
        .args([
            "--batch",
            "{batch}",
            "--step-time",
            "2",
            "--steps",
            "20",
            "--memory-file",
            mem.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines = || {
        std::fs::read_to_string(&journal)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    wait_for(|| lines() >= 2, "two attempts in the journal");
    Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    let text = std::fs::read_to_string(&journal).unwrap();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).expect("every journal line is whole JSON");
        assert!(v["oom"]["memory"]["requested_bytes"].as_u64().is_some());
    }
    // The attempt that was running does not outlive oomguard: its guard
    // ends it (found by its command line, which names this test's own
    // memory file).
    let needle = mem.to_string_lossy().into_owned();
    wait_for(
        || running_with(&needle).is_empty(),
        "the orphaned attempt to end",
    );
}

/// Live pids whose command line contains `needle`.
fn running_with(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(needle) && alive(*pid)
        })
        .collect()
}

#[test]
fn on_a_terminal_the_command_sees_a_terminal() {
    // `script` (util-linux) gives oomguard a pseudo-terminal as its output;
    // the command then gets one too, so progress bars and colours stay.
    let bin = env!("CARGO_BIN_EXE_oomguard");
    let inner = format!(
        "{bin} run -- python3 -c 'import sys; print(sys.stdout.isatty(), sys.stderr.isatty())'"
    );
    let out = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .output()
        .expect("script runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("True True"), "{text}");
    // Through pipes it does not.
    let out = oomguard(
        &[
            "run",
            "--",
            "python3",
            "-c",
            "import sys; print(sys.stdout.isatty())",
        ],
        None,
    );
    assert_eq!(out.stdout.trim(), "False");
}

#[test]
fn run_journals_the_memory_timeline_and_spots_a_leak() {
    let dir = TempDir::new();
    let journal = dir.0.join("journal.jsonl");
    let mem = dir.0.join("mem.json");
    let path = crate::util::trainer_path(&dir, &trainer_dir());
    let gpu_dir = dir.0.to_string_lossy().into_owned();
    // 1.5 GiB kept alive every step: memory climbs until it runs out.
    let out = crate::util::oomguard_env(
        &[
            "run",
            "--batch",
            "60",
            "--max-restarts",
            "0",
            "--journal",
            journal.to_str().unwrap(),
            "--",
            "python3",
            &trainer(),
            "--batch",
            "{batch}",
            "--leak-mib-per-step",
            "1500",
            "--steps",
            "20",
            // Steps long enough for a few samples each, so the rest level
            // between steps is seen (a stand-in nvidia-smi call takes a good
            // part of a second on a loaded machine).
            "--step-time",
            "4",
            "--memory-file",
            mem.to_str().unwrap(),
        ],
        None,
        &[("PATH", path.as_str()), ("FAKE_GPU_DIR", gpu_dir.as_str())],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let record: Value = serde_json::from_str(
        std::fs::read_to_string(&journal)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let memory = &record["memory"];
    assert!(
        memory["timeline"].as_array().unwrap().len() >= 6,
        "{record}"
    );
    assert_eq!(memory["trend"]["kind"], "climbing", "{record}");
    assert_eq!(
        record["oom"]["causes"][0]["id"], "leftover_tensors",
        "{record}"
    );
    assert!(
        out.stderr.contains("a smaller batch only delays the OOM"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_first_step_oom_is_a_ramp_not_a_leak() {
    // Weights load for 2 s, then the first step climbs layer by layer until
    // it fails: memory rises through the end of the run, within one step.
    let dir = TempDir::new();
    let journal = dir.0.join("journal.jsonl");
    let mem = dir.0.join("mem.json");
    let path = crate::util::trainer_path(&dir, &trainer_dir());
    let gpu_dir = dir.0.to_string_lossy().into_owned();
    let limit = true_limit(&[]);
    let start = (limit * 3).to_string();
    let out = crate::util::oomguard_env(
        &[
            "run",
            "--batch",
            &start,
            "--max-restarts",
            "0",
            "--journal",
            journal.to_str().unwrap(),
            "--",
            "python3",
            &trainer(),
            "--batch",
            "{batch}",
            "--load-time",
            "2",
            "--step-time",
            "4",
            "--memory-file",
            mem.to_str().unwrap(),
        ],
        None,
        &[("PATH", path.as_str()), ("FAKE_GPU_DIR", gpu_dir.as_str())],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let record: Value = serde_json::from_str(
        std::fs::read_to_string(&journal)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_ne!(record["memory"]["trend"]["kind"], "climbing", "{record}");
    assert_ne!(
        record["oom"]["causes"][0]["id"], "leftover_tensors",
        "{record}"
    );
    assert!(!out.stderr.contains("only delays"), "{}", out.stderr);
}

#[test]
fn a_hung_nvidia_smi_does_not_hold_up_an_attempt() {
    let dir = TempDir::new();
    let bin = dir.0.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let smi = bin.join("nvidia-smi");
    std::fs::write(&smi, "#!/bin/sh\nexec sleep 600\n").unwrap();
    std::fs::set_permissions(&smi, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let started = std::time::Instant::now();
    let out = oomguard_env(
        &["run", "--", "sleep", "7"],
        None,
        &[("PATH", path.as_str())],
    );
    let took = started.elapsed().as_secs_f64();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(took < 11.0, "the attempt took {took:.1} s");
    // The sample timed out (5 s) while the command ran: said once.
    assert_eq!(
        out.stderr.matches("a memory sample failed").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("no answer within"), "{}", out.stderr);
}

#[test]
fn a_command_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let dir = TempDir::new();
    let ready = dir.0.join("ready");
    let script = format!(
        "import signal, time, pathlib\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\npathlib.Path({:?}).write_text('x')\ntime.sleep(120)",
        ready.display().to_string()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_oomguard"))
        .args(["run", "--kill-after", "1s", "--", "python3", "-c", &script])
        .spawn()
        .unwrap();
    wait_for(|| ready.exists(), "the command to start");
    let started = std::time::Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(
        started.elapsed().as_secs_f64() < 8.0,
        "{:?}",
        started.elapsed()
    );
    // The command's own end: killed by SIGKILL.
    assert_eq!(status.code(), Some(128 + 9));
}

#[test]
fn a_descendant_holding_stdout_in_a_new_session_does_not_hold_up_the_end() {
    let dir = TempDir::new();
    let marker = format!("oomguard-test-daemon-{}", std::process::id());
    let script = format!("setsid sh -c 'exec -a {marker} sleep 60' & echo started");
    let started = std::time::Instant::now();
    let out = oomguard(&["run", "--", "sh", "-c", &script], None);
    let took = started.elapsed().as_secs_f64();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("started"), "{}", out.stdout);
    assert!(took < 10.0, "took {took:.1} s");
    for pid in running_with(&marker) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    drop(dir);
}

#[test]
fn when_oomguard_is_killed_the_command_does_not_live_on() {
    let dir = TempDir::new();
    let pids = dir.0.join("pids");
    let script = format!(
        "sleep 120 & echo $! > {p}; echo $$ >> {p}; wait",
        p = pids.display()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_oomguard"))
        .args(["run", "--kill-after", "1s", "--", "sh", "-c", &script])
        .spawn()
        .unwrap();
    wait_for(
        || std::fs::read_to_string(&pids).is_ok_and(|s| s.lines().count() == 2),
        "the command to start",
    );
    let listed: Vec<u32> = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    for pid in listed {
        wait_for(
            || !alive(pid),
            "the command's processes to end after kill -9 of oomguard",
        );
    }
}

#[test]
fn an_unwritable_journal_warns_and_a_torn_one_is_repaired() {
    let out = oomguard(&["run", "--journal", "/dev/full", "--", "true"], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("cannot write the journal"),
        "{}",
        out.stderr
    );
    let dir = TempDir::new();
    let journal = dir.file("j.jsonl", b"{\"attempt\":1}\n{\"attempt\":2,\"ba");
    let out = oomguard(&["run", "--journal", &journal, "--", "true"], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("partial line"), "{}", out.stderr);
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(text.ends_with('\n'));
    for line in text.lines() {
        serde_json::from_str::<Value>(line).expect("whole JSON lines only");
    }
    assert_eq!(text.lines().count(), 2);
}

#[test]
fn a_full_disk_never_leaves_half_a_line() {
    // A 64 KiB tmpfs when this test may mount one (root on Linux); the
    // journal's lines are larger than what is left after the filler.
    let dir = TempDir::new();
    let mnt = dir.0.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=64k",
            "tmpfs",
            mnt.to_str().unwrap(),
        ])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped the tmpfs part: cannot mount (not root); /dev/full is tested above");
        return;
    }
    let journal = mnt.join("j.jsonl");
    // Fill all but ~100 bytes.
    let _ = std::fs::write(mnt.join("filler"), vec![0u8; 64 * 1024 - 4096 - 100]);
    let script = "import sys; sys.stderr.write('torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.65 GiB of which 1.06 GiB is free. Including non-PyTorch memory, this process has 22.58 GiB memory in use. Of the allocated memory 20.12 GiB is allocated by PyTorch, and 0.95 GiB is reserved by PyTorch but unallocated.\\n'); sys.exit(1)";
    let out = oomguard(
        &[
            "run",
            "--batch",
            "64",
            "--max-restarts",
            "2",
            "--journal",
            journal.to_str().unwrap(),
            "--",
            "python3",
            "-c",
            script,
        ],
        None,
    );
    let text = std::fs::read(&journal).unwrap_or_default();
    let _ = Command::new("umount").arg(&mnt).status();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(
        out.stderr.matches("cannot write the journal").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(
        text.is_empty() || text.ends_with(b"\n"),
        "{}",
        String::from_utf8_lossy(&text)
    );
}

#[test]
fn absurd_durations_and_batches_are_refused() {
    for args in [
        vec!["tune", "--trial-timeout", "1e20", "--", "true", "{batch}"],
        vec!["tune", "--trial-timeout", "-1", "--", "true", "{batch}"],
        vec!["run", "--kill-after", "NaN", "--", "true"],
        vec!["run", "--kill-after", "1e300s", "--", "true"],
        vec!["run", "--batch", "64", "--global-batch", "32", "--", "true"],
    ] {
        let out = oomguard(&args, None);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
    let out = oomguard(
        &["tune", "--trial-timeout", "1e20", "--", "true", "{batch}"],
        None,
    );
    assert!(
        out.stderr.contains("between 10ms and 24h"),
        "{}",
        out.stderr
    );
}

#[test]
fn fragmentation_restarts_once_at_the_same_batch_with_the_allocator_setting() {
    // Fails with a fragmentation OOM unless expandable_segments is set; the
    // user's own setting is kept.
    let script = r#"
import os, sys
conf = os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "")
print("conf=" + conf, "batch=" + os.environ["OOMGUARD_BATCH"])
if "expandable_segments:True" not in conf:
    sys.stderr.write("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.99 GiB of which 1.20 GiB is free. Including non-PyTorch memory, this process has 22.78 GiB memory in use. Of the allocated memory 17.10 GiB is allocated by PyTorch, and 5.18 GiB is reserved by PyTorch but unallocated. If reserved but unallocated memory is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.\n")
    sys.exit(1)
"#;
    let out = oomguard_env(
        &["run", "--batch", "32", "--", "python3", "-c", script],
        None,
        &[(
            "PYTORCH_CUDA_ALLOC_CONF",
            "garbage_collection_threshold:0.6",
        )],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("conf=garbage_collection_threshold:0.6,expandable_segments:True batch=32"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("same batch 32"), "{}", out.stderr);
    assert!(!out.stderr.contains("halved"), "{}", out.stderr);
}

#[test]
fn the_rank_that_ran_out_is_decided_on_not_the_timeouts_it_caused() {
    // torchrun's log: rank 1 runs out with figures, then rank 0 times out in
    // NCCL waiting for it; stdout and stderr interleave.
    let script = r#"
import os, sys, time
b = int(os.environ["OOMGUARD_BATCH"])
if b > 20:
    print("[rank0]: step 1 loss 2.3", flush=True)
    sys.stderr.write("[rank1]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 1 has a total capacity of 23.65 GiB of which 1.06 GiB is free. Including non-PyTorch memory, this process has 22.58 GiB memory in use. Of the allocated memory 20.12 GiB is allocated by PyTorch, and 0 bytes is reserved by PyTorch but unallocated.\n")
    sys.stderr.flush()
    time.sleep(0.2)
    print("[rank0]: [E ProcessGroupNCCL.cpp:563] [Rank 0] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=42, OpType=ALLREDUCE, Timeout(ms)=600000) ran for 600311 milliseconds before timing out.", flush=True)
    sys.exit(1)
"#;
    let out = oomguard(
        &["run", "--batch", "32", "--", "python3", "-c", script],
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("needed at least"), "{}", out.stderr);
    assert!(!out.stderr.contains("halved"), "{}", out.stderr);
}

#[test]
fn ranks_share_one_decision_through_the_state_directory() {
    // Four "ranks" fail at once with figures that allow different batches;
    // each records its decision and exits 3 (--exit-code-on-oom). The file
    // holds the smallest, whole, and every rank restarted by the launcher
    // starts there.
    let dir = TempDir::new();
    let state = dir.0.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let script = r#"
import os, sys
b = int(os.environ["OOMGUARD_BATCH"])
rank = int(os.environ["RANK"])
print("started at", b)
if b >= 40:
    asked = 2 + 4 * rank
    sys.stderr.write(f"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate {asked}.00 GiB. GPU 0 has a total capacity of 23.65 GiB of which 1.00 GiB is free. Including non-PyTorch memory, this process has 22.00 GiB memory in use. Of the allocated memory 18.00 GiB is allocated by PyTorch, and 0 bytes is reserved by PyTorch but unallocated.\n")
    sys.exit(1)
"#;
    let bin = env!("CARGO_BIN_EXE_oomguard");
    let ranks: Vec<_> = (0..4)
        .map(|rank| {
            Command::new(bin)
                .args(["run", "--batch", "64", "--state", state.to_str().unwrap()])
                .args(["--exit-code-on-oom", "3", "--", "python3", "-c", script])
                .env("RANK", rank.to_string())
                .env("TORCHELASTIC_RUN_ID", "job-7")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<_> = ranks
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for o in &outs {
        assert_eq!(
            o.status.code(),
            Some(3),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("job-7.json")).unwrap()).unwrap();
    let batch = stored["batch"].as_u64().unwrap();
    assert_eq!(stored["run_id"], "job-7");
    // Each rank's own choice, alone: the smallest must be the one stored.
    let mut alone = Vec::new();
    for rank in 0..4 {
        let o = oomguard_env(
            &[
                "run",
                "--json",
                "--batch",
                "64",
                "--max-restarts",
                "1",
                "--",
                "python3",
                "-c",
                script,
            ],
            None,
            &[("RANK", &rank.to_string())],
        );
        alone.push(o.json()["attempts"][1]["batch"].as_u64().unwrap());
    }
    assert_eq!(batch, *alone.iter().min().unwrap(), "{stored} vs {alone:?}");
    assert!(
        alone.iter().any(|b| *b != batch),
        "the ranks should disagree: {alone:?}"
    );
    // The launcher restarts the job: every rank starts at the stored batch.
    for rank in 0..2 {
        let o = oomguard_env(
            &[
                "run",
                "--batch",
                "64",
                "--state",
                state.to_str().unwrap(),
                "--",
                "python3",
                "-c",
                script,
            ],
            None,
            &[
                ("RANK", &rank.to_string()),
                ("TORCHELASTIC_RUN_ID", "job-7"),
            ],
        );
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert!(
            o.stdout.contains(&format!("started at {batch}")),
            "{}",
            o.stdout
        );
    }
}

/// The interpreter with a real PyTorch for the tests that train under an
/// address-space limit: `OOMGUARD_TEST_PYTHON`. Unset, those tests say they
/// are skipped; under CI (`CI=true`) a missing interpreter or a torch that
/// does not import fails them instead.
fn torch_python() -> Option<String> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let Ok(python) = std::env::var("OOMGUARD_TEST_PYTHON") else {
        assert!(
            !ci,
            "CI=true but OOMGUARD_TEST_PYTHON is unset: set it to a Python with torch"
        );
        eprintln!(
            "skipped: set OOMGUARD_TEST_PYTHON to a Python with torch to run the real-PyTorch tests"
        );
        return None;
    };
    let import = Command::new(&python)
        .args(["-c", "import torch"])
        .output()
        .unwrap_or_else(|e| panic!("OOMGUARD_TEST_PYTHON={python} does not run: {e}"));
    assert!(
        import.status.success(),
        "OOMGUARD_TEST_PYTHON={python} cannot import torch:\n{}",
        String::from_utf8_lossy(&import.stderr)
    );
    Some(python)
}

/// The job under its limit: `prlimit --as=LIMIT PYTHON train.py --batch {batch} ...`.
fn torch_job(python: &str, limit: &str) -> Vec<String> {
    let mut job = vec![
        "prlimit".to_string(),
        format!("--as={limit}"),
        python.to_string(),
    ];
    job.push(torch_script());
    job.extend(["--batch", "{batch}", "--steps", "2", "--size", "32"].map(String::from));
    job
}

fn torch_script() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/torch-cpu/train.py")
        .to_string_lossy()
        .into_owned()
}

/// Allocator settings for repeatable peaks: one malloc arena, large tensors
/// mapped and unmapped whole, one compute thread.
const TORCH_ENV: [(&str, &str); 3] = [
    ("MALLOC_ARENA_MAX", "1"),
    ("MALLOC_MMAP_THRESHOLD_", "131072"),
    ("OMP_NUM_THREADS", "1"),
];

/// The address-space limit under which the job's largest batch is about
/// `target`, from its own peaks at two small batches (measured now, with
/// this torch).
fn torch_limit_for(python: &str, target: u64) -> u64 {
    let out = Command::new(python)
        .args([
            &torch_script(),
            "--batch",
            "1",
            "--steps",
            "2",
            "--size",
            "32",
        ])
        .args(["--calibrate", "8,24"])
        .envs(TORCH_ENV)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let peaks: Vec<(u64, u64)> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.strip_prefix("calibration ")?.split(' ');
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect();
    assert_eq!(
        peaks.len(),
        2,
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let slope = (peaks[1].1 - peaks[0].1) as f64 / (peaks[1].0 - peaks[0].0) as f64;
    assert!(
        slope > 0.0,
        "the peak does not grow with the batch: {peaks:?}"
    );
    (peaks[0].1 as f64 + slope * (target - peaks[0].0) as f64 + slope / 2.0) as u64
}

#[test]
fn real_pytorch_on_the_cpu_recovers_under_run() {
    let Some(python) = torch_python() else {
        return;
    };
    let limit = torch_limit_for(&python, 48).to_string();
    let dir = TempDir::new();
    let journal = dir.0.join("journal.jsonl");
    let out = oomguard_env(
        &[
            "run",
            "--json",
            "--batch",
            "192",
            "--journal",
            journal.to_str().unwrap(),
            "--",
        ]
        .into_iter()
        .chain(torch_job(&python, &limit).iter().map(String::as_str))
        .collect::<Vec<_>>(),
        None,
        &TORCH_ENV,
    );
    let summary = out.json();
    assert_eq!(summary["exit_code"], 0, "{}", out.stderr);
    let attempts = summary["attempts"].as_array().unwrap();
    assert!(attempts.len() >= 2, "{summary}");
    let first = &attempts[0];
    assert_eq!(first["device"], "cpu", "{first}");
    assert_eq!(first["oom"]["device"]["kind"], "cpu", "{first}");
    assert!(
        first["oom"]["message"]
            .as_str()
            .unwrap()
            .contains("DefaultCPUAllocator"),
        "{first}"
    );
    // Host advice, not GPU advice.
    assert!(!out.stderr.contains("empty_cache"), "{}", out.stderr);
    assert!(!out.stderr.contains("nvidia-smi"), "{}", out.stderr);
    assert!(out.stderr.contains("address-space limit"), "{}", out.stderr);
    let landed = summary["batch"].as_u64().unwrap();
    assert!((12..192).contains(&landed), "landed on {landed}: {summary}");
}

#[test]
fn real_pytorch_on_the_cpu_is_tuned_from_its_memory_line() {
    let Some(python) = torch_python() else {
        return;
    };
    let limit = torch_limit_for(&python, 48).to_string();
    let out = oomguard_env(
        // A bound well above the target: a limit calibrated wrong on a
        // loaded machine fails the range check below in a few trials
        // instead of searching up to the default 65,536.
        &["tune", "--json", "--source", "proc", "--max", "192", "--"]
            .into_iter()
            .chain(torch_job(&python, &limit).iter().map(String::as_str))
            .collect::<Vec<_>>(),
        None,
        &TORCH_ENV,
    );
    let json = out.json();
    let found = json["batch"]
        .as_u64()
        .unwrap_or_else(|| panic!("{}", out.stderr));
    let trials = batches_tried(&json);
    // The search verified it: the found batch ran and the one above failed.
    assert!(trials.contains(&(found, true)), "{trials:?}");
    assert!(trials.contains(&(found + 1, false)), "{trials:?}");
    assert!((24..=96).contains(&found), "{trials:?}");
    // Lightning's rule from 8 to 53 takes 9 trials. The memory line took 4
    // in 16 of 16 runs here (8, 24 or 25, 54 fails, 53); two spare trials
    // for guesses that a loaded machine's noisier peaks spoil (a fresh-clone
    // run on a busy host took 6: 8, 25, 55 and 54 fail, 48, 53).
    assert!(trials.len() <= 6, "{trials:?}");
    assert!(json["trials"][0]["peak_bytes"].as_u64().is_some(), "{json}");
}

/// Runs `oomguard run -- python3 -c 'input()...'` on a fresh pseudo-terminal
/// (its controlling terminal, oomguard in the foreground as under a shell),
/// answers the prompt, optionally pressing Ctrl-Z first and resuming the
/// stopped job as a shell's `fg` would. Prints what it saw.
const PTY_DRIVER: &str = r#"
import os, pty, signal, sys, time
bin, suspend = sys.argv[1], sys.argv[2] == "1"
pid, fd = pty.fork()
if pid == 0:
    os.execv(bin, [bin, "run", "--", "python3", "-c", "x = input('name? '); print('got', x)"])
out = b""
def read_until(needle, limit=60):
    global out
    end = time.time() + limit
    while needle not in out and time.time() < end:
        try:
            out += os.read(fd, 4096)
        except OSError:
            break
    return needle in out
assert read_until(b"name? "), out
if suspend:
    os.write(fd, b"\x1a")
    _, status = os.waitpid(pid, os.WUNTRACED)
    print("stopped" if os.WIFSTOPPED(status) else "not stopped", flush=True)
    os.killpg(pid, signal.SIGCONT)
    time.sleep(0.5)
os.write(fd, b"hello\n")
ok = read_until(b"got hello")
_, status = os.waitpid(pid, 0)
print("answered" if ok else "no answer", os.waitstatus_to_exitcode(status), flush=True)
"#;

#[test]
fn on_a_terminal_the_command_reads_stdin_and_ctrl_z_stops_the_job() {
    let bin = env!("CARGO_BIN_EXE_oomguard");
    for suspend in ["0", "1"] {
        let out = Command::new("timeout")
            .args(["120", "python3", "-c", PTY_DRIVER, bin, suspend])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            text.contains("answered 0"),
            "suspend {suspend}: {text}{err}"
        );
        if suspend == "1" {
            assert!(
                text.contains("stopped") && !text.contains("not stopped"),
                "{text}{err}"
            );
        }
    }
}

#[test]
fn a_command_the_oom_killer_ends_is_an_oom_event() {
    // A memory cgroup of 200 MiB (v1 here; v2 needs the controller enabled
    // in the parent), made when this test may (root on Linux).
    let name = format!("oomguard-test-{}", std::process::id());
    let v1 = PathBuf::from("/sys/fs/cgroup/memory").join(&name);
    let v2 = PathBuf::from("/sys/fs/cgroup").join(&name);
    let (cg, limit_file) = if std::fs::create_dir(&v1).is_ok() {
        (v1, "memory.limit_in_bytes")
    } else if std::fs::create_dir(&v2).is_ok() && v2.join("memory.max").exists() {
        (v2, "memory.max")
    } else {
        let _ = std::fs::remove_dir(&v2);
        eprintln!("skipped: cannot make a memory cgroup here (not root, or no memory controller)");
        return;
    };
    std::fs::write(cg.join(limit_file), "209715200").unwrap();
    let inner = format!(
        "echo $$ > {procs} && exec {bin} run --json -- python3 -c 'x = bytearray(600 << 20); import time; time.sleep(5)'",
        procs = cg.join("cgroup.procs").display(),
        bin = env!("CARGO_BIN_EXE_oomguard"),
    );
    let out = Command::new("sh").args(["-c", &inner]).output().unwrap();
    // oomguard's guard leaves the cgroup a moment after oomguard.
    wait_for(
        || std::fs::remove_dir(&cg).is_ok(),
        "the test cgroup to empty",
    );
    let summary: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(summary["exit_code"], 137, "{summary}");
    let attempt = &summary["attempts"][0];
    assert_eq!(attempt["device"], "cpu", "{attempt}");
    assert_eq!(attempt["signal"], 9, "{attempt}");
    assert!(
        attempt["oom"]["message"]
            .as_str()
            .unwrap()
            .contains("Killed process"),
        "{attempt}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("OOM killer"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn tune_says_the_model_does_not_fit_at_batch_1() {
    let script = "import sys; sys.stderr.write('torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.65 GiB of which 1.06 GiB is free. Including non-PyTorch memory, this process has 22.58 GiB memory in use. Of the allocated memory 22.12 GiB is allocated by PyTorch, and 0 bytes is reserved by PyTorch but unallocated.\\n'); sys.exit(1)";
    let out = oomguard(
        &[
            "tune", "--source", "none", "--", "python3", "-c", script, "{batch}",
        ],
        None,
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stdout.contains("does not fit at batch 1"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("oomguard plan"), "{}", out.stdout);
}

#[test]
fn run_writes_its_counters_for_prometheus() {
    let dir = TempDir::new();
    let prom = dir.0.join("oomguard.prom");
    let script = r#"
import sys, os
b = int(os.environ["OOMGUARD_BATCH"])
if b > 20:
    sys.stderr.write("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.65 GiB of which 1.06 GiB is free. Including non-PyTorch memory, this process has 22.58 GiB memory in use. Of the allocated memory 20.12 GiB is allocated by PyTorch, and 0.05 GiB is reserved by PyTorch but unallocated.\n")
    sys.exit(1)
"#;
    let out = oomguard_env(
        &[
            "run",
            "--batch",
            "32",
            "--metrics-file",
            prom.to_str().unwrap(),
            "--",
            "python3",
            "-c",
            script,
        ],
        None,
        &[("SLURM_JOB_ID", "4242")],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = std::fs::read_to_string(&prom).unwrap();
    let labels = r#"{job_id="4242",command="python3"}"#;
    assert!(
        text.contains(&format!("oomguard_oom_events_total{labels} 1\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!("oomguard_restarts_total{labels} 1\n")),
        "{text}"
    );
    let batch_line = text
        .lines()
        .find(|l| l.starts_with("oomguard_batch_size{"))
        .unwrap();
    let batch: u64 = batch_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(batch <= 20, "{text}");
    // Written by rename: no temporary file is left beside it.
    assert!(!dir.0.join("oomguard.prom.tmp").exists());
}

#[test]
fn the_command_is_told_where_the_journal_is() {
    // The Python callbacks add their per-step lines to run's journal.
    let dir = TempDir::new();
    let journal = dir.0.join("journal.jsonl");
    let path = journal.to_str().unwrap();
    let check = format!("test \"$OOMGUARD_JOURNAL\" = '{path}'");
    let out = oomguard(&["run", "--journal", path, "--", "sh", "-c", &check], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn tune_counts_a_failure_at_the_host_limit_as_out_of_memory() {
    // Above batch 20 the job fills its address space and dies with a message
    // that does not say memory (as oneDNN's "could not create a primitive");
    // its peak at the limit makes it an out-of-memory trial, not the end.
    let script = r#"
import os, sys
b = int(os.environ["OOMGUARD_BATCH"])
if b > 20:
    hold = []
    try:
        while True:
            hold.append(bytearray(4 << 20))
    except MemoryError:
        hold = None
    sys.stderr.write("RuntimeError: could not create a primitive\n")
    sys.exit(1)
"#;
    let out = oomguard(
        &[
            "tune",
            "--json",
            "--source",
            "proc",
            "--start",
            "32",
            "--",
            "prlimit",
            "--as=1073741824",
            "python3",
            "-c",
            script,
        ],
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json = out.json();
    assert_eq!(json["batch"], 20, "{json}");
}
