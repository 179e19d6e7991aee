//! `oomguard watch` without a GPU: a recording drives the table, the JSON,
//! `/metrics` (fetched over loopback and checked against the exposition
//! format) and the alerts; bad recordings, ports and intervals are clear
//! errors.

use crate::util::{oomguard, TempDir};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const GIB: u64 = 1 << 30;

/// A recording: one GPU of 80 GiB at the given used percentages, two processes.
fn recording(dir: &TempDir, used_percent: &[u64]) -> String {
    let mut text = String::new();
    for (i, pct) in used_percent.iter().enumerate() {
        let used = 80 * GIB * pct / 100;
        let sample = json!({
            "time": 1_700_000_000.0 + i as f64,
            "gpus": [{"index": 0, "uuid": "GPU-1234", "name": "NVIDIA A100-SXM4-80GB", "total_bytes": 80 * GIB,
                      "used_bytes": used, "free_bytes": 80 * GIB - used}],
            "processes": [
                {"gpu": 0, "pid": 4242, "name": "python", "user": "alice", "used_bytes": used - GIB},
                {"gpu": 0, "pid": 99, "name": "Xorg \"display\"", "user": null, "used_bytes": null}
            ]
        });
        text.push_str(&sample.to_string());
        text.push('\n');
    }
    dir.file("rec.jsonl", text.as_bytes())
}

