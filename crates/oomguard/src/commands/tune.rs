//! `oomguard tune`: short trials of the command, each in a fresh process, to
//! find the largest batch it survives; printed as they go, then the answer.

use crate::child::{self, Guard, Interrupts, Launch, MemorySource, Output};
use crate::flags::TuneArgs;
use anyhow::{bail, Context};
use oomguard_core::diagnose::ExplainedEvent;
use oomguard_core::gpu::{open_source_within as open_within, SourceChoice, SAMPLE_TIMEOUT};
use oomguard_core::oom::DeviceKind;
use oomguard_core::size::format_size;
use oomguard_core::supervise::{BatchSearch, CommandTemplate, MemoryTrace, TrialOutcome};
use serde::Serialize;
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Serialize)]
struct Trial {
    batch: u64,
    ok: bool,
    duration_s: f64,
    peak_bytes: Option<u64>,
    oom: Option<ExplainedEvent>,
}

/// Where trials' memory is read: `--source`, else NVML when it loads, else
/// `nvidia-smi` when it is on PATH, else the host's `/proc` (a CPU job).
fn memory_source(arg: Option<&str>) -> anyhow::Result<Option<MemorySource>> {
    Ok(match arg {
        Some("none") => None,
        Some("proc") => Some(MemorySource::Host),
        Some("nvml") => Some(MemorySource::gpu(open_within(
            &SourceChoice::Nvml,
            SAMPLE_TIMEOUT,
        )?)),
        Some(_) => Some(MemorySource::gpu(open_within(
            &SourceChoice::NvidiaSmi,
            SAMPLE_TIMEOUT,
        )?)),
        None => Some(
            open_within(&SourceChoice::Auto, SAMPLE_TIMEOUT)
                .ok()
                .map_or(MemorySource::Host, MemorySource::gpu),
        ),
    })
}

fn describe(source: &Option<MemorySource>) -> String {
    match source {
        Some(s) => s.describe(),
        None => "nowhere (pass/fail and OOM figures only)".into(),
    }
}

fn say(msg: &str) {
    let _ = writeln!(io::stderr().lock(), "oomguard: {msg}");
}

