//! `oomguard snapshot` on snapshots written by `scripts/make-snapshots.py`
//! (a model of PyTorch's caching allocator that knows the answers), and on
//! hostile pickles built byte by byte.

use crate::util::{oomguard, TempDir};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The generated fixtures, written once per test run under Cargo's scratch
/// directory for integration tests (rewritten each run, never left in /tmp).
fn fixtures() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("snapshot-fixtures");
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-snapshots.py");
        let status = Command::new("python3")
            .arg(&script)
            .arg(&dir)
            .status()
            .expect("python3 runs (it writes the snapshot fixtures)");
        assert!(status.success(), "make-snapshots.py failed");
        dir
    })
}

fn fixture(name: &str) -> String {
    fixtures().join(name).to_string_lossy().into_owned()
}

fn expected(name: &str) -> Value {
    let text = std::fs::read_to_string(fixtures().join(format!("{name}.expected.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn run_json(file: &str, extra: &[&str]) -> Value {
    let mut args = vec!["snapshot", file, "--json"];
    args.extend_from_slice(extra);
    let out = oomguard(&args, None);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    out.json()
}

const FIGURES: [&str; 9] = [
    "at",
    "requested_bytes",
    "device_free_bytes",
    "allocated_bytes",
    "reserved_bytes",
    "cached_free_bytes",
    "largest_free_block_bytes",
    "segments",
    "device",
];

fn check_against_expected(file: &str, name: &str) {
    let got = run_json(&fixture(file), &[]);
    let want = expected(name);
    let (got_devices, want_devices) = (
        got["devices"].as_array().unwrap(),
        want["devices"].as_array().unwrap(),
    );
    assert_eq!(got_devices.len(), want_devices.len(), "{file}: devices");
    for (g, w) in got_devices.iter().zip(want_devices) {
        for k in FIGURES {
            assert_eq!(g[k], w[k], "{file}: device {} {k}", w["device"]);
        }
        assert_eq!(g["top_sites"][0], w["top_sites"][0], "{file}: top site");
        match w["first_cause"].as_str() {
            Some(id) => assert_eq!(g["causes"][0]["id"], id, "{file}: causes {}", g["causes"]),
            None => assert_eq!(g["causes"], serde_json::json!([]), "{file}: causes"),
        }
        let want_growing = w["growing_sites"].as_array().unwrap();
        let got_growing = g["growing_sites"].as_array().unwrap();
        assert_eq!(
            got_growing.len(),
            want_growing.len(),
            "{file}: growing {got_growing:?}"
        );
        for (gg, wg) in got_growing.iter().zip(want_growing) {
            let series: Vec<u64> = wg["series"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(gg["frame"], wg["frame"]);
            assert_eq!(gg["last_bytes"].as_u64(), series.last().copied(), "{file}");
            let first = gg["first_bytes"].as_u64().unwrap();
            assert!(
                series[..2].contains(&first),
                "{file}: first {first} not in {series:?}"
            );
        }
    }
}

#[test]
fn scenarios_match_the_allocator_model() {
    for name in [
        "train_oom",
        "leak",
        "peak",
        "load_oom",
        "fragmentation",
        "two_devices",
        "pools",
        "legacy",
    ] {
        check_against_expected(&format!("{name}.pickle"), name);
    }
}

#[test]
fn every_protocol_and_gzip_give_the_same_answer() {
    let strip = |mut v: Value| {
        v["source"] = Value::Null;
        v
    };
    let base = strip(run_json(&fixture("train_oom.pickle"), &[]));
    for p in 0..=5 {
        let name = if p == 4 {
            "train_oom.pickle".to_string()
        } else {
            format!("train_oom.p{p}.pickle")
        };
        assert_eq!(strip(run_json(&fixture(&name), &[])), base, "protocol {p}");
    }
    assert_eq!(
        strip(run_json(&fixture("leak.pickle.gz"), &[])),
        strip(run_json(&fixture("leak.pickle"), &[]))
    );
}

#[test]
fn json_has_exactly_the_documented_fields() {
    let v = run_json(&fixture("leak.pickle"), &["--top", "2"]);
    let top: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(top, ["devices", "source"]);
    let d = &v["devices"][0];
    let mut keys: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "allocated_bytes",
            "at",
            "cached_free_bytes",
            "causes",
            "device",
            "device_free_bytes",
            "fixes",
            "growing_sites",
            "largest_free_block_bytes",
            "requested_bytes",
            "reserved_bytes",
            "segments",
            "top_sites"
        ]
    );
    assert_eq!(d["top_sites"].as_array().unwrap().len(), 2);
    for c in d["causes"].as_array().unwrap() {
        assert!(
            c["score"].as_f64().is_some() && c["evidence"].is_string() && c.get("check").is_some()
        );
    }
    let fix = &d["fixes"][0];
    for k in ["id", "title", "detail", "code", "env"] {
        assert!(fix.get(k).is_some(), "fix field {k}");
    }
    assert_eq!(d["fixes"][0]["id"], "free_leftover_tensors");
}

#[test]
fn human_output_tells_the_moment_the_sites_and_the_leak() {
    let out = oomguard(&["snapshot", &fixture("leak.pickle")], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for needle in [
        "GPU 0 · at the OOM:",
        "cached but free",
        "Top allocation sites (live at the OOM)",
        "Grew across iterations (a leak)",
        "/home/user/project/train.py:64 (train_step)",
        "tensors kept alive from earlier steps [leftover_tensors",
        "loss.item()",
    ] {
        assert!(
            out.stdout.contains(needle),
            "missing {needle:?} in\n{}",
            out.stdout
        );
    }
    let pools = oomguard(&["snapshot", &fixture("pools.pickle")], None);
    assert!(
        pools.stdout.contains("private pool (1, 0)"),
        "{}",
        pools.stdout
    );
    assert!(
        pools.stdout.contains("expandable segments"),
        "{}",
        pools.stdout
    );
    let legacy = oomguard(&["snapshot", &fixture("legacy.pickle")], None);
    assert!(
        legacy.stdout.contains("no trace recorded"),
        "{}",
        legacy.stdout
    );
}

#[test]
fn human_output_matches_the_recorded_page() {
    let out = oomguard(
        &["snapshot", &fixture("train_oom.pickle"), "--top", "5"],
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let got = out.stdout.replace(&fixture(""), "FIXTURES/");
    let path = crate::util::fixture("snapshot/train_oom.txt");
    let want = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        got,
        want,
        "rewrite {} if the change is intended",
        path.display()
    );
}

#[test]
fn html_page_is_self_contained_with_timeline_oom_and_segment_map() {
    let dir = TempDir::new();
    let page = dir.0.join("snap.html");
    let out = oomguard(
        &[
            "snapshot",
            &fixture("train_oom.pickle"),
            "--html",
            page.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<svg class=\"timeline\""));
    assert!(html.matches("<polygon class=\"site\"").count() >= 3);
    assert!(html.contains("<line class=\"moment\""));
    assert!(html.contains(">OOM</text>"));
    assert!(html.contains("<svg class=\"segments\""));
    assert!(html.matches("<rect class=\"block\"").count() > 10);
    assert!(html.contains("/home/user/project/model.py:31 (forward)"));
    for external in ["<script", "src=", "href=", "@import", "url(", "<link"] {
        assert!(
            !html.contains(external),
            "page refers to something outside: {external}"
        );
    }
    assert!(html.trim_end().ends_with("</html>"));
}

fn assert_refused(bytes: &[u8], needle: &str) {
    let dir = TempDir::new();
    let path = dir.file("hostile.pickle", bytes);
    let out = oomguard(&["snapshot", &path, "--json"], None);
    assert_eq!(out.code, 2, "stdout {} stderr {}", out.stdout, out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(out.stderr.contains(&path), "names the file: {}", out.stderr);
    assert!(
        out.stderr.contains(needle),
        "wants {needle:?}: {}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked") && !out.stderr.contains("internal error"));
    assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.stderr);
}

#[test]
fn hostile_pickles_are_refused_with_file_and_offset() {
    // pickle.dumps of an object whose __reduce__ returns (os.system, ('id',)),
    // protocol 2: GLOBAL, then REDUCE.
    assert_refused(
        b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.",
        "byte 2: asks for the global \"posix.system\" (GLOBAL)",
    );
    // Protocol 4: STACK_GLOBAL.
    assert_refused(
        b"\x80\x04\x95\x1a\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\x94\x93\x94.",
        "asks for the global \"posix.system\" (STACK_GLOBAL)",
    );
    // REDUCE without a global, BUILD, INST, OBJ, NEWOBJ, EXT1, PERSID.
    assert_refused(
        b"\x80\x02NN\x85R.",
        "byte 5: asks to call an object (REDUCE)",
    );
    assert_refused(
        b"\x80\x02}}b.",
        "byte 4: asks to set an object's state (BUILD)",
    );
    assert_refused(
        b"(iposix\nsystem\n.",
        "asks for the global \"posix.system\" (INST)",
    );
    assert_refused(b"\x80\x02(No.", "(OBJ)");
    assert_refused(b"\x80\x02N)\x81.", "(NEWOBJ)");
    assert_refused(
        b"\x80\x02\x82\x01.",
        "byte 2: asks for an object from outside the file (EXT1)",
    );
    assert_refused(
        b"Pfoo\n.",
        "byte 0: asks for an object from outside the file (PERSID)",
    );
    assert_refused(b"\x80\x05\x97.", "out-of-band buffer (NEXT_BUFFER)");
}

#[test]
fn malformed_pickles_end_in_a_clear_error() {
    // Nesting deeper than the cap: 100 lists, each appended to the one below.
    let mut deep = b"\x80\x02".to_vec();
    deep.extend(std::iter::repeat_n(b']', 100));
    deep.extend(std::iter::repeat_n(b'a', 99));
    deep.push(b'.');
    assert_refused(&deep, "nested deeper than 64 levels");
    // A string that declares 2^63 bytes, one that declares 4 GiB in 3.
    assert_refused(
        b"\x80\x04\x8d\x00\x00\x00\x00\x00\x00\x00\x80",
        "byte 2: declares a",
    );
    assert_refused(
        b"\x80\x04X\xff\xff\xff\xffabc",
        "(at most 67108864 are accepted)",
    );
    assert_refused(
        b"\x80\x04B\x00\x00\x00\x02ab",
        "the file ends at byte 9 while reading a BINBYTES object",
    );
    assert_refused(
        b"\x80\x04\x8b\xff\xff\xff\x7f",
        "declares an integer of 2147483647 bytes",
    );
    assert_refused(b"", "byte 0: the file ends at byte 0");
    assert_refused(b"\x80\x02\xfe", "byte 2: unknown opcode 0xfe");
    assert_refused(b"\x80\x02K\x01.", "not a PyTorch memory snapshot");
    assert_refused(b"\x80\x02]q\x00K\x01a.", "segments[0]: not a dict");
    assert_refused(b"\x1f\x8b\x08\x00garbage", "hostile.pickle");
    // A real snapshot cut in half.
    let whole = std::fs::read(fixtures().join("leak.pickle")).unwrap();
    assert_refused(&whole[..whole.len() / 2], "the file ends at byte");
}

#[test]
fn a_missing_file_or_a_directory_is_an_input_error() {
    let out = oomguard(&["snapshot", "/nonexistent/snap.pickle"], None);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("/nonexistent/snap.pickle: cannot open"),
        "{}",
        out.stderr
    );
    let dir = TempDir::new();
    let out = oomguard(&["snapshot", dir.0.to_str().unwrap()], None);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("is a directory"), "{}", out.stderr);
}