#[test]
fn a_replay_drives_the_table_and_json() {
    let dir = TempDir::new();
    let rec = recording(&dir, &[50, 55, 60, 65]);
    let out = oomguard(
        &["watch", "--replay", &rec, "--interval", "10ms", "--json"],
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["gpus"][0]["used_bytes"], 80 * GIB / 2);
    // Rising 5% (4 GiB) a second from 65%: full in 28 GiB / 4 GiB/s = 7 s.
    let eta = lines[3]["gpus"][0]["seconds_until_full"].as_f64().unwrap();
    assert!((eta - 7.0).abs() < 0.1, "{eta}");
    assert!(lines[0]["gpus"][0]["seconds_until_full"].is_null());
    // Unknown stays unknown.
    assert!(lines[0]["processes"][1]["used_bytes"].is_null());
    let out = oomguard(
        &["watch", "--replay", &rec, "--interval", "10ms", "--once"],
        None,
    );
    assert!(
        out.stdout.contains("NVIDIA A100-SXM4-80GB"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("40.00 GiB / 80.00 GiB"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("alice") && out.stdout.contains("n/a"),
        "{}",
        out.stdout
    );
}

#[test]
fn memory_no_listed_process_holds_is_shown_not_guessed() {
    // Inside a container NVML lists only some of the processes on a GPU:
    // 30 GiB used, one listed process holding 20 GiB leaves 10 GiB unlisted.
    // Where a listed process's memory is unknown, so is the unlisted part.
    let dir = TempDir::new();
    let sample = |procs: Value| {
        json!({
            "time": 1_700_000_000.0,
            "gpus": [{"index": 0, "uuid": "GPU-1", "name": "NVIDIA H100 80GB HBM3", "total_bytes": 80 * GIB,
                      "used_bytes": 30 * GIB, "free_bytes": 50 * GIB}],
            "processes": procs
        })
        .to_string()
    };
    let known = sample(
        json!([{"gpu": 0, "pid": 7, "name": "python", "user": "bob", "used_bytes": 20 * GIB}]),
    );
    let unknown =
        sample(json!([{"gpu": 0, "pid": 7, "name": "python", "user": "bob", "used_bytes": null}]));
    for (text, want) in [(known, json!(10 * GIB)), (unknown, Value::Null)] {
        let rec = dir.file("unlisted.jsonl", format!("{text}\n").as_bytes());
        let out = oomguard(&["watch", "--replay", &rec, "--once", "--json"], None);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let json: Value = serde_json::from_str(out.stdout.trim()).unwrap();
        assert_eq!(json["gpus"][0]["unlisted_bytes"], want, "{json}");
        let out = oomguard(&["watch", "--replay", &rec, "--once"], None);
        let row = out.stdout.lines().find(|l| l.contains("not listed"));
        match want {
            Value::Null => assert!(row.is_none(), "{}", out.stdout),
            _ => assert!(
                row.is_some_and(|r| r.contains("10.00 GiB")),
                "{}",
                out.stdout
            ),
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

/// Checks Prometheus text format 0.0.4: every sample's metric has HELP and
/// TYPE lines before it, names and labels are well formed, values are numbers.
fn check_exposition(text: &str) -> Vec<(String, String, f64)> {
    let mut typed = std::collections::HashSet::new();
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            typed.insert(parts.next().unwrap().to_string());
            let kind = parts.next();
            assert!(matches!(kind, Some("gauge" | "counter")), "{line}");
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        assert!(typed.contains(name), "sample before its TYPE: {line}");
        assert!(labels.ends_with('}'), "{line}");
        samples.push((name.to_string(), labels.to_string(), value));
    }
    samples
}

#[test]
fn metrics_are_served_on_loopback_in_the_exposition_format() {
    let dir = TempDir::new();
    let rec = recording(&dir, &[50, 60]);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_oomguard"))
        .args([
            "watch",
            "--replay",
            &rec,
            "--interval",
            "10ms",
            "--json",
            "--serve",
            &addr,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        if let Some(b) =
            get(port, "/metrics").filter(|b| b.contains("oomguard_gpu_memory_used_bytes{"))
        {
            // The replay has only two samples: wait for the last one.
            if b.contains(&(80 * GIB * 60 / 100).to_string()) {
                break b;
            }
        }
        assert!(Instant::now() < deadline, "no metrics served");
        std::thread::sleep(Duration::from_millis(50));
    };
    let not_found = get(port, "/other").unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(not_found.starts_with("HTTP/1.1 404"), "{not_found}");
    let text = body.split("\r\n\r\n").nth(1).unwrap();
    let samples = check_exposition(text);
    let find = |name: &str| samples.iter().find(|s| s.0 == name).unwrap().clone();
    let total = find("oomguard_gpu_memory_total_bytes");
    assert_eq!(
        total.1,
        r#"gpu="0",uuid="GPU-1234",name="NVIDIA A100-SXM4-80GB"}"#
    );
    assert_eq!(total.2, (80 * GIB) as f64);
    let procs: Vec<_> = samples
        .iter()
        .filter(|s| s.0 == "oomguard_process_gpu_memory_bytes")
        .collect();
    // The process whose memory is unknown has no series (not a 0).
    assert_eq!(procs.len(), 1);
    assert_eq!(procs[0].1, r#"gpu="0",pid="4242",name="python"}"#);
}

#[test]
fn the_alert_command_fires_once_per_crossing() {
    let dir = TempDir::new();
    let rec = recording(&dir, &[80, 91, 89, 92, 95, 87, 93]);
    let log = dir.0.join("alerts.log");
    let script = dir.file(
        "alert.sh",
        format!(
            "echo \"$OOMGUARD_ALERT $OOMGUARD_GPU $OOMGUARD_USED_BYTES $OOMGUARD_TOTAL_BYTES $OOMGUARD_TOP_PID\" >> {}\n",
            log.display()
        )
        .as_bytes(),
    );
    let on_alert = format!("sh {script}");
    let out = oomguard(
        &[
            "watch",
            "--replay",
            &rec,
            "--interval",
            "20ms",
            "--json",
            "--alert",
            "90",
            "--on-alert",
            &on_alert,
        ],
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    std::thread::sleep(Duration::from_millis(300));
    let fired = std::fs::read_to_string(&log).unwrap();
    let threshold: Vec<&str> = fired
        .lines()
        .filter(|l| l.starts_with("threshold "))
        .collect();
    assert_eq!(threshold.len(), 2, "{fired}");
    assert_eq!(
        threshold[0],
        format!("threshold 0 {} {} 4242", 80 * GIB * 91 / 100, 80 * GIB)
    );
    // Usage rising several GiB a second: the forecast alert fires too.
    assert!(
        fired.lines().any(|l| l.starts_with("forecast 0 ")),
        "{fired}"
    );
}

#[test]
fn bad_recordings_ports_and_intervals_are_clear_errors() {
    let dir = TempDir::new();
    let rec = recording(&dir, &[50, 60]);
    let text = std::fs::read_to_string(&rec).unwrap();
    let truncated = dir.file("trunc.jsonl", &text.as_bytes()[..text.len() - 40]);
    let out = oomguard(
        &[
            "watch",
            "--replay",
            &truncated,
            "--interval",
            "10ms",
            "--json",
        ],
        None,
    );
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("trunc.jsonl:2") && out.stderr.contains("truncated"),
        "{}",
        out.stderr
    );
    let foreign = dir.file(
        "query.csv",
        b"index, name, memory.total [MiB]\n0, NVIDIA L40S, 46068 MiB\n",
    );
    let out = oomguard(&["watch", "--replay", &foreign, "--once"], None);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("query.csv:1: not an oomguard recording"),
        "{}",
        out.stderr
    );
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = oomguard(
        &["watch", "--replay", &rec, "--once", "--serve", &addr],
        None,
    );
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("cannot listen"), "{}", out.stderr);
    for bad in ["0s", "fast", "-1s"] {
        let out = oomguard(&["watch", "--replay", &rec, "--interval", bad], None);
        assert_eq!(out.code, 2, "{bad}");
        assert!(!out.stderr.contains("panicked"));
    }
}

#[test]
fn without_a_driver_it_says_so_and_names_replay() {
    let out = crate::util::oomguard_env(
        &["watch", "--once", "--json"],
        None,
        &[("PATH", "/nonexistent")],
    );
    if out.code == 0 {
        // A machine with an NVIDIA driver: NVML gives a sample.
        assert!(
            out.json()["gpus"].as_array().is_some_and(|g| !g.is_empty()),
            "{}",
            out.stdout
        );
    } else {
        // No driver and no nvidia-smi on that PATH: say so and name --replay.
        assert_eq!(out.code, 2);
        assert!(
            out.stderr.contains("no NVIDIA driver") && out.stderr.contains("--replay"),
            "{}",
            out.stderr
        );
    }
}

/// A stand-in `nvidia-smi` whose behaviour the test switches by writing
/// `ok`, `hang` or `fail` into `DIR/mode`.
fn switchable_nvidia_smi(dir: &TempDir) -> (String, std::path::PathBuf) {
    let mode = dir.0.join("mode");
    std::fs::write(&mode, "ok").unwrap();
    let bin = dir.0.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = format!(
        r#"#!/bin/sh
case "$(cat {mode})" in
  hang) exec sleep 8 ;;
  fail) echo "Unable to determine the device handle for GPU 0000:01:00.0: Unknown Error" >&2; exit 15 ;;
esac
case "$*" in
  *query-gpu*) echo "0, GPU-aaaa, NVIDIA L40S, 46068, 9123, 36945" ;;
  *query-compute-apps*) echo "GPU-aaaa, 4242, python, 6265"; echo "GPU-ffff, 77, ghost, 100" ;;
esac
"#,
        mode = mode.display()
    );
    let path = bin.join("nvidia-smi");
    std::fs::write(&path, script).unwrap();
    Command::new("chmod").arg("+x").arg(&path).status().unwrap();
    let path_var = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (path_var, mode)
}

