//! `oomguard explain` as a user runs it: files, stdin, gzip, wrapped and
//! prefixed logs, several events, bad inputs and exit codes.

use crate::util::{oomguard, TempDir};

#[test]
fn bundled_example_explains_the_runpod_error() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/runpod-oom.txt");
    let out = oomguard(&["explain", example, "--batch", "64"], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("PyTorch · CUDA GPU 0 · phase: the forward pass"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Reduce the batch from 64 to 54"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("256.00 MiB more than was free"),
        "{}",
        out.stdout
    );
}

const PT2: &str = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.65 GiB of which 1.06 GiB is free. Including non-PyTorch memory, this process has 22.58 GiB memory in use. Of the allocated memory 20.12 GiB is allocated by PyTorch, and 1.95 GiB is reserved by PyTorch but unallocated. If reserved but unallocated memory is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)";

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn gzip_files_and_gzip_stdin_are_read() {
    let dir = TempDir::new();
    let log = format!("step 1\nstep 2\n{PT2}\n");
    let path = dir.file("train.log.gz", &gzip(log.as_bytes()));
    for out in [
        oomguard(&["explain", "--json", &path], None),
        oomguard(&["explain", "--json"], Some(&gzip(log.as_bytes()))),
    ] {
        assert_eq!(out.code, 0, "{}", out.stderr);
        let json = out.json();
        assert_eq!(json["events"][0]["line"], 3);
        assert_eq!(json["events"][0]["memory"]["process_bytes"], 24245090386u64);
    }
}

#[test]
fn wrapped_coloured_crlf_prefixed_text_gives_the_same_figures() {
    // The PyTorch 2.x message as a terminal 80 columns wide shows it, in red,
    // with Windows line ends, behind a docker compose prefix on the first line.
    let wrapped: Vec<String> = PT2
        .as_bytes()
        .chunks(80)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    let text = format!("trainer-1  | \x1b[31m{}\x1b[0m\r\n", wrapped.join("\r\n"));
    let out = oomguard(&["explain", "--json"], Some(text.as_bytes()));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ev = &out.json()["events"][0];
    assert_eq!(ev["line"], 1);
    assert_eq!(ev["message"].as_str().unwrap(), PT2);
    assert_eq!(ev["memory"]["free_bytes"], 1138166333u64);
    assert_eq!(ev["memory"]["reserved_bytes"], 23697482056u64);
    assert_eq!(ev["causes"][0]["id"], "batch_too_large");
}

#[test]
fn ranks_printing_one_failure_count_once_and_later_failures_count_again() {
    let mut log = String::new();
    for rank in 0..4 {
        log.push_str(&format!(
            "[rank{rank}]: {}\n",
            PT2.replace("GPU 0", &format!("GPU {rank}"))
        ));
    }
    for step in 0..500 {
        log.push_str(&format!("step {step} loss 1.0\n"));
    }
    log.push_str("RuntimeError: CUDA error: out of memory\n");
    let out = oomguard(&["explain", "--json"], Some(log.as_bytes()));
    let json = out.json();
    let events = json["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{}", out.stdout);
    assert_eq!(events[0]["line"], 1);
    assert_eq!(events[1]["line"], 505);
    assert_eq!(
        events[1]["memory"]["requested_bytes"],
        serde_json::Value::Null
    );
}

#[test]
fn files_are_read_in_order_with_their_names() {
    let dir = TempDir::new();
    let a = dir.file("a.log", b"RuntimeError: CUDA error: out of memory\n");
    let b = dir.file("b.log", format!("x\n{PT2}\n").as_bytes());
    let out = oomguard(&["explain", "--json", &a, &b], None);
    let json = out.json();
    assert_eq!(json["events"][0]["source"], a.as_str());
    assert_eq!(json["events"][1]["source"], b.as_str());
    assert_eq!(json["events"][1]["line"], 2);
}

#[test]
fn bad_inputs_give_clear_errors_and_exit_codes() {
    let dir = TempDir::new();
    let missing = dir.0.join("nope.log").to_string_lossy().into_owned();
    let out = oomguard(&["explain", &missing], None);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("nope.log") && out.stderr.contains("No such file"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"));

    let d = dir.0.to_string_lossy().into_owned();
    let out = oomguard(&["explain", &d], None);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("is a directory"), "{}", out.stderr);

    // A missing file among good ones: the good ones are still explained.
    let good = dir.file("good.log", PT2.as_bytes());
    let out = oomguard(&["explain", "--json", &missing, &good], None);
    assert_eq!(out.code, 2);
    assert_eq!(out.json()["events"].as_array().unwrap().len(), 1);

    let out = oomguard(&["explain"], Some(b""));
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("no out-of-memory event"),
        "{}",
        out.stderr
    );

    let out = oomguard(&["explain", "--json"], Some(b""));
    assert_eq!(out.code, 1);
    assert_eq!(out.json()["events"].as_array().unwrap().len(), 0);

    let out = oomguard(&["explain", "--batch", "0"], Some(b""));
    assert_eq!(out.code, 2);
}

#[test]
fn binary_data_and_a_huge_line_give_no_panic() {
    let mut noise = Vec::with_capacity(3 << 20);
    let mut x: u32 = 12345;
    for _ in 0..(3 << 20) {
        x = x.wrapping_mul(1103515245).wrapping_add(12345);
        noise.push((x >> 16) as u8);
    }
    let out = oomguard(&["explain"], Some(&noise));
    assert_eq!(out.code, 1, "{}", out.stderr);

    // 100 MB on one line with an OOM message in the middle of it.
    let mut line = vec![b'x'; 50 << 20];
    line.extend_from_slice(b" RuntimeError: CUDA error: out of memory ");
    line.extend(std::iter::repeat_n(b'y', 50 << 20));
    line.push(b'\n');
    let out = oomguard(&["explain", "--json"], Some(&line));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["events"][0]["line"], 1);
}

#[test]
fn batch_flag_turns_figures_into_a_batch_that_fits() {
    let out = oomguard(
        &["explain", "--json", "--batch", "32"],
        Some(PT2.as_bytes()),
    );
    let ev = &out.json()["events"][0];
    assert_eq!(ev["fixes"][0]["id"], "reduce_batch");
    // need = 20.12 + 2.00 GiB, budget = 22.07 + 1.06 GiB: 32 x 23.13 / 22.12 x 0.85 = 28.4
    assert_eq!(ev["fixes"][0]["title"], "Reduce the batch from 32 to 28");
}
