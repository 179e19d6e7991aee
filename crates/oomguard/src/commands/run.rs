//! `oomguard run`: run the command; when it dies of OOM, print the diagnosis,
//! choose the next batch from the event's figures and restart it; keep a
//! journal line per attempt, flushed to disk as each attempt ends.

use crate::child::{self, Interrupts, Launch, MemorySource, Output};
use crate::flags::RunArgs;
use anyhow::{bail, Context};
use oomguard_core::diagnose::trend::classify;
use oomguard_core::diagnose::ExplainedEvent;
use oomguard_core::gpu::source::NvmlSource;
use oomguard_core::size::format_size;
use oomguard_core::supervise::command::accumulation;
use oomguard_core::supervise::journal::rfc3339;
use oomguard_core::supervise::journal::AttemptMemory;
use oomguard_core::supervise::{next_batch, AttemptRecord, CommandTemplate};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The journal: appended, flushed and synced after every attempt, so that a
/// crash of oomguard itself loses no finished attempt.
struct Journal {
    file: File,
    path: String,
}

impl Journal {
    fn open(path: &std::path::Path) -> anyhow::Result<Journal> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot write the journal {}", path.display()))?;
        Ok(Journal {
            file,
            path: path.display().to_string(),
        })
    }

    fn append(&mut self, record: &AttemptRecord) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|_| self.file.sync_data())
            .with_context(|| format!("cannot write the journal {}", self.path))
    }
}

fn say(msg: &str) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "oomguard: {msg}");
}

pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let template = CommandTemplate::new(
        args.command.clone(),
        args.batch.is_some(),
        args.global_batch.is_some(),
    )?;
    if let Some(b) = args.batch {
        if args.min_batch > b {
            bail!(
                "--min-batch {} is above --batch {b}: nothing to try",
                args.min_batch
            );
        }
    }
    if args.batch.is_some() && !template.uses_batch() {
        say("the command has no {batch}: each attempt gets its batch size only as OOMGUARD_BATCH in its environment");
    }
    let mut journal = args.journal.as_deref().map(Journal::open).transpose()?;
    let interrupts = Interrupts::install().context("cannot install signal handlers")?;
    let output = if args.json {
        Output::ToStderr
    } else {
        Output::Passthrough
    };
    // The command's GPU memory, when it can be read: NVML, else nvidia-smi.
    let memory = if NvmlSource::open().is_ok() {
        Some(MemorySource::Nvml)
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("nvidia-smi"))
                .find(|p| p.is_file())
                .map(MemorySource::NvidiaSmi)
        })
    };

    let mut batch = args.batch;
    let mut smallest_failed = u64::MAX;
    let mut restarts = 0u32;
    let mut on_cpu = false;
    let mut records: Vec<AttemptRecord> = Vec::new();
    let code = loop {
        if let Some(sig) = interrupts.received() {
            break 128 + sig;
        }
        let accum = match (args.global_batch, batch) {
            (Some(g), Some(b)) => Some(accumulation(g, b)),
            _ => None,
        };
        let argv = template.fill(batch.unwrap_or(0), accum);
        let mut env = Vec::new();
        if let Some(b) = batch {
            env.push(("OOMGUARD_BATCH".to_string(), b.to_string()));
        }
        if let Some(k) = accum {
            env.push(("OOMGUARD_ACCUM".to_string(), k.to_string()));
        }
        if on_cpu {
            env.push(("CUDA_VISIBLE_DEVICES".to_string(), String::new()));
        }
        let attempt = records.len() as u32 + 1;
        if attempt > 1 {
            say(&format!(
                "attempt {attempt}: {}{}",
                batch.map_or("same command".into(), |b| format!("batch {b}")),
                if on_cpu {
                    " on the CPU (CUDA_VISIBLE_DEVICES=\"\")"
                } else {
                    ""
                }
            ));
        }
        let started_at = now();
        let launch = Launch {
            argv: &argv,
            env,
            output,
            timeout: None,
            memory: memory.clone(),
            sample_every: Duration::from_millis(250),
        };
        let finished = match child::run(&launch, &interrupts) {
            Ok(f) => f,
            Err(e) => break e.into_exit_code()?,
        };
        let oom = if finished.exit_code == Some(0) {
            None
        } else {
            finished.last_oom(batch)
        };
        let record = AttemptRecord {
            attempt,
            batch,
            accum,
            device: if on_cpu { "cpu" } else { "cuda" },
            started_at: rfc3339(started_at),
            duration_s: (finished.duration.as_secs_f64() * 1000.0).round() / 1000.0,
            exit_code: finished.exit_code,
            signal: finished.signal,
            oom: oom.clone(),
            memory: finished.memory.as_ref().map(|m| AttemptMemory {
                baseline_bytes: m.baseline_bytes,
                peak_bytes: m.peak_bytes,
                timeline: thin(&m.timeline, 200),
                trend: classify(&m.timeline),
            }),
        };
        if let Some(j) = journal.as_mut() {
            j.append(&record)?;
        }
        records.push(record);
        let code = finished.shell_code();
        if finished.exit_code == Some(0) || interrupts.received().is_some() {
            break code;
        }
        let Some(event) = oom else {
            say(&format!(
                "the command failed with exit code {code} and no out-of-memory error: not retried"
            ));
            break code;
        };
        report(&event, batch);
        if on_cpu {
            break code;
        }
        let Some(failed) = batch else {
            say("no --batch to shrink: not retried");
            break code;
        };
        smallest_failed = smallest_failed.min(failed);
        match next_batch(Some(&event.event), failed, smallest_failed, args.min_batch) {
            Some(next) if restarts < args.max_restarts => {
                say(&why_next(&event, failed, next));
                batch = Some(next);
                restarts += 1;
            }
            Some(_) => {
                say(&format!(
                    "stopping after {} restarts (--max-restarts)",
                    args.max_restarts
                ));
                break code;
            }
            None if args.cpu_fallback && restarts < args.max_restarts + 1 => {
                say(&format!("batch {failed} is the minimum and still fails: one more run on the CPU (--cpu-fallback)"));
                on_cpu = true;
            }
            None => {
                say(&format!(
                    "batch {failed} is the minimum (--min-batch) and still fails"
                ));
                break code;
            }
        }
    };
    summarize(args, &records, code)?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// At most `n` points of `timeline`, evenly spread, the last one kept.