#[test]
fn explain_adds_the_snapshots_evidence_to_the_event_it_matches() {
    let dir = TempDir::new();
    // The log's OOM asks for the same 64 MiB as the snapshot's OOM entry,
    // with no device index: the request ties them.
    let log = dir.file(
        "train.log",
        b"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 64.00 MiB. GPU has a total capacity of 15.77 GiB of which 8.00 MiB is free. Of the allocated memory 780.00 MiB is allocated by PyTorch, and 960.00 MiB is reserved by PyTorch but unallocated.\n",
    );
    let snap = fixture("fragmentation.pickle");
    let want = &expected("fragmentation")["devices"][0];
    let out = oomguard(&["explain", &log, "--snapshot", &snap], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("From the memory snapshot"),
        "{}",
        out.stdout
    );
    let largest = want["largest_free_block_bytes"].as_u64().unwrap();
    assert!(
        out.stdout.contains(&format!(
            "largest free block {}",
            oomguard_core::size::format_size(largest)
        )),
        "{}",
        out.stdout
    );
    let out = oomguard(&["explain", &log, "--snapshot", &snap, "--json"], None);
    let event = &out.json()["events"][0];
    assert_eq!(
        event["snapshot"]["cached_free_bytes"],
        want["cached_free_bytes"]
    );
    assert_eq!(event["snapshot"]["causes"][0]["id"], want["first_cause"]);
    // An event on a GPU the snapshot does not hold is not tied to it.
    let other = dir.file(
        "gpu3.log",
        b"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 3 has a total capacity of 79.15 GiB of which 1.00 GiB is free.\n",
    );
    let out = oomguard(&["explain", &other, "--snapshot", &snap], None);
    assert!(
        out.stdout.contains("no device of the snapshot matches"),
        "{}",
        out.stdout
    );
    let out = oomguard(&["explain", &other, "--snapshot", &snap, "--json"], None);
    assert!(out.json()["events"][0].get("snapshot").is_none());
    // A file that is not a snapshot is an input error before any output.
    let out = oomguard(&["explain", &log, "--snapshot", &log], None);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        out.stdout.is_empty() && out.stderr.contains("--snapshot"),
        "{}",
        out.stderr
    );
}