fn body_of(response: &str) -> &str {
    response.split("\r\n\r\n").nth(1).unwrap_or("")
}

/// Polls /metrics until `want` holds of the response, or 20 s pass.
fn wait_for(port: u16, what: &str, want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(r) = get(port, "/metrics").filter(|r| want(r)) {
            return r;
        }
        assert!(Instant::now() < deadline, "never saw {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (at most 20 s) until the file holds `needle`.
fn wait_for_text(file: &std::path::Path, what: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(file).is_ok_and(|t| t.contains(needle)) {
        assert!(Instant::now() < deadline, "never saw {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_failing_or_hung_source_marks_the_data_stale_and_the_exporter_lives_on() {
    let dir = TempDir::new();
    let (path, mode) = switchable_nvidia_smi(&dir);
    std::fs::write(&mode, "hang").unwrap();
    let port = free_port();
    let stderr = dir.0.join("stderr.txt");
    let child = Command::new(env!("CARGO_BIN_EXE_oomguard"))
        .args([
            "watch",
            "--source",
            "nvidia-smi",
            "--interval",
            "50ms",
            // Long enough that a loaded machine starting the stand-in
            // shell script is not an outage; far below its 8 s hang.
            "--sample-timeout",
            "2s",
            "--json",
            "--serve",
            &format!("127.0.0.1:{port}"),
        ])
        .env("PATH", &path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let _guard = Killed(child);
    // Hung from the start: no sample yet is a 503, not an empty 200.
    let first = wait_for(port, "503 before the first sample", |r| {
        r.starts_with("HTTP/1.1 503")
    });
    assert!(body_of(&first).contains("no sample yet"), "{first}");
    // The hang must be seen before the source recovers: on a loaded machine
    // the stand-in may start only after the mode has changed.
    wait_for_text(&stderr, "the first outage", "sampling failed");
    std::fs::write(&mode, "ok").unwrap();
    let fresh = wait_for(port, "a fresh sample", |r| r.contains("oomguard_up 1"));
    let text = body_of(&fresh);
    assert!(
        text.contains("oomguard_gpu_memory_used_bytes{gpu=\"0\",uuid=\"GPU-aaaa\""),
        "{text}"
    );
    assert!(text.contains("pid=\"4242\""), "{text}");
    // The process on a GPU the GPU query did not list is not put on GPU 0.
    assert!(!text.contains("pid=\"77\""), "{text}");
    for broken in ["fail", "hang"] {
        std::fs::write(&mode, broken).unwrap();
        let stale = wait_for(port, "stale data", |r| r.contains("oomguard_up 0"));
        let text = body_of(&stale);
        assert!(
            !text.contains("oomguard_gpu_memory_used_bytes{"),
            "{broken}: {text}"
        );
        assert!(
            text.contains("oomguard_last_sample_timestamp_seconds "),
            "{text}"
        );
        std::fs::write(&mode, "ok").unwrap();
        wait_for(port, "recovery", |r| {
            r.contains("oomguard_up 1") && r.contains("oomguard_gpu_memory_used_bytes{")
        });
    }
    let said = std::fs::read_to_string(&stderr).unwrap();
    // Three outages (hung at start, failing, hung), each said once.
    assert_eq!(said.matches("sampling failed").count(), 3, "{said}");
    assert!(
        said.contains("exit") || said.contains("Unknown Error"),
        "{said}"
    );
}

#[test]
fn slow_and_oversized_clients_do_not_stop_the_exporter() {
    let dir = TempDir::new();
    let rec = recording(&dir, &[50, 60]);
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_oomguard"))
        .args([
            "watch",
            "--replay",
            &rec,
            "--interval",
            "10ms",
            "--json",
            "--serve",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let _guard = Killed(child);
    wait_for(port, "metrics", |r| r.contains("oomguard_up 1"));
    let rss = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    // Warm up, then take the baseline.
    for _ in 0..20 {
        get(port, "/metrics").unwrap();
    }
    let before = rss();
    // 1,000 clients that connect and send half a request head, then stall.
    let mut slow = Vec::new();
    for _ in 0..1000 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x").unwrap();
        slow.push(s);
    }
    // Others are still answered, promptly.
    let started = Instant::now();
    for _ in 0..20 {
        let r = get(port, "/metrics").expect("answered while 1,000 clients stall");
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // An oversized head, a POST.
    let mut big = TcpStream::connect(("127.0.0.1", port)).unwrap();
    big.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    head.extend(std::iter::repeat_n(b'a', 64 * 1024));
    let _ = big.write_all(&head);
    let mut answer = String::new();
    let _ = big.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.80}");
    let mut post = TcpStream::connect(("127.0.0.1", port)).unwrap();
    post.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    post.write_all(b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    post.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(answer.contains("Allow: GET, HEAD"), "{answer}");
    let during = rss();
    drop(slow);
    // The stalled clients are dropped after the head timeout; the exporter
    // answers as before, and its memory stayed within a few MiB.
    std::thread::sleep(Duration::from_millis(200));
    get(port, "/metrics").unwrap();
    assert!(
        during < before + 16 * 1024,
        "RSS {before} KiB -> {during} KiB"
    );
}

/// Runs `oomguard watch` on a pseudo-terminal (util-linux `script`, which
/// makes it the controlling terminal) against a stand-in `nvidia-smi` that
/// hangs; returns the child and a buffer of what the terminal received.
fn watch_on_a_terminal(
    dir: &TempDir,
) -> (
    std::process::Child,
    std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
) {
    let (path, mode) = switchable_nvidia_smi(dir);
    std::fs::write(&mode, "hang").unwrap();
    let cmd = format!(
        "stty cols 100 rows 30; exec {} watch --source nvidia-smi --interval 100ms --sample-timeout 300ms",
        env!("CARGO_BIN_EXE_oomguard")
    );
    let mut child = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .env("PATH", &path)
        .env("TERM", "xterm-256color")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("util-linux script");
    let screen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut out = child.stdout.take().unwrap();
    let sink = screen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    (child, screen)
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_terminal_interface_answers_keys_and_signals_while_sampling_hangs() {
    let contains = |screen: &std::sync::Mutex<Vec<u8>>, s: &str| {
        String::from_utf8_lossy(&screen.lock().unwrap()).contains(s)
    };
    // `q` while the source hangs.
    let dir = TempDir::new();
    let (mut child, screen) = watch_on_a_terminal(&dir);
    wait_until("the stale header", || contains(&screen, "STALE"));
    child.stdin.as_mut().unwrap().write_all(b"q").unwrap();
    wait_until("exit after q", || child.try_wait().unwrap().is_some());
    assert!(child.wait().unwrap().success());
    // The alternate screen is left: the terminal is as it was.
    assert!(contains(&screen, "\x1b[?1049l"), "terminal not restored");

    // SIGTERM while the source hangs.
    let dir = TempDir::new();
    let (mut child, screen) = watch_on_a_terminal(&dir);
    wait_until("the stale header", || contains(&screen, "STALE"));
    let pids =
        std::fs::read_to_string(format!("/proc/{}/task/{}/children", child.id(), child.id()))
            .unwrap_or_default();
    let watch_pid = pids
        .split_whitespace()
        .next()
        .expect("script's child")
        .to_string();
    Command::new("kill")
        .args(["-TERM", &watch_pid])
        .status()
        .unwrap();
    wait_until("exit after SIGTERM", || child.try_wait().unwrap().is_some());
    assert!(contains(&screen, "\x1b[?1049l"), "terminal not restored");
}