fn thin(timeline: &[(f64, u64)], n: usize) -> Vec<(f64, u64)> {
    if timeline.len() <= n {
        return timeline.to_vec();
    }
    let step = timeline.len().div_ceil(n);
    let mut out: Vec<(f64, u64)> = timeline.iter().copied().step_by(step).collect();
    if let Some(last) = timeline.last() {
        if out.last() != Some(last) {
            out.push(*last);
        }
    }
    out
}

fn report(event: &ExplainedEvent, batch: Option<u64>) {
    let d = &event.diagnosis;
    say(&format!(
        "out of memory{}: {}",
        batch.map_or(String::new(), |b| format!(" at batch {b}")),
        d.summary
    ));
    if let Some(c) = d.causes.first() {
        say(&format!(
            "  likely cause: {} — {}",
            c.id.title(),
            c.evidence
        ));
    }
}

fn why_next(event: &ExplainedEvent, failed: u64, next: u64) -> String {
    let m = &event.event.memory;
    match (m.allocated_bytes, m.requested_bytes, event.diagnosis.accounting.framework_budget) {
        (Some(a), Some(q), Some(budget)) if a + q > budget => format!(
            "restarting with batch {next}: at batch {failed} it needed at least {} ({} held + {} requested) of the {} it could use, so no batch above {} can fit; {next} leaves room for the rest of the step",
            format_size(a + q),
            format_size(a),
            format_size(q),
            format_size(budget),
            (failed as f64 * budget as f64 / (a + q) as f64).floor()
        ),
        _ => format!("restarting with batch {next} (the error gives no figures to size it: halved)"),
    }
}

fn summarize(args: &RunArgs, records: &[AttemptRecord], code: i32) -> anyhow::Result<()> {
    if args.json {
        let last_ok = records.last().filter(|r| r.exit_code == Some(0));
        let summary = serde_json::json!({
            "exit_code": code,
            "batch": last_ok.and_then(|r| r.batch),
            "restarts": records.len().saturating_sub(1),
            "attempts": records,
        });
        let mut out = io::stdout().lock();
        serde_json::to_writer(&mut out, &summary)?;
        writeln!(out)?;
        return Ok(());
    }
    if records.len() > 1 {
        let mut err = io::stderr().lock();
        writeln!(err, "oomguard: attempts")?;
        writeln!(
            err,
            "  {:>3} {:>7} {:>6} {:>9} {:>6}  outcome",
            "#", "batch", "device", "time", "exit"
        )?;
        for r in records {
            let outcome = match (&r.oom, r.exit_code) {
                (_, Some(0)) => "ok".to_string(),
                (Some(e), _) => format!(
                    "OOM ({})",
                    e.diagnosis.causes.first().map_or("?", |c| c.id.title())
                ),
                (None, _) => "failed".to_string(),
            };
            writeln!(
                err,
                "  {:>3} {:>7} {:>6} {:>8.1}s {:>6}  {}",
                r.attempt,
                r.batch.map_or("-".into(), |b| b.to_string()),
                r.device,
                r.duration_s,
                r.exit_code.map_or_else(
                    || r.signal.map_or("?".into(), |s| format!("sig{s}")),
                    |c| c.to_string()
                ),
                outcome
            )?;
        }
    }
    Ok(())
}