pub fn run(args: &TuneArgs) -> anyhow::Result<ExitCode> {
    let template = CommandTemplate::new(args.command.clone(), true, false)?;
    if args.min > args.max {
        bail!("--min {} is above --max {}", args.min, args.max);
    }
    if !(0.0..1.0).contains(&args.margin) {
        bail!("--margin {} must be at least 0 and below 1", args.margin);
    }
    let timeout = args.trial_timeout;
    let source = memory_source(args.source.as_deref())?;
    if !template.uses_batch() {
        say("the command has no {batch}: each trial gets its batch size only as OOMGUARD_BATCH in its environment");
    }
    let interrupts =
        Interrupts::install(args.kill_after).context("cannot install signal handlers")?;
    let mut guard = Guard::start(args.kill_after);
    let mut said_sample_error = false;
    let mut search = BatchSearch::new(args.start, args.min, args.max);
    let mut trials: Vec<Trial> = Vec::new();
    if !args.json {
        say(&format!(
            "searching batch sizes {}..{} from {}; GPU memory from {}",
            args.min,
            args.max,
            args.start,
            describe(&source)
        ));
    }
    while let Some(batch) = search.next() {
        if let Some(sig) = interrupts.received() {
            return Ok(ExitCode::from((128 + sig).clamp(0, 255) as u8));
        }
        let argv = template.fill(batch, None);
        let launch = Launch {
            argv: &argv,
            env: vec![("OOMGUARD_BATCH".to_string(), batch.to_string())],
            output: Output::Capture,
            timeout,
            kill_after: args.kill_after,
            memory: source.clone(),
            sample_every: Duration::from_millis(20),
        };
        let finished = match child::run(&launch, &interrupts, &mut guard) {
            Ok(f) => f,
            Err(e) => return Ok(ExitCode::from(e.into_exit_code()? as u8)),
        };
        if let (Some(e), false) = (&finished.sample_error, said_sample_error) {
            if !args.json {
                say(&format!(
                    "a memory sample failed ({e}); failed samples are skipped"
                ));
            }
            said_sample_error = true;
        }
        if let Some(sig) = interrupts.received() {
            return Ok(ExitCode::from((128 + sig).clamp(0, 255) as u8));
        }
        let memory = finished.memory.clone().unwrap_or_default();
        let survived =
            finished.exit_code == Some(0) || (finished.timed_out && finished.events.is_empty());
        let oom = if survived {
            None
        } else {
            finished.last_oom(Some(batch))
        };
        let outcome = if survived {
            TrialOutcome::Succeeded {
                baseline_bytes: memory.baseline_bytes,
                peak_bytes: memory.peak_bytes,
                capacity_bytes: memory.capacity_bytes,
            }
        } else if let Some(e) = &oom {
            TrialOutcome::OutOfMemory {
                event: Some(Box::new(e.event.clone())),
                baseline_bytes: memory.baseline_bytes,
                host_need: match (&source, e.event.device.kind) {
                    (Some(MemorySource::Host), DeviceKind::Cpu) => memory
                        .peak_bytes
                        .zip(memory.capacity_bytes)
                        .map(|(peak, limit)| {
                            (
                                peak.saturating_add(e.event.memory.requested_bytes.unwrap_or(0)),
                                limit,
                            )
                        }),
                    _ => None,
                },
            }
        } else if let Some((peak, limit)) = at_host_limit(&source, &memory) {
            // A message that does not say memory (oneDNN's "could not create
            // a primitive" when its allocation fails) from a trial whose
            // memory reached its limit is a failure of memory all the same.
            if !args.json {
                say(&format!(
                    "trial at batch {batch} failed without an out-of-memory message, with its memory at {} of its {} limit: counted as out of memory",
                    format_size(peak),
                    format_size(limit)
                ));
            }
            TrialOutcome::OutOfMemory {
                event: None,
                baseline_bytes: memory.baseline_bytes,
                host_need: Some((peak, limit)),
            }
        } else {
            let code = finished.shell_code();
            say(&format!(
                "trial at batch {batch} failed with exit code {code} and no out-of-memory error; stopping. Its last output:\n{}",
                last_lines(&finished.tail, 15)
            ));
            return Ok(ExitCode::from(code.clamp(1, 255) as u8));
        };
        search.record(batch, &outcome);
        let trial = Trial {
            batch,
            ok: survived,
            duration_s: (finished.duration.as_secs_f64() * 1000.0).round() / 1000.0,
            peak_bytes: memory.peak_bytes,
            oom,
        };
        if !args.json {
            print_trial(
                trials.len() + 1,
                &trial,
                finished.timed_out,
                search.predicted(),
            );
        }
        trials.push(trial);
    }
    let found = search.answer();
    let reported =
        found.map(|b| (((b as f64) * (1.0 - args.margin)).floor() as u64).max(args.min.min(b)));
    if args.json {
        let mut out = io::stdout().lock();
        serde_json::to_writer(
            &mut out,
            &serde_json::json!({ "batch": reported, "trials": trials }),
        )?;
        writeln!(out)?;
    } else {
        let mut out = io::stdout().lock();
        match (found, reported) {
            (Some(b), Some(r)) if r != b => writeln!(
                out,
                "largest batch: {b}; with --margin {}: {r} ({} trials)",
                args.margin,
                trials.len()
            )?,
            (Some(b), _) => writeln!(out, "largest batch: {b} ({} trials)", trials.len())?,
            _ if args.min == 1 => writeln!(
                out,
                "the model does not fit at batch 1 ({} trials): no batch size makes it fit; `oomguard plan` shows what does (precision, quantization, checkpointing, more GPUs)",
                trials.len()
            )?,
            _ => writeln!(
                out,
                "no batch size from {} up survives ({} trials)",
                args.min,
                trials.len()
            )?,
        }
    }
    Ok(if found.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_trial(n: usize, t: &Trial, timed_out: bool, predicted: Option<u64>) {
    let mut line = format!(
        "trial {n}: batch {:>6}  {:<4} {:>7.2}s",
        t.batch,
        if t.ok { "ok" } else { "OOM" },
        t.duration_s
    );
    if timed_out && t.ok {
        line.push_str(" (survived the trial timeout)");
    }
    if let Some(p) = t.peak_bytes {
        line.push_str(&format!("  peak {}", format_size(p)));
    }
    if let Some(e) = &t.oom {
        let m = &e.event.memory;
        if let (Some(a), Some(q)) = (m.allocated_bytes, m.requested_bytes) {
            line.push_str(&format!(
                "  needed ≥ {} ({} held + {} asked)",
                format_size(a + q),
                format_size(a),
                format_size(q)
            ));
        }
    }
    if let Some(p) = predicted {
        line.push_str(&format!("  memory line predicts {p}"));
    }
    let _ = writeln!(io::stderr().lock(), "{line}");
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `(peak, limit)` when the trial ran on the host's memory source and its
/// peak came within the shared at-limit share of its limit
/// (`supervise::at_host_limit`).
fn at_host_limit(source: &Option<MemorySource>, memory: &MemoryTrace) -> Option<(u64, u64)> {
    if !matches!(source, Some(MemorySource::Host)) {
        return None;
    }
    let (peak, limit) = (memory.peak_bytes?, memory.capacity_bytes?);
    oomguard_core::supervise::at_host_limit(peak, limit).then_some((peak, limit))
}
